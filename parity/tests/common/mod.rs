//! Helpers shared by the parity tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// Links the plugins so they register.
extern crate forge_clip;
extern crate forge_deepseek_v3;
extern crate forge_gemma2;
extern crate forge_gemma3_text;
extern crate forge_gpt_oss;
extern crate forge_granite;
extern crate forge_llama;
extern crate forge_llava;
extern crate forge_mixtral;
extern crate forge_olmo2;
extern crate forge_phi3;
extern crate forge_qwen2;
extern crate forge_qwen2_moe;
extern crate forge_qwen2_vl;
extern crate forge_qwen3;
extern crate forge_qwen3_moe;
extern crate forge_siglip;
extern crate forge_smollm3;

/// The repository's golden folder.
pub fn golden() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../golden")
}

/// Copies a case folder (recursively) into `to`.
pub fn copy_case(case: &str, to: &Path) -> PathBuf {
    let from = golden().join(case);
    let dest = to.join(case);
    copy_dir(&from, &dest);
    dest
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Edits a JSON file in place.
pub fn edit_json(path: &Path, edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>)) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut value: serde_json::Value = serde_json::from_str(&text).unwrap();
    edit(value.as_object_mut().unwrap());
    std::fs::write(path, serde_json::to_string_pretty(&value).unwrap()).unwrap();
}
