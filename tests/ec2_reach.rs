//! keyward's own EC2 Query client (`ec2::query::AwsEc2`) against moto's EC2: the instances
//! `proxy` and `hosts` resolve (by Name tag, address, id, state, tag; every page) and the
//! security-group ingress rules `open` and `close` keep. Seeding goes through boto3 from the
//! repo's venv, as in tests/host_cert.rs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;

use common::{runtime, Moto};
use keyward::ec2::query::AwsEc2;
use keyward::ec2::{
    is_resource_id, Ec2, Ec2Error, IngressRule, Instance, InstanceFilter, Instances,
    NewIngressRule, RuleError, SecurityGroup, SecurityGroups,
};

/// Runs `script` (Python with boto3's `ec2` client in scope) against moto; its stdout, parsed
/// as JSON.
fn boto3(moto: &Moto, script: &str) -> serde_json::Value {
    serde_json::from_str(&common::boto3(&moto.endpoint(), script, &[])).unwrap()
}

/// A VPC 127.0.0.0/16 with a security group tagged `keyward:open` and instances at
/// 127.0.0.x: web-1 twice (the older one stopped), db (tag team=ops) and five more for a
/// second page. Returns the ids by label, and the VPC and group ids.
const SEED: &str = r#"
vpc = ec2.create_vpc(CidrBlock="127.0.0.0/16")["Vpc"]["VpcId"]
subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="127.0.0.0/24")["Subnet"]["SubnetId"]
ami = ec2.describe_images()["Images"][0]["ImageId"]
sg = ec2.create_security_group(GroupName="ssh", Description="ssh", VpcId=vpc,
    TagSpecifications=[{"ResourceType": "security-group",
                        "Tags": [{"Key": "keyward:open", "Value": ""}]}])["GroupId"]
other = ec2.create_security_group(GroupName="other", Description="other", VpcId=vpc)["GroupId"]
out = {"vpc": vpc, "sg": sg, "other": other}
def run(label, ip, tags):
    r = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1, SubnetId=subnet,
        PrivateIpAddress=ip, SecurityGroupIds=[sg],
        TagSpecifications=[{"ResourceType": "instance",
                            "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}])
    out[label] = r["Instances"][0]["InstanceId"]
run("old-web", "127.0.0.10", {"Name": "web-1"})
ec2.stop_instances(InstanceIds=[out["old-web"]])
run("web", "127.0.0.11", {"Name": "web-1"})
run("db", "127.0.0.20", {"Name": "db", "team": "ops"})
for n in range(5):
    run("spot-%d" % n, "127.0.0.%d" % (30 + n), {"Name": "spot-%d" % n})
print(json.dumps(out))
"#;

fn client(moto: &Moto, dir: &std::path::Path) -> AwsEc2 {
    let options = common::moto_client_options(moto, dir);
    runtime().block_on(AwsEc2::new(&options)).unwrap()
}

fn ids(found: &[Instance]) -> Vec<&str> {
    let mut ids: Vec<&str> = found.iter().map(|i| i.id.as_str()).collect();
    ids.sort();
    ids
}

#[test]
fn instances_are_found_by_name_address_id_state_and_tag_across_pages() {
    let moto = Moto::start();
    let seeded: BTreeMap<String, String> = serde_json::from_value(boto3(&moto, SEED)).unwrap();
    let id = |label: &str| seeded[label].as_str();
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let ec2 = client(&moto, dir.path()).with_page_size(5);
    let find = |filters: &[InstanceFilter]| rt.block_on(ec2.instances(filters)).unwrap();
    let name = |n: &str| InstanceFilter::Name(n.into());

    // Two instances under one Name: both found, each with its own state.
    let both = find(&[name("web-1")]);
    let mut expected = vec![id("old-web"), id("web")];
    expected.sort();
    assert_eq!(ids(&both), expected);
    let states: BTreeMap<&str, &str> = both
        .iter()
        .map(|i| (i.id.as_str(), i.state.as_str()))
        .collect();
    assert_eq!(states[id("old-web")], "stopped");
    assert_eq!(states[id("web")], "running");
    let running = find(&[name("web-1"), InstanceFilter::State("running".into())]);
    assert_eq!(ids(&running), [id("web")]);

    // By private address and by id: the whole instance, its VPC and its own security group.
    let db = find(&[InstanceFilter::PrivateIp("127.0.0.20".parse().unwrap())]);
    assert_eq!(ids(&db), [id("db")]);
    let db = &db[0];
    assert_eq!(db.name_tag.as_deref(), Some("db"));
    assert_eq!(db.private_ip, Some("127.0.0.20".parse().unwrap()));
    assert_eq!(db.vpc_id.as_deref(), Some(id("vpc")));
    assert_eq!(db.security_groups, [id("sg")]);
    assert_eq!(
        find(&[InstanceFilter::Id(id("db").into())]),
        std::slice::from_ref(db)
    );
    // instance() reads the same fields.
    assert_eq!(
        rt.block_on(ec2.instance(id("db"))).unwrap().as_ref(),
        Some(db)
    );
    let tagged = find(&[InstanceFilter::Tag {
        key: "team".into(),
        value: "ops".into(),
    }]);
    assert_eq!(ids(&tagged), [id("db")]);

    // Names are exact: no wildcard, no other instance's name.
    assert_eq!(find(&[name("web-*")]), []);
    assert_eq!(find(&[name("web")]), []);
    assert_eq!(
        find(&[InstanceFilter::PublicIp("198.51.100.7".parse().unwrap())]),
        []
    );

    // No filter: all eight instances over two pages of five, each once.
    let all = find(&[]);
    assert_eq!(all.len(), 8, "{:?}", ids(&all));
    let mut every: Vec<&str> = seeded
        .iter()
        .filter(|(label, _)| !matches!(label.as_str(), "vpc" | "sg" | "other"))
        .map(|(_, id)| id.as_str())
        .collect();
    every.sort();
    assert_eq!(ids(&all), every);
}

fn new_rule(group: &str, cidr: &str, owner: &str) -> NewIngressRule {
    NewIngressRule {
        group_id: group.into(),
        port: 22,
        cidr: cidr.parse().unwrap(),
        description: format!("keyward open by {owner}"),
        tags: vec![
            ("keyward:owner".into(), owner.into()),
            ("keyward:expires".into(), "2026-11-30T19:00:00Z".into()),
        ],
    }
}

#[test]
fn ingress_rules_are_authorized_with_tags_read_back_retagged_and_revoked() {
    let moto = Moto::start();
    let seeded: BTreeMap<String, String> = serde_json::from_value(boto3(&moto, SEED)).unwrap();
    let (sg, other, vpc) = (&seeded["sg"], &seeded["other"], &seeded["vpc"]);
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let ec2 = client(&moto, dir.path()).with_page_size(5);

    // Groups: the tagged one by its tag; both by id; an unknown id is NotFound.
    let tagged = rt
        .block_on(ec2.tagged_security_groups("keyward:open"))
        .unwrap();
    assert_eq!(
        tagged,
        [SecurityGroup {
            id: sg.clone(),
            name: "ssh".into(),
            vpc_id: Some(vpc.clone()),
            tags: vec![("keyward:open".into(), String::new())],
        }]
    );
    let both = rt
        .block_on(ec2.security_groups(&[other.clone(), sg.clone()]))
        .unwrap();
    let mut names: Vec<&str> = both.iter().map(|g| g.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["other", "ssh"]);
    assert!(matches!(
        rt.block_on(ec2.security_groups(&["sg-0123456789abcdef0".into()])),
        Err(Ec2Error::NotFound(_))
    ));
    assert_eq!(
        rt.block_on(ec2.tagged_security_groups("nobody")),
        Ok(vec![])
    );

    // A new group has no ingress rule (its egress rule is left out).
    assert_eq!(rt.block_on(ec2.ingress_rules(sg)), Ok(vec![]));

    // Authorize with tags: the rule reads back with its CIDR, port, description and tags.
    let alice = new_rule(
        sg,
        "198.51.100.7/32",
        "arn:aws:iam::123456789012:user/alice",
    );
    let id = rt.block_on(ec2.authorize_ingress(&alice)).unwrap();
    assert!(is_resource_id("sgr", &id), "{id}");
    let rules = rt.block_on(ec2.ingress_rules(sg)).unwrap();
    assert_eq!(
        rules,
        [IngressRule {
            id: id.clone(),
            group_id: sg.clone(),
            protocol: "tcp".into(),
            from_port: 22,
            to_port: 22,
            cidr: Some("198.51.100.7/32".parse().unwrap()),
            description: Some(alice.description.clone()),
            tags: alice.tags.clone(),
        }]
    );
    // The same rule again is Duplicate, and nothing is added.
    assert_eq!(
        rt.block_on(ec2.authorize_ingress(&alice)),
        Err(RuleError::Duplicate)
    );
    assert_eq!(rt.block_on(ec2.ingress_rules(sg)).unwrap().len(), 1);

    // tag_rule overwrites one tag and keeps the other.
    let later = vec![(
        "keyward:expires".to_owned(),
        "2026-11-30T20:00:00Z".to_owned(),
    )];
    rt.block_on(ec2.tag_rule(&id, &later)).unwrap();
    let retagged = rt.block_on(ec2.ingress_rules(sg)).unwrap();
    let mut tags = retagged[0].tags.clone();
    tags.sort();
    assert_eq!(
        tags,
        [
            (
                "keyward:expires".to_owned(),
                "2026-11-30T20:00:00Z".to_owned()
            ),
            (
                "keyward:owner".into(),
                "arn:aws:iam::123456789012:user/alice".into()
            ),
        ]
    );

    // An IPv6 /128 rule beside it, and six more (moto ignores MaxResults for rules, so their
    // pagination is covered by the unit tests).
    let v6 = new_rule(sg, "2001:db8::7/128", "arn:aws:iam::123456789012:user/bob");
    let v6_id = rt.block_on(ec2.authorize_ingress(&v6)).unwrap();
    let mut extra = Vec::new();
    for n in 1..=6 {
        let rule = new_rule(sg, &format!("203.0.113.{n}/32"), "carol");
        extra.push(rt.block_on(ec2.authorize_ingress(&rule)).unwrap());
    }
    let rules = rt.block_on(ec2.ingress_rules(sg)).unwrap();
    assert_eq!(rules.len(), 8);
    let six = rules.iter().find(|r| r.id == v6_id).unwrap();
    assert_eq!(six.cidr, Some("2001:db8::7/128".parse().unwrap()));
    assert_eq!(six.tags, v6.tags);
    // The other group's rules are its own.
    assert_eq!(rt.block_on(ec2.ingress_rules(other)), Ok(vec![]));

    // Revoke removes exactly the rules named; revoking one again is NotFound.
    rt.block_on(ec2.revoke_ingress(sg, &[id.clone(), extra[0].clone()]))
        .unwrap();
    let left: Vec<String> = rt
        .block_on(ec2.ingress_rules(sg))
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(left.len(), 6);
    assert!(!left.contains(&id) && !left.contains(&extra[0]) && left.contains(&v6_id));
    assert_eq!(
        rt.block_on(ec2.revoke_ingress(sg, std::slice::from_ref(&id))),
        Err(RuleError::NotFound)
    );
    // Nothing invalid is sent.
    assert!(matches!(
        rt.block_on(ec2.revoke_ingress(sg, &["sgr-1;x".into()])),
        Err(RuleError::Ec2(Ec2Error::Invalid(_)))
    ));
}

#[test]
fn a_denied_call_names_the_ec2_action_to_allow() {
    // Free actions: the user, its policy and key, the VPC and the group.
    let moto = Moto::start_enforcing_policies(5);
    let iam = moto.iam();
    iam.user("reader");
    iam.allow("reader", &["ec2:DescribeSecurityGroupRules"]);
    let key = iam.access_key("reader");
    let seeded = boto3(
        &moto,
        r#"
vpc = ec2.create_vpc(CidrBlock="127.0.0.0/16")["Vpc"]["VpcId"]
print(json.dumps(ec2.create_security_group(GroupName="ssh", Description="ssh", VpcId=vpc)["GroupId"]))
"#,
    );
    let sg = seeded.as_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = common::moto_aws_config_as(&moto, dir.path(), (&key.0, &key.1));
    let rt = runtime();
    let ec2 = rt
        .block_on(AwsEc2::new(&common::client_options(config)))
        .unwrap();

    // Allowed: reading the rules.
    assert_eq!(rt.block_on(ec2.ingress_rules(sg)), Ok(vec![]));
    let denied = |result: Result<(), RuleError>| match result {
        Err(RuleError::Ec2(Ec2Error::AccessDenied { action, .. })) => action,
        other => panic!("{other:?}"),
    };
    let rule = new_rule(sg, "198.51.100.7/32", "reader");
    assert_eq!(
        denied(rt.block_on(ec2.authorize_ingress(&rule)).map(|_| ())),
        "ec2:AuthorizeSecurityGroupIngress"
    );
    assert_eq!(
        denied(rt.block_on(ec2.revoke_ingress(sg, &["sgr-0123456789abcdef0".into()]))),
        "ec2:RevokeSecurityGroupIngress"
    );
    assert_eq!(
        denied(rt.block_on(ec2.tag_rule("sgr-0123456789abcdef0", &rule.tags))),
        "ec2:CreateTags"
    );
    match rt.block_on(ec2.instances(&[InstanceFilter::Name("web-1".into())])) {
        Err(Ec2Error::AccessDenied { action, .. }) => assert_eq!(action, "ec2:DescribeInstances"),
        other => panic!("{other:?}"),
    }
    match rt.block_on(ec2.tagged_security_groups("keyward:open")) {
        Err(Ec2Error::AccessDenied { action, .. }) => {
            assert_eq!(action, "ec2:DescribeSecurityGroups")
        }
        other => panic!("{other:?}"),
    }
}
