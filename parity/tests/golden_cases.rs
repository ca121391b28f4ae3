//! `cargo test` runs the parity suite over every committed golden case, and
//! checks that the harness fails, naming the right layer, when a bug is
//! planted.

mod common;

use forge_core::model::Fault;
use forge_parity::{render_table, run_case, select_cases, RunOptions};

#[test]
fn every_committed_case_passes() {
    let cases = select_cases(&common::golden(), None).unwrap();
    assert!(
        cases.len() >= 4,
        "expected the llama cases, found {cases:?}"
    );
    let reports: Vec<_> = cases
        .iter()
        .map(|c| run_case(c, &RunOptions::default()))
        .collect();
    let table = render_table(&reports);
    for report in &reports {
        assert!(report.passed(), "case {} failed:\n{table}", report.case);
        if report.arch == "generation" {
            continue; // generation conformance cases have rows of their own
        }
        let vision = report.rows.iter().any(|r| r.check == "last_hidden_state");
        let required: &[&str] = if vision {
            &["pixel_values", "last_hidden_state", "hidden_states"]
        } else {
            &[
                "logits",
                "hidden_states",
                "greedy_tokens",
                "incremental_decode",
                "chunked_prefill",
            ]
        };
        for &check in required {
            assert!(
                report.rows.iter().any(|r| r.check == check),
                "case {} has no {check} row",
                report.case
            );
        }
    }
}

#[test]
fn selection_by_architecture_and_by_name() {
    let golden = common::golden();
    let llama = select_cases(&golden, Some("llama")).unwrap();
    assert!(llama.len() >= 4);
    let one = select_cases(&golden, Some("llama-gqa")).unwrap();
    assert_eq!(one.len(), 1);
    let err = select_cases(&golden, Some("no-such-arch"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no-such-arch") && err.contains("llama-gqa"),
        "{err}"
    );
}

#[test]
fn a_skipped_norm_in_layer_1_is_reported_at_layer_1() {
    let case = common::golden().join("llama-gqa");
    let report = run_case(
        &case,
        &RunOptions {
            fault: Some(Fault::SkipNorm { layer: 1 }),
        },
    );
    assert!(!report.passed());
    let logits = report
        .rows
        .iter()
        .find(|r| r.check == "logits" && r.metric == "max_abs")
        .unwrap();
    assert!(!logits.pass);
    // hidden_states.0 is the embeddings, .1 the output of layer 0, .2 of layer 1.
    assert_eq!(
        report.first_divergence.as_deref(),
        Some("hidden_states.2 (output of layer 1)")
    );
    assert!(render_table(&[report]).contains("first divergent hidden state: hidden_states.2"));
}

#[test]
fn a_wrong_rope_theta_is_reported_at_the_first_layer() {
    let case = common::golden().join("llama3-rope-long");
    let report = run_case(
        &case,
        &RunOptions {
            fault: Some(Fault::RopeTheta(500_000.0)),
        },
    );
    assert!(!report.passed());
    assert_eq!(
        report.first_divergence.as_deref(),
        Some("hidden_states.1 (output of layer 0)")
    );
    let greedy = report
        .rows
        .iter()
        .find(|r| r.check == "greedy_tokens")
        .unwrap();
    assert!(
        !greedy.pass,
        "rope theta off by 50x should change greedy tokens"
    );
}

/// Each decoder family gets the harness's planted faults through the
/// decoder base's shared layer loop, and the report names the layer.
#[test]
fn planted_faults_are_named_for_every_decoder_family() {
    for case in [
        "llama-gqa",
        "gpt-oss-yarn-truncate",
        "gpt-oss-mxfp4",
        "deepseek-v3-grouped-yarn",
        "deepseek-v3-no-qlora",
        "qwen2-bias-sliding",
        "qwen3-qknorm-yarn",
        "olmo2-qknorm-postnorm",
        "granite-multipliers",
        "smollm3-nope-sliding",
        "phi3-longrope-long-prompt",
        "gemma2-softcap-sliding",
        "gemma3-text-qknorm-rope-types",
        "mixtral-top2-sliding",
        "qwen3-moe-sparse-step",
        "qwen2-moe-shared-expert",
    ] {
        let dir = common::golden().join(case);
        for layer in [0, 1] {
            let report = run_case(
                &dir,
                &RunOptions {
                    fault: Some(Fault::SkipNorm { layer }),
                },
            );
            assert!(
                !report.passed(),
                "{case}: a skipped norm in layer {layer} passed"
            );
            // The last layer's output is also "after the final norm".
            let want = format!("hidden_states.{} (output of layer {layer}", layer + 1);
            let found = report.first_divergence.clone().unwrap_or_default();
            assert!(
                found.starts_with(&want),
                "{case}, norm skipped in layer {layer}: {found}"
            );
        }
        let report = run_case(
            &dir,
            &RunOptions {
                fault: Some(Fault::RopeTheta(123.0)),
            },
        );
        assert!(!report.passed(), "{case}: a wrong rope theta passed");
        assert_eq!(
            report.first_divergence.as_deref(),
            Some("hidden_states.1 (output of layer 0)"),
            "{case}, wrong rope theta"
        );
    }
}

#[test]
fn a_case_folder_outside_the_repository_runs_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let case = common::copy_case("llama-bias-headdim-tied", dir.path());
    let selected = select_cases(&common::golden(), Some(case.to_str().unwrap())).unwrap();
    assert_eq!(selected, vec![case.clone()]);
    assert!(run_case(&case, &RunOptions::default()).passed());
}

#[test]
fn a_planted_config_bug_fails_and_an_unknown_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    // A different rope theta in the checkpoint's own config: loads fine, wrong numbers.
    let case = common::copy_case("llama-gqa", dir.path());
    common::edit_json(&case.join("model/config.json"), |c| {
        c.insert("rope_theta".into(), 1000.0.into());
    });
    let report = run_case(&case, &RunOptions::default());
    assert!(!report.passed());
    assert_eq!(
        report.first_divergence.as_deref(),
        Some("hidden_states.1 (output of layer 0)")
    );

    // A key no plugin understands: strict mode (always on in parity) refuses it.
    let dir = tempfile::tempdir().unwrap();
    let case = common::copy_case("llama-gqa", dir.path());
    common::edit_json(&case.join("model/config.json"), |c| {
        c.insert("attn_logit_softcapping".into(), 30.0.into());
    });
    let report = run_case(&case, &RunOptions::default());
    let load = report.rows.iter().find(|r| r.check == "load").unwrap();
    assert!(!load.pass);
    assert!(
        load.note.contains("attn_logit_softcapping"),
        "{}",
        load.note
    );
}

#[test]
fn tolerances_come_from_the_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let case = common::copy_case("llama-gqa", dir.path());
    common::edit_json(&case.join("manifest.json"), |m| {
        m.insert(
            "check_tolerances".into(),
            serde_json::json!({"hidden_states": {"max_abs": 1e-12, "rel": 1e-12}}),
        );
    });
    let report = run_case(&case, &RunOptions::default());
    let hidden = report
        .rows
        .iter()
        .find(|r| r.check == "hidden_states")
        .unwrap();
    assert!(!hidden.pass, "a 1e-12 bound cannot hold in f32");
    assert_eq!(hidden.tolerance, "1.00e-12");
    let logits = report.rows.iter().find(|r| r.check == "logits").unwrap();
    assert!(logits.pass);
}
