//! Granite on forge-core's decoder base: Llama's pre-norm layer with
//! Granite's four multipliers (embeddings, attention scale, residual
//! branches, logits).

use forge_core::decoder::{Attention, AttentionDims, CausalLm, DecoderSpec, PreNormLayer};
use forge_core::model::{Model, PlanItem};
use forge_core::nn::{Activation, GatedMlp};
use forge_core::rope::Rope;
use forge_core::{ModelConfig, Result, Weights};

use crate::config::GraniteArgs;

/// A Granite: the decoder base over Granite layers.
pub type Granite = CausalLm<GraniteLayer>;

/// A Granite decoder layer is the base's pre-norm layer with a residual
/// multiplier: `h = x + r·attn(norm(x))`, `out = h + r·mlp(norm(h))`.
pub type GraniteLayer = PreNormLayer;

/// Builds a Granite model from its config and weights.
pub fn build(config: &ModelConfig, weights: &mut Weights) -> Result<Box<dyn Model>> {
    Ok(Box::new(load(config, weights)?))
}

/// Loads a Granite from its config and the weights under HF's names.
pub fn load(config: &ModelConfig, weights: &mut Weights) -> Result<Granite> {
    let args = GraniteArgs::parse(config)?;
    let rope = args.rope()?;
    let act = args.activation(config)?;
    let layers = (0..args.num_hidden_layers)
        .map(|i| load_layer(weights, &args, i, rope.clone(), act))
        .collect();
    let spec = DecoderSpec {
        name: "Granite",
        vocab_size: args.vocab_size,
        hidden_size: args.hidden_size,
        rms_norm_eps: args.rms_norm_eps,
        tie_word_embeddings: args.tie_word_embeddings,
        max_context: Some(args.max_position_embeddings),
    };
    let model = CausalLm::load(weights, spec, layers)?;
    let plan = plan(&args, model.layers());
    // HF divides the logits by logits_scaling; multiplying by the
    // reciprocal is the same up to an ulp (exact for powers of two).
    Ok(model
        .with_embed_scale(args.embedding_multiplier as f32)
        .with_logit_scale((1.0 / args.logits_scaling) as f32)
        .with_plan(plan))
}

fn load_layer(
    w: &mut Weights,
    args: &GraniteArgs,
    i: usize,
    rope: Rope,
    act: Activation,
) -> GraniteLayer {
    let p = format!("model.layers.{i}");
    let hidden = args.hidden_size;
    let dims = AttentionDims {
        hidden,
        heads: args.num_attention_heads,
        kv_heads: args.kv_heads(),
        head_dim: args.head_dim(),
    };
    let bias = args.attention_bias;
    let attention = Attention::load(w, &format!("{p}.self_attn"), dims, (bias, bias), rope, None)
        .with_scale(args.attention_multiplier as f32);
    let mlp = GatedMlp::load(
        w,
        &format!("{p}.mlp"),
        hidden,
        args.intermediate_size,
        args.mlp_bias,
        act,
    );
    PreNormLayer::load(w, &p, (hidden, args.rms_norm_eps), attention, mlp)
        .with_residual_scale(args.residual_multiplier as f32)
}

/// Granite's own plan lines.
fn plan(a: &GraniteArgs, layers: &[GraniteLayer]) -> Vec<PlanItem> {
    let (attention, rope) = layers
        .first()
        .map(|l| (l.self_attn.describe(), l.self_attn.describe_rope()))
        .unwrap_or_default();
    vec![
        PlanItem::new("attention", attention),
        PlanItem::new(
            "mlp",
            format!(
                "gated ({}), intermediate {}, bias {}",
                a.hidden_act, a.intermediate_size, a.mlp_bias
            ),
        ),
        PlanItem::new("norm", format!("RMSNorm, eps {}", a.rms_norm_eps)),
        PlanItem::new(
            "multipliers",
            format!(
                "embeddings × {}, attention scale {} (not head_dim^-0.5), residual branches × {}, \
                 logits ÷ {}",
                a.embedding_multiplier,
                a.attention_multiplier,
                a.residual_multiplier,
                a.logits_scaling
            ),
        ),
        PlanItem::new("rope", a.rope_parameters.summary()),
        PlanItem::new("rope kernel", rope),
    ]
}
