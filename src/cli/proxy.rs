//! `keyward proxy HOST PORT`: an ssh ProxyCommand that resolves HOST to one running instance
//! at connect time and pipes stdio to it (directly or through a jump host).

use anyhow::bail;

use super::{Context, Exit};

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Use it from ~/.ssh/config (`keyward ssh-config` prints the block):\n  \
                  ProxyCommand keyward proxy %h %p"
)]
pub struct Proxy {
    /// An instance id, a Name tag or an IP address (ssh's %h)
    pub host: String,
    /// The port to connect to (ssh's %p)
    pub port: u16,
    /// Go through this jump host (an ssh destination); the private address is used
    #[arg(long, value_name = "JUMP")]
    pub via: Option<String>,
    /// The environment (`[[reach.environments]]` in laptop.toml) HOST belongs to
    #[arg(long, value_name = "NAME")]
    pub env: Option<String>,
    /// Open the firewall for your address first (`keyward open`), then wait for the port
    #[arg(long)]
    pub open: bool,
}

impl Proxy {
    pub async fn run(self, _ctx: &Context) -> anyhow::Result<Exit> {
        bail!("keyward proxy is not implemented yet")
    }
}
