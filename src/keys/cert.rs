//! OpenSSH user and host certificates, built here and signed elsewhere.
//!
//! keyward's CA key lives in KMS and is used through an asynchronous `Sign` call, so this module
//! never holds a private key and never signs. [`build_user_cert`] and [`build_host_cert`] encode
//! the certificate's
//! to-be-signed bytes ([`UnsignedCertificate::tbs`]: every field of the certificate up to and
//! including the CA's public key, in OpenSSH's PROTOCOL.certkeys order); the caller has exactly
//! those bytes signed (KMS `Sign`, MessageType RAW, [`UnsignedCertificate::signing_algorithm`]),
//! and [`UnsignedCertificate::assemble`] appends the signature to the same bytes. Nothing is
//! re-encoded between signing and assembling, so what was signed is what is served.
//!
//! Invariants:
//! - **What is signed** is a certificate for a key that passed [`PublicKey::parse`], with the
//!   CA's ECDSA P-256 or P-384 key as signature key (no RSA CA), and either
//!   - a user certificate (type 1): key id `keyward:<iam user>:<UserId>:<serial>`, OpenSSH's
//!     default extensions ([`DEFAULT_EXTENSIONS`]), an optional `source-address` as the only
//!     critical option; or
//!   - a host certificate (type 2): key id `keyward-host:<instance id>:<serial>`, no critical
//!     options, no extensions (OpenSSH defines none for hosts), principals the host names the
//!     issuer verified with EC2, valid at most [`MAX_HOST_VALIDITY_SECS`].
//! - **Caps**: the to-be-signed bytes are at most [`MAX_TBS_LEN`] (4096, what real KMS accepts
//!   as a RAW message), RSA user keys at most [`MAX_RSA_SUBJECT_BITS`] (8192), the validity
//!   window at most [`MAX_VALIDITY_SECS`] for a user and [`MAX_HOST_VALIDITY_SECS`] for a host,
//!   principals at most [`MAX_PRINCIPALS`].
//! - **Never from the client**: principals (the issuer's name mapping decides them), the key id
//!   (built here from the IAM user name and UserId the issuer verified), extensions, critical
//!   options other than the issuer's own `source-address`, serial, nonce and validity. The
//!   client supplies only the public key, and that goes through keyward's key parser. Every
//!   string that enters a certificate is checked against a small alphabet here, because sshd
//!   logs principals and key ids and matches principals against account names.
//! - [`UnsignedCertificate::assemble`] checks the certificate's structure by decoding it with
//!   the `ssh-key` crate; it does not verify the signature (keyward carries no curve arithmetic
//!   in production). Whoever hands a certificate out or uses it checks the signature against the
//!   CA's public key.
//! - On the host, a certificate from the issuer is written only after
//!   [`cert_check::check_host_cert`](super::cert_check::check_host_cert) found it to be a host
//!   certificate for the host's own key, valid now, whose signature verifies against the
//!   configured CA key.

use std::collections::BTreeMap;
use std::net::IpAddr;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ssh_encoding::Encode as _;
use ssh_key::certificate::OptionsMap;
use ssh_key::{Algorithm, EcdsaCurve, Mpint, Signature};

use super::cert_check::{check_host_cert, CheckedCert};
use super::{KeyType, PublicKey};

/// Real KMS refuses a RAW message over 4096 bytes; moto does not, so the cap is keyward's.
pub const MAX_TBS_LEN: usize = 4096;
/// An 8192-bit RSA key is the largest whose certificate stays well inside [`MAX_TBS_LEN`].
pub const MAX_RSA_SUBJECT_BITS: u32 = 8192;
/// The longest validity window a user certificate may have. The issuer's own maximum (and its
/// default of about an hour) sit below this; this is the ceiling nothing can raise.
pub const MAX_VALIDITY_SECS: u64 = 24 * 60 * 60;
/// The longest validity window a host certificate may have: 90 days. A host renews at boot and
/// whenever `keyward host-cert` runs with a third of the life left, so a lost host's certificate
/// outlives it by at most this (hosts are not revoked; see docs/certificates.md).
pub const MAX_HOST_VALIDITY_SECS: u64 = 90 * 24 * 60 * 60;
/// A host certificate's lifetime unless the request asks for less: 30 days.
pub const DEFAULT_HOST_VALIDITY_SECS: u64 = 30 * 24 * 60 * 60;
pub const MAX_PRINCIPALS: usize = 32;
/// Long enough for a DNS name; Linux user names are far shorter.
const MAX_PRINCIPAL_LEN: usize = 253;
/// IAM's own limit on user names (UserIds: `ownership::is_plausible_user_id`).
const MAX_IAM_USER_LEN: usize = 64;
const MAX_SOURCE_ADDRESSES: usize = 16;
pub const NONCE_LEN: usize = 32;
/// PROTOCOL.certkeys: SSH_CERT_TYPE_USER.
const SSH_CERT_TYPE_USER: u32 = 1;
/// PROTOCOL.certkeys: SSH_CERT_TYPE_HOST.
const SSH_CERT_TYPE_HOST: u32 = 2;

/// What `ssh-keygen -s` grants a user certificate unless told otherwise, in the lexical order
/// OpenSSH writes them.
pub const DEFAULT_EXTENSIONS: [&str; 5] = [
    "permit-X11-forwarding",
    "permit-agent-forwarding",
    "permit-port-forwarding",
    "permit-pty",
    "permit-user-rc",
];

/// Why a certificate was not built. None of these echo the offending value: they name the field.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CertError {
    #[error("the CA key must be ECDSA P-256 or P-384, not {}", .0.name())]
    UnsupportedCaKey(KeyType),
    #[error(
        "the RSA key has {bits} bits; certificates are issued for RSA keys of at most 8192 bits \
         (use an ed25519 key: `ssh-keygen -t ed25519`)"
    )]
    RsaKeyTooLarge { bits: u32 },
    #[error(
        "the certificate's signed part would be {len} bytes, over the 4096 a KMS signature takes"
    )]
    TooLarge { len: usize },
    #[error("a certificate needs at least one principal and at most 32")]
    PrincipalCount,
    #[error("a principal must be 1 to 253 characters of letters, digits and . _ - @ :")]
    InvalidPrincipal,
    #[error("the IAM user name must be 1 to 64 characters of letters, digits and + = , . @ _ -")]
    InvalidIamUser,
    #[error("the IAM UserId must be 1 to 128 letters, digits and _")]
    InvalidUserId,
    #[error("the validity window must start before it ends and last at most 24 hours")]
    InvalidValidity,
    #[error(
        "a host certificate's validity window must start before it ends and last at most 90 days"
    )]
    InvalidHostValidity,
    #[error("the instance id must be i- followed by 8 or 17 lower-case hex digits")]
    InvalidInstanceId,
    #[error(
        "a known_hosts line needs 1 to 32 host patterns of letters, digits and . - _ : * ? [ ]"
    )]
    InvalidHostPattern,
    #[error("source-address must list 1 to 16 IP addresses or CIDR ranges")]
    InvalidSourceAddress,
    #[error("the certificate nonce must be 32 random bytes")]
    InvalidNonce,
    #[error("the signature is not a valid ECDSA signature for the CA's curve")]
    InvalidSignature,
    #[error("the assembled certificate does not decode: {0}")]
    Malformed(String),
}

/// The IAM identity a certificate is issued to, as the issuer verified it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IamIdentity {
    pub user_name: String,
    /// IAM's unique id (`AIDA…`): a re-created user with the same name gets a new one.
    pub user_id: String,
}

/// Everything a user certificate says. Built by the issuer, never from client input beyond
/// `subject`.
#[derive(Debug, Clone)]
pub struct UserCertRequest<'a> {
    /// The key being certified, already through [`PublicKey::parse`].
    pub subject: &'a PublicKey,
    pub identity: IamIdentity,
    pub serial: u64,
    /// Linux account names (the issuer's name mapping), matched by sshd.
    pub principals: Vec<String>,
    /// Seconds since the Unix epoch; the certificate is valid in `[valid_after, valid_before)`.
    pub valid_after: u64,
    pub valid_before: u64,
    /// IP addresses or CIDR ranges for the `source-address` critical option; empty for none.
    pub source_addresses: Vec<String>,
    /// From a CSPRNG; makes each certificate's signed bytes unpredictable to the requester.
    pub nonce: [u8; NONCE_LEN],
}

/// Everything a host certificate says. Built by the issuer from what EC2 said about the
/// instance, never from client input beyond `subject`.
#[derive(Debug, Clone)]
pub struct HostCertRequest<'a> {
    /// The host key being certified, already through [`PublicKey::parse`].
    pub subject: &'a PublicKey,
    /// The EC2 instance id the issuer verified (`i-…`); goes into the key id.
    pub instance_id: String,
    pub serial: u64,
    /// The names clients connect to: instance id, IP addresses, DNS names.
    pub principals: Vec<String>,
    /// Seconds since the Unix epoch; the certificate is valid in `[valid_after, valid_before)`.
    pub valid_after: u64,
    pub valid_before: u64,
    /// From a CSPRNG.
    pub nonce: [u8; NONCE_LEN],
}

/// The signature algorithm to ask KMS for, fixed by the CA key's curve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningAlgorithm {
    /// KMS `ECDSA_SHA_256`, SSH `ecdsa-sha2-nistp256`.
    EcdsaSha256,
    /// KMS `ECDSA_SHA_384`, SSH `ecdsa-sha2-nistp384`.
    EcdsaSha384,
}

impl SigningAlgorithm {
    fn curve(self) -> EcdsaCurve {
        match self {
            SigningAlgorithm::EcdsaSha256 => EcdsaCurve::NistP256,
            SigningAlgorithm::EcdsaSha384 => EcdsaCurve::NistP384,
        }
    }
}

/// A certificate waiting for its signature: the exact bytes to sign, and how to sign them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsignedCertificate {
    tbs: Vec<u8>,
    algorithm: SigningAlgorithm,
    cert_type_name: String,
}

/// A signed certificate that decodes as OpenSSH's format.
#[derive(Debug, Clone)]
pub struct Certificate {
    bytes: Vec<u8>,
    cert_type_name: String,
    decoded: ssh_key::Certificate,
}

/// Builds the to-be-signed part of a user certificate for `request.subject`, to be signed by
/// the CA whose public key is `ca`.
pub fn build_user_cert(
    request: &UserCertRequest<'_>,
    ca: &PublicKey,
) -> Result<UnsignedCertificate, CertError> {
    if !window_ok(request.valid_after, request.valid_before, MAX_VALIDITY_SECS) {
        return Err(CertError::InvalidValidity);
    }
    let key_id = key_id(&request.identity, request.serial)?;
    let mut critical_options = BTreeMap::new();
    if !request.source_addresses.is_empty() {
        critical_options.insert(
            "source-address".to_owned(),
            source_address(&request.source_addresses)?,
        );
    }
    let extensions: BTreeMap<String, String> = DEFAULT_EXTENSIONS
        .iter()
        .map(|name| ((*name).to_owned(), String::new()))
        .collect();
    build(
        &Fields {
            subject: request.subject,
            nonce: &request.nonce,
            serial: request.serial,
            cert_type: SSH_CERT_TYPE_USER,
            key_id,
            principals: &request.principals,
            valid_after: request.valid_after,
            valid_before: request.valid_before,
            critical_options,
            extensions,
        },
        ca,
    )
}

/// Builds the to-be-signed part of a host certificate for `request.subject`, to be signed by
/// the CA whose public key is `ca`.
pub fn build_host_cert(
    request: &HostCertRequest<'_>,
    ca: &PublicKey,
) -> Result<UnsignedCertificate, CertError> {
    if !window_ok(
        request.valid_after,
        request.valid_before,
        MAX_HOST_VALIDITY_SECS,
    ) {
        return Err(CertError::InvalidHostValidity);
    }
    if !crate::ec2::is_instance_id(&request.instance_id) {
        return Err(CertError::InvalidInstanceId);
    }
    build(
        &Fields {
            subject: request.subject,
            nonce: &request.nonce,
            serial: request.serial,
            cert_type: SSH_CERT_TYPE_HOST,
            key_id: format!("keyward-host:{}:{}", request.instance_id, request.serial),
            principals: &request.principals,
            valid_after: request.valid_after,
            valid_before: request.valid_before,
            critical_options: BTreeMap::new(),
            extensions: BTreeMap::new(),
        },
        ca,
    )
}

fn window_ok(valid_after: u64, valid_before: u64, max: u64) -> bool {
    valid_before
        .checked_sub(valid_after)
        .is_some_and(|secs| secs > 0 && secs <= max)
}

/// The fields of either kind of certificate, checked by its builder.
struct Fields<'a> {
    subject: &'a PublicKey,
    nonce: &'a [u8; NONCE_LEN],
    serial: u64,
    cert_type: u32,
    key_id: String,
    principals: &'a Vec<String>,
    valid_after: u64,
    valid_before: u64,
    critical_options: BTreeMap<String, String>,
    extensions: BTreeMap<String, String>,
}

/// The checks every certificate passes, and its encoding in PROTOCOL.certkeys order.
fn build(fields: &Fields<'_>, ca: &PublicKey) -> Result<UnsignedCertificate, CertError> {
    let algorithm = match ca.key_type() {
        KeyType::EcdsaP256 => SigningAlgorithm::EcdsaSha256,
        KeyType::EcdsaP384 => SigningAlgorithm::EcdsaSha384,
        other => return Err(CertError::UnsupportedCaKey(other)),
    };
    if let Some(bits) = fields.subject.rsa_bits() {
        if bits > MAX_RSA_SUBJECT_BITS {
            return Err(CertError::RsaKeyTooLarge { bits });
        }
    }
    if fields.nonce.iter().all(|byte| *byte == 0) {
        return Err(CertError::InvalidNonce);
    }
    if fields.principals.is_empty() || fields.principals.len() > MAX_PRINCIPALS {
        return Err(CertError::PrincipalCount);
    }
    if !fields.principals.iter().all(|p| is_valid_principal(p)) {
        return Err(CertError::InvalidPrincipal);
    }

    let cert_type_name = fields.subject.key_data().algorithm().to_certificate_type();
    // The key's own fields follow its type name in its wire blob.
    let name_len = 4 + fields.subject.key_type().name().len();
    let key_fields = fields
        .subject
        .blob()
        .get(name_len..)
        .ok_or_else(|| CertError::Malformed("subject key".to_owned()))?;

    let mut tbs = Vec::new();
    let encoded = (|| -> ssh_encoding::Result<()> {
        cert_type_name.as_str().encode(&mut tbs)?;
        fields.nonce[..].encode(&mut tbs)?;
        tbs.extend_from_slice(key_fields);
        fields.serial.encode(&mut tbs)?;
        fields.cert_type.encode(&mut tbs)?;
        fields.key_id.as_str().encode(&mut tbs)?;
        fields.principals.encode(&mut tbs)?;
        fields.valid_after.encode(&mut tbs)?;
        fields.valid_before.encode(&mut tbs)?;
        OptionsMap::from(fields.critical_options.clone()).encode(&mut tbs)?;
        OptionsMap::from(fields.extensions.clone()).encode(&mut tbs)?;
        // Reserved, always empty.
        b""[..].encode(&mut tbs)?;
        ca.blob().encode(&mut tbs)
    })();
    encoded.map_err(|err| CertError::Malformed(err.to_string()))?;
    if tbs.len() > MAX_TBS_LEN {
        return Err(CertError::TooLarge { len: tbs.len() });
    }
    Ok(UnsignedCertificate {
        tbs,
        algorithm,
        cert_type_name,
    })
}

impl UnsignedCertificate {
    /// The exact bytes the CA signs (KMS `Sign`, MessageType RAW).
    pub fn tbs(&self) -> &[u8] {
        &self.tbs
    }

    pub fn signing_algorithm(&self) -> SigningAlgorithm {
        self.algorithm
    }

    /// Appends the CA's signature over [`UnsignedCertificate::tbs`], given as the big-endian
    /// ECDSA scalars `r` and `s` (what a DER `ECDSA-Sig-Value` from KMS holds), and checks that
    /// the result decodes as an OpenSSH certificate signed by the CA key it names.
    pub fn assemble(self, r: &[u8], s: &[u8]) -> Result<Certificate, CertError> {
        let mut signature_data = Vec::new();
        for scalar in [r, s] {
            Mpint::from_positive_bytes(scalar)
                .and_then(|mpint| Ok(mpint.encode(&mut signature_data)?))
                .map_err(|_| CertError::InvalidSignature)?;
        }
        let curve = self.algorithm.curve();
        let signature = Signature::new(Algorithm::Ecdsa { curve }, signature_data)
            .map_err(|_| CertError::InvalidSignature)?;
        let mut bytes = self.tbs;
        signature
            .encode_prefixed(&mut bytes)
            .map_err(|_| CertError::InvalidSignature)?;
        let decoded = ssh_key::Certificate::from_bytes(&bytes)
            .map_err(|err| CertError::Malformed(err.to_string()))?;
        if decoded.signature_key().algorithm() != (Algorithm::Ecdsa { curve }) {
            return Err(CertError::Malformed("signature key".to_owned()));
        }
        Ok(Certificate {
            bytes,
            cert_type_name: self.cert_type_name,
            decoded,
        })
    }
}

impl Certificate {
    /// The certificate line for an `id_*-cert.pub` file, without a trailing newline.
    pub fn to_line(&self) -> String {
        format!("{} {}", self.cert_type_name, STANDARD.encode(&self.bytes))
    }

    /// The certificate's wire bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn key_id(&self) -> &str {
        self.decoded.key_id()
    }

    pub fn principals(&self) -> &[String] {
        self.decoded.valid_principals()
    }

    pub fn valid_before(&self) -> u64 {
        self.decoded.valid_before()
    }

    /// The certificate as the `ssh-key` crate decoded it.
    pub fn decoded(&self) -> &ssh_key::Certificate {
        &self.decoded
    }
}

/// Whether a certificate valid at `now` should be replaced: when at most a third of its
/// validity window is left (so a 30-day certificate is renewed after 20 days; a daily
/// `keyward host-cert` then always renews in time).
pub fn renewal_due(cert: &CheckedCert, now: u64) -> bool {
    let life = cert.valid_before().saturating_sub(cert.valid_after());
    let left = cert.valid_before().saturating_sub(now);
    left.saturating_mul(3) <= life
}

/// What to do about the certificate file already next to a host key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostCertState {
    /// It passes [`check_host_cert`] and has more than a third of its life left: keep it.
    Current { valid_before: u64 },
    /// None, unusable or due: ask the issuer for a new one.
    Renew { why: String },
}

/// Whether `keyward host-cert` keeps the certificate file `existing` (its text, `None` when
/// there is none) or asks for a new one; the reason says which, for the log.
pub fn existing_host_cert(
    existing: Option<&str>,
    host_key: &PublicKey,
    ca: &PublicKey,
    now: u64,
) -> HostCertState {
    let Some(text) = existing else {
        return HostCertState::Renew {
            why: "no certificate yet".into(),
        };
    };
    match check_host_cert(text, host_key, ca, now) {
        Ok(cert) if !renewal_due(&cert, now) => HostCertState::Current {
            valid_before: cert.valid_before(),
        },
        Ok(_) => HostCertState::Renew {
            why: "the certificate has a third of its life or less left".into(),
        },
        Err(err) => HostCertState::Renew {
            why: format!("the certificate there is not usable: {err}"),
        },
    }
}

/// The `known_hosts` line that makes `ssh` trust every host certificate `ca` signs for names
/// matching `host_patterns` (`*`, `*.compute.internal`, `10.0.*`). Patterns are checked against
/// a small alphabet (letters, digits, `. - _ : * ? [ ]`), so no pattern can add a second line,
/// a negation (`!`) or another marker.
pub fn known_hosts_line(ca: &PublicKey, host_patterns: &[String]) -> Result<String, CertError> {
    if !matches!(ca.key_type(), KeyType::EcdsaP256 | KeyType::EcdsaP384) {
        return Err(CertError::UnsupportedCaKey(ca.key_type()));
    }
    let pattern_ok = |p: &String| {
        (1..=MAX_PRINCIPAL_LEN).contains(&p.len())
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-_:*?[]".contains(c))
    };
    if host_patterns.is_empty()
        || host_patterns.len() > MAX_PRINCIPALS
        || !host_patterns.iter().all(pattern_ok)
    {
        return Err(CertError::InvalidHostPattern);
    }
    Ok(format!(
        "@cert-authority {} {}",
        host_patterns.join(","),
        ca.to_line()
    ))
}

/// `keyward:<iam user>:<UserId>:<serial>`. IAM names cannot hold `:`, so the parts split back
/// unambiguously.
fn key_id(identity: &IamIdentity, serial: u64) -> Result<String, CertError> {
    let user = &identity.user_name;
    let user_ok = (1..=MAX_IAM_USER_LEN).contains(&user.len())
        && user
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c));
    if !user_ok {
        return Err(CertError::InvalidIamUser);
    }
    // IAM documents UserIds as `[\w]+` (AWS issues `AIDA…`; emulators lower case): the same
    // rule the ownership records use, so every account's UserId can be certified.
    if !crate::accounts::ownership::is_plausible_user_id(&identity.user_id) {
        return Err(CertError::InvalidUserId);
    }
    Ok(format!("keyward:{user}:{}:{serial}", identity.user_id))
}

/// The IAM identity and serial a keyward key id names, or `None` for anything that is not
/// exactly what [`build_user_cert`] writes (`keyward:<iam user>:<UserId>:<serial>`, each part
/// valid, the serial without leading zeros): the parts are rebuilt and must give back `text`.
pub fn parse_key_id(text: &str) -> Option<(IamIdentity, u64)> {
    let rest = text.strip_prefix("keyward:")?;
    let mut parts = rest.split(':');
    let (user_name, user_id, serial) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let serial: u64 = serial.parse().ok()?;
    let identity = IamIdentity {
        user_name: user_name.to_owned(),
        user_id: user_id.to_owned(),
    };
    (key_id(&identity, serial).ok()? == text).then_some((identity, serial))
}

fn is_valid_principal(principal: &str) -> bool {
    (1..=MAX_PRINCIPAL_LEN).contains(&principal.len())
        && principal
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-@:".contains(c))
        && !principal.starts_with('-')
}

/// sshd's `source-address`: a comma-separated list of addresses and CIDR ranges. Each entry is
/// parsed and written back in its canonical form.
fn source_address(entries: &[String]) -> Result<String, CertError> {
    if entries.len() > MAX_SOURCE_ADDRESSES {
        return Err(CertError::InvalidSourceAddress);
    }
    let mut canonical = Vec::with_capacity(entries.len());
    for entry in entries {
        let (address, prefix) = match entry.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (entry.as_str(), None),
        };
        let address: IpAddr = address
            .parse()
            .map_err(|_| CertError::InvalidSourceAddress)?;
        let max_prefix = if address.is_ipv4() { 32 } else { 128 };
        canonical.push(match prefix {
            None => address.to_string(),
            Some(prefix) => {
                let bits: u8 = prefix
                    .parse()
                    .map_err(|_| CertError::InvalidSourceAddress)?;
                if bits > max_prefix || prefix.starts_with('+') || prefix.len() > 3 {
                    return Err(CertError::InvalidSourceAddress);
                }
                format!("{address}/{bits}")
            }
        });
    }
    Ok(canonical.join(","))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests;
