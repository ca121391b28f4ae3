//! Choosing cases: all of them, by architecture, by case name, or a case
//! folder anywhere on disk.

use std::path::{Path, PathBuf};

use crate::error::{ParityError, Result};
use crate::manifest::Manifest;

/// The repository's `golden/` folder: `$FORGE_GOLDEN_DIR`, else `golden/`
/// under the current folder, else the one beside this crate's source.
pub fn find_golden_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("FORGE_GOLDEN_DIR") {
        return PathBuf::from(dir);
    }
    let here = PathBuf::from("golden");
    if here.is_dir() {
        return here;
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("golden")
}

/// Every case folder (one holding `manifest.json`) under `golden`, sorted.
pub fn all_cases(golden: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(golden).map_err(|e| ParityError::Case {
        path: golden.to_path_buf(),
        message: format!("cannot list golden cases: {e}"),
    })?;
    let mut cases: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("manifest.json").is_file())
        .collect();
    cases.sort();
    Ok(cases)
}

/// The cases a `--model` selection names: a case folder path, a case name,
/// or an architecture (every case whose manifest `arch` matches). `None`
/// selects all cases.
pub fn select_cases(golden: &Path, selection: Option<&str>) -> Result<Vec<PathBuf>> {
    let Some(selection) = selection else {
        return all_cases(golden);
    };
    let as_path = Path::new(selection);
    if as_path.join("manifest.json").is_file() {
        return Ok(vec![as_path.to_path_buf()]);
    }
    let cases = all_cases(golden)?;
    let by_name: Vec<PathBuf> = cases
        .iter()
        .filter(|p| p.file_name().is_some_and(|n| n == selection))
        .cloned()
        .collect();
    if !by_name.is_empty() {
        return Ok(by_name);
    }
    let by_arch: Vec<PathBuf> = cases
        .iter()
        .filter(|p| Manifest::from_case_dir(p).is_ok_and(|m| m.arch == selection))
        .cloned()
        .collect();
    if !by_arch.is_empty() {
        return Ok(by_arch);
    }
    Err(ParityError::NoMatch {
        selection: selection.into(),
        known: cases
            .iter()
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect::<Vec<_>>()
            .join(", "),
    })
}
