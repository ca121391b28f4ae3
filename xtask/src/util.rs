//! Small helpers shared by the xtask commands: the error type, running
//! child processes with a printed command line, and time formatting.

use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

/// An xtask failure: a message for the person at the terminal.
#[derive(Debug)]
pub struct Error(String);

impl Error {
    pub fn new(message: impl Into<String>) -> Self {
        Error(message.into())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// Prints a progress line `[tag] message` (on stderr, so that the stdout of
/// the programs xtask runs stays clean).
#[macro_export]
macro_rules! say {
    ($tag:expr, $($arg:tt)*) => {
        eprintln!("[{}] {}", $tag, format_args!($($arg)*))
    };
}

/// The repository root: the parent of this crate's folder.
pub fn repo_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

/// The cargo that runs us (cargo sets `CARGO` for `cargo run`), else `cargo`.
pub fn cargo() -> Command {
    let program = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    Command::new(program)
}

/// A command line as a person would type it (arguments quoted when needed),
/// with any environment variables the command sets in front.
pub fn display(cmd: &Command) -> String {
    let mut words = Vec::new();
    for (key, value) in cmd.get_envs() {
        if let Some(value) = value {
            words.push(format!(
                "{}={}",
                key.to_string_lossy(),
                quote(value.to_string_lossy().as_ref())
            ));
        }
    }
    words.push(quote(&cmd.get_program().to_string_lossy()));
    words.extend(cmd.get_args().map(|a| quote(&a.to_string_lossy())));
    words.join(" ")
}

/// Quotes one shell word when it holds characters a shell would treat
/// specially.
pub fn quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%^".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

fn spawn_error(cmd: &Command, err: std::io::Error) -> Error {
    let program = cmd.get_program().to_string_lossy().into_owned();
    if err.kind() == std::io::ErrorKind::NotFound {
        Error::new(format!("`{program}` was not found on PATH"))
    } else {
        Error::new(format!("could not start `{}`: {err}", display(cmd)))
    }
}

/// Runs a command with inherited stdio after printing it; returns its exit
/// status (a failure to start it is an error).
pub fn status(tag: &str, cmd: &mut Command) -> Result<ExitStatus> {
    say!(tag, "$ {}", display(cmd));
    cmd.status().map_err(|e| spawn_error(cmd, e))
}

/// Runs a command like [`status`] and turns a non-zero exit into an error.
pub fn run(tag: &str, cmd: &mut Command) -> Result<()> {
    let exit = status(tag, cmd)?;
    if exit.success() {
        Ok(())
    } else {
        Err(Error::new(format!(
            "`{}` failed ({})",
            display(cmd),
            describe(exit)
        )))
    }
}

/// Runs a command silently and returns its stdout, or `None` when it could
/// not be started or exited non-zero. For quick checks.
pub fn probe<S: AsRef<OsStr>>(program: S, args: &[&str]) -> Option<String> {
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if output.status.success() {
        Some(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        None
    }
}

/// Like [`probe`], but returns stdout whatever the exit status (still
/// `None` when the program could not be started).
pub fn probe_any_status<S: AsRef<OsStr>>(program: S, args: &[&str]) -> Option<String> {
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    Some(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// "exit status 3", "killed by signal 9", ...
pub fn describe(exit: ExitStatus) -> String {
    if let Some(code) = exit.code() {
        return format!("exit status {code}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = exit.signal() {
            return format!("killed by signal {signal}");
        }
    }
    exit.to_string()
}

/// The exit code xtask should end with to pass on a child's exit status.
pub fn exit_code(exit: ExitStatus) -> u8 {
    match exit.code() {
        Some(0) => 0,
        Some(code) if (1..=255).contains(&code) => code as u8,
        Some(_) => 1,
        None => {
            #[cfg(unix)]
            {
                use std::os::unix::process::ExitStatusExt;
                if let Some(signal) = exit.signal() {
                    return (128 + signal.clamp(1, 127)) as u8;
                }
            }
            1
        }
    }
}

/// Whether a program is on PATH (looked up without starting it).
pub fn on_path(program: &str) -> bool {
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&path).any(|dir| dir.join(program).is_file())
}

/// The running user is root (Unix); false when that cannot be told.
pub fn is_root() -> bool {
    probe("id", &["-u"]).is_some_and(|uid| uid.trim() == "0")
}

/// `0.12s`, `42.3s`, `3m 05s`.
pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 10.0 {
        format!("{secs:.2}s")
    } else if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        let whole = d.as_secs();
        format!("{}m {:02}s", whole / 60, whole % 60)
    }
}

/// A path relative to the repository root when it lies inside it, for
/// messages.
pub fn shown(path: &Path) -> String {
    let root = repo_root();
    path.strip_prefix(&root)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_leaves_plain_words_alone() {
        assert_eq!(quote("mlx-cpu==0.32.2"), "mlx-cpu==0.32.2");
        assert_eq!(quote("--target"), "--target");
        assert_eq!(quote("${Status}"), "'${Status}'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote(""), "''");
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(format_duration(Duration::from_millis(120)), "0.12s");
        assert_eq!(format_duration(Duration::from_millis(42_340)), "42.3s");
        assert_eq!(format_duration(Duration::from_secs(185)), "3m 05s");
    }

    #[test]
    fn display_puts_env_first() {
        let mut cmd = Command::new("apt-get");
        cmd.env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y"]);
        assert_eq!(
            display(&cmd),
            "DEBIAN_FRONTEND=noninteractive apt-get install -y"
        );
    }
}
