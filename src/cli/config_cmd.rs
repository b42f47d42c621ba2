//! `keyward config`: print the effective configuration, so an admin sees what keyward will do.

use super::{Context, Exit};

#[derive(Debug, clap::Args)]
pub struct ShowConfig {}

impl ShowConfig {
    pub fn run(self, ctx: &Context) -> anyhow::Result<Exit> {
        let (config, source) = ctx.load_config()?;
        println!("# effective keyward config, from {source}");
        if config.allowed_groups.is_empty() {
            println!("# allowed_groups is empty: nobody may log in through keyward");
        }
        print!("{}", config.to_toml());
        Ok(Exit::Ok)
    }
}
