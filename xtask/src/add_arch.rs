//! `cargo xtask add-arch <model_type> [--from <plugin>]`: starts a new
//! architecture plugin as a copy of a working one (llama by default),
//! registered under the new model_type and linked where plugins must be.

use std::fs;
use std::path::Path;

use crate::say;
use crate::util::{repo_root, Error, Result};

/// The names a new plugin gets.
#[derive(Debug, PartialEq)]
pub struct Names {
    /// HF model_type, as given ("deepseek_v3").
    pub model_type: String,
    /// Folder under arch-plugins/ ("deepseek-v3").
    pub dir: String,
    /// Crate name ("forge-deepseek-v3").
    pub krate: String,
    /// Crate name as a Rust identifier ("forge_deepseek_v3").
    pub ident: String,
}

/// Derives the names from a model_type; refuses anything but `[a-z0-9_-]`.
pub fn names(model_type: &str) -> Result<Names> {
    let valid = !model_type.is_empty()
        && model_type.starts_with(|c: char| c.is_ascii_lowercase())
        && model_type
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if !valid {
        return Err(Error::new(format!(
            "`{model_type}` is not a model_type: expected lowercase letters, digits, `_` or `-`, \
             starting with a letter (as in config.json, e.g. `deepseek_v3`)"
        )));
    }
    let dir = model_type.replace('_', "-");
    Ok(Names {
        model_type: model_type.to_string(),
        krate: format!("forge-{dir}"),
        ident: format!("forge_{}", dir.replace('-', "_")),
        dir,
    })
}

/// Rewrites the template plugin's lib.rs for the new model_type.
pub fn rewrite_lib(source: &str, from: &Names, to: &Names) -> Result<String> {
    let old = format!("model_type: \"{}\",", from.model_type);
    if !source.contains(&old) {
        return Err(Error::new(format!(
            "the template plugin does not register `{old}`; cannot rewrite it"
        )));
    }
    let header = format!(
        "//! {} for Forge, started by `cargo xtask add-arch` from the {} plugin.\n\
         //! Replace the copied {} code with the new architecture, then prove it\n\
         //! with `cargo xtask parity --model {}`.\n//!\n",
        to.model_type, from.model_type, from.model_type, to.model_type
    );
    let mut out = String::new();
    for line in source.split_inclusive('\n') {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        if trimmed.starts_with(&old) {
            out.push_str(&format!("{indent}model_type: \"{}\",\n", to.model_type));
        } else if trimmed.starts_with("aliases: &[") {
            out.push_str(&format!("{indent}aliases: &[],\n"));
        } else if trimmed.starts_with("description: \"") {
            out.push_str(&format!(
                "{indent}description: \"{} (started from {} by cargo xtask add-arch)\",\n",
                to.model_type, from.model_type
            ));
        } else {
            out.push_str(line);
        }
    }
    Ok(format!("{header}{out}"))
}

/// Inserts `line` after the first line containing `anchor`, unless present.
pub fn insert_after(text: &str, anchor: &str, line: &str) -> Result<String> {
    if text.lines().any(|l| l.trim() == line.trim()) {
        return Ok(text.to_string());
    }
    let mut out = String::new();
    let mut done = false;
    for l in text.split_inclusive('\n') {
        out.push_str(l);
        if !done && l.contains(anchor) {
            out.push_str(line);
            out.push('\n');
            done = true;
        }
    }
    if done {
        Ok(out)
    } else {
        Err(Error::new(format!(
            "no line containing `{anchor}` to insert after"
        )))
    }
}

fn read(path: &Path) -> Result<String> {
    fs::read_to_string(path).map_err(|e| Error::new(format!("{}: {e}", path.display())))
}

fn write(path: &Path, text: &str) -> Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|e| Error::new(format!("{}: {e}", parent.display())))?;
    }
    fs::write(path, text).map_err(|e| Error::new(format!("{}: {e}", path.display())))
}

/// The command.
pub fn add_arch(args: &[String]) -> Result<u8> {
    let mut model_type = None;
    let mut from = "llama".to_string();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--from" => {
                from = it
                    .next()
                    .cloned()
                    .ok_or_else(|| Error::new("--from needs a plugin model_type"))?
            }
            other if model_type.is_none() && !other.starts_with('-') => {
                model_type = Some(other.to_string())
            }
            other => return Err(Error::new(format!("unexpected argument `{other}`"))),
        }
    }
    let model_type = model_type
        .ok_or_else(|| Error::new("usage: cargo xtask add-arch <model_type> [--from <plugin>]"))?;
    let to = names(&model_type)?;
    let from = names(&from)?;
    let root = repo_root();
    let template = root.join("arch-plugins").join(&from.dir);
    let target = root.join("arch-plugins").join(&to.dir);
    if target.exists() {
        return Err(Error::new(format!("{} already exists", target.display())));
    }
    if !template.is_dir() {
        return Err(Error::new(format!(
            "no template plugin at {}",
            template.display()
        )));
    }

    let lib = rewrite_lib(&read(&template.join("src/lib.rs"))?, &from, &to)?;
    let manifest = read(&template.join("Cargo.toml"))?
        .replace(
            &format!("name = \"{}\"", from.krate),
            &format!("name = \"{}\"", to.krate),
        )
        .replace(
            &format!("the {} architecture", from.model_type),
            &format!("the {} architecture", to.model_type),
        );
    write(&target.join("Cargo.toml"), &manifest)?;
    write(&target.join("src/lib.rs"), &lib)?;
    say!("add-arch", "created {}", target.display());

    let edits = [
        (
            root.join("Cargo.toml"),
            format!(
                "{} = {{ path = \"arch-plugins/{}\" }}",
                from.krate, from.dir
            ),
            format!("{} = {{ path = \"arch-plugins/{}\" }}", to.krate, to.dir),
        ),
        (
            root.join("cli/Cargo.toml"),
            "add-arch` adds new ones below this line".to_string(),
            format!("{}.workspace = true", to.krate),
        ),
        (
            root.join("cli/src/plugins.rs"),
            format!("extern crate {};", from.ident),
            format!("extern crate {};", to.ident),
        ),
        (
            root.join("parity/Cargo.toml"),
            format!("{}.workspace = true", from.krate),
            format!("{}.workspace = true", to.krate),
        ),
        (
            root.join("parity/tests/common/mod.rs"),
            format!("extern crate {};", from.ident),
            format!("extern crate {};", to.ident),
        ),
    ];
    for (file, anchor, line) in edits {
        let text = insert_after(&read(&file)?, &anchor, &line)?;
        write(&file, &text)?;
        say!("add-arch", "linked in {}", file.display());
    }
    println!(
        "Next steps for `{m}`:\n\
         1. Write the architecture in arch-plugins/{d}/src/lib.rs (args struct, layers, forward).\n\
         2. Add its golden cases to golden/generate.py (a function per case, listed in CASES),\n\
         \x20  then `cargo xtask golden --case <case>`.\n\
         3. `cargo xtask parity --model {m}` until every check passes.\n\
         4. `cargo xtask test` before you commit.",
        m = to.model_type,
        d = to.dir
    );
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_model_type() {
        let n = names("deepseek_v3").unwrap();
        assert_eq!(
            n,
            Names {
                model_type: "deepseek_v3".into(),
                dir: "deepseek-v3".into(),
                krate: "forge-deepseek-v3".into(),
                ident: "forge_deepseek_v3".into(),
            }
        );
        assert!(names("Bad Name").is_err());
        assert!(names("").is_err());
        assert!(names("3d").is_err());
    }

    #[test]
    fn lib_is_registered_under_the_new_model_type() {
        let from = names("llama").unwrap();
        let to = names("qwen3").unwrap();
        let src =
            "inventory::submit! {\n    Architecture {\n        model_type: \"llama\",\n        \
                   aliases: &[\"mistral\"],\n        description: \"Llama: ...\",\n";
        let out = rewrite_lib(src, &from, &to).unwrap();
        assert!(out.contains("        model_type: \"qwen3\",\n"));
        assert!(!out.contains("model_type: \"llama\","));
        assert!(out.contains("        aliases: &[],\n"), "{out}");
        assert!(!out.contains("mistral"));
        assert!(
            out.contains("description: \"qwen3 (started from llama by cargo xtask add-arch)\",")
        );
        assert!(rewrite_lib("nothing", &from, &to).is_err());
    }

    #[test]
    fn insert_after_is_idempotent() {
        let text = "a\nforge-llama.workspace = true\nb\n";
        let once = insert_after(text, "forge-llama.workspace", "forge-x.workspace = true").unwrap();
        assert_eq!(
            once,
            "a\nforge-llama.workspace = true\nforge-x.workspace = true\nb\n"
        );
        let twice =
            insert_after(&once, "forge-llama.workspace", "forge-x.workspace = true").unwrap();
        assert_eq!(twice, once);
        assert!(insert_after(text, "missing", "x").is_err());
    }
}
