//! Checkpoint tensors: safetensors files (single or sharded) read through
//! mmap, and the strict hand-over of tensors to a model.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};

use mlx_rs::{Array, Dtype};
use safetensors::tensor::{Dtype as StDtype, SafeTensors};

use crate::error::{Error, Result, WeightMismatch};
use crate::quant::QuantParams;

/// Tensors by name, in a stable order.
pub type TensorMap = BTreeMap<String, Array>;

/// Reads every tensor of a model folder: `model.safetensors`, or the shards
/// listed in `model.safetensors.index.json`, or else every `*.safetensors`.
pub fn load_safetensors_dir(dir: &Path) -> Result<TensorMap> {
    let index = dir.join("model.safetensors.index.json");
    let files = if index.exists() {
        shard_files(&index)?
    } else if dir.join("model.safetensors").exists() {
        vec![dir.join("model.safetensors")]
    } else {
        let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| Error::io(dir, e))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
            .collect();
        found.sort();
        if found.is_empty() {
            return Err(Error::MissingFile {
                path: dir.join("model.safetensors"),
                what: "the model weights (no *.safetensors file in the folder)".into(),
            });
        }
        found
    };
    let mut tensors = TensorMap::new();
    for file in files {
        tensors.extend(load_safetensors_file(&file)?);
    }
    Ok(tensors)
}

/// The distinct shard files named by a sharded checkpoint's index.
fn shard_files(index: &Path) -> Result<Vec<PathBuf>> {
    let text = std::fs::read_to_string(index).map_err(|e| Error::io(index, e))?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::Json {
        path: index.to_path_buf(),
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })?;
    let Some(map) = json.get("weight_map").and_then(|m| m.as_object()) else {
        return Err(Error::ConfigValue {
            path: index.to_path_buf(),
            key: "weight_map".into(),
            expected: "an object from tensor name to shard file".into(),
            found: "no such object".into(),
        });
    };
    let dir = index.parent().unwrap_or(Path::new("."));
    let mut names = BTreeSet::new();
    for (tensor, file) in map {
        let Some(file) = file.as_str() else {
            return Err(Error::ConfigValue {
                path: index.to_path_buf(),
                key: format!("weight_map.{tensor}"),
                expected: "a shard file name".into(),
                found: file.to_string(),
            });
        };
        names.insert(file.to_string());
    }
    Ok(names.into_iter().map(|f| dir.join(f)).collect())
}

/// Reads one safetensors file (mmap'd) into MLX arrays of the stored dtype
/// (`F8_E4M3` is decoded to bfloat16, see [`crate::fp8`]).
pub fn load_safetensors_file(path: &Path) -> Result<TensorMap> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    // SAFETY: the map is read-only and lives only for this function; a file
    // truncated under us would be a bug of the caller's environment, and the
    // header check below rejects files shorter than their header says.
    let mmap = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
    let parsed = SafeTensors::deserialize(&mmap).map_err(|e| Error::Safetensors {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let mut tensors = TensorMap::new();
    for (name, view) in parsed.tensors() {
        let Ok(shape) = view
            .shape()
            .iter()
            .map(|&d| i32::try_from(d))
            .collect::<std::result::Result<Vec<i32>, _>>()
        else {
            return Err(Error::Safetensors {
                path: path.to_path_buf(),
                message: format!(
                    "tensor {name}: shape {:?} has a dimension larger than MLX supports ({})",
                    view.shape(),
                    i32::MAX
                ),
            });
        };
        let data = view.data();
        if view.dtype() == StDtype::F8_E4M3 && data.len() == view.shape().iter().product::<usize>()
        {
            tensors.insert(name, crate::fp8::decode_e4m3(data, &shape)?);
            continue;
        }
        let dtype = mlx_dtype(view.dtype()).ok_or_else(|| Error::Safetensors {
            path: path.to_path_buf(),
            message: format!("tensor {name}: dtype {:?} is not supported", view.dtype()),
        })?;
        let expected_bytes = view.shape().iter().product::<usize>() * view.dtype().bitsize() / 8;
        if data.len() != expected_bytes {
            return Err(Error::Safetensors {
                path: path.to_path_buf(),
                message: format!(
                    "tensor {name}: expected {expected_bytes} bytes, found {}",
                    data.len()
                ),
            });
        }
        // SAFETY: `data` holds exactly shape × dtype bytes (checked above);
        // MLX copies them into its own buffer before this returns.
        let array = unsafe { Array::from_raw_data(data.as_ptr().cast(), &shape, dtype) };
        tensors.insert(name, array);
    }
    Ok(tensors)
}

fn mlx_dtype(dtype: StDtype) -> Option<Dtype> {
    Some(match dtype {
        StDtype::BOOL => Dtype::Bool,
        StDtype::U8 => Dtype::Uint8,
        StDtype::I8 => Dtype::Int8,
        StDtype::U16 => Dtype::Uint16,
        StDtype::I16 => Dtype::Int16,
        StDtype::U32 => Dtype::Uint32,
        StDtype::I32 => Dtype::Int32,
        StDtype::U64 => Dtype::Uint64,
        StDtype::I64 => Dtype::Int64,
        StDtype::F16 => Dtype::Float16,
        StDtype::BF16 => Dtype::Bfloat16,
        StDtype::F32 => Dtype::Float32,
        StDtype::F64 => Dtype::Float64,
        _ => return None,
    })
}

/// Hands checkpoint tensors to a model under construction, strictly.
///
/// A plugin calls [`Weights::take`] for every tensor it needs, then
/// [`Weights::finish`]. Problems are collected rather than returned one by
/// one, so a single error lists every missing, unexpected and mis-shaped
/// tensor. Until `finish` succeeds the model must not be used: a failed
/// `take` hands out an empty placeholder.
#[derive(Debug)]
pub struct Weights {
    source: String,
    tensors: TensorMap,
    dtype: Option<Dtype>,
    problems: WeightMismatch,
    /// Seed of the synthetic mode (see [`Weights::synthetic`]).
    synthetic: Option<u64>,
}

impl Weights {
    /// Wraps a tensor map; `source` names where it came from, for messages.
    pub fn new(tensors: TensorMap, source: impl Into<String>) -> Self {
        let source = source.into();
        Weights {
            problems: WeightMismatch {
                source: source.clone(),
                ..Default::default()
            },
            source,
            tensors,
            dtype: None,
            synthetic: None,
        }
    }

    /// Weights that make up every tensor a plugin asks for: seeded
    /// normal values of the requested shape (scale 0.1; 1-D tensors, norms
    /// and biases alike, around 1). For running a port before it has
    /// golden fixtures (`cargo xtask add-arch` writes such a test); the
    /// numbers mean nothing, the shapes and the code paths are real.
    /// Optional tensors are left out.
    pub fn synthetic(seed: u64) -> Self {
        Weights {
            synthetic: Some(seed),
            ..Weights::new(TensorMap::new(), format!("synthetic weights (seed {seed})"))
        }
    }

    /// A made-up tensor `name` of `shape` (synthetic mode only).
    fn make_up(&self, name: &str, shape: &[i32]) -> Option<Array> {
        let seed = self.synthetic?;
        // One key per tensor name, so the values do not depend on the order
        // in which the plugin takes them.
        let hash = name.bytes().fold(seed ^ 0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
        });
        let key = mlx_rs::random::key(hash).ok()?;
        let loc = if shape.len() == 1 { 1.0 } else { 0.0 };
        let values = mlx_rs::random::normal::<f32>(shape, loc, 0.1, &key).ok()?;
        Some(self.cast(values))
    }

    /// Casts every floating-point tensor taken to `dtype`.
    pub fn with_dtype(mut self, dtype: Option<Dtype>) -> Self {
        self.dtype = dtype;
        self
    }

    /// The tensors not taken yet.
    pub fn remaining(&self) -> &TensorMap {
        &self.tensors
    }

    /// True when a tensor of this name is still there.
    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// Takes the tensor `name`, which must have exactly `shape`.
    pub fn take(&mut self, name: &str, shape: &[i32]) -> Array {
        match self
            .take_optional(name, shape)
            .or_else(|| self.make_up(name, shape))
        {
            Some(a) => a,
            None => {
                self.problems.missing.push(name.to_string());
                placeholder()
            }
        }
    }

    /// Takes the tensor `name` if present; a wrong shape is still an error.
    pub fn take_optional(&mut self, name: &str, shape: &[i32]) -> Option<Array> {
        let array = self.tensors.remove(name)?;
        if array.shape() != shape {
            self.problems.mis_shaped.push((
                name.to_string(),
                shape.to_vec(),
                array.shape().to_vec(),
            ));
            return Some(placeholder());
        }
        Some(self.cast(array))
    }

    /// Records that tensor `name` is missing (for tensors a plugin takes
    /// with [`Weights::take_any`]).
    pub fn report_missing(&mut self, name: &str) {
        self.problems.missing.push(name.to_string());
    }

    /// Records that tensor `name` has shape `found` where `expected` was
    /// needed; `why` says what did not fit.
    pub fn report_mis_shaped(&mut self, name: &str, why: &str, expected: &[i32], found: &[i32]) {
        self.problems.mis_shaped.push((
            format!("{name} ({why})"),
            expected.to_vec(),
            found.to_vec(),
        ));
    }

    /// Takes a tensor of any shape (for tensors whose shape the plugin checks itself).
    pub fn take_any(&mut self, name: &str) -> Option<Array> {
        self.tensors.remove(name).map(|a| self.cast(a))
    }

    /// Takes the `[rows, cols]` matrix `{prefix}.weight`, or, when
    /// `{prefix}.scales` is there, its quantized form: packed codes plus
    /// `{prefix}.scales` and `{prefix}.biases` (see [`crate::quant`]).
    pub fn take_matrix(
        &mut self,
        prefix: &str,
        rows: usize,
        cols: usize,
    ) -> (Array, Option<QuantParams>) {
        let name = format!("{prefix}.weight");
        let shape = [rows as i32, cols as i32];
        let scales_name = format!("{prefix}.scales");
        let Some(scales) = self.tensors.remove(&scales_name) else {
            return (self.take(&name, &shape), None);
        };
        let biases_name = format!("{prefix}.biases");
        let (weight, biases) = match (
            self.tensors.remove(&name),
            self.tensors.remove(&biases_name),
        ) {
            (Some(weight), Some(biases)) => (weight, biases),
            (weight, biases) => {
                if weight.is_none() {
                    self.problems.missing.push(name);
                }
                if biases.is_none() {
                    self.problems.missing.push(biases_name);
                }
                return (placeholder(), None);
            }
        };
        match QuantParams::infer(&weight, self.cast(scales), self.cast(biases), rows, cols) {
            Ok(quant) => (weight, Some(quant)),
            Err(message) => {
                self.problems.mis_shaped.push((
                    format!("{name} ({message})"),
                    shape.to_vec(),
                    weight.shape().to_vec(),
                ));
                (placeholder(), None)
            }
        }
    }

    fn cast(&self, array: Array) -> Array {
        match self.dtype {
            Some(dtype) if array.dtype().is_float() && array.dtype() != dtype => {
                array.as_dtype(dtype).unwrap_or(array)
            }
            _ => array,
        }
    }

    /// Ends loading: any tensor not taken is unexpected; any problem seen is
    /// returned as one [`Error::WeightMismatch`].
    pub fn finish(mut self) -> Result<()> {
        self.problems.unexpected = self.tensors.keys().cloned().collect();
        if self.problems.is_empty() {
            Ok(())
        } else {
            Err(Error::WeightMismatch(self.problems))
        }
    }

    /// Where these weights came from.
    pub fn source(&self) -> &str {
        &self.source
    }
}

fn placeholder() -> Array {
    Array::from_slice::<f32>(&[], &[0])
}
