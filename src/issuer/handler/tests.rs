use std::cell::Cell;
use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use super::*;
use crate::ca::fake::FakeKms;
use crate::iam::{Identity, KeyMeta};
use crate::issuer::Proof;

pub(crate) const SUBJECT: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDsB61tr08RJhM3pL/fInEDkez2CfK/66+kZAYj3PwiZ alice";
pub(crate) const OTHER_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBlK7zPBuVIzO7N5NU0zmrGBNqOFrN6+ngWuq0TE4OSm other";
pub(crate) const AUDIENCE: &str = "https://issuer.example.com";
/// 2026-11-30T15:40:00Z.
pub(crate) const NOW: u64 = 1_796_053_200;
const ALICE_ARN: &str = "arn:aws:iam::123456789012:user/staff/alice";
const ALICE_ID: &str = "AIDAEXAMPLE0ALICE01";

pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(future)
}

/// EC2 for the user-certificate tests: never asked.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct NoEc2;

impl crate::ec2::Ec2 for NoEc2 {
    async fn instance(
        &self,
        _id: &str,
    ) -> Result<Option<crate::ec2::Instance>, crate::ec2::Ec2Error> {
        panic!("user certificates never ask EC2")
    }
}

pub(crate) struct FakeSts {
    pub(crate) answer: Result<Caller, IssueError>,
    pub(crate) calls: Cell<usize>,
}

impl Sts for FakeSts {
    async fn caller(&self, _proof: &Proof) -> Result<Caller, IssueError> {
        self.calls.set(self.calls.get() + 1);
        self.answer.clone()
    }
}

pub(crate) fn sts_says(arn: &str, user_id: &str) -> FakeSts {
    FakeSts {
        answer: Ok(Caller {
            arn: arn.into(),
            account: "123456789012".into(),
            user_id: user_id.into(),
        }),
        calls: Cell::new(0),
    }
}

#[derive(Default)]
pub(crate) struct FakeIam {
    groups: BTreeMap<String, Result<Vec<String>, IamError>>,
    /// GetUser's answers; a name absent here is NotFound.
    ids: BTreeMap<String, Result<Identity, IamError>>,
}

impl FakeIam {
    /// IAM user `user` (UserId [`ALICE_ID`]) in `groups`.
    fn with(user: &str, groups: &[&str]) -> FakeIam {
        let mut iam = FakeIam::default();
        iam.groups.insert(
            user.into(),
            Ok(groups.iter().map(|g| (*g).to_owned()).collect()),
        );
        iam.ids.insert(
            user.into(),
            Ok(Identity {
                user_name: user.into(),
                user_id: ALICE_ID.into(),
            }),
        );
        iam
    }
}

impl Directory for FakeIam {
    async fn list_keys(&self, _user: &str) -> Result<Vec<KeyMeta>, IamError> {
        Err(IamError::Other("not used by the issuer".into()))
    }
    async fn get_keys(&self, _user: &str, _ids: &[String]) -> Vec<Result<String, IamError>> {
        Vec::new()
    }
    async fn groups_for_user(&self, user: &str) -> Result<Vec<String>, IamError> {
        self.groups
            .get(user)
            .cloned()
            .unwrap_or_else(|| Err(IamError::NotFound(user.into())))
    }
    async fn identity(&self, user: &str) -> Result<Identity, IamError> {
        self.ids
            .get(user)
            .cloned()
            .unwrap_or_else(|| Err(IamError::NotFound(user.into())))
    }
    fn calls(&self) -> usize {
        0
    }
}

/// Counts up from 1 in every byte, so serials and nonces are known and non-zero.
struct CountingRandom(u8);

impl Random for CountingRandom {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), IssueError> {
        for byte in buf {
            self.0 = self.0.wrapping_add(1);
            *byte = self.0;
        }
        Ok(())
    }
}

pub(crate) fn issuer_config() -> IssuerConfig {
    let text = format!("[issuer]\naudience = \"{AUDIENCE}\"\nmax_validity = \"8h\"\n");
    Config::from_toml(&text, std::path::Path::new("t.toml"))
        .unwrap()
        .issuer
        .unwrap()
}

pub(crate) fn config(extra: &str) -> Config {
    Config::from_toml(
        &format!("allowed_groups = [\"ssh-users\"]\n{extra}"),
        std::path::Path::new("t.toml"),
    )
    .unwrap()
}

pub(crate) fn deps(
    kms: &FakeKms,
    sts: FakeSts,
    iam: FakeIam,
) -> Deps<FakeSts, FakeIam, &FakeKms, NoEc2> {
    let (ca, _) = block_on(crate::ca::init(kms, crate::ca::DEFAULT_ALIAS, None)).unwrap();
    Deps {
        sts,
        iam,
        ca,
        ec2: NoEc2,
        config: config(""),
        issuer: issuer_config(),
    }
}

pub(crate) fn alice_deps(kms: &FakeKms) -> Deps<FakeSts, FakeIam, &FakeKms, NoEc2> {
    deps(
        kms,
        sts_says(ALICE_ARN, ALICE_ID),
        FakeIam::with("alice", &["dev", "ssh-users"]),
    )
}

pub(crate) fn proof_for(key_line: &str, audience: &str) -> Proof {
    let fingerprint = PublicKey::parse(key_line).unwrap().fingerprint();
    crate::issuer::check::tests::signed_proof(audience, &fingerprint)
}

pub(crate) fn user_request() -> IssueRequest {
    IssueRequest {
        kind: CertKind::User,
        public_key: SUBJECT.into(),
        proof: proof_for(SUBJECT, AUDIENCE),
        validity_secs: None,
        source_addresses: Vec::new(),
        host_scope: None,
    }
}

fn run<K: Kms>(
    request: &IssueRequest,
    deps: &Deps<FakeSts, FakeIam, K, NoEc2>,
) -> Result<ssh_key::Certificate, IssueError> {
    let response = block_on(issue(request, deps, NOW, &mut CountingRandom(0)))?;
    Ok(ssh_key::Certificate::from_openssh(&response.certificate).unwrap())
}

fn forbidden(result: Result<ssh_key::Certificate, IssueError>, needle: &str) {
    match result {
        Err(IssueError::Forbidden(m)) => assert!(m.contains(needle), "{m}"),
        other => panic!("expected a refusal about {needle:?}: {other:?}"),
    }
}

#[test]
fn a_member_of_an_allowed_group_gets_a_certificate_for_their_linux_name() {
    let kms = FakeKms::default();
    let deps = alice_deps(&kms);
    let cert = run(&user_request(), &deps).unwrap();
    assert_eq!(cert.valid_principals(), ["alice"]);
    assert_eq!(
        cert.key_id(),
        format!("keyward:alice:{ALICE_ID}:{}", cert.serial())
    );
    assert_eq!(cert.valid_after(), NOW - BACKDATE_SECS);
    assert_eq!(cert.valid_before(), NOW + 3600, "the default validity");
    assert_eq!(
        cert.public_key(),
        ssh_key::PublicKey::from_openssh(SUBJECT)
            .unwrap()
            .key_data()
    );
    let ca_key = ssh_key::PublicKey::from_openssh(&deps.ca.public_key().to_line()).unwrap();
    cert.validate_at(NOW, [&ca_key.fingerprint(ssh_key::HashAlg::Sha256)])
        .unwrap();
    assert_eq!(deps.sts.calls.get(), 1);
    assert_eq!(kms.signs(), 1);
}

#[test]
fn serial_and_nonce_come_from_the_random_source() {
    let kms = FakeKms::default();
    let deps = alice_deps(&kms);
    let cert = run(&user_request(), &deps).unwrap();
    // The nonce takes bytes 1..=32, the serial 33..=40.
    assert_eq!(cert.nonce(), (1..=32).collect::<Vec<u8>>());
    assert_eq!(
        cert.serial(),
        u64::from_be_bytes([33, 34, 35, 36, 37, 38, 39, 40])
    );
}

#[test]
fn a_proof_for_another_key_or_issuer_is_refused_before_sts_is_asked() {
    let kms = FakeKms::default();
    let deps = alice_deps(&kms);
    let mut replayed = user_request();
    replayed.proof = proof_for(OTHER_KEY, AUDIENCE);
    let err = run(&replayed, &deps).unwrap_err();
    assert!(
        matches!(&err, IssueError::Unauthenticated(m) if m.contains("another public key")),
        "{err:?}"
    );
    let mut elsewhere = user_request();
    elsewhere.proof = proof_for(SUBJECT, "https://other-issuer.example.com");
    let err = run(&elsewhere, &deps).unwrap_err();
    assert!(
        matches!(&err, IssueError::Unauthenticated(m) if m.contains("another issuer")),
        "{err:?}"
    );
    assert_eq!(deps.sts.calls.get(), 0);
    assert_eq!(kms.signs(), 0);
}

#[test]
fn an_unusable_public_key_is_a_bad_request() {
    let kms = FakeKms::default();
    let deps = alice_deps(&kms);
    for key in ["ssh-dss AAAAB3NzaC1kc3MAAACBAP", "not a key", ""] {
        let mut request = user_request();
        request.public_key = key.into();
        let err = run(&request, &deps).unwrap_err();
        assert!(
            matches!(&err, IssueError::BadRequest(m) if m.contains("public key")),
            "{key}: {err:?}"
        );
    }
    assert_eq!(deps.sts.calls.get(), 0);
}

#[test]
fn sts_refusing_the_proof_is_passed_on() {
    let kms = FakeKms::default();
    let mut deps = alice_deps(&kms);
    deps.sts.answer = Err(IssueError::Unauthenticated(
        "STS refused the proof: SignatureDoesNotMatch".into(),
    ));
    let err = run(&user_request(), &deps).unwrap_err();
    assert_eq!(err.http_status(), 401);
    assert_eq!(kms.signs(), 0);
}

#[test]
fn a_caller_outside_allowed_groups_is_refused_with_the_reason() {
    let kms = FakeKms::default();
    let mut deps = alice_deps(&kms);
    deps.iam = FakeIam::with("alice", &["dev"]);
    forbidden(
        run(&user_request(), &deps),
        "not in any of this issuer's allowed_groups (ssh-users)",
    );
    assert_eq!(kms.signs(), 0);
}

/// The one refusal of a caller who is not an IAM user of the issuer's account.
const NOT_OURS: &str = "IAM users of its own AWS account only";

#[test]
fn a_user_iam_does_not_know_gets_the_same_refusal_as_a_stranger() {
    let kms = FakeKms::default();
    let mut deps = alice_deps(&kms);
    deps.iam = FakeIam::default();
    forbidden(run(&user_request(), &deps), NOT_OURS);
    // Known to GetUser but gone by ListGroupsForUser (deleted in between): the same.
    deps.iam = FakeIam::with("alice", &["ssh-users"]);
    deps.iam.groups.clear();
    forbidden(run(&user_request(), &deps), NOT_OURS);
    assert_eq!(kms.signs(), 0);
}

#[test]
fn a_recreated_user_of_the_same_name_is_not_the_caller() {
    let kms = FakeKms::default();
    let mut deps = alice_deps(&kms);
    deps.iam.ids.insert(
        "alice".into(),
        Ok(Identity {
            user_name: "alice".into(),
            user_id: "AIDAEXAMPLE0OTHER01".into(),
        }),
    );
    forbidden(run(&user_request(), &deps), NOT_OURS);
    assert_eq!(kms.signs(), 0);
}

#[test]
fn a_caller_of_another_account_is_refused_before_iam_is_asked() {
    let kms = FakeKms::default();
    let mut deps = alice_deps(&kms);
    deps.sts = FakeSts {
        answer: Ok(Caller {
            arn: "arn:aws:iam::999999999999:user/staff/alice".into(),
            account: "999999999999".into(),
            // Even with the victim's UserId, the account decides.
            user_id: ALICE_ID.into(),
        }),
        calls: Cell::new(0),
    };
    // Any IAM call would fail differently (503): the refusal comes first.
    deps.iam
        .ids
        .insert("alice".into(), Err(IamError::Unreachable("asked".into())));
    deps.iam
        .groups
        .insert("alice".into(), Err(IamError::Unreachable("asked".into())));
    let refusal = run(&user_request(), &deps).unwrap_err();
    assert!(
        matches!(&refusal, IssueError::Forbidden(m) if m.contains(NOT_OURS)),
        "{refusal:?}"
    );
    // Indistinguishable from "no such user" in the issuer's own account.
    let mut ours = alice_deps(&kms);
    ours.iam = FakeIam::default();
    assert_eq!(
        refusal.to_string(),
        run(&user_request(), &ours).unwrap_err().to_string()
    );
    assert_eq!(kms.signs(), 0);
}

#[test]
fn getuser_outage_is_unavailable_not_a_refusal() {
    let kms = FakeKms::default();
    let mut deps = alice_deps(&kms);
    deps.iam
        .ids
        .insert("alice".into(), Err(IamError::Unreachable("timeout".into())));
    assert_eq!(run(&user_request(), &deps).unwrap_err().http_status(), 503);
    assert_eq!(kms.signs(), 0);
}

#[test]
fn iam_outage_is_unavailable_and_misconfiguration_internal() {
    let kms = FakeKms::default();
    let mut deps = alice_deps(&kms);
    deps.iam
        .groups
        .insert("alice".into(), Err(IamError::Unreachable("timeout".into())));
    assert_eq!(run(&user_request(), &deps).unwrap_err().http_status(), 503);
    deps.iam.groups.insert(
        "alice".into(),
        Err(IamError::AccessDenied {
            action: "iam:ListGroupsForUser",
            message: "arn:aws:iam::123456789012:role/secret-name".into(),
        }),
    );
    let err = run(&user_request(), &deps).unwrap_err();
    assert_eq!(err.http_status(), 500);
    assert!(!err.to_string().contains("secret-name"), "{err}");
}

#[test]
fn sso_sessions_and_other_roles_get_no_user_certificate() {
    let kms = FakeKms::default();
    let mut deps = alice_deps(&kms);
    deps.sts = sts_says(
        "arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_Admin_0123abcd/alice",
        "AROAEXAMPLE:alice",
    );
    forbidden(
        run(&user_request(), &deps),
        "SSO sessions are not supported yet: use an IAM user's credentials",
    );
    deps.sts = sts_says(
        "arn:aws:sts::123456789012:assumed-role/web-host/i-0123456789abcdef0",
        "AROAEXAMPLE:i-0123456789abcdef0",
    );
    forbidden(run(&user_request(), &deps), "role web-host");
    deps.sts = sts_says("arn:aws:iam::123456789012:root", "123456789012");
    forbidden(
        run(&user_request(), &deps),
        "neither an IAM user nor an assumed role",
    );
    assert_eq!(kms.signs(), 0);
}

#[test]
fn host_certificates_are_refused_until_enabled() {
    let kms = FakeKms::default();
    let mut deps = alice_deps(&kms);
    deps.sts = sts_says(
        "arn:aws:sts::123456789012:assumed-role/web-host/i-0123456789abcdef0",
        "AROAEXAMPLE:i-0123456789abcdef0",
    );
    let mut request = user_request();
    request.kind = CertKind::Host;
    forbidden(
        run(&request, &deps),
        "host certificates are not enabled on this issuer",
    );
    assert_eq!(kms.signs(), 0);
}

#[test]
fn the_principal_follows_the_hosts_name_mapping_and_reserved_names() {
    let kms = FakeKms::default();
    let mut deps = deps(
        &kms,
        sts_says("arn:aws:iam::123456789012:user/Alice.Smith", ALICE_ID),
        FakeIam::with("Alice.Smith", &["ssh-users"]),
    );
    let cert = run(&user_request(), &deps).unwrap();
    assert_eq!(cert.valid_principals(), ["_alice._smith"]);
    assert!(
        cert.key_id().starts_with("keyward:Alice.Smith:"),
        "{}",
        cert.key_id()
    );

    deps.config = config("name_mapping = \"identity\"\n");
    forbidden(run(&user_request(), &deps), "no Linux account name");

    deps.sts = sts_says("arn:aws:iam::123456789012:user/ops", ALICE_ID);
    deps.iam = FakeIam::with("ops", &["ssh-users"]);
    deps.config = config("reserved_users = [\"ops\"]\n");
    forbidden(run(&user_request(), &deps), "reserved");
}

#[test]
fn host_scope_gives_a_principal_only_that_instance_accepts() {
    let kms = FakeKms::default();
    let deps = alice_deps(&kms);
    let mut request = user_request();
    request.host_scope = Some("i-0123456789abcdef0".into());
    let cert = run(&request, &deps).unwrap();
    assert_eq!(cert.valid_principals(), ["alice@i-0123456789abcdef0"]);
    for bad in ["web-1", "i-0123", "i-0123456789abcdef0,root", ""] {
        request.host_scope = Some(bad.into());
        let err = run(&request, &deps).unwrap_err();
        assert!(
            matches!(&err, IssueError::BadRequest(m) if m.contains("host_scope")),
            "{bad}"
        );
    }
}

#[test]
fn validity_is_clamped_to_the_issuers_maximum() {
    let kms = FakeKms::default();
    let deps = alice_deps(&kms);
    let mut request = user_request();
    request.validity_secs = Some(600);
    assert_eq!(run(&request, &deps).unwrap().valid_before(), NOW + 600);
    request.validity_secs = Some(30 * 86_400);
    assert_eq!(run(&request, &deps).unwrap().valid_before(), NOW + 8 * 3600);
    request.validity_secs = Some(0);
    assert_eq!(run(&request, &deps).unwrap_err().http_status(), 400);

    let mut issuer = issuer_config();
    issuer.max_validity = Duration::from_secs(MAX_VALIDITY_SECS);
    let (after, before) = window(Some(u64::MAX), &issuer, NOW).unwrap();
    assert_eq!(
        before - after,
        MAX_VALIDITY_SECS,
        "never past the 24h ceiling"
    );
}

#[test]
fn source_addresses_are_certified_and_bad_ones_refused() {
    let kms = FakeKms::default();
    let deps = alice_deps(&kms);
    let mut request = user_request();
    request.source_addresses = vec!["10.0.0.0/8".into(), "192.0.2.7".into()];
    let cert = run(&request, &deps).unwrap();
    assert_eq!(
        cert.critical_options()
            .get("source-address")
            .map(String::as_str),
        Some("10.0.0.0/8,192.0.2.7")
    );
    request.source_addresses = vec!["10.0.0.0/8 ,root".into()];
    assert_eq!(run(&request, &deps).unwrap_err().http_status(), 400);
}

fn http(
    deps: &Deps<FakeSts, FakeIam, &FakeKms, NoEc2>,
    method: &str,
    path: &str,
    body: &[u8],
) -> (u16, serde_json::Value) {
    let (status, json) = block_on(handle_http(deps, method, path, body, NOW, &mut OsRandom));
    (status, serde_json::from_str(&json).unwrap())
}

#[test]
fn http_answers_only_post_to_the_certificate_path() {
    let kms = FakeKms::default();
    let deps = alice_deps(&kms);
    let body = serde_json::to_vec(&user_request()).unwrap();
    let (status, json) = http(&deps, "POST", wire::PATH, &body);
    assert_eq!(status, 200, "{json}");
    let line = json["certificate"].as_str().unwrap();
    assert!(
        line.starts_with("ssh-ed25519-cert-v01@openssh.com "),
        "{line}"
    );

    let (status, json) = http(&deps, "GET", wire::PATH, b"");
    assert_eq!(status, 405);
    assert!(json["error"].as_str().unwrap().contains("POST"));
    assert_eq!(http(&deps, "POST", "/v1/certificate/../x", &body).0, 404);
    assert_eq!(http(&deps, "POST", "/", &body).0, 404);
    let big = vec![b' '; wire::MAX_REQUEST_BYTES + 1];
    assert_eq!(http(&deps, "POST", wire::PATH, &big).0, 413);
    let (status, json) = http(
        &deps,
        "POST",
        wire::PATH,
        b"{\"kind\":\"user\",\"extra\":1}",
    );
    assert_eq!(status, 400);
    assert!(
        json["error"].as_str().unwrap().starts_with("bad request:"),
        "{json}"
    );
    let mut wrong = user_request();
    wrong.proof = proof_for(OTHER_KEY, AUDIENCE);
    let (status, json) = http(
        &deps,
        "POST",
        wire::PATH,
        &serde_json::to_vec(&wrong).unwrap(),
    );
    assert_eq!(status, 401);
    assert!(json["error"]
        .as_str()
        .unwrap()
        .contains("another public key"));
}

#[test]
fn os_random_gives_distinct_serials() {
    let (a, na) = serial_and_nonce(&mut OsRandom).unwrap();
    let (b, nb) = serial_and_nonce(&mut OsRandom).unwrap();
    assert_ne!((a, na), (b, nb));
    assert!(na.iter().any(|b| *b != 0));
}

/// Review (issue 11): an IAM user of ANOTHER AWS account who happens to share a name with an
/// allowed IAM user of the issuer's account signs a valid proof (STS answers for any
/// account's credentials). The issuer looks the *name* up in its own IAM, finds the victim's
/// groups, and certifies the victim's Linux name. It must refuse: the caller is not the IAM user
/// whose groups were read (other account, other UserId).
#[test]
fn review_a_same_named_user_of_another_account_gets_no_certificate() {
    let kms = FakeKms::default();
    let mut deps = alice_deps(&kms);
    deps.sts = FakeSts {
        answer: Ok(Caller {
            arn: "arn:aws:iam::999999999999:user/alice".into(),
            account: "999999999999".into(),
            user_id: "AIDAATTACKER0ALICE1".into(),
        }),
        calls: Cell::new(0),
    };
    let result = run(&user_request(), &deps);
    assert!(
        matches!(result, Err(IssueError::Forbidden(_))),
        "a foreign account's alice got a certificate for the principal alice: {:?}",
        result
            .as_ref()
            .map(|c| (c.valid_principals().to_vec(), c.key_id().to_owned()))
    );
    assert_eq!(kms.signs(), 0);
}

/// Captures what the fmt layer writes (as `ca serve` and the Lambda runtime log to stderr).
#[derive(Clone, Default)]
struct LogBuffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = LogBuffer;
    fn make_writer(&'a self) -> LogBuffer {
        self.clone()
    }
}

/// Review (issue 11): an unauthenticated caller's JSON field names and values reach the
/// issuer's log through serde's error text (`error = %err`, not `logging::untrusted`), so a
/// newline in a field name forges a log line of its own (CloudWatch makes each line an event).
#[test]
fn review_client_text_in_a_bad_request_cannot_forge_a_log_line() {
    let kms = FakeKms::default();
    let deps = alice_deps(&kms);
    let logs = LogBuffer::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_ansi(false)
        .without_time()
        .finish();
    let body = br#"{"kind":"user","x\nINFO issued a user certificate caller=\"arn:aws:iam::123456789012:user/root\"":1}"#;
    tracing::subscriber::with_default(subscriber, || {
        let (status, _) = block_on(handle_http(
            &deps,
            "POST",
            wire::PATH,
            body,
            NOW,
            &mut CountingRandom(0),
        ));
        assert_eq!(status, 400);
    });
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        !text.lines().any(|l| l.starts_with("INFO issued")),
        "a client forged a log line:\n{text}"
    );
}

/// A refusal's message may quote the client (the checks before it keep quotes and control
/// characters out today; this keeps the log safe if one ever does): escaped and capped.
#[test]
fn a_refusal_reaches_the_log_escaped_and_capped() {
    let forged = "x\nINFO issued a user certificate caller=\"arn:aws:iam::123456789012:user/root\"";
    let logged = logged_error(&IssueError::BadRequest(forged.into()));
    assert!(!logged.contains('\n'), "{logged}");
    assert!(logged.contains("x\\nINFO issued"), "{logged}");
    assert!(logged.contains("caller=\\\"arn"), "{logged}");
    let long = logged_error(&IssueError::BadRequest("a".repeat(5000)));
    assert!(long.len() < 600, "{}", long.len());
    assert!(long.ends_with("bytes)"), "{long}");
}
