//! The MLPs: the dense SwiGLU of the first layers, and the mixture of
//! experts of the others (a group-limited sigmoid router, routed experts run
//! with `gather_mm` over stacked weights, and always-on shared experts).

use forge_core::mlx_rs::{ops, Array, Dtype};
use forge_core::nn::Linear;
use forge_core::{Result, Weights};

use crate::config::DeepseekV3Args;

/// `silu(x) = x · sigmoid(x)`.
fn silu(x: &Array) -> Result<Array> {
    Ok(ops::multiply(x, ops::sigmoid(x)?)?)
}

/// A SwiGLU MLP: `down(silu(gate(x)) · up(x))`.
#[derive(Debug)]
pub struct Mlp {
    gate_proj: Linear,
    up_proj: Linear,
    down_proj: Linear,
}

impl Mlp {
    /// Takes `{prefix}.{gate,up,down}_proj.weight` (no biases).
    pub fn load(w: &mut Weights, prefix: &str, hidden: usize, inter: usize) -> Self {
        Mlp {
            gate_proj: Linear::load(w, &format!("{prefix}.gate_proj"), hidden, inter, false),
            up_proj: Linear::load(w, &format!("{prefix}.up_proj"), hidden, inter, false),
            down_proj: Linear::load(w, &format!("{prefix}.down_proj"), inter, hidden, false),
        }
    }

    /// `[..., hidden]` → `[..., hidden]`.
    pub fn forward(&self, x: &Array) -> Result<Array> {
        let hidden = ops::multiply(silu(&self.gate_proj.forward(x)?)?, self.up_proj.forward(x)?)?;
        self.down_proj.forward(&hidden)
    }
}

/// DeepSeek-V3's router (`noaux_tc`), computed in f32.
#[derive(Debug)]
pub struct Router {
    /// `[experts, hidden]`, f32.
    weight: Array,
    /// `[experts]`, f32: added to the scores to choose experts, never to weigh them.
    correction_bias: Array,
    experts: i32,
    groups: i32,
    topk_group: i32,
    top_k: i32,
    norm_topk_prob: bool,
    scaling: f32,
}

impl Router {
    /// Takes `{prefix}.weight` and `{prefix}.e_score_correction_bias`.
    pub fn load(w: &mut Weights, args: &DeepseekV3Args, prefix: &str) -> Result<Self> {
        let experts = args.n_routed_experts as i32;
        let weight = w.take(
            &format!("{prefix}.weight"),
            &[experts, args.hidden_size as i32],
        );
        let bias = w.take(&format!("{prefix}.e_score_correction_bias"), &[experts]);
        Ok(Router {
            weight: weight.as_dtype(Dtype::Float32)?,
            correction_bias: bias.as_dtype(Dtype::Float32)?,
            experts,
            groups: args.n_group as i32,
            topk_group: args.topk_group as i32,
            top_k: args.num_experts_per_tok as i32,
            norm_topk_prob: args.norm_topk_prob,
            scaling: args.routed_scaling_factor as f32,
        })
    }

    /// Routes `x` `[N, hidden]`: the chosen experts `[N, top_k]` (uint32) and
    /// their weights `[N, top_k]` (f32).
    ///
    /// Scores are `sigmoid(x Wᵀ)`. Choosing uses the scores plus the
    /// correction bias: each group of experts is rated by the sum of its two
    /// best, only the best `topk_group` groups stay eligible, and the
    /// `top_k` best eligible experts are chosen. Their weights are the plain
    /// scores, normalized to sum to one when `norm_topk_prob`, times
    /// `routed_scaling_factor`.
    pub fn route(&self, x: &Array) -> Result<(Array, Array)> {
        let logits = ops::matmul(x.as_dtype(Dtype::Float32)?, self.weight.t())?;
        let scores = ops::sigmoid(&logits)?;
        let choice = ops::add(&scores, &self.correction_bias)?;
        let choice = if self.topk_group < self.groups {
            self.keep_best_groups(&choice)?
        } else {
            choice
        };
        let order = ops::argpartition_axis(ops::negative(&choice)?, self.top_k - 1, -1)?;
        let indices = order.split_at_indices(&[self.top_k], -1)?.swap_remove(0);
        let mut weights = scores.take_along_axis(&indices, -1)?;
        if self.norm_topk_prob {
            let total = ops::add(weights.sum_axis(-1, true)?, Array::from_f32(1e-20))?;
            weights = ops::divide(&weights, &total)?;
        }
        let weights = ops::multiply(&weights, Array::from_f32(self.scaling))?;
        Ok((indices, weights))
    }

    /// Sets the choice score of every expert outside the best `topk_group`
    /// groups to -inf.
    fn keep_best_groups(&self, choice: &Array) -> Result<Array> {
        let n = choice.dim(0);
        let per_group = self.experts / self.groups;
        let grouped = choice.reshape(&[n, self.groups, per_group])?;
        // Each group's rating: the sum of its two best experts.
        let sorted = ops::sort_axis(&grouped, -1)?;
        let best_two = sorted
            .split_at_indices(&[per_group - 2], -1)?
            .swap_remove(1);
        let rating = best_two.sum_axis(-1, false)?;
        // The topk_group-th best rating is the bar a group must reach.
        let bar = ops::sort_axis(&rating, -1)?
            .take_axis(Array::from_int(self.groups - self.topk_group), -1)?
            .reshape(&[n, 1])?;
        let kept = rating.ge(&bar)?.reshape(&[n, self.groups, 1])?;
        let masked = ops::select(&kept, &grouped, Array::from_f32(f32::NEG_INFINITY))?;
        Ok(masked.reshape(&[n, self.experts])?)
    }
}

/// Routed experts with weights stacked per expert: `gate`/`up` `[E, I, H]`,
/// `down` `[E, H, I]`, stored transposed for `gather_mm`.
#[derive(Debug)]
pub struct Experts {
    gate_t: Array,
    up_t: Array,
    down_t: Array,
}

impl Experts {
    /// Takes the stacked `{prefix}.{gate,up,down}_proj.weight` that
    /// [`crate::weights::sanitize`] builds from HF's per-expert tensors.
    pub fn load(w: &mut Weights, args: &DeepseekV3Args, prefix: &str) -> Result<Self> {
        let e = args.n_routed_experts as i32;
        let (h, i) = (args.hidden_size as i32, args.moe_intermediate_size as i32);
        let mut take = |name: &str, shape: &[i32]| -> Result<Array> {
            let a = w.take(&format!("{prefix}.{name}.weight"), shape);
            // The placeholder of a missing tensor is 1-D; the loader reports it.
            Ok(if a.ndim() == 3 {
                a.swap_axes(-1, -2)?
            } else {
                a
            })
        };
        Ok(Experts {
            gate_t: take("gate_proj", &[e, i, h])?,
            up_t: take("up_proj", &[e, i, h])?,
            down_t: take("down_proj", &[e, h, i])?,
        })
    }

    /// `x` `[N, H]`, `indices`/`weights` `[N, k]` → `Σ_k weight · expert_k(x)` `[N, H]`.
    pub fn forward(&self, x: &Array, indices: &Array, weights: &Array) -> Result<Array> {
        let (n, h) = (x.dim(0), x.dim(1));
        // [N, 1, 1, H] against the experts chosen per token → [N, k, 1, ·].
        let x = x.reshape(&[n, 1, 1, h])?;
        let gate = ops::gather_mm(&x, &self.gate_t, None, indices, None)?;
        let up = ops::gather_mm(&x, &self.up_t, None, indices, None)?;
        let hidden = ops::multiply(silu(&gate)?, &up)?;
        let out = ops::gather_mm(&hidden, &self.down_t, None, indices, None)?;
        let k = indices.dim(1);
        let out = out.reshape(&[n, k, h])?;
        let weights = weights.as_dtype(out.dtype())?.reshape(&[n, k, 1])?;
        Ok(ops::multiply(&out, &weights)?.sum_axis(1, false)?)
    }
}

/// A mixture-of-experts MLP.
#[derive(Debug)]
pub struct Moe {
    router: Router,
    experts: Experts,
    shared_experts: Option<Mlp>,
}

impl Moe {
    /// Takes `{prefix}.gate.*`, the stacked `{prefix}.experts.*` and `{prefix}.shared_experts.*`.
    pub fn load(w: &mut Weights, args: &DeepseekV3Args, prefix: &str) -> Result<Self> {
        let shared_experts = (args.n_shared_experts > 0).then(|| {
            Mlp::load(
                w,
                &format!("{prefix}.shared_experts"),
                args.hidden_size,
                args.moe_intermediate_size * args.n_shared_experts,
            )
        });
        Ok(Moe {
            router: Router::load(w, args, &format!("{prefix}.gate"))?,
            experts: Experts::load(w, args, &format!("{prefix}.experts"))?,
            shared_experts,
        })
    }

    /// `[B, T, H]` → `[B, T, H]`.
    pub fn forward(&self, x: &Array) -> Result<Array> {
        let shape = x.shape().to_vec();
        let flat = x.reshape(&[-1, x.dim(-1)])?;
        let (indices, weights) = self.router.route(&flat)?;
        let routed = self
            .experts
            .forward(&flat, &indices, &weights)?
            .reshape(&shape)?;
        match &self.shared_experts {
            Some(shared) => Ok(ops::add(&routed, shared.forward(x)?)?),
            None => Ok(routed),
        }
    }
}

/// The MLP of one decoder layer.
#[derive(Debug)]
pub enum FeedForward {
    /// The first `first_k_dense_replace` layers.
    Dense(Mlp),
    /// The rest.
    Moe(Box<Moe>),
}

impl FeedForward {
    /// `[B, T, H]` → `[B, T, H]`.
    pub fn forward(&self, x: &Array) -> Result<Array> {
        match self {
            FeedForward::Dense(mlp) => mlp.forward(x),
            FeedForward::Moe(moe) => moe.forward(x),
        }
    }
}
