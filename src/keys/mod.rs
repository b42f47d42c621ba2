//! SSH public keys: parsing, validation, fingerprints, the local key cache, the lookup that
//! decides what `authorized-keys` prints, and the OpenSSH certificates a keyward CA signs.
//!
//! Every key line keyward prints to sshd is rebuilt from a parsed key; nothing read from IAM or
//! a file is ever echoed verbatim.

pub mod answer;
pub mod cache;
pub mod cert;
pub mod cert_check;
pub mod chain;
pub mod lookup;
mod parse;

pub use parse::{KeyError, KeyType, PublicKey};
