//! `forge generate` on a gpt-oss checkpoint: the prompt goes in as a
//! Harmony user turn and the final channel comes out (the reasoning too
//! with --verbose). The tiny golden model and a word-level tokenizer with
//! Harmony's special tokens stand in for a real checkpoint; the expected
//! output is computed here through the library the same way.

extern crate forge_gpt_oss;

use std::path::{Path, PathBuf};
use std::process::Command;

use forge_core::tokenizer::Tokenizer;
use forge_core::{load_model_dir, LoadOptions};
use forge_gpt_oss::harmony::{tokens, user_prompt, HarmonyParser, ReasoningEffort};

const VOCAB: usize = 160;

/// A word-level tokenizer of `VOCAB` entries: the Harmony special tokens,
/// a few channel words, and filler words.
fn write_tokenizer(dir: &Path) {
    let mut vocab = serde_json::Map::new();
    let mut added = Vec::new();
    vocab.insert("[UNK]".into(), 0.into());
    for (i, token) in tokens::ALL.iter().enumerate() {
        let id = i + 1;
        vocab.insert(token.to_string(), id.into());
        added.push(
            serde_json::json!({"id": id, "content": token, "single_word": false,
            "lstrip": false, "rstrip": false, "normalized": false, "special": true}),
        );
    }
    let words = ["analysis", "final", "commentary", "to", "functions", "json"];
    for word in words {
        let id = vocab.len();
        vocab.insert(word.to_string(), id.into());
    }
    while vocab.len() < VOCAB {
        let id = vocab.len();
        vocab.insert(format!("w{id}"), id.into());
    }
    let tokenizer = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": added,
        "normalizer": null, "pre_tokenizer": {"type": "Whitespace"}, "post_processor": null,
        "decoder": null, "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "[UNK]"}
    });
    std::fs::write(dir.join("tokenizer.json"), tokenizer.to_string()).unwrap();
}

fn model_dir(root: &Path) -> PathBuf {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../golden/gpt-oss-long-window/model");
    let dest = root.join("model");
    std::fs::create_dir_all(&dest).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dest.join(entry.file_name())).unwrap();
    }
    write_tokenizer(&dest);
    dest
}

#[test]
fn generate_prints_the_final_channel_and_with_verbose_the_reasoning() {
    let root = tempfile::tempdir().unwrap();
    let dir = model_dir(root.path());
    let prompt = "what is the weather";

    // What the output must be: the same prompt, greedy tokens, parsed.
    let loaded = load_model_dir(&dir, &LoadOptions::default()).unwrap();
    let tokenizer = Tokenizer::from_dir(&dir).unwrap();
    let ids = tokenizer
        .encode(&user_prompt(prompt, ReasoningEffort::default()), false)
        .unwrap();
    assert!(
        ids.contains(&1),
        "the prompt starts messages with <|start|>"
    );
    let mut out =
        forge_core::generation::generate::greedy(loaded.model.as_ref(), &ids, 12, 512).unwrap();
    // `forge generate` stops at the config's end-of-sequence id (2).
    if let Some(end) = out.iter().position(|&t| t == 2) {
        out.truncate(end);
    }
    let mut parser = HarmonyParser::new();
    parser.push(&tokenizer.decode(&out, false).unwrap());
    let expected = parser.finish();

    let run = |verbose: bool| {
        let mut args = vec![
            "generate",
            "--model",
            dir.to_str().unwrap(),
            "--prompt",
            prompt,
        ];
        args.extend(["--max-tokens", "12", "--dtype", "f32"]);
        if verbose {
            args.push("--verbose");
        }
        let out = Command::new(env!("CARGO_BIN_EXE_forge"))
            .args(&args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (stdout, stderr) = run(false);
    assert_eq!(stdout, format!("{}\n", expected.final_text()));
    assert!(!stderr.contains("[reasoning]"), "{stderr}");
    let (stdout, stderr) = run(true);
    assert_eq!(stdout, format!("{}\n", expected.final_text()));
    assert!(
        stderr.contains(&format!("[reasoning]\n{}\n", expected.reasoning())),
        "{stderr}"
    );
}

#[test]
fn chat_runs_turns_through_harmony() {
    use std::io::Write;
    use std::process::Stdio;

    let root = tempfile::tempdir().unwrap();
    let dir = model_dir(root.path());
    let mut child = Command::new(env!("CARGO_BIN_EXE_forge"))
        .args([
            "chat",
            "--model",
            dir.to_str().unwrap(),
            "--max-tokens",
            "4",
        ])
        .args(["--dtype", "f32", "--system", "be brief"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"hello\nagain\n/exit\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("chat (Harmony)"), "{stderr}");
    // Two answered turns, then the prompt that read /exit.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.matches(">> ").count(), 3, "{stdout}");
}
