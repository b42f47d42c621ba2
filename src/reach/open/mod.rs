//! `keyward open`, `close` and `open --sweep`: security-group rules that let the caller's own
//! address in, each carrying its owner and its expiry, and that go away by themselves.
//!
//! The shape is sync's: [`read`] the rules of the groups → pure [`plan::plan`] → one
//! [`plan::describe`] for `--dry-run` and the real run → [`apply`]. [`run`] ties them together
//! and handles two runs racing.
//!
//! What a rule of keyward's is ([`keyward_rule`], the one rule every step uses): TCP, one port,
//! one CIDR, tagged [`OWNER_TAG`] = the caller's ARN as STS `GetCallerIdentity` says it (IAM
//! users and SSO or other assumed-role sessions alike; no IAM user tags needed) and
//! [`EXPIRES_TAG`] = an RFC 3339 UTC time. Rules without both tags, or for another protocol or a
//! port range, are never changed.
//!
//! Which groups: those of the instance (by id, `Name` tag or address) that carry the marker tag
//! ([`DEFAULT_GROUP_TAG`], `[reach.open] group_tag`), or the one given with `--sg`, which must
//! carry it too: a group keyward opens is always one `--sweep` and the IAM policy cover.
//!
//! Invariants:
//! - A failed or partial read of a group changes nothing in that group (see [`plan`]).
//! - Additions come before revocations: replacing an address leaves no gap.
//! - Runs on one laptop are serialized by [`OpenLock`]; runs on two laptops converge: a
//!   duplicate on authorize re-reads and extends, and after applying, a second read keeps one
//!   rule per (caller, group, port) chosen by [`plan::keep_first`].
//! - IAM cannot scope `RevokeSecurityGroupIngress` by a rule's tags: whoever may sweep may
//!   revoke any rule in the marked groups. Keep the marker on groups that hold only rules
//!   people open for themselves.

pub mod address;
pub mod plan;
mod sts;

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use ipnet::IpNet;
use nix::fcntl::{Flock, FlockArg};

use self::plan::{GroupRead, Mode, Plan, Step};
use crate::ec2::{
    Ec2Error, IngressRule, Instance, Instances, NewIngressRule, RuleError, SecurityGroups,
};

/// The tag whose value is the ARN of the person the rule is for.
pub const OWNER_TAG: &str = "keyward:owner";
/// The tag whose value is when the rule expires (RFC 3339, UTC).
pub const EXPIRES_TAG: &str = "keyward:expires";
/// The tag key that marks a security group keyward may open (any value).
pub const DEFAULT_GROUP_TAG: &str = "keyward:open";
pub const DEFAULT_PORT: u16 = 22;
pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);
/// The longest `--ttl`: a rule forgotten for a week is a rule nobody reviews.
pub const MAX_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// EC2 tag values hold at most 256 characters; a longer ARN cannot be an owner.
pub const MAX_OWNER_LEN: usize = 256;
/// Read-plan-apply rounds when another run keeps changing the same rules.
const MAX_ROUNDS: usize = 3;
/// How long a run waits for another `open` on this laptop.
pub const LOCK_WAIT: Duration = Duration::from_secs(60);
/// How long `proxy --open` waits for the port to accept connections after opening.
pub const PORT_WAIT: Duration = Duration::from_secs(60);

/// A rule keyward made, as its tags describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeywardRule {
    pub id: String,
    pub group_id: String,
    pub port: u16,
    pub cidr: IpNet,
    pub owner: String,
    pub expires: SystemTime,
}

/// Why an `open`, `close` or sweep did not finish.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Ec2(#[from] Ec2Error),
    #[error("EC2 refused a rule change: {0}")]
    Rule(RuleError),
    #[error("STS GetCallerIdentity: {0}")]
    Caller(String),
    #[error(transparent)]
    Address(#[from] address::AddressError),
    #[error("{0}")]
    Host(String),
    #[error("{0}")]
    NoGroups(String),
    #[error("{0}")]
    Usage(String),
    #[error("another keyward open held {} for {}s", path.display(), LOCK_WAIT.as_secs())]
    LockBusy { path: PathBuf },
    #[error("cannot lock {}: {reason}", path.display())]
    Lock { path: PathBuf, reason: String },
    #[error("{addr} did not accept a TCP connection within {}s after opening", bound.as_secs())]
    PortClosed { addr: SocketAddr, bound: Duration },
    #[error(
        "other runs kept changing the rules; nothing more was changed after {MAX_ROUNDS} rounds"
    )]
    Contended,
}

impl OpenError {
    /// Whether the cause is access: missing credentials or a denied action (exit 4); an
    /// unreachable or malformed AWS answer is exit 3.
    pub fn aws_kind(&self) -> Option<AwsKind> {
        let ec2 = match self {
            OpenError::Ec2(e) | OpenError::Rule(RuleError::Ec2(e)) => e,
            OpenError::Caller(_) => return Some(AwsKind::Unreachable),
            _ => return None,
        };
        Some(match ec2 {
            Ec2Error::NoCredentials(_) | Ec2Error::AccessDenied { .. } => AwsKind::Credentials,
            Ec2Error::Unreachable(_) | Ec2Error::Malformed(_) => AwsKind::Unreachable,
            Ec2Error::NotFound(_) | Ec2Error::Invalid(_) => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AwsKind {
    Unreachable,
    Credentials,
}

/// The rule as keyward's, if it is one (see the module doc); `None` leaves it alone.
pub fn keyward_rule(rule: &IngressRule) -> Option<KeywardRule> {
    if rule.protocol != "tcp" || rule.from_port != rule.to_port {
        return None;
    }
    let port = u16::try_from(rule.from_port).ok().filter(|p| *p != 0)?;
    let cidr = rule.cidr?;
    let tag = |key: &str| {
        let mut values = rule.tags.iter().filter(|(k, _)| k == key).map(|(_, v)| v);
        match (values.next(), values.next()) {
            (Some(v), None) => Some(v.as_str()),
            _ => None,
        }
    };
    let owner = tag(OWNER_TAG).filter(|o| is_owner_arn(o))?;
    let expires = humantime::parse_rfc3339(tag(EXPIRES_TAG)?).ok()?;
    Some(KeywardRule {
        id: rule.id.clone(),
        group_id: rule.group_id.clone(),
        port,
        cidr,
        owner: owner.to_owned(),
        expires,
    })
}

/// `arn:…` of printable ASCII without spaces, short enough for a tag value.
pub fn is_owner_arn(text: &str) -> bool {
    text.starts_with("arn:")
        && text.len() <= MAX_OWNER_LEN
        && text.bytes().all(|b| b.is_ascii_graphic())
}

/// The description of a new rule: for people reading the console (the tags decide), in EC2's
/// allowed characters (`a-zA-Z0-9. _-:/()#,@[]+=&;{}!$*`), at most 255 of them.
pub fn rule_description(owner: &str) -> String {
    const ALLOWED: &[u8] = b". _-:/()#,@[]+=&;{}!$*";
    format!("keyward open for {owner}")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || ALLOWED.contains(&(*c as u8)) && c.is_ascii())
        .take(255)
        .collect()
}

/// `open`'s settings, from `[reach.open]` with defaults; flags override them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub group_tag: String,
    pub ip_url: String,
    pub ip6_url: Option<String>,
    pub ttl: Duration,
    pub port: u16,
}

impl Settings {
    pub fn from_reach(open: &crate::reach::settings::OpenSettings) -> Result<Settings, OpenError> {
        let ttl = match &open.ttl {
            Some(text) => parse_ttl(text)?,
            None => DEFAULT_TTL,
        };
        let group_tag = open
            .group_tag
            .clone()
            .unwrap_or_else(|| DEFAULT_GROUP_TAG.to_owned());
        let tag_ok = (1..=128).contains(&group_tag.len())
            && !group_tag.starts_with("aws:")
            && group_tag.bytes().all(|b| b.is_ascii_graphic());
        if !tag_ok {
            return Err(OpenError::Usage(format!(
                "[reach.open] group_tag {:?} is not a usable tag key",
                crate::iam::printable(&group_tag)
            )));
        }
        Ok(Settings {
            group_tag,
            ip_url: open
                .ip_url
                .clone()
                .unwrap_or_else(|| address::DEFAULT_IP_URL.to_owned()),
            ip6_url: open.ip6_url.clone(),
            ttl,
            port: match open.port {
                Some(0) => return Err(OpenError::Usage("[reach.open] port 0".into())),
                Some(p) => p,
                None => DEFAULT_PORT,
            },
        })
    }
}

/// A `--ttl`: a humantime duration from one minute to [`MAX_TTL`].
pub fn parse_ttl(text: &str) -> Result<Duration, OpenError> {
    let ttl = humantime::parse_duration(text)
        .map_err(|e| OpenError::Usage(format!("ttl {text:?}: {e}")))?;
    if ttl < Duration::from_secs(60) || ttl > MAX_TTL {
        return Err(OpenError::Usage(format!(
            "ttl {text:?}: between 1m and {} please",
            humantime::format_duration(MAX_TTL)
        )));
    }
    Ok(ttl)
}

/// The one running instance `host` means, as `proxy` resolves it ([`crate::reach::resolve`]:
/// an id, an address or a `Name` tag; several or none is an error listing the candidates).
pub async fn find_instance<I: Instances>(ec2: &I, host: &str) -> Result<Instance, OpenError> {
    use crate::reach::resolve::{parse_host, resolve, ResolveError};
    let found = match parse_host(host, None) {
        Ok(lookup) => resolve(ec2, &lookup).await,
        Err(e) => Err(e),
    };
    found.map_err(|e| match e {
        ResolveError::Ec2(e) => OpenError::Ec2(e),
        other => OpenError::Host(other.to_string()),
    })
}

/// The instance's groups that carry `group_tag`; an error when none does.
pub async fn instance_groups<G: SecurityGroups>(
    ec2: &G,
    instance: &Instance,
    group_tag: &str,
) -> Result<Vec<String>, OpenError> {
    let ids: Vec<String> = instance
        .security_groups
        .iter()
        .filter(|id| crate::ec2::is_resource_id("sg", id))
        .cloned()
        .collect();
    let marked = if ids.is_empty() {
        Vec::new()
    } else {
        marked_groups(ec2, &ids, group_tag).await?
    };
    if marked.is_empty() {
        return Err(OpenError::NoGroups(format!(
            "none of the security groups of {} carries the tag {group_tag}: tag the one to open \
             (aws ec2 create-tags --resources sg-… --tags Key={group_tag},Value=) or pass --sg",
            instance.id
        )));
    }
    Ok(marked)
}

/// Of the groups `ids`, those carrying `group_tag`.
pub async fn marked_groups<G: SecurityGroups>(
    ec2: &G,
    ids: &[String],
    group_tag: &str,
) -> Result<Vec<String>, OpenError> {
    let groups = ec2.security_groups(ids).await?;
    Ok(groups
        .into_iter()
        .filter(|g| ids.contains(&g.id) && g.tags.iter().any(|(k, _)| k == group_tag))
        .map(|g| g.id)
        .collect())
}

/// `--sg`: the group, which must carry `group_tag`.
pub async fn given_group<G: SecurityGroups>(
    ec2: &G,
    id: &str,
    group_tag: &str,
) -> Result<Vec<String>, OpenError> {
    if !crate::ec2::is_resource_id("sg", id) {
        return Err(OpenError::Usage(format!(
            "--sg {:?} is not a security group id (sg-…)",
            crate::iam::printable(id)
        )));
    }
    let marked = marked_groups(ec2, &[id.to_owned()], group_tag).await?;
    if marked.is_empty() {
        return Err(OpenError::NoGroups(format!(
            "{id} does not carry the tag {group_tag}: keyward opens, sweeps and is granted \
             (keyward policy --open) only groups that do"
        )));
    }
    Ok(marked)
}

/// Every group carrying `group_tag` (for `close --all` and `--sweep`).
pub async fn all_marked_groups<G: SecurityGroups>(
    ec2: &G,
    group_tag: &str,
) -> Result<Vec<String>, OpenError> {
    let mut ids: Vec<String> = ec2
        .tagged_security_groups(group_tag)
        .await?
        .into_iter()
        .filter(|g| g.tags.iter().any(|(k, _)| k == group_tag))
        .map(|g| g.id)
        .collect();
    ids.sort();
    ids.dedup();
    Ok(ids)
}

/// Every group's rules, each read on its own: a group that fails is recorded as failed.
pub async fn read<G: SecurityGroups>(ec2: &G, group_ids: &[String]) -> Vec<GroupRead> {
    let mut reads = Vec::with_capacity(group_ids.len());
    for id in group_ids {
        let rules = ec2.ingress_rules(id).await.map_err(|e| e.to_string());
        reads.push(GroupRead {
            group_id: id.clone(),
            rules,
        });
    }
    reads
}

/// How an [`apply`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Done,
    /// Another run changed a rule this plan was about to add or extend: read again.
    Raced,
}

/// Makes the plan's changes in order. Stops at the first add or extend another run got to
/// first ([`Applied::Raced`]); a rule already gone when revoked is fine.
pub async fn apply<G: SecurityGroups>(
    ec2: &G,
    plan: &Plan,
    caller: &str,
) -> Result<Applied, OpenError> {
    for step in &plan.steps {
        match step {
            Step::Authorize {
                group_id,
                cidr,
                port,
                expires,
            } => {
                let rule = NewIngressRule {
                    group_id: group_id.clone(),
                    port: *port,
                    cidr: *cidr,
                    description: rule_description(caller),
                    tags: vec![
                        (OWNER_TAG.to_owned(), caller.to_owned()),
                        (EXPIRES_TAG.to_owned(), plan::rfc3339(*expires)),
                    ],
                };
                match ec2.authorize_ingress(&rule).await {
                    Ok(_) => {}
                    Err(RuleError::Duplicate) => return Ok(Applied::Raced),
                    Err(e) => return Err(OpenError::Rule(e)),
                }
            }
            Step::Extend { rule, expires } => {
                let tags = [(EXPIRES_TAG.to_owned(), plan::rfc3339(*expires))];
                match ec2.tag_rule(&rule.id, &tags).await {
                    Ok(()) => {}
                    Err(RuleError::NotFound) => return Ok(Applied::Raced),
                    Err(e) => return Err(OpenError::Rule(e)),
                }
            }
            Step::Revoke { rule, .. } => {
                match ec2
                    .revoke_ingress(&rule.group_id, std::slice::from_ref(&rule.id))
                    .await
                {
                    Ok(()) | Err(RuleError::NotFound) => {}
                    Err(e) => return Err(OpenError::Rule(e)),
                }
            }
            Step::AlreadyAllowed { .. } | Step::Skip { .. } => {}
        }
    }
    Ok(Applied::Done)
}

/// What a [`run`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Groups left unchanged because their rules could not be read.
    pub skipped: Vec<String>,
    /// Groups where, after an `open`, the caller's address is not allowed by the caller's own
    /// rule (another run of the caller's, from another address, was kept instead).
    pub displaced: Vec<String>,
}

/// Read, plan, describe to `out`, and (unless `dry_run`) apply, for `mode` in `groups`; an
/// `open` is followed by the converging pass.
pub async fn run<G: SecurityGroups>(
    ec2: &G,
    groups: &[String],
    caller: &str,
    mode: &Mode,
    now: SystemTime,
    dry_run: bool,
    out: &mut dyn Write,
) -> Result<Outcome, OpenError> {
    if !is_owner_arn(caller) {
        return Err(OpenError::Caller(format!(
            "the caller's ARN is not usable as an owner tag (an ARN of at most {MAX_OWNER_LEN} printable characters)"
        )));
    }
    let mut outcome = Outcome::default();
    let mut settled = false;
    for _ in 0..MAX_ROUNDS {
        let reads = read(ec2, groups).await;
        let plan = plan::plan(&reads, caller, mode, now);
        say(out, &plan, dry_run);
        outcome.skipped = plan.skipped().map(|s| s.group_id().to_owned()).collect();
        if dry_run {
            return Ok(outcome);
        }
        if apply(ec2, &plan, caller).await? == Applied::Done {
            settled = true;
            break;
        }
        let _ = writeln!(
            out,
            "another run changed these rules meanwhile: reading again"
        );
    }
    if !settled {
        return Err(OpenError::Contended);
    }
    if let Mode::Open { cidr, port, .. } = mode {
        let reads = read(ec2, groups).await;
        let converge = plan::plan(&reads, caller, &Mode::Converge { port: *port }, now);
        if converge.changes() {
            say(out, &converge, false);
            apply(ec2, &converge, caller).await?;
        }
        outcome.displaced = displaced(&reads, &converge, caller, *cidr, *port);
    }
    Ok(outcome)
}

/// Groups whose kept rule of the caller's (after `converge`) is for another address than
/// `cidr`.
fn displaced(
    reads: &[GroupRead],
    converge: &Plan,
    caller: &str,
    cidr: IpNet,
    port: u16,
) -> Vec<String> {
    let revoked = |id: &str| {
        converge
            .steps
            .iter()
            .any(|s| matches!(s, Step::Revoke { rule, .. } if rule.id == id))
    };
    reads
        .iter()
        .filter_map(|read| {
            let rules = read.rules.as_ref().ok()?;
            let kept: Vec<KeywardRule> = rules
                .iter()
                .filter_map(keyward_rule)
                .filter(|r| r.owner == caller && r.port == port && !revoked(&r.id))
                .collect();
            (!kept.is_empty() && kept.iter().all(|r| r.cidr != cidr)).then(|| read.group_id.clone())
        })
        .collect()
}

fn say(out: &mut dyn Write, plan: &Plan, dry_run: bool) {
    let text = plan::describe(plan);
    let _ = if text.is_empty() {
        writeln!(out, "nothing to change")
    } else {
        write!(out, "{text}")
    };
    if dry_run {
        let _ = writeln!(out, "(dry run: nothing was changed)");
    }
}

/// The address to allow: `--ip` as given (`auto` asks the configured service).
pub async fn caller_cidr(
    ip: &str,
    ipv6: bool,
    allow_wide: bool,
    settings: &Settings,
) -> Result<IpNet, OpenError> {
    let family = if ipv6 {
        address::Family::V6
    } else {
        address::Family::V4
    };
    if ip != "auto" {
        return Ok(address::parse_given(ip, family, allow_wide)?);
    }
    let url = match family {
        address::Family::V4 => settings.ip_url.as_str(),
        address::Family::V6 => settings
            .ip6_url
            .as_deref()
            .ok_or(address::AddressError::NoIpv6Service)?,
    };
    Ok(address::host_net(address::ask(url, family).await?))
}

/// One `open` on this laptop at a time: an exclusive flock on a 0600 file in a 0700 directory,
/// waited for up to [`LOCK_WAIT`]. The kernel drops it when the process dies.
pub struct OpenLock {
    _lock: Flock<File>,
}

impl OpenLock {
    pub async fn acquire(path: &Path) -> Result<OpenLock, OpenError> {
        let fail = |reason: String| OpenError::Lock {
            path: path.to_owned(),
            reason,
        };
        if let Some(dir) = path.parent() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| fail(e.to_string()))?;
        }
        let deadline = Instant::now() + LOCK_WAIT;
        let mut pause = Duration::from_millis(20);
        loop {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .custom_flags(nix::libc::O_NOFOLLOW)
                .open(path)
                .map_err(|e| fail(e.to_string()))?;
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => return Ok(OpenLock { _lock: lock }),
                Err((_, nix::errno::Errno::EWOULDBLOCK)) if Instant::now() < deadline => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(500));
                }
                Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
                    return Err(OpenError::LockBusy {
                        path: path.to_owned(),
                    })
                }
                Err((_, errno)) => return Err(fail(errno.to_string())),
            }
        }
    }
}

/// `$XDG_CACHE_HOME/keyward/open.lock`, else `~/.cache/keyward/open.lock`.
pub fn lock_path() -> Option<PathBuf> {
    Some(crate::files::xdg_base("XDG_CACHE_HOME", ".cache")?.join("keyward/open.lock"))
}

/// Waits until `addr` accepts a TCP connection, retrying with backoff (50 ms doubling to 1 s)
/// for at most `bound`: a new rule takes effect within a second or so, never at a fixed time.
pub async fn wait_for_port(addr: SocketAddr, bound: Duration) -> Result<(), OpenError> {
    let deadline = Instant::now() + bound;
    let mut pause = Duration::from_millis(50);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let attempt = left.min(Duration::from_secs(3));
        if let Ok(Ok(_)) = tokio::time::timeout(attempt, tokio::net::TcpStream::connect(addr)).await
        {
            return Ok(());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(OpenError::PortClosed { addr, bound });
        }
        tokio::time::sleep(pause.min(left)).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}

/// The AWS side of `open` from a laptop: EC2 and the caller's ARN, from one credential chain.
pub struct OpenAws {
    pub ec2: crate::ec2::query::AwsEc2,
    sts: sts::CallerSts,
}

impl OpenAws {
    pub async fn load(options: &crate::iam::ClientOptions) -> Result<OpenAws, OpenError> {
        OpenAws::from_config(crate::iam::sdk_config(options).await, options)
    }

    /// EC2 and STS from an SDK config already loaded (`proxy --open`: the environment's).
    pub fn from_config(
        shared: aws_config::SdkConfig,
        options: &crate::iam::ClientOptions,
    ) -> Result<OpenAws, OpenError> {
        let aws = crate::sigv4::AwsContext::from_config(shared);
        let timeout = options
            .timeout
            .unwrap_or(crate::ec2::query::DEFAULT_TIMEOUT);
        Ok(OpenAws {
            ec2: crate::ec2::query::AwsEc2::from_context(aws.clone(), timeout)?,
            sts: sts::CallerSts::new(aws, timeout)?,
        })
    }

    /// The caller's ARN, as STS says it.
    pub async fn caller(&self) -> Result<String, OpenError> {
        self.sts.caller_arn().await
    }
}

/// `proxy --open`: opens the marked groups of `instance` for the caller's address (as `open`
/// with the laptop's `[reach.open]` settings, port `connect_to`'s; IPv6 when `connect_to` is),
/// then waits until `connect_to` accepts TCP (at most [`PORT_WAIT`]). The plan's lines and
/// warnings (groups skipped or displaced, also in the returned [`Outcome`]) go to `log`
/// (stderr: stdout belongs to ssh).
pub async fn open_and_wait(
    aws: &OpenAws,
    instance: &Instance,
    connect_to: SocketAddr,
    reach: &crate::reach::settings::OpenSettings,
    log: &mut dyn Write,
) -> Result<Outcome, OpenError> {
    let settings = Settings::from_reach(reach)?;
    let groups = instance_groups(&aws.ec2, instance, &settings.group_tag).await?;
    let caller = aws.caller().await?;
    let cidr = caller_cidr("auto", connect_to.is_ipv6(), false, &settings).await?;
    let lock = match lock_path() {
        Some(path) => Some(OpenLock::acquire(&path).await?),
        None => None,
    };
    let mode = Mode::Open {
        cidr,
        port: connect_to.port(),
        expires: SystemTime::now() + settings.ttl,
    };
    let outcome = run(
        &aws.ec2,
        &groups,
        &caller,
        &mode,
        SystemTime::now(),
        false,
        log,
    )
    .await?;
    drop(lock);
    for group in &outcome.skipped {
        let _ = writeln!(
            log,
            "keyward: {group} was left unchanged: its rules could not be read"
        );
    }
    for group in &outcome.displaced {
        let _ = writeln!(
            log,
            "keyward: in {group} another run of yours, from another address, was kept"
        );
    }
    wait_for_port(connect_to, PORT_WAIT).await?;
    Ok(outcome)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests;
