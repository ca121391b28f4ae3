//! SmolLM3 for Forge: Llama's shape (token embedding, `num_hidden_layers`
//! pre-norm layers of RMSNorm → grouped-query attention → residual,
//! RMSNorm → SwiGLU MLP → residual, a final RMSNorm and the head, tied by
//! default) in which some layers apply no positional encoding at all
//! (NoPE). `no_rope_layers` says per layer 1 (rope) or 0 (NoPE); without
//! it, as HF's config derives it, every `no_rope_layer_interval`-th layer is
//! NoPE. A sliding window comes from `layer_types`, or, without it, goes on
//! the NoPE layers when `use_sliding_window` and `sliding_window` are set.
//! The rope base defaults to 2,000,000.
//!
//! The golden case `smollm3-nope-sliding` has 4 layers with
//! `no_rope_layer_interval` 2 (layers 1 and 3 NoPE) and a window of 6 on the
//! NoPE layers over 20 positions; switching the NoPE layers to rope and
//! switching the window off are each ablated in the fixture.
//!
//! - [`config`]: the typed args and their checks;
//! - [`model`]: the layers, on forge-core's decoder base.

pub mod config;
pub mod model;

use forge_core::registry::{keep_weights, Architecture};

pub use config::SmolLm3Args;
pub use model::{build, load, SmolLm3, SmolLm3Layer};

inventory::submit! {
    Architecture {
        model_type: "smollm3",
        aliases: &[],
        description: "SmolLM3: Llama with NoPE layers (no rope) and an optional window on them",
        ignored_config_keys: config::IGNORED_CONFIG_KEYS,
        sanitize: keep_weights,
        build,
    }
}
