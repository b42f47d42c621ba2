//! `keyward authorized-keys` against a real IAM API (moto): what sshd would be given, how many
//! IAM calls it cost, and what happens when IAM goes away.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::TcpListener;
use std::time::Duration;

use common::{Host, KeyPair, Moto};

const EVERYONE: &str = "allowed_groups = [\"*\"]";

/// moto with IAM user alice holding one Active ed25519 key (the key files live in the tempdir).
fn alice_with_a_key() -> (Moto, tempfile::TempDir, KeyPair) {
    let moto = Moto::start();
    let tmp = tempfile::tempdir().unwrap();
    let k = KeyPair::generate(tmp.path(), "k", "ed25519", "k");
    let iam = moto.iam();
    iam.user("alice");
    iam.key("alice", &k.line(), true);
    (moto, tmp, k)
}

#[test]
fn active_keys_are_printed_and_inactive_keys_are_not() {
    let moto = Moto::start();
    let iam = moto.iam();
    let tmp = tempfile::tempdir().unwrap();
    let k1 = KeyPair::generate(tmp.path(), "k1", "ed25519", "alice@laptop");
    let k2 = KeyPair::generate(tmp.path(), "k2", "rsa", "alice@desktop");
    let k3 = KeyPair::generate(tmp.path(), "k3", "ecdsa", "alice@old");
    iam.user("alice");
    iam.key("alice", &k1.line(), true);
    iam.key("alice", &k2.line(), true);
    iam.key("alice", &k3.line(), false);
    let host = Host::new(&moto, EVERYONE).run_by_service_user();

    let run = host.keyward(&["authorized-keys", "alice"]).ok();
    let mut printed = run.keys();
    printed.sort();
    let mut expected = vec![k1.type_and_blob(), k2.type_and_blob()];
    expected.sort();
    assert_eq!(printed, expected);
    assert!(
        run.stdout.contains("alice@laptop"),
        "comment kept: {}",
        run.stdout
    );
}

#[test]
fn warm_lookup_makes_exactly_one_iam_call() {
    let moto = Moto::start();
    let iam = moto.iam();
    let tmp = tempfile::tempdir().unwrap();
    iam.user("alice");
    for i in 0..3 {
        let k = KeyPair::generate(tmp.path(), &format!("k{i}"), "ed25519", "c");
        iam.key("alice", &k.line(), true);
    }
    let host = Host::new(&moto, EVERYONE).run_by_service_user();

    let cold = host.keyward(&["authorized-keys", "alice"]).ok();
    assert_eq!(cold.keys().len(), 3);
    assert_eq!(
        cold.iam_calls(),
        5,
        "one list + GetUser (the identity, concurrently) + one fetch per uncached key"
    );
    let warm = host.keyward(&["authorized-keys", "alice"]).ok();
    assert_eq!(warm.keys(), cold.keys());
    assert_eq!(warm.iam_calls(), 1);
}

#[test]
fn user_without_keys_and_unknown_user_get_nothing() {
    let moto = Moto::start();
    moto.iam().user("nokeys");
    let host = Host::new(&moto, EVERYONE).run_by_service_user();
    let none = host.keyward(&["authorized-keys", "nokeys"]).ok();
    assert_eq!(none.stdout, "");
    let unknown = host.keyward(&["authorized-keys", "ghost"]).ok();
    assert_eq!(unknown.stdout, "");
    assert_eq!(
        unknown.iam_calls(),
        2,
        "ListSSHPublicKeys and GetUser, concurrently"
    );
}

#[test]
fn system_account_names_never_reach_iam() {
    let moto = Moto::start();
    let iam = moto.iam();
    let tmp = tempfile::tempdir().unwrap();
    let k = KeyPair::generate(tmp.path(), "k", "ed25519", "evil");
    // IAM users named like accounts that exist on every Debian host.
    for name in ["root", "daemon", "bin", "nobody"] {
        iam.user(name);
        iam.key(name, &k.line(), true);
    }
    let host = Host::new(
        &moto,
        "allowed_groups = [\"*\"]\nreserved_users = [\"ops\"]",
    )
    .run_by_service_user();
    for name in ["root", "daemon", "bin", "nobody", "ops", "keyward"] {
        let run = host.keyward(&["authorized-keys", name]).ok();
        assert_eq!(run.stdout, "", "{name} got keys");
        assert_eq!(run.iam_calls(), 0, "{name} reached IAM");
    }
}

#[test]
fn hostile_names_print_nothing_and_cost_nothing() {
    let moto = Moto::start();
    let host = Host::new(&moto, EVERYONE).run_by_service_user();
    let long = "a".repeat(33);
    for name in [
        "../etc/passwd",
        "a;id",
        "$(id)",
        "-x",
        "Alice",
        "a\nb",
        "",
        long.as_str(),
        "a_9",
    ] {
        let run = host.keyward(&["authorized-keys", name]).ok();
        assert_eq!(run.stdout, "", "{name:?}");
        assert_eq!(run.iam_calls(), 0, "{name:?}");
    }
}

#[test]
fn iam_names_with_at_sign_and_capitals_map_reversibly() {
    let moto = Moto::start();
    let iam = moto.iam();
    let tmp = tempfile::tempdir().unwrap();
    let email = KeyPair::generate(tmp.path(), "e", "ed25519", "e");
    let caps = KeyPair::generate(tmp.path(), "c", "ed25519", "c");
    iam.user("alice@example.com");
    iam.key("alice@example.com", &email.line(), true);
    iam.user("Bob.Smith");
    iam.key("Bob.Smith", &caps.line(), true);
    let host = Host::new(&moto, EVERYONE).run_by_service_user();
    let run = host
        .keyward(&["authorized-keys", "alice_0example.com"])
        .ok();
    assert_eq!(run.keys(), vec![email.type_and_blob()]);
    let run = host.keyward(&["authorized-keys", "_bob._smith"]).ok();
    assert_eq!(run.keys(), vec![caps.type_and_blob()]);
}

#[test]
fn only_members_of_allowed_groups_get_keys() {
    let moto = Moto::start();
    let iam = moto.iam();
    let tmp = tempfile::tempdir().unwrap();
    let k = KeyPair::generate(tmp.path(), "k", "ed25519", "k");
    for u in ["alice", "bob"] {
        iam.user(u);
        iam.key(u, &k.line(), true);
    }
    iam.group("ops", &["alice"]);
    iam.group("dev", &["bob"]);
    let host = Host::new(&moto, "allowed_groups = [\"ops\"]").run_by_service_user();
    let alice = host.keyward(&["authorized-keys", "alice"]).ok();
    assert_eq!(alice.keys(), vec![k.type_and_blob()]);
    let bob = host.keyward(&["authorized-keys", "bob"]).ok();
    assert_eq!(bob.stdout, "");
    // Membership is cached for group_cache_ttl: the warm path is still one call.
    let warm = host.keyward(&["authorized-keys", "alice"]).ok();
    assert_eq!(warm.iam_calls(), 1);
}

#[test]
fn empty_allowed_groups_means_nobody_and_says_so() {
    let (moto, _tmp, _) = alice_with_a_key();
    let host = Host::new(&moto, "").run_by_service_user();
    let run = host.keyward(&["authorized-keys", "alice"]).ok();
    assert_eq!(run.stdout, "");
    assert_eq!(run.iam_calls(), 0);
    assert!(
        run.stderr.contains("allowed_groups is empty"),
        "{}",
        run.stderr
    );
}

#[test]
fn only_the_offered_key_is_printed() {
    let moto = Moto::start();
    let iam = moto.iam();
    let tmp = tempfile::tempdir().unwrap();
    let a = KeyPair::generate(tmp.path(), "a", "ed25519", "a");
    let b = KeyPair::generate(tmp.path(), "b", "ed25519", "b");
    let stranger = KeyPair::generate(tmp.path(), "s", "ed25519", "s");
    iam.user("alice");
    iam.key("alice", &a.line(), true);
    iam.key("alice", &b.line(), true);
    let host = Host::new(&moto, EVERYONE).run_by_service_user();
    let run = host
        .keyward(&["authorized-keys", "alice", &b.fingerprint(), &b.blob()])
        .ok();
    assert_eq!(run.keys(), vec![b.type_and_blob()]);
    let run = host
        .keyward(&[
            "authorized-keys",
            "alice",
            &stranger.fingerprint(),
            &stranger.blob(),
        ])
        .ok();
    assert_eq!(run.stdout, "");
}

#[test]
fn key_bodies_iam_hands_back_are_validated_not_echoed() {
    let moto = Moto::start();
    let iam = moto.iam();
    let tmp = tempfile::tempdir().unwrap();
    let good = KeyPair::generate(tmp.path(), "g", "ed25519", "good");
    let other = KeyPair::generate(tmp.path(), "o", "ed25519", "o");
    iam.user("alice");
    iam.key("alice", &good.line(), true);
    // Bodies an emulator (or a compromised writer) might store: two keys in one body, and a
    // comment trying to smuggle shell metacharacters.
    iam.key("alice", &format!("{}\n{}", other.line(), good.line()), true);
    iam.key(
        "alice",
        &format!("{} x\"; $(reboot) `id`", other.type_and_blob()),
        true,
    );
    let host = Host::new(&moto, EVERYONE).run_by_service_user();
    let run = host.keyward(&["authorized-keys", "alice"]).ok();
    for line in run.stdout.lines() {
        assert!(
            !line.contains(['"', '$', '`', ';']),
            "unsafe line printed: {line}"
        );
    }
    assert_eq!(run.stdout.lines().count(), 2, "{}", run.stdout);
    assert!(run.keys().contains(&good.type_and_blob()));
    assert!(run.stderr.contains("key not served"), "{}", run.stderr);
}

#[test]
fn outage_serves_stale_keys_within_max_stale_and_nothing_beyond() {
    let (mut moto, _tmp, k) = alice_with_a_key();
    let host =
        Host::new(&moto, "allowed_groups = [\"*\"]\nmax_stale = \"3s\"").run_by_service_user();
    host.keyward(&["authorized-keys", "alice"]).ok();

    moto.stop();
    let stale = host.keyward(&["authorized-keys", "alice"]).ok();
    assert_eq!(stale.keys(), vec![k.type_and_blob()]);
    assert!(
        stale.stderr.contains("source=\"stale\"") || stale.stderr.contains("source=stale"),
        "{}",
        stale.stderr
    );

    std::thread::sleep(Duration::from_secs(5));
    let expired = host.keyward(&["authorized-keys", "alice"]);
    assert_eq!(expired.stdout, "");
    assert_eq!(expired.code, 3, "{}", expired.stderr);
}

#[test]
fn max_stale_zero_fails_closed() {
    let (mut moto, _tmp, _) = alice_with_a_key();
    let host =
        Host::new(&moto, "allowed_groups = [\"*\"]\nmax_stale = \"0s\"").run_by_service_user();
    host.keyward(&["authorized-keys", "alice"]).ok();
    moto.stop();
    let run = host.keyward(&["authorized-keys", "alice"]);
    assert_eq!(run.stdout, "");
    assert_eq!(run.code, 3);
}

#[test]
fn a_silent_iam_endpoint_cannot_stall_sshd_beyond_lookup_timeout() {
    let (moto, _tmp, k) = alice_with_a_key();
    let mut host =
        Host::new(&moto, "allowed_groups = [\"*\"]\nlookup_timeout = \"1s\"").run_by_service_user();
    host.keyward(&["authorized-keys", "alice"]).ok();

    // Accepts connections and never answers.
    let black_hole = TcpListener::bind("127.0.0.1:0").unwrap();
    host.endpoint = format!("http://{}", black_hole.local_addr().unwrap());
    let run = host.keyward(&["authorized-keys", "alice"]).ok();
    assert!(
        run.elapsed < Duration::from_millis(1900),
        "took {:?}",
        run.elapsed
    );
    assert_eq!(
        run.keys(),
        vec![k.type_and_blob()],
        "stale key served after the timeout"
    );
}

#[test]
fn deleted_iam_user_loses_access_even_from_cache() {
    let (moto, _tmp, _) = alice_with_a_key();
    let iam = moto.iam();
    let id = iam.keys("alice")[0].0.clone();
    let host = Host::new(&moto, EVERYONE).run_by_service_user();
    host.keyward(&["authorized-keys", "alice"]).ok();

    iam.set_status("alice", &id, false);
    assert_eq!(
        host.keyward(&["authorized-keys", "alice"]).ok().stdout,
        "",
        "disabled key"
    );
    iam.set_status("alice", &id, true);
    assert_eq!(
        host.keyward(&["authorized-keys", "alice"])
            .ok()
            .keys()
            .len(),
        1
    );
    iam.delete_user("alice");
    assert_eq!(
        host.keyward(&["authorized-keys", "alice"]).ok().stdout,
        "",
        "deleted user"
    );
}

#[test]
fn config_typo_is_an_error_naming_key_and_line() {
    let moto = Moto::start();
    let host =
        Host::new(&moto, "allowed_groups = [\"*\"]\nmax_stael = \"1h\"").run_by_service_user();
    let run = host.keyward(&["authorized-keys", "alice"]);
    assert_eq!(run.code, 1);
    assert_eq!(run.stdout, "");
    assert!(
        run.stderr.contains("max_stael") && run.stderr.contains("line"),
        "{}",
        run.stderr
    );
}

#[test]
fn config_command_prints_the_effective_config() {
    let moto = Moto::start();
    let host = Host::new(&moto, "allowed_groups = [\"ops\"]").run_by_service_user();
    let run = host.keyward(&["config"]).ok();
    assert!(
        run.stdout.contains("allowed_groups = [\"ops\"]"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("max_stale = \"12h\""), "{}", run.stdout);
    assert!(run
        .stdout
        .contains(&host.config_path().display().to_string()));
}

#[test]
fn aws_config_file_reaches_iam_when_sshd_gives_a_bare_environment() {
    let (moto, _tmp, k) = alice_with_a_key();
    let host = Host::new(&moto, "");
    let aws = common::moto_aws_config(&moto, host.dir.path());
    host.write_config(&format!(
        "allowed_groups = [\"*\"]\naws_config_file = \"{}\"",
        aws.display()
    ));
    let mut cmd = std::process::Command::new(common::BIN);
    cmd.env_clear()
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .args([
            "--config",
            host.config_path().to_str().unwrap(),
            "authorized-keys",
            "alice",
        ]);
    let run = common::Run::of(cmd).ok();
    assert_eq!(run.keys(), vec![k.type_and_blob()]);
}

#[test]
fn a_chained_command_keeps_working_and_its_output_is_validated() {
    use std::os::unix::fs::PermissionsExt;
    let moto = Moto::start();
    let iam = moto.iam();
    let tmp = tempfile::tempdir().unwrap();
    let legacy = KeyPair::generate(tmp.path(), "legacy", "ed25519", "legacy");
    let alice = KeyPair::generate(tmp.path(), "alice", "ed25519", "alice");
    iam.user("alice");
    iam.key("alice", &alice.line(), true);
    let host = Host::new(&moto, EVERYONE).run_by_service_user();
    // What EC2 Instance Connect's command does, in miniature: keys for a local account.
    let script = host.dir.path().join("legacy-keys");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n[ \"$1\" = daemon ] || exit 0\necho '{}'\necho 'command=\"/bin/sh\" {}'\n",
            legacy.line(),
            legacy.line()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(
        host.dir.path().join("chain.toml"),
        format!("command = \"{} %u\"\nuser = \"nobody\"\n", script.display()),
    )
    .unwrap();

    let daemon = host.keyward(&["authorized-keys", "daemon"]).ok();
    assert_eq!(
        daemon.keys(),
        vec![legacy.type_and_blob()],
        "options line dropped"
    );
    assert_eq!(
        daemon.iam_calls(),
        0,
        "a local account still never reaches IAM"
    );
    let run = host.keyward(&["authorized-keys", "alice"]).ok();
    assert_eq!(run.keys(), vec![alice.type_and_blob()]);
}

#[test]
fn a_chained_commands_keys_survive_an_iam_outage_with_exit_0() {
    // sshd ignores every line a command prints when it exits non-zero: the break-glass keys
    // of the replaced command must not be lost exactly when IAM is down.
    use std::os::unix::fs::PermissionsExt;
    let mut moto = Moto::start();
    let tmp = tempfile::tempdir().unwrap();
    let legacy = KeyPair::generate(tmp.path(), "legacy", "ed25519", "legacy");
    moto.iam().user("alice");
    let host =
        Host::new(&moto, "allowed_groups = [\"*\"]\nmax_stale = \"0s\"").run_by_service_user();
    let script = host.dir.path().join("legacy-keys");
    std::fs::write(&script, format!("#!/bin/sh\necho '{}'\n", legacy.line())).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(
        host.dir.path().join("chain.toml"),
        format!("command = \"{} %u\"\n", script.display()),
    )
    .unwrap();
    moto.stop();
    let run = host.keyward(&["authorized-keys", "alice"]);
    assert_eq!(run.keys(), vec![legacy.type_and_blob()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("IAM"),
        "the outage is logged: {}",
        run.stderr
    );
}

#[test]
fn an_outage_once_found_is_not_asked_again_within_outage_hold() {
    let (mut moto, _tmp, k) = alice_with_a_key();
    let host = Host::new(&moto, EVERYONE).run_by_service_user();
    host.keyward(&["authorized-keys", "alice"]).ok();
    moto.stop();
    // The first lookup of the outage pays for finding it out (retries, bounded by
    // lookup_timeout); the next ones within outage_hold answer from the cache at once.
    let first = host.keyward(&["authorized-keys", "alice"]).ok();
    assert_eq!(first.keys(), vec![k.type_and_blob()]);
    assert!(first.iam_calls() > 0);
    let held = host.keyward(&["authorized-keys", "alice"]).ok();
    assert_eq!(held.keys(), vec![k.type_and_blob()]);
    assert_eq!(held.iam_calls(), 0, "{}", held.stderr);
    assert!(held.stderr.contains("outage_hold"), "{}", held.stderr);
}

#[test]
fn missing_credentials_exit_4_as_documented_when_nothing_can_be_served() {
    let (moto, _tmp, _k) = alice_with_a_key();
    let host = Host::new(&moto, EVERYONE).run_by_service_user();
    let mut cmd = host.command();
    cmd.env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .arg("--config")
        .arg(host.config_path())
        .args(["authorized-keys", "alice"]);
    let run = common::Run::of(cmd);
    assert_eq!(run.stdout, "");
    assert_eq!(run.code, 4, "{}", run.stderr);
}
