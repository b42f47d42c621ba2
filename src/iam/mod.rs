//! The IAM directory: the only source of truth for who may log in and with which keys.
//!
//! Callers see a small trait and a typed error whose variant decides behaviour: `Unreachable`
//! means "fall back to the cache", `NotFound` is the only authoritative "gone" (purge), and
//! `AccessDenied` names the IAM action the admin must allow. Nothing here touches local state.

mod answer;
mod aws;

use std::future::Future;

pub use answer::{missing_required, Malformed};
pub(crate) use aws::{cause_chain, classify_sdk, printable, sdk_config, SdkErrorKinds};
pub use aws::{total_calls, AwsIam, ClientOptions, UntrustedAwsConfig};

/// One SSH key of an IAM user, as ListSSHPublicKeys reports it (no body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyMeta {
    pub id: String,
    pub active: bool,
    /// RFC 3339 upload time, as IAM reports it.
    pub uploaded: String,
}

/// An IAM user as ListUsers and GetGroup list it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct IamUser {
    pub name: String,
    /// The immutable UserId (`AIDA…`) that UIDs are hashed from.
    pub id: String,
    /// CreateDate, unix seconds; `None` when the answer had none (the SDK reads a missing
    /// CreateDate as the epoch, which is taken for "none" too). Evidence in keymaker's
    /// adoption (`sync::plan::keymaker_evidence`): an IAM user created after a local account
    /// is not the person that account was made for.
    pub created_at: Option<u64>,
}

/// Who an IAM user name stands for right now (GetUser): IAM's own spelling of the name (IAM
/// names are case-insensitive) and the immutable UserId, which changes when a user is deleted
/// and re-created under the same name.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Identity {
    pub user_name: String,
    pub user_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IamError {
    /// Network failure, timeout, throttling, a server error or an incomplete (malformed) answer:
    /// IAM said nothing usable about the user.
    #[error("IAM could not be reached: {0}")]
    Unreachable(String),
    /// No AWS credentials could be resolved; also not a statement about the user.
    #[error("no usable AWS credentials: set them up with `aws configure`, `aws sso login` or AWS_PROFILE (on EC2: attach an instance profile); {0}")]
    NoCredentials(String),
    /// IAM says the user (or key) does not exist: the only authoritative "gone".
    #[error("IAM has no such entity: {0}")]
    NotFound(String),
    #[error("IAM denied {action}: allow \"{action}\" in the IAM policy of the caller ({message})")]
    AccessDenied {
        action: &'static str,
        message: String,
    },
    #[error("IAM allows at most 5 SSH public keys per user: {0}")]
    LimitExceeded(String),
    #[error("IAM already has this SSH public key: {0}")]
    Duplicate(String),
    #[error("IAM refused the key: {0}")]
    InvalidKey(String),
    #[error("IAM error: {0}")]
    Other(String),
}

impl IamError {
    /// Whether the cache may stand in for IAM: only when IAM said nothing about the user.
    pub fn is_outage(&self) -> bool {
        matches!(
            self,
            IamError::Unreachable(_) | IamError::NoCredentials(_) | IamError::AccessDenied { .. }
        )
    }
}

/// What `authorized-keys` needs from IAM. Tests use an in-memory fake; production wraps
/// aws-sdk-iam.
pub trait Directory {
    fn list_keys(&self, user: &str) -> impl Future<Output = Result<Vec<KeyMeta>, IamError>>;

    /// Fetches key bodies concurrently; one result per id, in order.
    fn get_keys(
        &self,
        user: &str,
        ids: &[String],
    ) -> impl Future<Output = Vec<Result<String, IamError>>>;

    fn groups_for_user(&self, user: &str) -> impl Future<Output = Result<Vec<String>, IamError>>;

    /// The identity the name stands for now (GetUser).
    fn identity(&self, user: &str) -> impl Future<Output = Result<Identity, IamError>>;

    /// IAM operations started so far (each retry of one operation counts once).
    fn calls(&self) -> usize;

    /// The instance profile named `name`, its name not its ARN (GetInstanceProfile), which the
    /// certificate issuer reads to judge a host; [`IamError::NotFound`] when IAM has none. Only
    /// [`AwsIam`] reads it; every other directory refuses, so a host certificate is never
    /// issued on a directory that did not ask IAM.
    fn instance_profile(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<InstanceProfile, IamError>> {
        let _ = name;
        std::future::ready(Err(IamError::Other(
            "this directory does not read instance profiles".into(),
        )))
    }
}

/// An instance profile as GetInstanceProfile reports it (host certificates, issue 11).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceProfile {
    pub arn: String,
    /// The names of its roles (an instance profile holds at most one today).
    pub roles: Vec<String>,
}

/// A borrowed directory is a directory (callers keep theirs to read `calls` afterwards).
impl<T: Directory> Directory for &T {
    fn list_keys(&self, user: &str) -> impl Future<Output = Result<Vec<KeyMeta>, IamError>> {
        (**self).list_keys(user)
    }
    fn get_keys(
        &self,
        user: &str,
        ids: &[String],
    ) -> impl Future<Output = Vec<Result<String, IamError>>> {
        (**self).get_keys(user, ids)
    }
    fn groups_for_user(&self, user: &str) -> impl Future<Output = Result<Vec<String>, IamError>> {
        (**self).groups_for_user(user)
    }
    fn identity(&self, user: &str) -> impl Future<Output = Result<Identity, IamError>> {
        (**self).identity(user)
    }
    fn calls(&self) -> usize {
        (**self).calls()
    }
    fn instance_profile(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<InstanceProfile, IamError>> {
        (**self).instance_profile(name)
    }
}

/// SSH public key ids look like `APKAEIBAERJR2EXAMPLE`; anything else is refused before it is
/// used as a cache file name.
pub fn is_valid_key_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ids_that_could_escape_a_directory_are_refused() {
        assert!(is_valid_key_id("APKAEIBAERJR2EXAMPLE"));
        for bad in ["", "../etc", "apka", "APKA/X", "APKA.X", &"A".repeat(129)] {
            assert!(!is_valid_key_id(bad), "{bad}");
        }
    }
}
