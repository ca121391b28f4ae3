//! `cargo xtask add-arch <model_type> [--from <plugin>] [--from-config FILE]`:
//! starts a new architecture plugin, registered under the new model_type and
//! linked where plugins must be, with a golden case in the generator and a
//! parity test.
//!
//! With `--from-config` the plugin is a skeleton whose typed args struct is
//! generated from the config's keys and value types (see [`scaffold`]);
//! without it, a copy of a working plugin (llama by default).

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::say;
use crate::scaffold;
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

/// Inserts an `extern crate` line among the file's others in the sorted
/// place rustfmt keeps them in, unless present.
pub fn insert_extern_sorted(text: &str, line: &str) -> Result<String> {
    let externs: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("extern crate "))
        .collect();
    match externs.iter().find(|l| l.trim() > line.trim()) {
        Some(next) => insert_before(text, next, line),
        None => {
            let last = externs
                .last()
                .ok_or_else(|| Error::new("no `extern crate` line to insert beside"))?;
            insert_after(text, last, line)
        }
    }
}

/// Inserts `line` before the first line starting with `anchor`, unless present.
pub fn insert_before(text: &str, anchor: &str, line: &str) -> Result<String> {
    if text.lines().any(|l| l.trim() == line.trim()) {
        return Ok(text.to_string());
    }
    let Some(at) = text
        .split_inclusive('\n')
        .scan(0, |pos, l| {
            let start = *pos;
            *pos += l.len();
            Some((start, l))
        })
        .find(|(_, l)| l.starts_with(anchor))
        .map(|(start, _)| start)
    else {
        return Err(Error::new(format!(
            "no line starting with `{anchor}` to insert before"
        )));
    };
    Ok(format!("{}{line}\n{}", &text[..at], &text[at..]))
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

/// What `cargo xtask add-arch` was asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// The new model_type.
    pub model_type: String,
    /// The plugin to copy when there is no config (llama by default).
    pub from: String,
    /// A config.json to generate the args struct and the golden case from.
    pub from_config: Option<PathBuf>,
}

const USAGE: &str =
    "usage: cargo xtask add-arch <model_type> [--from <plugin>] [--from-config path/to/config.json]";

impl Options {
    /// Parses the command's arguments.
    pub fn parse(args: &[String]) -> Result<Options> {
        let mut model_type = None;
        let mut from = "llama".to_string();
        let mut from_config = None;
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            match arg.as_str() {
                "--from" => {
                    from = it
                        .next()
                        .cloned()
                        .ok_or_else(|| Error::new("--from needs a plugin model_type"))?
                }
                "--from-config" => {
                    from_config =
                        Some(PathBuf::from(it.next().ok_or_else(|| {
                            Error::new("--from-config needs a config.json path")
                        })?))
                }
                other if model_type.is_none() && !other.starts_with('-') => {
                    model_type = Some(other.to_string())
                }
                other => {
                    return Err(Error::new(format!(
                        "unexpected argument `{other}`; {USAGE}"
                    )))
                }
            }
        }
        let model_type = model_type.ok_or_else(|| Error::new(USAGE))?;
        Ok(Options {
            model_type,
            from,
            from_config,
        })
    }
}

/// The command.
pub fn add_arch(args: &[String]) -> Result<u8> {
    let options = Options::parse(args)?;
    add_arch_at(&repo_root(), &options)?;
    Ok(0)
}

/// Reads a config.json given to --from-config and checks its model_type.
fn read_config(path: &Path, model_type: &str) -> Result<Map<String, Value>> {
    let text = read(path)?;
    let value: Value = serde_json::from_str(&text)
        .map_err(|e| Error::new(format!("{}: not valid JSON: {e}", path.display())))?;
    let Value::Object(config) = value else {
        return Err(Error::new(format!(
            "{}: expected a JSON object (a config.json), found {}",
            path.display(),
            value
        )));
    };
    match config.get("model_type") {
        Some(Value::String(found)) if found != model_type => Err(Error::new(format!(
            "{}: model_type is `{found}`, but the new plugin is `{model_type}`",
            path.display()
        ))),
        _ => Ok(config),
    }
}

/// Creates the plugin in the workspace at `root` and wires it in.
pub fn add_arch_at(root: &Path, options: &Options) -> Result<()> {
    let to = names(&options.model_type)?;
    let from = names(&options.from)?;
    let target = root.join("arch-plugins").join(&to.dir);
    if target.exists() {
        return Err(Error::new(format!("{} already exists", target.display())));
    }
    let config = match &options.from_config {
        Some(path) => Some(read_config(path, &to.model_type)?),
        None => None,
    };

    match &config {
        Some(config) => write_skeleton(&target, &to, config)?,
        None => copy_template(root, &target, &from, &to)?,
    }
    let case = format!("{}-tiny", to.dir);
    let module = format!("{}_cases", to.ident.trim_start_matches("forge_"));
    let function = format!("case_{}_tiny", to.ident.trim_start_matches("forge_"));
    write(
        &target.join("tests/parity.rs"),
        &scaffold::parity_test(&to.model_type, &to.ident, &case),
    )?;
    let tiny = scaffold::tiny_config(config.as_ref());
    write(
        &target.join("tests/model.rs"),
        &scaffold::model_test(&to.model_type, &to.ident, &tiny),
    )?;
    say!("add-arch", "created {}", target.display());

    let cases_file = root.join("golden").join(format!("{module}.py"));
    if cases_file.exists() {
        say!("add-arch", "kept the existing {}", cases_file.display());
    } else {
        write(
            &cases_file,
            &scaffold::cases_module(&to.model_type, &case, &function, &tiny),
        )?;
        say!("add-arch", "created {}", cases_file.display());
    }
    link(root, &from, &to, &case, &module, &function)?;
    print_next_steps(&to, &case, config.is_some());
    Ok(())
}

fn copy_template(root: &Path, target: &Path, from: &Names, to: &Names) -> Result<()> {
    let template = root.join("arch-plugins").join(&from.dir);
    if !template.is_dir() {
        return Err(Error::new(format!(
            "no template plugin at {}",
            template.display()
        )));
    }
    copy_sources(&template.join("src"), &target.join("src"))?;
    let lib = rewrite_lib(&read(&template.join("src/lib.rs"))?, from, to)?;
    let manifest = read(&template.join("Cargo.toml"))?
        .replace(
            &format!("name = \"{}\"", from.krate),
            &format!("name = \"{}\"", to.krate),
        )
        .replace(
            &format!("the {} architecture", from.model_type),
            &format!("the {} architecture", to.model_type),
        );
    write(
        &target.join("Cargo.toml"),
        &scaffold::with_parity_dev_dependency(&manifest),
    )?;
    write(&target.join("src/lib.rs"), &lib)
}

/// Copies the template's source tree (every module of the one plugin
/// layout, and any the template has beyond it).
fn copy_sources(from: &Path, to: &Path) -> Result<()> {
    let entries = fs::read_dir(from).map_err(|e| Error::new(format!("{}: {e}", from.display())))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::new(format!("{}: {e}", from.display())))?;
        let path = entry.path();
        let dest = to.join(entry.file_name());
        if path.is_dir() {
            copy_sources(&path, &dest)?;
        } else {
            write(&dest, &read(&path)?)?;
        }
    }
    Ok(())
}

fn write_skeleton(target: &Path, to: &Names, config: &Map<String, Value>) -> Result<()> {
    let struct_name = format!("{}Args", scaffold::camel(&to.model_type));
    let fields = scaffold::fields(config);
    write(
        &target.join("Cargo.toml"),
        &scaffold::skeleton_manifest(&to.krate, &to.model_type),
    )?;
    write(
        &target.join("src/config.rs"),
        &scaffold::args_module(&to.model_type, &struct_name, &fields),
    )?;
    write(
        &target.join("src/model.rs"),
        &scaffold::skeleton_model(&to.model_type, &to.dir, &struct_name),
    )?;
    write(
        &target.join("src/lib.rs"),
        &scaffold::skeleton_lib(&to.model_type, &struct_name),
    )?;
    let guesses = fields.iter().filter(|f| f.guess.is_some()).count();
    say!(
        "add-arch",
        "{struct_name}: {} fields from the config, {guesses} marked GUESS",
        fields.len()
    );
    Ok(())
}

/// Wires the new crate into the workspace, the CLI, the parity tests and
/// the golden generator. Each edit inserts one line next to a stable anchor
/// (the llama plugin's line, a marker comment, the CASES table), so plugins
/// that others add around them do not get in the way.
fn link(
    root: &Path,
    from: &Names,
    to: &Names,
    case: &str,
    module: &str,
    function: &str,
) -> Result<()> {
    let after = [
        (
            "Cargo.toml",
            format!(
                "{} = {{ path = \"arch-plugins/{}\" }}",
                from.krate, from.dir
            ),
            format!("{} = {{ path = \"arch-plugins/{}\" }}", to.krate, to.dir),
        ),
        (
            "cli/Cargo.toml",
            "add-arch` adds new ones below this line".to_string(),
            format!("{}.workspace = true", to.krate),
        ),
        (
            "parity/Cargo.toml",
            format!("{}.workspace = true", from.krate),
            format!("{}.workspace = true", to.krate),
        ),
        (
            "golden/generate.py",
            "CASES: dict[".to_string(),
            format!("    \"{case}\": {module}.{function},"),
        ),
    ];
    for (file, anchor, line) in after {
        let path = root.join(file);
        let text = insert_after(&read(&path)?, &anchor, &line)?;
        write(&path, &text)?;
        say!("add-arch", "linked in {file}");
    }
    for file in ["cli/src/plugins.rs", "parity/tests/common/mod.rs"] {
        let path = root.join(file);
        let line = format!("extern crate {};", to.ident);
        write(&path, &insert_extern_sorted(&read(&path)?, &line)?)?;
        say!("add-arch", "linked in {file}");
    }
    let generator = root.join("golden/generate.py");
    let import = format!("import {module}  # noqa: E402  (cargo xtask add-arch)");
    let text = insert_before(&read(&generator)?, "CASES: dict[", &import)?;
    write(&generator, &text)
}

fn print_next_steps(to: &Names, case: &str, skeleton: bool) {
    let model = if skeleton {
        format!(
            "Check the GUESS fields of arch-plugins/{d}/src/config.rs, then write the decoder\n\
             \x20  layer in arch-plugins/{d}/src/model.rs (arch-plugins/llama/src/model.rs is a full example);\n\
             \x20  `cargo test -p forge-{d} --test model` runs it on synthetic weights.",
            d = to.dir
        )
    } else {
        format!(
            "Change the copied config (arch-plugins/{d}/src/config.rs) and layer\n\
             \x20  (arch-plugins/{d}/src/model.rs) into the new architecture; `cargo test -p forge-{d} --test model`\n\
             \x20  runs it on synthetic weights.",
            d = to.dir
        )
    };
    let module = to.ident.trim_start_matches("forge_");
    println!(
        "Next steps for `{m}`:\n\
         1. {model}\n\
         2. Make golden/{module}_cases.py exercise what {m} adds (its case `{case}` is listed in\n\
         \x20  golden/generate.py's CASES), then `cargo xtask golden --case {case}`.\n\
         3. `cargo xtask parity --model {m}` until every check passes\n\
         \x20  (arch-plugins/{d}/tests/parity.rs runs the same cases under `cargo test`).\n\
         4. `cargo xtask parity --gate` and `cargo xtask test` before you commit: the gate fails\n\
         \x20  while {m} is registered without a passing golden case.",
        m = to.model_type,
        d = to.dir
    );
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

    #[test]
    fn extern_crates_stay_sorted() {
        let text = "//! x\n\n/// Links.\nextern crate forge_a;\nextern crate forge_c;\n";
        let mid = insert_extern_sorted(text, "extern crate forge_b;").unwrap();
        assert_eq!(
            mid,
            "//! x\n\n/// Links.\nextern crate forge_a;\nextern crate forge_b;\nextern crate forge_c;\n"
        );
        let end = insert_extern_sorted(&mid, "extern crate forge_d;").unwrap();
        assert!(end.ends_with("extern crate forge_c;\nextern crate forge_d;\n"));
        assert_eq!(
            insert_extern_sorted(&end, "extern crate forge_b;").unwrap(),
            end
        );
    }

    #[test]
    fn insert_before_is_idempotent() {
        let text = "import a\nCASES: dict[str] = {\n}\n";
        let once = insert_before(text, "CASES: dict[", "import b").unwrap();
        assert_eq!(once, "import a\nimport b\nCASES: dict[str] = {\n}\n");
        assert_eq!(
            insert_before(&once, "CASES: dict[", "import b").unwrap(),
            once
        );
        assert!(insert_before(text, "nothing", "x").is_err());
    }
}

/// `cargo xtask add-arch` run into a temporary copy of the workspace, and
/// the result built there. The copy shares this workspace's target folder
/// and build settings, so only the new crates and the copied workspace
/// crates compile (`cargo check`), not MLX.
#[cfg(test)]
mod workspace_copy_tests {
    use super::*;
    use std::process::Command;

    /// Copies the workspace's sources (not target/, .git/ or .forge/).
    fn copy_workspace(from: &Path, to: &Path) {
        for entry in fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name();
            if ["target", ".git", ".forge"].iter().any(|n| name == *n) {
                continue;
            }
            let dest = to.join(&name);
            if entry.file_type().unwrap().is_dir() {
                fs::create_dir_all(&dest).unwrap();
                copy_workspace(&entry.path(), &dest);
            } else if entry.file_type().unwrap().is_file() {
                fs::copy(entry.path(), &dest).unwrap();
            }
        }
    }

    fn target_dir() -> PathBuf {
        std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo_root().join("target"))
    }

    /// The newest modification time of `lib<krate>-*.rmeta` in the target.
    fn checked_at(krate: &str) -> Option<std::time::SystemTime> {
        let deps = target_dir().join("debug/deps");
        fs::read_dir(deps)
            .ok()?
            .filter_map(|e| e.ok())
            .filter(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.starts_with(&format!("lib{krate}-")) && name.ends_with(".rmeta")
            })
            .filter_map(|e| e.metadata().ok()?.modified().ok())
            .max()
    }

    /// `cargo check` in the copy.
    fn check(copy: &Path, packages: &[&str]) -> (bool, String) {
        let mut args = vec!["check", "--offline", "--quiet", "--all-targets"];
        for p in packages {
            args.extend(["-p", p]);
        }
        cargo_in_copy(copy, &args)
    }

    /// Cargo in the copy with the original's build settings, so the shared
    /// target folder's MLX build stays fresh.
    fn cargo_in_copy(copy: &Path, args: &[&str]) -> (bool, String) {
        let root = repo_root();
        let target = target_dir();
        let support = root.join("build-support");
        let mut cmd = crate::util::cargo();
        cmd.current_dir(copy)
            .args(args)
            .env("CARGO_TARGET_DIR", target)
            .env("RUSTC_WRAPPER", support.join("rustc-wrapper.sh"))
            .env("CPATH", support.join("include"));
        for triple in ["x86_64_unknown_linux_gnu", "aarch64_unknown_linux_gnu"] {
            cmd.env(
                format!("CMAKE_TOOLCHAIN_FILE_{triple}"),
                support.join("mlx-toolchain.cmake"),
            );
        }
        let out = cmd.output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn python_parses(file: &Path) -> bool {
        let code = "import ast, sys; ast.parse(open(sys.argv[1]).read())";
        Command::new("python3")
            .args(["-c", code])
            .arg(file)
            .status()
            .is_ok_and(|s| s.success())
    }

    #[test]
    fn add_arch_builds_in_a_copy_of_the_workspace() {
        // A fixed place inside the target folder, so that reruns reuse (and
        // replace) the same build artifacts instead of piling up new ones.
        let copy = target_dir().join("add-arch-test/forge");
        if copy.exists() {
            fs::remove_dir_all(&copy).unwrap();
        }
        fs::create_dir_all(&copy).unwrap();
        copy_workspace(&repo_root(), &copy);
        let dir = tempfile::tempdir().unwrap();

        let config = dir.path().join("config.json");
        fs::write(
            &config,
            r#"{"architectures": ["Qwen9ForCausalLM"], "model_type": "qwen9",
                "hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24,
                "num_attention_heads": 14, "num_key_value_heads": 2, "vocab_size": 151936,
                "rms_norm_eps": 1e-06, "rope_theta": 1000000, "rope_scaling": null,
                "sliding_window": null, "use_sliding_window": false, "hidden_act": "silu",
                "tie_word_embeddings": true, "max_window_layers": 21, "bos_token_id": 151643,
                "layer_types": ["full_attention", "full_attention"], "type": 1}"#,
        )
        .unwrap();
        let from_config = Options::parse(&[
            "qwen9".into(),
            "--from-config".into(),
            config.display().to_string(),
        ])
        .unwrap();
        add_arch_at(&copy, &from_config).unwrap();
        let copied = Options::parse(&["mini_llama".into()]).unwrap();
        add_arch_at(&copy, &copied).unwrap();

        // Everything is where the next steps say.
        for file in [
            "src/lib.rs",
            "src/config.rs",
            "src/model.rs",
            "tests/model.rs",
        ] {
            for plugin in ["qwen9", "mini-llama"] {
                let path = copy.join("arch-plugins").join(plugin).join(file);
                assert!(path.is_file(), "no {}", path.display());
            }
        }
        let args = fs::read_to_string(copy.join("arch-plugins/qwen9/src/config.rs")).unwrap();
        assert!(args.contains("pub struct Qwen9Args {"), "{args}");
        assert!(args.contains("    pub rope_parameters: RopeParameters,"));
        assert!(args.contains("    // GUESS: null in this config"));
        let generator = fs::read_to_string(copy.join("golden/generate.py")).unwrap();
        for line in [
            "import qwen9_cases  # noqa: E402  (cargo xtask add-arch)",
            "    \"qwen9-tiny\": qwen9_cases.case_qwen9_tiny,",
            "    \"mini-llama-tiny\": mini_llama_cases.case_mini_llama_tiny,",
        ] {
            assert!(generator.contains(line), "no `{line}` in generate.py");
        }
        for file in [
            "golden/generate.py",
            "golden/qwen9_cases.py",
            "golden/mini_llama_cases.py",
        ] {
            assert!(
                python_parses(&copy.join(file)),
                "{file} is not valid Python"
            );
        }
        let plugins = fs::read_to_string(copy.join("cli/src/plugins.rs")).unwrap();
        assert!(plugins.contains("extern crate forge_qwen9;"));
        assert!(plugins.contains("extern crate forge_mini_llama;"));
        // A second run refuses to overwrite the plugin.
        assert!(add_arch_at(&copy, &from_config).is_err());

        let started = std::time::SystemTime::now();
        let (ok, stderr) = check(&copy, &["forge-qwen9", "forge-mini-llama", "forge-cli"]);
        assert!(ok, "the new plugins do not build:\n{stderr}");
        // The new crates were compiled just now (not found stale in the target).
        for krate in ["forge_qwen9", "forge_mini_llama"] {
            let at = checked_at(krate);
            assert!(at.is_some_and(|t| t >= started), "{krate} was not built");
        }
        // The plugin copied from llama runs its generated test as it is.
        let (ok, stderr) = cargo_in_copy(
            &copy,
            &[
                "test",
                "--offline",
                "-p",
                "forge-mini-llama",
                "--test",
                "model",
            ],
        );
        assert!(
            ok,
            "the generated test of the copied plugin fails:\n{stderr}"
        );
    }

    #[test]
    fn a_config_of_another_model_type_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.json");
        fs::write(&config, r#"{"model_type": "llama"}"#).unwrap();
        let err = read_config(&config, "qwen9").unwrap_err().to_string();
        assert!(err.contains("model_type is `llama`"), "{err}");
        fs::write(&config, "[1]").unwrap();
        let err = read_config(&config, "qwen9").unwrap_err().to_string();
        assert!(err.contains("expected a JSON object"), "{err}");
    }
}
