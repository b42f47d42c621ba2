//! `keyward install`: wire keyward into sshd, PAM and the sync schedule, safely.

use std::process::ExitCode;

use super::Context;

#[derive(Debug, clap::Args)]
pub struct Install {}

impl Install {
    pub async fn run(self, _ctx: &Context) -> anyhow::Result<ExitCode> {
        anyhow::bail!("install is not implemented yet")
    }
}
