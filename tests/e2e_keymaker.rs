//! End-to-end: a keymaker 1.1 host moved to keyward by following docs/keymaker-migration.md,
//! inside a throwaway namespace (`tests/e2e/ns`, with /usr overlaid: keymaker's install writes
//! /usr/sbin). keymaker 1.1.0 comes from PyPI into target/e2e-keymaker-venv, built here by
//! scripts/lib.sh's `keymaker_venv` (outside the namespace, which has no network).
//!
//! The scenario is `tests/e2e/scenarios/keymaker_migration.sh`: keymaker's own install,
//! account creation and sync_groups, a login through keymaker, then the guide's commands in
//! order and logins over the real sshd for the five cases of issue 10.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod e2e_support;

use std::process::{Command, Stdio};

use e2e_support::{repo, scenario_with};

#[test]
fn keymaker_host_migrates_by_the_guide_and_every_person_keeps_or_is_told_their_access() {
    let built = Command::new("bash")
        .args([
            "-c",
            "set -euo pipefail; . scripts/lib.sh; keymaker_venv; printf '%s' \"$KEYMAKER_VENV\"",
        ])
        .current_dir(repo())
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .expect("cannot run bash");
    assert!(
        built.status.success(),
        "scripts/lib.sh keymaker_venv failed (network to PyPI?)"
    );
    let venv = String::from_utf8(built.stdout).unwrap();
    scenario_with(
        "keymaker_migration",
        &[("E2E_OVERLAY_USR", "1"), ("E2E_KEYMAKER_VENV", &venv)],
    );
}
