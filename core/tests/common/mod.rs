//! Shared helpers of the forge-core integration tests: a tiny test
//! architecture registered through `inventory`, and writers for model
//! folders (config.json, safetensors files).
//!
//! Each test binary that declares `mod common;` gets its own copy, so the
//! architecture is registered in each of them.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use forge_core::hub::HubOptions;
use forge_core::mlx_rs::{ops, Array, Dtype};
use forge_core::model::{ForwardOptions, Model, ModelInput, ModelKind, ModelOutput, PlanItem};
use forge_core::registry::keep_weights;
use forge_core::{Architecture, Error, KvCache, LoadOptions, ModelConfig, Result, Weights};
use safetensors::tensor::{Dtype as StDtype, TensorView};
use serde::Deserialize;

/// The model_type of the test architecture.
pub const TEST_TYPE: &str = "forge-test-linear";
/// Config keys the test architecture knows not to matter.
pub const TEST_IGNORED_KEYS: &[&str] = &["forge_test_note"];
/// Another name the test architecture answers to.
pub const TEST_ALIAS: &str = "forge-test-linear-alias";

forge_core::inventory::submit! {
    Architecture {
        model_type: TEST_TYPE,
        aliases: &[TEST_ALIAS],
        description: "test only: one linear map",
        ignored_config_keys: TEST_IGNORED_KEYS,
        sanitize: keep_weights,
        build: build_test_linear,
    }
}

/// The args of the test architecture.
#[derive(Debug, Deserialize)]
pub struct TestArgs {
    /// Input width.
    pub hidden_size: usize,
    /// Output width.
    pub out_size: usize,
    /// Whether a bias tensor `b` is expected.
    #[serde(default)]
    pub use_bias: bool,
}

/// `y = x wᵀ (+ b)`: one tensor `w` of shape `[out_size, hidden_size]`.
pub struct TestLinear {
    w: Array,
    b: Option<Array>,
    args: TestArgs,
}

fn build_test_linear(config: &ModelConfig, weights: &mut Weights) -> Result<Box<dyn Model>> {
    let args: TestArgs = config.parse_args(TEST_IGNORED_KEYS)?;
    let w = weights.take("w", &[args.out_size as i32, args.hidden_size as i32]);
    let b = args
        .use_bias
        .then(|| weights.take("b", &[args.out_size as i32]));
    Ok(Box::new(TestLinear { w, b, args }))
}

impl Model for TestLinear {
    fn kind(&self) -> ModelKind {
        ModelKind::Encoder
    }

    fn forward(
        &self,
        input: &ModelInput,
        _cache: Option<&mut [Box<dyn KvCache>]>,
        _options: &ForwardOptions,
    ) -> Result<ModelOutput> {
        let ModelInput::Embeddings(x) = input else {
            return Err(Error::InvalidInput {
                expected: "embeddings".into(),
                found: "another input".into(),
            });
        };
        let mut y = ops::matmul(x, self.w.t())?;
        if let Some(b) = &self.b {
            y = ops::add(&y, b)?;
        }
        Ok(ModelOutput {
            last_hidden_state: Some(y),
            ..Default::default()
        })
    }

    fn new_cache(&self) -> Vec<Box<dyn KvCache>> {
        Vec::new()
    }

    fn num_layers(&self) -> usize {
        1
    }

    fn vocab_size(&self) -> usize {
        0
    }

    fn max_context(&self) -> Option<usize> {
        None
    }

    fn kv_bytes_per_token(&self) -> usize {
        0
    }

    fn plan(&self) -> Vec<PlanItem> {
        vec![
            PlanItem::new("w dtype", format!("{:?}", self.w.dtype())),
            PlanItem::new("out_size", self.args.out_size),
        ]
    }
}

/// The dtype of `w` as the loaded model reports it in its plan.
pub fn planned_w_dtype(model: &dyn Model) -> String {
    model
        .plan()
        .into_iter()
        .find(|p| p.label == "w dtype")
        .map(|p| p.value)
        .expect("the test model plans its w dtype")
}

/// Options that never touch the environment or the network.
pub fn options(strict: bool, dtype: Option<Dtype>, cache_dir: &Path) -> LoadOptions {
    LoadOptions {
        strict,
        dtype,
        hub: HubOptions {
            cache_dir: cache_dir.to_path_buf(),
            offline: true,
        },
        dequantize: false,
    }
}

/// A tensor to write: name, safetensors dtype, shape, raw little-endian bytes.
pub struct RawTensor {
    pub name: String,
    pub dtype: StDtype,
    pub shape: Vec<usize>,
    pub bytes: Vec<u8>,
}

impl RawTensor {
    pub fn f32(name: &str, shape: &[usize], values: &[f32]) -> Self {
        assert_eq!(shape.iter().product::<usize>(), values.len());
        RawTensor {
            name: name.into(),
            dtype: StDtype::F32,
            shape: shape.to_vec(),
            bytes: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }

    pub fn bf16(name: &str, shape: &[usize], values: &[f32]) -> Self {
        assert_eq!(shape.iter().product::<usize>(), values.len());
        RawTensor {
            name: name.into(),
            dtype: StDtype::BF16,
            shape: shape.to_vec(),
            bytes: values
                .iter()
                .flat_map(|v| half::bf16::from_f32(*v).to_le_bytes())
                .collect(),
        }
    }
}

/// The bytes of a safetensors file holding `tensors`, made by the
/// `safetensors` crate's own serializer.
pub fn safetensors_bytes(tensors: &[RawTensor]) -> Vec<u8> {
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|t| {
            let view = TensorView::new(t.dtype, t.shape.clone(), &t.bytes)
                .expect("test tensors are consistent");
            (t.name.clone(), view)
        })
        .collect();
    safetensors::serialize(views, None).expect("serializing test tensors")
}

/// Writes `tensors` to `path` as a safetensors file.
pub fn write_safetensors(path: &Path, tensors: &[RawTensor]) {
    std::fs::write(path, safetensors_bytes(tensors)).expect("writing a test safetensors file");
}

/// Writes `text` to `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("writing a test file");
    path
}

/// The values `[[1, 2, 3], [4, 5, 6]]` of a good `w`.
pub const W_VALUES: [f32; 6] = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];

/// A config.json text for the test architecture with extra top-level JSON.
pub fn test_config(extra: &str) -> String {
    let extra = if extra.is_empty() {
        String::new()
    } else {
        format!(",\n  {extra}")
    };
    format!(
        "{{\n  \"model_type\": \"{TEST_TYPE}\",\n  \"architectures\": [\"ForgeTestLinear\"],\n  \
         \"hidden_size\": 3,\n  \"out_size\": 2{extra}\n}}\n"
    )
}

/// A complete, valid model folder for the test architecture.
pub fn good_model_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temp dir");
    write(dir.path(), "config.json", &test_config(""));
    write_safetensors(
        &dir.path().join("model.safetensors"),
        &[RawTensor::f32("w", &[2, 3], &W_VALUES)],
    );
    dir
}

/// Evaluates `a` as f32 and returns its values in row-major order.
pub fn values_f32(a: &Array) -> Vec<f32> {
    let a = a
        .as_dtype(Dtype::Float32)
        .and_then(|a| a.contiguous())
        .expect("casting to f32");
    a.eval().expect("evaluating");
    if a.size() == 0 {
        return Vec::new();
    }
    a.as_slice::<f32>().to_vec()
}
