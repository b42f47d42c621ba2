use super::time::Clock;
use super::*;

const ALICE_FP: &str = "SHA256:ih6KZKdgxS4wmu4zYv06BjkpyC031OfMGfuJPnjI/rw";
const OTHER_FP: &str = "SHA256:WxnD+g3GmlUhNaMztXm7tBXHeASx6ackd2Sz4RQ+Ges";

fn at(s: &str) -> SystemTime {
    humantime::parse_rfc3339(s).unwrap()
}

fn log(text: &str) -> Vec<Record> {
    authlog::parse(text, &Clock::utc(at("2026-11-24T00:00:00Z")))
}

/// What an e2e run printed (sshd 9.2p1, LogLevel VERBOSE), with rsyslog's headers added.
fn sample() -> String {
    format!(
        r#"2026-11-23T13:00:01.100000+00:00 host keyward[201]: key served to sshd message_id="6b1c0b7f2a8e4f1e9d3a5c7e0f2b4d61" iam_user="alice" linux_user="alice" key_id="APKAD2TIZJ59PSNYDGB3" fingerprint="{ALICE_FP}" source="live" elapsed_ms=269
2026-11-23T13:00:01.300000+00:00 host keyward[202]: key served to sshd message_id="6b1c0b7f2a8e4f1e9d3a5c7e0f2b4d61" iam_user="alice" linux_user="alice" key_id="APKAD2TIZJ59PSNYDGB3" fingerprint="{ALICE_FP}" source="cache" elapsed_ms=192
2026-11-23T13:00:01.310000+00:00 host sshd[200]: Postponed publickey for alice from 127.0.0.1 port 54746 ssh2 [preauth]
2026-11-23T13:00:01.320000+00:00 host sshd[200]: Accepted publickey for alice from 127.0.0.1 port 54746 ssh2: ED25519 {ALICE_FP}
2026-11-23T13:00:01.400000+00:00 host sshd[200]: pam_unix(sshd:session): session opened for user alice(uid=2067132944) by (uid=0)
2026-11-23T13:00:02.000000+00:00 host sshd[200]: Disconnected from user alice 127.0.0.1 port 54746
2026-11-23T13:00:03.000000+00:00 host sshd[210]: Failed publickey for alice from 127.0.0.1 port 54752 ssh2: ED25519 {OTHER_FP}
2026-11-23T13:00:03.100000+00:00 host sshd[210]: Connection closed by authenticating user alice 127.0.0.1 port 54752 [preauth]
2026-11-23T13:00:04.000000+00:00 host sshd[220]: Invalid user nobodyhere from 127.0.0.1 port 54764
2026-11-23T13:00:04.100000+00:00 host sshd[220]: Connection closed by invalid user nobodyhere 127.0.0.1 port 54764 [preauth]
2026-11-23T13:00:05.000000+00:00 host keyward[230]: IAM user is in none of allowed_groups message_id="6b1c0b7f2a8e4f1e9d3a5c7e0f2b4d63" iam_user="erin" linux_user="erin"
2026-11-23T13:00:05.200000+00:00 host sshd[231]: Connection closed by authenticating user erin 10.0.0.9 port 40000 [preauth]
"#
    )
}

#[test]
fn accepted_login_gets_the_iam_user_and_key_id_of_the_key_keyward_served() {
    let s = sessions(&log(&sample()));
    let a = &s[0];
    assert_eq!(a.result, Verdict::Accepted);
    assert_eq!(a.time, at("2026-11-23T13:00:01.32Z"));
    assert_eq!(a.iam_user.as_deref(), Some("alice"));
    assert_eq!(a.linux_user, "alice");
    assert_eq!((a.from.as_str(), a.port), ("127.0.0.1", 54746));
    assert_eq!(a.key_id.as_deref(), Some("APKAD2TIZJ59PSNYDGB3"));
    assert_eq!(a.fingerprint.as_deref(), Some(ALICE_FP));
    // The nearest event before the verdict: the second lookup (with the signature) hit the cache.
    assert_eq!(a.key_source.as_deref(), Some("cache"));
}

#[test]
fn refused_attempts_are_one_row_per_connection_with_the_reason() {
    let s = sessions(&log(&sample()));
    assert_eq!(s.len(), 4, "{s:#?}");
    let wrong_key = &s[1];
    assert_eq!(wrong_key.result, Verdict::Refused);
    assert_eq!(wrong_key.port, 54752);
    assert_eq!(wrong_key.fingerprint.as_deref(), Some(OTHER_FP));
    assert_eq!(wrong_key.key_id, None);
    assert_eq!(
        wrong_key.reason.as_deref(),
        Some("keyward served no key matching it")
    );

    let stranger = &s[2];
    assert_eq!(stranger.linux_user, "nobodyhere");
    assert_eq!(stranger.iam_user, None);
    assert_eq!(
        stranger.reason.as_deref(),
        Some("no local account of that name")
    );

    let erin = &s[3];
    assert_eq!(erin.iam_user.as_deref(), Some("erin"));
    assert_eq!(erin.from, "10.0.0.9");
    assert_eq!(
        erin.reason.as_deref(),
        Some("IAM user is in none of allowed_groups")
    );
}

#[test]
fn a_key_served_for_another_linux_user_is_not_joined() {
    let text = format!(
        r#"2026-11-23T13:00:01+00:00 host keyward[1]: key served to sshd message_id="6b1c0b7f2a8e4f1e9d3a5c7e0f2b4d61" iam_user="bob" linux_user="bob" key_id="APKB" fingerprint="{ALICE_FP}" source="live"
2026-11-23T13:00:02+00:00 host sshd[2]: Accepted publickey for alice from 10.0.0.1 port 1 ssh2: ED25519 {ALICE_FP}
"#
    );
    let s = sessions(&log(&text));
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].iam_user, None);
    assert_eq!(s[0].key_id, None);
}

#[test]
fn a_key_served_long_before_is_not_joined() {
    let text = format!(
        r#"2026-11-23T12:00:00+00:00 host keyward[1]: key served to sshd message_id="6b1c0b7f2a8e4f1e9d3a5c7e0f2b4d61" iam_user="alice" linux_user="alice" key_id="APKA" fingerprint="{ALICE_FP}" source="live"
2026-11-23T13:00:00+00:00 host sshd[2]: Accepted publickey for alice from 10.0.0.1 port 1 ssh2: ED25519 {ALICE_FP}
"#
    );
    let s = sessions(&log(&text));
    assert_eq!(s[0].key_id, None);
}

#[test]
fn failed_key_then_accepted_key_on_one_connection_is_one_accepted_session() {
    let text = format!(
        r#"2026-11-23T13:00:01+00:00 host sshd[2]: Failed publickey for alice from 10.0.0.1 port 7 ssh2: ED25519 {OTHER_FP}
2026-11-23T13:00:02+00:00 host sshd[2]: Accepted publickey for alice from 10.0.0.1 port 7 ssh2: ED25519 {ALICE_FP}
"#
    );
    let s = sessions(&log(&text));
    assert_eq!(s.len(), 1, "{s:#?}");
    assert_eq!(s[0].result, Verdict::Accepted);
}

#[test]
fn records_out_of_order_are_joined_by_time() {
    let mut records = log(&sample());
    records.reverse();
    assert_eq!(sessions(&records), sessions(&log(&sample())));
}

#[test]
fn selection_by_iam_user_includes_unattributed_attempts_on_its_linux_name() {
    let s = sessions(&log(&sample()));
    let alice = Selection {
        iam_user: Some("alice".into()),
        linux_user: Some("alice".into()),
        since: None,
    };
    let kept: Vec<_> = s.iter().filter(|x| alice.keeps(x)).collect();
    assert_eq!(kept.len(), 2);
    assert!(kept.iter().all(|x| x.linux_user == "alice"));

    let since = Selection {
        since: Some(at("2026-11-23T13:00:04Z")),
        ..Selection::default()
    };
    assert_eq!(s.iter().filter(|x| since.keeps(x)).count(), 2);
}

#[test]
fn table_is_aligned_with_a_dash_for_unknowns() {
    let s = sessions(&log(&sample()));
    let t = table(&s);
    let lines: Vec<&str> = t.lines().collect();
    assert_eq!(lines.len(), 5);
    assert!(lines[0].starts_with("TIME "));
    assert!(lines[1].starts_with("2026-11-23T13:00:01Z  alice"));
    assert!(lines[1].contains("APKAD2TIZJ59PSNYDGB3"));
    assert!(lines[3].contains(" - "), "{}", lines[3]);
    // Every row's RESULT starts where the header's does.
    let result_col = lines[0].find("RESULT").unwrap();
    for l in &lines[1..] {
        assert!(
            l[result_col..].starts_with("accepted") || l[result_col..].starts_with("refused"),
            "{l}"
        );
    }
}

#[test]
fn json_has_rfc3339_times_and_lowercase_results() {
    let s = sessions(&log(&sample()));
    let v = serde_json::to_value(&s).unwrap();
    assert_eq!(v[0]["time"], "2026-11-23T13:00:01Z");
    assert_eq!(v[0]["result"], "accepted");
    assert_eq!(v[0]["iam_user"], "alice");
    assert_eq!(v[2]["iam_user"], serde_json::Value::Null);
}

#[test]
fn a_certificate_login_is_joined_to_the_iam_user_its_key_id_names() {
    // No keyward event: a certificate login asks keyward only for principals.
    let s = sessions(&log(&format!(
        "2026-11-23T13:00:01.320000+00:00 host sshd[200]: Accepted publickey for alice from \
         127.0.0.1 port 54746 ssh2: ED25519-CERT {ALICE_FP} ID keyward:alice.smith:AIDAEXAMPLE01:17 \
         (serial 17) CA ECDSA {OTHER_FP}\n\
         2026-11-23T13:00:02.320000+00:00 host sshd[201]: Accepted publickey for bob from \
         127.0.0.1 port 54747 ssh2: ED25519-CERT {ALICE_FP} ID someone-else (serial 3) CA ECDSA \
         {OTHER_FP}\n"
    )));
    assert_eq!(s.len(), 2, "{s:#?}");
    assert_eq!(s[0].iam_user.as_deref(), Some("alice.smith"));
    assert_eq!(
        s[0].key_id.as_deref(),
        Some("keyward:alice.smith:AIDAEXAMPLE01:17")
    );
    assert_eq!(s[0].key_source.as_deref(), Some("certificate"));
    // A key id keyward's issuer did not write names nobody.
    assert_eq!(s[1].iam_user, None);
    assert_eq!(s[1].key_id, None);
}
