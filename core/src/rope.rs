//! Rotary position embeddings: the variants Hugging Face defines (default,
//! linear, dynamic, llama3, yarn, longrope), shared by every architecture.
//!
//! Configs come in two layouts. transformers 4 writes `rope_theta` and a
//! `rope_scaling` object (with `type` or `rope_type`); transformers 5 writes
//! one `rope_parameters` object with `rope_theta` inside. Forge normalizes
//! both to the transformers-5 layout before a plugin parses its args, so a
//! plugin only ever sees [`RopeParameters`].

use std::f64::consts::PI;

use mlx_rs::{fast, ops, Array};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// Which rope variant, as HF names it in `rope_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RopeType {
    /// Plain RoPE.
    #[default]
    Default,
    /// Positions divided by `factor`.
    Linear,
    /// NTK-aware base that grows once the sequence passes the trained length.
    Dynamic,
    /// Llama 3.1's per-frequency interpolation.
    Llama3,
    /// YaRN: ramped interpolation plus an attention temperature.
    Yarn,
    /// LongRoPE (Phi-3): per-frequency factors, `short_factor` while the
    /// sequence fits the original context and `long_factor` past it, plus
    /// an attention factor. Phi-3 configs once called it "su".
    #[serde(alias = "su")]
    Longrope,
}

/// The rope settings of a config, in the transformers-5 layout.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
pub struct RopeParameters {
    /// The variant.
    #[serde(default)]
    pub rope_type: RopeType,
    /// The base θ; `None` when the config has none (the plugin's default applies).
    pub rope_theta: Option<f64>,
    /// Scaling factor (linear, dynamic, llama3, yarn).
    pub factor: Option<f64>,
    /// The context the model was trained on before scaling.
    pub original_max_position_embeddings: Option<usize>,
    /// llama3: low-frequency factor.
    pub low_freq_factor: Option<f64>,
    /// llama3: high-frequency factor.
    pub high_freq_factor: Option<f64>,
    /// yarn: fast boundary of the ramp (rotations).
    pub beta_fast: Option<f64>,
    /// yarn: slow boundary of the ramp (rotations).
    pub beta_slow: Option<f64>,
    /// yarn: mscale numerator (DeepSeek).
    pub mscale: Option<f64>,
    /// yarn: mscale denominator (DeepSeek).
    pub mscale_all_dim: Option<f64>,
    /// yarn: explicit attention factor.
    pub attention_factor: Option<f64>,
    /// yarn: round the correction range to whole dimensions (HF default true).
    pub truncate: Option<bool>,
    /// Fraction of head_dim that is rotated (when given inside rope_parameters).
    pub partial_rotary_factor: Option<f64>,
    /// longrope: wavelength multipliers, one per rotated pair, used while
    /// the sequence is within the original context.
    pub short_factor: Option<Vec<f64>>,
    /// longrope: wavelength multipliers used once the sequence is longer.
    pub long_factor: Option<Vec<f64>>,
}

impl RopeParameters {
    /// "llama3, rope_theta 10000, factor 8, ..." listing the values that are set.
    pub fn summary(&self) -> String {
        let mut parts = vec![format!("{:?}", self.rope_type).to_lowercase()];
        let numbers = [
            ("rope_theta", self.rope_theta),
            ("factor", self.factor),
            (
                "original_max_position_embeddings",
                self.original_max_position_embeddings.map(|v| v as f64),
            ),
            ("low_freq_factor", self.low_freq_factor),
            ("high_freq_factor", self.high_freq_factor),
            ("beta_fast", self.beta_fast),
            ("beta_slow", self.beta_slow),
            ("mscale", self.mscale),
            ("mscale_all_dim", self.mscale_all_dim),
            ("attention_factor", self.attention_factor),
            ("partial_rotary_factor", self.partial_rotary_factor),
        ];
        for (name, value) in numbers {
            if let Some(v) = value {
                parts.push(format!("{name} {v}"));
            }
        }
        if let Some(t) = self.truncate {
            parts.push(format!("truncate {t}"));
        }
        for (name, list) in [
            ("short_factor", &self.short_factor),
            ("long_factor", &self.long_factor),
        ] {
            if let Some(list) = list {
                parts.push(format!("{name} [{} values]", list.len()));
            }
        }
        parts.join(", ")
    }
}

/// Rewrites transformers-4 rope keys (`rope_theta`, `rope_scaling`) into a
/// transformers-5 `rope_parameters` object, in place. Errors are
/// (key, expected, found).
pub(crate) fn normalize_rope_keys(
    json: &mut Map<String, Value>,
) -> std::result::Result<(), (String, String, String)> {
    let theta = json.remove("rope_theta");
    let scaling = json.remove("rope_scaling");
    let had_params = matches!(json.get("rope_parameters"), Some(Value::Object(_)));
    let mut params = match json.remove("rope_parameters") {
        Some(Value::Object(p)) => p,
        Some(Value::Null) | None => Map::new(),
        Some(other) => {
            return Err((
                "rope_parameters".into(),
                "an object".into(),
                other.to_string(),
            ))
        }
    };
    match scaling {
        Some(Value::Object(s)) => {
            for (k, v) in s {
                let k = if k == "type" {
                    "rope_type".to_string()
                } else {
                    k
                };
                params.entry(k).or_insert(v);
            }
        }
        Some(Value::Null) | None => {}
        Some(other) => {
            return Err((
                "rope_scaling".into(),
                "an object or null".into(),
                other.to_string(),
            ))
        }
    }
    if let Some(theta) = theta {
        params.entry("rope_theta").or_insert(theta);
    }
    // A config without rope settings gets none: an architecture without
    // rope must not see (and report) a key the file never had.
    if had_params || !params.is_empty() {
        json.insert("rope_parameters".into(), Value::Object(params));
    }
    Ok(())
}

/// A ready-to-apply rotary embedding for one attention layer.
#[derive(Debug, Clone)]
pub struct Rope {
    dims: i32,
    traditional: bool,
    kind: RopeKind,
    /// Multiplier folded into cos and sin (YaRN's attention factor).
    mscale: f32,
    /// What it was built from, so that a variant can be rebuilt.
    source: RopeSource,
}

/// The arguments [`Rope::new`] was given.
#[derive(Debug, Clone)]
struct RopeSource {
    params: RopeParameters,
    default_theta: f64,
    max_position_embeddings: usize,
}

#[derive(Debug, Clone)]
enum RopeKind {
    /// θ and a position scale (default and linear).
    Base { base: f32, scale: f32 },
    /// Explicit per-pair wavelengths (llama3, yarn), as MLX's `freqs` wants them.
    Freqs(Array),
    /// Dynamic NTK: the base depends on the total sequence length.
    Dynamic {
        base: f64,
        factor: f64,
        max_positions: f64,
    },
    /// LongRoPE: `short` wavelengths while offset + length ≤ `original`,
    /// `long` ones past it (HF picks per forward call from the largest
    /// position, so earlier cached keys keep their rotation).
    LongRope {
        short: Array,
        long: Array,
        original: i32,
    },
}

impl Rope {
    /// Builds the rope for `dims` rotated dimensions.
    ///
    /// `default_theta` applies when the config has no `rope_theta`;
    /// `max_position_embeddings` is the config's (used by dynamic and as the
    /// fallback original context); `traditional` selects the interleaved
    /// layout (pairs `(2i, 2i+1)`) instead of HF's rotate-half.
    pub fn new(
        params: &RopeParameters,
        dims: usize,
        default_theta: f64,
        max_position_embeddings: usize,
        traditional: bool,
    ) -> Result<Self> {
        let base = params.rope_theta.unwrap_or(default_theta);
        let need = |name: &str, v: Option<f64>| {
            v.ok_or_else(|| Error::InvalidInput {
                expected: format!(
                    "rope_parameters.{name} for rope_type {:?}",
                    params.rope_type
                ),
                found: "no value".into(),
            })
        };
        let original = params
            .original_max_position_embeddings
            .unwrap_or(max_position_embeddings) as f64;
        let (kind, mscale) = match params.rope_type {
            RopeType::Default => (
                RopeKind::Base {
                    base: base as f32,
                    scale: 1.0,
                },
                1.0,
            ),
            RopeType::Linear => {
                let factor = need("factor", params.factor)?;
                (
                    RopeKind::Base {
                        base: base as f32,
                        scale: (1.0 / factor) as f32,
                    },
                    1.0,
                )
            }
            RopeType::Dynamic => (
                RopeKind::Dynamic {
                    base,
                    factor: need("factor", params.factor)?,
                    // HF grows the base past max_position_embeddings itself.
                    max_positions: max_position_embeddings as f64,
                },
                1.0,
            ),
            RopeType::Llama3 => {
                let inv = llama3_inv_freq(
                    base,
                    dims,
                    need("factor", params.factor)?,
                    need("low_freq_factor", params.low_freq_factor)?,
                    need("high_freq_factor", params.high_freq_factor)?,
                    original,
                );
                (RopeKind::Freqs(wavelengths(&inv)), 1.0)
            }
            RopeType::Yarn => {
                let (inv, attention) =
                    yarn(params, base, dims, original, max_position_embeddings as f64)?;
                (RopeKind::Freqs(wavelengths(&inv)), attention as f32)
            }
            RopeType::Longrope => {
                let factors = |name: &str, list: &Option<Vec<f64>>| -> Result<Array> {
                    let list = list.as_ref().ok_or_else(|| Error::InvalidInput {
                        expected: format!("rope_parameters.{name} for rope_type longrope"),
                        found: "no value".into(),
                    })?;
                    longrope_wavelengths(base, dims, list).ok_or_else(|| Error::InvalidInput {
                        expected: format!(
                            "rope_parameters.{name} with {} values (half the rotated dims)",
                            dims / 2
                        ),
                        found: format!("{} values", list.len()),
                    })
                };
                // Without a factor, HF uses the ratio of the two context lengths.
                let factor = params
                    .factor
                    .unwrap_or(max_position_embeddings as f64 / original);
                let attention = params.attention_factor.unwrap_or(if factor <= 1.0 {
                    1.0
                } else {
                    (1.0 + factor.ln() / original.ln()).sqrt()
                });
                let kind = RopeKind::LongRope {
                    short: factors("short_factor", &params.short_factor)?,
                    long: factors("long_factor", &params.long_factor)?,
                    original: original as i32,
                };
                (kind, attention as f32)
            }
        };
        Ok(Rope {
            dims: dims as i32,
            traditional,
            kind,
            mscale,
            source: RopeSource {
                params: params.clone(),
                default_theta,
                max_position_embeddings,
            },
        })
    }

    /// The same rope with base `theta` (the harness plants a wrong θ).
    pub fn with_theta(&self, theta: f64) -> Result<Rope> {
        let mut params = self.source.params.clone();
        params.rope_theta = Some(theta);
        Rope::new(
            &params,
            self.dims(),
            self.source.default_theta,
            self.source.max_position_embeddings,
            self.traditional,
        )
    }

    /// Number of rotated dimensions.
    pub fn dims(&self) -> usize {
        self.dims as usize
    }

    /// The factor folded into cos/sin (1 except for YaRN).
    pub fn mscale(&self) -> f32 {
        self.mscale
    }

    /// Rotates `x` of shape `[B, heads, T, head_dim]` whose first position
    /// is `offset`.
    pub fn apply(&self, x: &Array, offset: i32) -> Result<Array> {
        let x = if self.mscale != 1.0 {
            scale_rotated_part(x, self.dims, self.mscale)?
        } else {
            x.clone()
        };
        let out = match &self.kind {
            RopeKind::Base { base, scale } => {
                fast::rope(&x, self.dims, self.traditional, *base, *scale, offset, None)?
            }
            RopeKind::Freqs(freqs) => {
                fast::rope(&x, self.dims, self.traditional, None, 1.0, offset, freqs)?
            }
            RopeKind::Dynamic {
                base,
                factor,
                max_positions,
            } => {
                let seq_len = (offset + x.dim(-2)) as f64;
                let base = dynamic_base(*base, *factor, *max_positions, seq_len, self.dims as f64);
                fast::rope(
                    &x,
                    self.dims,
                    self.traditional,
                    base as f32,
                    1.0,
                    offset,
                    None,
                )?
            }
            RopeKind::LongRope {
                short,
                long,
                original,
            } => {
                let freqs = if offset + x.dim(-2) > *original {
                    long
                } else {
                    short
                };
                fast::rope(&x, self.dims, self.traditional, None, 1.0, offset, freqs)?
            }
        };
        Ok(out)
    }

    /// A short human description, for `forge inspect`.
    pub fn describe(&self) -> String {
        let layout = if self.traditional {
            "interleaved"
        } else {
            "rotate-half"
        };
        match &self.kind {
            RopeKind::Base { base, scale } => {
                format!("dims {}, {layout}, base {base}, position scale {scale}", self.dims)
            }
            RopeKind::Freqs(_) => format!(
                "dims {}, {layout}, explicit frequencies, attention factor {}",
                self.dims, self.mscale
            ),
            RopeKind::Dynamic { base, factor, max_positions } => format!(
                "dims {}, {layout}, dynamic NTK base {base} factor {factor} beyond {max_positions} positions",
                self.dims
            ),
            RopeKind::LongRope { original, .. } => format!(
                "dims {}, {layout}, longrope: short factors up to {original} positions, long ones past it, attention factor {}",
                self.dims, self.mscale
            ),
        }
    }
}

/// `x * s` on the rotated part only (YaRN scales cos and sin, which equals
/// scaling the input of the rotation).
fn scale_rotated_part(x: &Array, dims: i32, s: f32) -> Result<Array> {
    let head_dim = x.dim(-1);
    if dims == head_dim {
        return Ok(ops::multiply(x, Array::from_f32(s))?);
    }
    let parts = x.split_at_indices(&[dims], -1)?;
    let rotated = ops::multiply(&parts[0], Array::from_f32(s))?;
    Ok(ops::concatenate(&[rotated, parts[1].clone()], -1)?)
}

/// HF's default inverse frequencies: `1 / base^(2i/dims)`, computed in f32 as
/// torch does.
pub fn default_inv_freq(base: f64, dims: usize) -> Vec<f64> {
    (0..dims / 2)
        .map(|i| {
            let exponent = (2 * i) as f32 / dims as f32;
            (1.0f32 / (base as f32).powf(exponent)) as f64
        })
        .collect()
}

/// LongRoPE's wavelengths `factor_i · base^(2i/dims)` in f32, as torch
/// computes them; `None` when there is not one factor per rotated pair.
fn longrope_wavelengths(base: f64, dims: usize, factors: &[f64]) -> Option<Array> {
    if factors.len() != dims / 2 {
        return None;
    }
    let waves: Vec<f32> = factors
        .iter()
        .enumerate()
        .map(|(i, &f)| f as f32 * (base as f32).powf((2 * i) as f32 / dims as f32))
        .collect();
    Some(Array::from_slice(&waves, &[waves.len() as i32]))
}

fn wavelengths(inv_freq: &[f64]) -> Array {
    let freqs: Vec<f32> = inv_freq.iter().map(|f| (1.0 / f) as f32).collect();
    Array::from_slice(&freqs, &[freqs.len() as i32])
}

fn llama3_inv_freq(
    base: f64,
    dims: usize,
    factor: f64,
    low_freq_factor: f64,
    high_freq_factor: f64,
    original: f64,
) -> Vec<f64> {
    let low_freq_wavelen = original / low_freq_factor;
    let high_freq_wavelen = original / high_freq_factor;
    default_inv_freq(base, dims)
        .into_iter()
        .map(|inv| {
            let wavelen = 2.0 * PI / inv;
            if wavelen > low_freq_wavelen {
                inv / factor
            } else if wavelen < high_freq_wavelen {
                inv
            } else {
                let smooth =
                    (original / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor);
                (1.0 - smooth) * inv / factor + smooth * inv
            }
        })
        .collect()
}

fn yarn_mscale(scale: f64, m: f64) -> f64 {
    if scale <= 1.0 {
        1.0
    } else {
        0.1 * m * scale.ln() + 1.0
    }
}

/// YaRN's inverse frequencies and attention factor.
fn yarn(
    params: &RopeParameters,
    base: f64,
    dims: usize,
    original: f64,
    max_positions: f64,
) -> Result<(Vec<f64>, f64)> {
    // Without a factor, HF uses the ratio of the two context lengths.
    let factor = params.factor.unwrap_or(max_positions / original);
    let attention = match (
        params.attention_factor,
        params.mscale,
        params.mscale_all_dim,
    ) {
        (Some(a), _, _) => a,
        (None, Some(m), Some(m_all)) if m != 0.0 && m_all != 0.0 => {
            yarn_mscale(factor, m) / yarn_mscale(factor, m_all)
        }
        _ => yarn_mscale(factor, 1.0),
    };
    let beta_fast = params.beta_fast.unwrap_or(32.0);
    let beta_slow = params.beta_slow.unwrap_or(1.0);
    let truncate = params.truncate.unwrap_or(true);
    let d = dims as f64;
    let correction_dim =
        |rotations: f64| d * (original / (rotations * 2.0 * PI)).ln() / (2.0 * base.ln());
    let (mut low, mut high) = (correction_dim(beta_fast), correction_dim(beta_slow));
    if truncate {
        low = low.floor();
        high = high.ceil();
    }
    let low = low.max(0.0);
    let high = high.min(d - 1.0);
    let high = if low == high { high + 0.001 } else { high };
    let inv_extrapolation = default_inv_freq(base, dims);
    let inv = inv_extrapolation
        .iter()
        .enumerate()
        .map(|(i, &extra)| {
            let ramp = ((i as f64 - low) / (high - low)).clamp(0.0, 1.0);
            let extrapolation_weight = 1.0 - ramp;
            let inter = extra / factor;
            inter * (1.0 - extrapolation_weight) + extra * extrapolation_weight
        })
        .collect();
    Ok((inv, attention))
}

fn dynamic_base(base: f64, factor: f64, max_positions: f64, seq_len: f64, dims: f64) -> f64 {
    if seq_len <= max_positions {
        base
    } else {
        base * ((factor * seq_len / max_positions) - (factor - 1.0)).powf(dims / (dims - 2.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normalized(text: &str) -> Map<String, Value> {
        let mut json: Map<String, Value> = serde_json::from_str(text).unwrap();
        normalize_rope_keys(&mut json).unwrap();
        json
    }

    #[test]
    fn both_layouts_normalize_to_the_same_parameters() {
        let v4 = normalized(
            r#"{"rope_theta": 500000.0, "rope_scaling": {"type": "llama3", "factor": 8.0,
                "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                "original_max_position_embeddings": 8192}}"#,
        );
        let v5 = normalized(
            r#"{"rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                "original_max_position_embeddings": 8192}}"#,
        );
        assert_eq!(v4, v5);
        let p: RopeParameters = serde_json::from_value(v4["rope_parameters"].clone()).unwrap();
        assert_eq!(p.rope_type, RopeType::Llama3);
        assert_eq!(p.rope_theta, Some(500000.0));
    }

    #[test]
    fn null_scaling_means_default_rope() {
        let json = normalized(r#"{"rope_theta": 10000.0, "rope_scaling": null}"#);
        let p: RopeParameters = serde_json::from_value(json["rope_parameters"].clone()).unwrap();
        assert_eq!(p.rope_type, RopeType::Default);
        assert_eq!(p.rope_theta, Some(10000.0));
    }

    #[test]
    fn llama3_keeps_high_frequencies_and_divides_low_ones() {
        let inv = llama3_inv_freq(10000.0, 64, 8.0, 1.0, 4.0, 64.0);
        let plain = default_inv_freq(10000.0, 64);
        // Highest frequency: wavelength 2π < 64/4, unchanged.
        assert_eq!(inv[0], plain[0]);
        // Lowest frequency: wavelength far beyond 64, divided by the factor.
        let last = inv.len() - 1;
        assert!((inv[last] - plain[last] / 8.0).abs() < 1e-12);
    }

    #[test]
    fn yarn_mscale_of_zero_falls_back_to_the_plain_factor_as_in_hf() {
        // HF: `if mscale and mscale_all_dim` is false for mscale 0.
        let params = RopeParameters {
            rope_type: RopeType::Yarn,
            factor: Some(40.0),
            mscale: Some(0.0),
            mscale_all_dim: Some(1.0),
            ..Default::default()
        };
        let (_, attention) = yarn(&params, 10000.0, 64, 4096.0, 163840.0).unwrap();
        assert!((attention - (0.1 * 40f64.ln() + 1.0)).abs() < 1e-12);
        let both = RopeParameters {
            mscale: Some(0.5),
            ..params
        };
        let (_, attention) = yarn(&both, 10000.0, 64, 4096.0, 163840.0).unwrap();
        let want = (0.05 * 40f64.ln() + 1.0) / (0.1 * 40f64.ln() + 1.0);
        assert!((attention - want).abs() < 1e-12);
    }

    #[test]
    fn yarn_attention_factor_matches_the_formula() {
        let params = RopeParameters {
            rope_type: RopeType::Yarn,
            factor: Some(32.0),
            ..Default::default()
        };
        let (_, attention) = yarn(&params, 150000.0, 64, 4096.0, 131072.0).unwrap();
        assert!((attention - (0.1 * 32f64.ln() + 1.0)).abs() < 1e-12);
    }
}
