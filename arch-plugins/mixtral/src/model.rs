//! Mixtral on forge-core's decoder base, and the mixture-of-experts parts
//! the Qwen MoE plugins reuse: the softmax top-k router, the sparse MoE
//! block (routed experts on forge-core's switch layer, an optional shared
//! expert behind a sigmoid gate), the MoE decoder layer and the sanitize
//! step that stacks a checkpoint's experts.
//!
//! A layer is RMSNorm → attention → residual, RMSNorm → feed-forward →
//! residual, the feed-forward a dense SwiGLU or a sparse MoE block.

use forge_core::cache::KvCache;
use forge_core::decoder::{
    Attention, AttentionDims, CausalLm, DecoderLayer, DecoderSpec, LayerContext,
};
use forge_core::mlx_rs::ops::indexing::TryIndexOp;
use forge_core::mlx_rs::ops::{self, argpartition_axis};
use forge_core::mlx_rs::{Array, Dtype};
use forge_core::model::{Model, PlanItem};
use forge_core::nn::switch::{combine, stack_experts, Glu, SORT_THRESHOLD};
use forge_core::nn::{Activation, GatedMlp, Linear, RmsNorm, SwitchGlu};
use forge_core::rope::Rope;
use forge_core::{Error, ModelConfig, Result, TensorMap, Weights};
use serde_json::Value;

use crate::config::MixtralArgs;

/// A Mixtral: the decoder base over MoE layers.
pub type Mixtral = CausalLm<MoeLayer>;

/// Builds a Mixtral model from its config and weights.
pub fn build(config: &ModelConfig, weights: &mut Weights) -> Result<Box<dyn Model>> {
    Ok(Box::new(load(config, weights)?))
}

/// Loads a Mixtral from its config and the weights as [`sanitize`] left them.
pub fn load(config: &ModelConfig, weights: &mut Weights) -> Result<Mixtral> {
    let args = MixtralArgs::parse(config)?;
    let rope = args.rope()?;
    let layers = (0..args.num_hidden_layers)
        .map(|i| load_layer(weights, &args, i, rope.clone()))
        .collect();
    let spec = DecoderSpec {
        name: "Mixtral",
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

fn load_layer(w: &mut Weights, args: &MixtralArgs, i: usize, rope: Rope) -> MoeLayer {
    let p = format!("model.layers.{i}");
    let hidden = args.hidden_size;
    let dims = AttentionDims {
        hidden,
        heads: args.num_attention_heads,
        kv_heads: args.kv_heads(),
        head_dim: args.head_dim(),
    };
    let attention = Attention::load(
        w,
        &format!("{p}.self_attn"),
        dims,
        (false, false),
        rope,
        args.sliding_window,
    );
    let moe = SparseMoe::load(
        w,
        &format!("{p}.mlp"),
        MoeDims {
            hidden,
            inter: args.intermediate_size,
            experts: args.num_local_experts,
            top_k: args.num_experts_per_tok,
            renormalize: true,
        },
    );
    MoeLayer::load(
        w,
        &p,
        (hidden, args.rms_norm_eps),
        attention,
        FeedForward::Moe(Box::new(moe)),
    )
}

/// Mixtral's own plan lines.
fn plan(a: &MixtralArgs, layers: &[MoeLayer]) -> Vec<PlanItem> {
    let (attention, rope) = layers
        .first()
        .map(|l| (l.self_attn.describe(), l.self_attn.describe_rope()))
        .unwrap_or_default();
    let experts = layers
        .iter()
        .find_map(|l| l.mlp.moe().map(SparseMoe::describe))
        .unwrap_or_default();
    vec![
        PlanItem::new("attention", attention),
        PlanItem::new("experts", experts),
        PlanItem::new("mlp", "sparse MoE in every layer (no dense layers)"),
        PlanItem::new("norm", format!("RMSNorm, eps {}", a.rms_norm_eps)),
        PlanItem::new("rope", a.rope_parameters.summary()),
        PlanItem::new("rope kernel", rope),
    ]
}

/// The sizes and routing rule of a sparse MoE block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MoeDims {
    /// Width of the residual stream.
    pub hidden: usize,
    /// Width of each routed expert.
    pub inter: usize,
    /// Routed experts.
    pub experts: usize,
    /// Experts chosen per token.
    pub top_k: usize,
    /// The chosen experts' probabilities are rescaled to sum to one.
    pub renormalize: bool,
}

/// The router: a linear layer (no bias) to one logit per expert, a
/// softmax over all of them in float32, the `top_k` most probable experts
/// kept, their probabilities renormalised to sum to one when asked.
#[derive(Debug)]
pub struct TopKRouter {
    /// `[experts, hidden]`.
    pub gate: Linear,
    /// Experts chosen per token.
    pub top_k: usize,
    /// Rescale the chosen probabilities to sum to one.
    pub renormalize: bool,
}

impl TopKRouter {
    /// Routes `x` `[N, hidden]`: the chosen experts `[N, top_k]` (uint32)
    /// and their weights `[N, top_k]` (float32).
    pub fn route(&self, x: &Array) -> Result<(Array, Array)> {
        // The logits in the model's dtype (as HF's linear), the softmax and
        // the choice in float32.
        let logits = self.gate.forward(x)?.as_dtype(Dtype::Float32)?;
        let probs = ops::softmax_axis(&logits, -1, true)?;
        let k = self.top_k as i32;
        let indices = argpartition_axis(ops::negative(&probs)?, k - 1, -1)?.try_index((.., ..k))?;
        let mut weights = probs.take_along_axis(&indices, -1)?;
        if self.renormalize {
            weights = ops::divide(&weights, weights.sum_axis(-1, true)?)?;
        }
        Ok((indices.as_dtype(Dtype::Uint32)?, weights))
    }
}

/// An always-on SwiGLU expert whose output is scaled per token by
/// `sigmoid(gate(x))` (Qwen2-MoE's shared expert).
#[derive(Debug)]
pub struct SharedExpert {
    /// The expert.
    pub mlp: GatedMlp,
    /// `[1, hidden]`.
    pub gate: Linear,
    /// The expert's width.
    pub inter: usize,
}

/// A sparse mixture-of-experts block: routed SwiGLU experts stacked
/// `[E, out, in]` per projection, run by forge-core's switch layer, plus an
/// optional shared expert.
#[derive(Debug)]
pub struct SparseMoe {
    /// Chooses and weighs the experts.
    pub router: TopKRouter,
    /// The routed experts.
    pub experts: SwitchGlu,
    /// The shared expert, when the family has one.
    pub shared: Option<SharedExpert>,
    /// Sizes and routing rule.
    pub dims: MoeDims,
}

impl SparseMoe {
    /// Takes `{prefix}.gate.weight` (the router) and the stacked
    /// `{prefix}.experts.{gate,up,down}_proj` (see [`sanitize_experts`]).
    pub fn load(w: &mut Weights, prefix: &str, dims: MoeDims) -> Self {
        SparseMoe {
            router: TopKRouter {
                gate: Linear::load(
                    w,
                    &format!("{prefix}.gate"),
                    dims.hidden,
                    dims.experts,
                    false,
                ),
                top_k: dims.top_k,
                renormalize: dims.renormalize,
            },
            experts: SwitchGlu::load(
                w,
                &format!("{prefix}.experts"),
                dims.experts,
                dims.hidden,
                dims.inter,
                false,
                Glu::Gated(Activation::Silu),
            ),
            shared: None,
            dims,
        }
    }

    /// Adds `{prefix}.shared_expert` (a SwiGLU of width `inter`) behind
    /// `{prefix}.shared_expert_gate`.
    pub fn with_shared_expert(mut self, w: &mut Weights, prefix: &str, inter: usize) -> Self {
        let hidden = self.dims.hidden;
        self.shared = Some(SharedExpert {
            mlp: GatedMlp::load(
                w,
                &format!("{prefix}.shared_expert"),
                hidden,
                inter,
                false,
                Activation::Silu,
            ),
            gate: Linear::load(w, &format!("{prefix}.shared_expert_gate"), hidden, 1, false),
            inter,
        });
        self
    }

    /// `[B, T, H]` → `[B, T, H]`.
    pub fn forward(&self, x: &Array) -> Result<Array> {
        let shape = x.shape().to_vec();
        let flat = x.reshape(&[-1, x.dim(-1)])?;
        let (indices, weights) = self.router.route(&flat)?;
        let mut out = combine(&self.experts.forward(&flat, &indices)?, &weights)?;
        if let Some(shared) = &self.shared {
            let gate = ops::sigmoid(shared.gate.forward(&flat)?)?;
            out = ops::add(&out, ops::multiply(&gate, shared.mlp.forward(&flat)?)?)?;
        }
        Ok(out.reshape(&shape)?)
    }

    /// One plan line: the experts, the routing rule and the dispatch.
    pub fn describe(&self) -> String {
        let d = self.dims;
        let renorm = if d.renormalize {
            "renormalised to sum to 1"
        } else {
            "not renormalised"
        };
        let shared = match &self.shared {
            Some(s) => format!(
                "; shared SwiGLU expert (intermediate {}) scaled by sigmoid(shared_expert_gate(x))",
                s.inter
            ),
            None => String::new(),
        };
        format!(
            "{} routed SwiGLU experts (intermediate {}), top {} per token; router softmax over \
             all experts in float32, the chosen probabilities {renorm}; experts stacked \
             [E, out, in], gathered matmuls (sorted by expert from {SORT_THRESHOLD} pairs){shared}",
            d.experts, d.inter, d.top_k
        )
    }
}

/// The feed-forward part of a layer.
#[derive(Debug)]
pub enum FeedForward {
    /// A dense SwiGLU.
    Dense(GatedMlp),
    /// A sparse MoE block.
    Moe(Box<SparseMoe>),
}

impl FeedForward {
    /// `[B, T, H]` → `[B, T, H]`.
    pub fn forward(&self, x: &Array) -> Result<Array> {
        match self {
            FeedForward::Dense(mlp) => mlp.forward(x),
            FeedForward::Moe(moe) => moe.forward(x),
        }
    }

    /// The MoE block, if this is one.
    pub fn moe(&self) -> Option<&SparseMoe> {
        match self {
            FeedForward::Dense(_) => None,
            FeedForward::Moe(moe) => Some(moe),
        }
    }
}

/// RMSNorm → attention → residual, RMSNorm → feed-forward → residual.
#[derive(Debug)]
pub struct MoeLayer {
    /// Before attention.
    pub input_layernorm: RmsNorm,
    /// The layer's attention.
    pub self_attn: Attention,
    /// Before the feed-forward.
    pub post_attention_layernorm: RmsNorm,
    /// Dense SwiGLU or sparse MoE.
    pub mlp: FeedForward,
}

impl MoeLayer {
    /// Takes `{prefix}.input_layernorm` and `{prefix}.post_attention_layernorm`
    /// around the loaded attention and feed-forward.
    pub fn load(
        w: &mut Weights,
        prefix: &str,
        (hidden, eps): (usize, f64),
        self_attn: Attention,
        mlp: FeedForward,
    ) -> Self {
        MoeLayer {
            input_layernorm: RmsNorm::load(w, &format!("{prefix}.input_layernorm"), hidden, eps),
            self_attn,
            post_attention_layernorm: RmsNorm::load(
                w,
                &format!("{prefix}.post_attention_layernorm"),
                hidden,
                eps,
            ),
            mlp,
        }
    }
}

impl DecoderLayer for MoeLayer {
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

/// The stacked projections, in forge's names.
const PROJECTIONS: [&str; 3] = ["gate_proj", "up_proj", "down_proj"];

/// The architecture's `sanitize`: Mixtral's `block_sparse_moe` becomes
/// `mlp`, and each layer's experts are stacked (see [`sanitize_experts`];
/// the hub's per-expert names are `w1` gate, `w3` up, `w2` down).
pub fn sanitize(config: &ModelConfig, tensors: TensorMap) -> Result<TensorMap> {
    let layers = config_usize(config, "num_hidden_layers", None)?;
    let experts = match config.json().get("num_experts") {
        Some(_) => config_usize(config, "num_experts", None)?,
        None => config_usize(config, "num_local_experts", Some(8))?,
    };
    let mut tensors: TensorMap = tensors
        .into_iter()
        .map(|(name, t)| (name.replacen(".block_sparse_moe.", ".mlp.", 1), t))
        .collect();
    for i in 0..layers {
        let mlp = format!("model.layers.{i}.mlp");
        sanitize_experts(&mut tensors, &mlp, experts, ["w1", "w3", "w2"])?;
    }
    Ok(tensors)
}

/// Brings one MoE block's experts (under `{mlp}`) to the stacked
/// `{mlp}.experts.{gate,up,down}_proj.{weight,...}` `[E, out, in]` that
/// [`SparseMoe::load`] takes, from any of three layouts:
/// - per expert, as the hub and HF's `save_pretrained` write them:
///   `{mlp}.experts.{e}.{name}.weight` with `names` the gate, up and down
///   projections' names (also quantized: `scales`, `biases`);
/// - fused, as HF holds them in memory: `{mlp}.experts.gate_up_proj`
///   `[E, 2·inter, hidden]` (the gate in the first half of the rows, up in
///   the second) and `{mlp}.experts.down_proj` `[E, hidden, inter]`;
/// - mlx-lm's `{mlp}.switch_mlp.{gate,up,down}_proj.*`, already stacked.
///
/// A layout with tensors missing is left for the strict load to report.
pub fn sanitize_experts(
    tensors: &mut TensorMap,
    mlp: &str,
    experts: usize,
    names: [&str; 3],
) -> Result<()> {
    let switch = format!("{mlp}.switch_mlp.");
    let moved: Vec<String> = tensors
        .keys()
        .filter(|k| k.starts_with(&switch))
        .cloned()
        .collect();
    for name in moved {
        if let Some(t) = tensors.remove(&name) {
            let rest = &name[switch.len()..];
            tensors.insert(format!("{mlp}.experts.{rest}"), t);
        }
    }

    let prefix = format!("{mlp}.experts");
    stack_experts(tensors, &prefix, &prefix, experts, &names)?;
    for (from, to) in names.iter().zip(PROJECTIONS) {
        if *from == to {
            continue;
        }
        for suffix in ["weight", "bias", "scales", "biases"] {
            if let Some(t) = tensors.remove(&format!("{prefix}.{from}.{suffix}")) {
                tensors.insert(format!("{prefix}.{to}.{suffix}"), t);
            }
        }
    }

    if let Some(fused) = tensors.remove(&format!("{prefix}.gate_up_proj")) {
        let rows = if fused.ndim() == 3 { fused.dim(1) } else { -1 };
        if rows <= 0 || rows % 2 != 0 {
            return Err(Error::InvalidInput {
                expected: format!(
                    "{prefix}.gate_up_proj of shape [experts, 2·intermediate, hidden]"
                ),
                found: format!("{:?}", fused.shape()),
            });
        }
        let halves = fused.split_at_indices(&[rows / 2], 1)?;
        tensors.insert(format!("{prefix}.gate_proj.weight"), halves[0].clone());
        tensors.insert(format!("{prefix}.up_proj.weight"), halves[1].clone());
    }
    if let Some(down) = tensors.remove(&format!("{prefix}.down_proj")) {
        tensors.insert(format!("{prefix}.down_proj.weight"), down);
    }
    Ok(())
}

/// A non-negative integer config key (with a default when it is absent).
pub fn config_usize(config: &ModelConfig, key: &str, default: Option<usize>) -> Result<usize> {
    match (config.json().get(key), default) {
        (None, Some(d)) => Ok(d),
        (Some(Value::Number(n)), _) if n.as_u64().is_some() => {
            Ok(n.as_u64().unwrap_or_default() as usize)
        }
        (other, _) => Err(Error::ConfigValue {
            path: config.path().to_path_buf(),
            key: key.into(),
            expected: "a non-negative integer".into(),
            found: other.map_or("no such key".into(), |v| v.to_string()),
        }),
    }
}
