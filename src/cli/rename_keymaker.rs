//! `keyward rename-keymaker`: renames keymaker's accounts to keyward's names for their IAM
//! users (see `sync::rename`), so that the next `sync` adopts them.
//!
//! Reads IAM as `sync` does (all or nothing), reads the account database under sync's lock,
//! prints (`--dry-run`) or carries out the renames. Exit 1 when an account is refused or a
//! rename failed.

use std::path::Path;
use std::time::SystemTime;

use super::{Context, Exit};
use crate::clock::unix_secs;
use crate::iam::{AwsIam, ClientOptions};
use crate::sync::apply::{self, SyncLock};
use crate::sync::local::SystemState;
use crate::sync::{read, rename};

#[derive(Debug, clap::Args)]
pub struct RenameKeymaker {
    /// Print the renames and change nothing (run it as root: the evidence that an account is
    /// keymaker's is in /etc/shadow)
    #[arg(long)]
    dry_run: bool,
}

impl RenameKeymaker {
    pub async fn run(self, ctx: &Context) -> anyhow::Result<Exit> {
        let (config, _) = ctx.load_config()?;
        if !self.dry_run && !nix::unistd::geteuid().is_root() {
            anyhow::bail!(
                "rename-keymaker changes accounts and must run as root (or use --dry-run)"
            );
        }
        let iam = AwsIam::new(&ClientOptions::for_host(&config)?).await;
        let snapshot = read::read(&config, &iam).await.map_err(|e| {
            anyhow::Error::new(e).context("IAM could not be read completely, nothing changed")
        })?;
        let _lock = if self.dry_run {
            None
        } else {
            Some(SyncLock::acquire(Path::new(apply::LOCK_PATH))?)
        };
        let local = SystemState::new(&config.state_dir).read(unix_secs(SystemTime::now()))?;
        let plan = rename::plan(&config, &snapshot, &local)?;
        let failed = if self.dry_run {
            Vec::new()
        } else {
            rename::apply(&plan, &mut rename::Shadow)
        };
        let heading = if self.dry_run {
            "dry run, nothing changed"
        } else {
            "applied"
        };
        println!(
            "keyward rename-keymaker ({heading}): {} rename(s)",
            plan.renames.len()
        );
        for r in &plan.renames {
            match failed.iter().find(|(f, _)| f == r) {
                Some((_, e)) => println!("  FAILED {r}: {e}"),
                None => println!("  {r}"),
            }
        }
        for r in &plan.refused {
            println!("  refused: {}: {}", r.subject, r.reason);
        }
        if !plan.renames.is_empty() && failed.is_empty() {
            let next = if self.dry_run {
                "then run `keyward rename-keymaker`, then `keyward sync`"
            } else {
                "run `keyward sync` to adopt them"
            };
            println!("  next: {next}");
        }
        Ok(if failed.is_empty() && plan.refused.is_empty() {
            Exit::Ok
        } else {
            Exit::Failure
        })
    }
}
