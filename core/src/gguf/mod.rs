//! GGUF checkpoints: llama.cpp's single-file format.
//!
//! A GGUF enters the same loading path as a Hugging Face folder (see
//! [`crate::loader`]); this module supplies the two things a folder would:
//!
//! - a `config.json`: the hyper-parameters in the metadata, written under
//!   the HF names the plugin's typed args already read ([`config_json`]);
//! - the tensors under HF names ([`load_tensors`]). MLX reads them and turns
//!   Q4_0 / Q4_1 / Q8_0 into its affine-quantized format (codes, scales,
//!   biases; see [`crate::quant`]), which the layers multiply with MLX's
//!   quantized matmul. llama.cpp's converter permutes the rows of the query
//!   and key projections to suit its rope layout; they are permuted back.
//!
//! The header is read and checked in Rust first ([`GgufHeader::read`]), so a
//! truncated file, an unsupported tensor type or an unsupported
//! architecture gets an error naming it. The tokenizer and chat template
//! come from the metadata too ([`tokenizer_from_gguf`]).

mod header;
mod tokenizer;
pub mod writer;

use std::collections::BTreeMap;
use std::path::Path;

use mlx_rs::{io::GgufFile, Array, Dtype};
use serde_json::{json, Map, Value};

pub use header::{GgmlType, GgufHeader, MetaValue, TensorInfo, LOADABLE_TYPES};
pub use tokenizer::tokenizer_from_gguf;

use crate::error::Result;
use crate::weights::TensorMap;

/// GGUF architectures Forge maps onto a plugin.
pub const SUPPORTED_ARCHITECTURES: [&str; 1] = ["llama"];

/// The `config.json` (as a JSON object) that the metadata describes.
pub fn config_json(header: &GgufHeader) -> Result<Map<String, Value>> {
    let arch = header.string("general.architecture")?;
    if !SUPPORTED_ARCHITECTURES.contains(&arch) {
        return Err(header.error(format!(
            "unsupported architecture: expected one of {}, found `{arch}`",
            SUPPORTED_ARCHITECTURES.join(", ")
        )));
    }
    llama_config(header, arch)
}

fn llama_config(h: &GgufHeader, arch: &str) -> Result<Map<String, Value>> {
    let key = |name: &str| format!("{arch}.{name}");
    let heads = h.uint(&key("attention.head_count"))?;
    let hidden = h.uint(&key("embedding_length"))?;
    let kv_heads = match h.get(&key("attention.head_count_kv")) {
        None => heads,
        Some(_) => h.uint(&key("attention.head_count_kv"))?,
    };
    if heads == 0 || kv_heads == 0 || heads % kv_heads != 0 {
        return Err(h.error(format!(
            "{}: expected a positive head count divisible by the kv head count, found {heads} and {kv_heads}",
            key("attention.head_count")
        )));
    }
    let head_dim = match h.get(&key("attention.key_length")) {
        Some(_) => h.uint(&key("attention.key_length"))?,
        None => hidden / heads,
    };
    let eps = h
        .float_opt(&key("attention.layer_norm_rms_epsilon"))?
        .ok_or_else(|| {
            h.error(format!(
                "metadata key `{}`: expected a number, found nothing",
                key("attention.layer_norm_rms_epsilon")
            ))
        })?;
    let vocab = match h.get(&key("vocab_size")) {
        Some(_) => h.uint(&key("vocab_size"))?,
        None => match h.strings("tokenizer.ggml.tokens")? {
            Some(tokens) => tokens.len() as u64,
            None => return Err(h.error(format!("no `{}` and no token list", key("vocab_size")))),
        },
    };
    if h.tensor("rope_freqs.weight").is_some() {
        return Err(h.error(
            "unsupported rope: the file carries `rope_freqs.weight` (llama3-style frequency \
             scaling), which Forge does not map from GGUF yet",
        ));
    }
    let mut rope = json!({"rope_type": "default", "rope_theta": h.float_opt(&key("rope.freq_base"))?.unwrap_or(10_000.0)});
    match h.get(&key("rope.scaling.type")).and_then(|v| v.as_str()) {
        None | Some("none") => {}
        Some("linear") => {
            let factor = h
                .float_opt(&key("rope.scaling.factor"))?
                .ok_or_else(|| h.error(format!("`{}` is missing", key("rope.scaling.factor"))))?;
            rope["rope_type"] = json!("linear");
            rope["factor"] = json!(factor);
        }
        Some(other) => {
            return Err(h.error(format!(
                "{}: expected none or linear, found `{other}`",
                key("rope.scaling.type")
            )))
        }
    }
    let mut config = Map::new();
    config.insert("model_type".into(), json!("llama"));
    config.insert("vocab_size".into(), json!(vocab));
    config.insert("hidden_size".into(), json!(hidden));
    config.insert(
        "intermediate_size".into(),
        json!(h.uint(&key("feed_forward_length"))?),
    );
    config.insert(
        "num_hidden_layers".into(),
        json!(h.uint(&key("block_count"))?),
    );
    config.insert("num_attention_heads".into(), json!(heads));
    config.insert("num_key_value_heads".into(), json!(kv_heads));
    config.insert("head_dim".into(), json!(head_dim));
    config.insert("rms_norm_eps".into(), json!(eps));
    config.insert(
        "max_position_embeddings".into(),
        json!(h.uint(&key("context_length"))?),
    );
    config.insert(
        "tie_word_embeddings".into(),
        json!(h.tensor("output.weight").is_none()),
    );
    config.insert("rope_parameters".into(), rope);
    for (ours, theirs) in [
        ("bos_token_id", "tokenizer.ggml.bos_token_id"),
        ("eos_token_id", "tokenizer.ggml.eos_token_id"),
    ] {
        if let Some(id) = h.get(theirs).and_then(MetaValue::as_u64) {
            config.insert(ours.into(), json!(id));
        }
    }
    Ok(config)
}

/// llama.cpp tensor names → HF names, for the parts of a name before `.weight` etc.
fn hf_name(base: &str) -> Option<String> {
    let fixed = match base {
        "token_embd" => Some("model.embed_tokens"),
        "output_norm" => Some("model.norm"),
        "output" => Some("lm_head"),
        _ => None,
    };
    if let Some(name) = fixed {
        return Some(name.to_string());
    }
    let rest = base.strip_prefix("blk.")?;
    let (layer, part) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let part = match part {
        "attn_norm" => "input_layernorm",
        "ffn_norm" => "post_attention_layernorm",
        "attn_q" => "self_attn.q_proj",
        "attn_k" => "self_attn.k_proj",
        "attn_v" => "self_attn.v_proj",
        "attn_output" => "self_attn.o_proj",
        "ffn_gate" => "mlp.gate_proj",
        "ffn_up" => "mlp.up_proj",
        "ffn_down" => "mlp.down_proj",
        _ => return None,
    };
    Some(format!("model.layers.{layer}.{part}"))
}

/// Loads every tensor through MLX, under HF names, with the query and key
/// rows un-permuted (head counts from `config`, see [`config_json`]). Quantized matrices stay quantized unless `dequantize`,
/// in which case they become float32. Scales and biases are float32 (they
/// are stored as f16, and float32 holds them exactly).
pub fn load_tensors(
    header: &GgufHeader,
    config: &Map<String, Value>,
    dequantize: bool,
) -> Result<TensorMap> {
    let heads = config["num_attention_heads"].as_u64().unwrap_or(1) as i32;
    let kv_heads = config["num_key_value_heads"].as_u64().unwrap_or(1) as i32;

    let file = GgufFile::load(&header.path)
        .map_err(|e| header.error(format!("MLX could not read the tensors: {e}")))?;
    let arrays = file
        .arrays()
        .map_err(|e| header.error(format!("MLX could not read the tensors: {e}")))?;
    let mut tensors = TensorMap::new();
    let mut bits: BTreeMap<String, i32> = BTreeMap::new();
    for (name, array) in arrays {
        let (base, suffix) = name.rsplit_once('.').unwrap_or((name.as_str(), ""));
        let Some(hf_base) = hf_name(base) else {
            // Unknown names go through unchanged: strict loading reports them.
            tensors.insert(name, array);
            continue;
        };
        let mut array = array;
        if suffix == "scales" || suffix == "biases" {
            array = array.as_dtype(Dtype::Float32)?;
        }
        if base.ends_with(".attn_q") {
            array = unpermute_rows(&array, heads)?;
        } else if base.ends_with(".attn_k") {
            array = unpermute_rows(&array, kv_heads)?;
        }
        let hf = format!("{hf_base}.{suffix}");
        if suffix == "weight" {
            if let Some(b) = header
                .tensor(&name)
                .and_then(|t| t.ggml_type.quantized_bits())
            {
                bits.insert(hf.clone(), b);
            }
        }
        tensors.insert(hf, array);
    }
    if dequantize {
        crate::quant::dequantize_tensors(&mut tensors, |name| {
            bits.get(name).copied().unwrap_or(4)
        })?;
    }
    Ok(tensors)
}

/// Undoes llama.cpp's rope permutation of a projection's rows.
///
/// llama.cpp stores, per head, the rows of the first and second halves of
/// the head interleaved (`[n, 2, d/2] → [n, d/2, 2]`) so that its rope can
/// rotate adjacent pairs; HF rotates halves. Rows are independent, so the
/// same permutation applies to packed quantized codes, scales and biases.
pub fn unpermute_rows(array: &Array, heads: i32) -> Result<Array> {
    let shape = array.shape().to_vec();
    let rows = shape[0];
    if heads <= 0 || rows % (2 * heads) != 0 {
        return Ok(array.clone());
    }
    let half = rows / heads / 2;
    let mut split = vec![heads, half, 2];
    split.extend_from_slice(&shape[1..]);
    Ok(array.reshape(&split)?.swap_axes(1, 2)?.reshape(&shape)?)
}

/// The tensors of `path`, as the loader wants them, and its `config.json`.
pub fn read_checkpoint(
    path: &Path,
    dequantize: bool,
) -> Result<(GgufHeader, Map<String, Value>, TensorMap)> {
    let header = GgufHeader::read(path)?;
    let config = config_json(&header)?;
    let tensors = load_tensors(&header, &config, dequantize)?;
    Ok((header, config, tensors))
}

/// How a quantized matrix of this file is stored, for `forge inspect`.
pub fn describe_quantization(header: &GgufHeader) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for t in &header.tensors {
        *counts.entry(t.ggml_type.name).or_default() += 1;
    }
    counts
        .iter()
        .map(|(ty, n)| format!("{ty} x{n}"))
        .collect::<Vec<_>>()
        .join(", ")
}
