//! `keyward hosts`: the instances `proxy` would resolve names to (see
//! [`crate::reach::hosts`]).

use std::io::Write as _;

use anyhow::anyhow;

use super::{Context, Exit};
use crate::reach::aws::LazyEc2;
use crate::reach::{connect, hosts, resolve};

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
        let filters = self
            .filter
            .iter()
            .map(|f| resolve::parse_tag_filter(f))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow!(e))?;
        let settings = super::ssh_cert::reach_settings()?;
        let target = connect::target(&settings, self.env.as_deref(), None)?;
        let ec2 = LazyEc2::new(super::laptop::interactive_options(), &target);
        let found = match hosts::list(&ec2, &filters).await {
            Ok(found) => found,
            Err(e) => {
                eprintln!("keyward: cannot list instances: {e}");
                return Ok(Exit::of_ec2(&e));
            }
        };
        let text = if self.json {
            hosts::json_lines(&found)
        } else {
            hosts::table(&found)
        };
        std::io::stdout().lock().write_all(text.as_bytes())?;
        Ok(Exit::Ok)
    }
}
