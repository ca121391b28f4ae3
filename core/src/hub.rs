//! Model resolution: a local folder, or a Hugging Face hub id through the
//! hub's local cache (`HF_HUB_CACHE`, else `HF_HOME/hub`, else
//! `~/.cache/huggingface/hub`), downloading only when not offline
//! (`HF_HUB_OFFLINE=1` forbids it).

use std::path::{Path, PathBuf};

use hf_hub::{Cache, Repo};

use crate::error::{Error, Result};

/// Files a model folder may hold; the ones present in the cache are linked
/// into one snapshot folder by the hub, so resolving `config.json` finds the
/// folder.
const MODEL_FILES: &[&str] = &[
    "config.json",
    "model.safetensors",
    "model.safetensors.index.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "generation_config.json",
    "chat_template.jinja",
    "special_tokens_map.json",
];

/// Where hub ids are looked up.
#[derive(Debug, Clone)]
pub struct HubOptions {
    /// The hub cache folder (the one holding `models--org--name`).
    pub cache_dir: PathBuf,
    /// Never touch the network.
    pub offline: bool,
}

impl HubOptions {
    /// From the environment, as `huggingface_hub` reads it.
    pub fn from_env() -> Self {
        let cache_dir = if let Some(dir) = std::env::var_os("HF_HUB_CACHE") {
            PathBuf::from(dir)
        } else {
            Cache::from_env().path().clone()
        };
        let offline = std::env::var("HF_HUB_OFFLINE")
            .map(|v| matches!(v.as_str(), "1" | "true" | "TRUE" | "yes" | "ON" | "on"))
            .unwrap_or(false);
        HubOptions { cache_dir, offline }
    }
}

/// Resolves a model argument to a local folder holding `config.json` (or a
/// GGUF file): an existing path is used as is; anything else is a hub id.
pub fn resolve(model: &str, options: &HubOptions) -> Result<PathBuf> {
    let path = Path::new(model);
    if path.exists() {
        return Ok(path.to_path_buf());
    }
    if !looks_like_repo_id(model) {
        return Err(Error::Resolve {
            model: model.into(),
            message: "no such file or folder, and not a hub id of the form `org/name`".into(),
        });
    }
    let (repo_id, revision) = match model.split_once('@') {
        Some((id, rev)) => (id.to_string(), rev.to_string()),
        None => (model.to_string(), "main".to_string()),
    };
    let repo = Repo::with_revision(repo_id.clone(), hf_hub::RepoType::Model, revision.clone());
    let cache = Cache::new(options.cache_dir.clone());
    if let Some(config) = cache.repo(repo.clone()).get("config.json") {
        return Ok(parent(&config));
    }
    // A commit hash has no ref file: its snapshot folder is named after it.
    if revision.len() == 40 && revision.chars().all(|c| c.is_ascii_hexdigit()) {
        let snapshot = options
            .cache_dir
            .join(repo.folder_name())
            .join("snapshots")
            .join(&revision);
        if snapshot.join("config.json").is_file() {
            return Ok(snapshot);
        }
    }
    if options.offline {
        return Err(Error::Resolve {
            model: model.into(),
            message: format!(
                "not in the hub cache {} and HF_HUB_OFFLINE is set",
                options.cache_dir.display()
            ),
        });
    }
    download(model, repo, &options.cache_dir)
}

fn download(model: &str, repo: Repo, cache_dir: &Path) -> Result<PathBuf> {
    let fail = |message: String| Error::Resolve {
        model: model.into(),
        message,
    };
    let api = hf_hub::api::sync::ApiBuilder::from_cache(Cache::new(cache_dir.to_path_buf()))
        .build()
        .map_err(|e| fail(e.to_string()))?;
    let api_repo = api.repo(repo);
    let config = api_repo
        .get("config.json")
        .map_err(|e| fail(format!("download of config.json failed: {e}")))?;
    let info = api_repo.info().map_err(|e| fail(e.to_string()))?;
    for sibling in info.siblings {
        let name = sibling.rfilename;
        if MODEL_FILES.contains(&name.as_str()) || name.ends_with(".safetensors") {
            api_repo
                .get(&name)
                .map_err(|e| fail(format!("download of {name} failed: {e}")))?;
        }
    }
    Ok(parent(&config))
}

fn parent(file: &Path) -> PathBuf {
    file.parent().map(Path::to_path_buf).unwrap_or_default()
}

fn looks_like_repo_id(model: &str) -> bool {
    let id = model.split('@').next().unwrap_or(model);
    let mut parts = id.split('/');
    let (Some(org), Some(name), None) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let ok = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    ok(org) && ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_ids() {
        assert!(looks_like_repo_id("HuggingFaceTB/SmolLM2-135M"));
        assert!(looks_like_repo_id("org/name@v1"));
        assert!(!looks_like_repo_id("just-a-name"));
        assert!(!looks_like_repo_id("a/b/c"));
    }
}
