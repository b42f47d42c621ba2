//! `keyward ssh-config`: the `Host` blocks to `Include` from `~/.ssh/config` (rendered by
//! [`crate::reach::ssh_config::render`]).

use anyhow::{anyhow, Context as _};

use super::{Context, Exit};
use crate::reach::{known_hosts, ssh_config};

#[derive(Debug, clap::Args)]
#[command(after_help = "Save and include it once:\n  \
    keyward ssh-config > ~/.ssh/keyward.conf\n  \
    and put `Include keyward.conf` at the top of ~/.ssh/config. See docs/reaching-hosts.md.")]
pub struct SshConfig {
    /// Only this environment's block
    #[arg(long, value_name = "NAME")]
    pub env: Option<String>,
}

impl SshConfig {
    pub fn run(self, _ctx: &Context) -> anyhow::Result<Exit> {
        let settings = super::ssh_cert::reach_settings()?;
        let keyward = std::env::current_exe().context("cannot tell where keyward is")?;
        let state = known_hosts::default_dir()
            .ok_or_else(|| anyhow!("HOME is not set: keyward keeps host keys under it"))?;
        let text = ssh_config::render(&settings, &keyward, &state, self.env.as_deref())?;
        print!("{text}");
        Ok(Exit::Ok)
    }
}
