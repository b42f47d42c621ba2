//! `keyward uninstall`: take back everything `install` did, byte for byte.
//!
//! Only argument handling lives here; `crate::install` refuses when a managed file changed
//! since install (unless `--force`), restores, validates with sshd and rolls back on failure.
//! This file must never write to the host itself.

use std::path::PathBuf;

use anyhow::Context as _;

use super::install::{canonical_root, load_config};
use super::{Context, Exit};
use crate::install::system::RealSystem;
use crate::install::{self, UninstallOptions};

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Restores every file install changed from the copies in state_dir/install/originals, removes the \
files it created and the schedule, and removes the `keyward` user if install created it. Key \
cache and account records are kept. Refuses (exit 1, changing nothing) when a file changed \
since install, naming it; --force restores the originals anyway.")]
pub struct Uninstall {
    /// Print every change and command, change nothing
    #[arg(long)]
    dry_run: bool,
    /// Work on DIR/etc, DIR/var... instead of this host (no sshd, systemctl or reload)
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
    /// Restore the originals even over changes made since install
    #[arg(long)]
    force: bool,
}

impl Uninstall {
    pub async fn run(self, ctx: &Context) -> anyhow::Result<Exit> {
        let root = canonical_root(self.root.as_deref())?;
        let config = load_config(ctx, root.as_deref())?;
        let opts = UninstallOptions {
            root,
            dry_run: self.dry_run,
            force: self.force,
        };
        install::uninstall(
            &opts,
            &config,
            &mut RealSystem,
            &mut std::io::stdout().lock(),
        )
        .context("uninstall")?;
        Ok(Exit::Ok)
    }
}
