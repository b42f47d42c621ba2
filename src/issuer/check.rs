//! The issuer's checks of a proof before it goes to STS, and of STS's answer after.
//!
//! [`check_proof`] decides, from the proof alone, whether it is worth replaying: the header
//! names are the allow-listed ones ([`PROOF_HEADERS`]), the values plain, the SigV4
//! `Authorization` header well formed for STS and covering the headers that bind the proof
//! ([`REQUIRED_SIGNED_HEADERS`]), the binding itself (this issuer's audience, the fingerprint of
//! the key being certified), the body, and the signing time. STS then checks the signature; a
//! proof that passes here but was tampered with fails there.
//!
//! [`classify`] reads what kind of principal STS named, from its ARN.
//!
//! Invariants:
//! - Pure: no clock (a `now` is passed in), no network.
//! - Errors of [`check_proof`] describe the request's shape only: nothing here knows who the
//!   caller is, and nothing names another identity.
//! - [`classify`] accepts only the ARN shapes it knows (IAM user, assumed role) in the three
//!   commercial and government partitions with a 12-digit account; anything else is refused.

use super::{
    Caller, CallerKind, IssueError, Proof, AUDIENCE_HEADER, KEY_HEADER, PROOF_HEADERS,
    REQUIRED_SIGNED_HEADERS, STS_BODY,
};

/// The longest header value accepted. A session token is ~1–2 KB (an SSO session's more);
/// the request as a whole is capped by `wire::MAX_REQUEST_BYTES` anyway.
pub const MAX_HEADER_VALUE: usize = 8 * 1024;
/// How far a proof's `x-amz-date` may be from the issuer's clock, either way: STS's own window.
pub const MAX_CLOCK_SKEW_SECS: u64 = 15 * 60;
const SIGV4_ALGORITHM: &str = "AWS4-HMAC-SHA256";
const SECURITY_TOKEN_HEADER: &str = "x-amz-security-token";
const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded";
/// The partitions whose STS the issuer can talk to.
const PARTITIONS: &[&str] = &["aws", "aws-cn", "aws-us-gov"];
/// IAM Identity Center's roles are named `AWSReservedSSO_<permission set>_<hex>`.
const SSO_ROLE_PREFIX: &str = "AWSReservedSSO_";

fn bad(message: impl Into<String>) -> IssueError {
    IssueError::BadRequest(message.into())
}

/// Whether `proof` may be replayed to STS on behalf of a request to certify the key whose
/// `SHA256:` fingerprint is `key_fingerprint`, at this issuer (`audience`), at `now` (unix
/// seconds).
pub fn check_proof(
    proof: &Proof,
    audience: &str,
    key_fingerprint: &str,
    now: u64,
) -> Result<(), IssueError> {
    for (name, value) in &proof.headers {
        if name.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(bad("proof header names must be lower case"));
        }
        if !PROOF_HEADERS.contains(&name.as_str()) {
            return Err(bad(format!(
                "the proof carries a header the issuer does not accept; allowed: {}",
                PROOF_HEADERS.join(", ")
            )));
        }
        if value.is_empty() || value.len() > MAX_HEADER_VALUE {
            return Err(bad(format!(
                "proof header {name} must be 1 to {MAX_HEADER_VALUE} bytes"
            )));
        }
        if !value.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            return Err(bad(format!(
                "proof header {name} must be printable ASCII (no control characters)"
            )));
        }
    }
    let header = |name: &str| proof.headers.get(name).map(String::as_str);
    let required = |name: &'static str| {
        header(name).ok_or_else(|| bad(format!("the proof has no {name} header")))
    };

    if proof.body != STS_BODY {
        return Err(bad(format!(
            "the proof's body must be exactly {STS_BODY:?}"
        )));
    }
    if let Some(content_type) = header("content-type") {
        let media = content_type.split(';').next().unwrap_or("").trim();
        if !media.eq_ignore_ascii_case(FORM_CONTENT_TYPE) {
            return Err(bad(format!(
                "the proof's content-type must be {FORM_CONTENT_TYPE}"
            )));
        }
    }

    let authorization = parse_authorization(required("authorization")?)?;
    let date = required("x-amz-date")?;
    let signed_at =
        parse_amz_date(date).ok_or_else(|| bad("x-amz-date must look like 20261130T154000Z"))?;
    if !date.starts_with(authorization.credential_date) {
        return Err(bad(
            "the date in the authorization's Credential differs from x-amz-date",
        ));
    }
    let mut must_sign: Vec<&str> = REQUIRED_SIGNED_HEADERS.to_vec();
    if header(SECURITY_TOKEN_HEADER).is_some() {
        must_sign.push(SECURITY_TOKEN_HEADER);
    }
    if let Some(missing) = must_sign
        .iter()
        .find(|name| !authorization.signed_headers.contains(name))
    {
        return Err(bad(format!(
            "the proof's signature must cover the {missing} header (SignedHeaders)"
        )));
    }
    for name in &authorization.signed_headers {
        if *name != "host" && header(name).is_none() {
            return Err(bad(format!(
                "the proof's signature covers {name}, which the issuer does not replay; sign \
                 only host and {}",
                PROOF_HEADERS.join(", ")
            )));
        }
    }

    if required(AUDIENCE_HEADER)? != audience {
        return Err(IssueError::Unauthenticated(format!(
            "the proof is for another issuer: its {AUDIENCE_HEADER} must be {audience}"
        )));
    }
    if required(KEY_HEADER)? != key_fingerprint {
        return Err(IssueError::Unauthenticated(format!(
            "the proof is for another public key: its {KEY_HEADER} must be the fingerprint of \
             the key to certify ({key_fingerprint})"
        )));
    }
    if signed_at.abs_diff(now) > MAX_CLOCK_SKEW_SECS {
        return Err(IssueError::Unauthenticated(
            "the proof was signed more than 15 minutes from the issuer's clock: sign a new one \
             (and check this machine's clock)"
                .into(),
        ));
    }
    Ok(())
}

/// The parts of a SigV4 `Authorization` header the issuer checks.
#[derive(Debug, PartialEq, Eq)]
struct Authorization<'a> {
    /// `YYYYMMDD` of the credential scope.
    credential_date: &'a str,
    signed_headers: Vec<&'a str>,
}

/// `AWS4-HMAC-SHA256 Credential=AKID/YYYYMMDD/REGION/sts/aws4_request,
/// SignedHeaders=a;b;c, Signature=<64 hex>`.
fn parse_authorization(value: &str) -> Result<Authorization<'_>, IssueError> {
    let shape = || {
        bad(format!(
            "the proof's authorization must be {SIGV4_ALGORITHM} Credential=KEY/DATE/REGION/\
             sts/aws4_request, SignedHeaders=..., Signature=<64 hex digits>"
        ))
    };
    let rest = value
        .strip_prefix(SIGV4_ALGORITHM)
        .and_then(|r| r.strip_prefix(' '))
        .ok_or_else(shape)?;
    let mut fields = rest.split(',').map(str::trim);
    let (Some(credential), Some(signed), Some(signature), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(shape());
    };
    let credential = credential.strip_prefix("Credential=").ok_or_else(shape)?;
    let signed = signed.strip_prefix("SignedHeaders=").ok_or_else(shape)?;
    let signature = signature.strip_prefix("Signature=").ok_or_else(shape)?;

    let scope: Vec<&str> = credential.split('/').collect();
    let [access_key, date, region, service, terminator] = scope[..] else {
        return Err(shape());
    };
    let access_key_ok = (16..=128).contains(&access_key.len())
        && access_key.bytes().all(|b| b.is_ascii_alphanumeric());
    let date_ok = date.len() == 8 && date.bytes().all(|b| b.is_ascii_digit());
    let region_ok = (1..=32).contains(&region.len())
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !(access_key_ok && date_ok && region_ok && service == "sts" && terminator == "aws4_request")
    {
        return Err(shape());
    }
    let signature_ok = signature.len() == 64
        && signature
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !signature_ok {
        return Err(shape());
    }
    let signed_headers: Vec<&str> = signed.split(';').collect();
    let names_ok = signed_headers.iter().all(|name| {
        !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    });
    if !names_ok {
        return Err(shape());
    }
    Ok(Authorization {
        credential_date: date,
        signed_headers,
    })
}

/// `20261130T154000Z` in unix seconds.
fn parse_amz_date(value: &str) -> Option<u64> {
    let b = value.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let digits = |range: std::ops::Range<usize>| {
        value
            .get(range)
            .filter(|s| s.bytes().all(|c| c.is_ascii_digit()))
    };
    let rfc3339 = format!(
        "{}-{}-{}T{}:{}:{}Z",
        digits(0..4)?,
        digits(4..6)?,
        digits(6..8)?,
        digits(9..11)?,
        digits(11..13)?,
        digits(13..15)?
    );
    crate::audit::time::parse_rfc3339(&rfc3339).map(crate::clock::unix_secs)
}

/// What kind of principal STS said signed the proof, from its ARN; anything keyward does not
/// know is refused.
pub fn classify(caller: &Caller) -> Result<CallerKind, IssueError> {
    let refuse = || {
        IssueError::Forbidden(format!(
            "{} is neither an IAM user nor an assumed role: certificates are issued to IAM \
             users (user certificates) and instance roles (host certificates)",
            printable(&caller.arn)
        ))
    };
    let parts: Vec<&str> = caller.arn.splitn(6, ':').collect();
    let [arn, partition, service, region, account, resource] = parts[..] else {
        return Err(refuse());
    };
    let account_ok = account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit());
    if arn != "arn"
        || !PARTITIONS.contains(&partition)
        || !region.is_empty()
        || !account_ok
        || account != caller.account
    {
        return Err(refuse());
    }
    match (service, resource.split_once('/')) {
        ("iam", Some(("user", path_and_name))) => {
            // `user/NAME` or `user/PATH/NAME`: the name is the last segment.
            let name = path_and_name.rsplit('/').next().unwrap_or("");
            if crate::accounts::names::is_valid_iam_name(name) {
                Ok(CallerKind::IamUser {
                    name: name.to_owned(),
                })
            } else {
                Err(refuse())
            }
        }
        ("sts", Some(("assumed-role", role_and_session))) => {
            let Some((role, session)) = role_and_session.split_once('/') else {
                return Err(refuse());
            };
            if !is_iam_name(role, 1, 64) || !is_iam_name(session, 2, 64) {
                return Err(refuse());
            }
            let (role, session) = (role.to_owned(), session.to_owned());
            if role.starts_with(SSO_ROLE_PREFIX) {
                Ok(CallerKind::SsoSession { role, session })
            } else {
                Ok(CallerKind::AssumedRole { role, session })
            }
        }
        _ => Err(refuse()),
    }
}

/// IAM's role and session name alphabet `[\w+=,.@-]`, `min..=max` characters.
fn is_iam_name(s: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
}

/// STS's ARN as it may be echoed into a message or log: printable ASCII, cut after 256
/// characters (`logging::capped`, the shape of every untrusted text keyward logs).
pub fn printable(arn: &str) -> String {
    crate::logging::capped(arn, 256, |c, out| {
        out.push(if c.is_ascii_graphic() { c } else { '?' })
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
pub(crate) mod tests {
    use std::collections::BTreeMap;

    use super::*;

    const AUDIENCE: &str = "https://issuer.example.com";
    const FP: &str = "SHA256:abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
    /// 2026-11-30T15:40:00Z.
    const NOW: u64 = 1_796_053_200;
    const SIGNATURE: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn proof() -> Proof {
        signed_proof(AUDIENCE, FP)
    }

    /// A well-formed proof signed at 2026-11-30T15:40:00Z, bound to `audience` and the key
    /// `fingerprint` (its signature is made up: only STS checks it).
    pub(crate) fn signed_proof(audience: &str, fingerprint: &str) -> Proof {
        let headers: BTreeMap<String, String> = [
            (
                "authorization",
                format!(
                    "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20261130/us-east-1/sts/\
                     aws4_request, SignedHeaders=content-type;host;x-amz-date;\
                     x-keyward-audience;x-keyward-key, Signature={SIGNATURE}"
                ),
            ),
            (
                "content-type",
                "application/x-www-form-urlencoded; charset=utf-8".into(),
            ),
            ("x-amz-date", "20261130T154000Z".into()),
            (AUDIENCE_HEADER, audience.into()),
            (KEY_HEADER, fingerprint.into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        Proof {
            headers,
            body: STS_BODY.into(),
        }
    }

    fn check(p: &Proof) -> Result<(), IssueError> {
        check_proof(p, AUDIENCE, FP, NOW)
    }

    fn with(name: &str, value: &str) -> Proof {
        let mut p = proof();
        p.headers.insert(name.into(), value.into());
        p
    }

    fn bad_request(p: &Proof, needle: &str) {
        match check(p) {
            Err(IssueError::BadRequest(m)) => assert!(m.contains(needle), "{m}"),
            other => panic!("expected a bad request about {needle}: {other:?}"),
        }
    }

    #[test]
    fn a_well_formed_bound_proof_passes() {
        check(&proof()).unwrap();
        check_proof(&proof(), AUDIENCE, FP, NOW + MAX_CLOCK_SKEW_SECS).unwrap();
        check_proof(&proof(), AUDIENCE, FP, NOW - MAX_CLOCK_SKEW_SECS).unwrap();
    }

    #[test]
    fn proof_for_another_audience_or_key_is_unauthenticated() {
        let err = check(&with(AUDIENCE_HEADER, "https://evil.example.com")).unwrap_err();
        assert!(matches!(&err, IssueError::Unauthenticated(m) if m.contains("another issuer")));
        let err = check(&with(AUDIENCE_HEADER, "https://issuer.example.com/")).unwrap_err();
        assert_eq!(err.http_status(), 401);
        let err = check(&with(KEY_HEADER, "SHA256:other")).unwrap_err();
        assert!(matches!(&err, IssueError::Unauthenticated(m) if m.contains("another public key")));
    }

    #[test]
    fn stale_or_future_proof_is_unauthenticated() {
        for now in [NOW + MAX_CLOCK_SKEW_SECS + 1, NOW - MAX_CLOCK_SKEW_SECS - 1] {
            let err = check_proof(&proof(), AUDIENCE, FP, now).unwrap_err();
            assert!(matches!(&err, IssueError::Unauthenticated(m) if m.contains("15 minutes")));
        }
        bad_request(&with("x-amz-date", "2026-11-30T15:40:00Z"), "x-amz-date");
        bad_request(&with("x-amz-date", "20261301T154000Z"), "x-amz-date");
        bad_request(&with("x-amz-date", "20261129T154000Z"), "Credential");
    }

    #[test]
    fn header_names_must_be_lower_case_and_allow_listed() {
        let mut p = proof();
        let v = p.headers.remove("x-amz-date").unwrap();
        p.headers.insert("X-Amz-Date".into(), v);
        bad_request(&p, "lower case");
        bad_request(&with("host", "sts.evil.example"), "allowed");
        bad_request(&with("x-amz-target", "x"), "allowed");
    }

    #[test]
    fn header_values_are_printable_and_capped() {
        bad_request(&with("x-amz-security-token", "a\r\nhost: evil"), "control");
        bad_request(&with("x-amz-security-token", "ü"), "control");
        bad_request(
            &with("x-amz-security-token", &"a".repeat(MAX_HEADER_VALUE + 1)),
            "bytes",
        );
        bad_request(&with("x-amz-security-token", ""), "bytes");
    }

    #[test]
    fn required_headers_must_be_present() {
        for name in ["authorization", "x-amz-date", AUDIENCE_HEADER, KEY_HEADER] {
            let mut p = proof();
            p.headers.remove(name);
            assert!(
                matches!(check(&p), Err(IssueError::BadRequest(_))),
                "{name}: {:?}",
                check(&p)
            );
        }
    }

    #[test]
    fn the_body_and_content_type_are_fixed() {
        let mut p = proof();
        p.body = "Action=GetCallerIdentity&Version=2011-06-15&X=1".into();
        bad_request(&p, "body");
        bad_request(&with("content-type", "application/json"), "content-type");
    }

    #[test]
    fn signed_headers_must_cover_the_binding() {
        for missing in [
            "host;",
            "x-amz-date;",
            "x-keyward-audience;",
            ";x-keyward-key",
        ] {
            let auth = proof().headers["authorization"].replace(missing, "");
            bad_request(&with("authorization", &auth), "must cover");
        }
        // A session token must be signed when it is sent.
        bad_request(
            &with("x-amz-security-token", "FwoGZXIvYXdzE"),
            "x-amz-security-token",
        );
        let signed = proof().headers["authorization"]
            .replace("x-amz-date;", "x-amz-date;x-amz-security-token;");
        let mut p = with("authorization", &signed);
        p.headers
            .insert("x-amz-security-token".into(), "FwoGZXIvYXdzE".into());
        check(&p).unwrap();
        // A signed header the issuer would not replay.
        let auth = proof().headers["authorization"].replace("host;", "host;user-agent;");
        bad_request(&with("authorization", &auth), "user-agent");
    }

    #[test]
    fn authorization_must_be_sigv4_for_sts() {
        let good = proof().headers["authorization"].clone();
        for bad_value in [
            good.replace("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA512"),
            good.replace("/sts/", "/iam/"),
            good.replace("aws4_request", "aws4_reques"),
            good.replace("us-east-1", "US-EAST-1"),
            good.replace(SIGNATURE, &SIGNATURE[1..]),
            good.replace(SIGNATURE, &SIGNATURE.to_uppercase()),
            good.replace("AKIAIOSFODNN7EXAMPLE", "AKIA/X"),
            format!("{good}, Extra=1"),
            good.replace("SignedHeaders=", "Signed="),
            "Basic dXNlcjpwYXNz".into(),
        ] {
            bad_request(&with("authorization", &bad_value), "authorization");
        }
    }

    fn caller(arn: &str) -> Caller {
        Caller {
            arn: arn.into(),
            account: "123456789012".into(),
            user_id: "AIDAEXAMPLE".into(),
        }
    }

    #[test]
    fn classify_reads_users_roles_and_sso_sessions() {
        assert_eq!(
            classify(&caller("arn:aws:iam::123456789012:user/alice")).unwrap(),
            CallerKind::IamUser {
                name: "alice".into()
            }
        );
        assert_eq!(
            classify(&caller(
                "arn:aws-us-gov:iam::123456789012:user/dev/ops/Bob.Smith"
            ))
            .unwrap(),
            CallerKind::IamUser {
                name: "Bob.Smith".into()
            }
        );
        assert_eq!(
            classify(&caller(
                "arn:aws:sts::123456789012:assumed-role/web-host/i-0123456789abcdef0"
            ))
            .unwrap(),
            CallerKind::AssumedRole {
                role: "web-host".into(),
                session: "i-0123456789abcdef0".into()
            }
        );
        assert_eq!(
            classify(&caller(
                "arn:aws-cn:sts::123456789012:assumed-role/AWSReservedSSO_Admin_0123abcd/alice@example.com"
            ))
            .unwrap(),
            CallerKind::SsoSession {
                role: "AWSReservedSSO_Admin_0123abcd".into(),
                session: "alice@example.com".into()
            }
        );
    }

    #[test]
    fn classify_refuses_everything_else() {
        for arn in [
            "arn:aws:iam::123456789012:root",
            "arn:aws:sts::123456789012:federated-user/alice",
            "arn:aws:iam::123456789012:role/web-host",
            "arn:aws:sts::123456789012:assumed-role/web-host",
            "arn:aws:sts::123456789012:assumed-role/web-host/s/extra",
            "arn:aws:sts::123456789012:assumed-role/web-host/a b",
            "arn:aws:iam::123456789012:user/",
            "arn:aws:iam::123456789012:user/path/",
            "arn:aws:iam::12345678901:user/alice",
            "arn:aws:iam::999999999999:user/alice",
            "arn:aws:iam:us-east-1:123456789012:user/alice",
            "arn:other:iam::123456789012:user/alice",
            "arn:aws:s3::123456789012:user/alice",
            "urn:aws:iam::123456789012:user/alice",
            "",
        ] {
            let err = classify(&caller(arn)).unwrap_err();
            assert_eq!(err.http_status(), 403, "{arn}");
        }
    }
}
