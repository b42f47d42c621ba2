//! Host certificates: which names an instance's host key may be certified for, and the call
//! that certifies it.
//!
//! An instance asks with its instance-role credentials; STS reports them as
//! `assumed-role/ROLE/i-…`. The session name proves nothing by itself: anyone allowed to
//! assume the role can name a session `i-victim`. So [`judge_host`] certifies only what EC2
//! confirms about the instance the session names, and only when that instance runs with an
//! instance profile holding the caller's role, in the caller's own account.
//!
//! Invariants:
//! - Only an assumed role listed in the issuer's `host_roles` may ask; IAM users, SSO sessions
//!   and other roles are refused before EC2 is asked anything.
//! - The session must be a well-formed instance id; EC2 must say the instance exists, is
//!   `running`, and has an instance profile in the caller's account whose roles include the
//!   caller's role. Anything else is [`IssueError::Forbidden`], never a smaller certificate.
//! - Principals come from EC2 only: the instance id, its private and public IP addresses and
//!   DNS names. Never the `Name` tag (anyone with `ec2:CreateTags` sets it), never a name the
//!   client sent.
//! - The lifetime is the issuer's: the request's `validity_secs` is clamped to
//!   [`MIN_HOST_VALIDITY_SECS`]..=[`cert::MAX_HOST_VALIDITY_SECS`], default
//!   [`cert::DEFAULT_HOST_VALIDITY_SECS`].

use crate::ca::{Ca, Kms};
use crate::ec2::{Ec2, Ec2Error, Instance};
use crate::iam::{Directory, IamError};
use crate::keys::cert::{self, Certificate, HostCertRequest, NONCE_LEN};
use crate::keys::PublicKey;

use super::handler::BACKDATE_SECS;
use super::{Caller, CallerKind, IssueError};

/// The shortest host certificate the issuer makes: an hour.
pub const MIN_HOST_VALIDITY_SECS: u64 = 60 * 60;
/// The EC2 state of an instance that may get a certificate.
const RUNNING: &str = "running";

/// Everything about one host-certificate request that is not an adapter: who STS said asked,
/// the key, and the serial and nonce the handler drew.
#[derive(Debug, Clone)]
pub struct HostAsk<'a> {
    pub caller: &'a Caller,
    pub kind: &'a CallerKind,
    /// The host key from the request, already through [`PublicKey::parse`] (and bound to the
    /// proof by the handler).
    pub subject: &'a PublicKey,
    /// The request's `validity_secs`.
    pub validity_secs: Option<u64>,
    /// The issuer's `max_host_validity`.
    pub max_validity_secs: u64,
    /// Seconds since the Unix epoch.
    pub now: u64,
    pub serial: u64,
    /// From a CSPRNG.
    pub nonce: [u8; NONCE_LEN],
}

/// The caller's role and the instance it may ask for: the role must be in `host_roles` and the
/// session a well-formed instance id. Refuses everything else, before anything is asked of EC2.
pub fn host_session<'a>(
    kind: &'a CallerKind,
    host_roles: &[String],
) -> Result<(&'a str, &'a str), IssueError> {
    let (role, session) = match kind {
        CallerKind::AssumedRole { role, session } => (role, session),
        CallerKind::IamUser { .. } => {
            return Err(IssueError::Forbidden(
                "host certificates are issued to instance roles, not to IAM users: run \
                 `keyward host-cert` on the instance with its instance-profile credentials"
                    .into(),
            ))
        }
        CallerKind::SsoSession { .. } => {
            return Err(IssueError::Forbidden(
                "host certificates are issued to instance roles, not to SSO sessions".into(),
            ))
        }
    };
    if !host_roles.iter().any(|r| r == role) {
        return Err(IssueError::Forbidden(format!(
            "role {role} may not ask for host certificates: the issuer's admin lists the \
             instance roles that may in `host_roles` ([issuer] in keyward.toml)"
        )));
    }
    if !crate::ec2::is_instance_id(session) {
        return Err(IssueError::Forbidden(
            "the role session is not an instance id (i-…): host certificates are issued to \
             EC2 instance credentials only, whose session EC2 names after the instance"
                .into(),
        ));
    }
    Ok((role, session))
}

/// The instance profile name in `arn:aws:iam::ACCOUNT:instance-profile/PATH/NAME`, with the
/// account; `None` for anything else.
pub fn instance_profile_name(arn: &str) -> Option<(&str, &str)> {
    let rest = arn.strip_prefix("arn:")?;
    let mut parts = rest.splitn(5, ':');
    let (_partition, service, _region, account, resource) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    let path_and_name = resource.strip_prefix("instance-profile/")?;
    let name = path_and_name.rsplit('/').next()?;
    let name_ok = (1..=128).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c));
    let account_ok = account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit());
    (service == "iam" && name_ok && account_ok).then_some((account, name))
}

/// The names to certify for the instance a host-role session names, or why none: the decision
/// of this module, pure. `instance` is what EC2 said about the session's instance (`None`: no
/// such instance); `profile_roles` the roles IAM lists for its instance profile (empty when it
/// has none or it was not looked up).
pub fn judge_host(
    caller: &Caller,
    kind: &CallerKind,
    host_roles: &[String],
    instance: Option<&Instance>,
    profile_roles: &[String],
) -> Result<Vec<String>, IssueError> {
    let (role, session) = host_session(kind, host_roles)?;
    let instance = match instance {
        Some(instance) if instance.id == session => instance,
        Some(_) => {
            return Err(IssueError::Unavailable(
                "EC2 answered about another instance than the one asked for".into(),
            ))
        }
        None => {
            return Err(IssueError::Forbidden(format!(
                "EC2 has no instance {session} in the issuer's account and region: host \
                 certificates are issued to the instance the role session is named after"
            )))
        }
    };
    if instance.state != RUNNING {
        let state = &instance.state;
        let shown = if state.bytes().all(|b| b.is_ascii_lowercase() || b == b'-') {
            state.as_str()
        } else {
            "in another state"
        };
        return Err(IssueError::Forbidden(format!(
            "instance {session} is {shown}, not running"
        )));
    }
    let profile = instance
        .instance_profile_arn
        .as_deref()
        .and_then(instance_profile_name);
    let Some((profile_account, _)) = profile else {
        return Err(IssueError::Forbidden(format!(
            "instance {session} has no instance profile: the session {session} of role {role} \
             is not the instance's own credentials"
        )));
    };
    if profile_account != caller.account || !profile_roles.iter().any(|r| r == role) {
        return Err(IssueError::Forbidden(format!(
            "instance {session} does not run with role {role} of account {}: the session is \
             named after an instance whose credentials it is not",
            caller.account
        )));
    }
    let mut principals = vec![instance.id.clone()];
    let names = [
        instance.private_ip.map(|ip| ip.to_string()),
        instance.public_ip.map(|ip| ip.to_string()),
        instance.private_dns.clone(),
        instance.public_dns.clone(),
    ];
    for name in names.into_iter().flatten() {
        if !name.is_empty() && !principals.contains(&name) {
            principals.push(name);
        }
    }
    Ok(principals)
}

/// The lifetime to certify: the request's (default [`cert::DEFAULT_HOST_VALIDITY_SECS`]),
/// clamped to the issuer's `max` (its `max_host_validity`) and to keyward's own bounds.
pub fn host_validity(requested: Option<u64>, max: u64) -> u64 {
    let ceiling = max.clamp(MIN_HOST_VALIDITY_SECS, cert::MAX_HOST_VALIDITY_SECS);
    requested
        .unwrap_or(cert::DEFAULT_HOST_VALIDITY_SECS)
        .clamp(MIN_HOST_VALIDITY_SECS, ceiling)
}

/// Issues a host certificate to the instance `ask` names, after EC2 and IAM confirmed it
/// ([`judge_host`]). What B's handler calls for [`super::CertKind::Host`].
pub async fn issue_host<E, D, K>(
    ask: &HostAsk<'_>,
    host_roles: &[String],
    ec2: &E,
    iam: &D,
    ca: &Ca<K>,
) -> Result<Certificate, IssueError>
where
    E: Ec2,
    D: Directory,
    K: Kms,
{
    let (role, session) = host_session(ask.kind, host_roles)?;
    let instance = ec2.instance(session).await.map_err(ec2_error)?;
    let profile_name = instance
        .as_ref()
        .and_then(|i| i.instance_profile_arn.as_deref())
        .and_then(instance_profile_name)
        .map(|(_, name)| name);
    let profile_roles = match profile_name {
        Some(name) => match iam.instance_profile(name).await {
            Ok(profile) => profile.roles,
            // The instance names a profile that is gone: it has no role.
            Err(IamError::NotFound(_)) => Vec::new(),
            Err(err) => return Err(iam_error(err)),
        },
        None => Vec::new(),
    };
    let principals = judge_host(
        ask.caller,
        ask.kind,
        host_roles,
        instance.as_ref(),
        &profile_roles,
    )?;
    let valid_after = ask.now.saturating_sub(BACKDATE_SECS);
    let request = HostCertRequest {
        subject: ask.subject,
        instance_id: session.to_owned(),
        serial: ask.serial,
        principals,
        valid_after,
        valid_before: valid_after + host_validity(ask.validity_secs, ask.max_validity_secs),
        nonce: ask.nonce,
    };
    let certificate = ca
        .sign_host_cert(&request)
        .await
        .map_err(super::handler::ca_error)?;
    tracing::info!(
        instance_id = session,
        role,
        serial = ask.serial,
        fingerprint = ask.subject.fingerprint(),
        "host certificate issued"
    );
    Ok(certificate)
}

fn ec2_error(err: Ec2Error) -> IssueError {
    match err {
        Ec2Error::Unreachable(_) | Ec2Error::Malformed(_) => {
            IssueError::Unavailable(err.to_string())
        }
        Ec2Error::NoCredentials(_)
        | Ec2Error::AccessDenied { .. }
        | Ec2Error::NotFound(_)
        | Ec2Error::Invalid(_) => IssueError::Internal(err.to_string()),
    }
}

fn iam_error(err: IamError) -> IssueError {
    match err {
        IamError::Unreachable(_) => IssueError::Unavailable(err.to_string()),
        _ => IssueError::Internal(err.to_string()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests;
