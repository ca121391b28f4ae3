//! From the checkpoint's tensors to the ones the model takes: FP8
//! block-quantized weights dequantized (to bfloat16), the
//! multi-token-prediction layers dropped, and each MoE layer's per-expert
//! tensors stacked into one `[experts, ...]` tensor per projection.

use forge_core::fp8;
use forge_core::mlx_rs::ops;
use forge_core::{Error, ModelConfig, Result, TensorMap};
use serde_json::Value;

const PROJECTIONS: [&str; 3] = ["gate_proj", "up_proj", "down_proj"];

/// The architecture's `sanitize`.
pub fn sanitize(config: &ModelConfig, mut tensors: TensorMap) -> Result<TensorMap> {
    let layers = config_usize(config, "num_hidden_layers")?;
    let experts = config_usize(config, "n_routed_experts")?;
    let mtp = config_usize(config, "num_nextn_predict_layers").unwrap_or(0);
    if let Some(block) = fp8_block_size(config)? {
        fp8::dequantize_blocks(&mut tensors, block)?;
    }
    drop_mtp_layers(&mut tensors, layers, mtp);
    for layer in 0..layers {
        stack_experts(
            &mut tensors,
            &format!("model.layers.{layer}.mlp.experts"),
            experts,
        )?;
    }
    Ok(tensors)
}

fn config_usize(config: &ModelConfig, key: &str) -> Result<usize> {
    match config.json().get(key) {
        Some(Value::Number(n)) if n.as_u64().is_some() => Ok(n.as_u64().unwrap_or(0) as usize),
        other => Err(Error::ConfigValue {
            path: config.path().to_path_buf(),
            key: key.into(),
            expected: "a non-negative integer".into(),
            found: other.map_or("no such key".into(), |v| v.to_string()),
        }),
    }
}

/// The block size of an FP8 block-quantized checkpoint (`quantization_config`
/// with `quant_method` "fp8"; `weight_block_size` defaults to 128×128).
fn fp8_block_size(config: &ModelConfig) -> Result<Option<[usize; 2]>> {
    let Some(q) = config.json().get("quantization_config") else {
        return Ok(None);
    };
    if q.get("quant_method").and_then(Value::as_str) != Some("fp8") {
        return Ok(None);
    }
    match q.get("weight_block_size") {
        None | Some(Value::Null) => Ok(Some([128, 128])),
        Some(Value::Array(v)) => match v.as_slice() {
            [Value::Number(a), Value::Number(b)] => match (a.as_u64(), b.as_u64()) {
                (Some(a), Some(b)) if a > 0 && b > 0 => Ok(Some([a as usize, b as usize])),
                _ => Err(block_size_error(config, q)),
            },
            _ => Err(block_size_error(config, q)),
        },
        Some(_) => Err(block_size_error(config, q)),
    }
}

fn block_size_error(config: &ModelConfig, q: &Value) -> Error {
    Error::ConfigValue {
        path: config.path().to_path_buf(),
        key: "quantization_config.weight_block_size".into(),
        expected: "two positive integers (rows, columns of a block)".into(),
        found: q
            .get("weight_block_size")
            .map_or("".into(), |v| v.to_string()),
    }
}

/// Removes `model.layers.{i}.*` for the `mtp` layers stored after the
/// `layers` decoder layers (DeepSeek-V3's multi-token-prediction module,
/// which next-token inference does not use).
fn drop_mtp_layers(tensors: &mut TensorMap, layers: usize, mtp: usize) {
    let prefixes: Vec<String> = (layers..layers + mtp)
        .map(|i| format!("model.layers.{i}."))
        .collect();
    tensors.retain(|name, _| !prefixes.iter().any(|p| name.starts_with(p)));
}

/// Stacks `{prefix}.{e}.{proj}.weight` for e in 0..experts into
/// `{prefix}.{proj}.weight`, when every expert is there. (An incomplete set
/// is left alone, so the strict load names what is missing.)
fn stack_experts(tensors: &mut TensorMap, prefix: &str, experts: usize) -> Result<()> {
    for proj in PROJECTIONS {
        let names: Vec<String> = (0..experts)
            .map(|e| format!("{prefix}.{e}.{proj}.weight"))
            .collect();
        if experts == 0 || !names.iter().all(|n| tensors.contains_key(n)) {
            continue;
        }
        let parts: Vec<_> = names.iter().filter_map(|n| tensors.remove(n)).collect();
        let shape = parts[0].shape().to_vec();
        if let Some((i, other)) = parts.iter().enumerate().find(|(_, p)| p.shape() != shape) {
            return Err(Error::InvalidInput {
                expected: format!("every {prefix}.*.{proj}.weight of shape {shape:?}"),
                found: format!("{:?} for expert {i}", other.shape()),
            });
        }
        tensors.insert(format!("{prefix}.{proj}.weight"), ops::stack(&parts, 0)?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use forge_core::mlx_rs::Array;

    fn config(text: &str) -> ModelConfig {
        ModelConfig::from_str(text, "config.json", true).unwrap()
    }

    #[test]
    fn experts_are_stacked_in_order_and_mtp_layers_dropped() {
        let mut tensors = TensorMap::new();
        for e in 0..3 {
            for proj in PROJECTIONS {
                let value = Array::from_slice(&[e as f32; 4], &[2, 2]);
                tensors.insert(
                    format!("model.layers.0.mlp.experts.{e}.{proj}.weight"),
                    value,
                );
            }
        }
        tensors.insert("model.layers.1.embed.weight".into(), Array::from_f32(1.0));
        tensors.insert("model.norm.weight".into(), Array::from_f32(1.0));
        let cfg = config(
            r#"{"model_type": "deepseek_v3", "num_hidden_layers": 1, "n_routed_experts": 3,
                "num_nextn_predict_layers": 1}"#,
        );
        let out = sanitize(&cfg, tensors).unwrap();
        let names: Vec<&str> = out.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "model.layers.0.mlp.experts.down_proj.weight",
                "model.layers.0.mlp.experts.gate_proj.weight",
                "model.layers.0.mlp.experts.up_proj.weight",
                "model.norm.weight",
            ]
        );
        let gate = &out["model.layers.0.mlp.experts.gate_proj.weight"];
        assert_eq!(gate.shape(), &[3, 2, 2]);
        let firsts: Vec<f32> = gate.as_slice::<f32>().iter().step_by(4).copied().collect();
        assert_eq!(firsts, [0.0, 1.0, 2.0]);
    }

    #[test]
    fn an_incomplete_expert_set_is_left_for_the_strict_load() {
        let mut tensors = TensorMap::new();
        tensors.insert(
            "model.layers.0.mlp.experts.0.gate_proj.weight".into(),
            Array::from_slice(&[0f32; 4], &[2, 2]),
        );
        let cfg = config(
            r#"{"model_type": "deepseek_v3", "num_hidden_layers": 1, "n_routed_experts": 2}"#,
        );
        let out = sanitize(&cfg, tensors).unwrap();
        assert!(out.contains_key("model.layers.0.mlp.experts.0.gate_proj.weight"));
    }

    #[test]
    fn fp8_weights_are_dequantized_with_their_block_scales() {
        let mut tensors = TensorMap::new();
        tensors.insert(
            "model.embed_tokens.weight".into(),
            Array::from_slice(&[1f32, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]),
        );
        tensors.insert(
            "model.embed_tokens.weight_scale_inv".into(),
            Array::from_slice(&[0.5f32, 4.0], &[1, 2]),
        );
        let cfg = config(
            r#"{"model_type": "deepseek_v3", "num_hidden_layers": 0, "n_routed_experts": 2,
                "quantization_config": {"quant_method": "fp8", "weight_block_size": [2, 2]}}"#,
        );
        let out = sanitize(&cfg, tensors).unwrap();
        assert_eq!(out.len(), 1);
        let w = out["model.embed_tokens.weight"]
            .as_dtype(forge_core::mlx_rs::Dtype::Float32)
            .unwrap();
        assert_eq!(w.as_slice::<f32>(), [0.5, 1.0, 12.0, 2.0, 2.5, 24.0]);
        let bad = config(
            r#"{"model_type": "deepseek_v3", "num_hidden_layers": 0, "n_routed_experts": 2,
                "quantization_config": {"quant_method": "fp8", "weight_block_size": [128]}}"#,
        );
        let err = sanitize(&bad, TensorMap::new()).unwrap_err().to_string();
        assert!(
            err.contains("weight_block_size") && err.contains("[128]"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_layer_count_is_a_config_error() {
        let cfg = config(r#"{"model_type": "deepseek_v3", "n_routed_experts": 2}"#);
        let err = sanitize(&cfg, TensorMap::new()).unwrap_err().to_string();
        assert!(err.contains("num_hidden_layers"), "{err}");
    }
}
