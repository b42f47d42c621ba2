use std::collections::BTreeMap;

use super::*;
use crate::http::testing::serve_once;

/// GetCallerIdentity's answer as AWS documents it.
const AWS_ANSWER: &str = r#"<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <GetCallerIdentityResult>
    <Arn>arn:aws:iam::123456789012:user/Alice</Arn>
    <UserId>AIDACKCEVSQ6C2EXAMPLE</UserId>
    <Account>123456789012</Account>
  </GetCallerIdentityResult>
  <ResponseMetadata>
    <RequestId>01234567-89ab-cdef-0123-456789abcdef</RequestId>
  </ResponseMetadata>
</GetCallerIdentityResponse>"#;

fn answer_with(result: &str) -> String {
    format!(
        "<GetCallerIdentityResponse><GetCallerIdentityResult>{result}</GetCallerIdentityResult>\
         </GetCallerIdentityResponse>"
    )
}

#[test]
fn a_whole_answer_names_the_caller() {
    assert_eq!(
        parse_caller(AWS_ANSWER.as_bytes()).unwrap(),
        Caller {
            arn: "arn:aws:iam::123456789012:user/Alice".into(),
            account: "123456789012".into(),
            user_id: "AIDACKCEVSQ6C2EXAMPLE".into(),
        }
    );
    let role = answer_with(
        "<Arn>arn:aws:sts::123456789012:assumed-role/web/i-0123456789abcdef0</Arn>\
         <UserId>AROA3XFRBF535PLBIFPI4:i-0123456789abcdef0</UserId>\
         <Account>123456789012</Account>",
    );
    let caller = parse_caller(role.as_bytes()).unwrap();
    assert_eq!(caller.user_id, "AROA3XFRBF535PLBIFPI4:i-0123456789abcdef0");
}

#[test]
fn an_answer_missing_doubling_or_implausible_in_any_field_names_nobody() {
    const ARN: &str = "<Arn>arn:aws:iam::123456789012:user/Alice</Arn>";
    const ID: &str = "<UserId>AIDACKCEVSQ6C2EXAMPLE</UserId>";
    const ACCOUNT: &str = "<Account>123456789012</Account>";
    let cases = [
        (answer_with(&format!("{ID}{ACCOUNT}")), "no <Arn>"),
        (answer_with(&format!("{ARN}{ACCOUNT}")), "no <UserId>"),
        (answer_with(&format!("{ARN}{ID}")), "no <Account>"),
        (answer_with(&format!("{ARN}{ARN}{ID}{ACCOUNT}")), "more than once"),
        (answer_with(&format!("<Arn/>{ID}{ACCOUNT}")), "<Arn>"),
        (
            answer_with(&format!("{ARN}{ID}<Account>12345678901</Account>")),
            "12 digits",
        ),
        (
            answer_with(&format!(
                "<Arn>arn:aws:iam::999999999999:user/Alice</Arn>{ID}{ACCOUNT}"
            )),
            "<Arn>",
        ),
        (
            answer_with(&format!("<Arn>arn:aws:s3:::bucket</Arn>{ID}{ACCOUNT}")),
            "<Arn>",
        ),
        (
            answer_with(&format!(
                "<Arn>arn:aws:iam::123456789012:user/A&amp;B</Arn>{ID}{ACCOUNT}"
            )),
            "entity",
        ),
        (
            answer_with(&format!("{ARN}<UserId>AIDA EXAMPLE</UserId>{ACCOUNT}")),
            "<UserId>",
        ),
        (
            answer_with(&format!("<Arn><X>arn</X></Arn>{ID}{ACCOUNT}")),
            "child elements",
        ),
        (
            format!("<OtherResponse><GetCallerIdentityResult>{ARN}{ID}{ACCOUNT}</GetCallerIdentityResult></OtherResponse>"),
            "root",
        ),
        ("<GetCallerIdentityResponse/>".into(), "0 <GetCallerIdentityResult>"),
        (
            AWS_ANSWER[..AWS_ANSWER.rfind("</GetCallerIdentityResponse>").unwrap()].into(),
            "cut short",
        ),
        (AWS_ANSWER[..AWS_ANSWER.len() - 30].into(), "not well-formed"),
        (format!("{AWS_ANSWER}<x/>"), "not well-formed"),
        (
            format!("<!DOCTYPE x [<!ENTITY e \"x\">]>{AWS_ANSWER}"),
            "DTD",
        ),
        ("".into(), "no <GetCallerIdentityResponse>"),
    ];
    for (body, says) in cases {
        let err = parse_caller(body.as_bytes()).unwrap_err();
        assert!(err.contains(says), "{body}: {err}");
    }
}

#[test]
fn sts_refusing_the_proof_is_unauthenticated_and_names_only_the_code() {
    let aws = r#"<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <Error><Type>Sender</Type><Code>SignatureDoesNotMatch</Code>
  <Message>The request signature we calculated does not match arn:aws:iam::1:user/bob</Message></Error>
  <RequestId>x</RequestId></ErrorResponse>"#;
    let moto = "<ErrorResponse><Errors><Error><Code>InvalidClientTokenId</Code>\
                <Message>The security token included in the request is invalid.</Message>\
                </Error></Errors></ErrorResponse>";
    let expired = "<ErrorResponse><Error><Code>ExpiredToken</Code></Error></ErrorResponse>";
    for (status, body, code) in [
        (403, aws, "SignatureDoesNotMatch"),
        (403, moto, "InvalidClientTokenId"),
        (400, expired, "ExpiredToken"),
        (403, "", "no error code"),
    ] {
        match judge(status, body.as_bytes()) {
            Err(IssueError::Unauthenticated(text)) => {
                assert!(text.contains(code), "{text}");
                assert!(!text.contains("bob"), "{text}");
            }
            other => panic!("{status} {body}: {other:?}"),
        }
    }
}

#[test]
fn outages_and_bad_answers_are_unavailable() {
    let throttled = "<ErrorResponse><Error><Code>Throttling</Code></Error></ErrorResponse>";
    for (status, body) in [
        (400, throttled),
        (403, throttled),
        (500, ""),
        (503, "<html>gateway</html>"),
        (
            400,
            "<ErrorResponse><Error><Code>InvalidAction</Code></Error></ErrorResponse>",
        ),
        (200, "<GetCallerIdentityResponse/>"),
        (200, "not xml"),
    ] {
        assert!(
            matches!(
                judge(status, body.as_bytes()),
                Err(IssueError::Unavailable(_))
            ),
            "{status} {body}"
        );
    }
    assert!(judge(200, AWS_ANSWER.as_bytes()).is_ok());
}

fn proof() -> Proof {
    let mut headers = BTreeMap::new();
    for (n, v) in [
        ("authorization", "AWS4-HMAC-SHA256 Credential=AKIA/20261130/us-east-1/sts/aws4_request, SignedHeaders=host;x-amz-date, Signature=00"),
        ("content-type", "application/x-www-form-urlencoded; charset=utf-8"),
        ("x-amz-date", "20261130T120000Z"),
        ("x-keyward-audience", "https://issuer.example.com"),
        ("x-keyward-key", "SHA256:ih6KZKdgxS4wmu4zYv06BjkpyC031OfMGfuJPnjI/rw"),
        // Never replayed:
        ("host", "evil.example"),
        ("x-amz-target", "AWSSecurityTokenServiceV20110615.AssumeRole"),
    ] {
        headers.insert(n.to_owned(), v.to_owned());
    }
    Proof {
        headers,
        body: "Action=AssumeRole&RoleArn=arn:aws:iam::1:role/admin".into(),
    }
}

#[tokio::test]
async fn the_replay_goes_to_the_configured_endpoint_with_its_own_body_and_only_allowed_headers() {
    let reply = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n{AWS_ANSWER}",
        AWS_ANSWER.len()
    );
    let (url, server) = serve_once(reply.into_bytes()).await;
    let sts = StsReplay::new(&url, Duration::from_secs(5)).unwrap();
    let caller = sts.caller(&proof()).await.unwrap();
    assert_eq!(caller.arn, "arn:aws:iam::123456789012:user/Alice");

    let request = String::from_utf8(server.await.unwrap()).unwrap();
    let (head, body) = request.split_once("\r\n\r\n").unwrap();
    assert_eq!(body, STS_BODY);
    let mut lines = head.lines();
    assert_eq!(lines.next(), Some("POST / HTTP/1.1"));
    let names: Vec<String> = lines
        .map(|l| l.split(':').next().unwrap().to_ascii_lowercase())
        .collect();
    for name in &names {
        assert!(
            PROOF_HEADERS.contains(&name.as_str()) || name == "host" || name == "content-length",
            "sent {name}: {head}"
        );
    }
    let authority = url.trim_start_matches("http://");
    assert!(
        head.to_ascii_lowercase()
            .contains(&format!("\r\nhost: {authority}")),
        "{head}"
    );
    assert!(
        !head.contains("evil.example") && !head.contains("AssumeRole"),
        "{head}"
    );
    assert!(head.contains("x-keyward-key: SHA256:"), "{head}");
}

#[tokio::test]
async fn an_sts_that_cannot_be_reached_is_an_outage() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let sts = StsReplay::new(&format!("http://127.0.0.1:{port}"), Duration::from_secs(5)).unwrap();
    assert!(matches!(
        sts.caller(&proof()).await,
        Err(IssueError::Unavailable(_))
    ));
}

#[test]
fn an_endpoint_that_is_not_https_or_loopback_is_a_configuration_error() {
    assert!(matches!(
        StsReplay::new("http://sts.amazonaws.com", Duration::from_secs(5)),
        Err(IssueError::Internal(_))
    ));
}
