//! `keyward ca` against moto's KMS, and user certificates built by `keys::cert` and signed
//! through it, checked by the real `ssh-keygen`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_kms::types::{KeySpec, KeyUsageType};
use common::{keyward_cmd, runtime, KeyPair, Moto, Run};
use keyward::ca::{self, AwsKms, CaError, Curve};
use keyward::keys::cert::{IamIdentity, UserCertRequest, NONCE_LEN};
use keyward::keys::PublicKey;

/// A KMS client for moto.
fn kms_client(moto: &Moto) -> aws_sdk_kms::Client {
    common::kms_client(&moto.endpoint())
}

fn keyward_ca(moto: &Moto, args: &[&str]) -> Run {
    let mut cmd = keyward_cmd(&moto.endpoint());
    cmd.arg("ca").args(args);
    Run::of(cmd)
}

/// Every key id in moto's KMS.
fn key_ids(moto: &Moto) -> Vec<String> {
    let out = runtime()
        .block_on(kms_client(moto).list_keys().send())
        .unwrap();
    let mut ids: Vec<String> = out
        .keys
        .unwrap_or_default()
        .into_iter()
        .filter_map(|k| k.key_id)
        .collect();
    ids.sort();
    ids
}

/// `ssh-keygen -lf` of a key line: "BITS SHA256:… COMMENT (TYPE)"; fails on a key OpenSSH
/// cannot read.
fn ssh_keygen_fingerprint(dir: &std::path::Path, line: &str) -> String {
    let path = dir.join("ca.pub");
    std::fs::write(&path, format!("{line}\n")).unwrap();
    let mut fingerprint = Command::new("ssh-keygen");
    fingerprint.arg("-lf").arg(&path);
    Run::of(fingerprint).ok().stdout
}

#[test]
fn ca_init_twice_keeps_one_key_and_prints_an_openssh_ca_key() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let first = keyward_ca(&moto, &["init"]).ok();
    assert!(first.stderr.contains("created KMS key"), "{}", first.stderr);
    let line = first.stdout.trim_end();
    assert_eq!(first.stdout.lines().count(), 1, "{}", first.stdout);
    assert!(line.starts_with("ecdsa-sha2-nistp256 AAAA"), "{line}");
    assert!(line.ends_with(" alias/keyward-ca"), "{line}");
    let listed = ssh_keygen_fingerprint(dir.path(), line);
    assert!(
        listed.starts_with("256 SHA256:") && listed.contains("(ECDSA)"),
        "{listed}"
    );
    let keys = key_ids(&moto);
    assert_eq!(keys.len(), 1);

    let second = keyward_ca(&moto, &["init"]).ok();
    assert!(
        second.stderr.contains("adopted the existing KMS key"),
        "{}",
        second.stderr
    );
    assert!(second.stderr.contains(&keys[0]), "{}", second.stderr);
    assert_eq!(second.stdout, first.stdout);
    assert_eq!(key_ids(&moto), keys);
    assert_eq!(keyward_ca(&moto, &["public-key"]).ok().stdout, first.stdout);

    // An existing P-256 CA is not silently taken for the P-384 one asked for.
    let refused = keyward_ca(&moto, &["init", "--curve", "p384"]);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("not ECC_NIST_P384"),
        "{}",
        refused.stderr
    );
    assert_eq!(key_ids(&moto), keys);
}

/// A user certificate built by keys::cert and signed by moto's KMS: `ssh-keygen -L` reads it
/// (verifying its signature with the CA key it carries), and that CA key is the one `ca init`
/// printed.
fn certificate_signed_through_kms_verifies(curve: &str, ssh_type: &str) {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let alias = format!("alias/keyward-ca-{curve}");
    let printed = keyward_ca(&moto, &["init", "--alias", &alias, "--curve", curve]).ok();
    let ca_line = printed.stdout.trim_end().to_owned();
    assert!(ca_line.starts_with(&format!("{ssh_type} ")), "{ca_line}");

    let user = KeyPair::generate(dir.path(), "id_ed25519", "ed25519", "alice@laptop");
    let subject = PublicKey::parse(&user.line()).unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let request = UserCertRequest {
        subject: &subject,
        identity: IamIdentity {
            user_name: "alice".into(),
            user_id: "AIDAEXAMPLE0ALICE01".into(),
        },
        serial: 42,
        principals: vec!["alice".into()],
        valid_after: now - 60,
        valid_before: now + 3600,
        source_addresses: vec!["127.0.0.1".into()],
        nonce: [0x5C; NONCE_LEN],
    };
    let rt = runtime();
    let ca = rt
        .block_on(ca::open(AwsKms::from_client(kms_client(&moto)), &alias))
        .unwrap();
    assert_eq!(ca.public_key().to_line(), ca_line);
    let cert = rt.block_on(ca.sign_user_cert(&request)).unwrap();

    let cert_path = dir.path().join("id_ed25519-cert.pub");
    std::fs::write(&cert_path, format!("{}\n", cert.to_line())).unwrap();
    let out = Command::new("ssh-keygen")
        .arg("-Lf")
        .arg(&cert_path)
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{listing}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ca_fingerprint = ssh_keygen_fingerprint(dir.path(), &ca_line)
        .split(' ')
        .nth(1)
        .unwrap()
        .to_owned();
    assert!(
        listing.contains(&format!("Signing CA: ECDSA {ca_fingerprint}")),
        "{listing}"
    );
    assert!(
        listing.contains("Key ID: \"keyward:alice:AIDAEXAMPLE0ALICE01:42\""),
        "{listing}"
    );
    assert!(listing.contains("source-address 127.0.0.1"), "{listing}");

    // A byte changed in the signed part: ssh-keygen's signature check fails, so the listing
    // above proves the signature, not only the format.
    // Offset 45 is inside the nonce (after the type name string and the nonce's length).
    let mut tampered = cert.bytes().to_vec();
    assert_eq!(&tampered[4..36], b"ssh-ed25519-cert-v01@openssh.com");
    tampered[45] ^= 0x01;
    let tampered_line = format!(
        "{} {}",
        cert.to_line().split(' ').next().unwrap(),
        base64_encode(&tampered)
    );
    std::fs::write(&cert_path, format!("{tampered_line}\n")).unwrap();
    let out = Command::new("ssh-keygen")
        .arg("-Lf")
        .arg(&cert_path)
        .output()
        .unwrap();
    assert!(!out.status.success(), "a tampered certificate was listed");

    // moto signs messages of any length; keyward refuses what real KMS would.
    let err = rt.block_on(ca.sign_raw(&vec![0u8; 4097])).unwrap_err();
    assert!(matches!(err, CaError::TooLarge { len: 4097 }), "{err}");
    assert_eq!(
        ca.curve(),
        if curve == "p256" {
            Curve::P256
        } else {
            Curve::P384
        }
    );
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn a_p256_certificate_signed_through_moto_kms_passes_ssh_keygen() {
    certificate_signed_through_kms_verifies("p256", "ecdsa-sha2-nistp256");
}

#[test]
fn a_p384_certificate_signed_through_moto_kms_passes_ssh_keygen() {
    certificate_signed_through_kms_verifies("p384", "ecdsa-sha2-nistp384");
}

#[test]
fn an_alias_naming_an_rsa_or_encryption_key_is_refused_and_left_alone() {
    let moto = Moto::start();
    let kms = kms_client(&moto);
    let rt = runtime();
    for (alias, usage, spec) in [
        (
            "alias/rsa-signing",
            KeyUsageType::SignVerify,
            KeySpec::Rsa2048,
        ),
        (
            "alias/encryption",
            KeyUsageType::EncryptDecrypt,
            KeySpec::SymmetricDefault,
        ),
    ] {
        let key = rt
            .block_on(
                kms.create_key()
                    .key_usage(usage.clone())
                    .key_spec(spec.clone())
                    .send(),
            )
            .unwrap()
            .key_metadata
            .unwrap()
            .key_id;
        rt.block_on(
            kms.create_alias()
                .alias_name(alias)
                .target_key_id(&key)
                .send(),
        )
        .unwrap();
        let before = key_ids(&moto);
        for args in [
            &["init", "--alias", alias][..],
            &["public-key", "--alias", alias],
        ] {
            let run = keyward_ca(&moto, args);
            assert_eq!(run.code, 1, "{args:?}: {}", run.stderr);
            assert!(run.stdout.is_empty(), "{}", run.stdout);
            let wanted = format!(
                "names KMS key {key} with KeyUsage={} and KeySpec={}",
                usage.as_str(),
                spec.as_str()
            );
            assert!(run.stderr.contains(&wanted), "{}", run.stderr);
            assert!(
                run.stderr.contains("pass another --alias"),
                "{}",
                run.stderr
            );
        }
        // No key created, the alias still names the same key.
        assert_eq!(key_ids(&moto), before);
        let still = rt
            .block_on(kms.describe_key().key_id(alias).send())
            .unwrap()
            .key_metadata
            .unwrap()
            .key_id;
        assert_eq!(still, key);
    }
}

#[test]
fn ca_public_key_without_kms_exits_3_and_without_a_ca_names_ca_init() {
    let mut moto = Moto::start();
    let missing = keyward_ca(&moto, &["public-key"]);
    assert_eq!(missing.code, 1, "{}", missing.stderr);
    assert!(
        missing
            .stderr
            .contains("keyward ca init --alias alias/keyward-ca"),
        "{}",
        missing.stderr
    );
    let endpoint = moto.endpoint();
    moto.stop();
    let mut cmd = keyward_cmd(&endpoint);
    cmd.args(["ca", "public-key"]);
    let down = Run::of(cmd);
    assert_eq!(down.code, 3, "{}", down.stderr);
    assert!(
        down.stderr.contains("KMS could not be reached"),
        "{}",
        down.stderr
    );
}
