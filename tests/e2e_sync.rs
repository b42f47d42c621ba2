//! End-to-end: `keyward sync` applied for real (shadow-utils, visudo, sshd) against a moto IAM,
//! inside a throwaway namespace made by `tests/e2e/ns` (overlay /etc and /var, loopback-only
//! network, its own PID 1), so nothing here changes the machine the tests run on.
//!
//! The scenario is `tests/e2e/scenarios/sync.sh`; the test asserts that it exits 0, printing
//! everything it said otherwise. Missing prerequisites (root, openssh-server, sudo, iproute2,
//! the moto venv) fail the test with the fix.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod e2e_support;

use e2e_support::scenario;

#[test]
fn sync_creates_locks_unlocks_deletes_and_changes_nothing_on_a_no_op_or_an_outage() {
    scenario("sync");
}
