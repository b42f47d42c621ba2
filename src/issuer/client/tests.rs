use std::path::Path;
use std::process::Command;

use aws_credential_types::provider::SharedCredentialsProvider;
use aws_credential_types::Credentials;

use super::*;
use crate::http::testing::serve_once;
use crate::issuer::{AUDIENCE_HEADER, KEY_HEADER};
use crate::sigv4::AwsContext;

fn keygen(dir: &Path, name: &str) -> PublicKey {
    let path = dir.join(name);
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&path)
        .status()
        .unwrap()
        .success();
    assert!(ok);
    PublicKey::parse(&std::fs::read_to_string(path.with_extension("pub")).unwrap()).unwrap()
}

/// A user key and a certificate for it made by `ssh-keygen -s`.
fn key_and_certificate(dir: &Path) -> (PublicKey, String) {
    let key = keygen(dir, "user");
    keygen(dir, "ca");
    let ok = Command::new("ssh-keygen")
        .args([
            "-q",
            "-s",
            "ca",
            "-I",
            "keyward:alice:AIDA:1",
            "-n",
            "alice",
            "-V",
            "+1h",
            "user.pub",
        ])
        .current_dir(dir)
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let cert = std::fs::read_to_string(dir.join("user-cert.pub")).unwrap();
    (key, cert.trim().to_owned())
}

#[test]
fn the_audience_is_the_issuer_url_normalized() {
    for (url, audience) in [
        ("https://issuer.example.com", "https://issuer.example.com"),
        ("https://Issuer.Example.com/", "https://issuer.example.com"),
        (
            "https://issuer.example.com:443/",
            "https://issuer.example.com",
        ),
        (
            "https://issuer.example.com:8443",
            "https://issuer.example.com:8443",
        ),
        (
            "https://abc.lambda-url.eu-west-1.on.aws/prod/",
            "https://abc.lambda-url.eu-west-1.on.aws/prod",
        ),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
    ] {
        assert_eq!(audience_for(url).unwrap(), audience, "{url}");
    }
    assert!(matches!(
        audience_for("http://issuer.example.com"),
        Err(ClientError::BadRequest(_))
    ));
}

#[test]
fn the_certificate_url_is_the_issuer_url_and_the_wire_path() {
    assert_eq!(
        certificate_url("https://issuer.example.com/").unwrap(),
        "https://issuer.example.com/v1/certificate"
    );
    assert_eq!(
        certificate_url("https://x.example.com/prod").unwrap(),
        "https://x.example.com/prod/v1/certificate"
    );
    for bad in [
        "https://x.example.com/?a=b",
        "https://x.example.com/#f",
        "ftp://x/",
    ] {
        assert!(
            matches!(certificate_url(bad), Err(ClientError::BadRequest(_))),
            "{bad}"
        );
    }
}

#[test]
fn a_certificate_for_the_key_sent_is_returned() {
    let dir = tempfile::tempdir().unwrap();
    let (key, cert) = key_and_certificate(dir.path());
    let body = serde_json::to_vec(&IssueResponse {
        certificate: format!("{cert}\n"),
    })
    .unwrap();
    assert_eq!(read_answer(200, &body, &key).unwrap(), cert);
}

#[test]
fn a_certificate_for_another_key_or_no_certificate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_, cert) = key_and_certificate(dir.path());
    let other = keygen(dir.path(), "other");
    let answer = |certificate: &str| {
        serde_json::to_vec(&IssueResponse {
            certificate: certificate.to_owned(),
        })
        .unwrap()
    };
    for (body, says) in [
        (answer(&cert), "another key"),
        (answer(&other.to_line()), "no OpenSSH certificate"),
        (answer(&format!("{cert}\n{cert}")), "more than one line"),
        (b"{\"certificate\":1}".to_vec(), "not a certificate"),
        (
            b"{\"certificate\":\"x\",\"extra\":1}".to_vec(),
            "not a certificate",
        ),
    ] {
        match read_answer(200, &body, &other) {
            Err(ClientError::Unavailable(text)) => assert!(text.contains(says), "{text}"),
            other => panic!("{}: {other:?}", String::from_utf8_lossy(&body)),
        }
    }
}

#[test]
fn the_issuers_status_decides_the_error_and_its_text_is_shown_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "user");
    let said = |text: &str| serde_json::to_vec(&ErrorResponse { error: text.into() }).unwrap();
    let cases = [
        (
            400,
            said("bad request: no proof"),
            ClientError::BadRequest("no proof".into()),
        ),
        (
            401,
            said("not authenticated: x"),
            ClientError::Credentials("x".into()),
        ),
        (
            403,
            said("refused: not in allowed_groups"),
            ClientError::Refused("not in allowed_groups".into()),
        ),
        (
            503,
            said("unavailable: STS"),
            ClientError::Unavailable("STS".into()),
        ),
        (
            502,
            b"<html>bad gateway</html>".to_vec(),
            ClientError::Unavailable("HTTP 502".into()),
        ),
        (
            500,
            said("issuer error: x"),
            ClientError::Issuer("x".into()),
        ),
        (418, Vec::new(), ClientError::Issuer("HTTP 418".into())),
        (
            403,
            said("refused\nFAKE LOG LINE"),
            ClientError::Refused("refused\\nFAKE LOG LINE".into()),
        ),
    ];
    for (status, body, expected) in cases {
        assert_eq!(read_answer(status, &body, &key), Err(expected), "{status}");
    }
    // What the issuer's status means is said once, not twice.
    let refused = read_answer(403, &said("refused: not in allowed_groups"), &key).unwrap_err();
    assert_eq!(
        refused.to_string(),
        "the issuer refused: not in allowed_groups"
    );
}

fn signer(endpoint: &str) -> ProofSigner {
    let config = aws_config::SdkConfig::builder()
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "AKIAIOSFODNN7EXAMPLE",
            "secret",
            None,
            None,
            "test",
        )))
        .build();
    ProofSigner::from_context(AwsContext::from_config(config), Some(endpoint)).unwrap()
}

#[tokio::test]
async fn the_request_carries_the_key_and_a_proof_bound_to_it_and_the_audience() {
    let dir = tempfile::tempdir().unwrap();
    let (key, cert) = key_and_certificate(dir.path());
    let answer = serde_json::to_string(&IssueResponse {
        certificate: cert.clone(),
    })
    .unwrap();
    let (url, issuer) = serve_once(
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{answer}",
            answer.len()
        )
        .into_bytes(),
    )
    .await;
    let audience = audience_for(&url).unwrap();
    let request = CertificateRequest {
        kind: CertKind::User,
        public_key: &key,
        validity_secs: Some(3600),
        source_addresses: vec!["10.0.0.0/8".into()],
        host_scope: None,
    };
    let got = request_certificate(
        &format!("{url}/"),
        &audience,
        &request,
        &signer("https://sts.us-east-1.amazonaws.com"),
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    assert_eq!(got, cert);

    let sent = String::from_utf8(issuer.await.unwrap()).unwrap();
    let (head, body) = sent.split_once("\r\n\r\n").unwrap();
    assert!(
        head.starts_with("POST /v1/certificate HTTP/1.1\r\n"),
        "{head}"
    );
    let sent: IssueRequest = serde_json::from_str(body).unwrap();
    assert_eq!(sent.kind, CertKind::User);
    assert_eq!(sent.public_key, key.to_line());
    assert_eq!(sent.validity_secs, Some(3600));
    assert_eq!(sent.source_addresses, vec!["10.0.0.0/8".to_owned()]);
    assert_eq!(sent.proof.headers[AUDIENCE_HEADER], audience);
    assert_eq!(sent.proof.headers[KEY_HEADER], key.fingerprint());
    assert!(!sent.proof.headers.contains_key("host"));
}

#[tokio::test]
async fn an_issuer_that_cannot_be_reached_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "user");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let request = CertificateRequest {
        kind: CertKind::Host,
        public_key: &key,
        validity_secs: None,
        source_addresses: Vec::new(),
        host_scope: None,
    };
    let err = request_certificate(
        &format!("http://127.0.0.1:{port}"),
        "http://127.0.0.1",
        &request,
        &signer("https://sts.us-east-1.amazonaws.com"),
        Duration::from_secs(5),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ClientError::Unavailable(_)), "{err:?}");
}

#[tokio::test]
async fn no_credentials_is_a_credentials_error() {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "user");
    let config = aws_config::SdkConfig::builder()
        .region(aws_config::Region::new("us-east-1"))
        .build();
    let signer = ProofSigner::from_context(AwsContext::from_config(config), None).unwrap();
    let request = CertificateRequest {
        kind: CertKind::User,
        public_key: &key,
        validity_secs: None,
        source_addresses: Vec::new(),
        host_scope: None,
    };
    let err = request_certificate(
        "http://127.0.0.1:1",
        "http://127.0.0.1:1",
        &request,
        &signer,
        Duration::from_secs(5),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ClientError::Credentials(_)), "{err:?}");
}
