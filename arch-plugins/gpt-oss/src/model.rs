//! The gpt-oss decoder layer: RMSNorm → attention with learned sinks →
//! residual, RMSNorm → mixture of experts → residual. Everything around the
//! layers is forge-core's decoder base.
//!
//! The mixture of experts: a biased linear router picks the top-k experts
//! per token, a softmax over the chosen logits weighs them, and each expert
//! is a clamped SwiGLU with biases, run on forge-core's switch layer. The
//! checkpoint fuses gate and up into one projection whose outputs
//! interleave them (gate at even, up at odd positions); loading splits it.
//! Expert weights come dense (transformers' `[E, in, out]`) or as the
//! released MXFP4 blocks and scales.

use forge_core::cache::KvCache;
use forge_core::decoder::{
    Attention, AttentionDims, CausalLm, DecoderLayer, DecoderSpec, LayerContext,
};
use forge_core::mlx_rs::ops::indexing::TryIndexOp;
use forge_core::mlx_rs::ops::{self, argpartition_axis};
use forge_core::mlx_rs::{Array, Dtype};
use forge_core::model::{Model, PlanItem};
use forge_core::mxfp4::Mxfp4Weight;
use forge_core::nn::switch::{combine, Glu};
use forge_core::nn::{ExpertStack, Linear, RmsNorm, SwitchGlu};
use forge_core::rope::Rope;
use forge_core::{Error, ModelConfig, Result, Weights};

use crate::config::GptOssArgs;

/// A gpt-oss model: the decoder base over gpt-oss layers.
pub type GptOss = CausalLm<GptOssLayer>;

/// Builds a gpt-oss model from its config and weights.
pub fn build(config: &ModelConfig, weights: &mut Weights) -> Result<Box<dyn Model>> {
    let args = GptOssArgs::parse(config)?;
    let rope = args.rope()?;
    let layers = args
        .windows(config)?
        .into_iter()
        .enumerate()
        .map(|(i, window)| GptOssLayer::load(weights, &args, i, window, rope.clone()))
        .collect::<Result<Vec<_>>>()?;
    let spec = DecoderSpec {
        name: "gpt-oss",
        vocab_size: args.vocab_size,
        hidden_size: args.hidden_size,
        rms_norm_eps: args.rms_norm_eps,
        tie_word_embeddings: args.tie_word_embeddings,
        max_context: Some(args.max_position_embeddings),
    };
    let model = CausalLm::load(weights, spec, layers)?;
    let plan = plan(&args, model.layers());
    Ok(Box::new(model.with_plan(plan)))
}

/// One gpt-oss decoder layer.
#[derive(Debug)]
pub struct GptOssLayer {
    input_layernorm: RmsNorm,
    self_attn: Attention,
    post_attention_layernorm: RmsNorm,
    mlp: MoeBlock,
}

impl GptOssLayer {
    fn load(
        w: &mut Weights,
        args: &GptOssArgs,
        i: usize,
        window: Option<usize>,
        rope: Rope,
    ) -> Result<Self> {
        let p = format!("model.layers.{i}");
        let (hidden, eps) = (args.hidden_size, args.rms_norm_eps);
        let dims = AttentionDims {
            hidden,
            heads: args.num_attention_heads,
            kv_heads: args.num_key_value_heads,
            head_dim: args.head_dim(),
        };
        let bias = args.attention_bias;
        let mut self_attn = Attention::load(
            w,
            &format!("{p}.self_attn"),
            dims,
            (bias, bias),
            rope,
            window,
        );
        let heads = [args.num_attention_heads as i32];
        self_attn.sinks = Some(w.take(&format!("{p}.self_attn.sinks"), &heads));
        Ok(GptOssLayer {
            input_layernorm: RmsNorm::load(w, &format!("{p}.input_layernorm"), hidden, eps),
            self_attn,
            post_attention_layernorm: RmsNorm::load(
                w,
                &format!("{p}.post_attention_layernorm"),
                hidden,
                eps,
            ),
            mlp: MoeBlock::load(w, &format!("{p}.mlp"), args)?,
        })
    }
}

impl DecoderLayer for GptOssLayer {
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

/// The router and experts of one layer.
#[derive(Debug)]
struct MoeBlock {
    router: Linear,
    experts: SwitchGlu,
    top_k: i32,
}

impl MoeBlock {
    /// Takes `{prefix}.router.*` and `{prefix}.experts.*`.
    fn load(w: &mut Weights, prefix: &str, args: &GptOssArgs) -> Result<Self> {
        let (h, i, e) = (
            args.hidden_size,
            args.intermediate_size,
            args.num_local_experts,
        );
        let p = format!("{prefix}.experts");
        let (gate, up) = fused_gate_up(w, &p, args)?;
        let down_bias = w.take(&format!("{p}.down_proj_bias"), &[e as i32, h as i32]);
        let down = expert_matrices(w, &format!("{p}.down_proj"), e, i, h, args.is_mxfp4())?;
        let down_proj = match down {
            Matrices::Dense(m) => ExpertStack::dense(transposed(&m)?, Some(down_bias)),
            Matrices::Mxfp4(m) => ExpertStack::mxfp4(m, Some(down_bias)),
        };
        Ok(MoeBlock {
            router: Linear::load(w, &format!("{prefix}.router"), h, e, true),
            experts: SwitchGlu {
                gate_proj: gate,
                up_proj: up,
                down_proj,
                glu: Glu::Clamped {
                    alpha: args.swiglu_alpha as f32,
                    limit: args.swiglu_limit as f32,
                },
            },
            top_k: args.num_experts_per_tok as i32,
        })
    }

    /// `[B, T, H]` → `[B, T, H]`.
    fn forward(&self, x: &Array) -> Result<Array> {
        let (b, t, h) = (x.dim(0), x.dim(1), x.dim(2));
        let x = x.reshape(&[b * t, h])?;
        let logits = self.router.forward(&x)?;
        let k = self.top_k;
        let indices =
            argpartition_axis(ops::negative(&logits)?, k - 1, -1)?.try_index((.., ..k))?;
        let weights = ops::softmax_axis(logits.take_along_axis(&indices, -1)?, -1, true)?;
        let out = self
            .experts
            .forward(&x, &indices.as_dtype(Dtype::Uint32)?)?;
        Ok(combine(&out, &weights)?.reshape(&[b, t, h])?)
    }
}

/// An expert projection as the checkpoint stores it.
enum Matrices {
    /// `[E, in, out]` (`x @ W[e]`).
    Dense(Array),
    /// MXFP4, `[E, out, in]` logically.
    Mxfp4(Mxfp4Weight),
}

/// Takes `{name}` dense `[E, in, out]`, or `{name}_blocks` and
/// `{name}_scales` when the checkpoint is MXFP4.
fn expert_matrices(
    w: &mut Weights,
    name: &str,
    experts: usize,
    in_dim: usize,
    out_dim: usize,
    mxfp4: bool,
) -> Result<Matrices> {
    let (e, i, o) = (experts as i32, in_dim as i32, out_dim as i32);
    if !mxfp4 {
        return Ok(Matrices::Dense(w.take(name, &[e, i, o])));
    }
    if !in_dim.is_multiple_of(32) {
        return Err(Error::InvalidInput {
            expected: format!("{name}: an input width divisible by 32 for MXFP4"),
            found: in_dim.to_string(),
        });
    }
    let groups = i / 32;
    let blocks = w.take(&format!("{name}_blocks"), &[e, o, groups, 16]);
    let scales = w.take(&format!("{name}_scales"), &[e, o, groups]);
    if blocks.size() == 0 || scales.size() == 0 {
        // Missing or mis-shaped: `Weights::finish` reports it.
        return Ok(Matrices::Dense(blocks));
    }
    Ok(Matrices::Mxfp4(Mxfp4Weight::from_blocks(
        name, &blocks, &scales,
    )?))
}

/// The fused `gate_up_proj` (and its bias) split into the gate (even
/// outputs) and up (odd outputs) stacks.
fn fused_gate_up(
    w: &mut Weights,
    prefix: &str,
    args: &GptOssArgs,
) -> Result<(ExpertStack, ExpertStack)> {
    let (h, i, e) = (
        args.hidden_size,
        args.intermediate_size,
        args.num_local_experts,
    );
    let name = format!("{prefix}.gate_up_proj");
    let bias = w.take(&format!("{name}_bias"), &[e as i32, 2 * i as i32]);
    let fused = expert_matrices(w, &name, e, h, 2 * i, args.is_mxfp4())?;
    let (even, odd) = (strided(2 * i, 0), strided(2 * i, 1));
    let bias_part = |rows: &Array| -> Result<Option<Array>> {
        Ok(Some(if bias.ndim() == 2 {
            bias.take_axis(rows, 1)?
        } else {
            bias.clone()
        }))
    };
    Ok(match fused {
        Matrices::Dense(m) if m.ndim() == 3 => {
            let m = transposed(&m)?;
            (
                ExpertStack::dense(m.take_axis(&even, 1)?, bias_part(&even)?),
                ExpertStack::dense(m.take_axis(&odd, 1)?, bias_part(&odd)?),
            )
        }
        // A placeholder for a missing tensor: the loader reports it.
        Matrices::Dense(m) => (
            ExpertStack::dense(m.clone(), None),
            ExpertStack::dense(m, None),
        ),
        Matrices::Mxfp4(m) => (
            ExpertStack::mxfp4(m.rows(&even)?, bias_part(&even)?),
            ExpertStack::mxfp4(m.rows(&odd)?, bias_part(&odd)?),
        ),
    })
}

/// `first, first + 2, ...` below `n`.
fn strided(n: usize, first: usize) -> Array {
    let picks: Vec<i32> = (first..n).step_by(2).map(|p| p as i32).collect();
    let len = picks.len() as i32;
    Array::from_slice(&picks, &[len])
}

/// `[E, in, out]` → `[E, out, in]` (a placeholder stays as it is).
fn transposed(m: &Array) -> Result<Array> {
    if m.ndim() == 3 {
        Ok(m.swap_axes(-1, -2)?)
    } else {
        Ok(m.clone())
    }
}

/// gpt-oss's own plan lines.
fn plan(a: &GptOssArgs, layers: &[GptOssLayer]) -> Vec<PlanItem> {
    let (attention, rope) = layers
        .first()
        .map(|l| (l.self_attn.describe(), l.self_attn.describe_rope()))
        .unwrap_or_default();
    let rope_summary = a
        .rope_parameters
        .as_ref()
        .map(|p| p.summary())
        .unwrap_or_else(|| "released gpt-oss yarn (config has none)".into());
    vec![
        PlanItem::new("attention", attention),
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
    ]
}
