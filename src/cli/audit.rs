//! `keyward audit [IAM_USER] [--since TIME] [--json] [--log FILE]`: who logged in, from where,
//! with which IAM key, and who was refused.
//!
//! Reads the journal (`journalctl --output=json`) when journald runs, else the syslog auth log;
//! the parsing and the join are `crate::audit`'s pure functions. It only reads logs: it never
//! asks IAM and never changes anything.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use anyhow::Context as _;

use super::{Context, Exit};
use crate::audit::{self, journal, time::Clock, Selection};
use crate::process;

const JOURNALD_SOCKET: &str = "/run/systemd/journal/socket";
/// Debian/Ubuntu, then RHEL/Amazon Linux.
const AUTH_LOGS: [&str; 2] = ["/var/log/auth.log", "/var/log/secure"];

#[derive(Debug, clap::Args)]
pub struct Audit {
    /// Only this IAM user's logins (and attempts on the Linux account it maps to)
    iam_user: Option<String>,
    /// Only logins since TIME: a duration ago ("2h", "7d") or an RFC 3339 time
    /// ("2026-11-23T13:00:00Z")
    #[arg(long, value_name = "TIME", value_parser = parse_since)]
    since: Option<SystemTime>,
    /// Print JSON instead of a table
    #[arg(long)]
    json: bool,
    /// Read this syslog auth log instead of the journal (repeatable; default without journald:
    /// /var/log/auth.log or /var/log/secure)
    #[arg(long = "log", value_name = "FILE")]
    logs: Vec<PathBuf>,
}

impl Audit {
    pub async fn run(self, ctx: &Context) -> anyhow::Result<Exit> {
        let (config, _) = ctx.load_config()?;
        let now = SystemTime::now();
        let (records, source) = if !self.logs.is_empty() {
            (read_logs(&self.logs, now)?, describe(&self.logs))
        } else if Path::new(JOURNALD_SOCKET).exists() {
            (read_journal(self.since)?, "the journal".to_owned())
        } else {
            let found: Vec<PathBuf> = AUTH_LOGS
                .iter()
                .flat_map(|p| [format!("{p}.1"), (*p).to_owned()])
                .map(PathBuf::from)
                .filter(|p| p.exists())
                .collect();
            if found.is_empty() {
                anyhow::bail!(
                    "no journald here and no auth log ({}): pass the log with --log FILE",
                    AUTH_LOGS.join(", ")
                );
            }
            (read_logs(&found, now)?, describe(&found))
        };

        let selection = Selection {
            linux_user: self
                .iam_user
                .as_deref()
                .and_then(|u| config.name_mapping.to_linux(u).ok()),
            iam_user: self.iam_user,
            since: self.since,
        };
        let sessions: Vec<_> = audit::sessions(&records)
            .into_iter()
            .filter(|s| selection.keeps(s))
            .collect();

        let mut out = std::io::stdout().lock();
        if self.json {
            let text = serde_json::to_string_pretty(&sessions)?;
            writeln!(out, "{text}")?;
        } else if sessions.is_empty() {
            eprintln!("no login attempts found in {source}");
        } else {
            out.write_all(audit::table(&sessions).as_bytes())?;
        }
        Ok(Exit::Ok)
    }
}

/// A `--since` value keyward cannot place in time.
#[derive(Debug, thiserror::Error)]
enum SinceError {
    #[error("{0} ago is before 1970")]
    BeforeEpoch(String),
    #[error("expected a duration (2h, 7d) or an RFC 3339 time (2026-11-23T13:00:00Z), got {0:?}")]
    Unreadable(String),
}

fn parse_since(s: &str) -> Result<SystemTime, SinceError> {
    if let Ok(ago) = humantime::parse_duration(s) {
        return SystemTime::now()
            .checked_sub(ago)
            .ok_or_else(|| SinceError::BeforeEpoch(s.to_owned()));
    }
    audit::time::parse_rfc3339(s).ok_or_else(|| SinceError::Unreadable(s.to_owned()))
}

fn describe(paths: &[PathBuf]) -> String {
    let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    names.join(", ")
}

fn read_logs(paths: &[PathBuf], now: SystemTime) -> anyhow::Result<Vec<audit::Record>> {
    let clock = Clock {
        now,
        utc_offset_secs: local_utc_offset(),
    };
    let mut records = Vec::new();
    for path in paths {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        // A log may hold a stray invalid byte (a hostile user name); keep the rest.
        records.extend(audit::authlog::parse(
            &String::from_utf8_lossy(&bytes),
            &clock,
        ));
    }
    Ok(records)
}

fn read_journal(since: Option<SystemTime>) -> anyhow::Result<Vec<audit::Record>> {
    let mut cmd = Command::new("journalctl");
    cmd.args(["--output=json", "--no-pager"]);
    if let Some(t) = since {
        // keyward's event may precede sshd's verdict by up to audit::WINDOW.
        cmd.arg(journal::since_arg(
            t.checked_sub(audit::WINDOW).unwrap_or(t),
        ));
    }
    cmd.args(journal::MATCHES);
    let out = process::output(&mut cmd)
        .context("cannot run journalctl (use --log FILE to read an auth log instead)")?;
    // "No journal files were opened due to insufficient permissions" and the like.
    let warnings = out.stderr.clone();
    let stdout = out.checked("journalctl")?;
    for line in warnings.lines().filter(|l| !l.trim().is_empty()) {
        eprintln!("journalctl: {line}");
    }
    Ok(journal::parse(&stdout))
}

/// This host's UTC offset in seconds (`date +%z`), for classic syslog stamps written in local
/// time; 0 (UTC, the EC2 default) when it cannot be told.
fn local_utc_offset() -> i64 {
    let Ok(text) = process::run(Command::new("date").arg("+%z")) else {
        return 0;
    };
    let t = text.trim();
    let sign = match t.as_bytes().first() {
        Some(b'-') => -1,
        Some(b'+') => 1,
        _ => return 0,
    };
    let h: i64 = t.get(1..3).and_then(|h| h.parse().ok()).unwrap_or(0);
    let m: i64 = t.get(3..5).and_then(|m| m.parse().ok()).unwrap_or(0);
    sign * (h * 3600 + m * 60)
}
