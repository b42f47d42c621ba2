//! `keyward uninstall`: take back everything `install` did, byte for byte.

use std::process::ExitCode;

use super::Context;

#[derive(Debug, clap::Args)]
pub struct Uninstall {}

impl Uninstall {
    pub async fn run(self, _ctx: &Context) -> anyhow::Result<ExitCode> {
        anyhow::bail!("uninstall is not implemented yet")
    }
}
