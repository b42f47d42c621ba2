//! The journal as `journalctl --output=json` prints it: one JSON object per line. sshd's entries
//! are parsed from their MESSAGE; keyward's carry their fields natively, upper-cased by
//! tracing-journald (`IAM_USER`, `KEY_ID`, `FINGERPRINT`, …, no prefix: `with_field_prefix(None)`).
//!
//! Text in, records out: running journalctl is the caller's business.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::keyward::Fields;
use super::{sshd, Event, Record};

/// The journalctl matches for every entry `keyward audit` reads (same-field matches are ORed).
/// OpenSSH 9.8 and later log from `sshd-session`.
pub const MATCHES: [&str; 3] = [
    "SYSLOG_IDENTIFIER=sshd",
    "SYSLOG_IDENTIFIER=sshd-session",
    "SYSLOG_IDENTIFIER=keyward",
];

/// Every sshd and keyward audit record in journalctl's JSON output, in its order.
pub fn parse(text: &str) -> Vec<Record> {
    text.lines().filter_map(parse_entry).collect()
}

pub fn parse_entry(line: &str) -> Option<Record> {
    let entry: serde_json::Map<String, Value> = serde_json::from_str(line).ok()?;
    let field = |name: &str| entry.get(name).and_then(text);
    let micros: u64 = field("__REALTIME_TIMESTAMP")?.parse().ok()?;
    let time = UNIX_EPOCH.checked_add(Duration::from_micros(micros))?;
    let message = field("MESSAGE")?;
    let event = match field("SYSLOG_IDENTIFIER")?.as_str() {
        "sshd" | "sshd-session" => Event::Sshd(sshd::parse(&message)?),
        "keyward" => {
            let mut fields = Fields::default();
            for name in [
                "MESSAGE_ID",
                "IAM_USER",
                "LINUX_USER",
                "KEY_ID",
                "FINGERPRINT",
                "SOURCE",
            ] {
                if let Some(value) = field(name) {
                    fields.set(name, value);
                }
            }
            Event::Keyward(fields.into_event(message)?)
        }
        _ => return None,
    };
    Some(Record { time, event })
}

/// A field's text. journalctl prints a non-UTF-8 value as an array of bytes and a repeated
/// field as an array of values; the first value is taken.
fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Array(items) if items.iter().all(Value::is_u64) => {
            let bytes: Vec<u8> = items
                .iter()
                .filter_map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
                .collect();
            Some(String::from_utf8_lossy(&bytes).into_owned())
        }
        Value::Array(items) => items.first().and_then(text),
        _ => None,
    }
}

/// `--since` for journalctl: `@UNIX_SECONDS`, which every journalctl since systemd 195 accepts.
pub fn since_arg(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    format!("--since=@{secs}")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::audit::{KeywardKind, SshdKind};

    #[test]
    fn keyward_entry_with_native_fields() {
        let line = r#"{"__REALTIME_TIMESTAMP":"1795438801123456","_PID":"77","SYSLOG_IDENTIFIER":"keyward","MESSAGE":"key served to sshd","MESSAGE_ID":"6b1c0b7f2a8e4f1e9d3a5c7e0f2b4d61","IAM_USER":"alice","LINUX_USER":"alice","KEY_ID":"APKA1","FINGERPRINT":"SHA256:abc","SOURCE":"live","ELAPSED_MS":"12","PRIORITY":"5","TARGET":"keyward::cli::authorized_keys"}"#;
        let r = parse_entry(line).unwrap();
        assert_eq!(
            r.time,
            UNIX_EPOCH + Duration::from_micros(1_795_438_801_123_456)
        );
        let Event::Keyward(e) = r.event else {
            panic!("{r:?}")
        };
        assert_eq!(e.kind, KeywardKind::Served);
        assert_eq!(e.key_id.as_deref(), Some("APKA1"));
        assert_eq!(e.fingerprint.as_deref(), Some("SHA256:abc"));
        assert_eq!(e.message, "key served to sshd");
    }

    #[test]
    fn sshd_entry_parsed_from_its_message() {
        let line = r#"{"__REALTIME_TIMESTAMP":"1795438802000000","SYSLOG_IDENTIFIER":"sshd","_COMM":"sshd","MESSAGE":"Accepted publickey for alice from 10.0.0.7 port 5555 ssh2: ED25519 SHA256:abc"}"#;
        let Event::Sshd(e) = parse_entry(line).unwrap().event else {
            panic!()
        };
        assert_eq!(e.kind, SshdKind::Accepted);
        assert_eq!(e.addr, "10.0.0.7");
    }

    #[test]
    fn byte_array_message_is_decoded() {
        let msg: Vec<String> = "Invalid user x from 10.0.0.1 port 1"
            .bytes()
            .map(|b| b.to_string())
            .collect();
        let line = format!(
            r#"{{"__REALTIME_TIMESTAMP":"1","SYSLOG_IDENTIFIER":"sshd-session","MESSAGE":[{}]}}"#,
            msg.join(",")
        );
        let Event::Sshd(e) = parse_entry(&line).unwrap().event else {
            panic!()
        };
        assert_eq!(e.kind, SshdKind::InvalidUser);
    }

    #[test]
    fn entries_of_other_kinds_are_skipped() {
        let text = r#"{"__REALTIME_TIMESTAMP":"1","SYSLOG_IDENTIFIER":"keyward","MESSAGE":"installed"}
{"__REALTIME_TIMESTAMP":"1","SYSLOG_IDENTIFIER":"sshd","MESSAGE":"Server listening on :: port 22."}
{"__REALTIME_TIMESTAMP":"1","SYSLOG_IDENTIFIER":"CRON","MESSAGE":"Invalid user x from 10.0.0.1 port 1"}
not json
"#;
        assert!(parse(text).is_empty());
    }
}
