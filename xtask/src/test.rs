//! `cargo xtask test`: the whole gate, in the order CI runs it.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::say;
use crate::setup::{self, Options};
use crate::util::{self, Error, Result};

const TAG: &str = "test";

enum Action {
    /// `cargo xtask setup`, run in this process.
    Setup,
    /// A cargo command; the component it needs (for a clear message when
    /// rustup has not installed it).
    Cargo(&'static [&'static str], Option<&'static str>),
}

struct Step {
    name: &'static str,
    action: Action,
}

const STEPS: &[Step] = &[
    Step {
        name: "setup",
        action: Action::Setup,
    },
    Step {
        name: "cargo fmt --all --check",
        action: Action::Cargo(&["fmt", "--all", "--check"], Some("rustfmt")),
    },
    Step {
        name: "cargo clippy --workspace --all-targets -- -D warnings",
        action: Action::Cargo(
            &[
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ],
            Some("clippy"),
        ),
    },
    Step {
        name: "cargo test --workspace",
        action: Action::Cargo(&["test", "--workspace"], None),
    },
];

/// Runs the steps in order and stops at the first failure; prints each
/// step's time at the end either way.
pub fn test(args: &[String]) -> Result<()> {
    let options = Options::parse(args).map_err(|e| {
        Error::new(format!(
            "{e} (usage: cargo xtask test [--backend cpu|cuda])"
        ))
    })?;
    let mut options = Some(options);
    let root = util::repo_root();
    let mut times: Vec<(&str, Duration)> = Vec::new();
    let mut failure = None;

    for step in STEPS {
        say!(TAG, "=== {}", step.name);
        let started = Instant::now();
        let result = match &step.action {
            Action::Setup => setup::setup(options.take().unwrap_or_default()),
            Action::Cargo(args, component) => run_cargo(&root, args, *component),
        };
        times.push((step.name, started.elapsed()));
        if let Err(e) = result {
            failure = Some((step.name, e));
            break;
        }
    }

    say!(TAG, "summary:");
    let width = STEPS.iter().map(|s| s.name.len()).max().unwrap_or(0);
    let mut total = Duration::ZERO;
    for (i, step) in STEPS.iter().enumerate() {
        let (time, verdict) = match times.get(i) {
            Some((_, time)) => {
                total += *time;
                let failed = matches!(&failure, Some((name, _)) if *name == step.name);
                (
                    util::format_duration(*time),
                    if failed { "FAILED" } else { "ok" },
                )
            }
            None => ("-".to_string(), "not run"),
        };
        say!(TAG, "  {:<width$}  {:>8}  {verdict}", step.name, time);
    }
    say!(
        TAG,
        "  {:<width$}  {:>8}",
        "total",
        util::format_duration(total)
    );

    match failure {
        None => {
            say!(TAG, "all steps passed");
            Ok(())
        }
        Some((name, e)) => Err(Error::new(format!("step `{name}` failed: {e}"))),
    }
}

fn run_cargo(root: &std::path::Path, args: &[&str], component: Option<&str>) -> Result<()> {
    if let Some(component) = component {
        let subcommand = args[0];
        if util::probe(util::cargo().get_program(), &[subcommand, "--version"]).is_none() {
            return Err(Error::new(format!(
                "`cargo {subcommand}` is not available: run `rustup component add {component}`"
            )));
        }
    }
    let mut cmd: Command = util::cargo();
    cmd.args(args).current_dir(root);
    let exit = util::status(TAG, &mut cmd)?;
    if exit.success() {
        Ok(())
    } else {
        Err(Error::new(util::describe(exit)))
    }
}
