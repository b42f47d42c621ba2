//! `keyward config`: print the effective configuration, so an admin sees what keyward will do.

use std::process::ExitCode;

use super::Context;

#[derive(Debug, clap::Args)]
pub struct ShowConfig {}

impl ShowConfig {
    pub fn run(self, ctx: &Context) -> anyhow::Result<ExitCode> {
        let (config, source) = ctx.load_config()?;
        println!("# effective keyward config, from {source}");
        if config.allowed_groups.is_empty() {
            println!("# allowed_groups is empty: nobody may log in through keyward");
        }
        print!("{}", config.to_toml());
        Ok(ExitCode::SUCCESS)
    }
}
