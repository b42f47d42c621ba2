//! Who gets a shell, decided against a real IAM API (moto): the ownership rule (C1), the
//! identity an account is bound to (C2) and revocations IAM did answer (H1). Each test is the
//! regression test of the issue item it is named after.
//!
//! Local accounts cannot be created outside a namespace, so these tests use `daemon` (UID 1 on
//! every Debian host) as "an existing local account" and plant ownership records for it in a
//! private state_dir; the real-sshd versions live in tests/e2e/scenarios/identity_binding.sh.
#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{Fault, FaultProxy, Host, KeyPair, Moto};

const EVERYONE: &str = "allowed_groups = [\"*\"]";

fn daemon_uid() -> u32 {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    passwd
        .lines()
        .find_map(|l| l.strip_prefix("daemon:"))
        .and_then(|rest| rest.split(':').nth(1))
        .unwrap()
        .parse()
        .unwrap()
}

fn records_dir(host: &Host) -> std::path::PathBuf {
    let dir = host.dir.path().join("state/accounts");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(
        host.dir.path().join("state"),
        PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    std::fs::set_permissions(&dir, PermissionsExt::from_mode(0o755)).unwrap();
    dir
}

fn record_json(iam_user: &str, user_id: &str, uid: u32) -> String {
    format!(
        "{{\"iam_user\": \"{iam_user}\", \"iam_user_id\": \"{user_id}\", \"uid\": {uid}, \"created_at\": 1}}"
    )
}

fn plant(dir: &Path, name: &str, contents: &str) {
    let _ = std::fs::remove_file(dir.join(name));
    std::fs::write(dir.join(name), contents).unwrap();
    std::fs::set_permissions(dir.join(name), PermissionsExt::from_mode(0o644)).unwrap();
}

/// IAM user `daemon` with one Active key; the host allows every IAM user.
fn iam_daemon() -> (Moto, tempfile::TempDir, KeyPair, String) {
    let moto = Moto::start();
    let tmp = tempfile::tempdir().unwrap();
    let k = KeyPair::generate(tmp.path(), "k", "ed25519", "daemon@iam");
    let iam = moto.iam();
    let id = iam.user("daemon");
    iam.key("daemon", &k.line(), true);
    (moto, tmp, k, id)
}

#[test]
fn c1_only_a_parsed_record_with_the_accounts_uid_and_a_user_id_makes_an_account_keywards() {
    let (moto, _tmp, k, user_id) = iam_daemon();
    let host = Host::new(&moto, EVERYONE).run_by_service_user();
    let dir = records_dir(&host);
    let uid = daemon_uid();

    let elsewhere = host.dir.path().join("elsewhere");
    std::fs::write(&elsewhere, record_json("daemon", &user_id, uid)).unwrap();
    let not_keywards: &[(&str, Option<String>)] = &[
        ("empty record", Some(String::new())),
        ("garbage record", Some("not json at all".into())),
        (
            "record for another UID (account re-made by hand)",
            Some(record_json("daemon", &user_id, 4242)),
        ),
        (
            "record without an IAM UserId",
            Some(record_json("daemon", "", uid)),
        ),
        ("symlinked record", None),
    ];
    for (what, contents) in not_keywards {
        match contents {
            Some(c) => plant(&dir, "daemon", c),
            None => {
                let _ = std::fs::remove_file(dir.join("daemon"));
                std::os::unix::fs::symlink(&elsewhere, dir.join("daemon")).unwrap();
            }
        }
        let run = host.keyward(&["authorized-keys", "daemon"]).ok();
        assert_eq!(run.stdout, "", "{what}: IAM daemon's key served");
        assert_eq!(run.iam_calls(), 0, "{what}: reached IAM");
    }

    // The control: a real record for this account is what makes it keyward's.
    plant(&dir, "daemon", &record_json("daemon", &user_id, uid));
    let run = host.keyward(&["authorized-keys", "daemon"]).ok();
    assert_eq!(run.keys(), vec![k.type_and_blob()], "{}", run.stderr);
}

#[test]
fn c2_a_re_created_iam_user_does_not_inherit_the_account() {
    let moto = Moto::start();
    // Identity is re-checked on every lookup once group_cache_ttl has passed.
    let (host, _tmp, first_id, second_id) = daemon_re_created(
        &moto,
        &moto.endpoint(),
        &format!("{EVERYONE}\ngroup_cache_ttl = \"0s\""),
    );
    let after = host.keyward(&["authorized-keys", "daemon"]).ok();
    assert_eq!(
        after.stdout, "",
        "the new IAM daemon got the old one's account"
    );
    assert!(
        after.stderr.contains(&first_id) && after.stderr.contains(&second_id),
        "the log names both identities: {}",
        after.stderr
    );

    // A host that never cached anything refuses too.
    let cold = Host::new(&moto, EVERYONE).run_by_service_user();
    let dir = records_dir(&cold);
    plant(
        &dir,
        "daemon",
        &record_json("daemon", &first_id, daemon_uid()),
    );
    let run = cold.keyward(&["authorized-keys", "daemon"]).ok();
    assert_eq!(run.stdout, "");
}

#[test]
fn c2_stale_keys_are_served_only_for_the_verified_identity() {
    let (mut moto, _tmp, k, user_id) = iam_daemon();
    let host = Host::new(&moto, EVERYONE).run_by_service_user();
    let dir = records_dir(&host);
    plant(
        &dir,
        "daemon",
        &record_json("daemon", &user_id, daemon_uid()),
    );
    host.keyward(&["authorized-keys", "daemon"]).ok();

    // IAM goes away: the verified key set stands in, as before.
    moto.stop();
    let stale = host.keyward(&["authorized-keys", "daemon"]).ok();
    assert_eq!(stale.keys(), vec![k.type_and_blob()]);
    assert!(stale.stderr.contains("source=\"stale\"") || stale.stderr.contains("source=stale"));

    // The record now names someone else (the account was handed over): the cached set,
    // verified for the old identity, is not theirs.
    plant(
        &dir,
        "daemon",
        &record_json("daemon", "AIDAOTHERPERSON00001", daemon_uid()),
    );
    let run = host.keyward(&["authorized-keys", "daemon"]);
    assert_eq!(run.stdout, "");
}

#[test]
fn h1_a_key_iam_just_set_inactive_is_not_served_while_groups_are_throttled() {
    let moto = Moto::start();
    let proxy = FaultProxy::start(&moto);
    let tmp = tempfile::tempdir().unwrap();
    let k = KeyPair::generate(tmp.path(), "k", "ed25519", "alice");
    let iam = moto.iam();
    iam.user("alice");
    iam.group("ops", &["alice"]);
    let key_id = iam.key("alice", &k.line(), true);
    // Groups are read at every lookup, so every lookup after the first asks ListGroupsForUser.
    let host = Host::via(
        &proxy.endpoint(),
        "allowed_groups = [\"ops\"]\ngroup_cache_ttl = \"0s\"",
    )
    .run_by_service_user();
    let warm = host.keyward(&["authorized-keys", "alice"]).ok();
    assert_eq!(warm.keys(), vec![k.type_and_blob()]);

    proxy.set(&[Fault::on("ListGroupsForUser").name("alice").throttle()]);
    // The control: with only the groups throttled, the cached membership stands in.
    let throttled = host.keyward(&["authorized-keys", "alice"]).ok();
    assert_eq!(
        throttled.keys(),
        vec![k.type_and_blob()],
        "{}",
        throttled.stderr
    );
    assert!(
        proxy
            .requests()
            .iter()
            .any(|(action, _, fault)| action == "ListGroupsForUser" && fault == "throttle"),
        "the proxy never throttled ListGroupsForUser"
    );

    // The key is revoked; IAM's live key list says so while the groups are still throttled.
    iam.set_status("alice", &key_id, false);
    let revoked = host.keyward(&["authorized-keys", "alice"]).ok();
    assert_eq!(
        revoked.stdout, "",
        "a revoked key was served: {}",
        revoked.stderr
    );
}

#[test]
fn m5_a_configured_min_rsa_bits_refuses_live_and_cached_keys() {
    let moto = Moto::start();
    let tmp = tempfile::tempdir().unwrap();
    // ssh-keygen's default RSA size is 3072; ask for 2048, the lowest keyward ever accepts.
    let private = tmp.path().join("rsa");
    let status = std::process::Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "rsa",
            "-b",
            "2048",
            "-N",
            "",
            "-C",
            "alice@old",
            "-f",
        ])
        .arg(&private)
        .status()
        .unwrap();
    assert!(status.success());
    let rsa = KeyPair {
        public: private.with_extension("pub"),
        private,
    };
    let ed = KeyPair::generate(tmp.path(), "ed", "ed25519", "alice@new");
    let iam = moto.iam();
    iam.user("alice");
    iam.key("alice", &rsa.line(), true);
    iam.key("alice", &ed.line(), true);

    // The default floor (2048) serves both, and caches both bodies.
    let host = Host::new(&moto, EVERYONE).run_by_service_user();
    let mut both = host.keyward(&["authorized-keys", "alice"]).ok().keys();
    both.sort();
    let mut expected = vec![rsa.type_and_blob(), ed.type_and_blob()];
    expected.sort();
    assert_eq!(both, expected);

    // A higher floor refuses the cached RSA body too, naming the fix.
    host.write_config(&format!("{EVERYONE}\nmin_rsa_bits = 3072"));
    let run = host.keyward(&["authorized-keys", "alice"]).ok();
    assert_eq!(run.keys(), vec![ed.type_and_blob()], "{}", run.stderr);
    assert!(run.stderr.contains("rotate-key"), "{}", run.stderr);
    // And from a cold cache, the live body likewise.
    let cold = Host::new(&moto, &format!("{EVERYONE}\nmin_rsa_bits = 3072")).run_by_service_user();
    let run = cold.keyward(&["authorized-keys", "alice"]).ok();
    assert_eq!(run.keys(), vec![ed.type_and_blob()], "{}", run.stderr);
}

#[test]
fn m1_a_huge_or_forging_name_is_logged_escaped_and_capped() {
    let moto = Moto::start();
    let host = Host::new(&moto, EVERYONE).run_by_service_user();
    let huge = "a".repeat(131_000);
    let forged =
        "x\n INFO key served message_id=\"6b1c0b7f2a8e4f1e9d3a5c7e0f2b4d61\" iam_user=\"alice\"";
    for name in [huge.as_str(), forged] {
        for args in [
            vec!["-v", "authorized-keys", name],
            vec!["-v", "pam-create-account", name],
        ] {
            let run = host.keyward(&args);
            assert_eq!(run.stdout, "", "{args:?}");
            assert!(
                run.stderr.len() < 2_000,
                "{} bytes of log for {:?}",
                run.stderr.len(),
                &args[1]
            );
            for line in run.stderr.lines() {
                assert!(
                    !line.trim_start().starts_with("INFO key served"),
                    "a forged line: {}",
                    run.stderr
                );
            }
        }
    }
}

/// IAM daemon deleted and re-created (a new UserId, someone else's key) after a warm lookup
/// bound to the first UserId; returns the host (with the old identity cached) and both ids.
fn daemon_re_created(
    moto: &Moto,
    endpoint: &str,
    config: &str,
) -> (Host, tempfile::TempDir, String, String) {
    let tmp = tempfile::tempdir().unwrap();
    let k = KeyPair::generate(tmp.path(), "k", "ed25519", "daemon@iam");
    let iam = moto.iam();
    let first_id = iam.user("daemon");
    iam.key("daemon", &k.line(), true);
    let host = Host::via(endpoint, config).run_by_service_user();
    let dir = records_dir(&host);
    plant(
        &dir,
        "daemon",
        &record_json("daemon", &first_id, daemon_uid()),
    );
    let before = host.keyward(&["authorized-keys", "daemon"]).ok();
    assert_eq!(before.keys(), vec![k.type_and_blob()]);
    iam.delete_user("daemon");
    let second_id = iam.user("daemon");
    let other = KeyPair::generate(tmp.path(), "other", "ed25519", "someone-else");
    iam.key("daemon", &other.line(), true);
    (host, tmp, first_id, second_id)
}

#[test]
fn c2_a_re_created_user_gets_nothing_within_group_cache_ttl() {
    let moto = Moto::start();
    // The default group_cache_ttl: the old identity is still trusted from the cache, but a key
    // id it never listed makes keyward ask GetUser before serving it.
    let (host, _tmp, first_id, second_id) = daemon_re_created(&moto, &moto.endpoint(), EVERYONE);
    let after = host.keyward(&["authorized-keys", "daemon"]).ok();
    assert_eq!(after.stdout, "", "{}", after.stderr);
    assert!(
        after.stderr.contains(&first_id) && after.stderr.contains(&second_id),
        "{}",
        after.stderr
    );
}

#[test]
fn c2_a_re_created_user_gets_nothing_while_get_user_is_throttled() {
    let moto = Moto::start();
    let proxy = FaultProxy::start(&moto);
    let (host, _tmp, _, _) = daemon_re_created(
        &moto,
        &proxy.endpoint(),
        &format!("{EVERYONE}\ngroup_cache_ttl = \"0s\""),
    );
    proxy.set(&[Fault::on("GetUser").name("daemon").throttle()]);
    let after = host.keyward(&["authorized-keys", "daemon"]);
    assert_eq!(after.stdout, "", "{}", after.stderr);
}

/// alice's key is revoked while `action` hangs: the key list IAM did answer must win even though
/// the lookup as a whole runs out of time.
fn revoked_key_is_not_served_while(action: &str, config: &str) {
    let moto = Moto::start();
    let proxy = FaultProxy::start(&moto);
    let tmp = tempfile::tempdir().unwrap();
    let k = KeyPair::generate(tmp.path(), "k", "ed25519", "alice");
    let iam = moto.iam();
    iam.user("alice");
    iam.group("ops", &["alice"]);
    let key_id = iam.key("alice", &k.line(), true);
    let host = Host::via(&proxy.endpoint(), config).run_by_service_user();
    let warm = host.keyward(&["authorized-keys", "alice"]).ok();
    assert_eq!(warm.keys(), vec![k.type_and_blob()]);
    iam.set_status("alice", &key_id, false);
    proxy.set(&[Fault::on(action).name("alice").hang()]);
    let revoked = host.keyward(&["authorized-keys", "alice"]);
    assert_eq!(
        revoked.stdout, "",
        "revoked key served while {action} hangs: {}",
        revoked.stderr
    );
    assert!(
        proxy
            .requests()
            .iter()
            .any(|(a, _, fault)| a == "ListSSHPublicKeys" && fault == "-"),
        "the key list was not answered: {:?}",
        proxy.requests()
    );
}

#[test]
fn h1_a_revoked_key_is_not_served_while_list_groups_for_user_hangs() {
    revoked_key_is_not_served_while(
        "ListGroupsForUser",
        "allowed_groups = [\"ops\"]\ngroup_cache_ttl = \"0s\"\nlookup_timeout = \"1500ms\"",
    );
}

#[test]
fn h1_a_revoked_key_is_not_served_while_get_user_hangs() {
    revoked_key_is_not_served_while(
        "GetUser",
        "allowed_groups = [\"*\"]\ngroup_cache_ttl = \"0s\"\nlookup_timeout = \"1500ms\"",
    );
}
