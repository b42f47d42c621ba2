//! One small HTTP/1.1 client for the few requests keyward makes without an AWS SDK: the
//! issuer's STS replay and EC2 Query calls, and the laptop's and host's request to the issuer.
//!
//! It is built from the crates and features the AWS SDK's own client already compiles (hyper 1,
//! hyper-util's legacy client, hyper-rustls with rustls on aws-lc and the system's root store,
//! which honours `SSL_CERT_FILE`), so it adds almost nothing to the build.
//!
//! Invariants:
//! - **https everywhere**; plain `http://` only to a literal loopback address (127.0.0.0/8,
//!   `::1`): tests and an issuer on the same machine. No URL with user info, no redirects
//!   followed, no proxy.
//! - **Bounded**: one timeout covers connecting, sending and reading the whole answer; the body
//!   is capped while it is read (a `Content-Length` over the cap is refused before reading).
//! - **The Host header comes from the URL**, never from the caller's headers (signatures and the
//!   STS replay depend on it).
//! - **Errors name the URL's host only**: never its path, query, headers or body, which may
//!   carry signatures or session tokens.

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http::header::{HeaderName, HeaderValue, HOST};
use http::{HeaderMap, Method, Request, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_rustls::{ConfigBuilderExt, HttpsConnector};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// An answer, whatever its status.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// Why a request got no answer. `host` is the URL's host (and port), safe to show.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    #[error("bad URL: {0}")]
    BadUrl(String),
    #[error("bad request header {0:?}")]
    BadHeader(String),
    #[error("{host} did not answer within {}s", timeout.as_secs_f64())]
    Timeout { host: String, timeout: Duration },
    #[error("cannot connect to {host}: {reason}")]
    Connect { host: String, reason: String },
    #[error("TLS with {host} failed: {reason}")]
    Tls { host: String, reason: String },
    #[error("{host} answered with more than {limit} bytes")]
    TooLarge { host: String, limit: usize },
    /// The connection broke or the answer was not HTTP.
    #[error("{host}: {reason}")]
    Protocol { host: String, reason: String },
}

impl HttpError {
    /// Whether the request may have reached the server: not for a bad URL or header.
    pub fn is_transport(&self) -> bool {
        !matches!(self, HttpError::BadUrl(_) | HttpError::BadHeader(_))
    }
}

/// A URL keyward may send a request to: `https://`, or `http://` to a loopback address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    uri: Uri,
    /// `host` or `host:port`, as the Host header and error messages show it.
    authority: String,
}

impl Target {
    pub fn parse(url: &str) -> Result<Target, HttpError> {
        let uri: Uri = url
            .parse()
            .map_err(|_| HttpError::BadUrl("not a URL".into()))?;
        let authority = uri
            .authority()
            .ok_or_else(|| HttpError::BadUrl("no host".into()))?;
        if authority.as_str().contains('@') {
            return Err(HttpError::BadUrl(
                "user info in a URL is not allowed".into(),
            ));
        }
        let host = authority.host();
        if host.is_empty() {
            return Err(HttpError::BadUrl("no host".into()));
        }
        match uri.scheme_str() {
            Some("https") => {}
            Some("http") if is_loopback(host) => {}
            Some("http") => {
                return Err(HttpError::BadUrl(format!(
                    "plain http is allowed only to a loopback address, not to {host}: use https"
                )))
            }
            _ => return Err(HttpError::BadUrl("the scheme must be https".into())),
        }
        let secure = uri.scheme_str() == Some("https");
        let authority = match authority.port_u16() {
            Some(443) if secure => host.to_owned(),
            Some(80) if !secure => host.to_owned(),
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        Ok(Target { uri, authority })
    }

    /// `host` or `host:port` (default ports left out): what SigV4 signs as `host`.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// The host without a port.
    pub fn host(&self) -> &str {
        self.uri.host().unwrap_or_default()
    }

    /// The path and query, `/` when empty.
    pub fn path_and_query(&self) -> &str {
        self.uri.path_and_query().map_or("/", |p| p.as_str())
    }

    /// The whole URL as parsed.
    pub fn url(&self) -> String {
        self.uri.to_string()
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.uri.fmt(f)
    }
}

/// A literal loopback IP address (`[::1]` with brackets too); no name is trusted to be one.
fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The rustls configuration, built once: loading the system's roots costs milliseconds.
fn tls_config() -> Result<Arc<rustls::ClientConfig>, HttpError> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .with_native_roots()
                .map_err(|e| format!("no usable root certificates: {e}"))?
                .with_no_client_auth();
            Ok(Arc::new(config))
        })
        .clone()
        .map_err(|reason| HttpError::Tls {
            host: "(any)".into(),
            reason,
        })
}

/// A client that keeps connections for reuse. Keep one per task or runtime: pooled connections
/// belong to the tokio runtime that opened them.
#[derive(Clone)]
pub struct Client {
    inner: hyper_util::client::legacy::Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl Client {
    pub fn new() -> Result<Client, HttpError> {
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config((*tls_config()?).clone())
            .https_or_http()
            .enable_http1()
            .build();
        let inner = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Ok(Client { inner })
    }

    /// POSTs `body` to `url` with `headers` (any `host` among them is ignored: the URL decides
    /// it) and reads an answer of at most `max_response_bytes`, all within `timeout`.
    pub async fn post(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        timeout: Duration,
        max_response_bytes: usize,
    ) -> Result<Response, HttpError> {
        let target = Target::parse(url)?;
        self.send(
            Method::POST,
            &target,
            headers,
            body,
            timeout,
            max_response_bytes,
        )
        .await
    }

    /// Like [`Client::post`], with a URL already checked.
    pub async fn send(
        &self,
        method: Method,
        target: &Target,
        headers: &[(&str, &str)],
        body: &[u8],
        timeout: Duration,
        max_response_bytes: usize,
    ) -> Result<Response, HttpError> {
        let mut request = Request::builder()
            .method(method)
            .uri(target.uri.clone())
            .body(Full::new(Bytes::copy_from_slice(body)))
            .map_err(|_| HttpError::BadUrl("not a URL".into()))?;
        let map = request.headers_mut();
        for (name, value) in headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| HttpError::BadHeader(crate::iam::printable(name)))?;
            if name == HOST {
                continue;
            }
            let value = HeaderValue::from_str(value)
                .map_err(|_| HttpError::BadHeader(name.as_str().to_owned()))?;
            map.append(name, value);
        }
        let host = target.authority.clone();
        let exchange = async {
            let answer = self
                .inner
                .request(request)
                .await
                .map_err(|e| request_error(&host, &e))?;
            let (parts, incoming) = answer.into_parts();
            let declared = parts
                .headers
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if declared.is_some_and(|n| n > max_response_bytes as u64) {
                return Err(HttpError::TooLarge {
                    host: host.clone(),
                    limit: max_response_bytes,
                });
            }
            let body = Limited::new(incoming, max_response_bytes)
                .collect()
                .await
                .map_err(|e| {
                    if e.is::<http_body_util::LengthLimitError>() {
                        HttpError::TooLarge {
                            host: host.clone(),
                            limit: max_response_bytes,
                        }
                    } else {
                        HttpError::Protocol {
                            host: host.clone(),
                            reason: reason(e.as_ref()),
                        }
                    }
                })?
                .to_bytes();
            Ok(Response {
                status: parts.status.as_u16(),
                headers: parts.headers,
                body: body.to_vec(),
            })
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| HttpError::Timeout {
                host: host.clone(),
                timeout,
            })?
    }
}

/// One request with a fresh client (no connection reuse): see [`Client::post`].
pub async fn post(
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
    max_response_bytes: usize,
) -> Result<Response, HttpError> {
    Client::new()?
        .post(url, headers, body, timeout, max_response_bytes)
        .await
}

fn request_error(host: &str, err: &hyper_util::client::legacy::Error) -> HttpError {
    let host = host.to_owned();
    let reason = reason(err);
    if tls_failure(err) {
        HttpError::Tls { host, reason }
    } else if err.is_connect() {
        HttpError::Connect { host, reason }
    } else {
        HttpError::Protocol { host, reason }
    }
}

/// Whether a rustls error is anywhere in the chain. hyper-rustls wraps tokio-rustls's io::Error
/// (which wraps the rustls error) in another io::Error, and io::Error's `source` skips the error
/// it wraps, so wrapped errors are followed with `get_ref` too.
fn tls_failure(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut pending: Vec<&(dyn std::error::Error + 'static)> = vec![err];
    // Bounded: a chain is a handful of errors; the bound only guards against a cycle.
    for _ in 0..32 {
        let Some(e) = pending.pop() else {
            return false;
        };
        if e.is::<rustls::Error>() {
            return true;
        }
        if let Some(inner) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            pending.push(inner);
        }
        if let Some(source) = e.source() {
            pending.push(source);
        }
    }
    false
}

/// The error's causes, printable (no control characters) and bounded. Transport errors name
/// no URL, only what failed ("Connection refused", "invalid peer certificate: …").
fn reason(err: &(dyn std::error::Error + 'static)) -> String {
    crate::iam::printable(&crate::iam::cause_chain(err))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
pub(crate) mod testing;
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests;
