//! A minimal GGUF writer: metadata plus tensors whose bytes the caller
//! supplies. Forge uses it to make small GGUF files in tests (a tiny model
//! in llama.cpp's layout, files with a bad type or cut short); it writes
//! version 3 with the default 32-byte alignment.

use std::path::Path;

use crate::error::{Error, Result};

/// A metadata value to write.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteValue {
    /// `u32`.
    U32(u32),
    /// `f32`.
    F32(f32),
    /// `bool`.
    Bool(bool),
    /// A string.
    Str(String),
    /// An array of strings.
    Strs(Vec<String>),
    /// An array of `i32`.
    I32s(Vec<i32>),
}

/// A tensor to write: its name, row-major shape, ggml type id and raw bytes.
#[derive(Debug, Clone)]
pub struct WriteTensor {
    /// The tensor's name.
    pub name: String,
    /// Row-major shape (written reversed, as GGUF stores it).
    pub shape: Vec<u64>,
    /// ggml type id (0 = F32).
    pub ggml_type: u32,
    /// The stored bytes.
    pub data: Vec<u8>,
}

impl WriteTensor {
    /// An F32 tensor from values.
    pub fn f32(name: &str, shape: &[u64], values: &[f32]) -> Self {
        WriteTensor {
            name: name.to_string(),
            shape: shape.to_vec(),
            ggml_type: 0,
            data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }
}

const ALIGNMENT: usize = 32;

/// The bytes of a GGUF file holding `metadata` and `tensors`.
pub fn gguf_bytes(metadata: &[(&str, WriteValue)], tensors: &[WriteTensor]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(b"GGUF");
    out.extend_from_slice(&3u32.to_le_bytes());
    out.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    out.extend_from_slice(&(metadata.len() as u64).to_le_bytes());
    for (key, value) in metadata {
        put_string(&mut out, key);
        put_value(&mut out, value);
    }
    let mut offset = 0usize;
    for t in tensors {
        put_string(&mut out, &t.name);
        out.extend_from_slice(&(t.shape.len() as u32).to_le_bytes());
        for d in t.shape.iter().rev() {
            out.extend_from_slice(&d.to_le_bytes());
        }
        out.extend_from_slice(&t.ggml_type.to_le_bytes());
        out.extend_from_slice(&(offset as u64).to_le_bytes());
        offset += t.data.len().div_ceil(ALIGNMENT) * ALIGNMENT;
    }
    pad(&mut out);
    for t in tensors {
        out.extend_from_slice(&t.data);
        pad(&mut out);
    }
    out
}

/// Writes [`gguf_bytes`] to `path`.
pub fn write_gguf(
    path: &Path,
    metadata: &[(&str, WriteValue)],
    tensors: &[WriteTensor],
) -> Result<()> {
    std::fs::write(path, gguf_bytes(metadata, tensors)).map_err(|e| Error::io(path, e))
}

fn pad(out: &mut Vec<u8>) {
    out.resize(out.len().div_ceil(ALIGNMENT) * ALIGNMENT, 0);
}

fn put_string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_value(out: &mut Vec<u8>, value: &WriteValue) {
    // Type ids: 4 u32, 5 i32, 6 f32, 7 bool, 8 string, 9 array.
    match value {
        WriteValue::U32(v) => {
            out.extend_from_slice(&4u32.to_le_bytes());
            out.extend_from_slice(&v.to_le_bytes());
        }
        WriteValue::F32(v) => {
            out.extend_from_slice(&6u32.to_le_bytes());
            out.extend_from_slice(&v.to_le_bytes());
        }
        WriteValue::Bool(v) => {
            out.extend_from_slice(&7u32.to_le_bytes());
            out.push(u8::from(*v));
        }
        WriteValue::Str(s) => {
            out.extend_from_slice(&8u32.to_le_bytes());
            put_string(out, s);
        }
        WriteValue::Strs(items) => {
            out.extend_from_slice(&9u32.to_le_bytes());
            out.extend_from_slice(&8u32.to_le_bytes());
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for s in items {
                put_string(out, s);
            }
        }
        WriteValue::I32s(items) => {
            out.extend_from_slice(&9u32.to_le_bytes());
            out.extend_from_slice(&5u32.to_le_bytes());
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for v in items {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
    }
}
