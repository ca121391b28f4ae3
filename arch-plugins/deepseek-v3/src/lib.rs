//! DeepSeek-V3 for Forge (model_type `deepseek_v3`; Kimi K2 uses the same
//! architecture): token embedding, `num_hidden_layers` pre-norm decoder
//! layers (RMSNorm → multi-head latent attention → residual, RMSNorm → MLP
//! → residual), a final RMSNorm and the output head.
//!
//! - [`attention`]: multi-head latent attention, with the expanded path for
//!   prefill and the absorbed one for decode;
//! - [`cache`]: the latent cache (compressed latent + rope key per token);
//! - [`moe`]: the dense MLP of the first `first_k_dense_replace` layers and
//!   the mixture of experts of the others (group-limited sigmoid routing,
//!   shared experts);
//! - [`weights`]: per-expert tensors stacked, multi-token-prediction layers dropped;
//! - [`config`]: the args and their checks.
//!
//! Golden cases: deepseek-v3-grouped-yarn, deepseek-v3-no-qlora,
//! deepseek-v3-dense-first-leftpad.

pub mod attention;
pub mod cache;
pub mod config;
pub mod moe;
pub mod weights;

use forge_core::cache::KvCache;
use forge_core::mlx_rs::{ops, Array};
use forge_core::model::{
    cache_offset, Fault, ForwardOptions, Model, ModelInput, ModelKind, ModelOutput, PlanItem,
};
use forge_core::nn::{attention_mask, Embedding, Linear, RmsNorm};
use forge_core::registry::Architecture;
use forge_core::rope::Rope;
use forge_core::{ModelConfig, Result, Weights};

pub use attention::AttentionPath;
pub use cache::LatentCache;
pub use config::DeepseekV3Args;

use attention::Attention;
use moe::{FeedForward, Mlp, Moe};

inventory::submit! {
    Architecture {
        model_type: "deepseek_v3",
        aliases: &[],
        description: "DeepSeek-V3: multi-head latent attention with a latent cache, \
                      group-limited sigmoid MoE with shared experts",
        ignored_config_keys: config::IGNORED_CONFIG_KEYS,
        sanitize: weights::sanitize,
        build,
    }
}

/// Builds a DeepSeek-V3 model from its config and weights.
pub fn build(config: &ModelConfig, weights: &mut Weights) -> Result<Box<dyn Model>> {
    Ok(Box::new(DeepseekV3::new(config, weights)?))
}

/// A DeepSeek-V3 model.
#[derive(Debug)]
pub struct DeepseekV3 {
    args: DeepseekV3Args,
    embed_tokens: Embedding,
    layers: Vec<DecoderLayer>,
    norm: RmsNorm,
    lm_head: Option<Linear>,
    path: AttentionPath,
}

#[derive(Debug)]
struct DecoderLayer {
    input_layernorm: RmsNorm,
    self_attn: Attention,
    post_attention_layernorm: RmsNorm,
    mlp: FeedForward,
    /// Test-only fault: skip the input norm.
    skip_input_norm: bool,
}

impl DecoderLayer {
    fn load(w: &mut Weights, args: &DeepseekV3Args, i: usize, rope: Rope) -> Result<Self> {
        let p = format!("model.layers.{i}");
        let (hidden, eps) = (args.hidden_size, args.rms_norm_eps);
        let mlp = if args.is_moe_layer(i) {
            FeedForward::Moe(Box::new(Moe::load(w, args, &format!("{p}.mlp"))?))
        } else {
            FeedForward::Dense(Mlp::load(
                w,
                &format!("{p}.mlp"),
                hidden,
                args.intermediate_size,
            ))
        };
        Ok(DecoderLayer {
            input_layernorm: RmsNorm::load(w, &format!("{p}.input_layernorm"), hidden, eps),
            self_attn: Attention::load(w, args, &format!("{p}.self_attn"), rope)?,
            post_attention_layernorm: RmsNorm::load(
                w,
                &format!("{p}.post_attention_layernorm"),
                hidden,
                eps,
            ),
            mlp,
            skip_input_norm: false,
        })
    }

    fn forward(
        &self,
        x: &Array,
        mask: Option<&Array>,
        cache: Option<&mut Box<dyn KvCache>>,
        path: AttentionPath,
    ) -> Result<Array> {
        let normed = if self.skip_input_norm {
            x.clone()
        } else {
            self.input_layernorm.forward(x)?
        };
        let h = ops::add(x, self.self_attn.forward(&normed, mask, cache, path)?)?;
        let normed = self.post_attention_layernorm.forward(&h)?;
        Ok(ops::add(&h, self.mlp.forward(&normed)?)?)
    }
}

impl DeepseekV3 {
    /// Parses the config and takes every tensor from `weights`.
    pub fn new(config: &ModelConfig, weights: &mut Weights) -> Result<Self> {
        let args = DeepseekV3Args::parse(config)?;
        let rope = rope(&args, None)?;
        let embed_tokens = Embedding::load(
            weights,
            "model.embed_tokens",
            args.vocab_size,
            args.hidden_size,
        );
        let layers = (0..args.num_hidden_layers)
            .map(|i| DecoderLayer::load(weights, &args, i, rope.clone()))
            .collect::<Result<Vec<_>>>()?;
        let norm = RmsNorm::load(weights, "model.norm", args.hidden_size, args.rms_norm_eps);
        let lm_head = if args.tie_word_embeddings {
            weights.take_optional(
                "lm_head.weight",
                &[args.vocab_size as i32, args.hidden_size as i32],
            );
            None
        } else {
            Some(Linear::load(
                weights,
                "lm_head",
                args.hidden_size,
                args.vocab_size,
                false,
            ))
        };
        Ok(DeepseekV3 {
            args,
            embed_tokens,
            layers,
            norm,
            lm_head,
            path: AttentionPath::Auto,
        })
    }

    /// Chooses how attention runs over the latent cache (tests compare the paths).
    pub fn set_attention_path(&mut self, path: AttentionPath) {
        self.path = path;
    }

    /// The parsed config.
    pub fn args(&self) -> &DeepseekV3Args {
        &self.args
    }

    fn logits(&self, h: &Array) -> Result<Array> {
        match &self.lm_head {
            Some(head) => head.forward(h),
            None => self.embed_tokens.as_linear(h),
        }
    }

    fn dtype_bytes(&self) -> usize {
        self.embed_tokens.weight.item_size()
    }
}

/// The rope of the attention's rope part; `theta_override` for planted faults.
fn rope(args: &DeepseekV3Args, theta_override: Option<f64>) -> Result<Rope> {
    let mut params = args.rope_parameters.clone();
    if let Some(theta) = theta_override {
        params.rope_theta = Some(theta);
    }
    Rope::new(
        &params,
        args.qk_rope_head_dim,
        10000.0,
        args.max_position_embeddings,
        args.rope_interleave,
    )
}

impl Model for DeepseekV3 {
    fn kind(&self) -> ModelKind {
        ModelKind::CausalLm
    }

    fn forward(
        &self,
        input: &ModelInput,
        mut cache: Option<&mut [Box<dyn KvCache>]>,
        options: &ForwardOptions,
    ) -> Result<ModelOutput> {
        let mut h = input.embeddings(&self.embed_tokens, "DeepSeek-V3")?;
        let offset = cache_offset(cache.as_deref(), self.layers.len())?;
        let t = h.dim(1) as usize;
        let padding = options.attention_mask.as_ref();
        // A single new token with no padding attends to everything: no mask needed.
        let mask = if t > 1 || padding.is_some() {
            Some(attention_mask(t, offset, None, padding, h.dtype())?)
        } else {
            None
        };
        let mut hidden_states = Vec::new();
        for (i, layer) in self.layers.iter().enumerate() {
            if options.output_hidden_states {
                hidden_states.push(h.clone());
            }
            let layer_cache = cache.as_mut().map(|c| &mut c[i]);
            h = layer.forward(&h, mask.as_ref(), layer_cache, self.path)?;
        }
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

    fn new_cache(&self) -> Vec<Box<dyn KvCache>> {
        self.layers
            .iter()
            .map(|_| {
                Box::new(LatentCache::new(
                    self.args.kv_lora_rank,
                    self.args.qk_rope_head_dim,
                )) as Box<dyn KvCache>
            })
            .collect()
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
        self.args.latent_cache_bytes_per_token(self.dtype_bytes())
    }

    fn plan(&self) -> Vec<PlanItem> {
        let a = &self.args;
        let bytes = self.dtype_bytes();
        let query = match a.q_lora_rank {
            Some(r) => format!("q_a_proj → RMSNorm → q_b_proj (q_lora_rank {r})"),
            None => "q_proj".into(),
        };
        let moe_layers: Vec<usize> = (0..a.num_hidden_layers)
            .filter(|&i| a.is_moe_layer(i))
            .collect();
        let rope = self
            .layers
            .first()
            .map(|l| l.self_attn.rope.describe())
            .unwrap_or_default();
        let mut plan = vec![
            PlanItem::new("layers", a.num_hidden_layers),
            PlanItem::new("hidden size", a.hidden_size),
            PlanItem::new(
                "attention",
                format!(
                    "MLA, {} heads, qk_nope_head_dim {}, qk_rope_head_dim {}, v_head_dim {}, \
                     kv_lora_rank {}, queries {query}, bias {}, softmax scale {}",
                    a.num_attention_heads,
                    a.qk_nope_head_dim,
                    a.qk_rope_head_dim,
                    a.v_head_dim,
                    a.kv_lora_rank,
                    a.attention_bias,
                    a.softmax_scale()
                ),
            ),
            PlanItem::new(
                "kv cache",
                format!(
                    "latent + rope key, {} values per token per layer ({} bytes/token; an \
                     expanded K/V cache would take {} bytes/token); decode attends through \
                     absorbed kv_b_proj",
                    a.kv_lora_rank + a.qk_rope_head_dim,
                    a.latent_cache_bytes_per_token(bytes),
                    a.expanded_cache_bytes_per_token(bytes)
                ),
            ),
            PlanItem::new(
                "mlp",
                format!(
                    "dense SwiGLU (intermediate {}) in layers {}; MoE in {} layers",
                    a.intermediate_size,
                    describe_dense(a),
                    moe_layers.len()
                ),
            ),
            PlanItem::new(
                "moe",
                format!(
                    "{} routed experts (intermediate {}), {} per token, sigmoid router with \
                     correction bias ({}), {} groups keep {}, norm_topk_prob {}, scaling {}, \
                     shared experts {}",
                    a.n_routed_experts,
                    a.moe_intermediate_size,
                    a.num_experts_per_tok,
                    a.topk_method,
                    a.n_group,
                    a.topk_group,
                    a.norm_topk_prob,
                    a.routed_scaling_factor,
                    a.n_shared_experts
                ),
            ),
            PlanItem::new("norm", format!("RMSNorm, eps {}", a.rms_norm_eps)),
            PlanItem::new("rope", a.rope_parameters.summary()),
            PlanItem::new("rope kernel", rope),
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
        ];
        plan.push(PlanItem::new(
            "mtp layers",
            match a.num_nextn_predict_layers {
                0 => "none in the config".to_string(),
                n => format!(
                    "{n} multi-token-prediction layer(s) (model.layers.{}.*) dropped at load: \
                     not used for next-token logits",
                    a.num_hidden_layers
                ),
            },
        ));
        if let Some(q) = &a.quantization_config {
            plan.push(PlanItem::new(
                "quantization",
                format!(
                    "{} {} with block size {:?}: dequantized at load",
                    q.quant_method,
                    q.fmt.as_deref().unwrap_or("e4m3"),
                    q.weight_block_size.as_deref().unwrap_or(&[128, 128])
                ),
            ));
        }
        plan
    }

    fn plant_fault(&mut self, fault: &Fault) -> bool {
        match fault {
            Fault::SkipNorm { layer } => match self.layers.get_mut(*layer) {
                Some(l) => {
                    l.skip_input_norm = true;
                    true
                }
                None => false,
            },
            Fault::RopeTheta(theta) => match rope(&self.args, Some(*theta)) {
                Ok(rope) => {
                    for l in &mut self.layers {
                        l.self_attn.rope = rope.clone();
                    }
                    true
                }
                Err(_) => false,
            },
        }
    }
}

/// The dense layers, "0, 1, 2", or "none".
fn describe_dense(a: &DeepseekV3Args) -> String {
    let dense: Vec<String> = (0..a.num_hidden_layers)
        .filter(|&i| !a.is_moe_layer(i))
        .map(|i| i.to_string())
        .collect();
    if dense.is_empty() {
        "none".into()
    } else {
        dense.join(", ")
    }
}
