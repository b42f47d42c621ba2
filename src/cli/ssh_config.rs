//! `keyward ssh-config`: the `Host` blocks to `Include` from `~/.ssh/config`.

use anyhow::bail;

use super::{Context, Exit};

#[derive(Debug, clap::Args)]
pub struct SshConfig {
    /// Only this environment's block
    #[arg(long, value_name = "NAME")]
    pub env: Option<String>,
}

impl SshConfig {
    pub fn run(self, _ctx: &Context) -> anyhow::Result<Exit> {
        let _settings = super::ssh_cert::reach_settings()?;
        bail!("keyward ssh-config is not implemented yet")
    }
}
