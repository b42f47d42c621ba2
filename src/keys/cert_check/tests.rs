use super::*;
use crate::keys::cert::{build_user_cert, IamIdentity, UserCertRequest, NONCE_LEN};
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature as P256Signature, SigningKey};
use std::path::{Path, PathBuf};
use std::process::Command;

// ---- helpers: keys and certificates made by the real ssh-keygen --------------------------

struct Dir(tempfile::TempDir);

impl Dir {
    fn new() -> Dir {
        Dir(tempfile::tempdir().unwrap())
    }

    /// A key pair `NAME` / `NAME.pub`; returns the private key's path.
    fn key(&self, name: &str, type_args: &[&str]) -> PathBuf {
        let path = self.0.path().join(name);
        let mut args = vec![
            "-q",
            "-N",
            "",
            "-C",
            "t@laptop",
            "-f",
            path.to_str().unwrap(),
        ];
        args.extend_from_slice(type_args);
        keygen(&args);
        path
    }

    /// `ssh-keygen -s CA` over `KEY.pub` with extra arguments; returns the certificate line.
    fn sign(&self, ca: &Path, key: &Path, extra: &[&str]) -> String {
        let public = pub_path(key);
        let mut args = vec![
            "-q",
            "-s",
            ca.to_str().unwrap(),
            "-I",
            "keyward:alice:AIDA1:7",
        ];
        args.extend_from_slice(extra);
        args.push(public.to_str().unwrap());
        keygen(&args);
        let cert = key.with_file_name(format!(
            "{}-cert.pub",
            key.file_name().unwrap().to_str().unwrap()
        ));
        std::fs::read_to_string(cert).unwrap()
    }
}

fn keygen(args: &[&str]) {
    let output = Command::new("ssh-keygen").args(args).output().unwrap();
    assert!(
        output.status.success(),
        "ssh-keygen {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn pub_path(key: &Path) -> PathBuf {
    key.with_extension("pub")
}

fn public(key: &Path) -> PublicKey {
    PublicKey::parse(&std::fs::read_to_string(pub_path(key)).unwrap()).unwrap()
}

/// Now, as the tests' certificates see it (`-V -5m:+1h` is relative to the real clock).
fn now() -> u64 {
    crate::clock::unix_secs(std::time::SystemTime::now())
}

const P256: &[&str] = &["-t", "ecdsa", "-b", "256"];
const P384: &[&str] = &["-t", "ecdsa", "-b", "384"];
const ED25519: &[&str] = &["-t", "ed25519"];
const GOOD: &[&str] = &["-n", "alice_smith", "-V", "-5m:+1h"];

struct Setup {
    dir: Dir,
    ca: PathBuf,
    user: PathBuf,
}

fn setup(ca_type: &[&str]) -> Setup {
    let dir = Dir::new();
    let ca = dir.key("ca", ca_type);
    let user = dir.key("id_ed25519", ED25519);
    Setup { dir, ca, user }
}

// ---- check_user_cert ---------------------------------------------------------------------

#[test]
fn certificate_from_the_configured_p256_ca_for_our_key_is_accepted() {
    let s = setup(P256);
    let line = s.dir.sign(&s.ca, &s.user, GOOD);
    let cert = check_user_cert(&line, &public(&s.user), &public(&s.ca), now()).unwrap();
    assert_eq!(cert.principals(), ["alice_smith"]);
    assert_eq!(cert.key_id(), "keyward:alice:AIDA1:7");
    let left = cert.seconds_left(now());
    assert!((3500..=3600).contains(&left), "{left}");
    // The line to write is the certificate without ssh-keygen's comment.
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(cert.to_line(), format!("{} {}", fields[0], fields[1]));
}

#[test]
fn certificate_from_a_p384_ca_is_accepted() {
    let s = setup(P384);
    let line = s.dir.sign(&s.ca, &s.user, GOOD);
    check_user_cert(&line, &public(&s.user), &public(&s.ca), now()).unwrap();
}

#[test]
fn certificate_keyward_builds_and_a_p256_key_signs_is_accepted() {
    // The issuer's own path: src/keys/cert.rs encodes, the CA key (KMS there) signs.
    let s = setup(P256);
    let signer = SigningKey::from_slice(&[0x5A; 32]).unwrap();
    let point = signer.verifying_key().to_encoded_point(false);
    let ca = PublicKey::from_blob_base64(&STANDARD.encode(wire(&[
        b"ecdsa-sha2-nistp256",
        b"nistp256",
        point.as_bytes(),
    ])))
    .unwrap();
    let subject = public(&s.user);
    let now = now();
    let unsigned = build_user_cert(
        &UserCertRequest {
            subject: &subject,
            identity: IamIdentity {
                user_name: "alice.smith".to_owned(),
                user_id: "AIDAEXAMPLE0ALICE01".to_owned(),
            },
            serial: 9,
            principals: vec!["alice_smith".to_owned()],
            valid_after: now - 60,
            valid_before: now + 3600,
            source_addresses: Vec::new(),
            nonce: [0xA7; NONCE_LEN],
        },
        &ca,
    )
    .unwrap();
    let signature: P256Signature = signer.sign(unsigned.tbs());
    let line = unsigned
        .assemble(&signature.r().to_bytes(), &signature.s().to_bytes())
        .unwrap()
        .to_line();
    let cert = check_user_cert(&line, &subject, &ca, now).unwrap();
    assert_eq!(cert.key_id(), "keyward:alice.smith:AIDAEXAMPLE0ALICE01:9");
    assert_eq!(cert.serial(), 9);
    assert_eq!(cert.to_line(), line);
}

fn wire(fields: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for field in fields {
        out.extend_from_slice(&u32::try_from(field.len()).unwrap().to_be_bytes());
        out.extend_from_slice(field);
    }
    out
}

#[test]
fn certificate_from_another_ca_is_refused() {
    let s = setup(P256);
    let other = s.dir.key("other-ca", P256);
    let line = s.dir.sign(&other, &s.user, GOOD);
    let err = check_user_cert(&line, &public(&s.user), &public(&s.ca), now()).unwrap_err();
    assert_eq!(
        err,
        CertCheckError::OtherCa {
            expected: public(&s.ca).fingerprint(),
            found: public(&other).fingerprint(),
        }
    );
}

#[test]
fn certificate_for_another_key_is_refused() {
    let s = setup(P256);
    let other = s.dir.key("other", ED25519);
    let line = s.dir.sign(&s.ca, &other, GOOD);
    let err = check_user_cert(&line, &public(&s.user), &public(&s.ca), now()).unwrap_err();
    assert_eq!(
        err,
        CertCheckError::OtherKey {
            expected: public(&s.user).fingerprint(),
            found: public(&other).fingerprint(),
        }
    );
}

#[test]
fn expired_certificate_is_refused_without_allowance() {
    let s = setup(P256);
    let line = s
        .dir
        .sign(&s.ca, &s.user, &["-n", "alice_smith", "-V", "-2h:-1h"]);
    let err = check_user_cert(&line, &public(&s.user), &public(&s.ca), now()).unwrap_err();
    assert!(matches!(err, CertCheckError::Expired { .. }), "{err}");
    assert!(err.to_string().starts_with("it expired at 20"), "{err}");

    // One second before valid_before it is still good; at valid_before it is not.
    let good = s.dir.sign(&s.ca, &s.user, GOOD);
    let cert = check_user_cert(&good, &public(&s.user), &public(&s.ca), now()).unwrap();
    let end = cert.valid_before();
    assert!(check_user_cert(&good, &public(&s.user), &public(&s.ca), end - 1).is_ok());
    assert!(matches!(
        check_user_cert(&good, &public(&s.user), &public(&s.ca), end),
        Err(CertCheckError::Expired { .. })
    ));
}

#[test]
fn certificate_from_the_near_future_is_accepted_within_the_clock_skew_only() {
    let s = setup(P256);
    let line = s.dir.sign(&s.ca, &s.user, GOOD);
    let start = check_user_cert(&line, &public(&s.user), &public(&s.ca), now())
        .unwrap()
        .valid_after();
    let (user, ca) = (public(&s.user), public(&s.ca));
    assert!(check_user_cert(&line, &user, &ca, start - CLOCK_SKEW_SECS).is_ok());
    let err = check_user_cert(&line, &user, &ca, start - CLOCK_SKEW_SECS - 1).unwrap_err();
    assert!(matches!(err, CertCheckError::NotYetValid { .. }), "{err}");
}

#[test]
fn host_certificate_is_refused() {
    let s = setup(P256);
    let line = s.dir.sign(
        &s.ca,
        &s.user,
        &["-h", "-n", "host.example", "-V", "-5m:+1h"],
    );
    let err = check_user_cert(&line, &public(&s.user), &public(&s.ca), now()).unwrap_err();
    assert_eq!(err, CertCheckError::NotUser);
}

#[test]
fn certificate_without_principals_is_refused() {
    // ssh-keygen without -n signs a certificate valid for every principal; keyward never
    // uses one.
    let s = setup(P256);
    let line = s.dir.sign(&s.ca, &s.user, &["-V", "-5m:+1h"]);
    let err = check_user_cert(&line, &public(&s.user), &public(&s.ca), now()).unwrap_err();
    assert_eq!(err, CertCheckError::NoPrincipal);
}

#[test]
fn certificate_with_a_tampered_field_fails_the_signature() {
    let s = setup(P256);
    let line = s.dir.sign(&s.ca, &s.user, GOOD);
    let mut bytes = STANDARD
        .decode(line.split_whitespace().nth(1).unwrap())
        .unwrap();
    // Change a principal's letter: `alice_smith` -> `alice_smitH`, same length.
    let at = bytes.windows(11).position(|w| w == b"alice_smith").unwrap();
    bytes[at + 10] = b'H';
    let tampered = format!(
        "{} {}",
        line.split_whitespace().next().unwrap(),
        STANDARD.encode(&bytes)
    );
    let err = check_user_cert(&tampered, &public(&s.user), &public(&s.ca), now()).unwrap_err();
    assert_eq!(err, CertCheckError::BadSignature);
}

#[test]
fn garbage_and_mislabelled_lines_are_malformed() {
    let s = setup(P256);
    let line = s.dir.sign(&s.ca, &s.user, GOOD);
    let b64 = line.split_whitespace().nth(1).unwrap();
    let (user, ca) = (public(&s.user), public(&s.ca));
    for bad in [
        String::new(),
        "ssh-ed25519-cert-v01@openssh.com".to_owned(),
        "ssh-ed25519-cert-v01@openssh.com !!!".to_owned(),
        format!("ecdsa-sha2-nistp256-cert-v01@openssh.com {b64}"),
        std::fs::read_to_string(pub_path(&s.user)).unwrap(),
        format!("ssh-ed25519-cert-v01@openssh.com {}", "A".repeat(20_000)),
    ] {
        assert_eq!(
            check_user_cert(&bad, &user, &ca, now()).unwrap_err(),
            CertCheckError::Malformed,
            "{bad:.60}"
        );
    }
    // Trailing bytes after the signature are not part of what was checked.
    let mut bytes = STANDARD.decode(b64).unwrap();
    bytes.push(0);
    let padded = format!(
        "ssh-ed25519-cert-v01@openssh.com {}",
        STANDARD.encode(bytes)
    );
    assert_eq!(
        check_user_cert(&padded, &user, &ca, now()).unwrap_err(),
        CertCheckError::Malformed
    );
}

#[test]
fn only_ecdsa_p256_and_p384_ca_keys_are_accepted() {
    let s = setup(P256);
    let line = s.dir.sign(&s.ca, &s.user, GOOD);
    let ed_ca = s.dir.key("ed-ca", ED25519);
    let err = check_user_cert(&line, &public(&s.user), &public(&ed_ca), now()).unwrap_err();
    assert_eq!(err, CertCheckError::UnsupportedCa(KeyType::Ed25519));
}

// ---- reuse_decision ----------------------------------------------------------------------

#[test]
fn reuse_uses_a_valid_certificate_with_time_left_and_renews_otherwise() {
    let s = setup(P256);
    let line = s.dir.sign(&s.ca, &s.user, GOOD);
    let (user, ca) = (public(&s.user), public(&s.ca));
    let end = check_user_cert(&line, &user, &ca, now())
        .unwrap()
        .valid_before();

    assert!(matches!(
        reuse_decision(Some(&line), &user, &ca, now()),
        Reuse::Use(_)
    ));
    let just_enough = end - REUSE_MIN_REMAINING_SECS - 1;
    assert!(matches!(
        reuse_decision(Some(&line), &user, &ca, just_enough),
        Reuse::Use(_)
    ));
    match reuse_decision(Some(&line), &user, &ca, end - REUSE_MIN_REMAINING_SECS) {
        Reuse::Renew(RenewReason::ExpiresSoon { seconds_left }) => {
            assert_eq!(seconds_left, REUSE_MIN_REMAINING_SECS);
        }
        other => panic!("{other:?}"),
    }
    match reuse_decision(None, &user, &ca, now()) {
        Reuse::Renew(RenewReason::Missing) => {}
        other => panic!("{other:?}"),
    }
    match reuse_decision(Some(&line), &user, &ca, end) {
        Reuse::Renew(RenewReason::Unusable(CertCheckError::Expired { .. })) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn reuse_renews_a_certificate_from_another_ca_or_for_another_key() {
    let s = setup(P256);
    let (user, ca) = (public(&s.user), public(&s.ca));
    let other_ca = s.dir.key("other-ca", P256);
    let planted = s.dir.sign(&other_ca, &s.user, GOOD);
    assert!(matches!(
        reuse_decision(Some(&planted), &user, &ca, now()),
        Reuse::Renew(RenewReason::Unusable(CertCheckError::OtherCa { .. }))
    ));
    let other_key = s.dir.key("other", ED25519);
    let foreign = s.dir.sign(&s.ca, &other_key, GOOD);
    assert!(matches!(
        reuse_decision(Some(&foreign), &user, &ca, now()),
        Reuse::Renew(RenewReason::Unusable(CertCheckError::OtherKey { .. }))
    ));
}
