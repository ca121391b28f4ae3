//! Gemma 2 on forge-core's decoder base: the Gemma layer (four (1+w)
//! RMSNorms around attention and the GeGLU MLP), the embedding scale, the
//! (1+w) final norm and the soft-caps. Gemma 3 reuses [`GemmaLayer`] and
//! [`gemma_lm`].

use forge_core::cache::KvCache;
use forge_core::decoder::{
    Attention, AttentionDims, CausalLm, DecoderLayer, DecoderSpec, Head, LayerContext,
};
use forge_core::mlx_rs::{ops, Array};
use forge_core::model::{Model, PlanItem};
use forge_core::nn::{Activation, Embedding, GatedMlp, RmsNorm};
use forge_core::rope::Rope;
use forge_core::{ModelConfig, Result, Weights};

use crate::config::{activation, Gemma2Args};

/// A Gemma 2: the decoder base over Gemma layers.
pub type Gemma2 = CausalLm<GemmaLayer>;

/// Builds a Gemma 2 model from its config and weights.
pub fn build(config: &ModelConfig, weights: &mut Weights) -> Result<Box<dyn Model>> {
    Ok(Box::new(load(config, weights)?))
}

/// Loads a Gemma 2 from its config and the weights under HF's names.
pub fn load(config: &ModelConfig, weights: &mut Weights) -> Result<Gemma2> {
    let args = Gemma2Args::parse(config)?;
    let rope = args.rope()?;
    let act = activation(config, &args.hidden_activation)?;
    let dims = AttentionDims {
        hidden: args.hidden_size,
        heads: args.num_attention_heads,
        kv_heads: args.num_key_value_heads,
        head_dim: args.head_dim,
    };
    let bias = args.attention_bias;
    let layers = args
        .windows(config)?
        .into_iter()
        .enumerate()
        .map(|(i, window)| {
            let p = format!("model.layers.{i}");
            let attn = Attention::load(
                weights,
                &format!("{p}.self_attn"),
                dims,
                (bias, bias),
                rope.clone(),
                window,
            )
            .with_scale(query_scale(args.query_pre_attn_scalar));
            let attn = match args.attn_logit_softcapping {
                Some(cap) => attn.with_softcap(cap as f32),
                None => attn,
            };
            let mlp = GatedMlp::load(
                weights,
                &format!("{p}.mlp"),
                args.hidden_size,
                args.intermediate_size,
                false,
                act,
            );
            GemmaLayer::load(
                weights,
                &p,
                (args.hidden_size, args.rms_norm_eps),
                attn,
                mlp,
            )
        })
        .collect();
    let spec = DecoderSpec {
        name: "Gemma 2",
        vocab_size: args.vocab_size,
        hidden_size: args.hidden_size,
        rms_norm_eps: args.rms_norm_eps,
        tie_word_embeddings: args.tie_word_embeddings,
        max_context: Some(args.max_position_embeddings),
    };
    let model = gemma_lm(weights, spec, layers, args.final_logit_softcapping);
    let mut plan = gemma_plan(
        model.layers(),
        args.hidden_size,
        args.rms_norm_eps,
        args.query_pre_attn_scalar,
    );
    plan.push(PlanItem::new(
        "mlp",
        mlp_line(args.intermediate_size, &args.hidden_activation, act),
    ));
    plan.push(PlanItem::new(
        "soft-cap",
        softcap_line(args.attn_logit_softcapping, args.final_logit_softcapping),
    ));
    plan.push(PlanItem::new("rope", args.rope_parameters.summary()));
    plan.push(PlanItem::new("rope kernel", rope.describe()));
    Ok(model.with_plan(plan))
}

/// HF's attention scale: `query_pre_attn_scalar^-0.5` (in f64, then f32).
pub fn query_scale(query_pre_attn_scalar: f64) -> f32 {
    query_pre_attn_scalar.powf(-0.5) as f32
}

/// The decoder base around Gemma layers: `model.embed_tokens` scaled by
/// `sqrt(hidden_size)` (in the embeddings' dtype), the final norm
/// `model.norm` as x·(1+w), the head (tied or `lm_head`) and the final
/// soft-cap when the config has one.
pub fn gemma_lm<L: DecoderLayer>(
    w: &mut Weights,
    spec: DecoderSpec,
    layers: Vec<L>,
    final_softcap: Option<f64>,
) -> CausalLm<L> {
    let (vocab, hidden) = (spec.vocab_size, spec.hidden_size);
    let embed = Embedding::load(w, "model.embed_tokens", vocab, hidden);
    let norm = RmsNorm::load_plus_one(w, "model.norm", hidden, spec.rms_norm_eps);
    let head = Head::load(w, spec.tie_word_embeddings, hidden, vocab);
    // HF: a Python float `hidden_size ** 0.5`, stored as a float32 tensor.
    let scale = (hidden as f64).sqrt() as f32;
    let model = CausalLm::new(spec, embed, layers, norm, head).with_embed_scale(scale);
    match final_softcap {
        Some(cap) => model.with_final_softcap(cap as f32),
        None => model,
    }
}

/// The plan lines every Gemma shares: attention and its scale, norms,
/// embedding scale.
pub fn gemma_plan(
    layers: &[GemmaLayer],
    hidden: usize,
    eps: f64,
    query_scalar: f64,
) -> Vec<PlanItem> {
    let attention = layers
        .first()
        .map(|l| l.self_attn.describe())
        .unwrap_or_default();
    vec![
        PlanItem::new("attention", attention),
        PlanItem::new(
            "attention scale",
            format!(
                "query_pre_attn_scalar^-0.5 = {query_scalar}^-0.5 = {}",
                query_scale(query_scalar)
            ),
        ),
        PlanItem::new(
            "norm",
            format!(
                "RMSNorm x·(1+w) in float32, eps {eps}: four per layer (input, post-attention, \
                 pre-feedforward, post-feedforward) and the final norm"
            ),
        ),
        PlanItem::new(
            "embed scale",
            format!("× sqrt({hidden}) = {}", (hidden as f64).sqrt() as f32),
        ),
    ]
}

/// "GeGLU (gelu_pytorch_tanh), intermediate N".
pub fn mlp_line(intermediate: usize, name: &str, act: Activation) -> String {
    let kind = match act {
        Activation::Gelu | Activation::GeluTanh => "GeGLU",
        _ => "gated MLP",
    };
    format!("{kind} ({name}), intermediate {intermediate}, no bias")
}

/// "attention 50, final 30" (or "off" for each cap that is null).
pub fn softcap_line(attention: Option<f64>, last: Option<f64>) -> String {
    let show = |c: Option<f64>| c.map_or("off".to_string(), |c| c.to_string());
    format!(
        "attention logits {}, final logits {}",
        show(attention),
        show(last)
    )
}

/// A Gemma decoder layer:
/// `h = x + post_attention_norm(attn(input_norm(x)))`,
/// `out = h + post_feedforward_norm(mlp(pre_feedforward_norm(h)))`,
/// every norm x·(1+w).
#[derive(Debug)]
pub struct GemmaLayer {
    /// Before attention.
    pub input_layernorm: RmsNorm,
    /// The layer's attention (Gemma 3's carries its q/k norms).
    pub self_attn: Attention,
    /// On the attention output, before the residual add.
    pub post_attention_layernorm: RmsNorm,
    /// Before the MLP.
    pub pre_feedforward_layernorm: RmsNorm,
    /// The GeGLU MLP.
    pub mlp: GatedMlp,
    /// On the MLP output, before the residual add.
    pub post_feedforward_layernorm: RmsNorm,
}

impl GemmaLayer {
    /// Takes the four `{prefix}.*_layernorm` (width `hidden`, as x·(1+w))
    /// around the loaded attention and MLP.
    pub fn load(
        w: &mut Weights,
        prefix: &str,
        (hidden, eps): (usize, f64),
        self_attn: Attention,
        mlp: GatedMlp,
    ) -> Self {
        let mut norm =
            |name: &str| RmsNorm::load_plus_one(w, &format!("{prefix}.{name}"), hidden, eps);
        GemmaLayer {
            input_layernorm: norm("input_layernorm"),
            post_attention_layernorm: norm("post_attention_layernorm"),
            pre_feedforward_layernorm: norm("pre_feedforward_layernorm"),
            post_feedforward_layernorm: norm("post_feedforward_layernorm"),
            self_attn,
            mlp,
        }
    }

    /// The layer's rope (none for a NoPE attention).
    pub fn rope(&self) -> Option<&Rope> {
        self.self_attn.rope.as_ref()
    }
}

impl DecoderLayer for GemmaLayer {
    fn forward(
        &self,
        x: &Array,
        ctx: &LayerContext<'_>,
        cache: Option<&mut Box<dyn KvCache>>,
    ) -> Result<Array> {
        let normed = ctx.input_norm(&self.input_layernorm, x)?;
        let attn = self.self_attn.forward(&normed, ctx, cache)?;
        let h = ops::add(x, self.post_attention_layernorm.forward(&attn)?)?;
        let mlp = self
            .mlp
            .forward(&self.pre_feedforward_layernorm.forward(&h)?)?;
        Ok(ops::add(
            &h,
            self.post_feedforward_layernorm.forward(&mlp)?,
        )?)
    }

    fn window(&self) -> Option<usize> {
        self.self_attn.window
    }

    fn cached_values_per_token(&self) -> usize {
        self.self_attn.cached_values_per_token()
    }
}
