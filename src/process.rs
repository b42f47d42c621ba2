//! The one way keyward's host jobs run a program to completion: shadow-utils for accounts
//! (`sync`, the PAM hook, `rename-keymaker`), and `sshd`, `systemctl`, `kill` for `install`,
//! `uninstall` and `doctor` (through `install::system::System`, whose real adapter runs here).
//!
//! Invariants: a program is started with a fixed argument list, never through a shell, with
//! stdin closed; a failure is one typed [`CommandError`] that keeps the program, its exit
//! status and its own words (stderr, else stdout). The login-path helper that streams and
//! caps a chained command's output (`keys::chain`) is async and bounded, and stays there.

use std::io;
use std::process::{Command, Stdio};

/// What a finished command said.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CommandOutput {
    pub success: bool,
    /// The exit status; `None` when a signal ended the program (or a fake did not say).
    pub status: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl CommandOutput {
    /// The command's own words for a failure: stderr, else stdout, else "failed".
    pub fn complaint(&self) -> String {
        let text = if self.stderr.trim().is_empty() {
            self.stdout.trim()
        } else {
            self.stderr.trim()
        };
        if text.is_empty() {
            "failed without a message".into()
        } else {
            text.to_owned()
        }
    }

    /// Its stdout when it succeeded, else the failure as a [`CommandError`].
    pub fn checked(self, program: &str) -> Result<String, CommandError> {
        if self.success {
            Ok(self.stdout)
        } else {
            Err(CommandError::Failed {
                program: program.to_owned(),
                status: self.status,
                stderr: self.complaint(),
            })
        }
    }
}

/// A command that could not be started or did not succeed. Displays the command's own words
/// first, which is what an admin acts on, then the program and how it ended.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("cannot run {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: io::Error,
    },
    #[error("{stderr} ({program}, {})", ended(*.status))]
    Failed {
        program: String,
        /// The exit status; `None` when a signal ended it.
        status: Option<i32>,
        /// What it said on stderr (on stdout when stderr was empty), trimmed.
        stderr: String,
    },
}

fn ended(status: Option<i32>) -> String {
    match status {
        Some(code) => format!("exit {code}"),
        None => "killed by a signal".into(),
    }
}

/// Runs `cmd` with stdin closed and waits for it; `Err` only when it could not be started.
pub fn output(cmd: &mut Command) -> io::Result<CommandOutput> {
    let out = cmd.stdin(Stdio::null()).output()?;
    Ok(CommandOutput {
        success: out.status.success(),
        status: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// Runs `cmd` (stdin closed); `Ok` is its stdout when it succeeded.
pub fn run(cmd: &mut Command) -> Result<String, CommandError> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    match output(cmd) {
        Ok(out) => out.checked(&program),
        Err(source) => Err(CommandError::Spawn { program, source }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_keeps_the_program_its_status_and_its_own_words() {
        let e = run(Command::new("/bin/sh").args(["-c", "echo 'no such user' >&2; exit 6"]))
            .unwrap_err();
        assert_eq!(e.to_string(), "no such user (/bin/sh, exit 6)");
        assert!(matches!(
            e,
            CommandError::Failed {
                status: Some(6),
                ..
            }
        ));
    }

    #[test]
    fn success_is_stdout_and_stdin_is_closed() {
        // `cat` with a closed stdin ends at once with nothing to say.
        assert_eq!(run(&mut Command::new("/bin/cat")).unwrap(), "");
        assert_eq!(run(Command::new("/bin/echo").arg("hi")).unwrap(), "hi\n");
    }

    #[test]
    fn a_program_that_cannot_start_says_which() {
        let e = run(&mut Command::new("/nonexistent/keyward-test")).unwrap_err();
        assert!(e
            .to_string()
            .starts_with("cannot run /nonexistent/keyward-test: "));
    }

    #[test]
    fn a_silent_failure_says_so() {
        let out = CommandOutput {
            status: Some(1),
            ..CommandOutput::default()
        };
        assert_eq!(
            out.checked("visudo").unwrap_err().to_string(),
            "failed without a message (visudo, exit 1)"
        );
    }
}
