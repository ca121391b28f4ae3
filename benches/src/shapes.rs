//! The model shapes the benches run: a tiny one per architecture (seconds,
//! for a quick check) and realistic ones (the sizes people run).
//!
//! Weights are random (see [`crate::checkpoint`]), made at bench time with a
//! fixed seed and stored in bf16 as released checkpoints are. Architectures
//! join as their plugins land: add a shape whose config names the plugin's
//! model_type and list its checkpoint tensors in [`ModelShape::tensors`]
//!
//! The gpt-oss and deepseek "small" shapes keep their models' structure
//! (gpt-oss: alternating sliding / full attention with sinks, biased
//! projections, YaRN, clamped SwiGLU experts; DeepSeek-V3: (MLA with q and
//! kv LoRA ranks, a dense first layer, grouped routing over many small
//! experts plus a shared one) at a width that fits the benches' 15-minute
//! budget on a 2-core CPU: its experts run through gather_mm, which MLX's CPU
//! backend does at about 7 GFLOP/s here.

use serde_json::{json, Value};

/// One benchmarked model: its config.json and the tensors of its checkpoint.
#[derive(Debug, Clone)]
pub struct ModelShape {
    /// Short name used in bench ids ("llama-135m").
    pub name: &'static str,
    /// What the shape stands for.
    pub about: &'static str,
    /// True for the realistic sizes (skipped by quick runs).
    pub realistic: bool,
    /// Run only when asked for by name (too slow for the default run's
    /// 15-minute budget on a 2-core CPU).
    pub on_demand: bool,
    /// The config.json.
    pub config: Value,
}

impl ModelShape {
    /// The checkpoint's tensors: name and shape, in the HF layout the
    /// plugin loads.
    pub fn tensors(&self) -> Vec<(String, Vec<i32>)> {
        match self.config["model_type"].as_str() {
            Some("deepseek_v3") => deepseek_v3_tensors(&self.config),
            Some("gpt_oss") => gpt_oss_tensors(&self.config),
            Some("qwen3") => {
                let head_dim = config_int(&self.config, "head_dim");
                with_layer_tensors(
                    llama_tensors(&self.config),
                    &self.config,
                    &[
                        ("self_attn.q_norm.weight", head_dim),
                        ("self_attn.k_norm.weight", head_dim),
                    ],
                )
            }
            Some("qwen3_moe") => qwen3_moe_tensors(&self.config),
            Some("gemma2") => {
                let hidden = config_int(&self.config, "hidden_size");
                with_layer_tensors(
                    llama_tensors(&self.config),
                    &self.config,
                    &[
                        ("pre_feedforward_layernorm.weight", hidden),
                        ("post_feedforward_layernorm.weight", hidden),
                    ],
                )
            }
            _ => llama_tensors(&self.config),
        }
    }

    /// Vocabulary size, for making prompts.
    pub fn vocab_size(&self) -> usize {
        self.config["vocab_size"].as_u64().unwrap_or(0) as usize
    }
}

/// Every shape, tiny ones first.
pub fn all() -> Vec<ModelShape> {
    vec![
        ModelShape {
            name: "llama-tiny",
            about: "llama, 2 layers of width 64 (a quick check of the harness)",
            realistic: false,
            on_demand: false,
            config: llama_config(256, 64, 128, 2, 4, 2, false),
        },
        ModelShape {
            name: "llama-135m",
            about: "SmolLM2-135M's shape: 30 layers, hidden 576, 9 heads / 3 kv heads, vocab 49152, tied",
            realistic: true,
            on_demand: false,
            config: llama_config(49152, 576, 1536, 30, 9, 3, false),
        },
        ModelShape {
            name: "llama-1b",
            about: "Llama-3.2-1B's shape: 16 layers, hidden 2048, 32 heads / 8 kv heads, vocab 128256, llama3 rope, tied",
            realistic: true,
            on_demand: true,
            config: llama_config(128256, 2048, 8192, 16, 32, 8, true),
        },
        ModelShape {
            name: "qwen3-tiny",
            about: "qwen3, 2 layers of width 64, head_dim 32 (a quick check of the harness)",
            realistic: false,
            on_demand: false,
            config: qwen3_config(256, 64, 128, 2, (4, 2, 32)),
        },
        ModelShape {
            name: "qwen3-small",
            about: "Qwen3-0.6B's layers (hidden 1024, 16 heads / 8 kv heads of 128 with q/k norms, \
                    intermediate 3072, tied) at 8 layers and vocab 32000",
            realistic: true,
            on_demand: false,
            config: qwen3_config(32000, 1024, 3072, 8, (16, 8, 128)),
        },
        ModelShape {
            name: "qwen3-moe-tiny",
            about: "qwen3_moe, 2 layers of width 64, 8 experts of 32, 2 per token (a quick check)",
            realistic: false,
            on_demand: false,
            config: qwen3_moe_config(256, 64, 2, (4, 2, 16), (8, 32, 2)),
        },
        ModelShape {
            name: "qwen3-moe-small",
            about: "Qwen3-30B-A3B's structure at width 768: 6 layers, 12 heads / 4 kv heads of 64 \
                    with q/k norms, 32 experts of 256, 8 per token, renormalised",
            realistic: true,
            on_demand: false,
            config: qwen3_moe_config(32000, 768, 6, (12, 4, 64), (32, 256, 8)),
        },
        ModelShape {
            name: "gemma2-tiny",
            about: "gemma2, 2 layers of width 64 (sliding, full), soft-caps (a quick check)",
            realistic: false,
            on_demand: false,
            config: gemma2_config(256, 64, 128, 2, (4, 2, 16), 8),
        },
        ModelShape {
            name: "gemma2-small",
            about: "Gemma-2-2B's layers at width 1152: 6 layers alternating sliding (512) and full \
                    attention, 4 heads / 2 kv heads of 256, GeGLU 4608, soft-caps 50 / 30, vocab 32000",
            realistic: true,
            on_demand: false,
            config: gemma2_config(32000, 1152, 4608, 6, (4, 2, 256), 512),
        },
        ModelShape {
            name: "gpt-oss-tiny",
            about: "gpt_oss, 4 layers of width 64 (a quick check of the harness)",
            realistic: false,
            on_demand: false,
            config: gpt_oss_config(GptOssSize {
                vocab: 256,
                hidden: 64,
                layers: 4,
                heads: 4,
                kv_heads: 2,
                experts: 4,
                per_token: 2,
                window: 8,
            }),
        },
        ModelShape {
            name: "gpt-oss-small",
            about: "gpt-oss-20b's structure at width 768: 6 layers alternating sliding (128) and \
                    full attention with sinks, 12 heads / 4 kv heads of 64, 16 experts of 768, 4 per token",
            realistic: true,
            on_demand: false,
            config: gpt_oss_config(GptOssSize {
                vocab: 32000,
                hidden: 768,
                layers: 6,
                heads: 12,
                kv_heads: 4,
                experts: 16,
                per_token: 4,
                window: 128,
            }),
        },
        ModelShape {
            name: "deepseek-v3-tiny",
            about: "deepseek_v3, 3 layers of width 64 (a quick check of the harness)",
            realistic: false,
            on_demand: false,
            config: deepseek_v3_config(DeepseekSize {
                vocab: 256,
                hidden: 64,
                dense_intermediate: 128,
                layers: 3,
                heads: 4,
                q_lora: 32,
                kv_lora: 32,
                experts: 8,
                expert_intermediate: 32,
                per_token: 2,
                groups: 2,
            }),
        },
        ModelShape {
            name: "deepseek-v3-small",
            about: "DeepSeek-V3's structure at width 1024: 6 layers (1 dense), 16 MLA heads, \
                    q/kv LoRA 384/256, 32 routed experts of 352 in 4 groups, 4 per token, 1 shared",
            realistic: true,
            on_demand: false,
            config: deepseek_v3_config(DeepseekSize {
                vocab: 32000,
                hidden: 1024,
                dense_intermediate: 2816,
                layers: 6,
                heads: 16,
                q_lora: 384,
                kv_lora: 256,
                experts: 32,
                expert_intermediate: 352,
                per_token: 4,
                groups: 4,
            }),
        },
    ]
}

/// The sizes a gpt-oss shape varies.
struct GptOssSize {
    vocab: usize,
    hidden: usize,
    layers: usize,
    heads: usize,
    kv_heads: usize,
    experts: usize,
    per_token: usize,
    window: usize,
}

fn gpt_oss_config(s: GptOssSize) -> Value {
    let layer_types: Vec<&str> = (0..s.layers)
        .map(|i| {
            if i % 2 == 0 {
                "sliding_attention"
            } else {
                "full_attention"
            }
        })
        .collect();
    json!({
        "model_type": "gpt_oss",
        "architectures": ["GptOssForCausalLM"],
        "vocab_size": s.vocab,
        "hidden_size": s.hidden,
        "intermediate_size": s.hidden,
        "num_hidden_layers": s.layers,
        "num_attention_heads": s.heads,
        "num_key_value_heads": s.kv_heads,
        "head_dim": 64,
        "num_local_experts": s.experts,
        "num_experts_per_tok": s.per_token,
        "layer_types": layer_types,
        "sliding_window": s.window,
        "attention_bias": true,
        "rms_norm_eps": 1e-5,
        "max_position_embeddings": 131072,
        "rope_scaling": {
            "rope_type": "yarn", "factor": 32.0, "beta_fast": 32.0, "beta_slow": 1.0,
            "truncate": false, "original_max_position_embeddings": 4096,
        },
        "rope_theta": 150000.0,
        "swiglu_limit": 7.0,
        "hidden_act": "silu",
        "tie_word_embeddings": false,
        "router_aux_loss_coef": 0.9,
        "output_router_logits": false,
        "torch_dtype": "bfloat16",
        "bos_token_id": 1,
        "eos_token_id": 2,
        "pad_token_id": 0,
    })
}

fn gpt_oss_tensors(config: &Value) -> Vec<(String, Vec<i32>)> {
    let get = |k: &str| config_int(config, k);
    let [vocab, hidden, inter, heads, kv_heads, head_dim] = [
        "vocab_size",
        "hidden_size",
        "intermediate_size",
        "num_attention_heads",
        "num_key_value_heads",
        "head_dim",
    ]
    .map(get);
    let experts = get("num_local_experts");
    let mut t = vec![("model.embed_tokens.weight".to_string(), vec![vocab, hidden])];
    for i in 0..get("num_hidden_layers") {
        let p = format!("model.layers.{i}");
        let mut add = |name: &str, shape: Vec<i32>| t.push((format!("{p}.{name}"), shape));
        add("input_layernorm.weight", vec![hidden]);
        add("post_attention_layernorm.weight", vec![hidden]);
        for (proj, out) in [
            ("q_proj", heads * head_dim),
            ("k_proj", kv_heads * head_dim),
            ("v_proj", kv_heads * head_dim),
        ] {
            add(&format!("self_attn.{proj}.weight"), vec![out, hidden]);
            add(&format!("self_attn.{proj}.bias"), vec![out]);
        }
        add("self_attn.o_proj.weight", vec![hidden, heads * head_dim]);
        add("self_attn.o_proj.bias", vec![hidden]);
        add("self_attn.sinks", vec![heads]);
        add("mlp.router.weight", vec![experts, hidden]);
        add("mlp.router.bias", vec![experts]);
        add("mlp.experts.gate_up_proj", vec![experts, hidden, 2 * inter]);
        add("mlp.experts.gate_up_proj_bias", vec![experts, 2 * inter]);
        add("mlp.experts.down_proj", vec![experts, inter, hidden]);
        add("mlp.experts.down_proj_bias", vec![experts, hidden]);
    }
    t.push(("model.norm.weight".to_string(), vec![hidden]));
    t.push(("lm_head.weight".to_string(), vec![vocab, hidden]));
    t
}

/// The sizes a DeepSeek-V3 shape varies.
struct DeepseekSize {
    vocab: usize,
    hidden: usize,
    dense_intermediate: usize,
    layers: usize,
    heads: usize,
    q_lora: usize,
    kv_lora: usize,
    experts: usize,
    expert_intermediate: usize,
    per_token: usize,
    groups: usize,
}

fn deepseek_v3_config(s: DeepseekSize) -> Value {
    json!({
        "model_type": "deepseek_v3",
        "architectures": ["DeepseekV3ForCausalLM"],
        "vocab_size": s.vocab,
        "hidden_size": s.hidden,
        "intermediate_size": s.dense_intermediate,
        "moe_intermediate_size": s.expert_intermediate,
        "num_hidden_layers": s.layers,
        "num_attention_heads": s.heads,
        "num_key_value_heads": s.heads,
        "q_lora_rank": s.q_lora,
        "kv_lora_rank": s.kv_lora,
        "qk_nope_head_dim": 64,
        "qk_rope_head_dim": 32,
        "v_head_dim": 64,
        "n_routed_experts": s.experts,
        "n_shared_experts": 1,
        "num_experts_per_tok": s.per_token,
        "n_group": s.groups,
        "topk_group": s.groups / 2,
        "first_k_dense_replace": 1,
        "norm_topk_prob": true,
        "routed_scaling_factor": 2.5,
        "rms_norm_eps": 1e-6,
        "max_position_embeddings": 4096,
        "rope_theta": 10000.0,
        "rope_interleave": true,
        "attention_bias": false,
        "tie_word_embeddings": false,
        "hidden_act": "silu",
        "num_nextn_predict_layers": 0,
        "torch_dtype": "bfloat16",
        "bos_token_id": 1,
        "eos_token_id": 2,
    })
}

/// The shape called `name`.
pub fn by_name(name: &str) -> Option<ModelShape> {
    all().into_iter().find(|s| s.name == name)
}

fn llama_config(
    vocab: usize,
    hidden: usize,
    intermediate: usize,
    layers: usize,
    heads: usize,
    kv_heads: usize,
    llama3_rope: bool,
) -> Value {
    let mut config = json!({
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        "vocab_size": vocab,
        "hidden_size": hidden,
        "intermediate_size": intermediate,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "head_dim": hidden / heads,
        "rms_norm_eps": 1e-5,
        "max_position_embeddings": 8192,
        "tie_word_embeddings": true,
        "hidden_act": "silu",
        "attention_bias": false,
        "mlp_bias": false,
        "rope_theta": 100000.0,
        "torch_dtype": "bfloat16",
        "bos_token_id": 1,
        "eos_token_id": 2,
    });
    if llama3_rope {
        config["rope_theta"] = json!(500000.0);
        config["max_position_embeddings"] = json!(131072);
        config["rope_scaling"] = json!({
            "rope_type": "llama3",
            "factor": 32.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192,
        });
    }
    config
}

fn qwen3_config(
    vocab: usize,
    hidden: usize,
    intermediate: usize,
    layers: usize,
    (heads, kv_heads, head_dim): (usize, usize, usize),
) -> Value {
    json!({
        "model_type": "qwen3",
        "architectures": ["Qwen3ForCausalLM"],
        "vocab_size": vocab,
        "hidden_size": hidden,
        "intermediate_size": intermediate,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "head_dim": head_dim,
        "rms_norm_eps": 1e-6,
        "max_position_embeddings": 40960,
        "tie_word_embeddings": true,
        "hidden_act": "silu",
        "attention_bias": false,
        "rope_theta": 1000000.0,
        "use_sliding_window": false,
        "sliding_window": null,
        "max_window_layers": layers,
        "torch_dtype": "bfloat16",
        "bos_token_id": 1,
        "eos_token_id": 2,
    })
}

fn gemma2_config(
    vocab: usize,
    hidden: usize,
    intermediate: usize,
    layers: usize,
    (heads, kv_heads, head_dim): (usize, usize, usize),
    window: usize,
) -> Value {
    let layer_types: Vec<&str> = (0..layers)
        .map(|i| {
            if i % 2 == 0 {
                "sliding_attention"
            } else {
                "full_attention"
            }
        })
        .collect();
    json!({
        "model_type": "gemma2",
        "architectures": ["Gemma2ForCausalLM"],
        "vocab_size": vocab,
        "hidden_size": hidden,
        "intermediate_size": intermediate,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "head_dim": head_dim,
        "query_pre_attn_scalar": head_dim,
        "hidden_activation": "gelu_pytorch_tanh",
        "attn_logit_softcapping": 50.0,
        "final_logit_softcapping": 30.0,
        "layer_types": layer_types,
        "sliding_window": window,
        "rms_norm_eps": 1e-6,
        "max_position_embeddings": 8192,
        "tie_word_embeddings": true,
        "attention_bias": false,
        "rope_theta": 10000.0,
        "torch_dtype": "bfloat16",
        "bos_token_id": 2,
        "eos_token_id": 1,
    })
}

fn qwen3_moe_config(
    vocab: usize,
    hidden: usize,
    layers: usize,
    (heads, kv_heads, head_dim): (usize, usize, usize),
    (experts, expert_intermediate, per_token): (usize, usize, usize),
) -> Value {
    let mut config = qwen3_config(
        vocab,
        hidden,
        3 * hidden,
        layers,
        (heads, kv_heads, head_dim),
    );
    config["model_type"] = json!("qwen3_moe");
    config["architectures"] = json!(["Qwen3MoeForCausalLM"]);
    config["tie_word_embeddings"] = json!(false);
    config["num_experts"] = json!(experts);
    config["moe_intermediate_size"] = json!(expert_intermediate);
    config["num_experts_per_tok"] = json!(per_token);
    config["norm_topk_prob"] = json!(true);
    config["decoder_sparse_step"] = json!(1);
    config["mlp_only_layers"] = json!([]);
    config
}

/// Qwen3-MoE's tensors: Qwen3's attention and norms, and in each layer a
/// router and per-expert projections (the hub layout; the plugin stacks them).
fn qwen3_moe_tensors(config: &Value) -> Vec<(String, Vec<i32>)> {
    let get = |k: &str| config_int(config, k);
    let (hidden, head_dim) = (get("hidden_size"), get("head_dim"));
    let (experts, inter) = (get("num_experts"), get("moe_intermediate_size"));
    let mut tensors: Vec<_> = llama_tensors(config)
        .into_iter()
        .filter(|(name, _)| !name.contains(".mlp."))
        .collect();
    for i in 0..get("num_hidden_layers") {
        let p = format!("model.layers.{i}");
        tensors.push((format!("{p}.self_attn.q_norm.weight"), vec![head_dim]));
        tensors.push((format!("{p}.self_attn.k_norm.weight"), vec![head_dim]));
        tensors.push((format!("{p}.mlp.gate.weight"), vec![experts, hidden]));
        for e in 0..experts {
            let x = format!("{p}.mlp.experts.{e}");
            tensors.push((format!("{x}.gate_proj.weight"), vec![inter, hidden]));
            tensors.push((format!("{x}.up_proj.weight"), vec![inter, hidden]));
            tensors.push((format!("{x}.down_proj.weight"), vec![hidden, inter]));
        }
    }
    tensors
}

/// `tensors` plus, in every layer, the 1-D tensors `extra` (name, width).
fn with_layer_tensors(
    mut tensors: Vec<(String, Vec<i32>)>,
    config: &Value,
    extra: &[(&str, i32)],
) -> Vec<(String, Vec<i32>)> {
    for i in 0..config_int(config, "num_hidden_layers") {
        for (name, width) in extra {
            tensors.push((format!("model.layers.{i}.{name}"), vec![*width]));
        }
    }
    tensors
}

fn llama_tensors(config: &Value) -> Vec<(String, Vec<i32>)> {
    let get = |k: &str| config_int(config, k);
    let [vocab, hidden, inter, heads, kv_heads, head_dim] = [
        "vocab_size",
        "hidden_size",
        "intermediate_size",
        "num_attention_heads",
        "num_key_value_heads",
        "head_dim",
    ]
    .map(get);
    let mut t = vec![("model.embed_tokens.weight".to_string(), vec![vocab, hidden])];
    for i in 0..get("num_hidden_layers") {
        let p = format!("model.layers.{i}");
        let mut add = |name: &str, shape: Vec<i32>| t.push((format!("{p}.{name}"), shape));
        add("input_layernorm.weight", vec![hidden]);
        add("self_attn.q_proj.weight", vec![heads * head_dim, hidden]);
        add("self_attn.k_proj.weight", vec![kv_heads * head_dim, hidden]);
        add("self_attn.v_proj.weight", vec![kv_heads * head_dim, hidden]);
        add("self_attn.o_proj.weight", vec![hidden, heads * head_dim]);
        add("post_attention_layernorm.weight", vec![hidden]);
        add("mlp.gate_proj.weight", vec![inter, hidden]);
        add("mlp.up_proj.weight", vec![inter, hidden]);
        add("mlp.down_proj.weight", vec![hidden, inter]);
    }
    t.push(("model.norm.weight".to_string(), vec![hidden]));
    if config["tie_word_embeddings"] != json!(true) {
        t.push(("lm_head.weight".to_string(), vec![vocab, hidden]));
    }
    t
}

/// An integer config value (0 when absent: shapes are written here).
fn config_int(config: &Value, key: &str) -> i32 {
    config[key].as_i64().unwrap_or(0) as i32
}

fn deepseek_v3_tensors(config: &Value) -> Vec<(String, Vec<i32>)> {
    let get = |k: &str| config_int(config, k);
    let (vocab, hidden, heads) = (
        get("vocab_size"),
        get("hidden_size"),
        get("num_attention_heads"),
    );
    let (q_lora, kv_lora) = (get("q_lora_rank"), get("kv_lora_rank"));
    let (nope, rope, v) = (
        get("qk_nope_head_dim"),
        get("qk_rope_head_dim"),
        get("v_head_dim"),
    );
    let (experts, expert_inter) = (get("n_routed_experts"), get("moe_intermediate_size"));
    let shared_inter = expert_inter * get("n_shared_experts");
    let mut t = vec![("model.embed_tokens.weight".to_string(), vec![vocab, hidden])];
    for i in 0..get("num_hidden_layers") {
        let p = format!("model.layers.{i}");
        let mut add = |name: &str, shape: Vec<i32>| t.push((format!("{p}.{name}"), shape));
        add("input_layernorm.weight", vec![hidden]);
        add("post_attention_layernorm.weight", vec![hidden]);
        add("self_attn.q_a_proj.weight", vec![q_lora, hidden]);
        add("self_attn.q_a_layernorm.weight", vec![q_lora]);
        add(
            "self_attn.q_b_proj.weight",
            vec![heads * (nope + rope), q_lora],
        );
        add(
            "self_attn.kv_a_proj_with_mqa.weight",
            vec![kv_lora + rope, hidden],
        );
        add("self_attn.kv_a_layernorm.weight", vec![kv_lora]);
        add(
            "self_attn.kv_b_proj.weight",
            vec![heads * (nope + v), kv_lora],
        );
        add("self_attn.o_proj.weight", vec![hidden, heads * v]);
        let mut mlp = |prefix: &str, inter: i32| {
            add(&format!("{prefix}.gate_proj.weight"), vec![inter, hidden]);
            add(&format!("{prefix}.up_proj.weight"), vec![inter, hidden]);
            add(&format!("{prefix}.down_proj.weight"), vec![hidden, inter]);
        };
        if i < get("first_k_dense_replace") {
            mlp("mlp", get("intermediate_size"));
        } else {
            for e in 0..experts {
                mlp(&format!("mlp.experts.{e}"), expert_inter);
            }
            mlp("mlp.shared_experts", shared_inter);
            add("mlp.gate.weight", vec![experts, hidden]);
            add("mlp.gate.e_score_correction_bias", vec![experts]);
        }
    }
    t.push(("model.norm.weight".to_string(), vec![hidden]));
    t.push(("lm_head.weight".to_string(), vec![vocab, hidden]));
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_counts_match_the_models_they_stand_for() {
        let count = |name: &str| -> i64 {
            by_name(name)
                .unwrap()
                .tensors()
                .iter()
                .map(|(_, s)| s.iter().map(|&d| d as i64).product::<i64>())
                .sum()
        };
        // SmolLM2-135M: 134.5M parameters; Llama-3.2-1B: 1.236B.
        assert_eq!(count("llama-135m"), 134_515_008);
        assert_eq!(count("llama-1b"), 1_235_814_400);
        // 8 of Qwen3-0.6B's layers (15.73M each) and a 32000-token table.
        assert_eq!(count("qwen3-small"), 8 * 15_730_944 + 32000 * 1024 + 1024);
    }
}
