//! `forge generate` with several prompts (`--prompt` repeated or
//! `--prompts-file`): forge-core's `batch_generate` over all of them, each
//! result printed in prompt order under a header line.

use std::path::Path;

use anyhow::{bail, Context};
use forge_core::generation::batch::{batch_generate, BatchResponse, BatchResult, BatchStats};
use forge_core::GenerationConfig;

use crate::textgen::TextModel;

/// The prompts: every `--prompt`, then every non-empty line of the file.
pub fn prompts(given: Vec<String>, file: Option<&Path>) -> anyhow::Result<Vec<String>> {
    let mut prompts = given;
    if let Some(file) = file {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("--prompts-file: cannot read {}", file.display()))?;
        prompts.extend(
            text.lines()
                .filter(|l| !l.trim().is_empty())
                .map(str::to_string),
        );
    }
    if prompts.is_empty() {
        bail!("no prompt: give --prompt or a --prompts-file with at least one non-empty line");
    }
    Ok(prompts)
}

/// Runs the batch (the model's EOS ids added to `config`'s).
pub fn run(
    model: &TextModel,
    prompts: &[Vec<u32>],
    config: &GenerationConfig,
) -> anyhow::Result<BatchResponse> {
    let config = crate::textgen::with_eos(config, &model.config.eos_token_id);
    let net = model.model.model.as_ref();
    Ok(batch_generate(net, &model.tokenizer, prompts, &config)?)
}

/// The line printed above a result: its number (from 1), how it ended and
/// how many tokens it took.
pub fn header(index: usize, result: &BatchResult) -> String {
    format!(
        "==> prompt {} ({} prompt tokens, {} generated, finish: {})",
        index + 1,
        result.prompt_tokens,
        result.tokens.len(),
        result.finish_reason
    )
}

/// The `--verbose` statistics of a batch.
pub fn stats_line(rows: usize, stats: &BatchStats) -> String {
    format!(
        "[forge] batch of {rows}: prompt: {} tokens, {:.1} tokens/s; generation: {} tokens, \
         {:.1} tokens/s; peak memory: {:.3} GB",
        stats.prompt_tokens,
        stats.prompt_tps,
        stats.generation_tokens,
        stats.generation_tps,
        stats.peak_memory
    )
}
