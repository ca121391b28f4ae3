//! Model resolution against a Hugging Face cache folder the test builds
//! (`models--org--name/refs/<rev>` → `snapshots/<commit>/...`), offline.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use forge_core::hub::{resolve, HubOptions};
use forge_core::{load_model, Error};

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
const OLD_COMMIT: &str = "fedcba9876543210fedcba9876543210fedcba98";

fn offline(cache: &Path) -> HubOptions {
    HubOptions {
        cache_dir: cache.to_path_buf(),
        offline: true,
    }
}

/// Puts a snapshot of `org/name` at `commit` in the cache, with a config
/// and weights of the test architecture, and returns the snapshot folder.
fn add_snapshot(cache: &Path, repo: &str, commit: &str) -> PathBuf {
    let snapshot = cache
        .join(format!("models--{}", repo.replace('/', "--")))
        .join("snapshots")
        .join(commit);
    std::fs::create_dir_all(&snapshot).unwrap();
    write(&snapshot, "config.json", &test_config(""));
    write_safetensors(
        &snapshot.join("model.safetensors"),
        &[RawTensor::f32("w", &[2, 3], &W_VALUES)],
    );
    snapshot
}

/// Points `refs/<name>` of `org/name` at `commit` (no trailing newline, as
/// huggingface_hub writes it).
fn add_ref(cache: &Path, repo: &str, name: &str, commit: &str) {
    let refs = cache
        .join(format!("models--{}", repo.replace('/', "--")))
        .join("refs");
    std::fs::create_dir_all(&refs).unwrap();
    std::fs::write(refs.join(name), commit).unwrap();
}

#[test]
fn a_cached_repo_resolves_to_its_snapshot() {
    let cache = tempfile::tempdir().unwrap();
    let snapshot = add_snapshot(cache.path(), "org/name", COMMIT);
    add_snapshot(cache.path(), "org/name", OLD_COMMIT);
    add_ref(cache.path(), "org/name", "main", COMMIT);
    add_ref(cache.path(), "org/name", "v1", OLD_COMMIT);

    let dir = resolve("org/name", &offline(cache.path())).unwrap();
    assert_eq!(dir, snapshot);
    assert!(dir.join("config.json").is_file());

    // A named revision follows its own ref.
    let dir = resolve("org/name@v1", &offline(cache.path())).unwrap();
    assert!(dir.ends_with(OLD_COMMIT), "{}", dir.display());
}

#[test]
fn a_commit_hash_revision_finds_its_snapshot() {
    // huggingface_hub keeps no ref for a commit: snapshots/<commit> is it.
    let cache = tempfile::tempdir().unwrap();
    let snapshot = add_snapshot(cache.path(), "org/name", OLD_COMMIT);
    add_snapshot(cache.path(), "org/name", COMMIT);
    add_ref(cache.path(), "org/name", "main", COMMIT);
    let dir = resolve(&format!("org/name@{OLD_COMMIT}"), &offline(cache.path())).unwrap();
    assert_eq!(dir, snapshot);
}

#[test]
fn load_model_goes_through_the_cache() {
    let cache = tempfile::tempdir().unwrap();
    add_snapshot(cache.path(), "some-org/tiny.model_v2", COMMIT);
    add_ref(cache.path(), "some-org/tiny.model_v2", "main", COMMIT);
    let loaded = load_model("some-org/tiny.model_v2", &options(true, None, cache.path())).unwrap();
    assert_eq!(loaded.architecture.model_type, TEST_TYPE);
    assert!(loaded.dir.ends_with(COMMIT));
}

#[test]
fn a_missing_id_offline_names_the_cache() {
    let cache = tempfile::tempdir().unwrap();
    // Another repo is cached, and org/name has a ref but no snapshot.
    add_snapshot(cache.path(), "org/other", COMMIT);
    add_ref(cache.path(), "org/other", "main", COMMIT);
    add_ref(cache.path(), "org/name", "main", COMMIT);
    for model in ["org/name", "org/absent", "org/other@v9"] {
        let err = resolve(model, &offline(cache.path())).unwrap_err();
        let shown = err.to_string();
        match err {
            Error::Resolve { model: m, message } => {
                assert_eq!(m, model);
                assert!(
                    message.contains(&cache.path().display().to_string()),
                    "{message}"
                );
                assert!(message.contains("OFFLINE"), "{message}");
            }
            other => panic!("{model}: expected Error::Resolve, got {other:?}"),
        }
        assert!(shown.contains(&format!("`{model}`")), "{shown}");
    }
}

#[test]
fn a_local_folder_resolves_to_itself() {
    let cache = tempfile::tempdir().unwrap();
    let model = good_model_dir();
    let given = model.path().to_str().unwrap();
    assert_eq!(
        resolve(given, &offline(cache.path())).unwrap(),
        model.path()
    );
    // A relative path that looks like a hub id (`org/name`) is still a
    // path when it exists (tests run in the crate folder).
    assert!(Path::new("tests/common").is_dir());
    assert_eq!(
        resolve("tests/common", &offline(cache.path())).unwrap(),
        PathBuf::from("tests/common")
    );
}

#[test]
fn neither_a_path_nor_an_id() {
    let cache = tempfile::tempdir().unwrap();
    for model in ["no-such-folder", "a/b/c", "/definitely/not/here", "org/"] {
        match resolve(model, &offline(cache.path())) {
            Err(Error::Resolve { model: m, message }) => {
                assert_eq!(m, model);
                assert!(message.contains("no such file or folder"), "{message}");
            }
            other => panic!("{model}: expected Error::Resolve, got {other:?}"),
        }
    }
}
