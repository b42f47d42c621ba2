//! The local key cache: what lets a warm lookup cost one IAM call and lets logins survive an
//! IAM outage for a bounded time.
//!
//! `keys/<KEY_ID>` holds the validated, rebuilt line of one key (a key id's body never changes
//! in IAM). `users/<linux name>.json` holds the user's last verified state: which key ids were
//! active, the IAM groups, and when each was read. Only public data is stored. Files are read
//! only from a directory nobody else can write, and written atomically. A broken cache is never
//! fatal: the live path works without it.

use std::fs::{self, File};
use std::io::Read;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::PublicKey;
use crate::files;
use crate::iam::{is_valid_key_id, Identity};

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

pub struct Cache {
    dir: PathBuf,
}

impl Cache {
    /// Opens (creating if missing) the cache directory and checks that it can be trusted.
    pub fn open(dir: &Path) -> Result<Cache, String> {
        for sub in ["keys", "users"] {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(dir.join(sub))
                .map_err(|e| format!("cannot create {}: {e}", dir.join(sub).display()))?;
        }
        for sub in ["keys", "users"] {
            files::check_trusted(&dir.join(sub))?;
        }
        Ok(Cache {
            dir: dir.to_owned(),
        })
    }

    pub fn key(&self, id: &str) -> Option<PublicKey> {
        if !is_valid_key_id(id) {
            return None;
        }
        let text = read_small(&self.dir.join("keys").join(id))?;
        PublicKey::parse(&text).ok()
    }

    pub fn store_key(&self, id: &str, key: &PublicKey) -> Result<(), String> {
        if !is_valid_key_id(id) {
            return Err(format!("refusing to cache key id {id:?}"));
        }
        let line = format!("{}\n", key.to_line());
        files::write_atomic(&self.dir.join("keys"), id, line.as_bytes(), 0o644)
            .map_err(|e| format!("cannot cache key {id}: {e}"))
    }

    /// `linux_name` must already be a validated Linux name (it becomes a file name).
    pub fn user(&self, linux_name: &str) -> Option<UserRecord> {
        let text = read_small(&self.user_path(linux_name))?;
        serde_json::from_str(&text).ok()
    }

    pub fn store_user(&self, linux_name: &str, record: &UserRecord) -> Result<(), String> {
        let json = serde_json::to_vec(record).map_err(|e| e.to_string())?;
        files::write_atomic(
            &self.dir.join("users"),
            &format!("{linux_name}.json"),
            &json,
            0o644,
        )
        .map_err(|e| format!("cannot cache user {linux_name}: {e}"))
    }

    pub fn forget_user(&self, linux_name: &str) {
        let _ = fs::remove_file(self.user_path(linux_name));
    }

    fn user_path(&self, linux_name: &str) -> PathBuf {
        self.dir.join("users").join(format!("{linux_name}.json"))
    }
}

/// Reads a cache file only if it is ours (owner root or us, writable by nobody else).
fn read_small(path: &Path) -> Option<String> {
    let file = File::open(path).ok()?;
    let meta = file.metadata().ok()?;
    let me = nix::unistd::geteuid().as_raw();
    let trusted = meta.is_file()
        && (meta.uid() == 0 || meta.uid() == me)
        && meta.mode() & 0o022 == 0
        && meta.len() <= MAX_FILE;
    if !trusted {
        tracing::warn!(path = %path.display(), "ignoring untrusted cache file");
        return None;
    }
    let mut text = String::new();
    file.take(MAX_FILE).read_to_string(&mut text).ok()?;
    Some(text)
}

pub fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
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
        UNIX_EPOCH + Duration::from_secs(secs)
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
        let cache = Cache::open(&dir.path().join("c")).unwrap();
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
}
