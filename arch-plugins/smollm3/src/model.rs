//! SmolLM3 on forge-core's decoder base: Llama's pre-norm layer, with
//! rope switched off in the NoPE layers.

use forge_core::decoder::{Attention, AttentionDims, CausalLm, DecoderSpec, PreNormLayer};
use forge_core::model::{Model, PlanItem};
use forge_core::nn::{Activation, GatedMlp};
use forge_core::rope::Rope;
use forge_core::{ModelConfig, Result, Weights};

use crate::config::SmolLm3Args;

/// A SmolLM3: the decoder base over SmolLM3 layers.
pub type SmolLm3 = CausalLm<SmolLm3Layer>;

/// A SmolLM3 decoder layer is the base's pre-norm layer: RMSNorm →
/// attention (with or without rope) → residual, RMSNorm → SwiGLU → residual.
pub type SmolLm3Layer = PreNormLayer;

/// Builds a SmolLM3 model from its config and weights.
pub fn build(config: &ModelConfig, weights: &mut Weights) -> Result<Box<dyn Model>> {
    Ok(Box::new(load(config, weights)?))
}

/// Loads a SmolLM3 from its config and the weights under HF's names.
pub fn load(config: &ModelConfig, weights: &mut Weights) -> Result<SmolLm3> {
    let args = SmolLm3Args::parse(config)?;
    let rope = args.rope()?;
    let act = args.activation(config)?;
    let layers = args
        .windows(config)?
        .into_iter()
        .zip(args.uses_rope())
        .enumerate()
        .map(|(i, (window, uses_rope))| {
            load_layer(weights, &args, i, window, uses_rope, rope.clone(), act)
        })
        .collect();
    let spec = DecoderSpec {
        name: "SmolLM3",
        vocab_size: args.vocab_size,
        hidden_size: args.hidden_size,
        rms_norm_eps: args.rms_norm_eps,
        tie_word_embeddings: args.tie_word_embeddings,
        max_context: Some(args.max_position_embeddings),
    };
    let model = CausalLm::load(weights, spec, layers)?;
    let plan = plan(&args, model.layers());
    Ok(model.with_plan(plan))
}

fn load_layer(
    w: &mut Weights,
    args: &SmolLm3Args,
    i: usize,
    window: Option<usize>,
    uses_rope: bool,
    rope: Rope,
    act: Activation,
) -> SmolLm3Layer {
    let p = format!("model.layers.{i}");
    let hidden = args.hidden_size;
    let dims = AttentionDims {
        hidden,
        heads: args.num_attention_heads,
        kv_heads: args.kv_heads(),
        head_dim: args.head_dim(),
    };
    let bias = args.attention_bias;
    let mut attention = Attention::load(
        w,
        &format!("{p}.self_attn"),
        dims,
        (bias, bias),
        rope,
        window,
    );
    if !uses_rope {
        attention = attention.without_rope();
    }
    let mlp = GatedMlp::load(
        w,
        &format!("{p}.mlp"),
        hidden,
        args.intermediate_size,
        args.mlp_bias,
        act,
    );
    PreNormLayer::load(w, &p, (hidden, args.rms_norm_eps), attention, mlp)
}

/// SmolLM3's own plan lines.
fn plan(a: &SmolLm3Args, layers: &[SmolLm3Layer]) -> Vec<PlanItem> {
    let attention = layers
        .first()
        .map(|l| l.self_attn.describe())
        .unwrap_or_default();
    let rope_kernel = layers
        .iter()
        .find(|l| l.self_attn.rope.is_some())
        .map(|l| l.self_attn.describe_rope())
        .unwrap_or_else(|| "none (every layer is NoPE)".into());
    let nope: Vec<String> = layers
        .iter()
        .enumerate()
        .filter(|(_, l)| l.self_attn.rope.is_none())
        .map(|(i, _)| i.to_string())
        .collect();
    let nope = if nope.is_empty() {
        "none (rope in every layer)".to_string()
    } else {
        format!(
            "layers {} of {} (no rope); rope in the others",
            nope.join(", "),
            layers.len()
        )
    };
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
        PlanItem::new("rope", a.rope_parameters.summary()),
        PlanItem::new("rope kernel", rope_kernel),
        PlanItem::new("NoPE layers", nope),
    ]
}
