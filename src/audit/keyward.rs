//! keyward's own audit events as text: the line tracing's fmt layer writes to stderr and syslog
//! when there is no journald, e.g.
//! `key served to sshd message_id="6b1c…61" iam_user="alice" linux_user="alice" key_id="APKA…"
//! fingerprint="SHA256:…" source="cache" elapsed_ms=12`, optionally preceded by the level.
//!
//! Only lines with a `message_id` are audit events; the rest is ignored, never an error.

use super::{KeywardEvent, KeywardKind};
use crate::logging::message_id;

/// One keyward log message (after the syslog header), as an audit event.
pub fn parse(message: &str) -> Option<KeywardEvent> {
    let message = message.trim();
    let message = ["ERROR ", "WARN ", "INFO ", "DEBUG ", "TRACE "]
        .iter()
        .find_map(|level| message.strip_prefix(level))
        .unwrap_or(message)
        .trim_start();
    let start = message.find("message_id=")?;
    let text = message[..start].trim_end();
    let mut fields = Fields::default();
    for (name, value) in pairs(&message[start..]) {
        fields.set(name, value);
    }
    fields.into_event(text.to_owned())
}

/// Fields as journald or the fmt layer name them (journald upper-cases them).
#[derive(Debug, Default)]
pub struct Fields {
    pub message_id: Option<String>,
    pub iam_user: Option<String>,
    pub linux_user: Option<String>,
    pub key_id: Option<String>,
    pub fingerprint: Option<String>,
    pub source: Option<String>,
}

impl Fields {
    pub fn set(&mut self, name: &str, value: String) {
        let slot = match name.to_ascii_lowercase().as_str() {
            "message_id" => &mut self.message_id,
            "iam_user" => &mut self.iam_user,
            "linux_user" => &mut self.linux_user,
            "key_id" => &mut self.key_id,
            "fingerprint" => &mut self.fingerprint,
            "source" => &mut self.source,
            _ => return,
        };
        *slot = Some(value);
    }

    pub fn into_event(self, message: String) -> Option<KeywardEvent> {
        let kind = match self.message_id.as_deref()? {
            message_id::KEY_SERVED => KeywardKind::Served,
            message_id::KEY_REJECTED => KeywardKind::KeyRejected,
            message_id::LOOKUP_REFUSED => KeywardKind::Refused,
            message_id::IAM_UNAVAILABLE => KeywardKind::Unavailable,
            _ => return None,
        };
        Some(KeywardEvent {
            kind,
            iam_user: self.iam_user,
            linux_user: self.linux_user,
            key_id: self.key_id,
            fingerprint: self.fingerprint,
            source: self.source,
            message,
        })
    }
}

/// `name=value` pairs; a value is a Rust-escaped quoted string (`%`-less string fields) or a
/// bare word (numbers, `%`-formatted values).
fn pairs(s: &str) -> Vec<(&str, String)> {
    let mut out = Vec::new();
    let mut rest = s.trim_start();
    while let Some((name, after)) = rest.split_once('=') {
        if name.is_empty() || !name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_') {
            break;
        }
        let (value, after) = match after.strip_prefix('"') {
            Some(quoted) => match unquote(quoted) {
                Some(v) => v,
                None => break,
            },
            None => {
                let end = after.find(' ').unwrap_or(after.len());
                (after[..end].to_owned(), &after[end..])
            }
        };
        out.push((name, value));
        rest = after.trim_start();
    }
    out
}

/// Reads a Debug-escaped string up to its closing quote; returns it and what follows.
fn unquote(s: &str) -> Option<(String, &str)> {
    let mut value = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((value, &s[i + 1..])),
            '\\' => match chars.next()?.1 {
                'n' => value.push('\n'),
                't' => value.push('\t'),
                'r' => value.push('\r'),
                '0' => value.push('\0'),
                other => value.push(other),
            },
            c => value.push(c),
        }
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    const SERVED: &str = r#" INFO key served to sshd message_id="6b1c0b7f2a8e4f1e9d3a5c7e0f2b4d61" iam_user="alice" linux_user="alice" key_id="APKAD2TIZJ59PSNYDGB3" fingerprint="SHA256:ih6KZKdgxS4wmu4zYv06BjkpyC031OfMGfuJPnjI/rw" source="live" elapsed_ms=269"#;

    #[test]
    fn served_line_from_stderr_gives_every_field() {
        // Verbatim from keyward authorized-keys under sshd (LogLevel DEBUG1) in the e2e harness.
        let e = parse(SERVED).unwrap();
        assert_eq!(e.kind, KeywardKind::Served);
        assert_eq!(e.iam_user.as_deref(), Some("alice"));
        assert_eq!(e.linux_user.as_deref(), Some("alice"));
        assert_eq!(e.key_id.as_deref(), Some("APKAD2TIZJ59PSNYDGB3"));
        assert_eq!(
            e.fingerprint.as_deref(),
            Some("SHA256:ih6KZKdgxS4wmu4zYv06BjkpyC031OfMGfuJPnjI/rw")
        );
        assert_eq!(e.source.as_deref(), Some("live"));
        assert_eq!(e.message, "key served to sshd");
    }

    #[test]
    fn syslog_line_has_no_level() {
        let e = parse(SERVED.trim_start().strip_prefix("INFO ").unwrap()).unwrap();
        assert_eq!(e.key_id.as_deref(), Some("APKAD2TIZJ59PSNYDGB3"));
    }

    #[test]
    fn refusal_keeps_its_reason_and_escaped_values() {
        let e = parse(
            r#"not looked up in IAM: a local account keyward did not create message_id="6b1c0b7f2a8e4f1e9d3a5c7e0f2b4d63" linux_user="ad\"min""#,
        )
        .unwrap();
        assert_eq!(e.kind, KeywardKind::Refused);
        assert_eq!(e.linux_user.as_deref(), Some("ad\"min"));
        assert_eq!(
            e.message,
            "not looked up in IAM: a local account keyward did not create"
        );
    }

    #[test]
    fn bare_values_and_unknown_fields() {
        let e = parse(
            r#" WARN IAM unreachable message_id="6b1c0b7f2a8e4f1e9d3a5c7e0f2b4d64" iam_user=bob linux_user=bob extra="x y""#,
        )
        .unwrap();
        assert_eq!(e.kind, KeywardKind::Unavailable);
        assert_eq!(e.iam_user.as_deref(), Some("bob"));
    }

    #[test]
    fn lines_without_an_audit_message_id_are_ignored() {
        assert!(parse(" INFO installed; nothing changed").is_none());
        assert!(parse(r#"sync done message_id="ffffffffffffffffffffffffffffffff""#).is_none());
        assert!(parse(r#"broken message_id="6b1c0b7f2a8e4f1e9d3a5c7e0f2b4d61"#).is_none());
    }
}
