//! End-to-end: connect by name (issue 12) with the real OpenSSH client and servers and moto's
//! EC2, in a throwaway namespace (`tests/e2e/ns`): `keyward ssh-config`'s Host blocks, `keyward
//! proxy` resolving Name tags to sshd processes on 127.0.0.x, host keys that follow the
//! instance, an ambiguous name, `keyward hosts`, and `--via` a jump host.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod e2e_support;

use e2e_support::scenario;

#[test]
fn ssh_reaches_instances_by_name_and_host_keys_follow_the_instance() {
    scenario("reach_proxy");
}
