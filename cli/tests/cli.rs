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

/// `forge inspect` of a golden case's model, without the lines that depend
/// on the machine (the folder; the run dtype, see inspect_shows_the_run_dtype).
fn stable_plan(case: &str, context: &str) -> String {
    let model = golden().join(case).join("model");
    let (ok, stdout, stderr) = forge(&["inspect", model.to_str().unwrap(), "--context", context]);
    assert!(ok, "{case}: {stderr}");
    stdout
        .lines()
        .filter(|l| !l.starts_with("model ") && !l.starts_with("run dtype"))
        .map(|l| format!("{l}\n"))
        .collect()
}

#[test]
fn inspect_snapshot_of_the_llama3_case() {
    insta::assert_snapshot!(
        "inspect_llama3_rope_long",
        stable_plan("llama3-rope-long", "1024")
    );
}

#[test]
fn inspect_snapshot_of_a_deepseek_v3_case() {
    // The plan names the latent cache (and what an expanded one would take),
    // the dense and MoE layers, the routing and the dropped MTP layer.
    insta::assert_snapshot!(
        "inspect_deepseek_v3_grouped_yarn",
        stable_plan("deepseek-v3-grouped-yarn", "4096")
    );
}

#[test]
fn inspect_shows_the_run_dtype_and_takes_an_override() {
    let model = golden().join("llama-gqa").join("model");
    let model = model.to_str().unwrap();
    let run_dtype = |args: &[&str]| -> String {
        let (ok, stdout, stderr) = forge(args);
        assert!(ok, "{stderr}");
        stdout
            .lines()
            .find(|l| l.starts_with("run dtype"))
            .unwrap_or_else(|| panic!("no run dtype line in\n{stdout}"))
            .to_string()
    };
    let plan = run_dtype(&["inspect", model]);
    if cfg!(target_vendor = "apple") {
        assert!(
            plan.contains("as stored (the stored dtype runs fastest on a GPU)"),
            "{plan}"
        );
    } else {
        assert!(
            plan.contains("float32 (f32: fastest on MLX's CPU backend"),
            "{plan}"
        );
    }
    let bf16 = run_dtype(&["inspect", model, "--dtype", "bf16"]);
    assert!(bf16.contains("bfloat16 (--dtype bf16)"), "{bf16}");
    let (ok, _, stderr) = forge(&["inspect", model, "--dtype", "f8"]);
    assert!(
        !ok && stderr.contains("'f8'")
            && stderr.contains("[possible values: plan, stored, f32, bf16, f16]"),
        "{stderr}"
    );
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

/// Copies a whole case folder into `golden`, optionally renaming the
/// architecture its manifest names.
fn copy_case(case: &str, golden_dir: &Path, arch: Option<&str>) {
    let dest = golden_dir.join(case);
    copy_model(case, &dest);
    // manifest.json, expected.safetensors and any inputs (vision cases' images).
    for entry in std::fs::read_dir(golden().join(case)).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), dest.join(entry.file_name())).unwrap();
        }
    }
    if let Some(arch) = arch {
        let path = dest.join("manifest.json");
        let mut manifest: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        manifest["arch"] = arch.into();
        std::fs::write(&path, manifest.to_string()).unwrap();
    }
}

/// The first committed case (by name) of every architecture.
fn one_case_per_architecture() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(golden())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("manifest.json").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut seen = Vec::new();
    names.retain(|case| {
        let text = std::fs::read_to_string(golden().join(case).join("manifest.json")).unwrap();
        let manifest: serde_json::Value = serde_json::from_str(&text).unwrap();
        let arch = manifest["arch"].as_str().unwrap().to_string();
        let first = !seen.contains(&arch);
        seen.push(arch);
        first
    });
    names
}

#[test]
fn the_gate_passes_when_every_architecture_has_a_passing_case() {
    let dir = tempfile::tempdir().unwrap();
    let cases = one_case_per_architecture();
    for case in &cases {
        copy_case(case, dir.path(), None);
    }
    let golden_dir = dir.path().to_str().unwrap();
    let (ok, _, stderr) = forge(&["parity", "--gate", "--golden-dir", golden_dir]);
    assert!(ok, "{stderr}");
    let summary = format!("[gate] ok: {} cases pass", cases.len());
    assert!(stderr.contains(&summary), "{stderr}");
}

#[test]
fn the_gate_fails_when_an_architecture_has_no_golden_case() {
    // The one case left claims an architecture nobody registered, so the
    // registered llama plugin has no case; the case itself still passes.
    let dir = tempfile::tempdir().unwrap();
    copy_case("llama-gqa", dir.path(), Some("qwen9"));
    let golden_dir = dir.path().to_str().unwrap();
    let (ok, stdout, stderr) = forge(&["parity", "--gate", "--golden-dir", golden_dir]);
    assert!(!ok, "the gate passed:\n{stdout}\n{stderr}");
    assert!(
        stderr.contains("architecture `llama` is registered but has no golden case"),
        "{stderr}"
    );
    assert!(
        stderr.contains("names architecture `qwen9`, which no linked plugin registers"),
        "{stderr}"
    );
    // Without --gate the same folder passes: only the gate checks coverage.
    let (ok, _, stderr) = forge(&["parity", "--golden-dir", golden_dir]);
    assert!(ok, "{stderr}");
}

/// The tiny model of the generation cases, with its byte-level tokenizer.
fn tiny_model() -> String {
    golden()
        .join("gen-greedy-processors/model")
        .to_string_lossy()
        .into_owned()
}

#[test]
fn generate_stops_at_a_stop_string_and_never_prints_it() {
    let (ok, stdout, stderr) = generate_tiny(&[]);
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("generation: 8 tokens") && stderr.contains("finish: length"),
        "{stderr}"
    );
    assert!(stderr.contains("peak memory: "), "{stderr}");
    let text = stdout.trim_end_matches('\n').to_string();
    let chars: Vec<char> = text.chars().collect();
    assert!(chars.len() >= 4, "{text:?}");
    let stop: String = chars[2..4].iter().collect();
    let want = &text[..text.find(&stop).unwrap()];
    let (ok, stopped, stderr) = generate_tiny(&["--stop", &stop]);
    assert!(ok, "{stderr}");
    assert_eq!(
        stopped.trim_end_matches('\n'),
        want,
        "stop {stop:?} in {text:?}"
    );
    assert!(stderr.contains("finish: stop"), "{stderr}");
}

#[test]
fn malformed_sampling_flags_are_refused_by_name() {
    let model = tiny_model();
    let base = ["generate", "--model", &model, "--prompt", "hi"];
    for (flags, message) in [
        (&["--top-p", "1.5"][..], "top_p"),
        (&["--temp=-1"][..], "temperature"),
        (&["--stop", ""][..], "stop_strings"),
        (
            &["--chat-template", "--chat-template-args", "[1]"][..],
            "expected a JSON object",
        ),
    ] {
        let (ok, _, stderr) = forge(&[&base[..], flags].concat());
        assert!(!ok && stderr.contains(message), "{flags:?}: {stderr}");
    }
}

#[test]
fn chat_with_sampling_flags_answers_each_message() {
    let model = tiny_model();
    let (ok, stdout, stderr) = forge_with_input(
        &[
            "chat",
            "--model",
            &model,
            "--max-tokens",
            "4",
            "--temp",
            "0.8",
            "--top-k",
            "5",
            "--seed",
            "3",
        ],
        "hello\nagain\n/exit\n",
    );
    assert!(ok, "{stderr}");
    assert_eq!(stdout.matches(">> ").count(), 3, "{stdout}");
}

#[test]
fn inspect_reads_a_gguf_and_counts_its_logical_parameters() {
    let gguf = forge_core_model_path();
    for dtype in ["stored", "f32"] {
        let (ok, stdout, stderr) = forge(&["inspect", "--dtype", dtype, &gguf]);
        assert!(ok, "{stderr}");
        assert!(stdout.contains("134515008 (134.52M)"), "{dtype}: {stdout}");
        assert!(stdout.contains("Q4_1 x210"), "{dtype}: {stdout}");
        assert!(stdout.contains("30"), "{stdout}");
    }
}

/// The default model's GGUF, as setup fetches it.
fn forge_core_model_path() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let path = std::env::var("FORGE_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join(".forge/models"))
        .join("smollm2-135m-instruct-q4_1/SmolLM2-135M-Instruct.Q4_1.gguf");
    path.to_string_lossy().into_owned()
}

// ---------------------------------------------------------------- beam search

/// The score printed on a hypothesis line `[rank] score S (...): text`.
fn score(line: &str) -> f32 {
    line.split_whitespace().nth(2).unwrap().parse().unwrap()
}

#[test]
fn generate_with_beams_prints_every_returned_hypothesis_best_first() {
    let model = tiny_model();
    let base = ["generate", "--model", &model, "--prompt", "hi"];
    let beams = ["--max-tokens", "6", "--num-beams", "3"];
    let more = ["--num-return-sequences", "3", "--length-penalty", "0.5"];
    let (ok, stdout, stderr) = forge(&[&base[..], &beams, &more].concat());
    assert!(ok, "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert!(
        lines.windows(2).all(|w| score(w[0]) >= score(w[1])),
        "{stdout}"
    );
    insta::assert_snapshot!("generate_num_beams_3", stdout);
}

#[test]
fn malformed_beam_flags_are_refused_by_name() {
    let model = tiny_model();
    let base = ["generate", "--model", &model, "--prompt", "hi"];
    for (flags, message) in [
        (&["--num-beams", "0"][..], "num_beams"),
        (
            &["--num-beams", "2", "--num-return-sequences", "3"][..],
            "num_return_sequences",
        ),
        (
            &["--num-beams", "2", "--temp", "0.5"][..],
            "beam search does not sample",
        ),
        (&["--early-stopping", "sometimes"][..], "early_stopping"),
    ] {
        let (ok, _, stderr) = forge(&[&base[..], flags].concat());
        assert!(!ok && stderr.contains(message), "{flags:?}: {stderr}");
    }
}

/// `forge generate` of 8 tokens after "hi" on the tiny model, verbose, with `extra` flags.
fn generate_tiny(extra: &[&str]) -> (bool, String, String) {
    let model = tiny_model();
    let base = [
        "generate",
        "--model",
        &model,
        "--prompt",
        "hi",
        "--max-tokens",
        "8",
        "--verbose",
    ];
    forge(&[&base[..], extra].concat())
}

#[test]
fn a_draft_model_gives_the_same_text_and_says_how_much_it_proposed() {
    let (ok, plain, stderr) = generate_tiny(&[]);
    assert!(ok, "{stderr}");
    // The model as its own draft: every proposal is accepted.
    let model = tiny_model();
    let (ok, text, stderr) = generate_tiny(&["--draft-model", &model, "--num-draft-tokens", "3"]);
    assert!(ok, "{stderr}");
    assert_eq!(text, plain);
    assert!(
        stderr.contains(
            "draft: 6 of 6 proposals accepted (100%); 6 of 8 tokens from the draft model"
        ),
        "{stderr}"
    );
}

#[test]
fn chat_with_a_draft_model_answers_as_without_one() {
    let model = tiny_model();
    let base = ["chat", "--model", &model, "--max-tokens", "6"];
    let input = "hello\nagain\n/exit\n";
    let (ok, plain, stderr) = forge_with_input(&base, input);
    assert!(ok, "{stderr}");
    let drafted = [&base[..], &["--draft-model", &model]].concat();
    let (ok, text, stderr) = forge_with_input(&drafted, input);
    assert!(ok, "{stderr}");
    assert_eq!(text, plain);
    assert_eq!(text.matches(">> ").count(), 3, "{text}");
}

#[test]
fn malformed_draft_flags_are_refused_by_name() {
    let model = tiny_model();
    let other_vocab = golden().join("gen-stop-strings/model");
    let base = ["generate", "--model", &model, "--prompt", "hi"];
    for (flags, message) in [
        (
            &["--draft-model", &model, "--num-draft-tokens", "0"][..],
            "num_draft_tokens",
        ),
        (
            &["--draft-model", other_vocab.to_str().unwrap()][..],
            "a draft model with the model's vocabulary size 96",
        ),
        (
            &["--draft-model", &model, "--num-beams", "2"][..],
            "cannot be used together",
        ),
    ] {
        let (ok, _, stderr) = forge(&[&base[..], flags].concat());
        assert!(!ok && stderr.contains(message), "{flags:?}: {stderr}");
    }
}

#[test]
fn kv_cache_flags_keep_the_text_inside_the_window_and_refuse_bad_values() {
    let (ok, plain, stderr) = generate_tiny(&[]);
    assert!(ok, "{stderr}");
    // A bounded cache larger than prompt + new tokens never evicts: same text.
    let (ok, bounded, stderr) = generate_tiny(&["--max-kv-size", "64"]);
    assert!(ok, "{stderr}");
    assert_eq!(bounded, plain);
    // The tiny model's head dimension (8) cannot be quantized in MLX groups
    // (quantized runs are in parity/tests/caches.rs): a clear refusal.
    for (flags, message) in [
        (
            &["--kv-bits", "8", "--kv-group-size", "32"][..],
            "head dimension divisible by kv_group_size 32, found 8",
        ),
        (&["--kv-bits", "7"][..], "kv_bits one of"),
        (
            &["--kv-bits", "8", "--max-kv-size", "16"][..],
            "max_kv_size",
        ),
        (
            &["--kv-bits", "8", "--num-beams", "2"][..],
            "--max-kv-size and --kv-bits",
        ),
    ] {
        let (ok, _, stderr) = generate_tiny(flags);
        assert!(!ok && stderr.contains(message), "{flags:?}: {stderr}");
    }
}

#[test]
fn a_saved_prompt_cache_continues_as_the_whole_prompt_would() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("prompt.safetensors");
    let file = file.to_str().unwrap();
    let model = tiny_model();
    let (ok, _, stderr) = forge(&[
        "cache-prompt",
        "--model",
        &model,
        "--prompt",
        "hi",
        "--prompt-cache-file",
        file,
    ]);
    assert!(ok && stderr.contains("cached 2 prompt tokens"), "{stderr}");
    let whole = ["generate", "--model", &model, "--max-tokens", "8"];
    let (ok, expected, stderr) = forge(&[&whole[..], &["--prompt", "hi there"]].concat());
    assert!(ok, "{stderr}");
    let continued = [
        &whole[..],
        &["--prompt", " there", "--prompt-cache-file", file],
    ]
    .concat();
    let (ok, text, stderr) = forge(&continued);
    assert!(ok, "{stderr}");
    assert_eq!(text, expected);

    // A cache made for another model, a damaged file, and beams are refused.
    let llava = golden().join("llava-clip/model");
    let other = [
        "generate",
        "--model",
        llava.to_str().unwrap(),
        "--prompt",
        "x",
    ];
    let (ok, _, stderr) = forge(&[&other[..], &["--prompt-cache-file", file]].concat());
    assert!(
        !ok && stderr.contains("prompt cache: layer 0 tensor 0"),
        "{stderr}"
    );
    let junk = dir.path().join("junk.safetensors");
    std::fs::write(&junk, b"not a safetensors file").unwrap();
    let junk = junk.to_str().unwrap();
    let (ok, _, stderr) =
        forge(&[&whole[..], &["--prompt", "x", "--prompt-cache-file", junk]].concat());
    assert!(!ok && stderr.contains("junk.safetensors"), "{stderr}");
    let beams = [
        "--prompt",
        "x",
        "--num-beams",
        "2",
        "--prompt-cache-file",
        file,
    ];
    let (ok, _, stderr) = forge(&[&whole[..], &beams[..]].concat());
    assert!(
        !ok && stderr.contains("--prompt-cache-file works with"),
        "{stderr}"
    );
}
