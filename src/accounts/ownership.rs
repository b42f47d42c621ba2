//! Which local accounts are keyward's: one rule, used by every job.
//!
//! An account is keyward's when, and only when, a trusted ownership record for its name parses,
//! names the UID the account has now, and names the IAM UserId it was made for. The record is a
//! root-owned file `state_dir/accounts/NAME`, never something a user could edit (GECOS), and the
//! UserId in it binds the account to one IAM identity, not to a name: an IAM user deleted and
//! re-created under the same name is a different person (see `keys::lookup`).
//!
//! Invariants:
//! - `owns` is the only definition of ownership. `authorized-keys`, `pam-create-account` and
//!   `sync` all call it; none of them looks at the record any other way.
//! - Anything doubtful about a record (unreadable, unparseable, a symlink, writable by someone
//!   else, an empty UserId) means "not keyward's", logged at warn: refusing is the safe side.
//! - Only valid Linux names become record paths, so a name can never leave the directory.

use std::collections::BTreeMap;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::names;
use crate::files::{self, IoError};

/// Records are a few hundred bytes; anything larger was not written by keyward.
const MAX_RECORD: u64 = 16 * 1024;

/// The proof that keyward created (or adopted) an account, and for whom.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnershipRecord {
    pub iam_user: String,
    /// The immutable IAM UserId (`AIDA…`) the account belongs to.
    pub iam_user_id: String,
    pub uid: u32,
    pub created_at: u64,
}

/// Whether the account with UID `account_uid` is keyward's, by its record: the UID it was made
/// with is still the account's (an account someone deleted and re-made by hand is not), and
/// the record names the IAM identity it belongs to.
pub fn owns(record: &OwnershipRecord, account_uid: u32) -> bool {
    record.uid == account_uid && is_plausible_user_id(&record.iam_user_id)
}

/// IAM UserIds match `[\w]+`, at most 128 characters (`AIDA…` in AWS): an empty or otherwise
/// shaped value names nobody.
pub fn is_plausible_user_id(id: &str) -> bool {
    (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Why a record was not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("{0:?} is not a valid Linux user name")]
    InvalidName(String),
    #[error("ownership record {path} is not trusted: {reason}")]
    Untrusted { path: PathBuf, reason: String },
    #[error("ownership record {path} is unreadable: {reason}")]
    Unreadable { path: PathBuf, reason: String },
    #[error("cannot write ownership record {path}: {reason}")]
    Write { path: PathBuf, reason: String },
}

/// The records under `state_dir/accounts`.
#[derive(Debug, Clone)]
pub struct Records {
    dir: PathBuf,
}

impl Records {
    pub fn new(state_dir: &Path) -> Records {
        Records {
            dir: crate::state::StateDir::new(state_dir).accounts(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, linux_name: &str) -> Result<PathBuf, RecordError> {
        if names::is_valid_linux_name(linux_name) {
            Ok(self.dir.join(linux_name))
        } else {
            Err(RecordError::InvalidName(linux_name.to_owned()))
        }
    }

    /// The record of `linux_name`: `Ok(None)` when there is none, an error when there is one
    /// that cannot be trusted or read (which callers treat as "not keyward's").
    pub fn read(&self, linux_name: &str) -> Result<Option<OwnershipRecord>, RecordError> {
        let path = self.path(linux_name)?;
        let bytes = match read_trusted(&path) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Ok(None),
            Err(e) => return Err(e),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| RecordError::Unreadable {
                path,
                reason: e.to_string(),
            })
    }

    /// Like `read`, for callers that only act on a usable record: a doubtful one is logged at
    /// warn and counts as none.
    pub fn read_or_warn(&self, linux_name: &str) -> Option<OwnershipRecord> {
        match self.read(linux_name) {
            Ok(record) => record,
            Err(e) => {
                tracing::warn!("{e}: the account is not treated as keyward's");
                None
            }
        }
    }

    /// Every usable record, by account name (sync). A directory that is not trusted yields
    /// none: someone else could have planted them.
    pub fn read_all(&self) -> Result<BTreeMap<String, OwnershipRecord>, IoError> {
        read_records(&self.dir)
    }

    /// Writes the record atomically (root-owned, 0644), creating the directory.
    pub fn write(&self, linux_name: &str, record: &OwnershipRecord) -> Result<(), RecordError> {
        let path = self.path(linux_name)?;
        let write_err = |reason: String| RecordError::Write {
            path: path.clone(),
            reason,
        };
        fs::create_dir_all(&self.dir).map_err(|e| write_err(e.to_string()))?;
        let json = serde_json::to_vec_pretty(record).map_err(|e| write_err(e.to_string()))?;
        files::write_atomic(&self.dir, linux_name, &json, 0o644)
            .map_err(|e| write_err(e.to_string()))
    }

    /// Removes the record; a missing one is fine.
    pub fn remove(&self, linux_name: &str) -> Result<(), RecordError> {
        let path = self.path(linux_name)?;
        match fs::remove_file(&path) {
            Err(e) if e.kind() != ErrorKind::NotFound => Err(RecordError::Write {
                path,
                reason: e.to_string(),
            }),
            _ => Ok(()),
        }
    }
}

/// Every trusted, parseable record in `dir` (ownership, sync's group and lock records) whose
/// file name is a valid Linux name. A directory that is not trusted yields none: someone else
/// could have planted them. Each file is read once, never through a symlink; a doubtful one is
/// skipped with a warning.
pub fn read_records<T: serde::de::DeserializeOwned>(
    dir: &Path,
) -> Result<BTreeMap<String, T>, IoError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(IoError::at("read", dir)(e)),
    };
    if let Err(reason) = files::check_trusted(dir) {
        // Someone else could have planted records: trust none of them.
        tracing::error!("ignoring every record in {}: {reason}", dir.display());
        return Ok(BTreeMap::new());
    }
    let mut records = BTreeMap::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !names::is_valid_linux_name(&name) {
            continue; // temp files (".x.tmp123") and strays
        }
        let path = entry.path();
        // Opened once, never through a symlink, checked on the descriptor.
        match files::read_trusted(&path, MAX_RECORD) {
            Ok(Some(bytes)) => match serde_json::from_slice::<T>(&bytes) {
                Ok(record) => {
                    records.insert(name, record);
                }
                Err(e) => tracing::warn!("ignoring unreadable record {}: {e}", path.display()),
            },
            Ok(None) => {}
            Err(e) => tracing::warn!("ignoring untrusted record: {e}"),
        }
    }
    Ok(records)
}

/// Reads a record only if it is a regular file (never through a symlink) owned by root or us,
/// writable by nobody else, in directories that are trusted from `/` down; checked on the open
/// descriptor (`files::read_trusted`).
fn read_trusted(path: &Path) -> Result<Option<Vec<u8>>, RecordError> {
    files::read_trusted(path, MAX_RECORD).map_err(|e| RecordError::Untrusted {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    const ID: &str = "AIDAEXAMPLE000000001";

    fn record(uid: u32, id: &str) -> OwnershipRecord {
        OwnershipRecord {
            iam_user: "carol".into(),
            iam_user_id: id.into(),
            uid,
            created_at: 1,
        }
    }

    fn records() -> (tempfile::TempDir, Records) {
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let records = Records::new(dir.path());
        (dir, records)
    }

    #[test]
    fn c1_owns_needs_the_accounts_uid_and_a_user_id() {
        assert!(owns(&record(4000, ID), 4000));
        assert!(!owns(&record(4000, ID), 4242), "account re-made by hand");
        assert!(!owns(&record(4000, ""), 4000), "no IAM identity");
        assert!(!owns(&record(4000, "AIDA-../x"), 4000), "not a UserId");
    }

    #[test]
    fn c1_records_round_trip_and_doubtful_ones_are_errors() {
        let (_d, r) = records();
        assert_eq!(r.read("carol").unwrap(), None);
        r.write("carol", &record(4000, ID)).unwrap();
        assert_eq!(r.read("carol").unwrap(), Some(record(4000, ID)));

        fs::write(r.dir().join("empty"), "").unwrap();
        assert!(matches!(
            r.read("empty"),
            Err(RecordError::Unreadable { .. })
        ));
        fs::write(r.dir().join("junk"), "{").unwrap();
        assert!(r.read("junk").is_err());
        std::os::unix::fs::symlink(r.dir().join("carol"), r.dir().join("link")).unwrap();
        assert!(matches!(r.read("link"), Err(RecordError::Untrusted { .. })));
        r.write("open", &record(1, ID)).unwrap();
        fs::set_permissions(r.dir().join("open"), fs::Permissions::from_mode(0o666)).unwrap();
        assert!(matches!(r.read("open"), Err(RecordError::Untrusted { .. })));
        assert!(matches!(
            r.read("../etc/passwd"),
            Err(RecordError::InvalidName(_))
        ));

        let all = r.read_all().unwrap();
        assert_eq!(all.keys().collect::<Vec<_>>(), ["carol"]);
        r.remove("carol").unwrap();
        r.remove("carol").unwrap();
        assert_eq!(r.read("carol").unwrap(), None);
    }
}
