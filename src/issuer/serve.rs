//! `keyward ca serve`: the issuer as a small HTTP/1.1 server (a self-hosted issuer, and the
//! tests' issuer).
//!
//! Hand-written on tokio rather than on hyper's server, which the tree does not build: the
//! issuer answers one kind of request (`POST /v1/certificate` with a small JSON body), one per
//! connection, so the server only has to read a bounded head and a bounded body and write one
//! answer. [`parse_head`] is pure and unit-tested; [`serve`] runs on the current thread
//! (a `LocalSet`), each connection a task of its own.
//!
//! Invariants:
//! - **Bounded**: the head is at most [`MAX_HEAD_BYTES`], the body at most
//!   [`wire::MAX_REQUEST_BYTES`] (refused from its `Content-Length` before it is read), each
//!   read under a timeout, and at most [`Limits::max_connections`] connections at once; chunked
//!   bodies are refused.
//! - **Fair**: one peer holds at most [`Limits::max_connections_per_peer`] of those at once
//!   (an IPv4 address, or an IPv6 /64, which one host can hold whole; see [`Slots`]), so idle
//!   connections from one address cannot take every slot. Extra connections are closed
//!   unanswered. Behind a proxy on the same host every caller is the proxy's address.
//! - **Plain HTTP only on loopback** ([`plain_http_allowed`]): anywhere else the caller must
//!   supply TLS ([`tls_acceptor`]), because a proof is a bearer credential for 15 minutes.
//! - Every answer is JSON and closes the connection.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::handler::{self, Deps, OsRandom};
use super::wire::{self, ErrorResponse};
use super::Sts;
use crate::ca::Kms;
use crate::ec2::Ec2;
use crate::iam::Directory;

/// Request line and headers; an honest client sends a few hundred bytes.
pub const MAX_HEAD_BYTES: usize = 8 * 1024;
const MAX_TARGET_LEN: usize = 2048;

/// Timeouts and the connection caps.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// For the TLS handshake and the request head.
    pub head_timeout: Duration,
    /// For the body, once the head is in.
    pub body_timeout: Duration,
    /// For the handler (STS, IAM, KMS) and writing the answer.
    pub answer_timeout: Duration,
    pub max_connections: usize,
    /// Connections one peer ([`peer_key`]) may hold at once.
    pub max_connections_per_peer: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            head_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            answer_timeout: Duration::from_secs(30),
            max_connections: 256,
            max_connections_per_peer: 16,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(
        "refusing to serve plain HTTP on {0}, which is not a loopback address: proofs are \
         credentials; set tls_certificate and tls_key in the [issuer] table, or listen on \
         127.0.0.1 behind a TLS proxy"
    )]
    PlainOffLoopback(SocketAddr),
    #[error("TLS: {0}")]
    Tls(String),
}

/// Plain HTTP is for loopback only (tests, and a TLS-terminating proxy on the same host).
pub fn plain_http_allowed(addr: &SocketAddr) -> bool {
    addr.ip().is_loopback()
}

/// Refuses plain HTTP off loopback, before anything is bound or asked.
pub fn check_listen(addr: &SocketAddr, tls: bool) -> Result<(), ServeError> {
    if tls || plain_http_allowed(addr) {
        Ok(())
    } else {
        Err(ServeError::PlainOffLoopback(*addr))
    }
}

/// A TLS acceptor from a PEM certificate chain and a PEM private key.
pub fn tls_acceptor(cert_pem: &[u8], key_pem: &[u8]) -> Result<TlsAcceptor, ServeError> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ServeError::Tls(format!("tls_certificate is not PEM certificates: {e}")))?;
    if chain.is_empty() {
        return Err(ServeError::Tls(
            "tls_certificate holds no certificate".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| ServeError::Tls(format!("tls_key is not a PEM private key: {e}")))?;
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| ServeError::Tls(format!("the certificate and key do not go together: {e}")))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// What the server needs from a request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub method: String,
    pub target: String,
    pub content_length: usize,
}

/// A refusal of a request that never reached the handler: HTTP status and message.
type Refusal = (u16, String);

fn refuse(status: u16, message: &str) -> Refusal {
    (status, message.to_owned())
}

/// Parses a request head (everything before the blank line, without it).
pub fn parse_head(head: &[u8]) -> Result<Head, Refusal> {
    let text =
        std::str::from_utf8(head).map_err(|_| refuse(400, "the request head is not UTF-8"))?;
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or("");
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(refuse(400, "malformed request line"));
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(refuse(400, "malformed method"));
    }
    if !target.starts_with('/')
        || target.len() > MAX_TARGET_LEN
        || !target.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(refuse(400, "malformed request target"));
    }
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(refuse(505, "only HTTP/1.1 is spoken here"));
    }
    let mut content_length = None;
    for line in lines {
        if line.starts_with([' ', '\t']) {
            return Err(refuse(400, "folded header lines are not accepted"));
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(refuse(400, "malformed header line"));
        };
        let valid_name = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !valid_name {
            return Err(refuse(400, "malformed header name"));
        }
        let value = value.trim_matches([' ', '\t']);
        if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(refuse(
                501,
                "chunked or encoded bodies are not accepted: send Content-Length",
            ));
        }
        if name.eq_ignore_ascii_case("content-length") {
            let parsed = (!value.is_empty()
                && value.len() <= 10
                && value.bytes().all(|b| b.is_ascii_digit()))
            .then(|| value.parse::<usize>().ok())
            .flatten()
            .ok_or_else(|| refuse(400, "malformed Content-Length"))?;
            if content_length.is_some_and(|seen| seen != parsed) {
                return Err(refuse(400, "conflicting Content-Length headers"));
            }
            content_length = Some(parsed);
        }
    }
    let content_length = match (content_length, method) {
        (Some(len), _) => len,
        (None, "POST") => return Err(refuse(411, "a POST needs a Content-Length")),
        (None, _) => 0,
    };
    if content_length > wire::MAX_REQUEST_BYTES {
        return Err((
            413,
            format!(
                "the request is larger than {} bytes",
                wire::MAX_REQUEST_BYTES
            ),
        ));
    }
    Ok(Head {
        method: method.to_owned(),
        target: target.to_owned(),
        content_length,
    })
}

/// The part of a peer's address the per-peer cap counts: an IPv4 address (IPv4-mapped IPv6
/// included), or the /64 of an IPv6 address (one host is routinely given a whole /64).
pub fn peer_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        v4 => v4,
    }
}

/// Open connections, in all and per peer; pure bookkeeping, no I/O.
#[derive(Debug, Default)]
pub struct Slots {
    open: usize,
    per_peer: HashMap<IpAddr, usize>,
}

impl Slots {
    /// Takes a slot for `peer` if neither cap is reached.
    pub fn take(&mut self, peer: IpAddr, limits: &Limits) -> bool {
        let key = peer_key(peer);
        let held = self.per_peer.get(&key).copied().unwrap_or(0);
        if self.open >= limits.max_connections || held >= limits.max_connections_per_peer {
            return false;
        }
        self.open += 1;
        self.per_peer.insert(key, held + 1);
        true
    }

    /// Gives back a slot [`Slots::take`] gave `peer`.
    pub fn give_back(&mut self, peer: IpAddr) {
        let key = peer_key(peer);
        self.open = self.open.saturating_sub(1);
        if let Some(held) = self.per_peer.get_mut(&key) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                self.per_peer.remove(&key);
            }
        }
    }
}

/// Accepts connections forever, each answered by a task of its own on the current thread.
/// Must run inside a `tokio::task::LocalSet`.
pub async fn serve<S, D, K, E>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    deps: Rc<Deps<S, D, K, E>>,
    limits: Limits,
) where
    S: Sts + 'static,
    D: Directory + 'static,
    K: Kms + 'static,
    E: Ec2 + 'static,
{
    let slots = Rc::new(RefCell::new(Slots::default()));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // EMFILE and friends: give the open connections time to finish.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if !slots.borrow_mut().take(peer.ip(), &limits) {
            tracing::warn!(%peer, "too many connections (in all or from this peer): dropped one");
            drop(stream);
            continue;
        }
        let (deps, tls, slots) = (Rc::clone(&deps), tls.clone(), Rc::clone(&slots));
        tokio::task::spawn_local(async move {
            match tls {
                None => connection(stream, &deps, limits).await,
                Some(acceptor) => {
                    match tokio::time::timeout(limits.head_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => connection(stream, &deps, limits).await,
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
            slots.borrow_mut().give_back(peer.ip());
        });
    }
}

/// Reads one request, answers it, closes.
async fn connection<IO, S, D, K, E>(mut io: IO, deps: &Deps<S, D, K, E>, limits: Limits)
where
    IO: AsyncRead + AsyncWrite + Unpin,
    S: Sts,
    D: Directory,
    K: Kms,
    E: Ec2,
{
    let (status, json) = match read_request(&mut io, limits).await {
        Ok((head, body)) => {
            let now = crate::clock::unix_secs(SystemTime::now());
            let mut rng = OsRandom;
            let answer =
                handler::handle_http(deps, &head.method, &head.target, &body, now, &mut rng);
            match tokio::time::timeout(limits.answer_timeout, answer).await {
                Ok(answer) => answer,
                Err(_) => error_json(503, "unavailable: the issuer timed out".into()),
            }
        }
        Err(None) => return,
        Err(Some((status, message))) => error_json(status, message),
    };
    let response = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n{json}",
        reason(status),
        json.len()
    );
    let write = async {
        io.write_all(response.as_bytes()).await?;
        io.shutdown().await
    };
    if let Ok(Err(e)) | Err(e) = tokio::time::timeout(limits.answer_timeout, write)
        .await
        .map_err(std::io::Error::from)
    {
        tracing::debug!(error = %e, "could not write the answer");
    }
}

fn error_json(status: u16, error: String) -> (u16, String) {
    let json = serde_json::to_string(&ErrorResponse { error })
        .unwrap_or_else(|_| r#"{"error":"bad request"}"#.into());
    (status, json)
}

/// The head and body of one request; `Err(None)` when the peer went away before sending
/// anything worth an answer.
async fn read_request<IO: AsyncRead + Unpin>(
    io: &mut IO,
    limits: Limits,
) -> Result<(Head, Vec<u8>), Option<Refusal>> {
    let mut buf = Vec::with_capacity(1024);
    let head_end = tokio::time::timeout(limits.head_timeout, async {
        let mut chunk = [0u8; 1024];
        loop {
            if let Some(end) = find_blank_line(&buf) {
                return Ok(end);
            }
            if buf.len() > MAX_HEAD_BYTES {
                return Err(Some(refuse(431, "the request head is too large")));
            }
            match io.read(&mut chunk).await {
                Ok(0) | Err(_) if buf.is_empty() => return Err(None),
                Ok(0) | Err(_) => return Err(Some(refuse(400, "the request ended early"))),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await
    .map_err(|_| Some(refuse(408, "timed out reading the request head")))??;
    if head_end > MAX_HEAD_BYTES {
        return Err(Some(refuse(431, "the request head is too large")));
    }
    let head = parse_head(&buf[..head_end]).map_err(Some)?;
    let mut body = buf.split_off(head_end + 4);
    if body.len() > head.content_length {
        return Err(Some(refuse(400, "more bytes than Content-Length")));
    }
    let already = body.len();
    body.resize(head.content_length, 0);
    tokio::time::timeout(limits.body_timeout, io.read_exact(&mut body[already..]))
        .await
        .map_err(|_| Some(refuse(408, "timed out reading the request body")))?
        .map_err(|_| Some(refuse(400, "the request body ended early")))?;
    Ok((head, body))
}

fn find_blank_line(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n")
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests;
