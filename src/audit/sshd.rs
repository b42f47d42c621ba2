//! sshd's own log messages about authentication, as OpenSSH words them (auth.c `auth_log`,
//! sshd.c, packet.c): the message text only, after the syslog or journal header is gone.
//!
//! Only the words sshd has printed since OpenSSH 7 are recognised; anything else is not an
//! authentication event and yields `None`, never an error: a log holds every kind of line.

use super::{SshdEvent, SshdKind};

/// One sshd message, e.g. `Accepted publickey for alice from 127.0.0.1 port 5555 ssh2: ED25519
/// SHA256:…` or `Connection closed by authenticating user alice 10.0.0.1 port 22 [preauth]`.
pub fn parse(message: &str) -> Option<SshdEvent> {
    let message = message.trim_end();
    let message = message.strip_suffix(" [preauth]").unwrap_or(message);
    if let Some(rest) = message.strip_prefix("Accepted ") {
        return auth_result(rest, SshdKind::Accepted);
    }
    if let Some(rest) = message.strip_prefix("Failed ") {
        return auth_result(rest, SshdKind::Failed);
    }
    if let Some(rest) = message.strip_prefix("Invalid user ") {
        // "Invalid user NAME from ADDR port PORT"
        let (user, addr, port) = user_from_addr_port(rest)?;
        return Some(event(SshdKind::InvalidUser, user, addr, port, None, None));
    }
    for prefix in [
        "Connection closed by ",
        "Disconnected from ",
        "Disconnecting ",
        "Connection reset by ",
    ] {
        if let Some(rest) = message.strip_prefix(prefix) {
            return gave_up(rest);
        }
    }
    None
}

/// `METHOD for [invalid user ]USER from ADDR port PORT ssh2[: TYPE FINGERPRINT]`
fn auth_result(rest: &str, kind: SshdKind) -> Option<SshdEvent> {
    let (method, rest) = rest.split_once(" for ")?;
    if method == "none" {
        // The client asking which methods exist: not an attempt.
        return None;
    }
    let (rest, key) = match rest.split_once(" ssh2") {
        Some((head, tail)) => (head, tail.strip_prefix(": ")),
        None => (rest, None),
    };
    let (key_type, fingerprint) = match key.and_then(|k| k.split_once(' ')) {
        Some((t, fp)) => (Some(t), fp.split(' ').next()),
        None => (None, None),
    };
    let (rest, invalid) = match rest.strip_prefix("invalid user ") {
        Some(r) => (r, true),
        None => (rest, false),
    };
    let (user, addr, port) = user_from_addr_port(rest)?;
    let kind = if invalid && kind == SshdKind::Failed {
        SshdKind::InvalidUser
    } else {
        kind
    };
    let mut e = event(kind, user, addr, port, fingerprint, key_type);
    e.method = Some(method.to_owned());
    e.cert_id = key.and_then(cert_id).map(str::to_owned);
    Some(e)
}

/// A certificate's key id in `TYPE-CERT FP ID KEY_ID (serial N) CA CATYPE CAFP` (OpenSSH's
/// `format_method_key`); `None` for a plain key. The id is the CA's words, not checked here.
fn cert_id(key: &str) -> Option<&str> {
    let (key_type, rest) = key.split_once(' ')?;
    if !key_type.ends_with("-CERT") {
        return None;
    }
    let (_, rest) = rest.split_once(" ID ")?;
    let (id, _) = rest.rsplit_once(" (serial ")?;
    Some(id)
}

/// After "Connection closed by", "Disconnected from", "Disconnecting": `authenticating user
/// USER ADDR port PORT[: reason]` or `invalid user USER ADDR port PORT`; other forms (`user` =
/// a logged-in session ending, a bare address = no user yet) are not authentication outcomes.
fn gave_up(rest: &str) -> Option<SshdEvent> {
    let rest = rest
        .strip_prefix("authenticating user ")
        .or_else(|| rest.strip_prefix("invalid user "))?;
    let rest = rest.split_once(": ").map_or(rest, |(head, _)| head);
    // USER ADDR port PORT: the name may hold spaces (it came from the network), the rest not.
    let (head, port) = rest.rsplit_once(" port ")?;
    let (user, addr) = head.rsplit_once(' ')?;
    let port = port.parse().ok()?;
    Some(event(SshdKind::GaveUp, user, addr, port, None, None))
}

/// `USER from ADDR port PORT`, split from the right: the name came from the network.
fn user_from_addr_port(s: &str) -> Option<(&str, &str, u16)> {
    let (head, port) = s.rsplit_once(" port ")?;
    let port = port.split([' ', ':']).next()?.parse().ok()?;
    let (user, addr) = head.rsplit_once(" from ")?;
    Some((user, addr, port))
}

fn event(
    kind: SshdKind,
    user: &str,
    addr: &str,
    port: u16,
    fingerprint: Option<&str>,
    key_type: Option<&str>,
) -> SshdEvent {
    SshdEvent {
        kind,
        user: user.to_owned(),
        addr: addr.to_owned(),
        port,
        method: None,
        key_type: key_type.map(str::to_owned),
        fingerprint: fingerprint
            .filter(|f| f.starts_with("SHA256:") || f.starts_with("MD5:"))
            .map(str::to_owned),
        cert_id: None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    const FP: &str = "SHA256:ih6KZKdgxS4wmu4zYv06BjkpyC031OfMGfuJPnjI/rw";

    #[test]
    fn accepted_publickey_gives_user_address_and_fingerprint() {
        // Verbatim from OpenSSH 9.2p1 (Debian 12) in the e2e namespace.
        let e = parse(&format!(
            "Accepted publickey for alice from 127.0.0.1 port 54746 ssh2: ED25519 {FP}"
        ))
        .unwrap();
        assert_eq!(e.kind, SshdKind::Accepted);
        assert_eq!(
            (e.user.as_str(), e.addr.as_str(), e.port),
            ("alice", "127.0.0.1", 54746)
        );
        assert_eq!(e.fingerprint.as_deref(), Some(FP));
        assert_eq!(e.key_type.as_deref(), Some("ED25519"));
        assert_eq!(e.method.as_deref(), Some("publickey"));
    }

    #[test]
    fn accepted_certificate_gives_its_key_id() {
        // OpenSSH's format_method_key for a certificate (auth.c).
        let e = parse(&format!(
            "Accepted publickey for alice from 127.0.0.1 port 54746 ssh2: ED25519-CERT {FP} ID \
             keyward:alice.smith:AIDAEXAMPLE01:17 (serial 17) CA ECDSA {FP}"
        ))
        .unwrap();
        assert_eq!(e.key_type.as_deref(), Some("ED25519-CERT"));
        assert_eq!(e.fingerprint.as_deref(), Some(FP));
        assert_eq!(
            e.cert_id.as_deref(),
            Some("keyward:alice.smith:AIDAEXAMPLE01:17")
        );
        let plain = parse(&format!(
            "Accepted publickey for alice from 127.0.0.1 port 1 ssh2: ED25519 {FP} ID x (serial 1)"
        ))
        .unwrap();
        assert_eq!(plain.cert_id, None);
    }

    #[test]
    fn accepted_rsa_key_with_ipv6_address() {
        let e = parse(&format!(
            "Accepted publickey for ec2-user from 2001:db8::7 port 40022 ssh2: RSA {FP}"
        ))
        .unwrap();
        assert_eq!(e.addr, "2001:db8::7");
        assert_eq!(e.user, "ec2-user");
    }

    #[test]
    fn accepted_password_has_no_fingerprint() {
        let e = parse("Accepted password for bob from 10.0.0.9 port 50000 ssh2").unwrap();
        assert_eq!(e.kind, SshdKind::Accepted);
        assert_eq!(e.fingerprint, None);
        assert_eq!(e.method.as_deref(), Some("password"));
    }

    #[test]
    fn failed_publickey_keeps_the_fingerprint_offered() {
        let e = parse(&format!(
            "Failed publickey for alice from 127.0.0.1 port 54752 ssh2: ED25519 {FP}"
        ))
        .unwrap();
        assert_eq!(e.kind, SshdKind::Failed);
        assert_eq!(e.fingerprint.as_deref(), Some(FP));
    }

    #[test]
    fn failed_for_invalid_user_is_an_invalid_user() {
        let e = parse(&format!(
            "Failed publickey for invalid user mallory from 192.0.2.1 port 1 ssh2: ED25519 {FP}"
        ))
        .unwrap();
        assert_eq!(e.kind, SshdKind::InvalidUser);
        assert_eq!(e.user, "mallory");
    }

    #[test]
    fn invalid_user_and_closing_lines() {
        let e = parse("Invalid user nobodyhere from 127.0.0.1 port 54764").unwrap();
        assert_eq!(
            (e.kind, e.user.as_str(), e.port),
            (SshdKind::InvalidUser, "nobodyhere", 54764)
        );
        let e =
            parse("Connection closed by authenticating user alice 127.0.0.1 port 54752 [preauth]")
                .unwrap();
        assert_eq!(
            (e.kind, e.user.as_str(), e.addr.as_str(), e.port),
            (SshdKind::GaveUp, "alice", "127.0.0.1", 54752)
        );
        let e =
            parse("Connection closed by invalid user nobodyhere 127.0.0.1 port 54764 [preauth]")
                .unwrap();
        assert_eq!(e.user, "nobodyhere");
        let e = parse(
            "Disconnecting authenticating user alice 10.1.2.3 port 600: Too many authentication failures [preauth]",
        )
        .unwrap();
        assert_eq!((e.kind, e.port), (SshdKind::GaveUp, 600));
    }

    #[test]
    fn a_name_with_spaces_from_the_network_stays_whole() {
        let e = parse("Invalid user a from b from 192.0.2.1 port 22").unwrap();
        assert_eq!(
            (e.user.as_str(), e.addr.as_str()),
            ("a from b", "192.0.2.1")
        );
    }

    #[test]
    fn lines_that_are_not_authentication_outcomes_are_ignored() {
        for line in [
            "Server listening on 127.0.0.1 port 22.",
            "Connection from 127.0.0.1 port 54746 on 127.0.0.1 port 22 rdomain \"\"",
            "Connection closed by 127.0.0.1 port 41584",
            "Disconnected from user alice 127.0.0.1 port 54746",
            "Postponed publickey for alice from 127.0.0.1 port 54746 ssh2 [preauth]",
            "Failed none for invalid user x from 127.0.0.1 port 1 ssh2",
            "pam_unix(sshd:session): session opened for user alice(uid=1000) by (uid=0)",
            &format!(
                "Accepted key ED25519 {FP} found at /usr/bin/keyward authorized-keys %u %f %k:1"
            ),
        ] {
            assert_eq!(parse(line), None, "{line}");
        }
    }
}
