//! keyward's SSH certificate authority: an ECDSA key that lives in AWS KMS and never leaves it.
//!
//! `keyward ca init` creates the key (or adopts the one an alias names) and prints its public
//! half in OpenSSH form; [`Ca::sign_user_cert`] has a certificate built by [`crate::keys::cert`]
//! signed by KMS `Sign` and assembles it. The KMS operations sit behind the [`Kms`] trait: the
//! production adapter ([`AwsKms`]) wraps aws-sdk-kms, unit tests use an in-memory fake, and the
//! binary-level tests use moto.
//!
//! Invariants:
//! - **The private key never leaves KMS.** keyward asks KMS for the public key and for
//!   signatures; no operation here exports, imports or wraps key material, and nothing in
//!   keyward holds a CA private key.
//! - **Only the issuer may call `Sign`.** Whoever may call `kms:Sign` on this key can mint any
//!   certificate. That is enforced outside keyward, by the key policy and the IAM policies
//!   (granted to the issuer's role only; `keyward policy --issuer` will print it), not by this
//!   code; `ca init` creates the key with the account's default key policy, which the admin
//!   narrows before the issuer goes live.
//! - **What is signed is capped and built here**: a RAW message of at most
//!   [`cert::MAX_TBS_LEN`] bytes (real KMS refuses more; moto does not), refused before KMS is
//!   called; certificates are only ever built by [`cert::build_user_cert`] and
//!   [`cert::build_host_cert`].
//! - **A CA key is ECDSA P-256 or P-384 with `KeyUsage=SIGN_VERIFY`, enabled.** An alias that
//!   names any other key is refused, never "fixed": keyward does not repoint, disable or delete
//!   keys it did not create.
//! - **Answers are checked**: the public key is read strictly from its DER and must agree with
//!   the curve the key is described with; a signature must be strict DER with `1 <= r, s < n`
//!   ([`der`]). A signature is assembled into a certificate only when it decodes exactly.

pub mod der;
mod kms;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
pub(crate) mod fake;

use std::future::Future;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ssh_encoding::Encode as _;

use crate::keys::cert::{
    self, CertError, Certificate, HostCertRequest, SigningAlgorithm, UnsignedCertificate,
    UserCertRequest,
};
use crate::keys::PublicKey;

pub use der::DerError;
pub use kms::AwsKms;

/// The alias `keyward ca init` uses unless told otherwise.
pub const DEFAULT_ALIAS: &str = "alias/keyward-ca";
/// KMS's key usage for asymmetric signing keys.
const SIGN_VERIFY: &str = "SIGN_VERIFY";
/// KMS's state of a key that can sign.
const ENABLED: &str = "Enabled";

/// The CA key's curve; it fixes the KMS key spec, the KMS signing algorithm and the SSH type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Curve {
    P256,
    P384,
}

impl Curve {
    /// The KMS `KeySpec`.
    pub fn key_spec(self) -> &'static str {
        match self {
            Curve::P256 => "ECC_NIST_P256",
            Curve::P384 => "ECC_NIST_P384",
        }
    }

    pub fn from_key_spec(spec: &str) -> Option<Curve> {
        [Curve::P256, Curve::P384]
            .into_iter()
            .find(|c| c.key_spec() == spec)
    }

    /// The signature the certificate names; KMS `ECDSA_SHA_256` or `ECDSA_SHA_384`.
    pub fn signing_algorithm(self) -> SigningAlgorithm {
        match self {
            Curve::P256 => SigningAlgorithm::EcdsaSha256,
            Curve::P384 => SigningAlgorithm::EcdsaSha384,
        }
    }

    /// The KMS `SigningAlgorithm` name.
    pub fn kms_signing_algorithm(self) -> &'static str {
        match self {
            Curve::P256 => "ECDSA_SHA_256",
            Curve::P384 => "ECDSA_SHA_384",
        }
    }

    fn ssh_names(self) -> (&'static str, &'static str) {
        match self {
            Curve::P256 => ("ecdsa-sha2-nistp256", "nistp256"),
            Curve::P384 => ("ecdsa-sha2-nistp384", "nistp384"),
        }
    }
}

/// What KMS says about a key (DescribeKey), as strings so the trait stays free of SDK types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    pub key_id: String,
    /// `arn:PARTITION:kms:REGION:ACCOUNT:key/ID`: the account is the one whose credentials
    /// named the key (aliases resolve only in the caller's own account).
    pub arn: String,
    pub usage: String,
    pub spec: String,
    pub state: String,
}

/// A KMS failure, classified so that the caller's exit code says who can fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KmsError {
    /// Network failure, timeout, throttling, a server error or an answer missing what every
    /// answer has.
    #[error("KMS could not be reached: {0}")]
    Unreachable(String),
    #[error("no usable AWS credentials: set them up with `aws configure`, `aws sso login` or AWS_PROFILE; {0}")]
    NoCredentials(String),
    #[error("no AWS region is configured: KMS keys are regional (set AWS_REGION or `region` in the AWS config)")]
    NoRegion,
    #[error("KMS denied {action}: allow \"{action}\" to the caller in its IAM policy and the key policy ({message})")]
    AccessDenied {
        action: &'static str,
        message: String,
    },
    #[error("KMS has no such key or alias: {0}")]
    NotFound(String),
    #[error("KMS already has this alias: {0}")]
    AlreadyExists(String),
    #[error("KMS error: {0}")]
    Other(String),
}

#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error(transparent)]
    Kms(#[from] KmsError),
    #[error(
        "{0:?} is not a KMS alias keyward can use: `alias/` then 1 to 250 letters, digits, \
         / _ -, and not under alias/aws/"
    )]
    InvalidAlias(String),
    #[error(
        "no KMS key has the alias {alias}: create the CA with `keyward ca init --alias {alias}`"
    )]
    NoSuchCa { alias: String },
    #[error(
        "{alias} names KMS key {key_id} with KeyUsage={usage} and KeySpec={spec}; a keyward CA \
         needs KeyUsage=SIGN_VERIFY with KeySpec=ECC_NIST_P256 or ECC_NIST_P384 (no RSA CA): \
         pass another --alias and `keyward ca init` creates one, or point this alias at such a \
         key (`aws kms update-alias`)"
    )]
    WrongKey {
        alias: String,
        key_id: String,
        usage: String,
        spec: String,
    },
    #[error(
        "{alias} names an existing {found} key, not {wanted}: drop --curve to adopt it, or pass \
         another --alias for a new {wanted} CA",
        found = .found.key_spec(), wanted = .wanted.key_spec()
    )]
    CurveMismatch {
        alias: String,
        found: Curve,
        wanted: Curve,
    },
    #[error(
        "{alias} names KMS key {key_id}, which is {state}, not Enabled: enable it \
         (`aws kms enable-key`, or `aws kms cancel-key-deletion` first) or pass another --alias"
    )]
    NotEnabled {
        alias: String,
        key_id: String,
        state: String,
    },
    #[error("KMS key {key_id}: GetPublicKey: {error}")]
    PublicKey { key_id: String, error: DerError },
    #[error("KMS key {key_id} is described as {described} but its public key is {found}")]
    PublicKeyMismatch {
        key_id: String,
        described: &'static str,
        found: &'static str,
    },
    #[error("KMS key {key_id}: Sign: {error}")]
    Signature { key_id: String, error: DerError },
    #[error(
        "refusing to ask KMS to sign {len} bytes: a RAW message is at most {} bytes",
        cert::MAX_TBS_LEN
    )]
    TooLarge { len: usize },
    #[error(transparent)]
    Cert(#[from] CertError),
}

/// The KMS operations a CA needs. Production wraps aws-sdk-kms ([`AwsKms`]); unit tests use an
/// in-memory fake.
pub trait Kms {
    /// The key `key` (an id, ARN or `alias/…`) names; `None` when KMS says there is none.
    fn describe(&self, key: &str) -> impl Future<Output = Result<Option<KeyInfo>, KmsError>>;

    /// A new SIGN_VERIFY key on `curve`.
    fn create_key(
        &self,
        curve: Curve,
        description: &str,
    ) -> impl Future<Output = Result<KeyInfo, KmsError>>;

    /// Points a new alias at `key_id`; [`KmsError::AlreadyExists`] when the alias exists.
    fn create_alias(&self, alias: &str, key_id: &str)
        -> impl Future<Output = Result<(), KmsError>>;

    /// Schedules the deletion of a key this process created and did not use.
    fn schedule_deletion(&self, key_id: &str) -> impl Future<Output = Result<(), KmsError>>;

    /// The key's DER `SubjectPublicKeyInfo`.
    fn public_key(&self, key_id: &str) -> impl Future<Output = Result<Vec<u8>, KmsError>>;

    /// A DER `ECDSA-Sig-Value` over `message` (MessageType RAW: KMS hashes it).
    fn sign(
        &self,
        key_id: &str,
        message: &[u8],
        curve: Curve,
    ) -> impl Future<Output = Result<Vec<u8>, KmsError>>;
}

/// Whether `ca init` made the key or found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Created,
    Adopted,
}

/// A CA key in KMS, checked, with its public key read.
#[derive(Debug)]
pub struct Ca<K> {
    kms: K,
    key_id: String,
    /// The AWS account holding the key, from its ARN; `None` when the ARN has none.
    account: Option<String>,
    curve: Curve,
    public_key: PublicKey,
}

/// KMS alias syntax, minus the `alias/aws/` names AWS reserves for its own keys.
pub fn is_valid_alias(alias: &str) -> bool {
    alias.strip_prefix("alias/").is_some_and(|name| {
        (1..=250).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/_-".contains(&b))
    }) && !alias.starts_with("alias/aws/")
}

/// Whether the key an alias names can be a keyward CA, and on which curve.
pub fn judge(alias: &str, info: &KeyInfo, wanted: Option<Curve>) -> Result<Curve, CaError> {
    let curve = match Curve::from_key_spec(&info.spec) {
        Some(curve) if info.usage == SIGN_VERIFY => curve,
        _ => {
            return Err(CaError::WrongKey {
                alias: alias.to_owned(),
                key_id: info.key_id.clone(),
                usage: info.usage.clone(),
                spec: info.spec.clone(),
            })
        }
    };
    if info.state != ENABLED {
        return Err(CaError::NotEnabled {
            alias: alias.to_owned(),
            key_id: info.key_id.clone(),
            state: info.state.clone(),
        });
    }
    match wanted {
        Some(wanted) if wanted != curve => Err(CaError::CurveMismatch {
            alias: alias.to_owned(),
            found: curve,
            wanted,
        }),
        _ => Ok(curve),
    }
}

/// Creates the CA key under `alias`, or adopts the key the alias already names when it can be
/// a CA (`wanted`, when given, must be its curve). Idempotent; a concurrent `init` that wins
/// the alias leaves this one's new key scheduled for deletion and adopts the winner's.
pub async fn init<K: Kms>(
    kms: K,
    alias: &str,
    wanted: Option<Curve>,
) -> Result<(Ca<K>, Origin), CaError> {
    check_alias(alias)?;
    if let Some(info) = kms.describe(alias).await? {
        let curve = judge(alias, &info, wanted)?;
        return Ok((
            Ca::load(kms, alias, info.key_id, curve)
                .await?
                .with_arn(&info.arn),
            Origin::Adopted,
        ));
    }
    let curve = wanted.unwrap_or(Curve::P256);
    let created = kms
        .create_key(
            curve,
            &format!("keyward SSH certificate authority ({alias})"),
        )
        .await?;
    match kms.create_alias(alias, &created.key_id).await {
        Ok(()) => Ok((
            Ca::load(kms, alias, created.key_id, curve)
                .await?
                .with_arn(&created.arn),
            Origin::Created,
        )),
        Err(KmsError::AlreadyExists(_)) => {
            if let Err(err) = kms.schedule_deletion(&created.key_id).await {
                tracing::warn!(
                    key_id = created.key_id,
                    "another `ca init` took {alias} first; the unused key could not be scheduled for deletion: {err}"
                );
            }
            Ok((adopt(kms, alias, wanted).await?, Origin::Adopted))
        }
        Err(err) => Err(err.into()),
    }
}

/// The CA an alias names, checked as [`init`] checks an adopted key.
pub async fn open<K: Kms>(kms: K, alias: &str) -> Result<Ca<K>, CaError> {
    check_alias(alias)?;
    adopt(kms, alias, None).await
}

/// The existing key `alias` names, if it can be a CA (on `wanted`, when given).
async fn adopt<K: Kms>(kms: K, alias: &str, wanted: Option<Curve>) -> Result<Ca<K>, CaError> {
    let info = kms
        .describe(alias)
        .await?
        .ok_or_else(|| CaError::NoSuchCa {
            alias: alias.to_owned(),
        })?;
    let curve = judge(alias, &info, wanted)?;
    Ok(Ca::load(kms, alias, info.key_id, curve)
        .await?
        .with_arn(&info.arn))
}

/// The 12-digit account of a KMS key ARN (`arn:PARTITION:kms:REGION:ACCOUNT:key/ID`).
pub fn key_account(arn: &str) -> Option<&str> {
    match arn.split(':').collect::<Vec<_>>()[..] {
        ["arn", _, "kms", _, account, resource]
            if account.len() == 12
                && account.bytes().all(|b| b.is_ascii_digit())
                && resource.starts_with("key/") =>
        {
            Some(account)
        }
        _ => None,
    }
}

fn check_alias(alias: &str) -> Result<(), CaError> {
    if is_valid_alias(alias) {
        Ok(())
    } else {
        Err(CaError::InvalidAlias(alias.to_owned()))
    }
}

impl<K: Kms> Ca<K> {
    async fn load(kms: K, alias: &str, key_id: String, curve: Curve) -> Result<Ca<K>, CaError> {
        let spki = kms.public_key(&key_id).await?;
        let (found, point) = der::ec_public_key(&spki).map_err(|error| CaError::PublicKey {
            key_id: key_id.clone(),
            error,
        })?;
        if found != curve {
            return Err(CaError::PublicKeyMismatch {
                key_id,
                described: curve.key_spec(),
                found: found.key_spec(),
            });
        }
        let public_key = ssh_public_key(curve, point)
            .map_err(|error| CaError::PublicKey {
                key_id: key_id.clone(),
                error,
            })?
            .with_comment(alias);
        Ok(Ca {
            kms,
            key_id,
            account: None,
            curve,
            public_key,
        })
    }

    /// The CA's public key in OpenSSH form, commented with its alias.
    pub fn public_key(&self) -> &PublicKey {
        &self.public_key
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    fn with_arn(mut self, arn: &str) -> Self {
        self.account = key_account(arn).map(str::to_owned);
        self
    }

    /// The AWS account holding the key (from its ARN): the account whose IAM an issuer
    /// reads, since it reaches KMS and IAM with the same credentials.
    pub fn account(&self) -> Option<&str> {
        self.account.as_deref()
    }

    pub fn curve(&self) -> Curve {
        self.curve
    }

    /// KMS's signature over `message` as the `(r, s)` a certificate carries. Refuses, without
    /// calling KMS, a message over what real KMS signs raw.
    pub async fn sign_raw(&self, message: &[u8]) -> Result<(Vec<u8>, Vec<u8>), CaError> {
        if message.len() > cert::MAX_TBS_LEN {
            return Err(CaError::TooLarge { len: message.len() });
        }
        let signature = self.kms.sign(&self.key_id, message, self.curve).await?;
        der::ecdsa_signature(&signature, self.curve).map_err(|error| CaError::Signature {
            key_id: self.key_id.clone(),
            error,
        })
    }

    /// Builds the user certificate `request` describes and has KMS sign it.
    pub async fn sign_user_cert(
        &self,
        request: &UserCertRequest<'_>,
    ) -> Result<Certificate, CaError> {
        self.sign(cert::build_user_cert(request, &self.public_key)?)
            .await
    }

    /// Builds the host certificate `request` describes and has KMS sign it. The issuer calls
    /// this only after EC2 confirmed the instance (`issuer::host`).
    pub async fn sign_host_cert(
        &self,
        request: &HostCertRequest<'_>,
    ) -> Result<Certificate, CaError> {
        self.sign(cert::build_host_cert(request, &self.public_key)?)
            .await
    }

    async fn sign(&self, unsigned: UnsignedCertificate) -> Result<Certificate, CaError> {
        if unsigned.signing_algorithm() != self.curve.signing_algorithm() {
            return Err(CertError::UnsupportedCaKey(self.public_key.key_type()).into());
        }
        let (r, s) = self.sign_raw(unsigned.tbs()).await?;
        Ok(unsigned.assemble(&r, &s)?)
    }
}

/// The OpenSSH public key of an uncompressed SEC1 point, through keyward's own key parser.
fn ssh_public_key(curve: Curve, point: &[u8]) -> Result<PublicKey, DerError> {
    let (type_name, curve_name) = curve.ssh_names();
    let mut blob = Vec::new();
    type_name
        .encode(&mut blob)
        .and_then(|()| curve_name.encode(&mut blob))
        .and_then(|()| point.encode(&mut blob))
        .map_err(|_| DerError::PublicKey)?;
    PublicKey::from_blob_base64(&STANDARD.encode(&blob)).map_err(|_| DerError::PublicKey)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests;
