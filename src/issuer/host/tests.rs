use std::cell::Cell;
use std::collections::BTreeMap;
use std::future::Future;

use super::*;
use crate::ca::fake::FakeKms;
use crate::iam::{Identity, InstanceProfile, KeyMeta};

const ACCOUNT: &str = "123456789012";
const ROLE: &str = "web-host";
const ID: &str = "i-0123456789abcdef0";
const VICTIM: &str = "i-0fedcba9876543210";
const HOST_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDsB61tr08RJhM3pL/fInEDkez2CfK/66+kZAYj3PwiZ root@web";
const NOW: u64 = 1_800_000_000;

fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(future)
}

#[derive(Default)]
struct FakeEc2 {
    instances: BTreeMap<String, Instance>,
    error: Option<Ec2Error>,
    calls: Cell<usize>,
}

impl Ec2 for FakeEc2 {
    async fn instance(&self, id: &str) -> Result<Option<Instance>, Ec2Error> {
        self.calls.set(self.calls.get() + 1);
        match &self.error {
            Some(err) => Err(err.clone()),
            None => Ok(self.instances.get(id).cloned()),
        }
    }
}

#[derive(Default)]
struct FakeProfiles {
    profiles: BTreeMap<String, Vec<String>>,
    error: Option<IamError>,
}

impl Directory for FakeProfiles {
    async fn list_keys(&self, _user: &str) -> Result<Vec<KeyMeta>, IamError> {
        unreachable!("host certificates read no SSH keys")
    }
    async fn get_keys(&self, _user: &str, _ids: &[String]) -> Vec<Result<String, IamError>> {
        unreachable!("host certificates read no SSH keys")
    }
    async fn groups_for_user(&self, _user: &str) -> Result<Vec<String>, IamError> {
        unreachable!("host certificates read no groups")
    }
    async fn identity(&self, _user: &str) -> Result<Identity, IamError> {
        unreachable!("host certificates read no users")
    }
    fn calls(&self) -> usize {
        0
    }
    async fn instance_profile(&self, name: &str) -> Result<InstanceProfile, IamError> {
        if let Some(err) = &self.error {
            return Err(err.clone());
        }
        self.profiles
            .get(name)
            .map(|roles| InstanceProfile {
                arn: format!("arn:aws:iam::{ACCOUNT}:instance-profile/{name}"),
                roles: roles.clone(),
            })
            .ok_or_else(|| IamError::NotFound(format!("no instance profile {name}")))
    }
}

fn instance(id: &str, profile: &str) -> Instance {
    Instance {
        id: id.into(),
        state: "running".into(),
        instance_profile_arn: Some(format!(
            "arn:aws:iam::{ACCOUNT}:instance-profile/hosts/{profile}"
        )),
        private_ip: Some("10.0.1.17".parse().unwrap()),
        private_dns: Some("ip-10-0-1-17.eu-west-1.compute.internal".into()),
        public_ip: Some("203.0.113.7".parse().unwrap()),
        public_dns: Some("ec2-203-0-113-7.eu-west-1.compute.amazonaws.com".into()),
        name_tag: Some("bastion.example.com".into()),
        ..Default::default()
    }
}

/// EC2 with our instance (profile `web` holding ROLE) and a victim (profile `db` holding
/// another role); IAM with both profiles.
fn world() -> (FakeEc2, FakeProfiles) {
    let mut ec2 = FakeEc2::default();
    ec2.instances.insert(ID.into(), instance(ID, "web"));
    ec2.instances.insert(VICTIM.into(), instance(VICTIM, "db"));
    let mut iam = FakeProfiles::default();
    iam.profiles.insert("web".into(), vec![ROLE.into()]);
    iam.profiles.insert("db".into(), vec!["db-host".into()]);
    (ec2, iam)
}

fn caller(role: &str, session: &str) -> (Caller, CallerKind) {
    (
        Caller {
            arn: format!("arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{session}"),
            account: ACCOUNT.into(),
            user_id: format!("AROAEXAMPLE:{session}"),
        },
        CallerKind::AssumedRole {
            role: role.into(),
            session: session.into(),
        },
    )
}

fn roles() -> Vec<String> {
    vec![ROLE.into(), "db-host-other".into()]
}

/// Runs `issue_host` for `kind` against the fakes and a fake KMS CA.
fn issue(
    caller: &Caller,
    kind: &CallerKind,
    ec2: &FakeEc2,
    iam: &FakeProfiles,
    validity_secs: Option<u64>,
) -> Result<Certificate, IssueError> {
    let kms = FakeKms::default();
    block_on(async {
        let (ca, _) = crate::ca::init(&kms, "alias/keyward-ca", None)
            .await
            .unwrap();
        let subject = PublicKey::parse(HOST_KEY).unwrap();
        let ask = HostAsk {
            caller,
            kind,
            subject: &subject,
            validity_secs,
            max_validity_secs: cert::MAX_HOST_VALIDITY_SECS,
            now: NOW,
            serial: 11,
            nonce: [0x5C; NONCE_LEN],
        };
        issue_host(&ask, &roles(), ec2, iam, &ca).await
    })
}

fn forbidden(result: Result<Certificate, IssueError>) -> String {
    match result {
        Err(IssueError::Forbidden(text)) => text,
        other => panic!("expected Forbidden, got {other:?}"),
    }
}

#[test]
fn the_instance_gets_a_host_certificate_for_its_aws_names_only() {
    let (ec2, iam) = world();
    let (caller, kind) = caller(ROLE, ID);
    let cert = issue(&caller, &kind, &ec2, &iam, None).unwrap();
    assert!(cert.decoded().cert_type().is_host());
    assert_eq!(cert.key_id(), format!("keyward-host:{ID}:11"));
    assert_eq!(
        cert.principals(),
        [
            ID,
            "10.0.1.17",
            "203.0.113.7",
            "ip-10-0-1-17.eu-west-1.compute.internal",
            "ec2-203-0-113-7.eu-west-1.compute.amazonaws.com",
        ]
    );
    assert!(!cert.to_line().contains("bastion"));
    assert_eq!(
        cert.decoded().public_key(),
        PublicKey::parse(HOST_KEY).unwrap().key_data()
    );
    assert_eq!(cert.decoded().valid_after(), NOW - BACKDATE_SECS);
    assert_eq!(
        cert.valid_before(),
        NOW - BACKDATE_SECS + cert::DEFAULT_HOST_VALIDITY_SECS
    );
}

#[test]
fn an_instance_without_public_names_gets_its_private_ones() {
    let (mut ec2, iam) = world();
    let mut private = instance(ID, "web");
    private.public_ip = None;
    private.public_dns = Some(String::new());
    ec2.instances.insert(ID.into(), private);
    let (caller, kind) = caller(ROLE, ID);
    let cert = issue(&caller, &kind, &ec2, &iam, None).unwrap();
    assert_eq!(
        cert.principals(),
        [ID, "10.0.1.17", "ip-10-0-1-17.eu-west-1.compute.internal"]
    );
}

#[test]
fn callers_that_are_not_listed_instance_roles_are_refused_before_ec2_is_asked() {
    let (ec2, iam) = world();
    let (caller, _) = caller(ROLE, ID);
    let user = CallerKind::IamUser {
        name: "alice".into(),
    };
    assert!(forbidden(issue(&caller, &user, &ec2, &iam, None)).contains("not to IAM users"));
    let sso = CallerKind::SsoSession {
        role: "AWSReservedSSO_Admin_0123".into(),
        session: "alice".into(),
    };
    assert!(forbidden(issue(&caller, &sso, &ec2, &iam, None)).contains("not to SSO sessions"));
    let (other_caller, other_role) = self::caller("ci-runner", ID);
    let text = forbidden(issue(&other_caller, &other_role, &ec2, &iam, None));
    assert!(
        text.contains("role ci-runner may not ask for host certificates")
            && text.contains("host_roles"),
        "{text}"
    );
    for session in [
        "alice",
        "i-xyz",
        "i-0123456789ABCDEF0",
        "botocore-session-1",
    ] {
        let (c, k) = self::caller(ROLE, session);
        let text = forbidden(issue(&c, &k, &ec2, &iam, None));
        assert!(text.contains("not an instance id"), "{session}: {text}");
    }
    assert_eq!(ec2.calls.get(), 0);
}

#[test]
fn a_session_named_after_another_instance_is_refused() {
    let (ec2, iam) = world();
    // ROLE may ask, but the victim runs with profile `db`, which does not hold ROLE.
    let (caller, kind) = caller(ROLE, VICTIM);
    let text = forbidden(issue(&caller, &kind, &ec2, &iam, None));
    assert!(
        text.contains(&format!("instance {VICTIM} does not run with role {ROLE}")),
        "{text}"
    );
}

#[test]
fn the_same_role_name_in_another_account_is_refused() {
    let (ec2, iam) = world();
    let (mut caller, kind) = caller(ROLE, ID);
    caller.account = "999999999999".into();
    caller.arn = format!("arn:aws:sts::999999999999:assumed-role/{ROLE}/{ID}");
    let text = forbidden(issue(&caller, &kind, &ec2, &iam, None));
    assert!(text.contains("of account 999999999999"), "{text}");
}

#[test]
fn missing_stopped_or_profileless_instances_are_refused() {
    let (caller, kind) = caller(ROLE, ID);

    let (mut ec2, iam) = world();
    ec2.instances.remove(ID);
    let text = forbidden(issue(&caller, &kind, &ec2, &iam, None));
    assert!(
        text.contains(&format!("EC2 has no instance {ID}")),
        "{text}"
    );

    for state in ["stopped", "pending", "terminated", "shutting-down"] {
        let (mut ec2, iam) = world();
        let mut stopped = instance(ID, "web");
        stopped.state = state.into();
        ec2.instances.insert(ID.into(), stopped);
        let text = forbidden(issue(&caller, &kind, &ec2, &iam, None));
        assert!(text.contains(&format!("is {state}, not running")), "{text}");
    }

    let (mut ec2, iam) = world();
    let mut bare = instance(ID, "web");
    bare.instance_profile_arn = None;
    ec2.instances.insert(ID.into(), bare);
    let text = forbidden(issue(&caller, &kind, &ec2, &iam, None));
    assert!(text.contains("has no instance profile"), "{text}");

    // The profile EC2 names is gone from IAM: no role, refused.
    let (ec2, mut iam) = world();
    iam.profiles.remove("web");
    let text = forbidden(issue(&caller, &kind, &ec2, &iam, None));
    assert!(text.contains("does not run with role"), "{text}");
}

#[test]
fn an_answer_about_another_instance_is_not_taken_for_the_asked_one() {
    let (caller, kind) = caller(ROLE, ID);
    let wrong = instance(VICTIM, "web");
    let err = judge_host(&caller, &kind, &roles(), Some(&wrong), &[ROLE.into()]).unwrap_err();
    assert!(matches!(err, IssueError::Unavailable(_)), "{err:?}");
}

#[test]
fn ec2_and_iam_failures_are_outages_or_issuer_errors_never_certificates() {
    let (caller, kind) = caller(ROLE, ID);
    for (error, unavailable) in [
        (Ec2Error::Unreachable("timeout".into()), true),
        (Ec2Error::Malformed("no state".into()), true),
        (
            Ec2Error::AccessDenied {
                action: "ec2:DescribeInstances",
                message: "no".into(),
            },
            false,
        ),
        (Ec2Error::NoCredentials("none".into()), false),
    ] {
        let (mut ec2, iam) = world();
        ec2.error = Some(error.clone());
        match issue(&caller, &kind, &ec2, &iam, None) {
            Err(IssueError::Unavailable(_)) if unavailable => {}
            Err(IssueError::Internal(text)) if !unavailable => {
                assert!(text.contains("ec2:DescribeInstances") || text.contains("credentials"))
            }
            other => panic!("{error:?}: {other:?}"),
        }
    }
    for (error, unavailable) in [
        (IamError::Unreachable("timeout".into()), true),
        (
            IamError::AccessDenied {
                action: "iam:GetInstanceProfile",
                message: "no".into(),
            },
            false,
        ),
    ] {
        let (ec2, mut iam) = world();
        iam.error = Some(error.clone());
        match issue(&caller, &kind, &ec2, &iam, None) {
            Err(IssueError::Unavailable(_)) if unavailable => {}
            Err(IssueError::Internal(text)) if !unavailable => {
                assert!(text.contains("iam:GetInstanceProfile"), "{text}")
            }
            other => panic!("{error:?}: {other:?}"),
        }
    }
}

#[test]
fn the_lifetime_is_clamped_to_the_issuers_bounds() {
    let max = cert::MAX_HOST_VALIDITY_SECS;
    assert_eq!(host_validity(None, max), cert::DEFAULT_HOST_VALIDITY_SECS);
    assert_eq!(host_validity(Some(0), max), MIN_HOST_VALIDITY_SECS);
    assert_eq!(host_validity(Some(7200), max), 7200);
    assert_eq!(
        host_validity(Some(u64::MAX), max),
        cert::MAX_HOST_VALIDITY_SECS
    );
    // The issuer's own maximum, not the requester, has the last word; its default is below it.
    let week = 7 * 86_400;
    assert_eq!(host_validity(Some(u64::MAX), week), week);
    assert_eq!(host_validity(None, week), week);
    assert_eq!(host_validity(Some(3600), week), 3600);
    let (ec2, iam) = world();
    let (caller, kind) = caller(ROLE, ID);
    let cert = issue(&caller, &kind, &ec2, &iam, Some(365 * 86_400)).unwrap();
    assert_eq!(
        cert.valid_before() - cert.decoded().valid_after(),
        cert::MAX_HOST_VALIDITY_SECS
    );
}

#[test]
fn instance_profile_arns_are_read_strictly() {
    assert_eq!(
        instance_profile_name("arn:aws:iam::123456789012:instance-profile/web"),
        Some(("123456789012", "web"))
    );
    assert_eq!(
        instance_profile_name("arn:aws:iam::123456789012:instance-profile/a/b/web"),
        Some(("123456789012", "web"))
    );
    assert_eq!(
        instance_profile_name("arn:aws-cn:iam::123456789012:instance-profile/web"),
        Some(("123456789012", "web"))
    );
    for bad in [
        "",
        "web",
        "arn:aws:iam::123456789012:role/web",
        "arn:aws:s3::123456789012:instance-profile/web",
        "arn:aws:iam::12345:instance-profile/web",
        "arn:aws:iam::123456789012:instance-profile/",
        "arn:aws:iam::123456789012:instance-profile/we b",
    ] {
        assert_eq!(instance_profile_name(bad), None, "{bad}");
    }
}
