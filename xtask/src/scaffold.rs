//! The text of the files `cargo xtask add-arch` writes: a plugin skeleton
//! in the one plugin layout (`lib.rs` registration, `config.rs` typed args
//! generated from a `config.json`, `model.rs` for the layers), the
//! golden-case module for golden/generate.py, and the plugin's tests (its
//! golden cases, and a synthetic-weights self-check).
//!
//! Types are read off the config's values; where a value does not settle
//! the type (a null, an object, an integer where the name suggests a real
//! number) the field is marked `GUESS` for the person porting the model.

use serde_json::{Map, Value};

/// forge-core's source, read at compile time for its list of keys every
/// config may carry that never change numerics (xtask must build without
/// MLX, so it cannot link forge-core).
const CORE_CONFIG_RS: &str = include_str!("../../core/src/config.rs");

/// `forge_core::config::GENERIC_IGNORED_KEYS`: forge-core skips these keys
/// itself, so the generated args struct leaves them out.
pub fn generic_ignored_keys() -> Vec<&'static str> {
    let start = "GENERIC_IGNORED_KEYS: &[&str] = &[";
    let Some(from) = CORE_CONFIG_RS.find(start) else {
        return Vec::new();
    };
    let list = &CORE_CONFIG_RS[from + start.len()..];
    let list = &list[..list.find("];").unwrap_or(0)];
    list.split(',')
        .map(|k| k.trim().trim_matches('"'))
        .filter(|k| !k.is_empty())
        .collect()
}

/// Rope keys: forge-core folds them into one `rope_parameters` object.
const ROPE_KEYS: &[&str] = &["rope_theta", "rope_scaling", "rope_parameters"];

/// Name endings that say a number is real even when the config writes it
/// as an integer (`"rope_theta": 10000`).
const REAL_SUFFIXES: &[&str] = &[
    "_eps",
    "epsilon",
    "_theta",
    "_factor",
    "_scale",
    "_scaling",
    "_std",
    "_range",
    "_multiplier",
    "_limit",
    "_ratio",
    "_temperature",
    "_softcap",
    "_softcapping",
];

/// One field of the generated args struct.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// The config key.
    pub key: String,
    /// The Rust field name (the key, made a valid identifier).
    pub ident: String,
    /// The Rust type.
    pub ty: String,
    /// Why the type is a guess, when it is one.
    pub guess: Option<String>,
    /// The value in the config, shortened, for the doc comment.
    pub example: String,
}

/// The fields of an args struct for `config` (a parsed config.json), in the
/// config's key order; generic keys are left out and rope keys become one
/// `rope_parameters` field.
pub fn fields(config: &Map<String, Value>) -> Vec<Field> {
    let generic = generic_ignored_keys();
    let mut out = Vec::new();
    let mut rope_done = false;
    for (key, value) in config {
        if generic.contains(&key.as_str()) {
            continue;
        }
        if ROPE_KEYS.contains(&key.as_str()) {
            if !rope_done {
                rope_done = true;
                out.push(Field {
                    key: "rope_parameters".into(),
                    ident: "rope_parameters".into(),
                    ty: "RopeParameters".into(),
                    guess: None,
                    example: "rope_theta / rope_scaling / rope_parameters, normalized".into(),
                });
            }
            continue;
        }
        let (ty, guess) = rust_type(key, value);
        out.push(Field {
            key: key.clone(),
            ident: ident(key),
            ty,
            guess,
            example: short(value),
        });
    }
    out
}

/// The Rust type of one config value, and why it is a guess (if it is).
pub fn rust_type(key: &str, value: &Value) -> (String, Option<String>) {
    let real_name = REAL_SUFFIXES.iter().any(|s| key.ends_with(s));
    match value {
        Value::Bool(_) => ("bool".into(), None),
        Value::Number(n) if n.is_f64() => ("f64".into(), None),
        Value::Number(_) if real_name => (
            "f64".into(),
            Some("written as an integer; a real number by its name".into()),
        ),
        Value::Number(n) if n.is_u64() => ("usize".into(), None),
        Value::Number(_) => ("i64".into(), None),
        Value::String(_) => ("String".into(), None),
        Value::Null => (
            "Option<serde_json::Value>".into(),
            Some("null in this config: give it its real type".into()),
        ),
        Value::Object(_) => (
            "serde_json::Value".into(),
            Some("a nested object: give it a struct of its own".into()),
        ),
        Value::Array(items) => array_type(items),
    }
}

fn array_type(items: &[Value]) -> (String, Option<String>) {
    let all = |f: fn(&Value) -> bool| !items.is_empty() && items.iter().all(f);
    if all(|v| v.is_u64()) {
        ("Vec<usize>".into(), None)
    } else if all(|v| v.is_number()) {
        ("Vec<f64>".into(), None)
    } else if all(|v| v.is_string()) {
        ("Vec<String>".into(), None)
    } else if all(|v| v.is_boolean()) {
        ("Vec<bool>".into(), None)
    } else {
        (
            "Vec<serde_json::Value>".into(),
            Some("an empty or mixed list: give its items a type".into()),
        )
    }
}

const KEYWORDS: &[&str] = &[
    "as", "break", "const", "continue", "crate", "else", "enum", "extern", "false", "fn", "for",
    "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref", "return",
    "self", "static", "struct", "super", "trait", "true", "type", "unsafe", "use", "where",
    "while", "async", "await", "dyn", "abstract", "become", "box", "do", "final", "macro",
    "override", "priv", "typeof", "unsized", "virtual", "yield", "try",
];

/// A config key as a Rust field name: lowercase, `_` for anything else, a
/// leading `_` before a digit, a `_` after a keyword.
pub fn ident(key: &str) -> String {
    let mut s: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, '_');
    }
    if KEYWORDS.contains(&s.as_str()) {
        s.push('_');
    }
    s
}

/// `qwen2_moe` → `Qwen2Moe`.
pub fn camel(model_type: &str) -> String {
    model_type
        .split(['_', '-'])
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

fn short(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 60 {
        format!("{}…", text.chars().take(57).collect::<String>())
    } else {
        text
    }
}

/// The generated `src/config.rs`.
pub fn args_module(model_type: &str, struct_name: &str, fields: &[Field]) -> String {
    let mut s = format!(
        "//! The config of a {model_type} checkpoint, generated by `cargo xtask add-arch \
         --from-config`\n//! from the keys and value types of one config.json. Check every \
         field marked\n//! GUESS, add `#[serde(default)]` where a key may be absent, and \
         list keys that\n//! do not change numerics in IGNORED_CONFIG_KEYS \
         instead.\n\n"
    );
    if fields.iter().any(|f| f.ty == "RopeParameters") {
        s.push_str("use forge_core::rope::RopeParameters;\n");
    }
    s.push_str("use serde::Deserialize;\n\n");
    s.push_str(&format!(
        "/// {model_type} config keys that do not change the numerics of inference.\n\
         pub const IGNORED_CONFIG_KEYS: &[&str] = &[];\n\n"
    ));
    s.push_str(&format!(
        "/// The config of a {model_type} checkpoint (HF names).\n\
         #[derive(Debug, Clone, Deserialize)]\npub struct {struct_name} {{\n"
    ));
    for f in fields {
        s.push_str(&format!("    /// `{}` (here: {}).\n", f.key, f.example));
        if let Some(why) = &f.guess {
            s.push_str(&format!("    // GUESS: {why}.\n"));
        }
        if f.ty == "RopeParameters" {
            s.push_str("    #[serde(default)]\n");
        }
        if f.ident != f.key {
            s.push_str(&format!("    #[serde(rename = \"{}\")]\n", f.key));
        }
        s.push_str(&format!("    pub {}: {},\n", f.ident, f.ty));
    }
    s.push_str("}\n");
    s
}

/// The generated `src/lib.rs` of a plugin started from a config: the
/// registration and the crate's docs.
pub fn skeleton_lib(model_type: &str, struct_name: &str) -> String {
    format!(
        r#"//! {model_type} for Forge, started by `cargo xtask add-arch --from-config`.
//!
//! - [`config`]: the typed args ([`{struct_name}`]), every config key
//!   accounted for;
//! - [`model`]: the decoder layer on forge-core's decoder base (to write).
//!
//! Prove it with `cargo xtask parity --model {model_type}`.

pub mod config;
pub mod model;

use forge_core::registry::{{keep_weights, Architecture}};

pub use config::{struct_name};
pub use model::build;

inventory::submit! {{
    Architecture {{
        model_type: "{model_type}",
        aliases: &[],
        description: "{model_type} (skeleton from cargo xtask add-arch: layers not written yet)",
        ignored_config_keys: config::IGNORED_CONFIG_KEYS,
        sanitize: keep_weights,
        build,
    }}
}}
"#
    )
}

/// The generated `src/model.rs` of a plugin started from a config: `build`
/// parses the args and says clearly that the layers are still to be written.
pub fn skeleton_model(model_type: &str, dir: &str, struct_name: &str) -> String {
    format!(
        r#"//! The {model_type} decoder layer, on forge-core's decoder base.
//!
//! To write: a layer type implementing `forge_core::decoder::DecoderLayer`
//! (its forward over the residual stream with `LayerContext`'s mask and
//! input norm, its window, the numbers it caches per token), loaded with
//! `Weights::take`; then `build` wraps the layers in
//! `forge_core::decoder::CausalLm::load`. arch-plugins/llama/src/model.rs is
//! a complete example; `forge_core::nn` holds the shared attention, gated
//! MLPs and switch layer, `forge_core::rope` every rope variant.

use forge_core::model::Model;
use forge_core::{{Error, ModelConfig, Result, Weights}};

use crate::config::{{{struct_name}, IGNORED_CONFIG_KEYS}};

/// Builds a {model_type} model from its config and weights.
pub fn build(config: &ModelConfig, weights: &mut Weights) -> Result<Box<dyn Model>> {{
    let args: {struct_name} = config.parse_args(IGNORED_CONFIG_KEYS)?;
    let _ = (&args, weights);
    Err(Error::InvalidInput {{
        expected: "a {model_type} model with its layers written (arch-plugins/{dir}/src/model.rs)".into(),
        found: "the skeleton from `cargo xtask add-arch`: the config parses, no layers yet".into(),
    }})
}}
"#
    )
}

/// The generated `Cargo.toml` of a skeleton plugin.
pub fn skeleton_manifest(krate: &str, model_type: &str) -> String {
    format!(
        "[package]\nname = \"{krate}\"\ndescription = \"Forge plugin: the {model_type} \
         architecture\"\nversion.workspace = true\nedition.workspace = true\n\
         license.workspace = true\n\n[dependencies]\nforge-core.workspace = true\n\
         inventory.workspace = true\nserde.workspace = true\nserde_json.workspace = true\n\n\
         [dev-dependencies]\nforge-parity.workspace = true\n"
    )
}

/// Adds `forge-parity` as a dev-dependency to a copied plugin manifest.
pub fn with_parity_dev_dependency(manifest: &str) -> String {
    if manifest.contains("forge-parity") {
        return manifest.to_string();
    }
    let mut out = manifest.trim_end().to_string();
    if out.contains("[dev-dependencies]") {
        out = out.replacen(
            "[dev-dependencies]",
            "[dev-dependencies]\nforge-parity.workspace = true",
            1,
        );
        out.push('\n');
    } else {
        out.push_str("\n\n[dev-dependencies]\nforge-parity.workspace = true\n");
    }
    out
}

/// The plugin's `tests/parity.rs`: its golden cases through the normal
/// loading path.
pub fn parity_test(model_type: &str, ident: &str, case: &str) -> String {
    format!(
        r#"//! The {model_type} golden cases, loaded as users load models and checked
//! against Hugging Face transformers (logits, every hidden state, greedy
//! tokens, cache consistency).

use std::path::Path;

use forge_parity::{{render_table, run_case, select_cases, RunOptions}};

/// Links the plugin so it registers.
extern crate {ident};

#[test]
fn golden_cases_pass() {{
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../golden");
    let cases = select_cases(&golden, Some("{model_type}")).unwrap_or_else(|e| {{
        panic!("{{e}}\nbuild the fixture first: cargo xtask golden --case {case}")
    }});
    let reports: Vec<_> = cases
        .iter()
        .map(|c| run_case(c, &RunOptions::default()))
        .collect();
    let table = render_table(&reports);
    assert!(reports.iter().all(|r| r.passed()), "{{table}}");
}}
"#
    )
}

/// The plugin's `tests/model.rs`: a tiny model from `tiny` (the tiny
/// config's entries) with synthetic weights through the plugin's own
/// `build`, checked by [`forge_parity::self_check`]: shapes, hidden
/// states, finite logits, cache against the one-shot forward, KV bytes.
pub fn model_test(model_type: &str, ident: &str, tiny: &[(String, Value, bool)]) -> String {
    let mut config = Map::new();
    config.insert("model_type".into(), Value::from(model_type));
    for (key, value, _) in tiny {
        config.insert(key.clone(), value.clone());
    }
    let json = serde_json::to_string_pretty(&Value::Object(config)).unwrap_or_default();
    format!(
        r##"//! A tiny {model_type} with synthetic weights, built by the plugin's own
//! `build`: the output shapes, one hidden state per layer plus one, finite
//! logits, decoding with the cache equal to the one-shot forward, and KV
//! bytes that match the cache. The numbers are checked against Hugging Face
//! by the golden cases (tests/parity.rs).

/// Links the plugin so it registers.
extern crate {ident};

/// The tiny config (the same sizes as the golden case's).
const TINY_CONFIG: &str = r#"{json}"#;

#[test]
fn a_tiny_model_runs_and_its_cache_agrees_with_the_full_forward() {{
    let report = forge_parity::self_check(TINY_CONFIG, 8).unwrap_or_else(|e| panic!("{{e}}"));
    assert_eq!(report.model_type, "{model_type}");
}}
"##
    )
}

/// Config keys that set a model's size, and the value a tiny golden model
/// uses instead.
const TINY_SIZES: &[(&str, i64)] = &[
    ("vocab_size", 256),
    ("hidden_size", 64),
    ("intermediate_size", 128),
    ("num_hidden_layers", 2),
    ("num_attention_heads", 4),
    ("head_dim", 16),
    ("moe_intermediate_size", 32),
    ("num_experts", 4),
    ("num_local_experts", 4),
    ("n_routed_experts", 4),
    ("num_experts_per_tok", 2),
    ("max_position_embeddings", 512),
];

/// The config a tiny golden model starts from: the given config's keys
/// (generic ones dropped) with its sizes shrunk, or, without a config, just
/// the tiny sizes of a decoder. Returns the entries and which were changed.
pub fn tiny_config(config: Option<&Map<String, Value>>) -> Vec<(String, Value, bool)> {
    let Some(config) = config else {
        return TINY_SIZES
            .iter()
            .filter(|(k, _)| !k.contains("expert") && *k != "moe_intermediate_size")
            .map(|(k, v)| (k.to_string(), Value::from(*v), true))
            .chain([("num_key_value_heads".to_string(), Value::from(2), true)])
            .collect();
    };
    let mha = config.get("num_key_value_heads") == config.get("num_attention_heads");
    let layers = config.get("num_hidden_layers").and_then(Value::as_u64);
    let tiny_layers = TINY_SIZES
        .iter()
        .find(|(k, _)| *k == "num_hidden_layers")
        .map_or(2, |(_, n)| *n as usize);
    let generic = generic_ignored_keys();
    config
        .iter()
        .filter(|(k, _)| !generic.contains(&k.as_str()))
        .map(|(k, v)| {
            let tiny = match k.as_str() {
                "num_key_value_heads" => Some(if mha { 4 } else { 2 }),
                _ => TINY_SIZES.iter().find(|(s, _)| s == k).map(|(_, t)| *t),
            };
            match (tiny, v) {
                (Some(t), _) if v.is_number() => (k.clone(), Value::from(t), true),
                // A per-layer list (`layer_types`, ...) keeps its first layers.
                (_, Value::Array(items))
                    if Some(items.len() as u64) == layers && items.len() > tiny_layers =>
                {
                    (k.clone(), Value::from(items[..tiny_layers].to_vec()), true)
                }
                _ => (k.clone(), v.clone(), false),
            }
        })
        .collect()
}

/// A JSON value as a Python literal.
pub fn python_literal(value: &Value) -> String {
    match value {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => Value::String(s.clone()).to_string(),
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(python_literal).collect();
            format!("[{}]", inner.join(", "))
        }
        Value::Object(map) => {
            let inner: Vec<String> = map
                .iter()
                .map(|(k, v)| {
                    format!(
                        "{}: {}",
                        python_literal(&Value::from(k.clone())),
                        python_literal(v)
                    )
                })
                .collect();
            format!("{{{}}}", inner.join(", "))
        }
    }
}

/// The golden-case module `golden/<module>.py` with one tiny case.
pub fn cases_module(
    model_type: &str,
    case: &str,
    function: &str,
    tiny: &[(String, Value, bool)],
) -> String {
    let mut entries = String::new();
    for (key, value, shrunk) in tiny {
        let note = if *shrunk { "  # shrunk" } else { "" };
        entries.push_str(&format!(
            "    {}: {},{note}\n",
            python_literal(&Value::from(key.clone())),
            python_literal(value)
        ));
    }
    format!(
        r#""""Golden cases for {model_type}, started by `cargo xtask add-arch`.

Each case is a tiny seeded model built by Hugging Face transformers from a
config; generate.py writes its checkpoint, inputs and reference outputs.
Make the config exercise what the architecture adds (its rope, its
attention pattern, its MLP), then run `cargo xtask golden --case {case}`.
"""

from transformers import AutoConfig

# The checkpoint's config keys, sizes shrunk to a tiny model (marked).
TINY_CONFIG = {{
{entries}}}


def {function}():
    # Imported here, not at the top: generate.py imports this module.
    from generate import Case

    return Case(
        name="{case}",
        arch="{model_type}",
        description="tiny {model_type} from its config (cargo xtask add-arch)",
        seed=0,
        config=AutoConfig.for_model("{model_type}", **TINY_CONFIG),
        prompt_lengths=[12],
    )
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Map<String, Value> {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn types_follow_the_values_and_guesses_are_marked() {
        let c = config(
            r#"{"model_type": "x", "hidden_size": 64, "rms_norm_eps": 1e-6,
                "rope_theta": 10000, "rope_scaling": null, "tie_word_embeddings": false,
                "hidden_act": "silu", "layer_types": ["full", "sliding"],
                "sliding_window": null, "quantization_config": {"bits": 4},
                "shift": -1, "router_aux_loss_coef": 1, "type": 3, "mlp_layer_ids": [0, 2],
                "bos_token_id": 1}"#,
        );
        let f = fields(&c);
        let find = |k: &str| f.iter().find(|f| f.key == k).unwrap();
        assert_eq!(find("hidden_size").ty, "usize");
        assert_eq!(find("rms_norm_eps").ty, "f64");
        assert_eq!(find("tie_word_embeddings").ty, "bool");
        assert_eq!(find("hidden_act").ty, "String");
        assert_eq!(find("layer_types").ty, "Vec<String>");
        assert_eq!(find("mlp_layer_ids").ty, "Vec<usize>");
        assert_eq!(find("shift").ty, "i64");
        assert_eq!(find("rope_parameters").ty, "RopeParameters");
        let sliding = find("sliding_window");
        assert_eq!(sliding.ty, "Option<serde_json::Value>");
        assert!(sliding.guess.is_some());
        assert!(find("quantization_config").guess.is_some());
        let coef = find("router_aux_loss_coef");
        assert_eq!(coef.ty, "usize", "no real-number suffix, so an integer");
        assert_eq!(find("type").ident, "type_");
        // Generic keys are left to forge-core; rope keys become one field.
        assert!(f
            .iter()
            .all(|f| f.key != "model_type" && f.key != "bos_token_id"));
        assert_eq!(f.iter().filter(|f| f.key.starts_with("rope")).count(), 1);
        let text = args_module("x", "XArgs", &f);
        assert!(text.contains("    // GUESS: null in this config"), "{text}");
        assert!(text.contains("    #[serde(rename = \"type\")]\n    pub type_: usize,"));
        assert!(text.contains("use forge_core::rope::RopeParameters;"));
    }

    #[test]
    fn an_integer_with_a_real_name_is_a_guessed_f64() {
        let (ty, guess) = rust_type("rope_theta", &Value::from(10000));
        assert_eq!(ty, "f64");
        assert!(guess.is_some());
        let (ty, guess) = rust_type("norm_epsilon", &Value::from(1));
        assert_eq!((ty.as_str(), guess.is_some()), ("f64", true));
    }

    #[test]
    fn names() {
        assert_eq!(camel("qwen2_moe"), "Qwen2Moe");
        assert_eq!(camel("deepseek-v3"), "DeepseekV3");
        assert_eq!(ident("n-experts"), "n_experts");
        assert_eq!(ident("3d"), "_3d");
    }

    #[test]
    fn tiny_configs_shrink_sizes_and_keep_the_rest() {
        let c = config(
            r#"{"model_type": "x", "hidden_size": 4096, "num_attention_heads": 32,
                "num_key_value_heads": 32, "rope_theta": 500000.0, "eos_token_id": 2,
                "num_hidden_layers": 3, "layer_types": ["s", "f", "s"], "pair": [1, 2, 3, 4]}"#,
        );
        let tiny = tiny_config(Some(&c));
        let get = |k: &str| tiny.iter().find(|(key, _, _)| key == k).cloned();
        assert_eq!(get("hidden_size").unwrap().1, Value::from(64));
        assert_eq!(get("num_attention_heads").unwrap().1, Value::from(4));
        // Multi-head attention stays multi-head.
        assert_eq!(get("num_key_value_heads").unwrap().1, Value::from(4));
        assert_eq!(
            get("rope_theta").unwrap(),
            ("rope_theta".into(), Value::from(500000.0), false)
        );
        assert!(get("eos_token_id").is_none() && get("model_type").is_none());
        // Per-layer lists follow the layer count; other lists stay.
        assert_eq!(get("layer_types").unwrap().1, serde_json::json!(["s", "f"]));
        assert_eq!(get("pair").unwrap().1, serde_json::json!([1, 2, 3, 4]));
        let module = cases_module("x", "x-tiny", "case_x_tiny", &tiny);
        assert!(
            module.contains("    \"hidden_size\": 64,  # shrunk\n"),
            "{module}"
        );
        assert!(module.contains("AutoConfig.for_model(\"x\", **TINY_CONFIG)"));
    }

    #[test]
    fn python_literals() {
        let v: Value = serde_json::from_str(r#"{"a": [true, null, 1.5, "q\"s"]}"#).unwrap();
        assert_eq!(python_literal(&v), r#"{"a": [True, None, 1.5, "q\"s"]}"#);
    }

    #[test]
    fn the_generic_keys_are_read_from_forge_core() {
        let keys = generic_ignored_keys();
        for key in ["architectures", "model_type", "torch_dtype", "bos_token_id"] {
            assert!(keys.contains(&key), "{key} missing from {keys:?}");
        }
        assert!(
            keys.iter().all(|k| !k.contains(['"', ' ', '\n'])),
            "{keys:?}"
        );
    }

    #[test]
    fn parity_dev_dependency_is_added_once() {
        let m = "[package]\nname = \"x\"\n\n[dependencies]\na = 1\n";
        let once = with_parity_dev_dependency(m);
        assert!(once.ends_with("[dev-dependencies]\nforge-parity.workspace = true\n"));
        assert_eq!(with_parity_dev_dependency(&once), once);
        let with_dev = "[dev-dependencies]\nb = 1\n";
        assert_eq!(
            with_parity_dev_dependency(with_dev),
            "[dev-dependencies]\nforge-parity.workspace = true\nb = 1\n"
        );
    }
}
