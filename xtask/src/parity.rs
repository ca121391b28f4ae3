//! `cargo xtask parity`: setup, then the forge CLI's conformance harness.

use crate::say;
use crate::setup::{self, Options};
use crate::util::{self, Result};

const TAG: &str = "parity";

/// Runs setup, then `forge parity ARGS...`; returns the harness's exit code.
/// The arguments go to the harness untouched (`--model DIR`, `--json FILE`,
/// ...); with none it runs every golden case.
///
/// The `forge` binary is built by `cargo test --workspace --no-run`, the
/// same build `cargo xtask test` makes: `cargo run -p forge-cli` would
/// resolve the dependencies' features for that one package, differently
/// from the workspace build, and rebuild MLX's bindings and much else
/// (minutes and gigabytes in CI, which runs both).
pub fn parity(args: &[String]) -> Result<u8> {
    setup::setup(Options::default())?;
    let root = util::repo_root();
    let mut build = util::cargo();
    build
        .args(["test", "--workspace", "--no-run", "--quiet"])
        .current_dir(&root);
    util::run(TAG, &mut build)?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let mut cmd = std::process::Command::new(target.join("debug").join("forge"));
    cmd.arg("parity").args(args).current_dir(&root);
    let exit = util::status(TAG, &mut cmd)?;
    if !exit.success() {
        say!(TAG, "forge parity failed ({})", util::describe(exit));
    }
    Ok(util::exit_code(exit))
}
