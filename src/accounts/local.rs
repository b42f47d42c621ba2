//! The local account database, as far as key lookup needs it.
//!
//! A Linux name that already exists on the host and that keyward did not create belongs to
//! someone else (a system account, the AMI's admin user, a person's hand-made account): keyward
//! must never serve IAM keys for it. Ownership is a root-owned record per account under
//! `state_dir/accounts/`, never something a user could edit, like the GECOS field.

use std::path::{Path, PathBuf};

use crate::files;

pub trait LocalAccounts {
    fn exists(&self, linux_name: &str) -> bool;
    fn owned_by_keyward(&self, linux_name: &str) -> bool;
}

/// The host's passwd database (NSS) plus keyward's ownership records.
pub struct SystemAccounts {
    records: PathBuf,
}

impl SystemAccounts {
    pub fn new(state_dir: &Path) -> SystemAccounts {
        SystemAccounts {
            records: state_dir.join("accounts"),
        }
    }

    pub fn record_path(&self, linux_name: &str) -> PathBuf {
        self.records.join(linux_name)
    }
}

impl LocalAccounts for SystemAccounts {
    fn exists(&self, linux_name: &str) -> bool {
        uzers::get_user_by_name(linux_name).is_some()
    }

    fn owned_by_keyward(&self, linux_name: &str) -> bool {
        // An untrusted record counts as no record: refusing is the safe direction.
        let path = self.record_path(linux_name);
        path.is_file() && files::check_trusted(&path).is_ok()
    }
}
