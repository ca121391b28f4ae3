//! `forge`: parity checks, model inspection and generation from the command line.

mod batch;
mod beams;
mod chat;
mod draft;
mod embed_image;
mod inspect;
mod plugins;
mod textgen;
mod vlm;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use forge_parity::{
    coverage_problems, find_golden_dir, render_table, run_case, select_cases, GateArch, RunOptions,
};
use inspect::DtypeFlag;

#[derive(Parser)]
#[command(
    name = "forge",
    version,
    about = "Forge: model architectures on MLX, proven against Hugging Face"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the conformance suite over golden cases.
    Parity {
        /// An architecture, a case name, or a path to a case folder (default: all cases).
        #[arg(long)]
        model: Option<String>,
        /// Also write the report as JSON to this file.
        #[arg(long)]
        json: Option<PathBuf>,
        /// The folder of golden cases (default: ./golden).
        #[arg(long)]
        golden_dir: Option<PathBuf>,
        /// The CI gate: run every case, and also fail when a registered
        /// architecture has no golden case or a case names an architecture
        /// that is not registered.
        #[arg(long, conflicts_with = "model")]
        gate: bool,
    },
    /// Print the compiled plan of a checkpoint.
    Inspect {
        /// A model folder or hub id.
        model: String,
        /// Context length for the KV cache memory figure.
        #[arg(long, default_value_t = 4096)]
        context: usize,
        /// Weight dtype: `plan` (the fastest for this backend), `stored`, `f32`, `bf16` or `f16`.
        #[arg(long, value_enum, default_value_t = DtypeFlag::Plan)]
        dtype: DtypeFlag,
    },
    /// List the registered architectures.
    Archs,
    /// Print the pooled embedding of an image from a vision encoder (JSON array;
    /// image_embeds when the checkpoint has a projection, e.g. CLIP's visual_projection).
    EmbedImage {
        /// A vision model folder (with preprocessor_config.json) or hub id.
        #[arg(long)]
        model: String,
        /// A PNG or JPEG file.
        image: PathBuf,
    },
    /// Generate text from a prompt, streamed as it is produced.
    Generate {
        /// A model folder, .gguf file or hub id (default: SmolLM2-135M-Instruct, fetched by setup).
        #[arg(long)]
        model: Option<String>,
        /// The prompt; give it several times to generate for every prompt in
        /// one batch (results printed in order).
        #[arg(long, required_unless_present = "prompts_file")]
        prompt: Vec<String>,
        /// A file with one prompt per line, generated together in one batch.
        #[arg(long)]
        prompts_file: Option<PathBuf>,
        /// Most tokens to generate.
        #[arg(long, default_value_t = 100)]
        max_tokens: usize,
        #[command(flatten)]
        sampling: textgen::SamplingArgs,
        #[command(flatten)]
        beam: beams::BeamArgs,
        #[command(flatten)]
        draft: draft::DraftArgs,
        /// Wrap the prompt in the chat template as a user message.
        #[arg(long)]
        chat_template: bool,
        /// System message (with --chat-template).
        #[arg(long)]
        system: Option<String>,
        /// Extra chat template variables as a JSON object, e.g. '{"enable_thinking": false}'.
        #[arg(long)]
        chat_template_args: Option<String>,
        /// Print prompt and generation speed.
        #[arg(long)]
        verbose: bool,
        /// Weight dtype: `plan` (the fastest for this backend), `stored`, `f32`, `bf16` or `f16`.
        #[arg(long, value_enum, default_value_t = DtypeFlag::Plan)]
        dtype: DtypeFlag,
        /// An image for a vision-language model (repeatable): the prompt holds
        /// its image token (e.g. `<image>`) once per image, in order.
        #[arg(long)]
        image: Vec<PathBuf>,
        /// A prompt cache made by `forge cache-prompt`: generation continues
        /// after the prompt it holds (`--prompt` gives only what follows).
        #[arg(long)]
        prompt_cache_file: Option<PathBuf>,
    },
    /// Runs a prompt through a model and saves its KV cache to a file, for
    /// `forge generate --prompt-cache-file` (like mlx_lm.cache_prompt).
    CachePrompt {
        /// A model folder, .gguf file or hub id (default: SmolLM2-135M-Instruct).
        #[arg(long)]
        model: Option<String>,
        /// The prompt to cache.
        #[arg(long)]
        prompt: String,
        /// Where to write the cache (safetensors).
        #[arg(long)]
        prompt_cache_file: PathBuf,
        /// Bound the cache to this many positions (a rotating cache keeping the first 4).
        #[arg(long)]
        max_kv_size: Option<usize>,
        /// Wrap the prompt in the chat template as a user message.
        #[arg(long)]
        chat_template: bool,
        /// Weight dtype: `plan` (the fastest for this backend), `stored`, `f32`, `bf16` or `f16`.
        #[arg(long, value_enum, default_value_t = DtypeFlag::Plan)]
        dtype: DtypeFlag,
    },
    /// Chat with a model in the terminal (its chat template applied).
    Chat {
        /// A model folder, .gguf file or hub id (default: SmolLM2-135M-Instruct).
        #[arg(long)]
        model: Option<String>,
        /// System message.
        #[arg(long)]
        system: Option<String>,
        /// Most tokens per reply.
        #[arg(long, default_value_t = 256)]
        max_tokens: usize,
        #[command(flatten)]
        sampling: textgen::SamplingArgs,
        #[command(flatten)]
        draft: draft::DraftArgs,
        /// Weight dtype: `plan` (the fastest for this backend), `stored`, `f32`, `bf16` or `f16`.
        #[arg(long, value_enum, default_value_t = DtypeFlag::Plan)]
        dtype: DtypeFlag,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Parity {
            model,
            json,
            golden_dir,
            gate,
        } => parity(model.as_deref(), json, golden_dir, gate),
        Command::Inspect {
            model,
            context,
            dtype,
        } => inspect::run(&model, context, dtype).map(|()| true),
        Command::EmbedImage { model, image } => embed_image::run(&model, &image).map(|()| true),
        Command::Archs => {
            for arch in forge_core::registry::list() {
                let aliases = if arch.aliases.is_empty() {
                    String::new()
                } else {
                    format!(" (aliases: {})", arch.aliases.join(", "))
                };
                println!("{}{aliases}: {}", arch.model_type, arch.description);
            }
            Ok(true)
        }
        Command::Generate {
            model,
            prompt,
            prompts_file,
            max_tokens,
            sampling,
            beam,
            draft,
            chat_template,
            system,
            chat_template_args,
            verbose,
            dtype,
            image,
            prompt_cache_file,
        } => {
            let texts = batch::prompts(prompt, prompts_file.as_deref());
            let run = |config: forge_core::GenerationConfig, texts: Vec<String>| {
                let prompt = Prompt {
                    text: &texts[0],
                    chat: chat_template.then_some(system.as_deref()),
                    template_args: chat_template_args,
                    images: image,
                    cache_file: prompt_cache_file,
                };
                let models = Models {
                    model: model.as_deref(),
                    draft: draft.draft_model.as_deref(),
                    dtype,
                };
                // Custom caches run in the single-prompt loop only.
                let special = texts.len() > 1 || models.draft.is_some() || config.num_beams > 1;
                let custom_cache = config.max_kv_size.is_some() || config.kv_bits.is_some();
                for (used, flags) in [
                    (prompt.cache_file.is_some(), "--prompt-cache-file works"),
                    (custom_cache, "--max-kv-size and --kv-bits work"),
                ] {
                    if used && special {
                        anyhow::bail!(
                            "{flags} with single-prompt sampling or greedy generation only, \
                             not with several prompts, --draft-model or --num-beams"
                        );
                    }
                }
                if texts.len() == 1 {
                    generate(models, prompt, &config, verbose)
                } else {
                    batch_generate(models, prompt, &texts, &config, verbose)
                }
            };
            sampling
                .config(max_tokens)
                .and_then(|config| beam.apply(config))
                .and_then(|config| draft.apply(config))
                .and_then(|config| run(config, texts?))
                .map(|()| true)
        }
        Command::CachePrompt {
            model,
            prompt,
            prompt_cache_file,
            max_kv_size,
            chat_template,
            dtype,
        } => cache_prompt(
            model.as_deref(),
            &prompt,
            &prompt_cache_file,
            max_kv_size,
            chat_template,
            dtype,
        )
        .map(|()| true),
        Command::Chat {
            model,
            system,
            max_tokens,
            sampling,
            draft,
            dtype,
        } => {
            let models = Models {
                model: model.as_deref(),
                draft: draft.draft_model.as_deref(),
                dtype,
            };
            sampling
                .config(max_tokens)
                .and_then(|config| draft.apply(config))
                .and_then(|config| chat::run(models, system.as_deref(), &config))
                .map(|()| true)
        }
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn parity(
    model: Option<&str>,
    json: Option<PathBuf>,
    golden_dir: Option<PathBuf>,
    gate: bool,
) -> anyhow::Result<bool> {
    let golden = golden_dir.unwrap_or_else(find_golden_dir);
    let cases = if gate {
        forge_parity::select::all_cases(&golden)?
    } else {
        select_cases(&golden, model)?
    };
    let mut reports = Vec::new();
    for case in &cases {
        eprintln!("[parity] {}", case.display());
        reports.push(run_case(case, &RunOptions::default()));
    }
    print!("{}", render_table(&reports));
    if let Some(path) = json {
        let text = serde_json::to_string_pretty(&reports)?;
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    let cases_pass = reports.iter().all(|r| r.passed());
    if !gate {
        return Ok(cases_pass);
    }
    let problems = coverage_problems(&cases, &GateArch::registered());
    for problem in &problems {
        eprintln!("[gate] FAIL: {problem}");
    }
    let failed = reports.iter().filter(|r| !r.passed()).count();
    if failed > 0 {
        eprintln!("[gate] FAIL: {failed} of {} cases fail", reports.len());
    }
    let pass = cases_pass && problems.is_empty();
    if pass {
        eprintln!(
            "[gate] ok: {} cases pass; every registered architecture has a case",
            reports.len()
        );
    }
    Ok(pass)
}

/// Token ids of a prompt: rendered as a Harmony conversation for gpt-oss,
/// wrapped in the chat template when `chat` is `Some(system)`, else as is.
/// `forge cache-prompt`: runs `prompt` through the model and saves the KV
/// cache to `file`, with the model and the prompt's length in its metadata.
fn cache_prompt(
    model: Option<&str>,
    prompt: &str,
    file: &Path,
    max_kv_size: Option<usize>,
    chat: bool,
    dtype: DtypeFlag,
) -> anyhow::Result<()> {
    let model = textgen::model_or_default(model)?;
    let text_model = textgen::load(&model, dtype)?;
    let ids = encode_prompt(
        &text_model,
        prompt,
        chat.then_some(None),
        &Default::default(),
    )?;
    let config = forge_core::GenerationConfig {
        max_kv_size,
        prefill_step_size: textgen::PREFILL_STEP,
        ..Default::default()
    };
    let net = text_model.model.model.as_ref();
    let mut cache = forge_core::generation::prompt_cache::cache_for(net, &config)?;
    forge_core::generation::prompt_cache::fill_prompt_cache(
        net,
        &mut cache,
        &ids,
        config.prefill_step_size,
    )?;
    let metadata = std::collections::HashMap::from([
        ("model".to_string(), model.clone()),
        ("prompt_tokens".to_string(), ids.len().to_string()),
    ]);
    forge_core::generation::prompt_cache::save_prompt_cache(file, &cache, &metadata)?;
    eprintln!(
        "[forge] cached {} prompt tokens of {model} in {}",
        ids.len(),
        file.display()
    );
    Ok(())
}

fn encode_prompt(
    text_model: &textgen::TextModel,
    prompt: &str,
    chat: Option<Option<&str>>,
    template_args: &serde_json::Map<String, serde_json::Value>,
) -> anyhow::Result<Vec<u32>> {
    if let Some(format) = textgen::prompt_format(text_model) {
        // A registered prompt format (gpt-oss: Harmony) always renders a
        // conversation, with or without --chat-template.
        let mut messages = Vec::new();
        if let Some(system) = chat.flatten() {
            messages.push(forge_core::chat_template::Message::new("system", system));
        }
        messages.push(forge_core::chat_template::Message::new("user", prompt));
        let text = (format.render)(&messages)?;
        return Ok(text_model.tokenizer.encode(&text, false)?);
    }
    let Some(system) = chat else {
        return Ok(text_model.tokenizer.encode(prompt, true)?);
    };
    let template = text_model
        .tokenizer
        .chat_template
        .as_ref()
        .context("--chat-template: this model has no chat template")?;
    let mut messages = Vec::new();
    if let Some(system) = system {
        messages.push(forge_core::chat_template::Message::new("system", system));
    }
    messages.push(forge_core::chat_template::Message::new("user", prompt));
    let text = template.render(&messages, true, template_args)?;
    Ok(text_model.tokenizer.encode(&text, false)?)
}

/// `forge generate` with several prompts: one batch, results in order.
fn batch_generate(
    models: Models,
    prompt: Prompt,
    texts: &[String],
    config: &forge_core::GenerationConfig,
    verbose: bool,
) -> anyhow::Result<()> {
    if config.num_beams > 1 || models.draft.is_some() {
        bail!(
            "--num-beams and --draft-model take one prompt; found {}",
            texts.len()
        );
    }
    if !prompt.images.is_empty() {
        bail!("--image takes one prompt; found {}", texts.len());
    }
    let template_args = textgen::template_args(prompt.template_args.as_deref())?;
    let model = textgen::model_or_default(models.model)?;
    let text_model = textgen::load(&model, models.dtype)?;
    let ids = texts
        .iter()
        .map(|t| encode_prompt(&text_model, t, prompt.chat, &template_args))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let response = batch::run(&text_model, &ids, config)?;
    let format = textgen::prompt_format(&text_model);
    for (i, result) in response.results.iter().enumerate() {
        println!("{}", batch::header(i, result));
        if let Some(format) = format {
            let decoded = text_model.tokenizer.decode(&result.tokens, false)?;
            textgen::print_reply(&(format.parse)(&decoded), verbose);
        } else {
            println!("{}", result.text);
        }
    }
    if verbose {
        eprintln!("{}", batch::stats_line(texts.len(), &response.stats));
    }
    Ok(())
}

/// The prompt of `forge generate`.
struct Prompt<'a> {
    text: &'a str,
    /// `Some(system)` when the chat template applies.
    chat: Option<Option<&'a str>>,
    /// `--chat-template-args`: extra chat template variables as JSON.
    template_args: Option<String>,
    /// `--image` files, for vision-language models.
    images: Vec<PathBuf>,
    /// `--prompt-cache-file`: a saved prompt cache to continue from.
    cache_file: Option<PathBuf>,
}

/// The models `forge generate` and `forge chat` load.
pub struct Models<'a> {
    /// `--model` (the default model when absent).
    pub model: Option<&'a str>,
    /// `--draft-model`.
    pub draft: Option<&'a str>,
    /// `--dtype`, for both.
    pub dtype: DtypeFlag,
}

/// `forge generate`.
fn generate(
    models: Models,
    prompt: Prompt,
    config: &forge_core::GenerationConfig,
    verbose: bool,
) -> anyhow::Result<()> {
    let Prompt {
        text: prompt,
        chat,
        template_args,
        images,
        cache_file,
    } = prompt;
    let template_args = textgen::template_args(template_args.as_deref())?;
    let model = textgen::model_or_default(models.model)?;
    let text_model = textgen::load(&model, models.dtype)?;
    let draft_model = draft::load(models.draft, models.dtype)?;
    let draft_net = draft_model.as_ref().map(|d| d.model.as_ref());
    // A model with its own prompt format (gpt-oss: Harmony) has its output
    // read back through the format once generation ends, not streamed.
    let format = textgen::prompt_format(&text_model);
    let ids = encode_prompt(&text_model, prompt, chat, &template_args)?;
    if config.num_beams > 1 {
        if !images.is_empty() {
            anyhow::bail!("--image with beam search: beam search takes no images");
        }
        return beams::print_beams(&text_model, &ids, config);
    }
    let stream = |text: &str| {
        if format.is_none() {
            textgen::print_flush(text)
        }
    };
    let out = match (images.as_slice(), cache_file.as_deref()) {
        ([], Some(file)) => {
            let net = text_model.model.model.as_ref();
            let saved = forge_core::generation::prompt_cache::load_prompt_cache(
                file,
                net,
                config.max_kv_size,
            )?;
            textgen::generate_with_cache(&text_model, saved.cache, &ids, config, stream)?
        }
        ([], None) => textgen::generate_with_draft(&text_model, draft_net, &ids, config, stream)?,
        (_, Some(_)) => {
            anyhow::bail!("--image with --prompt-cache-file: a prompt cache holds no images")
        }
        _ if draft_net.is_some() => {
            anyhow::bail!("--image with --draft-model: speculative decoding takes no images")
        }
        (files, None) => {
            let (ids, pixels) = vlm::prepare(&text_model, &ids, files)?;
            textgen::generate_with_images(&text_model, &ids, &pixels, config, stream)?
        }
    };
    if let Some(format) = format {
        let decoded = text_model.tokenizer.decode(&out.tokens, false)?;
        textgen::print_reply(&(format.parse)(&decoded), verbose);
    } else {
        println!();
    }
    if verbose {
        eprintln!(
            "[forge] prompt: {} tokens, {:.1} tokens/s; generation: {} tokens, {:.1} tokens/s; \
             peak memory: {:.3} GB; finish: {}",
            ids.len(),
            out.prompt_tps,
            out.tokens.len(),
            out.generation_tps,
            out.peak_memory,
            out.finish_reason
        );
        if let Some(stats) = out.draft_stats {
            eprintln!(
                "[forge] draft: {} of {} proposals accepted ({:.0}%); {} of {} tokens from the draft model",
                stats.accepted,
                stats.proposed,
                100.0 * stats.acceptance_rate(),
                out.from_draft,
                out.tokens.len()
            );
        }
    }
    Ok(())
}
