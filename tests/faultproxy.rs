//! The fault-injecting proxy (tests/faultproxy.py) does what each fault says, seen through the
//! same aws-sdk-iam client keyward uses, against a real moto behind it. Other tests trust it to
//! produce exactly these answers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use aws_sdk_iam::config::retry::RetryConfig;
use aws_sdk_iam::config::timeout::TimeoutConfig;
use aws_sdk_iam::error::ProvideErrorMetadata;
use common::{Fault, FaultProxy, Moto};

/// An SDK client to `endpoint` without retries (one request per call), bounded to 3 s.
fn client(endpoint: &str) -> aws_sdk_iam::Client {
    let conf = aws_sdk_iam::Config::builder()
        .behavior_version(aws_sdk_iam::config::BehaviorVersion::latest())
        .region(aws_sdk_iam::config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_iam::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .operation_timeout(Duration::from_secs(3))
                .build(),
        )
        .build();
    aws_sdk_iam::Client::from_conf(conf)
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// moto with ops = {alice, bob} and dev = {}, a proxy in front of it, and a client to the proxy.
fn setup() -> (
    Moto,
    FaultProxy,
    aws_sdk_iam::Client,
    tokio::runtime::Runtime,
) {
    let moto = Moto::start();
    let iam = moto.iam();
    iam.user("alice");
    iam.user("bob");
    iam.group("ops", &["alice", "bob"]);
    iam.group("dev", &[]);
    let proxy = FaultProxy::start(&moto);
    let client = client(&proxy.endpoint());
    (moto, proxy, client, rt())
}

/// The raw HTTP answer (status line, headers, body) to GetGroup `group` from 127.0.0.1:`port`.
fn raw_get_group(port: u16, group: &str) -> String {
    use std::io::{Read, Write};
    let body = format!("Action=GetGroup&GroupName={group}&Version=2010-05-08");
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "POST / HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=testing/20240101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn without_rules_every_request_is_forwarded_and_logged() {
    let (_moto, proxy, client, rt) = setup();
    let out = rt
        .block_on(client.get_group().group_name("ops").send())
        .unwrap();
    let members: Vec<_> = out.users.into_iter().map(|u| u.user_name).collect();
    assert_eq!(members, ["alice", "bob"]);
    rt.block_on(client.list_groups().send()).unwrap();
    assert_eq!(
        proxy.requests(),
        [
            ("GetGroup".into(), "ops".into(), "-".into()),
            ("ListGroups".into(), "-".into(), "-".into())
        ]
    );
}

#[test]
fn throttle_and_500_answer_as_iam_does_and_only_for_the_named_user() {
    let (_moto, proxy, client, rt) = setup();
    proxy.set(&[
        Fault::on("ListGroupsForUser").name("alice").throttle(),
        Fault::on("ListUsers").server_error(),
    ]);
    let err = rt
        .block_on(client.list_groups_for_user().user_name("alice").send())
        .unwrap_err();
    assert_eq!(err.code(), Some("Throttling"), "{err:?}");
    assert_eq!(err.message(), Some("Rate exceeded"));
    assert_eq!(err.raw_response().unwrap().status().as_u16(), 400);
    // bob is not named by the rule: forwarded.
    let bob = rt
        .block_on(client.list_groups_for_user().user_name("bob").send())
        .unwrap();
    assert_eq!(bob.groups[0].group_name, "ops");
    let err = rt.block_on(client.list_users().send()).unwrap_err();
    assert_eq!(err.code(), Some("ServiceFailure"), "{err:?}");
    assert_eq!(err.raw_response().unwrap().status().as_u16(), 500);
    let faults: Vec<_> = proxy.requests().into_iter().map(|r| r.2).collect();
    assert_eq!(faults, ["throttle", "-", "500"]);
}

#[test]
fn times_limits_a_rule_and_clear_removes_it() {
    let (_moto, proxy, client, rt) = setup();
    proxy.set(&[Fault::on("ListGroups").throttle().times(1)]);
    assert!(rt.block_on(client.list_groups().send()).is_err());
    assert!(rt.block_on(client.list_groups().send()).is_ok());
    proxy.set(&[Fault::on("ListGroups").server_error()]);
    assert!(rt.block_on(client.list_groups().send()).is_err());
    proxy.clear();
    assert!(rt.block_on(client.list_groups().send()).is_ok());
    let faults: Vec<_> = proxy.requests().into_iter().map(|r| r.2).collect();
    assert_eq!(faults, ["throttle", "-", "500", "-"]);
}

#[test]
fn hang_answers_nothing_until_the_client_gives_up() {
    let (_moto, proxy, client, rt) = setup();
    proxy.set(&[Fault::on("GetUser").hang()]);
    let started = Instant::now();
    let err = rt
        .block_on(client.get_user().user_name("alice").send())
        .unwrap_err();
    assert!(
        matches!(err, aws_sdk_iam::error::SdkError::TimeoutError(_)),
        "{err:?}"
    );
    assert!(started.elapsed() >= Duration::from_secs(3));
    // The proxy still serves others meanwhile (threaded).
    proxy.clear();
    assert!(rt
        .block_on(client.get_user().user_name("alice").send())
        .is_ok());
}

#[test]
fn drop_removes_the_element_so_the_sdk_sees_an_empty_list() {
    let (moto, proxy, client, rt) = setup();
    proxy.set(&[Fault::on("GetGroup").name("ops").drop("Users")]);
    // The SDK fills the missing required list with an empty one: the answer H2 is about.
    let out = rt
        .block_on(client.get_group().group_name("ops").send())
        .unwrap();
    assert!(out.users.is_empty());
    assert_eq!(out.group.unwrap().group_name, "ops");
    assert!(raw_get_group(moto.port, "ops").contains("<Users><member>"));
    // Empty elements go too.
    proxy.set(&[Fault::on("GetGroup").drop("Users")]);
    assert!(raw_get_group(moto.port, "dev").contains("<Users/>"));
    let out = rt
        .block_on(client.get_group().group_name("dev").send())
        .unwrap();
    assert!(out.users.is_empty());
    proxy.set(&[Fault::on("ListGroups").drop("Groups")]);
    let out = rt.block_on(client.list_groups().send()).unwrap();
    assert!(out.groups.is_empty());
    assert_eq!(
        proxy.requests().last().unwrap(),
        &("ListGroups".into(), "-".into(), "drop:Groups".into())
    );
}

#[test]
fn truncate_claims_more_pages_without_a_marker() {
    let (_moto, proxy, client, rt) = setup();
    proxy.set(&[Fault::on("ListUsers").truncate()]);
    let out = rt.block_on(client.list_users().send()).unwrap();
    assert!(out.is_truncated);
    assert_eq!(out.marker, None);
    assert_eq!(out.users.len(), 2);
}

#[test]
fn badxml_is_a_200_cut_in_the_middle() {
    let (moto, proxy, client, rt) = setup();
    proxy.set(&[Fault::on("GetGroup").bad_xml()]);
    let body = |raw: String| raw.split_once("\r\n\r\n").unwrap().1.to_owned();
    let whole = body(raw_get_group(moto.port, "ops"));
    let cut = raw_get_group(proxy.port(), "ops");
    assert!(cut.starts_with("HTTP/1.1 200"), "{cut}");
    let cut = body(cut);
    assert!(cut.len() <= whole.len() / 2 + 1, "{cut}");
    assert!(whole.starts_with(&cut), "{cut}\n{whole}");
    // Worse than an error: the SDK reads what it can of a cut body and answers Ok with the
    // members before the cut (here alice, not bob). H2's check must refuse it.
    match rt.block_on(client.get_group().group_name("ops").send()) {
        Ok(out) => assert!(out.users.len() < 2, "{out:?}"),
        Err(err) => assert_eq!(err.raw_response().unwrap().status().as_u16(), 200),
    }
}
