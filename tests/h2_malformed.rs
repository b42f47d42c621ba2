//! H2 (issue 8): a 200 answer missing an element IAM always sends is a failed read, never a
//! smaller truth. The real binary against moto behind tests/faultproxy.py: `authorized-keys`
//! serves the last verified set (within max_stale) or nothing with exit 3, and
//! `pam-create-account` decides nothing on such an answer.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Fault, FaultProxy, Host, KeyPair, Moto};

/// moto with IAM user alice (two Active keys) in group ops, a proxy in front of it, and a host
/// talking to the proxy with `config`.
fn alice_behind_a_proxy(config: &str) -> (Moto, FaultProxy, Host, Vec<String>, tempfile::TempDir) {
    let moto = Moto::start();
    let tmp = tempfile::tempdir().unwrap();
    let iam = moto.iam();
    iam.user("alice");
    let mut keys = Vec::new();
    for name in ["k1", "k2"] {
        let k = KeyPair::generate(tmp.path(), name, "ed25519", name);
        iam.key("alice", &k.line(), true);
        keys.push(k.type_and_blob());
    }
    keys.sort();
    iam.group("ops", &["alice"]);
    let proxy = FaultProxy::start(&moto);
    let host = Host::via(&proxy.endpoint(), config).run_by_service_user();
    (moto, proxy, host, keys, tmp)
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// After a good warm run, `fault` on every request: the stale set is served (an outage within
/// max_stale), never a reduced one; with max_stale = 0 nothing is served and the exit is 3.
fn serves_stale_or_nothing(config: &str, fault: Fault) {
    let (_moto, proxy, host, keys, _tmp) = alice_behind_a_proxy(&format!(
        "{config}\nmax_stale = \"1h\"\ngroup_cache_ttl = \"0s\""
    ));
    let warm = host.keyward(&["authorized-keys", "alice"]).ok();
    assert_eq!(sorted(warm.keys()), keys);

    let what = format!("{fault:?}");
    let action = fault.action.clone();
    proxy.set(&[fault]);
    let run = host.keyward(&["authorized-keys", "alice"]);
    assert_eq!(run.code, 0, "{what}: {}", run.stderr);
    assert_eq!(sorted(run.keys()), keys, "{what}: {}", run.stderr);
    assert!(
        run.stderr.contains("stale"),
        "{what}: served without saying it is stale: {}",
        run.stderr
    );
    assert!(
        proxy.requests().iter().any(|r| r.0 == action && r.2 != "-"),
        "{what}: the fault was never applied"
    );

    // Beyond max_stale: nothing, and the exit code of an outage.
    host.write_config(&format!(
        "{config}\nmax_stale = \"0s\"\ngroup_cache_ttl = \"0s\""
    ));
    let run = host.keyward(&["authorized-keys", "alice"]);
    assert_eq!(run.stdout, "", "{what}");
    assert_eq!(run.code, 3, "{what}: {}", run.stderr);

    // The malformed answer purged nothing: IAM answering again serves both keys.
    proxy.clear();
    let back = host.keyward(&["authorized-keys", "alice"]).ok();
    assert_eq!(sorted(back.keys()), keys, "{what}");
}

#[test]
fn h2_key_list_without_ssh_public_keys_is_an_outage_not_an_empty_set() {
    serves_stale_or_nothing(
        "allowed_groups = [\"*\"]",
        Fault::on("ListSSHPublicKeys")
            .name("alice")
            .drop("SSHPublicKeys"),
    );
}

#[test]
fn h2_group_list_without_groups_is_an_outage_not_no_groups() {
    serves_stale_or_nothing(
        "allowed_groups = [\"ops\"]",
        Fault::on("ListGroupsForUser").name("alice").drop("Groups"),
    );
}

#[test]
fn h2_key_list_cut_in_the_middle_is_an_outage() {
    serves_stale_or_nothing(
        "allowed_groups = [\"*\"]",
        Fault::on("ListSSHPublicKeys").name("alice").bad_xml(),
    );
}

#[test]
fn h2_key_without_its_status_is_an_outage() {
    // A member without <Status> reads as an Inactive key (a revocation) to the SDK.
    serves_stale_or_nothing(
        "allowed_groups = [\"*\"]",
        Fault::on("ListSSHPublicKeys").name("alice").drop("Status"),
    );
}

/// moto omits IsTruncated from complete ListSSHPublicKeys answers and the IAM model defaults it
/// to false: an answer without it and without a Marker is complete, and served live. (A Marker
/// without IsTruncated is refused: unit tests in src/iam/aws.rs.)
#[test]
fn h2_answers_without_is_truncated_and_without_marker_are_complete() {
    let (_moto, proxy, host, keys, _tmp) =
        alice_behind_a_proxy("allowed_groups = [\"ops\"]\ngroup_cache_ttl = \"0s\"");
    host.keyward(&["authorized-keys", "alice"]).ok();
    proxy.set(&[
        Fault::on("ListSSHPublicKeys").drop("IsTruncated"),
        Fault::on("ListGroupsForUser").drop("IsTruncated"),
    ]);
    let run = host.keyward(&["authorized-keys", "alice"]).ok();
    assert_eq!(sorted(run.keys()), keys);
    assert!(!run.stderr.contains("stale"), "{}", run.stderr);
    assert!(proxy
        .requests()
        .iter()
        .any(|r| r.0 == "ListGroupsForUser" && r.2 == "drop:IsTruncated"));
}

/// pam-create-account with a temp state_dir. Host-safe by construction: the IAM user has no SSH
/// key at all, so no answer can make it create an account on the machine running the tests
/// (account creation for real is in tests/e2e/scenarios/sync_faults.sh).
fn pam_host() -> (Moto, FaultProxy, Host) {
    let moto = Moto::start();
    let iam = moto.iam();
    iam.user("h2pam");
    iam.group("ops", &["h2pam"]);
    let proxy = FaultProxy::start(&moto);
    let host = Host::via(
        &proxy.endpoint(),
        "allowed_groups = [\"ops\"]\ncreate_on_login = true",
    );
    (moto, proxy, host)
}

#[test]
fn h2_pam_create_account_treats_a_malformed_answer_as_an_outage() {
    // What a real outage looks like to the caller (exit code and message).
    let (_moto, proxy, host) = pam_host();
    proxy.set(&[Fault::on("GetUser").server_error()]);
    let outage = host.keyward(&["pam-create-account", "h2pam"]);
    assert_ne!(outage.code, 0, "{}", outage.stderr);
    assert!(
        outage.stderr.contains("IAM could not be reached"),
        "{}",
        outage.stderr
    );
    for (fault, element) in [
        (Fault::on("GetUser").drop("User"), "<User>"),
        (Fault::on("GetUser").drop("UserId"), "<UserId>"),
        (
            Fault::on("ListSSHPublicKeys").drop("SSHPublicKeys"),
            "<SSHPublicKeys>",
        ),
        (Fault::on("ListGroupsForUser").drop("Groups"), "<Groups>"),
    ] {
        let (_moto, proxy, host) = pam_host();
        let what = format!("{fault:?}");
        proxy.set(&[fault]);
        let run = host.keyward(&["pam-create-account", "h2pam"]);
        assert_eq!(
            run.code, outage.code,
            "{what}: {}\n{}",
            run.stdout, run.stderr
        );
        assert!(run.stdout.is_empty(), "{what}: {}", run.stdout);
        assert!(
            run.stderr.contains("IAM could not be reached") && run.stderr.contains(element),
            "{what}: {}",
            run.stderr
        );
        // Not remembered as a refusal: the next attempt, with IAM answering, asks IAM again.
        proxy.clear();
        let before = proxy.count("GetUser");
        let again = host.keyward(&["pam-create-account", "h2pam"]).ok();
        assert!(
            proxy.count("GetUser") > before,
            "{what}: a malformed answer was remembered as a refusal: {}",
            again.stderr
        );
    }
}
