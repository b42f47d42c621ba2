//! `keyward proxy HOST PORT`: an ssh ProxyCommand that resolves HOST to one running instance
//! at connect time and pipes stdio to it (directly or through a jump host). The decisions are
//! in [`crate::reach::connect`]; this file reads settings, runs them and pipes or execs.
//! stdout is the SSH stream: every message goes to stderr.

use std::os::unix::process::CommandExt as _;
use std::time::SystemTime;

use anyhow::{anyhow, bail};

use super::{Context, Exit};
use crate::clock::unix_secs;
use crate::reach::aws::LazyEc2;
use crate::reach::cache::{self, Cache};
use crate::reach::connect::{self, ConnectError, Connection, Places};
use crate::reach::open::{self, OpenAws};
use crate::reach::proxy::{self, Route, CONNECT_TIMEOUT};
use crate::reach::resolve::ResolveError;
use crate::reach::{known_hosts, resolve};

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Use it from ~/.ssh/config (`keyward ssh-config` prints the block):\n  \
                  ProxyCommand keyward proxy '%n' %p\n\
                  HOST is an instance id, an IP address (private, then public) or a Name tag; \
                  it must name exactly one running instance. Answers are cached for \
                  [reach] cache_ttl (60s). See docs/reaching-hosts.md."
)]
pub struct Proxy {
    /// An instance id, a Name tag or an IP address (ssh's %n)
    pub host: String,
    /// The port to connect to (ssh's %p)
    pub port: u16,
    /// Go through this jump host (an ssh destination); the private address is used
    #[arg(long, value_name = "JUMP")]
    pub via: Option<String>,
    /// The environment (`[[reach.environments]]` in laptop.toml) HOST belongs to
    #[arg(long, value_name = "NAME")]
    pub env: Option<String>,
    /// The directory of per-name known_hosts links ssh reads (`keyward ssh-config` passes the
    /// one its UserKnownHostsFile names) [default: ~/.local/state/keyward/known_hosts]
    #[arg(long, value_name = "DIR")]
    pub known_hosts: Option<std::path::PathBuf>,
    /// Open the instance's marked security groups for your address first (as `keyward open`),
    /// wait until the port answers, then connect (not with --via)
    #[arg(long)]
    pub open: bool,
}

impl Proxy {
    pub async fn run(self, _ctx: &Context) -> anyhow::Result<Exit> {
        resolve::check_host(&self.host)?;
        let settings = super::ssh_cert::reach_settings()?;
        let target = connect::target(&settings, self.env.as_deref(), self.via.as_deref())?;
        let places = Places {
            cache: cache::default_dir().map(Cache::new),
            known_hosts: match self.known_hosts.clone() {
                Some(dir) if dir.is_absolute() => Some(dir),
                Some(dir) => bail!("--known-hosts {} is not an absolute path", dir.display()),
                None => known_hosts::default_dir(),
            },
        };
        let ec2 = LazyEc2::new(super::laptop::interactive_options(), &target);
        let now = unix_secs(SystemTime::now());
        if self.open {
            if let Some(exit) = self
                .open_first(&ec2, &places, &target, &settings, now)
                .await?
            {
                return Ok(exit);
            }
        }
        let opened = connect::open(
            &ec2,
            &places,
            &target,
            &self.host,
            self.port,
            now,
            CONNECT_TIMEOUT,
        )
        .await;
        match opened {
            Ok(Connection::Stream { stream, .. }) => {
                proxy::pipe(stream, std::io::stdin(), std::io::stdout().lock())?;
                Ok(Exit::Ok)
            }
            Ok(Connection::Exec { argv, .. }) => {
                let err = std::process::Command::new("ssh").args(&argv).exec();
                Err(anyhow!("cannot run ssh ({err}): install openssh-client"))
            }
            Err(ConnectError::Resolve(ResolveError::Ec2(e))) => {
                eprintln!("keyward: cannot look up {}: {e}", self.host);
                Ok(Exit::of_ec2(&e))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// `--open`: the instance HOST means, opened for the caller's address on its marked
    /// groups (as `keyward open`), and its address answering TCP; `Some(exit)` when that failed.
    /// The connection that follows finds the same instance in the cache.
    async fn open_first(
        &self,
        ec2: &LazyEc2,
        places: &Places,
        target: &connect::Target,
        settings: &crate::reach::settings::ReachSettings,
        now: u64,
    ) -> anyhow::Result<Option<Exit>> {
        if let Some(jump) = &target.jump {
            bail!(
                "--open opens the instance's own security groups for your address, but this \
                 connection goes through the jump host {jump:?}: open the jump host instead \
                 (`keyward open JUMP-INSTANCE`) or connect without --via"
            );
        }
        let found = connect::find(ec2, places.cache.as_ref(), target, &self.host, now, true).await;
        let instance = match found {
            Ok((instance, _)) => instance,
            Err(ResolveError::Ec2(e)) => {
                eprintln!("keyward: cannot look up {}: {e}", self.host);
                return Ok(Some(Exit::of_ec2(&e)));
            }
            Err(e) => return Err(e.into()),
        };
        let Route::Direct(addr) = connect::route(&instance, target, self.port)? else {
            bail!("--open needs a direct route to the instance");
        };
        let options = super::laptop::interactive_options();
        let shared = crate::reach::aws::target_config(&options, target).await;
        let opened = match OpenAws::from_config(shared, &options) {
            Ok(aws) => {
                let mut log = std::io::stderr().lock();
                open::open_and_wait(&aws, &instance, addr, &settings.open, &mut log).await
            }
            Err(e) => Err(e),
        };
        match opened {
            Ok(_) => Ok(None),
            Err(err) => {
                eprintln!("keyward: {err}");
                Ok(Some(super::open::exit_of(&err)))
            }
        }
    }
}
