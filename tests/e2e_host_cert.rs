//! End-to-end: host certificates (issue 11) with the real OpenSSH client and server, moto's EC2,
//! IAM, STS and KMS, and `keyward ca serve`, in a throwaway namespace (`tests/e2e/ns`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod e2e_support;

use e2e_support::scenario;

#[test]
fn host_certificate_lets_ssh_trust_the_host_through_one_cert_authority_line() {
    scenario("host_certificate");
}
