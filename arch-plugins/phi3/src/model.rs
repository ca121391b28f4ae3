//! Phi-3 on forge-core's decoder base: the base's pre-norm layer with
//! grouped-query attention (LongRoPE on part of each head) and a SwiGLU
//! MLP, loaded after `sanitize` splits the fused projections.

use forge_core::decoder::{Attention, AttentionDims, CausalLm, DecoderSpec, PreNormLayer};
use forge_core::mlx_rs::Array;
use forge_core::model::{Model, PlanItem};
use forge_core::nn::{Activation, GatedMlp};
use forge_core::rope::{Rope, RopeType};
use forge_core::{Error, ModelConfig, Result, TensorMap, Weights};

use crate::config::Phi3Args;

/// A Phi-3: the decoder base over pre-norm layers.
pub type Phi3 = CausalLm<PreNormLayer>;

/// Builds a Phi-3 from its config and (sanitized) weights.
pub fn build(config: &ModelConfig, weights: &mut Weights) -> Result<Box<dyn Model>> {
    Ok(Box::new(load(config, weights)?))
}

/// Loads a Phi-3 from the weights under the split names
/// (`self_attn.{q,k,v}_proj`, `mlp.{gate,up}_proj`).
pub fn load(config: &ModelConfig, weights: &mut Weights) -> Result<Phi3> {
    let args = Phi3Args::parse(config)?;
    let rope = args.rope()?;
    let layers = (0..args.num_hidden_layers)
        .map(|i| load_layer(weights, &args, i, rope.clone()))
        .collect();
    let spec = DecoderSpec {
        name: "Phi-3",
        vocab_size: args.vocab_size,
        hidden_size: args.hidden_size,
        rms_norm_eps: args.rms_norm_eps,
        tie_word_embeddings: args.tie_word_embeddings,
        max_context: Some(args.max_position_embeddings),
    };
    // HF's generate drops the cache when the sequence first passes the
    // original context and recomputes it, so every key gets the long factors.
    let model = CausalLm::load(weights, spec, layers)?
        .with_restart_past(args.original_max_position_embeddings);
    let plan = plan(&args, &rope);
    Ok(model.with_plan(plan))
}

fn load_layer(w: &mut Weights, args: &Phi3Args, i: usize, rope: Rope) -> PreNormLayer {
    let p = format!("model.layers.{i}");
    let hidden = args.hidden_size;
    let dims = AttentionDims {
        hidden,
        heads: args.num_attention_heads,
        kv_heads: args.kv_heads(),
        head_dim: args.head_dim(),
    };
    // HF's Phi-3 slides every layer's window when `sliding_window` is set.
    let window = args.sliding_window;
    let attention = Attention::load(
        w,
        &format!("{p}.self_attn"),
        dims,
        (false, false),
        rope,
        window,
    );
    let mlp = GatedMlp::load(
        w,
        &format!("{p}.mlp"),
        hidden,
        args.intermediate_size,
        false,
        Activation::Silu,
    );
    PreNormLayer::load(w, &p, (hidden, args.rms_norm_eps), attention, mlp)
}

/// Splits the fused projections of every layer into the standard ones:
/// `qkv_proj` rows into q (`heads·head_dim`), k and v (`kv_heads·head_dim`
/// each), and `gate_up_proj` rows into gate (first half) and up (second
/// half), as HF's `Phi3MLP` chunks them. MLX-quantized matrices split the
/// same way: their `scales` and `biases` have one row per output row.
pub fn sanitize(config: &ModelConfig, tensors: TensorMap) -> Result<TensorMap> {
    let heads = config_count(config, "num_attention_heads", None)?;
    let kv_heads = config_count(config, "num_key_value_heads", Some(heads))?;
    let mut out = TensorMap::new();
    for (name, tensor) in tensors {
        let Some((prefix, parts, suffix)) = fused(&name) else {
            out.insert(name, tensor);
            continue;
        };
        let rows = tensor.shape().first().copied().unwrap_or(0);
        let cuts = if parts.len() == 3 {
            let per_head = rows / (heads + 2 * kv_heads) as i32;
            if per_head == 0 || per_head * (heads + 2 * kv_heads) as i32 != rows {
                return Err(bad_rows(&name, rows, "(heads + 2·kv_heads)·head_dim"));
            }
            let q = heads as i32 * per_head;
            vec![q, q + kv_heads as i32 * per_head]
        } else {
            if rows == 0 || rows % 2 != 0 {
                return Err(bad_rows(&name, rows, "2·intermediate_size"));
            }
            vec![rows / 2]
        };
        let pieces: Vec<Array> = tensor.split_at_indices(&cuts, 0)?;
        for (part, piece) in parts.iter().zip(pieces) {
            out.insert(format!("{prefix}.{part}{suffix}"), piece);
        }
    }
    Ok(out)
}

/// `(module prefix, split names, suffix)` when `name` is a fused tensor.
fn fused(name: &str) -> Option<(&str, &'static [&'static str], &'static str)> {
    const QKV: &[&str] = &["q_proj", "k_proj", "v_proj"];
    const GATE_UP: &[&str] = &["gate_proj", "up_proj"];
    [".weight", ".scales", ".biases"]
        .into_iter()
        .find_map(|suffix| {
            let stem = name.strip_suffix(suffix)?;
            if let Some(prefix) = stem.strip_suffix(".qkv_proj") {
                return Some((prefix, QKV, suffix));
            }
            Some((stem.strip_suffix(".gate_up_proj")?, GATE_UP, suffix))
        })
}

fn config_count(config: &ModelConfig, key: &str, default: Option<usize>) -> Result<usize> {
    let value = config.json().get(key).filter(|v| !v.is_null());
    match (value.and_then(|v| v.as_u64()), value, default) {
        (Some(n), _, _) if n > 0 => Ok(n as usize),
        (_, None, Some(d)) => Ok(d),
        _ => Err(Error::ConfigValue {
            path: config.path().to_path_buf(),
            key: key.into(),
            expected: "a positive integer".into(),
            found: value.map_or("no such key".into(), |v| v.to_string()),
        }),
    }
}

fn bad_rows(name: &str, rows: i32, expected: &str) -> Error {
    Error::InvalidInput {
        expected: format!("{name} with {expected} rows"),
        found: format!("{rows} rows"),
    }
}

/// Phi-3's own plan lines.
fn plan(a: &Phi3Args, rope: &Rope) -> Vec<PlanItem> {
    let (heads, kv, d) = (a.num_attention_heads, a.kv_heads(), a.head_dim());
    let scaling = match a.rope_parameters.rope_type {
        RopeType::Longrope => format!(
            "longrope: short factors while max position + 1 ≤ {}, long factors past it \
             (chosen per forward call, as HF does), attention factor {} on the rotated part",
            a.original_max_position_embeddings,
            rope.mscale()
        ),
        _ => "default (no scaling)".into(),
    };
    vec![
        PlanItem::new(
            "attention",
            format!(
                "{heads} heads, {kv} kv heads, head_dim {d}, no bias; \
                 fused qkv_proj split at load into q {} / k {} / v {} rows",
                heads * d,
                kv * d,
                kv * d
            ),
        ),
        PlanItem::new(
            "mlp",
            format!(
                "SwiGLU, intermediate {}, no bias; fused gate_up_proj split at load (gate first)",
                a.intermediate_size
            ),
        ),
        PlanItem::new("norm", format!("RMSNorm, eps {}", a.rms_norm_eps)),
        PlanItem::new(
            "rope",
            format!(
                "{scaling}; partial rotary: {} of {d} dims per head (factor {})",
                a.rotary_dims(),
                a.partial_factor()
            ),
        ),
        PlanItem::new("rope parameters", a.rope_parameters.summary()),
        PlanItem::new("rope kernel", rope.describe()),
    ]
}
