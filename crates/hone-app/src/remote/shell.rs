//! Commands and files where a compute target is: on this machine, or on a login host reached
//! with `ssh`/`scp` (the user's own OpenSSH, keys and config; no password prompts).

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::AppError;

/// Where a target's commands run and its files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shell {
    /// This machine (a cluster whose login node is this host).
    Here,
    /// A host reached over SSH (`user@host` or a `Host` of `~/.ssh/config`), with another
    /// configuration file than `~/.ssh/config` when `config` is set (`ssh -F`).
    Ssh {
        host: String,
        config: Option<String>,
    },
}

/// `text` quoted for a POSIX shell.
pub fn quote(text: &str) -> String {
    if !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@%".contains(c))
    {
        return text.to_string();
    }
    format!("'{}'", text.replace('\'', r"'\''"))
}

fn io_error(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> AppError {
    let path = path.into();
    move |source| AppError::Io { path, source }
}

/// Copies model folder `from` into `to` (created) with the project's model-folder copy
/// (`runs::copy_files`: its files, and an ensemble's member folders).
fn copy_model_folder(from: &Path, to: &Path) -> Result<(), AppError> {
    std::fs::create_dir_all(to).map_err(io_error(to))?;
    crate::runs::copy_files(from, to).map_err(AppError::from)
}

impl Shell {
    /// The shell of a target reached with `ssh` (none: this machine), read with ssh
    /// configuration file `config` when one is given.
    pub fn new(ssh: Option<&str>, config: Option<&str>) -> Self {
        match ssh.map(str::trim).filter(|h| !h.is_empty()) {
            Some(host) => Shell::Ssh {
                host: host.to_string(),
                config: config.map(str::to_string),
            },
            None => Shell::Here,
        }
    }

    /// `ssh`/`scp`'s own options: batch mode (never a password prompt) and the configuration
    /// file.
    fn ssh_options(config: &Option<String>) -> Vec<String> {
        let mut options = vec!["-o".to_string(), "BatchMode=yes".to_string()];
        if let Some(file) = config {
            options.extend(["-F".to_string(), file.clone()]);
        }
        options
    }

    fn command(&self, program: &str, args: &[&str]) -> Command {
        match self {
            Shell::Here => {
                let mut c = Command::new(program);
                c.args(args);
                c
            }
            Shell::Ssh { host, config } => {
                let line = std::iter::once(program)
                    .chain(args.iter().copied())
                    .map(quote)
                    .collect::<Vec<_>>()
                    .join(" ");
                let mut c = Command::new("ssh");
                c.args(Self::ssh_options(config)).args([host, "--", &line]);
                c
            }
        }
    }

    /// What the target is called in messages.
    pub fn describe(&self) -> String {
        match self {
            Shell::Here => "this machine".into(),
            Shell::Ssh { host, .. } => host.clone(),
        }
    }

    /// Runs `program args` there; its standard output when it succeeds, an error with its
    /// standard error when it does not (or cannot start).
    pub fn run(&self, program: &str, args: &[&str]) -> Result<String, AppError> {
        Ok(String::from_utf8_lossy(&self.run_bytes(program, args)?).to_string())
    }

    /// [`Shell::run`], with standard output as bytes (files such as a database come back
    /// whole, not as text).
    pub fn run_bytes(&self, program: &str, args: &[&str]) -> Result<Vec<u8>, AppError> {
        let output = self
            .command(program, args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| {
                AppError::Invalid(format!(
                    "cannot run {program} on {}: {e}{}",
                    self.describe(),
                    match self {
                        Shell::Here => " (is it installed and on PATH?)",
                        Shell::Ssh { .. } => " (is ssh installed?)",
                    }
                ))
            })?;
        if !output.status.success() {
            let err = String::from_utf8_lossy(&output.stderr);
            return Err(AppError::Invalid(format!(
                "{program} failed on {} ({}): {}",
                self.describe(),
                output.status,
                err.trim()
            )));
        }
        Ok(output.stdout)
    }

    /// The bytes of file `path` from byte `offset` on; none when it does not exist (yet).
    pub fn read_from(&self, path: &str, offset: u64) -> Result<Vec<u8>, AppError> {
        match self {
            Shell::Here => {
                let mut file = match std::fs::File::open(path) {
                    Ok(f) => f,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                    Err(e) => return Err(io_error(path)(e)),
                };
                file.seek(SeekFrom::Start(offset)).map_err(io_error(path))?;
                let mut bytes = Vec::new();
                file.read_to_end(&mut bytes).map_err(io_error(path))?;
                Ok(bytes)
            }
            Shell::Ssh { .. } => {
                let script = format!(
                    "test -f {p} && tail -c +{from} {p} || true",
                    p = quote(path),
                    from = offset + 1
                );
                self.run_bytes("sh", &["-c", &script])
            }
        }
    }

    /// Writes `bytes` to file `path` there (its folder created).
    pub fn write(&self, path: &str, bytes: &[u8]) -> Result<(), AppError> {
        match self {
            Shell::Here => {
                if let Some(dir) = Path::new(path).parent() {
                    std::fs::create_dir_all(dir).map_err(io_error(dir))?;
                }
                std::fs::write(path, bytes).map_err(io_error(path))
            }
            Shell::Ssh { .. } => {
                let dir = Path::new(path)
                    .parent()
                    .map(|d| d.display().to_string())
                    .unwrap_or_else(|| ".".into());
                let script = format!("mkdir -p {} && cat > {}", quote(&dir), quote(path));
                let mut child = self
                    .command("sh", &["-c", &script])
                    .stdin(Stdio::piped())
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .map_err(|e| AppError::Invalid(format!("cannot run ssh: {e}")))?;
                if let Some(mut stdin) = child.stdin.take() {
                    stdin.write_all(bytes).map_err(io_error(path))?;
                }
                let output = child.wait_with_output().map_err(io_error(path))?;
                if !output.status.success() {
                    return Err(AppError::Invalid(format!(
                        "cannot write {path} on {}: {}",
                        self.describe(),
                        String::from_utf8_lossy(&output.stderr).trim()
                    )));
                }
                Ok(())
            }
        }
    }

    /// Whether `path` exists there.
    pub fn exists(&self, path: &str) -> Result<bool, AppError> {
        match self {
            Shell::Here => Ok(Path::new(path).exists()),
            Shell::Ssh { .. } => {
                let script = format!("test -e {} && echo yes || echo no", quote(path));
                Ok(self.run("sh", &["-c", &script])?.trim() == "yes")
            }
        }
    }

    fn scp(&self, config: &Option<String>, from: &str, to: &str) -> Result<(), AppError> {
        let output = Command::new("scp")
            .args(Self::ssh_options(config))
            .args(["-q", "-r", from, to])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| AppError::Invalid(format!("cannot run scp: {e}")))?;
        if !output.status.success() {
            return Err(AppError::Invalid(format!(
                "scp {from} {to} failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        Ok(())
    }

    /// Copies local model folder `from` to `to` there (which must not exist yet).
    pub fn put_dir(&self, from: &Path, to: &str) -> Result<(), AppError> {
        match self {
            Shell::Here => copy_model_folder(from, Path::new(to)),
            // scp speaks SFTP (OpenSSH 9): remote paths are not read by a shell, so unquoted.
            Shell::Ssh { host, config } => {
                if let Some(parent) = Path::new(to).parent() {
                    self.run("mkdir", &["-p", &parent.display().to_string()])?;
                }
                self.scp(config, &from.display().to_string(), &format!("{host}:{to}"))
            }
        }
    }

    /// Copies model folder `from` there to local `to` (which must not exist yet).
    pub fn get_dir(&self, from: &str, to: &Path) -> Result<(), AppError> {
        match self {
            Shell::Here => copy_model_folder(Path::new(from), to),
            Shell::Ssh { host, config } => {
                if let Some(parent) = to.parent() {
                    std::fs::create_dir_all(parent).map_err(io_error(parent))?;
                }
                self.scp(config, &format!("{host}:{from}"), &to.display().to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_keeps_plain_words_and_wraps_the_rest() {
        assert_eq!(quote("/srv/hone/run-1"), "/srv/hone/run-1");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("$(rm -rf /)"), "'$(rm -rf /)'");
    }

    #[test]
    fn here_reads_a_file_from_an_offset_and_a_missing_one_as_empty() {
        let dir = std::env::temp_dir().join(format!("hone-shell-{}", std::process::id()));
        let file = dir.join("events.jsonl");
        let shell = Shell::Here;
        shell
            .write(&file.display().to_string(), b"one\ntwo\n")
            .unwrap();
        assert_eq!(
            shell.read_from(&file.display().to_string(), 4).unwrap(),
            b"two\n"
        );
        assert!(shell
            .read_from(&dir.join("none").display().to_string(), 0)
            .unwrap()
            .is_empty());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
