//! forge-core: the traits, registry and loading path every Forge
//! architecture plugin shares.
//!
//! The path of a model is one straight line (see the repository README):
//! [`hub::resolve`] → [`ModelConfig`] → [`registry`] → the plugin's
//! `build` with strictly checked [`Weights`] → a [`Model`] → generation.

pub mod cache;
pub mod chat_template;
pub mod config;
pub mod decoder;
pub mod error;
pub mod fp8;
pub mod generation;
pub mod gguf;
pub mod hub;
pub mod llm;
pub mod loader;
pub mod mask;
pub mod model;
pub mod models;
pub mod mxfp4;
pub mod nn;
pub mod quant;
pub mod registry;
pub mod rope;
pub mod tokenizer;
pub mod weights;

pub use cache::{CacheKind, KvCache, StandardCache};
pub use config::ModelConfig;
pub use decoder::{CausalLm, DecoderLayer, DecoderSpec, LayerContext};
pub use error::{Error, Result, WeightMismatch};
pub use generation::generation_config::GenerationConfig;
pub use generation::sampler::{ArgmaxSampler, Sampler, TemperatureSampler};
pub use loader::{load_model, load_model_dir, LoadOptions, LoadedModel};
pub use model::{ForwardOptions, Model, ModelInput, ModelKind, ModelOutput, PlanItem};
pub use registry::Architecture;
pub use weights::{TensorMap, Weights};

/// Re-exported for plugins' `inventory::submit!`.
pub use inventory;
/// Re-exported so plugins use the exact mlx-rs Forge was built with.
pub use mlx_rs;

#[cfg(not(target_vendor = "apple"))]
mod platform {
    /// mlx-rs seeds its default random key with this macOS kernel call; off
    /// Apple we supply it from a monotonic clock.
    #[no_mangle]
    pub extern "C" fn mach_approximate_time() -> u64 {
        use std::sync::OnceLock;
        use std::time::Instant;
        static START: OnceLock<Instant> = OnceLock::new();
        let start = *START.get_or_init(Instant::now);
        start.elapsed().as_nanos() as u64 + 1
    }
}
