//! Reaching hosts from a laptop: which instance a name means (`proxy`, `hosts`), the ssh
//! configuration that uses it (`ssh-config`), and the security-group rules a person opens for
//! their own address and that close by themselves (`open`, `close`).
//!
//! Invariants:
//! - A name, id or address resolves to exactly one running instance or to an error that lists
//!   the candidates; never to "the first one".
//! - Host keys are trusted per instance, never per name or per address: an address reused by a
//!   new instance does not inherit the old instance's key, and a replaced instance under the
//!   same name is not trusted silently.
//! - Nothing from EC2 (names, tags, addresses) reaches a shell; what reaches ssh's argv or a
//!   path is validated first.
//! - `open` changes only rules keyward created (tagged with their owner and expiry); a failed
//!   or partial EC2 answer never revokes anything.

pub mod aws;
pub mod cache;
pub mod connect;
pub mod hosts;
pub mod known_hosts;
pub mod open;
pub mod proxy;
pub mod resolve;
pub mod settings;
pub mod ssh_config;
