//! The issuer's wire format: one JSON POST to `/v1/certificate`, one JSON answer.
//!
//! Parsed strictly (unknown fields are errors) and bounded: the request body is at most
//! [`MAX_REQUEST_BYTES`]. Every field is untrusted until the handler has checked it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The path both `ca serve` and the Lambda function URL answer on.
pub const PATH: &str = "/v1/certificate";
/// A request carries one public key (RSA 8192 is ~1.4 KB) and a proof (a session token can be
/// ~2 KB): 32 KiB is far above any honest request.
pub const MAX_REQUEST_BYTES: usize = 32 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CertKind {
    /// A user certificate for the caller's own key; principal = the caller's Linux name.
    User,
    /// A host certificate for an instance's host key; principals = AWS-verified names.
    Host,
}

/// A signed STS GetCallerIdentity POST, as the client made it. Header names are lower case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Proof {
    pub headers: BTreeMap<String, String>,
    /// Must equal [`super::STS_BODY`]; the issuer sends its own copy, never this one.
    pub body: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssueRequest {
    pub kind: CertKind,
    /// One OpenSSH public key line (`ssh-ed25519 AAAA… comment`).
    pub public_key: String,
    pub proof: Proof,
    /// Requested lifetime; the issuer clamps it to its maximum. `None`: the issuer's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validity_secs: Option<u64>,
    /// `source-address` for a user certificate: IP addresses or CIDR ranges.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_addresses: Vec<String>,
    /// A user certificate valid on one instance only (`--host i-…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_scope: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssueResponse {
    /// One OpenSSH certificate line (`ssh-ed25519-cert-v01@openssh.com AAAA…`).
    pub certificate: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorResponse {
    /// What went wrong and, where the caller can fix it, how.
    pub error: String,
}
