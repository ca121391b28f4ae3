//! The gemma3_text golden cases, loaded as users load models and checked
//! against Hugging Face transformers (logits, every hidden state, greedy
//! tokens, cache consistency).

use std::path::Path;

use forge_parity::{render_table, run_case, select_cases, RunOptions};

/// Links the plugin so it registers.
extern crate forge_gemma3_text;

#[test]
fn golden_cases_pass() {
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../golden");
    let cases = select_cases(&golden, Some("gemma3_text")).unwrap_or_else(|e| {
        panic!("{e}\nbuild the fixture first: cargo xtask golden --case gemma3-text-qknorm-rope-types --case gemma3-text-v4-batch")
    });
    let reports: Vec<_> = cases
        .iter()
        .map(|c| run_case(c, &RunOptions::default()))
        .collect();
    let table = render_table(&reports);
    assert!(reports.iter().all(|r| r.passed()), "{table}");
}
