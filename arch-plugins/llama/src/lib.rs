//! Llama for Forge: token embedding, `num_hidden_layers` pre-norm decoder
//! layers (RMSNorm → grouped-query attention with RoPE → residual, RMSNorm
//! → SwiGLU MLP → residual), a final RMSNorm and the output head.
//!
//! Options covered by the golden cases: biases on the attention and MLP
//! projections, an explicit `head_dim` (heads × head_dim ≠ hidden), tied
//! embeddings, every rope variant of [`forge_core::rope`], and a sliding
//! window through `sliding_window` / `layer_types`. Mistral is this model
//! with a window on every layer, so the plugin also serves model_type
//! `mistral` (golden case mistral-sliding-window).

use forge_core::cache::KvCache;
use forge_core::mlx_rs::fast::ScaledDotProductAttentionMask;
use forge_core::mlx_rs::{fast, ops, Array, Dtype};
use forge_core::model::{
    cache_offset, run_layers, standard_caches, Fault, ForwardOptions, Model, ModelInput, ModelKind,
    ModelOutput, PlanItem,
};
use forge_core::nn::{
    attention_mask, merge_heads, rotate_and_cache, split_heads, Embedding, Linear, RmsNorm,
};
use forge_core::registry::{keep_weights, Architecture};
use forge_core::rope::{Rope, RopeParameters};
use forge_core::{Error, ModelConfig, Result, Weights};
use serde::Deserialize;

inventory::submit! {
    Architecture {
        model_type: "llama",
        aliases: &["mistral"],
        description: "Llama: RMSNorm, grouped-query attention with RoPE, SwiGLU MLP",
        ignored_config_keys: IGNORED_CONFIG_KEYS,
        sanitize: keep_weights,
        build,
    }
}

/// Llama config keys that do not change the numerics of inference.
/// (`pretraining_tp` only split matmuls in old transformers versions.)
const IGNORED_CONFIG_KEYS: &[&str] = &["pretraining_tp"];

/// The config of a Llama checkpoint (HF `LlamaConfig` names).
#[derive(Debug, Clone, Deserialize)]
pub struct LlamaArgs {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Width of the MLP.
    pub intermediate_size: usize,
    /// Number of decoder layers.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads (defaults to the query heads).
    pub num_key_value_heads: Option<usize>,
    /// Per-head width (defaults to hidden_size / num_attention_heads).
    pub head_dim: Option<usize>,
    /// RMSNorm epsilon.
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    /// Longest context.
    #[serde(default = "default_max_positions")]
    pub max_position_embeddings: usize,
    /// Biases on q, k, v and o projections.
    #[serde(default)]
    pub attention_bias: bool,
    /// Biases on the MLP projections.
    #[serde(default)]
    pub mlp_bias: bool,
    /// The output head reuses the embedding table.
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// The MLP activation; only "silu" is Llama.
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// Rope settings (both HF layouts are normalized into this).
    #[serde(default)]
    pub rope_parameters: RopeParameters,
    /// Attention window for sliding layers.
    pub sliding_window: Option<usize>,
    /// Per layer "full_attention" or "sliding_attention".
    pub layer_types: Option<Vec<String>>,
    /// `false` turns the window off even when `sliding_window` is set.
    pub use_sliding_window: Option<bool>,
}

fn default_eps() -> f64 {
    1e-6
}
fn default_max_positions() -> usize {
    2048
}
fn default_act() -> String {
    "silu".into()
}

impl LlamaArgs {
    fn kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads)
    }

    /// The attention window of each layer (`None` = full attention).
    fn windows(&self, config: &ModelConfig) -> Result<Vec<Option<usize>>> {
        let bad = |key: &str, expected: &str, found: String| Error::ConfigValue {
            path: config.path().to_path_buf(),
            key: key.into(),
            expected: expected.into(),
            found,
        };
        // HF: a window given with use_sliding_window = false is not used.
        let window = match self.use_sliding_window {
            Some(false) => None,
            _ => self.sliding_window,
        };
        match (&self.layer_types, window) {
            (None, window) => Ok(vec![window; self.num_hidden_layers]),
            (Some(types), window) => {
                if types.len() != self.num_hidden_layers {
                    return Err(bad(
                        "layer_types",
                        &format!("{} entries (num_hidden_layers)", self.num_hidden_layers),
                        format!("{} entries", types.len()),
                    ));
                }
                types
                    .iter()
                    .map(|t| match (t.as_str(), window) {
                        ("full_attention", _) => Ok(None),
                        ("sliding_attention", Some(w)) => Ok(Some(w)),
                        ("sliding_attention", None) => Err(bad(
                            "sliding_window",
                            "a window size, since layer_types has sliding layers",
                            "null".into(),
                        )),
                        (other, _) => Err(bad(
                            "layer_types",
                            "\"full_attention\" or \"sliding_attention\"",
                            format!("{other:?}"),
                        )),
                    })
                    .collect()
            }
        }
    }

    fn rope(&self, theta_override: Option<f64>) -> Result<Rope> {
        let mut params = self.rope_parameters.clone();
        if let Some(theta) = theta_override {
            params.rope_theta = Some(theta);
        }
        Rope::new(
            &params,
            self.head_dim(),
            10000.0,
            self.max_position_embeddings,
            false,
        )
    }
}

/// Builds a Llama model from its config and weights.
pub fn build(config: &ModelConfig, weights: &mut Weights) -> Result<Box<dyn Model>> {
    Ok(Box::new(Llama::load(config, weights)?))
}

impl Llama {
    /// Loads a Llama from its config and the weights under HF's names
    /// (`model.embed_tokens`, `model.layers.{i}`, `model.norm`, `lm_head`);
    /// a model that embeds a Llama (LLaVA's language model) renames its
    /// tensors to these first.
    pub fn load(config: &ModelConfig, weights: &mut Weights) -> Result<Llama> {
        load_llama(config, weights)
    }

    /// Token embeddings `[B, T, hidden]` of `ids` `[B, T]`.
    pub fn embed(&self, ids: &Array) -> Result<Array> {
        self.embed_tokens.forward(ids)
    }
}

fn load_llama(config: &ModelConfig, weights: &mut Weights) -> Result<Llama> {
    let args: LlamaArgs = config.parse_args(IGNORED_CONFIG_KEYS)?;
    if args.hidden_act != "silu" {
        return Err(Error::ConfigValue {
            path: config.path().to_path_buf(),
            key: "hidden_act".into(),
            expected: "\"silu\" (Llama's SwiGLU)".into(),
            found: format!("{:?}", args.hidden_act),
        });
    }
    if !args.num_attention_heads.is_multiple_of(args.kv_heads()) {
        return Err(Error::ConfigValue {
            path: config.path().to_path_buf(),
            key: "num_key_value_heads".into(),
            expected: format!(
                "a divisor of num_attention_heads ({})",
                args.num_attention_heads
            ),
            found: args.kv_heads().to_string(),
        });
    }
    let windows = args.windows(config)?;
    let rope = args.rope(None)?;
    let embed_tokens = Embedding::load(
        weights,
        "model.embed_tokens",
        args.vocab_size,
        args.hidden_size,
    );
    let layers = windows
        .iter()
        .enumerate()
        .map(|(i, window)| DecoderLayer::load(weights, &args, i, *window, rope.clone()))
        .collect();
    let norm = RmsNorm::load(weights, "model.norm", args.hidden_size, args.rms_norm_eps);
    let lm_head = if args.tie_word_embeddings {
        // Some tied checkpoints still carry a copy of the head; the table is used.
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
    Ok(Llama {
        args,
        embed_tokens,
        layers,
        norm,
        lm_head,
    })
}

/// A Llama model.
#[derive(Debug)]
pub struct Llama {
    args: LlamaArgs,
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
    mlp: Mlp,
    /// Test-only fault: skip the input norm.
    skip_input_norm: bool,
}

#[derive(Debug)]
struct Attention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    o_proj: Linear,
    heads: i32,
    kv_heads: i32,
    head_dim: i32,
    scale: f32,
    window: Option<usize>,
    rope: Rope,
}

#[derive(Debug)]
struct Mlp {
    gate_proj: Linear,
    up_proj: Linear,
    down_proj: Linear,
}

impl DecoderLayer {
    fn load(
        w: &mut Weights,
        args: &LlamaArgs,
        i: usize,
        window: Option<usize>,
        rope: Rope,
    ) -> Self {
        let p = format!("model.layers.{i}");
        let (hidden, head_dim) = (args.hidden_size, args.head_dim());
        let (heads, kv_heads) = (args.num_attention_heads, args.kv_heads());
        let bias = args.attention_bias;
        let self_attn = Attention {
            q_proj: Linear::load(
                w,
                &format!("{p}.self_attn.q_proj"),
                hidden,
                heads * head_dim,
                bias,
            ),
            k_proj: Linear::load(
                w,
                &format!("{p}.self_attn.k_proj"),
                hidden,
                kv_heads * head_dim,
                bias,
            ),
            v_proj: Linear::load(
                w,
                &format!("{p}.self_attn.v_proj"),
                hidden,
                kv_heads * head_dim,
                bias,
            ),
            o_proj: Linear::load(
                w,
                &format!("{p}.self_attn.o_proj"),
                heads * head_dim,
                hidden,
                bias,
            ),
            heads: heads as i32,
            kv_heads: kv_heads as i32,
            head_dim: head_dim as i32,
            scale: (head_dim as f32).powf(-0.5),
            window,
            rope,
        };
        let (inter, bias) = (args.intermediate_size, args.mlp_bias);
        let mlp = Mlp {
            gate_proj: Linear::load(w, &format!("{p}.mlp.gate_proj"), hidden, inter, bias),
            up_proj: Linear::load(w, &format!("{p}.mlp.up_proj"), hidden, inter, bias),
            down_proj: Linear::load(w, &format!("{p}.mlp.down_proj"), inter, hidden, bias),
        };
        DecoderLayer {
            input_layernorm: RmsNorm::load(
                w,
                &format!("{p}.input_layernorm"),
                hidden,
                args.rms_norm_eps,
            ),
            self_attn,
            post_attention_layernorm: RmsNorm::load(
                w,
                &format!("{p}.post_attention_layernorm"),
                hidden,
                args.rms_norm_eps,
            ),
            mlp,
            skip_input_norm: false,
        }
    }

    fn forward(
        &self,
        x: &Array,
        masks: &Masks,
        cache: Option<&mut Box<dyn KvCache>>,
    ) -> Result<Array> {
        let normed = if self.skip_input_norm {
            x.clone()
        } else {
            self.input_layernorm.forward(x)?
        };
        let mask = masks.for_window(self.self_attn.window);
        let h = ops::add(x, self.self_attn.forward(&normed, mask, cache)?)?;
        let normed = self.post_attention_layernorm.forward(&h)?;
        Ok(ops::add(&h, self.mlp.forward(&normed)?)?)
    }
}

impl Attention {
    fn forward(
        &self,
        x: &Array,
        mask: Option<ScaledDotProductAttentionMask<'_>>,
        cache: Option<&mut Box<dyn KvCache>>,
    ) -> Result<Array> {
        let q = split_heads(&self.q_proj.forward(x)?, self.heads, self.head_dim)?;
        let k = split_heads(&self.k_proj.forward(x)?, self.kv_heads, self.head_dim)?;
        let v = split_heads(&self.v_proj.forward(x)?, self.kv_heads, self.head_dim)?;
        let (q, k, v) = rotate_and_cache(&q, &k, v, &self.rope, cache)?;
        let out = fast::scaled_dot_product_attention(&q, &k, &v, self.scale, mask, None)?;
        self.o_proj.forward(&merge_heads(&out)?)
    }
}

impl Mlp {
    fn forward(&self, x: &Array) -> Result<Array> {
        let gate = self.gate_proj.forward(x)?;
        let activated = ops::multiply(&gate, ops::sigmoid(&gate)?)?;
        let up = self.up_proj.forward(x)?;
        self.down_proj.forward(&ops::multiply(&activated, &up)?)
    }
}

/// The attention masks of one forward pass: one for full-attention layers
/// and one per distinct window.
struct Masks {
    full: FullMask,
    windowed: Vec<(usize, Array)>,
}

/// The mask of full-attention layers.
enum FullMask {
    /// One new token and no padding: it sees everything cached.
    None,
    /// No padding: MLX's own causal mode (queries are the last positions),
    /// with no mask array to build or add.
    Causal,
    /// Padding to leave out.
    Array(Array),
}

impl Masks {
    fn for_window(&self, window: Option<usize>) -> Option<ScaledDotProductAttentionMask<'_>> {
        match window {
            None => match &self.full {
                FullMask::None => None,
                FullMask::Causal => Some(ScaledDotProductAttentionMask::Causal),
                FullMask::Array(m) => Some(ScaledDotProductAttentionMask::Array(m)),
            },
            Some(w) => self
                .windowed
                .iter()
                .find(|(size, _)| *size == w)
                .map(|(_, m)| ScaledDotProductAttentionMask::Array(m)),
        }
    }
}

impl Llama {
    fn masks(
        &self,
        t: usize,
        offset: usize,
        padding: Option<&Array>,
        dtype: Dtype,
    ) -> Result<Masks> {
        let full = match (padding, t) {
            (Some(padding), _) => {
                FullMask::Array(attention_mask(t, offset, None, Some(padding), dtype)?)
            }
            (None, 1) => FullMask::None,
            (None, _) => FullMask::Causal,
        };
        let mut windowed: Vec<(usize, Array)> = Vec::new();
        for layer in &self.layers {
            if let Some(w) = layer.self_attn.window {
                if !windowed.iter().any(|(size, _)| *size == w) {
                    windowed.push((w, attention_mask(t, offset, Some(w), padding, dtype)?));
                }
            }
        }
        Ok(Masks { full, windowed })
    }

    fn logits(&self, h: &Array) -> Result<Array> {
        match &self.lm_head {
            Some(head) => head.forward(h),
            None => self.embed_tokens.as_linear(h),
        }
    }
}

impl Model for Llama {
    fn kind(&self) -> ModelKind {
        ModelKind::CausalLm
    }

    fn forward(
        &self,
        input: &ModelInput,
        cache: Option<&mut [Box<dyn KvCache>]>,
        options: &ForwardOptions,
    ) -> Result<ModelOutput> {
        let h = input.embeddings(&self.embed_tokens, "Llama")?;
        let offset = cache_offset(cache.as_deref(), self.layers.len())?;
        let t = h.dim(1) as usize;
        let masks = self.masks(t, offset, options.attention_mask.as_ref(), h.dtype())?;
        let (h, mut hidden_states) = run_layers(
            h,
            &self.layers,
            cache,
            options.output_hidden_states,
            |layer, h, cache| layer.forward(h, &masks, cache),
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

    fn new_cache(&self) -> Vec<Box<dyn KvCache>> {
        standard_caches(self.layers.len())
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
        let bytes = forge_core::nn::dtype_bytes(self.embed_tokens.dtype());
        2 * self.layers.len() * self.args.kv_heads() * self.args.head_dim() * bytes
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
            .map(|l| l.self_attn.rope.describe())
            .unwrap_or_default();
        vec![
            PlanItem::new("layers", a.num_hidden_layers),
            PlanItem::new("hidden size", a.hidden_size),
            PlanItem::new(
                "attention",
                format!(
                    "{} heads, {} kv heads, head_dim {}, bias {}",
                    a.num_attention_heads,
                    a.kv_heads(),
                    a.head_dim(),
                    a.attention_bias
                ),
            ),
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
            PlanItem::new("attention pattern", compress_pattern(&pattern)),
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

    fn plant_fault(&mut self, fault: &Fault) -> bool {
        match fault {
            Fault::SkipNorm { layer } => match self.layers.get_mut(*layer) {
                Some(l) => {
                    l.skip_input_norm = true;
                    true
                }
                None => false,
            },
            Fault::RopeTheta(theta) => match self.args.rope(Some(*theta)) {
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

/// "full × 3" or "sliding(4), full, sliding(4)".
fn compress_pattern(pattern: &[String]) -> String {
    match pattern.first() {
        Some(first) if pattern.iter().all(|p| p == first) => format!("{first} × {}", pattern.len()),
        _ => pattern.join(", "),
    }
}
