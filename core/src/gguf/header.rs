//! The GGUF header, read and checked in Rust before MLX touches the file.
//!
//! Layout (version 2 and 3, little-endian): the magic `GGUF`, a `u32`
//! version, `u64` tensor and metadata counts, the metadata as typed
//! key/value pairs, one record per tensor (name, dimensions, ggml type,
//! offset), then the tensor data from the next multiple of
//! `general.alignment` (32 by default). Reading it here lets a truncated
//! file or an unsupported tensor type fail with a message that names the
//! tensor, instead of failing inside MLX.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum MetaValue {
    /// Any unsigned integer type.
    UInt(u64),
    /// Any signed integer type.
    Int(i64),
    /// `f32` or `f64`.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// A UTF-8 string.
    Str(String),
    /// An array of values.
    Array(Vec<MetaValue>),
}

impl MetaValue {
    /// The value as an unsigned integer, when it is a non-negative integer.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            MetaValue::UInt(v) => Some(v),
            MetaValue::Int(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// The value as a float (integers converted).
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            MetaValue::Float(v) => Some(v),
            MetaValue::UInt(v) => Some(v as f64),
            MetaValue::Int(v) => Some(v as f64),
            _ => None,
        }
    }

    /// The value as a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            MetaValue::Str(s) => Some(s),
            _ => None,
        }
    }

    /// What kind of value this is, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            MetaValue::UInt(_) => "unsigned integer",
            MetaValue::Int(_) => "integer",
            MetaValue::Float(_) => "float",
            MetaValue::Bool(_) => "bool",
            MetaValue::Str(_) => "string",
            MetaValue::Array(_) => "array",
        }
    }
}

/// A ggml tensor type: its name and how its elements are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GgmlType {
    /// The ggml type id.
    pub id: u32,
    /// llama.cpp's name for it (`Q4_1`, `F32`, ...).
    pub name: &'static str,
    /// Elements per block (1 for plain types).
    pub block_elements: u64,
    /// Bytes per block.
    pub block_bytes: u64,
}

/// ggml types by id: (id, name, elements per block, bytes per block).
const GGML_TYPES: &[(u32, &str, u64, u64)] = &[
    (0, "F32", 1, 4),
    (1, "F16", 1, 2),
    (2, "Q4_0", 32, 18),
    (3, "Q4_1", 32, 20),
    (6, "Q5_0", 32, 22),
    (7, "Q5_1", 32, 24),
    (8, "Q8_0", 32, 34),
    (9, "Q8_1", 32, 36),
    (10, "Q2_K", 256, 84),
    (11, "Q3_K", 256, 110),
    (12, "Q4_K", 256, 144),
    (13, "Q5_K", 256, 176),
    (14, "Q6_K", 256, 210),
    (15, "Q8_K", 256, 292),
    (16, "IQ2_XXS", 256, 66),
    (17, "IQ2_XS", 256, 74),
    (18, "IQ3_XXS", 256, 98),
    (19, "IQ1_S", 256, 50),
    (20, "IQ4_NL", 32, 18),
    (21, "IQ3_S", 256, 110),
    (22, "IQ2_S", 256, 82),
    (23, "IQ4_XS", 256, 136),
    (24, "I8", 1, 1),
    (25, "I16", 1, 2),
    (26, "I32", 1, 4),
    (27, "I64", 1, 8),
    (28, "F64", 1, 8),
    (29, "IQ1_M", 256, 56),
    (30, "BF16", 1, 2),
    (34, "TQ1_0", 256, 54),
    (35, "TQ2_0", 256, 66),
    (39, "MXFP4", 32, 17),
];

/// The tensor types MLX's GGUF reader turns into arrays: plain floats, and
/// Q4_0 / Q4_1 / Q8_0, which it converts to its affine-quantized format.
pub const LOADABLE_TYPES: [&str; 5] = ["F32", "F16", "Q4_0", "Q4_1", "Q8_0"];

impl GgmlType {
    /// The type with this id, if ggml defines it.
    pub fn from_id(id: u32) -> Option<Self> {
        GGML_TYPES
            .iter()
            .find(|t| t.0 == id)
            .map(|&(id, name, block_elements, block_bytes)| GgmlType {
                id,
                name,
                block_elements,
                block_bytes,
            })
    }

    /// True when Forge can load tensors of this type.
    pub fn is_loadable(&self) -> bool {
        LOADABLE_TYPES.contains(&self.name)
    }

    /// Bits per code when the type is one MLX converts to affine quantization.
    pub fn quantized_bits(&self) -> Option<i32> {
        match self.name {
            "Q4_0" | "Q4_1" => Some(4),
            "Q8_0" => Some(8),
            _ => None,
        }
    }
}

/// One tensor record of the header.
#[derive(Debug, Clone)]
pub struct TensorInfo {
    /// The tensor's name in the file (llama.cpp naming).
    pub name: String,
    /// Dimensions in GGUF order: the fastest-varying first (the reverse of
    /// the row-major shape MLX gives the array).
    pub dims: Vec<u64>,
    /// Its storage type.
    pub ggml_type: GgmlType,
    /// Byte offset of its data from the start of the data section.
    pub offset: u64,
}

impl TensorInfo {
    /// Number of elements.
    pub fn elements(&self) -> u64 {
        self.dims.iter().product()
    }

    /// Row-major shape (as MLX and HF see it).
    pub fn shape(&self) -> Vec<u64> {
        self.dims.iter().rev().copied().collect()
    }
}

/// A parsed and checked GGUF header.
#[derive(Debug, Clone)]
pub struct GgufHeader {
    /// The file it was read from.
    pub path: PathBuf,
    /// Format version (2 or 3).
    pub version: u32,
    /// Every metadata key and value.
    pub metadata: BTreeMap<String, MetaValue>,
    /// Every tensor record, in file order.
    pub tensors: Vec<TensorInfo>,
    /// Where the data section starts.
    pub data_offset: u64,
    /// The file's size.
    pub file_size: u64,
}

impl GgufHeader {
    /// Reads the header of `path` and checks that every tensor's data lies
    /// inside the file and has a type Forge can load.
    pub fn read(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let file_size = file.metadata().map_err(|e| Error::io(path, e))?.len();
        let mut reader = Reader {
            inner: BufReader::new(file),
            position: 0,
            file_size,
            path,
        };
        let header = reader.header()?;
        header.check_data()?;
        Ok(header)
    }

    /// A metadata value, if present.
    pub fn get(&self, key: &str) -> Option<&MetaValue> {
        self.metadata.get(key)
    }

    /// A required string value.
    pub fn string(&self, key: &str) -> Result<&str> {
        match self.get(key) {
            Some(v) => v
                .as_str()
                .ok_or_else(|| self.wrong_kind(key, "a string", v)),
            None => Err(self.missing(key, "a string")),
        }
    }

    /// A required non-negative integer value.
    pub fn uint(&self, key: &str) -> Result<u64> {
        match self.get(key) {
            Some(v) => v
                .as_u64()
                .ok_or_else(|| self.wrong_kind(key, "a non-negative integer", v)),
            None => Err(self.missing(key, "a non-negative integer")),
        }
    }

    /// An optional number.
    pub fn float_opt(&self, key: &str) -> Result<Option<f64>> {
        match self.get(key) {
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| self.wrong_kind(key, "a number", v)),
            None => Ok(None),
        }
    }

    /// An optional array of strings.
    pub fn strings(&self, key: &str) -> Result<Option<Vec<&str>>> {
        let Some(value) = self.get(key) else {
            return Ok(None);
        };
        let MetaValue::Array(items) = value else {
            return Err(self.wrong_kind(key, "an array of strings", value));
        };
        items
            .iter()
            .map(|v| {
                v.as_str()
                    .ok_or_else(|| self.wrong_kind(key, "an array of strings", v))
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    /// An optional array of integers.
    pub fn ints(&self, key: &str) -> Result<Option<Vec<i64>>> {
        let Some(value) = self.get(key) else {
            return Ok(None);
        };
        let MetaValue::Array(items) = value else {
            return Err(self.wrong_kind(key, "an array of integers", value));
        };
        items
            .iter()
            .map(|v| match *v {
                MetaValue::Int(i) => Ok(i),
                MetaValue::UInt(u) => {
                    i64::try_from(u).map_err(|_| self.wrong_kind(key, "an array of integers", v))
                }
                _ => Err(self.wrong_kind(key, "an array of integers", v)),
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    /// The tensor record called `name`.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// An [`Error::Gguf`] about this file.
    pub fn error(&self, message: impl Into<String>) -> Error {
        Error::Gguf {
            path: self.path.clone(),
            message: message.into(),
        }
    }

    fn missing(&self, key: &str, expected: &str) -> Error {
        self.error(format!(
            "metadata key `{key}`: expected {expected}, found nothing"
        ))
    }

    fn wrong_kind(&self, key: &str, expected: &str, found: &MetaValue) -> Error {
        self.error(format!(
            "metadata key `{key}`: expected {expected}, found {}",
            found.kind()
        ))
    }

    /// Every tensor inside the file, of a loadable type, with a whole number of blocks.
    fn check_data(&self) -> Result<()> {
        let mut unsupported: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for t in &self.tensors {
            let ty = t.ggml_type;
            if t.elements() % ty.block_elements != 0 {
                return Err(self.error(format!(
                    "tensor `{}` has {} elements, not a whole number of {}-element {} blocks",
                    t.name,
                    t.elements(),
                    ty.block_elements,
                    ty.name
                )));
            }
            let bytes = t.elements() / ty.block_elements * ty.block_bytes;
            let end = self
                .data_offset
                .checked_add(t.offset)
                .and_then(|start| start.checked_add(bytes));
            match end {
                Some(end) if end <= self.file_size => {}
                _ => {
                    return Err(self.error(format!(
                        "truncated: tensor `{}` ({} bytes at offset {}) ends past the end of the \
                         file ({} bytes)",
                        t.name,
                        bytes,
                        self.data_offset.saturating_add(t.offset),
                        self.file_size
                    )))
                }
            }
            if !ty.is_loadable() {
                unsupported.entry(ty.name).or_default().push(&t.name);
            }
        }
        if unsupported.is_empty() {
            return Ok(());
        }
        let found: Vec<String> = unsupported
            .iter()
            .map(|(ty, names)| format!("{ty} ({} tensors, e.g. `{}`)", names.len(), names[0]))
            .collect();
        Err(self.error(format!(
            "unsupported quantization type: expected tensors of type {}, found {}",
            LOADABLE_TYPES.join(", "),
            found.join("; ")
        )))
    }
}

/// A byte reader that knows where it is and how much file is left.
struct Reader<'a> {
    inner: BufReader<File>,
    position: u64,
    file_size: u64,
    path: &'a Path,
}

/// Metadata value type ids.
const META_U8: u32 = 0;
const META_I8: u32 = 1;
const META_U16: u32 = 2;
const META_I16: u32 = 3;
const META_U32: u32 = 4;
const META_I32: u32 = 5;
const META_F32: u32 = 6;
const META_BOOL: u32 = 7;
const META_STRING: u32 = 8;
const META_ARRAY: u32 = 9;
const META_U64: u32 = 10;
const META_I64: u32 = 11;
const META_F64: u32 = 12;

impl Reader<'_> {
    fn header(&mut self) -> Result<GgufHeader> {
        let magic: [u8; 4] = self.bytes()?;
        if &magic != b"GGUF" {
            return Err(self.error(format!(
                "not a GGUF file: expected the magic bytes \"GGUF\", found {magic:?}"
            )));
        }
        let version = self.u32()?;
        if !(2..=3).contains(&version) {
            return Err(self.error(format!("expected format version 2 or 3, found {version}")));
        }
        let tensor_count = self.u64()?;
        let metadata_count = self.u64()?;
        let mut metadata = BTreeMap::new();
        for _ in 0..metadata_count {
            let key = self.string()?;
            let kind = self.u32()?;
            let value = self.value(kind, &key)?;
            metadata.insert(key, value);
        }
        // Each record takes at least 24 bytes: a bound on a corrupt count.
        self.expect_room(tensor_count.saturating_mul(24), "the tensor records")?;
        let mut tensors = Vec::new();
        for _ in 0..tensor_count {
            tensors.push(self.tensor_info()?);
        }
        let alignment = match metadata.get("general.alignment") {
            None => 32,
            Some(v) => v
                .as_u64()
                .filter(|a| *a > 0)
                .ok_or_else(|| self.error("`general.alignment` is not a positive integer"))?,
        };
        let data_offset = self.position.div_ceil(alignment) * alignment;
        Ok(GgufHeader {
            path: self.path.to_path_buf(),
            version,
            metadata,
            tensors,
            data_offset,
            file_size: self.file_size,
        })
    }

    fn tensor_info(&mut self) -> Result<TensorInfo> {
        let name = self.string()?;
        let n_dims = self.u32()?;
        if n_dims > 8 {
            return Err(self.error(format!(
                "tensor `{name}`: expected at most 8 dimensions, found {n_dims}"
            )));
        }
        let mut dims = Vec::new();
        for _ in 0..n_dims {
            dims.push(self.u64()?);
        }
        let type_id = self.u32()?;
        let ggml_type = GgmlType::from_id(type_id).ok_or_else(|| {
            self.error(format!(
                "tensor `{name}`: unknown ggml tensor type id {type_id}"
            ))
        })?;
        let offset = self.u64()?;
        if dims
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .is_none()
        {
            return Err(self.error(format!("tensor `{name}`: dimensions {dims:?} overflow")));
        }
        Ok(TensorInfo {
            name,
            dims,
            ggml_type,
            offset,
        })
    }

    fn value(&mut self, kind: u32, key: &str) -> Result<MetaValue> {
        Ok(match kind {
            META_U8 => MetaValue::UInt(u8::from_le_bytes(self.bytes()?).into()),
            META_I8 => MetaValue::Int(i8::from_le_bytes(self.bytes()?).into()),
            META_U16 => MetaValue::UInt(u16::from_le_bytes(self.bytes()?).into()),
            META_I16 => MetaValue::Int(i16::from_le_bytes(self.bytes()?).into()),
            META_U32 => MetaValue::UInt(self.u32()?.into()),
            META_I32 => MetaValue::Int(i32::from_le_bytes(self.bytes()?).into()),
            META_F32 => MetaValue::Float(f32::from_le_bytes(self.bytes()?).into()),
            META_BOOL => MetaValue::Bool(u8::from_le_bytes(self.bytes()?) != 0),
            META_STRING => MetaValue::Str(self.string()?),
            META_U64 => MetaValue::UInt(self.u64()?),
            META_I64 => MetaValue::Int(i64::from_le_bytes(self.bytes()?)),
            META_F64 => MetaValue::Float(f64::from_le_bytes(self.bytes()?)),
            META_ARRAY => {
                let item_kind = self.u32()?;
                let count = self.u64()?;
                // Every item takes at least one byte: a bound on a corrupt count.
                self.expect_room(count, &format!("array `{key}`"))?;
                let mut items = Vec::with_capacity(count.min(1 << 20) as usize);
                for _ in 0..count {
                    items.push(self.value(item_kind, key)?);
                }
                MetaValue::Array(items)
            }
            other => {
                return Err(self.error(format!(
                    "metadata key `{key}`: unknown value type id {other}"
                )))
            }
        })
    }

    fn string(&mut self) -> Result<String> {
        let len = self.u64()?;
        self.expect_room(len, "a string")?;
        let mut buf = vec![0u8; len as usize];
        self.read(&mut buf)?;
        String::from_utf8(buf).map_err(|_| self.error("a string is not valid UTF-8"))
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.bytes()?))
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.bytes()?))
    }

    fn bytes<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut buf = [0u8; N];
        self.read(&mut buf)?;
        Ok(buf)
    }

    fn read(&mut self, buf: &mut [u8]) -> Result<()> {
        self.expect_room(buf.len() as u64, "the header")?;
        self.inner
            .read_exact(buf)
            .map_err(|e| Error::io(self.path, e))?;
        self.position += buf.len() as u64;
        Ok(())
    }

    fn expect_room(&self, bytes: u64, what: &str) -> Result<()> {
        if self.position.saturating_add(bytes) > self.file_size {
            return Err(self.error(format!(
                "truncated: {what} needs {bytes} bytes at offset {}, but the file has {} bytes",
                self.position, self.file_size
            )));
        }
        Ok(())
    }

    fn error(&self, message: impl Into<String>) -> Error {
        Error::Gguf {
            path: self.path.to_path_buf(),
            message: message.into(),
        }
    }
}
