//! EC2, as keyward needs it: what an instance is, by id (issue 11's host certificates; issue 12
//! reuses it to reach hosts by name).
//!
//! aws-sdk-ec2 costs ~8 minutes of release build and ~10 GB of rustc memory for a handful of
//! calls, so keyward speaks EC2's Query API itself (a SigV4-signed form POST and a small XML
//! answer) behind the [`Ec2`] trait; unit tests use a fake, integration tests moto.
//!
//! Invariants:
//! - Every field of an answer is checked before use: instance ids match `i-` + 8 or 17 hex
//!   digits, addresses parse as IP addresses, DNS names are plain host names. An answer that
//!   fails a check is an error, never a partly filled [`Instance`].

pub mod query;

use std::future::Future;
use std::net::IpAddr;

/// `i-` then 8 (older instances) or 17 lower-case hex digits, as EC2 writes them: the only
/// instance ids keyward puts in a request, a certificate, a principal or a log line.
pub fn is_instance_id(id: &str) -> bool {
    id.strip_prefix("i-").is_some_and(|hex| {
        matches!(hex.len(), 8 | 17)
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// One instance as DescribeInstances reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub id: String,
    /// `pending`, `running`, `stopping`, `stopped`, `shutting-down`, `terminated`.
    pub state: String,
    /// `arn:aws:iam::123456789012:instance-profile/NAME`, when the instance has a profile.
    pub instance_profile_arn: Option<String>,
    pub private_ip: Option<IpAddr>,
    pub private_dns: Option<String>,
    pub public_ip: Option<IpAddr>,
    pub public_dns: Option<String>,
    /// The `Name` tag: shown to people, never certified (anyone with ec2:CreateTags sets it).
    pub name_tag: Option<String>,
}

/// Why EC2 gave no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Ec2Error {
    #[error("EC2 could not be reached: {0}")]
    Unreachable(String),
    #[error("no usable AWS credentials: {0}")]
    NoCredentials(String),
    #[error("EC2 denied {action}: allow \"{action}\" in the IAM policy of the caller ({message})")]
    AccessDenied {
        action: &'static str,
        message: String,
    },
    #[error("EC2 answered badly: {0}")]
    Malformed(String),
}

pub trait Ec2 {
    /// The instance with this id; `Ok(None)` when EC2 says there is none.
    fn instance(&self, id: &str) -> impl Future<Output = Result<Option<Instance>, Ec2Error>>;
}
