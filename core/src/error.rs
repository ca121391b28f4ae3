//! The one error type of forge-core.
//!
//! Every message says where the problem is (file, config key, tensor name),
//! what was expected and what was found.

use std::path::PathBuf;

/// Result alias used throughout forge-core.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while resolving, loading or running a model.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },

    /// A file the model needs is not there.
    #[error("{path}: missing ({what})")]
    MissingFile {
        /// The path that was looked for.
        path: PathBuf,
        /// What the file would have provided.
        what: String,
    },

    /// A JSON file is not valid JSON.
    #[error("{path}: invalid JSON at line {line}, column {column}: {message}")]
    Json {
        /// The file.
        path: PathBuf,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// What the parser said.
        message: String,
    },

    /// A config value has the wrong type or an invalid value.
    #[error("{path}: key `{key}`: expected {expected}, found {found}")]
    ConfigValue {
        /// The config file.
        path: PathBuf,
        /// The key (dotted path for nested keys).
        key: String,
        /// What a valid value looks like.
        expected: String,
        /// What the file holds.
        found: String,
    },

    /// Config keys that Forge does not understand, in strict mode.
    #[error(
        "{path}: config keys not understood by the `{model_type}` plugin: {}; \
         they may change the numerics, so strict mode refuses them",
        keys.join(", ")
    )]
    UnknownConfigKeys {
        /// The config file.
        path: PathBuf,
        /// The model type whose plugin parsed it.
        model_type: String,
        /// The keys (dotted paths).
        keys: Vec<String>,
    },

    /// No plugin is registered for the config's `model_type`.
    #[error("{path}: unknown model_type `{found}`; registered: {}", known.join(", "))]
    UnknownModelType {
        /// The config file.
        path: PathBuf,
        /// The model_type in the file.
        found: String,
        /// Every model_type and alias that is registered.
        known: Vec<String>,
    },

    /// A saved prompt cache cannot be used: corrupt metadata, or made for
    /// another model or other cache settings.
    #[error("{path}: prompt cache: {message}")]
    PromptCache {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the layer and what was expected and found.
        message: String,
    },

    /// A safetensors file is malformed (bad header, truncated data...).
    #[error("{path}: not a valid safetensors file: {message}")]
    Safetensors {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },

    /// Tensors are missing, unexpected or mis-shaped for the architecture.
    #[error("{0}")]
    WeightMismatch(WeightMismatch),

    /// A GGUF file is malformed, truncated or uses something Forge cannot load.
    #[error("{path}: GGUF: {message}")]
    Gguf {
        /// The GGUF file.
        path: PathBuf,
        /// What was expected and what was found.
        message: String,
    },

    /// A tokenizer could not be loaded or used.
    #[error("{path}: tokenizer: {message}")]
    Tokenizer {
        /// The tokenizer file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },

    /// A chat template failed to parse or render.
    #[error("chat template: {0}")]
    ChatTemplate(String),

    /// A model id could not be resolved to a local folder.
    #[error("cannot resolve model `{model}`: {message}")]
    Resolve {
        /// The id or path the user gave.
        model: String,
        /// Why it failed.
        message: String,
    },

    /// The input does not fit the model (shape, length, ids out of range).
    #[error("invalid input: expected {expected}, found {found}")]
    InvalidInput {
        /// What the model accepts.
        expected: String,
        /// What it was given.
        found: String,
    },

    /// An operation in MLX failed.
    #[error("MLX: {0}")]
    Mlx(#[from] mlx_rs::error::Exception),
}

impl Error {
    /// Shorthand for an [`Error::Io`] on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// The difference between the tensors an architecture expects and those a
/// checkpoint holds.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct WeightMismatch {
    /// Where the weights came from (folder or file).
    pub source: String,
    /// Expected tensors that the checkpoint lacks.
    pub missing: Vec<String>,
    /// Checkpoint tensors that the architecture does not use.
    pub unexpected: Vec<String>,
    /// Tensors present with the wrong shape: (name, expected, found).
    pub mis_shaped: Vec<(String, Vec<i32>, Vec<i32>)>,
}

impl WeightMismatch {
    /// True when nothing is wrong.
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.unexpected.is_empty() && self.mis_shaped.is_empty()
    }
}

impl std::fmt::Display for WeightMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: weights do not match the architecture", self.source)?;
        if !self.missing.is_empty() {
            write!(f, "; missing tensors: {}", self.missing.join(", "))?;
        }
        if !self.unexpected.is_empty() {
            write!(f, "; unexpected tensors: {}", self.unexpected.join(", "))?;
        }
        for (name, expected, found) in &self.mis_shaped {
            write!(
                f,
                "; tensor {name}: expected shape {expected:?}, found {found:?}"
            )?;
        }
        Ok(())
    }
}

impl From<mlx_rs::error::IoError> for Error {
    fn from(e: mlx_rs::error::IoError) -> Self {
        Error::Mlx(mlx_rs::error::Exception::custom(e.to_string()))
    }
}
