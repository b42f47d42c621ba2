//! Who logged in with which IAM key: sshd's verdicts joined to keyward's audit events.
//!
//! sshd knows the connection (source address, Linux user, the fingerprint it accepted or
//! refused); `authorized-keys` knows the IAM side (IAM user, key id, live or cached). The join
//! is by Linux user and fingerprint, to the nearest keyward event before sshd's verdict. Both
//! come from the journal (`journalctl --output=json`) or from a syslog auth log; the parsers and
//! the join are pure functions over text, and nothing here reads a file or runs a command.
//! A line that is not an authentication event is skipped, never an error: logs hold everything.

pub mod authlog;
pub mod journal;
pub mod keyward;
pub mod sshd;
pub mod time;

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use serde::Serialize;

/// One parsed log entry, with the time the log gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub time: SystemTime,
    pub event: Event,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Sshd(SshdEvent),
    Keyward(KeywardEvent),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SshdKind {
    /// `Accepted METHOD for USER from ADDR port PORT ssh2[: TYPE FP]`
    Accepted,
    /// `Failed METHOD for USER from …` (publickey refusals appear at LogLevel VERBOSE, or at
    /// INFO once a connection has used half of MaxAuthTries)
    Failed,
    /// `Invalid user USER from …`: no local account of that name
    InvalidUser,
    /// The client left or was cut off before authenticating (`Connection closed by
    /// authenticating user …`, `Disconnecting … Too many authentication failures`)
    GaveUp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshdEvent {
    pub kind: SshdKind,
    pub user: String,
    pub addr: String,
    pub port: u16,
    pub method: Option<String>,
    pub key_type: Option<String>,
    pub fingerprint: Option<String>,
    /// A certificate's key id (`ID …` in sshd's line), as sshd logged it: unchecked.
    pub cert_id: Option<String>,
}

/// keyward's audit event kinds, one per `logging::message_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeywardKind {
    Served,
    KeyRejected,
    Refused,
    Unavailable,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeywardEvent {
    pub kind: KeywardKind,
    pub iam_user: Option<String>,
    pub linux_user: Option<String>,
    pub key_id: Option<String>,
    pub fingerprint: Option<String>,
    pub source: Option<String>,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Accepted,
    Refused,
}

impl Verdict {
    fn as_str(self) -> &'static str {
        match self {
            Verdict::Accepted => "accepted",
            Verdict::Refused => "refused",
        }
    }
}

/// One login attempt: a connection sshd let in, or one it did not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Session {
    #[serde(serialize_with = "rfc3339")]
    pub time: SystemTime,
    /// From keyward's event; none when keyward served no key for this attempt.
    pub iam_user: Option<String>,
    pub from: String,
    pub port: u16,
    pub linux_user: String,
    pub result: Verdict,
    pub method: Option<String>,
    pub fingerprint: Option<String>,
    pub key_id: Option<String>,
    /// Where keyward got the key: live, cache, stale or chain.
    pub key_source: Option<String>,
    /// Why a refused attempt was refused, when a log says.
    pub reason: Option<String>,
}

fn rfc3339<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_rfc3339_seconds(*t))
}

/// How long before sshd's verdict keyward's event may be: sshd's default LoginGraceTime, the
/// longest an unauthenticated connection lives.
pub const WINDOW: Duration = Duration::from_secs(120);
/// Two logs' clocks may disagree a little about which came first.
const SLACK: Duration = Duration::from_secs(2);

/// A connection that has not reached a verdict yet.
struct Attempt {
    start: SystemTime,
    user: String,
    method: Option<String>,
    fingerprint: Option<String>,
    invalid: bool,
}

/// Every login attempt in `records` (any order), oldest first.
pub fn sessions(records: &[Record]) -> Vec<Session> {
    let mut sorted: Vec<&Record> = records.iter().collect();
    sorted.sort_by_key(|r| r.time);
    let keyward: Vec<(SystemTime, &KeywardEvent)> = sorted
        .iter()
        .filter_map(|r| match &r.event {
            Event::Keyward(k) => Some((r.time, k)),
            Event::Sshd(_) => None,
        })
        .collect();

    let mut out = Vec::new();
    let mut open: HashMap<(String, u16), Attempt> = HashMap::new();
    for r in &sorted {
        let Event::Sshd(e) = &r.event else { continue };
        let key = (e.addr.clone(), e.port);
        match e.kind {
            SshdKind::Accepted => {
                open.remove(&key);
                out.push(accepted(r.time, e, &keyward));
            }
            SshdKind::Failed | SshdKind::InvalidUser => {
                let a = open.entry(key).or_insert_with(|| Attempt {
                    start: r.time,
                    user: e.user.clone(),
                    method: None,
                    fingerprint: None,
                    invalid: false,
                });
                a.invalid |= e.kind == SshdKind::InvalidUser;
                if e.method.is_some() {
                    a.method.clone_from(&e.method);
                }
                if e.fingerprint.is_some() {
                    a.fingerprint.clone_from(&e.fingerprint);
                }
            }
            SshdKind::GaveUp => {
                let a = open.remove(&key).unwrap_or(Attempt {
                    start: r.time,
                    user: e.user.clone(),
                    method: None,
                    fingerprint: None,
                    invalid: false,
                });
                out.push(refused(a, &e.addr, e.port, r.time, &keyward));
            }
        }
    }
    // Attempts the log shows no end of (still connecting, or the log was cut): refused so far.
    let mut rest: Vec<_> = open.into_iter().collect();
    rest.sort_by_key(|(_, a)| a.start);
    for ((addr, port), a) in rest {
        let end = a.start + WINDOW;
        out.push(refused(a, &addr, port, end, &keyward));
    }
    out.sort_by_key(|s| s.time);
    out
}

fn accepted(time: SystemTime, e: &SshdEvent, keyward: &[(SystemTime, &KeywardEvent)]) -> Session {
    let served = e.fingerprint.as_ref().and_then(|fp| {
        nearest_before(keyward, time, |k| {
            k.kind == KeywardKind::Served
                && k.linux_user.as_deref() == Some(e.user.as_str())
                && k.fingerprint.as_ref() == Some(fp)
        })
    });
    // A keyward certificate names its IAM user in its key id; sshd accepted it, so the CA
    // signed that id. Only ids exactly as the issuer writes them count.
    let certified = e
        .cert_id
        .as_deref()
        .and_then(|id| crate::keys::cert::parse_key_id(id).map(|(identity, _)| (id, identity)));
    let (iam_user, key_id, key_source) = match (served, certified) {
        (Some(k), _) => (k.iam_user.clone(), k.key_id.clone(), k.source.clone()),
        (None, Some((id, identity))) => (
            Some(identity.user_name),
            Some(id.to_owned()),
            Some("certificate".to_owned()),
        ),
        (None, None) => (None, None, None),
    };
    Session {
        time,
        iam_user,
        from: e.addr.clone(),
        port: e.port,
        linux_user: e.user.clone(),
        result: Verdict::Accepted,
        method: e.method.clone(),
        fingerprint: e.fingerprint.clone(),
        key_id,
        key_source,
        reason: None,
    }
}

fn refused(
    a: Attempt,
    addr: &str,
    port: u16,
    end: SystemTime,
    keyward: &[(SystemTime, &KeywardEvent)],
) -> Session {
    let for_user = |k: &KeywardEvent| k.linux_user.as_deref() == Some(a.user.as_str());
    // keyward said why (not allowed, IAM unreachable, key rejected) ...
    let refusal = nearest_before(keyward, end, |k| {
        k.kind != KeywardKind::Served && for_user(k)
    });
    // ... or served the key and sshd refused it anyway (a bad signature, another method
    // required).
    let served = a.fingerprint.as_ref().and_then(|fp| {
        nearest_before(keyward, end, |k| {
            k.kind == KeywardKind::Served && for_user(k) && k.fingerprint.as_ref() == Some(fp)
        })
    });
    let reason = if a.invalid {
        Some("no local account of that name".to_owned())
    } else if let Some(k) = refusal {
        Some(k.message.clone())
    } else if served.is_some() {
        Some("keyward served the key; sshd refused the login".to_owned())
    } else if a.fingerprint.is_some() {
        Some("keyward served no key matching it".to_owned())
    } else {
        None
    };
    let iam = refusal.or(served);
    Session {
        time: a.start,
        iam_user: iam.and_then(|k| k.iam_user.clone()),
        from: addr.to_owned(),
        port,
        linux_user: a.user,
        result: Verdict::Refused,
        method: a.method,
        fingerprint: a.fingerprint,
        key_id: served.and_then(|k| k.key_id.clone()),
        key_source: served.and_then(|k| k.source.clone()),
        reason,
    }
}

/// The latest event matching `want` in [`before` - WINDOW, `before` + SLACK].
fn nearest_before<'a>(
    keyward: &[(SystemTime, &'a KeywardEvent)],
    before: SystemTime,
    want: impl Fn(&KeywardEvent) -> bool,
) -> Option<&'a KeywardEvent> {
    keyward
        .iter()
        .rev()
        .filter(|(t, _)| *t <= before + SLACK && *t + WINDOW >= before)
        .find(|(_, k)| want(k))
        .map(|(_, k)| *k)
}

/// What to show.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub iam_user: Option<String>,
    /// The Linux name `iam_user` maps to, for attempts keyward logged nothing about.
    pub linux_user: Option<String>,
    pub since: Option<SystemTime>,
}

impl Selection {
    pub fn keeps(&self, s: &Session) -> bool {
        if self.since.is_some_and(|since| s.time < since) {
            return false;
        }
        match (&self.iam_user, &s.iam_user) {
            (None, _) => true,
            (Some(want), Some(got)) => want == got,
            (Some(_), None) => self.linux_user.as_deref() == Some(s.linux_user.as_str()),
        }
    }
}

/// An aligned table, one line per session, times in UTC.
pub fn table(sessions: &[Session]) -> String {
    let header = [
        "TIME",
        "IAM USER",
        "FROM",
        "LINUX USER",
        "RESULT",
        "KEY ID",
        "FINGERPRINT",
    ];
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_owned());
    let rows: Vec<[String; 7]> = sessions
        .iter()
        .map(|s| {
            [
                humantime::format_rfc3339_seconds(s.time).to_string(),
                dash(&s.iam_user),
                s.from.clone(),
                s.linux_user.escape_debug().to_string(),
                s.result.as_str().to_owned(),
                dash(&s.key_id),
                dash(&s.fingerprint),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[&str]| {
        let mut l = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                l.push_str(cell);
            } else {
                l.push_str(&format!("{cell:<w$}  "));
            }
        }
        l.push('\n');
        l
    };
    let mut out = line(&header);
    for row in &rows {
        out.push_str(&line(&row.each_ref().map(String::as_str)));
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests;
