//! `keyward proxy`'s decision tree, behind the [`Instances`] trait so that fakes reach every
//! branch: which settings apply ([`target`]), which instance HOST means (the cache, else EC2:
//! [`find`]), which address and route ([`route`]), re-pointing the name's known_hosts link,
//! and connecting ([`open`]), with one fresh lookup when a cached address does not answer.
//!
//! Invariants (with those of the modules it calls):
//! - The known_hosts link of HOST is pointed at the instance before any byte reaches ssh, so
//!   ssh checks the host key against that instance's keys only.
//! - A cached answer is used only while fresh and only for a direct connection; when its
//!   address refuses the connection, the entry is dropped and EC2 is asked once more; an EC2
//!   answer is never retried. Through a jump host `ssh -W` connects, so a stale address could
//!   not be noticed: the cache is not read there.

use std::ffi::OsString;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use super::cache::{self, Cache};
use super::known_hosts::{self, KnownHostsError};
use super::proxy::{self, ProxyError, Route};
use super::resolve::{self, AddressMode, ResolveError};
use super::settings::{Environment, ReachSettings};
use crate::ec2::{Instance, Instances};

/// The settings one `proxy` (or `hosts`) run uses: `--env`'s environment over `[reach]`,
/// flags over both.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Target {
    /// The environment's name; empty for none.
    pub env: String,
    pub suffix: Option<String>,
    pub jump: Option<String>,
    pub address: AddressMode,
    pub ttl: Duration,
    pub region: Option<String>,
    pub profile: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("laptop settings: {0}")]
    Settings(String),
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    #[error("cannot point the known_hosts file of {host} at {id}: {error}")]
    KnownHosts {
        host: String,
        id: String,
        error: KnownHostsError,
    },
    #[error(transparent)]
    Proxy(#[from] ProxyError),
}

fn check_region(region: &str) -> bool {
    (1..=32).contains(&region.len())
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn check_profile(profile: &str) -> bool {
    (1..=128).contains(&profile.len())
        && profile
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-+=@,".contains(&b))
}

/// The environment `env` names (`None`: `[reach]` alone), with `via` over any jump setting.
pub fn target(
    settings: &ReachSettings,
    env: Option<&str>,
    via: Option<&str>,
) -> Result<Target, ConnectError> {
    let bad = |what: String| Err(ConnectError::Settings(what));
    let environment: Option<&Environment> = match env {
        None => None,
        Some(name) => match settings.environments.iter().find(|e| e.name == name) {
            Some(e) => Some(e),
            None => {
                return bad(format!(
                    "no environment {:?} in [[reach.environments]]",
                    crate::logging::untrusted(name)
                ))
            }
        },
    };
    let pick = |own: Option<&Option<String>>, global: &Option<String>| {
        own.and_then(|o| o.clone()).or_else(|| global.clone())
    };
    let jump = via
        .map(str::to_owned)
        .or_else(|| pick(environment.map(|e| &e.jump), &settings.jump));
    if let Some(jump) = &jump {
        proxy::check_jump(jump)?;
    }
    let address = match pick(environment.map(|e| &e.address), &settings.address) {
        None => AddressMode::Auto,
        Some(text) => match text.parse() {
            Ok(mode) => mode,
            Err(e) => return bad(e),
        },
    };
    let ttl = match &settings.cache_ttl {
        None => cache::DEFAULT_TTL,
        Some(text) => match humantime::parse_duration(text) {
            Ok(ttl) => ttl,
            Err(e) => return bad(format!("cache_ttl = {text:?}: {e}")),
        },
    };
    let region = environment.and_then(|e| e.region.clone());
    if region.as_deref().is_some_and(|r| !check_region(r)) {
        return bad("an environment's region is not of [a-z0-9-]".into());
    }
    let profile = environment.and_then(|e| e.profile.clone());
    if profile.as_deref().is_some_and(|p| !check_profile(p)) {
        return bad("an environment's profile is not of [A-Za-z0-9._-+=@,]".into());
    }
    Ok(Target {
        env: environment.map(|e| e.name.clone()).unwrap_or_default(),
        suffix: environment.and_then(|e| e.suffix.clone()),
        jump,
        address,
        ttl,
        region,
        profile,
    })
}

/// How to reach `instance` on `port` under `target`'s rules.
pub fn route(instance: &Instance, target: &Target, port: u16) -> Result<Route, ResolveError> {
    let ip = resolve::pick_address(instance, target.address, target.jump.is_some())?;
    let addr = SocketAddr::new(ip, port);
    Ok(match &target.jump {
        Some(jump) => Route::Via {
            jump: jump.clone(),
            target: addr,
        },
        None => Route::Direct(addr),
    })
}

/// Where a resolution came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Cache,
    Ec2,
}

/// The running instance HOST means: a fresh cache entry (unless `use_cached` is false), else
/// EC2 (and the answer stored).
pub async fn find<E: Instances>(
    ec2: &E,
    cache: Option<&Cache>,
    target: &Target,
    host: &str,
    now: u64,
    use_cached: bool,
) -> Result<(Instance, Source), ResolveError> {
    let lookup = resolve::parse_host(host, target.suffix.as_deref())?;
    if let Some(cache) = cache.filter(|_| use_cached) {
        match cache.get(&target.env, host, now, target.ttl) {
            Ok(Some(instance)) => return Ok((instance, Source::Cache)),
            Ok(None) => {}
            Err(e) => tracing::warn!("not using the cached answer for {host}: {}", e.problem()),
        }
    }
    let instance = resolve::resolve(ec2, &lookup).await?;
    if let Some(cache) = cache {
        if let Err(e) = cache.put(&target.env, host, &instance, now) {
            tracing::warn!("cannot cache the answer for {host}: {e}");
        }
    }
    Ok((instance, Source::Ec2))
}

/// Where `proxy` keeps state; `None` skips that part (no HOME).
#[derive(Debug, Clone, Default)]
pub struct Places {
    pub cache: Option<Cache>,
    pub known_hosts: Option<PathBuf>,
}

/// What the caller does with the connection.
#[derive(Debug)]
pub enum Connection {
    /// Pipe stdio to this socket ([`proxy::pipe`]).
    Stream {
        instance: Instance,
        stream: TcpStream,
    },
    /// Replace the process with `ssh` and these arguments.
    Exec {
        instance: Instance,
        argv: Vec<OsString>,
    },
}

/// Resolves HOST, points its known_hosts link at the instance, and connects (or says how to).
pub async fn open<E: Instances>(
    ec2: &E,
    places: &Places,
    target: &Target,
    host: &str,
    port: u16,
    now: u64,
    timeout: Duration,
) -> Result<Connection, ConnectError> {
    let cache = places.cache.as_ref();
    // Through a jump host a stale address would fail inside `ssh -W`, out of sight.
    let mut use_cached = target.jump.is_none();
    loop {
        let (instance, source) = find(ec2, cache, target, host, now, use_cached).await?;
        if let Some(dir) = &places.known_hosts {
            known_hosts::point(dir, host, &instance.id).map_err(|error| {
                ConnectError::KnownHosts {
                    host: host.to_owned(),
                    id: instance.id.clone(),
                    error,
                }
            })?;
        }
        match route(&instance, target, port)? {
            Route::Via { jump, target } => {
                let argv = proxy::via_argv(&jump, target)?;
                return Ok(Connection::Exec { instance, argv });
            }
            Route::Direct(addr) => match proxy::connect(addr, timeout) {
                Ok(stream) => return Ok(Connection::Stream { instance, stream }),
                Err(e) if source == Source::Cache => {
                    tracing::info!("{e}; asking EC2 again for {host}");
                    if let Some(c) = cache {
                        c.forget(&target.env, host);
                    }
                    use_cached = false;
                }
                Err(e) => return Err(e.into()),
            },
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests;
