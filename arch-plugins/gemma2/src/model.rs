//! Llama on forge-core's decoder base: the layers are the base's pre-norm
//! layer with grouped-query attention and a SwiGLU MLP.

use forge_core::decoder::{Attention, AttentionDims, CausalLm, DecoderSpec, PreNormLayer};
use forge_core::model::{Model, PlanItem};
use forge_core::nn::{Activation, GatedMlp};
use forge_core::{ModelConfig, Result, Weights};

use crate::config::LlamaArgs;

/// A Llama: the decoder base over Llama layers.
pub type Llama = CausalLm<LlamaLayer>;

/// Builds a Llama model from its config and weights.
pub fn build(config: &ModelConfig, weights: &mut Weights) -> Result<Box<dyn Model>> {
    Ok(Box::new(load(config, weights)?))
}

/// Loads a Llama from its config and the weights under HF's names
/// (`model.embed_tokens`, `model.layers.{i}`, `model.norm`, `lm_head`); a
/// model that embeds a Llama (LLaVA's language model) renames its tensors
/// to these first.
pub fn load(config: &ModelConfig, weights: &mut Weights) -> Result<Llama> {
    let args = LlamaArgs::parse(config)?;
    let rope = args.rope()?;
    let layers = args
        .windows(config)?
        .into_iter()
        .enumerate()
        .map(|(i, window)| load_layer(weights, &args, i, window, rope.clone()))
        .collect();
    let spec = DecoderSpec {
        name: "Llama",
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

/// A Llama decoder layer is the base's pre-norm layer: RMSNorm →
/// attention → residual, RMSNorm → SwiGLU → residual.
pub type LlamaLayer = PreNormLayer;

fn load_layer(
    w: &mut Weights,
    args: &LlamaArgs,
    i: usize,
    window: Option<usize>,
    rope: forge_core::rope::Rope,
) -> LlamaLayer {
    let p = format!("model.layers.{i}");
    let hidden = args.hidden_size;
    let dims = AttentionDims {
        hidden,
        heads: args.num_attention_heads,
        kv_heads: args.kv_heads(),
        head_dim: args.head_dim(),
    };
    let bias = args.attention_bias;
    let attention = Attention::load(w, &format!("{p}.self_attn"), dims, (bias, bias), rope, window);
    let mlp = GatedMlp::load(
        w,
        &format!("{p}.mlp"),
        hidden,
        args.intermediate_size,
        args.mlp_bias,
        Activation::Silu,
    );
    PreNormLayer::load(w, &p, (hidden, args.rms_norm_eps), attention, mlp)
}

/// Llama's own plan lines.
fn plan(a: &LlamaArgs, layers: &[LlamaLayer]) -> Vec<PlanItem> {
    let (attention, rope) = layers
        .first()
        .map(|l| (l.self_attn.describe(), l.self_attn.describe_rope()))
        .unwrap_or_default();
    vec![
        PlanItem::new("attention", attention),
        PlanItem::new(
            "mlp",
            format!(
                "SwiGLU, intermediate {}, bias {}",
                a.intermediate_size, a.mlp_bias
            ),
        ),
        PlanItem::new("norm", format!("RMSNorm, eps {}", a.rms_norm_eps)),
        PlanItem::new("rope", a.rope_parameters.summary()),
        PlanItem::new("rope kernel", rope),
    ]
}
