//! Text in, streamed text out: what `forge generate` and `forge chat` share.
//! Loading with a progress indicator, the default model, the sampling flags,
//! and forge-core's generation loop (`stream_generate`: processors, sampler,
//! EOS ids, stop strings, a streaming detokenizer that never prints half a
//! UTF-8 character).

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use forge_core::generation::generate::{stream_generate, stream_generate_with_images, TextStream};
use forge_core::generation::speculative::{stream_generate_with_draft, DraftStats};
use forge_core::llm::Llm;
use forge_core::mlx_rs::Array;
use forge_core::models::DEFAULT_MODEL;
use forge_core::{GenerationConfig, Model};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Map, Value};

/// Prompt tokens run through the model per forward pass.
pub const PREFILL_STEP: usize = 512;

/// A loaded model with its tokenizer and EOS ids (`config.eos_token_id`):
/// the library's [`Llm`], which the CLI loads every model through.
pub type TextModel = Llm;

/// The model path `--model` names, or the default model when it is absent.
pub fn model_or_default(model: Option<&str>) -> anyhow::Result<String> {
    match model {
        Some(m) => Ok(m.to_string()),
        None => {
            let path = DEFAULT_MODEL
                .locate()
                .context("no --model given and the default model is not fetched")?;
            Ok(path.to_string_lossy().into_owned())
        }
    }
}

/// Loads a model (weights in `dtype`, see `forge inspect --dtype`) and its
/// tokenizer, showing progress on stderr.
pub fn load(model: &str, dtype: crate::inspect::DtypeFlag) -> anyhow::Result<TextModel> {
    let started = Instant::now();
    let spinner = Spinner::start(format!("loading {model}"));
    let loaded = Llm::load_as(model, dtype.request());
    spinner.stop();
    let (llm, _) = loaded.with_context(|| format!("loading {model}"))?;
    eprintln!(
        "[forge] loaded {} ({}, {} layers) in {:.2}s",
        model,
        llm.model.architecture.model_type,
        llm.model.model.num_layers(),
        started.elapsed().as_secs_f64()
    );
    Ok(llm)
}

/// Sampling and stopping flags, named like mlx_lm.generate's.
#[derive(Debug, Clone, clap::Args)]
pub struct SamplingArgs {
    /// Sampling temperature (0: greedy).
    #[arg(long, default_value_t = 0.0)]
    temp: f32,
    /// Random seed for sampling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Nucleus sampling: keep the most likely tokens up to this mass, in (0, 1].
    #[arg(long, default_value_t = 1.0)]
    top_p: f32,
    /// Keep only the k most likely tokens (0: off).
    #[arg(long, default_value_t = 0)]
    top_k: usize,
    /// Drop tokens less likely than min-p times the most likely one (0: off).
    #[arg(long, default_value_t = 0.0)]
    min_p: f32,
    /// Repetition penalty (1: off).
    #[arg(long, default_value_t = 1.0)]
    repetition_penalty: f32,
    /// A stop string (repeatable): generation ends there and it is not printed.
    #[arg(long)]
    stop: Vec<String>,
    /// Keep at most this many positions in the KV cache (a rotating cache
    /// that always keeps the first 4), like mlx_lm's --max-kv-size.
    #[arg(long)]
    max_kv_size: Option<usize>,
    /// Quantize the KV cache to this many bits (4 or 8), like mlx_lm's --kv-bits.
    #[arg(long)]
    kv_bits: Option<i32>,
    /// Group size of the quantized KV cache.
    #[arg(long, default_value_t = 64)]
    kv_group_size: i32,
    /// Quantize the KV cache only once it holds this many positions.
    #[arg(long, default_value_t = 0)]
    quantized_kv_start: usize,
}

impl SamplingArgs {
    /// The generation settings for at most `max_tokens` new tokens; bad
    /// values are refused here, naming the setting.
    pub fn config(&self, max_tokens: usize) -> anyhow::Result<GenerationConfig> {
        let config = GenerationConfig {
            max_new_tokens: max_tokens,
            temperature: self.temp,
            seed: self.seed,
            top_p: self.top_p,
            top_k: self.top_k,
            min_p: self.min_p,
            repetition_penalty: self.repetition_penalty,
            stop_strings: self.stop.clone(),
            prefill_step_size: PREFILL_STEP,
            max_kv_size: self.max_kv_size,
            kv_bits: self.kv_bits,
            kv_group_size: self.kv_group_size,
            quantized_kv_start: self.quantized_kv_start,
            ..GenerationConfig::default()
        };
        config.validate()?;
        Ok(config)
    }
}

/// `--chat-template-args`: a JSON object of extra template variables.
pub fn template_args(text: Option<&str>) -> anyhow::Result<Map<String, Value>> {
    let Some(text) = text else {
        return Ok(Map::new());
    };
    match serde_json::from_str(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => bail!("--chat-template-args: expected a JSON object, found {other}"),
        Err(e) => bail!("--chat-template-args: not valid JSON ({e}): {text}"),
    }
}

/// What a generation produced.
pub struct Generated {
    /// The new tokens (an ending EOS token left out).
    pub tokens: Vec<u32>,
    /// Their text (a stop string and what follows left out).
    pub text: String,
    /// "stop" (an end-of-sequence token or stop string) or "length" (the budget ran out).
    pub finish_reason: &'static str,
    /// Prompt tokens per second.
    pub prompt_tps: f64,
    /// Generated tokens per second.
    pub generation_tps: f64,
    /// Peak memory MLX used, in GB.
    pub peak_memory: f64,
    /// How many tokens came from the draft model (speculative decoding).
    pub from_draft: usize,
    /// Proposals the draft model made and the model accepted (with a draft model).
    pub draft_stats: Option<DraftStats>,
}

/// Generates after `prompt` (token ids) with forge-core's generation loop
/// (`config`; the model's EOS ids are added), calling `on_text` with each
/// new piece of text as soon as it is settled; with a draft model
/// proposing tokens when one is given (speculative decoding; the output is
/// what `model` alone gives).
pub fn generate_with_draft(
    model: &TextModel,
    draft: Option<&dyn Model>,
    prompt: &[u32],
    config: &GenerationConfig,
    on_text: impl FnMut(&str),
) -> anyhow::Result<Generated> {
    let net = model.model.model.as_ref();
    run(model, config, on_text, |config| match draft {
        Some(draft) => stream_generate_with_draft(net, draft, &model.tokenizer, prompt, config),
        None => stream_generate(net, &model.tokenizer, prompt, config),
    })
}

/// Like [`generate`], continuing from `cache` (a prompt cache that already
/// holds the start of the conversation; `prompt` holds only what follows).
pub fn generate_with_cache(
    model: &TextModel,
    cache: Vec<Box<dyn forge_core::KvCache>>,
    prompt: &[u32],
    config: &GenerationConfig,
    on_text: impl FnMut(&str),
) -> anyhow::Result<Generated> {
    let net = model.model.model.as_ref();
    run(model, config, on_text, |config| {
        let generator = forge_core::generation::generate::TokenGenerator::with_cache(
            net, cache, prompt, config,
        )?;
        Ok(TextStream::new(
            Box::new(generator),
            &model.tokenizer,
            config,
        ))
    })
}

/// Like [`generate`] with the images of a vision-language model's prompt
/// (`pixel_values` `[images, C, H, W]`; the prompt's image tokens already
/// repeated once per image feature).
pub fn generate_with_images(
    model: &TextModel,
    prompt: &[u32],
    pixel_values: &Array,
    config: &GenerationConfig,
    on_text: impl FnMut(&str),
) -> anyhow::Result<Generated> {
    let net = model.model.model.as_ref();
    run(model, config, on_text, |config| {
        stream_generate_with_images(net, &model.tokenizer, prompt, pixel_values, config)
    })
}

/// Adds the model's EOS ids to `config`, starts the stream with `start`
/// and collects it, calling `on_text` with each settled piece.
fn run<'m>(
    model: &'m TextModel,
    config: &GenerationConfig,
    mut on_text: impl FnMut(&str),
    start: impl FnOnce(&GenerationConfig) -> forge_core::Result<TextStream<'m, 'm>>,
) -> anyhow::Result<Generated> {
    let config = with_eos(config, &model.config.eos_token_id);
    let mut out = Generated {
        tokens: Vec::new(),
        text: String::new(),
        finish_reason: "length",
        prompt_tps: 0.0,
        generation_tps: 0.0,
        peak_memory: 0.0,
        from_draft: 0,
        draft_stats: None,
    };
    let mut stream = start(&config)?;
    while let Some(response) = stream.next_response()? {
        if !response.text.is_empty() {
            on_text(&response.text);
        }
        out.text.push_str(&response.text);
        let is_eos = config.eos_token_id.contains(&response.token);
        if !(is_eos && response.finish_reason.is_some()) {
            out.tokens.push(response.token);
        }
        out.finish_reason = response.finish_reason.map_or("length", |r| r.as_str());
        out.prompt_tps = response.prompt_tps;
        out.generation_tps = response.generation_tps;
        out.peak_memory = response.peak_memory;
        out.from_draft += usize::from(response.from_draft);
    }
    out.draft_stats = stream.draft_stats();
    Ok(out)
}

/// `config` with the model's end-of-sequence ids added to its own.
pub fn with_eos(config: &GenerationConfig, eos_ids: &[u32]) -> GenerationConfig {
    let mut config = config.clone();
    for &id in eos_ids {
        if !config.eos_token_id.contains(&id) {
            config.eos_token_id.push(id);
        }
    }
    config
}

/// Prints a piece of text at once.
pub fn print_flush(text: &str) {
    print!("{text}");
    let _ = std::io::stdout().flush();
}

/// A spinner with the elapsed time on stderr (indicatif) while a model
/// loads; one plain line when stderr is not a terminal.
struct Spinner(Option<ProgressBar>);

impl Spinner {
    fn start(label: String) -> Self {
        if !std::io::stderr().is_terminal() {
            eprintln!("[forge] {label} ...");
            return Spinner(None);
        }
        let bar = ProgressBar::new_spinner();
        let style = ProgressStyle::with_template("[forge] {msg} {spinner} {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        bar.set_style(style);
        bar.set_message(label);
        bar.enable_steady_tick(Duration::from_millis(100));
        Spinner(Some(bar))
    }

    fn stop(self) {
        if let Some(bar) = self.0 {
            bar.finish_and_clear();
        }
    }
}

/// The prompt format the model's architecture registered (gpt-oss:
/// Harmony), used instead of the tokenizer's chat template.
pub fn prompt_format(model: &TextModel) -> Option<&'static forge_core::registry::PromptFormat> {
    forge_core::registry::prompt_format(model.model.architecture.model_type)
}

/// Prints a reply read through a prompt format: the answer on stdout and,
/// with `verbose`, its details (reasoning, tool calls) on stderr first.
pub fn print_reply(reply: &forge_core::registry::ParsedReply, verbose: bool) {
    if verbose {
        for detail in &reply.details {
            eprintln!("{detail}");
        }
        eprintln!("[final]");
    }
    println!("{}", reply.answer);
}
