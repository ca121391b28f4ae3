//! `cargo xtask parity`: setup, then the forge CLI's conformance harness.

use crate::say;
use crate::setup::{self, Options};
use crate::util::{self, Result};

const TAG: &str = "parity";

/// Runs setup, then `forge parity ARGS...`; returns the harness's exit code.
/// The arguments go to the harness untouched (`--model DIR`, `--json FILE`,
/// ...); with none it runs every golden case.
pub fn parity(args: &[String]) -> Result<u8> {
    setup::setup(Options::default())?;
    let mut cmd = util::cargo();
    cmd.args([
        "run",
        "--quiet",
        "-p",
        "forge-cli",
        "--bin",
        "forge",
        "--",
        "parity",
    ])
    .args(args)
    .current_dir(util::repo_root());
    let exit = util::status(TAG, &mut cmd)?;
    if !exit.success() {
        say!(TAG, "forge parity failed ({})", util::describe(exit));
    }
    Ok(util::exit_code(exit))
}
