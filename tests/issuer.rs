//! The certificate issuer (`keyward ca serve`) against moto: KMS signs, STS answers the
//! replayed proof, IAM holds the groups; certificates are read back with the real `ssh-keygen`.
//! Also: the CloudFormation template passes `cfn-lint`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

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
