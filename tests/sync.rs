//! `keyward sync` against a real moto IAM, through the real binary.
//!
//! Only paths that change nothing on this machine run here: `--dry-run` (with and without
//! `--json`) and IAM failures, which stop a run before anything local is read or locked. Real
//! application runs in a namespace: tests/e2e/scenarios/sync.sh (tests/e2e_sync.rs).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Fault, FaultProxy, Host, Moto};
use serde_json::Value;

fn json(run: &common::Run) -> Value {
    serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", run.stdout, run.stderr))
}

/// IAM: ops = {alice, bob}, keyward_dev = {alice, carol}, admins = {bob}, other = {dave}.
fn seeded() -> (Moto, Host, Vec<String>) {
    let moto = Moto::start();
    let iam = moto.iam();
    let ids = ["alice", "bob", "carol", "dave"]
        .map(|u| iam.user(u))
        .to_vec();
    iam.group("ops", &["alice", "bob"]);
    iam.group("keyward_dev", &["alice", "carol"]);
    iam.group("admins", &["bob"]);
    iam.group("other", &["dave"]);
    let host = Host::new(
        &moto,
        "allowed_groups = [\"ops\"]\nsudo_groups = [\"admins\"]",
    );
    (moto, host, ids)
}

#[test]
fn dry_run_prints_the_plan_for_allowed_users_and_prefixed_groups() {
    let (_moto, host, _) = seeded();
    let run = host.keyward(&["sync", "--dry-run"]).ok();
    let out = &run.stdout;
    assert!(out.contains("dry run, nothing applied"), "{out}");
    assert!(out.contains("create group  dev (gid "), "{out}");
    assert!(out.contains("create user   alice (uid "), "{out}");
    assert!(out.contains("create user   bob (uid "), "{out}");
    // alice joins dev in her own useradd: no separate membership step.
    assert!(
        out.lines()
            .any(|l| l.contains("create user   alice (uid ") && l.ends_with(", in dev")),
        "{out}"
    );
    assert!(!out.contains("add member"), "{out}");
    assert!(out.contains("write sudoers for bob"), "{out}");
    // carol is in a prefixed group but not allowed; dave in neither.
    assert!(!out.contains("carol") && !out.contains("dave"), "{out}");
    assert!(
        !host.dir.path().join("state").exists(),
        "a dry run wrote state"
    );
}

#[test]
fn json_plan_lists_actions_in_order_with_ids_and_iam_call_count() {
    let (_moto, host, ids) = seeded();
    let run = host.keyward(&["sync", "--dry-run", "--json"]).ok();
    let report = json(&run);
    assert_eq!(report["dry_run"], true);
    assert_eq!(report["applied"], false);
    let actions: Vec<&str> = report["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "create_group",
            "create_user",
            "create_user",
            "write_sudoers"
        ]
    );
    let alice = &report["actions"][1];
    assert_eq!(alice["linux_name"], "alice");
    assert_eq!(alice["iam_user_id"], ids[0].as_str());
    assert_eq!(alice["groups"], serde_json::json!(["dev"]));
    assert_eq!(report["actions"][2]["groups"], serde_json::json!([]));
    let uid = alice["uid"].as_u64().unwrap();
    assert!((1_879_048_192..=2_147_352_575).contains(&uid), "{uid}");
    assert_eq!(report["summary"]["created"], 2);
    assert_eq!(report["summary"]["members_added"], 1);
    // ListGroups + GetGroup for keyward_dev, ops and admins; no per-user call.
    assert_eq!(report["iam_calls"], 4);
    assert_eq!(run.iam_calls(), 4);
}

#[test]
fn everyone_allowed_costs_list_users_and_no_per_user_call() {
    let (_moto, host, _) = seeded();
    host.write_config("allowed_groups = [\"*\"]");
    let run = host.keyward(&["sync", "--dry-run", "--json"]).ok();
    let report = json(&run);
    assert_eq!(report["summary"]["created"], 4);
    // ListGroups + GetGroup keyward_dev + ListUsers.
    assert_eq!(run.iam_calls(), 3);
}

#[test]
fn iam_outage_changes_nothing_and_exits_3_with_an_empty_plan() {
    let (mut moto, host, _) = seeded();
    moto.stop();
    let run = host.keyward(&["sync", "--dry-run", "--json"]);
    assert_eq!(
        run.code, 3,
        "stdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );
    let report = json(&run);
    assert_eq!(report["applied"], false);
    assert_eq!(report["actions"].as_array().unwrap().len(), 0);
    assert!(report["error"]
        .as_str()
        .unwrap()
        .contains("nothing changed"));
    assert!(
        run.stderr.contains("IAM could not be reached"),
        "{}",
        run.stderr
    );

    let run = host.keyward(&["sync", "--dry-run"]);
    assert_eq!(run.code, 3);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
}

#[test]
fn denied_iam_read_exits_4_naming_the_action() {
    let moto = Moto::start_enforcing_policies(4);
    let iam = moto.iam();
    iam.user("syncer");
    let (key, secret) = iam.access_key("syncer");
    iam.group("ops", &[]);
    iam.allow("syncer", &["iam:ListGroups"]);
    let host = Host::new(&moto, "allowed_groups = [\"ops\"]");
    let mut cmd = common::keyward_cmd(&moto.endpoint());
    cmd.env("AWS_ACCESS_KEY_ID", key)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .arg("--config")
        .arg(host.config_path())
        .args(["sync", "--dry-run"]);
    let run = common::Run::of(cmd);
    assert_eq!(
        run.code, 4,
        "stdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );
    assert!(run.stderr.contains("iam:GetGroup"), "{}", run.stderr);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
}

#[test]
fn sync_help_lists_its_flags() {
    // As root, a real run would change this machine: it runs only in tests/e2e_sync.rs.
    let (_moto, host, _) = seeded();
    let run = host.keyward(&["sync", "--help"]).ok();
    for flag in ["--dry-run", "--json", "--force"] {
        assert!(run.stdout.contains(flag), "{}", run.stdout);
    }
}

/// H2: through the fault proxy, a 200 answer missing a required element is an outage: exit 3,
/// an empty plan, nothing applied. (The SDK would read it as "no groups" / "no members", which
/// made sync delete groups and plan to lock everyone.)
fn h2_dry_run_through(fault: Fault) {
    let (moto, _direct, _) = seeded();
    let proxy = FaultProxy::start(&moto);
    let host = Host::via(
        &proxy.endpoint(),
        "allowed_groups = [\"ops\"]\nsudo_groups = [\"admins\"]",
    );
    // The same answers unchanged plan the accounts: the proxy alone changes nothing.
    let good = host.keyward(&["sync", "--dry-run", "--json"]).ok();
    assert_eq!(json(&good)["summary"]["created"], 2, "{}", good.stdout);

    let (action, element) = (fault.action.clone(), format!("{:?}", fault.kind));
    proxy.set(&[fault]);
    let run = host.keyward(&["sync", "--dry-run", "--json"]);
    assert_eq!(
        run.code, 3,
        "{action} {element}: stdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );
    let report = json(&run);
    assert_eq!(report["applied"], false);
    assert_eq!(report["actions"].as_array().unwrap().len(), 0, "{report}");
    let error = report["error"].as_str().unwrap();
    assert!(error.contains("nothing changed"), "{error}");
    assert!(error.contains(&action), "{error}");
    assert!(
        proxy.requests().iter().any(|r| r.0 == action && r.2 != "-"),
        "the fault was never applied: {:?}",
        proxy.requests()
    );
}

#[test]
fn h2_list_groups_without_groups_is_an_outage() {
    h2_dry_run_through(Fault::on("ListGroups").drop("Groups"));
}

#[test]
fn h2_get_group_without_users_is_an_outage() {
    h2_dry_run_through(Fault::on("GetGroup").name("ops").drop("Users"));
}

#[test]
fn h2_get_group_without_group_is_an_outage() {
    h2_dry_run_through(Fault::on("GetGroup").name("keyward_dev").drop("Group"));
}

#[test]
fn h2_list_users_without_users_is_an_outage() {
    let (moto, _direct, _) = seeded();
    let proxy = FaultProxy::start(&moto);
    let host = Host::via(&proxy.endpoint(), "allowed_groups = [\"*\"]");
    host.keyward(&["sync", "--dry-run"]).ok();
    proxy.set(&[Fault::on("ListUsers").drop("Users")]);
    let run = host.keyward(&["sync", "--dry-run", "--json"]);
    assert_eq!(run.code, 3, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(json(&run)["actions"].as_array().unwrap().len(), 0);
}

#[test]
fn h2_get_group_cut_in_the_middle_is_an_outage() {
    // The SDK reads the members before the cut and answers Ok: a partial list.
    h2_dry_run_through(Fault::on("GetGroup").name("ops").bad_xml());
}
