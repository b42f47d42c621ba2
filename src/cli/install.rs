//! `keyward install`: wire keyward into sshd, PAM and the sync schedule, safely.
//!
//! Only argument handling lives here; every decision and every change is in `crate::install`,
//! which refuses, validates with sshd and rolls back on its own. This file must never write to
//! the host itself.

use std::path::PathBuf;

use anyhow::Context as _;

use super::{Context, Exit};
use crate::config::{Config, DEFAULT_PATH};
use crate::install::system::RealSystem;
use crate::install::{self, InstallOptions, SchedulerChoice};

#[derive(Debug, clap::Args)]
#[command(after_help = "\
What it does: adds keyward's AuthorizedKeysCommand to sshd (a drop-in in /etc/ssh/sshd_config.d \
when that is read first, else a marked block at the top of /etc/ssh/sshd_config), creates the \
`keyward` system user, puts the account-creation hook in /etc/pam.d/sshd (create_on_login), \
and schedules `keyward sync` (systemd timer or /etc/cron.d). With --ca, sshd also accepts \
keyward user certificates (the CA key goes to /etc/ssh/keyward_user_ca.pub) and presents the \
host certificates `keyward host-cert` wrote. With --jump, members of the config's [jump] group \
get no shell or command and may only forward to port 22 of the [jump] destinations \
(/etc/ssh/keyward_jump.conf, Included last by keyward's sshd directives). Every original is saved under \
state_dir/install/ first; sshd -t and sshd -T must accept the result or every file is put back. \
Running it again changes nothing; `keyward uninstall` takes it all back.")]
pub struct Install {
    /// Print every change and command, change nothing
    #[arg(long)]
    dry_run: bool,
    /// Work on DIR/etc, DIR/var... instead of this host (no sshd, systemctl or reload)
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
    /// Drop an AuthorizedKeysCommand already in effect instead of chaining to it
    #[arg(long)]
    replace: bool,
    /// How `keyward sync` is scheduled
    #[arg(long, value_enum, default_value_t = SchedulerChoice::Auto)]
    scheduler: SchedulerChoice,
    /// Do not reload sshd after the change
    #[arg(long)]
    no_reload: bool,
    /// Also accept keyward user certificates: TrustedUserCAKeys (the CA key from config
    /// ssh_ca_public_key or --ca-public-key), `keyward authorized-principals` as
    /// AuthorizedPrincipalsCommand, and HostCertificate for each /etc/ssh/ssh_host_*_key-cert.pub
    #[arg(long)]
    ca: bool,
    /// The CA's public key (what `keyward ca public-key` prints) instead of ssh_ca_public_key;
    /// implies --ca
    #[arg(long, value_name = "FILE")]
    ca_public_key: Option<PathBuf>,
    /// Make this a jump-only host for the config's [jump] group: its members (unless in an
    /// admin_groups group) get no shell and may only forward to port 22 (jump.port) of
    /// jump.destinations (`ssh -J`); a later install without --jump keeps the rule
    #[arg(long)]
    jump: bool,
    /// Take out the jump rule an earlier --jump installed
    #[arg(long, conflicts_with = "jump")]
    no_jump: bool,
}

impl Install {
    pub async fn run(self, ctx: &Context) -> anyhow::Result<Exit> {
        let root = canonical_root(self.root.as_deref())?;
        let config = load_config(ctx, root.as_deref())?;
        let binary = std::env::current_exe()
            .and_then(|p| p.canonicalize())
            .context("cannot find the path of the running keyward binary")?;
        let binary = binary
            .to_str()
            .with_context(|| format!("{} is not a UTF-8 path", binary.display()))?
            .to_owned();
        let opts = InstallOptions {
            root,
            binary,
            dry_run: self.dry_run,
            replace: self.replace,
            scheduler: self.scheduler,
            reload: !self.no_reload,
            ca: self.ca || self.ca_public_key.is_some(),
            ca_public_key: self
                .ca_public_key
                .as_deref()
                .map(read_key_file)
                .transpose()?,
            jump: self.jump,
            no_jump: self.no_jump,
        };
        install::install(
            &opts,
            &config,
            &mut RealSystem,
            &mut std::io::stdout().lock(),
        )
        .context("install")?;
        Ok(Exit::Ok)
    }
}

/// An admin's public key file: one short text line.
fn read_key_file(path: &std::path::Path) -> anyhow::Result<String> {
    let bytes =
        std::fs::read(path).with_context(|| format!("--ca-public-key {}", path.display()))?;
    anyhow::ensure!(
        bytes.len() <= 16 * 1024,
        "--ca-public-key {}: larger than a public key",
        path.display()
    );
    String::from_utf8(bytes)
        .with_context(|| format!("--ca-public-key {}: not UTF-8 text", path.display()))
}

/// `--root` as an absolute, resolved path (useradd's `--prefix` needs one).
pub(super) fn canonical_root(root: Option<&std::path::Path>) -> anyhow::Result<Option<PathBuf>> {
    root.map(|r| {
        r.canonicalize()
            .with_context(|| format!("--root {}", r.display()))
    })
    .transpose()
}

/// With `--root DIR` and no `--config`, the config is DIR/etc/keyward/keyward.toml (or the
/// defaults when it does not exist), like on the host being prepared.
pub(super) fn load_config(ctx: &Context, root: Option<&std::path::Path>) -> anyhow::Result<Config> {
    let (config, _) = match (root, &ctx.config_path) {
        (Some(root), None) => {
            let path = root.join(DEFAULT_PATH.trim_start_matches('/'));
            if path.exists() {
                Config::load(Some(&path))?
            } else {
                (Config::default(), crate::config::Source::Defaults(path))
            }
        }
        _ => ctx.load_config()?,
    };
    Ok(config)
}
