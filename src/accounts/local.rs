//! The local account database, as key lookup and account creation need it.
//!
//! A Linux name that already exists on the host and that keyward did not create belongs to
//! someone else (a system account, the AMI's admin user, a person's hand-made account): keyward
//! must never serve IAM keys for it. Whether keyward created it is decided by
//! `ownership::owns` from the account's UID and its ownership record, nothing else.

use std::path::Path;

use super::ownership::{OwnershipRecord, Records};

pub trait LocalAccounts {
    /// The UID of the local account `linux_name`, if there is one.
    fn uid(&self, linux_name: &str) -> Option<u32>;
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
    fn uid(&self, linux_name: &str) -> Option<u32> {
        uzers::get_user_by_name(linux_name).map(|u| u.uid())
    }

    fn record(&self, linux_name: &str) -> Option<OwnershipRecord> {
        self.records.read_or_warn(linux_name)
    }
}
