use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use super::testing::serve_once;
use super::*;

#[test]
fn https_urls_are_accepted_and_default_ports_left_out_of_the_authority() {
    let t = Target::parse("https://sts.us-east-1.amazonaws.com").unwrap();
    assert_eq!(t.authority(), "sts.us-east-1.amazonaws.com");
    assert_eq!(t.path_and_query(), "/");
    let t = Target::parse("https://issuer.example.com:443/v1/certificate").unwrap();
    assert_eq!(t.authority(), "issuer.example.com");
    assert_eq!(t.path_and_query(), "/v1/certificate");
    let t = Target::parse("https://issuer.example.com:8443/").unwrap();
    assert_eq!(t.authority(), "issuer.example.com:8443");
}

#[test]
fn plain_http_is_allowed_only_to_a_loopback_address() {
    for ok in [
        "http://127.0.0.1:5000",
        "http://127.1.2.3/",
        "http://[::1]:8080/x",
    ] {
        assert!(Target::parse(ok).is_ok(), "{ok}");
    }
    assert_eq!(
        Target::parse("http://127.0.0.1:80/").unwrap().authority(),
        "127.0.0.1"
    );
    for (bad, says) in [
        ("http://sts.amazonaws.com/", "not to sts.amazonaws.com"),
        // A name is not trusted to resolve to loopback.
        ("http://localhost:5000/", "not to localhost"),
        ("http://10.0.0.1/", "not to 10.0.0.1"),
        ("ftp://127.0.0.1/", "scheme"),
        ("sts.amazonaws.com", "scheme"),
        ("https://user:secret@issuer.example.com/", "user info"),
        ("https:///path", "not a URL"),
    ] {
        let err = Target::parse(bad).unwrap_err();
        assert!(matches!(err, HttpError::BadUrl(_)), "{bad}: {err:?}");
        assert!(err.to_string().contains(says), "{bad}: {err}");
        assert!(!err.to_string().contains("secret"), "{err}");
    }
}

#[tokio::test]
async fn post_sends_headers_and_body_and_takes_host_from_the_url() {
    let (url, server) =
        serve_once(b"HTTP/1.1 201 Created\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello".to_vec())
            .await;
    let answer = post(
        &format!("{url}/v1/certificate"),
        &[
            ("content-type", "application/json"),
            ("host", "evil.example"),
        ],
        b"{\"a\":1}",
        Duration::from_secs(5),
        100,
    )
    .await
    .unwrap();
    assert_eq!(answer.status, 201);
    assert_eq!(answer.body, b"hello");
    assert_eq!(answer.headers.get("x-a").unwrap(), "b");
    let request = String::from_utf8(server.await.unwrap()).unwrap();
    let authority = url.trim_start_matches("http://");
    assert!(
        request.starts_with("POST /v1/certificate HTTP/1.1\r\n"),
        "{request}"
    );
    assert!(
        request
            .to_ascii_lowercase()
            .contains(&format!("\r\nhost: {authority}\r\n")),
        "{request}"
    );
    assert!(!request.contains("evil.example"), "{request}");
    assert!(request.contains("content-type: application/json\r\n"));
    assert!(request.ends_with("\r\n\r\n{\"a\":1}"), "{request}");
}

#[tokio::test]
async fn an_answer_declared_over_the_cap_is_refused() {
    let (url, _server) =
        serve_once(b"HTTP/1.1 200 OK\r\nContent-Length: 101\r\n\r\n".to_vec()).await;
    let err = post(&url, &[], b"", Duration::from_secs(5), 100)
        .await
        .unwrap_err();
    let host = url.trim_start_matches("http://").to_owned();
    assert_eq!(err, HttpError::TooLarge { host, limit: 100 });
}

#[tokio::test]
async fn an_undeclared_answer_is_cut_while_reading_at_the_cap() {
    // No Content-Length: the body runs until the connection closes; 1 MB is sent, the cap is
    // 1 KB.
    let mut answer = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".to_vec();
    answer.extend(std::iter::repeat_n(b'x', 1 << 20));
    let (url, _server) = serve_once(answer).await;
    let err = post(&url, &[], b"", Duration::from_secs(5), 1024)
        .await
        .unwrap_err();
    assert!(
        matches!(err, HttpError::TooLarge { limit: 1024, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_in_time() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let _held = tokio::spawn(async move {
        let (conn, _) = listener.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(conn);
    });
    let started = Instant::now();
    let err = post(&url, &[], b"", Duration::from_millis(300), 100)
        .await
        .unwrap_err();
    assert!(matches!(err, HttpError::Timeout { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_refused_connection_names_the_host_but_not_the_path_or_query() {
    // Bind and drop: the port is (almost certainly) closed now.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let err = post(
        &format!("http://127.0.0.1:{port}/secret-path?X-Amz-Signature=abc123"),
        &[("authorization", "AWS4-HMAC-SHA256 Signature=abc123")],
        b"",
        Duration::from_secs(5),
        100,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, HttpError::Connect { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    assert!(
        !text.contains("secret") && !text.contains("abc123"),
        "{text}"
    );
}

#[tokio::test]
async fn https_to_a_server_that_does_not_speak_tls_is_a_tls_error() {
    // It answers in plain HTTP as soon as the client connects (the client speaks first in
    // TLS, with a ClientHello that is no HTTP request).
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let https = format!("https://{}/", listener.local_addr().unwrap());
    let _server = tokio::spawn(async move {
        let (mut conn, _) = listener.accept().await.unwrap();
        conn.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(10)).await;
    });
    let err = post(&https, &[], b"", Duration::from_secs(5), 100)
        .await
        .unwrap_err();
    assert!(matches!(err, HttpError::Tls { .. }), "{err:?}");
}

#[tokio::test]
async fn a_header_that_cannot_be_sent_is_refused_before_connecting() {
    let err = post(
        "http://127.0.0.1:1/",
        &[("x-bad", "line\r\nbreak")],
        b"",
        Duration::from_secs(5),
        100,
    )
    .await
    .unwrap_err();
    assert_eq!(err, HttpError::BadHeader("x-bad".into()));
    assert!(!err.is_transport());
}
