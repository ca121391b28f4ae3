//! insta snapshots: the report format, and the greedy token streams of the
//! committed cases.

mod common;

use forge_core::generation::generate::greedy;
use forge_core::mlx_rs::Dtype;
use forge_core::weights::load_safetensors_file;
use forge_core::{load_model_dir, LoadOptions};
use forge_parity::report::sci;
use forge_parity::{render_table, CaseReport, Row};

fn row(check: &str, metric: &str, value: f64, tol: f64, note: &str) -> Row {
    Row {
        case: "demo".into(),
        check: check.into(),
        metric: metric.into(),
        value: sci(value),
        tolerance: sci(tol),
        pass: value <= tol,
        note: note.into(),
    }
}

#[test]
fn report_table_format() {
    let report = CaseReport {
        case: "demo".into(),
        arch: "llama".into(),
        rows: vec![
            row("logits", "max_abs", 0.25, 1e-4, ""),
            row("logits", "rel", 3e-2, 1e-5, ""),
            row(
                "hidden_states",
                "max_abs",
                0.5,
                1e-4,
                "first failing: hidden_states.2, output of layer 1",
            ),
            Row {
                case: "demo".into(),
                check: "greedy_tokens".into(),
                metric: "exact".into(),
                value: "3/8".into(),
                tolerance: "all".into(),
                pass: false,
                note: String::new(),
            },
        ],
        first_divergence: Some("hidden_states.2 (output of layer 1)".into()),
    };
    let passing = CaseReport {
        case: "ok-case".into(),
        arch: "llama".into(),
        rows: vec![Row {
            case: "ok-case".into(),
            ..row("logits", "max_abs", 0.0, 1e-4, "")
        }],
        first_divergence: None,
    };
    insta::assert_snapshot!("report_table", render_table(&[report.clone(), passing]));
    insta::assert_json_snapshot!("report_json", report);
}

#[test]
fn greedy_token_streams() {
    let mut streams = String::new();
    for case in [
        "llama-gqa",
        "llama-bias-headdim-tied",
        "llama3-rope-long",
        "llama-yarn",
        "llama-rope-linear",
    ] {
        let dir = common::golden().join(case);
        let loaded = load_model_dir(&dir.join("model"), &LoadOptions::strict()).unwrap();
        let expected = load_safetensors_file(&dir.join("expected.safetensors")).unwrap();
        let ids = expected["input_ids"].as_dtype(Dtype::Int32).unwrap();
        ids.eval().unwrap();
        let prompt: Vec<u32> = ids.as_slice::<i32>().iter().map(|&v| v as u32).collect();
        let tokens = greedy(loaded.model.as_ref(), &prompt, 12, 16).unwrap();
        streams.push_str(&format!("{case}: {tokens:?}\n"));
    }
    insta::assert_snapshot!("greedy_token_streams", streams);
}
