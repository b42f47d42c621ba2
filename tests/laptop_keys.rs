//! The laptop commands against a real IAM API (moto): what lands in IAM, what a person is told.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Command;

use common::{keyward_cmd, KeyPair, Moto, Run};

fn keyward(moto: &Moto, home: &Path, args: &[&str]) -> Run {
    let mut cmd = keyward_cmd(&moto.endpoint());
    cmd.env("HOME", home).args(args);
    Run::of(cmd)
}

/// Runs as the IAM user `user` (credentials that belong to it), not as moto's default.
fn keyward_as(moto: &Moto, user: &str, home: &Path, args: &[&str]) -> Run {
    let (key, secret) = moto.iam().access_key(user);
    keyward_with(moto, (&key, &secret), home, args)
}

fn keyward_with(moto: &Moto, (key, secret): (&str, &str), home: &Path, args: &[&str]) -> Run {
    let mut cmd = keyward_cmd(&moto.endpoint());
    cmd.env("HOME", home)
        .env("AWS_ACCESS_KEY_ID", key)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .args(args);
    Run::of(cmd)
}

#[test]
fn upload_key_defaults_to_the_callers_own_user_and_first_default_key() {
    let moto = Moto::start();
    let iam = moto.iam();
    iam.user("alice");
    let home = tempfile::tempdir().unwrap();
    let ssh = home.path().join(".ssh");
    std::fs::create_dir(&ssh).unwrap();
    let rsa = KeyPair::generate(&ssh, "id_rsa", "rsa", "alice@laptop");
    let ed = KeyPair::generate(&ssh, "id_ed25519", "ed25519", "alice@laptop");

    let run = keyward_as(&moto, "alice", home.path(), &["upload-key"]).ok();
    assert!(run.stdout.contains(&ed.fingerprint()), "{}", run.stdout);
    let keys = iam.keys("alice");
    assert_eq!(keys.len(), 1);
    assert!(keys[0].1, "uploaded key is Active");

    let again = keyward_as(&moto, "alice", home.path(), &["upload-key"]).ok();
    assert!(again.stdout.contains("nothing to do"), "{}", again.stdout);
    assert_eq!(iam.keys("alice").len(), 1, "upload is idempotent");
    let _ = rsa;
}

#[test]
fn private_key_is_refused_and_never_uploaded() {
    let moto = Moto::start();
    let iam = moto.iam();
    iam.user("alice");
    let tmp = tempfile::tempdir().unwrap();
    let k = KeyPair::generate(tmp.path(), "id_ed25519", "ed25519", "c");
    let run = keyward(
        &moto,
        tmp.path(),
        &[
            "upload-key",
            "--user",
            "alice",
            "--identity",
            k.private.to_str().unwrap(),
        ],
    );
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("PRIVATE key"), "{}", run.stderr);
    assert!(run.stderr.contains(".pub"), "names the fix: {}", run.stderr);
    assert!(iam.keys("alice").is_empty());
}

#[test]
fn missing_and_malformed_files_name_the_fix() {
    let moto = Moto::start();
    moto.iam().user("alice");
    let tmp = tempfile::tempdir().unwrap();
    let run = keyward(&moto, tmp.path(), &["upload-key", "--user", "alice"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("ssh-keygen -t ed25519"),
        "{}",
        run.stderr
    );

    let junk = tmp.path().join("junk.pub");
    std::fs::write(&junk, "hello world\n").unwrap();
    let run = keyward(
        &moto,
        tmp.path(),
        &[
            "upload-key",
            "--user",
            "alice",
            "-i",
            junk.to_str().unwrap(),
        ],
    );
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("not a usable SSH public key"),
        "{}",
        run.stderr
    );
}

#[test]
fn sixth_key_is_refused_with_the_limit_explained() {
    let moto = Moto::start();
    let iam = moto.iam();
    iam.user("alice");
    let tmp = tempfile::tempdir().unwrap();
    for i in 0..5 {
        let k = KeyPair::generate(tmp.path(), &format!("k{i}"), "ed25519", "c");
        iam.key("alice", &k.line(), true);
    }
    let sixth = KeyPair::generate(tmp.path(), "six", "ed25519", "c");
    let run = keyward(
        &moto,
        tmp.path(),
        &[
            "upload-key",
            "--user",
            "alice",
            "-i",
            sixth.public.to_str().unwrap(),
        ],
    );
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("delete-key"), "{}", run.stderr);
    assert_eq!(iam.keys("alice").len(), 5);
}

#[test]
fn list_keys_shows_fingerprints_exactly_as_ssh_keygen() {
    let moto = Moto::start();
    let iam = moto.iam();
    iam.user("alice");
    let tmp = tempfile::tempdir().unwrap();
    let a = KeyPair::generate(tmp.path(), "a", "rsa", "a@x");
    let b = KeyPair::generate(tmp.path(), "b", "ecdsa", "b@x");
    let id_a = iam.key("alice", &a.line(), true);
    let id_b = iam.key("alice", &b.line(), false);
    let run = keyward(
        &moto,
        tmp.path(),
        &["list-keys", "--user", "alice", "--json"],
    )
    .ok();
    let rows: Vec<serde_json::Value> = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(rows.len(), 2);
    let row = |id: &str| rows.iter().find(|r| r["id"] == id).unwrap().clone();
    assert_eq!(row(&id_a)["fingerprint"], a.fingerprint());
    assert_eq!(row(&id_a)["status"], "Active");
    assert_eq!(row(&id_b)["fingerprint"], b.fingerprint());
    assert_eq!(row(&id_b)["status"], "Inactive");

    let table = keyward(&moto, tmp.path(), &["list_keys", "--user", "alice"]).ok();
    assert!(table.stdout.contains(&a.fingerprint()) && table.stdout.contains(&id_b));
}

#[test]
fn enable_disable_and_delete_by_id_or_fingerprint() {
    let moto = Moto::start();
    let iam = moto.iam();
    iam.user("alice");
    let tmp = tempfile::tempdir().unwrap();
    let k = KeyPair::generate(tmp.path(), "k", "ed25519", "c");
    let id = iam.key("alice", &k.line(), true);
    let fp = k.fingerprint();

    keyward(&moto, tmp.path(), &["disable-key", &fp, "--user", "alice"]).ok();
    assert_eq!(iam.keys("alice"), vec![(id.clone(), false)]);
    let again = keyward(&moto, tmp.path(), &["disable_key", &id, "--user", "alice"]).ok();
    assert!(
        again.stdout.contains("already disabled"),
        "{}",
        again.stdout
    );
    keyward(&moto, tmp.path(), &["enable-key", &id, "--user", "alice"]).ok();
    assert_eq!(iam.keys("alice"), vec![(id.clone(), true)]);

    let missing = keyward(
        &moto,
        tmp.path(),
        &["delete-key", "APKANOSUCHKEY0000000", "--user", "alice"],
    );
    assert_eq!(missing.code, 1);
    assert!(missing.stderr.contains("list-keys"), "{}", missing.stderr);
    keyward(&moto, tmp.path(), &["delete-key", &fp, "--user", "alice"]).ok();
    assert!(iam.keys("alice").is_empty());
}

#[test]
fn rotate_key_uploads_the_new_key_then_disables_the_old_one() {
    let moto = Moto::start();
    let iam = moto.iam();
    iam.user("alice");
    let tmp = tempfile::tempdir().unwrap();
    let old = KeyPair::generate(tmp.path(), "old", "rsa", "old");
    let new = KeyPair::generate(tmp.path(), "new", "ed25519", "new");
    let old_id = iam.key("alice", &old.line(), true);
    let run = keyward(
        &moto,
        tmp.path(),
        &[
            "rotate-key",
            "--user",
            "alice",
            "-i",
            new.public.to_str().unwrap(),
        ],
    )
    .ok();
    assert!(
        run.stdout.contains(&new.fingerprint()) && run.stdout.contains(&old_id),
        "{}",
        run.stdout
    );
    let keys = iam.keys("alice");
    assert_eq!(keys.len(), 2);
    assert!(keys.contains(&(old_id.clone(), false)));
    assert_eq!(
        keys.iter().filter(|k| k.1).count(),
        1,
        "only the new key is active"
    );

    // Re-running is harmless, with or without --old.
    keyward(
        &moto,
        tmp.path(),
        &[
            "rotate-key",
            "--user",
            "alice",
            "-i",
            new.public.to_str().unwrap(),
            "--old",
            &old_id,
        ],
    )
    .ok();
    let again = keyward(
        &moto,
        tmp.path(),
        &[
            "rotate-key",
            "--user",
            "alice",
            "-i",
            new.public.to_str().unwrap(),
        ],
    )
    .ok();
    assert!(
        again.stdout.contains("nothing to rotate"),
        "{}",
        again.stdout
    );
    assert_eq!(iam.keys("alice").len(), 2);
}

#[test]
fn uploaded_key_is_what_authorized_keys_serves() {
    let moto = Moto::start();
    moto.iam().user("alice");
    let tmp = tempfile::tempdir().unwrap();
    let k = KeyPair::generate(tmp.path(), "k", "ed25519", "alice@laptop");
    keyward(
        &moto,
        tmp.path(),
        &[
            "upload-key",
            "--user",
            "alice",
            "-i",
            k.public.to_str().unwrap(),
        ],
    )
    .ok();
    let host = common::Host::new(&moto, "allowed_groups = [\"*\"]");
    let run = host.keyward(&["authorized-keys", "alice"]).ok();
    assert_eq!(run.stdout, format!("{}\n", k.line()));
}

#[test]
fn missing_credentials_exit_4_with_the_fix() {
    let moto = Moto::start();
    let tmp = tempfile::tempdir().unwrap();
    let mut cmd = keyward_cmd(&moto.endpoint());
    cmd.env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env("HOME", tmp.path())
        .args(["list-keys", "--user", "alice"]);
    let run = Run::of(cmd);
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(
        run.stderr.to_lowercase().contains("credentials"),
        "{}",
        run.stderr
    );
}

#[test]
fn access_denied_names_the_missing_iam_action() {
    // Seeding takes 3 requests (user, policy, access key); moto enforces policies after that.
    let moto = Moto::start_enforcing_policies(3);
    let iam = moto.iam();
    iam.user("alice");
    iam.allow(
        "alice",
        &[
            "iam:ListSSHPublicKeys",
            "iam:GetSSHPublicKey",
            "iam:GetUser",
        ],
    );
    let (key, secret) = iam.access_key("alice");
    let tmp = tempfile::tempdir().unwrap();
    let k = KeyPair::generate(tmp.path(), "k", "ed25519", "c");
    let run = keyward_with(
        &moto,
        (&key, &secret),
        tmp.path(),
        &["upload-key", "-i", k.public.to_str().unwrap()],
    );
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(
        run.stderr.contains("iam:UploadSSHPublicKey"),
        "{}",
        run.stderr
    );
}

#[test]
fn help_lists_exit_codes_and_hides_keymaker_aliases() {
    let out = Command::new(common::BIN).arg("--help").output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(
        help.contains("Exit codes:") && help.contains("3  IAM could not be reached"),
        "{help}"
    );
    assert!(
        help.contains("upload-key") && !help.contains("upload_key"),
        "{help}"
    );
}

#[test]
fn a_key_keyward_refuses_is_still_listed_by_fingerprint_and_can_be_deleted_by_it() {
    let moto = Moto::start();
    let iam = moto.iam();
    iam.user("alice");
    let tmp = tempfile::tempdir().unwrap();
    // A 1024-bit RSA key uploaded before keyward refused them (IAM itself accepts it).
    let private = tmp.path().join("old");
    let made = Command::new("ssh-keygen")
        .args(["-q", "-t", "rsa", "-b", "1024", "-N", "", "-C", "old", "-f"])
        .arg(&private)
        .status()
        .unwrap();
    assert!(made.success());
    let old = KeyPair {
        public: private.with_extension("pub"),
        private,
    };
    let id = iam.key("alice", &old.line(), true);
    let fp = old.fingerprint();

    let table = keyward(&moto, tmp.path(), &["list-keys", "--user", "alice"]).ok();
    let row = table.stdout.lines().find(|l| l.starts_with(&id)).unwrap();
    assert!(
        row.contains(&fp),
        "the refused key's row shows its fingerprint: {row}"
    );
    assert!(row.contains("unusable"), "{row}");
    let json = keyward(
        &moto,
        tmp.path(),
        &["list-keys", "--user", "alice", "--json"],
    )
    .ok();
    let rows: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(rows[0]["fingerprint"], fp.as_str());

    // "-" names no key, even one whose fingerprint is unknown.
    let dash = keyward(&moto, tmp.path(), &["delete-key", "-", "--user", "alice"]);
    assert_eq!(dash.code, 1, "{}", dash.stderr);
    assert_eq!(iam.keys("alice").len(), 1);
    keyward(&moto, tmp.path(), &["delete-key", &fp, "--user", "alice"]).ok();
    assert!(iam.keys("alice").is_empty());
}
