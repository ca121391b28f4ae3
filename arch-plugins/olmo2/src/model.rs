//! OLMo 2 on forge-core's decoder base: grouped-query attention with an
//! RMSNorm over the whole q and k projections, a SwiGLU MLP, and the norms
//! after each sublayer instead of before it.

use forge_core::cache::KvCache;
use forge_core::decoder::{
    Attention, AttentionDims, CausalLm, DecoderLayer, DecoderSpec, LayerContext, QkNorm,
};
use forge_core::mlx_rs::{ops, Array};
use forge_core::model::{Model, PlanItem};
use forge_core::nn::{Activation, GatedMlp, RmsNorm};
use forge_core::rope::Rope;
use forge_core::{ModelConfig, Result, Weights};

use crate::config::Olmo2Args;

/// An OLMo 2: the decoder base over OLMo 2 layers.
pub type Olmo2 = CausalLm<Olmo2Layer>;

/// Builds an OLMo 2 model from its config and weights.
pub fn build(config: &ModelConfig, weights: &mut Weights) -> Result<Box<dyn Model>> {
    Ok(Box::new(load(config, weights)?))
}

/// Loads an OLMo 2 from its config and the weights under HF's names.
pub fn load(config: &ModelConfig, weights: &mut Weights) -> Result<Olmo2> {
    let args = Olmo2Args::parse(config)?;
    let rope = args.rope()?;
    let act = args.activation(config)?;
    let layers = (0..args.num_hidden_layers)
        .map(|i| Olmo2Layer::load(weights, &args, i, rope.clone(), act))
        .collect();
    let spec = DecoderSpec {
        name: "OLMo 2",
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

/// An OLMo 2 decoder layer: `h = x + norm(attn(x))`,
/// `out = h + norm(mlp(h))`; no norm before either sublayer.
#[derive(Debug)]
pub struct Olmo2Layer {
    /// The attention, with q/k norms over the whole projections.
    pub self_attn: Attention,
    /// Normalizes the attention output.
    pub post_attention_layernorm: RmsNorm,
    /// The SwiGLU MLP.
    pub mlp: GatedMlp,
    /// Normalizes the MLP output.
    pub post_feedforward_layernorm: RmsNorm,
}

impl Olmo2Layer {
    /// Takes `model.layers.{i}.*`.
    fn load(w: &mut Weights, args: &Olmo2Args, i: usize, rope: Rope, act: Activation) -> Self {
        let p = format!("model.layers.{i}");
        let (hidden, eps) = (args.hidden_size, args.rms_norm_eps);
        let dims = AttentionDims {
            hidden,
            heads: args.num_attention_heads,
            kv_heads: args.kv_heads(),
            head_dim: args.head_dim(),
        };
        let prefix = format!("{p}.self_attn");
        let bias = args.attention_bias;
        let qk_norm = QkNorm::whole(w, &prefix, dims, eps);
        let self_attn =
            Attention::load(w, &prefix, dims, (bias, bias), rope, None).with_qk_norm(qk_norm);
        let mlp = GatedMlp::load(
            w,
            &format!("{p}.mlp"),
            hidden,
            args.intermediate_size,
            false,
            act,
        );
        let norm =
            |w: &mut Weights, name: &str| RmsNorm::load(w, &format!("{p}.{name}"), hidden, eps);
        Olmo2Layer {
            self_attn,
            post_attention_layernorm: norm(w, "post_attention_layernorm"),
            mlp,
            post_feedforward_layernorm: norm(w, "post_feedforward_layernorm"),
        }
    }
}

impl DecoderLayer for Olmo2Layer {
    fn forward(
        &self,
        x: &Array,
        ctx: &LayerContext<'_>,
        cache: Option<&mut Box<dyn KvCache>>,
    ) -> Result<Array> {
        let attn = self.self_attn.forward(x, ctx, cache)?;
        // OLMo 2 has no input norm; its first norm is the one on the
        // attention output. It goes through `ctx.input_norm` so that the
        // harness's planted skipped-norm fault still has a norm to skip.
        let h = ops::add(x, ctx.input_norm(&self.post_attention_layernorm, &attn)?)?;
        let mlp = self.mlp.forward(&h)?;
        Ok(ops::add(
            &h,
            self.post_feedforward_layernorm.forward(&mlp)?,
        )?)
    }

    fn cached_values_per_token(&self) -> usize {
        self.self_attn.cached_values_per_token()
    }
}

/// OLMo 2's own plan lines.
fn plan(a: &Olmo2Args, layers: &[Olmo2Layer]) -> Vec<PlanItem> {
    let (attention, rope) = layers
        .first()
        .map(|l| (l.self_attn.describe(), l.self_attn.describe_rope()))
        .unwrap_or_default();
    vec![
        PlanItem::new("attention", attention),
        PlanItem::new(
            "mlp",
            format!(
                "gated ({}), intermediate {}, no bias",
                a.hidden_act, a.intermediate_size
            ),
        ),
        PlanItem::new(
            "norm",
            format!(
                "RMSNorm, eps {}, after each sublayer (post-attention, post-feedforward), \
                 no input norm; q/k RMSNorm over the whole projection before the head split",
                a.rms_norm_eps
            ),
        ),
        PlanItem::new("rope", a.rope_parameters.summary()),
        PlanItem::new("rope kernel", rope),
    ]
}
