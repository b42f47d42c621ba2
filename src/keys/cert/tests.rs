use super::*;
use crate::keys::parse::tests::{
    fields, generated_key, line, modulus_mpint, rsa_blob, wire, E_65537,
};
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature as P256Signature, SigningKey};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

// ---- helpers -----------------------------------------------------------------------------

/// A local stand-in for the KMS key: a fixed P-256 key, so failures reproduce.
fn ca_signer() -> SigningKey {
    SigningKey::from_slice(&[0x5A; 32]).unwrap()
}

/// The CA's public key in OpenSSH form, as `keyward ca init` will print it from KMS.
fn ca_public(signer: &SigningKey) -> PublicKey {
    let point = signer.verifying_key().to_encoded_point(false);
    let blob = wire(&[b"ecdsa-sha2-nistp256", b"nistp256", point.as_bytes()]);
    PublicKey::parse(&line("ecdsa-sha2-nistp256", &blob)).unwrap()
}

/// Signs as KMS `Sign` with ECDSA_SHA_256 over a RAW message does: SHA-256 of the bytes.
fn sign(signer: &SigningKey, unsigned: UnsignedCertificate) -> Certificate {
    assert_eq!(unsigned.signing_algorithm(), SigningAlgorithm::EcdsaSha256);
    let signature: P256Signature = signer.sign(unsigned.tbs());
    unsigned
        .assemble(&signature.r().to_bytes(), &signature.s().to_bytes())
        .unwrap()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn request(subject: &PublicKey) -> UserCertRequest<'_> {
    let now = now();
    UserCertRequest {
        subject,
        identity: IamIdentity {
            user_name: "alice.smith".to_owned(),
            user_id: "AIDAEXAMPLE0ALICE01".to_owned(),
        },
        serial: 7,
        principals: vec!["alice_smith".to_owned()],
        valid_after: now - 60,
        valid_before: now + 3600,
        source_addresses: Vec::new(),
        nonce: [0xA7; NONCE_LEN],
    }
}

/// `ssh-keygen -L` parses the certificate and, in doing so, verifies its signature against
/// the signing CA key it carries; it fails on a bad signature.
fn ssh_keygen_list(cert: &str) -> Result<String, String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("id-cert.pub");
    std::fs::write(&path, format!("{cert}\n")).unwrap();
    let output = Command::new("ssh-keygen")
        .env("TZ", "UTC")
        .args(["-L", "-f", path.to_str().unwrap()])
        .output()
        .unwrap();
    if output.status.success() {
        Ok(String::from_utf8(output.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

/// How `ssh-keygen -L` prints a validity bound in UTC.
fn keygen_time(secs: u64) -> String {
    let time = UNIX_EPOCH + Duration::from_secs(secs);
    humantime::format_rfc3339_seconds(time)
        .to_string()
        .trim_end_matches('Z')
        .to_owned()
}

fn rsa_key(bits: usize) -> PublicKey {
    PublicKey::parse(&line("ssh-rsa", &rsa_blob(E_65537, &modulus_mpint(bits)))).unwrap()
}

// ---- certificates OpenSSH accepts ----------------------------------------------------------

#[test]
fn user_cert_signed_by_a_local_p256_ca_is_accepted_by_ssh_keygen() {
    let signer = ca_signer();
    let ca = ca_public(&signer);
    let subject = generated_key(&["-t", "ed25519"]);
    let mut request = request(&subject);
    request.principals = vec!["alice_smith".to_owned(), "i-0abc:alice_smith".to_owned()];
    request.source_addresses = vec!["10.0.0.0/8".to_owned(), "2001:db8::1".to_owned()];
    let cert = sign(&signer, build_user_cert(&request, &ca).unwrap());

    let listing = ssh_keygen_list(&cert.to_line()).unwrap();
    let expected = [
        "Type: ssh-ed25519-cert-v01@openssh.com user certificate".to_owned(),
        format!("Public key: ED25519-CERT {}", subject.fingerprint()),
        format!(
            "Signing CA: ECDSA {} (using ecdsa-sha2-nistp256)",
            ca.fingerprint()
        ),
        "Key ID: \"keyward:alice.smith:AIDAEXAMPLE0ALICE01:7\"".to_owned(),
        "Serial: 7".to_owned(),
        format!(
            "Valid: from {} to {}",
            keygen_time(request.valid_after),
            keygen_time(request.valid_before)
        ),
        "source-address 10.0.0.0/8,2001:db8::1".to_owned(),
    ];
    for fact in expected {
        assert!(listing.contains(&fact), "missing {fact:?} in:\n{listing}");
    }
    let words: Vec<&str> = listing.split_whitespace().collect();
    for name in ["alice_smith", "i-0abc:alice_smith"]
        .into_iter()
        .chain(DEFAULT_EXTENSIONS)
    {
        assert!(words.contains(&name), "missing {name} in:\n{listing}");
    }
    assert_eq!(cert.key_id(), "keyward:alice.smith:AIDAEXAMPLE0ALICE01:7");
    assert_eq!(cert.principals(), request.principals.as_slice());
    assert_eq!(cert.valid_before(), request.valid_before);
}

#[test]
fn the_signature_verifies_against_the_ca_key_with_the_ssh_key_crate() {
    let signer = ca_signer();
    let ca = ca_public(&signer);
    for subject in [
        generated_key(&["-t", "ed25519"]),
        generated_key(&["-t", "ecdsa", "-b", "384"]),
        rsa_key(3072),
    ] {
        let request = request(&subject);
        let cert = sign(&signer, build_user_cert(&request, &ca).unwrap());
        let decoded = ssh_key::Certificate::from_openssh(&cert.to_line()).unwrap();
        let ca_fingerprint = ca.key_data().fingerprint(ssh_key::HashAlg::Sha256);
        decoded.validate_at(now(), [&ca_fingerprint]).unwrap();
        assert_eq!(decoded.public_key(), subject.key_data());
        assert_eq!(decoded.signature_key(), ca.key_data());
        assert_eq!(decoded.cert_type(), ssh_key::certificate::CertType::User);
        assert_eq!(decoded.nonce(), &request.nonce[..]);
        assert!(decoded.critical_options().is_empty());
        assert_eq!(decoded.extensions().len(), DEFAULT_EXTENSIONS.len());
        // Outside its window the same certificate is refused.
        assert!(decoded
            .validate_at(request.valid_before, [&ca_fingerprint])
            .is_err());
        // And it is not a certificate of another CA.
        let other = ca_public(&SigningKey::from_slice(&[0x33; 32]).unwrap());
        let other_fingerprint = other.key_data().fingerprint(ssh_key::HashAlg::Sha256);
        assert!(decoded.validate_at(now(), [&other_fingerprint]).is_err());
    }
}

#[test]
fn a_signature_over_other_bytes_is_refused_by_ssh_keygen_and_the_crate() {
    let signer = ca_signer();
    let ca = ca_public(&signer);
    let subject = generated_key(&["-t", "ed25519"]);
    let unsigned = build_user_cert(&request(&subject), &ca).unwrap();
    // The signature a tampered request would get: same certificate, another principal.
    let mut tampered = request(&subject);
    tampered.principals = vec!["root".to_owned()];
    let other_tbs = build_user_cert(&tampered, &ca).unwrap();
    let signature: P256Signature = signer.sign(other_tbs.tbs());
    let cert = unsigned
        .assemble(&signature.r().to_bytes(), &signature.s().to_bytes())
        .unwrap();

    let error = ssh_keygen_list(&cert.to_line()).unwrap_err();
    assert!(!error.is_empty());
    let ca_fingerprint = ca.key_data().fingerprint(ssh_key::HashAlg::Sha256);
    assert!(cert
        .decoded()
        .validate_at(now(), [&ca_fingerprint])
        .is_err());
}

#[test]
fn the_signed_bytes_are_the_certificate_without_its_signature() {
    let signer = ca_signer();
    let ca = ca_public(&signer);
    let subject = generated_key(&["-t", "ed25519"]);
    let unsigned = build_user_cert(&request(&subject), &ca).unwrap();
    let tbs = unsigned.tbs().to_vec();
    let cert = sign(&signer, unsigned);
    assert!(cert.bytes().starts_with(&tbs));
    // Same request, same bytes: nothing random is added behind the caller's back.
    assert_eq!(build_user_cert(&request(&subject), &ca).unwrap().tbs(), tbs);
}

// ---- caps -------------------------------------------------------------------------------

#[test]
fn rsa_user_keys_over_8192_bits_are_refused_and_8192_fits_the_kms_limit() {
    let ca = ca_public(&ca_signer());
    let largest = rsa_key(8192);
    let unsigned = build_user_cert(&request(&largest), &ca).unwrap();
    assert!(
        unsigned.tbs().len() <= MAX_TBS_LEN,
        "{}",
        unsigned.tbs().len()
    );
    for bits in [8193, 16384] {
        let subject = rsa_key(bits);
        assert_eq!(
            build_user_cert(&request(&subject), &ca),
            Err(CertError::RsaKeyTooLarge {
                bits: u32::try_from(bits).unwrap()
            })
        );
    }
}

#[test]
fn signed_bytes_over_4096_are_refused() {
    let ca = ca_public(&ca_signer());
    let subject = rsa_key(8192);
    let mut request = request(&subject);
    request.principals = (0..MAX_PRINCIPALS).map(|n| format!("{n:0>100}")).collect();
    let Err(CertError::TooLarge { len }) = build_user_cert(&request, &ca) else {
        panic!("expected TooLarge");
    };
    assert!(len > MAX_TBS_LEN);
}

// ---- what is refused ---------------------------------------------------------------------

#[test]
fn only_an_ecdsa_p256_or_p384_ca_signs() {
    let subject = generated_key(&["-t", "ed25519"]);
    for ca_args in [&["-t", "ed25519"][..], &["-t", "rsa", "-b", "2048"]] {
        let ca = generated_key(ca_args);
        assert_eq!(
            build_user_cert(&request(&subject), &ca),
            Err(CertError::UnsupportedCaKey(ca.key_type()))
        );
    }
    let p384 = generated_key(&["-t", "ecdsa", "-b", "384"]);
    let unsigned = build_user_cert(&request(&subject), &p384).unwrap();
    assert_eq!(unsigned.signing_algorithm(), SigningAlgorithm::EcdsaSha384);
}

#[test]
fn principals_must_be_present_few_and_plain() {
    let ca = ca_public(&ca_signer());
    let subject = generated_key(&["-t", "ed25519"]);
    let mut golden_ticket = request(&subject);
    golden_ticket.principals.clear();
    assert_eq!(
        build_user_cert(&golden_ticket, &ca),
        Err(CertError::PrincipalCount)
    );
    let mut many = request(&subject);
    many.principals = (0..=MAX_PRINCIPALS).map(|n| format!("u{n}")).collect();
    assert_eq!(build_user_cert(&many, &ca), Err(CertError::PrincipalCount));
    for bad in [
        "",
        "alice smith",
        "alice,root",
        "-oProxy",
        "al\nice",
        "*",
        &"a".repeat(254),
    ] {
        let mut request = request(&subject);
        request.principals = vec![bad.to_owned()];
        assert_eq!(
            build_user_cert(&request, &ca),
            Err(CertError::InvalidPrincipal),
            "{bad:?}"
        );
    }
}

#[test]
fn the_key_id_is_built_only_from_a_plain_iam_identity() {
    let ca = ca_public(&ca_signer());
    let subject = generated_key(&["-t", "ed25519"]);
    for user in ["", "alice:root", "alice\"x", "al ice", &"a".repeat(65)] {
        let mut request = request(&subject);
        request.identity.user_name = user.to_owned();
        assert_eq!(
            build_user_cert(&request, &ca),
            Err(CertError::InvalidIamUser),
            "{user:?}"
        );
    }
    for id in ["", "AIDA-1", "AIDA:1", &"A".repeat(129)] {
        let mut request = request(&subject);
        request.identity.user_id = id.to_owned();
        assert_eq!(
            build_user_cert(&request, &ca),
            Err(CertError::InvalidUserId),
            "{id:?}"
        );
    }
    let mut iam_charset = request(&subject);
    iam_charset.identity.user_name = "a+b=c,d.e@f_g-h".to_owned();
    assert!(build_user_cert(&iam_charset, &ca).is_ok());
}

#[test]
fn the_validity_window_must_be_forward_and_at_most_a_day() {
    let ca = ca_public(&ca_signer());
    let subject = generated_key(&["-t", "ed25519"]);
    let start = now();
    for (after, before) in [
        (start, start),
        (start, start - 1),
        (start, start + MAX_VALIDITY_SECS + 1),
        (u64::MAX, 0),
    ] {
        let mut request = request(&subject);
        request.valid_after = after;
        request.valid_before = before;
        assert_eq!(
            build_user_cert(&request, &ca),
            Err(CertError::InvalidValidity),
            "{after}..{before}"
        );
    }
    let mut longest = request(&subject);
    longest.valid_after = start;
    longest.valid_before = start + MAX_VALIDITY_SECS;
    assert!(build_user_cert(&longest, &ca).is_ok());
}

#[test]
fn source_addresses_are_parsed_and_rewritten_canonically() {
    assert_eq!(
        source_address(&["10.1.2.3".to_owned(), "2001:DB8:0::0/32".to_owned()]),
        Ok("10.1.2.3,2001:db8::/32".to_owned())
    );
    for bad in [
        "10.0.0.0/33",
        "::/129",
        "10.0.0.0/+8",
        "10.0.0.0/",
        "example.com",
        "10.0.0.0/8,0.0.0.0/0",
        "10.0.0.1 ",
        "",
    ] {
        assert_eq!(
            source_address(&[bad.to_owned()]),
            Err(CertError::InvalidSourceAddress),
            "{bad:?}"
        );
    }
    let too_many: Vec<String> = (0..=MAX_SOURCE_ADDRESSES)
        .map(|n| format!("10.0.0.{n}"))
        .collect();
    assert_eq!(
        source_address(&too_many),
        Err(CertError::InvalidSourceAddress)
    );
}

#[test]
fn an_all_zero_nonce_is_refused() {
    let ca = ca_public(&ca_signer());
    let subject = generated_key(&["-t", "ed25519"]);
    let mut request = request(&subject);
    request.nonce = [0; NONCE_LEN];
    assert_eq!(build_user_cert(&request, &ca), Err(CertError::InvalidNonce));
}

#[test]
fn a_signature_that_is_not_a_p256_signature_is_refused() {
    let ca = ca_public(&ca_signer());
    let subject = generated_key(&["-t", "ed25519"]);
    let unsigned = build_user_cert(&request(&subject), &ca).unwrap();
    // P-384-sized scalars for a P-256 CA.
    let err = unsigned.assemble(&[0x7F; 48], &[0x7F; 48]).unwrap_err();
    assert_eq!(err, CertError::InvalidSignature);
}

#[test]
fn security_key_subjects_get_their_own_certificate_type() {
    let signer = ca_signer();
    let ca = ca_public(&signer);
    let ed = generated_key(&["-t", "ed25519"]);
    let ed_public = &fields(ed.blob())[1];
    let sk_blob = wire(&[b"sk-ssh-ed25519@openssh.com", ed_public, b"ssh:"]);
    let subject = PublicKey::parse(&line("sk-ssh-ed25519@openssh.com", &sk_blob)).unwrap();
    let cert = sign(&signer, build_user_cert(&request(&subject), &ca).unwrap());
    assert!(cert
        .to_line()
        .starts_with("sk-ssh-ed25519-cert-v01@openssh.com "));
    let listing = ssh_keygen_list(&cert.to_line()).unwrap();
    assert!(listing.contains("Type: sk-ssh-ed25519-cert-v01@openssh.com user certificate"));
}

#[test]
fn a_key_id_parses_back_only_when_it_is_exactly_what_the_builder_writes() {
    let ca = ca_public(&ca_signer());
    let subject = generated_key(&["-t", "ed25519"]);
    let cert = sign(
        &ca_signer(),
        build_user_cert(&request(&subject), &ca).unwrap(),
    );
    let (identity, serial) = parse_key_id(cert.key_id()).unwrap();
    assert_eq!(identity.user_name, "alice.smith");
    assert_eq!(identity.user_id, "AIDAEXAMPLE0ALICE01");
    assert_eq!(serial, 7);
    for bad in [
        "",
        "keyward",
        "keyward:alice:AIDA1",
        "keyward:alice:AIDA1:7:8",
        "keyward:alice:AIDA1:07",
        "keyward:alice:AIDA1:+7",
        "keyward:alice:AIDA1:18446744073709551616",
        "keyward::AIDA1:7",
        "keyward:alice::7",
        "keyward:alice:AI-DA1:7",
        "keyward:al ice:AIDA1:7",
        "KEYWARD:alice:AIDA1:7",
        " keyward:alice:AIDA1:7",
        "other:alice:AIDA1:7",
    ] {
        assert_eq!(parse_key_id(bad), None, "{bad:?}");
    }
}
// ---- host certificates ------------------------------------------------------------------

const INSTANCE: &str = "i-0123456789abcdef0";

fn host_request(subject: &PublicKey) -> HostCertRequest<'_> {
    let now = now();
    HostCertRequest {
        subject,
        instance_id: INSTANCE.to_owned(),
        serial: 9,
        principals: vec![
            INSTANCE.to_owned(),
            "10.0.1.17".to_owned(),
            "ip-10-0-1-17.eu-west-1.compute.internal".to_owned(),
            "2001:db8::17".to_owned(),
        ],
        valid_after: now - 60,
        valid_before: now + DEFAULT_HOST_VALIDITY_SECS,
        nonce: [0x3C; NONCE_LEN],
    }
}

/// The local CA's key, a host key, its certificate line and validity window.
fn host_fixture() -> (PublicKey, PublicKey, String, (u64, u64)) {
    let signer = ca_signer();
    let ca = ca_public(&signer);
    let host_key = generated_key(&["-t", "ed25519"]);
    let request = host_request(&host_key);
    let window = (request.valid_after, request.valid_before);
    let line = sign(&signer, build_host_cert(&request, &ca).unwrap()).to_line();
    (ca, host_key, line, window)
}

#[test]
fn host_cert_is_listed_by_ssh_keygen_as_a_host_certificate() {
    let signer = ca_signer();
    let ca = ca_public(&signer);
    for (args, label) in [
        (&["-t", "ed25519"][..], "ED25519-CERT"),
        (&["-t", "ecdsa", "-b", "256"], "ECDSA-CERT"),
    ] {
        let subject = generated_key(args);
        let request = host_request(&subject);
        let cert = sign(&signer, build_host_cert(&request, &ca).unwrap());
        let listing = ssh_keygen_list(&cert.to_line()).unwrap();
        let expected = [
            format!(
                "Type: {} host certificate",
                subject.key_data().algorithm().to_certificate_type()
            ),
            format!("Public key: {label} {}", subject.fingerprint()),
            format!(
                "Signing CA: ECDSA {} (using ecdsa-sha2-nistp256)",
                ca.fingerprint()
            ),
            format!("Key ID: \"keyward-host:{INSTANCE}:9\""),
            "Serial: 9".to_owned(),
            format!(
                "Valid: from {} to {}",
                keygen_time(request.valid_after),
                keygen_time(request.valid_before)
            ),
        ];
        for fact in expected {
            assert!(listing.contains(&fact), "missing {fact:?} in:\n{listing}");
        }
        let words: Vec<&str> = listing.split_whitespace().collect();
        for name in &request.principals {
            assert!(
                words.contains(&name.as_str()),
                "missing {name} in:\n{listing}"
            );
        }
        // No critical options and no extensions.
        for fact in ["Critical Options: (none)", "Extensions: (none)"] {
            assert!(listing.contains(fact), "missing {fact:?} in:\n{listing}");
        }
        let decoded = cert.decoded();
        assert_eq!(decoded.cert_type(), ssh_key::certificate::CertType::Host);
        assert!(decoded.critical_options().is_empty());
        assert!(decoded.extensions().is_empty());
        let ca_fingerprint = ca.key_data().fingerprint(ssh_key::HashAlg::Sha256);
        decoded.validate_at(now(), [&ca_fingerprint]).unwrap();
    }
}

#[test]
fn host_cert_refuses_bad_principals_instance_ids_and_windows() {
    let ca = ca_public(&ca_signer());
    let subject = generated_key(&["-t", "ed25519"]);
    for bad in ["", "*", "*.internal", "web,evil", "a b", "-oProxy", "h\nx"] {
        let mut request = host_request(&subject);
        request.principals.push(bad.to_owned());
        assert_eq!(
            build_host_cert(&request, &ca),
            Err(CertError::InvalidPrincipal),
            "{bad:?}"
        );
    }
    let mut none = host_request(&subject);
    none.principals.clear();
    assert_eq!(build_host_cert(&none, &ca), Err(CertError::PrincipalCount));
    for id in [
        "",
        "i-",
        "i-0123",
        "i-0123456789ABCDEF0",
        "i-0123:x",
        "web1",
        "i-0123456789abcdef00",
    ] {
        let mut request = host_request(&subject);
        request.instance_id = id.to_owned();
        assert_eq!(
            build_host_cert(&request, &ca),
            Err(CertError::InvalidInstanceId),
            "{id:?}"
        );
    }
    let start = now();
    for (after, before) in [
        (start, start),
        (start, start - 1),
        (start, start + MAX_HOST_VALIDITY_SECS + 1),
    ] {
        let mut request = host_request(&subject);
        request.valid_after = after;
        request.valid_before = before;
        assert_eq!(
            build_host_cert(&request, &ca),
            Err(CertError::InvalidHostValidity)
        );
    }
    let mut longest = host_request(&subject);
    longest.valid_after = start;
    longest.valid_before = start + MAX_HOST_VALIDITY_SECS;
    assert!(build_host_cert(&longest, &ca).is_ok());
    // The user ceiling is not the host one: 90 days is far over a user certificate's day.
    let mut user = request(&subject);
    user.valid_before = user.valid_after + MAX_HOST_VALIDITY_SECS;
    assert_eq!(build_user_cert(&user, &ca), Err(CertError::InvalidValidity));
}

#[test]
fn host_side_check_takes_only_a_current_host_cert_for_its_own_key_signed_by_the_ca() {
    use crate::keys::cert_check::{check_host_cert, CertCheckError};
    let (ca, host_key, line, (valid_after, valid_before)) = host_fixture();
    let now = now();

    let cert = check_host_cert(&line, &host_key, &ca, now).unwrap();
    assert_eq!(cert.valid_before(), valid_before);
    assert_eq!(cert.to_line(), line);

    let other_key = generated_key(&["-t", "ed25519"]);
    assert!(matches!(
        check_host_cert(&line, &other_key, &ca, now),
        Err(CertCheckError::OtherKey { .. })
    ));
    let other_ca = ca_public(&SigningKey::from_slice(&[0x33; 32]).unwrap());
    assert!(matches!(
        check_host_cert(&line, &host_key, &other_ca, now),
        Err(CertCheckError::OtherCa { .. })
    ));
    assert!(matches!(
        check_host_cert(&line, &host_key, &ca, valid_before),
        Err(CertCheckError::Expired { .. })
    ));
    assert!(matches!(
        check_host_cert(&line, &host_key, &ca, valid_after - 3600),
        Err(CertCheckError::NotYetValid { .. })
    ));
    // The CA's key with a signature over other bytes: the signature is verified.
    let mut forged = host_request(&host_key);
    forged.principals = vec!["db.internal".to_owned()];
    let signer = ca_signer();
    let honest = build_host_cert(&host_request(&host_key), &ca).unwrap();
    let signature: P256Signature = signer.sign(build_host_cert(&forged, &ca).unwrap().tbs());
    let bad = honest
        .assemble(&signature.r().to_bytes(), &signature.s().to_bytes())
        .unwrap();
    assert_eq!(
        check_host_cert(&bad.to_line(), &host_key, &ca, now).unwrap_err(),
        CertCheckError::BadSignature
    );
    // A user certificate for the same key is not a host certificate.
    let mut user = self::request(&host_key);
    user.principals = vec!["web".to_owned()];
    let user_line = sign(&ca_signer(), build_user_cert(&user, &ca).unwrap()).to_line();
    assert_eq!(
        check_host_cert(&user_line, &host_key, &ca, now).unwrap_err(),
        CertCheckError::NotHost
    );
    for junk in ["", "ssh-ed25519 AAAA", &host_key.to_line()] {
        assert_eq!(
            check_host_cert(junk, &host_key, &ca, now).unwrap_err(),
            CertCheckError::Malformed
        );
    }
}

#[test]
fn renewal_is_due_with_a_third_of_the_life_left() {
    let signer = ca_signer();
    let ca = ca_public(&signer);
    let host_key = generated_key(&["-t", "ed25519"]);
    let mut request = host_request(&host_key);
    request.valid_after = 1_000_000;
    request.valid_before = 1_000_000 + 3000;
    let line = sign(&signer, build_host_cert(&request, &ca).unwrap()).to_line();
    let cert = crate::keys::cert_check::check_host_cert(&line, &host_key, &ca, 1_000_000).unwrap();
    assert!(!renewal_due(&cert, 1_000_000));
    assert!(!renewal_due(&cert, 1_000_000 + 1999));
    assert!(renewal_due(&cert, 1_000_000 + 2000));
    assert!(renewal_due(&cert, 1_000_000 + 5000));
}

#[test]
fn an_existing_host_cert_is_kept_only_while_usable_and_not_due() {
    let (ca, host_key, line, (_, valid_before)) = host_fixture();
    let now = now();
    assert_eq!(
        existing_host_cert(Some(&line), &host_key, &ca, now),
        HostCertState::Current { valid_before }
    );
    let due = valid_before - DEFAULT_HOST_VALIDITY_SECS / 3;
    assert!(matches!(
        existing_host_cert(Some(&line), &host_key, &ca, due),
        HostCertState::Renew { why } if why.contains("third")
    ));
    assert!(matches!(
        existing_host_cert(None, &host_key, &ca, now),
        HostCertState::Renew { why } if why == "no certificate yet"
    ));
    // A certificate for the old key after the host key changed, or from another CA: renewed.
    let new_key = generated_key(&["-t", "ed25519"]);
    assert!(matches!(
        existing_host_cert(Some(&line), &new_key, &ca, now),
        HostCertState::Renew { why } if why.contains("another key")
    ));
    let other_ca = ca_public(&SigningKey::from_slice(&[0x33; 32]).unwrap());
    assert!(matches!(
        existing_host_cert(Some(&line), &host_key, &other_ca, now),
        HostCertState::Renew { why } if why.contains("another CA")
    ));
}

#[test]
fn known_hosts_line_trusts_the_ca_for_plain_patterns_only() {
    let ca = ca_public(&ca_signer());
    let line =
        known_hosts_line(&ca, &["*.compute.internal".to_owned(), "10.0.*".to_owned()]).unwrap();
    assert_eq!(
        line,
        format!("@cert-authority *.compute.internal,10.0.* {}", ca.to_line())
    );
    // ssh-keygen reads it as a CA line for a matching host.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("known_hosts");
    std::fs::write(&file, format!("{line}\n")).unwrap();
    let found = Command::new("ssh-keygen")
        .args(["-F", "ip-10-0-1-17.compute.internal", "-f"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(found.status.success(), "{found:?}");
    assert!(String::from_utf8_lossy(&found.stdout).contains("@cert-authority"));

    for bad in [
        &[][..],
        &["".to_owned()],
        &["!evil".to_owned()],
        &["a b".to_owned()],
        &["a,b".to_owned()],
        &["a\n@revoked *".to_owned()],
    ] {
        assert_eq!(
            known_hosts_line(&ca, bad),
            Err(CertError::InvalidHostPattern),
            "{bad:?}"
        );
    }
    let not_a_ca = generated_key(&["-t", "ed25519"]);
    assert!(matches!(
        known_hosts_line(&not_a_ca, &["*".to_owned()]),
        Err(CertError::UnsupportedCaKey(_))
    ));
}
