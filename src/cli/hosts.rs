//! `keyward hosts`: the instances `proxy` would resolve names to.

use anyhow::bail;

use super::{Context, Exit};

#[derive(Debug, clap::Args)]
pub struct Hosts {
    /// Only instances with this tag (`tag:KEY=VALUE`); repeatable
    #[arg(long, value_name = "tag:K=V")]
    pub filter: Vec<String>,
    /// The environment (`[[reach.environments]]` in laptop.toml)
    #[arg(long, value_name = "NAME")]
    pub env: Option<String>,
    /// One JSON object per line instead of a table
    #[arg(long)]
    pub json: bool,
}

impl Hosts {
    pub async fn run(self, _ctx: &Context) -> anyhow::Result<Exit> {
        bail!("keyward hosts is not implemented yet")
    }
}
