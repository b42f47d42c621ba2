//! The documented exit codes (`keyward --help`, README "Exit codes"), checked per command class
//! through the real binary against moto: no AWS credentials exits 4, an unreachable IAM exits 3,
//! and the error that ends a command is told on one stderr line, once (issue 10: `sync` printed
//! the SDK chain in an ERROR log line and again as `keyward: sync: ...`).
//!
//! Only runs that change nothing here: IAM fails before any account could be created.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Host, Moto, Run};

/// How a command class is run, and what its failure must say.
struct Class {
    args: &'static [&'static str],
    /// A word of the error line for each failure: no credentials, IAM unreachable.
    says: [&'static str; 2],
}

const CLASSES: [Class; 4] = [
    // sshd's AuthorizedKeysCommand, nothing cached.
    Class {
        args: &["authorized-keys", "alice"],
        says: ["no usable AWS credentials", "IAM could not be reached"],
    },
    // The PAM hook as an admin runs it by hand (not under PAM, which always exits 1).
    Class {
        args: &["pam-create-account", "alice"],
        says: ["no usable AWS credentials", "IAM could not be reached"],
    },
    // The hourly job.
    Class {
        args: &["sync", "--dry-run"],
        says: ["no usable AWS credentials", "IAM could not be reached"],
    },
    // A laptop command.
    Class {
        args: &["list-keys", "--user", "alice"],
        says: ["no usable AWS credentials", "IAM could not be reached"],
    },
];

fn run(host: &Host, args: &[&str], credentials: bool) -> Run {
    let mut cmd = host.command();
    if !credentials {
        cmd.env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY");
    }
    cmd.env_remove("PAM_TYPE")
        .env("HOME", host.dir.path())
        .arg("--config")
        .arg(host.config_path())
        .args(args);
    Run::of(cmd)
}

/// The error is on exactly one stderr line, and that line is all stderr holds.
fn told_once(run: &Run, says: &str, what: &str) {
    let lines: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(
        lines.iter().filter(|l| l.contains(says)).count(),
        1,
        "{what}: {says:?} not on exactly one line:\n{}",
        run.stderr
    );
    assert_eq!(
        lines.len(),
        1,
        "{what}: more than the error:\n{}",
        run.stderr
    );
    assert_eq!(run.stdout, "", "{what}");
}

/// Every command class exits `code`, its error (`says[which]`) told once.
fn every_class(host: &Host, credentials: bool, code: i32, which: usize) {
    for class in &CLASSES {
        let what = class.args.join(" ");
        let r = run(host, class.args, credentials);
        assert_eq!(r.code, code, "{what}: {}", r.stderr);
        told_once(&r, class.says[which], &what);
    }
}

#[test]
fn missing_credentials_exit_4_in_every_command_class_told_once() {
    let moto = Moto::start();
    let host = Host::new(&moto, "allowed_groups = [\"*\"]");
    every_class(&host, false, 4, 0);
}

#[test]
fn unreachable_iam_exits_3_in_every_command_class_told_once() {
    let mut moto = Moto::start();
    let host = Host::new(&moto, "allowed_groups = [\"*\"]\nlookup_timeout = \"2s\"");
    moto.stop();
    every_class(&host, true, 3, 1);
}

#[test]
fn doctor_exits_1_when_a_check_finds_missing_credentials() {
    let moto = Moto::start();
    let host = Host::new(&moto, "allowed_groups = [\"*\"]");
    let r = run(&host, &["doctor"], false);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .lines()
            .any(|l| l.contains("credentials") && l.to_lowercase().contains("problem")),
        "{}",
        r.stdout
    );
}

#[test]
fn usage_error_exits_2() {
    let r = Run::of({
        let mut cmd = std::process::Command::new(common::BIN);
        cmd.args(["sync", "--no-such-flag"]);
        cmd
    });
    assert_eq!(r.code, 2, "{}", r.stderr);
}
