//! End-to-end: `keyward install --jump` on the real OpenSSH server in a throwaway namespace
//! (tests/e2e/ns), with a second sshd behind it: `ssh -J` gets through, and nothing else does.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod e2e_support;

use e2e_support::scenario;

#[test]
fn jump_host_lets_ssh_j_through_and_refuses_shells_and_other_ports() {
    scenario("jump_host");
}
