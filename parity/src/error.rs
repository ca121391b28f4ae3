//! The error type of forge-parity.

use std::path::PathBuf;

/// Result alias of the harness.
pub type Result<T, E = ParityError> = std::result::Result<T, E>;

/// What stops a case from running (a failing check is not an error: it is
/// a row of the report).
#[derive(Debug, thiserror::Error)]
pub enum ParityError {
    /// The case folder is malformed.
    #[error("{path}: {message}")]
    Case {
        /// The file or folder.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Loading or running the model failed.
    #[error(transparent)]
    Core(#[from] forge_core::Error),
    /// Reading images or the image processor config failed.
    #[error(transparent)]
    Vision(#[from] forge_vision::VisionError),
    /// No case matched a selection.
    #[error("no golden case matches `{selection}` (cases: {known})")]
    NoMatch {
        /// What the user asked for.
        selection: String,
        /// The cases that exist.
        known: String,
    },
}

impl From<forge_core::mlx_rs::error::Exception> for ParityError {
    fn from(e: forge_core::mlx_rs::error::Exception) -> Self {
        ParityError::Core(e.into())
    }
}
