//! End-to-end: `keyward sync` applied for real (shadow-utils, visudo, sshd) against a moto IAM,
//! inside a throwaway namespace made by `tests/e2e/ns` (overlay /etc and /var, loopback-only
//! network, its own PID 1), so nothing here changes the machine the tests run on.
//!
//! The scenarios are `tests/e2e/scenarios/sync.sh` and `sync_faults.sh`; each test asserts
//! that its scenario exits 0, printing everything it said otherwise. Missing prerequisites
//! (root, openssh-server, sudo, iproute2, the moto venv) fail the test with the fix.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod e2e_support;

use e2e_support::scenario;

#[test]
fn sync_creates_locks_unlocks_deletes_and_changes_nothing_on_a_no_op_or_an_outage() {
    scenario("sync");
}

/// H2: every way IAM can answer ListGroups or GetGroup badly (tests/faultproxy.py) makes sync
/// fail with /etc/passwd, group, shadow and gshadow byte-identical; pam-create-account creates
/// nothing on a malformed answer.
#[test]
fn h2_sync_and_pam_change_nothing_on_failed_or_malformed_iam_answers() {
    scenario("sync_faults");
}
