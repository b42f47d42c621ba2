use std::time::{Duration, UNIX_EPOCH};

use super::*;

const FP: &str = "SHA256:ih6KZKdgxS4wmu4zYv06BjkpyC031OfMGfuJPnjI/rw";
const AUDIENCE: &str = "https://issuer.example.com";

/// 2026-11-30T12:00:00Z
fn noon() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_796_040_000)
}

fn creds(token: Option<&str>) -> Credentials {
    Credentials::new(
        "AKIAIOSFODNN7EXAMPLE",
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        token.map(str::to_owned),
        None,
        "test",
    )
}

fn sts() -> Target {
    Target::parse("https://sts.us-east-1.amazonaws.com").unwrap()
}

/// The proof for [`AUDIENCE`] and [`FP`] at noon, with or without a session token.
fn with_token(token: Option<&str>) -> Proof {
    sign_proof(&creds(token), "us-east-1", &sts(), AUDIENCE, FP, noon()).unwrap()
}

fn signed_headers(proof: &Proof) -> String {
    let auth = &proof.headers["authorization"];
    let start = auth.find("SignedHeaders=").unwrap() + "SignedHeaders=".len();
    auth[start..].split(',').next().unwrap().to_owned()
}

#[test]
fn the_binding_headers_are_sent_and_signed_with_host_and_date() {
    let proof = sign_proof(&creds(None), "us-east-1", &sts(), AUDIENCE, FP, noon()).unwrap();
    assert_eq!(proof.body, STS_BODY);
    assert_eq!(proof.headers[AUDIENCE_HEADER], AUDIENCE);
    assert_eq!(proof.headers[KEY_HEADER], FP);
    assert_eq!(proof.headers["content-type"], CONTENT_TYPE);
    assert_eq!(proof.headers["x-amz-date"], "20261130T120000Z");
    assert_eq!(
        signed_headers(&proof),
        "content-type;host;x-amz-date;x-keyward-audience;x-keyward-key"
    );
    assert!(proof.headers["authorization"].starts_with(
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20261130/us-east-1/sts/aws4_request, "
    ));
}

#[test]
fn no_host_header_and_only_allow_listed_lower_case_names_are_emitted() {
    let proof = with_token(Some("TOKEN"));
    assert!(!proof.headers.contains_key("host"));
    for name in proof.headers.keys() {
        assert!(PROOF_HEADERS.contains(&name.as_str()), "{name}");
        assert_eq!(name, &name.to_ascii_lowercase());
    }
}

#[test]
fn a_session_token_is_carried_and_signed() {
    let proof = with_token(Some("FwoGZXIvYXdzEXAMPLE"));
    assert_eq!(proof.headers["x-amz-security-token"], "FwoGZXIvYXdzEXAMPLE");
    assert_eq!(
        signed_headers(&proof),
        "content-type;host;x-amz-date;x-amz-security-token;x-keyward-audience;x-keyward-key"
    );
    let without = with_token(None);
    assert!(!without.headers.contains_key("x-amz-security-token"));
}

#[test]
fn the_same_credentials_and_time_give_the_same_proof_and_the_binding_changes_the_signature() {
    let sign = |audience: &str, fp: &str, now| {
        sign_proof(&creds(None), "us-east-1", &sts(), audience, fp, now).unwrap()
    };
    assert_eq!(sign(AUDIENCE, FP, noon()), sign(AUDIENCE, FP, noon()));
    let base = sign(AUDIENCE, FP, noon()).headers["authorization"].clone();
    let other_key = "SHA256:AAAAZKdgxS4wmu4zYv06BjkpyC031OfMGfuJPnjI/rw";
    for other in [
        sign("https://other.example.com", FP, noon()),
        sign(AUDIENCE, other_key, noon()),
        sign(AUDIENCE, FP, noon() + Duration::from_secs(1)),
    ] {
        assert_ne!(other.headers["authorization"], base);
    }
    // The host is signed: the same proof for another STS endpoint differs.
    let elsewhere = Target::parse("http://127.0.0.1:5000").unwrap();
    let moved = sign_proof(&creds(None), "us-east-1", &elsewhere, AUDIENCE, FP, noon()).unwrap();
    assert_ne!(moved.headers["authorization"], base);
}

#[test]
fn a_binding_that_cannot_be_a_header_is_refused() {
    for audience in [
        "",
        "https://a.example\r\nx-evil: 1",
        "has space",
        &"a".repeat(513),
    ] {
        let err = sign_proof(&creds(None), "us-east-1", &sts(), audience, FP, noon()).unwrap_err();
        assert!(matches!(err, ProofError::Binding(_)), "{audience:?}: {err}");
    }
    for fp in [
        "",
        "MD5:aa:bb",
        "SHA256:short",
        "SHA256:ih6KZKdgxS4wmu4zYv06BjkpyC031OfMGfuJPnjI/rw=",
        "SHA256:ih6KZKdgxS4wmu4zYv06BjkpyC031OfMGfuJPnjI\nrw",
    ] {
        let err = sign_proof(&creds(None), "us-east-1", &sts(), AUDIENCE, fp, noon()).unwrap_err();
        assert!(matches!(err, ProofError::Binding(_)), "{fp:?}: {err}");
    }
    assert!(matches!(
        sign_proof(&creds(None), "us-east-1/x", &sts(), AUDIENCE, FP, noon()),
        Err(ProofError::Aws(SignError::BadRegion(_)))
    ));
}

fn context(region: Option<&str>, endpoint: Option<&str>) -> AwsContext {
    let mut b = aws_config::SdkConfig::builder();
    if let Some(r) = region {
        b = b.region(aws_config::Region::new(r.to_owned()));
    }
    if let Some(e) = endpoint {
        b = b.endpoint_url(e);
    }
    AwsContext::from_config(b.build())
}

#[test]
fn the_sts_endpoint_is_the_given_one_else_the_configured_one_else_the_regions() {
    let given = ProofSigner::from_context(
        context(Some("eu-west-1"), Some("http://127.0.0.1:1")),
        Some("https://sts.eu-west-1.amazonaws.com"),
    )
    .unwrap();
    assert_eq!(
        given.sts_endpoint().authority(),
        "sts.eu-west-1.amazonaws.com"
    );
    let configured =
        ProofSigner::from_context(context(Some("eu-west-1"), Some("http://127.0.0.1:1")), None)
            .unwrap();
    assert_eq!(configured.sts_endpoint().authority(), "127.0.0.1:1");
    assert_eq!(given.region(), "eu-west-1");
    // A laptop in eu-west-1 and an issuer anywhere, both unconfigured, agree on one STS host and
    // the region its signature is scoped to.
    let elsewhere = ProofSigner::from_context(context(Some("eu-west-1"), None), None).unwrap();
    assert_eq!(elsewhere.sts_endpoint().authority(), "sts.amazonaws.com");
    assert_eq!(elsewhere.region(), "us-east-1");
    let unset = ProofSigner::from_context(context(None, None), None).unwrap();
    assert_eq!(unset.region(), DEFAULT_REGION);
    assert_eq!(unset.sts_endpoint().authority(), "sts.amazonaws.com");
    assert_eq!(configured.region(), "eu-west-1");
    let plain = ProofSigner::from_context(context(None, Some("http://sts.example.com")), None);
    assert!(matches!(
        plain,
        Err(ProofError::Endpoint(HttpError::BadUrl(_)))
    ));
}

#[test]
fn the_signing_region_follows_the_sts_endpoint() {
    assert_eq!(
        signing_region("sts.amazonaws.com", Some("eu-west-1")),
        "us-east-1"
    );
    assert_eq!(
        signing_region("sts.eu-west-1.amazonaws.com", Some("us-east-2")),
        "eu-west-1"
    );
    assert_eq!(
        signing_region("sts.cn-north-1.amazonaws.com.cn", None),
        "cn-north-1"
    );
    assert_eq!(signing_region("127.0.0.1", Some("eu-west-1")), "eu-west-1");
    assert_eq!(signing_region("127.0.0.1", None), DEFAULT_REGION);
    assert_eq!(
        signing_region("sts.evil/x.amazonaws.com", Some("eu-west-1")),
        "eu-west-1"
    );
}
