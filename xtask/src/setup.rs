//! `cargo xtask setup`: make this machine ready to build and test Forge
//! (system packages, the MLX runtime, the default model).
//!
//! Setup is a list of independent steps ([`STEPS`]), run in order. Each step
//! first checks whether its work is already done and returns at once when it
//! is, so a setup with everything present is quick. To add a step (a model
//! download, say), write one `fn(&Context) -> Result<Outcome>` and add it to
//! [`STEPS`].

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::say;
use crate::util::{self, Error, Result};

const TAG: &str = "setup";

/// The MLX release that mlx-rs 0.33 / mlx-sys 0.7 (mlx-c 0.7) are written
/// against. It must match exactly (see shared/notes/mlx-on-linux.md).
pub const MLX_VERSION: &str = "0.32.2";

/// Debian packages that the MLX build needs: cmake (mlx-c), libclang
/// (bindgen), OpenBLAS (fast BLAS linked ahead of the wheel's reference
/// one). pip is checked on its own: see [`python_has_pip`].
const DEBIAN_PACKAGES: &[&str] = &["cmake", "libclang-dev", "libopenblas-dev"];

/// The Debian package that provides `python3 -m pip`.
const PIP_PACKAGE: &str = "python3-pip";

/// Where the MLX runtime wheel goes, relative to the repository root
/// (git-ignored).
pub const MLX_TARGET: &str = ".forge/mlx";

/// The MLX runtime the Linux build links against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Cpu,
    Cuda,
}

impl Backend {
    pub fn parse(name: &str) -> Result<Backend> {
        match name {
            "cpu" => Ok(Backend::Cpu),
            "cuda" => Ok(Backend::Cuda),
            other => Err(Error::new(format!(
                "unknown backend `{other}`: expected `cpu` or `cuda`"
            ))),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Backend::Cpu => "cpu",
            Backend::Cuda => "cuda",
        }
    }

    /// The PyPI distribution that carries this backend's runtime.
    fn wheel(self) -> &'static str {
        match self {
            Backend::Cpu => "mlx-cpu",
            Backend::Cuda => "mlx-cuda-12",
        }
    }

    /// The distribution name as pip spells it in `<name>-<version>.dist-info`.
    fn dist_info_name(self) -> &'static str {
        match self {
            Backend::Cpu => "mlx_cpu",
            Backend::Cuda => "mlx_cuda_12",
        }
    }

    const ALL: [Backend; 2] = [Backend::Cpu, Backend::Cuda];
}

/// What `setup` was asked for.
#[derive(Debug, Default)]
pub struct Options {
    /// `None`: keep the backend already installed, else CPU.
    pub backend: Option<Backend>,
}

impl Options {
    /// Parses `[--backend cpu|cuda]`.
    pub fn parse(args: &[String]) -> Result<Options> {
        let mut options = Options::default();
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let value = if arg == "--backend" {
                args.next()
                    .ok_or_else(|| Error::new("`--backend` needs a value: cpu or cuda"))?
                    .as_str()
            } else if let Some(value) = arg.strip_prefix("--backend=") {
                value
            } else {
                return Err(Error::new(format!(
                    "unexpected argument `{arg}` (usage: cargo xtask setup [--backend cpu|cuda])"
                )));
            };
            options.backend = Some(Backend::parse(value)?);
        }
        Ok(options)
    }
}

/// What each step sees.
pub struct Context {
    pub root: PathBuf,
    pub options: Options,
}

/// What a step did.
pub enum Outcome {
    /// Nothing to do: already there.
    Present(String),
    /// The step installed or changed something.
    Changed(String),
    /// The step does not apply here (another platform, an override).
    Skipped(String),
}

pub struct Step {
    pub name: &'static str,
    pub run: fn(&Context) -> Result<Outcome>,
}

/// The setup steps, in order. Add new ones here.
pub const STEPS: &[Step] = &[
    Step {
        name: "system packages",
        run: system_packages,
    },
    Step {
        name: "MLX runtime",
        run: mlx_runtime,
    },
    Step {
        name: "default model",
        run: crate::models::default_model,
    },
];

/// Runs every setup step, stopping at the first failure.
pub fn setup(options: Options) -> Result<()> {
    let started = Instant::now();
    let context = Context {
        root: util::repo_root(),
        options,
    };
    let mut changed = false;
    for step in STEPS {
        let outcome = (step.run)(&context)
            .map_err(|e| Error::new(format!("setup step `{}` failed: {e}", step.name)))?;
        match outcome {
            Outcome::Present(detail) => say!(TAG, "{}: present ({detail})", step.name),
            Outcome::Changed(detail) => {
                changed = true;
                say!(TAG, "{}: {detail}", step.name)
            }
            Outcome::Skipped(detail) => say!(TAG, "{}: skipped ({detail})", step.name),
        }
    }
    let elapsed = util::format_duration(started.elapsed());
    if changed {
        say!(TAG, "done ({elapsed})");
    } else {
        say!(TAG, "everything present ({elapsed})");
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Step: system packages

fn system_packages(_context: &Context) -> Result<Outcome> {
    if cfg!(target_os = "macos") {
        let mut note = String::from("macOS: Homebrew cmake is assumed");
        if !util::on_path("cmake") {
            note.push_str("; WARNING: cmake is not on PATH, run `brew install cmake`");
        }
        return Ok(Outcome::Skipped(note));
    }
    if !cfg!(target_os = "linux") {
        return Ok(Outcome::Skipped(
            "only Linux (Debian) and macOS are set up by xtask".into(),
        ));
    }
    if !util::on_path("dpkg-query") {
        return Ok(Outcome::Skipped(format!(
            "not a Debian system: make sure the equivalents of {} and pip for python3 \
             are installed",
            DEBIAN_PACKAGES.join(", ")
        )));
    }

    let mut missing = dpkg_missing(DEBIAN_PACKAGES);
    let pip_missing = !python_has_pip();
    if pip_missing {
        missing.push(PIP_PACKAGE.to_string());
    }
    let all = || {
        let mut names: Vec<&str> = DEBIAN_PACKAGES.to_vec();
        names.push(PIP_PACKAGE);
        names.join(", ")
    };
    if missing.is_empty() {
        return Ok(Outcome::Present(all()));
    }

    say!(TAG, "missing: {}", missing.join(", "));
    install_debian_packages(TAG, &missing)?;

    let still_missing = dpkg_missing(DEBIAN_PACKAGES);
    if !still_missing.is_empty() {
        return Err(Error::new(format!(
            "still not installed after apt-get: {}",
            still_missing.join(", ")
        )));
    }
    if pip_missing && !python_has_pip() {
        return Err(Error::new(
            "`python3 -m pip` still does not work after installing python3-pip; the \
             python3 on PATH is not Debian's. Give it pip (`python3 -m ensurepip --upgrade`) \
             or put Debian's /usr/bin/python3 first on PATH",
        ));
    }
    Ok(Outcome::Changed(format!(
        "installed {}",
        missing.join(", ")
    )))
}

/// The packages of `packages` that dpkg does not report as installed.
pub fn dpkg_missing(packages: &[&str]) -> Vec<String> {
    let mut args = vec!["-W", "--showformat=${Package} ${Status}\\n"];
    args.extend_from_slice(packages);
    // dpkg-query exits 1 when some package is unknown; its stdout still
    // lists the others.
    let listing = util::probe_any_status("dpkg-query", &args).unwrap_or_default();
    missing_from_dpkg_listing(&listing, packages)
}

fn missing_from_dpkg_listing(listing: &str, packages: &[&str]) -> Vec<String> {
    let installed: Vec<&str> = listing
        .lines()
        .filter_map(|line| line.split_once(' '))
        .filter(|(_, status)| status.trim() == "install ok installed")
        .map(|(name, _)| name.split(':').next().unwrap_or(name))
        .collect();
    packages
        .iter()
        .filter(|p| !installed.contains(p))
        .map(|p| p.to_string())
        .collect()
}

/// Whether `python3 -m pip` can run: pip is importable by the `python3` on
/// PATH. (Looking the module up without importing it is four times quicker
/// than `python3 -m pip --version`.)
pub fn python_has_pip() -> bool {
    util::probe(
        "python3",
        &[
            "-c",
            "import importlib.util, sys; sys.exit(importlib.util.find_spec('pip') is None)",
        ],
    )
    .is_some()
}

/// Installs Debian packages with apt-get when running as root; otherwise
/// fails with the command to run.
pub fn install_debian_packages(tag: &str, packages: &[String]) -> Result<()> {
    let list = packages.join(" ");
    if !util::is_root() {
        return Err(Error::new(format!(
            "missing Debian packages: {list}. Install them with\n\n    \
             sudo apt-get update && sudo apt-get install -y --no-install-recommends {list}\n\n\
             and run this again"
        )));
    }
    if !util::on_path("apt-get") {
        return Err(Error::new(format!(
            "missing Debian packages ({list}) and no apt-get on PATH to install them"
        )));
    }
    util::run(
        tag,
        Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .arg("update"),
    )?;
    util::run(
        tag,
        Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "--no-install-recommends"])
            .args(packages),
    )
}

// ---------------------------------------------------------------------------
// Step: MLX runtime

fn mlx_runtime(context: &Context) -> Result<Outcome> {
    if cfg!(target_os = "macos") {
        return Ok(Outcome::Skipped(
            "macOS: mlx-rs builds MLX with Metal itself".into(),
        ));
    }
    if !cfg!(target_os = "linux") {
        return Ok(Outcome::Skipped("only Linux uses the MLX wheel".into()));
    }

    if let Some(dir) = std::env::var_os("MLX_DIR").filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        return if mlx_dir_is_valid(&dir) {
            Ok(Outcome::Skipped(format!(
                "MLX_DIR={} is used instead of the wheel",
                dir.display()
            )))
        } else {
            Err(Error::new(format!(
                "MLX_DIR is set to {} but it holds neither lib/libmlx.so nor MLXConfig.cmake; \
                 point it at an MLX install prefix, or unset it to use the wheel that setup \
                 installs in {MLX_TARGET}",
                dir.display()
            )))
        };
    }

    let target = context.root.join(MLX_TARGET);
    let installed = installed_mlx(&target);
    let wanted = context
        .options
        .backend
        .or(installed.as_ref().map(|i| i.backend))
        .unwrap_or(Backend::Cpu);

    let reason = match &installed {
        Some(i) if i.backend == wanted && i.version == MLX_VERSION => {
            return Ok(Outcome::Present(format!(
                "{} {} in {MLX_TARGET}",
                wanted.wheel(),
                MLX_VERSION
            )));
        }
        Some(i) if i.backend != wanted => format!(
            "switching backend {} -> {}",
            i.backend.name(),
            wanted.name()
        ),
        Some(i) => format!(
            "{} {} is installed, {} is needed",
            i.backend.wheel(),
            i.version,
            MLX_VERSION
        ),
        None => "not installed".to_string(),
    };
    say!(
        TAG,
        "MLX runtime: {reason}; installing {}=={MLX_VERSION}",
        wanted.wheel()
    );
    install_wheel(&context.root, wanted, &target)?;
    Ok(Outcome::Changed(format!(
        "installed {} {} in {MLX_TARGET}",
        wanted.wheel(),
        MLX_VERSION
    )))
}

/// `$MLX_DIR` as build-support/ accepts it: an install prefix, or the folder
/// of MLXConfig.cmake.
fn mlx_dir_is_valid(dir: &Path) -> bool {
    dir.join("lib/libmlx.so").is_file()
        || dir.join("MLXConfig.cmake").is_file()
        || dir.join("share/cmake/MLX/MLXConfig.cmake").is_file()
}

#[derive(Debug, PartialEq)]
struct Installed {
    backend: Backend,
    version: String,
}

/// The MLX wheel in `target`, told by the library being there and by pip's
/// own record (`<dist>-<version>.dist-info`). `None` when absent, or when the
/// folder holds no single MLX record.
fn installed_mlx(target: &Path) -> Option<Installed> {
    if !target.join("mlx/lib/libmlx.so").is_file() {
        return None;
    }
    let names = fs::read_dir(target)
        .ok()?
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| entry.file_name().into_string().ok());
    installed_from_names(names)
}

fn installed_from_names(names: impl Iterator<Item = String>) -> Option<Installed> {
    let mut found = Vec::new();
    for name in names {
        let Some(stem) = name.strip_suffix(".dist-info") else {
            continue;
        };
        let Some((dist, version)) = stem.split_once('-') else {
            continue;
        };
        if let Some(backend) = Backend::ALL
            .into_iter()
            .find(|b| b.dist_info_name() == dist)
        {
            found.push(Installed {
                backend,
                version: version.to_string(),
            });
        }
    }
    if found.len() == 1 {
        found.pop()
    } else {
        None
    }
}

/// `pip install --target` into a scratch folder, then moves it in place, so
/// that an interrupted install never leaves a half-filled `.forge/mlx`.
fn install_wheel(root: &Path, backend: Backend, target: &Path) -> Result<()> {
    if !python_has_pip() {
        return Err(Error::new(
            "`python3 -m pip` does not work: install pip for python3 (Debian: python3-pip)",
        ));
    }
    let partial = root.join(".forge/mlx.partial");
    remove_dir_if_present(&partial)?;
    if let Some(parent) = partial.parent() {
        fs::create_dir_all(parent)
            .map_err(|e| Error::new(format!("could not create {}: {e}", parent.display())))?;
    }

    let mut pip = Command::new("python3");
    // pip warns about running as root; with --target it touches nothing of
    // the system's. (An environment variable: older pips ignore it.)
    pip.env("PIP_ROOT_USER_ACTION", "ignore")
        .args([
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-input",
            "--target",
        ])
        .arg(&partial);
    // The CPU wheel declares no dependencies (its BLAS/LAPACK come bundled);
    // the CUDA wheel may pull NVIDIA runtime wheels, so let pip resolve them.
    if backend == Backend::Cpu {
        pip.arg("--no-deps");
    }
    pip.arg(format!("{}=={MLX_VERSION}", backend.wheel()));
    util::run(TAG, &mut pip)?;

    if !partial.join("mlx/lib/libmlx.so").is_file() {
        return Err(Error::new(format!(
            "pip finished but {} holds no mlx/lib/libmlx.so",
            partial.display()
        )));
    }
    remove_dir_if_present(target)?;
    fs::rename(&partial, target).map_err(|e| {
        Error::new(format!(
            "could not move {} to {}: {e}",
            partial.display(),
            target.display()
        ))
    })
}

fn remove_dir_if_present(dir: &Path) -> Result<()> {
    if dir.exists() {
        fs::remove_dir_all(dir)
            .map_err(|e| Error::new(format!("could not remove {}: {e}", dir.display())))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn backend_option_forms() {
        assert_eq!(Options::parse(&[]).unwrap().backend, None);
        assert_eq!(
            Options::parse(&strings(&["--backend", "cuda"]))
                .unwrap()
                .backend,
            Some(Backend::Cuda)
        );
        assert_eq!(
            Options::parse(&strings(&["--backend=cpu"]))
                .unwrap()
                .backend,
            Some(Backend::Cpu)
        );
        assert!(Options::parse(&strings(&["--backend", "metal"])).is_err());
        assert!(Options::parse(&strings(&["--backend"])).is_err());
        assert!(Options::parse(&strings(&["--fast"])).is_err());
    }

    #[test]
    fn dpkg_listing() {
        let listing = "cmake install ok installed\n\
                       libclang-dev deinstall ok config-files\n\
                       libopenblas-dev:amd64 install ok installed\n";
        assert_eq!(
            missing_from_dpkg_listing(listing, &["cmake", "libclang-dev", "libopenblas-dev", "x"]),
            vec!["libclang-dev".to_string(), "x".to_string()]
        );
    }

    #[test]
    fn dist_info_tells_backend_and_version() {
        let names = strings(&["mlx", "mlx_cpu.libs", "mlx_cpu-0.32.2.dist-info"]);
        assert_eq!(
            installed_from_names(names.into_iter()),
            Some(Installed {
                backend: Backend::Cpu,
                version: "0.32.2".into()
            })
        );
        let names = strings(&[
            "mlx",
            "mlx_cuda_12-0.32.1.dist-info",
            "nvidia_cublas_cu12-12.9.dist-info",
        ]);
        assert_eq!(
            installed_from_names(names.into_iter()),
            Some(Installed {
                backend: Backend::Cuda,
                version: "0.32.1".into()
            })
        );
        let both = strings(&["mlx_cpu-0.32.2.dist-info", "mlx_cuda_12-0.32.2.dist-info"]);
        assert_eq!(installed_from_names(both.into_iter()), None);
        assert_eq!(installed_from_names(strings(&["mlx"]).into_iter()), None);
    }
}
