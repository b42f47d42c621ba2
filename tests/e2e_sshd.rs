//! End-to-end: the real OpenSSH server, PAM, shadow-utils and a moto IAM, each scenario in its
//! own throwaway namespace made by `tests/e2e/ns` (overlay /etc and /var, loopback-only network,
//! its own PID 1), so nothing here changes the machine the tests run on.
//!
//! The scenarios are bash scripts in `tests/e2e/scenarios/`; each test runs one and asserts
//! that it exits 0, printing everything it said otherwise. Missing prerequisites (root,
//! openssh-server, iproute2, the moto venv) fail the test with the fix: run scripts/test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod e2e_support;

use e2e_support::scenario;

#[test]
fn owned_account_logs_in_with_active_key_only() {
    scenario("owned_account_publickey");
}

#[test]
fn disabled_key_deleted_user_and_other_groups_are_refused() {
    scenario("refusals");
}

#[test]
fn hostile_names_create_nothing_and_get_in_nowhere() {
    scenario("hostile_names");
}

#[test]
fn first_login_attempt_creates_the_account_with_the_hashed_uid() {
    scenario("create_on_login");
}

#[test]
fn command_in_place_before_install_keeps_working() {
    scenario("chain_legacy_command");
}

#[test]
fn second_install_changes_nothing_and_uninstall_restores() {
    scenario("install_idempotent");
}

#[test]
fn install_on_unvalidatable_sshd_config_changes_nothing() {
    scenario("install_refuses_broken_sshd_config");
}

#[test]
fn c3_pam_hook_tells_every_client_the_same_line() {
    scenario("pam_hook_tells_strangers_nothing");
}

#[test]
fn doctor_finds_the_missing_wiring_and_is_clean_after_install() {
    scenario("doctor");
}

#[test]
fn c1_c2_an_account_belongs_to_the_identity_it_was_made_for() {
    scenario("identity_binding");
}
