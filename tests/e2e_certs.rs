//! End-to-end: keyward user certificates against the real sshd in a namespace
//! (`tests/e2e/scenarios/certificates.sh`: `install --ca`, `authorized-principals`, sync's lock).
//!
//! The CA is a KMS key in a moto this test runs (`keyward ca init`, as an admin makes it); the
//! scenario's host gets only its public key. The scenario cannot know a certificate's contents
//! in advance (the key id carries the IAM UserId its own moto gave carol), so it asks: it
//! writes `NAME.req` into the one directory the namespace shares with this host (its log
//! directory, under `E2E_LOG_DIR`), and this test signs it through `keyward::ca` (KMS `Sign`)
//! and answers with `NAME-cert.pub`, until the scenario exits.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod e2e_support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{keyward_cmd, kms_client, runtime, Moto, Run};
use e2e_support::repo;
use keyward::ca::{self, AwsKms, Ca};
use keyward::keys::cert::{IamIdentity, UserCertRequest, NONCE_LEN};
use keyward::keys::PublicKey;

/// Where the scenario finds the signing directory: its log directory, as the namespace sees it.
const CERT_DIR_INSIDE: &str = "/run/keyward/logs/certs";
const OTHER_ALIAS: &str = "alias/e2e-other-ca";

struct Signer {
    rt: tokio::runtime::Runtime,
    main: Ca<AwsKms>,
    other: Ca<AwsKms>,
    serial: u64,
}

impl Signer {
    /// Signs one request (`key value` lines) and returns the certificate line.
    fn sign(&mut self, request: &str) -> Result<String, String> {
        let field = |name: &str| {
            request
                .lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
                .ok_or(format!("no {name} in the request"))
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let at = |name: &str| -> Result<u64, String> {
            let offset: i64 = field(name)?.parse().map_err(|e| format!("{name}: {e}"))?;
            Ok(now.saturating_add_signed(offset))
        };
        let subject = PublicKey::parse(field("key")?).map_err(|e| e.to_string())?;
        self.serial += 1;
        let mut nonce = [0x11u8; NONCE_LEN];
        nonce[..8].copy_from_slice(&self.serial.to_be_bytes());
        let request = UserCertRequest {
            subject: &subject,
            identity: IamIdentity {
                user_name: field("iam_user")?.to_owned(),
                user_id: field("user_id")?.to_owned(),
            },
            serial: self.serial,
            principals: field("principals")?.split(',').map(str::to_owned).collect(),
            valid_after: at("after")?,
            valid_before: at("before")?,
            source_addresses: field("source")
                .map(|s| vec![s.to_owned()])
                .unwrap_or_default(),
            nonce,
        };
        let ca = match field("ca")? {
            "main" => &self.main,
            "other" => &self.other,
            other => return Err(format!("no CA {other:?}")),
        };
        let cert = self
            .rt
            .block_on(ca.sign_user_cert(&request))
            .map_err(|e| e.to_string())?;
        Ok(cert.to_line())
    }

    /// Answers every pending `NAME.req` under `logs` (the scenario's log directory, whichever
    /// name `tests/e2e/ns` gave it).
    fn answer(&mut self, logs: &Path) {
        let Ok(runs) = fs::read_dir(logs) else { return };
        for run in runs.flatten() {
            let Ok(entries) = fs::read_dir(run.path().join("certs")) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                let Some(name) = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.strip_suffix(".req"))
                    .map(str::to_owned)
                else {
                    continue;
                };
                let dir = path.parent().unwrap().to_owned();
                let request = fs::read_to_string(&path).unwrap();
                fs::remove_file(&path).unwrap();
                let (file, text) = match self.sign(&request) {
                    Ok(line) => (format!("{name}-cert.pub"), format!("{line}\n")),
                    Err(e) => (format!("{name}.error"), format!("{e}\n")),
                };
                write_atomically(&dir, &file, &text);
            }
        }
    }
}

fn write_atomically(dir: &Path, name: &str, text: &str) {
    let tmp = dir.join(format!(".{name}.tmp"));
    fs::write(&tmp, text).unwrap();
    fs::rename(&tmp, dir.join(name)).unwrap();
}

/// `keyward ca init --alias ALIAS` against `moto`: the CA's public key line.
fn ca_init(moto: &Moto, alias: &str) -> String {
    let mut cmd = keyward_cmd(&moto.endpoint());
    cmd.args(["ca", "init", "--alias", alias]);
    let run = Run::of(cmd);
    assert_eq!(run.code, 0, "ca init {alias}: {}", run.stderr);
    run.stdout.trim_end().to_owned()
}

#[test]
fn certificates_signed_through_kms_log_in_with_zero_iam_calls_and_doubtful_ones_do_not() {
    let moto = Moto::start();
    let ca_line = ca_init(&moto, ca::DEFAULT_ALIAS);
    ca_init(&moto, OTHER_ALIAS);
    let rt = runtime();
    let open = |alias: &str| {
        rt.block_on(ca::open(
            AwsKms::from_client(kms_client(&moto.endpoint())),
            alias,
        ))
        .unwrap()
    };
    let (main, other) = (open(ca::DEFAULT_ALIAS), open(OTHER_ALIAS));
    assert_eq!(main.public_key().to_line(), ca_line);
    let mut signer = Signer {
        rt,
        main,
        other,
        serial: 0,
    };

    // The namespace's log directories land here; ns removes a passing run's own.
    let logs = tempfile::tempdir().unwrap();
    let scenario = repo().join("tests/e2e/scenarios/certificates.sh");
    let out_path: PathBuf = logs.path().join("scenario.out");
    let mut child = Command::new(repo().join("tests/e2e/ns"))
        .arg(&scenario)
        .env("KEYWARD_BIN", env!("CARGO_BIN_EXE_keyward"))
        .env("E2E_LOG_DIR", logs.path())
        .env("E2E_CA_PUBLIC_KEY", &ca_line)
        .env("E2E_CERT_DIR", CERT_DIR_INSIDE)
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out_path).unwrap())
        .stderr(Stdio::from(
            fs::OpenOptions::new().append(true).open(&out_path).unwrap(),
        ))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run tests/e2e/ns: {e} (run scripts/test)"));
    let started = Instant::now();
    let status = loop {
        signer.answer(logs.path());
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let said = fs::read_to_string(&out_path).unwrap_or_default();
    if !status.success() {
        // Keep sshd's and moto's logs, which the failure message points at.
        let _kept = logs.keep();
    }
    assert!(
        status.success(),
        "scenario certificates failed ({status}) after {:.1?}; its output:\n{said}",
        started.elapsed()
    );
    // What the scenario said, for the record (`cargo test -- --nocapture`).
    eprintln!("{said}");
    assert_eq!(signer.serial, 8, "the scenario asks for 8 certificates");
}
