//! The local account database, as key lookup and account creation need it.
//!
//! A Linux name that already exists on the host and that keyward did not create belongs to
//! someone else (a system account, the AMI's admin user, a person's hand-made account): keyward
//! must never serve IAM keys for it. Whether keyward created it is decided by
//! `ownership::owns` from the account's UID and its ownership record, nothing else.

use std::path::Path;

use super::ownership::{OwnershipRecord, Records};

/// The account database (NSS: files, sssd, LDAP…) could not say whether a name exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the account database did not answer: {0}")]
pub struct AccountDbError(pub nix::errno::Errno);

pub trait LocalAccounts {
    /// The UID of the local account `linux_name`, if there is one; an error when the account
    /// database could not answer (an NSS module such as sssd failing), which callers must not
    /// mistake for "no such account": the account may well exist and belong to someone else.
    fn uid(&self, linux_name: &str) -> Result<Option<u32>, AccountDbError>;
    /// The account's ownership record; `None` when there is none or it cannot be trusted.
    fn record(&self, linux_name: &str) -> Option<OwnershipRecord>;
}

/// The host's passwd database (NSS) plus keyward's ownership records.
pub struct SystemAccounts {
    records: Records,
}

impl SystemAccounts {
    pub fn new(state_dir: &Path) -> SystemAccounts {
        SystemAccounts {
            records: Records::new(state_dir),
        }
    }
}

impl LocalAccounts for SystemAccounts {
    fn uid(&self, linux_name: &str) -> Result<Option<u32>, AccountDbError> {
        use nix::errno::Errno;
        match nix::unistd::User::from_name(linux_name) {
            Ok(user) => Ok(user.map(|u| u.uid.as_raw())),
            // getpwnam_r(3): these also mean "not found" on some systems.
            Err(Errno::ENOENT | Errno::ESRCH | Errno::EBADF | Errno::EPERM) => Ok(None),
            Err(e) => Err(AccountDbError(e)),
        }
    }

    fn record(&self, linux_name: &str) -> Option<OwnershipRecord> {
        self.records.read_or_warn(linux_name)
    }
}
