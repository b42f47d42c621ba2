//! The local side of `sync`: accounts, groups, and keyward's records of what it owns.
//!
//! The plan is computed from this every run, so a run killed half way is repaired by the next
//! one. Parsing is pure (bytes in, state out); reading touches only files. Records decide what
//! keyward may change, so an untrusted record (writable by someone other than root) counts as
//! no record: that account or group is then left alone, the safe direction.
//!
//! Records under `state_dir`: `accounts/NAME` (the account is keyward's: `OwnershipRecord`,
//! written by `pam-create-account` and `sync`), `groups/NAME` (the group is keyward's),
//! `locked/NAME` (sync locked the account at `locked_at`; deletion counts from there).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::accounts::login_defs::SystemGids;
use crate::accounts::ownership::{read_records, OwnershipRecord, Records};
use crate::files::IoError;
use crate::state::StateDir;

/// Where sync writes sudo rules (a file name without a dot, so sudo's includedir reads it).
pub const SUDOERS_PATH: &str = "/etc/sudoers.d/keyward";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    /// From /etc/shadow: the account has expired (`usermod --expiredate 1`); `None` when
    /// shadow could not be read (not root).
    pub expired: Option<bool>,
    /// From /etc/shadow: the day of the last password change (days since the epoch), which
    /// `useradd` sets to the day it made the account and only a password change moves later.
    /// `None` when shadow could not be read, has no line for the account, or the field is empty
    /// or 0 (`chage -d 0`). Evidence in keymaker's adoption (`plan::keymaker_evidence`).
    pub last_change_day: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalGroup {
    pub name: String,
    pub gid: u32,
    /// Supplementary members as /etc/group lists them.
    pub members: Vec<String>,
}

/// A group keyward created for a prefixed IAM group (or adopted from keymaker).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRecord {
    pub iam_group: String,
    pub iam_group_id: String,
    pub gid: u32,
    pub created_at: u64,
}

/// sync locked this account at `locked_at` (unix seconds) because IAM no longer allows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockRecord {
    pub locked_at: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalState {
    pub users: BTreeMap<String, LocalUser>,
    pub groups: BTreeMap<String, LocalGroup>,
    pub user_records: BTreeMap<String, OwnershipRecord>,
    pub group_records: BTreeMap<String, GroupRecord>,
    pub locks: BTreeMap<String, LockRecord>,
    /// The current contents of /etc/sudoers.d/keyward.
    pub sudoers: Option<String>,
    /// GIDs of system groups, from /etc/login.defs.
    pub system_gids: SystemGids,
}

/// `/etc/passwd` lines → users (name, uid, gid). Malformed lines are skipped.
pub fn parse_passwd(text: &str) -> Vec<LocalUser> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            Some(LocalUser {
                name: (*f.first()?).to_owned(),
                uid: f.get(2)?.parse().ok()?,
                gid: f.get(3)?.parse().ok()?,
                expired: None,
                last_change_day: None,
            })
        })
        .filter(|u| !u.name.is_empty() && !u.name.starts_with(['+', '-']))
        .collect()
}

/// `/etc/group` lines → groups (name, gid, members).
pub fn parse_group(text: &str) -> Vec<LocalGroup> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            Some(LocalGroup {
                name: (*f.first()?).to_owned(),
                gid: f.get(2)?.parse().ok()?,
                members: f
                    .get(3)?
                    .split(',')
                    .filter(|m| !m.is_empty())
                    .map(str::to_owned)
                    .collect(),
            })
        })
        .filter(|g| !g.name.is_empty() && !g.name.starts_with(['+', '-']))
        .collect()
}

/// What keyward reads of an account's /etc/shadow line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShadowFacts {
    /// Expired today (`usermod --expiredate 1`).
    pub expired: bool,
    /// The last-change field (days since the epoch); `None` when empty, 0 or not a number.
    pub last_change_day: Option<u64>,
}

/// `/etc/shadow` lines → facts by name. `today` is days since the epoch.
pub fn parse_shadow(text: &str, today: u64) -> BTreeMap<String, ShadowFacts> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            let name = (*f.first()?).to_owned();
            let day = |i: usize| f.get(i).and_then(|e| e.parse::<u64>().ok());
            Some((
                name,
                ShadowFacts {
                    expired: day(7).is_some_and(|day| day <= today),
                    last_change_day: day(2).filter(|d| *d > 0),
                },
            ))
        })
        .collect()
}

/// Reads the host: /etc/passwd, /etc/group, /etc/shadow (when readable), the records under
/// `state_dir` and the sudoers file.
pub struct SystemState {
    pub etc: PathBuf,
    pub state_dir: PathBuf,
    pub sudoers: PathBuf,
}

impl SystemState {
    pub fn new(state_dir: &Path) -> SystemState {
        SystemState {
            etc: "/etc".into(),
            state_dir: state_dir.to_owned(),
            sudoers: SUDOERS_PATH.into(),
        }
    }

    pub fn read(&self, now: u64) -> Result<LocalState, IoError> {
        let read = |name: &str| {
            let path = self.etc.join(name);
            fs::read_to_string(&path).map_err(IoError::at("read", &path))
        };
        let shadow = read("shadow").ok().map(|t| parse_shadow(&t, now / 86_400));
        let users = parse_passwd(&read("passwd")?)
            .into_iter()
            .map(|mut u| {
                let facts = shadow.as_ref().map(|s| s.get(&u.name).copied());
                u.expired = facts.map(|f| f.is_some_and(|f| f.expired));
                u.last_change_day = facts.flatten().and_then(|f| f.last_change_day);
                (u.name.clone(), u)
            })
            .collect();
        let groups = parse_group(&read("group")?)
            .into_iter()
            .map(|g| (g.name.clone(), g))
            .collect();
        let sudoers = match fs::read_to_string(&self.sudoers) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(IoError::at("read", &self.sudoers)(e)),
        };
        Ok(LocalState {
            users,
            groups,
            user_records: Records::new(&self.state_dir).read_all()?,
            group_records: read_records(&StateDir::new(&self.state_dir).groups())?,
            locks: read_records(&StateDir::new(&self.state_dir).locked())?,
            sudoers,
            system_gids: SystemGids::read(&self.etc.join("login.defs")),
        })
    }
}

/// Every trusted, parseable record in `dir` whose file name is a valid Linux name.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn passwd_and_group_parse_names_ids_and_members() {
        let users = parse_passwd("root:x:0:0:root:/root:/bin/bash\nbad line\n+nis::::::\nalice:x:1879048200:1879048200:IAM user alice:/home/alice:/bin/bash\n");
        assert_eq!(users.len(), 2);
        assert_eq!(
            (users[1].name.as_str(), users[1].uid),
            ("alice", 1879048200)
        );
        let groups = parse_group("sudo:x:27:admin,alice\ndev:x:5000:\n");
        assert_eq!(groups[0].members, vec!["admin", "alice"]);
        assert!(groups[1].members.is_empty());
    }

    #[test]
    fn shadow_expiry_counts_only_past_or_today() {
        let e = parse_shadow(
            "a:!:19000:0:99999:7::1:\nb:!:19000:0:99999:7:::\nc:!:1:0:99999:7::99999:\n",
            20000,
        );
        assert!(e["a"].expired);
        assert!(!e["b"].expired);
        assert!(!e["c"].expired);
    }

    #[test]
    fn shadow_last_change_is_a_day_and_empty_or_zero_is_none() {
        let s = parse_shadow(
            "a:!:19000:0:99999:7:::\nb:!::0:99999:7:::\nc:!:0::::::\nd:!:x::::::\ne\n",
            20000,
        );
        assert_eq!(s["a"].last_change_day, Some(19000));
        for name in ["b", "c", "d", "e"] {
            assert_eq!(s[name].last_change_day, None, "{name}");
        }
    }

    #[test]
    fn records_in_an_untrusted_place_or_with_bad_names_are_ignored() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let rec = br#"{"locked_at": 5}"#;
        fs::write(dir.path().join("alice"), rec).unwrap();
        fs::write(dir.path().join(".alice.tmp1"), rec).unwrap();
        fs::write(dir.path().join("bob"), rec).unwrap();
        fs::set_permissions(dir.path().join("bob"), fs::Permissions::from_mode(0o666)).unwrap();
        let got: BTreeMap<String, LockRecord> = read_records(dir.path()).unwrap();
        assert_eq!(got.keys().collect::<Vec<_>>(), ["alice"]);
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
        let got: BTreeMap<String, LockRecord> = read_records(dir.path()).unwrap();
        assert!(got.is_empty());
    }
}
