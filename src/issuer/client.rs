//! What the laptop (`keyward ssh-cert`) and the host (`keyward host-cert`) call to get a
//! certificate: sign a proof bound to the issuer and the key, POST it, read the answer.
//!
//! **Audience**: a proof is bound to one issuer by its audience, which by convention is the
//! issuer's URL normalized by [`audience_for`] (`https://issuer.example.com`: scheme and host
//! lower case, default port left out, no trailing `/`), unless the issuer's config and the
//! caller both set another.
//!
//! Invariants:
//! - The proof is signed for exactly the key sent ([`PublicKey::fingerprint`]) and the
//!   audience given; nothing about the caller is claimed outside it.
//! - The answer is bounded ([`MAX_ANSWER_BYTES`]) and read strictly; the issuer's error text is
//!   shown escaped and cut. A certificate comes back only if it is one OpenSSH certificate line
//!   for the key that was sent. Checking it against the CA's public key is the caller's job
//!   (it has the CA key from its config).
//! - Errors say which exit code they mean: see [`ClientError`].

use std::time::{Duration, SystemTime};

use super::proof::{ProofError, ProofSigner};
use super::wire::{self, CertKind, ErrorResponse, IssueRequest, IssueResponse};
use crate::http::{self, HttpError, Target};
use crate::keys::PublicKey;
use crate::sigv4::SignError;

/// A certificate answer is a few KB (an RSA 8192 key's certificate ~3 KB).
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// What to ask for, beside the proof (which [`request_certificate`] makes).
#[derive(Debug, Clone)]
pub struct CertificateRequest<'a> {
    pub kind: CertKind,
    pub public_key: &'a PublicKey,
    pub validity_secs: Option<u64>,
    pub source_addresses: Vec<String>,
    pub host_scope: Option<String>,
}

/// Why no certificate came back. The variant decides the exit code (`cli::Exit::of_issuer`):
/// `Unavailable` 3, `Credentials` and `Refused` 4, the others 1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The issuer (or STS, IAM, EC2, KMS behind it) could not be reached or answered badly.
    #[error("the issuer is unavailable: {0}")]
    Unavailable(String),
    /// No local AWS credentials, or the issuer did not accept the proof (HTTP 401).
    #[error("not authenticated: {0}")]
    Credentials(String),
    /// The issuer knows who is asking and refused (HTTP 403).
    #[error("the issuer refused: {0}")]
    Refused(String),
    /// The request is wrong: a bad issuer URL or audience, or the issuer said so (HTTP 400).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The issuer failed (HTTP 500 or an unexpected status).
    #[error("issuer error: {0}")]
    Issuer(String),
}

/// The audience convention: the issuer's URL with scheme and host lower case, the default port
/// left out and no trailing `/`.
pub fn audience_for(issuer_url: &str) -> Result<String, ClientError> {
    no_query(issuer_url)?;
    let target = Target::parse(issuer_url).map_err(bad_url)?;
    let url = target.url();
    let scheme = url
        .split("://")
        .next()
        .unwrap_or("https")
        .to_ascii_lowercase();
    let path = target.path_and_query().trim_end_matches('/');
    Ok(format!(
        "{scheme}://{}{path}",
        target.authority().to_ascii_lowercase()
    ))
}

/// `{issuer_url}/v1/certificate`, a trailing `/` of the issuer URL aside. No query or fragment.
pub fn certificate_url(issuer_url: &str) -> Result<String, ClientError> {
    no_query(issuer_url)?;
    Target::parse(issuer_url).map_err(bad_url)?;
    Ok(format!(
        "{}{}",
        issuer_url.trim_end_matches('/'),
        wire::PATH
    ))
}

fn no_query(issuer_url: &str) -> Result<(), ClientError> {
    if issuer_url.contains(['?', '#']) {
        return Err(ClientError::BadRequest(
            "the issuer URL must have no query or fragment".into(),
        ));
    }
    Ok(())
}

fn bad_url(e: HttpError) -> ClientError {
    ClientError::BadRequest(format!("issuer URL: {e}"))
}

/// Signs a proof for `request.public_key` and `audience` with `signer`'s credentials and asks
/// the issuer at `issuer_url`; returns the certificate line.
pub async fn request_certificate(
    issuer_url: &str,
    audience: &str,
    request: &CertificateRequest<'_>,
    signer: &ProofSigner,
    timeout: Duration,
) -> Result<String, ClientError> {
    let url = certificate_url(issuer_url)?;
    let proof = signer
        .sign(
            audience,
            &request.public_key.fingerprint(),
            SystemTime::now(),
        )
        .await
        .map_err(|e| match e {
            ProofError::Aws(SignError::NoCredentials(_)) => ClientError::Credentials(e.to_string()),
            other => ClientError::BadRequest(other.to_string()),
        })?;
    let body = IssueRequest {
        kind: request.kind,
        public_key: request.public_key.to_line(),
        proof,
        validity_secs: request.validity_secs,
        source_addresses: request.source_addresses.clone(),
        host_scope: request.host_scope.clone(),
    };
    let body = serde_json::to_vec(&body).map_err(|e| ClientError::BadRequest(e.to_string()))?;
    let answer = http::post(
        &url,
        &[("content-type", "application/json")],
        &body,
        timeout,
        MAX_ANSWER_BYTES,
    )
    .await
    .map_err(|e| match e {
        HttpError::BadUrl(_) | HttpError::BadHeader(_) => ClientError::BadRequest(e.to_string()),
        other => ClientError::Unavailable(other.to_string()),
    })?;
    read_answer(answer.status, &answer.body, request.public_key)
}

/// The certificate in the issuer's answer, or the error it states.
pub fn read_answer(status: u16, body: &[u8], key: &PublicKey) -> Result<String, ClientError> {
    if status == 200 {
        let answer: IssueResponse = serde_json::from_slice(body).map_err(|e| {
            ClientError::Unavailable(format!("the issuer's answer is not a certificate ({e})"))
        })?;
        return check_certificate(&answer.certificate, key).map_err(ClientError::Unavailable);
    }
    let said = match serde_json::from_slice::<ErrorResponse>(body) {
        Ok(e) => crate::iam::printable(&e.error),
        Err(_) => format!("HTTP {status}"),
    };
    Err(match status {
        400 => ClientError::BadRequest(said),
        401 => ClientError::Credentials(said),
        403 => ClientError::Refused(said),
        429 | 502 | 503 | 504 => ClientError::Unavailable(said),
        _ => ClientError::Issuer(said),
    })
}

/// One OpenSSH certificate line for `key`, returned trimmed.
fn check_certificate(line: &str, key: &PublicKey) -> Result<String, String> {
    let line = line.trim_end_matches(['\r', '\n']);
    if line.contains(['\r', '\n']) {
        return Err("the issuer sent more than one line".into());
    }
    let cert = ssh_key::Certificate::from_openssh(line)
        .map_err(|e| format!("the issuer sent no OpenSSH certificate ({e})"))?;
    if cert.public_key() != key.key_data() {
        return Err("the issuer sent a certificate for another key".into());
    }
    Ok(line.to_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests;
