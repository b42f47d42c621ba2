//! End-to-end cache hygiene: root runs of `authorized-keys`, `keyward install`'s ownership
//! repair (refusing symlinks) and the fix text `authorized-keys` and `doctor` share, with the
//! real sshd, shadow-utils and moto inside a throwaway namespace made by `tests/e2e/ns`.
//!
//! The scenario is `tests/e2e/scenarios/cache_ownership_repair.sh`; the test asserts that it
//! exits 0, printing everything it said otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod e2e_support;

use e2e_support::scenario;

#[test]
fn cache_root_run_leaves_no_cache_and_install_gives_it_to_keyward_refusing_symlinks() {
    scenario("cache_ownership_repair");
}
