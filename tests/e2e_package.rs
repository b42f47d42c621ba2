//! End-to-end: the Debian package. `scripts/package --debug --no-build` wraps the binaries this
//! `cargo test` built (no release build: that costs minutes), then `tests/e2e/scenarios/package.sh`
//! installs it with dpkg inside a `tests/e2e/ns` namespace whose /usr is an overlay too
//! (E2E_OVERLAY_USR=1), so this host's /usr and dpkg database stay as they were; the test checks
//! that afterwards.
//!
//! Needs cargo-deb (scripts/test installs it; scripts/package installs it when missing), root,
//! and what the other e2e tests need.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod e2e_support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

/// What the host says about keyward being installed: must not change.
fn host_keyward_state() -> (bool, bool, String) {
    let dpkg = Command::new("dpkg-query")
        .args(["-W", "-f", "${Status} ${Version}", "keyward"])
        .output()
        .unwrap();
    (
        Path::new("/usr/bin/keyward").exists(),
        Path::new("/usr/share/man/man8/keyward.8.gz").exists(),
        String::from_utf8_lossy(&dpkg.stdout).into_owned(),
    )
}

#[test]
fn deb_installs_files_only_and_keyward_install_from_it_lets_iam_users_in() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let started = Instant::now();
    let before = host_keyward_state();

    let out_dir = repo.join("target/e2e-package");
    let _ = std::fs::remove_dir_all(&out_dir);
    let package = Command::new(repo.join("scripts/package"))
        .args(["--debug", "--no-build", "--fast", "--output"])
        .arg(&out_dir)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("cannot run scripts/package: {e}"));
    assert!(
        package.status.success(),
        "scripts/package failed ({})",
        package.status
    );
    let deb = String::from_utf8(package.stdout).unwrap();
    let deb = Path::new(deb.lines().last().unwrap().trim());
    let deb = deb.canonicalize().unwrap();
    let relative = deb
        .strip_prefix(repo.canonicalize().unwrap())
        .unwrap_or_else(|_| panic!("{} is not inside the repository", deb.display()));
    eprintln!(
        "package built in {:.1?}: {}",
        started.elapsed(),
        deb.display()
    );

    let relative = relative.to_str().unwrap();
    e2e_support::scenario_with(
        "package",
        &[("KEYWARD_DEB", relative), ("E2E_OVERLAY_USR", "1")],
    );
    assert_eq!(
        host_keyward_state(),
        before,
        "installing the package in the namespace changed this host's /usr or dpkg database"
    );
}
