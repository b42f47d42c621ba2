//! The certificate issuer (`keyward ca serve`) against moto: KMS signs, STS answers the
//! replayed proof, IAM holds the groups; certificates are read back with the real `ssh-keygen`.
//! Also: the CloudFormation template passes `cfn-lint`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{keyward_cmd, Moto, Run};

const AUDIENCE: &str = "https://issuer.example.com";

/// A `keyward ca serve` child process, killed when dropped.
struct Issuer {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Issuer {
    /// `ca serve --listen 127.0.0.1:0` with `config` (plus an [issuer] table whose STS is
    /// moto's) against `moto`; waits for the URL it prints.
    fn start(moto: &Moto, config: &str) -> Issuer {
        Issuer::start_with(moto, config, "", tempfile::tempdir().unwrap())
    }

    /// With `issuer_extra` lines in the [issuer] table, the config written into `dir`.
    fn start_with(moto: &Moto, config: &str, issuer_extra: &str, dir: tempfile::TempDir) -> Issuer {
        let path = dir.path().join("keyward.toml");
        std::fs::write(
            &path,
            format!(
                "{config}\n[issuer]\naudience = \"{AUDIENCE}\"\nsts_endpoint = \"{}\"\n{issuer_extra}\n",
                moto.endpoint()
            ),
        )
        .unwrap();
        let mut child = keyward_cmd(&moto.endpoint())
            .arg("--config")
            .arg(&path)
            .args(["ca", "serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("ca serve printed no URL within 60s");
        let url = line.trim().to_owned();
        assert!(
            url.starts_with("http://127.0.0.1:") || url.starts_with("https://127.0.0.1:"),
            "{url:?}"
        );
        Issuer {
            child,
            url,
            _dir: dir,
        }
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

impl Drop for Issuer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `ca init` in moto's KMS.
fn ca_init(moto: &Moto) -> String {
    let mut cmd = keyward_cmd(&moto.endpoint());
    cmd.args(["ca", "init"]);
    Run::of(cmd).ok().stdout.trim().to_owned()
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
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/cfn-lint");
    if venv.exists() {
        return venv;
    }
    if let Some(moto) = std::env::var_os("MOTO_SERVER") {
        let beside = Path::new(&moto).with_file_name("cfn-lint");
        if beside.exists() {
            return beside;
        }
    }
    panic!("cfn-lint not found: run scripts/test (it installs cfn-lint into .venv)")
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
