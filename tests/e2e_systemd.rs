//! End-to-end under a real systemd: `tests/e2e/ns-systemd` boots systemd as PID 1 of a
//! throwaway namespace (journald, dbus; overlay /etc, /var, /root; tmpfs /run, /home, /tmp; a
//! private /dev; loopback only) and runs `tests/e2e/scenarios/systemd_timer_journal.sh` in it:
//! install's timer, the sync service, keyward's journald fields, sshd logging to the journal,
//! `keyward audit` on that journal, uninstall.
//!
//! systemd as PID 1 is the one e2e piece that could reach this machine (it empties /tmp and
//! makes /dev/log when given the chance), so the runner also compares this host's /etc, /var,
//! /tmp and /dev before and after (what it compares: `host_snapshot` in the runner) and fails
//! when they differ; this test asserts both verdicts.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

#[test]
fn systemd_timer_service_journal_fields_audit_and_uninstall_leave_the_host_unchanged() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let started = Instant::now();
    let out = Command::new(repo.join("tests/e2e/ns-systemd"))
        .arg(repo.join("tests/e2e/scenarios/systemd_timer_journal.sh"))
        .env("KEYWARD_BIN", env!("CARGO_BIN_EXE_keyward"))
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run tests/e2e/ns-systemd: {e} (run scripts/test)"));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "ns-systemd failed ({}) after {:.1?}; its output:\n{said}",
        out.status,
        started.elapsed()
    );
    assert!(
        said.contains("scenario tests/e2e/scenarios/systemd_timer_journal.sh passed"),
        "the scenario did not report passing:\n{said}"
    );
    assert!(
        said.contains("ns-systemd: host unchanged: /etc, /var"),
        "the runner did not confirm this host's /etc, /var, /tmp and /dev unchanged:\n{said}"
    );
}
