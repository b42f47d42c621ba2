//! Which instance a name means: `keyward proxy HOST` and `keyward hosts` turn what a person
//! types (an instance id, an IP address or a `Name` tag) into exactly one running instance,
//! and pick the address to connect to.
//!
//! Invariants:
//! - HOST is checked before any use ([`parse_host`]): 1 to [`MAX_HOST_LEN`] characters of
//!   `[A-Za-z0-9._:-]` (plus brackets around an IPv6 address), never starting with `-` or `.`.
//!   The environment's suffix is stripped first. The same text names the per-name known_hosts
//!   link, so it can never hold a `/`.
//! - A lookup ends in exactly one running instance or in an error listing the candidates (id,
//!   name, state, addresses): several running instances are [`ResolveError::Ambiguous`], none
//!   is [`ResolveError::NotRunning`] with the stopped or terminated ones that matched. Never
//!   "the first one".
//! - What EC2 answers is checked against the question (the id, the Name tag or an address must
//!   be the one asked for): an instance that does not match is not a candidate.
//! - Names from EC2 are printed escaped ([`crate::logging::untrusted`]): a Name tag is set by
//!   anyone with ec2:CreateTags and reaches a terminal here.

use std::fmt;
use std::net::IpAddr;

use crate::ec2::{is_instance_id, Ec2Error, Instance, InstanceFilter, Instances};

/// Longer than any DNS name or Name tag (256) a person types after `ssh`.
pub const MAX_HOST_LEN: usize = 255;

/// What HOST is, once checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Id(String),
    Ip(IpAddr),
    Name(String),
}

impl fmt::Display for Lookup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Lookup::Id(id) => write!(f, "instance id {id}"),
            Lookup::Ip(ip) => write!(f, "address {ip}"),
            Lookup::Name(name) => write!(f, "Name tag {name:?}"),
        }
    }
}

/// Why HOST names no single running instance.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error(
        "{host:?} is not a host keyward looks up: {reason} (give an instance id, an IP address \
         or a Name tag of [A-Za-z0-9._-])"
    )]
    InvalidHost { host: String, reason: &'static str },
    #[error(
        "no running instance has {lookup}{}",
        list(candidates, "; these match but do not run")
    )]
    NotRunning {
        lookup: Lookup,
        candidates: Vec<Instance>,
    },
    #[error(
        "{lookup} matches {} running instances; connect by instance id instead{}",
        candidates.len(),
        list(candidates, "")
    )]
    Ambiguous {
        lookup: Lookup,
        candidates: Vec<Instance>,
    },
    #[error(
        "instance {id} has no {wanted} address{}",
        list(std::slice::from_ref(instance), "")
    )]
    NoAddress {
        id: String,
        wanted: &'static str,
        instance: Box<Instance>,
    },
    #[error("cannot look up instances: {0}")]
    Ec2(#[from] Ec2Error),
}

/// `: ` + one candidate per line, or nothing when there are none.
fn list(candidates: &[Instance], title: &str) -> String {
    if candidates.is_empty() {
        return String::new();
    }
    let mut text = format!("{title}:");
    for instance in candidates {
        text.push_str("\n  ");
        text.push_str(&describe(instance));
    }
    text
}

/// One line about an instance for people: id, name (escaped), state, addresses, VPC.
pub fn describe(instance: &Instance) -> String {
    let or_dash = |ip: Option<IpAddr>| ip.map_or_else(|| "-".to_owned(), |ip| ip.to_string());
    format!(
        "{}  name {}  {}  private {}  public {}",
        instance.id,
        instance
            .name_tag
            .as_deref()
            .map_or_else(|| "-".to_owned(), crate::logging::untrusted),
        instance.state,
        or_dash(instance.private_ip),
        or_dash(instance.public_ip),
    )
}

/// Whether `host` may be used as keyward uses it: looked up in EC2, passed to ssh, and used as
/// a file name (the per-name known_hosts link).
pub fn check_host(host: &str) -> Result<(), ResolveError> {
    let invalid = |reason| {
        Err(ResolveError::InvalidHost {
            host: crate::logging::untrusted(host),
            reason,
        })
    };
    if host.is_empty() {
        return invalid("it is empty");
    }
    if host.len() > MAX_HOST_LEN {
        return invalid("it is too long");
    }
    if host.starts_with(['-', '.']) {
        return invalid("it starts with '-' or '.'");
    }
    if !host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._:-[]".contains(&b))
    {
        return invalid("it holds a character other than [A-Za-z0-9._:-]");
    }
    Ok(())
}

/// HOST as typed (ssh's `%n`), with the environment's `suffix` (e.g. `.prod`, matched without
/// regard to ASCII case) stripped, checked, and classified.
pub fn parse_host(host: &str, suffix: Option<&str>) -> Result<Lookup, ResolveError> {
    check_host(host)?;
    let bare = match suffix.filter(|s| !s.is_empty()) {
        Some(suffix) if host.len() > suffix.len() => {
            let (head, tail) = host.split_at(host.len() - suffix.len());
            if tail.eq_ignore_ascii_case(suffix) {
                head
            } else {
                host
            }
        }
        _ => host,
    };
    check_host(bare)?;
    if is_instance_id(bare) {
        return Ok(Lookup::Id(bare.to_owned()));
    }
    let unbracketed = bare
        .strip_prefix('[')
        .and_then(|b| b.strip_suffix(']'))
        .unwrap_or(bare);
    if let Ok(ip) = unbracketed.parse::<IpAddr>() {
        return Ok(Lookup::Ip(ip));
    }
    if bare.contains([':', '[', ']']) {
        return Err(ResolveError::InvalidHost {
            host: bare.to_owned(),
            reason: "it is neither an IP address nor a name",
        });
    }
    Ok(Lookup::Name(bare.to_owned()))
}

/// Whether EC2's answer really is about what was asked (a filter that matched more loosely
/// than keyward meant must not make a candidate).
fn matches(lookup: &Lookup, instance: &Instance) -> bool {
    match lookup {
        Lookup::Id(id) => &instance.id == id,
        Lookup::Ip(ip) => instance.private_ip == Some(*ip) || instance.public_ip == Some(*ip),
        Lookup::Name(name) => instance.name_tag.as_deref() == Some(name.as_str()),
    }
}

/// The decision, given every instance EC2 matched: exactly one running one, or the error that
/// lists the candidates.
pub fn choose(lookup: &Lookup, found: Vec<Instance>) -> Result<Instance, ResolveError> {
    let (mut running, others): (Vec<_>, Vec<_>) = found
        .into_iter()
        .filter(|i| matches(lookup, i))
        .partition(|i| i.state == "running");
    match running.len() {
        1 => Ok(running.remove(0)),
        0 => Err(ResolveError::NotRunning {
            lookup: lookup.clone(),
            candidates: others,
        }),
        _ => {
            running.sort_by(|a, b| a.id.cmp(&b.id));
            Err(ResolveError::Ambiguous {
                lookup: lookup.clone(),
                candidates: running,
            })
        }
    }
}

/// The running instance `lookup` means, asking EC2:
/// - an id: `instance-id`;
/// - an address: `private-ip-address`, then (when no running instance has it) `ip-address`;
/// - a name: `tag:Name` and `instance-state-name=running`; when nothing runs under that name,
///   `tag:Name` alone, so that the error shows the stopped or terminated candidates.
pub async fn resolve<E: Instances>(ec2: &E, lookup: &Lookup) -> Result<Instance, ResolveError> {
    match lookup {
        Lookup::Id(id) => choose(
            lookup,
            ec2.instances(&[InstanceFilter::Id(id.clone())]).await?,
        ),
        Lookup::Ip(ip) => {
            let private = ec2.instances(&[InstanceFilter::PrivateIp(*ip)]).await?;
            match choose(lookup, private) {
                Err(ResolveError::NotRunning { candidates, .. }) => {
                    let mut found = ec2.instances(&[InstanceFilter::PublicIp(*ip)]).await?;
                    found.retain(|i| !candidates.iter().any(|c| c.id == i.id));
                    found.extend(candidates);
                    choose(lookup, found)
                }
                decided => decided,
            }
        }
        Lookup::Name(name) => {
            let by_name = InstanceFilter::Name(name.clone());
            let running = ec2
                .instances(&[by_name.clone(), InstanceFilter::State("running".into())])
                .await?;
            match choose(lookup, running) {
                Err(ResolveError::NotRunning { .. }) => {
                    choose(lookup, ec2.instances(&[by_name]).await?)
                }
                decided => decided,
            }
        }
    }
}

/// `[reach] address`: which of an instance's addresses to connect to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AddressMode {
    /// Private through a jump host; otherwise public when the instance has one, else private.
    #[default]
    Auto,
    Private,
    Public,
}

impl std::str::FromStr for AddressMode {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "auto" => Ok(AddressMode::Auto),
            "private" => Ok(AddressMode::Private),
            "public" => Ok(AddressMode::Public),
            other => Err(format!(
                "address = {:?} is not one of auto, private, public",
                crate::logging::untrusted(other)
            )),
        }
    }
}

/// The address to connect to, by the rule of [`AddressMode`].
pub fn pick_address(
    instance: &Instance,
    mode: AddressMode,
    through_jump: bool,
) -> Result<IpAddr, ResolveError> {
    let (address, wanted) = match mode {
        AddressMode::Private => (instance.private_ip, "private"),
        AddressMode::Public => (instance.public_ip, "public"),
        AddressMode::Auto if through_jump => (instance.private_ip, "private"),
        AddressMode::Auto => (instance.public_ip.or(instance.private_ip), "IP"),
    };
    address.ok_or_else(|| ResolveError::NoAddress {
        id: instance.id.clone(),
        wanted,
        instance: Box::new(instance.clone()),
    })
}

/// `--filter tag:KEY=VALUE` as an EC2 filter.
pub fn parse_tag_filter(text: &str) -> Result<InstanceFilter, String> {
    let bad = || {
        format!(
            "--filter {:?}: give tag:KEY=VALUE (KEY and VALUE without control characters)",
            crate::logging::untrusted(text)
        )
    };
    let (key, value) = text
        .strip_prefix("tag:")
        .and_then(|kv| kv.split_once('='))
        .ok_or_else(bad)?;
    if key.is_empty()
        || key.len() > 128
        || value.len() > 256
        || key.chars().chain(value.chars()).any(char::is_control)
    {
        return Err(bad());
    }
    Ok(InstanceFilter::Tag {
        key: key.to_owned(),
        value: value.to_owned(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
pub(crate) mod tests;
