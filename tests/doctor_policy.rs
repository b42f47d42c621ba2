//! `keyward policy` and `keyward doctor` as an admin runs them: the real binary, against moto.
//!
//! The host checks (sshd, PAM, schedule, cache dir) depend on the machine running the tests,
//! so these tests only assert on the config, credentials, IAM and clock checks; the host checks
//! are exercised for real in the e2e scenario `tests/e2e/scenarios/doctor.sh`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{keyward_cmd, Fault, FaultProxy, Host, Moto, Run};
use serde_json::Value;

const HOST_ACTIONS: [&str; 7] = [
    "iam:ListSSHPublicKeys",
    "iam:GetSSHPublicKey",
    "iam:ListGroupsForUser",
    "iam:GetUser",
    "iam:ListGroups",
    "iam:GetGroup",
    "iam:ListUsers",
];

fn policy(args: &[&str]) -> Run {
    let mut cmd = keyward_cmd("http://127.0.0.1:9");
    cmd.env("KEYWARD_CONFIG", "/nonexistent/keyward.toml")
        .arg("policy")
        .args(args);
    Run::of(cmd)
}

fn actions(doc: &Value) -> Vec<String> {
    doc["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["Action"].as_array().unwrap().iter())
        .map(|a| a.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn host_policy_is_valid_json_with_exactly_the_host_reads() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("k.toml"), "allowed_groups = [\"ops\"]\n").unwrap();
    for args in [&[][..], &["--host"][..]] {
        let mut cmd = keyward_cmd("http://127.0.0.1:9");
        cmd.arg("--config")
            .arg(tmp.path().join("k.toml"))
            .arg("policy")
            .args(args);
        let run = Run::of(cmd).ok();
        let doc: Value = serde_json::from_str(&run.stdout).unwrap();
        assert_eq!(doc["Version"], "2012-10-17");
        let mut got = actions(&doc);
        got.sort();
        let mut want: Vec<String> = HOST_ACTIONS.iter().map(|a| a.to_string()).collect();
        want.sort();
        assert_eq!(got, want);
        assert!(!run.stdout.contains("Upload"), "{}", run.stdout);
    }
}

#[test]
fn user_policy_lets_people_touch_only_their_own_keys() {
    let run = policy(&["--user"]).ok();
    let doc: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(doc["Version"], "2012-10-17");
    assert!(run.stdout.contains("${aws:username}"), "{}", run.stdout);
    assert_eq!(
        doc["Statement"][0]["Resource"],
        "arn:aws:iam::*:user/${aws:username}"
    );
    let got = actions(&doc);
    for a in [
        "iam:GetUser",
        "iam:ListSSHPublicKeys",
        "iam:GetSSHPublicKey",
        "iam:UploadSSHPublicKey",
        "iam:UpdateSSHPublicKey",
        "iam:DeleteSSHPublicKey",
    ] {
        assert!(got.iter().any(|g| g == a), "{a} missing from {got:?}");
    }
}

#[test]
fn role_arn_adds_the_assume_role_statement_for_the_hosts_own_role() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("k.toml");
    let arn = "arn:aws:iam::111122223333:role/keyward-reader";
    std::fs::write(
        &config,
        format!("allowed_groups = [\"ops\"]\niam_role_arn = \"{arn}\"\n"),
    )
    .unwrap();
    let run_with = |args: &[&str]| {
        let mut cmd = keyward_cmd("http://127.0.0.1:9");
        cmd.arg("--config").arg(&config).arg("policy").args(args);
        Run::of(cmd)
    };
    let host = run_with(&["--host"]).ok();
    assert!(host.stderr.contains(arn), "{}", host.stderr);
    assert!(host.stderr.contains("--assume-role"), "{}", host.stderr);
    serde_json::from_str::<Value>(&host.stdout).unwrap();

    let assume = run_with(&["--assume-role"]).ok();
    let doc: Value = serde_json::from_str(&assume.stdout).unwrap();
    assert_eq!(actions(&doc), ["sts:AssumeRole"]);
    assert_eq!(doc["Statement"][0]["Resource"], arn);

    std::fs::write(&config, "allowed_groups = [\"ops\"]\n").unwrap();
    let without = run_with(&["--assume-role"]);
    assert_eq!(without.code, 1, "{}", without.stderr);
    assert!(
        without.stderr.contains("iam_role_arn is not set"),
        "{}",
        without.stderr
    );
}

/// `keyward doctor --json` as a list of checks, keyed by name.
fn doctor(run: &Run) -> Vec<Value> {
    let v: Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("{e}: stdout {}\nstderr {}", run.stdout, run.stderr));
    v.as_array().unwrap().clone()
}

fn check<'a>(checks: &'a [Value], name: &str) -> &'a Value {
    checks
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {checks:?}"))
}

#[test]
fn doctor_reports_a_config_typo_with_its_key_and_line_and_exits_1() {
    let moto = Moto::start();
    let host = Host::new(&moto, "allowed_groups = [\"ops\"]\nmax_stal = \"1h\"");
    let run = host.keyward(&["doctor"]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let line = run
        .stdout
        .lines()
        .find(|l| l.starts_with("problem") && l.contains("config"))
        .unwrap_or_else(|| panic!("no config problem in:\n{}", run.stdout));
    assert!(line.contains("max_stal"), "{line}");
    // Host::write_config puts cache_dir and state_dir on lines 1 and 2.
    assert!(line.contains("line 4"), "{line}");
    assert!(
        run.stdout.contains("fix: correct that line in"),
        "{}",
        run.stdout
    );
    assert_eq!(run.iam_calls(), 0, "no IAM call with a broken config");
}

#[test]
fn doctor_says_where_credentials_come_from_and_that_every_read_is_allowed() {
    let moto = Moto::start();
    let iam = moto.iam();
    iam.user("alice");
    iam.group("ops", &["alice"]);
    let host = Host::new(&moto, "allowed_groups = [\"ops\"]");
    let run = host.keyward(&["doctor", "--json"]);
    let checks = doctor(&run);

    let config = check(&checks, "config");
    assert_eq!(config["status"], "ok", "{config}");
    assert!(
        config["detail"]
            .as_str()
            .unwrap()
            .contains(host.config_path().to_str().unwrap()),
        "{config}"
    );
    let creds = check(&checks, "credentials");
    assert_eq!(creds["status"], "ok", "{creds}");
    assert!(
        creds["detail"]
            .as_str()
            .unwrap()
            .contains("environment variables"),
        "{creds}"
    );
    assert!(
        creds["detail"].as_str().unwrap().contains("us-east-1"),
        "{creds}"
    );
    for action in HOST_ACTIONS {
        let c = check(&checks, action);
        assert_eq!(c["status"], "ok", "{c}");
    }
    // Real names were used where the lists were allowed.
    assert!(check(&checks, "iam:GetUser")["detail"]
        .as_str()
        .unwrap()
        .contains("alice"));
    assert!(check(&checks, "iam:GetGroup")["detail"]
        .as_str()
        .unwrap()
        .contains("ops"));
    let clock = check(&checks, "clock");
    assert_eq!(clock["status"], "ok", "{clock}");
    // One call per action: the probes are cheap. Plus the read of the `sync plan` check,
    // exactly what `keyward sync` reads: ListGroups and GetGroup ops.
    assert_eq!(check(&checks, "sync plan")["status"], "ok");
    assert_eq!(run.iam_calls(), HOST_ACTIONS.len() + 2);
}

#[test]
fn doctor_names_the_iam_action_the_host_is_denied() {
    // Seeding takes 5 requests (user, group, membership, policy, access key).
    let moto = Moto::start_enforcing_policies(5);
    let iam = moto.iam();
    iam.user("host");
    iam.group("ops", &["host"]);
    let allowed: Vec<&str> = HOST_ACTIONS
        .iter()
        .copied()
        .filter(|a| *a != "iam:GetGroup")
        .collect();
    iam.allow("host", &allowed);
    let (key, secret) = iam.access_key("host");
    let host = Host::new(&moto, "allowed_groups = [\"ops\"]");
    let mut cmd = keyward_cmd(&moto.endpoint());
    cmd.env("AWS_ACCESS_KEY_ID", key)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .arg("--config")
        .arg(host.config_path())
        .args(["doctor", "--json"]);
    let run = Run::of(cmd);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let checks = doctor(&run);
    let denied = check(&checks, "iam:GetGroup");
    assert_eq!(denied["status"], "problem", "{denied}");
    assert!(
        denied["fix"]
            .as_str()
            .unwrap()
            .contains("allow \"iam:GetGroup\""),
        "{denied}"
    );
    for action in allowed {
        let c = check(&checks, action);
        assert_eq!(c["status"], "ok", "{c}");
    }
}

/// H2: an answer missing what IAM always sends is a problem for doctor, not "ok, nothing there".
#[test]
fn h2_doctor_reports_a_malformed_answer_as_a_problem() {
    let moto = Moto::start();
    let iam = moto.iam();
    iam.user("alice");
    iam.group("ops", &["alice"]);
    let proxy = FaultProxy::start(&moto);
    let host = Host::via(&proxy.endpoint(), "allowed_groups = [\"ops\"]");
    proxy.set(&[
        Fault::on("ListGroups").drop("Groups"),
        Fault::on("ListSSHPublicKeys").drop("SSHPublicKeys"),
    ]);
    let run = host.keyward(&["doctor", "--json"]);
    let checks = doctor(&run);
    for (action, element) in [
        ("iam:ListGroups", "Groups"),
        ("iam:ListSSHPublicKeys", "SSHPublicKeys"),
    ] {
        let c = check(&checks, action);
        assert_eq!(c["status"], "problem", "{c}");
        assert!(c.to_string().contains(element), "{c}");
    }
    assert_eq!(check(&checks, "iam:GetUser")["status"], "ok");
}
