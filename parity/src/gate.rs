//! The gate that keeps every architecture proven: `forge parity --gate`
//! (run by `cargo xtask parity --gate` and CI) fails when a registered
//! architecture has no golden case, when a case names an architecture that
//! is not registered, or when any case fails.
//!
//! This module holds the coverage half (which architectures and cases match
//! up); the CLI runs the cases and adds their verdicts.

use std::path::{Path, PathBuf};

use crate::manifest::Manifest;

/// A registered architecture as the gate sees it: the model_type it serves
/// and its aliases (a case naming an alias covers the architecture).
#[derive(Debug, Clone, PartialEq)]
pub struct GateArch {
    /// The main model_type.
    pub model_type: String,
    /// Other model_types served by the same plugin.
    pub aliases: Vec<String>,
}

impl GateArch {
    /// Every architecture linked into the running program.
    pub fn registered() -> Vec<GateArch> {
        forge_core::registry::list()
            .into_iter()
            .map(|a| GateArch {
                model_type: a.model_type.to_string(),
                aliases: a.aliases.iter().map(|s| s.to_string()).collect(),
            })
            .collect()
    }

    fn serves(&self, arch: &str) -> bool {
        self.model_type == arch || self.aliases.iter().any(|a| a == arch)
    }
}

/// A reason the gate fails that is not a failing check.
#[derive(Debug, Clone, PartialEq)]
pub enum CoverageProblem {
    /// A registered architecture that no golden case exercises.
    Uncovered {
        /// Its model_type.
        model_type: String,
    },
    /// A case whose manifest names an architecture nobody registered.
    Unregistered {
        /// The case folder.
        case: PathBuf,
        /// The `arch` its manifest names.
        arch: String,
    },
    /// A case folder whose manifest cannot be read.
    BadManifest {
        /// The case folder.
        case: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl std::fmt::Display for CoverageProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CoverageProblem::Uncovered { model_type } => write!(
                f,
                "architecture `{model_type}` is registered but has no golden case \
                 (add one to golden/generate.py and run `cargo xtask golden --case <case>`)"
            ),
            CoverageProblem::Unregistered { case, arch } => write!(
                f,
                "case {} names architecture `{arch}`, which no linked plugin registers",
                case.display()
            ),
            CoverageProblem::BadManifest { case, message } => {
                write!(f, "case {}: {message}", case.display())
            }
        }
    }
}

/// The `arch` of generation conformance cases (logits processors, HF
/// `generate()` token sequences): they check the shared runtime.
pub const GENERATION_ARCH: &str = "generation";

/// Matches cases to architectures. `cases` are case folders (each holding
/// `manifest.json`); the result is empty when every architecture has a case
/// and every case an architecture.
pub fn coverage_problems(cases: &[PathBuf], archs: &[GateArch]) -> Vec<CoverageProblem> {
    let mut problems = Vec::new();
    let mut covered = vec![false; archs.len()];
    for case in cases {
        match case_arch(case) {
            // Generation conformance cases check the runtime, not an architecture.
            Ok(arch) if arch == GENERATION_ARCH => {}
            Ok(arch) => match archs.iter().position(|a| a.serves(&arch)) {
                Some(i) => covered[i] = true,
                None => problems.push(CoverageProblem::Unregistered {
                    case: case.clone(),
                    arch,
                }),
            },
            Err(message) => problems.push(CoverageProblem::BadManifest {
                case: case.clone(),
                message,
            }),
        }
    }
    for (arch, covered) in archs.iter().zip(covered) {
        if !covered {
            problems.push(CoverageProblem::Uncovered {
                model_type: arch.model_type.clone(),
            });
        }
    }
    problems
}

fn case_arch(case: &Path) -> Result<String, String> {
    Manifest::from_case_dir(case)
        .map(|m| m.arch)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arch(model_type: &str, aliases: &[&str]) -> GateArch {
        GateArch {
            model_type: model_type.into(),
            aliases: aliases.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn case(dir: &Path, name: &str, arch: &str) -> PathBuf {
        let case = dir.join(name);
        std::fs::create_dir_all(&case).unwrap();
        let manifest = serde_json::json!({
            "arch": arch, "case": name, "checks": ["logits"],
            "tolerance": {"max_abs": 1e-4, "rel": 1e-5},
        });
        std::fs::write(case.join("manifest.json"), manifest.to_string()).unwrap();
        case
    }

    #[test]
    fn every_arch_covered_and_every_case_registered_passes() {
        let dir = tempfile::tempdir().unwrap();
        let cases = vec![
            case(dir.path(), "a", "llama"),
            case(dir.path(), "b", "mistral"),
            case(dir.path(), "c", "clip"),
        ];
        let archs = [arch("llama", &["mistral"]), arch("clip", &[])];
        assert_eq!(coverage_problems(&cases, &archs), vec![]);
    }

    #[test]
    fn an_arch_without_a_case_and_a_case_without_an_arch_fail() {
        let dir = tempfile::tempdir().unwrap();
        let cases = vec![
            case(dir.path(), "a", "mistral"),
            case(dir.path(), "b", "qwen9"),
        ];
        let archs = [arch("llama", &["mistral"]), arch("gpt_oss", &[])];
        let problems = coverage_problems(&cases, &archs);
        assert_eq!(
            problems,
            vec![
                CoverageProblem::Unregistered {
                    case: cases[1].clone(),
                    arch: "qwen9".into()
                },
                CoverageProblem::Uncovered {
                    model_type: "gpt_oss".into()
                },
            ]
        );
        assert!(problems[1].to_string().contains("`gpt_oss` is registered"));
    }

    #[test]
    fn an_unreadable_manifest_is_a_problem() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad");
        std::fs::create_dir_all(&bad).unwrap();
        std::fs::write(bad.join("manifest.json"), "{").unwrap();
        let problems = coverage_problems(&[bad], &[]);
        assert!(
            matches!(&problems[..], [CoverageProblem::BadManifest { .. }]),
            "{problems:?}"
        );
    }
}
