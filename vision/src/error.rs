//! The error type of forge-vision.

use std::path::PathBuf;

/// Result alias of forge-vision.
pub type Result<T, E = VisionError> = std::result::Result<T, E>;

/// What can go wrong while reading images or an image processor config.
#[derive(Debug, thiserror::Error)]
pub enum VisionError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The bytes are not an image the decoder understands (corrupt, truncated, unknown format).
    #[error("{path}: cannot decode the image (expected a PNG or JPEG file): {message}")]
    Decode {
        /// The image file.
        path: PathBuf,
        /// What the decoder said.
        message: String,
    },
    /// `preprocessor_config.json` asks for something invalid or unsupported.
    #[error("{path}: key `{key}`: expected {expected}, found {found}")]
    Config {
        /// The config file.
        path: PathBuf,
        /// The key.
        key: String,
        /// What is supported.
        expected: String,
        /// What the file holds.
        found: String,
    },
    /// An image does not fit what the processor or model needs.
    #[error("{what}: expected {expected}, found {found}")]
    BadImage {
        /// The image (file name or index).
        what: String,
        /// What is needed.
        expected: String,
        /// What was found.
        found: String,
    },
    /// Building the pixel array failed in MLX.
    #[error(transparent)]
    Core(#[from] forge_core::Error),
}

impl From<forge_core::mlx_rs::error::Exception> for VisionError {
    fn from(e: forge_core::mlx_rs::error::Exception) -> Self {
        VisionError::Core(e.into())
    }
}
