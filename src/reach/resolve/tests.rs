use std::cell::RefCell;

use super::*;
use crate::issuer::handler::tests::block_on;

/// EC2 in memory: answers filters as DescribeInstances does and records each call.
#[derive(Default)]
pub(crate) struct FakeEc2 {
    pub instances: Vec<Instance>,
    pub calls: RefCell<Vec<Vec<InstanceFilter>>>,
    pub fail: Option<Ec2Error>,
}

impl Instances for FakeEc2 {
    async fn instances(&self, filters: &[InstanceFilter]) -> Result<Vec<Instance>, Ec2Error> {
        self.calls.borrow_mut().push(filters.to_vec());
        if let Some(e) = &self.fail {
            return Err(e.clone());
        }
        Ok(self
            .instances
            .iter()
            .filter(|i| {
                filters.iter().all(|f| match f {
                    InstanceFilter::Id(id) => &i.id == id,
                    InstanceFilter::Name(n) => i.name_tag.as_deref() == Some(n.as_str()),
                    InstanceFilter::PrivateIp(ip) => i.private_ip == Some(*ip),
                    InstanceFilter::PublicIp(ip) => i.public_ip == Some(*ip),
                    InstanceFilter::State(s) => &i.state == s,
                    InstanceFilter::Tag { .. } => false,
                })
            })
            .cloned()
            .collect())
    }
}

pub(crate) fn instance(id: &str, name: &str, state: &str, private: &str, public: &str) -> Instance {
    Instance {
        id: id.into(),
        state: state.into(),
        name_tag: (!name.is_empty()).then(|| name.into()),
        private_ip: private.parse().ok(),
        public_ip: public.parse().ok(),
        ..Instance::default()
    }
}

const A: &str = "i-0123456789abcdef0";
const B: &str = "i-0123456789abcdef1";
const C: &str = "i-0123456789abcdef2";

fn fleet() -> FakeEc2 {
    FakeEc2 {
        instances: vec![
            instance(A, "web-1", "running", "10.0.0.1", "3.3.3.1"),
            instance(B, "web-2", "running", "10.0.0.2", ""),
            instance(C, "web-2", "running", "10.0.0.3", ""),
            instance("i-0123456789abcdef3", "old", "stopped", "10.0.0.4", ""),
            instance("i-0123456789abcdef4", "web-1", "terminated", "10.0.0.9", ""),
        ],
        ..FakeEc2::default()
    }
}

#[test]
fn host_is_classified_as_id_address_or_name() {
    assert_eq!(parse_host(A, None).unwrap(), Lookup::Id(A.into()));
    assert_eq!(
        parse_host("10.0.0.1", None).unwrap(),
        Lookup::Ip("10.0.0.1".parse().unwrap())
    );
    assert_eq!(
        parse_host("fd00::1", None).unwrap(),
        Lookup::Ip("fd00::1".parse().unwrap())
    );
    assert_eq!(
        parse_host("[fd00::1]", None).unwrap(),
        Lookup::Ip("fd00::1".parse().unwrap())
    );
    assert_eq!(
        parse_host("web-1", None).unwrap(),
        Lookup::Name("web-1".into())
    );
    // An id-like text of the wrong length is a name.
    assert_eq!(
        parse_host("i-0123", None).unwrap(),
        Lookup::Name("i-0123".into())
    );
}

#[test]
fn environment_suffix_is_stripped_before_the_lookup() {
    assert_eq!(
        parse_host("web-1.prod", Some(".prod")).unwrap(),
        Lookup::Name("web-1".into())
    );
    assert_eq!(
        parse_host("WEB-1.PROD", Some(".prod")).unwrap(),
        Lookup::Name("WEB-1".into())
    );
    assert_eq!(
        parse_host(&format!("{A}.prod"), Some(".prod")).unwrap(),
        Lookup::Id(A.into())
    );
    // Without the suffix, the name is looked up as typed; the suffix alone is not a name.
    assert_eq!(
        parse_host("web-1", Some(".prod")).unwrap(),
        Lookup::Name("web-1".into())
    );
    assert!(parse_host(".prod", Some(".prod")).is_err());
    assert!(parse_host("-x.prod", Some(".prod")).is_err());
}

#[test]
fn hosts_that_could_be_an_option_a_path_or_a_shell_word_are_refused() {
    for bad in [
        "",
        "-oProxyCommand=x",
        ".hidden",
        "..",
        "a/b",
        "../../etc/passwd",
        "a b",
        "a\nb",
        "a;b",
        "$(id)",
        "a'b",
        "web*",
        "x:y",
        &"a".repeat(MAX_HOST_LEN + 1),
    ] {
        let err = parse_host(bad, None).unwrap_err();
        assert!(matches!(err, ResolveError::InvalidHost { .. }), "{bad:?}");
        assert!(!err.to_string().contains('\n'), "{err}");
    }
}

#[test]
fn a_unique_running_name_resolves_with_one_call() {
    let ec2 = fleet();
    let found = block_on(resolve(&ec2, &Lookup::Name("web-1".into()))).unwrap();
    assert_eq!(found.id, A);
    assert_eq!(
        *ec2.calls.borrow(),
        [vec![
            InstanceFilter::Name("web-1".into()),
            InstanceFilter::State("running".into())
        ]]
    );
}

#[test]
fn an_ambiguous_name_fails_listing_every_running_candidate() {
    let err = block_on(resolve(&fleet(), &Lookup::Name("web-2".into()))).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, ResolveError::Ambiguous { ref candidates, .. } if candidates.len() == 2));
    assert!(text.contains("matches 2 running instances"), "{text}");
    assert!(
        text.contains(&format!("{B}  name web-2  running  private 10.0.0.2")),
        "{text}"
    );
    assert!(
        text.contains(&format!("{C}  name web-2  running  private 10.0.0.3")),
        "{text}"
    );
}

#[test]
fn a_name_with_nothing_running_lists_the_stopped_candidates() {
    let ec2 = fleet();
    let err = block_on(resolve(&ec2, &Lookup::Name("old".into()))).unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("no running instance has Name tag \"old\""),
        "{text}"
    );
    assert!(
        text.contains("i-0123456789abcdef3  name old  stopped"),
        "{text}"
    );
    assert_eq!(ec2.calls.borrow().len(), 2);
    let err = block_on(resolve(&ec2, &Lookup::Name("nothing".into()))).unwrap_err();
    assert_eq!(
        err.to_string(),
        "no running instance has Name tag \"nothing\""
    );
}

#[test]
fn an_address_is_tried_private_first_then_public() {
    let ec2 = fleet();
    let found = block_on(resolve(&ec2, &Lookup::Ip("10.0.0.2".parse().unwrap()))).unwrap();
    assert_eq!(found.id, B);
    assert_eq!(ec2.calls.borrow().len(), 1);
    let ec2 = fleet();
    let found = block_on(resolve(&ec2, &Lookup::Ip("3.3.3.1".parse().unwrap()))).unwrap();
    assert_eq!(found.id, A);
    assert_eq!(
        *ec2.calls.borrow(),
        [
            vec![InstanceFilter::PrivateIp("3.3.3.1".parse().unwrap())],
            vec![InstanceFilter::PublicIp("3.3.3.1".parse().unwrap())]
        ]
    );
    // An address only a terminated instance had: not running, and said so.
    let err = block_on(resolve(&fleet(), &Lookup::Ip("10.0.0.9".parse().unwrap()))).unwrap_err();
    assert!(err.to_string().contains("terminated"), "{err}");
}

#[test]
fn an_id_resolves_only_when_that_instance_runs() {
    assert_eq!(
        block_on(resolve(&fleet(), &Lookup::Id(A.into())))
            .unwrap()
            .id,
        A
    );
    let err = block_on(resolve(&fleet(), &Lookup::Id("i-0123456789abcdef3".into()))).unwrap_err();
    assert!(matches!(err, ResolveError::NotRunning { .. }), "{err}");
}

#[test]
fn an_answer_that_is_not_about_the_question_is_no_candidate() {
    let lookup = Lookup::Name("web-1".into());
    let err = choose(
        &lookup,
        vec![instance(B, "web-10", "running", "10.0.0.2", "")],
    )
    .unwrap_err();
    assert!(
        matches!(err, ResolveError::NotRunning { ref candidates, .. } if candidates.is_empty())
    );
}

#[test]
fn an_ec2_outage_is_an_error_not_an_empty_answer() {
    let ec2 = FakeEc2 {
        fail: Some(Ec2Error::Unreachable("timeout".into())),
        ..fleet()
    };
    let err = block_on(resolve(&ec2, &Lookup::Name("web-1".into()))).unwrap_err();
    assert!(
        matches!(err, ResolveError::Ec2(Ec2Error::Unreachable(_))),
        "{err}"
    );
}

#[test]
fn hostile_name_tags_are_escaped_in_the_candidate_list() {
    let lookup = Lookup::Id(A.into());
    let err = choose(
        &lookup,
        vec![instance(A, "x\n\u{1b}[2Jevil", "stopped", "", "")],
    )
    .unwrap_err();
    let text = err.to_string();
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(!text.contains('\u{1b}'), "{text}");
}

#[test]
fn address_rule_private_through_a_jump_else_public_when_there_is_one() {
    let both = instance(A, "", "running", "10.0.0.1", "3.3.3.1");
    let private_only = instance(B, "", "running", "10.0.0.2", "");
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    assert_eq!(
        pick_address(&both, AddressMode::Auto, false).unwrap(),
        ip("3.3.3.1")
    );
    assert_eq!(
        pick_address(&both, AddressMode::Auto, true).unwrap(),
        ip("10.0.0.1")
    );
    assert_eq!(
        pick_address(&private_only, AddressMode::Auto, false).unwrap(),
        ip("10.0.0.2")
    );
    assert_eq!(
        pick_address(&both, AddressMode::Private, false).unwrap(),
        ip("10.0.0.1")
    );
    assert_eq!(
        pick_address(&both, AddressMode::Public, true).unwrap(),
        ip("3.3.3.1")
    );
    let err = pick_address(&private_only, AddressMode::Public, false).unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("instance {B} has no public address")),
        "{err}"
    );
    assert_eq!("auto".parse::<AddressMode>().unwrap(), AddressMode::Auto);
    assert!("Public".parse::<AddressMode>().is_err());
}

#[test]
fn tag_filters_are_key_equals_value() {
    assert_eq!(
        parse_tag_filter("tag:team=ops").unwrap(),
        InstanceFilter::Tag {
            key: "team".into(),
            value: "ops".into()
        }
    );
    assert_eq!(
        parse_tag_filter("tag:env=a=b").unwrap(),
        InstanceFilter::Tag {
            key: "env".into(),
            value: "a=b".into()
        }
    );
    for bad in ["team=ops", "tag:=x", "tag:team", "tag:a\nb=c"] {
        assert!(parse_tag_filter(bad).is_err(), "{bad:?}");
    }
}
