//! The sync plan: a pure function of IAM's snapshot, the local state, the config and `now`.
//!
//! Rules it must never break, whatever IAM says:
//! - accounts and groups keyward did not create (no record, or a record whose id no longer
//!   matches) are never changed; reserved names are never touched;
//! - keymaker's accounts are adopted only on three pieces of evidence: the IAM user's name,
//!   keymaker's UID for its UserId, and an IAM CreateDate no later than the account's day in
//!   /etc/shadow (`keymaker_evidence`; a 15-bit UID can be ground by re-creating IAM users);
//! - a prefixed IAM group never becomes, fills or empties a group named like a reserved user
//!   (root, keyward, reserved_users) or a system group (GID up to login.defs' SYS_GID_MAX),
//!   and never creates a group with a privileged name (`config::PRIVILEGED_GROUPS`: admin,
//!   sudo, wheel, docker, ...) where none exists; only `adopt_groups` may name a system or
//!   privileged group, on purpose;
//! - only keyward's own accounts are added to or removed from groups, adopted groups included;
//! - a UID or GID held by someone else, or hashed from two IAM ids, is never shared: the
//!   newcomer (or, between two newcomers, the larger IAM id, so every host agrees) is skipped;
//! - removal is lock first, delete only `delete_after` later, and a plan locking or deleting
//!   more than `max_removals` accounts (or every account keyward manages) is refused.
//!
//! The plan only ever comes from a complete IAM snapshot (see `read`), so an outage or a partial
//! read cannot produce removals.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;

use super::local::{LocalState, LocalUser};
use super::read::{IamGroup, IamSnapshot, IamUser};
use crate::accounts::create::{self, IamFacts, LocalFacts, NewAccount};
use crate::accounts::ids::{self, UidScheme};
use crate::accounts::ownership;
use crate::config::Config;

/// A record without an account younger than this may belong to a `pam-create-account` run
/// between writing the record and running useradd: left alone.
const ORPHAN_RECORD_GRACE_SECS: u64 = 3600;

/// One change, small enough to be finished whole or not at all: one command plus its record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    CreateGroup {
        group: String,
        gid: u32,
        iam_group: String,
        iam_group_id: String,
    },
    /// A keymaker-made group becomes keyward's (record only).
    AdoptGroup {
        group: String,
        gid: u32,
        iam_group: String,
        iam_group_id: String,
    },
    /// One useradd: the account, its private group (unless it exists) and its memberships
    /// in keyward's groups (`account.groups`, which exist by then: groups come first).
    CreateUser {
        #[serde(flatten)]
        account: NewAccount,
        /// A private group with the account's name and GID = UID is there already (left by
        /// a groupadd, pam-create-account's or an older sync's, before a killed useradd):
        /// reuse it.
        private_group_exists: bool,
    },
    /// A keymaker-made account becomes keyward's (record only).
    AdoptUser {
        linux_user: String,
        iam_user: String,
        iam_user_id: String,
        uid: u32,
    },
    AddMember {
        group: String,
        linux_user: String,
    },
    Unlock {
        linux_user: String,
        iam_user: String,
    },
    Lock {
        linux_user: String,
        iam_user: String,
        end_sessions: bool,
    },
    RemoveMember {
        group: String,
        linux_user: String,
    },
    DeleteGroup {
        group: String,
    },
    /// The record of a group that no longer exists.
    ForgetGroup {
        group: String,
    },
    DeleteUser {
        linux_user: String,
        iam_user: String,
        remove_home: bool,
        /// The user's private group (same name, GID = UID) is removed with it.
        private_group: bool,
    },
    /// The records of an account that no longer exists.
    ForgetUser {
        linux_user: String,
    },
    WriteSudoers {
        users: Vec<String>,
        #[serde(skip)]
        content: String,
    },
    RemoveSudoers,
}

impl Action {
    /// The documented order: create groups → create users → memberships → unlock → lock →
    /// remove memberships → delete groups → deletions → sudoers.
    fn phase(&self) -> u8 {
        match self {
            Action::CreateGroup { .. } | Action::AdoptGroup { .. } => 0,
            Action::CreateUser { .. } | Action::AdoptUser { .. } => 1,
            Action::AddMember { .. } => 2,
            Action::Unlock { .. } => 3,
            Action::Lock { .. } => 4,
            Action::RemoveMember { .. } => 5,
            Action::DeleteGroup { .. } | Action::ForgetGroup { .. } => 6,
            Action::DeleteUser { .. } | Action::ForgetUser { .. } => 7,
            Action::WriteSudoers { .. } | Action::RemoveSudoers => 8,
        }
    }

    /// Whether the action changes the account database or sudo (records-only actions don't).
    pub fn changes_accounts(&self) -> bool {
        !matches!(
            self,
            Action::AdoptGroup { .. }
                | Action::AdoptUser { .. }
                | Action::ForgetGroup { .. }
                | Action::ForgetUser { .. }
        )
    }

    pub fn name(&self) -> &'static str {
        match self {
            Action::CreateGroup { .. } => "create_group",
            Action::AdoptGroup { .. } => "adopt_group",
            Action::CreateUser { .. } => "create_user",
            Action::AdoptUser { .. } => "adopt_user",
            Action::AddMember { .. } => "add_member",
            Action::Unlock { .. } => "unlock",
            Action::Lock { .. } => "lock",
            Action::RemoveMember { .. } => "remove_member",
            Action::DeleteGroup { .. } => "delete_group",
            Action::ForgetGroup { .. } => "forget_group",
            Action::DeleteUser { .. } => "delete_user",
            Action::ForgetUser { .. } => "forget_user",
            Action::WriteSudoers { .. } => "write_sudoers",
            Action::RemoveSudoers => "remove_sudoers",
        }
    }

    /// (linux_user, iam_user, group) for log fields.
    pub fn subjects(&self) -> (Option<&str>, Option<&str>, Option<&str>) {
        match self {
            Action::CreateGroup { group, .. } | Action::AdoptGroup { group, .. } => {
                (None, None, Some(group))
            }
            Action::CreateUser { account, .. } => (
                Some(account.linux_name.as_str()),
                Some(account.iam_user.as_str()),
                None,
            ),
            Action::AdoptUser {
                linux_user,
                iam_user,
                ..
            }
            | Action::Unlock {
                linux_user,
                iam_user,
            }
            | Action::Lock {
                linux_user,
                iam_user,
                ..
            }
            | Action::DeleteUser {
                linux_user,
                iam_user,
                ..
            } => (Some(linux_user), Some(iam_user), None),
            Action::AddMember { group, linux_user }
            | Action::RemoveMember { group, linux_user } => (Some(linux_user), None, Some(group)),
            Action::DeleteGroup { group } | Action::ForgetGroup { group } => {
                (None, None, Some(group))
            }
            Action::ForgetUser { linux_user } => (Some(linux_user), None, None),
            Action::WriteSudoers { .. } | Action::RemoveSudoers => (None, None, None),
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::CreateGroup {
                group,
                gid,
                iam_group,
                ..
            } => write!(
                f,
                "create group  {group} (gid {gid}) for IAM group {iam_group}"
            ),
            Action::AdoptGroup {
                group,
                gid,
                iam_group,
                ..
            } => write!(
                f,
                "adopt group   {group} (gid {gid}, made by keymaker) for IAM group {iam_group}"
            ),
            Action::CreateUser { account, .. } => {
                write!(
                    f,
                    "create user   {} (uid {}) for IAM user {}",
                    account.linux_name, account.uid, account.iam_user
                )?;
                if account.groups.is_empty() {
                    Ok(())
                } else {
                    write!(f, ", in {}", account.groups.join(", "))
                }
            }
            Action::AdoptUser {
                linux_user,
                uid,
                iam_user,
                ..
            } => write!(
                f,
                "adopt user    {linux_user} (uid {uid}, made by keymaker) for IAM user {iam_user}"
            ),
            Action::AddMember { group, linux_user } => {
                write!(f, "add member    {linux_user} to {group}")
            }
            Action::Unlock {
                linux_user,
                iam_user,
            } => write!(
                f,
                "unlock        {linux_user} (IAM user {iam_user} is allowed again)"
            ),
            Action::Lock {
                linux_user,
                iam_user,
                end_sessions,
            } => write!(
                f,
                "lock          {linux_user} (IAM user {iam_user} is no longer allowed){}",
                if *end_sessions {
                    "; end its sessions"
                } else {
                    ""
                }
            ),
            Action::RemoveMember { group, linux_user } => {
                write!(f, "remove member {linux_user} from {group}")
            }
            Action::DeleteGroup { group } => write!(f, "delete group  {group}"),
            Action::ForgetGroup { group } => {
                write!(f, "forget group  {group} (its record; the group is gone)")
            }
            Action::DeleteUser {
                linux_user,
                remove_home,
                ..
            } => write!(
                f,
                "delete user   {linux_user}{}",
                if *remove_home { " and its home" } else { "" }
            ),
            Action::ForgetUser { linux_user } => {
                write!(
                    f,
                    "forget user   {linux_user} (its records; the account is gone)"
                )
            }
            Action::WriteSudoers { users, .. } => {
                write!(f, "write sudoers for {}", users.join(", "))
            }
            Action::RemoveSudoers => write!(f, "remove sudoers (no sudo_groups members)"),
        }
    }
}

/// Something the plan leaves alone, and why. `error` ones make the run exit non-zero.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub subject: String,
    pub reason: String,
    pub error: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub actions: Vec<Action>,
    pub skipped: Vec<Skipped>,
    /// Why the mass-change guard refuses this plan (nothing is applied without `--force`).
    pub refused: Option<String>,
    /// Local groups a prefixed IAM group maps to that keyward did not create and
    /// `adopt_groups` does not list (sorted): each is an error until adopted.
    pub unadopted_groups: Vec<String>,
}

impl Plan {
    pub fn count(&self, name: &str) -> usize {
        self.actions.iter().filter(|a| a.name() == name).count()
    }

    /// Accounts this plan locks or deletes.
    pub fn removals(&self) -> usize {
        self.count("lock") + self.count("delete_user")
    }

    pub fn has_errors(&self) -> bool {
        self.skipped.iter().any(|s| s.error)
    }

    fn skip(&mut self, subject: &str, error: bool, reason: String) {
        self.skipped.push(Skipped {
            subject: subject.to_owned(),
            reason,
            error,
        });
    }
}

/// An account keyward manages after this run, and the IAM user it belongs to.
struct Managed<'a> {
    iam: &'a IamUser,
}

/// A group keyward manages after this run.
struct ManagedGroup<'a> {
    iam: &'a IamGroup,
    /// Members as /etc/group lists them now (empty for a group created by this plan).
    current: BTreeSet<String>,
}

/// The whole decision. `now` is unix seconds.
pub fn plan(config: &Config, iam: &IamSnapshot, local: &LocalState, now: u64) -> Plan {
    let mut p = Plan::default();
    let owned = |name: &str| -> bool { owns_user(local, name) };
    // Indexes keep the plan O(users + groups) on hosts with thousands of accounts.
    let uid_holder: BTreeMap<u32, &str> = local
        .users
        .values()
        .map(|u| (u.uid, u.name.as_str()))
        .collect();
    let gid_holder: BTreeMap<u32, &str> = local
        .groups
        .values()
        .map(|g| (g.gid, g.name.as_str()))
        .collect();

    // --- Who should have an account: allowed IAM users, by Linux name.
    let mut wanted: BTreeMap<String, (&IamUser, u32)> = BTreeMap::new();
    // keymaker's accounts whose name is not keyward's name for their IAM user.
    let mut misnamed: BTreeSet<&str> = BTreeSet::new();
    for u in iam.allowed.values() {
        let keymakers = match keymaker_account(config, local, u) {
            // M1: named and numbered like keymaker's account of `u`, but the dates say it was
            // made for someone else (or cannot say): neither adopted nor offered for renaming.
            Some((lu, Err(why))) => {
                misnamed.insert(&lu.name);
                p.skip(
                    &lu.name,
                    config.adopt_keymaker_accounts,
                    unproven_keymaker_account(lu, u, why),
                );
                continue;
            }
            found => found.map(|(lu, _)| lu),
        };
        match config.name_mapping.to_linux(&u.name) {
            Err(e) => match keymakers {
                Some(lu) => {
                    misnamed.insert(&lu.name);
                    p.skip(
                        &lu.name,
                        config.adopt_keymaker_accounts,
                        unmappable_keymaker_account(config, lu, u, &e),
                    );
                }
                None => p.skip(&u.name, false, format!("IAM user name not mappable: {e}")),
            },
            Ok(linux) if config.is_reserved(&linux) => p.skip(
                &linux,
                false,
                format!("reserved name (IAM user {}): root, keyward, reserved_users and the privileged group names (admin, sudo, wheel, docker, ...) are never accounts", u.name),
            ),
            Ok(linux) => match keymakers {
                Some(lu) if lu.name != linux && !local.users.contains_key(&linux) => {
                    misnamed.insert(&lu.name);
                    p.skip(
                        &lu.name,
                        config.adopt_keymaker_accounts,
                        format!(
                            "keymaker account {} (uid {}) of IAM user {}: keyward names it {linux}, so it is not adopted and {} cannot log in through keyward until it is renamed: {}",
                            lu.name, lu.uid, u.name, u.name, rename_path(config)
                        ),
                    );
                }
                _ => {
                    wanted.insert(linux, (u, create::uid_for(config, &u.id)));
                }
            },
        }
    }

    let mut managed: BTreeMap<String, Managed> = BTreeMap::new();
    let mut new_users: Vec<(NewAccount, bool)> = Vec::new();
    for (linux, (u, uid)) in &wanted {
        let record = local.user_records.get(linux);
        // keymaker's account under keyward's name for `u` (never renamed, or renamed by
        // rename-keymaker), adopted only when asked to.
        let keymakers = local
            .users
            .get(linux)
            .filter(|_| config.adopt_keymaker_accounts)
            .and_then(|lu| keymaker_match(config, local, lu, u));
        match local.users.get(linux) {
            Some(_) if owned(linux) => match record {
                Some(r) if r.iam_user_id == u.id => {
                    if local.locks.contains_key(linux) {
                        p.actions.push(Action::Unlock {
                            linux_user: linux.clone(),
                            iam_user: u.name.clone(),
                        });
                    }
                    managed.insert(linux.clone(), Managed { iam: u });
                }
                Some(r) => p.skip(
                    linux,
                    true,
                    format!(
                        "account {linux} belongs to IAM user id {} ({}), but IAM user {} now has id {} (deleted and re-created?): not given to the new user",
                        r.iam_user_id, r.iam_user, u.name, u.id
                    ),
                ),
                None => {}
            },
            Some(lu) if keymakers == Some(Ok(())) => {
                p.actions.push(Action::AdoptUser {
                    linux_user: linux.clone(),
                    iam_user: u.name.clone(),
                    iam_user_id: u.id.clone(),
                    uid: lu.uid,
                });
                managed.insert(linux.clone(), Managed { iam: u });
            }
            Some(lu) if keymakers.is_some_and(|k| k.is_err()) => {
                if let Some(Err(why)) = keymakers {
                    p.skip(linux, true, unproven_keymaker_account(lu, u, why));
                }
            }
            Some(lu) => {
                let hint = if config.uid_scheme != UidScheme::Keymaker {
                    String::new()
                } else if lu.uid == *uid {
                    " (it has keymaker's UID: set adopt_keymaker_accounts = true to adopt it)"
                        .into()
                } else {
                    // C2: the account belongs to whichever IAM identity its UID was hashed
                    // from; a name alone never hands it over (nor name and UID without the
                    // dates, M1: `keymaker_evidence`).
                    format!(
                        "; its UID {} is not keymaker's UID for IAM user {}'s UserId {} ({uid}): it was made for another IAM identity (was {} deleted and re-created? a new UserId is a new person) or by hand, so it is not adopted and {} cannot log in through keyward until that account is renamed or removed",
                        lu.uid, u.name, u.id, u.name, u.name
                    )
                };
                p.skip(
                    linux,
                    false,
                    format!("local account exists and keyward did not create it: not touched{hint}"),
                );
            }
            None if !config.create_accounts => {
                p.skip(linux, false, "no account, and create_accounts = false".into())
            }
            None => {
                // A run killed between groupadd and useradd left the private group behind.
                let leftover = record.is_some_and(|r| r.iam_user_id == u.id)
                    && local
                        .groups
                        .get(linux)
                        .is_some_and(|g| g.gid == *uid && g.members.is_empty());
                let facts = LocalFacts {
                    uid_holder: uid_holder.get(uid).map(|h| h.to_string()),
                    gid_holder: if leftover {
                        None
                    } else {
                        gid_holder.get(uid).map(|g| g.to_string())
                    },
                    group_exists: !leftover && local.groups.contains_key(linux),
                    // Memberships are separate actions of the plan (AddMember).
                    managed_groups: Vec::new(),
                };
                let iam_facts = IamFacts {
                    user_id: u.id.clone(),
                    // sync makes accounts ahead of first login without a per-user key read;
                    // an account without a key cannot log in anyway.
                    has_active_key: true,
                    // The snapshot holds only allowed users.
                    groups: Some(config.allowed_groups.clone()),
                };
                match create::plan(config, linux, &u.name, &iam_facts, &facts) {
                    Ok(account) => new_users.push((account, leftover)),
                    Err(refused) => {
                        p.skip(linux, true, format!("not created: {refused}"));
                    }
                }
            }
        }
    }

    // Two new accounts hashed to one UID: the smaller IAM id wins on every host.
    let mut by_uid: BTreeMap<u32, Vec<&NewAccount>> = BTreeMap::new();
    for (a, _) in &new_users {
        by_uid.entry(a.uid).or_default().push(a);
    }
    let mut losers = BTreeSet::new();
    for same in by_uid.values().filter(|v| v.len() > 1) {
        let winner = same.iter().min_by_key(|a| &a.iam_user_id).copied();
        for a in same {
            if let Some(w) = winner.filter(|w| w.linux_name != a.linux_name) {
                losers.insert(a.linux_name.clone());
                p.skip(
                    &a.linux_name,
                    true,
                    format!(
                        "UID {} of IAM user {} ({}) is also the UID of IAM user {} ({}): not created (change uid_range)",
                        a.uid, a.iam_user, a.iam_user_id, w.iam_user, w.iam_user_id
                    ),
                );
            }
        }
    }
    new_users.retain(|(a, _)| !losers.contains(&a.linux_name));
    for (account, leftover) in &new_users {
        if let Some((u, _)) = wanted.get(&account.linux_name) {
            managed.insert(account.linux_name.clone(), Managed { iam: u });
        }
        p.actions.push(Action::CreateUser {
            account: account.clone(),
            private_group_exists: *leftover,
        });
    }
    let new_user_names: BTreeSet<&str> = new_users
        .iter()
        .map(|(a, _)| a.linux_name.as_str())
        .collect();
    let new_private_gids: BTreeMap<u32, &str> = new_users
        .iter()
        .map(|(a, _)| (a.uid, a.linux_name.as_str()))
        .collect();

    // --- keyward's accounts IAM no longer allows: lock, later delete.
    let mut active_before = 0;
    for (linux, record) in &local.user_records {
        if managed.contains_key(linux) || new_user_names.contains(linux.as_str()) {
            if owned(linux) && !local.locks.contains_key(linux) {
                active_before += 1;
            }
            continue;
        }
        if config.is_reserved(linux) {
            p.skip(
                linux,
                true,
                "a keyward record names a reserved account: ignored".into(),
            );
            continue;
        }
        let Some(lu) = local.users.get(linux) else {
            if record.created_at.saturating_add(ORPHAN_RECORD_GRACE_SECS) < now {
                p.actions.push(Action::ForgetUser {
                    linux_user: linux.clone(),
                });
            }
            continue;
        };
        if !owned(linux) {
            p.skip(
                linux,
                false,
                format!(
                    "record says UID {}, the account has UID {}: not keyward's any more, not touched",
                    record.uid, lu.uid
                ),
            );
            continue;
        }
        let lock = local.locks.get(linux);
        if lock.is_none() {
            active_before += 1;
        }
        if lock.is_none() || lu.expired == Some(false) {
            p.actions.push(Action::Lock {
                linux_user: linux.clone(),
                iam_user: record.iam_user.clone(),
                end_sessions: config.end_sessions,
            });
        } else if let (Some(after), Some(lock)) = (config.delete_after, lock) {
            if now >= lock.locked_at.saturating_add(after.as_secs()) {
                p.actions.push(Action::DeleteUser {
                    linux_user: linux.clone(),
                    iam_user: record.iam_user.clone(),
                    remove_home: config.remove_home,
                    private_group: local
                        .groups
                        .get(linux)
                        .is_some_and(|g| g.gid == record.uid && g.gid == lu.gid),
                });
            }
        }
    }

    // --- keymaker's other accounts: reported, never changed.
    if config.uid_scheme == UidScheme::Keymaker {
        report_other_keymaker_accounts(config, iam, local, &wanted, &misnamed, &mut p);
    }

    // --- Groups: each prefixed IAM group becomes (or stays) a Linux group.
    let mut groups: BTreeMap<String, ManagedGroup> = BTreeMap::new();
    let mut new_groups: Vec<(String, u32, &IamGroup)> = Vec::new();
    // (Linux group, IAM group, what the group is): refused until listed in adopt_groups.
    let mut unadopted: Vec<(String, String, String)> = Vec::new();
    for g in iam.prefixed.values() {
        let stripped = g.name.get(config.group_prefix.len()..).unwrap_or_default();
        let linux = match config.name_mapping.to_linux(stripped) {
            Ok(l) => l,
            Err(e) => {
                p.skip(&g.name, false, format!("IAM group name not mappable: {e}"));
                continue;
            }
        };
        // Reserved names are never a group of keyward's, even before install made `keyward`.
        if config.is_reserved_group(&linux) {
            p.skip(&linux, true, format!("IAM group {} maps to {linux}, a reserved name (root, keyward, reserved_users): never created or managed", g.name));
            continue;
        }
        let gid = ids::id_for(config.uid_scheme, &g.id, config.uid_range);
        let existing = local.groups.get(&linux);
        let record = local.group_records.get(&linux);
        let adopted = config.adopt_groups.contains(&linux);
        if let Some(lg) = existing.filter(|lg| !adopted && local.system_gids.contains(lg.gid)) {
            p.skip(&linux, true, format!("IAM group {} maps to system group {linux} (GID {}, SYS_GID_MAX {}): not managed (list it in adopt_groups to manage keyward's accounts in it)", g.name, lg.gid, local.system_gids.max));
            continue;
        }
        if adopted {
            match existing {
                Some(lg) => {
                    groups.insert(linux, ManagedGroup::of(g, lg.members.iter()));
                }
                None => p.skip(
                    &linux,
                    true,
                    format!("adopt_groups lists {linux} (IAM group {}), but there is no such local group", g.name),
                ),
            }
            continue;
        }
        match (existing, record) {
            (Some(lg), Some(r)) if r.iam_group_id == g.id && lg.gid == r.gid => {
                groups.insert(linux, ManagedGroup::of(g, lg.members.iter()));
            }
            (Some(_), Some(r)) if r.iam_group_id != g.id => p.skip(
                &linux,
                false,
                format!(
                    "local group {linux} belongs to IAM group {} ({}); it is removed now and made again for {} on the next run",
                    r.iam_group, r.iam_group_id, g.name
                ),
            ),
            (Some(lg), None) if is_keymaker_group(config, lg.gid, gid) => {
                p.actions.push(Action::AdoptGroup {
                    group: linux.clone(),
                    gid,
                    iam_group: g.name.clone(),
                    iam_group_id: g.id.clone(),
                });
                groups.insert(linux, ManagedGroup::of(g, lg.members.iter()));
            }
            (Some(lg), _) => {
                let whose = if config.uid_scheme == UidScheme::Keymaker && lg.gid != gid {
                    format!(" (GID {}, not keymaker's GID {gid} for it: a local group keymaker reused, or one made by hand)", lg.gid)
                } else {
                    format!(" (GID {})", lg.gid)
                };
                unadopted.push((linux, g.name.clone(), whose));
            }
            (None, _) => {
                if crate::config::PRIVILEGED_GROUPS.contains(&linux.as_str()) {
                    p.skip(&linux, true, format!("IAM group {} maps to {linux}, a group name sudoers files and distributions give privileges to: never created (to manage it, create it yourself and list it in adopt_groups)", g.name));
                } else if local.system_gids.contains(gid) {
                    p.skip(&linux, true, format!("GID {gid} of IAM group {} is a system GID (SYS_GID_MAX {}): not created; move uid_range above it", g.name, local.system_gids.max));
                } else if let Some(holder) = gid_holder.get(&gid) {
                    p.skip(&linux, true, format!("GID {gid} of IAM group {} is held by local group {holder}: not created", g.name));
                } else if let Some(user) = new_private_gids.get(&gid) {
                    p.skip(&linux, true, format!("IAM group {} (GID {gid}) collides with the private group of new account {user} (GID {gid}): not created", g.name));
                } else if wanted.contains_key(&linux) {
                    p.skip(&linux, true, format!("IAM group {} maps to {linux}, the name of IAM user {linux}'s private group: not created", g.name));
                } else {
                    new_groups.push((linux, gid, g));
                }
            }
        }
    }
    // One line fixes them all: the exact adopt_groups setting, existing entries kept.
    if !unadopted.is_empty() {
        let names: Vec<String> = unadopted.iter().map(|(l, _, _)| l.clone()).collect();
        let line = adopt_groups_line(config, &names);
        for (linux, iam_group, whose) in &unadopted {
            p.skip(
                linux,
                true,
                format!("IAM group {iam_group} maps to local group {linux}{whose}, which keyward did not create: refused; to manage keyward's accounts in it (its other members stay), add to keyward.toml: {line}"),
            );
        }
        p.unadopted_groups = names;
    }
    // Two new groups hashed to one GID: the smaller GroupId wins on every host.
    let mut by_gid: BTreeMap<u32, Vec<&(String, u32, &IamGroup)>> = BTreeMap::new();
    for ng in &new_groups {
        by_gid.entry(ng.1).or_default().push(ng);
    }
    let mut group_losers = BTreeSet::new();
    for same in by_gid.values().filter(|v| v.len() > 1) {
        let winner = same.iter().min_by_key(|(_, _, g)| &g.id).map(|w| w.2);
        for (linux, gid, g) in same {
            if let Some(w) = winner.filter(|w| w.id != g.id) {
                group_losers.insert(linux.clone());
                p.skip(linux, true, format!("GID {gid} of IAM group {} ({}) is also the GID of IAM group {} ({}): not created", g.name, g.id, w.name, w.id));
            }
        }
    }
    for (linux, gid, g) in new_groups {
        if group_losers.contains(&linux) {
            continue;
        }
        p.actions.push(Action::CreateGroup {
            group: linux.clone(),
            gid,
            iam_group: g.name.clone(),
            iam_group_id: g.id.clone(),
        });
        groups.insert(linux, ManagedGroup::of(g, [].iter()));
    }

    // keyward's groups whose IAM group is gone (deleted or renamed): emptied, then deleted.
    let creating: BTreeSet<String> = p
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::CreateGroup { group, .. } => Some(group.clone()),
            _ => None,
        })
        .collect();
    for (linux, r) in &local.group_records {
        let still = groups
            .get(linux)
            .is_some_and(|m| m.iam.id == r.iam_group_id);
        if still || creating.contains(linux) || config.adopt_groups.contains(linux) {
            continue;
        }
        // A reserved or system group is never emptied or deleted, whatever a record says (an
        // older keyward could create `keyward` before install did).
        let system = local
            .groups
            .get(linux)
            .is_some_and(|lg| local.system_gids.contains(lg.gid));
        if config.is_reserved_group(linux) || system {
            p.skip(linux, true, format!("keyward's record names reserved or system group {linux}: not touched; check who needs the group, then remove it or its record {}/groups/{linux} by hand", config.state_dir.display()));
            continue;
        }
        match local.groups.get(linux) {
            Some(lg) if lg.gid == r.gid => {
                for m in lg.members.iter().filter(|m| owned(m)) {
                    p.actions.push(Action::RemoveMember {
                        group: linux.clone(),
                        linux_user: m.clone(),
                    });
                }
                p.actions.push(Action::DeleteGroup {
                    group: linux.clone(),
                });
            }
            Some(lg) => p.skip(
                linux,
                false,
                format!(
                    "record says GID {}, the group has GID {}: not keyward's any more, not touched",
                    r.gid, lg.gid
                ),
            ),
            None => p.actions.push(Action::ForgetGroup {
                group: linux.clone(),
            }),
        }
    }

    // An adopted group whose IAM group is gone keeps its group and its other members; keyward's
    // accounts leave it, as they would leave the IAM group.
    for name in &config.adopt_groups {
        if groups.contains_key(name) {
            continue;
        }
        if let Some(lg) = local.groups.get(name) {
            for m in lg.members.iter().filter(|m| owned(m)) {
                p.actions.push(Action::RemoveMember {
                    group: name.clone(),
                    linux_user: m.clone(),
                });
            }
        }
    }

    // --- Memberships: only keyward's accounts are ever added or removed.
    let linux_of: BTreeMap<&str, &str> = managed
        .iter()
        .map(|(linux, m)| (m.iam.id.as_str(), linux.as_str()))
        .collect();
    let adopted: BTreeSet<&str> = p
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::AdoptUser { linux_user, .. } => Some(linux_user.as_str()),
            _ => None,
        })
        .collect();
    let mut membership = Vec::new();
    // A new account joins its groups in its own useradd (`--groups`): one command instead of
    // one gpasswd per membership.
    let mut joins: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (group, m) in &groups {
        let desired: BTreeSet<String> = m
            .iam
            .members
            .iter()
            .filter_map(|u| linux_of.get(u.id.as_str()))
            .map(|l| l.to_string())
            .collect();
        for user in desired.difference(&m.current) {
            if let Some(new) = new_user_names.get(user.as_str()) {
                joins.entry(new).or_default().push(group.clone());
                continue;
            }
            membership.push(Action::AddMember {
                group: group.clone(),
                linux_user: user.clone(),
            });
        }
        for user in m.current.difference(&desired) {
            if owned(user) || adopted.contains(user.as_str()) {
                membership.push(Action::RemoveMember {
                    group: group.clone(),
                    linux_user: user.clone(),
                });
            }
        }
    }
    p.actions.extend(membership);
    for action in &mut p.actions {
        if let Action::CreateUser { account, .. } = action {
            if let Some(groups) = joins.remove(account.linux_name.as_str()) {
                account.groups = groups;
            }
        }
    }

    // --- sudo: one line per managed account in sudo_groups.
    let sudo_users: Vec<String> = managed
        .iter()
        .filter(|(_, m)| iam.sudoers.contains(&m.iam.id))
        .map(|(linux, _)| linux.clone())
        .collect();
    if sudo_users.is_empty() {
        if local.sudoers.is_some() {
            p.actions.push(Action::RemoveSudoers);
        }
    } else {
        let content = sudoers_content(&sudo_users);
        if local.sudoers.as_deref() != Some(content.as_str()) {
            p.actions.push(Action::WriteSudoers {
                users: sudo_users,
                content,
            });
        }
    }

    p.actions.sort_by_key(Action::phase); // stable: each phase keeps its name order
    p.skipped.sort_by(|a, b| a.subject.cmp(&b.subject));
    let groups_before = local
        .group_records
        .iter()
        .filter(|(name, r)| local.groups.get(*name).is_some_and(|g| g.gid == r.gid))
        .count();
    p.refused = guard(config, &p, active_before, groups_before);
    p
}

impl<'a> ManagedGroup<'a> {
    fn of<'m>(iam: &'a IamGroup, members: impl Iterator<Item = &'m String>) -> ManagedGroup<'a> {
        ManagedGroup {
            iam,
            current: members.cloned().collect(),
        }
    }
}

/// Ownership is `ownership::owns`, the rule every job shares: a record left behind by an
/// account someone since re-created by hand does not make the new one keyward's.
fn owns_user(local: &LocalState, name: &str) -> bool {
    match (local.users.get(name), local.user_records.get(name)) {
        (Some(u), Some(r)) => ownership::owns(r, u.uid),
        _ => false,
    }
}

/// The `adopt_groups` line of keyward.toml that adopts `more` besides what it lists already.
pub fn adopt_groups_line(config: &Config, more: &[String]) -> String {
    let mut all: Vec<&String> = config.adopt_groups.iter().collect();
    all.extend(more.iter().filter(|m| !config.adopt_groups.contains(m)));
    let quoted: Vec<String> = all.iter().map(|g| format!("{g:?}")).collect();
    format!("adopt_groups = [{}]", quoted.join(", "))
}

/// keymaker 1.1's account for IAM user `u`: named exactly like the IAM user (keymaker had no
/// Linux-side name mapping), with the UID keymaker hashed from the UserId, and the evidence of
/// `keymaker_evidence` (`Err` when name and UID match but the evidence does not: not keymaker's
/// account of `u`, and the reason). Name and UID tie an account keyward did not create to one
/// IAM identity (C2): an IAM user deleted and re-created under the same name has another
/// UserId, hence (almost always) another UID. Never an account keyward owns or a reserved one.
pub fn keymaker_account<'l>(
    config: &Config,
    local: &'l LocalState,
    u: &IamUser,
) -> Option<(&'l LocalUser, Result<(), Unproven>)> {
    if config.is_reserved(&u.name) {
        return None;
    }
    let lu = local.users.get(&u.name)?;
    keymaker_match(config, local, lu, u).map(|evidence| (lu, evidence))
}

/// Whether `lu`, whatever its name, is keymaker's account of `u`: `None` when its UID is not
/// keymaker's for `u`'s UserId (or keyward owns it, or the scheme is not keymaker's), else the
/// verdict of `keymaker_evidence`.
fn keymaker_match(
    config: &Config,
    local: &LocalState,
    lu: &LocalUser,
    u: &IamUser,
) -> Option<Result<(), Unproven>> {
    (config.uid_scheme == UidScheme::Keymaker
        && lu.uid == keymaker_uid(config, &u.id)
        && !owns_user(local, &lu.name))
    .then(|| keymaker_evidence(config, lu, u))
}

/// Why an account with the name and keymaker's UID of an IAM user is still not taken for that
/// user's (M1). keymaker's UID is 15 bits of the UserId: someone who may create IAM users can
/// create, delete and create again a departed person's name until the UserId hashes to the
/// old account's UID. What they cannot make is an IAM user older than the account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unproven {
    /// /etc/shadow could not be read (not root).
    ShadowUnread,
    /// The account's last-change field in /etc/shadow is empty or 0.
    NoAccountDay,
    /// IAM gave no CreateDate for the user.
    NoCreateDate,
    /// The IAM user was created after the account (days since the epoch).
    IamUserNewer { iam_day: u64, account_day: u64 },
}

/// The second piece of evidence that an account named and numbered like keymaker's account of
/// `u` is that: the IAM user was created no later than the day the account was (/etc/shadow's
/// last change, which useradd set when keymaker made the account; a later password change
/// moves it later). Same day counts. Waived only for the UserIds the admin lists in
/// `adopt_keymaker_user_ids`.
pub fn keymaker_evidence(config: &Config, lu: &LocalUser, u: &IamUser) -> Result<(), Unproven> {
    if config.adopt_keymaker_user_ids.contains(&u.id) {
        return Ok(());
    }
    let account_day = match lu.last_change_day {
        Some(day) => day,
        None if lu.expired.is_none() => return Err(Unproven::ShadowUnread),
        None => return Err(Unproven::NoAccountDay),
    };
    let iam_day = u.created_at.ok_or(Unproven::NoCreateDate)? / 86_400;
    if iam_day <= account_day {
        Ok(())
    } else {
        Err(Unproven::IamUserNewer {
            iam_day,
            account_day,
        })
    }
}

/// The plan's line (and rename-keymaker's refusal) for an account `keymaker_evidence` does
/// not take for `u`'s.
pub fn unproven_keymaker_account(lu: &LocalUser, u: &IamUser, why: Unproven) -> String {
    let because = match why {
        Unproven::ShadowUnread => {
            "/etc/shadow could not be read to tell when the account was made (run as root)".into()
        }
        Unproven::NoAccountDay => {
            "/etc/shadow gives no day the account was made (its last-change field is empty or 0)"
                .into()
        }
        Unproven::NoCreateDate => format!("IAM gave no CreateDate for IAM user {}", u.name),
        Unproven::IamUserNewer {
            iam_day,
            account_day,
        } => format!(
            "IAM user {} was created on {}, after the account ({}, /etc/shadow's last change)",
            u.name,
            date_of_day(iam_day),
            date_of_day(account_day)
        ),
    };
    let fix = match why {
        Unproven::ShadowUnread => String::new(),
        _ => format!(
            " If you have checked that IAM user {} ({}) is the person this account was made for, add to keyward.toml: adopt_keymaker_user_ids = [\"{}\"] (with any ids listed already)",
            u.name, u.id, u.id
        ),
    };
    format!(
        "account {} (uid {}) has the name and keymaker's UID of IAM user {} ({}), but {because}: a 15-bit UID is no proof (a new IAM user given a departed person's name can be re-created until its UserId hashes to the UID), so it is not renamed or adopted and {} cannot log in through keyward.{fix}",
        lu.name, lu.uid, u.name, u.id, u.name
    )
}

/// `YYYY-MM-DD` of a day since the epoch (`day N` past year 9999).
fn date_of_day(day: u64) -> String {
    const LAST: u64 = 2_932_896; // 9999-12-31
    if day > LAST {
        return format!("day {day}");
    }
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(day * 86_400);
    let text = humantime::format_rfc3339_seconds(at).to_string();
    text.get(..10).unwrap_or(&text).to_owned()
}

/// How the admin gets keymaker's misnamed account renamed (rename-keymaker renames only what
/// sync may adopt, so adoption comes first).
fn rename_path(config: &Config) -> &'static str {
    if config.adopt_keymaker_accounts {
        "`keyward rename-keymaker --dry-run`, then `keyward rename-keymaker` (UID, home and files kept; the next sync adopts it)"
    } else {
        "set adopt_keymaker_accounts = true in keyward.toml (rename-keymaker renames only accounts sync may adopt), then `keyward rename-keymaker --dry-run` and `keyward rename-keymaker` (UID, home and files kept; the next sync adopts it)"
    }
}

fn keymaker_uid(config: &Config, user_id: &str) -> u32 {
    ids::id_for(UidScheme::Keymaker, user_id, config.uid_range)
}

/// keymaker's UIDs (and GIDs): 2000 + a 16-bit hash / 2.
const KEYMAKER_IDS: std::ops::RangeInclusive<u32> = 2000..=34767;

fn unmappable_keymaker_account(
    config: &Config,
    lu: &LocalUser,
    u: &IamUser,
    why: &crate::accounts::names::NameError,
) -> String {
    let escaped = crate::accounts::names::NameMapping::Escape.to_linux(&u.name);
    let path = match escaped {
        Ok(name) => format!("keep names canonical: set name_mapping = \"escape\" (keyward's name for it: {name}), then {}", rename_path(config)),
        Err(_) => "no name mapping can name it: rename the IAM user, or lock or remove the account".into(),
    };
    format!(
        "keymaker account {} (uid {}) of IAM user {}: {why}; it is not adopted and {} cannot log in through keyward; {path}",
        lu.name, lu.uid, u.name, u.name
    )
}

/// A line for each local account keymaker may have made that the plan does not otherwise
/// mention: the account of an IAM user who is not allowed, one named like an IAM user but
/// with another identity's UID, one in keymaker's UID range that no IAM user accounts for.
/// Only reported: keyward neither adopts nor locks them.
fn report_other_keymaker_accounts(
    config: &Config,
    iam: &IamSnapshot,
    local: &LocalState,
    wanted: &BTreeMap<String, (&IamUser, u32)>,
    misnamed: &BTreeSet<&str>,
    p: &mut Plan,
) {
    let by_name: BTreeMap<&str, &IamUser> = iam
        .allowed
        .values()
        .chain(iam.others.values())
        .map(|u| (u.name.as_str(), u))
        .collect();
    let allowed_groups = config.allowed_groups.join(", ");
    for lu in local.users.values() {
        if wanted.contains_key(&lu.name)
            || misnamed.contains(lu.name.as_str())
            || local.user_records.contains_key(&lu.name)
            || config.is_reserved(&lu.name)
        {
            continue;
        }
        let reason = match by_name.get(lu.name.as_str()) {
            // Allowed, and not wanted under this name: keyward's name for the IAM user is
            // another account's (or reserved).
            Some(u) if iam.allowed.contains_key(&u.id) && lu.uid == keymaker_uid(config, &u.id) => {
                let name = config.name_mapping.to_linux(&u.name).unwrap_or_default();
                format!(
                    "keymaker account of IAM user {} (uid {}), but keyward's name for it, {name}, is another account (or reserved): not adopted, not touched; move what is needed from {} to {name}, then lock or remove {}",
                    u.name, lu.uid, lu.name, lu.name
                )
            }
            Some(u) if lu.uid == keymaker_uid(config, &u.id) => {
                match keymaker_evidence(config, lu, u) {
                    Ok(()) => format!(
                        "keymaker account of IAM user {} (uid {}), who is not in allowed_groups ({allowed_groups}): not adopted, not locked, not removed; it can no longer log in (keyward serves keys only to allowed users): add the IAM user to an allowed group, or lock the account (usermod --lock --expiredate 1 {}) or remove it yourself",
                        u.name, lu.uid, lu.name
                    ),
                    Err(why) => format!(
                        "IAM user {} is not in allowed_groups ({allowed_groups}); not touched: {}",
                        u.name,
                        unproven_keymaker_account(lu, u, why)
                    ),
                }
            }
            Some(u) if KEYMAKER_IDS.contains(&lu.uid) => format!(
                "local account (uid {}) named like IAM user {}, whose UserId {} gives keymaker's UID {}: made for another IAM identity (deleted and re-created?) or by hand: not adopted, not touched",
                lu.uid, u.name, u.id, keymaker_uid(config, &u.id)
            ),
            None if config.adopt_keymaker_accounts && KEYMAKER_IDS.contains(&lu.uid) => format!(
                "local account (uid {}, in keymaker's UID range) but no IAM user is named {}: if keymaker made it, its IAM user was deleted or renamed: not adopted, not touched",
                lu.uid, lu.name
            ),
            _ => continue,
        };
        p.skip(&lu.name, false, reason);
    }
}

fn is_keymaker_group(config: &Config, local_gid: u32, gid: u32) -> bool {
    config.uid_scheme == UidScheme::Keymaker && config.adopt_keymaker_accounts && local_gid == gid
}

/// What the mass-change guard counts: each loss of access once. A membership removal is
/// counted on its own only when neither its account is locked or deleted nor its group deleted
/// by the same plan (then it is part of that removal), so one departure counts 1 however many
/// groups the person was in, and emptying a group counts one per member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Removals {
    accounts: usize,
    groups: usize,
    memberships: usize,
}

impl Removals {
    fn of(p: &Plan) -> Removals {
        let mut gone_users = BTreeSet::new();
        let mut gone_groups = BTreeSet::new();
        for a in &p.actions {
            match a {
                Action::Lock { linux_user, .. } | Action::DeleteUser { linux_user, .. } => {
                    gone_users.insert(linux_user.as_str());
                }
                Action::DeleteGroup { group } => {
                    gone_groups.insert(group.as_str());
                }
                _ => {}
            }
        }
        let memberships = p
            .actions
            .iter()
            .filter(|a| match a {
                Action::RemoveMember { group, linux_user } => {
                    !gone_users.contains(linux_user.as_str())
                        && !gone_groups.contains(group.as_str())
                }
                _ => false,
            })
            .count();
        Removals {
            accounts: p.removals(),
            groups: p.count("delete_group"),
            memberships,
        }
    }

    fn total(&self) -> usize {
        self.accounts + self.groups + self.memberships
    }
}

/// The mass-change guard: one budget, `max_removals`, for every loss of access a plan makes
/// (accounts locked or deleted, groups deleted, memberships removed), plus "not everything at
/// once" for accounts and for groups. `active_before`: keyward's unlocked accounts before this
/// plan; `groups_before`: keyward's groups before it.
fn guard(config: &Config, p: &Plan, active_before: usize, groups_before: usize) -> Option<String> {
    let r = Removals::of(p);
    let locks = p.count("lock");
    let check = "nothing applied; check IAM and allowed_groups, then run `keyward sync --force` if it is right";
    if r.total() > config.max_removals as usize {
        Some(format!(
            "this run would remove access {} times ({} accounts locked or deleted, {} groups deleted, {} memberships removed), more than max_removals = {}: {check}",
            r.total(),
            r.accounts,
            r.groups,
            r.memberships,
            config.max_removals
        ))
    } else if locks >= 2 && locks >= active_before {
        Some(format!(
            "this run would lock every one of the {locks} accounts keyward manages: {check}"
        ))
    } else if r.groups >= 2 && r.groups >= groups_before {
        Some(format!(
            "this run would delete every one of the {} groups keyward manages: {check}",
            r.groups
        ))
    } else {
        None
    }
}

/// /etc/sudoers.d/keyward for these Linux users (sorted, validated names).
pub fn sudoers_content(users: &[String]) -> String {
    let mut text = String::from(
        "# Written by `keyward sync` for the members of sudo_groups; changes are overwritten.\n\
         # keyward's accounts have no password, so sudo cannot ask for one (NOPASSWD).\n",
    );
    for u in users {
        text.push_str(u);
        text.push_str(" ALL=(ALL) NOPASSWD:ALL\n");
    }
    text
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod guard_tests {
    use super::*;

    fn lock(user: &str) -> Action {
        Action::Lock {
            linux_user: user.into(),
            iam_user: user.into(),
            end_sessions: false,
        }
    }
    fn remove(group: &str, user: &str) -> Action {
        Action::RemoveMember {
            group: group.into(),
            linux_user: user.into(),
        }
    }
    fn delete_group(group: &str) -> Action {
        Action::DeleteGroup {
            group: group.into(),
        }
    }
    fn plan_of(actions: Vec<Action>) -> Plan {
        Plan {
            actions,
            ..Plan::default()
        }
    }
    fn max(n: u32) -> Config {
        Config {
            max_removals: n,
            ..Config::default()
        }
    }

    #[test]
    fn h2_emptying_a_group_counts_each_member_against_max_removals() {
        // A GetGroup answer without <Users> (were it believed) empties the group.
        let members: Vec<Action> = (0..4).map(|i| remove("dev", &format!("u{i}"))).collect();
        let p = plan_of(members);
        assert_eq!(Removals::of(&p).total(), 4);
        let why = guard(&max(3), &p, 10, 5).unwrap();
        assert!(why.contains("4 memberships removed"), "{why}");
        assert!(
            why.contains("max_removals = 3") && why.contains("--force"),
            "{why}"
        );
        assert_eq!(guard(&max(4), &p, 10, 5), None);
    }

    #[test]
    fn h2_deleting_groups_counts_and_deleting_every_group_is_refused() {
        let p = plan_of(vec![
            remove("dev", "a"),
            delete_group("dev"),
            remove("web", "b"),
            delete_group("web"),
        ]);
        // The members of a deleted group are part of its deletion.
        assert_eq!(
            Removals::of(&p),
            Removals {
                accounts: 0,
                groups: 2,
                memberships: 0
            }
        );
        assert!(guard(&max(1), &p, 10, 5)
            .unwrap()
            .contains("2 groups deleted"));
        // Under the budget, but every group keyward has (a ListGroups without <Groups>).
        let why = guard(&max(10), &p, 10, 2).unwrap();
        assert!(why.contains("every one of the 2 groups"), "{why}");
        assert_eq!(guard(&max(10), &p, 10, 3), None);
        // One group, the only one: as for accounts, a single removal is not "everything".
        let one = plan_of(vec![delete_group("dev")]);
        assert_eq!(guard(&max(10), &one, 10, 1), None);
    }

    #[test]
    fn h2_a_departure_counts_once_however_many_groups() {
        let p = plan_of(vec![
            lock("bob"),
            remove("dev", "bob"),
            remove("web", "bob"),
            remove("ops", "bob"),
            remove("dev", "carol"),
        ]);
        assert_eq!(
            Removals::of(&p),
            Removals {
                accounts: 1,
                groups: 0,
                memberships: 1
            }
        );
        assert_eq!(guard(&max(2), &p, 10, 5), None);
        assert!(guard(&max(1), &p, 10, 5).is_some());
    }
}

#[cfg(test)]
mod evidence_tests {
    use super::*;

    #[test]
    fn days_print_as_dates_and_absurd_ones_as_days() {
        assert_eq!(date_of_day(0), "1970-01-01");
        assert_eq!(date_of_day(20_422), "2025-11-30");
        assert_eq!(date_of_day(2_932_896), "9999-12-31");
        assert_eq!(date_of_day(u64::MAX), format!("day {}", u64::MAX));
    }

    #[test]
    fn m1_evidence_compares_days_and_a_missing_date_is_no_evidence() {
        let cfg = Config::default();
        let account = |day: Option<u64>, shadow_read: bool| LocalUser {
            name: "erin".into(),
            uid: 3000,
            gid: 3000,
            expired: shadow_read.then_some(false),
            last_change_day: day,
        };
        let user = |secs: Option<u64>| IamUser {
            name: "erin".into(),
            id: "AIDAERIN".into(),
            created_at: secs,
        };
        let day = 20_000;
        let ok = |d, s| keymaker_evidence(&cfg, &account(d, true), &user(s));
        assert_eq!(ok(Some(day), Some(day * 86_400 + 86_399)), Ok(()));
        assert_eq!(ok(Some(day), Some(1)), Ok(()));
        assert_eq!(
            ok(Some(day), Some((day + 1) * 86_400)),
            Err(Unproven::IamUserNewer {
                iam_day: day + 1,
                account_day: day
            })
        );
        assert_eq!(ok(Some(day), None), Err(Unproven::NoCreateDate));
        assert_eq!(ok(None, Some(1)), Err(Unproven::NoAccountDay));
        assert_eq!(
            keymaker_evidence(&cfg, &account(None, false), &user(Some(1))),
            Err(Unproven::ShadowUnread)
        );
        let listed = Config {
            adopt_keymaker_user_ids: vec!["AIDAERIN".into()],
            ..Config::default()
        };
        assert_eq!(
            keymaker_evidence(&listed, &account(None, false), &user(None)),
            Ok(())
        );
    }
}

/// M2: reserved and system group names, through the plan alone (the whole sync is tested in
/// `sync::tests` and the namespace harness).
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod m2_tests {
    use super::*;
    use crate::accounts::login_defs::SystemGids;
    use crate::sync::local::{GroupRecord, LocalGroup};

    fn alice() -> IamUser {
        IamUser {
            name: "alice".into(),
            id: "AIDAALICE".into(),
            created_at: Some(1),
        }
    }

    /// IAM: alice is allowed and in each of `groups` (full IAM names).
    fn iam(groups: &[&str]) -> IamSnapshot {
        IamSnapshot {
            allowed: [(alice().id, alice())].into(),
            prefixed: groups
                .iter()
                .map(|name| {
                    let g = IamGroup {
                        name: name.to_string(),
                        id: format!("AGPA{}", name.to_uppercase()),
                        members: vec![alice()],
                    };
                    (name.to_string(), g)
                })
                .collect(),
            sudoers: BTreeSet::new(),
            others: BTreeMap::new(),
        }
    }

    fn group(local: &mut LocalState, name: &str, gid: u32, members: &[&str]) {
        local.groups.insert(
            name.into(),
            LocalGroup {
                name: name.into(),
                gid,
                members: members.iter().map(|m| m.to_string()).collect(),
            },
        );
    }

    fn record(local: &mut LocalState, name: &str, iam_group: &str, gid: u32) {
        local.group_records.insert(
            name.into(),
            GroupRecord {
                iam_group: iam_group.into(),
                iam_group_id: format!("AGPA{}", iam_group.to_uppercase()),
                gid,
                created_at: 0,
            },
        );
    }

    fn config() -> Config {
        Config {
            allowed_groups: vec!["*".into()],
            reserved_users: vec!["ec2-user".into()],
            ..Config::default()
        }
    }

    /// Every group the plan touches (creates, adopts, fills, a new account joins, empties,
    /// deletes).
    fn touched(p: &Plan) -> Vec<String> {
        p.actions
            .iter()
            .flat_map(|a| match a {
                Action::CreateGroup { group, .. }
                | Action::AdoptGroup { group, .. }
                | Action::AddMember { group, .. }
                | Action::RemoveMember { group, .. }
                | Action::DeleteGroup { group }
                | Action::ForgetGroup { group } => vec![group.clone()],
                Action::CreateUser { account, .. } => account.groups.clone(),
                _ => vec![],
            })
            .collect()
    }

    fn skipped_with_error(p: &Plan, subject: &str) -> String {
        let s = p
            .skipped
            .iter()
            .find(|s| s.subject == subject)
            .unwrap_or_else(|| panic!("{subject} not skipped: {p:#?}"));
        assert!(s.error, "{s:?}");
        s.reason.clone()
    }

    #[test]
    fn m2_a_missing_privileged_group_is_never_created_and_no_account_is_named_after_one() {
        // Ubuntu's sudoers grants %admin and %sudo, RHEL's %wheel: a host without such a group
        // must not get one from IAM (keyward_admin -> admin) or from a user's private group.
        let local = LocalState::default();
        let mut snap = iam(&["keyward_admin", "keyward_wheel", "keyward_dev"]);
        let admin = IamUser {
            name: "admin".into(),
            id: "AIDAADMIN".into(),
            created_at: Some(1),
        };
        snap.allowed.insert(admin.id.clone(), admin);
        let p = plan(&config(), &snap, &local, 1);
        assert!(
            !touched(&p).iter().any(|g| g == "admin" || g == "wheel"),
            "{:#?}",
            p.actions
        );
        assert!(
            skipped_with_error(&p, "wheel").contains("privileges"),
            "{p:#?}"
        );
        assert!(
            !p.actions.iter().any(
                |a| matches!(a, Action::CreateUser { account, .. } if account.linux_name == "admin")
            ),
            "{:#?}",
            p.actions
        );
        // An existing one may still be adopted on purpose.
        let mut local = LocalState::default();
        group(&mut local, "wheel", 10, &[]);
        let adopting = Config {
            adopt_groups: vec!["wheel".into()],
            ..config()
        };
        let p = plan(&adopting, &iam(&["keyward_wheel"]), &local, 1);
        assert!(touched(&p).contains(&"wheel".to_string()), "{:#?}", p);
    }

    #[test]
    fn m2_iam_groups_mapping_to_reserved_names_create_and_fill_nothing() {
        // Before install: no local group `keyward` yet.
        let local = LocalState::default();
        let snap = iam(&[
            "keyward_keyward",
            "keyward_root",
            "keyward_ec2-user",
            "keyward_dev",
        ]);
        let p = plan(&config(), &snap, &local, 1);
        assert_eq!(touched(&p), ["dev", "dev"], "{:#?}", p.actions);
        for name in ["keyward", "root", "ec2-user"] {
            assert!(skipped_with_error(&p, name).contains("reserved"));
        }

        // After install, with the group present and even listed in a record.
        let mut local = LocalState::default();
        group(&mut local, "keyward", 4242, &[]);
        record(&mut local, "keyward", "keyward_keyward", 4242);
        let p = plan(&config(), &iam(&["keyward_keyward"]), &local, 1);
        assert!(touched(&p).is_empty(), "{:#?}", p.actions);
    }

    #[test]
    fn m2_system_groups_are_filled_only_when_adopted() {
        let mut local = LocalState::default();
        group(&mut local, "docker", 999, &[]);
        // Even a record matching the GID (a host whose SYS_GID_MAX was raised) does not do.
        group(&mut local, "video", 44, &[]);
        record(&mut local, "video", "keyward_video", 44);
        let snap = iam(&["keyward_docker", "keyward_video"]);
        let p = plan(&config(), &snap, &local, 1);
        assert!(touched(&p).is_empty(), "{:#?}", p.actions);
        assert!(skipped_with_error(&p, "video").contains("system group"));

        let adopting = Config {
            adopt_groups: vec!["docker".into()],
            ..config()
        };
        let p = plan(&adopting, &snap, &local, 1);
        assert_eq!(touched(&p), ["docker"]);
    }

    #[test]
    fn m2_a_record_for_a_reserved_or_system_group_never_empties_or_deletes_it() {
        let cfg = config();
        let uid = crate::accounts::create::uid_for(&cfg, "AIDAALICE");
        let mut local = LocalState::default();
        // alice is keyward's and sits in `keyward` (made by an older keyward before install)
        // and in `video`; neither IAM group exists any more.
        local.users.insert(
            "alice".into(),
            LocalUser {
                name: "alice".into(),
                uid,
                gid: uid,
                expired: Some(false),
                last_change_day: Some(1),
            },
        );
        local.user_records.insert(
            "alice".into(),
            create::OwnershipRecord {
                iam_user: "alice".into(),
                iam_user_id: "AIDAALICE".into(),
                uid,
                created_at: 0,
            },
        );
        group(&mut local, "alice", uid, &[]);
        group(&mut local, "keyward", 4242, &["alice"]);
        record(&mut local, "keyward", "keyward_keyward", 4242);
        group(&mut local, "video", 44, &["alice"]);
        record(&mut local, "video", "keyward_video", 44);
        let p = plan(&cfg, &iam(&[]), &local, 1);
        assert!(touched(&p).is_empty(), "{:#?}", p.actions);
        assert!(skipped_with_error(&p, "keyward").contains("not touched"));
        assert!(skipped_with_error(&p, "video").contains("not touched"));
    }

    #[test]
    fn m2_a_new_group_never_gets_a_system_gid() {
        let cfg = config();
        let gid = ids::id_for(cfg.uid_scheme, "AGPAKEYWARD_DEV", cfg.uid_range);
        let local = LocalState {
            system_gids: SystemGids { max: gid },
            ..LocalState::default()
        };
        let p = plan(&cfg, &iam(&["keyward_dev"]), &local, 1);
        assert!(touched(&p).is_empty(), "{:#?}", p.actions);
        assert!(skipped_with_error(&p, "dev").contains("system GID"));
    }
}
