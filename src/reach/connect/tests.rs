use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt as _;

use super::*;
use crate::issuer::handler::tests::block_on;
use crate::reach::resolve::tests::{instance, FakeEc2};

const A: &str = "i-0123456789abcdef0";

/// `open` for HOST on `port` at `now`, with the default connect timeout.
fn open_at(
    ec2: &FakeEc2,
    places: &Places,
    t: &Target,
    host: &str,
    port: u16,
    now: u64,
) -> Result<Connection, ConnectError> {
    block_on(open(
        ec2,
        places,
        t,
        host,
        port,
        now,
        proxy::CONNECT_TIMEOUT,
    ))
}

fn env(name: &str) -> Environment {
    Environment {
        name: name.into(),
        hosts: vec!["*.prod".into()],
        suffix: Some(".prod".into()),
        jump: Some("bastion.prod".into()),
        address: Some("public".into()),
        region: Some("eu-west-1".into()),
        ..Environment::default()
    }
}

#[test]
fn flags_over_the_environment_over_reach() {
    let settings = ReachSettings {
        jump: Some("global-bastion".into()),
        address: Some("private".into()),
        cache_ttl: Some("5s".into()),
        environments: vec![env("prod")],
        ..ReachSettings::default()
    };
    let plain = target(&settings, None, None).unwrap();
    assert_eq!(plain.jump.as_deref(), Some("global-bastion"));
    assert_eq!(plain.address, AddressMode::Private);
    assert_eq!(plain.ttl, Duration::from_secs(5));
    assert_eq!(plain.env, "");
    let prod = target(&settings, Some("prod"), None).unwrap();
    assert_eq!(prod.jump.as_deref(), Some("bastion.prod"));
    assert_eq!(prod.address, AddressMode::Public);
    assert_eq!(prod.suffix.as_deref(), Some(".prod"));
    assert_eq!(prod.region.as_deref(), Some("eu-west-1"));
    let via = target(&settings, Some("prod"), Some("alice@other")).unwrap();
    assert_eq!(via.jump.as_deref(), Some("alice@other"));
    assert_eq!(
        target(&ReachSettings::default(), None, None).unwrap().ttl,
        cache::DEFAULT_TTL
    );
    assert!(target(&settings, Some("qa"), None).is_err());
    assert!(target(&settings, None, Some("-oProxyCommand=id")).is_err());
    let bad = ReachSettings {
        address: Some("nearest".into()),
        ..ReachSettings::default()
    };
    assert!(target(&bad, None, None).is_err());
}

#[test]
fn a_jump_host_means_the_private_address_and_ssh_dash_w() {
    let web = instance(A, "web-1", "running", "10.0.0.1", "3.3.3.1");
    let mut t = Target::default();
    assert_eq!(
        route(&web, &t, 22).unwrap(),
        Route::Direct("3.3.3.1:22".parse().unwrap())
    );
    t.jump = Some("bastion".into());
    assert_eq!(
        route(&web, &t, 2222).unwrap(),
        Route::Via {
            jump: "bastion".into(),
            target: "10.0.0.1:2222".parse().unwrap()
        }
    );
}

/// `[reach]` with nothing set.
fn plain() -> Target {
    target(&ReachSettings::default(), None, None).unwrap()
}

fn places() -> (tempfile::TempDir, Places) {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let places = Places {
        cache: Some(Cache::new(tmp.path().join("cache"))),
        known_hosts: Some(tmp.path().join("known_hosts")),
    };
    (tmp, places)
}

#[test]
fn proxy_resolves_points_known_hosts_connects_and_then_uses_the_cache() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let ec2 = FakeEc2 {
        instances: vec![instance(A, "web-1", "running", "127.0.0.1", "")],
        ..FakeEc2::default()
    };
    let (_tmp, places) = places();
    let t = plain();
    for _ in 0..2 {
        match open_at(&ec2, &places, &t, "web-1", port, 1000).unwrap() {
            Connection::Stream { instance, stream } => {
                assert_eq!(instance.id, A);
                assert_eq!(stream.peer_addr().unwrap().port(), port);
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(ec2.calls.borrow().len(), 1, "the second run used the cache");
    let link = places.known_hosts.as_ref().unwrap().join("web-1");
    assert_eq!(
        std::fs::read_link(link).unwrap(),
        std::path::Path::new("by-instance").join(A)
    );
}

#[test]
fn a_cached_address_that_refuses_is_forgotten_and_ec2_asked_again() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (_tmp, places) = places();
    let cache = places.cache.as_ref().unwrap();
    // The cache still has the replaced instance, at an address nobody listens on.
    let old = instance("i-0123456789abcdef9", "web-1", "running", "127.0.0.2", "");
    cache.put("", "web-1", &old, 1000).unwrap();
    let ec2 = FakeEc2 {
        instances: vec![instance(A, "web-1", "running", "127.0.0.1", "")],
        ..FakeEc2::default()
    };
    let t = plain();
    match open_at(&ec2, &places, &t, "web-1", port, 1001).unwrap() {
        Connection::Stream { instance, .. } => assert_eq!(instance.id, A),
        other => panic!("{other:?}"),
    }
    assert_eq!(ec2.calls.borrow().len(), 1);
    assert_eq!(cache.get("", "web-1", 1001, t.ttl).unwrap().unwrap().id, A);
}

#[test]
fn through_a_jump_host_the_answer_is_an_ssh_command_line() {
    let ec2 = FakeEc2 {
        instances: vec![instance(A, "web-1", "running", "10.0.0.1", "3.3.3.1")],
        ..FakeEc2::default()
    };
    let t = Target {
        jump: Some("alice@bastion".into()),
        ..Target::default()
    };
    match open_at(&ec2, &Places::default(), &t, "web-1", 22, 0).unwrap() {
        Connection::Exec { argv, .. } => {
            assert_eq!(argv, ["-W", "10.0.0.1:22", "--", "alice@bastion"])
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn through_a_jump_host_a_cached_address_is_not_used() {
    // The cache still has the replaced instance: `ssh -W` to it would fail out of sight.
    let (_tmp, places) = places();
    let cache = places.cache.as_ref().unwrap();
    let old = instance("i-0123456789abcdef9", "web-1", "running", "10.0.0.9", "");
    cache.put("", "web-1", &old, 1000).unwrap();
    let ec2 = FakeEc2 {
        instances: vec![instance(A, "web-1", "running", "10.0.0.1", "")],
        ..FakeEc2::default()
    };
    let t = Target {
        jump: Some("alice@bastion".into()),
        ..plain()
    };
    match open_at(&ec2, &places, &t, "web-1", 22, 1001).unwrap() {
        Connection::Exec { instance, argv } => {
            assert_eq!(instance.id, A);
            assert_eq!(argv, ["-W", "10.0.0.1:22", "--", "alice@bastion"]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(ec2.calls.borrow().len(), 1);
    // The answer is still written, for direct connections and `hosts`.
    assert_eq!(cache.get("", "web-1", 1001, t.ttl).unwrap().unwrap().id, A);
}

#[test]
fn an_ambiguous_name_is_never_cached() {
    let ec2 = FakeEc2 {
        instances: vec![
            instance(A, "web-2", "running", "10.0.0.1", ""),
            instance("i-0123456789abcdef1", "web-2", "running", "10.0.0.2", ""),
        ],
        ..FakeEc2::default()
    };
    let (_tmp, places) = places();
    let t = plain();
    for _ in 0..2 {
        let err = open_at(&ec2, &places, &t, "web-2", 22, 0).unwrap_err();
        assert!(
            matches!(err, ConnectError::Resolve(ResolveError::Ambiguous { .. })),
            "{err}"
        );
    }
    assert_eq!(ec2.calls.borrow().len(), 2);
    assert!(!places.known_hosts.as_ref().unwrap().join("web-2").exists());
}
