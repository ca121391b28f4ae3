//! The `forge` program end to end: inspect and parity.

use std::path::{Path, PathBuf};
use std::process::Command;

fn golden() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../golden")
}

fn forge(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_forge"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Copies a case's model folder into a temp dir.
fn copy_model(case: &str, to: &Path) -> PathBuf {
    let from = golden().join(case).join("model");
    let dest = to.join("model");
    std::fs::create_dir_all(&dest).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dest.join(entry.file_name())).unwrap();
    }
    dest
}

#[test]
fn inspect_prints_the_plan_of_every_llama_case() {
    for case in [
        "llama-gqa",
        "llama-bias-headdim-tied",
        "llama3-rope-long",
        "llama-batch-leftpad",
        "llama-yarn",
    ] {
        let model = golden().join(case).join("model");
        let (ok, stdout, stderr) = forge(&["inspect", model.to_str().unwrap()]);
        assert!(ok, "{case}: {stderr}");
        for label in [
            "plugin",
            "layers",
            "attention",
            "rope",
            "attention pattern",
            "parameters",
            "weight dtypes",
            "kv cache @4096",
            "config UNKNOWN",
        ] {
            assert!(stdout.contains(label), "{case}: no `{label}` in\n{stdout}");
        }
        assert!(
            stdout.contains("config UNKNOWN       none"),
            "{case}:\n{stdout}"
        );
    }
}

#[test]
fn inspect_snapshot_of_the_llama3_case() {
    let model = golden().join("llama3-rope-long").join("model");
    let (ok, stdout, _) = forge(&["inspect", model.to_str().unwrap(), "--context", "1024"]);
    assert!(ok);
    let stable: String = stdout
        .lines()
        .filter(|l| !l.starts_with("model "))
        .map(|l| format!("{l}\n"))
        .collect();
    insta::assert_snapshot!("inspect_llama3_rope_long", stable);
}

#[test]
fn inspect_shows_a_config_key_forge_does_not_understand() {
    let dir = tempfile::tempdir().unwrap();
    let model = copy_model("llama-gqa", dir.path());
    let config = model.join("config.json");
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text.replacen('{', "{\n  \"attn_logit_softcapping\": 50.0,", 1);
    std::fs::write(&config, text).unwrap();
    let (ok, stdout, stderr) = forge(&["inspect", model.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("config UNKNOWN       attn_logit_softcapping"),
        "{stdout}"
    );
    assert!(
        stderr.contains("warning") && stderr.contains("attn_logit_softcapping"),
        "{stderr}"
    );
}

#[test]
fn parity_passes_on_a_case_and_fails_with_the_layer_on_a_broken_copy() {
    let (ok, stdout, stderr) = forge(&[
        "parity",
        "--model",
        "llama-gqa",
        "--golden-dir",
        golden().to_str().unwrap(),
    ]);
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.contains("1 cases passed"), "{stdout}");

    // Break a copy: a different rope theta in its config.
    let dir = tempfile::tempdir().unwrap();
    let case = dir.path().join("broken");
    std::fs::create_dir_all(&case).unwrap();
    for file in ["manifest.json", "expected.safetensors"] {
        std::fs::copy(golden().join("llama-gqa").join(file), case.join(file)).unwrap();
    }
    let model = copy_model("llama-gqa", &case);
    let config = model.join("config.json");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("\"rope_theta\": 10000.0", "\"rope_theta\": 100.0");
    std::fs::write(&config, text).unwrap();
    let json = dir.path().join("report.json");
    let (ok, stdout, _) = forge(&[
        "parity",
        "--model",
        case.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(!ok, "a broken case must fail:\n{stdout}");
    assert!(
        stdout.contains("first divergent hidden state: hidden_states.1 (output of layer 0)"),
        "{stdout}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    assert_eq!(
        report[0]["first_divergence"],
        "hidden_states.1 (output of layer 0)"
    );
}

#[test]
fn unknown_model_type_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let model = copy_model("llama-gqa", dir.path());
    let config = model.join("config.json");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("\"model_type\": \"llama\"", "\"model_type\": \"mamba9\"");
    std::fs::write(&config, text).unwrap();
    let (ok, _, stderr) = forge(&["inspect", model.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        stderr.contains("unknown model_type `mamba9`") && stderr.contains("llama"),
        "{stderr}"
    );
}

#[test]
fn generate_streams_text_and_prints_stats() {
    let model = golden().join("gen-greedy-processors/model");
    let model = model.to_str().unwrap();
    let greedy_args = [
        "generate",
        "--model",
        model,
        "--prompt",
        "hi",
        "--max-tokens",
        "6",
        "--verbose",
    ];
    let (ok, stdout, stderr) = forge(&greedy_args);
    assert!(ok, "{stderr}");
    for line in [
        "Prompt: ",
        "Generation: 6 tokens",
        "Peak memory: ",
        "Finish reason: length",
    ] {
        assert!(stdout.contains(line), "no `{line}` in\n{stdout}");
    }
    // Greedy decoding is deterministic; the same flags print the same text.
    let (_, again, _) = forge(&greedy_args);
    let text = |s: &str| s.split("==========").nth(1).unwrap_or_default().to_string();
    assert_eq!(text(&stdout), text(&again));
    // Sampling flags are accepted and validated.
    let (ok, _, stderr) = forge(&[
        "generate", "--model", model, "--prompt", "hi", "--top-p", "1.5",
    ]);
    assert!(!ok && stderr.contains("top_p"), "{stderr}");
    let (ok, _, stderr) = forge(&[
        "generate",
        "--model",
        model,
        "--prompt",
        "hi",
        "--chat-template-args",
        "[1]",
    ]);
    assert!(!ok && stderr.contains("expected a JSON object"), "{stderr}");
}

#[test]
fn chat_answers_each_line_until_an_empty_one() {
    use std::io::Write;
    let model = golden().join("gen-greedy-processors/model");
    let mut child = Command::new(env!("CARGO_BIN_EXE_forge"))
        .args([
            "chat",
            "--model",
            model.to_str().unwrap(),
            "--max-tokens",
            "4",
            "--temp",
            "0.8",
            "--seed",
            "3",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"hello\nagain\n\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.matches(">> ").count(), 3, "{stdout}");
}
