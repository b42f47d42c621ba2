//! Parsing and validation of OpenSSH public keys.
//!
//! Key text reaches keyward from IAM, from files and from sshd's `%k`, and none of it is trusted:
//! whatever this module accepts ends up in front of sshd and decides who gets a shell. The line
//! itself (one line, no options, no control characters, strict base64) is checked here; the wire
//! blob is decoded by the RustCrypto `ssh-key` crate, and keyward's own policy (allowed types,
//! RSA size floor and cap, canonical integers, uncompressed points, printable security-key
//! applications) is applied to the decoded key. Private keys and authorized_keys options are
//! refused outright, and the only text that survives is `TYPE BASE64` re-encoded from the
//! decoded key plus a scrubbed comment. This module must never echo
//! unvalidated bytes: error messages carry at most a truncated, scrubbed type token, never key
//! data, options or comments, so a hostile key cannot smuggle text into logs or terminals.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ssh_encoding::{Decode as _, Encode as _};
use ssh_key::public::KeyData;
use ssh_key::{EcdsaCurve, HashAlg, Mpint};

/// A 16384-bit RSA key needs about 2 KiB; a blob near this bound can only be hostile.
const MAX_BLOB_LEN: usize = 16 * 1024;
/// Checked before decoding so that a huge token is refused without allocating for it.
const MAX_BASE64_LEN: usize = MAX_BLOB_LEN.div_ceil(3) * 4;
/// keyward's floor for RSA, above OpenSSH's own (SSH_RSA_MINIMUM_MODULUS_SIZE, 1024): 1024-bit
/// RSA has been disallowed for authentication since 2014 (NIST SP 800-131A) and is within
/// reach of a well-funded attacker. `min_rsa_bits` may raise it, never lower it.
const MIN_RSA_BITS: u32 = 2048;
/// OpenSSH's ceiling (SSHBUF_MAX_BIGNUM).
const MAX_RSA_BITS: u32 = 16384;
const MAX_APPLICATION_LEN: usize = 256;
const MAX_COMMENT_CHARS: usize = 128;
const MAX_ECHO_CHARS: usize = 40;
const ED25519_KEY_LEN: usize = 32;

/// The decoded start of an OpenSSH private key, in case one arrives without its armour lines.
const OPENSSH_PRIVATE_MAGIC: &[u8] = b"openssh-key-v1\0";
/// The same magic as it appears in base64 text.
const OPENSSH_PRIVATE_BASE64: &str = "b3BlbnNzaC1rZXktdjE";
const CERTIFICATE_SUFFIX: &str = "-cert-v01@openssh.com";

/// authorized_keys options that take no value; sshd matches them case-insensitively.
const FLAG_OPTIONS: &[&str] = &[
    "agent-forwarding",
    "cert-authority",
    "no-agent-forwarding",
    "no-port-forwarding",
    "no-pty",
    "no-touch-required",
    "no-user-rc",
    "no-x11-forwarding",
    "port-forwarding",
    "pty",
    "restrict",
    "user-rc",
    "verify-required",
    "x11-forwarding",
];

/// The key algorithms keyward lets through to sshd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    Rsa,
    Ed25519,
    EcdsaP256,
    EcdsaP384,
    EcdsaP521,
    SkEd25519,
    SkEcdsaP256,
}

impl KeyType {
    const ALL: [KeyType; 7] = [
        KeyType::Rsa,
        KeyType::Ed25519,
        KeyType::EcdsaP256,
        KeyType::EcdsaP384,
        KeyType::EcdsaP521,
        KeyType::SkEd25519,
        KeyType::SkEcdsaP256,
    ];

    /// The algorithm name as written in key lines and inside the wire blob.
    pub fn name(self) -> &'static str {
        match self {
            KeyType::Rsa => "ssh-rsa",
            KeyType::Ed25519 => "ssh-ed25519",
            KeyType::EcdsaP256 => "ecdsa-sha2-nistp256",
            KeyType::EcdsaP384 => "ecdsa-sha2-nistp384",
            KeyType::EcdsaP521 => "ecdsa-sha2-nistp521",
            KeyType::SkEd25519 => "sk-ssh-ed25519@openssh.com",
            KeyType::SkEcdsaP256 => "sk-ecdsa-sha2-nistp256@openssh.com",
        }
    }

    /// The inverse of [`KeyType::name`]; exact and case-sensitive, as in OpenSSH.
    pub fn from_name(name: &str) -> Option<KeyType> {
        KeyType::ALL
            .into_iter()
            .find(|key_type| key_type.name() == name)
    }

    /// What `ssh-keygen -l` prints in parentheses, so operators can match the two outputs.
    pub fn label(self) -> &'static str {
        match self {
            KeyType::Rsa => "RSA",
            KeyType::Ed25519 => "ED25519",
            KeyType::EcdsaP256 | KeyType::EcdsaP384 | KeyType::EcdsaP521 => "ECDSA",
            KeyType::SkEd25519 => "ED25519-SK",
            KeyType::SkEcdsaP256 => "ECDSA-SK",
        }
    }
}

/// Why a key was refused. Messages are written for the person who uploaded the key.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("the key is empty; paste the single line from your .pub file")]
    Empty,
    #[error(
        "this is a private key: it must never be uploaded or shared; \
         use the public key from the matching .pub file instead"
    )]
    PrivateKey,
    #[error(
        "this is an RFC 4716 (SSH2) public key, not OpenSSH format; \
         convert it with `ssh-keygen -i -f FILE`"
    )]
    Rfc4716Format,
    #[error(
        "this is a PEM public key, not OpenSSH format; \
         convert it with `ssh-keygen -i -m PKCS8 -f FILE`"
    )]
    PemFormat,
    #[error("the key spans more than one line; a public key is exactly one line `TYPE BASE64 [COMMENT]`")]
    MultipleLines,
    #[error(
        "the line holds more than one key (a key type follows the key data); \
         a key body is exactly one `TYPE BASE64 [COMMENT]`: upload each key on its own"
    )]
    SeveralKeys,
    #[error("the key contains a control character (such as a carriage return or NUL) outside the comment")]
    ControlCharacter,
    #[error(
        "the key starts with authorized_keys options (such as command=, from= or no-pty); \
         upload only `TYPE BASE64 [COMMENT]`"
    )]
    Options,
    #[error(
        "unknown key type `{0}`; use ssh-ed25519, ecdsa-sha2-nistp256/384/521, ssh-rsa \
         or a security-key type"
    )]
    UnknownType(String),
    #[error(
        "DSA (ssh-dss) keys are refused because they are weak and disabled in OpenSSH; \
         generate a new key with `ssh-keygen -t ed25519`"
    )]
    DsaKey,
    #[error("SSH certificates are not accepted; upload the plain public key instead")]
    Certificate,
    #[error("the key has a type but no key data; copy the whole line from the .pub file")]
    MissingKeyData,
    #[error("the key data is not valid base64; copy the line from the .pub file unchanged")]
    BadBase64,
    #[error("the key data is larger than 16 KiB, more than any supported key needs")]
    BlobTooLarge,
    #[error(
        "the line says `{}` but the key data is `{found}`; \
         it was edited or pieced together from different keys",
        .declared.name()
    )]
    TypeMismatch { declared: KeyType, found: String },
    #[error("the key data ends too early; it was truncated or corrupted while copying")]
    Truncated,
    #[error("the key data has extra bytes after the key; it was corrupted or tampered with")]
    TrailingBytes,
    #[error("the key data is not in the one canonical encoding OpenSSH writes")]
    NotCanonical,
    #[error("a number in the RSA key is not canonically encoded (negative or zero-padded)")]
    NonCanonicalInteger,
    #[error(
        "the RSA public exponent is invalid: it must be odd, at least 3 and below the modulus"
    )]
    InvalidRsaExponent,
    #[error("the RSA modulus is invalid: it must be odd")]
    InvalidRsaModulus,
    #[error(
        "the RSA key has only {bits} bits and keys under 2048 bits are refused; \
         generate a new key with `ssh-keygen -t ed25519` and replace this one with \
         `keyward rotate-key`"
    )]
    WeakKey { bits: u32 },
    #[error(
        "the RSA key has {bits} bits and this host requires at least {min} \
         (min_rsa_bits = {min}); generate a new key with `ssh-keygen -t ed25519` and replace \
         this one with `keyward rotate-key`"
    )]
    RsaBelowMinimum { bits: u32, min: u32 },
    #[error("the RSA key has {bits} bits; keys over 16384 bits are refused")]
    RsaKeyTooLarge { bits: u32 },
    #[error("the Ed25519 public key must be 32 bytes but is {len}")]
    InvalidEd25519Key { len: usize },
    #[error("the ECDSA curve inside the key does not match the key type")]
    CurveMismatch,
    #[error("the ECDSA public point is invalid: it must be uncompressed and sized for its curve")]
    InvalidPoint,
    #[error(
        "the security-key application is invalid: it must be 1 to 256 printable ASCII characters"
    )]
    InvalidApplication,
}

/// A public key that passed every check; only its decoded form is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    key_type: KeyType,
    key: KeyData,
    /// The crate's encoding of `key`, kept because fingerprints and key lines are made from it.
    blob: Vec<u8>,
    comment: String,
    bits: u32,
}

impl PublicKey {
    /// The smallest RSA key keyward accepts anywhere; `min_rsa_bits` can only raise it.
    pub const MIN_RSA_BITS: u32 = MIN_RSA_BITS;
    /// The largest RSA key OpenSSH (and keyward) accepts.
    pub const MAX_RSA_BITS: u32 = MAX_RSA_BITS;

    /// Parses exactly one OpenSSH public key line "TYPE BASE64 [COMMENT]". Leading/trailing
    /// spaces and tabs and one trailing newline (`\n` or `\r\n`) are tolerated; anything on
    /// further lines is an error, and so is a second key on the same line (a key type name
    /// among the comment's words): served, it would reach sshd as the first key's comment.
    pub fn parse(text: &str) -> Result<PublicKey, KeyError> {
        refuse_foreign_formats(text)?;
        let line = single_line(text)?;
        let (type_token, rest) = next_token(line);
        let (base64_token, comment) = next_token(rest);
        if has_control(type_token) || has_control(base64_token) {
            return Err(KeyError::ControlCharacter);
        }
        let declared = declared_type(type_token, line)?;
        if base64_token.is_empty() {
            return Err(KeyError::MissingKeyData);
        }
        if comment.split(is_blank).any(is_key_type_name) {
            return Err(KeyError::SeveralKeys);
        }
        let decoded = decode_blob(&decode_base64(base64_token)?, Some(declared))?;
        Ok(PublicKey::from_decoded(decoded, clean_comment(comment)))
    }

    /// Parses only the base64 blob (what sshd passes as `%k`) with no type or comment around it.
    pub fn from_blob_base64(b64: &str) -> Result<PublicKey, KeyError> {
        refuse_foreign_formats(b64)?;
        let token = single_line(b64)?;
        if has_control(token) {
            return Err(KeyError::ControlCharacter);
        }
        let decoded = decode_blob(&decode_base64(token)?, None)?;
        Ok(PublicKey::from_decoded(decoded, String::new()))
    }

    fn from_decoded(decoded: Decoded, comment: String) -> PublicKey {
        PublicKey {
            key_type: decoded.key_type,
            key: decoded.key,
            blob: decoded.blob,
            comment,
            bits: decoded.bits,
        }
    }

    pub fn key_type(&self) -> KeyType {
        self.key_type
    }

    /// The SSH wire blob, re-encoded from the decoded key (and equal to the validated input).
    pub fn blob(&self) -> &[u8] {
        &self.blob
    }

    /// The key as the `ssh-key` crate decoded it, for building certificates.
    pub(crate) fn key_data(&self) -> &KeyData {
        &self.key
    }

    /// The sanitized comment; may be empty.
    pub fn comment(&self) -> &str {
        &self.comment
    }

    /// Key size as `ssh-keygen -l` reports it.
    pub fn bits(&self) -> u32 {
        self.bits
    }

    /// The modulus size of an RSA key; `None` for other types (their size is fixed by the
    /// algorithm).
    pub fn rsa_bits(&self) -> Option<u32> {
        (self.key_type == KeyType::Rsa).then_some(self.bits)
    }

    /// A host's or fleet's own RSA floor (`min_rsa_bits`), on top of the 2048 bits every
    /// parsed key already has. Keys of other types pass.
    pub fn check_min_rsa_bits(&self, min: u32) -> Result<(), KeyError> {
        match self.rsa_bits() {
            Some(bits) if bits < min => Err(KeyError::RsaBelowMinimum { bits, min }),
            _ => Ok(()),
        }
    }

    /// The `SHA256:` fingerprint of a key line keyward may refuse (an RSA key under 2048 bits,
    /// a type it does not serve), as `ssh-keygen -lf` prints it, so that a person can still
    /// name that key (`rotate-key --old`, `delete-key`). Only the base64 field is decoded, nothing
    /// in it is trusted or served; `None` when there is no such field.
    pub fn fingerprint_of_line(text: &str) -> Option<String> {
        use sha2::Digest as _;
        let encoded = text.split_ascii_whitespace().nth(1)?;
        if encoded.len() > MAX_BASE64_LEN {
            return None;
        }
        let blob = STANDARD.decode(encoded).ok()?;
        let digest = sha2::Sha256::digest(&blob);
        Some(format!(
            "SHA256:{}",
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest)
        ))
    }

    /// `SHA256:` fingerprint, identical to `ssh-keygen -lf`.
    pub fn fingerprint(&self) -> String {
        self.key.fingerprint(HashAlg::Sha256).to_string()
    }

    /// The key line rebuilt from validated parts, without a trailing newline.
    pub fn to_line(&self) -> String {
        let encoded = STANDARD.encode(&self.blob);
        if self.comment.is_empty() {
            format!("{} {encoded}", self.key_type.name())
        } else {
            format!("{} {encoded} {}", self.key_type.name(), self.comment)
        }
    }

    /// Replaces the comment, sanitized exactly as [`PublicKey::parse`] sanitizes one.
    #[must_use]
    pub fn with_comment(self, comment: &str) -> PublicKey {
        PublicKey {
            comment: clean_comment(comment),
            ..self
        }
    }
}

/// Recognises text that is some other kind of key, so the user is told what they pasted
/// instead of getting a confusing parse error (or, worse, silence about a leaked private key).
fn refuse_foreign_formats(text: &str) -> Result<(), KeyError> {
    let is_private = text.contains("PRIVATE KEY-----")
        || text.trim_start().starts_with("PuTTY-User-Key-File")
        || text
            .split_ascii_whitespace()
            .any(|token| token.starts_with(OPENSSH_PRIVATE_BASE64));
    if is_private {
        return Err(KeyError::PrivateKey);
    }
    if text.contains("BEGIN SSH2 PUBLIC KEY") {
        return Err(KeyError::Rfc4716Format);
    }
    if text.contains("PUBLIC KEY-----") {
        return Err(KeyError::PemFormat);
    }
    Ok(())
}

/// Returns the one line of `text` with surrounding blanks removed. A second line could smuggle
/// an extra key (or options) into authorized_keys output, so only a single trailing line ending
/// is forgiven.
fn single_line(text: &str) -> Result<&str, KeyError> {
    if text.trim_ascii().is_empty() {
        return Err(KeyError::Empty);
    }
    let trimmed = text.trim_matches(is_blank);
    let without_eol = match trimmed.strip_suffix('\n') {
        Some(rest) => rest.strip_suffix('\r').unwrap_or(rest),
        None => trimmed,
    };
    let line = without_eol.trim_matches(is_blank);
    if line.contains('\n') {
        return Err(KeyError::MultipleLines);
    }
    if line.contains('\r') {
        return Err(KeyError::ControlCharacter);
    }
    Ok(line)
}

/// sshd separates the fields of a key line with spaces and tabs only.
fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// Splits off the first blank-separated token, returning it and the unparsed remainder.
fn next_token(text: &str) -> (&str, &str) {
    let text = text.trim_start_matches(is_blank);
    match text.find(is_blank) {
        Some(end) => text.split_at(end),
        None => (text, ""),
    }
}

fn has_control(text: &str) -> bool {
    text.chars().any(char::is_control)
}

fn declared_type(token: &str, line: &str) -> Result<KeyType, KeyError> {
    if let Some(key_type) = KeyType::from_name(token) {
        return Ok(key_type);
    }
    if looks_like_options(token, line) {
        return Err(KeyError::Options);
    }
    Err(refused_type(token))
}

/// An options prefix would let the uploader pick their own forced command or source addresses,
/// so anything resembling one is refused rather than guessed around.
fn looks_like_options(first_token: &str, line: &str) -> bool {
    first_token.contains(['=', '"', ','])
        || FLAG_OPTIONS
            .iter()
            .any(|flag| flag.eq_ignore_ascii_case(first_token))
        || line.split(is_blank).skip(1).any(is_key_type_name)
}

/// Any algorithm name sshd knows, including the ones keyward refuses.
fn is_key_type_name(token: &str) -> bool {
    KeyType::from_name(token).is_some() || token == "ssh-dss" || token.ends_with(CERTIFICATE_SUFFIX)
}

fn type_from_name(name: &str) -> Result<KeyType, KeyError> {
    KeyType::from_name(name).ok_or_else(|| refused_type(name))
}

fn refused_type(name: &str) -> KeyError {
    if name.ends_with(CERTIFICATE_SUFFIX) {
        KeyError::Certificate
    } else if name == "ssh-dss" {
        KeyError::DsaKey
    } else {
        KeyError::UnknownType(echo(name))
    }
}

/// The only way untrusted text may reach an error message: short, and only the characters of
/// key type names (no quote, backslash or `=` that a log reader could take for a field).
fn echo(text: &str) -> String {
    text.chars()
        .take(MAX_ECHO_CHARS)
        .map(|c| {
            if c.is_ascii_alphanumeric() || "@._+-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Strict decoding (canonical padding, no stray bits) so that one key has exactly one spelling.
fn decode_base64(token: &str) -> Result<Vec<u8>, KeyError> {
    if token.len() > MAX_BASE64_LEN {
        return Err(KeyError::BlobTooLarge);
    }
    let blob = STANDARD.decode(token).map_err(|_| KeyError::BadBase64)?;
    if blob.len() > MAX_BLOB_LEN {
        return Err(KeyError::BlobTooLarge);
    }
    Ok(blob)
}

/// A blob that passed every check: the key as the `ssh-key` crate decoded it, and the wire
/// bytes re-encoded from that decoded key (never the input bytes).
struct Decoded {
    key_type: KeyType,
    key: KeyData,
    blob: Vec<u8>,
    bits: u32,
}

/// Decodes a whole wire blob with the `ssh-key` crate, then applies keyward's policy on top.
/// With `declared`, the blob must be of that type; without it the blob's own type name is used.
///
/// The type name is read first (with the crate's wire reader) so that DSA keys, certificates
/// and unknown types are refused by name before any key material is decoded. The crate bounds
/// every length prefix (ssh-encoding caps one at 1 MiB, and reads never pass the end of the
/// 16 KiB blob), so a hostile length costs at most a 1 MiB allocation before it is refused,
/// never a panic or an unbounded allocation.
fn decode_blob(blob: &[u8], declared: Option<KeyType>) -> Result<Decoded, KeyError> {
    if blob.starts_with(OPENSSH_PRIVATE_MAGIC) {
        return Err(KeyError::PrivateKey);
    }
    let name = Vec::<u8>::decode(&mut &blob[..]).map_err(|_| KeyError::Truncated)?;
    let key_type = match declared {
        Some(declared) if name == declared.name().as_bytes() => declared,
        Some(declared) => {
            return Err(KeyError::TypeMismatch {
                declared,
                found: echo(&String::from_utf8_lossy(&name)),
            })
        }
        None => type_from_name(&String::from_utf8_lossy(&name))?,
    };
    let mut reader = blob;
    let key = KeyData::decode(&mut reader).map_err(|_| diagnose(blob, key_type))?;
    if !reader.is_empty() {
        return Err(KeyError::TrailingBytes);
    }
    let bits = check_key(&key, key_type)?;
    // What keyward serves is the crate's encoding of the decoded key. It must equal the input,
    // so that the fingerprint keyward logs is the one sshd computes from the same key.
    let mut rebuilt = Vec::with_capacity(blob.len());
    key.encode(&mut rebuilt)
        .map_err(|_| KeyError::NotCanonical)?;
    if rebuilt != blob {
        return Err(KeyError::NotCanonical);
    }
    Ok(Decoded {
        key_type,
        key,
        blob: rebuilt,
        bits,
    })
}

/// Uncompressed SEC1 point sizes: one 0x04 byte plus two coordinates.
fn curve_of(key_type: KeyType) -> Option<(EcdsaCurve, usize, u32)> {
    match key_type {
        KeyType::EcdsaP256 | KeyType::SkEcdsaP256 => Some((EcdsaCurve::NistP256, 65, 256)),
        KeyType::EcdsaP384 => Some((EcdsaCurve::NistP384, 97, 384)),
        KeyType::EcdsaP521 => Some((EcdsaCurve::NistP521, 133, 521)),
        KeyType::Rsa | KeyType::Ed25519 | KeyType::SkEd25519 => None,
    }
}

/// keyward's policy on a key the crate decoded: the crate checks the wire structure, this
/// checks what OpenSSH (and keyward) additionally demand. Returns the size in bits.
fn check_key(key: &KeyData, key_type: KeyType) -> Result<u32, KeyError> {
    match (key_type, key) {
        (KeyType::Rsa, KeyData::Rsa(rsa)) => check_rsa(magnitude(&rsa.e)?, magnitude(&rsa.n)?),
        (KeyType::Ed25519, KeyData::Ed25519(_)) => Ok(256),
        (KeyType::SkEd25519, KeyData::SkEd25519(sk)) => {
            check_application(sk.application())?;
            Ok(256)
        }
        (KeyType::EcdsaP256 | KeyType::EcdsaP384 | KeyType::EcdsaP521, KeyData::Ecdsa(ec)) => {
            check_point(key_type, ec.curve(), ec.as_sec1_bytes())
        }
        (KeyType::SkEcdsaP256, KeyData::SkEcdsaSha2NistP256(sk)) => {
            let bits = check_point(key_type, EcdsaCurve::NistP256, sk.ec_point().as_bytes())?;
            check_application(sk.application())?;
            Ok(bits)
        }
        // The type name was checked before decoding; a different variant cannot come back.
        _ => Err(KeyError::TypeMismatch {
            declared: key_type,
            found: echo(key.algorithm().as_str()),
        }),
    }
}

/// The magnitude of a non-negative mpint. The crate refuses superfluous leading zeros; a
/// negative number is refused here. An empty mpint is zero.
fn magnitude(mpint: &Mpint) -> Result<&[u8], KeyError> {
    if mpint.as_bytes().is_empty() {
        return Ok(&[]);
    }
    mpint
        .as_positive_bytes()
        .ok_or(KeyError::NonCanonicalInteger)
}

fn check_rsa(exponent: &[u8], modulus: &[u8]) -> Result<u32, KeyError> {
    let bits = bit_length(modulus);
    if bits < MIN_RSA_BITS {
        return Err(KeyError::WeakKey { bits });
    }
    if bits > MAX_RSA_BITS {
        return Err(KeyError::RsaKeyTooLarge { bits });
    }
    // A product of two odd primes is odd; an even modulus is not an RSA key at all.
    if !is_odd(modulus) {
        return Err(KeyError::InvalidRsaModulus);
    }
    // Canonical magnitudes have no leading zeros, so comparing (length, bytes) compares values.
    let below_modulus = (exponent.len(), exponent) < (modulus.len(), modulus);
    if !is_odd(exponent) || bit_length(exponent) < 2 || !below_modulus {
        return Err(KeyError::InvalidRsaExponent);
    }
    Ok(bits)
}

/// OpenSSH accepts only uncompressed points; the crate also takes compressed ones. The point is
/// not verified to lie on the curve (keyward verifies no signature with it).
fn check_point(key_type: KeyType, curve: EcdsaCurve, point: &[u8]) -> Result<u32, KeyError> {
    let Some((expected, point_len, bits)) = curve_of(key_type) else {
        return Err(KeyError::CurveMismatch);
    };
    if curve != expected {
        return Err(KeyError::CurveMismatch);
    }
    if point.len() != point_len || point.first() != Some(&0x04) {
        return Err(KeyError::InvalidPoint);
    }
    Ok(bits)
}

/// The FIDO application id ends up in sshd's logs, so it must be short and printable.
fn check_application(application: &str) -> Result<(), KeyError> {
    let printable = application
        .bytes()
        .all(|byte| (0x20..=0x7e).contains(&byte));
    if application.is_empty() || application.len() > MAX_APPLICATION_LEN || !printable {
        return Err(KeyError::InvalidApplication);
    }
    Ok(())
}

/// The crate only says that a blob does not decode; this names the field at fault, for the
/// person who uploaded the key. It runs only on blobs the crate already refused, so it can
/// refine an error but never let a key through.
fn diagnose(blob: &[u8], key_type: KeyType) -> KeyError {
    let Some(fields) = wire_strings(blob) else {
        return KeyError::Truncated;
    };
    let field = |index: usize| fields.get(index).map(Vec::as_slice);
    match key_type {
        KeyType::Rsa if fields.len() >= 3 => KeyError::NonCanonicalInteger,
        KeyType::Ed25519 | KeyType::SkEd25519 => match field(1) {
            Some(key) if key.len() != ED25519_KEY_LEN => {
                KeyError::InvalidEd25519Key { len: key.len() }
            }
            // Only the application (not UTF-8) is left to fail.
            Some(_) if key_type == KeyType::SkEd25519 && fields.len() >= 3 => {
                KeyError::InvalidApplication
            }
            _ => KeyError::Truncated,
        },
        KeyType::EcdsaP256 | KeyType::EcdsaP384 | KeyType::EcdsaP521 | KeyType::SkEcdsaP256 => {
            let Some((curve, point_len, _)) = curve_of(key_type) else {
                return KeyError::CurveMismatch;
            };
            let well_formed =
                |point: &[u8]| point.len() == point_len && point.first() == Some(&0x04);
            match (field(1), field(2)) {
                (Some(name), _) if name != curve.as_str().as_bytes() => KeyError::CurveMismatch,
                (Some(_), Some(point)) if !well_formed(point) => KeyError::InvalidPoint,
                // Only a security key's application (not UTF-8) is left to fail.
                (Some(_), Some(_)) if key_type == KeyType::SkEcdsaP256 && fields.len() >= 4 => {
                    KeyError::InvalidApplication
                }
                _ => KeyError::Truncated,
            }
        }
        KeyType::Rsa => KeyError::Truncated,
    }
}

/// The blob as a sequence of length-prefixed strings (read with the crate's wire reader), or
/// `None` if it is not one. Every key type's wire form is such a sequence.
fn wire_strings(blob: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut reader = blob;
    let mut fields = Vec::new();
    while !reader.is_empty() {
        fields.push(Vec::<u8>::decode(&mut reader).ok()?);
    }
    Some(fields)
}

fn is_odd(magnitude: &[u8]) -> bool {
    magnitude.last().is_some_and(|byte| byte & 1 == 1)
}

/// Bit length of a big-endian magnitude without leading zero bytes.
fn bit_length(magnitude: &[u8]) -> u32 {
    let Some(first) = magnitude.first() else {
        return 0;
    };
    u32::try_from(magnitude.len())
        .unwrap_or(u32::MAX)
        .saturating_sub(1)
        .saturating_mul(8)
        .saturating_add(8 - first.leading_zeros())
}

/// Comments are shown to admins and written into authorized_keys output, so only a small, inert
/// alphabet survives; everything else becomes `_`.
fn clean_comment(raw: &str) -> String {
    let mut clean = String::new();
    let mut pending_space = false;
    for c in raw.chars() {
        // Every pushed char is ASCII, so the byte length is the char count.
        if clean.len() >= MAX_COMMENT_CHARS {
            break;
        }
        if is_blank(c) {
            pending_space = !clean.is_empty();
            continue;
        }
        if pending_space {
            clean.push(' ');
            pending_space = false;
            if clean.len() >= MAX_COMMENT_CHARS {
                break;
            }
        }
        clean.push(if is_comment_char(c) { c } else { '_' });
    }
    clean.trim_end().to_owned()
}

fn is_comment_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || " ._@+=,:/-()".contains(c)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
pub(super) mod tests {
    use super::*;
    use std::path::{Path, PathBuf};
    use std::process::Command;

    // ---- helpers -------------------------------------------------------------------------

    fn ssh_keygen(args: &[&str]) -> String {
        let output = Command::new("ssh-keygen")
            .args(args)
            .output()
            .unwrap_or_else(|err| {
                panic!("cannot run ssh-keygen ({err}); install openssh-client to run these tests")
            });
        assert!(
            output.status.success(),
            "ssh-keygen {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// Generates a key pair and returns the private key path (the public key is `PATH.pub`).
    fn generate(dir: &Path, name: &str, type_args: &[&str]) -> PathBuf {
        let path = dir.join(name);
        let path_str = path.to_str().unwrap();
        let mut args = vec!["-q", "-N", "", "-C", "alice@laptop", "-f", path_str];
        args.extend_from_slice(type_args);
        ssh_keygen(&args);
        path
    }

    struct Listing {
        bits: u32,
        fingerprint: String,
        label: String,
    }

    /// Parses `ssh-keygen -lf FILE`: "256 SHA256:xxxx alice@laptop (ED25519)".
    fn list(pub_path: &Path) -> Listing {
        let output = ssh_keygen(&["-l", "-E", "sha256", "-f", pub_path.to_str().unwrap()]);
        let fields: Vec<&str> = output.split_whitespace().collect();
        let label = fields.last().unwrap();
        Listing {
            bits: fields[0].parse().unwrap(),
            fingerprint: fields[1].to_owned(),
            label: label
                .trim_start_matches('(')
                .trim_end_matches(')')
                .to_owned(),
        }
    }

    fn pub_path(private: &Path) -> PathBuf {
        private.with_extension("pub")
    }

    fn assert_agrees_with_ssh_keygen(type_args: &[&str], expected: KeyType) {
        let dir = tempfile::tempdir().unwrap();
        let private = generate(dir.path(), "k", type_args);
        let text = std::fs::read_to_string(pub_path(&private)).unwrap();
        let key = PublicKey::parse(&text).unwrap();
        let listing = list(&pub_path(&private));

        assert_eq!(key.key_type(), expected);
        assert_eq!(key.fingerprint(), listing.fingerprint);
        assert_eq!(key.bits(), listing.bits);
        assert_eq!(key.key_type().label(), listing.label);
        assert_eq!(key.comment(), "alice@laptop");
        assert_eq!(key.to_line(), text.trim_end());
    }

    pub(in crate::keys) fn wire(fields: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for field in fields {
            out.extend_from_slice(&u32::try_from(field.len()).unwrap().to_be_bytes());
            out.extend_from_slice(field);
        }
        out
    }

    pub(in crate::keys) fn line(name: &str, blob: &[u8]) -> String {
        format!("{name} {}", STANDARD.encode(blob))
    }

    fn ed25519_blob() -> Vec<u8> {
        wire(&[b"ssh-ed25519", &[7; 32]])
    }

    fn ed25519_line() -> String {
        line("ssh-ed25519", &ed25519_blob())
    }

    /// An mpint for a modulus of exactly `bits` bits, odd, with the sign byte when needed.
    pub(in crate::keys) fn modulus_mpint(bits: usize) -> Vec<u8> {
        let len = bits.div_ceil(8);
        let top_bits = bits - 8 * (len - 1);
        let mut magnitude = vec![0xA5; len];
        magnitude[0] = 0xFF >> (8 - top_bits);
        magnitude[len - 1] |= 1;
        if magnitude[0] & 0x80 != 0 {
            magnitude.insert(0, 0);
        }
        magnitude
    }

    pub(in crate::keys) fn rsa_blob(exponent: &[u8], modulus: &[u8]) -> Vec<u8> {
        wire(&[b"ssh-rsa", exponent, modulus])
    }

    pub(in crate::keys) const E_65537: &[u8] = &[0x01, 0x00, 0x01];

    fn ecdsa_p256_blob(point: &[u8]) -> Vec<u8> {
        wire(&[b"ecdsa-sha2-nistp256", b"nistp256", point])
    }

    fn fake_point(len: usize) -> Vec<u8> {
        let mut point = vec![0x42; len];
        point[0] = 0x04;
        point
    }

    /// Splits a blob into its wire strings, to borrow real key material from generated keys.
    pub(in crate::keys) fn fields(blob: &[u8]) -> Vec<Vec<u8>> {
        wire_strings(blob).unwrap()
    }

    pub(in crate::keys) fn generated_key(type_args: &[&str]) -> PublicKey {
        let dir = tempfile::tempdir().unwrap();
        let private = generate(dir.path(), "k", type_args);
        PublicKey::parse(&std::fs::read_to_string(pub_path(&private)).unwrap()).unwrap()
    }

    // ---- agreement with ssh-keygen -------------------------------------------------------

    #[test]
    fn ed25519_key_matches_ssh_keygen() {
        assert_agrees_with_ssh_keygen(&["-t", "ed25519"], KeyType::Ed25519);
    }

    #[test]
    fn rsa_2048_key_matches_ssh_keygen() {
        assert_agrees_with_ssh_keygen(&["-t", "rsa", "-b", "2048"], KeyType::Rsa);
    }

    #[test]
    fn rsa_3072_key_matches_ssh_keygen() {
        assert_agrees_with_ssh_keygen(&["-t", "rsa", "-b", "3072"], KeyType::Rsa);
    }

    #[test]
    fn ecdsa_p256_key_matches_ssh_keygen() {
        assert_agrees_with_ssh_keygen(&["-t", "ecdsa", "-b", "256"], KeyType::EcdsaP256);
    }

    #[test]
    fn ecdsa_p384_key_matches_ssh_keygen() {
        assert_agrees_with_ssh_keygen(&["-t", "ecdsa", "-b", "384"], KeyType::EcdsaP384);
    }

    #[test]
    fn ecdsa_p521_key_matches_ssh_keygen() {
        assert_agrees_with_ssh_keygen(&["-t", "ecdsa", "-b", "521"], KeyType::EcdsaP521);
    }

    /// Security keys cannot be generated without hardware, so real key material is rewrapped
    /// by hand and ssh-keygen is asked to agree on the result.
    fn assert_sk_blob_agrees_with_ssh_keygen(blob: &[u8], expected: KeyType) {
        let key = PublicKey::from_blob_base64(&STANDARD.encode(blob))
            .unwrap()
            .with_comment("bob@yubikey");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sk.pub");
        std::fs::write(&path, format!("{}\n", key.to_line())).unwrap();
        let listing = list(&path);

        assert_eq!(key.key_type(), expected);
        assert_eq!(key.fingerprint(), listing.fingerprint);
        assert_eq!(key.bits(), listing.bits);
        assert_eq!(key.key_type().label(), listing.label);
        assert_eq!(PublicKey::parse(&key.to_line()).unwrap(), key);
    }

    #[test]
    fn sk_ed25519_key_matches_ssh_keygen() {
        let ed = generated_key(&["-t", "ed25519"]);
        let public = &fields(ed.blob())[1];
        let blob = wire(&[b"sk-ssh-ed25519@openssh.com", public, b"ssh:"]);
        assert_sk_blob_agrees_with_ssh_keygen(&blob, KeyType::SkEd25519);
    }

    #[test]
    fn sk_ecdsa_key_matches_ssh_keygen() {
        let ec = generated_key(&["-t", "ecdsa", "-b", "256"]);
        let point = &fields(ec.blob())[2];
        let blob = wire(&[
            b"sk-ecdsa-sha2-nistp256@openssh.com",
            b"nistp256",
            point,
            b"ssh:login",
        ]);
        assert_sk_blob_agrees_with_ssh_keygen(&blob, KeyType::SkEcdsaP256);
    }

    #[test]
    fn blob_base64_round_trips_to_the_same_key() {
        let key = generated_key(&["-t", "ed25519"]);
        let b64 = STANDARD.encode(key.blob());
        let from_blob = PublicKey::from_blob_base64(&b64).unwrap();
        assert_eq!(from_blob.key_type(), KeyType::Ed25519);
        assert_eq!(from_blob.blob(), key.blob());
        assert_eq!(from_blob.fingerprint(), key.fingerprint());
        assert_eq!(from_blob.comment(), "");
        assert_eq!(from_blob.to_line(), format!("ssh-ed25519 {b64}"));
        assert_eq!(from_blob.with_comment("alice@laptop"), key);
    }

    #[test]
    fn blob_base64_refuses_a_whole_key_line() {
        assert_eq!(
            PublicKey::from_blob_base64(&ed25519_line()),
            Err(KeyError::BadBase64)
        );
    }

    // ---- line structure ------------------------------------------------------------------

    #[test]
    fn empty_or_blank_input_is_refused() {
        for text in ["", "   ", "\n", "\t\r\n", " \n \n "] {
            assert_eq!(PublicKey::parse(text), Err(KeyError::Empty), "{text:?}");
            assert_eq!(PublicKey::from_blob_base64(text), Err(KeyError::Empty));
        }
    }

    #[test]
    fn one_trailing_line_ending_and_surrounding_blanks_are_tolerated() {
        let base = ed25519_line();
        for text in [
            format!("{base}\n"),
            format!("{base}\r\n"),
            format!("  \t{base} \t\n"),
            format!("{base}\n  "),
        ] {
            let key = PublicKey::parse(&text).unwrap();
            assert_eq!(key.to_line(), base, "{text:?}");
        }
    }

    #[test]
    fn two_lines_are_refused() {
        let base = ed25519_line();
        for text in [
            format!("{base}\n{base}"),
            format!("{base}\n{base}\n"),
            format!("{base}\n\n"),
            format!("\n{base}"),
            format!("{base} comment\nsecond"),
        ] {
            assert_eq!(
                PublicKey::parse(&text),
                Err(KeyError::MultipleLines),
                "{text:?}"
            );
        }
    }

    #[test]
    fn control_characters_outside_the_comment_are_refused() {
        let b64 = STANDARD.encode(ed25519_blob());
        for text in [
            format!("ssh-ed25519 {b64}\rinjected"),
            format!("ssh-ed25519\0 {b64}"),
            format!("ssh-ed25519 {b64}\0"),
            format!("ssh-ed25519\x0b{b64}"),
            format!("ssh-ed25519 {b64}\r"),
        ] {
            assert_eq!(
                PublicKey::parse(&text),
                Err(KeyError::ControlCharacter),
                "{text:?}"
            );
        }
        assert_eq!(
            PublicKey::from_blob_base64(&format!("{b64}\0")),
            Err(KeyError::ControlCharacter)
        );
    }

    #[test]
    fn options_line_is_refused() {
        let base = ed25519_line();
        for prefix in [
            "command=\"echo hi\"",
            "from=\"10.0.0.0/8\"",
            "no-pty",
            "NO-PTY",
            "restrict",
            "restrict,command=\"/bin/sh\"",
            "environment=\"LD_PRELOAD=/tmp/x\"",
            "no-agent-forwarding,no-port-forwarding",
            "tunnel=\"0\"",
        ] {
            let text = format!("{prefix} {base} c");
            assert_eq!(PublicKey::parse(&text), Err(KeyError::Options), "{text:?}");
        }
        assert_eq!(PublicKey::parse("no-pty"), Err(KeyError::Options));
        assert_eq!(
            PublicKey::parse("something-odd ssh-rsa AAAA"),
            Err(KeyError::Options)
        );
    }

    #[test]
    fn unknown_type_is_refused_with_a_short_printable_echo() {
        assert_eq!(
            PublicKey::parse("ssh-foo AAAA"),
            Err(KeyError::UnknownType("ssh-foo".to_owned()))
        );
        let long = format!("é{}", "x".repeat(100));
        let Err(KeyError::UnknownType(echoed)) = PublicKey::parse(&format!("{long} AAAA")) else {
            panic!("expected UnknownType");
        };
        assert_eq!(echoed.chars().count(), MAX_ECHO_CHARS);
        assert!(echoed.starts_with("_x"));
        assert_eq!(
            PublicKey::parse("SSH-ED25519 AAAA"),
            Err(KeyError::UnknownType("SSH-ED25519".to_owned()))
        );
    }

    #[test]
    fn m1_echoed_type_names_hold_no_quote_backslash_or_equals() {
        let blob = wire(&[b"a\" message_id=\"6b\\", &[1]]);
        let Err(KeyError::UnknownType(echoed)) =
            PublicKey::from_blob_base64(&STANDARD.encode(&blob))
        else {
            panic!("expected UnknownType");
        };
        assert_eq!(echoed, "a__message_id__6b_");
    }

    #[test]
    fn dsa_key_is_refused() {
        let blob = wire(&[b"ssh-dss", &[1], &[2], &[3], &[4]]);
        assert_eq!(
            PublicKey::parse(&line("ssh-dss", &blob)),
            Err(KeyError::DsaKey)
        );
        assert_eq!(
            PublicKey::from_blob_base64(&STANDARD.encode(&blob)),
            Err(KeyError::DsaKey)
        );
    }

    #[test]
    fn certificate_is_refused() {
        let name = "ssh-ed25519-cert-v01@openssh.com";
        let blob = wire(&[name.as_bytes(), &[0; 32]]);
        assert_eq!(
            PublicKey::parse(&line(name, &blob)),
            Err(KeyError::Certificate)
        );
        assert_eq!(
            PublicKey::from_blob_base64(&STANDARD.encode(&blob)),
            Err(KeyError::Certificate)
        );
    }

    #[test]
    fn missing_key_data_is_refused() {
        assert_eq!(
            PublicKey::parse("ssh-ed25519"),
            Err(KeyError::MissingKeyData)
        );
        assert_eq!(
            PublicKey::parse("ssh-ed25519 \t \n"),
            Err(KeyError::MissingKeyData)
        );
    }

    // ---- other key formats ---------------------------------------------------------------

    #[test]
    fn private_key_is_refused() {
        let fake_openssh = "-----BEGIN OPENSSH PRIVATE KEY-----\n\
            b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n\
            -----END OPENSSH PRIVATE KEY-----\n";
        for text in [
            fake_openssh,
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEow==\n-----END RSA PRIVATE KEY-----",
            "-----BEGIN EC PRIVATE KEY-----\nMHc=\n-----END EC PRIVATE KEY-----",
            "-----BEGIN DSA PRIVATE KEY-----\nMIIBuw==\n-----END DSA PRIVATE KEY-----",
            "-----BEGIN PRIVATE KEY-----\nMIGH\n-----END PRIVATE KEY-----",
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIF\n-----END ENCRYPTED PRIVATE KEY-----",
            "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nComment: x\n",
            "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW",
            "ssh-ed25519 b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMw==",
        ] {
            assert_eq!(
                PublicKey::parse(text),
                Err(KeyError::PrivateKey),
                "{text:?}"
            );
        }
        assert_eq!(
            PublicKey::from_blob_base64(&STANDARD.encode(b"openssh-key-v1\0rest")),
            Err(KeyError::PrivateKey)
        );
    }

    #[test]
    fn generated_private_key_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let private = generate(dir.path(), "k", &["-t", "ed25519"]);
        let text = std::fs::read_to_string(private).unwrap();
        assert_eq!(PublicKey::parse(&text), Err(KeyError::PrivateKey));
    }

    #[test]
    fn private_key_message_says_never_upload_and_use_pub_file() {
        let message = KeyError::PrivateKey.to_string();
        assert!(message.contains("private key"));
        assert!(message.contains("never be uploaded"));
        assert!(message.contains(".pub"));
    }

    #[test]
    fn rfc4716_and_pem_public_keys_are_refused_with_conversion_hint() {
        let dir = tempfile::tempdir().unwrap();
        let ed = pub_path(&generate(dir.path(), "ed", &["-t", "ed25519"]));
        let ec = pub_path(&generate(dir.path(), "ec", &["-t", "ecdsa"]));
        let rfc4716 = ssh_keygen(&["-e", "-f", ed.to_str().unwrap()]);
        let pem = ssh_keygen(&["-e", "-m", "PKCS8", "-f", ec.to_str().unwrap()]);

        assert_eq!(PublicKey::parse(&rfc4716), Err(KeyError::Rfc4716Format));
        assert_eq!(
            PublicKey::parse(
                "-----BEGIN SSH2 PUBLIC KEY-----\nAAAA\n-----END SSH2 PUBLIC KEY-----"
            ),
            Err(KeyError::Rfc4716Format)
        );
        assert_eq!(PublicKey::parse(&pem), Err(KeyError::PemFormat));
        assert_eq!(
            PublicKey::parse("-----BEGIN RSA PUBLIC KEY-----\nMIIB\n-----END RSA PUBLIC KEY-----"),
            Err(KeyError::PemFormat)
        );
        assert!(KeyError::Rfc4716Format
            .to_string()
            .contains("ssh-keygen -i -f FILE"));
        assert!(KeyError::PemFormat.to_string().contains("ssh-keygen -i"));
    }

    // ---- base64 and wire format ----------------------------------------------------------

    #[test]
    fn bad_base64_is_refused() {
        let padded = STANDARD.encode(ecdsa_p256_blob(&fake_point(65)));
        assert!(padded.ends_with('='));
        let unpadded = padded.trim_end_matches('=');
        // Same length as a valid token, but the last symbol carries non-zero spare bits.
        let stray_bits = format!("{}B=", &padded[..padded.len() - 2]);
        for token in [
            "AAAA!!!!",
            "AAAAC3NzaC1lZDI1NTE5AAAAI-_",
            unpadded,
            &format!("{padded}="),
            &format!("{padded}AAAA"),
            &stray_bits,
        ] {
            let text = format!("ecdsa-sha2-nistp256 {token}");
            assert_eq!(
                PublicKey::parse(&text),
                Err(KeyError::BadBase64),
                "{text:?}"
            );
        }
        assert!(PublicKey::parse(&format!("ecdsa-sha2-nistp256 {padded}")).is_ok());
    }

    #[test]
    fn type_mismatch_is_refused() {
        let text = line("ssh-rsa", &ed25519_blob());
        assert_eq!(
            PublicKey::parse(&text),
            Err(KeyError::TypeMismatch {
                declared: KeyType::Rsa,
                found: "ssh-ed25519".to_owned()
            })
        );
    }

    #[test]
    fn error_messages_never_contain_key_data() {
        let b64 = STANDARD.encode(ed25519_blob());
        let errors = [
            PublicKey::parse(&format!("ssh-rsa {b64} secret-comment")),
            PublicKey::parse(&format!("ssh-ed25519 {b64}AAAA secret-comment")),
            PublicKey::parse(&format!("ssh-bogus {b64} secret-comment")),
        ];
        for error in errors {
            let message = error.unwrap_err().to_string();
            assert!(!message.contains(&b64[..20]), "{message}");
            assert!(!message.contains("secret-comment"), "{message}");
        }
    }

    #[test]
    fn truncated_blob_is_refused() {
        let blob = ed25519_blob();
        let text = line("ssh-ed25519", &blob[..blob.len() - 1]);
        assert_eq!(PublicKey::parse(&text), Err(KeyError::Truncated));
    }

    #[test]
    fn every_prefix_of_a_valid_blob_is_refused() {
        let blobs = [
            ed25519_blob(),
            ecdsa_p256_blob(&fake_point(65)),
            rsa_blob(E_65537, &modulus_mpint(2048)),
            wire(&[b"sk-ssh-ed25519@openssh.com", &[1; 32], b"ssh:"]),
        ];
        for blob in blobs {
            assert!(PublicKey::from_blob_base64(&STANDARD.encode(&blob)).is_ok());
            for len in 0..blob.len() {
                let prefix = STANDARD.encode(&blob[..len]);
                assert!(PublicKey::from_blob_base64(&prefix).is_err(), "len {len}");
            }
        }
    }

    #[test]
    fn trailing_bytes_after_the_blob_are_refused() {
        let mut blob = ed25519_blob();
        blob.push(0);
        assert_eq!(
            PublicKey::parse(&line("ssh-ed25519", &blob)),
            Err(KeyError::TrailingBytes)
        );
    }

    #[test]
    fn hostile_length_prefix_is_refused_without_panicking() {
        let mut blob = wire(&[b"ssh-ed25519"]);
        blob.extend_from_slice(&u32::MAX.to_be_bytes());
        blob.extend_from_slice(&[0; 32]);
        assert_eq!(
            PublicKey::parse(&line("ssh-ed25519", &blob)),
            Err(KeyError::Truncated)
        );
        let huge_name = [0xFF, 0xFF, 0xFF, 0xFF, b's'];
        assert_eq!(
            PublicKey::from_blob_base64(&STANDARD.encode(huge_name)),
            Err(KeyError::Truncated)
        );
    }

    #[test]
    fn oversized_blob_is_refused_before_decoding() {
        let text = format!("ssh-rsa {}", "A".repeat(MAX_BASE64_LEN + 4));
        assert_eq!(PublicKey::parse(&text), Err(KeyError::BlobTooLarge));
        let just_over = STANDARD.encode(vec![0; MAX_BLOB_LEN + 1]);
        assert_eq!(
            PublicKey::from_blob_base64(&just_over),
            Err(KeyError::BlobTooLarge)
        );
    }

    // ---- per-algorithm checks ------------------------------------------------------------

    #[test]
    fn weak_rsa_key_is_refused() {
        let blob = rsa_blob(E_65537, &modulus_mpint(512));
        assert_eq!(
            PublicKey::parse(&line("ssh-rsa", &blob)),
            Err(KeyError::WeakKey { bits: 512 })
        );
        let blob = rsa_blob(E_65537, &modulus_mpint(2047));
        assert_eq!(
            PublicKey::parse(&line("ssh-rsa", &blob)),
            Err(KeyError::WeakKey { bits: 2047 })
        );
    }

    #[test]
    fn m5_rsa_keys_under_2048_bits_are_refused_with_the_fix() {
        for bits in [1024_u32, 2047] {
            let blob = rsa_blob(E_65537, &modulus_mpint(bits as usize));
            let err = PublicKey::parse(&line("ssh-rsa", &blob)).unwrap_err();
            assert_eq!(err, KeyError::WeakKey { bits });
            let text = err.to_string();
            assert!(text.contains(&format!("{bits} bits")), "{text}");
            assert!(text.contains("keyward rotate-key"), "{text}");
            assert_eq!(
                PublicKey::from_blob_base64(&STANDARD.encode(&blob)),
                Err(KeyError::WeakKey { bits })
            );
        }
        // What ssh-keygen makes when asked for 1024 bits (OpenSSH still allows it).
        let dir = tempfile::tempdir().unwrap();
        let private = generate(dir.path(), "k", &["-t", "rsa", "-b", "1024"]);
        let text = std::fs::read_to_string(pub_path(&private)).unwrap();
        assert_eq!(
            PublicKey::parse(&text),
            Err(KeyError::WeakKey { bits: 1024 })
        );
    }

    #[test]
    fn a_refused_key_still_has_the_fingerprint_ssh_keygen_gives_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let status = Command::new("ssh-keygen")
            .args(["-q", "-t", "rsa", "-b", "1024", "-N", "", "-C", "old", "-f"])
            .arg(&path)
            .status()
            .unwrap();
        assert!(status.success());
        let line = std::fs::read_to_string(path.with_extension("pub")).unwrap();
        assert!(PublicKey::parse(&line).is_err(), "1024-bit RSA is refused");
        let keygen = Command::new("ssh-keygen")
            .args(["-l", "-E", "sha256", "-f"])
            .arg(path.with_extension("pub"))
            .output()
            .unwrap();
        let printed = String::from_utf8(keygen.stdout).unwrap();
        let expected = printed.split_whitespace().nth(1).unwrap();
        assert_eq!(
            PublicKey::fingerprint_of_line(&line).as_deref(),
            Some(expected)
        );
        assert_eq!(PublicKey::fingerprint_of_line("ssh-rsa"), None);
        assert_eq!(PublicKey::fingerprint_of_line("ssh-rsa !!!"), None);
    }

    #[test]
    fn m5_rsa_bits_and_a_configured_floor() {
        let key =
            PublicKey::parse(&line("ssh-rsa", &rsa_blob(E_65537, &modulus_mpint(3072)))).unwrap();
        assert_eq!(key.rsa_bits(), Some(3072));
        assert_eq!(key.check_min_rsa_bits(3072), Ok(()));
        let err = key.check_min_rsa_bits(4096).unwrap_err();
        assert_eq!(
            err,
            KeyError::RsaBelowMinimum {
                bits: 3072,
                min: 4096
            }
        );
        let text = err.to_string();
        assert!(text.contains("min_rsa_bits = 4096"), "{text}");
        assert!(text.contains("keyward rotate-key"), "{text}");
        // Only RSA has a size to check.
        let ed = PublicKey::parse(&ed25519_line()).unwrap();
        assert_eq!(ed.rsa_bits(), None);
        assert_eq!(ed.check_min_rsa_bits(16384), Ok(()));
    }

    #[test]
    fn m4_two_keys_on_one_line_are_refused_not_served_as_a_comment() {
        let other = line("ssh-ed25519", &wire(&[b"ssh-ed25519", &[9; 32]]));
        for text in [
            format!("{} {other}", ed25519_line()),
            format!("{} {other} comment", ed25519_line()),
            format!("{} alice@laptop {other}", ed25519_line()),
            format!("{}\t{other}", ed25519_line()),
            format!("{} ssh-rsa", ed25519_line()),
            format!("{} x sk-ssh-ed25519@openssh.com y", ed25519_line()),
        ] {
            assert_eq!(
                PublicKey::parse(&text),
                Err(KeyError::SeveralKeys),
                "{text}"
            );
        }
        // A comment that merely mentions a key type inside a word is a comment.
        let key = PublicKey::parse(&format!("{} my-ssh-ed25519-key", ed25519_line())).unwrap();
        assert_eq!(key.comment(), "my-ssh-ed25519-key");
    }

    #[test]
    fn rsa_size_bounds_are_inclusive() {
        for bits in [2048, 16384] {
            let blob = rsa_blob(E_65537, &modulus_mpint(bits));
            let key = PublicKey::parse(&line("ssh-rsa", &blob)).unwrap();
            assert_eq!(key.bits(), u32::try_from(bits).unwrap());
        }
        let blob = rsa_blob(E_65537, &modulus_mpint(16385));
        assert_eq!(
            PublicKey::parse(&line("ssh-rsa", &blob)),
            Err(KeyError::RsaKeyTooLarge { bits: 16385 })
        );
    }

    #[test]
    fn bad_rsa_exponent_is_refused() {
        let modulus = modulus_mpint(2048);
        for exponent in [&[][..], &[1], &[2], &[0x01, 0x00, 0x00], &modulus[..]] {
            let blob = rsa_blob(exponent, &modulus);
            assert_eq!(
                PublicKey::parse(&line("ssh-rsa", &blob)),
                Err(KeyError::InvalidRsaExponent),
                "{exponent:?}"
            );
        }
        let blob = rsa_blob(&[3], &modulus);
        assert!(PublicKey::parse(&line("ssh-rsa", &blob)).is_ok());
    }

    #[test]
    fn even_rsa_modulus_is_refused() {
        let mut modulus = modulus_mpint(2048);
        *modulus.last_mut().unwrap() &= 0xFE;
        let blob = rsa_blob(E_65537, &modulus);
        assert_eq!(
            PublicKey::parse(&line("ssh-rsa", &blob)),
            Err(KeyError::InvalidRsaModulus)
        );
    }

    #[test]
    fn non_canonical_rsa_integers_are_refused() {
        let modulus = modulus_mpint(2048);
        let padded_exponent = rsa_blob(&[0x00, 0x01, 0x00, 0x01], &modulus);
        let negative_modulus = rsa_blob(E_65537, &modulus[1..]);
        let zero_byte_exponent = rsa_blob(&[0x00], &modulus);
        for blob in [padded_exponent, negative_modulus, zero_byte_exponent] {
            assert_eq!(
                PublicKey::parse(&line("ssh-rsa", &blob)),
                Err(KeyError::NonCanonicalInteger)
            );
        }
    }

    #[test]
    fn ed25519_key_of_wrong_length_is_refused() {
        let blob = wire(&[b"ssh-ed25519", &[7; 31]]);
        assert_eq!(
            PublicKey::parse(&line("ssh-ed25519", &blob)),
            Err(KeyError::InvalidEd25519Key { len: 31 })
        );
    }

    #[test]
    fn ecdsa_curve_must_match_the_type() {
        let blob = wire(&[b"ecdsa-sha2-nistp256", b"nistp384", &fake_point(65)]);
        assert_eq!(
            PublicKey::parse(&line("ecdsa-sha2-nistp256", &blob)),
            Err(KeyError::CurveMismatch)
        );
    }

    #[test]
    fn ecdsa_point_must_be_uncompressed_and_sized_for_the_curve() {
        let mut compressed = fake_point(33);
        compressed[0] = 0x02;
        let mut wrong_prefix = fake_point(65);
        wrong_prefix[0] = 0x03;
        for point in [compressed, wrong_prefix, fake_point(97), vec![0x00]] {
            assert_eq!(
                PublicKey::parse(&line("ecdsa-sha2-nistp256", &ecdsa_p256_blob(&point))),
                Err(KeyError::InvalidPoint)
            );
        }
        let p521 = wire(&[b"ecdsa-sha2-nistp521", b"nistp521", &fake_point(133)]);
        let key = PublicKey::parse(&line("ecdsa-sha2-nistp521", &p521)).unwrap();
        assert_eq!(key.bits(), 521);
    }

    #[test]
    fn sk_keys_built_by_hand_are_accepted() {
        let ed = wire(&[b"sk-ssh-ed25519@openssh.com", &[9; 32], b"ssh:"]);
        let key = PublicKey::parse(&line("sk-ssh-ed25519@openssh.com", &ed)).unwrap();
        assert_eq!(key.key_type(), KeyType::SkEd25519);
        assert_eq!(key.bits(), 256);

        let ec = wire(&[
            b"sk-ecdsa-sha2-nistp256@openssh.com",
            b"nistp256",
            &fake_point(65),
            b"ssh:",
        ]);
        let key = PublicKey::parse(&line("sk-ecdsa-sha2-nistp256@openssh.com", &ec)).unwrap();
        assert_eq!(key.key_type(), KeyType::SkEcdsaP256);
        assert_eq!(key.bits(), 256);
    }

    #[test]
    fn sk_key_without_application_is_refused() {
        let missing = wire(&[b"sk-ssh-ed25519@openssh.com", &[9; 32]]);
        assert_eq!(
            PublicKey::parse(&line("sk-ssh-ed25519@openssh.com", &missing)),
            Err(KeyError::Truncated)
        );
        let ec_name = b"sk-ecdsa-sha2-nistp256@openssh.com";
        let missing = wire(&[ec_name, b"nistp256", &fake_point(65)]);
        assert_eq!(
            PublicKey::from_blob_base64(&STANDARD.encode(&missing)),
            Err(KeyError::Truncated)
        );
    }

    #[test]
    fn sk_ecdsa_application_must_be_utf8_and_printable() {
        let ec_name = b"sk-ecdsa-sha2-nistp256@openssh.com";
        for application in [&b"ssh:\xff"[..], b"ssh:\x1b[31m", b""] {
            let blob = wire(&[ec_name, b"nistp256", &fake_point(65), application]);
            assert_eq!(
                PublicKey::from_blob_base64(&STANDARD.encode(&blob)),
                Err(KeyError::InvalidApplication),
                "{application:?}"
            );
        }
    }

    #[test]
    fn sk_application_must_be_short_printable_and_non_empty() {
        let too_long = vec![b'a'; MAX_APPLICATION_LEN + 1];
        for application in [&b""[..], b"ssh:\x1b[31m", b"ssh:\xff", &too_long] {
            let blob = wire(&[b"sk-ssh-ed25519@openssh.com", &[9; 32], application]);
            assert_eq!(
                PublicKey::parse(&line("sk-ssh-ed25519@openssh.com", &blob)),
                Err(KeyError::InvalidApplication)
            );
        }
        let longest = vec![b'a'; MAX_APPLICATION_LEN];
        let blob = wire(&[b"sk-ssh-ed25519@openssh.com", &[9; 32], &longest]);
        assert!(PublicKey::parse(&line("sk-ssh-ed25519@openssh.com", &blob)).is_ok());
    }

    // ---- comments and output -------------------------------------------------------------

    #[test]
    fn comment_is_sanitized() {
        let base = ed25519_line();
        let key = PublicKey::parse(&format!("{base} evil\"; rm -rf /")).unwrap();
        assert!(!key.comment().contains(['"', ';']));
        assert_eq!(key.comment(), "evil__ rm -rf /");

        let key = PublicKey::parse(&format!("{base} $(reboot)`id`\\x café\0*!")).unwrap();
        assert_eq!(key.comment(), "_(reboot)_id__x caf____");
    }

    #[test]
    fn comment_whitespace_is_collapsed_and_trimmed() {
        let key =
            PublicKey::parse(&format!("{}  \t alice  \t laptop \t\n", ed25519_line())).unwrap();
        assert_eq!(key.comment(), "alice laptop");
        assert_eq!(key.to_line(), format!("{} alice laptop", ed25519_line()));
    }

    #[test]
    fn comment_is_capped_at_128_chars() {
        let key = PublicKey::parse(&format!("{} {}", ed25519_line(), "é".repeat(300))).unwrap();
        assert_eq!(key.comment(), "_".repeat(MAX_COMMENT_CHARS));
        // A cut that lands on a separator must not leave a trailing space.
        let words = format!("{} b", "a".repeat(MAX_COMMENT_CHARS - 1));
        assert_eq!(
            PublicKey::parse(&ed25519_line())
                .unwrap()
                .with_comment(&words)
                .comment(),
            "a".repeat(MAX_COMMENT_CHARS - 1)
        );
    }

    #[test]
    fn with_comment_sanitizes_like_parse() {
        let key = PublicKey::parse(&ed25519_line()).unwrap();
        let raw = "  iam:alice \t key \"x\";  ";
        let parsed = PublicKey::parse(&format!("{} {raw}", ed25519_line())).unwrap();
        let replaced = key.clone().with_comment(raw);
        assert_eq!(replaced.comment(), "iam:alice key _x__");
        assert_eq!(replaced, parsed);
        assert_eq!(key.clone().with_comment("a\nb\rc").comment(), "a_b_c");
        assert_eq!(key.with_comment("").to_line(), ed25519_line());
    }

    #[test]
    fn line_without_comment_has_no_trailing_space() {
        let key = PublicKey::parse(&format!("{}   \n", ed25519_line())).unwrap();
        assert_eq!(key.comment(), "");
        assert_eq!(key.to_line(), ed25519_line());
    }

    #[test]
    fn key_type_names_round_trip() {
        for key_type in KeyType::ALL {
            assert_eq!(KeyType::from_name(key_type.name()), Some(key_type));
        }
        assert_eq!(KeyType::from_name("ssh-dss"), None);
        assert_eq!(KeyType::SkEcdsaP256.label(), "ECDSA-SK");
        assert_eq!(KeyType::SkEd25519.label(), "ED25519-SK");
    }
}
