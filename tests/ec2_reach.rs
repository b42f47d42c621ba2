//! keyward's own EC2 Query client (`ec2::query::AwsEc2`) against moto's EC2: the instances
//! `proxy` and `hosts` resolve (by Name tag, address, id, state, tag; every page) and the
//! security-group ingress rules `open` and `close` keep. Seeding goes through boto3 from the
//! repo's venv, as in tests/host_cert.rs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use common::{runtime, Moto};
use keyward::ec2::query::AwsEc2;
use keyward::ec2::{Ec2, Instance, InstanceFilter, Instances};
use keyward::iam::ClientOptions;

/// Runs `script` (Python with boto3's `ec2` client in scope) against moto; its stdout, parsed
/// as JSON.
fn boto3(moto: &Moto, script: &str) -> serde_json::Value {
    let python = common::venv_tool("python")
        .expect("no venv python with boto3: run scripts/test (it makes .venv)");
    let out = Command::new(&python)
        .env("AWS_ENDPOINT_URL", moto.endpoint())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .args([
            "-c",
            &format!("import json, boto3\nec2 = boto3.client(\"ec2\")\n{script}"),
        ])
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (run scripts/test)", python.display()));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
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
    let aws_config = dir.join("aws-config");
    std::fs::write(
        &aws_config,
        format!(
            "[default]\nregion = us-east-1\nendpoint_url = {}\naws_access_key_id = testing\n\
             aws_secret_access_key = testing\n",
            moto.endpoint()
        ),
    )
    .unwrap();
    let options = ClientOptions {
        timeout: Some(Duration::from_secs(20)),
        role_arn: None,
        aws_config_file: Some(aws_config),
    };
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
