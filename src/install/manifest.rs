//! The record of what `install` changed, so that `uninstall` can take it back byte for byte.
//!
//! Lives in `state_dir/install/manifest.json` (root 0600) with a copy of each original under
//! `originals/`. The record must never describe a file keyward wrote as an "original": the
//! originals are the host as it was before keyward, and they survive re-installs.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::schedule::Scheduler;
use super::InstallError;

pub const VERSION: u32 = 1;

/// Why a manifest's text is not a record keyward can act on.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error("version {0} is not {VERSION}")]
    Version(u32),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub version: u32,
    /// The keyward binary the installed files point at.
    pub binary: String,
    /// install created the `keyward` system user (uninstall removes it only then).
    pub created_user: bool,
    pub scheduler: Option<Scheduler>,
    pub files: Vec<FileRecord>,
    /// Directories install created; uninstall removes them when they are empty.
    #[serde(default)]
    pub created_dirs: BTreeSet<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Created,
    Modified,
    Removed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRecord {
    pub path: String,
    pub action: Action,
    /// sha256 of the file before keyward (None: it did not exist).
    pub original_sha256: Option<String>,
    /// sha256 of what install wrote (None: install removed the file).
    pub written_sha256: Option<String>,
}

impl Manifest {
    pub fn new(binary: &str) -> Manifest {
        Manifest {
            version: VERSION,
            binary: binary.to_owned(),
            created_user: false,
            scheduler: None,
            files: Vec::new(),
            created_dirs: BTreeSet::new(),
        }
    }

    pub fn parse(text: &str) -> Result<Manifest, ParseError> {
        let m: Manifest = serde_json::from_str(text)?;
        if m.version != VERSION {
            return Err(ParseError::Version(m.version));
        }
        Ok(m)
    }

    pub fn render(&self) -> String {
        let mut text = serde_json::to_string_pretty(self)
            .unwrap_or_else(|e| format!("{{\"error\": {:?}}}", e.to_string()));
        text.push('\n');
        text
    }

    pub fn record(&self, path: &str) -> Option<&FileRecord> {
        self.files.iter().find(|r| r.path == path)
    }

    /// Records that `path` now holds `written` and was `original` before keyward. A file that
    /// is back to its original is no longer keyward's business and leaves the record.
    pub fn set(&mut self, path: &str, original: Option<&[u8]>, written: Option<&[u8]>) {
        self.files.retain(|r| r.path != path);
        let original_sha256 = original.map(sha256_hex);
        let written_sha256 = written.map(sha256_hex);
        if original_sha256 == written_sha256 {
            return;
        }
        let action = match (&original_sha256, &written_sha256) {
            (None, _) => Action::Created,
            (Some(_), Some(_)) => Action::Modified,
            (Some(_), None) => Action::Removed,
        };
        self.files.push(FileRecord {
            path: path.to_owned(),
            action,
            original_sha256,
            written_sha256,
        });
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The name of an original's copy under `originals/`: the path with `%` and `/` escaped, so
/// that different paths never share a copy and no name is a path.
pub fn escape_path(path: &str) -> String {
    path.trim_start_matches('/')
        .replace('%', "%25")
        .replace('/', "%2F")
}

/// Checks a file's current bytes against what install wrote: `Ok` when untouched since.
pub fn check_unchanged(record: &FileRecord, current: Option<&[u8]>) -> Result<(), InstallError> {
    if current.map(sha256_hex) == record.written_sha256 {
        Ok(())
    } else {
        Err(InstallError::Changed(vec![record.path.clone()]))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn manifest_round_trips_through_json() {
        let mut m = Manifest::new("/usr/local/bin/keyward");
        m.created_user = true;
        m.scheduler = Some(Scheduler::Cron);
        m.set("/etc/pam.d/sshd", Some(b"a"), Some(b"ab"));
        m.set("/etc/cron.d/keyward", None, Some(b"x"));
        m.set("/etc/keyward/chain.toml", Some(b"old"), None);
        m.created_dirs.insert("/etc/cron.d".into());
        let text = m.render();
        assert!(text.contains("\"action\": \"modified\""), "{text}");
        assert!(text.contains("\"scheduler\": \"cron\""), "{text}");
        assert_eq!(Manifest::parse(&text).unwrap(), m);
        let actions: Vec<_> = m.files.iter().map(|r| r.action).collect();
        assert_eq!(
            actions,
            [Action::Modified, Action::Created, Action::Removed]
        );
    }

    #[test]
    fn a_file_back_to_its_original_leaves_the_record() {
        let mut m = Manifest::new("/k");
        m.set("/etc/pam.d/sshd", Some(b"a"), Some(b"ab"));
        m.set("/etc/pam.d/sshd", Some(b"a"), Some(b"a"));
        assert!(m.files.is_empty());
        m.set("/etc/x", None, None);
        assert!(m.files.is_empty());
    }

    #[test]
    fn unknown_version_or_fields_are_refused() {
        let text = Manifest::new("/k")
            .render()
            .replace("\"version\": 1", "\"version\": 9");
        assert!(Manifest::parse(&text).is_err());
        assert!(Manifest::parse("{\"version\":1,\"binary\":\"/k\",\"created_user\":false,\"scheduler\":null,\"files\":[],\"extra\":1}").is_err());
    }

    #[test]
    fn escaped_paths_are_distinct_single_names() {
        assert_eq!(
            escape_path("/etc/ssh/sshd_config"),
            "etc%2Fssh%2Fsshd_config"
        );
        assert_ne!(escape_path("/a/b%2Fc"), escape_path("/a/b/c"));
        assert!(!escape_path("/a/b/c").contains('/'));
    }

    #[test]
    fn sha256_is_lower_hex() {
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
