//! `keyward pam-create-account`: the pam_exec hook that creates a first-time IAM user's account.

use std::process::ExitCode;

use super::Context;

#[derive(Debug, clap::Args)]
pub struct PamCreateAccount {}

impl PamCreateAccount {
    pub async fn run(self, _ctx: &Context) -> anyhow::Result<ExitCode> {
        anyhow::bail!("pam-create-account is not implemented yet")
    }
}
