//! The one request handler both runners (`ca serve`, the Lambda function) call.
//!
//! [`handle_http`] takes the bytes of an HTTP request (method, path, body) and gives back a
//! status and a JSON body; [`issue`] decides a parsed [`IssueRequest`]. The order is fixed: the
//! public key through keyward's key policy, the proof through [`check::check_proof`] (bound to
//! this issuer and to that key), STS's verdict on the proof ([`Sts::caller`]), the kind of
//! caller ([`check::classify`]), that a user caller is an IAM user of the issuer's own account
//! (the CA key's account, and the UserId IAM has for that name: `check_own_user`), and only
//! then IAM groups, the config (allowed groups, name mapping) and KMS.
//!
//! Invariants:
//! - **Nothing the client says decides what is certified** beyond the public key, a lifetime
//!   (clamped to `max_validity`), `source-address` entries and an instance to scope the
//!   principal to. The principal is the Linux name of the IAM user STS named; the key id
//!   carries the UserId STS returned.
//! - **Refusals before STS accepted the proof describe the request only**; after, they may
//!   name the caller (its own ARN, groups it lacks) and never anyone else. A caller of another
//!   account, a name IAM does not know and a same-named user with another UserId get one and
//!   the same refusal (the log says which), so nobody learns which names exist.
//! - Every message that reaches a log line from a refusal is escaped and capped
//!   (`logged_error`): it may quote the client.
//! - Every issuance and every refusal is logged (caller ARN, key fingerprint, serial,
//!   principals); the proof never is: it is a bearer credential for 15 minutes.
//! - The serial and the nonce come from the OS CSPRNG ([`OsRandom`]).

use super::check::{self, printable};
use super::sts::StsReplay;
use super::wire::{self, CertKind, ErrorResponse, IssueRequest, IssueResponse};
use super::{Caller, CallerKind, IssueError, Sts};
use crate::ca::{Ca, CaError, Kms, KmsError};
use crate::config::{Config, IssuerConfig};
use crate::ec2::{Ec2, Ec2Error};
use crate::iam::{Directory, IamError};
use crate::keys::cert::{CertError, IamIdentity, UserCertRequest, MAX_VALIDITY_SECS, NONCE_LEN};
use crate::keys::PublicKey;

/// How far before "now" a certificate starts, for hosts whose clock is a little behind.
pub const BACKDATE_SECS: u64 = 60;

/// Everything the handler talks to, and what it is configured with.
pub struct Deps<S, D, K, E> {
    pub sts: S,
    pub iam: D,
    pub ca: Ca<K>,
    /// For host certificates (`CertKind::Host`).
    pub ec2: E,
    /// allowed_groups, name_mapping, reserved_users and min_rsa_bits, as on the hosts.
    pub config: Config,
    pub issuer: IssuerConfig,
}

/// The source of serials and nonces.
pub trait Random {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), IssueError>;
}

/// The operating system's CSPRNG (getrandom(2)).
#[derive(Debug, Default, Clone, Copy)]
pub struct OsRandom;

impl Random for OsRandom {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), IssueError> {
        getrandom::getrandom(buf)
            .map_err(|e| IssueError::Internal(format!("the OS random source failed: {e}")))
    }
}

/// Why an issuer could not start.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(
        "{0} has no [issuer] table: an issuer needs at least `[issuer]` with \
         `audience = \"https://…\"` (its URL, which clients bind their proofs to)"
    )]
    NoIssuerTable(String),
    #[error(transparent)]
    UntrustedAwsConfig(#[from] crate::iam::UntrustedAwsConfig),
    #[error(transparent)]
    Kms(#[from] KmsError),
    #[error("the CA key: {0}")]
    Ca(#[from] CaError),
    #[error(
        "the CA key {0}'s ARN names no AWS account: the issuer certifies only IAM users of the \
         key's account"
    )]
    NoAccount(String),
    #[error("the STS endpoint: {0}")]
    Sts(IssueError),
    #[error("EC2: {0}")]
    Ec2(Ec2Error),
}

/// The issuer's configuration: the `[issuer]` table, which must be there.
pub fn issuer_config(config: &Config, source: &str) -> Result<IssuerConfig, SetupError> {
    config
        .issuer
        .clone()
        .ok_or_else(|| SetupError::NoIssuerTable(source.to_owned()))
}

/// The production dependencies: KMS, IAM and STS from the standard AWS chain (region,
/// credentials, `AWS_ENDPOINT_URL` for emulators; the config's `iam_role_arn` and
/// `aws_config_file` as on hosts), and the CA key the `[issuer]` table names, opened and
/// checked now so that a missing or wrong key stops the issuer at start.
pub async fn aws_deps(config: Config, issuer: IssuerConfig) -> Result<AwsDeps, SetupError> {
    let options = crate::iam::ClientOptions::for_host(&config)?;
    // One credential chain (and, with `iam_role_arn`, one assumed role) for all three clients.
    let shared = crate::iam::sdk_config(&options).await;
    let kms = crate::ca::AwsKms::from_config(&shared)?;
    let ca = crate::ca::open(kms, &issuer.ca_key_alias).await?;
    if ca.account().is_none() {
        return Err(SetupError::NoAccount(issuer.ca_key_alias.clone()));
    }
    let iam = crate::iam::AwsIam::from_config(&shared);
    let ec2 = crate::ec2::query::AwsEc2::from_config(shared, &options).map_err(SetupError::Ec2)?;
    let endpoint = issuer.sts_endpoint().to_owned();
    let sts = StsReplay::new(&endpoint, STS_TIMEOUT).map_err(SetupError::Sts)?;
    Ok(Deps {
        sts,
        iam,
        ca,
        ec2,
        config,
        issuer,
    })
}

/// What production runs with.
pub type AwsDeps =
    Deps<StsReplay, crate::iam::AwsIam, crate::ca::AwsKms, crate::ec2::query::AwsEc2>;

/// Bound on one replay to STS.
const STS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Answers one HTTP request: `(status, JSON body)`. Only `POST` [`wire::PATH`] with a body of
/// at most [`wire::MAX_REQUEST_BYTES`] reaches [`issue`].
pub async fn handle_http<S: Sts, D: Directory, K: Kms, E: Ec2>(
    deps: &Deps<S, D, K, E>,
    method: &str,
    path: &str,
    body: &[u8],
    now: u64,
    rng: &mut impl Random,
) -> (u16, String) {
    let result = if path != wire::PATH {
        Err((
            404,
            format!("not found: the issuer answers POST {}", wire::PATH),
        ))
    } else if method != "POST" {
        Err((405, format!("method not allowed: use POST {}", wire::PATH)))
    } else if body.len() > wire::MAX_REQUEST_BYTES {
        Err((
            413,
            format!(
                "the request is larger than {} bytes",
                wire::MAX_REQUEST_BYTES
            ),
        ))
    } else {
        match serde_json::from_slice::<IssueRequest>(body) {
            Err(e) => {
                // serde's message may quote what the client sent (a proof's header, say): it
                // goes back to the client, and only its position to the log.
                let err = IssueError::BadRequest(format!("the request is not valid JSON: {e}"));
                tracing::warn!(
                    status = 400,
                    line = e.line(),
                    column = e.column(),
                    "refused a certificate request: not valid JSON"
                );
                Err((400, err.to_string()))
            }
            Ok(request) => issue(&request, deps, now, rng)
                .await
                .map_err(|e| (e.http_status(), e.to_string())),
        }
    };
    let (status, json) = match result {
        Ok(response) => (200, serde_json::to_string(&response)),
        Err((status, error)) => (status, serde_json::to_string(&ErrorResponse { error })),
    };
    match json {
        Ok(json) => (status, json),
        Err(_) => (
            500,
            r#"{"error":"issuer error: cannot encode the answer"}"#.into(),
        ),
    }
}

/// What is known about a request so far, for the log line of a refusal.
#[derive(Default)]
struct Trail {
    fingerprint: Option<String>,
    caller: Option<String>,
}

/// Decides one request: a certificate, or why not. Logs the outcome.
pub async fn issue<S: Sts, D: Directory, K: Kms, E: Ec2>(
    request: &IssueRequest,
    deps: &Deps<S, D, K, E>,
    now: u64,
    rng: &mut impl Random,
) -> Result<IssueResponse, IssueError> {
    let mut trail = Trail::default();
    let result = decide(request, deps, now, rng, &mut trail).await;
    if let Err(err) = &result {
        tracing::warn!(
            kind = ?request.kind,
            caller = trail.caller.as_deref().unwrap_or("-"),
            fingerprint = trail.fingerprint.as_deref().unwrap_or("-"),
            status = err.http_status(),
            error = logged_error(err),
            "refused a certificate request"
        );
    }
    result
}

/// How many characters of a refusal's message a log line keeps.
const LOGGED_ERROR_CHARS: usize = 512;

/// A refusal's message as the log may carry it: it can quote what the client sent (a key type,
/// a proof's header), so it is escaped and capped as [`crate::logging::untrusted`] text is.
fn logged_error(err: &IssueError) -> String {
    crate::logging::capped(&err.to_string(), LOGGED_ERROR_CHARS, |c, out| match c {
        // Harmless in a quoted value, and in many messages ("this issuer's").
        '\'' => out.push(c),
        c => out.extend(c.escape_debug()),
    })
}

async fn decide<S: Sts, D: Directory, K: Kms, E: Ec2>(
    request: &IssueRequest,
    deps: &Deps<S, D, K, E>,
    now: u64,
    rng: &mut impl Random,
    trail: &mut Trail,
) -> Result<IssueResponse, IssueError> {
    let key = PublicKey::parse(&request.public_key)
        .and_then(|key| {
            key.check_min_rsa_bits(deps.config.min_rsa_bits)
                .map(|()| key)
        })
        .map_err(|e| IssueError::BadRequest(format!("the public key: {e}")))?;
    let fingerprint = key.fingerprint();
    trail.fingerprint = Some(fingerprint.clone());
    check::check_proof(&request.proof, &deps.issuer.audience, &fingerprint, now)?;
    let caller = deps.sts.caller(&request.proof).await?;
    trail.caller = Some(printable(&caller.arn));
    let kind = check::classify(&caller)?;
    match request.kind {
        CertKind::User => issue_user_cert(request, &key, &caller, kind, deps, now, rng).await,
        CertKind::Host => issue_host_cert(request, &key, &caller, kind, deps, now, rng).await,
    }
}

/// Host certificates ([`super::host`]): for the instance the role session names, as EC2 and IAM
/// confirm it, to roles listed in `host_roles`. Reached only after the proof was checked and
/// STS named the caller (`caller`, classified as `kind`).
async fn issue_host_cert<S: Sts, D: Directory, K: Kms, E: Ec2>(
    request: &IssueRequest,
    key: &PublicKey,
    caller: &Caller,
    kind: CallerKind,
    deps: &Deps<S, D, K, E>,
    now: u64,
    rng: &mut impl Random,
) -> Result<IssueResponse, IssueError> {
    if deps.issuer.host_roles.is_empty() {
        return Err(IssueError::Forbidden(
            "host certificates are not enabled on this issuer: its [issuer] table lists no \
             host_roles"
                .into(),
        ));
    }
    if !request.source_addresses.is_empty() || request.host_scope.is_some() {
        return Err(IssueError::BadRequest(
            "a host certificate takes no source_addresses and no host_scope".into(),
        ));
    }
    let (serial, nonce) = serial_and_nonce(rng)?;
    let ask = super::host::HostAsk {
        caller,
        kind: &kind,
        subject: key,
        validity_secs: request.validity_secs,
        max_validity_secs: deps.issuer.max_host_validity.as_secs(),
        now,
        serial,
        nonce,
    };
    let cert = super::host::issue_host(
        &ask,
        &deps.issuer.host_roles,
        &deps.ec2,
        &deps.iam,
        &deps.ca,
    )
    .await?;
    Ok(IssueResponse {
        certificate: cert.to_line(),
    })
}

async fn issue_user_cert<S: Sts, D: Directory, K: Kms, E: Ec2>(
    request: &IssueRequest,
    key: &PublicKey,
    caller: &Caller,
    kind: CallerKind,
    deps: &Deps<S, D, K, E>,
    now: u64,
    rng: &mut impl Random,
) -> Result<IssueResponse, IssueError> {
    let user = match kind {
        CallerKind::IamUser { name } => name,
        CallerKind::SsoSession { .. } => {
            return Err(IssueError::Forbidden(
                "SSO sessions are not supported yet: use an IAM user's credentials".into(),
            ))
        }
        CallerKind::AssumedRole { role, .. } => {
            return Err(IssueError::Forbidden(format!(
                "user certificates are issued to IAM users, and this proof was signed by a \
                 session of the role {role}: use an IAM user's credentials"
            )))
        }
    };
    check_own_user(&user, caller, deps).await?;
    let groups = deps
        .iam
        .groups_for_user(&user)
        .await
        .map_err(|e| iam_error(&user, e))?;
    if !deps.config.allows(Some(&groups)) {
        return Err(IssueError::Forbidden(format!(
            "IAM user {user} is not in any of this issuer's allowed_groups ({}): ask an admin \
             to add you to one",
            deps.config.allowed_groups.join(", ")
        )));
    }
    let linux = deps
        .config
        .name_mapping
        .to_linux(&user)
        .map_err(|e| IssueError::Forbidden(format!("no Linux account name: {e}")))?;
    if deps.config.is_reserved(&linux) {
        return Err(IssueError::Forbidden(format!(
            "{linux} is a reserved account name on the hosts: keyward never logs anyone in as it"
        )));
    }
    let principal = match &request.host_scope {
        None => linux,
        Some(instance) if crate::ec2::is_instance_id(instance) => {
            format!("{linux}@{instance}")
        }
        Some(_) => {
            return Err(IssueError::BadRequest(
                "host_scope must be an EC2 instance id (i- and 8 or 17 hex digits)".into(),
            ))
        }
    };
    let (valid_after, valid_before) = window(request.validity_secs, &deps.issuer, now)?;
    let (serial, nonce) = serial_and_nonce(rng)?;
    let cert_request = UserCertRequest {
        subject: key,
        identity: IamIdentity {
            user_name: user,
            user_id: caller.user_id.clone(),
        },
        serial,
        principals: vec![principal],
        valid_after,
        valid_before,
        source_addresses: request.source_addresses.clone(),
        nonce,
    };
    let cert = deps
        .ca
        .sign_user_cert(&cert_request)
        .await
        .map_err(ca_error)?;
    tracing::info!(
        caller = printable(&caller.arn),
        fingerprint = key.fingerprint(),
        serial,
        principals = cert.principals().join(","),
        key_id = cert.key_id(),
        valid_before = cert.valid_before(),
        "issued a user certificate"
    );
    Ok(IssueResponse {
        certificate: cert.to_line(),
    })
}

/// The one refusal for a caller who is not an IAM user of the issuer's account: the same
/// whether the account differs, IAM has no such user or the user is another one by that name,
/// so that nobody outside the account learns which names exist there.
fn not_our_user() -> IssueError {
    IssueError::Forbidden(
        "this issuer certifies IAM users of its own AWS account only, and the credentials that \
         signed the proof are not one of them"
            .into(),
    )
}

/// That STS's caller is the IAM user `user` of the issuer's account, before anything is read
/// about that name: STS accepts any account's credentials, and a name is not a person (another
/// account's `alice`, or a deleted and recreated `alice`, has another UserId). The account is
/// the CA key's ([`Ca::account`]): the issuer reaches KMS and IAM with the same credentials.
async fn check_own_user<S: Sts, D: Directory, K: Kms, E: Ec2>(
    user: &str,
    caller: &Caller,
    deps: &Deps<S, D, K, E>,
) -> Result<(), IssueError> {
    let refuse = |reason: &str| {
        tracing::warn!(
            caller = printable(&caller.arn),
            user_id = printable(&caller.user_id),
            reason,
            "refused a caller who is not an IAM user of the issuer's account"
        );
        Err(not_our_user())
    };
    if deps.ca.account() != Some(caller.account.as_str()) {
        return refuse("the caller's account is not the CA key's");
    }
    match deps.iam.identity(user).await {
        Ok(identity) if identity.user_id == caller.user_id => Ok(()),
        Ok(_) => refuse("IAM's UserId for this name differs from STS's"),
        Err(IamError::NotFound(_)) => refuse("IAM has no user by this name"),
        Err(err) => Err(iam_error(user, err)),
    }
}

/// `[valid_after, valid_before)`: from [`BACKDATE_SECS`] ago to the requested lifetime (or the
/// default) from now, clamped to `max_validity` and the 24-hour ceiling.
pub fn window(
    requested: Option<u64>,
    issuer: &IssuerConfig,
    now: u64,
) -> Result<(u64, u64), IssueError> {
    let lifetime = match requested {
        Some(0) => {
            return Err(IssueError::BadRequest(
                "validity_secs must be at least 1".into(),
            ))
        }
        Some(secs) => secs.min(issuer.max_validity.as_secs()),
        None => issuer.default_validity.as_secs(),
    };
    let valid_after = now.saturating_sub(BACKDATE_SECS);
    let valid_before = now
        .saturating_add(lifetime)
        .min(valid_after.saturating_add(MAX_VALIDITY_SECS));
    Ok((valid_after, valid_before))
}

/// A non-zero serial and a certificate nonce, from `rng`.
pub fn serial_and_nonce(rng: &mut impl Random) -> Result<(u64, [u8; NONCE_LEN]), IssueError> {
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill(&mut nonce)?;
    let mut serial = [0u8; 8];
    rng.fill(&mut serial)?;
    let serial = u64::from_be_bytes(serial).max(1);
    Ok((serial, nonce))
}

/// IAM's answer about the caller, as the caller and the admin should see it. The details of a
/// misconfiguration go to the log, not to the caller.
fn iam_error(user: &str, err: IamError) -> IssueError {
    match err {
        IamError::NotFound(_) => {
            tracing::warn!(user, "IAM has no user by this name (any more)");
            not_our_user()
        }
        IamError::Unreachable(_) => IssueError::Unavailable(err.to_string()),
        other => {
            tracing::error!(error = %other, "the issuer cannot read IAM users or groups");
            IssueError::Internal(
                "the issuer cannot read IAM users or groups (see its log; `keyward policy --issuer`)".into(),
            )
        }
    }
}

pub(super) fn ca_error(err: CaError) -> IssueError {
    match err {
        CaError::Cert(
            e @ (CertError::RsaKeyTooLarge { .. }
            | CertError::TooLarge { .. }
            | CertError::InvalidSourceAddress),
        ) => IssueError::BadRequest(e.to_string()),
        CaError::TooLarge { .. } => IssueError::BadRequest(err.to_string()),
        CaError::Kms(KmsError::Unreachable(_)) => IssueError::Unavailable(err.to_string()),
        other => {
            tracing::error!(error = %other, "the issuer cannot sign");
            IssueError::Internal(
                "the issuer cannot sign (see its log; `keyward policy --issuer`)".into(),
            )
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
pub(crate) mod tests;
