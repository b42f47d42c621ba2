//! The `[reach]` table of the laptop settings file (`~/.config/keyward/laptop.toml`), shared
//! by `proxy`, `hosts`, `ssh-config`, `open` and `close`. Flags override it.

use serde::Deserialize;

/// `[reach]`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct ReachSettings {
    /// The default jump host (an ssh destination, e.g. `bastion.example.com` or
    /// `alice@bastion`), used by `proxy` when no `--via` is given.
    pub jump: Option<String>,
    /// Which address of an instance to connect to: `auto` (private through a jump host,
    /// otherwise public when there is one), `private` or `public`.
    pub address: Option<String>,
    /// How long a resolved name is reused (humantime, e.g. `60s`).
    pub cache_ttl: Option<String>,
    /// One entry per environment (`[[reach.environments]]`).
    pub environments: Vec<Environment>,
    /// `[reach.open]`.
    pub open: OpenSettings,
}

/// `[[reach.environments]]`: a set of hosts reached the same way.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct Environment {
    pub name: String,
    /// ssh `Host` patterns this environment answers for (e.g. `*.prod`).
    pub hosts: Vec<String>,
    /// Stripped from the host name before it is looked up (e.g. `.prod`).
    pub suffix: Option<String>,
    pub region: Option<String>,
    /// The AWS profile to use for this environment.
    pub profile: Option<String>,
    pub jump: Option<String>,
    pub address: Option<String>,
}

/// `[reach.open]`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct OpenSettings {
    /// Where `--ip auto` asks for the caller's public address (HTTPS; http only on loopback).
    pub ip_url: Option<String>,
    /// Where `--ipv6 --ip auto` asks for the caller's IPv6 address. No default: AWS runs no
    /// IPv6 address service, and a wrong answer gives someone else access.
    pub ip6_url: Option<String>,
    /// The tag key that marks security groups keyward may open.
    pub group_tag: Option<String>,
    /// Default rule lifetime (humantime, e.g. `1h`).
    pub ttl: Option<String>,
    pub port: Option<u16>,
}
