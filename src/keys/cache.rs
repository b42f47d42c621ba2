//! The local key cache: what lets a warm lookup cost one IAM call and lets logins survive an
//! IAM outage for a bounded time.
//!
//! `keys/<KEY_ID>` holds the validated, rebuilt line of one key (a key id's body never changes
//! in IAM). `users/<linux name>.json` holds the user's last verified state: which key ids were
//! active, the IAM groups, and when each was read. Only public data is stored. A broken cache is
//! never fatal: the live path works without it.
//!
//! Invariants:
//! - Every file is read with `files::read_trusted` (opened once, not through a symlink, checked
//!   on the descriptor) from directories that are not symlinks and that nobody else can write.
//!   A file that fails the check or does not parse is ignored with a warning naming it and the
//!   fix, never silently.
//! - Only the user sshd runs `authorized-keys` as (keyward) writes. A run as root reads only and
//!   creates nothing, so an admin trying `authorized-keys` by hand never leaves root-owned
//!   entries the keyward user cannot replace. Writes are atomic.
//! - The fix texts (`ownership_fix`, `symlink_fix`, `file_fix`) are shared with `doctor` and
//!   `install`, so every command tells the admin the same thing for the same problem.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::PublicKey;
use crate::clock::unix_secs;
use crate::files::{self, IoError, TrustError};
use crate::iam::{is_valid_key_id, Identity};

/// The outage marker, beside `keys/` and `users/`.
const OUTAGE_FILE: &str = "iam-outage";

/// Whether an outage recorded at `since` still holds at `now`: younger than `hold`, and never
/// beyond `max_stale` (past it, no stale key could be served anyway). A marker from the future
/// (clock stepped back) does not hold.
pub fn outage_holds(since: u64, now: SystemTime, hold: Duration, max_stale: Duration) -> bool {
    let now = unix_secs(now);
    since <= now && now - since < hold.min(max_stale).as_secs()
}

/// Cache files are tiny; anything larger was not written by keyward.
const MAX_FILE: u64 = 64 * 1024;

/// A user's last state as verified against IAM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    pub iam_user: String,
    /// Unix seconds of the last successful ListSSHPublicKeys.
    pub verified_at: u64,
    pub active_keys: Vec<String>,
    /// IAM groups at `groups_checked_at`; `None` when they were not read.
    pub groups: Option<Vec<String>>,
    pub groups_checked_at: u64,
    /// The IAM identity behind `iam_user` as GetUser last answered it (canonical UserName and
    /// immutable UserId), at `identity_checked_at`. Absent in caches written before identities
    /// were checked: such a record serves no stale keys to an account bound to a UserId.
    #[serde(default)]
    pub identity: Option<Identity>,
    #[serde(default)]
    pub identity_checked_at: u64,
}

/// The cache's subdirectories.
pub const SUBDIRS: [&str; 2] = ["keys", "users"];

/// The fix for a cache (or a part of it) that the keyward user does not own.
pub fn ownership_fix(cache_dir: &Path) -> String {
    format!(
        "keyward install (gives {} and everything in it to the keyward user, refusing symlinks)",
        cache_dir.display()
    )
}

/// The fix for a symlink where the cache needs a real directory or file.
pub fn symlink_fix(path: &Path) -> String {
    format!(
        "rm {} && keyward install (keyward neither follows nor chowns through symlinks in its cache)",
        path.display()
    )
}

/// The fix for one cache file that cannot be used.
pub fn file_fix(path: &Path) -> String {
    format!("rm {} (keyward fetches it again from IAM)", path.display())
}

/// Whether this run may change the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    ReadWrite,
    /// Reads what is there; writes, removes and creates nothing.
    ReadOnly,
}

impl Access {
    /// Root reads only: sshd runs `authorized-keys` as keyward, and a root run (an admin trying
    /// it by hand) must not leave root-owned entries that keyward cannot replace.
    pub fn for_euid(euid: u32) -> Access {
        if euid == 0 {
            Access::ReadOnly
        } else {
            Access::ReadWrite
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cannot create {path}: {error}; fix: {}", ownership_fix(.cache_dir))]
    Create {
        path: PathBuf,
        cache_dir: PathBuf,
        error: io::Error,
    },
    #[error("{path} is a symlink: {}", symlink_fix(.path))]
    Symlink { path: PathBuf },
    #[error("{0}")]
    Untrusted(TrustError),
    #[error("refusing to cache key id {0:?}")]
    InvalidKeyId(String),
    #[error(transparent)]
    Write(#[from] IoError),
    #[error("cannot encode the user record: {0}")]
    Encode(serde_json::Error),
}

impl CacheError {
    fn from_trust(e: TrustError) -> CacheError {
        match e {
            TrustError::Symlink { path, .. } => CacheError::Symlink { path },
            e => CacheError::Untrusted(e),
        }
    }
}

pub struct Cache {
    dir: PathBuf,
    access: Access,
    /// False when a root run finds a cache that is not root's (keyward's, after install): it
    /// is neither read nor written, and the lookup asks IAM.
    readable: bool,
}

impl Cache {
    /// Opens the cache directory with the access the running user gets (`Access::for_euid`),
    /// creating it when that is read-write.
    pub fn open(dir: &Path) -> Result<Cache, CacheError> {
        Cache::open_with(dir, Access::for_euid(nix::unistd::geteuid().as_raw()))
    }

    /// Opens the cache: the directory and `keys/`, `users/` must not be symlinks and nobody but
    /// root or us may write them. Read-write creates what is missing; when a subdirectory is
    /// not ours (a root run left it), the cache is read only, with a warning naming the fix.
    pub fn open_with(dir: &Path, access: Access) -> Result<Cache, CacheError> {
        let mut cache = Cache {
            dir: dir.to_owned(),
            access,
            readable: true,
        };
        for path in std::iter::once(dir.to_owned()).chain(SUBDIRS.iter().map(|s| dir.join(s))) {
            if access == Access::ReadWrite && fs::symlink_metadata(&path).is_err() {
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o755)
                    .create(&path)
                    .map_err(|error| CacheError::Create {
                        path: path.clone(),
                        cache_dir: dir.to_owned(),
                        error,
                    })?;
            }
            match files::check_trusted_dir(&path) {
                Ok(()) => {}
                // Read-only and not there: nothing is cached yet.
                Err(e) if e.is_missing() => {}
                Err(TrustError::Owner { uid, .. }) if access == Access::ReadOnly => {
                    tracing::info!(
                        "running as root: the key cache {} belongs to uid {uid} (the keyward user sshd runs authorized-keys as); asking IAM only",
                        dir.display()
                    );
                    cache.readable = false;
                    return Ok(cache);
                }
                Err(e) => return Err(CacheError::from_trust(e)),
            }
        }
        if access == Access::ReadWrite {
            let me = nix::unistd::geteuid().as_raw();
            for path in SUBDIRS.iter().map(|s| dir.join(s)) {
                let owner = fs::symlink_metadata(&path).map(|m| m.uid()).ok();
                if let Some(uid) = owner.filter(|uid| *uid != me) {
                    tracing::warn!(
                        path = %path.display(),
                        "{} is owned by uid {uid}, not uid {me} that keyward runs as: keys are not cached until it is fixed: {}",
                        path.display(),
                        ownership_fix(dir)
                    );
                    cache.access = Access::ReadOnly;
                }
            }
        }
        Ok(cache)
    }

    pub fn access(&self) -> Access {
        self.access
    }

    pub fn key(&self, id: &str) -> Option<PublicKey> {
        if !is_valid_key_id(id) {
            return None;
        }
        let path = self.dir.join("keys").join(id);
        let text = self.read_small(&path)?;
        match PublicKey::parse(&text) {
            Ok(key) => Some(key),
            Err(e) => {
                warn_unusable(&path, &format!("{} is corrupt ({e})", path.display()));
                None
            }
        }
    }

    pub fn store_key(&self, id: &str, key: &PublicKey) -> Result<(), CacheError> {
        if !is_valid_key_id(id) {
            return Err(CacheError::InvalidKeyId(id.to_owned()));
        }
        if self.access != Access::ReadWrite {
            return Ok(());
        }
        let line = format!("{}\n", key.to_line());
        self.write(&self.dir.join("keys"), id, line.as_bytes())
    }

    fn write(&self, dir: &Path, name: &str, contents: &[u8]) -> Result<(), CacheError> {
        files::write_atomic(dir, name, contents, 0o644)
            .map_err(IoError::at("write", &dir.join(name)))?;
        Ok(())
    }

    /// `linux_name` must already be a validated Linux name (it becomes a file name).
    pub fn user(&self, linux_name: &str) -> Option<UserRecord> {
        let path = self.user_path(linux_name);
        let text = self.read_small(&path)?;
        match serde_json::from_str(&text) {
            Ok(record) => Some(record),
            Err(e) => {
                warn_unusable(&path, &format!("{} is corrupt ({e})", path.display()));
                None
            }
        }
    }

    pub fn store_user(&self, linux_name: &str, record: &UserRecord) -> Result<(), CacheError> {
        if self.access != Access::ReadWrite {
            return Ok(());
        }
        let json = serde_json::to_vec(record).map_err(CacheError::Encode)?;
        self.write(
            &self.dir.join("users"),
            &format!("{linux_name}.json"),
            &json,
        )
    }

    /// When a lookup last found IAM unreachable (unix seconds), if one said so.
    pub fn outage_since(&self) -> Option<u64> {
        let path = self.dir.join(OUTAGE_FILE);
        let text = self.read_small(&path)?;
        match text.trim().parse() {
            Ok(at) => Some(at),
            Err(_) => {
                warn_unusable(&path, &format!("{} is corrupt", path.display()));
                None
            }
        }
    }

    /// Records that IAM could not be reached at `now`.
    pub fn mark_outage(&self, now: SystemTime) -> Result<(), CacheError> {
        if self.access != Access::ReadWrite {
            return Ok(());
        }
        let text = format!("{}\n", unix_secs(now));
        self.write(&self.dir, OUTAGE_FILE, text.as_bytes())
    }

    /// IAM answered: the outage, if one was recorded, is over.
    pub fn clear_outage(&self) {
        if self.access == Access::ReadWrite {
            let _ = fs::remove_file(self.dir.join(OUTAGE_FILE));
        }
    }

    pub fn forget_user(&self, linux_name: &str) {
        if self.access == Access::ReadWrite {
            let _ = fs::remove_file(self.user_path(linux_name));
        }
    }

    fn user_path(&self, linux_name: &str) -> PathBuf {
        self.dir.join("users").join(format!("{linux_name}.json"))
    }

    /// A cache file's text: `None` when it is absent or unusable (the latter with a warning).
    fn read_small(&self, path: &Path) -> Option<String> {
        if !self.readable {
            return None;
        }
        match files::read_trusted(path, MAX_FILE) {
            Ok(None) => None,
            Ok(Some(bytes)) => match String::from_utf8(bytes) {
                Ok(text) => Some(text),
                Err(_) => {
                    warn_unusable(path, &format!("{} is not UTF-8 text", path.display()));
                    None
                }
            },
            Err(e) => {
                warn_unusable(path, &e.problem());
                None
            }
        }
    }
}

fn warn_unusable(path: &Path, problem: &str) {
    tracing::warn!(
        path = %path.display(),
        "cache file ignored: {problem}: {}",
        file_fix(path)
    );
}

/// Whether a key set verified at `verified_at` may still be served while IAM is unreachable.
/// A record from the future (clock stepped back) is not trusted beyond `max_stale` either.
pub fn stale_usable(verified_at: u64, now: SystemTime, max_stale: Duration) -> bool {
    let now = unix_secs(now);
    now.abs_diff(verified_at) <= max_stale.as_secs() && !max_stale.is_zero()
}

/// Whether group membership read at `checked_at` is fresh enough to skip ListGroupsForUser.
/// The TTL is shortened by up to a fifth, differently per user, so that users cached together
/// do not all expire together.
pub fn groups_fresh(user: &str, checked_at: u64, now: SystemTime, ttl: Duration) -> bool {
    let now = unix_secs(now);
    if checked_at > now {
        return false;
    }
    let spread = user.bytes().fold(checked_at, |h, b| {
        h.wrapping_mul(31).wrapping_add(u64::from(b))
    });
    let ttl = ttl.as_secs();
    let jitter = if ttl >= 5 { spread % (ttl / 5) } else { 0 };
    now - checked_at < ttl - jitter
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        crate::clock::from_unix_secs(secs)
    }

    #[test]
    fn an_outage_holds_for_outage_hold_and_never_beyond_max_stale() {
        let (hold, stale) = (Duration::from_secs(30), Duration::from_secs(3600));
        assert!(outage_holds(1000, at(1029), hold, stale));
        assert!(!outage_holds(1000, at(1030), hold, stale));
        assert!(!outage_holds(1000, at(1005), hold, Duration::from_secs(5)));
        assert!(
            !outage_holds(2000, at(1000), hold, stale),
            "from the future"
        );
        assert!(
            !outage_holds(1000, at(1000), Duration::ZERO, stale),
            "0s: off"
        );
    }

    #[test]
    fn stale_keys_are_served_only_within_max_stale() {
        let hour = Duration::from_secs(3600);
        assert!(stale_usable(1000, at(1000 + 3600), hour));
        assert!(!stale_usable(1000, at(1000 + 3601), hour));
        assert!(!stale_usable(1000, at(1000), Duration::ZERO));
        assert!(!stale_usable(1_000_000, at(1000), hour), "future record");
    }

    #[test]
    fn group_membership_expires_within_its_ttl_with_jitter() {
        let ttl = Duration::from_secs(300);
        assert!(groups_fresh("alice", 1000, at(1000), ttl));
        assert!(groups_fresh("alice", 1000, at(1000 + 239), ttl));
        assert!(!groups_fresh("alice", 1000, at(1000 + 300), ttl));
        assert!(!groups_fresh("alice", 2000, at(1000), ttl), "future check");
        let expiries: std::collections::BTreeSet<u64> = ["a", "b", "c", "d", "e", "f"]
            .iter()
            .map(|u| {
                (240..=300)
                    .find(|s| !groups_fresh(u, 1000, at(1000 + s), ttl))
                    .unwrap()
            })
            .collect();
        assert!(expiries.len() > 1, "jitter spreads expiry: {expiries:?}");
    }

    #[test]
    fn cache_round_trips_keys_and_records() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open_with(&dir.path().join("c"), Access::ReadWrite).unwrap();
        let key = PublicKey::parse(
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl x",
        )
        .unwrap();
        cache.store_key("APKA1", &key).unwrap();
        assert_eq!(cache.key("APKA1"), Some(key));
        assert_eq!(cache.key("../APKA1"), None);
        let rec = UserRecord {
            iam_user: "alice".into(),
            verified_at: 5,
            active_keys: vec!["APKA1".into()],
            groups: Some(vec!["ops".into()]),
            groups_checked_at: 5,
            identity: Some(Identity {
                user_name: "alice".into(),
                user_id: "AIDAEXAMPLE000000001".into(),
            }),
            identity_checked_at: 5,
        };
        cache.store_user("alice", &rec).unwrap();
        assert_eq!(cache.user("alice"), Some(rec));
        cache.forget_user("alice");
        assert_eq!(cache.user("alice"), None);
    }

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl x";

    fn private_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        dir
    }

    #[test]
    fn cache_symlinked_subdirectory_is_refused() {
        let dir = private_dir();
        let c = dir.path().join("c");
        fs::create_dir_all(c.join("users")).unwrap();
        fs::create_dir(dir.path().join("elsewhere")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), c.join("keys")).unwrap();
        for access in [Access::ReadWrite, Access::ReadOnly] {
            let err = Cache::open_with(&c, access).err().unwrap();
            assert!(
                matches!(&err, CacheError::Symlink { path } if *path == c.join("keys")),
                "{err}"
            );
            assert!(
                err.to_string().contains(&symlink_fix(&c.join("keys"))),
                "{err}"
            );
        }
    }

    #[test]
    fn cache_symlinked_or_corrupt_files_are_not_used() {
        let dir = private_dir();
        let c = dir.path().join("c");
        let cache = Cache::open_with(&c, Access::ReadWrite).unwrap();
        fs::write(dir.path().join("real"), format!("{KEY}\n")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("real"), c.join("keys/APKA1")).unwrap();
        assert_eq!(cache.key("APKA1"), None, "a symlinked key file is not read");
        fs::write(c.join("keys/APKA2"), "not a key\n").unwrap();
        assert_eq!(cache.key("APKA2"), None);
        fs::write(c.join("users/alice.json"), "{").unwrap();
        assert_eq!(cache.user("alice"), None);
        // A lookup replaces them: the atomic write renames over the link, not through it.
        cache
            .store_key("APKA1", &PublicKey::parse(KEY).unwrap())
            .unwrap();
        assert!(!c.join("keys/APKA1").is_symlink());
        assert_eq!(
            fs::read_to_string(dir.path().join("real")).unwrap(),
            format!("{KEY}\n")
        );
    }

    #[test]
    fn cache_read_only_creates_and_writes_nothing() {
        let dir = private_dir();
        let c = dir.path().join("c");
        let cache = Cache::open_with(&c, Access::ReadOnly).unwrap();
        assert_eq!(cache.key("APKA1"), None);
        cache
            .store_key("APKA1", &PublicKey::parse(KEY).unwrap())
            .unwrap();
        cache.forget_user("alice");
        assert!(!c.exists(), "a read-only open created the cache");
        // An existing cache is read, and left as it is.
        let rw = Cache::open_with(&c, Access::ReadWrite).unwrap();
        rw.store_key("APKA1", &PublicKey::parse(KEY).unwrap())
            .unwrap();
        let ro = Cache::open_with(&c, Access::ReadOnly).unwrap();
        assert_eq!(ro.key("APKA1"), Some(PublicKey::parse(KEY).unwrap()));
        assert_eq!(Access::for_euid(0), Access::ReadOnly);
        assert_eq!(Access::for_euid(998), Access::ReadWrite);
    }
}
