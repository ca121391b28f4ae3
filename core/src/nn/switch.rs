//! The switch layer: a mixture of experts whose weights are stacked once at
//! load, one `[experts, out, in]` tensor per projection, and run with MLX's
//! gathered matmuls (`gather_mm` dense, `gather_qmm` quantized: affine or
//! mxfp4), which read only the experts each token picked.
//!
//! Above [`SORT_THRESHOLD`] (token, expert) pairs, the pairs are sorted by
//! expert first, so that each expert's weights are read once, and the
//! outputs put back in token order afterwards.

use mlx_rs::ops::{self, argsort_axis, gather_mm, gather_qmm};
use mlx_rs::Array;

use super::Activation;
use crate::error::{Error, Result};
use crate::mxfp4::Mxfp4Weight;
use crate::quant::QuantParams;
use crate::weights::{TensorMap, Weights};

/// Sort the (token, expert) pairs by expert once there are this many.
pub const SORT_THRESHOLD: i32 = 64;

/// How one projection of every expert is stored.
#[derive(Debug, Clone)]
enum Stored {
    /// `[E, out, in]`.
    Dense(Array),
    /// MLX affine codes `[E, out, in·bits/32]`, scales and biases `[E, out, groups]`.
    Affine { weight: Array, quant: QuantParams },
    /// MLX mxfp4, `[E, out, in]` logically.
    Mxfp4(Mxfp4Weight),
}

/// One projection of every expert, with an optional bias per expert.
#[derive(Debug, Clone)]
pub struct ExpertStack {
    stored: Stored,
    /// `[E, out]`.
    bias: Option<Array>,
}

impl ExpertStack {
    /// Dense weights `[E, out, in]` and an optional bias `[E, out]`.
    pub fn dense(weight: Array, bias: Option<Array>) -> Self {
        ExpertStack {
            stored: Stored::Dense(weight),
            bias,
        }
    }

    /// An mxfp4 stack and an optional bias `[E, out]`.
    pub fn mxfp4(weight: Mxfp4Weight, bias: Option<Array>) -> Self {
        ExpertStack {
            stored: Stored::Mxfp4(weight),
            bias,
        }
    }

    /// Takes `{prefix}.weight` `[E, out, in]` (affine-quantized when
    /// `{prefix}.scales` is there) and `{prefix}.bias` `[E, out]` when `bias`.
    pub fn load(
        w: &mut Weights,
        prefix: &str,
        experts: usize,
        in_dim: usize,
        out_dim: usize,
        bias: bool,
    ) -> Self {
        let (e, i, o) = (experts as i32, in_dim as i32, out_dim as i32);
        let name = format!("{prefix}.weight");
        let bias = bias.then(|| w.take(&format!("{prefix}.bias"), &[e, o]));
        let scales_name = format!("{prefix}.scales");
        if !w.contains(&scales_name) {
            return ExpertStack::dense(w.take(&name, &[e, o, i]), bias);
        }
        // Quantized: the bits and group size follow from the shapes, as for
        // a single matrix (one row per expert and output).
        let weight = w.take_any(&name);
        let scales = w.take_any(&scales_name);
        let biases = w.take_any(&format!("{prefix}.biases"));
        let stored = match (weight, scales, biases) {
            (Some(weight), Some(scales), Some(biases)) => {
                affine(&weight, scales, biases, experts, out_dim, in_dim).map_err(|message| {
                    w.report_mis_shaped(&name, &message, &[e, o, i], weight.shape());
                })
            }
            (weight, _, biases) => {
                if weight.is_none() {
                    w.report_missing(&name);
                }
                if biases.is_none() {
                    w.report_missing(&format!("{prefix}.biases"));
                }
                Err(())
            }
        };
        ExpertStack {
            stored: stored.unwrap_or_else(|()| Stored::Dense(Array::from_f32(0.0))),
            bias,
        }
    }

    /// `x` `[..., 1, in]` through the experts `indices` picks (broadcasting
    /// with `x`'s batch axes) → `[..., 1, out]`, plus each expert's bias.
    /// `sorted`: `indices` are in ascending order.
    pub fn apply(&self, x: &Array, indices: &Array, sorted: bool) -> Result<Array> {
        let y = match &self.stored {
            Stored::Dense(w) => gather_mm(x, w.swap_axes(-1, -2)?, None, indices, sorted)?,
            Stored::Affine { weight, quant } => gather_qmm(
                x,
                weight,
                &quant.scales,
                &quant.biases,
                None,
                indices,
                true,
                quant.group_size,
                quant.bits,
                sorted,
            )?,
            Stored::Mxfp4(w) => w.gather_matmul(x, indices, sorted)?,
        };
        match &self.bias {
            Some(bias) => Ok(ops::add(&y, bias.take_axis(indices, 0)?.expand_dims(-2)?)?),
            None => Ok(y),
        }
    }
}

/// Infers an affine stack's bits and group size from its shapes.
fn affine(
    weight: &Array,
    scales: Array,
    biases: Array,
    experts: usize,
    rows: usize,
    cols: usize,
) -> std::result::Result<Stored, String> {
    let (w, s) = (weight.shape(), scales.shape());
    if w.len() != 3 || s.len() != 3 || w[0] != experts as i32 || s[0] != experts as i32 {
        return Err(format!(
            "a quantized stack of {experts} experts needs 3-D weight and scales [{experts}, ...]; \
             found weight {w:?}, scales {s:?}"
        ));
    }
    let flat = |a: &Array| a.reshape(&[-1, a.dim(-1)]).map_err(|e| e.to_string());
    let all_rows = experts * rows;
    let quant = QuantParams::infer(
        &flat(weight)?,
        flat(&scales)?,
        flat(&biases)?,
        all_rows,
        cols,
    )?;
    Ok(Stored::Affine {
        weight: weight.clone(),
        quant: QuantParams {
            scales,
            biases,
            ..quant
        },
    })
}

/// What joins the gate and up projections of an expert.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Glu {
    /// `act(gate) · up` (SwiGLU with silu, GeGLU with a gelu).
    Gated(Activation),
    /// gpt-oss: `g · σ(α·g) · (clip(u, −L, L) + 1)` with `g = min(gate, L)`.
    Clamped {
        /// α.
        alpha: f32,
        /// L.
        limit: f32,
    },
}

impl Glu {
    fn apply(self, gate: &Array, up: &Array) -> Result<Array> {
        match self {
            Glu::Gated(act) => Ok(ops::multiply(act.apply(gate)?, up)?),
            Glu::Clamped { alpha, limit } => {
                let gate = ops::minimum(gate, Array::from_f32(limit))?;
                let up = ops::clip(up, (-limit, limit))?;
                let glu = ops::multiply(
                    &gate,
                    ops::sigmoid(ops::multiply(&gate, Array::from_f32(alpha))?)?,
                )?;
                Ok(ops::multiply(&glu, ops::add(&up, Array::from_f32(1.0))?)?)
            }
        }
    }
}

/// Experts that are each a gated MLP: `down(glu(gate(x), up(x)))`.
#[derive(Debug, Clone)]
pub struct SwitchGlu {
    /// `[E, inter, hidden]`.
    pub gate_proj: ExpertStack,
    /// `[E, inter, hidden]`.
    pub up_proj: ExpertStack,
    /// `[E, hidden, inter]`.
    pub down_proj: ExpertStack,
    /// How gate and up combine.
    pub glu: Glu,
}

impl SwitchGlu {
    /// Takes the stacked `{prefix}.{gate,up,down}_proj` (see [`stack_experts`]).
    pub fn load(
        w: &mut Weights,
        prefix: &str,
        experts: usize,
        hidden: usize,
        inter: usize,
        bias: bool,
        glu: Glu,
    ) -> Self {
        let p = |name: &str| format!("{prefix}.{name}");
        SwitchGlu {
            gate_proj: ExpertStack::load(w, &p("gate_proj"), experts, hidden, inter, bias),
            up_proj: ExpertStack::load(w, &p("up_proj"), experts, hidden, inter, bias),
            down_proj: ExpertStack::load(w, &p("down_proj"), experts, inter, hidden, bias),
            glu,
        }
    }

    /// Each token of `x` `[N, H]` through its chosen experts `indices`
    /// `[N, k]` (uint32) → `[N, k, H]`.
    pub fn forward(&self, x: &Array, indices: &Array) -> Result<Array> {
        let (n, k) = (indices.dim(0), indices.dim(1));
        let sort = n * k >= SORT_THRESHOLD;
        // One row vector per token ([N, 1, 1, H]), broadcast over its k
        // experts; or, sorted, one row per (token, expert) pair ([N·k, 1, H]).
        let (rows, idx, inverse) = if sort {
            let flat = indices.reshape(&[-1])?;
            let order = argsort_axis(&flat, 0)?;
            let inverse = argsort_axis(&order, 0)?;
            let token = ops::floor_divide(&order, Array::from_int(k))?;
            let rows = x.take_axis(&token, 0)?.reshape(&[n * k, 1, -1])?;
            (rows, flat.take_axis(&order, 0)?, Some(inverse))
        } else {
            (x.reshape(&[n, 1, 1, -1])?, indices.clone(), None)
        };
        let gate = self.gate_proj.apply(&rows, &idx, sort)?;
        let up = self.up_proj.apply(&rows, &idx, sort)?;
        let out = self
            .down_proj
            .apply(&self.glu.apply(&gate, &up)?, &idx, sort)?;
        let width = out.dim(-1);
        Ok(match inverse {
            Some(inverse) => out
                .reshape(&[n * k, width])?
                .take_axis(&inverse, 0)?
                .reshape(&[n, k, width])?,
            None => out.reshape(&[n, k, width])?,
        })
    }
}

/// `Σ_k weights[n, k] · outputs[n, k, :]`: `[N, k, H]`, `[N, k]` → `[N, H]`.
pub fn combine(outputs: &Array, weights: &Array) -> Result<Array> {
    let weights = weights.as_dtype(outputs.dtype())?.expand_dims(-1)?;
    Ok(ops::multiply(outputs, &weights)?.sum_axis(1, false)?)
}

/// Stacks per-expert tensors `{prefix}.{e}.{name}.{suffix}` (e in
/// `0..experts`) into `{stacked}.{name}.{suffix}` `[experts, ...]`, for each
/// of `names` and each suffix (`weight`, `bias`, `scales`, `biases`) whose
/// every expert is there. An incomplete set is left alone, so that the
/// strict load names what is missing; experts of different shapes are an
/// error.
pub fn stack_experts(
    tensors: &mut TensorMap,
    prefix: &str,
    stacked: &str,
    experts: usize,
    names: &[&str],
) -> Result<()> {
    for name in names {
        for suffix in ["weight", "bias", "scales", "biases"] {
            let keys: Vec<String> = (0..experts)
                .map(|e| format!("{prefix}.{e}.{name}.{suffix}"))
                .collect();
            if experts == 0 || !keys.iter().all(|k| tensors.contains_key(k)) {
                continue;
            }
            let parts: Vec<Array> = keys.iter().filter_map(|k| tensors.remove(k)).collect();
            let shape = parts[0].shape().to_vec();
            if let Some((e, other)) = parts.iter().enumerate().find(|(_, p)| p.shape() != shape) {
                return Err(Error::InvalidInput {
                    expected: format!("every {prefix}.*.{name}.{suffix} of shape {shape:?}"),
                    found: format!("{:?} for expert {e}", other.shape()),
                });
            }
            tensors.insert(format!("{stacked}.{name}.{suffix}"), ops::stack(&parts, 0)?);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mlx_rs::random;

    const E: i32 = 4;
    const H: i32 = 64;
    const I: i32 = 32;

    fn normal(shape: &[i32], seed: u64) -> Array {
        let key = random::key(seed).unwrap();
        random::normal::<f32>(shape, 0.0, 0.5, &key).unwrap()
    }

    fn values(a: &Array) -> Vec<f32> {
        let a = a.as_dtype(mlx_rs::Dtype::Float32).unwrap();
        a.eval().unwrap();
        a.as_slice::<f32>().to_vec()
    }

    fn max_abs_diff(a: &Array, b: &Array) -> f32 {
        assert_eq!(a.shape(), b.shape());
        values(a)
            .iter()
            .zip(values(b))
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    /// Expert `e` of `[E, out, in]` weights applied to row `x` `[in]`, by hand.
    fn expert_by_hand(w: &Array, bias: Option<&Array>, e: i32, x: &Array) -> Array {
        let we = w.take_axis(Array::from_int(e), 0).unwrap();
        let y = ops::matmul(x, we.t()).unwrap();
        match bias {
            Some(b) => ops::add(&y, b.take_axis(Array::from_int(e), 0).unwrap()).unwrap(),
            None => y,
        }
    }

    fn indices(n: i32, k: i32) -> Array {
        let picks: Vec<u32> = (0..n * k).map(|p| ((p * 7 + p / k) % E) as u32).collect();
        Array::from_slice(&picks, &[n, k])
    }

    /// The switch layer against a per-token loop over its experts, below
    /// and above the sort threshold (the sorted dispatch must put every
    /// output back at its token).
    #[test]
    fn switch_glu_equals_each_token_through_its_experts() {
        let (gate, up, down) = (
            normal(&[E, I, H], 1),
            normal(&[E, I, H], 2),
            normal(&[E, H, I], 3),
        );
        let down_bias = normal(&[E, H], 4);
        let layer = SwitchGlu {
            gate_proj: ExpertStack::dense(gate.clone(), None),
            up_proj: ExpertStack::dense(up.clone(), None),
            down_proj: ExpertStack::dense(down.clone(), Some(down_bias.clone())),
            glu: Glu::Gated(Activation::Silu),
        };
        let k = 2;
        for n in [3, SORT_THRESHOLD] {
            let x = normal(&[n, H], 5 + n as u64);
            let idx = indices(n, k);
            let got = layer.forward(&x, &idx).unwrap();
            assert_eq!(got.shape(), &[n, k, H]);
            let ids: Vec<u32> = {
                idx.eval().unwrap();
                idx.as_slice::<u32>().to_vec()
            };
            let mut rows = Vec::new();
            for t in 0..n {
                let xt = x.take_axis(Array::from_int(t), 0).unwrap();
                for j in 0..k {
                    let e = ids[(t * k + j) as usize] as i32;
                    let g = expert_by_hand(&gate, None, e, &xt);
                    let u = expert_by_hand(&up, None, e, &xt);
                    let h = Glu::Gated(Activation::Silu).apply(&g, &u).unwrap();
                    rows.push(expert_by_hand(&down, Some(&down_bias), e, &h));
                }
            }
            let want = ops::stack(&rows, 0).unwrap().reshape(&[n, k, H]).unwrap();
            let diff = max_abs_diff(&got, &want);
            assert!(diff < 1e-4, "{n} tokens: max abs {diff}");
        }
    }

    /// A stack saved affine-quantized (as mlx-lm writes experts) loads with
    /// its bits and group size inferred and multiplies like its
    /// dequantized weights.
    #[test]
    fn an_affine_stack_loads_and_equals_its_dequantized_weights() {
        let dense = normal(&[E, I, H], 7);
        let (codes, scales, biases) = ops::quantize(&dense, 32, 4).unwrap();
        let dequantized = ops::dequantize(&codes, &scales, &biases, 32, 4).unwrap();
        let mut tensors = TensorMap::new();
        tensors.insert("experts.up_proj.weight".into(), codes);
        tensors.insert("experts.up_proj.scales".into(), scales);
        tensors.insert("experts.up_proj.biases".into(), biases);
        let mut w = Weights::new(tensors, "test");
        let stack = ExpertStack::load(
            &mut w,
            "experts.up_proj",
            E as usize,
            H as usize,
            I as usize,
            false,
        );
        w.finish().unwrap();
        let x = normal(&[5, 1, 1, H], 8);
        let idx = indices(5, 2);
        let got = stack.apply(&x, &idx, false).unwrap();
        let want = ExpertStack::dense(dequantized, None)
            .apply(&x, &idx, false)
            .unwrap();
        assert_eq!(got.shape(), &[5, 2, 1, I]);
        let diff = max_abs_diff(&got, &want);
        assert!(diff < 1e-3, "max abs {diff}");
    }

    #[test]
    fn a_mis_shaped_quantized_stack_is_reported_by_name() {
        let (codes, scales, biases) = ops::quantize(normal(&[E, I, H], 9), 32, 4).unwrap();
        let mut tensors = TensorMap::new();
        tensors.insert("experts.down_proj.weight".into(), codes);
        tensors.insert("experts.down_proj.scales".into(), scales);
        tensors.insert("experts.down_proj.biases".into(), biases);
        let mut w = Weights::new(tensors, "test");
        // Expected [E, H, I]: the codes are for [E, I, H].
        ExpertStack::load(
            &mut w,
            "experts.down_proj",
            E as usize,
            I as usize,
            H as usize,
            false,
        );
        let err = w.finish().unwrap_err().to_string();
        assert!(err.contains("experts.down_proj.weight"), "{err}");
    }

    #[test]
    fn per_expert_tensors_are_stacked_in_order() {
        let mut tensors = TensorMap::new();
        for e in 0..3 {
            tensors.insert(
                format!("mlp.experts.{e}.w1.weight"),
                Array::from_slice(&[e as f32; 4], &[2, 2]),
            );
        }
        stack_experts(&mut tensors, "mlp.experts", "mlp.switch", 3, &["w1"]).unwrap();
        let stacked = &tensors["mlp.switch.w1.weight"];
        assert_eq!(tensors.len(), 1);
        assert_eq!(stacked.shape(), &[3, 2, 2]);
        let firsts: Vec<f32> = values(stacked).into_iter().step_by(4).collect();
        assert_eq!(firsts, [0.0, 1.0, 2.0]);
    }
}
