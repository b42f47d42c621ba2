//! M7 and cache hygiene, through the real `keyward` binary: a config reached through a symlink
//! is refused with the path and the fix, a symlinked or corrupt cache entry is refused with a
//! warning (and the key still comes from IAM), and a run as root leaves the cache untouched.
#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

use common::{keyward_cmd, Host, KeyPair, Moto, Run};

const EVERYONE: &str = "allowed_groups = [\"*\"]";

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// `keyward --config PATH config`: loads and prints the config, no IAM involved.
fn show_config(path: &Path) -> Run {
    let mut cmd = keyward_cmd("http://127.0.0.1:9");
    cmd.arg("--config").arg(path).arg("config");
    Run::of(cmd)
}

/// A private directory (0755) holding a valid config file.
fn trusted_config() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    chmod(dir.path(), 0o755);
    let file = dir.path().join("keyward.toml");
    std::fs::write(&file, "allowed_groups = [\"ops\"]\n").unwrap();
    chmod(&file, 0o644);
    (dir, file)
}

#[test]
fn m7_config_via_a_symlink_in_a_world_writable_dir_is_refused_naming_path_and_fix() {
    let (dir, _) = trusted_config();
    assert_eq!(show_config(&dir.path().join("keyward.toml")).ok().code, 0);
    let open = dir.path().join("open");
    std::fs::create_dir(&open).unwrap();
    chmod(&open, 0o777);
    symlink("../keyward.toml", open.join("keyward.toml")).unwrap();

    let run = show_config(&open.join("keyward.toml"));
    assert_ne!(run.code, 0, "accepted: {}", run.stdout);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert!(
        run.stderr.contains(&format!(
            "{} is writable by group or others",
            open.display()
        )),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains(&format!("chmod go-w {}", open.display())),
        "{}",
        run.stderr
    );
}

#[test]
fn m7_config_symlink_is_refused_even_in_a_trusted_dir() {
    let (dir, file) = trusted_config();
    let link = dir.path().join("link.toml");
    symlink(&file, &link).unwrap();

    let run = show_config(&link);
    assert_ne!(run.code, 0, "accepted: {}", run.stdout);
    assert!(
        run.stderr.contains(&format!(
            "{} is a symlink, which keyward does not follow here: replace {} with the file it points to",
            link.display(),
            link.display()
        )),
        "{}",
        run.stderr
    );
}

#[test]
fn m7_config_that_is_a_fifo_is_refused_without_hanging() {
    let (dir, _) = trusted_config();
    let fifo = dir.path().join("fifo.toml");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    // Opening a FIFO for reading blocks until a writer comes: keyward must not even try.
    let mut cmd = keyward_cmd("http://127.0.0.1:9");
    cmd.arg("--config").arg(&fifo).arg("config");
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > std::time::Duration::from_secs(10) {
            child.kill().unwrap();
            panic!("keyward hangs on a FIFO given as its config");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!(
            "{} is a FIFO, not a regular file: replace {} with a regular file",
            fifo.display(),
            fifo.display()
        )),
        "{stderr}"
    );
}

/// moto with alice holding one active key, a host whose cache already has `keys/` and
/// `users/` (root's, as a root run before this change could have left them).
fn alice_and_a_cache() -> (Moto, tempfile::TempDir, KeyPair, String, Host) {
    let moto = Moto::start();
    let tmp = tempfile::tempdir().unwrap();
    let k = KeyPair::generate(tmp.path(), "k", "ed25519", "k");
    let iam = moto.iam();
    iam.user("alice");
    let id = iam.key("alice", &k.line(), true);
    let host = Host::new(&moto, EVERYONE);
    let cache = host.dir.path().join("cache");
    for sub in ["keys", "users"] {
        std::fs::create_dir_all(cache.join(sub)).unwrap();
        chmod(&cache.join(sub), 0o755);
    }
    chmod(&cache, 0o755);
    (moto, tmp, k, id, host)
}

#[test]
fn cache_symlinked_or_corrupt_key_file_is_refused_with_a_warning() {
    let (_moto, tmp, k, id, host) = alice_and_a_cache();
    let keys = host.dir.path().join("cache/keys");
    // A valid key line behind a symlink: never read through the link.
    let elsewhere = tmp.path().join("planted");
    std::fs::write(&elsewhere, format!("{}\n", k.line())).unwrap();
    symlink(&elsewhere, keys.join(&id)).unwrap();

    let run = host.keyward(&["authorized-keys", "alice"]).ok();
    assert_eq!(run.keys(), vec![k.type_and_blob()], "served from IAM");
    let path = keys.join(&id);
    assert!(
        run.stderr
            .contains(&format!("{} is a symlink", path.display())),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(&format!(
            "rm {} (keyward fetches it again from IAM)",
            path.display()
        )),
        "{}",
        run.stderr
    );

    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, "garbage\n").unwrap();
    let run = host.keyward(&["authorized-keys", "alice"]).ok();
    assert_eq!(run.keys(), vec![k.type_and_blob()]);
    assert!(
        run.stderr
            .contains(&format!("{} is corrupt", path.display())),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(&format!("rm {}", path.display())),
        "{}",
        run.stderr
    );
}

#[test]
fn cache_symlinked_subdirectory_is_refused_with_a_clear_error() {
    let (_moto, tmp, k, _id, host) = alice_and_a_cache();
    let keys = host.dir.path().join("cache/keys");
    std::fs::remove_dir(&keys).unwrap();
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    chmod(&elsewhere, 0o755);
    symlink(&elsewhere, &keys).unwrap();

    let run = host.keyward(&["authorized-keys", "alice"]).ok();
    assert_eq!(run.keys(), vec![k.type_and_blob()], "IAM still answers");
    assert!(
        run.stderr.contains(&format!(
            "{} is a symlink: rm {} && keyward install",
            keys.display(),
            keys.display()
        )),
        "{}",
        run.stderr
    );
    assert_eq!(
        std::fs::read_dir(&elsewhere).unwrap().count(),
        0,
        "nothing written through the link"
    );
}

#[test]
fn cache_root_run_writes_nothing() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test checks what a run as root does: run it as root (scripts/test does)"
    );
    let moto = Moto::start();
    let tmp = tempfile::tempdir().unwrap();
    let k = KeyPair::generate(tmp.path(), "k", "ed25519", "k");
    let iam = moto.iam();
    iam.user("alice");
    iam.key("alice", &k.line(), true);
    let host = Host::new(&moto, EVERYONE);
    let cache = host.dir.path().join("cache");

    for _ in 0..2 {
        let run = host.keyward(&["authorized-keys", "alice"]).ok();
        assert_eq!(run.keys(), vec![k.type_and_blob()]);
        assert!(!cache.exists(), "a root run created {}", cache.display());
    }
    // An existing (root-owned) cache is left exactly as it is.
    for sub in ["keys", "users"] {
        std::fs::create_dir_all(cache.join(sub)).unwrap();
    }
    let run = host.keyward(&["authorized-keys", "alice"]).ok();
    assert_eq!(run.keys(), vec![k.type_and_blob()]);
    for sub in ["keys", "users"] {
        assert_eq!(
            std::fs::read_dir(cache.join(sub)).unwrap().count(),
            0,
            "a root run wrote into {sub}/"
        );
    }
}
