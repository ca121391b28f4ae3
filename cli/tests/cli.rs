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

/// Runs `forge` with `input` on stdin.
fn forge_with_input(args: &[&str], input: &str) -> (bool, String, String) {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_forge"))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn generate_without_model_runs_the_default_smollm2_and_names_paris() {
    let (ok, stdout, stderr) = forge(&[
        "generate",
        "--prompt",
        "The capital of France is",
        "--max-tokens",
        "8",
        "--temp",
        "0",
        "--verbose",
    ]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("Paris"), "{stdout}");
    assert!(
        stderr.contains("loaded") && stderr.contains("SmolLM2"),
        "{stderr}"
    );
    assert!(stderr.contains("generation: 8 tokens"), "{stderr}");
    // Greedy: the same 8 tokens as HF's greedy_tokens in golden/smollm2-135m-q4_1-plain.
    insta::assert_snapshot!("generate_default_paris", stdout);
}

#[test]
fn chat_keeps_a_multi_turn_conversation() {
    let (ok, stdout, stderr) = forge_with_input(
        &["chat", "--max-tokens", "24", "--system", "Be brief."],
        "What is the capital of France?\n/reset\nName a color.\nAnd another one?\n",
    );
    assert!(ok, "{stderr}");
    let replies: Vec<&str> = stdout
        .split(">> ")
        .skip(1)
        .filter(|r| !r.trim().is_empty())
        .collect();
    assert_eq!(replies.len(), 3, "three replies in\n{stdout}");
    assert!(replies[0].contains("Paris"), "{stdout}");
    insta::assert_snapshot!("chat_default_three_turns", stdout);
}

#[test]
fn generate_with_a_missing_model_says_what_is_missing() {
    let (ok, _, stderr) = forge(&[
        "generate",
        "--model",
        "/no/such/model.gguf",
        "--prompt",
        "x",
    ]);
    assert!(!ok);
    assert!(stderr.contains("/no/such/model.gguf"), "{stderr}");
}
