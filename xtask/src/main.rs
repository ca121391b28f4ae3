//! `cargo xtask`: Forge's project tasks (setup, test, parity, golden, ...).
//!
//! It depends on no workspace crate (only std and serde_json), so that it runs
//! before MLX is installed. `cargo xtask help` lists the commands.

mod add_arch;
mod bench;
mod golden;
mod models;
mod parity;
mod scaffold;
mod setup;
mod test;
mod util;
mod vs_mlx_lm;

use std::process::ExitCode;

const USAGE: &str = "\
Forge project tasks.

Usage: cargo xtask <command> [args]

Commands:
  setup [--backend cpu|cuda]  Make this machine ready to build Forge. Linux: the Debian
                              packages cmake, libclang-dev, libopenblas-dev, python3-pip
                              (installed when root, else the command is printed) and the
                              MLX 0.32.2 runtime wheel in .forge/mlx. macOS: nothing (mlx-rs
                              builds MLX with Metal). Quick when all is present. Without
                              --backend the installed backend is kept (cpu on a first run).
  test [--backend cpu|cuda]   setup, cargo fmt --all --check, cargo clippy --workspace
                              --all-targets -- -D warnings, cargo test --workspace; stops
                              at the first failure and prints each step's time.
  parity [ARGS...]            setup, then `forge parity ARGS...` (e.g. --model DIR,
                              --json FILE); every golden case when no ARGS. Exits with the
                              harness's exit code. `parity --gate` (run by CI) also fails
                              when a registered architecture has no golden case or a case
                              names an architecture that is not registered.
  golden [--case NAME ...]    Rebuild golden fixtures with golden/generate.py in the venv
                              .forge/golden-venv (made from golden/requirements.txt, and
                              reinstalled when that file changes).
  add-arch <model_type> [--from <plugin>] [--from-config path/to/config.json]
                              Start a new architecture plugin: arch-plugins/<name>,
                              registered under <model_type>, linked into the workspace, the
                              CLI and the parity tests, with a golden case in
                              golden/<name>_cases.py (listed in generate.py) and a parity
                              test. With --from-config: a skeleton with a typed args struct
                              generated from the config (guesses marked GUESS); without: a
                              copy of a working plugin (llama by default).
  bench [--quick] [--shapes A,B] [--save-baseline NAME] [--compare NAME] [--dev]
                              Run the criterion benches of forge-benches (model prefill,
                              decode, peak memory; single ops), write
                              target/forge-bench/results.json, and compare with the
                              committed baseline benches/baselines/<machine kind>/NAME.json
                              (`default` when present): exits 1 on a slowdown beyond the
                              noise threshold (3x the measured noise, at least 5%).
  bench --vs mlx-lm [--shapes A,B] [--pairings f32,bf16,defaults]
                              Run the same workloads with mlx-lm 0.32.2 (own venv in
                              .forge/mlx-lm-venv, MLX pinned to 0.32.2) and print
                              Forge/mlx-lm ratios: same dtype and BLAS, and defaults.
  help                        This text.

Environment:
  MLX_DIR   Use this MLX (an install prefix holding lib/libmlx.so, or the folder of
            MLXConfig.cmake) instead of the wheel in .forge/mlx.
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = args.split_first() else {
        eprint!("{USAGE}");
        eprintln!("\nerror: no command given");
        return ExitCode::from(2);
    };

    let result = match command.as_str() {
        "setup" => setup::Options::parse(rest)
            .and_then(setup::setup)
            .map(|()| 0),
        "test" => test::test(rest).map(|()| 0),
        "parity" => parity::parity(rest),
        "golden" => golden::golden(rest),
        "add-arch" => add_arch::add_arch(rest),
        "bench" => bench::bench(rest),
        "help" | "-h" | "--help" => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        other => {
            eprint!("{USAGE}");
            eprintln!("\nerror: unknown command `{other}`");
            return ExitCode::from(2);
        }
    };

    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
