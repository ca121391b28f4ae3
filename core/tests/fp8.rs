//! FP8 checkpoints: an `F8_E4M3` safetensors file with DeepSeek-style block
//! scales, read and dequantized, against values worked out by hand.

use forge_core::fp8::dequantize_blocks;
use forge_core::mlx_rs::Dtype;
use forge_core::weights::load_safetensors_file;
use safetensors::tensor::{Dtype as StDtype, TensorView};

/// The e4m3 bytes used below and their values, by hand: 0x38 = 2^0,
/// 0x3c = 1.5·2^0, 0x40 = 2^1, 0xb8 = -2^0, 0xc4 = -1.5·2^1.
fn by_hand(byte: u8) -> f32 {
    match byte {
        0x38 => 1.0,
        0x3c => 1.5,
        0x40 => 2.0,
        0xb8 => -1.0,
        0xc4 => -3.0,
        _ => unreachable!("not in the test data"),
    }
}

#[test]
fn block_scaled_fp8_weights_dequantize_to_the_hand_computed_values() {
    // A 3×5 weight in 2×2 blocks: a 2×3 grid of scales, the last row and
    // column of blocks cut short.
    let bytes: Vec<u8> = vec![
        0x38, 0x3c, 0x40, 0xb8, 0xc4, //
        0xc4, 0x40, 0x38, 0x3c, 0xb8, //
        0x40, 0xb8, 0xc4, 0x38, 0x3c,
    ];
    let scales: [f32; 6] = [0.5, 2.0, 0.25, 3.0, -1.0, 4.0];
    let scale_bytes: Vec<u8> = scales.iter().flat_map(|s| s.to_le_bytes()).collect();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("model.safetensors");
    let tensors = [
        (
            "layer.weight",
            TensorView::new(StDtype::F8_E4M3, vec![3, 5], &bytes).unwrap(),
        ),
        (
            "layer.weight_scale_inv",
            TensorView::new(StDtype::F32, vec![2, 3], &scale_bytes).unwrap(),
        ),
    ];
    safetensors::serialize_to_file(tensors, None, &file).unwrap();

    let mut loaded = load_safetensors_file(&file).unwrap();
    assert_eq!(loaded["layer.weight"].dtype(), Dtype::Bfloat16);
    dequantize_blocks(&mut loaded, [2, 2]).unwrap();
    assert!(!loaded.contains_key("layer.weight_scale_inv"));
    let weight = loaded["layer.weight"].as_dtype(Dtype::Float32).unwrap();
    assert_eq!(weight.shape(), &[3, 5]);
    let want: Vec<f32> = (0..15)
        .map(|i| by_hand(bytes[i]) * scales[(i / 5) / 2 * 3 + (i % 5) / 2])
        .collect();
    assert_eq!(weight.as_slice::<f32>(), want.as_slice());
}

#[test]
fn scales_that_do_not_tile_the_weight_are_refused_by_name() {
    let mut tensors = forge_core::TensorMap::new();
    tensors.insert(
        "w.weight".into(),
        forge_core::mlx_rs::Array::from_slice(&[1f32; 6], &[2, 3]),
    );
    tensors.insert(
        "w.weight_scale_inv".into(),
        forge_core::mlx_rs::Array::from_slice(&[1f32; 2], &[1, 2]),
    );
    let err = dequantize_blocks(&mut tensors, [1, 2])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("w.weight_scale_inv") && err.contains("1x2") && err.contains("[1, 2]"),
        "{err}"
    );

    let mut orphan = forge_core::TensorMap::new();
    orphan.insert(
        "x.weight_scale_inv".into(),
        forge_core::mlx_rs::Array::from_slice(&[1f32], &[1, 1]),
    );
    let err = dequantize_blocks(&mut orphan, [128, 128])
        .unwrap_err()
        .to_string();
    assert!(err.contains("x.weight"), "{err}");
}
