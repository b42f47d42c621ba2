//! Checking a user certificate before a laptop uses it (and a host certificate before a host
//! serves it), and deciding whether the one already next to a key can be used again.
//!
//! The issuer is reached over the network, and a certificate file on disk may be stale or
//! planted, so a certificate is used (written next to the key, given to ssh or the agent) only
//! once [`check_user_cert`] accepted it: it decodes canonically, it is a USER certificate, it
//! certifies exactly the caller's public key, it is valid now, it names at least one principal,
//! and its signature verifies against the CA public key the laptop was configured with (not the
//! key the certificate carries). [`check_host_cert`] checks a host certificate the same way,
//! as a HOST certificate, before `keyward host-cert` writes it.
//!
//! Invariants:
//! - Pure: bytes, keys and a `now` in, a verdict out; no file, clock or network here.
//! - Nothing from the certificate is echoed in an error except fingerprints and times computed
//!   here; what a caller writes to disk is [`CheckedCert::to_line`], rebuilt from the checked
//!   bytes (type name and base64, never the issuer's comment).
//! - Only ECDSA P-256 and P-384 CA keys are accepted (keyward's CA is a KMS key of one of those
//!   curves); the shipped binary carries no RSA code.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ssh_key::certificate::CertType;
use ssh_key::{Certificate, HashAlg};

use super::{KeyType, PublicKey};

/// How far ahead of its `valid_after` a laptop's clock may be behind the issuer's and the
/// certificate still count as valid. The issuer back-dates `valid_after` itself; this only
/// absorbs a laptop clock that is a little slow. Expiry gets no allowance.
pub const CLOCK_SKEW_SECS: u64 = 60;
/// A certificate next to the key is used again only while it has more than this left: a login
/// (and the commands run over it) should not start with a certificate about to expire, and
/// renewing costs one request.
pub const REUSE_MIN_REMAINING_SECS: u64 = 5 * 60;
/// Far above any certificate keyward's issuer signs (its signed part is at most 4096 bytes).
const MAX_LINE_LEN: usize = 16 * 1024;

/// Why a certificate is not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertCheckError {
    #[error("the certificate does not decode as an OpenSSH certificate")]
    Malformed,
    #[error("the configured CA key must be ECDSA P-256 or P-384, not {}", .0.name())]
    UnsupportedCa(KeyType),
    #[error("it is a host certificate, not a user certificate")]
    NotUser,
    #[error("it is a user certificate, not a host certificate")]
    NotHost,
    #[error("it certifies another key ({found}), not {expected}")]
    OtherKey { expected: String, found: String },
    #[error("it names no principal")]
    NoPrincipal,
    #[error("it is not valid before {} (this computer's clock says {})", time(*.valid_after), time(*.now))]
    NotYetValid { valid_after: u64, now: u64 },
    #[error("it expired at {}", time(*.valid_before))]
    Expired { valid_before: u64 },
    #[error("it is signed by another CA ({found}), not the configured one ({expected})")]
    OtherCa { expected: String, found: String },
    #[error("its signature does not verify against the configured CA key")]
    BadSignature,
}

fn time(secs: u64) -> humantime::Rfc3339Timestamp {
    humantime::format_rfc3339_seconds(crate::clock::from_unix_secs(secs))
}

/// A certificate that passed [`check_user_cert`] or [`check_host_cert`].
#[derive(Debug, Clone)]
pub struct CheckedCert {
    bytes: Vec<u8>,
    decoded: Certificate,
}

impl CheckedCert {
    /// The line for `<key>-cert.pub` (`TYPE BASE64`), without a trailing newline.
    pub fn to_line(&self) -> String {
        format!(
            "{} {}",
            self.decoded.algorithm().to_certificate_type(),
            STANDARD.encode(&self.bytes)
        )
    }

    pub fn key_id(&self) -> &str {
        self.decoded.key_id()
    }

    pub fn principals(&self) -> &[String] {
        self.decoded.valid_principals()
    }

    pub fn serial(&self) -> u64 {
        self.decoded.serial()
    }

    pub fn valid_after(&self) -> u64 {
        self.decoded.valid_after()
    }

    pub fn valid_before(&self) -> u64 {
        self.decoded.valid_before()
    }

    /// Whole seconds from `now` until the certificate expires (0 once it has).
    pub fn seconds_left(&self, now: u64) -> u64 {
        self.valid_before().saturating_sub(now)
    }
}

/// Checks a certificate line (`TYPE BASE64 [COMMENT]`, as the issuer returns it or as
/// `<key>-cert.pub` holds it) for `subject`, against the configured CA key `ca`, at `now`
/// (seconds since the epoch).
pub fn check_user_cert(
    line: &str,
    subject: &PublicKey,
    ca: &PublicKey,
    now: u64,
) -> Result<CheckedCert, CertCheckError> {
    check_cert(line, subject, ca, now, CertType::User)
}

/// The same checks for a HOST certificate, before `keyward host-cert` writes it next to the
/// host key (`subject`) for sshd to serve.
pub fn check_host_cert(
    line: &str,
    subject: &PublicKey,
    ca: &PublicKey,
    now: u64,
) -> Result<CheckedCert, CertCheckError> {
    check_cert(line, subject, ca, now, CertType::Host)
}

fn check_cert(
    line: &str,
    subject: &PublicKey,
    ca: &PublicKey,
    now: u64,
    cert_type: CertType,
) -> Result<CheckedCert, CertCheckError> {
    if !matches!(ca.key_type(), KeyType::EcdsaP256 | KeyType::EcdsaP384) {
        return Err(CertCheckError::UnsupportedCa(ca.key_type()));
    }
    let (bytes, decoded) = decode(line)?;
    if decoded.cert_type() != cert_type {
        return Err(match cert_type {
            CertType::User => CertCheckError::NotUser,
            CertType::Host => CertCheckError::NotHost,
        });
    }
    if decoded.public_key() != subject.key_data() {
        return Err(CertCheckError::OtherKey {
            expected: subject.fingerprint(),
            found: decoded
                .public_key()
                .fingerprint(HashAlg::Sha256)
                .to_string(),
        });
    }
    if decoded.valid_principals().is_empty() {
        return Err(CertCheckError::NoPrincipal);
    }
    if decoded.signature_key() != ca.key_data() {
        return Err(CertCheckError::OtherCa {
            expected: ca.fingerprint(),
            found: decoded
                .signature_key()
                .fingerprint(HashAlg::Sha256)
                .to_string(),
        });
    }
    let (valid_after, valid_before) = (decoded.valid_after(), decoded.valid_before());
    if now >= valid_before {
        return Err(CertCheckError::Expired { valid_before });
    }
    if now.saturating_add(CLOCK_SKEW_SECS) < valid_after {
        return Err(CertCheckError::NotYetValid { valid_after, now });
    }
    // The window is checked above (with the allowance); `validate_at` verifies the signature
    // and that the signer is the configured CA, at an instant inside the window.
    let instant = now.max(valid_after);
    let ca_fingerprint = ca.key_data().fingerprint(HashAlg::Sha256);
    decoded
        .validate_at(instant, [&ca_fingerprint])
        .map_err(|_| CertCheckError::BadSignature)?;
    Ok(CheckedCert { bytes, decoded })
}

/// The certificate's bytes and their decoding, only if re-encoding the decoded certificate
/// gives the same bytes: what the signature was checked over is then what is written and used.
fn decode(line: &str) -> Result<(Vec<u8>, Certificate), CertCheckError> {
    if line.len() > MAX_LINE_LEN {
        return Err(CertCheckError::Malformed);
    }
    let mut fields = line.split_ascii_whitespace();
    let (Some(type_name), Some(base64)) = (fields.next(), fields.next()) else {
        return Err(CertCheckError::Malformed);
    };
    let bytes = STANDARD
        .decode(base64)
        .map_err(|_| CertCheckError::Malformed)?;
    let decoded = Certificate::from_bytes(&bytes).map_err(|_| CertCheckError::Malformed)?;
    let canonical = decoded.to_bytes().map_err(|_| CertCheckError::Malformed)?;
    if canonical != bytes || decoded.algorithm().to_certificate_type() != type_name {
        return Err(CertCheckError::Malformed);
    }
    Ok((bytes, decoded))
}

/// What to do with the certificate found next to the key (if any) before a login.
#[derive(Debug, Clone)]
pub enum Reuse {
    /// Valid, for this key, from this CA, with more than [`REUSE_MIN_REMAINING_SECS`] left.
    Use(Box<CheckedCert>),
    /// Get a new one, for this reason.
    Renew(RenewReason),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RenewReason {
    /// No certificate file next to the key.
    Missing,
    /// The file holds a certificate that fails [`check_user_cert`] (or is unreadable text).
    Unusable(CertCheckError),
    /// Valid, but with only this many seconds left.
    ExpiresSoon { seconds_left: u64 },
}

impl std::fmt::Display for RenewReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RenewReason::Missing => write!(f, "there is no certificate yet"),
            RenewReason::Unusable(err) => write!(f, "the certificate there is not usable: {err}"),
            RenewReason::ExpiresSoon { seconds_left } => {
                write!(f, "the certificate there expires in {seconds_left} s")
            }
        }
    }
}

/// Whether the certificate next to the key (`existing`: the file's text, `None` when there is
/// no file) can be used for a login starting at `now`.
pub fn reuse_decision(
    existing: Option<&str>,
    subject: &PublicKey,
    ca: &PublicKey,
    now: u64,
) -> Reuse {
    let Some(line) = existing else {
        return Reuse::Renew(RenewReason::Missing);
    };
    match check_user_cert(line, subject, ca, now) {
        Err(err) => Reuse::Renew(RenewReason::Unusable(err)),
        Ok(cert) if cert.seconds_left(now) <= REUSE_MIN_REMAINING_SECS => {
            Reuse::Renew(RenewReason::ExpiresSoon {
                seconds_left: cert.seconds_left(now),
            })
        }
        Ok(cert) => Reuse::Use(Box::new(cert)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests;
