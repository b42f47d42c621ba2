use super::fake::FakeKms;
use super::*;
use crate::keys::cert::{IamIdentity, NONCE_LEN};

const SUBJECT: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDsB61tr08RJhM3pL/fInEDkez2CfK/66+kZAYj3PwiZ alice";
const ALIAS: &str = "alias/keyward-ca";

fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(future)
}

fn request(subject: &PublicKey) -> UserCertRequest<'_> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    UserCertRequest {
        subject,
        identity: IamIdentity {
            user_name: "alice".into(),
            user_id: "AIDAEXAMPLE0ALICE01".into(),
        },
        serial: 1,
        principals: vec!["alice".into()],
        valid_after: now - 60,
        valid_before: now + 3600,
        source_addresses: Vec::new(),
        nonce: [0x42; NONCE_LEN],
    }
}

#[test]
fn init_creates_a_p256_key_then_adopts_it() {
    let kms = FakeKms::default();
    let (ca, origin) = block_on(init(&kms, ALIAS, None)).unwrap();
    assert_eq!(origin, Origin::Created);
    assert_eq!(ca.curve(), Curve::P256);
    let line = ca.public_key().to_line();
    assert!(line.starts_with("ecdsa-sha2-nistp256 AAAA"), "{line}");
    assert!(line.ends_with(" alias/keyward-ca"), "{line}");

    let (again, origin) = block_on(init(&kms, ALIAS, None)).unwrap();
    assert_eq!(origin, Origin::Adopted);
    assert_eq!(again.key_id(), ca.key_id());
    assert_eq!(again.public_key().to_line(), line);
    assert_eq!(kms.creates(), 1);
    // `ca public-key` reads the same key.
    let opened = block_on(open(&kms, ALIAS)).unwrap();
    assert_eq!(opened.public_key().to_line(), line);
}

#[test]
fn init_creates_p384_when_asked_and_refuses_another_curve_for_an_existing_alias() {
    let kms = FakeKms::default();
    let (ca, _) = block_on(init(&kms, ALIAS, Some(Curve::P384))).unwrap();
    assert!(ca
        .public_key()
        .to_line()
        .starts_with("ecdsa-sha2-nistp384 "));
    // Without --curve the existing P-384 key is adopted; with --curve p256 it is refused.
    let (adopted, _) = block_on(init(&kms, ALIAS, None)).unwrap();
    assert_eq!(adopted.curve(), Curve::P384);
    let err = block_on(init(&kms, ALIAS, Some(Curve::P256))).unwrap_err();
    assert!(
        matches!(
            err,
            CaError::CurveMismatch {
                found: Curve::P384,
                wanted: Curve::P256,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(kms.creates(), 1);
}

#[test]
fn an_alias_naming_a_key_that_cannot_be_a_ca_is_refused_with_the_fix() {
    for (usage, spec) in [
        ("SIGN_VERIFY", "RSA_2048"),
        ("ENCRYPT_DECRYPT", "SYMMETRIC_DEFAULT"),
        ("ENCRYPT_DECRYPT", "ECC_NIST_P256"),
        ("SIGN_VERIFY", "ECC_NIST_P521"),
        ("SIGN_VERIFY", "ECC_SECG_P256K1"),
    ] {
        let kms = FakeKms::default();
        let id = kms.key(usage, spec, "Enabled");
        kms.alias(ALIAS, &id);
        let err = block_on(init(&kms, ALIAS, None)).unwrap_err();
        assert!(
            matches!(err, CaError::WrongKey { .. }),
            "{usage} {spec}: {err}"
        );
        let text = err.to_string();
        assert!(text.contains(&format!("KeyUsage={usage}")), "{text}");
        assert!(
            text.contains("--alias") && text.contains("update-alias"),
            "{text}"
        );
        assert!(matches!(
            block_on(open(&kms, ALIAS)),
            Err(CaError::WrongKey { .. })
        ));
        // Nothing was created, repointed or deleted.
        assert_eq!((kms.creates(), kms.key_count()), (0, 1));
        assert!(kms.deletions().is_empty());
    }
}

#[test]
fn a_disabled_or_deleted_key_is_refused() {
    for state in ["Disabled", "PendingDeletion"] {
        let kms = FakeKms::default();
        let id = kms.key("SIGN_VERIFY", "ECC_NIST_P256", state);
        kms.alias(ALIAS, &id);
        let err = block_on(init(&kms, ALIAS, None)).unwrap_err();
        assert!(matches!(err, CaError::NotEnabled { .. }), "{err}");
        assert!(err.to_string().contains(state));
    }
}

#[test]
fn losing_the_alias_to_a_concurrent_init_adopts_the_winner_and_drops_the_new_key() {
    let kms = FakeKms::default();
    let winner = kms.key("SIGN_VERIFY", "ECC_NIST_P256", "Enabled");
    kms.lose_race_for(ALIAS, &winner);
    let (ca, origin) = block_on(init(&kms, ALIAS, None)).unwrap();
    assert_eq!((origin, ca.key_id()), (Origin::Adopted, winner.as_str()));
    assert_eq!(kms.deletions(), ["fake-key-2"]);
}

#[test]
fn public_key_without_a_ca_names_ca_init() {
    let kms = FakeKms::default();
    let err = block_on(open(&kms, ALIAS)).unwrap_err();
    assert!(matches!(err, CaError::NoSuchCa { .. }));
    assert!(err
        .to_string()
        .contains("keyward ca init --alias alias/keyward-ca"));
}

#[test]
fn invalid_aliases_are_refused_before_kms_is_asked() {
    for alias in [
        "keyward-ca",
        "alias/",
        "alias/aws/ebs",
        "alias/a b",
        "alias/x\n",
        "alias/ü",
        &format!("alias/{}", "a".repeat(251)),
    ] {
        let kms = FakeKms::default();
        assert!(
            matches!(
                block_on(init(&kms, alias, None)),
                Err(CaError::InvalidAlias(_))
            ),
            "{alias:?}"
        );
        assert_eq!(kms.creates(), 0);
    }
    assert!(is_valid_alias("alias/team-a/keyward_ca"));
}

#[test]
fn a_certificate_signed_through_kms_verifies_against_the_ca_key() {
    let kms = FakeKms::default();
    let (ca, _) = block_on(init(&kms, ALIAS, None)).unwrap();
    let subject = PublicKey::parse(SUBJECT).unwrap();
    let cert = block_on(ca.sign_user_cert(&request(&subject))).unwrap();
    assert_eq!(kms.signs(), 1);
    let ca_key = ssh_key::PublicKey::from_openssh(&ca.public_key().to_line()).unwrap();
    let fingerprint = ca_key.fingerprint(ssh_key::HashAlg::Sha256);
    cert.decoded()
        .validate_at(request(&subject).valid_after + 60, [&fingerprint])
        .unwrap();
    assert_eq!(cert.principals(), ["alice"]);
    // The fake's key is the one the printed line names.
    let spki_point = kms.verifying_key(ca.key_id()).to_encoded_point(false);
    let ssh_key::public::KeyData::Ecdsa(ecdsa) = ca_key.key_data() else {
        panic!("not ECDSA");
    };
    assert_eq!(ecdsa.as_sec1_bytes(), spki_point.as_bytes());
}

#[test]
fn more_than_4096_bytes_are_refused_before_kms_is_called() {
    let kms = FakeKms::default();
    let (ca, _) = block_on(init(&kms, ALIAS, None)).unwrap();
    let err = block_on(ca.sign_raw(&[0u8; cert::MAX_TBS_LEN + 1])).unwrap_err();
    assert!(matches!(err, CaError::TooLarge { len: 4097 }), "{err}");
    assert_eq!(kms.signs(), 0);
    block_on(ca.sign_raw(&[0u8; cert::MAX_TBS_LEN])).unwrap();
    assert_eq!(kms.signs(), 1);
}

#[test]
fn a_malformed_signature_from_kms_is_not_assembled() {
    let kms = FakeKms::default();
    let (ca, _) = block_on(init(&kms, ALIAS, None)).unwrap();
    let subject = PublicKey::parse(SUBJECT).unwrap();
    // A valid signature with a byte after it.
    let mut trailing = block_on((&kms).sign(ca.key_id(), b"x", Curve::P256)).unwrap();
    trailing.push(0);
    for (der, want) in [
        (trailing, DerError::Trailing),
        (
            vec![0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x01],
            DerError::OutOfRange,
        ),
        (b"not DER".to_vec(), DerError::Structure),
    ] {
        kms.answer_sign_with(der);
        match block_on(ca.sign_user_cert(&request(&subject))) {
            Err(CaError::Signature { error, .. }) => assert_eq!(error, want),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn a_public_key_that_is_not_what_describe_said_is_refused() {
    let kms = FakeKms::default();
    let p384 = kms.key("SIGN_VERIFY", "ECC_NIST_P384", "Enabled");
    let err = block_on(Ca::load(&kms, ALIAS, p384, Curve::P256)).unwrap_err();
    assert!(matches!(err, CaError::PublicKeyMismatch { .. }), "{err}");
    let rsa = kms.key("SIGN_VERIFY", "RSA_2048", "Enabled");
    let err = block_on(Ca::load(&kms, ALIAS, rsa, Curve::P256)).unwrap_err();
    assert!(
        matches!(
            err,
            CaError::PublicKey {
                error: DerError::PublicKey,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn sign_host_cert_has_kms_sign_a_host_certificate() {
    let kms = FakeKms::default();
    let (ca, _) = block_on(init(&kms, ALIAS, None)).unwrap();
    let subject = PublicKey::parse(SUBJECT).unwrap();
    let base = request(&subject);
    let host = cert::HostCertRequest {
        subject: &subject,
        instance_id: "i-0123456789abcdef0".into(),
        serial: 3,
        principals: vec!["i-0123456789abcdef0".into(), "127.0.0.5".into()],
        valid_after: base.valid_after,
        valid_before: base.valid_after + cert::DEFAULT_HOST_VALIDITY_SECS,
        nonce: [0x24; NONCE_LEN],
    };
    let cert = block_on(ca.sign_host_cert(&host)).unwrap();
    assert_eq!(kms.signs(), 1);
    let ca_key = ssh_key::PublicKey::from_openssh(&ca.public_key().to_line()).unwrap();
    let fingerprint = ca_key.fingerprint(ssh_key::HashAlg::Sha256);
    cert.decoded()
        .validate_at(base.valid_after + 60, [&fingerprint])
        .unwrap();
    assert!(cert.decoded().cert_type().is_host());
    assert_eq!(cert.key_id(), "keyward-host:i-0123456789abcdef0:3");
    // A request the builder refuses never reaches KMS.
    let mut bad = host.clone();
    bad.principals = vec!["*".into()];
    let err = block_on(ca.sign_host_cert(&bad)).unwrap_err();
    assert!(
        matches!(err, CaError::Cert(CertError::InvalidPrincipal)),
        "{err}"
    );
    assert_eq!(kms.signs(), 1);
}

#[test]
fn a_key_arn_names_its_account() {
    assert_eq!(
        key_account("arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"),
        Some("123456789012")
    );
    assert_eq!(
        key_account("arn:aws-us-gov:kms:us-gov-west-1:210987654321:key/k"),
        Some("210987654321")
    );
    for bad in [
        "",
        "1234abcd-12ab-34cd-56ef-1234567890ab",
        "arn:aws:kms:eu-west-1:123456789012:alias/keyward-ca",
        "arn:aws:kms:eu-west-1:12345678901:key/k",
        "arn:aws:iam::123456789012:key/k",
        "arn:aws:kms:eu-west-1:123456789012:key/k:extra",
    ] {
        assert_eq!(key_account(bad), None, "{bad}");
    }
}

#[test]
fn an_opened_ca_knows_its_account() {
    let kms = FakeKms::default();
    let (ca, _) = block_on(init(&kms, DEFAULT_ALIAS, None)).unwrap();
    assert_eq!(ca.account(), Some(crate::ca::fake::FAKE_ACCOUNT));
}
