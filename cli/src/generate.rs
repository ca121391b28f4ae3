//! `forge generate` and `forge chat`: flags named like mlx_lm.generate's.

use std::io::{BufRead, Write};

use anyhow::{bail, Context};
use clap::Args;
use forge_core::chat_template::Message;
use forge_core::generate::GenerationResponse;
use forge_core::llm::Llm;
use forge_core::tokenizer::Tokenizer;
use forge_core::GenerationConfig;
use serde_json::{Map, Value};

/// Flags shared by `generate` and `chat`.
#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// A model folder or hub id (with tokenizer.json).
    #[arg(long)]
    model: Option<String>,
    /// Maximum number of tokens to generate.
    #[arg(long = "max-tokens", short = 'm', default_value_t = 256)]
    max_tokens: usize,
    /// Sampling temperature (0: greedy).
    #[arg(long, default_value_t = 0.0)]
    temp: f32,
    /// Nucleus sampling mass in (0, 1].
    #[arg(long = "top-p", default_value_t = 1.0)]
    top_p: f32,
    /// Keep only the k most likely tokens (0: off).
    #[arg(long = "top-k", default_value_t = 0)]
    top_k: usize,
    /// Drop tokens less likely than min-p × the most likely one (0: off).
    #[arg(long = "min-p", default_value_t = 0.0)]
    min_p: f32,
    /// Repetition penalty (1: off).
    #[arg(long = "repetition-penalty", default_value_t = 1.0)]
    repetition_penalty: f32,
    /// Seed of the sampler.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// A system message (with the chat template).
    #[arg(long)]
    system: Option<String>,
    /// A stop string (repeatable); it is not printed.
    #[arg(long)]
    stop: Vec<String>,
    /// Extra chat template variables as a JSON object, e.g. '{"enable_thinking": false}'.
    #[arg(long = "chat-template-args")]
    chat_template_args: Option<String>,
    /// Use the prompt as is, without the chat template.
    #[arg(long = "ignore-chat-template")]
    ignore_chat_template: bool,
    /// Print the statistics (tokens, tokens per second, peak memory).
    #[arg(long)]
    verbose: bool,
    /// Weight dtype: `plan` (the fastest for this backend), `stored`, `f32`, `bf16` or `f16`.
    #[arg(long, default_value = "plan")]
    dtype: String,
}

impl GenerateArgs {
    fn model(&self) -> anyhow::Result<&str> {
        match &self.model {
            Some(model) => Ok(model),
            None => bail!("--model is required (a model folder or hub id with tokenizer.json)"),
        }
    }

    fn config(&self, llm: &Llm) -> anyhow::Result<GenerationConfig> {
        let config = GenerationConfig {
            max_new_tokens: self.max_tokens,
            temperature: self.temp,
            top_p: self.top_p,
            top_k: self.top_k,
            min_p: self.min_p,
            repetition_penalty: self.repetition_penalty,
            seed: self.seed,
            stop_strings: self.stop.clone(),
            ..llm.config.clone()
        };
        config.validate()?;
        Ok(config)
    }

    fn template_args(&self) -> anyhow::Result<Map<String, Value>> {
        let Some(text) = &self.chat_template_args else {
            return Ok(Map::new());
        };
        match serde_json::from_str(text) {
            Ok(Value::Object(map)) => Ok(map),
            Ok(other) => bail!("--chat-template-args: expected a JSON object, found {other}"),
            Err(e) => bail!("--chat-template-args: not valid JSON ({e}): {text}"),
        }
    }

    fn load(&self) -> anyhow::Result<(Llm, GenerationConfig, Map<String, Value>)> {
        let template_args = self.template_args()?;
        let model = self.model()?;
        let (loaded, _) = crate::inspect::load_with_dtype(model, &self.dtype)
            .with_context(|| format!("loading {model}"))?;
        let tokenizer = Tokenizer::from_dir(&loaded.dir)?;
        let llm = Llm::from_parts(loaded, tokenizer);
        let config = self.config(&llm)?;
        Ok((llm, config, template_args))
    }
}

/// `forge generate`: one completion, streamed to stdout.
pub fn generate(args: &GenerateArgs, prompt: &str) -> anyhow::Result<()> {
    let (llm, config, template_args) = args.load()?;
    let chat = !args.ignore_chat_template && llm.tokenizer.chat_template.is_some();
    let ids = llm.prompt_tokens(prompt, chat, args.system.as_deref(), &template_args)?;
    if args.verbose {
        println!("==========");
    }
    let (_, last) = stream_reply(&llm, &ids, &config)?;
    println!();
    if args.verbose {
        println!("==========");
        print_stats(last.as_ref());
    }
    Ok(())
}

/// `forge chat`: a conversation on stdin / stdout; an empty line or end of
/// input ends it.
pub fn chat(args: &GenerateArgs) -> anyhow::Result<()> {
    let (llm, config, template_args) = args.load()?;
    let mut messages = Vec::new();
    if let Some(system) = &args.system {
        messages.push(Message::new("system", system.as_str()));
    }
    let stdin = std::io::stdin();
    loop {
        print!(">> ");
        std::io::stdout().flush()?;
        let mut line = String::new();
        if stdin.lock().read_line(&mut line)? == 0 || line.trim().is_empty() {
            return Ok(());
        }
        messages.push(Message::new("user", line.trim_end()));
        let ids = llm.chat_tokens(&messages, &template_args)?;
        let (reply, last) = stream_reply(&llm, &ids, &config)?;
        println!();
        if args.verbose {
            print_stats(last.as_ref());
        }
        messages.push(Message::new("assistant", reply));
    }
}

/// Prints the text as it comes; returns it and the last response.
fn stream_reply(
    llm: &Llm,
    ids: &[u32],
    config: &GenerationConfig,
) -> anyhow::Result<(String, Option<GenerationResponse>)> {
    let mut out = std::io::stdout();
    let mut text = String::new();
    let mut last = None;
    for response in llm.stream(ids, config)? {
        let response = response?;
        out.write_all(response.text.as_bytes())?;
        out.flush()?;
        text.push_str(&response.text);
        last = Some(response);
    }
    Ok((text, last))
}

fn print_stats(last: Option<&GenerationResponse>) {
    let Some(r) = last else {
        println!("no tokens generated");
        return;
    };
    println!(
        "Prompt: {} tokens, {:.3} tokens-per-sec",
        r.prompt_tokens, r.prompt_tps
    );
    println!(
        "Generation: {} tokens, {:.3} tokens-per-sec",
        r.generation_tokens, r.generation_tps
    );
    println!("Peak memory: {:.3} GB", r.peak_memory);
    if let Some(reason) = r.finish_reason {
        println!("Finish reason: {reason}");
    }
}
