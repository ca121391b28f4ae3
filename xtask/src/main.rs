//! `cargo xtask`: Forge's project tasks (setup, test, parity, golden, ...).
//!
//! It depends on nothing but std, and on no workspace crate, so that it runs
//! before MLX is installed. `cargo xtask help` lists the commands.

mod add_arch;
mod golden;
mod models;
mod parity;
mod setup;
mod test;
mod util;

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
                              harness's exit code.
  golden [--case NAME ...]    Rebuild golden fixtures with golden/generate.py in the venv
                              .forge/golden-venv (made from golden/requirements.txt, and
                              reinstalled when that file changes).
  add-arch <model_type> [--from <plugin>]
                              Start a new architecture plugin as a copy of a working one
                              (llama by default): arch-plugins/<name>, registered under
                              <model_type>, linked into the CLI and the parity tests.
  bench                       Run the throughput benches (not implemented yet).
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
        "bench" => {
            eprintln!("error: `cargo xtask {command}` is not implemented yet");
            return ExitCode::from(2);
        }
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
