//! `forge generate --num-beams N`: beam search (forge-core's `beam`
//! module), printing the returned hypotheses best first with their scores.

use forge_core::generation::beam::{beam_search, EarlyStopping};
use forge_core::GenerationConfig;

use crate::textgen::TextModel;

/// Beam search flags (HF GenerationConfig names).
#[derive(Debug, Clone, clap::Args)]
pub struct BeamArgs {
    /// Beam search with this many beams (1: no beam search).
    #[arg(long, default_value_t = 1)]
    num_beams: usize,
    /// Beam search: hypotheses score sum(log-probs) / new_tokens^length_penalty.
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    length_penalty: f32,
    /// Beam search: how many of the best hypotheses to print (≤ --num-beams).
    #[arg(long, default_value_t = 1)]
    num_return_sequences: usize,
    /// Beam search: `false` (heuristic), `true` (stop when num_beams are
    /// finished) or `never`, as HF's early_stopping.
    #[arg(long, default_value = "false")]
    early_stopping: EarlyStopping,
}

impl BeamArgs {
    /// `config` with the beam settings; bad values are refused naming the setting.
    pub fn apply(&self, config: GenerationConfig) -> anyhow::Result<GenerationConfig> {
        let config = GenerationConfig {
            num_beams: self.num_beams,
            length_penalty: self.length_penalty,
            num_return_sequences: self.num_return_sequences,
            early_stopping: self.early_stopping,
            ..config
        };
        config.validate()?;
        Ok(config)
    }
}

/// Runs beam search after `prompt` (the model's EOS ids added) and prints
/// each returned hypothesis: `[rank] score (finish reason): text`.
pub fn print_beams(
    model: &TextModel,
    prompt: &[u32],
    config: &GenerationConfig,
) -> anyhow::Result<()> {
    let mut config = config.clone();
    for &id in &model.config.eos_token_id {
        if !config.eos_token_id.contains(&id) {
            config.eos_token_id.push(id);
        }
    }
    let out = beam_search(model.model.model.as_ref(), prompt, &config)?;
    for (rank, hyp) in out.hypotheses.iter().enumerate() {
        let text = model.tokenizer.decode(&hyp.tokens, true)?;
        println!(
            "[{}] score {:.4} ({}, {} tokens): {text}",
            rank + 1,
            hyp.score,
            hyp.finish_reason,
            hyp.tokens.len()
        );
    }
    Ok(())
}
