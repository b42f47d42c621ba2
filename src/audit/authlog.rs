//! The syslog auth log as text (Debian `/var/log/auth.log`, RHEL `/var/log/secure`): a header
//! (`2026-11-23T13:00:01.123456+00:00 host prog[pid]: ` from Debian 12's rsyslog, or the
//! classic `Nov 23 13:00:01 host prog[pid]: `) and sshd's or keyward's message.
//!
//! Text in, records out: the file is read by the caller.

use super::time::{parse_classic, parse_rfc3339, Clock};
use super::{keyward, sshd, Event, Record};

/// Every sshd and keyward audit record in an auth log, in file order.
pub fn parse(text: &str, clock: &Clock) -> Vec<Record> {
    text.lines().filter_map(|l| parse_line(l, clock)).collect()
}

pub fn parse_line(line: &str, clock: &Clock) -> Option<Record> {
    let (time, rest) = match line.split_once(' ') {
        Some((stamp, rest)) if stamp.contains('T') => (parse_rfc3339(stamp)?, rest),
        _ => (parse_classic(line.get(..15)?, clock)?, line.get(16..)?),
    };
    // "host prog[pid]: message"
    let (_host, rest) = rest.split_once(' ')?;
    let (program, message) = rest.split_once(": ")?;
    let name = program.split('[').next()?;
    let event = match name {
        "sshd" | "sshd-session" => Event::Sshd(sshd::parse(message)?),
        "keyward" => Event::Keyward(keyward::parse(message)?),
        _ => return None,
    };
    Some(Record { time, event })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::audit::{KeywardKind, SshdKind};
    use std::time::SystemTime;

    fn at(s: &str) -> SystemTime {
        humantime::parse_rfc3339(s).unwrap()
    }

    fn clock() -> Clock {
        Clock::utc(at("2026-11-24T00:00:00Z"))
    }

    #[test]
    fn debian12_rsyslog_line() {
        let r = parse_line(
            "2026-11-23T13:00:01.123456+00:00 ip-10-0-0-5 sshd[123]: Accepted publickey for alice from 127.0.0.1 port 5555 ssh2: ED25519 SHA256:abc",
            &clock(),
        )
        .unwrap();
        assert_eq!(r.time, at("2026-11-23T13:00:01.123456Z"));
        let Event::Sshd(e) = r.event else {
            panic!("not sshd: {r:?}")
        };
        assert_eq!(e.kind, SshdKind::Accepted);
        assert_eq!(e.fingerprint.as_deref(), Some("SHA256:abc"));
    }

    #[test]
    fn classic_line_and_sshd_session_program() {
        let r = parse_line(
            "Nov 23 13:00:01 host sshd-session[4242]: Connection closed by authenticating user alice 10.0.0.1 port 5555 [preauth]",
            &clock(),
        )
        .unwrap();
        assert_eq!(r.time, at("2026-11-23T13:00:01Z"));
        assert!(matches!(r.event, Event::Sshd(ref e) if e.kind == SshdKind::GaveUp));
        let r = parse_line(
            "Nov  3 09:05:07 host sshd[1]: Invalid user x from 10.0.0.1 port 1",
            &clock(),
        )
        .unwrap();
        assert_eq!(r.time, at("2026-11-03T09:05:07Z"));
    }

    #[test]
    fn keyward_syslog_line() {
        let r = parse_line(
            r#"2026-11-23T13:00:00.900000+00:00 host keyward[77]: key served to sshd message_id="6b1c0b7f2a8e4f1e9d3a5c7e0f2b4d61" iam_user="alice" linux_user="alice" key_id="APKA1" fingerprint="SHA256:abc" source="cache" elapsed_ms=3"#,
            &clock(),
        )
        .unwrap();
        let Event::Keyward(e) = r.event else {
            panic!("not keyward: {r:?}")
        };
        assert_eq!(e.kind, KeywardKind::Served);
        assert_eq!(e.source.as_deref(), Some("cache"));
    }

    #[test]
    fn other_programs_and_garbage_are_skipped() {
        let text = "\
2026-11-23T13:00:01+00:00 host CRON[9]: pam_unix(cron:session): session opened for user root
2026-11-23T13:00:01+00:00 host sudo: alice : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/bin/true

not a log line at all
2026-11-23T13:00:01+00:00 host sshd[1]: Server listening on 0.0.0.0 port 22.
2026-11-23T13:00:02+00:00 host sshd[2]: Invalid user x from 10.0.0.1 port 1
";
        let records = parse(text, &clock());
        assert_eq!(records.len(), 1);
    }
}
