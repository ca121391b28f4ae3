//! forge-parity: proves an architecture plugin right against golden cases
//! made by Hugging Face transformers.
//!
//! A case folder holds `manifest.json`, `model/` (an HF checkpoint) and
//! `expected.safetensors` (docs/ARCHITECTURE.md, "The fixture contract"). The harness loads
//! the model through [`forge_core::load_model_dir`] in strict mode, exactly
//! as users load models, and reports max abs and relative error of logits
//! and every hidden state, exact greedy tokens, and the consistency of the
//! cache (incremental and chunked prefill against the one-shot forward).

mod batch;
mod beam;
pub mod compare;
pub mod error;
pub mod gate;
mod generation;
pub mod manifest;
pub mod report;
pub mod run;
pub mod select;
pub mod self_check;
mod speculative;
pub mod vision;

pub use error::{ParityError, Result};
pub use gate::{coverage_problems, CoverageProblem, GateArch};
pub use manifest::{Manifest, Tolerance};
pub use report::{render_table, CaseReport, Row};
pub use run::{run_case, RunOptions};
pub use select::{find_golden_dir, select_cases};
pub use self_check::{self_check, SelfCheck};
pub use speculative::AlteredModel;
