//! `forge`: parity checks, model inspection and generation from the command line.

mod generate;
mod inspect;
mod plugins;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use forge_parity::{
    coverage_problems, find_golden_dir, render_table, run_case, select_cases, GateArch, RunOptions,
};

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
        #[arg(long, default_value = "plan")]
        dtype: String,
    },
    /// List the registered architectures.
    Archs,
    /// Generate text from a prompt (chat template applied when the tokenizer has one).
    Generate {
        /// The prompt.
        #[arg(long, short = 'p')]
        prompt: String,
        #[command(flatten)]
        args: generate::GenerateArgs,
    },
    /// Chat with a model on the terminal (an empty line ends the chat).
    Chat {
        #[command(flatten)]
        args: generate::GenerateArgs,
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
        } => inspect::run(&model, context, &dtype).map(|()| true),
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
        Command::Generate { prompt, args } => generate::generate(&args, &prompt).map(|()| true),
        Command::Chat { args } => generate::chat(&args).map(|()| true),
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
