//! `keyward rename-keymaker`: gives keymaker's accounts the names keyward's mapping gives
//! their IAM users, so that `sync` can adopt them and their people keep logging in.
//!
//! keymaker named an account exactly like its IAM user (`Erin`, `dave@example.com`); keyward's
//! names are canonical (`_erin`, `dave_0example.com` under the escape mapping) because sshd's
//! user name must lead back to exactly one IAM user. Rather than bend the mapping, the account
//! is renamed: `groupmod -n` for its private group, then `usermod -l`; UID, GID, home
//! directory (its path too) and files stay as they are.
//!
//! It must never rename an account it cannot tie to one IAM identity: only keymaker's account
//! of an *allowed* IAM user qualifies (`plan::keymaker_account`: the IAM name, the UID
//! keymaker hashed from that user's UserId, and an IAM user created no later than the account,
//! or listed in `adopt_keymaker_user_ids`), never one keyward owns, never a reserved name,
//! and never onto a name an account or group already has (a group named like the target is
//! taken only for the account's own private group, renamed by a run that stopped half way). Pure decision (`plan`), thin
//! adapter (`Shadow`); running it twice changes nothing the second time.

use std::fmt;

use serde::Serialize;

use super::local::LocalState;
use super::plan::{keymaker_account, unproven_keymaker_account};
use super::read::IamSnapshot;
use crate::accounts::create::shadow;
use crate::accounts::ids::UidScheme;
use crate::config::Config;
use crate::process::{run, CommandError};

/// One account to rename, with its private group when it has one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rename {
    pub from: String,
    pub to: String,
    pub uid: u32,
    pub iam_user: String,
    pub iam_user_id: String,
    /// A group named `from` that is the account's primary group: renamed with it.
    pub private_group: bool,
}

impl fmt::Display for Rename {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rename user   {} to {} (uid {}, made by keymaker for IAM user {}; home and files kept){}",
            self.from,
            self.to,
            self.uid,
            self.iam_user,
            if self.private_group {
                ", and its group"
            } else {
                ""
            }
        )
    }
}

/// A keymaker account this command leaves alone, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refused {
    pub subject: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RenamePlan {
    pub renames: Vec<Rename>,
    pub refused: Vec<Refused>,
}

/// Why the command does nothing at all on this host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotMigrating {
    #[error("rename-keymaker renames only keymaker's accounts: set uid_scheme = \"keymaker\" and adopt_keymaker_accounts = true (see docs/keymaker-migration.md)")]
    NotKeymakerConfig,
}

/// The renames that give each allowed IAM user's keymaker account keyward's name for it.
pub fn plan(
    config: &Config,
    iam: &IamSnapshot,
    local: &LocalState,
) -> Result<RenamePlan, NotMigrating> {
    if config.uid_scheme != UidScheme::Keymaker || !config.adopt_keymaker_accounts {
        return Err(NotMigrating::NotKeymakerConfig);
    }
    let mut p = RenamePlan::default();
    for u in iam.allowed.values() {
        let Some((lu, evidence)) = keymaker_account(config, local, u) else {
            continue;
        };
        let refuse = |reason: String| Refused {
            subject: lu.name.clone(),
            reason,
        };
        let to = match config.name_mapping.to_linux(&u.name) {
            // Already keyward's name: sync adopts it, or says why not.
            Ok(to) if to == lu.name => continue,
            _ if evidence.is_err() => {
                if let Err(why) = evidence {
                    p.refused
                        .push(refuse(unproven_keymaker_account(lu, u, why)));
                }
                continue;
            }
            Ok(to) => to,
            Err(e) => {
                p.refused.push(refuse(format!(
                    "keyward's name_mapping cannot name IAM user {}: {e} (name_mapping = \"escape\" can)",
                    u.name
                )));
                continue;
            }
        };
        if config.is_reserved(&to) {
            p.refused
                .push(refuse(format!("{to} is a reserved name: not renamed")));
        } else if local.users.contains_key(&to) {
            p.refused.push(refuse(format!(
                "an account named {to} exists already: not renamed (find out whose it is first)"
            )));
        } else if local
            .groups
            .get(&to)
            .is_some_and(|g| !is_half_renamed_private_group(config, local, g, &lu.name, lu.gid))
        {
            p.refused.push(refuse(format!(
                "a group named {to} exists already: not renamed"
            )));
        } else {
            p.renames.push(Rename {
                from: lu.name.clone(),
                to,
                uid: lu.uid,
                iam_user: u.name.clone(),
                iam_user_id: u.id.clone(),
                private_group: local.groups.get(&lu.name).is_some_and(|g| g.gid == lu.gid),
            });
        }
    }
    p.renames.sort_by(|a, b| a.from.cmp(&b.from));
    p.refused.sort_by(|a, b| a.subject.cmp(&b.subject));
    Ok(p)
}

/// Whether group `g` (named like the rename's target) is account `from`'s private group, renamed
/// by a run that stopped before `usermod -l`: only the account is left to rename then. It has
/// the account's GID, keyward does not manage it (a group keyward made or adopted for an IAM
/// group is never someone's private group), and no group is still named `from` (else `g` is
/// another group that happens to share the GID).
fn is_half_renamed_private_group(
    config: &Config,
    local: &LocalState,
    g: &super::local::LocalGroup,
    from: &str,
    gid: u32,
) -> bool {
    g.gid == gid
        && !local.group_records.contains_key(&g.name)
        && !config.adopt_groups.contains(&g.name)
        && !local.groups.contains_key(from)
}

/// The account database as renames change it.
pub trait Renamer {
    fn rename_group(&mut self, from: &str, to: &str) -> Result<(), CommandError>;
    fn rename_user(&mut self, from: &str, to: &str) -> Result<(), CommandError>;
}

/// shadow-utils by absolute path: `groupmod -n` and `usermod -l` (which also renames the
/// account in /etc/group's and /etc/gshadow's member lists).
pub struct Shadow;

impl Renamer for Shadow {
    fn rename_group(&mut self, from: &str, to: &str) -> Result<(), CommandError> {
        run(shadow("groupmod").args(["-n", to, "--", from])).map(drop)
    }

    fn rename_user(&mut self, from: &str, to: &str) -> Result<(), CommandError> {
        run(shadow("usermod").args(["-l", to, "--", from])).map(drop)
    }
}

/// Carries out each rename, the group first: a run stopped in between leaves the account under
/// its keymaker name with its group renamed, which the next run finishes (the group is no
/// longer named like the account, so only `usermod -l` is left). Returns the failures.
pub fn apply(p: &RenamePlan, renamer: &mut dyn Renamer) -> Vec<(Rename, CommandError)> {
    let mut failed = Vec::new();
    for r in &p.renames {
        let done = if r.private_group {
            renamer.rename_group(&r.from, &r.to)
        } else {
            Ok(())
        }
        .and_then(|()| renamer.rename_user(&r.from, &r.to));
        match done {
            Ok(()) => tracing::info!(
                linux_user = crate::logging::untrusted(&r.to),
                iam_user = crate::logging::untrusted(&r.iam_user),
                "{r}"
            ),
            Err(e) => failed.push((r.clone(), e)),
        }
    }
    failed
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::accounts::ids;
    use crate::accounts::names::NameMapping;
    use crate::sync::local::{LocalGroup, LocalUser};
    use crate::sync::read::IamUser;

    use crate::sync::read::fake::CREATED_AT;

    /// The day each account here was made: after its IAM user's CreateDate.
    const ACCOUNT_DAY: u64 = CREATED_AT / 86_400 + 30;

    fn config() -> Config {
        Config {
            allowed_groups: vec!["ops".into()],
            uid_scheme: UidScheme::Keymaker,
            adopt_keymaker_accounts: true,
            name_mapping: NameMapping::Escape,
            ..Config::default()
        }
    }

    fn uid(id: &str) -> u32 {
        ids::id_for(UidScheme::Keymaker, id, Config::default().uid_range)
    }

    fn host(accounts: &[(&str, u32)]) -> LocalState {
        let mut s = LocalState::default();
        for (name, uid) in accounts {
            s.users.insert(
                name.to_string(),
                LocalUser {
                    name: name.to_string(),
                    uid: *uid,
                    gid: *uid,
                    expired: Some(false),
                    last_change_day: Some(ACCOUNT_DAY),
                },
            );
            s.groups.insert(
                name.to_string(),
                LocalGroup {
                    name: name.to_string(),
                    gid: *uid,
                    members: vec![],
                },
            );
        }
        s
    }

    fn iam(users: &[(&str, &str)]) -> IamSnapshot {
        IamSnapshot {
            allowed: users
                .iter()
                .map(|(n, id)| {
                    (
                        id.to_string(),
                        IamUser {
                            name: n.to_string(),
                            id: id.to_string(),
                            created_at: Some(CREATED_AT),
                        },
                    )
                })
                .collect(),
            ..IamSnapshot::default()
        }
    }

    fn missing(program: &str) -> CommandError {
        CommandError::Spawn {
            program: program.into(),
            source: std::io::Error::other("no such account or group"),
        }
    }

    /// Applies renames to the in-memory state, recording the commands.
    #[derive(Default)]
    struct Fake {
        state: LocalState,
        commands: Vec<String>,
    }

    impl Renamer for Fake {
        fn rename_group(&mut self, from: &str, to: &str) -> Result<(), CommandError> {
            let mut g = self
                .state
                .groups
                .remove(from)
                .ok_or_else(|| missing("groupmod"))?;
            g.name = to.into();
            self.state.groups.insert(to.into(), g);
            self.commands.push(format!("groupmod -n {to} {from}"));
            Ok(())
        }

        fn rename_user(&mut self, from: &str, to: &str) -> Result<(), CommandError> {
            let mut u = self
                .state
                .users
                .remove(from)
                .ok_or_else(|| missing("usermod"))?;
            u.name = to.into();
            self.state.users.insert(to.into(), u);
            self.commands.push(format!("usermod -l {to} {from}"));
            Ok(())
        }
    }

    #[test]
    fn k1_keymaker_accounts_get_keywards_names_uid_kept_and_a_second_run_does_nothing() {
        let erin = uid("AIDAERIN0000000000001");
        let dave = uid("AIDADAVE0000000000001");
        let alice = uid("AIDAALICE000000000001");
        let local = host(&[("Erin", erin), ("dave@example.com", dave), ("alice", alice)]);
        let snap = iam(&[
            ("Erin", "AIDAERIN0000000000001"),
            ("dave@example.com", "AIDADAVE0000000000001"),
            ("alice", "AIDAALICE000000000001"),
        ]);
        let p = plan(&config(), &snap, &local).unwrap();
        let shown: Vec<String> = p.renames.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                format!("rename user   Erin to _erin (uid {erin}, made by keymaker for IAM user Erin; home and files kept), and its group"),
                format!("rename user   dave@example.com to dave_0example.com (uid {dave}, made by keymaker for IAM user dave@example.com; home and files kept), and its group"),
            ]
        );
        let mut fake = Fake {
            state: local,
            ..Fake::default()
        };
        assert!(apply(&p, &mut fake).is_empty());
        assert_eq!(fake.state.users["_erin"].uid, erin);
        assert_eq!(fake.state.groups["_erin"].gid, erin);
        assert_eq!(
            fake.commands[..2],
            ["groupmod -n _erin Erin", "usermod -l _erin Erin"]
        );
        let again = plan(&config(), &snap, &fake.state).unwrap();
        assert_eq!(again, RenamePlan::default());
        // And sync now adopts them under keyward's names.
        let sync = crate::sync::plan::plan(&config(), &snap, &fake.state, 1);
        assert_eq!(sync.count("adopt_user"), 3, "{sync:#?}");
    }

    #[test]
    fn k1_a_rename_stopped_after_groupmod_is_finished_by_the_next_run() {
        let erin = uid("AIDAERIN0000000000001");
        let mut local = host(&[("Erin", erin)]);
        // The last run renamed the private group, then stopped before usermod.
        let mut g = local.groups.remove("Erin").unwrap();
        g.name = "_erin".into();
        local.groups.insert("_erin".into(), g);
        let snap = iam(&[("Erin", "AIDAERIN0000000000001")]);
        let p = plan(&config(), &snap, &local).unwrap();
        assert_eq!(p.refused, []);
        assert_eq!(p.renames.len(), 1);
        assert!(!p.renames[0].private_group);
        let mut fake = Fake {
            state: local,
            ..Fake::default()
        };
        assert!(apply(&p, &mut fake).is_empty());
        assert_eq!(fake.commands, ["usermod -l _erin Erin"]);
        assert_eq!(
            plan(&config(), &snap, &fake.state).unwrap(),
            RenamePlan::default()
        );
    }

    #[test]
    fn k1_a_group_with_the_target_name_but_another_gid_still_refuses() {
        let erin = uid("AIDAERIN0000000000001");
        let mut local = host(&[("Erin", erin)]);
        local.groups.insert(
            "_erin".into(),
            LocalGroup {
                name: "_erin".into(),
                gid: 4321,
                members: vec![],
            },
        );
        let snap = iam(&[("Erin", "AIDAERIN0000000000001")]);
        let p = plan(&config(), &snap, &local).unwrap();
        assert_eq!(p.renames, []);
        assert_eq!(p.refused.len(), 1);
        assert!(p.refused[0]
            .reason
            .contains("a group named _erin exists already"));
    }

    #[test]
    fn c2_only_accounts_tied_to_an_allowed_iam_identity_are_renamed() {
        let local = host(&[
            // Another identity's UID (IAM user re-created), a stranger, a reserved name.
            ("Erin", uid("AIDAERINOLD0000000001")),
            ("Frank", 4242),
            ("Root", uid("AIDAROOT0000000000001")),
        ]);
        let mut cfg = config();
        cfg.reserved_users = vec!["Root".into()];
        let snap = iam(&[
            ("Erin", "AIDAERIN0000000000001"),
            ("Frank", "AIDAFRANK000000000001"),
            ("Root", "AIDAROOT0000000000001"),
        ]);
        assert_eq!(plan(&cfg, &snap, &local).unwrap(), RenamePlan::default());
        // Not allowed (absent from the snapshot's allowed users): not renamed either.
        let local = host(&[("Gina", uid("AIDAGINA0000000000001"))]);
        assert_eq!(
            plan(&cfg, &iam(&[]), &local).unwrap(),
            RenamePlan::default()
        );
    }

    #[test]
    fn c2_a_userid_ground_to_keymakers_uid_does_not_rename_an_older_account() {
        // Erin left; her account stays. A new IAM user `Erin` was created (and deleted and
        // created again) until its UserId hashed to her account's UID, a year after it was made.
        let ground = "AIDAGROUND0000000001";
        let local = host(&[("Erin", uid(ground))]);
        let mut snap = iam(&[("Erin", ground)]);
        let later = (ACCOUNT_DAY + 365) * 86_400;
        snap.allowed.get_mut(ground).unwrap().created_at = Some(later);
        let p = plan(&config(), &snap, &local).unwrap();
        assert_eq!(p.renames, []);
        assert_eq!(p.refused.len(), 1, "{p:#?}");
        assert_eq!(p.refused[0].subject, "Erin");
        let reason = &p.refused[0].reason;
        for part in [
            "IAM user Erin was created on 2021-10-13, after the account (2020-10-13",
            "not renamed or adopted",
            &format!("adopt_keymaker_user_ids = [\"{ground}\"]"),
        ] {
            assert!(reason.contains(part), "{part:?} not in {reason}");
        }

        // No CreateDate, or no day in /etc/shadow: no evidence, no rename.
        snap.allowed.get_mut(ground).unwrap().created_at = None;
        let p = plan(&config(), &snap, &local).unwrap();
        assert_eq!((p.renames.len(), p.refused.len()), (0, 1), "{p:#?}");
        assert!(p.refused[0].reason.contains("no CreateDate"), "{p:#?}");
        snap.allowed.get_mut(ground).unwrap().created_at = Some(CREATED_AT);
        let mut undated = local.clone();
        undated.users.get_mut("Erin").unwrap().last_change_day = None;
        let p = plan(&config(), &snap, &undated).unwrap();
        assert_eq!((p.renames.len(), p.refused.len()), (0, 1), "{p:#?}");
        assert!(p.refused[0].reason.contains("last-change"), "{p:#?}");

        // The admin who checked who it is adopts it deliberately, by UserId.
        snap.allowed.get_mut(ground).unwrap().created_at = Some(later);
        let cfg = Config {
            adopt_keymaker_user_ids: vec![ground.into()],
            ..config()
        };
        let p = plan(&cfg, &snap, &local).unwrap();
        assert_eq!((p.renames.len(), p.refused.len()), (1, 0), "{p:#?}");
    }

    #[test]
    fn k1_a_keyward_managed_group_with_the_accounts_gid_is_not_taken_for_a_half_rename() {
        let erin = uid("AIDAERIN0000000000001");
        let snap = iam(&[("Erin", "AIDAERIN0000000000001")]);
        // A group `_erin` with Erin's GID that keyward manages (made for IAM group
        // keymaker__erin): not Erin's private group renamed by a stopped run.
        let mut local = host(&[("Erin", erin)]);
        let mut g = local.groups.remove("Erin").unwrap();
        g.name = "_erin".into();
        local.groups.insert("_erin".into(), g);
        local.group_records.insert(
            "_erin".into(),
            crate::sync::local::GroupRecord {
                iam_group: "keymaker__erin".into(),
                iam_group_id: "AGPAERIN".into(),
                gid: erin,
                created_at: 0,
            },
        );
        let p = plan(&config(), &snap, &local).unwrap();
        assert_eq!(p.renames, []);
        assert_eq!(p.refused.len(), 1, "{p:#?}");
        assert!(
            p.refused[0]
                .reason
                .contains("a group named _erin exists already"),
            "{p:#?}"
        );

        // Nor while a group named like the account is still there (the stop was not after
        // groupmod: two groups share the GID).
        let mut local = host(&[("Erin", erin)]);
        local.groups.insert(
            "_erin".into(),
            LocalGroup {
                name: "_erin".into(),
                gid: erin,
                members: vec![],
            },
        );
        let p = plan(&config(), &snap, &local).unwrap();
        assert_eq!(p.renames, []);
        assert_eq!(p.refused.len(), 1, "{p:#?}");
    }

    #[test]
    fn a_taken_target_name_is_refused_with_the_reason() {
        let erin = uid("AIDAERIN0000000000001");
        let local = host(&[("Erin", erin), ("_erin", 1500)]);
        let p = plan(
            &config(),
            &iam(&[("Erin", "AIDAERIN0000000000001")]),
            &local,
        )
        .unwrap();
        assert!(p.renames.is_empty());
        assert_eq!(p.refused[0].subject, "Erin");
        assert!(p.refused[0].reason.contains("_erin exists already"));
    }

    #[test]
    fn identity_mapping_cannot_name_them_and_says_which_mapping_can() {
        let cfg = Config {
            name_mapping: NameMapping::Identity {
                suffix: String::new(),
            },
            ..config()
        };
        let local = host(&[("Erin", uid("AIDAERIN0000000000001"))]);
        let p = plan(&cfg, &iam(&[("Erin", "AIDAERIN0000000000001")]), &local).unwrap();
        assert!(p.renames.is_empty());
        assert!(p.refused[0].reason.contains("name_mapping = \"escape\""));
    }

    #[test]
    fn without_keymaker_adoption_nothing_is_renamed() {
        let cfg = Config {
            adopt_keymaker_accounts: false,
            ..config()
        };
        assert_eq!(
            plan(&cfg, &IamSnapshot::default(), &LocalState::default()),
            Err(NotMigrating::NotKeymakerConfig)
        );
    }
}
