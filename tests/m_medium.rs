//! Issue 8, medium items, through the real binary: `authorized-keys` prints key lines only
//! whatever its arguments (M3), weak RSA keys and two-key bodies are never served (M5/M4),
//! out-of-bounds durations (M6) and reserved adopted groups (M2) are config errors.
#![allow(clippy::unwrap_used)]

mod common;

use common::{keyward_cmd, Host, KeyPair, Moto, Run};

const EVERYONE: &str = "allowed_groups = [\"*\"]";

/// `keyward config` on a config file holding `text`; no IAM call is made.
fn show_config(text: &str) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keyward.toml");
    std::fs::write(&path, text).unwrap();
    let mut cmd = keyward_cmd("http://127.0.0.1:9");
    cmd.arg("--config").arg(&path).arg("config");
    Run::of(cmd)
}

#[test]
fn m3_authorized_keys_prints_no_help_or_version_whatever_the_arguments() {
    let moto = Moto::start();
    let tmp = tempfile::tempdir().unwrap();
    let k = KeyPair::generate(tmp.path(), "k", "ed25519", "k");
    let iam = moto.iam();
    iam.user("alice");
    iam.key("alice", &k.line(), true);
    let host = Host::new(&moto, EVERYONE);
    let fp = k.fingerprint();

    // A name sshd passes as %u is a name, whatever it looks like; so are %f and %k.
    let hostile: Vec<Vec<&str>> = vec![
        vec!["-h"],
        vec!["--help"],
        vec!["-V"],
        vec!["--version"],
        vec!["-h", &fp],
        vec!["alice", "--help"],
        vec!["alice", &fp, "--help"],
        vec!["alice", "-h", "-V"],
        vec!["--config", "/etc/passwd"],
        vec!["-v"],
        vec!["--stats"],
        vec!["--", "-h"],
    ];
    for args in hostile {
        let mut argv = vec!["authorized-keys"];
        argv.extend(&args);
        let run = host.keyward(&argv);
        assert_eq!(
            run.stdout, "",
            "{args:?} printed on stdout; stderr:\n{}",
            run.stderr
        );
        assert_eq!(run.code, 0, "{args:?}: {}", run.stderr);
    }

    // The real call still works, and help stays reachable where no sshd reads stdout.
    let run = host
        .keyward(&["authorized-keys", "alice", &fp, &k.blob()])
        .ok();
    assert_eq!(run.keys(), vec![k.type_and_blob()]);
    let help = host.keyward(&["help", "authorized-keys"]).ok();
    assert!(
        help.stdout.contains("AuthorizedKeysCommand"),
        "{}",
        help.stdout
    );
    assert!(help.stdout.contains("<USER>"), "{}", help.stdout);
}

#[test]
fn m5_rsa_key_under_2048_bits_is_not_served_and_the_log_names_id_and_fix() {
    let moto = Moto::start();
    let iam = moto.iam();
    let tmp = tempfile::tempdir().unwrap();
    let weak = tmp.path().join("weak");
    // OpenSSH 9.2 still generates 1024-bit RSA (its floor); moto stores it like IAM did.
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "rsa", "-b", "1024", "-N", "", "-C", "old", "-f"])
        .arg(&weak)
        .status()
        .unwrap();
    assert!(status.success());
    let weak_line = std::fs::read_to_string(weak.with_extension("pub")).unwrap();
    let good = KeyPair::generate(tmp.path(), "good", "ed25519", "good");
    iam.user("alice");
    let weak_id = iam.key("alice", weak_line.trim(), true);
    iam.key("alice", &good.line(), true);
    let host = Host::new(&moto, EVERYONE);

    let run = host.keyward(&["authorized-keys", "alice"]).ok();
    assert_eq!(run.keys(), vec![good.type_and_blob()], "{}", run.stdout);
    let rejection = run
        .stderr
        .lines()
        .find(|l| l.contains(&weak_id))
        .unwrap_or_else(|| panic!("no log line names {weak_id}:\n{}", run.stderr));
    assert!(rejection.contains("1024 bits"), "{rejection}");
    assert!(rejection.contains("keyward rotate-key"), "{rejection}");
}

#[test]
fn m4_a_body_with_two_keys_on_one_line_is_skipped_not_served() {
    let moto = Moto::start();
    let iam = moto.iam();
    let tmp = tempfile::tempdir().unwrap();
    let a = KeyPair::generate(tmp.path(), "a", "ed25519", "a");
    let b = KeyPair::generate(tmp.path(), "b", "ed25519", "b");
    let good = KeyPair::generate(tmp.path(), "good", "ed25519", "good");
    iam.user("alice");
    let two = iam.key(
        "alice",
        &format!("{} {}", a.type_and_blob(), b.type_and_blob()),
        true,
    );
    iam.key("alice", &good.line(), true);
    let host = Host::new(&moto, EVERYONE);

    let run = host.keyward(&["authorized-keys", "alice"]).ok();
    assert_eq!(run.keys(), vec![good.type_and_blob()], "{}", run.stdout);
    assert!(
        !run.stdout.contains(&b.blob()[..40]),
        "second key served as a comment: {}",
        run.stdout
    );
    assert!(run.stderr.contains(&two), "{}", run.stderr);
}

#[test]
fn m6_durations_past_their_maximum_are_config_errors_naming_key_and_line() {
    for (text, key, line) in [
        (
            "allowed_groups = [\"*\"]\nmax_stale = \"100y\"\n",
            "max_stale",
            "line 2",
        ),
        (
            "allowed_groups = [\"*\"]\n\ngroup_cache_ttl = \"1day\"\n",
            "group_cache_ttl",
            "line 3",
        ),
    ] {
        let run = show_config(text);
        assert_eq!(run.code, 1, "{text} accepted:\n{}", run.stdout);
        assert!(run.stderr.contains(key), "{}", run.stderr);
        assert!(run.stderr.contains(line), "{}", run.stderr);
        assert_eq!(run.stdout, "");
    }
    // The maxima themselves are fine.
    show_config("max_stale = \"7days\"\ngroup_cache_ttl = \"1h\"\n").ok();
}

#[test]
fn m5_min_rsa_bits_below_2048_is_a_config_error_naming_key_and_line() {
    let run = show_config("allowed_groups = [\"*\"]\nmin_rsa_bits = 1024\n");
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(
        run.stderr.contains("min_rsa_bits") && run.stderr.contains("line 2"),
        "{}",
        run.stderr
    );
    let ok = show_config("min_rsa_bits = 3072\n").ok();
    assert!(ok.stdout.contains("min_rsa_bits = 3072"), "{}", ok.stdout);
}

#[test]
fn m2_reserved_names_cannot_be_adopted() {
    for (text, name) in [
        ("adopt_groups = [\"keyward\"]\n", "keyward"),
        ("adopt_groups = [\"root\"]\n", "root"),
        (
            "reserved_users = [\"ec2-user\"]\nadopt_groups = [\"docker\", \"ec2-user\"]\n",
            "ec2-user",
        ),
    ] {
        let run = show_config(text);
        assert_eq!(run.code, 1, "{text} accepted:\n{}", run.stdout);
        assert!(
            run.stderr.contains("adopt_groups") && run.stderr.contains(name),
            "{}",
            run.stderr
        );
    }
    // Adopting a system group on purpose is what adopt_groups is for.
    show_config("adopt_groups = [\"docker\", \"sudo\"]\n").ok();
}

#[test]
fn m5_upload_key_refuses_weak_rsa_and_keys_under_the_configured_floor() {
    let moto = Moto::start();
    let iam = moto.iam();
    iam.user("alice");
    let tmp = tempfile::tempdir().unwrap();
    let weak = tmp.path().join("weak");
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "rsa", "-b", "1024", "-N", "", "-f"])
        .arg(&weak)
        .status()
        .unwrap();
    assert!(status.success());
    let rsa3072 = KeyPair::generate(tmp.path(), "r3072", "rsa", "r");
    let upload = |config: Option<&str>, key: &std::path::Path| {
        let mut cmd = keyward_cmd(&moto.endpoint());
        cmd.env("HOME", tmp.path());
        if let Some(text) = config {
            let path = tmp.path().join("keyward.toml");
            std::fs::write(&path, text).unwrap();
            cmd.arg("--config").arg(path);
        }
        cmd.args(["upload-key", "--user", "alice", "-i"]).arg(key);
        Run::of(cmd)
    };

    let run = upload(None, &weak.with_extension("pub"));
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(
        run.stderr.contains("1024 bits") && run.stderr.contains("ssh-keygen -t ed25519"),
        "{}",
        run.stderr
    );
    let run = upload(Some("min_rsa_bits = 4096\n"), &rsa3072.public);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(
        run.stderr.contains("3072 bits") && run.stderr.contains("min_rsa_bits = 4096"),
        "{}",
        run.stderr
    );
    assert!(iam.keys("alice").is_empty(), "nothing uploaded");
    upload(None, &rsa3072.public).ok();
    assert_eq!(iam.keys("alice").len(), 1);
}
