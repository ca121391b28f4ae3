//! Multi-head latent attention on the committed golden checkpoints: the
//! absorbed path equals the expanded one, the cache holds only latents and
//! rope keys, and configs the plugin cannot run are refused by name.

use std::path::{Path, PathBuf};

use forge_core::cache::KvCache;
use forge_core::mlx_rs::{ops, Array, Dtype};
use forge_core::model::{ForwardOptions, Model, ModelInput};
use forge_core::weights::{load_safetensors_dir, load_safetensors_file};
use forge_core::{ModelConfig, Weights};
use forge_deepseek_v3::{sanitize, set_attention_path, AttentionPath, DeepseekV3, DeepseekV3Args};

fn case_dir(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../golden")
        .join(case)
}

fn load(case: &str) -> DeepseekV3 {
    let dir = case_dir(case).join("model");
    let config = ModelConfig::from_file(dir.join("config.json"), true).unwrap();
    let tensors = sanitize(&config, load_safetensors_dir(&dir).unwrap()).unwrap();
    let mut w = Weights::new(tensors, case);
    let model = forge_deepseek_v3::load(&config, &mut w).unwrap();
    w.finish().unwrap();
    model
}

/// The case's prompt, `[1, T]` int32 (first row).
fn prompt(case: &str) -> Array {
    let expected = load_safetensors_file(&case_dir(case).join("expected.safetensors")).unwrap();
    let ids = expected["input_ids"].as_dtype(Dtype::Int32).unwrap();
    let t = ids.dim(1);
    ids.split_at_indices(&[1], 0).unwrap()[0]
        .reshape(&[1, t])
        .unwrap()
}

fn logits(model: &DeepseekV3, ids: &Array, cache: Option<&mut [Box<dyn KvCache>]>) -> Array {
    model
        .forward(
            &ModelInput::Tokens(ids.clone()),
            cache,
            &ForwardOptions::default(),
        )
        .unwrap()
        .logits
        .unwrap()
}

fn max_abs_diff(a: &Array, b: &Array) -> f32 {
    assert_eq!(a.shape(), b.shape());
    let d = ops::abs(ops::subtract(a, b).unwrap())
        .unwrap()
        .max(None)
        .unwrap();
    d.item_exact::<f32>()
}

/// Prefills `split` tokens, then decodes the rest one token at a time;
/// returns the logits of every decode step, concatenated along time.
fn decode_steps(model: &DeepseekV3, ids: &Array, split: i32) -> Array {
    let mut cache = model.new_cache();
    let t = ids.dim(1);
    let parts = ids.split_at_indices(&[split], 1).unwrap();
    logits(model, &parts[0], Some(&mut cache));
    let rest: Vec<i32> = (split..t).collect();
    let steps: Vec<Array> = rest
        .iter()
        .map(|&i| {
            let token = ids.split_at_indices(&[i, i + 1], 1).unwrap()[1].clone();
            logits(model, &token, Some(&mut cache))
        })
        .collect();
    ops::concatenate(&steps, 1).unwrap()
}

#[test]
fn absorbed_decode_equals_the_expanded_path() {
    for case in ["deepseek-v3-grouped-yarn", "deepseek-v3-no-qlora"] {
        let mut model = load(case);
        let ids = prompt(case);
        set_attention_path(&mut model, AttentionPath::Expanded);
        let expanded = decode_steps(&model, &ids, 6);
        set_attention_path(&mut model, AttentionPath::Absorbed);
        let absorbed = decode_steps(&model, &ids, 6);
        let diff = max_abs_diff(&expanded, &absorbed);
        eprintln!("{case}: absorbed vs expanded decode logits, max abs {diff:e}");
        assert!(diff < 1e-5, "{case}: absorbed decode differs by {diff}");
        // The default path (absorbed for decode steps) gives the same again.
        set_attention_path(&mut model, AttentionPath::Auto);
        let auto = decode_steps(&model, &ids, 6);
        assert!(max_abs_diff(&expanded, &auto) < 1e-5, "{case}");
    }
}

#[test]
fn absorbed_prefill_with_a_causal_mask_equals_the_expanded_path() {
    let mut model = load("deepseek-v3-grouped-yarn");
    let ids = prompt("deepseek-v3-grouped-yarn");
    set_attention_path(&mut model, AttentionPath::Expanded);
    let expanded = logits(&model, &ids, None);
    set_attention_path(&mut model, AttentionPath::Absorbed);
    let absorbed = logits(&model, &ids, None);
    let diff = max_abs_diff(&expanded, &absorbed);
    eprintln!("absorbed vs expanded prefill logits, max abs {diff:e}");
    assert!(diff < 1e-5, "absorbed prefill differs by {diff}");
}

#[test]
fn the_cache_holds_latents_and_rope_keys_only() {
    let model = load("deepseek-v3-grouped-yarn");
    let dir = case_dir("deepseek-v3-grouped-yarn").join("model");
    let config = ModelConfig::from_file(dir.join("config.json"), true).unwrap();
    let args = DeepseekV3Args::parse(&config).unwrap();
    let ids = prompt("deepseek-v3-grouped-yarn");
    let mut cache = model.new_cache();
    logits(&model, &ids, Some(&mut cache));
    let t = ids.dim(1);
    let mut bytes = 0;
    for layer in &cache {
        let state = layer.state();
        assert_eq!(state[0].shape(), &[1, 1, t, args.kv_lora_rank as i32]);
        assert_eq!(state[1].shape(), &[1, 1, t, args.qk_rope_head_dim as i32]);
        bytes += state.iter().map(|a| a.nbytes()).sum::<usize>();
    }
    assert_eq!(bytes, model.kv_bytes_per_token() * t as usize);
    // Below what per-head keys and values would take (3.6x here, 71x for the real shape).
    assert!(model.kv_bytes_per_token() < args.expanded_cache_bytes_per_token(4));
}

fn released_config(edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>)) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/deepseek-v3-config.json");
    let mut json: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    edit(&mut json);
    serde_json::to_string(&json).unwrap()
}

fn parse(text: &str) -> forge_core::Result<DeepseekV3Args> {
    DeepseekV3Args::parse(&ModelConfig::from_str(text, "config.json", true).unwrap())
}

#[test]
fn the_released_config_parses_strictly() {
    let args = parse(&released_config(|_| {})).unwrap();
    assert_eq!(args.num_hidden_layers, 61);
    assert!(!args.is_moe_layer(2) && args.is_moe_layer(3));
    assert_eq!(args.num_nextn_predict_layers, 1);
    // YaRN factor 40 with mscale_all_dim 1: softmax scale 192^-1/2 · (0.1 ln 40 + 1)².
    let m = 0.1 * 40f64.ln() + 1.0;
    let want = (192f64.powf(-0.5) * m * m) as f32;
    assert!((args.softmax_scale() - want).abs() < 1e-7);
}

/// Kimi-K2-Instruct's config.json (model_type `kimi_k2`, DeepSeek-V3's keys):
/// served by this plugin and parsed strictly, every key accounted for.
#[test]
fn the_kimi_k2_config_is_served_as_deepseek_v3() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/kimi-k2-config.json");
    let text = std::fs::read_to_string(path).unwrap();
    let config = ModelConfig::from_str(&text, "config.json", true).unwrap();
    let arch = forge_core::registry::for_config(&config).unwrap();
    assert_eq!(arch.model_type, "deepseek_v3");
    let args = DeepseekV3Args::parse(&config).unwrap();
    assert_eq!((args.num_hidden_layers, args.n_routed_experts), (61, 384));
    assert!(!args.is_moe_layer(0) && args.is_moe_layer(1));
    assert_eq!(args.num_nextn_predict_layers, 0);
    assert!(config.key_report().unknown.is_empty());
}

#[test]
fn unsupported_routing_and_shapes_are_refused_by_name() {
    let cases: [(&str, serde_json::Value, &str); 5] = [
        ("topk_method", "greedy".into(), "noaux_tc"),
        ("scoring_func", "softmax".into(), "sigmoid"),
        ("num_key_value_heads", 8.into(), "num_attention_heads"),
        ("n_group", 7.into(), "divisor of n_routed_experts (256)"),
        ("num_experts_per_tok", 200.into(), "between 1 and 128"),
    ];
    for (key, value, expected) in cases {
        let text = released_config(|c| {
            c.insert(key.into(), value.clone());
        });
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains(key) && err.contains(expected), "{key}: {err}");
    }
    let text = released_config(|c| {
        c["quantization_config"]["quant_method"] = "awq".into();
    });
    let err = parse(&text).unwrap_err().to_string();
    assert!(err.contains("quant_method") && err.contains("awq"), "{err}");
}
