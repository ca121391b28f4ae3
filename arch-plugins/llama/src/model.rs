//! The Llama decoder layer: RMSNorm → attention → residual, RMSNorm →
//! SwiGLU → residual. Everything around the layers is forge-core's
//! decoder base.

use forge_core::cache::KvCache;
use forge_core::decoder::{
    Attention, AttentionDims, CausalLm, DecoderLayer, DecoderSpec, LayerContext,
};
use forge_core::mlx_rs::{ops, Array};
use forge_core::model::{Model, PlanItem};
use forge_core::nn::{Activation, GatedMlp, RmsNorm};
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
        .map(|(i, window)| LlamaLayer::load(weights, &args, i, window, rope.clone()))
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

/// One Llama decoder layer.
#[derive(Debug)]
pub struct LlamaLayer {
    input_layernorm: RmsNorm,
    self_attn: Attention,
    post_attention_layernorm: RmsNorm,
    mlp: GatedMlp,
}

impl LlamaLayer {
    fn load(
        w: &mut Weights,
        args: &LlamaArgs,
        i: usize,
        window: Option<usize>,
        rope: forge_core::rope::Rope,
    ) -> Self {
        let p = format!("model.layers.{i}");
        let (hidden, eps) = (args.hidden_size, args.rms_norm_eps);
        let dims = AttentionDims {
            hidden,
            heads: args.num_attention_heads,
            kv_heads: args.kv_heads(),
            head_dim: args.head_dim(),
        };
        let bias = args.attention_bias;
        LlamaLayer {
            input_layernorm: RmsNorm::load(w, &format!("{p}.input_layernorm"), hidden, eps),
            self_attn: Attention::load(
                w,
                &format!("{p}.self_attn"),
                dims,
                (bias, bias),
                rope,
                window,
            ),
            post_attention_layernorm: RmsNorm::load(
                w,
                &format!("{p}.post_attention_layernorm"),
                hidden,
                eps,
            ),
            mlp: GatedMlp::load(
                w,
                &format!("{p}.mlp"),
                hidden,
                args.intermediate_size,
                args.mlp_bias,
                Activation::Silu,
            ),
        }
    }
}

impl DecoderLayer for LlamaLayer {
    fn forward(
        &self,
        x: &Array,
        ctx: &LayerContext<'_>,
        cache: Option<&mut Box<dyn KvCache>>,
    ) -> Result<Array> {
        let normed = ctx.input_norm(&self.input_layernorm, x)?;
        let h = ops::add(x, self.self_attn.forward(&normed, ctx, cache)?)?;
        let normed = self.post_attention_layernorm.forward(&h)?;
        Ok(ops::add(&h, self.mlp.forward(&normed)?)?)
    }

    fn window(&self) -> Option<usize> {
        self.self_attn.window
    }

    fn cached_values_per_token(&self) -> usize {
        self.self_attn.cached_values_per_token()
    }
}

/// Llama's own plan lines.
fn plan(a: &LlamaArgs, layers: &[LlamaLayer]) -> Vec<PlanItem> {
    let (attention, rope) = layers
        .first()
        .map(|l| (l.self_attn.describe(), l.self_attn.rope.describe()))
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
