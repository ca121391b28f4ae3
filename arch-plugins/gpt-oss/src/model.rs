//! The gpt-oss model: token embedding, pre-norm decoder layers (RMSNorm →
//! attention with sinks → residual, RMSNorm → mixture of experts →
//! residual), a final RMSNorm and the output head.

use forge_core::cache::KvCache;
use forge_core::mask::{run_masked_layers, LayerMask};
use forge_core::mlx_rs::{ops, Array};
use forge_core::model::{ForwardOptions, Model, ModelInput, ModelKind, ModelOutput, PlanItem};
use forge_core::nn::{Embedding, Linear, RmsNorm};
use forge_core::rotating_cache::window_caches;
use forge_core::{ModelConfig, Result, Weights};

use crate::attention::Attention;
use crate::config::GptOssArgs;
use crate::experts::MoeBlock;

/// Builds a gpt-oss model from its config and weights.
pub fn build(config: &ModelConfig, weights: &mut Weights) -> Result<Box<dyn Model>> {
    let args = GptOssArgs::parse(config)?;
    let windows = args.windows(config)?;
    let rope = args.rope()?;
    let (vocab, hidden, eps) = (args.vocab_size, args.hidden_size, args.rms_norm_eps);
    let embed_tokens = Embedding::load(weights, "model.embed_tokens", vocab, hidden);
    let mut layers = Vec::with_capacity(windows.len());
    for (i, window) in windows.into_iter().enumerate() {
        let p = format!("model.layers.{i}");
        layers.push(DecoderLayer {
            input_layernorm: RmsNorm::load(weights, &format!("{p}.input_layernorm"), hidden, eps),
            self_attn: Attention::load(
                weights,
                &format!("{p}.self_attn"),
                &args,
                window,
                rope.clone(),
            ),
            post_attention_layernorm: RmsNorm::load(
                weights,
                &format!("{p}.post_attention_layernorm"),
                hidden,
                eps,
            ),
            mlp: MoeBlock::load(weights, &format!("{p}.mlp"), &args)?,
        });
    }
    let norm = RmsNorm::load(weights, "model.norm", hidden, eps);
    let lm_head = if args.tie_word_embeddings {
        weights.take_optional("lm_head.weight", &[vocab as i32, hidden as i32]);
        None
    } else {
        Some(Linear::load(weights, "lm_head", hidden, vocab, false))
    };
    Ok(Box::new(GptOss {
        args,
        embed_tokens,
        layers,
        norm,
        lm_head,
    }))
}

/// A gpt-oss model.
#[derive(Debug)]
pub struct GptOss {
    args: GptOssArgs,
    embed_tokens: Embedding,
    layers: Vec<DecoderLayer>,
    norm: RmsNorm,
    lm_head: Option<Linear>,
}

#[derive(Debug)]
struct DecoderLayer {
    input_layernorm: RmsNorm,
    self_attn: Attention,
    post_attention_layernorm: RmsNorm,
    mlp: MoeBlock,
}

impl DecoderLayer {
    fn forward(
        &self,
        x: &Array,
        mask: &LayerMask,
        cache: Option<&mut Box<dyn KvCache>>,
    ) -> Result<Array> {
        let normed = self.input_layernorm.forward(x)?;
        let h = ops::add(x, self.self_attn.forward(&normed, mask, cache)?)?;
        let normed = self.post_attention_layernorm.forward(&h)?;
        Ok(ops::add(&h, self.mlp.forward(&normed)?)?)
    }
}

impl GptOss {
    fn windows(&self) -> Vec<Option<usize>> {
        self.layers.iter().map(|l| l.self_attn.window).collect()
    }

    fn logits(&self, h: &Array) -> Result<Array> {
        match &self.lm_head {
            Some(head) => head.forward(h),
            None => self.embed_tokens.as_linear(h),
        }
    }
}

impl Model for GptOss {
    fn kind(&self) -> ModelKind {
        ModelKind::CausalLm
    }

    fn forward(
        &self,
        input: &ModelInput,
        cache: Option<&mut [Box<dyn KvCache>]>,
        options: &ForwardOptions,
    ) -> Result<ModelOutput> {
        let h = input.embeddings(&self.embed_tokens, "gpt-oss")?;
        let (h, mut hidden_states) = run_masked_layers(
            h,
            &self.layers,
            &self.windows(),
            cache,
            options,
            |layer, h, mask, cache| layer.forward(h, mask, cache),
        )?;
        let h = self.norm.forward(&h)?;
        if options.output_hidden_states {
            hidden_states.push(h.clone());
        }
        Ok(ModelOutput {
            logits: Some(self.logits(&h)?),
            hidden_states,
            ..Default::default()
        })
    }

    /// A rotating cache of the window's size for sliding layers.
    fn new_cache(&self) -> Vec<Box<dyn KvCache>> {
        window_caches(&self.windows())
    }

    fn num_layers(&self) -> usize {
        self.layers.len()
    }

    fn vocab_size(&self) -> usize {
        self.args.vocab_size
    }

    fn max_context(&self) -> Option<usize> {
        Some(self.args.max_position_embeddings)
    }

    fn kv_bytes_per_token(&self) -> usize {
        let bytes = self.embed_tokens.weight.item_size();
        2 * self.layers.len() * self.args.num_key_value_heads * self.args.head_dim() * bytes
    }

    fn plan(&self) -> Vec<PlanItem> {
        let a = &self.args;
        let pattern: Vec<String> = self
            .layers
            .iter()
            .map(|l| match l.self_attn.window {
                None => "full".to_string(),
                Some(w) => format!("sliding({w})"),
            })
            .collect();
        let rope = self
            .layers
            .first()
            .map(|l| l.self_attn.rope().describe())
            .unwrap_or_default();
        let rope_summary = a
            .rope_parameters
            .as_ref()
            .map(|p| p.summary())
            .unwrap_or_else(|| "released gpt-oss yarn (config has none)".into());
        vec![
            PlanItem::new("layers", a.num_hidden_layers),
            PlanItem::new("hidden size", a.hidden_size),
            PlanItem::new(
                "attention",
                format!(
                    "{} heads, {} kv heads, head_dim {}, bias {}, learned sinks",
                    a.num_attention_heads,
                    a.num_key_value_heads,
                    a.head_dim(),
                    a.attention_bias
                ),
            ),
            PlanItem::new(
                "experts",
                format!(
                    "{} experts, top {} (softmax over the chosen), intermediate {}, \
                     clamped SwiGLU (alpha {}, limit {}), {}",
                    a.num_local_experts,
                    a.num_experts_per_tok,
                    a.intermediate_size,
                    a.swiglu_alpha,
                    a.swiglu_limit,
                    if a.is_mxfp4() { "MXFP4" } else { "dense" }
                ),
            ),
            PlanItem::new("norm", format!("RMSNorm, eps {}", a.rms_norm_eps)),
            PlanItem::new("rope", rope_summary),
            PlanItem::new("rope kernel", rope),
            PlanItem::new("attention pattern", pattern.join(", ")),
            PlanItem::new("vocab", a.vocab_size),
            PlanItem::new(
                "output head",
                if a.tie_word_embeddings {
                    "tied to embeddings"
                } else {
                    "separate"
                },
            ),
            PlanItem::new("max context", a.max_position_embeddings),
        ]
    }
}
