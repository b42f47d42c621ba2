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

mod e2e_support;

#[test]
fn systemd_timer_service_journal_fields_audit_and_uninstall_leave_the_host_unchanged() {
    let said = e2e_support::run_scenario("tests/e2e/ns-systemd", "systemd_timer_journal", &[]);
    assert!(
        said.contains("scenario tests/e2e/scenarios/systemd_timer_journal.sh passed"),
        "the scenario did not report passing:\n{said}"
    );
    assert!(
        said.contains("ns-systemd: host unchanged: /etc, /var"),
        "the runner did not confirm this host's /etc, /var, /tmp and /dev unchanged:\n{said}"
    );
}
