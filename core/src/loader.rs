//! The one loading path: model id or folder → config → plugin → weights →
//! sanitize → strict load. The parity harness, the CLI and the generation
//! API all load through [`load_model`].

use std::path::{Path, PathBuf};

use mlx_rs::Dtype;

use crate::config::{ConfigKeyReport, ModelConfig};
use crate::error::{Error, Result};
use crate::hub::{self, HubOptions};
use crate::model::Model;
use crate::registry::{self, Architecture};
use crate::weights::{load_safetensors_dir, Weights};

/// How to load a model.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Unknown config keys are errors (the parity harness always sets this).
    pub strict: bool,
    /// Cast floating-point weights to this dtype (`None`: keep the stored dtype).
    pub dtype: Option<Dtype>,
    /// Where hub ids are looked up.
    pub hub: HubOptions,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            strict: false,
            dtype: None,
            hub: HubOptions::from_env(),
        }
    }
}

impl LoadOptions {
    /// Strict loading: unknown config keys are errors.
    pub fn strict() -> Self {
        LoadOptions {
            strict: true,
            ..Default::default()
        }
    }
}

/// A loaded model and what was learned while loading it.
pub struct LoadedModel {
    /// The model.
    pub model: Box<dyn Model>,
    /// The plugin that built it.
    pub architecture: &'static Architecture,
    /// The folder it was loaded from.
    pub dir: PathBuf,
    /// The config (normalized).
    pub config: ModelConfig,
    /// Config keys that were ignored or not understood.
    pub config_keys: ConfigKeyReport,
    /// Every checkpoint tensor's name, shape and dtype, after sanitize.
    pub tensors: Vec<(String, Vec<i32>, Dtype)>,
}

impl std::fmt::Debug for LoadedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedModel")
            .field("model_type", &self.architecture.model_type)
            .field("dir", &self.dir)
            .finish()
    }
}

/// Loads a model from a folder or hub id.
pub fn load_model(model: &str, options: &LoadOptions) -> Result<LoadedModel> {
    let dir = hub::resolve(model, &options.hub)?;
    load_model_dir(&dir, options)
}

/// Loads a model from a local folder holding `config.json` and safetensors.
pub fn load_model_dir(dir: &Path, options: &LoadOptions) -> Result<LoadedModel> {
    if !dir.is_dir() {
        return Err(Error::MissingFile {
            path: dir.to_path_buf(),
            what: "a model folder".into(),
        });
    }
    let config = ModelConfig::from_file(dir.join("config.json"), options.strict)?;
    let architecture = registry::for_config(&config)?;
    let tensors = load_safetensors_dir(dir)?;
    let tensors = (architecture.sanitize)(&config, tensors)?;
    let inventory = tensors
        .iter()
        .map(|(name, a)| (name.clone(), a.shape().to_vec(), a.dtype()))
        .collect();
    let mut weights = Weights::new(tensors, dir.display().to_string()).with_dtype(options.dtype);
    let model = (architecture.build)(&config, &mut weights)?;
    weights.finish()?;
    let config_keys = config.key_report();
    Ok(LoadedModel {
        model,
        architecture,
        dir: dir.to_path_buf(),
        config,
        config_keys,
        tensors: inventory,
    })
}
