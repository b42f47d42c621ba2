//! The layout of `state_dir` (default /var/lib/keyward): one place that says which file holds
//! what, so no job computes a state path of its own.
//!
//! Everything here decides access or ownership and belongs to root; the readers of records go
//! through `files::read_trusted`. The layout is data only: nothing here touches the file system.
//!
//! ```text
//! state_dir/accounts/NAME      ownership record: the account is keyward's (IAM UserId, UID)
//! state_dir/groups/NAME        the local group is keyward's (sync)
//! state_dir/locked/NAME        sync locked the account (deletion counts from there)
//! state_dir/negative/NAME      pam-create-account: IAM refused NAME at this time
//! state_dir/negative/.budget   pam-create-account: the per-minute IAM lookup budget
//! state_dir/install/           install's manifest and the originals it replaced
//! ```
//!
//! The key cache (`cache_dir`, the service user's) has its own layout in `keys::cache`.

use std::path::{Path, PathBuf};

/// The paths under one `state_dir`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    pub fn new(state_dir: &Path) -> StateDir {
        StateDir {
            root: state_dir.to_owned(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Ownership records (`accounts::ownership`).
    pub fn accounts(&self) -> PathBuf {
        self.root.join("accounts")
    }

    /// Records of the local groups sync created or adopted.
    pub fn groups(&self) -> PathBuf {
        self.root.join("groups")
    }

    /// Records of the accounts sync locked.
    pub fn locked(&self) -> PathBuf {
        self.root.join("locked")
    }

    /// The PAM hook's negative cache and lookup budget (`accounts::throttle`).
    pub fn negative(&self) -> PathBuf {
        self.root.join("negative")
    }

    /// What install keeps: its manifest and the originals of the files it changed.
    pub fn install(&self) -> PathBuf {
        self.root.join("install")
    }

    pub fn install_manifest(&self) -> PathBuf {
        self.install().join("manifest.json")
    }

    /// The originals of the files install replaced, one per path (`install::manifest`).
    pub fn install_originals(&self) -> PathBuf {
        self.install().join("originals")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_path_is_under_state_dir_and_distinct() {
        let s = StateDir::new(Path::new("/var/lib/keyward"));
        let paths = [
            s.accounts(),
            s.groups(),
            s.locked(),
            s.negative(),
            s.install(),
        ];
        for (i, p) in paths.iter().enumerate() {
            assert!(p.starts_with("/var/lib/keyward/"), "{}", p.display());
            assert!(!paths[i + 1..].contains(p), "{}", p.display());
        }
        assert_eq!(
            s.install_manifest(),
            Path::new("/var/lib/keyward/install/manifest.json")
        );
    }
}
