//! `keyward audit --log FILE`: the real binary on generated auth logs (Debian 12 rsyslog and
//! classic RHEL `/var/log/secure` headers), times relative to now so `--since` is exercised.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, SystemTime};

const BIN: &str = env!("CARGO_BIN_EXE_keyward");
const ALICE_FP: &str = "SHA256:ih6KZKdgxS4wmu4zYv06BjkpyC031OfMGfuJPnjI/rw";
const BOB_FP: &str = "SHA256:WxnD+g3GmlUhNaMztXm7tBXHeASx6ackd2Sz4RQ+Ges";
const SERVED: &str = "6b1c0b7f2a8e4f1e9d3a5c7e0f2b4d61";
const REFUSED: &str = "6b1c0b7f2a8e4f1e9d3a5c7e0f2b4d63";

/// Header styles of the two syslog layouts keyward reads.
#[derive(Clone, Copy)]
enum Style {
    /// Debian 12 rsyslog: `2026-11-23T13:00:01.123456+00:00 host prog[pid]: `
    Rfc3339,
    /// RHEL /var/log/secure: `Nov 23 13:00:01 host prog[pid]: ` (local time, here UTC)
    Classic,
}

fn stamp(t: SystemTime, style: Style) -> String {
    let utc = humantime::format_rfc3339_micros(t).to_string();
    match style {
        Style::Rfc3339 => utc.replace('Z', "+00:00"),
        Style::Classic => {
            const MONTHS: [&str; 12] = [
                "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
            ];
            let month: usize = utc[5..7].parse().unwrap();
            let day: u32 = utc[8..10].parse().unwrap();
            format!("{} {day:>2} {}", MONTHS[month - 1], &utc[11..19])
        }
    }
}

/// An auth log: alice logs in (2 h ago and 10 min ago), bob's key is refused, erin is not
/// allowed, a stranger probes; with cron noise in between.
fn auth_log(style: Style) -> String {
    let now = SystemTime::now();
    let ago = |secs: u64| now - Duration::from_secs(secs);
    let line = |t: SystemTime, prog: &str, msg: &str| {
        format!("{} ip-10-0-0-5 {prog}: {msg}\n", stamp(t, style))
    };
    let served = |iam: &str, key: &str, fp: &str, source: &str| {
        format!(
            r#"key served to sshd message_id="{SERVED}" iam_user="{iam}" linux_user="{iam}" key_id="{key}" fingerprint="{fp}" source="{source}" elapsed_ms=12"#
        )
    };
    let mut log = String::new();
    log += &line(
        ago(7201),
        "keyward[100]",
        &served("alice", "APKAALICE1", ALICE_FP, "live"),
    );
    log += &line(
        ago(7200),
        "sshd[99]",
        &format!(
            "Accepted publickey for alice from 203.0.113.7 port 50001 ssh2: ED25519 {ALICE_FP}"
        ),
    );
    log += &line(
        ago(7100),
        "CRON[5]",
        "pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)",
    );
    log += &line(
        ago(601),
        "keyward[200]",
        &served("alice", "APKAALICE1", ALICE_FP, "cache"),
    );
    log += &line(
        ago(600),
        "sshd[199]",
        &format!(
            "Accepted publickey for alice from 198.51.100.2 port 40002 ssh2: ED25519 {ALICE_FP}"
        ),
    );
    log += &line(
        ago(500),
        "sshd[299]",
        &format!("Failed publickey for bob from 192.0.2.50 port 33333 ssh2: ED25519 {BOB_FP}"),
    );
    log += &line(
        ago(499),
        "sshd[299]",
        "Connection closed by authenticating user bob 192.0.2.50 port 33333 [preauth]",
    );
    log += &line(
        ago(401),
        "keyward[400]",
        &format!(
            r#"IAM user is in none of allowed_groups message_id="{REFUSED}" iam_user="erin" linux_user="erin""#
        ),
    );
    log += &line(
        ago(400),
        "sshd[399]",
        "Connection closed by authenticating user erin 192.0.2.60 port 44444 [preauth]",
    );
    log += &line(
        ago(300),
        "sshd[499]",
        "Invalid user admin from 192.0.2.99 port 55555",
    );
    log += &line(
        ago(299),
        "sshd[499]",
        "Connection closed by invalid user admin 192.0.2.99 port 55555 [preauth]",
    );
    log
}

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("keyward.toml"),
            "allowed_groups = [\"ops\"]\n",
        )
        .unwrap();
        Fixture { dir }
    }

    fn log(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn audit(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .arg("--config")
            .arg(self.dir.path().join("keyward.toml"))
            .arg("audit")
            .args(args)
            .env_remove("KEYWARD_LOG")
            .env_remove("KEYWARD_CONFIG")
            .env("TZ", "UTC")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }
}

fn stdout(o: &Output) -> String {
    assert!(
        o.status.success(),
        "keyward audit failed ({}): {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn json(o: &Output) -> Vec<serde_json::Value> {
    serde_json::from_str(&stdout(o)).unwrap()
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn table_lists_every_attempt_with_iam_user_key_id_and_verdict() {
    let f = Fixture::new();
    let log = f.log("auth.log", &auth_log(Style::Rfc3339));
    let out = stdout(&f.audit(&["--log", path(&log)]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 6, "{out}");
    for col in [
        "TIME",
        "IAM USER",
        "FROM",
        "LINUX USER",
        "RESULT",
        "KEY ID",
        "FINGERPRINT",
    ] {
        assert!(lines[0].contains(col), "no {col} column: {}", lines[0]);
    }
    let result = lines[0].find("RESULT").unwrap();
    let verdicts: Vec<&str> = lines[1..]
        .iter()
        .map(|l| l[result..].split(' ').next().unwrap())
        .collect();
    assert_eq!(
        verdicts,
        ["accepted", "accepted", "refused", "refused", "refused"]
    );
    assert!(lines[1].contains("alice") && lines[1].contains("203.0.113.7"));
    assert!(lines[1].contains("APKAALICE1") && lines[1].ends_with(ALICE_FP));
    assert!(lines[2].contains("198.51.100.2"));
    assert!(lines[3].contains("bob") && lines[3].ends_with(BOB_FP));
    assert!(lines[4].contains("erin") && lines[4].contains("192.0.2.60"));
    assert!(lines[5].contains("admin") && lines[5].contains("192.0.2.99"));
}

#[test]
fn iam_user_and_since_select_sessions() {
    let f = Fixture::new();
    let log = f.log("auth.log", &auth_log(Style::Rfc3339));
    let alice = json(&f.audit(&["alice", "--log", path(&log), "--json"]));
    assert_eq!(alice.len(), 2, "{alice:#?}");
    for s in &alice {
        assert_eq!(s["iam_user"], "alice");
        assert_eq!(s["linux_user"], "alice");
        assert_eq!(s["result"], "accepted");
        assert_eq!(s["key_id"], "APKAALICE1");
        assert_eq!(s["fingerprint"], ALICE_FP);
    }
    assert_eq!(alice[0]["from"], "203.0.113.7");
    assert_eq!(alice[0]["key_source"], "live");
    assert_eq!(alice[1]["key_source"], "cache");

    let recent = json(&f.audit(&["alice", "--log", path(&log), "--json", "--since", "1h"]));
    assert_eq!(recent.len(), 1);
    assert_eq!(recent[0]["from"], "198.51.100.2");

    // bob's refusal is his even though keyward logged nothing for it: the Linux name maps to him.
    let bob = json(&f.audit(&["bob", "--log", path(&log), "--json"]));
    assert_eq!(bob.len(), 1);
    assert_eq!(bob[0]["result"], "refused");
    assert_eq!(bob[0]["reason"], "keyward served no key matching it");

    let erin = json(&f.audit(&["erin", "--log", path(&log), "--json"]));
    assert_eq!(erin[0]["reason"], "IAM user is in none of allowed_groups");
}

#[test]
fn since_takes_an_rfc3339_time() {
    let f = Fixture::new();
    let log = f.log("auth.log", &auth_log(Style::Rfc3339));
    let cut =
        humantime::format_rfc3339_seconds(SystemTime::now() - Duration::from_secs(450)).to_string();
    let got = json(&f.audit(&["--log", path(&log), "--json", "--since", &cut]));
    let users: Vec<&str> = got
        .iter()
        .map(|s| s["linux_user"].as_str().unwrap())
        .collect();
    assert_eq!(users, ["erin", "admin"]);
}

#[test]
fn classic_rhel_secure_log_gives_the_same_sessions() {
    let f = Fixture::new();
    let modern = f.log("auth.log", &auth_log(Style::Rfc3339));
    let classic = f.log("secure", &auth_log(Style::Classic));
    let a = json(&f.audit(&["--log", path(&modern), "--json"]));
    let b = json(&f.audit(&["--log", path(&classic), "--json"]));
    assert_eq!(a.len(), 5);
    assert_eq!(a, b);
}

#[test]
fn several_logs_are_read_together() {
    let f = Fixture::new();
    let text = auth_log(Style::Rfc3339);
    let lines: Vec<&str> = text.lines().collect();
    let (older, newer) = lines.split_at(lines.len() / 2);
    let old = f.log("auth.log.1", &(older.join("\n") + "\n"));
    let new = f.log("auth.log", &(newer.join("\n") + "\n"));
    let got = json(&f.audit(&["--log", path(&old), "--log", path(&new), "--json"]));
    assert_eq!(got.len(), 5);
}

#[test]
fn empty_log_says_so_on_stderr_and_prints_nothing() {
    let f = Fixture::new();
    let log = f.log("auth.log", "");
    let o = f.audit(&["--log", path(&log)]);
    assert_eq!(stdout(&o), "");
    assert!(String::from_utf8_lossy(&o.stderr).contains("no login attempts found"));
    assert_eq!(json(&f.audit(&["--log", path(&log), "--json"])).len(), 0);
}

#[test]
fn bad_since_is_a_usage_error_and_a_missing_log_an_error() {
    let f = Fixture::new();
    let log = f.log("auth.log", "");
    let o = f.audit(&["--log", path(&log), "--since", "yesterday-ish"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("RFC 3339"));
    let missing = f.dir.path().join("nope.log");
    let o = f.audit(&["--log", path(&missing)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("nope.log"));
}

/// M1: a client chose this user name; the pam hook logged it inside `pam_user="…"` (as
/// keyward's fmt layer writes a string field, before and after `logging::untrusted`), and a
/// later name smuggled a whole field list into a bare value. None of it is an audit event.
#[test]
fn m1_a_forged_message_id_inside_a_logged_name_is_not_an_event() {
    let now = SystemTime::now();
    let ago = |secs: u64| now - Duration::from_secs(secs);
    let line = |t: SystemTime, prog: &str, msg: &str| {
        format!("{} ip-10-0-0-5 {prog}: {msg}\n", stamp(t, Style::Rfc3339))
    };
    const MALLORY_FP: &str = "SHA256:mallorysownkeymallorysownkeymallorysownke";
    let forged = format!(
        "x message_id={SERVED} iam_user=alice linux_user=mallory key_id=APKAALICE1 fingerprint={MALLORY_FP} source=live"
    );
    let mut log = String::new();
    // keyward really served mallory's own key ...
    log += &line(
        ago(30),
        "keyward[100]",
        &format!(
            r#"key served to sshd message_id="{SERVED}" iam_user="mallory" linux_user="mallory" key_id="APKAMALLORY" fingerprint="{MALLORY_FP}" source="live" elapsed_ms=12"#
        ),
    );
    // ... then mallory's probes with hostile names: inside a quoted value as today's fmt layer
    // writes it, with quotes of its own (escaped), and after `untrusted` (escaped twice) ...
    log += &line(
        ago(25),
        "keyward[101]",
        &format!(r#"no account created: not a valid Linux user name pam_user="{forged}""#),
    );
    log += &line(
        ago(24),
        "keyward[102]",
        &format!(
            r#"no account created: not a valid Linux user name pam_user="x\" message_id=\"{SERVED}\" iam_user=\"alice\" linux_user=\"mallory\" key_id=\"APKAALICE1\" fingerprint=\"{MALLORY_FP}\" source=\"live""#
        ),
    );
    log += &line(
        ago(23),
        "keyward[103]",
        &format!(
            r#"no account created: not a valid Linux user name pam_user="x\\\" message_id=\\\"{SERVED}\\\" iam_user=\\\"alice\\\" linux_user=\\\"mallory\\\" key_id=\\\"APKAALICE1\\\" fingerprint=\\\"{MALLORY_FP}\\\" source=\\\"live""#
        ),
    );
    // ... and in a message text, where only escaping keeps a quote from being a quote.
    log += &line(
        ago(22),
        "keyward[104]",
        &format!(
            r#"no account created for x\" message_id=\"{SERVED}\" iam_user=\"alice\" linux_user=\"mallory\" key_id=\"APKAALICE1\" fingerprint=\"{MALLORY_FP}\""#
        ),
    );
    log += &line(
        ago(20),
        "sshd[99]",
        &format!("Accepted publickey for mallory from 203.0.113.66 port 50666 ssh2: ED25519 {MALLORY_FP}"),
    );

    let f = Fixture::new();
    let p = f.log("auth.log", &log);
    let got = json(&f.audit(&["--log", path(&p), "--json"]));
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(got[0]["iam_user"], "mallory", "{got:#?}");
    assert_eq!(got[0]["key_id"], "APKAMALLORY");
    assert!(json(&f.audit(&["alice", "--log", path(&p), "--json"])).is_empty());
}
