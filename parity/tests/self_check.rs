//! The synthetic-weights self-check (what `cargo xtask add-arch` generates
//! for a new plugin) passes for every decoder family on its golden configs.

mod common;

use forge_parity::self_check;

#[test]
fn every_decoder_family_passes_the_self_check() {
    for (case, layers) in [
        ("llama-gqa", 3),
        ("mistral-sliding-window", 2),
        ("gpt-oss-long-window", 4),
        ("deepseek-v3-grouped-yarn", 3),
    ] {
        let path = common::golden().join(case).join("model/config.json");
        let config = std::fs::read_to_string(&path).unwrap();
        // Longer than the sliding windows, so the rotating caches wrap.
        let report = self_check(&config, 12).unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_eq!(report.layers, layers, "{case}");
        assert!(report.cache_max_abs < 1e-4, "{case}: {report:?}");
    }
}

#[test]
fn a_config_the_plugin_refuses_fails_the_self_check_by_name() {
    let path = common::golden().join("llama-gqa/model/config.json");
    let config = std::fs::read_to_string(path).unwrap().replacen(
        "\"hidden_act\": \"silu\"",
        "\"hidden_act\": \"relu\"",
        1,
    );
    let err = self_check(&config, 8).unwrap_err().to_string();
    assert!(err.contains("hidden_act") && err.contains("relu"), "{err}");
}
