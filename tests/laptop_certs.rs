//! `keyward ssh-cert` and `keyward ssh` on a laptop: against a loopback fake issuer that
//! answers with certificates the real ssh-keygen signed, what lands next to the key, what is
//! refused, which exit code each issuer answer gives, and what `ssh` is run with.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use common::{keyward_cmd, ssh_keygen_list_file, Issuer, KeyPair, Moto, Run};

// ---- a fake issuer --------------------------------------------------------------------

/// Answers every POST with one fixed status and JSON body, and records the request bodies.
struct FakeIssuer {
    url: String,
    bodies: Arc<Mutex<Vec<String>>>,
    answer: Arc<Mutex<(u16, String)>>,
}

impl FakeIssuer {
    fn start(status: u16, body: &str) -> FakeIssuer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let answer = Arc::new(Mutex::new((status, body.to_owned())));
        let (b, a) = (bodies.clone(), answer.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    let lower = line.to_ascii_lowercase();
                    if let Some(v) = lower.strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap();
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                b.lock().unwrap().push(String::from_utf8(body).unwrap());
                let (status, text) = a.lock().unwrap().clone();
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
                    text.len()
                );
            }
        });
        FakeIssuer {
            url,
            bodies,
            answer,
        }
    }

    fn certificate(line: &str) -> FakeIssuer {
        FakeIssuer::start(200, &certificate_json(line))
    }

    fn answer(&self, status: u16, body: &str) {
        *self.answer.lock().unwrap() = (status, body.to_owned());
    }

    fn requests(&self) -> Vec<serde_json::Value> {
        self.bodies
            .lock()
            .unwrap()
            .iter()
            .map(|b| serde_json::from_str(b).unwrap())
            .collect()
    }
}

fn certificate_json(line: &str) -> String {
    serde_json::json!({ "certificate": line.trim() }).to_string()
}

// ---- a laptop ---------------------------------------------------------------------------

/// A home directory with ~/.ssh/id_ed25519, a CA key pair (ssh-keygen's, standing in for KMS)
/// and the CA's public key file.
struct Laptop {
    home: tempfile::TempDir,
    key: KeyPair,
    ca: KeyPair,
}

impl Laptop {
    fn new() -> Laptop {
        let home = tempfile::tempdir().unwrap();
        let ssh = home.path().join(".ssh");
        std::fs::create_dir(&ssh).unwrap();
        std::fs::set_permissions(&ssh, std::fs::Permissions::from_mode(0o700)).unwrap();
        let key = KeyPair::generate(&ssh, "id_ed25519", "ed25519", "alice@laptop");
        let ca_dir = home.path().join("ca");
        std::fs::create_dir(&ca_dir).unwrap();
        let ca = KeyPair::generate(&ca_dir, "ca", "ecdsa", "keyward-ca");
        Laptop { home, key, ca }
    }

    fn cert_path(&self) -> PathBuf {
        self.home.path().join(".ssh/id_ed25519-cert.pub")
    }

    /// A certificate for the laptop's key, signed by `ca` with ssh-keygen.
    fn sign(&self, ca: &KeyPair, validity: &str) -> String {
        sign(ca, &self.key, &["-n", "alice_smith", "-V", validity])
    }

    fn keyward(&self, issuer: &FakeIssuer, args: &[&str]) -> Run {
        Run::of(self.command(issuer, args))
    }

    fn command(&self, issuer: &FakeIssuer, args: &[&str]) -> Command {
        // The fake issuer never replays the proof, so the SDK's test credentials do.
        let mut cmd = keyward_cmd("http://127.0.0.1:9");
        cmd.env("HOME", self.home.path())
            .env_remove("SSH_AUTH_SOCK")
            .env_remove("XDG_CONFIG_HOME")
            .env("KEYWARD_ISSUER", &issuer.url)
            .env("KEYWARD_CA_PUBLIC_KEY_FILE", &self.ca.public)
            .args(args);
        cmd
    }
}

/// `ssh-keygen -s CA -I ID [extra] KEY.pub`: the certificate line.
fn sign(ca: &KeyPair, key: &KeyPair, extra: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let public = dir.path().join("k.pub");
    std::fs::copy(&key.public, &public).unwrap();
    let status = Command::new("ssh-keygen")
        .args(["-q", "-s"])
        .arg(&ca.private)
        .args(["-I", "keyward:alice.smith:AIDAEXAMPLE:1"])
        .args(extra)
        .arg(&public)
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::read_to_string(dir.path().join("k-cert.pub")).unwrap()
}

fn type_and_blob(line: &str) -> String {
    line.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

// ---- ssh-cert -----------------------------------------------------------------------------

#[test]
fn ssh_cert_writes_the_checked_certificate_next_to_the_key() {
    let laptop = Laptop::new();
    let line = laptop.sign(&laptop.ca, "-5m:+1h");
    let issuer = FakeIssuer::certificate(&line);

    let run = laptop.keyward(&issuer, &["ssh-cert"]).ok();
    assert!(
        run.stdout.contains("principals alice_smith"),
        "{}",
        run.stdout
    );

    let written = std::fs::read_to_string(laptop.cert_path()).unwrap();
    assert_eq!(written, format!("{}\n", type_and_blob(&line)));
    let meta = std::fs::symlink_metadata(laptop.cert_path()).unwrap();
    assert!(meta.is_file());
    assert_eq!(meta.permissions().mode() & 0o777, 0o644);
    let listing = ssh_keygen_list_file(&laptop.cert_path());
    assert!(listing.contains("alice_smith"), "{listing}");
    assert!(
        listing.contains("keyward:alice.smith:AIDAEXAMPLE:1"),
        "{listing}"
    );

    // What was sent: the public key, for a user certificate, with the default validity.
    let requests = issuer.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0]["kind"], "user");
    assert_eq!(
        type_and_blob(requests[0]["public_key"].as_str().unwrap()),
        laptop.key.type_and_blob()
    );
    assert_eq!(requests[0]["validity_secs"], 3600);
    let private = std::fs::read_to_string(&laptop.key.private).unwrap();
    let secret = private.lines().nth(1).unwrap();
    assert!(!issuer.bodies.lock().unwrap()[0].contains(secret));
}

#[test]
fn ssh_cert_replaces_a_symlink_instead_of_following_it() {
    let laptop = Laptop::new();
    let target = laptop.home.path().join("elsewhere");
    std::fs::write(&target, "untouched\n").unwrap();
    std::os::unix::fs::symlink(&target, laptop.cert_path()).unwrap();
    let issuer = FakeIssuer::certificate(&laptop.sign(&laptop.ca, "-5m:+1h"));

    laptop.keyward(&issuer, &["ssh-cert"]).ok();
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "untouched\n");
    assert!(std::fs::symlink_metadata(laptop.cert_path())
        .unwrap()
        .is_file());
}

#[test]
fn ssh_cert_sends_the_requested_validity_source_addresses_and_host_scope() {
    let laptop = Laptop::new();
    let issuer = FakeIssuer::certificate(&laptop.sign(&laptop.ca, "-5m:+1h"));
    laptop
        .keyward(
            &issuer,
            &[
                "ssh-cert",
                "--validity",
                "8h",
                "--source-address",
                "10.0.0.0/8",
                "--source-address",
                "192.0.2.1",
                "--host",
                "i-0123456789abcdef0",
            ],
        )
        .ok();
    let request = &issuer.requests()[0];
    assert_eq!(request["validity_secs"], 8 * 3600);
    assert_eq!(
        request["source_addresses"],
        serde_json::json!(["10.0.0.0/8", "192.0.2.1"])
    );
    assert_eq!(request["host_scope"], "i-0123456789abcdef0");
}

#[test]
fn certificate_from_another_ca_is_refused_and_not_written() {
    let laptop = Laptop::new();
    let other = KeyPair::generate(laptop.home.path(), "other-ca", "ecdsa", "other");
    let issuer = FakeIssuer::certificate(&laptop.sign(&other, "-5m:+1h"));

    let run = laptop.keyward(&issuer, &["ssh-cert"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("does not use: it is signed by another CA"),
        "{}",
        run.stderr
    );
    assert!(!laptop.cert_path().exists());
}

#[test]
fn expired_certificate_from_the_issuer_is_refused() {
    let laptop = Laptop::new();
    let issuer = FakeIssuer::certificate(&laptop.sign(&laptop.ca, "-2h:-1h"));
    let run = laptop.keyward(&issuer, &["ssh-cert"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("it expired at"), "{}", run.stderr);
    assert!(!laptop.cert_path().exists());
}

#[test]
fn issuer_answers_map_to_exit_codes_with_the_issuers_reason() {
    let laptop = Laptop::new();
    let issuer = FakeIssuer::start(
        403,
        r#"{"error":"refused: IAM user alice.smith is in none of the issuer's allowed_groups (ssh-users)"}"#,
    );
    let run = laptop.keyward(&issuer, &["ssh-cert"]);
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(
        run.stderr.contains("allowed_groups (ssh-users)"),
        "{}",
        run.stderr
    );

    issuer.answer(
        401,
        r#"{"error":"not authenticated: STS refused the proof"}"#,
    );
    let run = laptop.keyward(&issuer, &["ssh-cert"]);
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(
        run.stderr.contains("STS refused the proof"),
        "{}",
        run.stderr
    );

    issuer.answer(503, r#"{"error":"unavailable: KMS could not be reached"}"#);
    let run = laptop.keyward(&issuer, &["ssh-cert"]);
    assert_eq!(run.code, 3, "{}", run.stderr);

    issuer.answer(400, r#"{"error":"bad request: the key is not usable"}"#);
    let run = laptop.keyward(&issuer, &["ssh-cert"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(!laptop.cert_path().exists());
}

#[test]
fn unreachable_issuer_exits_3() {
    let laptop = Laptop::new();
    // Bound, then closed: nothing listens there.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut issuer = FakeIssuer::start(200, "{}");
    issuer.url = format!("http://127.0.0.1:{port}");
    let run = laptop.keyward(&issuer, &["ssh-cert"]);
    assert_eq!(run.code, 3, "{}", run.stderr);
}

#[test]
fn plain_http_issuer_off_loopback_is_refused_before_anything_is_sent() {
    let laptop = Laptop::new();
    let mut issuer = FakeIssuer::start(200, "{}");
    issuer.url = "http://issuer.example.com".to_owned();
    let run = laptop.keyward(&issuer, &["ssh-cert"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("loopback"), "{}", run.stderr);
}

#[test]
fn known_hosts_gets_the_cert_authority_line_once() {
    let laptop = Laptop::new();
    let issuer = FakeIssuer::certificate(&laptop.sign(&laptop.ca, "-5m:+1h"));
    let known_hosts = laptop.home.path().join(".ssh/known_hosts");
    std::fs::write(&known_hosts, "old.example ssh-ed25519 AAAA\n").unwrap();
    for _ in 0..2 {
        laptop.keyward(&issuer, &["ssh-cert", "--known-hosts"]).ok();
    }
    let text = std::fs::read_to_string(&known_hosts).unwrap();
    let ca_line = format!("@cert-authority * {}", type_and_blob(&laptop.ca.line()));
    assert_eq!(text, format!("old.example ssh-ed25519 AAAA\n{ca_line}\n"));
}

/// An ssh-agent of the test's own, on a socket in a temp dir; killed when dropped.
struct Agent {
    child: Child,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl Agent {
    fn start() -> Agent {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("agent.sock");
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        for _ in 0..100 {
            if socket.exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Agent {
            child,
            socket,
            _dir: dir,
        }
    }

    fn list(&self) -> String {
        let out = Command::new("ssh-add")
            .arg("-l")
            .env("SSH_AUTH_SOCK", &self.socket)
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn agent_gets_the_key_and_its_certificate() {
    let laptop = Laptop::new();
    let issuer = FakeIssuer::certificate(&laptop.sign(&laptop.ca, "-5m:+1h"));
    let agent = Agent::start();
    Run::of({
        let mut cmd = laptop.command(&issuer, &["ssh-cert"]);
        cmd.env("SSH_AUTH_SOCK", &agent.socket);
        cmd
    })
    .ok();
    let listed = agent.list();
    assert!(listed.contains("ED25519-CERT"), "{listed}");

    // --no-agent leaves a fresh agent empty.
    let fresh = Agent::start();
    Run::of({
        let mut cmd = laptop.command(&issuer, &["ssh-cert", "--no-agent"]);
        cmd.env("SSH_AUTH_SOCK", &fresh.socket);
        cmd
    })
    .ok();
    assert!(!fresh.list().contains("ED25519"), "{}", fresh.list());
}

#[test]
fn failing_ssh_add_is_a_warning_that_names_the_fix() {
    let laptop = Laptop::new();
    let issuer = FakeIssuer::certificate(&laptop.sign(&laptop.ca, "-5m:+1h"));
    let run = Run::of({
        let mut cmd = laptop.command(&issuer, &["ssh-cert"]);
        cmd.env("SSH_AUTH_SOCK", laptop.home.path().join("no-agent-here"));
        cmd
    })
    .ok();
    assert!(
        run.stderr.contains("warning: ssh-add failed"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("ssh-add -t "), "{}", run.stderr);
    assert!(laptop.cert_path().is_file());
}

// ---- keyward ssh --------------------------------------------------------------------------

/// A directory with a fake `ssh` that records its arguments, one per line, in `args`.
fn fake_ssh(dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir(&bin).unwrap();
    let script = bin.join("ssh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > {}\n",
            dir.join("args").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

fn keyward_ssh(laptop: &Laptop, issuer: &FakeIssuer, bin: &Path, args: &[&str]) -> Vec<String> {
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    Run::of({
        let mut cmd = laptop.command(issuer, &["ssh"]);
        cmd.env("PATH", path).args(args);
        cmd
    })
    .ok();
    let recorded = std::fs::read_to_string(laptop.home.path().join("args")).unwrap();
    recorded.lines().map(str::to_owned).collect()
}

#[test]
fn ssh_gets_a_certificate_reuses_it_and_runs_ssh_with_it() {
    let laptop = Laptop::new();
    let bin = fake_ssh(laptop.home.path());
    let issuer = FakeIssuer::certificate(&laptop.sign(&laptop.ca, "-5m:+1h"));
    let ssh = laptop.home.path().join(".ssh");

    let args = keyward_ssh(
        &laptop,
        &issuer,
        &bin,
        &["host.example", "--", "-p", "2222", "uptime"],
    );
    assert_eq!(
        args,
        [
            "-o".to_owned(),
            format!("IdentityFile=\"{}\"", ssh.join("id_ed25519").display()),
            "-o".to_owned(),
            format!(
                "CertificateFile=\"{}\"",
                ssh.join("id_ed25519-cert.pub").display()
            ),
            "-l".to_owned(),
            "alice_smith".to_owned(),
            "host.example".to_owned(),
            "-p".to_owned(),
            "2222".to_owned(),
            "uptime".to_owned(),
        ]
    );
    assert_eq!(issuer.requests().len(), 1);
    assert!(laptop.cert_path().is_file());

    // Valid for most of an hour: reused, no second request.
    keyward_ssh(&laptop, &issuer, &bin, &["alice_smith@host.example"]);
    assert_eq!(issuer.requests().len(), 1);
}

#[test]
fn ssh_renews_a_certificate_with_five_minutes_or_less_left() {
    let laptop = Laptop::new();
    let bin = fake_ssh(laptop.home.path());
    std::fs::write(laptop.cert_path(), laptop.sign(&laptop.ca, "-5m:+4m")).unwrap();
    let fresh = laptop.sign(&laptop.ca, "-5m:+1h");
    let issuer = FakeIssuer::certificate(&fresh);

    keyward_ssh(&laptop, &issuer, &bin, &["host.example"]);
    assert_eq!(issuer.requests().len(), 1);
    assert_eq!(
        std::fs::read_to_string(laptop.cert_path()).unwrap(),
        format!("{}\n", type_and_blob(&fresh))
    );
}

#[test]
fn ssh_renews_a_planted_certificate_from_another_ca() {
    let laptop = Laptop::new();
    let bin = fake_ssh(laptop.home.path());
    let other = KeyPair::generate(laptop.home.path(), "other-ca", "ecdsa", "other");
    std::fs::write(laptop.cert_path(), laptop.sign(&other, "-5m:+1h")).unwrap();
    let issuer = FakeIssuer::certificate(&laptop.sign(&laptop.ca, "-5m:+1h"));

    keyward_ssh(&laptop, &issuer, &bin, &["host.example"]);
    assert_eq!(issuer.requests().len(), 1);
}

#[test]
fn ssh_refuses_a_host_that_looks_like_an_option() {
    let laptop = Laptop::new();
    let issuer = FakeIssuer::certificate(&laptop.sign(&laptop.ca, "-5m:+1h"));
    let run = laptop.keyward(&issuer, &["ssh", "-oProxyCommand=touch /tmp/x"]);
    assert_ne!(run.code, 0);
    assert!(issuer.requests().is_empty());
}
// ---- the real chain: moto, `keyward ca init`, `keyward ca serve` ---------------------------

/// `keyward ssh-cert` as IAM user `user` against the real issuer.
fn ssh_cert_as(moto: &Moto, user: &str, home: &Path, issuer: &Issuer, ca_line: &str) -> Run {
    let (key, secret) = moto.iam().access_key(user);
    let mut cmd = keyward_cmd(&moto.endpoint());
    cmd.env("HOME", home)
        .env_remove("SSH_AUTH_SOCK")
        .env_remove("XDG_CONFIG_HOME")
        .env("AWS_ACCESS_KEY_ID", key)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .env("KEYWARD_ISSUER", &issuer.url)
        .env("KEYWARD_AUDIENCE", "keyward-test")
        .env("KEYWARD_CA_PUBLIC_KEY", ca_line)
        .arg("ssh-cert");
    Run::of(cmd)
}

#[test]
fn ssh_cert_gets_a_certificate_from_the_real_issuer_for_a_member_of_an_allowed_group() {
    let moto = Moto::start();
    let iam = moto.iam();
    let user_id = iam.user("alice.smith");
    iam.user("mallory");
    iam.group("ssh-users", &["alice.smith"]);
    let init = Run::of({
        let mut cmd = keyward_cmd(&moto.endpoint());
        cmd.args(["ca", "init"]);
        cmd
    })
    .ok();
    let ca_line = init.stdout.trim().to_owned();
    let issuer = Issuer::spawn(
        &moto,
        ("testing", "testing"),
        "keyward-test",
        "allowed_groups = [\"ssh-users\"]",
        "",
        tempfile::tempdir().unwrap(),
    );

    let home = tempfile::tempdir().unwrap();
    let ssh = home.path().join(".ssh");
    std::fs::create_dir(&ssh).unwrap();
    let key = KeyPair::generate(&ssh, "id_ed25519", "ed25519", "alice@laptop");
    ssh_cert_as(&moto, "alice.smith", home.path(), &issuer, &ca_line).ok();
    let listing = ssh_keygen_list_file(&ssh.join("id_ed25519-cert.pub"));
    assert!(
        listing.contains("Type: ssh-ed25519-cert-v01@openssh.com user certificate"),
        "{listing}"
    );
    assert!(
        listing.contains(&format!("Public key: ED25519-CERT {}", key.fingerprint())),
        "{listing}"
    );
    assert!(
        listing.contains(&format!("Key ID: \"keyward:alice.smith:{user_id}:")),
        "{listing}"
    );
    assert!(
        listing.contains("Principals: \n                alice.smith\n"),
        "{listing}"
    );

    let outsider = tempfile::tempdir().unwrap();
    let ssh = outsider.path().join(".ssh");
    std::fs::create_dir(&ssh).unwrap();
    KeyPair::generate(&ssh, "id_ed25519", "ed25519", "mallory@laptop");
    let run = ssh_cert_as(&moto, "mallory", outsider.path(), &issuer, &ca_line);
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(run.stderr.contains("allowed_groups"), "{}", run.stderr);
    assert!(!ssh.join("id_ed25519-cert.pub").exists());
}
