//! Generation: everything that turns a [`crate::Model`] into text, kept
//! apart from what architecture plugins use (the model, caches, masks, nn,
//! the decoder base).
//!
//! - [`generate`]: the decode loop (prefill in chunks, async eval one step
//!   ahead), stop rules and the stream of responses;
//! - [`logits_processors`] and [`sampler`]: what shapes the next-token
//!   distribution and draws from it, with [`generation_config`] (HF
//!   `generation_config.json` names);
//! - [`batch`], [`beam`], [`speculative`]: batched generation, beam search,
//!   speculative decoding with a draft model;
//! - [`batch_cache`] and [`prompt_cache`]: the caches only generation uses
//!   (left-padded batches, prompt caches saved to disk);
//! - [`detokenizer`]: streaming text from token ids.

pub mod batch;
pub mod batch_cache;
pub mod beam;
pub mod detokenizer;
pub mod generate;
pub mod generation_config;
pub mod logits_processors;
pub mod prompt_cache;
pub mod sampler;
pub mod speculative;
