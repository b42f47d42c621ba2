//! Carrying a sync plan out: a thin adapter over shadow-utils, one whole action at a time.
//!
//! Each action is one command plus its record, ordered so that a run killed between the two
//! leaves a state the next plan repairs: records that prove ownership are written before the
//! command that creates (so keyward never loses track of what it made), lock records before
//! the lock, and records are removed only after the command that deletes. Accounts are changed
//! only through shadow-utils by absolute path (pam_exec and cron may give no PATH), never by
//! editing /etc/passwd. A failed action is reported and the others still run; the next run
//! computes its plan from what is actually there.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use super::local::{GroupRecord, LockRecord};
use super::plan::{Action, Plan};
use crate::accounts::create::{self, shadow, NewAccount, PrivateGroup, ShadowUtils};
use crate::accounts::ownership::RecordError;
use crate::clock::from_unix_secs;
use crate::files::{self, IoError};
use crate::logging::untrusted;
use crate::process::{self, CommandError};
use crate::state::StateDir;

/// Fixed journald MESSAGE_IDs of sync's audit events.
pub mod message_id {
    pub const SYNC_ACTION: &str = "6b1c0b7f2a8e4f1e9d3a5c7e0f2b4d71";
    pub const SYNC_ACTION_FAILED: &str = "6b1c0b7f2a8e4f1e9d3a5c7e0f2b4d72";
    pub const SYNC_REFUSED: &str = "6b1c0b7f2a8e4f1e9d3a5c7e0f2b4d73";
}

/// Where one sync at a time is enforced.
pub const LOCK_PATH: &str = "/run/keyward/sync.lock";

/// The local account database as sync changes it.
pub trait Accounts {
    /// Carries out one action, whole; `now` is unix seconds.
    fn execute(&mut self, action: &Action, now: u64) -> Result<(), ApplyError>;
}

/// Why one action failed (the others still run).
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error(transparent)]
    Io(#[from] IoError),
    #[error("cannot encode the record: {0}")]
    Encode(serde_json::Error),
    #[error("{} does not exist (is sudo installed?)", .0.display())]
    NoSudoersDir(PathBuf),
    #[error("cannot chown {} to root:root: {error}", path.display())]
    Chown {
        path: PathBuf,
        error: nix::errno::Errno,
    },
    #[error("visudo refused the generated sudoers file: {0}")]
    Visudo(CommandError),
}

/// Why this sync could not take the one-sync-at-a-time lock.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(transparent)]
    Io(#[from] IoError),
    #[error("another `keyward sync` is running (it holds {}); this one did nothing", .0.display())]
    Busy(PathBuf),
    #[error("cannot lock {}: {error}", path.display())]
    Lock {
        path: PathBuf,
        error: nix::errno::Errno,
    },
}

#[derive(Debug, Default)]
pub struct Outcome {
    pub done: Vec<Action>,
    pub failed: Vec<(Action, String)>,
}

/// Runs every action in order; a failure is logged and the rest still run.
pub fn apply(plan: &Plan, accounts: &mut dyn Accounts, now: u64) -> Outcome {
    let mut outcome = Outcome::default();
    for action in &plan.actions {
        let (linux_user, iam_user, group) = action.subjects();
        // IAM chose these names; they go into the log escaped and capped.
        let [linux_user, iam_user, group] = [linux_user, iam_user, group].map(|s| s.map(untrusted));
        match accounts.execute(action, now) {
            Ok(()) => {
                tracing::info!(
                    message_id = message_id::SYNC_ACTION,
                    action = action.name(),
                    linux_user,
                    iam_user,
                    group,
                    "{action}"
                );
                outcome.done.push(action.clone());
            }
            Err(e) => {
                tracing::error!(
                    message_id = message_id::SYNC_ACTION_FAILED,
                    action = action.name(),
                    linux_user,
                    iam_user,
                    group,
                    "failed: {action}: {e}"
                );
                outcome.failed.push((action.clone(), e.to_string()));
            }
        }
    }
    outcome
}

/// shadow-utils (groupadd, useradd, usermod, gpasswd, groupdel, userdel) plus the records
/// under `state_dir` and the sudoers file.
pub struct ShadowAccounts {
    pub state_dir: PathBuf,
    pub sudoers: PathBuf,
    /// Account-changing commands run so far.
    pub commands: usize,
}

impl ShadowAccounts {
    pub fn new(state_dir: &Path) -> ShadowAccounts {
        ShadowAccounts {
            state_dir: state_dir.to_owned(),
            sudoers: super::local::SUDOERS_PATH.into(),
            commands: 0,
        }
    }

    fn run(&mut self, cmd: &mut std::process::Command) -> Result<(), CommandError> {
        self.commands += 1;
        process::run(cmd).map(drop)
    }

    fn state(&self) -> StateDir {
        StateDir::new(&self.state_dir)
    }

    fn write_json<T: serde::Serialize>(
        &self,
        dir: &Path,
        name: &str,
        value: &T,
    ) -> Result<(), ApplyError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)
            .map_err(IoError::at("create", dir))?;
        let json = serde_json::to_vec_pretty(value).map_err(ApplyError::Encode)?;
        files::write_atomic(dir, name, &json, 0o644)
            .map_err(IoError::at("write", &dir.join(name)))?;
        Ok(())
    }

    fn remove_record(&self, dir: &Path, name: &str) -> Result<(), ApplyError> {
        remove_if_present(&dir.join(name))
    }

    fn group_record(
        &self,
        group: &str,
        gid: u32,
        iam_group: &str,
        iam_group_id: &str,
        now: u64,
    ) -> Result<(), ApplyError> {
        let record = GroupRecord {
            iam_group: iam_group.to_owned(),
            iam_group_id: iam_group_id.to_owned(),
            gid,
            created_at: now,
        };
        self.write_json(&self.state().groups(), group, &record)
    }

    /// Writes the sudoers file only after `visudo -c` accepted it, 0440 root:root, atomically.
    fn write_sudoers(&mut self, content: &str) -> Result<(), ApplyError> {
        let target = self.sudoers.clone();
        let dir = target.parent().unwrap_or(Path::new("/"));
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !dir.is_dir() {
            return Err(ApplyError::NoSudoersDir(dir.to_owned()));
        }
        // A name with a dot: sudo's includedir skips it while it is being checked.
        let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
        let written = (|| -> Result<(), ApplyError> {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o440)
                .open(&tmp)
                .map_err(IoError::at("create", &tmp))?;
            f.set_permissions(fs::Permissions::from_mode(0o440))
                .and_then(|()| f.write_all(content.as_bytes()))
                .and_then(|()| f.sync_all())
                .map_err(IoError::at("write", &tmp))?;
            nix::unistd::fchown(
                std::os::fd::AsRawFd::as_raw_fd(&f),
                Some(nix::unistd::Uid::from_raw(0)),
                Some(nix::unistd::Gid::from_raw(0)),
            )
            .map_err(|error| ApplyError::Chown {
                path: tmp.clone(),
                error,
            })?;
            self.run(shadow("visudo").arg("-c").arg("-q").arg("-f").arg(&tmp))
                .map_err(ApplyError::Visudo)?;
            fs::rename(&tmp, &target).map_err(IoError::at("move into place", &tmp))?;
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(IoError::at("sync", dir))?;
            Ok(())
        })();
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        written
    }

    fn end_sessions(&mut self, user: &str) {
        // Best effort: pkill exits 1 when there was nothing to kill, and there may be no
        // systemd-logind at all.
        let _ = self.run(shadow("pkill").args(["-KILL", "-u", user]));
        if ["/usr/bin/loginctl", "/bin/loginctl"]
            .iter()
            .any(|p| Path::new(p).exists())
        {
            let _ = self.run(shadow("loginctl").args(["terminate-user", user]));
        }
    }
}

impl Accounts for ShadowAccounts {
    fn execute(&mut self, action: &Action, now: u64) -> Result<(), ApplyError> {
        let state = self.state();
        match action {
            Action::CreateGroup {
                group,
                gid,
                iam_group,
                iam_group_id,
            } => {
                // Record first: a group keyward made but forgot would be refused forever.
                self.group_record(group, *gid, iam_group, iam_group_id, now)?;
                Ok(self.run(shadow("groupadd").args(["--gid", &gid.to_string(), "--", group]))?)
            }
            Action::AdoptGroup {
                group,
                gid,
                iam_group,
                iam_group_id,
            } => self.group_record(group, *gid, iam_group, iam_group_id, now),
            Action::CreateUser {
                account,
                private_group_exists,
            } => {
                // Record first: should useradd succeed and the process die right after, the
                // account is still known to be keyward's. A failed useradd creates nothing (its
                // private group and memberships included) and leaves a record without an
                // account, which the next run reuses or, once the user is gone, forgets.
                ShadowUtils::new(&self.state_dir).write_record(account, from_unix_secs(now))?;
                let private = if *private_group_exists {
                    PrivateGroup::Exists
                } else {
                    PrivateGroup::Create
                };
                Ok(self.run(shadow("useradd").args(create::useradd_args(
                    account,
                    private,
                    &account.groups,
                )))?)
            }
            Action::AdoptUser {
                linux_user,
                iam_user,
                iam_user_id,
                uid,
            } => {
                let account = NewAccount {
                    linux_name: linux_user.clone(),
                    iam_user: iam_user.clone(),
                    iam_user_id: iam_user_id.clone(),
                    uid: *uid,
                    shell: PathBuf::new(),
                    groups: Vec::new(),
                };
                Ok(
                    ShadowUtils::new(&self.state_dir)
                        .write_record(&account, from_unix_secs(now))?,
                )
            }
            Action::AddMember { group, linux_user } => {
                Ok(self.run(shadow("gpasswd").args(["-a", linux_user, group]))?)
            }
            Action::RemoveMember { group, linux_user } => {
                Ok(self.run(shadow("gpasswd").args(["-d", linux_user, group]))?)
            }
            Action::Unlock { linux_user, .. } => {
                self.run(shadow("usermod").args([
                    "--unlock",
                    "--expiredate",
                    "",
                    "--",
                    linux_user,
                ]))?;
                self.remove_record(&state.locked(), linux_user)
            }
            Action::Lock {
                linux_user,
                end_sessions,
                ..
            } => {
                // Record first: the next run re-locks an account whose record says locked
                // but whose shadow entry does not.
                self.write_json(&state.locked(), linux_user, &LockRecord { locked_at: now })?;
                self.run(shadow("usermod").args([
                    "--lock",
                    "--expiredate",
                    "1",
                    "--",
                    linux_user,
                ]))?;
                if *end_sessions {
                    self.end_sessions(linux_user);
                }
                Ok(())
            }
            Action::DeleteGroup { group } => {
                self.run(shadow("groupdel").args(["--", group]))?;
                self.remove_record(&state.groups(), group)
            }
            Action::ForgetGroup { group } => self.remove_record(&state.groups(), group),
            Action::DeleteUser {
                linux_user,
                remove_home,
                private_group,
                ..
            } => {
                let mut cmd = shadow("userdel");
                if *remove_home {
                    cmd.arg("--remove");
                }
                self.run(cmd.args(["--", linux_user]))?;
                // userdel removes the private group itself when USERGROUPS_ENAB is on.
                if *private_group && uzers::get_group_by_name(linux_user).is_some() {
                    self.run(shadow("groupdel").args(["--", linux_user]))?;
                }
                self.remove_record(&state.accounts(), linux_user)?;
                self.remove_record(&state.locked(), linux_user)
            }
            Action::ForgetUser { linux_user } => {
                self.remove_record(&state.accounts(), linux_user)?;
                self.remove_record(&state.locked(), linux_user)
            }
            Action::WriteSudoers { content, .. } => self.write_sudoers(content),
            Action::RemoveSudoers => {
                self.commands += 1;
                remove_if_present(&self.sudoers)
            }
        }
    }
}

/// Removes `path`; already gone is fine.
fn remove_if_present(path: &Path) -> Result<(), ApplyError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(IoError::at("remove", path)(e).into()),
        _ => Ok(()),
    }
}

/// One sync at a time: an exclusive, non-blocking flock held until dropped. The kernel drops
/// it when the process dies, so a killed run never blocks the next one.
pub struct SyncLock {
    _lock: Flock<File>,
}

impl SyncLock {
    pub fn acquire(path: &Path) -> Result<SyncLock, LockError> {
        if let Some(dir) = path.parent() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(dir)
                .map_err(IoError::at("create", dir))?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(path)
            .map_err(IoError::at("open", path))?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => Ok(SyncLock { _lock: lock }),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => Err(LockError::Busy(path.to_owned())),
            Err((_, error)) => Err(LockError::Lock {
                path: path.to_owned(),
                error,
            }),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub mod fake {
    //! The account database in memory: every command is recorded, and the state changes the
    //! way shadow-utils would change it, so a second plan can be computed from it.

    use super::*;
    use crate::accounts::create::OwnershipRecord;
    use crate::sync::local::{LocalGroup, LocalState, LocalUser};

    #[derive(Default)]
    pub struct FakeAccounts {
        pub state: LocalState,
        /// Account-changing commands, as shadow-utils would have been called.
        pub commands: Vec<String>,
        /// Fail the action at this index (0-based, counting every execute call).
        pub fail_at: Option<usize>,
        executed: usize,
    }

    impl FakeAccounts {
        pub fn new(state: LocalState) -> FakeAccounts {
            FakeAccounts {
                state,
                ..FakeAccounts::default()
            }
        }
    }

    /// What shadow-utils says when it refuses: exit 1 and a line on stderr.
    fn refused(stderr: &str) -> ApplyError {
        ApplyError::Command(CommandError::Failed {
            program: "/usr/sbin/fake".into(),
            status: Some(1),
            stderr: stderr.to_owned(),
        })
    }

    impl Accounts for FakeAccounts {
        fn execute(&mut self, action: &Action, now: u64) -> Result<(), ApplyError> {
            let n = self.executed;
            self.executed += 1;
            if self.fail_at == Some(n) {
                return Err(refused("injected failure"));
            }
            let s = &mut self.state;
            let mut cmd = |c: String| self.commands.push(c);
            match action {
                Action::CreateGroup {
                    group,
                    gid,
                    iam_group,
                    iam_group_id,
                }
                | Action::AdoptGroup {
                    group,
                    gid,
                    iam_group,
                    iam_group_id,
                } => {
                    s.group_records.insert(
                        group.clone(),
                        GroupRecord {
                            iam_group: iam_group.clone(),
                            iam_group_id: iam_group_id.clone(),
                            gid: *gid,
                            created_at: now,
                        },
                    );
                    if matches!(action, Action::CreateGroup { .. }) {
                        cmd(format!("groupadd --gid {gid} {group}"));
                        s.groups.insert(
                            group.clone(),
                            LocalGroup {
                                name: group.clone(),
                                gid: *gid,
                                members: vec![],
                            },
                        );
                    }
                }
                Action::CreateUser {
                    account,
                    private_group_exists,
                } => {
                    let name = &account.linux_name;
                    s.user_records.insert(name.clone(), record(account, now));
                    let groups = account.groups.join(",");
                    if *private_group_exists {
                        cmd(format!(
                            "useradd --uid {0} --gid {0} --groups {groups} {name}",
                            account.uid
                        ));
                    } else {
                        cmd(format!(
                            "useradd --uid {0} --user-group --groups {groups} {name}",
                            account.uid
                        ));
                    }
                    // As useradd: all or nothing.
                    if !private_group_exists
                        && (s.groups.contains_key(name)
                            || s.groups.values().any(|g| g.gid == account.uid))
                    {
                        return Err(refused("private group name or GID taken"));
                    }
                    if let Some(g) = account.groups.iter().find(|g| !s.groups.contains_key(*g)) {
                        return Err(refused(&format!("group '{g}' does not exist")));
                    }
                    if !private_group_exists {
                        s.groups.insert(
                            name.clone(),
                            LocalGroup {
                                name: name.clone(),
                                gid: account.uid,
                                members: vec![],
                            },
                        );
                    }
                    for g in &account.groups {
                        if let Some(g) = s.groups.get_mut(g) {
                            g.members.push(name.clone());
                        }
                    }
                    s.users.insert(
                        name.clone(),
                        LocalUser {
                            name: name.clone(),
                            uid: account.uid,
                            gid: account.uid,
                            expired: Some(false),
                            last_change_day: Some(now / 86_400),
                        },
                    );
                }
                Action::AdoptUser {
                    linux_user,
                    iam_user,
                    iam_user_id,
                    uid,
                } => {
                    s.user_records.insert(
                        linux_user.clone(),
                        OwnershipRecord {
                            iam_user: iam_user.clone(),
                            iam_user_id: iam_user_id.clone(),
                            uid: *uid,
                            created_at: now,
                        },
                    );
                }
                Action::AddMember { group, linux_user } => {
                    cmd(format!("gpasswd -a {linux_user} {group}"));
                    let g = s
                        .groups
                        .get_mut(group)
                        .ok_or_else(|| refused("no such group"))?;
                    g.members.push(linux_user.clone());
                }
                Action::RemoveMember { group, linux_user } => {
                    cmd(format!("gpasswd -d {linux_user} {group}"));
                    let g = s
                        .groups
                        .get_mut(group)
                        .ok_or_else(|| refused("no such group"))?;
                    g.members.retain(|m| m != linux_user);
                }
                Action::Unlock { linux_user, .. } => {
                    cmd(format!("usermod --unlock --expiredate '' {linux_user}"));
                    s.users
                        .get_mut(linux_user)
                        .ok_or_else(|| refused("no such user"))?
                        .expired = Some(false);
                    s.locks.remove(linux_user);
                }
                Action::Lock {
                    linux_user,
                    end_sessions,
                    ..
                } => {
                    s.locks
                        .insert(linux_user.clone(), LockRecord { locked_at: now });
                    cmd(format!("usermod --lock --expiredate 1 {linux_user}"));
                    s.users
                        .get_mut(linux_user)
                        .ok_or_else(|| refused("no such user"))?
                        .expired = Some(true);
                    if *end_sessions {
                        cmd(format!("pkill -KILL -u {linux_user}"));
                    }
                }
                Action::DeleteGroup { group } => {
                    cmd(format!("groupdel {group}"));
                    s.groups.remove(group);
                    s.group_records.remove(group);
                }
                Action::ForgetGroup { group } => {
                    s.group_records.remove(group);
                }
                Action::DeleteUser {
                    linux_user,
                    remove_home,
                    private_group,
                    ..
                } => {
                    let flag = if *remove_home { "--remove " } else { "" };
                    cmd(format!("userdel {flag}{linux_user}"));
                    s.users.remove(linux_user);
                    for g in s.groups.values_mut() {
                        g.members.retain(|m| m != linux_user);
                    }
                    if *private_group {
                        s.groups.remove(linux_user);
                    }
                    s.user_records.remove(linux_user);
                    s.locks.remove(linux_user);
                }
                Action::ForgetUser { linux_user } => {
                    s.user_records.remove(linux_user);
                    s.locks.remove(linux_user);
                }
                Action::WriteSudoers { content, .. } => {
                    cmd("visudo -c && mv sudoers".into());
                    s.sudoers = Some(content.clone());
                }
                Action::RemoveSudoers => {
                    cmd("rm sudoers".into());
                    s.sudoers = None;
                }
            }
            Ok(())
        }
    }

    fn record(a: &NewAccount, now: u64) -> OwnershipRecord {
        OwnershipRecord {
            iam_user: a.iam_user.clone(),
            iam_user_id: a.iam_user_id.clone(),
            uid: a.uid,
            created_at: now,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn second_concurrent_sync_is_refused_with_a_clear_message() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/keyward/sync.lock");
        let first = SyncLock::acquire(&path).unwrap();
        let err = SyncLock::acquire(&path).err().unwrap();
        assert!(matches!(&err, LockError::Busy(p) if *p == path), "{err}");
        assert!(
            err.to_string()
                .contains("another `keyward sync` is running"),
            "{err}"
        );
        drop(first);
        assert!(SyncLock::acquire(&path).is_ok());
    }

    #[test]
    fn records_are_written_and_removed_in_state_dir() {
        let dir = tempfile::tempdir().unwrap();
        let mut sh = ShadowAccounts::new(dir.path());
        sh.execute(
            &Action::AdoptGroup {
                group: "dev".into(),
                gid: 5000,
                iam_group: "keymaker_dev".into(),
                iam_group_id: "AGPA1".into(),
            },
            7,
        )
        .unwrap();
        let rec: GroupRecord =
            serde_json::from_slice(&fs::read(dir.path().join("groups/dev")).unwrap()).unwrap();
        assert_eq!((rec.gid, rec.created_at), (5000, 7));
        sh.execute(
            &Action::ForgetGroup {
                group: "dev".into(),
            },
            8,
        )
        .unwrap();
        assert!(!dir.path().join("groups/dev").exists());
        assert_eq!(sh.commands, 0, "records only: no account-changing command");
    }
}
