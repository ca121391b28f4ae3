//! `cargo xtask golden`: rebuild the golden fixtures with Hugging Face
//! transformers, in a virtual environment of their own.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::say;
use crate::setup;
use crate::util::{self, Error, Result};

const TAG: &str = "golden";

/// The fixture generator and its pinned requirements, relative to the
/// repository root (the commands run there).
const SCRIPT: &str = "golden/generate.py";
const REQUIREMENTS: &str = "golden/requirements.txt";
/// The venv, relative to the repository root (git-ignored).
const VENV: &str = ".forge/golden-venv";
/// The requirements the venv was last installed from, kept inside it.
const STAMP: &str = ".forge-requirements.txt";

/// Makes or refreshes the venv, then runs `golden/generate.py ARGS...`
/// (`--case NAME ...`); returns the script's exit code.
pub fn golden(args: &[String]) -> Result<u8> {
    let root = util::repo_root();
    let requirements = root.join(REQUIREMENTS);
    let script = root.join(SCRIPT);
    for file in [&requirements, &script] {
        if !file.is_file() {
            return Err(Error::new(format!("{} not found", util::shown(file))));
        }
    }

    let venv = root.join(VENV);
    let python = venv_python(&venv);
    if !python.is_file() {
        create_venv(&venv)?;
    }

    let wanted = fs::read(&requirements).map_err(|e| {
        Error::new(format!(
            "could not read {}: {e}",
            util::shown(&requirements)
        ))
    })?;
    let stamp = venv.join(STAMP);
    if fs::read(&stamp).ok().as_deref() == Some(wanted.as_slice()) {
        say!(TAG, "{VENV}: present (requirements unchanged)");
    } else {
        say!(TAG, "{VENV}: installing golden/requirements.txt");
        util::run(
            TAG,
            Command::new(&python)
                .args(["-m", "pip", "install", "--disable-pip-version-check", "-r"])
                .arg(REQUIREMENTS)
                .current_dir(&root),
        )?;
        fs::write(&stamp, &wanted)
            .map_err(|e| Error::new(format!("could not write {}: {e}", stamp.display())))?;
    }

    let mut cmd = Command::new(&python);
    cmd.arg(SCRIPT).args(args).current_dir(&root);
    let exit = util::status(TAG, &mut cmd)?;
    if !exit.success() {
        say!(TAG, "golden/generate.py failed ({})", util::describe(exit));
    }
    Ok(util::exit_code(exit))
}

fn venv_python(venv: &Path) -> PathBuf {
    if cfg!(windows) {
        venv.join("Scripts/python.exe")
    } else {
        venv.join("bin/python")
    }
}

/// `python3 -m venv`. Debian's python3 needs python3-venv for that; when
/// creating the venv fails there, install it (or say how) and try again.
fn create_venv(venv: &Path) -> Result<()> {
    say!(TAG, "{VENV}: creating");
    let attempt = || -> Result<()> {
        if venv.exists() {
            fs::remove_dir_all(venv)
                .map_err(|e| Error::new(format!("could not remove {}: {e}", venv.display())))?;
        }
        util::run(TAG, Command::new("python3").args(["-m", "venv"]).arg(venv))
    };
    let Err(first) = attempt() else {
        return Ok(());
    };
    let debian = cfg!(target_os = "linux") && util::on_path("dpkg-query");
    let missing = if debian {
        setup::dpkg_missing(&["python3-venv"])
    } else {
        Vec::new()
    };
    if missing.is_empty() {
        return Err(first);
    }
    say!(TAG, "python3-venv is missing");
    setup::install_debian_packages(TAG, &missing)?;
    attempt()
}
