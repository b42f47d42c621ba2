//! Logging: journald for host commands when its socket exists, stderr otherwise.
//!
//! stdout never carries logs: for `authorized-keys` it is the channel to sshd and must hold key
//! lines only. Audit events carry structured fields and a fixed journald MESSAGE_ID per kind, so
//! they can be queried (`journalctl MESSAGE_ID=...`) without parsing text.
//!
//! Text that someone other than root chose (a user name from the network, an IAM name, a
//! key comment, an error quoting either) goes into a log line only through [`untrusted`], and
//! only as a string field (`pam_user = untrusted(name)`), never into the message text: the
//! fmt layer quotes string fields, and escaped text holds no quote or control character of
//! its own, so it cannot end the value, start a forged `message_id="…"`, split the line or
//! drive a terminal. It is capped, so a 131 KB name costs a line, not a log.

use std::io::IsTerminal;
use std::path::Path;

use tracing_subscriber::prelude::*;
use tracing_subscriber::EnvFilter;

const JOURNALD_SOCKET: &str = "/run/systemd/journal/socket";

/// How many characters of untrusted text a log line keeps.
pub const UNTRUSTED_MAX_CHARS: usize = 64;

/// Untrusted text as a log line may carry it: every character escaped as Rust's
/// `escape_debug` does (quotes, backslashes, control and invisible characters), cut after
/// [`UNTRUSTED_MAX_CHARS`] characters with `…(N bytes)` saying how long it was.
pub fn untrusted(text: &str) -> String {
    capped(text, UNTRUSTED_MAX_CHARS, |c, out| {
        out.extend(c.escape_debug())
    })
}

/// `text` with each character written by `escape`, cut after `max` characters with
/// `…(N bytes)` saying how long it was: the one shape of every untrusted text keyward logs.
pub fn capped(text: &str, max: usize, escape: impl Fn(char, &mut String)) -> String {
    let mut out = String::new();
    for (n, c) in text.chars().enumerate() {
        if n == max {
            out.push_str(&format!("…({} bytes)", text.len()));
            break;
        }
        escape(c, &mut out);
    }
    out
}

/// MESSAGE_IDs of the audit events (stable: scripts and `keyward audit` query them).
pub mod message_id {
    pub const KEY_SERVED: &str = "6b1c0b7f2a8e4f1e9d3a5c7e0f2b4d61";
    pub const KEY_REJECTED: &str = "6b1c0b7f2a8e4f1e9d3a5c7e0f2b4d62";
    pub const LOOKUP_REFUSED: &str = "6b1c0b7f2a8e4f1e9d3a5c7e0f2b4d63";
    pub const IAM_UNAVAILABLE: &str = "6b1c0b7f2a8e4f1e9d3a5c7e0f2b4d64";
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Host commands run by sshd, PAM or systemd: journald when present.
    Host,
    /// Commands a person runs: always the terminal.
    Interactive,
    /// Run by pam_exec, whose stderr reaches the unauthenticated client: journald, else
    /// syslog, else nowhere. Never stderr: a log line would tell a stranger which IAM users
    /// exist.
    Pam,
}

/// Where the log of this process goes, so that the error ending a command is told once per
/// destination: never as a log line and again as a `keyward:` line on the same stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    target: Target,
    /// Log events are written to stderr.
    events_on_stderr: bool,
}

impl Report {
    /// Tells `message`, the error that ended the command: once in the log of a host command
    /// (journald or syslog, as `init` chose, with `message_id` when the error is an audit
    /// event), and once on stderr for whoever ran it, unless the log line is already there or
    /// stderr is the journal itself (a systemd service). Under PAM, never on stderr: the
    /// client would read it.
    pub fn fatal(self, message_id: Option<&'static str>, message: &str) {
        if self.target != Target::Interactive {
            tracing::error!(message_id, "{message}");
        }
        let on_stderr = match self.target {
            Target::Interactive => true,
            Target::Host => !self.events_on_stderr && !stderr_is_journal(),
            Target::Pam => false,
        };
        if on_stderr {
            eprintln!("keyward: {message}");
        }
    }
}

/// Context for an error that is also an audit event (a sync that changed nothing, say): the
/// one log line `Report::fatal` writes for it carries this MESSAGE_ID.
#[derive(Debug)]
pub struct Audited {
    pub message_id: &'static str,
    pub message: &'static str,
}

impl std::fmt::Display for Audited {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message)
    }
}

/// systemd connects a service's stderr to the journal and says so in `JOURNAL_STREAM`
/// (`DEV:INODE` of that stream).
fn stderr_is_journal() -> bool {
    use std::os::unix::fs::MetadataExt;
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(meta) = std::fs::metadata("/proc/self/fd/2") else {
        return false;
    };
    stream.to_str() == Some(&format!("{}:{}", meta.dev(), meta.ino()))
}

/// `KEYWARD_LOG` takes an env-filter directive (e.g. `debug`); `-v` means debug. The returned
/// `Report` tells the error that ends the command.
pub fn init(target: Target, verbose: bool) -> Report {
    let mut report = Report {
        target,
        events_on_stderr: false,
    };
    let default = if verbose {
        "warn,keyward=debug"
    } else {
        // The SDK's own warnings (e.g. no region from IMDS on a laptop) are noise next to
        // keyward's error that says what to do; -v or KEYWARD_LOG shows them.
        "warn,aws_config=error,keyward=info"
    };
    let filter = EnvFilter::try_from_env("KEYWARD_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    if target != Target::Interactive && Path::new(JOURNALD_SOCKET).exists() {
        if let Ok(journald) = tracing_journald::layer() {
            let journald = journald
                .with_field_prefix(None)
                .with_syslog_identifier("keyward".into());
            tracing_subscriber::registry()
                .with(filter)
                .with(journald)
                .init();
            return report;
        }
    }
    if target == Target::Pam {
        tracing_subscriber::fmt()
            .with_writer(Syslog)
            .with_env_filter(filter)
            .with_ansi(false)
            .with_target(false)
            .with_level(false)
            .without_time()
            .init();
        return report;
    }
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .without_time();
    // Without journald, host commands also log to syslog (authpriv): sshd discards an
    // AuthorizedKeysCommand's stderr below LogLevel DEBUG1, and the auth log is where
    // `keyward audit` finds their events on such hosts.
    let syslog = (target == Target::Host).then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(Syslog)
            .with_ansi(false)
            .with_target(false)
            .with_level(false)
            .without_time()
    });
    tracing_subscriber::registry()
        .with(filter)
        .with(stderr)
        .with(syslog)
        .init();
    report.events_on_stderr = true;
    report
}

/// One datagram per event to the local syslog socket (facility authpriv), for hosts without
/// journald. Nothing is written when there is no syslog either.
struct Syslog;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Syslog {
    type Writer = SyslogLine;

    fn make_writer(&'a self) -> SyslogLine {
        SyslogLine(Vec::new())
    }
}

struct SyslogLine(Vec<u8>);

impl std::io::Write for SyslogLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for SyslogLine {
    fn drop(&mut self) {
        // <86> = authpriv (10) * 8 + info (6).
        let text = String::from_utf8_lossy(&self.0);
        let line = format!("<86>keyward[{}]: {}", std::process::id(), text.trim_end());
        if let Ok(socket) = std::os::unix::net::UnixDatagram::unbound() {
            let _ = socket.send_to(line.as_bytes(), "/dev/log");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn m1_untrusted_text_is_capped_and_says_how_long_it_was() {
        let huge = "a".repeat(131_072);
        let shown = untrusted(&huge);
        assert_eq!(shown, format!("{}…(131072 bytes)", "a".repeat(64)));
        assert_eq!(untrusted(&"a".repeat(64)), "a".repeat(64));
        assert_eq!(untrusted("alice"), "alice");
        // Characters, not bytes: a multi-byte name is cut on a character boundary.
        let wide = "é".repeat(100);
        assert_eq!(untrusted(&wide), format!("{}…(200 bytes)", "é".repeat(64)));
    }

    #[test]
    fn m1_untrusted_text_has_no_quote_newline_or_escape_of_its_own() {
        let hostile = "x\" message_id=\"6b\"\niam_user=alice\r\u{1b}[31m\\";
        let shown = untrusted(hostile);
        assert_eq!(
            shown,
            r#"x\" message_id=\"6b\"\niam_user=alice\r\u{1b}[31m\\"#
        );
        // Every quote is escaped: none can end a quoted value or open one.
        let bare_quotes = shown
            .char_indices()
            .filter(|&(i, c)| c == '"' && !shown[..i].ends_with('\\'))
            .count();
        assert_eq!(bare_quotes, 0);
        assert!(!shown.chars().any(char::is_control));
    }
}
