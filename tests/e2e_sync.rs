//! End-to-end: `keyward sync` applied for real (shadow-utils, visudo, sshd) against a moto IAM,
//! inside a throwaway namespace made by `tests/e2e/ns` (overlay /etc and /var, loopback-only
//! network, its own PID 1), so nothing here changes the machine the tests run on.
//!
//! The scenario is `tests/e2e/scenarios/sync.sh`; the test asserts that it exits 0, printing
//! everything it said otherwise. Missing prerequisites (root, openssh-server, sudo, iproute2,
//! the moto venv) fail the test with the fix.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

fn scenario(name: &str) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let started = Instant::now();
    let out = Command::new(repo.join("tests/e2e/ns"))
        .arg(repo.join("tests/e2e/scenarios").join(format!("{name}.sh")))
        .env("KEYWARD_BIN", env!("CARGO_BIN_EXE_keyward"))
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run tests/e2e/ns: {e} (run scripts/test)"));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "scenario {name} failed ({}) after {:.1?}; its output:\n{said}",
        out.status,
        started.elapsed()
    );
}

#[test]
fn sync_creates_locks_unlocks_deletes_and_changes_nothing_on_a_no_op_or_an_outage() {
    scenario("sync");
}
