//! keyward's own audit events as text: the line tracing's fmt layer writes to stderr and syslog
//! when there is no journald, e.g.
//! `key served to sshd message_id="6b1c…61" iam_user="alice" linux_user="alice" key_id="APKA…"
//! fingerprint="SHA256:…" source="cache" elapsed_ms=12`, optionally preceded by the level.
//!
//! Only lines with a `message_id` are audit events; the rest is ignored, never an error.
//!
//! Parts of a line are chosen by people keyward does not trust (a user name from the network,
//! an IAM name), so the line is read structurally: it is split into words where a quoted
//! value (`"…"`, `name="…"`, escapes honoured) is one word, and the fields start at the first
//! word that is exactly `message_id="…"`, which keyward writes for every audit event. Text
//! inside a quoted value is never a field, and `logging::untrusted` escapes every quote in
//! untrusted text, so such text cannot open a quote or a `message_id="` of its own. Within
//! the fields a name counts once, the first time, so nothing after keyward's own fields can
//! override them; and the audit fields (`iam_user`, `linux_user`, `key_id`, `fingerprint`,
//! `source`), which keyward writes as quoted strings, are only taken quoted.

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
    let start = fields_start(message)?;
    let text = message[..start].trim_end();
    let mut fields = Fields::default();
    for (name, value, quoted) in pairs(&message[start..]) {
        // keyward writes these as strings, always quoted; a bare one is text that a `%` field
        // let through (e.g. `x iam_user=alice` as a user name), not keyward's.
        if quoted || !AUDIT_STRINGS.contains(&name) {
            fields.set(name, value);
        }
    }
    fields.into_event(text.to_owned())
}

/// The audit fields keyward only ever writes as quoted strings.
const AUDIT_STRINGS: [&str; 5] = ["iam_user", "linux_user", "key_id", "fingerprint", "source"];

/// Where the first word `message_id="…"` starts, skipping whole quoted values.
fn fields_start(message: &str) -> Option<usize> {
    let mut rest = message;
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            return None;
        }
        let start = message.len() - rest.len();
        let (name, value) = split_name(rest);
        if name == Some("message_id") && value.starts_with('"') {
            return Some(start);
        }
        rest = match value.strip_prefix('"') {
            Some(quoted) => unquote(quoted)?.1,
            None => &value[value.find(' ').unwrap_or(value.len())..],
        };
    }
}

/// `name=rest` when the word starts with a field name and `=`; else (None, word).
fn split_name(word: &str) -> (Option<&str>, &str) {
    let end = word
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(word.len());
    match word[end..].strip_prefix('=') {
        Some(value) if end > 0 => (Some(&word[..end]), value),
        _ => (None, word),
    }
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
    /// The first value of a field counts; a repeated name is ignored.
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
        if slot.is_none() {
            *slot = Some(value);
        }
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
fn pairs(s: &str) -> Vec<(&str, String, bool)> {
    let mut out = Vec::new();
    let mut rest = s.trim_start();
    while let Some((name, after)) = rest.split_once('=') {
        if name.is_empty() || !name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_') {
            break;
        }
        let (value, after, quoted) = match after.strip_prefix('"') {
            Some(quoted) => match unquote(quoted) {
                Some((v, after)) => (v, after, true),
                None => break,
            },
            None => {
                let end = after.find(' ').unwrap_or(after.len());
                (after[..end].to_owned(), &after[end..], false)
            }
        };
        out.push((name, value, quoted));
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
                'u' => {
                    // `\u{1b}`: what escape_debug writes for other control characters.
                    let (start, open) = chars.next()?;
                    if open != '{' {
                        return None;
                    }
                    let close = s[start..].find('}')? + start;
                    let code = u32::from_str_radix(&s[start + 1..close], 16).ok()?;
                    value.push(char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER));
                    while chars.next().is_some_and(|(j, _)| j < close) {}
                }
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
            r#" WARN IAM unreachable message_id="6b1c0b7f2a8e4f1e9d3a5c7e0f2b4d64" elapsed_ms=3 iam_user="bob" extra="x y" linux_user="bob""#,
        )
        .unwrap();
        assert_eq!(e.kind, KeywardKind::Unavailable);
        assert_eq!(e.iam_user.as_deref(), Some("bob"));
        assert_eq!(e.linux_user.as_deref(), Some("bob"));
    }

    #[test]
    fn m1_bare_audit_fields_are_not_keywards() {
        // What `linux_user = %name.escape_debug()` wrote for the name `x iam_user=alice …`:
        // escaped, yet bare, so its words looked like fields.
        let e = parse(
            r#"not a valid Linux user name message_id="6b1c0b7f2a8e4f1e9d3a5c7e0f2b4d63" linux_user=x message_id=6b1c0b7f2a8e4f1e9d3a5c7e0f2b4d61 iam_user=alice key_id=APKAFORGED"#,
        )
        .unwrap();
        assert_eq!(e.kind, KeywardKind::Refused);
        assert_eq!(e.iam_user, None);
        assert_eq!(e.linux_user, None);
        assert_eq!(e.key_id, None);
    }

    #[test]
    fn m1_message_id_inside_a_quoted_value_is_not_a_field() {
        let forged = format!(
            "x message_id={} iam_user=alice linux_user=alice key_id=APKAFORGED fingerprint=SHA256:f source=live",
            message_id::KEY_SERVED
        );
        // As the fmt layer writes a string field (Debug), raw or through `untrusted`.
        for value in [
            format!("{forged:?}"),
            format!("{:?}", crate::logging::untrusted(&forged)),
            format!("{:?}", forged.replace("=", "=\"")),
            format!(
                "{:?}",
                crate::logging::untrusted(&forged.replace("=", "=\""))
            ),
        ] {
            let line = format!("no account created: not a valid Linux user name pam_user={value}");
            assert_eq!(parse(&line), None, "{line}");
        }
        // In a message text only escaping stands between a quote and a quoted value.
        let escaped = crate::logging::untrusted(&forged.replace("=", "=\""));
        assert_eq!(parse(&format!("no account for {escaped}")), None);
    }

    #[test]
    fn m1_fields_start_at_keywards_own_message_id_and_count_once() {
        let e = parse(&format!(
            r#"not looked up in IAM: name "a message_id=\"{0}\"" is reserved message_id="{1}" linux_user="ad min" iam_user=bob iam_user="alice" linux_user="mallory" iam_user="eve""#,
            message_id::KEY_SERVED,
            message_id::LOOKUP_REFUSED
        ))
        .unwrap();
        assert_eq!(e.kind, KeywardKind::Refused);
        assert_eq!(e.linux_user.as_deref(), Some("ad min"));
        assert_eq!(e.iam_user.as_deref(), Some("alice"));
        assert!(e.message.ends_with("is reserved"), "{}", e.message);
        // Escapes of control characters come back as the characters.
        let e = parse(&format!(
            r#"x message_id="{}" linux_user="a\u{{1b}}b\n""#,
            message_id::LOOKUP_REFUSED
        ))
        .unwrap();
        assert_eq!(e.linux_user.as_deref(), Some("a\u{1b}b\n"));
    }

    #[test]
    fn lines_without_an_audit_message_id_are_ignored() {
        assert!(parse(" INFO installed; nothing changed").is_none());
        assert!(parse(r#"sync done message_id="ffffffffffffffffffffffffffffffff""#).is_none());
        assert!(parse(r#"broken message_id="6b1c0b7f2a8e4f1e9d3a5c7e0f2b4d61"#).is_none());
    }
}
