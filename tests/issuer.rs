//! The certificate issuer (`keyward ca serve`) against moto: KMS signs, STS answers the
//! replayed proof, IAM holds the groups; certificates are read back with the real `ssh-keygen`.
//! Also: the CloudFormation template passes `cfn-lint`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use aws_credential_types::Credentials;
use common::{keyward_cmd, ssh_keygen_list, venv_tool, Issuer, KeyPair, Moto, Run};
use keyward::http::Target;
use keyward::issuer::proof::sign_proof;
use keyward::issuer::wire::{CertKind, IssueRequest};

const AUDIENCE: &str = "https://issuer.example.com";

impl Issuer {
    /// `ca serve --listen 127.0.0.1:0` with `config` (plus an [issuer] table whose STS is
    /// moto's) against `moto`; waits for the URL it prints.
    fn start(moto: &Moto, config: &str) -> Issuer {
        Issuer::start_with(moto, config, "", tempfile::tempdir().unwrap())
    }

    /// With `issuer_extra` lines in the [issuer] table, the config written into `dir`.
    fn start_with(moto: &Moto, config: &str, issuer_extra: &str, dir: tempfile::TempDir) -> Issuer {
        Issuer::start_as(moto, ("testing", "testing"), config, issuer_extra, dir)
    }

    /// Run with the AWS access key `credentials`.
    fn start_as(
        moto: &Moto,
        credentials: (&str, &str),
        config: &str,
        issuer_extra: &str,
        dir: tempfile::TempDir,
    ) -> Issuer {
        Issuer::spawn(moto, credentials, AUDIENCE, config, issuer_extra, dir)
    }

    /// `curl` to the issuer: (status, body).
    fn request(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        self.curl(&[], method, path, body)
    }

    fn curl(&self, options: &[&str], method: &str, path: &str, body: &str) -> (u16, String) {
        let out = Command::new("curl")
            .args([
                "-sS",
                "-X",
                method,
                "--data-binary",
                body,
                "-w",
                "\n%{http_code}",
            ])
            .args(options)
            .arg(format!("{}{path}", self.url))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let (body, status) = text.rsplit_once('\n').unwrap();
        (status.parse().unwrap(), body.to_owned())
    }
}

/// `ca init` in moto's KMS: the CA's public key line.
fn ca_init(moto: &Moto) -> String {
    ca_init_as(moto, ("testing", "testing"))
}

fn ca_init_as(moto: &Moto, credentials: (&str, &str)) -> String {
    let mut cmd = keyward_cmd(&moto.endpoint());
    cmd.env("AWS_ACCESS_KEY_ID", credentials.0)
        .env("AWS_SECRET_ACCESS_KEY", credentials.1)
        .args(["ca", "init"]);
    Run::of(cmd).ok().stdout.trim().to_owned()
}

/// The JSON of a user-certificate request for `key_line`, with a proof signed now by
/// `credentials` for moto's STS, bound to `audience` and the key `bound_fingerprint`.
fn user_request(
    moto: &Moto,
    credentials: (&str, &str),
    key_line: &str,
    bound_fingerprint: &str,
    audience: &str,
    tamper: impl FnOnce(&mut keyward::issuer::Proof),
) -> String {
    let mut proof = sign_proof(
        &Credentials::new(credentials.0, credentials.1, None, None, "test"),
        "us-east-1",
        &Target::parse(&moto.endpoint()).unwrap(),
        audience,
        bound_fingerprint,
        std::time::SystemTime::now(),
    )
    .unwrap();
    tamper(&mut proof);
    serde_json::to_string(&IssueRequest {
        kind: CertKind::User,
        public_key: key_line.to_owned(),
        proof,
        validity_secs: None,
        source_addresses: Vec::new(),
        host_scope: None,
    })
    .unwrap()
}

/// `ssh-keygen -lf` fingerprint of a key line.
fn fingerprint(dir: &Path, line: &str) -> String {
    let path = dir.join("some.pub");
    std::fs::write(&path, format!("{line}\n")).unwrap();
    let out = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(&path)
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .to_owned()
}

fn certificate_of(body: &str) -> String {
    let json: serde_json::Value = serde_json::from_str(body).unwrap();
    json["certificate"]
        .as_str()
        .unwrap_or_else(|| panic!("no certificate: {body}"))
        .to_owned()
}

/// POSTs `body` and expects a refusal with `status` whose message contains `needle`.
fn assert_refused(issuer: &Issuer, body: &str, status: u16, needle: &str) {
    let (got, answer) = issuer.request("POST", "/v1/certificate", body);
    assert_eq!(got, status, "{answer}");
    assert!(error_of(&answer).contains(needle), "{answer}");
}

fn error_of(body: &str) -> String {
    let json: serde_json::Value = serde_json::from_str(body).unwrap();
    json["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error: {body}"))
        .to_owned()
}

#[test]
fn a_user_in_allowed_groups_gets_a_certificate_and_others_are_refused_clearly() {
    let moto = Moto::start();
    let iam = moto.iam();
    let alice_id = iam.user("alice");
    let alice = iam.access_key("alice");
    iam.user("bob");
    let bob = iam.access_key("bob");
    iam.group("ssh-users", &["alice"]);
    iam.group("dev", &["bob"]);
    let ca_line = ca_init(&moto);
    let issuer = Issuer::start(&moto, "allowed_groups = [\"ssh-users\"]");
    let dir = tempfile::tempdir().unwrap();
    let key = KeyPair::generate(dir.path(), "id_ed25519", "ed25519", "alice@laptop");
    let other = KeyPair::generate(dir.path(), "id_other", "ed25519", "other");
    let alice = (alice.0.as_str(), alice.1.as_str());
    let bob = (bob.0.as_str(), bob.1.as_str());

    let started = std::time::Instant::now();
    let body = user_request(
        &moto,
        alice,
        &key.line(),
        &key.fingerprint(),
        AUDIENCE,
        |_| {},
    );
    let (status, answer) = issuer.request("POST", "/v1/certificate", &body);
    eprintln!("issuance took {:?}", started.elapsed());
    assert_eq!(status, 200, "{answer}");
    let listed = ssh_keygen_list(dir.path(), &certificate_of(&answer));
    assert!(listed.contains("user certificate"), "{listed}");
    assert!(
        listed.contains(&format!("Key ID: \"keyward:alice:{alice_id}:")),
        "{listed}"
    );
    let principals = listed.split("Principals:").nth(1).unwrap();
    let principals: Vec<&str> = principals
        .split("Critical Options:")
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(principals, ["alice"], "{listed}");
    assert!(listed.contains(&key.fingerprint()), "{listed}");
    assert!(
        listed.contains(&format!(
            "Signing CA: ECDSA {}",
            fingerprint(dir.path(), &ca_line)
        )),
        "{listed}"
    );
    assert!(listed.contains("permit-pty"), "{listed}");

    // A proof captured for another key, replayed with this key: refused before STS.
    let replayed = user_request(
        &moto,
        alice,
        &key.line(),
        &other.fingerprint(),
        AUDIENCE,
        |_| {},
    );
    assert_refused(
        &issuer,
        &replayed,
        401,
        "the proof is for another public key",
    );

    // A proof made for another issuer.
    let other_issuer = "https://other-issuer.example.com";
    let elsewhere = user_request(
        &moto,
        alice,
        &key.line(),
        &key.fingerprint(),
        other_issuer,
        |_| {},
    );
    assert_refused(&issuer, &elsewhere, 401, "the proof is for another issuer");

    // An IAM user outside allowed_groups: STS accepts the proof, the issuer refuses and says why.
    let outsider = user_request(
        &moto,
        bob,
        &key.line(),
        &key.fingerprint(),
        AUDIENCE,
        |_| {},
    );
    assert_refused(
        &issuer,
        &outsider,
        403,
        "refused: IAM user bob is not in any of this issuer's allowed_groups (ssh-users): ask \
         an admin to add you to one",
    );
}

#[test]
fn a_tampered_proof_is_refused_by_sts() {
    // Seeding is free; from then on moto checks every signature and IAM policy, the issuer's
    // own calls included (it runs as the IAM user `issuer`).
    let moto = Moto::start_enforcing_policies(8);
    let iam = moto.iam();
    iam.user("alice");
    let alice = iam.access_key("alice");
    iam.allow("alice", &["sts:GetCallerIdentity"]);
    iam.user("issuer");
    let issuer_key = iam.access_key("issuer");
    iam.allow("issuer", &["kms:*", "iam:GetUser", "iam:ListGroupsForUser"]);
    iam.group("ssh-users", &["alice"]);
    let issuer_key = (issuer_key.0.as_str(), issuer_key.1.as_str());
    ca_init_as(&moto, issuer_key);
    let issuer = Issuer::start_as(
        &moto,
        issuer_key,
        "allowed_groups = [\"ssh-users\"]",
        "",
        tempfile::tempdir().unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    let key = KeyPair::generate(dir.path(), "id_ed25519", "ed25519", "alice@laptop");
    let alice = (alice.0.as_str(), alice.1.as_str());

    // Untouched, the proof works: what is refused below is the change.
    let body = user_request(
        &moto,
        alice,
        &key.line(),
        &key.fingerprint(),
        AUDIENCE,
        |_| {},
    );
    let (status, answer) = issuer.request("POST", "/v1/certificate", &body);
    assert_eq!(status, 200, "{answer}");

    // A signed header changed in transit, in a way the issuer's own checks cannot see.
    let body = user_request(
        &moto,
        alice,
        &key.line(),
        &key.fingerprint(),
        AUDIENCE,
        |proof| {
            let content_type = proof.headers.get_mut("content-type").unwrap();
            *content_type = content_type.replace("utf-8", "UTF-8");
        },
    );
    let (status, answer) = issuer.request("POST", "/v1/certificate", &body);
    assert_eq!(status, 401, "{answer}");
    assert!(
        error_of(&answer).starts_with("not authenticated:"),
        "{answer}"
    );
}

fn serve_with_config(config: &str, listen: &str) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keyward.toml");
    std::fs::write(&path, config).unwrap();
    // No AWS endpoint answers here: whatever is refused, is refused before AWS is asked.
    let mut cmd = keyward_cmd("http://127.0.0.1:9");
    cmd.arg("--config")
        .arg(&path)
        .args(["ca", "serve", "--listen", listen]);
    Run::of(cmd)
}

#[test]
fn plain_http_on_a_non_loopback_address_is_refused_at_startup() {
    let config = format!("allowed_groups = [\"ssh-users\"]\n[issuer]\naudience = \"{AUDIENCE}\"\n");
    for listen in ["0.0.0.0:0", "[::]:0"] {
        let run = serve_with_config(&config, listen);
        assert_ne!(run.code, 0);
        assert!(
            run.stderr.contains("refusing to serve plain HTTP")
                && run.stderr.contains("tls_certificate"),
            "{}",
            run.stderr
        );
        assert!(run.stdout.is_empty(), "{}", run.stdout);
    }
}

#[test]
fn an_issuer_without_an_issuer_table_does_not_start() {
    let run = serve_with_config("allowed_groups = [\"ssh-users\"]\n", "127.0.0.1:0");
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("no [issuer] table"), "{}", run.stderr);
}

#[test]
fn an_issuer_without_its_ca_key_does_not_start() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keyward.toml");
    std::fs::write(&path, format!("[issuer]\naudience = \"{AUDIENCE}\"\n")).unwrap();
    let mut cmd = keyward_cmd(&moto.endpoint());
    cmd.arg("--config")
        .arg(&path)
        .args(["ca", "serve", "--listen", "127.0.0.1:0"]);
    let run = Run::of(cmd);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("keyward ca init"), "{}", run.stderr);
}

#[test]
fn the_issuer_answers_only_post_to_its_path() {
    let moto = Moto::start();
    ca_init(&moto);
    let issuer = Issuer::start(&moto, "allowed_groups = [\"ssh-users\"]");
    let (status, body) = issuer.request("GET", "/v1/certificate", "");
    assert_eq!(status, 405, "{body}");
    assert!(body.contains("use POST /v1/certificate"), "{body}");
    let (status, body) = issuer.request("POST", "/v1/certificate", "{}");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("bad request"), "{body}");
    let (status, _) = issuer.request("POST", "/", "{}");
    assert_eq!(status, 404);
}

/// cfn-lint from the repo's venv (scripts/test installs it beside moto), else beside
/// MOTO_SERVER.
fn cfn_lint_path() -> PathBuf {
    venv_tool("cfn-lint").unwrap_or_else(|| {
        panic!("cfn-lint not found: run scripts/test (it installs cfn-lint into .venv)")
    })
}

#[test]
fn cfn_lint_accepts_the_issuer_template() {
    let template = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/issuer.yaml");
    let out = Command::new(cfn_lint_path())
        .arg("--")
        .arg(&template)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cfn-lint {}:\n{}{}",
        template.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The template's role carries exactly the issuer policy's actions, on the CA key for KMS.
    let text = std::fs::read_to_string(&template).unwrap();
    for action in keyward::doctor::policy::ISSUER_KMS_ACTIONS
        .iter()
        .chain(keyward::doctor::policy::ISSUER_IAM_ACTIONS)
        .chain(keyward::doctor::policy::ISSUER_HOST_ACTIONS)
    {
        assert!(text.contains(&format!("- {action}\n")), "{action} missing");
    }
    assert!(text.contains("Resource: !Ref CaKeyArn"));
    assert!(text.contains("AuthType: NONE"));
    assert!(text.contains("Runtime: provided.al2023"));
}

/// Review (issue 11): the Function URL is public (AuthType NONE) and anyone can make the
/// function run (a well-formed fake proof even makes it call STS and wait up to 10 s). Without
/// ReservedConcurrentExecutions an unauthenticated flood takes the account's regional Lambda
/// concurrency (1000 by default, shared by every function of the account) and throttles every
/// other Lambda function there, and runs up the bill.
#[test]
fn review_the_public_issuer_has_reserved_concurrency() {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/issuer.yaml"))
            .unwrap();
    assert!(text.contains("AuthType: NONE"));
    assert!(
        text.contains("ReservedConcurrentExecutions:"),
        "a public Function URL with no ReservedConcurrentExecutions on the issuer function"
    );
}

/// Reads deploy/issuer.yaml with cfn-lint's own loader (argv[1]) and checks that every
/// parameter that reaches the function's TOML config admits no quote, backslash or line break:
/// its AllowedPattern (CloudFormation matches it against the whole value, or each value of a
/// list) refuses probes holding them, or its AllowedValues hold none. Prints the parameters it
/// checked, then the failures.
const TOML_PARAMETERS_CHECK: &str = r#"
import re, sys
from cfnlint.decode import cfn_yaml

template = cfn_yaml.load(sys.argv[1])
toml = template["Resources"]["IssuerFunction"]["Properties"]["Environment"]["Variables"][
    "KEYWARD_CONFIG_TOML"
]["Fn::Sub"]
text, variables = toml
params = template["Parameters"]


def refs(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


used = set(re.findall(r"\$\{(\w+)\}", text)) - set(variables) | set(refs(variables))
used &= set(params)
bad = ['"', "\\", "\n", "\r"]
probes = [
    prefix + c + suffix
    for c in bad
    for prefix in ["", "a", "https://x", "https://x/", "alias/a", "1h"]
    for suffix in ["", "a"]
]
failures = []
for name in sorted(used):
    spec = params[name]
    if "AllowedValues" in spec:
        failures += [f"{name}: {v!r}" for v in spec["AllowedValues"] if any(c in v for c in bad)]
    elif "AllowedPattern" in spec:
        failures += [
            f"{name} admits {p!r}" for p in probes if re.fullmatch(spec["AllowedPattern"], p)
        ]
    else:
        failures.append(f"{name} has neither AllowedPattern nor AllowedValues")
print(" ".join(sorted(used)))
print("\n".join(failures))
sys.exit(1 if failures else 0)
"#;

/// Runs [`TOML_PARAMETERS_CHECK`] on `template`: (passed, stdout).
fn check_toml_parameters(template: &Path) -> (bool, String) {
    let out = Command::new(cfn_lint_path().with_file_name("python3"))
        .arg("-c")
        .arg(TOML_PARAMETERS_CHECK)
        .arg(template)
        .output()
        .unwrap();
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Review finding (issue 11): the function's TOML config is built with `!Sub` from parameters,
/// so a parameter value with a quote or a line break could add or change settings (another
/// `allowed_groups`, `host_roles`). Every such parameter is held to a strict pattern.
#[test]
fn no_parameter_can_change_the_shape_of_the_issuer_toml() {
    let template = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/issuer.yaml");
    let (passed, out) = check_toml_parameters(&template);
    assert!(passed, "{out}");
    for name in [
        "AllowedGroups",
        "Audience",
        "CaKeyAlias",
        "HostRoles",
        "MaxValidity",
        "NameMapping",
    ] {
        assert!(out.lines().next().unwrap().contains(name), "{out}");
    }
    // The check is real: the old Audience pattern (any printable character) fails it.
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(&template).unwrap();
    let start = text.find("  Audience:").unwrap();
    let line = start + text[start..].find("AllowedPattern:").unwrap();
    let end = line + text[line..].find('\n').unwrap();
    let loose = format!(
        "{}AllowedPattern: \"[!-~]{{1,256}}\"{}",
        &text[..line],
        &text[end..]
    );
    let broken = dir.path().join("loose.yaml");
    std::fs::write(&broken, loose).unwrap();
    let (passed, out) = check_toml_parameters(&broken);
    assert!(!passed && out.contains("Audience admits"), "{out}");
}

#[test]
fn cfn_lint_fails_a_broken_template() {
    // The check above is real: cfn-lint refuses a template with an unknown property.
    let dir = tempfile::tempdir().unwrap();
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/issuer.yaml"))
            .unwrap()
            .replace("AuthType: NONE", "AuthType: NONE\n      AuthTypo: NONE");
    let broken = dir.path().join("broken.yaml");
    std::fs::write(&broken, text).unwrap();
    let out = Command::new(cfn_lint_path())
        .arg("--")
        .arg(&broken)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("AuthTypo"));
}

#[test]
fn with_tls_configured_the_issuer_speaks_https_only() {
    let moto = Moto::start();
    ca_init(&moto);
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=issuer"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tls = format!(
        "tls_certificate = \"{}\"\ntls_key = \"{}\"",
        cert.display(),
        key.display()
    );
    let issuer = Issuer::start_with(&moto, "allowed_groups = [\"ssh-users\"]", &tls, dir);
    assert!(
        issuer.url.starts_with("https://127.0.0.1:"),
        "{}",
        issuer.url
    );
    let ca = cert.to_str().unwrap();
    let (status, body) = issuer.curl(&["--cacert", ca], "GET", "/v1/certificate", "");
    assert_eq!(status, 405, "{body}");
    // Plain HTTP to the TLS port gets no answer.
    let plain = Command::new("curl")
        .args(["-sS", "--max-time", "5"])
        .arg(issuer.url.replace("https://", "http://") + "/v1/certificate")
        .output()
        .unwrap();
    assert!(!plain.status.success());
}

/// A loopback stand-in for the Lambda runtime API: hands out `events` (request id, event JSON)
/// one per `invocation/next`, then answers 500 (the function then exits); records every POST
/// as (path, body). One request per connection.
struct FakeRuntimeApi {
    address: String,
    posts: std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>,
}

impl FakeRuntimeApi {
    fn start(events: Vec<(String, String)>) -> FakeRuntimeApi {
        use std::io::{Read as _, Write as _};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let posts = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let recorded = std::sync::Arc::clone(&posts);
        std::thread::spawn(move || {
            let mut events = events.into_iter();
            for stream in listener.incoming() {
                let mut stream = stream.unwrap();
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let head_end = loop {
                    if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break end;
                    }
                    let n = stream.read(&mut chunk).unwrap();
                    if n == 0 {
                        break 0;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                let length: usize = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap())
                    })
                    .unwrap_or(0);
                let mut body = buf[head_end + 4..].to_vec();
                while body.len() < length {
                    let n = stream.read(&mut chunk).unwrap();
                    body.extend_from_slice(&chunk[..n]);
                }
                let request_line = head.lines().next().unwrap_or("").to_owned();
                let path = request_line.split(' ').nth(1).unwrap_or("").to_owned();
                let answer = if request_line.starts_with("GET ")
                    && path == "/2018-06-01/runtime/invocation/next"
                {
                    match events.next() {
                        Some((id, event)) => format!(
                            "HTTP/1.1 200 OK\r\nLambda-Runtime-Aws-Request-Id: {id}\r\n\
                             Content-Length: {}\r\nConnection: close\r\n\r\n{event}",
                            event.len()
                        ),
                        None => "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\
                                 Connection: close\r\n\r\n"
                            .to_owned(),
                    }
                } else {
                    recorded
                        .lock()
                        .unwrap()
                        .push((path, String::from_utf8(body).unwrap()));
                    "HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        .to_owned()
                };
                let _ = stream.write_all(answer.as_bytes());
            }
        });
        FakeRuntimeApi { address, posts }
    }

    fn posts(&self) -> Vec<(String, String)> {
        self.posts.lock().unwrap().clone()
    }
}

/// `keyward ca lambda` (run as `bootstrap`, as Lambda runs it) against `api` and moto.
fn run_lambda(moto: &Moto, api: &FakeRuntimeApi, config: &str) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let bootstrap = dir.path().join("bootstrap");
    std::os::unix::fs::symlink(common::BIN, &bootstrap).unwrap();
    let mut cmd = Command::new(&bootstrap);
    // keyward_cmd's environment, for the program under its Lambda name.
    for (key, value) in keyward_cmd(&moto.endpoint()).get_envs() {
        match value {
            Some(value) => cmd.env(key, value),
            None => cmd.env_remove(key),
        };
    }
    cmd.env("AWS_LAMBDA_RUNTIME_API", &api.address)
        .env("KEYWARD_CONFIG_TOML", config);
    Run::of(cmd)
}

/// A Function URL event (payload format 2.0) carrying `body`.
fn function_url_event(body: &str) -> String {
    serde_json::json!({
        "version": "2.0",
        "rawPath": "/v1/certificate",
        "headers": {"content-type": "application/json"},
        "requestContext": {
            "http": {"method": "POST", "path": "/v1/certificate", "sourceIp": "192.0.2.1"},
            "requestId": "abc"
        },
        "body": body,
        "isBase64Encoded": false
    })
    .to_string()
}

#[test]
fn as_a_lambda_function_the_issuer_answers_function_url_events() {
    let moto = Moto::start();
    let iam = moto.iam();
    iam.user("alice");
    let alice = iam.access_key("alice");
    iam.group("ssh-users", &["alice"]);
    ca_init(&moto);
    let dir = tempfile::tempdir().unwrap();
    let key = KeyPair::generate(dir.path(), "id_ed25519", "ed25519", "alice@laptop");
    let alice = (alice.0.as_str(), alice.1.as_str());
    let body = user_request(
        &moto,
        alice,
        &key.line(),
        &key.fingerprint(),
        AUDIENCE,
        |_| {},
    );
    let api = FakeRuntimeApi::start(vec![
        ("req-1".into(), function_url_event(&body)),
        ("req-2".into(), function_url_event("{}")),
    ]);
    let config = format!(
        "allowed_groups = [\"ssh-users\"]\n[issuer]\naudience = \"{AUDIENCE}\"\n\
         sts_endpoint = \"{}\"\n",
        moto.endpoint()
    );
    let run = run_lambda(&moto, &api, &config);
    // The runtime API's 500 on the third `next` ends the process, as Lambda would restart it.
    assert_ne!(run.code, 0);
    assert!(
        run.stderr.contains("invocation/next: HTTP 500"),
        "{}",
        run.stderr
    );
    let posts = api.posts();
    assert_eq!(posts.len(), 2, "{posts:?}\n{}", run.stderr);
    assert_eq!(posts[0].0, "/2018-06-01/runtime/invocation/req-1/response");
    let response: serde_json::Value = serde_json::from_str(&posts[0].1).unwrap();
    assert_eq!(response["statusCode"], 200, "{response}");
    let listed = ssh_keygen_list(
        dir.path(),
        &certificate_of(response["body"].as_str().unwrap()),
    );
    assert!(listed.contains("Key ID: \"keyward:alice:"), "{listed}");
    assert_eq!(posts[1].0, "/2018-06-01/runtime/invocation/req-2/response");
    let response: serde_json::Value = serde_json::from_str(&posts[1].1).unwrap();
    assert_eq!(response["statusCode"], 400, "{response}");
}

#[test]
fn a_lambda_function_that_cannot_start_reports_an_init_error() {
    let moto = Moto::start();
    let api = FakeRuntimeApi::start(Vec::new());
    let run = run_lambda(&moto, &api, "allowed_groups = [\"ssh-users\"]\n");
    assert_ne!(run.code, 0);
    let posts = api.posts();
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert_eq!(posts[0].0, "/2018-06-01/runtime/init/error");
    let error: serde_json::Value = serde_json::from_str(&posts[0].1).unwrap();
    assert_eq!(error["errorType"], "Runtime.InitError");
    assert!(
        error["errorMessage"]
            .as_str()
            .unwrap()
            .contains("no [issuer] table"),
        "{error}"
    );
}
