//! Host certificates through the issuer's real AWS adapters against moto: `issuer::host::
//! issue_host` with `AwsEc2` (DescribeInstances), `AwsIam` (GetInstanceProfile) and a CA in
//! moto's KMS, for instances made with RunInstances in a 127.0.0.0/16 VPC with instance
//! profiles. The certificate is read back by the real `ssh-keygen`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::{runtime, ssh_keygen_list, Moto};
use keyward::ca::{self, AwsKms};
use keyward::ec2::query::AwsEc2;
use keyward::iam::{AwsIam, Directory};
use keyward::issuer::host::{issue_host, HostAsk};
use keyward::issuer::{Caller, CallerKind, IssueError};
use keyward::keys::cert::NONCE_LEN;
use keyward::keys::PublicKey;

const ACCOUNT: &str = "123456789012";

/// Roles web-host and db-host, each in an instance profile, and one running instance per
/// profile (web at 127.0.0.10, Name tag bastion.example.com); returns (web id, db id).
fn seed(moto: &Moto) -> (String, String) {
    let ids = common::boto3(
        &moto.endpoint(),
        r#"
import json, boto3
iam, ec2 = boto3.client("iam"), boto3.client("ec2")
trust = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
    "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
vpc = ec2.create_vpc(CidrBlock="127.0.0.0/16")["Vpc"]["VpcId"]
subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="127.0.0.0/24")["Subnet"]["SubnetId"]
ami = ec2.describe_images()["Images"][0]["ImageId"]
ids = []
for role, ip, name in (("web-host", "127.0.0.10", "bastion.example.com"), ("db-host", "127.0.0.20", "db")):
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=trust)
    iam.create_instance_profile(InstanceProfileName=role + "-profile", Path="/hosts/")
    iam.add_role_to_instance_profile(InstanceProfileName=role + "-profile", RoleName=role)
    run = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1, SubnetId=subnet,
        PrivateIpAddress=ip, IamInstanceProfile={"Name": role + "-profile"},
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": name}]}])
    ids.append(run["Instances"][0]["InstanceId"])
print(*ids)
"#,
        &[],
    );
    let mut ids = ids.split_whitespace().map(str::to_owned);
    (ids.next().unwrap(), ids.next().unwrap())
}

fn session(role: &str, instance: &str) -> (Caller, CallerKind) {
    (
        Caller {
            arn: format!("arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{instance}"),
            account: ACCOUNT.into(),
            user_id: format!("AROAEXAMPLE:{instance}"),
        },
        CallerKind::AssumedRole {
            role: role.into(),
            session: instance.into(),
        },
    )
}

#[test]
fn issue_host_certifies_what_moto_ec2_says_and_refuses_other_sessions() {
    let moto = Moto::start();
    let (web, db) = seed(&moto);
    let dir = tempfile::tempdir().unwrap();
    let options = common::moto_client_options(&moto, dir.path());
    let host_key = PublicKey::parse(
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDsB61tr08RJhM3pL/fInEDkez2CfK/66+kZAYj3PwiZ root@web",
    )
    .unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let host_roles = vec!["web-host".to_owned()];

    let rt = runtime();
    let (iam, ec2, ca) = rt.block_on(async {
        let iam = AwsIam::new(&options).await;
        let ec2 = AwsEc2::new(&options).await.unwrap();
        let kms = AwsKms::new(&options).await.unwrap();
        let (ca, _) = ca::init(kms, ca::DEFAULT_ALIAS, None).await.unwrap();
        (iam, ec2, ca)
    });
    // The adapter reads the profile EC2 names, with its role.
    let profile = rt
        .block_on(iam.instance_profile("web-host-profile"))
        .unwrap();
    assert_eq!(profile.roles, ["web-host"]);
    assert_eq!(
        profile.arn,
        format!("arn:aws:iam::{ACCOUNT}:instance-profile/hosts/web-host-profile")
    );

    let issue = |role: &str, instance: &str| {
        let (caller, kind) = session(role, instance);
        let ask = HostAsk {
            caller: &caller,
            kind: &kind,
            subject: &host_key,
            validity_secs: None,
            max_validity_secs: keyward::keys::cert::MAX_HOST_VALIDITY_SECS,
            now,
            serial: 5,
            nonce: [0x77; NONCE_LEN],
        };
        rt.block_on(issue_host(&ask, &host_roles, &ec2, &iam, &ca))
    };

    let cert = issue("web-host", &web).unwrap();
    let listing = ssh_keygen_list(dir.path(), &cert.to_line());
    assert!(
        listing.contains("ssh-ed25519-cert-v01@openssh.com host certificate"),
        "{listing}"
    );
    assert!(
        listing.contains(&format!("Key ID: \"keyward-host:{web}:5\"")),
        "{listing}"
    );
    assert_eq!(
        cert.principals(),
        [web.as_str(), "127.0.0.10", "ip-127-0-0-10.ec2.internal"]
    );
    assert!(!listing.contains("bastion"), "{listing}");
    let ca_key = ssh_key::PublicKey::from_openssh(&ca.public_key().to_line()).unwrap();
    cert.decoded()
        .validate_at(now, [&ca_key.fingerprint(ssh_key::HashAlg::Sha256)])
        .unwrap();

    // A web-host session named after the db instance: db runs with another role.
    match issue("web-host", &db) {
        Err(IssueError::Forbidden(text)) => assert!(
            text.contains(&format!("instance {db} does not run with role web-host")),
            "{text}"
        ),
        other => panic!("{other:?}"),
    }
    // db-host is not in host_roles, even for its own instance.
    match issue("db-host", &db) {
        Err(IssueError::Forbidden(text)) => {
            assert!(text.contains("role db-host may not ask"), "{text}")
        }
        other => panic!("{other:?}"),
    }
    // An instance id EC2 does not know.
    match issue("web-host", "i-0123456789abcdef0") {
        Err(IssueError::Forbidden(text)) => {
            assert!(
                text.contains("EC2 has no instance i-0123456789abcdef0"),
                "{text}"
            )
        }
        other => panic!("{other:?}"),
    }
}
