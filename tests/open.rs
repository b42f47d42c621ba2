//! `keyward open`, `close` and `open --sweep` as a person runs them: the real binary against
//! moto's EC2 (a VPC, a security group carrying the marker tag, one without, and an instance
//! in both), with a loopback HTTP server standing in for the public-address service.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use common::{keyward_cmd, Moto, Run};
use serde_json::Value;

/// What moto's STS says the test credentials are.
const ME: &str = "arn:aws:sts::123456789012:user/moto";
const BOB: &str = "arn:aws:iam::123456789012:user/bob";

struct World {
    moto: Moto,
    dir: tempfile::TempDir,
    /// The group carrying `keyward:open`, and one that does not.
    sg: String,
    plain_sg: String,
    /// The address service's answers: (IPv4, IPv6).
    answers: Arc<Mutex<(String, String)>>,
}

/// Runs a boto3 script against this test's moto.
fn python(moto: &Moto, script: &str, args: &[&str]) -> String {
    common::boto3(&moto.endpoint(), script, args)
}

/// A loopback HTTP server answering every request with the current IPv4 answer (`/v6`: the
/// IPv6 one); its base URL.
fn address_service(answers: Arc<Mutex<(String, String)>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let v6 = String::from_utf8_lossy(&request).starts_with("GET /v6 ");
            let body = {
                let answers = answers.lock().unwrap();
                format!("{}\n", if v6 { &answers.1 } else { &answers.0 })
            };
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    format!("http://127.0.0.1:{port}")
}

fn world() -> World {
    let moto = Moto::start();
    let ids = python(
        &moto,
        r#"
vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.0.0/24")["Subnet"]["SubnetId"]
def group(name, tags):
    spec = [{"ResourceType": "security-group", "Tags": tags}] if tags else []
    return ec2.create_security_group(GroupName=name, Description=name, VpcId=vpc,
        TagSpecifications=spec)["GroupId"]
sg = group("ssh-open", [{"Key": "keyward:open", "Value": ""}])
plain = group("web", [])
ami = ec2.describe_images()["Images"][0]["ImageId"]
ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1, SubnetId=subnet,
    SecurityGroupIds=[sg, plain],
    TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "web-1"}]}])
print(sg, plain)
"#,
        &[],
    );
    let mut ids = ids.split_whitespace().map(str::to_owned);
    let (sg, plain_sg) = (ids.next().unwrap(), ids.next().unwrap());
    let answers = Arc::new(Mutex::new((
        "198.51.100.7".to_owned(),
        "2001:db8::7".to_owned(),
    )));
    let url = address_service(answers.clone());
    let dir = tempfile::tempdir().unwrap();
    let settings = dir.path().join("config/keyward");
    std::fs::create_dir_all(&settings).unwrap();
    std::fs::write(
        settings.join("laptop.toml"),
        format!("[reach.open]\nip_url = \"{url}/\"\nip6_url = \"{url}/v6\"\n"),
    )
    .unwrap();
    World {
        moto,
        dir,
        sg,
        plain_sg,
        answers,
    }
}

impl World {
    /// `keyward ARGS` on the laptop whose lock lives in `cache`.
    fn command_on(&self, cache: &str, args: &[&str]) -> Command {
        let mut cmd = keyward_cmd(&self.moto.endpoint());
        cmd.env("XDG_CONFIG_HOME", self.dir.path().join("config"))
            .env("XDG_CACHE_HOME", self.dir.path().join(cache))
            .args(args);
        cmd
    }

    fn keyward(&self, args: &[&str]) -> Run {
        Run::of(self.command_on("cache", args))
    }

    fn set_address(&self, v4: &str) {
        self.answers.lock().unwrap().0 = v4.to_owned();
    }

    /// The ingress rules of `group` as moto lists them.
    fn rules(&self, group: &str) -> Vec<Value> {
        let out = python(
            &self.moto,
            r#"
rules = ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [sys.argv[1]]}])
print(json.dumps([r for r in rules["SecurityGroupRules"] if not r["IsEgress"]]))
"#,
            &[group],
        );
        serde_json::from_str(&out).unwrap()
    }

    /// A rule of someone else's, as keyward would have made it for them.
    fn seed_rule(&self, cidr: &str, owner: &str, expires: &str) -> String {
        python(
            &self.moto,
            r#"
sg, cidr, owner, expires = sys.argv[1:5]
tags = [{"Key": "keyward:owner", "Value": owner}, {"Key": "keyward:expires", "Value": expires}]
r = ec2.authorize_security_group_ingress(GroupId=sg,
    IpPermissions=[{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": cidr}]}],
    TagSpecifications=[{"ResourceType": "security-group-rule", "Tags": tags}] if owner else [])
print(r["SecurityGroupRules"][0]["SecurityGroupRuleId"])
"#,
            &[&self.sg, cidr, owner, expires],
        )
        .trim()
        .to_owned()
    }
}

fn tag<'v>(rule: &'v Value, key: &str) -> &'v str {
    rule["Tags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["Key"] == key)
        .unwrap_or_else(|| panic!("no tag {key} on {rule}"))["Value"]
        .as_str()
        .unwrap()
}

fn expires(rule: &Value) -> SystemTime {
    humantime::parse_rfc3339(tag(rule, "keyward:expires")).unwrap()
}

fn ids(rules: &[Value]) -> Vec<String> {
    let mut ids: Vec<String> = rules
        .iter()
        .map(|r| r["SecurityGroupRuleId"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

fn in_an_hour() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now() + Duration::from_secs(3600)).to_string()
}

#[test]
fn open_records_owner_and_expiry_extends_for_the_same_address_and_replaces_for_a_new_one() {
    let w = world();
    let before = SystemTime::now();
    w.keyward(&["open", "web-1", "--ttl", "10m"]).ok();
    let rules = w.rules(&w.sg);
    assert_eq!(rules.len(), 1, "{rules:?}");
    let first = &rules[0];
    assert_eq!(first["CidrIpv4"], "198.51.100.7/32");
    assert_eq!(
        (
            first["IpProtocol"].as_str(),
            first["FromPort"].as_i64(),
            first["ToPort"].as_i64()
        ),
        (Some("tcp"), Some(22), Some(22))
    );
    assert_eq!(tag(first, "keyward:owner"), ME);
    let expiry = expires(first);
    assert!(
        expiry >= before + Duration::from_secs(590)
            && expiry <= SystemTime::now() + Duration::from_secs(610),
        "{first}"
    );
    assert!(
        first["Description"].as_str().unwrap().contains(ME),
        "{first}"
    );
    // The group without the marker is never opened.
    assert!(w.rules(&w.plain_sg).is_empty());

    // Same address: the same rule, a later expiry.
    w.keyward(&["open", "web-1", "--ttl", "1h"]).ok();
    let rules = w.rules(&w.sg);
    assert_eq!(ids(&rules), ids(std::slice::from_ref(first)));
    assert!(
        expires(&rules[0]) >= expiry + Duration::from_secs(3000),
        "{rules:?}"
    );

    // A new address: a new rule, the old one gone.
    w.set_address("203.0.113.9");
    let run = w.keyward(&["open", "web-1"]).ok();
    let rules = w.rules(&w.sg);
    assert_eq!(rules.len(), 1, "{rules:?}");
    assert_eq!(rules[0]["CidrIpv4"], "203.0.113.9/32");
    assert_ne!(
        rules[0]["SecurityGroupRuleId"],
        first["SecurityGroupRuleId"]
    );
    assert!(
        run.stdout.contains("your address changed"),
        "{}",
        run.stdout
    );
}

#[test]
fn expired_rules_of_anyone_are_swept_by_open_and_by_sweep_and_others_are_left_alone() {
    let w = world();
    let bobs_expired = w.seed_rule("192.0.2.1/32", BOB, "2020-01-01T00:00:00Z");
    let bobs_live = w.seed_rule("192.0.2.2/32", BOB, &in_an_hour());
    let not_keywards = w.seed_rule("192.0.2.3/32", "", "");
    let run = w.keyward(&["open", "--sg", &w.sg]).ok();
    assert!(
        run.stdout.contains(&format!("revoke {bobs_expired}")),
        "{}",
        run.stdout
    );
    let left = ids(&w.rules(&w.sg));
    assert!(!left.contains(&bobs_expired), "{left:?}");
    assert!(
        left.contains(&bobs_live) && left.contains(&not_keywards),
        "{left:?}"
    );
    assert_eq!(
        left.len(),
        3,
        "mine, Bob's live one, the untagged one: {left:?}"
    );

    let again = w.seed_rule("192.0.2.4/32", BOB, "2021-06-01T12:00:00Z");
    w.keyward(&["open", "--sweep"]).ok();
    let after = ids(&w.rules(&w.sg));
    assert!(!after.contains(&again), "{after:?}");
    assert_eq!(after, left, "the sweep removes only the expired rule");
}

#[test]
fn two_concurrent_opens_leave_one_rule() {
    let w = world();
    // Two runs on one laptop (one lock) and one on another laptop (its own lock).
    let children: Vec<_> = [("cache", "web-1"), ("cache", "web-1"), ("cache2", "web-1")]
        .iter()
        .map(|(cache, host)| {
            w.command_on(cache, &["open", host])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let rules = w.rules(&w.sg);
    assert_eq!(rules.len(), 1, "{rules:?}");
    assert_eq!(tag(&rules[0], "keyward:owner"), ME);
}

#[test]
fn ipv6_makes_a_128_rule() {
    let w = world();
    w.keyward(&["open", "web-1", "--ipv6"]).ok();
    let rules = w.rules(&w.sg);
    assert_eq!(rules.len(), 1, "{rules:?}");
    assert_eq!(rules[0]["CidrIpv6"], "2001:db8::7/128");
    assert_eq!(tag(&rules[0], "keyward:owner"), ME);
}

#[test]
fn close_removes_only_the_callers_rules() {
    let w = world();
    w.keyward(&["open", "web-1"]).ok();
    let bobs = w.seed_rule("192.0.2.2/32", BOB, &in_an_hour());
    assert_eq!(w.rules(&w.sg).len(), 2);
    let run = w.keyward(&["close", "web-1"]).ok();
    assert!(run.stdout.contains("closed"), "{}", run.stdout);
    assert_eq!(ids(&w.rules(&w.sg)), std::slice::from_ref(&bobs));
    w.keyward(&["open", "--sg", &w.sg, "--port", "2222"]).ok();
    w.keyward(&["close", "--all"]).ok();
    assert_eq!(ids(&w.rules(&w.sg)), [bobs]);
}

#[test]
fn dry_run_prints_the_steps_of_the_real_run_and_changes_nothing() {
    let w = world();
    let bobs_expired = w.seed_rule("192.0.2.1/32", BOB, "2020-01-01T00:00:00Z");
    let before = w.rules(&w.sg);
    let dry = w.keyward(&["open", "web-1", "--dry-run"]).ok();
    assert_eq!(w.rules(&w.sg), before);
    let lines: Vec<&str> = dry.stdout.lines().collect();
    assert!(
        lines[0].starts_with(&format!(
            "allow 198.51.100.7/32 on tcp/22 in {} until ",
            w.sg
        )),
        "{}",
        dry.stdout
    );
    assert!(
        lines[1].starts_with(&format!("revoke {bobs_expired} ")),
        "{}",
        dry.stdout
    );
    assert_eq!(lines[2], "(dry run: nothing was changed)");
    let real = w.keyward(&["open", "web-1"]).ok();
    let real_lines: Vec<&str> = real.stdout.lines().collect();
    // The same steps (the expiry may differ by the second that passed).
    assert_eq!(real_lines[1], lines[1]);
    assert!(real_lines[0].starts_with(&format!(
        "allow 198.51.100.7/32 on tcp/22 in {} until ",
        w.sg
    )));
    assert_eq!(w.rules(&w.sg).len(), 1);
}

#[test]
fn a_private_answer_from_the_address_service_opens_nothing() {
    let w = world();
    w.set_address("10.0.0.5");
    let run = w.keyward(&["open", "web-1"]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("not a public address"),
        "{}",
        run.stderr
    );
    assert!(w.rules(&w.sg).is_empty());
    // Nor a group that does not carry the marker, even when named.
    let run = w.keyward(&["open", "--sg", &w.plain_sg, "--ip", "198.51.100.7"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("does not carry the tag keyward:open"),
        "{}",
        run.stderr
    );
    assert!(w.rules(&w.plain_sg).is_empty());
    // Nor anything for a name no running instance has.
    let run = w.keyward(&["open", "web-9", "--ip", "198.51.100.7"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("no running instance"), "{}", run.stderr);
    assert!(w.rules(&w.sg).is_empty());
}
