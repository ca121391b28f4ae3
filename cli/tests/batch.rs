//! `forge generate` with several prompts: one batch, each result printed in
//! prompt order and equal to what the prompt alone prints.

use std::path::Path;
use std::process::Command;

fn forge(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_forge"))
        .args(args)
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

/// The tiny llama of the generation cases, with its byte-level tokenizer.
fn tiny_model() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../golden/gen-greedy-processors/model")
        .to_string_lossy()
        .into_owned()
}

const PROMPTS: [&str; 3] = ["hi", "hello there, model", "x"];

#[test]
fn several_prompts_print_in_order_and_equal_single_runs() {
    let model = tiny_model();
    let mut args = vec!["generate", "--model", &model, "--max-tokens", "8"];
    for p in PROMPTS {
        args.extend(["--prompt", p]);
    }
    args.extend(["--stop", "gy", "--verbose"]);
    let (ok, stdout, stderr) = forge(&args);
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("[forge] batch of 3: prompt: ") && stderr.contains("peak memory: "),
        "{stderr}"
    );
    insta::assert_snapshot!("generate_batch_three_prompts", stdout);
    let bodies: Vec<&str> = stdout
        .lines()
        .filter(|l| !l.starts_with("==> prompt "))
        .collect();
    for (prompt, body) in PROMPTS.iter().zip(&bodies) {
        let (ok, alone, stderr) = forge(&[
            "generate",
            "--model",
            &model,
            "--max-tokens",
            "8",
            "--prompt",
            prompt,
            "--stop",
            "gy",
        ]);
        assert!(ok, "{stderr}");
        assert_eq!(alone.trim_end_matches('\n'), *body, "prompt {prompt:?}");
    }
}

#[test]
fn a_prompts_file_gives_the_same_results_as_repeated_flags() {
    let model = tiny_model();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("prompts.txt");
    std::fs::write(
        &file,
        format!("{}\n\n{}\n{}\n", PROMPTS[0], PROMPTS[1], PROMPTS[2]),
    )
    .unwrap();
    let file = file.to_string_lossy().into_owned();
    let (ok, from_file, stderr) = forge(&[
        "generate",
        "--model",
        &model,
        "--max-tokens",
        "8",
        "--prompts-file",
        &file,
    ]);
    assert!(ok, "{stderr}");
    let mut args = vec!["generate", "--model", &model, "--max-tokens", "8"];
    for p in PROMPTS {
        args.extend(["--prompt", p]);
    }
    let (ok, from_flags, stderr) = forge(&args);
    assert!(ok, "{stderr}");
    assert_eq!(from_file, from_flags);
    let (ok, _, stderr) = forge(&[
        "generate",
        "--model",
        &model,
        "--prompts-file",
        "/no/such/file",
    ]);
    assert!(
        !ok && stderr.contains("--prompts-file: cannot read /no/such/file"),
        "{stderr}"
    );
}
