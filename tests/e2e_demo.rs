//! The demos `scripts/demo-certs` and `scripts/demo-reach`, run as a reader would run them (with
//! the binary cargo built, through `KEYWARD_BIN`), so that they cannot rot: each must finish,
//! and says what it checked. Every step of their namespace scripts fails the demo when what it
//! shows does not hold (a certificate login with a nonzero IAM count, a refused login that got
//! in, ...); these tests also read the lines a reader relies on.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod e2e_support;

use std::process::Command;

use e2e_support::{repo, run_checked};

/// Runs `scripts/NAME` as a reader would, and fails unless it passes and says each of `lines`.
fn demo_says(name: &str, lines: &[&str]) {
    let script = format!("scripts/{name}");
    let said = run_checked(Command::new(repo().join(&script)), &script, &[]);
    for line in lines {
        assert!(
            said.contains(line),
            "the demo did not say {line:?}:\n{said}"
        );
    }
    eprintln!("{said}");
}

#[test]
fn the_certificate_demo_runs_end_to_end() {
    demo_says(
        "demo-certs",
        &[
            "keyward: created KMS key",
            "issued a user certificate caller=\"arn:aws:iam::123456789012:user/alice\"",
            "user certificate",
            "host certificate issued",
            "logged in as alice on",
            "AWS requests the host made for this login (counted by a proxy in front of moto): 0",
            "keyward: iam_calls=0",
            "Host key verification failed.",
            "not in any of this issuer's allowed_groups",
            "alice@127.0.0.1: Permission denied",
            "certificate refused: sync locked the account",
            "demo finished",
        ],
    );
}

/// `scripts/demo-reach`, the same way: every step of `scripts/demo-reach-namespace.sh` fails the
/// demo when what it shows does not hold (a shell on the jump host, a login that reached the
/// wrong instance, a new instance's key trusted without asking, a rule that did not expire).
#[test]
fn the_reaching_hosts_demo_runs_end_to_end() {
    demo_says(
        "demo-reach",
        &[
            "jumpers:x:",
            "keyward: this is a jump host for group jumpers",
            "ProxyCommand /run/keyward/bin/keyward proxy --known-hosts /home/laptop/.local/state/keyward/known_hosts --env demo '%n' %p",
            "StrictHostKeyChecking ask",
            "Are you sure you want to continue connecting (yes/no/[fingerprint])?",
            " at 127.0.0.11\n",
            "target 127.0.0.11 port 22",
            "Host key verification failed.",
            " at 127.0.0.12\n",
            "allow 203.0.113.7/32 on tcp/22",
            "arn:aws:iam::123456789012:user/alice",
            "extend sgr-",
            "arn:aws:iam::123456789012:user/bob, expired",
            "demo finished",
        ],
    );
}
