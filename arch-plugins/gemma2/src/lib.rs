//! Gemma 2 for Forge: token embeddings scaled by `sqrt(hidden_size)`, then
//! `num_hidden_layers` decoder layers, each with four RMSNorms of the Gemma
//! form x·(1+w) (kept in float32): `h = x + post_attention_norm(attn(
//! input_norm(x)))` and `out = h + post_feedforward_norm(mlp(
//! pre_feedforward_norm(h)))`. Attention is grouped-query with rope, scaled
//! by `query_pre_attn_scalar^-0.5` instead of `head_dim^-0.5`, its scores
//! soft-capped as `tanh(s / c) · c` (`attn_logit_softcapping`) before the
//! mask; the layers `layer_types` marks (by default the even ones) see only
//! the last `sliding_window` keys. The MLP is GeGLU (gelu, tanh form). A
//! final (1+w) norm, the head (tied by default) and a final soft-cap
//! (`final_logit_softcapping`) give the logits.
//!
//! Golden cases: `gemma2-softcap-sliding` (every feature at once, each shown
//! to move the logits when switched off: both soft-caps, the sliding window,
//! query_pre_attn_scalar ≠ head_dim, the embedding scale) and
//! `gemma2-batch-leftpad-v4` (a left-padded batch of two, attention biases,
//! an untied head, head_dim 32 with heads × head_dim ≠ hidden, and a
//! transformers-4 config.json without `layer_types`).
//!
//! - [`config`]: the typed args and their checks (shared with Gemma 3);
//! - [`model`]: the Gemma layer and the model around it (shared with Gemma 3).

pub mod config;
pub mod model;

use forge_core::registry::{keep_weights, Architecture};

pub use config::Gemma2Args;
pub use model::{build, gemma_lm, load, Gemma2, GemmaLayer};

inventory::submit! {
    Architecture {
        model_type: "gemma2",
        aliases: &[],
        description: "Gemma 2: (1+w) RMSNorms around attention and MLP, soft-capped attention \
                      and logits, alternating sliding window, GeGLU",
        ignored_config_keys: config::IGNORED_CONFIG_KEYS,
        sanitize: keep_weights,
        build,
    }
}
