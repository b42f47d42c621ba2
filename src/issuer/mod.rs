//! The certificate issuer: the only holder of `kms:Sign` on the CA key (issue 11).
//!
//! One handler, run two ways: as an AWS Lambda function (custom runtime) and as
//! `keyward ca serve --listen ADDR`. A caller proves who they are with a signed STS
//! `GetCallerIdentity` POST ([`Proof`]) that the issuer replays to STS itself; the issuer then
//! decides what to certify from what STS and IAM (and, for hosts, EC2) said — never from what
//! the caller claims — builds the certificate with [`crate::keys::cert`] and has KMS sign it
//! through [`crate::ca::Ca`].
//!
//! This file holds the shapes every part shares: the wire format ([`IssueRequest`],
//! [`IssueResponse`], [`ErrorResponse`]), the [`Proof`], the STS answer ([`Caller`]), the
//! [`Sts`] boundary and the one error type ([`IssueError`]).
//!
//! Invariants:
//! - **The issuer builds the STS call itself**: a fixed STS endpoint from its own config, the
//!   fixed body [`STS_BODY`], and only the allow-listed headers ([`PROOF_HEADERS`]) copied from
//!   the proof. Never a URL, host, method or body from the client (the class of Vault's
//!   CVE-2020-16250).
//! - **A proof is bound** to this issuer ([`AUDIENCE_HEADER`]) and to the key being certified
//!   ([`KEY_HEADER`], its SHA256 fingerprint); both must be among the headers the SigV4
//!   signature covers, so STS refuses a proof whose binding was changed, and the issuer refuses
//!   one bound elsewhere before it calls STS.
//! - **Unauthenticated callers learn nothing about who exists**: until STS has accepted the
//!   proof, errors describe only the request's shape.
//! - Certificates are issued to IAM users (user certificates) and to instance roles (host
//!   certificates, after EC2 confirmed the instance); SSO role sessions and other assumed roles
//!   are refused with a message that says so.

pub mod check;
pub mod client;
pub mod handler;
pub mod host;
pub mod lambda;
pub mod proof;
pub mod serve;
pub mod sts;
pub mod wire;

use std::future::Future;

pub use wire::{CertKind, ErrorResponse, IssueRequest, IssueResponse, Proof};

/// The header that binds a proof to one issuer (its configured `audience`).
pub const AUDIENCE_HEADER: &str = "x-keyward-audience";
/// The header that binds a proof to one public key: `SHA256:<base64>` of the key's blob, as
/// `ssh-keygen -lf` prints it.
pub const KEY_HEADER: &str = "x-keyward-key";
/// Where a proof is signed for and replayed to unless configured otherwise, on both sides: STS's
/// global endpoint (signed for `us-east-1`). A proof is signed for one STS host, so a laptop
/// and an issuer in different regions must agree on it; one default that does not depend on
/// either side's region makes them agree with no configuration. An issuer configured with
/// another `sts_endpoint` needs its clients to set `AWS_ENDPOINT_URL_STS` to the same URL.
pub const DEFAULT_STS_ENDPOINT: &str = "https://sts.amazonaws.com";
/// The only body the issuer ever sends to STS.
pub const STS_BODY: &str = "Action=GetCallerIdentity&Version=2011-06-15";
/// The only headers copied from a proof into the replayed STS request (lower case). `host` is
/// never copied: the issuer sets it from its own STS endpoint.
pub const PROOF_HEADERS: &[&str] = &[
    "authorization",
    "content-type",
    "x-amz-date",
    "x-amz-security-token",
    AUDIENCE_HEADER,
    KEY_HEADER,
];
/// The headers a proof's SigV4 `SignedHeaders` must include.
pub const REQUIRED_SIGNED_HEADERS: &[&str] = &["host", "x-amz-date", AUDIENCE_HEADER, KEY_HEADER];

/// Who STS said signed the proof (GetCallerIdentityResult), not yet judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// `arn:aws:iam::123456789012:user/path/alice` or
    /// `arn:aws:sts::123456789012:assumed-role/ROLE/SESSION`.
    pub arn: String,
    pub account: String,
    /// `AIDA…` for an IAM user; `AROA…:SESSION` for an assumed role.
    pub user_id: String,
}

/// What kind of principal a [`Caller`] is, read from its ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallerKind {
    /// An IAM user (the name without its path).
    IamUser { name: String },
    /// A session of an assumed role; for EC2 instance credentials the session is the instance id.
    AssumedRole { role: String, session: String },
    /// An IAM Identity Center (SSO) session: a role named `AWSReservedSSO_…`; no IAM user, no
    /// IAM groups. Refused for now.
    SsoSession { role: String, session: String },
}

/// The STS boundary: replay a proof and say who signed it. Production replays to the
/// configured endpoint; unit tests use a fake.
pub trait Sts {
    fn caller(&self, proof: &Proof) -> impl Future<Output = Result<Caller, IssueError>>;
}

/// Why a request got no certificate. The variant decides the HTTP status and the client's
/// exit code; the text is shown to the caller, so it never names another identity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IssueError {
    /// The request is malformed (HTTP 400): bad JSON, an unusable public key, a proof missing a
    /// header or not bound as required.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// STS refused the proof, or it is bound to another issuer or key (HTTP 401).
    #[error("not authenticated: {0}")]
    Unauthenticated(String),
    /// The caller is authenticated but may not have this certificate (HTTP 403).
    #[error("refused: {0}")]
    Forbidden(String),
    /// STS, IAM, EC2 or KMS could not be reached or answered badly (HTTP 503).
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The issuer is misconfigured or hit a bug (HTTP 500).
    #[error("issuer error: {0}")]
    Internal(String),
}

impl IssueError {
    pub fn http_status(&self) -> u16 {
        match self {
            IssueError::BadRequest(_) => 400,
            IssueError::Unauthenticated(_) => 401,
            IssueError::Forbidden(_) => 403,
            IssueError::Unavailable(_) => 503,
            IssueError::Internal(_) => 500,
        }
    }
}
