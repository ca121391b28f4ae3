//! The decoder base: one causal language model for every decoder family.
//!
//! A plugin writes what is new about its family — the config, a layer type
//! implementing [`DecoderLayer`], and the sanitize step — and wraps its
//! layers in a [`CausalLm`], which implements [`Model`] once for all of
//! them: the embedding (with an optional scale), the layer loop with each
//! layer's mask and cache entry, every hidden state, the final norm, the
//! head (tied or separate, with optional final soft-capping or scaling),
//! cache creation, KV bytes from the real dtypes, the plan, and the
//! harness's planted faults.
//!
//! ```ignore
//! let layers = (0..n).map(|i| MyLayer::load(weights, &args, i)).collect::<Result<Vec<_>>>()?;
//! let spec = DecoderSpec { name: "MyArch", vocab_size, hidden_size, rms_norm_eps,
//!                          tie_word_embeddings, max_context: Some(max_positions) };
//! Ok(Box::new(CausalLm::load(weights, spec, layers)?.with_plan(family_lines)))
//! ```

mod attention;
mod layer;

use std::borrow::Cow;

use mlx_rs::{ops, Array, Dtype};

use crate::cache::rotating::RotatingCache;
use crate::cache::{KvCache, StandardCache};
use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::mask::{layer_masks, LayerMask};
use crate::model::{
    cache_offset, Fault, ForwardOptions, Model, ModelInput, ModelKind, ModelOutput, PlanItem,
};
use crate::nn::{dtype_bytes, Embedding, Linear, RmsNorm};
use crate::rope::Rope;
use crate::weights::Weights;

pub use attention::{Attention, AttentionDims, QkNorm};
pub use layer::PreNormLayer;

/// One layer of a decoder-only language model.
pub trait DecoderLayer: std::fmt::Debug {
    /// Runs the layer over the residual stream `x` `[B, T, hidden]` with its
    /// mask and planted faults (`ctx`) and its cache entry.
    fn forward(
        &self,
        x: &Array,
        ctx: &LayerContext<'_>,
        cache: Option<&mut Box<dyn KvCache>>,
    ) -> Result<Array>;

    /// The keys this layer's attention sees, counting the current one
    /// (`None`: every position).
    fn window(&self) -> Option<usize> {
        None
    }

    /// Numbers the layer's cache keeps per token and batch row (keys and
    /// values: `2 · kv_heads · head_dim`).
    fn cached_values_per_token(&self) -> usize;

    /// A fresh cache entry: a rotating cache of the window's size for a
    /// sliding layer, a standard one otherwise. Layers that cache something
    /// else (DeepSeek's latents) override it.
    fn new_cache(&self) -> Box<dyn KvCache> {
        match self.window().and_then(|w| RotatingCache::new(w, 0).ok()) {
            Some(rotating) => Box::new(rotating),
            None => Box::new(StandardCache::new()),
        }
    }
}

/// What the decoder base hands a layer besides its input: the layer's
/// index, its mask, and the faults the harness planted in it.
#[derive(Debug)]
pub struct LayerContext<'a> {
    /// The layer's index.
    pub index: usize,
    /// The layer's attention mask (see [`crate::mask`]).
    pub mask: &'a LayerMask,
    faults: &'a [Fault],
}

impl<'a> LayerContext<'a> {
    /// A context with no planted faults (for running a layer on its own).
    pub fn new(index: usize, mask: &'a LayerMask) -> Self {
        LayerContext {
            index,
            mask,
            faults: &[],
        }
    }

    /// The layer's input norm applied to `x`, or `x` itself when the
    /// harness planted [`Fault::SkipNorm`] in this layer.
    pub fn input_norm(&self, norm: &RmsNorm, x: &Array) -> Result<Array> {
        if self.faults.contains(&Fault::SkipNorm { layer: self.index }) {
            Ok(x.clone())
        } else {
            norm.forward(x)
        }
    }

    /// The rope to apply: `rope` itself, or `rope` with the θ of a planted
    /// [`Fault::RopeTheta`].
    pub fn rope<'r>(&self, rope: &'r Rope) -> Result<Cow<'r, Rope>> {
        let planted = self.faults.iter().find_map(|f| match f {
            Fault::RopeTheta(theta) => Some(*theta),
            _ => None,
        });
        match planted {
            Some(theta) => Ok(Cow::Owned(rope.with_theta(theta)?)),
            None => Ok(Cow::Borrowed(rope)),
        }
    }
}

/// The output head.
#[derive(Debug, Clone)]
pub enum Head {
    /// The embedding table is the head.
    Tied,
    /// A separate `lm_head`.
    Separate(Linear),
}

impl Head {
    /// Takes `lm_head.*`: the separate head, or, when `tied`, a copy some
    /// tied checkpoints still carry (dropped: the table is used).
    pub fn load(w: &mut Weights, tied: bool, hidden: usize, vocab: usize) -> Self {
        if tied {
            w.take_optional("lm_head.weight", &[vocab as i32, hidden as i32]);
            Head::Tied
        } else {
            Head::Separate(Linear::load(w, "lm_head", hidden, vocab, false))
        }
    }
}

/// The sizes and names a [`CausalLm`] needs from a plugin's config.
#[derive(Debug, Clone)]
pub struct DecoderSpec {
    /// The family's name, for messages ("Llama").
    pub name: &'static str,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Epsilon of the final RMSNorm.
    pub rms_norm_eps: f64,
    /// The head reuses the embedding table.
    pub tie_word_embeddings: bool,
    /// The longest context, if the model has a limit.
    pub max_context: Option<usize>,
}

/// A decoder-only language model over layers of type `L`.
#[derive(Debug)]
pub struct CausalLm<L> {
    spec: DecoderSpec,
    embed_tokens: Embedding,
    embed_scale: Option<f32>,
    layers: Vec<L>,
    norm: RmsNorm,
    head: Head,
    final_softcap: Option<f32>,
    logit_scale: Option<f32>,
    restart_past: Option<usize>,
    family_plan: Vec<PlanItem>,
    faults: Vec<Fault>,
}

impl<L: DecoderLayer> CausalLm<L> {
    /// Assembles a model from its parts.
    pub fn new(
        spec: DecoderSpec,
        embed_tokens: Embedding,
        layers: Vec<L>,
        norm: RmsNorm,
        head: Head,
    ) -> Self {
        CausalLm {
            spec,
            embed_tokens,
            embed_scale: None,
            layers,
            norm,
            head,
            final_softcap: None,
            logit_scale: None,
            restart_past: None,
            family_plan: Vec::new(),
            faults: Vec::new(),
        }
    }

    /// Takes the parts every HF decoder names alike (`model.embed_tokens`,
    /// `model.norm`, `lm_head`) around the plugin's `layers`.
    pub fn load(w: &mut Weights, spec: DecoderSpec, layers: Vec<L>) -> Result<Self> {
        let (vocab, hidden) = (spec.vocab_size, spec.hidden_size);
        let embed_tokens = Embedding::load(w, "model.embed_tokens", vocab, hidden);
        let norm = RmsNorm::load(w, "model.norm", hidden, spec.rms_norm_eps);
        let head = Head::load(w, spec.tie_word_embeddings, hidden, vocab);
        Ok(CausalLm::new(spec, embed_tokens, layers, norm, head))
    }

    /// Multiplies looked-up token embeddings by `scale` (in their dtype, as
    /// Gemma's `sqrt(hidden_size)`).
    pub fn with_embed_scale(mut self, scale: f32) -> Self {
        self.embed_scale = Some(scale);
        self
    }

    /// Soft-caps the final logits: `tanh(logits / cap) · cap`.
    pub fn with_final_softcap(mut self, cap: f32) -> Self {
        self.final_softcap = Some(cap);
        self
    }

    /// Multiplies the final logits by `scale`.
    pub fn with_logit_scale(mut self, scale: f32) -> Self {
        self.logit_scale = Some(scale);
        self
    }

    /// Generation recomputes the whole sequence when it first passes
    /// `positions` (see [`Model::restart_before`]; Phi-3's LongRoPE).
    pub fn with_restart_past(mut self, positions: usize) -> Self {
        self.restart_past = Some(positions);
        self
    }

    /// The family's own plan lines (attention, MLP, norm, rope...), shown
    /// between the base's size lines and its pattern and head lines.
    pub fn with_plan(mut self, lines: Vec<PlanItem>) -> Self {
        self.family_plan = lines;
        self
    }

    /// The dtype of the activations (and of the KV cache): the looked-up
    /// embeddings'.
    pub fn dtype(&self) -> Dtype {
        self.embed_tokens.dtype()
    }

    /// The layers.
    pub fn layers(&self) -> &[L] {
        &self.layers
    }

    /// The layers, to change (tests compare variants of a layer).
    pub fn layers_mut(&mut self) -> &mut [L] {
        &mut self.layers
    }

    /// Token embeddings `[B, T, hidden]` of `ids` `[B, T]`, scaled when the
    /// family scales them; what a vision-language model splices image
    /// features into.
    pub fn embed(&self, ids: &Array) -> Result<Array> {
        let h = self.embed_tokens.forward(ids)?;
        match self.embed_scale {
            Some(s) => Ok(ops::multiply(&h, Array::from_f32(s).as_dtype(h.dtype())?)?),
            None => Ok(h),
        }
    }

    fn input_embeddings(&self, input: &ModelInput) -> Result<Array> {
        match input {
            ModelInput::Tokens(ids) => self.embed(ids),
            ModelInput::Embeddings(e) => Ok(e.clone()),
            ModelInput::Pixels(_) => Err(Error::InvalidInput {
                expected: format!("token ids or embeddings for a {} model", self.spec.name),
                found: "pixel values".into(),
            }),
        }
    }

    /// `[..., hidden]` after the final norm → `[..., vocab]`.
    pub fn logits(&self, h: &Array) -> Result<Array> {
        let mut logits = match &self.head {
            Head::Separate(head) => head.forward(h)?,
            Head::Tied => self.embed_tokens.as_linear(h)?,
        };
        if let Some(cap) = self.final_softcap {
            let cap = Array::from_f32(cap).as_dtype(logits.dtype())?;
            logits = ops::multiply(ops::tanh(ops::divide(&logits, &cap)?)?, &cap)?;
        }
        if let Some(scale) = self.logit_scale {
            logits = ops::multiply(&logits, Array::from_f32(scale).as_dtype(logits.dtype())?)?;
        }
        Ok(logits)
    }

    fn windows(&self) -> Vec<Option<usize>> {
        self.layers.iter().map(DecoderLayer::window).collect()
    }

    fn head_line(&self) -> String {
        let mut line = match self.head {
            Head::Tied => "tied to embeddings".to_string(),
            Head::Separate(_) => "separate".to_string(),
        };
        if let Some(cap) = self.final_softcap {
            line.push_str(&format!(", final soft-cap {cap}"));
        }
        if let Some(scale) = self.logit_scale {
            line.push_str(&format!(", logits × {scale}"));
        }
        line
    }
}

impl<L: DecoderLayer> Model for CausalLm<L> {
    fn kind(&self) -> ModelKind {
        ModelKind::CausalLm
    }

    fn forward(
        &self,
        input: &ModelInput,
        mut cache: Option<&mut [Box<dyn KvCache>]>,
        options: &ForwardOptions,
    ) -> Result<ModelOutput> {
        let mut h = self.input_embeddings(input)?;
        cache_offset(cache.as_deref(), self.layers.len())?;
        let t = h.dim(1) as usize;
        let padding = options.attention_mask.as_ref();
        let masks = layer_masks(cache.as_deref(), &self.windows(), t, padding, h.dtype())?;
        let mut hidden_states = Vec::new();
        for (index, (layer, mask)) in self.layers.iter().zip(&masks).enumerate() {
            if options.output_hidden_states {
                hidden_states.push(h.clone());
            }
            let ctx = LayerContext {
                index,
                mask,
                faults: &self.faults,
            };
            let layer_cache = cache.as_mut().and_then(|c| c.get_mut(index));
            h = layer.forward(&h, &ctx, layer_cache)?;
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
        self.layers.iter().map(DecoderLayer::new_cache).collect()
    }

    fn num_layers(&self) -> usize {
        self.layers.len()
    }

    fn vocab_size(&self) -> usize {
        self.spec.vocab_size
    }

    fn max_context(&self) -> Option<usize> {
        self.spec.max_context
    }

    /// The cache holds activations, whose dtype is the looked-up
    /// embeddings' (a quantized table's scales, not its packed codes).
    fn kv_bytes_per_token(&self) -> usize {
        let values: usize = self
            .layers
            .iter()
            .map(DecoderLayer::cached_values_per_token)
            .sum();
        values * dtype_bytes(self.embed_tokens.dtype())
    }

    fn restart_before(&self, cached: usize, new: usize) -> bool {
        matches!(self.restart_past, Some(past) if cached > 0 && cached <= past && cached + new > past)
    }

    fn plan(&self) -> Vec<PlanItem> {
        let mut plan = vec![
            PlanItem::new("layers", self.layers.len()),
            PlanItem::new("hidden size", self.spec.hidden_size),
        ];
        plan.extend(self.family_plan.iter().cloned());
        let pattern: Vec<String> = self
            .windows()
            .iter()
            .map(|w| match w {
                None => "full".to_string(),
                Some(w) => format!("sliding({w})"),
            })
            .collect();
        plan.push(PlanItem::new(
            "attention pattern",
            compress_pattern(&pattern),
        ));
        plan.push(PlanItem::new("vocab", self.spec.vocab_size));
        plan.push(PlanItem::new("output head", self.head_line()));
        if let Some(max) = self.spec.max_context {
            plan.push(PlanItem::new("max context", max));
        }
        plan
    }

    /// Faults apply in the shared layer loop (see [`LayerContext`]); a
    /// skipped norm must name an existing layer.
    fn plant_fault(&mut self, fault: &Fault) -> bool {
        if let Fault::SkipNorm { layer } = fault {
            if *layer >= self.layers.len() {
                return false;
            }
        }
        self.faults.push(fault.clone());
        true
    }
}

/// "full × 3", or the layers one by one ("sliding(4), full, sliding(4)").
fn compress_pattern(pattern: &[String]) -> String {
    match pattern.first() {
        Some(first) if pattern.iter().all(|p| p == first) => format!("{first} × {}", pattern.len()),
        _ => pattern.join(", "),
    }
}

/// Checks a grouped-query head layout: at least one query head, and key/value
/// heads that divide them. Errors name `num_attention_heads` or
/// `num_key_value_heads`, what was expected and what was found.
pub fn check_heads(config: &ModelConfig, heads: usize, kv_heads: usize) -> Result<()> {
    let bad = |key: &str, expected: String, found: String| Error::ConfigValue {
        path: config.path().to_path_buf(),
        key: key.into(),
        expected,
        found,
    };
    if heads == 0 {
        return Err(bad(
            "num_attention_heads",
            "at least one head".into(),
            "0".into(),
        ));
    }
    if kv_heads == 0 || !heads.is_multiple_of(kv_heads) {
        return Err(bad(
            "num_key_value_heads",
            format!("a divisor of num_attention_heads ({heads})"),
            kv_heads.to_string(),
        ));
    }
    Ok(())
}

/// Each layer's attention window from HF's `layer_types`
/// (`"full_attention"` / `"sliding_attention"`, one per layer) and the
/// config's `sliding_window`; errors name the config key at fault.
pub fn layer_windows(
    config: &ModelConfig,
    layer_types: &[String],
    sliding_window: Option<usize>,
    num_layers: usize,
) -> Result<Vec<Option<usize>>> {
    let bad = |key: &str, expected: String, found: String| Error::ConfigValue {
        path: config.path().to_path_buf(),
        key: key.into(),
        expected,
        found,
    };
    if layer_types.len() != num_layers {
        return Err(bad(
            "layer_types",
            format!("{num_layers} entries (num_hidden_layers)"),
            format!("{} entries", layer_types.len()),
        ));
    }
    layer_types
        .iter()
        .map(|t| match (t.as_str(), sliding_window) {
            ("full_attention", _) => Ok(None),
            ("sliding_attention", Some(w)) if w > 0 => Ok(Some(w)),
            ("sliding_attention", other) => Err(bad(
                "sliding_window",
                "a positive window size, since layer_types has sliding layers".into(),
                format!("{other:?}"),
            )),
            (other, _) => Err(bad(
                "layer_types",
                "\"full_attention\" or \"sliding_attention\"".into(),
                format!("{other:?}"),
            )),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::weights::TensorMap;

    #[test]
    fn head_layouts_are_checked_by_key() {
        let config = ModelConfig::from_str(r#"{"model_type": "x"}"#, "config.json", true).unwrap();
        assert!(check_heads(&config, 8, 2).is_ok());
        let message = |heads, kv| check_heads(&config, heads, kv).unwrap_err().to_string();
        assert!(
            message(0, 0).contains("num_attention_heads"),
            "{}",
            message(0, 0)
        );
        let uneven = message(8, 3);
        assert!(
            uneven.contains("num_key_value_heads")
                && uneven.contains("a divisor of num_attention_heads (8)"),
            "{uneven}"
        );
        assert!(message(8, 0).contains("num_key_value_heads"));
    }

    /// A layer that adds its input norm's output: enough to see the base's
    /// loop, faults and head.
    #[derive(Debug)]
    struct NormOnly(RmsNorm);

    impl DecoderLayer for NormOnly {
        fn forward(
            &self,
            x: &Array,
            ctx: &LayerContext<'_>,
            _cache: Option<&mut Box<dyn KvCache>>,
        ) -> Result<Array> {
            Ok(ops::add(x, ctx.input_norm(&self.0, x)?)?)
        }

        fn cached_values_per_token(&self) -> usize {
            6
        }
    }

    const VOCAB: i32 = 5;
    const HIDDEN: i32 = 4;

    fn spec(tied: bool) -> DecoderSpec {
        DecoderSpec {
            name: "Test",
            vocab_size: VOCAB as usize,
            hidden_size: HIDDEN as usize,
            rms_norm_eps: 1e-6,
            tie_word_embeddings: tied,
            max_context: None,
        }
    }

    fn model(tied: bool) -> CausalLm<NormOnly> {
        let table: Vec<f32> = (0..VOCAB * HIDDEN)
            .map(|i| (i as f32 * 0.37).sin())
            .collect();
        let mut tensors = TensorMap::new();
        tensors.insert(
            "model.embed_tokens.weight".into(),
            Array::from_slice(&table, &[VOCAB, HIDDEN]),
        );
        tensors.insert(
            "model.norm.weight".into(),
            Array::from_slice(&[1.0f32; 4], &[HIDDEN]),
        );
        let mut w = Weights::new(tensors, "test");
        let spec = spec(tied);
        let norm = |i: f32| RmsNorm {
            weight: Array::from_slice(&[i; 4], &[HIDDEN]),
            eps: 1e-6,
        };
        let m = CausalLm::load(&mut w, spec, vec![NormOnly(norm(1.0)), NormOnly(norm(2.0))]);
        w.finish().unwrap();
        m.unwrap()
    }

    fn logits(m: &CausalLm<NormOnly>) -> Vec<f32> {
        let ids = Array::from_slice(&[1i32, 3, 0], &[1, 3]);
        let out = m
            .forward(&ModelInput::Tokens(ids), None, &ForwardOptions::default())
            .unwrap();
        let l = out.logits.unwrap();
        l.eval().unwrap();
        l.as_slice::<f32>().to_vec()
    }

    #[test]
    fn final_softcap_and_scale_apply_to_the_logits() {
        let plain = logits(&model(true));
        let capped = logits(&model(true).with_final_softcap(0.5));
        for (p, c) in plain.iter().zip(&capped) {
            assert!((c - (p / 0.5).tanh() * 0.5).abs() < 1e-5, "{p} → {c}");
        }
        let scaled = logits(&model(true).with_logit_scale(0.25));
        for (p, s) in plain.iter().zip(&scaled) {
            assert!((s - p * 0.25).abs() < 1e-5);
        }
    }

    #[test]
    fn the_embedding_scale_multiplies_token_lookups() {
        let m = model(true).with_embed_scale(3.0);
        let ids = Array::from_slice(&[2i32], &[1, 1]);
        let scaled = m.embed(&ids).unwrap();
        let plain = model(true).embed(&ids).unwrap();
        let want = ops::multiply(&plain, Array::from_f32(3.0)).unwrap();
        let diff = ops::abs(ops::subtract(&scaled, &want).unwrap())
            .unwrap()
            .max(None)
            .unwrap();
        assert!(diff.item_exact::<f32>() < 1e-6);
    }

    #[test]
    fn a_skipped_norm_changes_only_its_layer_and_must_name_a_real_layer() {
        let mut m = model(true);
        let plain = logits(&m);
        assert!(!m.plant_fault(&Fault::SkipNorm { layer: 2 }));
        assert_eq!(logits(&m), plain);
        assert!(m.plant_fault(&Fault::SkipNorm { layer: 1 }));
        assert_ne!(logits(&m), plain);
    }

    #[test]
    fn kv_bytes_and_plan_come_from_the_layers() {
        let m = model(true).with_final_softcap(30.0);
        // 2 layers × 6 numbers × 4 bytes (f32 embeddings).
        assert_eq!(m.kv_bytes_per_token(), 48);
        let plan = m.plan();
        let line = |label: &str| {
            plan.iter()
                .find(|p| p.label == label)
                .map(|p| p.value.clone())
        };
        assert_eq!(line("layers").as_deref(), Some("2"));
        assert_eq!(line("attention pattern").as_deref(), Some("full × 2"));
        assert_eq!(
            line("output head").as_deref(),
            Some("tied to embeddings, final soft-cap 30")
        );
        assert_eq!(line("max context"), None);
    }

    #[test]
    fn a_separate_head_is_required_when_not_tied() {
        let table = Array::from_slice(&[0f32; 20], &[VOCAB, HIDDEN]);
        let mut tensors = TensorMap::new();
        tensors.insert("model.embed_tokens.weight".into(), table);
        tensors.insert(
            "model.norm.weight".into(),
            Array::from_slice(&[1.0f32; 4], &[HIDDEN]),
        );
        let mut w = Weights::new(tensors, "test");
        let _ = CausalLm::<NormOnly>::load(&mut w, spec(false), Vec::new());
        let err = w.finish().unwrap_err().to_string();
        assert!(err.contains("lm_head.weight"), "{err}");
    }
}
