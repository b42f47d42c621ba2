//! A short memory of resolved names, so that an `scp` or `rsync` loop through `keyward proxy`
//! does not ask EC2 for every connection.
//!
//! One file per (environment, host) under `$XDG_CACHE_HOME/keyward/hosts/` (default
//! `~/.cache/keyward/hosts/`), named by a hash of both, holding the one running instance the
//! name resolved to and when. Entries live `[reach] cache_ttl` (default 60 s).
//!
//! Invariants:
//! - Only a lookup that ended in exactly one running instance is stored: an ambiguous or
//!   unknown name is asked again every time, so the cache never hides an ambiguity or a new
//!   instance behind an old error.
//! - Freshness is a pure function of the entry, `now` and the TTL ([`is_fresh`]); an entry from
//!   the future is stale.
//! - Files are written atomically, mode 0600 in a 0700 directory, and read only when they pass
//!   [`files::read_trusted`] (owned by the user, writable by nobody else); an entry that fails
//!   a check, does not parse or is about another host is ignored (EC2 is asked), never trusted.
//! - An entry is dropped when connecting to its address fails, so a replaced instance is found
//!   on the next try rather than after the TTL.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ec2::{is_instance_id, Instance};
use crate::files;

/// `[reach] cache_ttl` when unset.
pub const DEFAULT_TTL: Duration = Duration::from_secs(60);
/// An entry is one instance: a few hundred bytes.
const MAX_ENTRY_LEN: u64 = 64 * 1024;

/// What one cache file holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The environment's name, empty for none.
    pub env: String,
    /// HOST as given to `proxy`.
    pub host: String,
    /// Unix seconds of the EC2 answer.
    pub resolved_at: u64,
    pub instance: Instance,
}

/// Whether an entry resolved at `resolved_at` may still be used at `now`.
pub fn is_fresh(resolved_at: u64, now: u64, ttl: Duration) -> bool {
    resolved_at <= now && now - resolved_at < ttl.as_secs()
}

/// The cache directory: `$XDG_CACHE_HOME/keyward/hosts` or `~/.cache/keyward/hosts`.
pub fn default_dir() -> Option<PathBuf> {
    Some(crate::files::xdg_base("XDG_CACHE_HOME", ".cache")?.join("keyward/hosts"))
}

/// The resolved names of one user, in one directory.
#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
}

impl Cache {
    pub fn new(dir: PathBuf) -> Cache {
        Cache { dir }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `<sha256(env NUL host)>`, hex: any host text makes a plain file name.
    fn file_name(env: &str, host: &str) -> String {
        let digest = Sha256::new()
            .chain_update(env.as_bytes())
            .chain_update([0])
            .chain_update(host.as_bytes())
            .finalize();
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The instance `host` resolved to, when a trusted entry for it is fresh at `now`.
    /// Problems with the file are returned so the caller can say so; they never count as a hit.
    pub fn get(
        &self,
        env: &str,
        host: &str,
        now: u64,
        ttl: Duration,
    ) -> Result<Option<Instance>, files::TrustError> {
        let path = self.dir.join(Self::file_name(env, host));
        let Some(bytes) = files::read_trusted(&path, MAX_ENTRY_LEN)? else {
            return Ok(None);
        };
        let Ok(entry) = serde_json::from_slice::<Entry>(&bytes) else {
            return Ok(None);
        };
        let usable = entry.env == env
            && entry.host == host
            && is_instance_id(&entry.instance.id)
            && entry.instance.state == "running"
            && is_fresh(entry.resolved_at, now, ttl);
        Ok(usable.then_some(entry.instance))
    }

    /// Remembers that `host` resolved to `instance` at `now`.
    pub fn put(
        &self,
        env: &str,
        host: &str,
        instance: &Instance,
        now: u64,
    ) -> Result<(), files::FileError> {
        use std::os::unix::fs::DirBuilderExt as _;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(files::IoError::at("create", &self.dir))?;
        files::check_trusted_dir(&self.dir)?;
        let entry = Entry {
            env: env.to_owned(),
            host: host.to_owned(),
            resolved_at: now,
            instance: instance.clone(),
        };
        let text = serde_json::to_vec(&entry).map_err(|e| files::IoError {
            action: "write",
            path: self.dir.clone(),
            error: std::io::Error::other(e),
        })?;
        let name = Self::file_name(env, host);
        files::write_atomic(&self.dir, &name, &text, 0o600)
            .map_err(files::IoError::at("write", &self.dir.join(&name)))?;
        Ok(())
    }

    /// Forgets `host` (its address did not answer).
    pub fn forget(&self, env: &str, host: &str) {
        let _ = std::fs::remove_file(self.dir.join(Self::file_name(env, host)));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn web1() -> Instance {
        Instance {
            id: "i-0123456789abcdef0".into(),
            state: "running".into(),
            private_ip: Some("10.0.0.1".parse().unwrap()),
            name_tag: Some("web-1".into()),
            ..Instance::default()
        }
    }

    fn cache() -> (tempfile::TempDir, Cache) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let cache = Cache::new(dir.path().join("keyward/hosts"));
        (dir, cache)
    }

    #[test]
    fn freshness_is_the_ttl_and_never_the_future() {
        let ttl = Duration::from_secs(60);
        assert!(is_fresh(1000, 1000, ttl));
        assert!(is_fresh(1000, 1059, ttl));
        assert!(!is_fresh(1000, 1060, ttl));
        assert!(!is_fresh(1001, 1000, ttl));
        assert!(!is_fresh(1000, 1000, Duration::ZERO));
    }

    #[test]
    fn a_stored_name_is_read_back_until_it_expires() {
        let (_tmp, cache) = cache();
        assert_eq!(cache.get("", "web-1", 100, DEFAULT_TTL).unwrap(), None);
        cache.put("", "web-1", &web1(), 100).unwrap();
        assert_eq!(
            cache.get("", "web-1", 159, DEFAULT_TTL).unwrap(),
            Some(web1())
        );
        assert_eq!(cache.get("", "web-1", 160, DEFAULT_TTL).unwrap(), None);
        // Another environment or host is another entry.
        assert_eq!(cache.get("prod", "web-1", 100, DEFAULT_TTL).unwrap(), None);
        assert_eq!(cache.get("", "web-2", 100, DEFAULT_TTL).unwrap(), None);
        cache.forget("", "web-1");
        assert_eq!(cache.get("", "web-1", 100, DEFAULT_TTL).unwrap(), None);
    }

    #[test]
    fn files_are_private_to_the_user() {
        let (_tmp, cache) = cache();
        cache.put("", "web-1", &web1(), 100).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(cache.dir()), 0o700);
        let file = cache.dir().join(Cache::file_name("", "web-1"));
        assert_eq!(mode(&file), 0o600);
    }

    #[test]
    fn a_writable_or_foreign_entry_is_never_a_hit() {
        let (_tmp, cache) = cache();
        cache.put("", "web-1", &web1(), 100).unwrap();
        let file = cache.dir().join(Cache::file_name("", "web-1"));
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o622)).unwrap();
        assert!(cache.get("", "web-1", 100, DEFAULT_TTL).is_err());
        // An entry about another host under this host's file name is ignored.
        let mut entry: Entry = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        entry.host = "web-2".into();
        std::fs::remove_file(&file).unwrap();
        let name = file.file_name().unwrap().to_str().unwrap();
        files::write_atomic(
            cache.dir(),
            name,
            &serde_json::to_vec(&entry).unwrap(),
            0o600,
        )
        .unwrap();
        assert_eq!(cache.get("", "web-1", 100, DEFAULT_TTL).unwrap(), None);
        std::fs::write(&file, b"not json").unwrap();
        assert_eq!(cache.get("", "web-1", 100, DEFAULT_TTL).unwrap(), None);
    }
}
