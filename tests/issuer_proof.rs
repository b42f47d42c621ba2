//! The issuer's AWS plumbing against moto: proofs signed by `issuer::proof` and replayed by
//! `issuer::sts::StsReplay` (IAM users, tampered proofs, assumed-role sessions), and
//! `ec2::query::AwsEc2` reading instances made with RunInstances.
//!
//! Seeding that has no SDK in the tree (STS AssumeRole, EC2) goes through keyward's own SigV4
//! signing and HTTP client, the same code under test; what those calls return is checked here
//! against moto's answers, not assumed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, SystemTime};

use aws_credential_types::provider::SharedCredentialsProvider;
use aws_credential_types::Credentials;
use common::Moto;
use keyward::ec2::query::AwsEc2;
use keyward::ec2::Ec2;
use keyward::http::{self, Target};
use keyward::issuer::proof::sign_proof;
use keyward::issuer::sts::StsReplay;
use keyward::issuer::{IssueError, Sts, KEY_HEADER};
use keyward::sigv4::{sign_request, AwsContext, Signer};

const FP: &str = "SHA256:ih6KZKdgxS4wmu4zYv06BjkpyC031OfMGfuJPnjI/rw";
const AUDIENCE: &str = "https://issuer.example.com";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn creds(key: &str, secret: &str, token: Option<&str>) -> Credentials {
    Credentials::new(key, secret, token.map(str::to_owned), None, "test")
}

fn admin() -> Credentials {
    creds("testing", "testing", None)
}

/// A signed AWS Query API POST to moto; (status, body).
fn query(
    moto: &Moto,
    credentials: &Credentials,
    service: &str,
    params: &[(&str, &str)],
) -> (u16, String) {
    let body: String = params
        .iter()
        .map(|(k, v)| format!("{}={}", form(k), form(v)))
        .collect::<Vec<_>>()
        .join("&");
    let target = Target::parse(&moto.endpoint()).unwrap();
    let content_type = (
        "content-type",
        "application/x-www-form-urlencoded; charset=utf-8",
    );
    let signed = sign_request(
        &Signer {
            credentials,
            region: "us-east-1",
            service,
            now: SystemTime::now(),
        },
        "POST",
        &target,
        &[content_type],
        body.as_bytes(),
    )
    .unwrap();
    let mut headers: Vec<(&str, &str)> = vec![content_type];
    headers.extend(signed.iter().map(|(n, v)| (n.as_str(), v.as_str())));
    let answer = runtime()
        .block_on(http::post(
            &moto.endpoint(),
            &headers,
            body.as_bytes(),
            Duration::from_secs(30),
            1 << 20,
        ))
        .unwrap();
    (answer.status, String::from_utf8(answer.body).unwrap())
}

fn form(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The text of the first `<name>` in `xml`.
fn element<'a>(xml: &'a str, name: &str) -> &'a str {
    let open = format!("<{name}>");
    let start = xml
        .find(&open)
        .unwrap_or_else(|| panic!("no <{name}> in {xml}"))
        + open.len();
    let end = start + xml[start..].find(&format!("</{name}>")).unwrap();
    &xml[start..end]
}

fn replay(
    moto: &Moto,
    credentials: &Credentials,
    tamper: impl FnOnce(&mut keyward::issuer::Proof),
) -> Result<keyward::issuer::Caller, IssueError> {
    let target = Target::parse(&moto.endpoint()).unwrap();
    let mut proof = sign_proof(
        credentials,
        "us-east-1",
        &target,
        AUDIENCE,
        FP,
        SystemTime::now(),
    )
    .unwrap();
    tamper(&mut proof);
    let sts = StsReplay::new(&moto.endpoint(), Duration::from_secs(30)).unwrap();
    runtime().block_on(sts.caller(&proof))
}

#[test]
fn a_proof_signed_with_an_iam_users_key_names_that_user() {
    let moto = Moto::start();
    let iam = moto.iam();
    let user_id = iam.user("alice");
    let (key, secret) = iam.access_key("alice");
    let caller = replay(&moto, &creds(&key, &secret, None), |_| {}).unwrap();
    assert_eq!(caller.arn, "arn:aws:iam::123456789012:user/alice");
    assert_eq!(caller.user_id, user_id);
    assert_eq!(caller.account, "123456789012");
}

#[test]
fn a_proof_whose_key_binding_was_changed_after_signing_is_refused_by_sts() {
    // Seeding: CreateUser, CreateAccessKey, PutUserPolicy; from then on moto checks signatures.
    let moto = Moto::start_enforcing_policies(3);
    let iam = moto.iam();
    iam.user("alice");
    let (key, secret) = iam.access_key("alice");
    iam.allow("alice", &["sts:GetCallerIdentity"]);
    let alice = creds(&key, &secret, None);

    // The untouched proof passes: the refusal below is about the change, nothing else.
    let caller = replay(&moto, &alice, |_| {}).unwrap();
    assert_eq!(caller.arn, "arn:aws:iam::123456789012:user/alice");

    let other_key = "SHA256:AAAAZKdgxS4wmu4zYv06BjkpyC031OfMGfuJPnjI/rw";
    let err = replay(&moto, &alice, |proof| {
        proof.headers.insert(KEY_HEADER.into(), other_key.into());
    })
    .unwrap_err();
    match err {
        IssueError::Unauthenticated(text) => {
            assert!(text.contains("SignatureDoesNotMatch"), "{text}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn credentials_of_a_role_session_named_after_an_instance_give_an_assumed_role_arn() {
    let moto = Moto::start();
    let (status, created) = query(
        &moto,
        &admin(),
        "iam",
        &[
            ("Action", "CreateRole"),
            ("Version", "2010-05-08"),
            ("RoleName", "web"),
            (
                "AssumeRolePolicyDocument",
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#,
            ),
        ],
    );
    assert_eq!(status, 200, "{created}");
    let role_arn = element(&created, "Arn").to_owned();
    let (status, assumed) = query(
        &moto,
        &admin(),
        "sts",
        &[
            ("Action", "AssumeRole"),
            ("Version", "2011-06-15"),
            ("RoleArn", &role_arn),
            ("RoleSessionName", "i-0123456789abcdef0"),
        ],
    );
    assert_eq!(status, 200, "{assumed}");
    let session = creds(
        element(&assumed, "AccessKeyId"),
        element(&assumed, "SecretAccessKey"),
        Some(element(&assumed, "SessionToken")),
    );
    let caller = replay(&moto, &session, |_| {}).unwrap();
    assert_eq!(
        caller.arn,
        "arn:aws:sts::123456789012:assumed-role/web/i-0123456789abcdef0"
    );
    assert!(
        caller.user_id.ends_with(":i-0123456789abcdef0") && caller.user_id.starts_with("AROA"),
        "{}",
        caller.user_id
    );
}

/// Moto's EC2 with one instance: VPC 127.0.0.0/16, an instance profile holding role `web`, a
/// private address on loopback and a Name tag. Returns its instance id.
fn seed_instance(moto: &Moto) -> String {
    let ok = |(status, body): (u16, String)| {
        assert_eq!(status, 200, "{body}");
        body
    };
    let ec2 = |params: &[(&str, &str)]| {
        let mut all = vec![("Version", "2016-11-15")];
        all.extend_from_slice(params);
        ok(query(moto, &admin(), "ec2", &all))
    };
    let iam = |params: &[(&str, &str)]| {
        let mut all = vec![("Version", "2010-05-08")];
        all.extend_from_slice(params);
        ok(query(moto, &admin(), "iam", &all))
    };
    let vpc = ec2(&[("Action", "CreateVpc"), ("CidrBlock", "127.0.0.0/16")]);
    let vpc_id = element(&vpc, "vpcId").to_owned();
    let subnet = ec2(&[
        ("Action", "CreateSubnet"),
        ("VpcId", &vpc_id),
        ("CidrBlock", "127.0.0.0/24"),
    ]);
    let subnet_id = element(&subnet, "subnetId").to_owned();
    iam(&[
        ("Action", "CreateRole"),
        ("RoleName", "web"),
        ("AssumeRolePolicyDocument", "{}"),
    ]);
    iam(&[
        ("Action", "CreateInstanceProfile"),
        ("InstanceProfileName", "web-profile"),
    ]);
    iam(&[
        ("Action", "AddRoleToInstanceProfile"),
        ("InstanceProfileName", "web-profile"),
        ("RoleName", "web"),
    ]);
    let run = ec2(&[
        ("Action", "RunInstances"),
        ("ImageId", "ami-12c6146b"),
        ("MinCount", "1"),
        ("MaxCount", "1"),
        ("SubnetId", &subnet_id),
        ("PrivateIpAddress", "127.0.0.5"),
        ("IamInstanceProfile.Name", "web-profile"),
        ("TagSpecification.1.ResourceType", "instance"),
        ("TagSpecification.1.Tag.1.Key", "Name"),
        ("TagSpecification.1.Tag.1.Value", "web-1"),
    ]);
    element(&run, "instanceId").to_owned()
}

fn aws_ec2(moto: &Moto) -> AwsEc2 {
    let config = aws_config::SdkConfig::builder()
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(moto.endpoint())
        .credentials_provider(SharedCredentialsProvider::new(admin()))
        .build();
    AwsEc2::from_context(AwsContext::from_config(config), Duration::from_secs(30)).unwrap()
}

#[test]
fn describe_instances_gives_the_instance_as_run_and_none_for_an_unknown_id() {
    let moto = Moto::start();
    let id = seed_instance(&moto);
    let ec2 = aws_ec2(&moto);
    let rt = runtime();
    let instance = rt.block_on(ec2.instance(&id)).unwrap().unwrap();
    assert_eq!(instance.id, id);
    assert_eq!(instance.state, "running");
    assert_eq!(
        instance.instance_profile_arn.as_deref(),
        Some("arn:aws:iam::123456789012:instance-profile/web-profile")
    );
    assert_eq!(instance.private_ip, Some("127.0.0.5".parse().unwrap()));
    assert_eq!(
        instance.private_dns.as_deref(),
        Some("ip-127-0-0-5.ec2.internal")
    );
    // moto gives an instance in a VPC no public address.
    assert_eq!((instance.public_ip, instance.public_dns), (None, None));
    assert_eq!(instance.name_tag.as_deref(), Some("web-1"));

    assert_eq!(
        rt.block_on(ec2.instance("i-0123456789abcdef0")).unwrap(),
        None
    );

    let (status, body) = query(
        &moto,
        &admin(),
        "ec2",
        &[
            ("Action", "StopInstances"),
            ("Version", "2016-11-15"),
            ("InstanceId.1", &id),
        ],
    );
    assert_eq!(status, 200, "{body}");
    let stopped = rt.block_on(ec2.instance(&id)).unwrap().unwrap();
    assert_eq!(stopped.state, "stopped");
}
