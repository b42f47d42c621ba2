//! `keyward open` and `keyward close`: security-group rules for the caller's own address, with
//! an owner and an expiry on each rule.

use anyhow::bail;

use super::{Context, Exit};

#[derive(Debug, clap::Args)]
pub struct Open {
    /// The instance (id, Name tag or IP) whose keyward-tagged security groups to open
    #[arg(conflicts_with = "sg")]
    pub host: Option<String>,
    /// Open this security group instead
    #[arg(long, value_name = "sg-…")]
    pub sg: Option<String>,
    /// TCP port [default: 22]
    #[arg(long)]
    pub port: Option<u16>,
    /// How long the rule lives [default: 1h]
    #[arg(long, value_name = "DURATION")]
    pub ttl: Option<String>,
    /// Your address: `auto` (ask the configured service) or a CIDR
    #[arg(long, value_name = "auto|CIDR", default_value = "auto")]
    pub ip: String,
    /// Use your IPv6 address (a /128 rule)
    #[arg(long)]
    pub ipv6: bool,
    /// Say what would change and change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Only revoke expired rules (anyone's) in the keyward-tagged groups, for a scheduled job
    #[arg(long, conflicts_with_all = ["host", "sg", "ip", "ipv6", "ttl"])]
    pub sweep: bool,
}

impl Open {
    pub async fn run(self, _ctx: &Context) -> anyhow::Result<Exit> {
        bail!("keyward open is not implemented yet")
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
        bail!("keyward close is not implemented yet")
    }
}
