//! `keyward open` and `keyward close`: security-group rules for the caller's own address, with
//! an owner and an expiry on each rule. The decisions live in [`crate::reach::open`]; this file
//! parses flags, picks the groups and maps the outcome to an exit code.

use std::time::SystemTime;

use super::{Context, Exit};
use crate::reach::open::plan::Mode;
use crate::reach::open::{self, AwsKind, OpenAws, OpenError, OpenLock, Outcome, Settings};

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Each rule is TCP to one port from one address, tagged keyward:owner (your ARN, from STS \
GetCallerIdentity) and keyward:expires (RFC 3339 UTC). The same address again extends the \
expiry; a new address replaces your old rule; expired rules of anyone in the groups are revoked \
by every open and by --sweep. Only groups carrying the marker tag ([reach.open] group_tag, \
default keyward:open) are opened; `keyward policy --open` prints the IAM policy. --ip auto asks \
[reach.open] ip_url (default https://checkip.amazonaws.com; ip6_url for --ipv6) and refuses an \
answer that is not exactly one public address.")]
pub struct Open {
    /// The instance (id, Name tag or IP) whose keyward-tagged security groups to open
    #[arg(conflicts_with = "sg")]
    pub host: Option<String>,
    /// Open this security group instead (it must carry the marker tag too)
    #[arg(long, value_name = "sg-…")]
    pub sg: Option<String>,
    /// TCP port [default: 22]
    #[arg(long)]
    pub port: Option<u16>,
    /// How long the rule lives, 1m to 7days [default: 1h]
    #[arg(long, value_name = "DURATION")]
    pub ttl: Option<String>,
    /// Your address: `auto` (ask the configured service) or a CIDR
    #[arg(long, value_name = "auto|CIDR", default_value = "auto")]
    pub ip: String,
    /// Use your IPv6 address (a /128 rule)
    #[arg(long)]
    pub ipv6: bool,
    /// Accept an --ip CIDR wider than /24 (IPv4) or /56 (IPv6); /0 is never accepted
    #[arg(long)]
    pub allow_wide: bool,
    /// Say what would change and change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Only revoke expired rules (anyone's) in the keyward-tagged groups, for a scheduled job
    #[arg(long, conflicts_with_all = ["host", "sg", "ip", "ipv6", "ttl", "port", "allow_wide"])]
    pub sweep: bool,
}

impl Open {
    pub async fn run(self, _ctx: &Context) -> anyhow::Result<Exit> {
        let reach = super::ssh_cert::reach_settings()?;
        finish(self.open(&reach.open).await)
    }

    async fn open(
        &self,
        reach: &crate::reach::settings::OpenSettings,
    ) -> Result<Outcome, OpenError> {
        let mut settings = Settings::from_reach(reach)?;
        if let Some(port) = self.port {
            if port == 0 {
                return Err(OpenError::Usage("--port 0".into()));
            }
            settings.port = port;
        }
        if let Some(ttl) = &self.ttl {
            settings.ttl = open::parse_ttl(ttl)?;
        }
        let aws = OpenAws::load(&super::laptop::interactive_options()).await?;
        let now = SystemTime::now();
        let (groups, mode) = if self.sweep {
            let groups = open::all_marked_groups(&aws.ec2, &settings.group_tag).await?;
            (groups, Mode::Sweep)
        } else {
            let groups = match (&self.host, &self.sg) {
                (_, Some(sg)) => open::given_group(&aws.ec2, sg, &settings.group_tag).await?,
                (Some(host), None) => {
                    let instance = open::find_instance(&aws.ec2, host).await?;
                    open::instance_groups(&aws.ec2, &instance, &settings.group_tag).await?
                }
                (None, None) => {
                    return Err(OpenError::Usage(
                        "name the instance (HOST) or the group (--sg sg-…), or pass --sweep".into(),
                    ))
                }
            };
            let cidr = open::caller_cidr(&self.ip, self.ipv6, self.allow_wide, &settings).await?;
            let mode = Mode::Open {
                cidr,
                port: settings.port,
                expires: now + settings.ttl,
            };
            (groups, mode)
        };
        run_locked(&aws, &groups, &mode, now, self.dry_run).await
    }
}

#[derive(Debug, clap::Args)]
pub struct Close {
    /// The instance whose groups to close (default: every keyward-tagged group)
    pub host: Option<String>,
    /// Revoke your rules in every keyward-tagged group
    #[arg(long, conflicts_with = "host")]
    pub all: bool,
    /// Say what would change and change nothing
    #[arg(long)]
    pub dry_run: bool,
}

impl Close {
    pub async fn run(self, _ctx: &Context) -> anyhow::Result<Exit> {
        let reach = super::ssh_cert::reach_settings()?;
        finish(self.close(&reach.open).await)
    }

    async fn close(
        &self,
        reach: &crate::reach::settings::OpenSettings,
    ) -> Result<Outcome, OpenError> {
        let settings = Settings::from_reach(reach)?;
        let aws = OpenAws::load(&super::laptop::interactive_options()).await?;
        let groups = match &self.host {
            Some(host) => {
                let instance = open::find_instance(&aws.ec2, host).await?;
                open::instance_groups(&aws.ec2, &instance, &settings.group_tag).await?
            }
            None => open::all_marked_groups(&aws.ec2, &settings.group_tag).await?,
        };
        run_locked(&aws, &groups, &Mode::Close, SystemTime::now(), self.dry_run).await
    }
}

/// One change run at a time on this laptop (a dry run changes nothing and takes no lock).
async fn run_locked(
    aws: &OpenAws,
    groups: &[String],
    mode: &Mode,
    now: SystemTime,
    dry_run: bool,
) -> Result<Outcome, OpenError> {
    let caller = aws.caller().await?;
    let _lock = if dry_run {
        None
    } else {
        let path = open::lock_path().ok_or_else(|| {
            OpenError::Usage("neither XDG_CACHE_HOME nor HOME is set: no place for the lock".into())
        })?;
        Some(OpenLock::acquire(&path).await?)
    };
    if groups.is_empty() {
        println!("no security group carries the marker tag: nothing to do");
        return Ok(Outcome::default());
    }
    let mut out = std::io::stdout().lock();
    open::run(&aws.ec2, groups, &caller, mode, now, dry_run, &mut out).await
}

fn finish(result: Result<Outcome, OpenError>) -> anyhow::Result<Exit> {
    match result {
        Ok(outcome) => {
            for group in &outcome.skipped {
                eprintln!("keyward: {group} was left unchanged: its rules could not be read");
            }
            for group in &outcome.displaced {
                eprintln!(
                    "keyward: in {group} another run of yours, from another address, was kept: \
                     your address here is not allowed"
                );
            }
            let clean = outcome.skipped.is_empty() && outcome.displaced.is_empty();
            Ok(if clean { Exit::Ok } else { Exit::Failure })
        }
        Err(err) => {
            eprintln!("keyward: {err}");
            Ok(exit_of(&err))
        }
    }
}

/// The exit code of a failed `open`, `close` or `proxy --open`.
pub(crate) fn exit_of(err: &OpenError) -> Exit {
    match (err, err.aws_kind()) {
        (OpenError::Usage(_), _) => Exit::Usage,
        (_, Some(AwsKind::Credentials)) => Exit::IamCredentials,
        (_, Some(AwsKind::Unreachable)) => Exit::IamUnreachable,
        (_, None) => Exit::Failure,
    }
}
