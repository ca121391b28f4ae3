//! `forge generate --draft-model M`: speculative decoding (forge-core's
//! `speculative` module): the draft proposes `--num-draft-tokens` tokens a
//! step and the model checks them in one forward pass; the output is what
//! the model alone would give.

use anyhow::Context;
use forge_core::{GenerationConfig, LoadedModel};

/// Speculative decoding flags, named like mlx_lm.generate's.
#[derive(Debug, Clone, clap::Args)]
pub struct DraftArgs {
    /// A small model with the same vocabulary that proposes tokens (speculative decoding).
    #[arg(long)]
    pub draft_model: Option<String>,
    /// Tokens the draft model proposes per step (with --draft-model).
    #[arg(long, default_value_t = 3)]
    num_draft_tokens: usize,
}

/// Loads the draft model `--draft-model` names, if any (weights in `dtype`).
pub fn load(
    draft: Option<&str>,
    dtype: crate::inspect::DtypeFlag,
) -> anyhow::Result<Option<LoadedModel>> {
    let Some(path) = draft else {
        return Ok(None);
    };
    let (loaded, _) = forge_core::loader::load_model_as(path, dtype.request())
        .with_context(|| format!("loading {path}"))?;
    Ok(Some(loaded))
}

impl DraftArgs {
    /// `config` with the draft settings; bad values are refused naming the setting.
    pub fn apply(&self, config: GenerationConfig) -> anyhow::Result<GenerationConfig> {
        if self.draft_model.is_some() && config.num_beams > 1 {
            anyhow::bail!("--draft-model and --num-beams > 1 cannot be used together");
        }
        let config = GenerationConfig {
            num_draft_tokens: self.num_draft_tokens,
            ..config
        };
        config.validate()?;
        Ok(config)
    }
}
