//! Sync's safety rules, over in-memory IAM snapshots and an in-memory account database that
//! records every command.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeMap;
use std::time::Duration;

use super::apply::{apply, fake::FakeAccounts};
use super::local::{LocalGroup, LocalState, LocalUser, LockRecord};
use super::plan::{plan, Action, Plan};
use super::read::fake::CREATED_AT;
use super::read::{IamGroup, IamSnapshot, IamUser};
use crate::accounts::create::{uid_for, OwnershipRecord};
use crate::accounts::ids::{self, IdRange, UidScheme};
use crate::config::Config;

const DAY: u64 = 86_400;
const T0: u64 = 1_800_000_000;
/// The day every local account in these tests was made (/etc/shadow's last change): after
/// its IAM user's CreateDate (`CREATED_AT`), before `T0`.
const ACCOUNT_DAY: u64 = T0 / DAY - 100;

fn config() -> Config {
    Config {
        allowed_groups: vec!["ops".into()],
        sudo_groups: vec!["admins".into()],
        ..Config::default()
    }
}

fn user(name: &str) -> IamUser {
    IamUser {
        name: name.into(),
        id: format!("AIDA{}", name.to_uppercase()),
        created_at: Some(CREATED_AT),
    }
}

/// IAM: `allowed` users are in ops; `groups` are prefixed groups (name, members).
fn iam(allowed: &[&str], groups: &[(&str, &[&str])], sudo: &[&str]) -> IamSnapshot {
    IamSnapshot {
        allowed: allowed.iter().map(|n| (user(n).id, user(n))).collect(),
        prefixed: groups
            .iter()
            .map(|(name, members)| {
                (
                    name.to_string(),
                    IamGroup {
                        name: name.to_string(),
                        id: format!("AGPA{}", name.to_uppercase()),
                        members: members.iter().map(|m| user(m)).collect(),
                    },
                )
            })
            .collect(),
        sudoers: sudo.iter().map(|n| user(n).id).collect(),
        others: BTreeMap::new(),
    }
}

/// A host with root, an AMI admin (in sudo) and docker, nothing of keyward's.
fn host() -> LocalState {
    let mut s = LocalState::default();
    for (name, uid) in [("root", 0), ("admin", 1000)] {
        local_user(&mut s, name, uid);
    }
    for (name, gid, members) in [
        ("root", 0, vec![]),
        ("admin", 1000, vec![]),
        ("sudo", 27, vec!["admin".to_string()]),
        ("docker", 999, vec![]),
    ] {
        local_group(&mut s, name, gid, members);
    }
    s
}

/// An unexpired local account whose primary GID is its UID.
fn local_user(s: &mut LocalState, name: &str, uid: u32) {
    s.users.insert(
        name.into(),
        LocalUser {
            name: name.into(),
            uid,
            gid: uid,
            expired: Some(false),
            last_change_day: Some(ACCOUNT_DAY),
        },
    );
}

fn local_group(s: &mut LocalState, name: &str, gid: u32, members: Vec<String>) {
    s.groups.insert(
        name.into(),
        LocalGroup {
            name: name.into(),
            gid,
            members,
        },
    );
}

/// Plans and applies against the fake; returns the plan.
fn sync(config: &Config, iam: &IamSnapshot, db: &mut FakeAccounts, now: u64) -> Plan {
    let p = plan(config, iam, &db.state, now);
    if p.refused.is_none() {
        let out = apply(&p, db, now);
        assert!(out.failed.is_empty(), "{:?}", out.failed);
    }
    p
}

fn names(p: &Plan, action: &str) -> Vec<String> {
    p.actions
        .iter()
        .filter(|a| a.name() == action)
        .map(|a| {
            let (u, _, g) = a.subjects();
            match (u, g) {
                (Some(u), Some(g)) => format!("{u}@{g}"),
                (Some(u), None) => u.to_string(),
                (None, Some(g)) => g.to_string(),
                (None, None) => String::new(),
            }
        })
        .collect()
}

/// The groups each new account joins in its own useradd, as "user@group".
fn joins(p: &Plan) -> Vec<String> {
    p.actions
        .iter()
        .filter_map(|a| match a {
            Action::CreateUser { account, .. } => Some(
                account
                    .groups
                    .iter()
                    .map(|g| format!("{}@{g}", account.linux_name))
                    .collect::<Vec<_>>(),
            ),
            _ => None,
        })
        .flatten()
        .collect()
}

fn with_keyward_accounts(cfg: &Config, people: &[&str], now: u64) -> FakeAccounts {
    let mut db = FakeAccounts::new(host());
    sync(cfg, &iam(people, &[], &[]), &mut db, now);
    db
}

#[test]
fn first_run_creates_groups_accounts_memberships_and_sudoers_then_second_run_does_nothing() {
    let cfg = config();
    let snap = iam(
        &["alice", "bob"],
        &[("keyward_dev", &["alice", "bob", "stranger"])],
        &["alice"],
    );
    let mut db = FakeAccounts::new(host());
    let p = sync(&cfg, &snap, &mut db, T0);
    assert_eq!(names(&p, "create_group"), ["dev"]);
    assert_eq!(names(&p, "create_user"), ["alice", "bob"]);
    assert_eq!(joins(&p), ["alice@dev", "bob@dev"]);
    assert!(names(&p, "add_member").is_empty());
    assert_eq!(names(&p, "write_sudoers"), [""]);
    assert_eq!(db.state.groups["dev"].members, ["alice", "bob"]);
    let alice = &db.state.users["alice"];
    assert_eq!(alice.uid, uid_for(&cfg, "AIDAALICE"));
    assert_eq!(
        db.state.groups["dev"].gid,
        ids::id_for(cfg.uid_scheme, "AGPAKEYWARD_DEV", cfg.uid_range)
    );
    let sudoers = db.state.sudoers.clone().unwrap();
    assert!(
        sudoers.contains("\nalice ALL=(ALL) NOPASSWD:ALL\n"),
        "{sudoers}"
    );
    assert!(!sudoers.contains("bob"), "{sudoers}");

    let commands = db.commands.len();
    let again = sync(&cfg, &snap, &mut db, T0 + 3600);
    assert_eq!(again, Plan::default(), "no IAM change must plan nothing");
    assert_eq!(db.commands.len(), commands, "second run ran commands");
}

#[test]
fn actions_come_in_the_documented_phase_order() {
    let mut cfg = config();
    cfg.delete_after = Some(Duration::from_secs(DAY));
    let mut db = with_keyward_accounts(&cfg, &["alice", "bob", "carol", "dave"], T0);
    // carol leaves (lock), bob was locked two days ago (delete), dave comes back (unlock).
    sync(
        &cfg,
        &iam(&["alice", "carol"], &[("keyward_old", &["alice"])], &[]),
        &mut db,
        T0,
    );
    sync(
        &cfg,
        &iam(&["alice", "carol"], &[("keyward_old", &["alice"])], &[]),
        &mut db,
        T0,
    );
    let p = plan(
        &cfg,
        &iam(
            &["alice", "dave", "eve"],
            &[("keyward_new", &["alice", "eve"])],
            &["eve"],
        ),
        &db.state,
        T0 + 2 * DAY,
    );
    let order: Vec<&str> = p.actions.iter().map(Action::name).collect();
    assert_eq!(
        order,
        [
            "create_group",
            "create_user",
            "add_member",
            "unlock",
            "lock",
            "remove_member",
            "delete_group",
            "delete_user",
            "write_sudoers"
        ]
    );
}

#[test]
fn removed_user_is_locked_dropped_from_groups_and_sudo_but_not_deleted() {
    let cfg = config();
    let mut db = FakeAccounts::new(host());
    let dev: &[&str] = &["alice", "bob"];
    sync(
        &cfg,
        &iam(
            &["alice", "bob"],
            &[("keyward_dev", dev)],
            &["alice", "bob"],
        ),
        &mut db,
        T0,
    );
    // bob is removed from ops (still in keyward_dev and admins in IAM).
    let p = sync(
        &cfg,
        &iam(&["alice"], &[("keyward_dev", dev)], &["alice", "bob"]),
        &mut db,
        T0 + 10,
    );
    assert_eq!(names(&p, "lock"), ["bob"]);
    assert_eq!(names(&p, "remove_member"), ["bob@dev"]);
    assert!(!db.state.sudoers.clone().unwrap().contains("bob"));
    assert_eq!(db.state.users["bob"].expired, Some(true));
    assert_eq!(db.state.locks["bob"], LockRecord { locked_at: T0 + 10 });
    // Years later, with delete_after unset: still there, still locked, nothing to do.
    let later = plan(
        &cfg,
        &iam(&["alice"], &[("keyward_dev", dev)], &["alice"]),
        &db.state,
        T0 + 3000 * DAY,
    );
    assert!(later.actions.is_empty(), "{:?}", later.actions);
    assert!(db.state.users.contains_key("bob"));
}

#[test]
fn locked_account_is_deleted_only_after_delete_after() {
    let mut cfg = config();
    cfg.delete_after = Some(Duration::from_secs(30 * DAY));
    cfg.remove_home = true;
    let mut db = with_keyward_accounts(&cfg, &["alice", "bob"], T0);
    let only_alice = iam(&["alice"], &[], &[]);
    sync(&cfg, &only_alice, &mut db, T0 + DAY);
    assert!(plan(&cfg, &only_alice, &db.state, T0 + 31 * DAY - 1)
        .actions
        .is_empty());
    let p = sync(&cfg, &only_alice, &mut db, T0 + 31 * DAY);
    assert_eq!(
        p.actions,
        [Action::DeleteUser {
            linux_user: "bob".into(),
            iam_user: "bob".into(),
            remove_home: true,
            private_group: true,
        }]
    );
    assert!(!db.state.users.contains_key("bob") && !db.state.groups.contains_key("bob"));
    assert!(!db.state.user_records.contains_key("bob") && !db.state.locks.contains_key("bob"));
    assert_eq!(db.commands.last().unwrap(), "userdel --remove bob");
}

#[test]
fn user_allowed_again_is_unlocked_not_recreated() {
    let cfg = config();
    let mut db = with_keyward_accounts(&cfg, &["alice", "bob"], T0);
    sync(&cfg, &iam(&["alice"], &[], &[]), &mut db, T0 + 1);
    let uid = db.state.users["bob"].uid;
    let p = sync(&cfg, &iam(&["alice", "bob"], &[], &[]), &mut db, T0 + 2);
    assert_eq!(
        p.actions,
        [Action::Unlock {
            linux_user: "bob".into(),
            iam_user: "bob".into()
        }]
    );
    assert_eq!(db.state.users["bob"].uid, uid);
    assert_eq!(db.state.users["bob"].expired, Some(false));
    assert!(db.state.locks.is_empty());
}

#[test]
fn a_lock_record_whose_lock_did_not_happen_is_locked_again() {
    let cfg = config();
    let mut db = with_keyward_accounts(&cfg, &["alice", "bob"], T0);
    // A run killed between writing bob's lock record and usermod --lock.
    db.state
        .locks
        .insert("bob".into(), LockRecord { locked_at: T0 });
    let p = plan(&cfg, &iam(&["alice"], &[], &[]), &db.state, T0 + 5);
    assert_eq!(names(&p, "lock"), ["bob"]);
}

#[test]
fn mass_removal_is_refused_and_nothing_applied_without_force() {
    let mut cfg = config();
    cfg.max_removals = 2;
    let people = ["a1", "a2", "a3", "a4", "a5"];
    let mut db = with_keyward_accounts(&cfg, &people, T0);
    let commands = db.commands.len();
    let p = sync(&cfg, &iam(&["a1", "a2"], &[], &[]), &mut db, T0 + 1);
    assert_eq!(p.removals(), 3);
    let why = p.refused.clone().unwrap();
    assert!(
        why.contains("max_removals = 2") && why.contains("--force"),
        "{why}"
    );
    assert_eq!(
        db.commands.len(),
        commands,
        "a refused plan applied something"
    );
    // Within the limit it goes through.
    let p = sync(&cfg, &iam(&["a1", "a2", "a3"], &[], &[]), &mut db, T0 + 2);
    assert_eq!((p.refused.clone(), p.removals()), (None, 2));
}

#[test]
fn locking_every_managed_account_at_once_is_refused_even_under_max_removals() {
    let cfg = config();
    let mut db = with_keyward_accounts(&cfg, &["alice", "bob", "carol"], T0);
    // The signature of an accident: allowed group renamed, emptied, or mistyped.
    let p = sync(&cfg, &iam(&[], &[], &[]), &mut db, T0 + 1);
    assert!(p.refused.unwrap().contains("every one of the 3 accounts"));
    assert!(db.state.locks.is_empty());
    // One person on a one-person host may leave.
    let mut one = with_keyward_accounts(&cfg, &["alice"], T0);
    let p = sync(&cfg, &iam(&[], &[], &[]), &mut one, T0 + 1);
    assert_eq!(
        (p.refused.clone(), names(&p, "lock")),
        (None, vec!["alice".to_string()])
    );
}

#[test]
fn local_accounts_keyward_did_not_create_are_never_touched() {
    let cfg = config();
    let mut local = host();
    local.users.insert(
        "mallory".into(),
        LocalUser {
            name: "mallory".into(),
            uid: 1001,
            gid: 1001,
            expired: Some(false),
            last_change_day: Some(ACCOUNT_DAY),
        },
    );
    local
        .groups
        .get_mut("sudo")
        .unwrap()
        .members
        .push("mallory".into());
    let mut db = FakeAccounts::new(local);
    // IAM users named like the AMI admin and a hand-made account, in a group and sudo.
    let snap = iam(
        &["admin", "mallory", "root"],
        &[("keyward_dev", &["admin", "mallory"])],
        &["admin", "mallory"],
    );
    let p = sync(&cfg, &snap, &mut db, T0);
    for a in &p.actions {
        let (u, _, _) = a.subjects();
        assert!(!matches!(u, Some("admin" | "mallory" | "root")), "{a}");
    }
    assert!(db.state.sudoers.is_none());
    let skipped: Vec<&str> = p.skipped.iter().map(|s| s.subject.as_str()).collect();
    assert_eq!(skipped, ["admin", "mallory", "root"]);
    assert!(p.skipped[2].reason.contains("reserved"));
    // Gone from IAM: still never locked.
    let p = sync(
        &cfg,
        &iam(&[], &[("keyward_dev", &[])], &[]),
        &mut db,
        T0 + 1,
    );
    assert!(p.actions.is_empty(), "{:?}", p.actions);
    assert_eq!(db.state.groups["sudo"].members, ["admin", "mallory"]);
}

#[test]
fn a_record_for_an_account_recreated_by_hand_does_not_make_it_keywards() {
    let cfg = config();
    let mut db = with_keyward_accounts(&cfg, &["alice", "bob"], T0);
    // Someone deleted bob and made a bob of their own; the old record stayed.
    db.state.users.get_mut("bob").unwrap().uid = 1234;
    let p = plan(&cfg, &iam(&["alice"], &[], &[]), &db.state, T0 + 1);
    assert!(p.actions.is_empty(), "{:?}", p.actions);
    assert!(p.skipped[0].reason.contains("not keyward's any more"));
}

#[test]
fn prefixed_group_named_like_an_unowned_local_group_is_refused() {
    let cfg = config();
    let mut db = FakeAccounts::new(host());
    let p = sync(
        &cfg,
        &iam(
            &["alice"],
            &[("keyward_sudo", &["alice"]), ("keyward_dev", &["alice"])],
            &[],
        ),
        &mut db,
        T0,
    );
    assert_eq!(joins(&p), ["alice@dev"]);
    let refusal = p.skipped.iter().find(|s| s.subject == "sudo").unwrap();
    assert!(
        refusal.error && refusal.reason.contains("adopt_groups"),
        "{refusal:?}"
    );
    assert_eq!(db.state.groups["sudo"].members, ["admin"]);
    assert!(p.has_errors());
}

#[test]
fn adopted_group_manages_only_keywards_members_and_is_never_deleted() {
    let mut cfg = config();
    cfg.adopt_groups = vec!["sudo".into()];
    let mut db = with_keyward_accounts(&cfg, &["alice", "bob"], T0);
    let p = sync(
        &cfg,
        &iam(
            &["alice", "bob"],
            &[("keyward_sudo", &["alice", "bob", "admin"])],
            &[],
        ),
        &mut db,
        T0 + 1,
    );
    assert_eq!(names(&p, "add_member"), ["alice@sudo", "bob@sudo"]);
    // bob leaves the IAM group, admin (not keyward's) is not in it at all.
    let p = sync(
        &cfg,
        &iam(&["alice", "bob"], &[("keyward_sudo", &["alice"])], &[]),
        &mut db,
        T0 + 2,
    );
    assert_eq!(names(&p, "remove_member"), ["bob@sudo"]);
    assert_eq!(db.state.groups["sudo"].members, ["admin", "alice"]);
    // The IAM group is deleted: keyward's members leave, the group and admin stay.
    let p = sync(&cfg, &iam(&["alice", "bob"], &[], &[]), &mut db, T0 + 3);
    assert_eq!(names(&p, "remove_member"), ["alice@sudo"]);
    assert!(names(&p, "delete_group").is_empty());
    assert_eq!(db.state.groups["sudo"].members, ["admin"]);
}

#[test]
fn deleted_iam_group_empties_and_removes_only_keywards_group() {
    let cfg = config();
    let mut db = with_keyward_accounts(&cfg, &["alice"], T0);
    sync(
        &cfg,
        &iam(&["alice"], &[("keyward_dev", &["alice"])], &[]),
        &mut db,
        T0 + 1,
    );
    db.state
        .groups
        .get_mut("dev")
        .unwrap()
        .members
        .push("admin".into());
    let p = sync(&cfg, &iam(&["alice"], &[], &[]), &mut db, T0 + 2);
    assert_eq!(names(&p, "remove_member"), ["alice@dev"]);
    assert_eq!(names(&p, "delete_group"), ["dev"]);
    assert!(!db.state.groups.contains_key("dev") && db.state.group_records.is_empty());
    // A group with the same name keyward did not make is left alone.
    assert!(db.state.groups.contains_key("docker"));
}

#[test]
fn renamed_iam_group_is_removed_and_made_again_under_its_new_name() {
    let cfg = config();
    let mut db = with_keyward_accounts(&cfg, &["alice"], T0);
    sync(
        &cfg,
        &iam(&["alice"], &[("keyward_dev", &["alice"])], &[]),
        &mut db,
        T0 + 1,
    );
    let gid = db.state.groups["dev"].gid;
    // Same GroupId, new name: the GID is held by the old group until it is deleted.
    let mut renamed = iam(&["alice"], &[("keyward_devs", &["alice"])], &[]);
    renamed.prefixed.get_mut("keyward_devs").unwrap().id = "AGPAKEYWARD_DEV".into();
    let p = sync(&cfg, &renamed, &mut db, T0 + 2);
    assert_eq!(names(&p, "delete_group"), ["dev"]);
    assert!(p
        .skipped
        .iter()
        .any(|s| s.subject == "devs" && s.reason.contains("GID")));
    let p = sync(&cfg, &renamed, &mut db, T0 + 3);
    assert_eq!(names(&p, "create_group"), ["devs"]);
    assert_eq!(db.state.groups["devs"].gid, gid);
    assert_eq!(db.state.groups["devs"].members, ["alice"]);
}

/// Two IAM ids whose hashes collide in `range`.
fn colliding_ids(prefix: &str, range: IdRange) -> (String, String) {
    let mut seen: BTreeMap<u32, String> = BTreeMap::new();
    for n in 0.. {
        let id = format!("{prefix}{n:05}");
        let h = ids::id_for(UidScheme::Hash, &id, range);
        if let Some(first) = seen.insert(h, id.clone()) {
            return (first, id);
        }
    }
    unreachable!()
}

#[test]
fn two_iam_users_with_one_uid_create_only_the_smaller_id_and_name_both() {
    let mut cfg = config();
    cfg.uid_range = IdRange::new(70_000, 70_050).unwrap();
    let (a, b) = colliding_ids("AIDA", cfg.uid_range);
    let (small, large) = if a < b { (a, b) } else { (b, a) };
    let mut snap = iam(&[], &[], &[]);
    for (name, id) in [("x", &large), ("y", &small), ("z", &"AIDAZ".to_string())] {
        snap.allowed.insert(
            id.clone(),
            IamUser {
                name: name.into(),
                id: id.clone(),
                created_at: Some(CREATED_AT),
            },
        );
    }
    let p = plan(&cfg, &snap, &host(), T0);
    let created = names(&p, "create_user");
    assert!(
        created.contains(&"y".to_string()) && !created.contains(&"x".to_string()),
        "{created:?}"
    );
    let err = p.skipped.iter().find(|s| s.subject == "x").unwrap();
    assert!(
        err.error && err.reason.contains(&small) && err.reason.contains(&large),
        "{err:?}"
    );
}

#[test]
fn uid_or_gid_held_by_someone_else_is_never_reused() {
    let cfg = config();
    let mut local = host();
    let uid = uid_for(&cfg, "AIDABOB");
    local.users.insert(
        "squatter".into(),
        LocalUser {
            name: "squatter".into(),
            uid,
            gid: 100,
            expired: None,
            last_change_day: Some(ACCOUNT_DAY),
        },
    );
    let gid = ids::id_for(cfg.uid_scheme, "AGPAKEYWARD_DEV", cfg.uid_range);
    local.groups.insert(
        "squat".into(),
        LocalGroup {
            name: "squat".into(),
            gid,
            members: vec![],
        },
    );
    let p = plan(
        &cfg,
        &iam(&["alice", "bob"], &[("keyward_dev", &["alice"])], &[]),
        &local,
        T0,
    );
    assert_eq!(names(&p, "create_user"), ["alice"]);
    assert!(names(&p, "create_group").is_empty());
    let reasons: Vec<String> = p
        .skipped
        .iter()
        .map(|s| format!("{}: {}", s.subject, s.reason))
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("bob:") && r.contains("squatter")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("dev:") && r.contains("squat")),
        "{reasons:?}"
    );
}

#[test]
fn iam_user_recreated_under_the_same_name_does_not_inherit_the_account() {
    let cfg = config();
    let mut db = with_keyward_accounts(&cfg, &["alice", "bob"], T0);
    let mut snap = iam(&["alice"], &[], &[]);
    let new_bob = IamUser {
        name: "bob".into(),
        id: "AIDANEWBOB".into(),
        created_at: Some(T0),
    };
    snap.allowed.insert(new_bob.id.clone(), new_bob);
    let p = plan(&cfg, &snap, &db.state, T0 + 1);
    assert_eq!(names(&p, "lock"), ["bob"]);
    assert!(names(&p, "create_user").is_empty());
    assert!(p
        .skipped
        .iter()
        .any(|s| s.subject == "bob" && s.error && s.reason.contains("AIDANEWBOB")));
    sync(&cfg, &snap, &mut db, T0 + 1);
}

#[test]
fn keymaker_accounts_are_adopted_only_when_asked() {
    let mut cfg = Config {
        allowed_groups: vec!["ops".into()],
        uid_scheme: UidScheme::Keymaker,
        group_prefix: "keymaker_".into(),
        name_mapping: crate::accounts::names::NameMapping::Identity {
            suffix: String::new(),
        },
        ..Config::default()
    };
    let uid = ids::id_for(UidScheme::Keymaker, "AIDAALICE", cfg.uid_range);
    let gid = ids::id_for(UidScheme::Keymaker, "AGPAKEYMAKER_DEV", cfg.uid_range);
    let mut local = host();
    local.users.insert(
        "alice".into(),
        LocalUser {
            name: "alice".into(),
            uid,
            gid: uid,
            expired: Some(false),
            last_change_day: Some(ACCOUNT_DAY),
        },
    );
    local.groups.insert(
        "alice".into(),
        LocalGroup {
            name: "alice".into(),
            gid: uid,
            members: vec![],
        },
    );
    local.groups.insert(
        "dev".into(),
        LocalGroup {
            name: "dev".into(),
            gid,
            members: vec!["alice".into()],
        },
    );
    let snap = iam(&["alice"], &[("keymaker_dev", &["alice"])], &[]);

    let p = plan(&cfg, &snap, &local, T0);
    assert!(p.actions.is_empty(), "{:?}", p.actions);
    assert!(p
        .skipped
        .iter()
        .any(|s| s.subject == "alice" && s.reason.contains("adopt_keymaker_accounts")));

    cfg.adopt_keymaker_accounts = true;
    let mut db = FakeAccounts::new(local);
    let p = sync(&cfg, &snap, &mut db, T0);
    assert_eq!(names(&p, "adopt_group"), ["dev"]);
    assert_eq!(names(&p, "adopt_user"), ["alice"]);
    assert!(
        db.commands.is_empty(),
        "adoption only writes records: {:?}",
        db.commands
    );
    // Now keyward's: locked when IAM stops allowing it (with someone else still active).
    let p = plan(
        &cfg,
        &iam(&[], &[("keymaker_dev", &[])], &[]),
        &db.state,
        T0 + 1,
    );
    assert_eq!(names(&p, "lock"), ["alice"]);
    assert_eq!(names(&p, "remove_member"), ["alice@dev"]);
}

#[test]
fn create_accounts_off_creates_nobody_but_manages_existing_accounts() {
    let mut cfg = config();
    let mut db = with_keyward_accounts(&cfg, &["alice"], T0);
    cfg.create_accounts = false;
    let p = sync(
        &cfg,
        &iam(
            &["alice", "bob"],
            &[("keyward_dev", &["alice", "bob"])],
            &[],
        ),
        &mut db,
        T0 + 1,
    );
    assert!(names(&p, "create_user").is_empty());
    assert_eq!(names(&p, "add_member"), ["alice@dev"]);
    assert!(!p.has_errors());
}

#[test]
fn a_new_account_joins_its_groups_in_its_own_useradd_and_an_existing_one_by_gpasswd() {
    let cfg = config();
    let mut db = with_keyward_accounts(&cfg, &["alice"], T0);
    db.commands.clear();
    let snap = iam(
        &["alice", "bob"],
        &[
            ("keyward_dev", &["alice", "bob"]),
            ("keyward_ops", &["bob", "stranger"]),
        ],
        &[],
    );
    let p = plan(&cfg, &snap, &db.state, T0 + 1);
    assert_eq!(names(&p, "create_group"), ["dev", "ops"]);
    assert_eq!(names(&p, "create_user"), ["bob"]);
    assert_eq!(joins(&p), ["bob@dev", "bob@ops"]);
    assert_eq!(names(&p, "add_member"), ["alice@dev"]);
    let shown: Vec<String> = p.actions.iter().map(|a| a.to_string()).collect();
    assert!(
        shown
            .iter()
            .any(|l| l.starts_with("create user   bob") && l.ends_with(", in dev, ops")),
        "{shown:?}"
    );
    // The plan shown (dry run) is exactly what runs: one command per action.
    let out = apply(&p, &mut db, T0 + 1);
    assert!(out.failed.is_empty(), "{:?}", out.failed);
    assert_eq!(out.done, p.actions);
    let bob = uid_for(&cfg, "AIDABOB");
    assert_eq!(db.commands.len(), p.actions.len(), "{:?}", db.commands);
    assert!(db.commands.contains(&format!(
        "useradd --uid {bob} --user-group --groups dev,ops bob"
    )));
    // bob joined in his useradd (phase 1), alice by gpasswd after (phase 2).
    assert_eq!(db.state.groups["dev"].members, ["bob", "alice"]);
    assert_eq!(db.state.groups["ops"].members, ["bob"]);
    assert_eq!(db.state.groups["bob"].gid, bob);
    assert_eq!(plan(&cfg, &snap, &db.state, T0 + 2), Plan::default());
}

#[test]
fn a_failed_groupadd_fails_its_new_members_useradd_and_the_next_run_converges() {
    let cfg = config();
    let snap = iam(&["alice", "bob"], &[("keyward_dev", &["alice"])], &[]);
    let mut db = FakeAccounts::new(host());
    db.fail_at = Some(0); // groupadd dev
    let out = apply(&plan(&cfg, &snap, &db.state, T0), &mut db, T0);
    let failed: Vec<&str> = out.failed.iter().map(|(a, _)| a.name()).collect();
    assert_eq!(failed, ["create_group", "create_user"]);
    // useradd is all or nothing: no account, no private group; bob was not in dev.
    assert!(!db.state.users.contains_key("alice") && !db.state.groups.contains_key("alice"));
    assert!(db.state.users.contains_key("bob"));
    db.fail_at = None;
    let p = sync(&cfg, &snap, &mut db, T0 + 1);
    assert_eq!(joins(&p), ["alice@dev"]);
    assert_eq!(plan(&cfg, &snap, &db.state, T0 + 2), Plan::default());
}

#[test]
fn a_run_killed_half_way_is_finished_by_the_next_one() {
    let cfg = config();
    let snap = iam(
        &["alice", "bob", "carol"],
        &[("keyward_dev", &["alice", "bob", "carol"])],
        &["bob"],
    );
    let total = plan(&cfg, &snap, &host(), T0).actions.len();
    for stop in 0..total {
        // Killed after `stop` whole actions.
        let mut db = FakeAccounts::new(host());
        let mut first = plan(&cfg, &snap, &db.state, T0);
        first.actions.truncate(stop);
        apply(&first, &mut db, T0);
        sync(&cfg, &snap, &mut db, T0 + 1);
        assert_eq!(
            plan(&cfg, &snap, &db.state, T0 + 2),
            Plan::default(),
            "killed after {stop}"
        );

        // Action `stop` failed; the others ran (some fail with it: a member of a group
        // that was not made).
        let mut db = FakeAccounts::new(host());
        db.fail_at = Some(stop);
        let out = apply(&plan(&cfg, &snap, &db.state, T0), &mut db, T0);
        assert!(!out.failed.is_empty());
        db.fail_at = None;
        sync(&cfg, &snap, &mut db, T0 + 1);
        assert_eq!(
            plan(&cfg, &snap, &db.state, T0 + 2),
            Plan::default(),
            "failed at {stop}"
        );
    }
}

#[test]
fn a_crash_between_groupadd_and_useradd_reuses_the_private_group() {
    let cfg = config();
    let mut db = FakeAccounts::new(host());
    let p = plan(&cfg, &iam(&["alice"], &[], &[]), &db.state, T0);
    let Action::CreateUser { account, .. } = &p.actions[0] else {
        panic!()
    };
    // The record and the group exist, the account does not.
    db.state.user_records.insert(
        "alice".into(),
        OwnershipRecord {
            iam_user: "alice".into(),
            iam_user_id: "AIDAALICE".into(),
            uid: account.uid,
            created_at: T0,
        },
    );
    db.state.groups.insert(
        "alice".into(),
        LocalGroup {
            name: "alice".into(),
            gid: account.uid,
            members: vec![],
        },
    );
    let p = sync(&cfg, &iam(&["alice"], &[], &[]), &mut db, T0 + 1);
    assert!(
        matches!(
            &p.actions[..],
            [Action::CreateUser {
                private_group_exists: true,
                ..
            }]
        ),
        "{:?}",
        p.actions
    );
    assert!(db.state.users.contains_key("alice"));
}

#[test]
fn orphan_records_are_forgotten_only_after_an_hour() {
    let cfg = config();
    let mut local = host();
    local.user_records.insert(
        "ghost".into(),
        OwnershipRecord {
            iam_user: "ghost".into(),
            iam_user_id: "AIDAGHOST".into(),
            uid: 1_900_000_000,
            created_at: T0,
        },
    );
    assert!(plan(&cfg, &iam(&[], &[], &[]), &local, T0 + 60)
        .actions
        .is_empty());
    let p = plan(&cfg, &iam(&[], &[], &[]), &local, T0 + 3601);
    assert_eq!(names(&p, "forget_user"), ["ghost"]);
}

#[test]
fn sudoers_file_is_removed_when_nobody_is_left_in_sudo_groups() {
    let cfg = config();
    let mut db = FakeAccounts::new(host());
    sync(&cfg, &iam(&["alice", "bob"], &[], &["alice"]), &mut db, T0);
    assert!(db.state.sudoers.is_some());
    let p = sync(&cfg, &iam(&["alice", "bob"], &[], &[]), &mut db, T0 + 1);
    assert_eq!(p.actions, [Action::RemoveSudoers]);
    assert!(db.state.sudoers.is_none());
}

#[test]
fn unmappable_names_are_skipped_and_logged_not_errors() {
    let cfg = config();
    let p = plan(
        &cfg,
        &iam(&["1password"], &[("keyward_9lives", &[])], &[]),
        &host(),
        T0,
    );
    assert!(p.actions.is_empty());
    assert_eq!(p.skipped.len(), 2);
    assert!(!p.has_errors());
}

#[test]
fn actions_serialize_with_their_name_and_fields() {
    let p = plan(
        &config(),
        &iam(&["alice"], &[("keyward_dev", &["alice"])], &["alice"]),
        &host(),
        T0,
    );
    let json = serde_json::to_value(&p).unwrap();
    assert_eq!(json["actions"][0]["action"], "create_group");
    assert_eq!(json["actions"][0]["group"], "dev");
    assert_eq!(json["actions"][1]["action"], "create_user");
    assert_eq!(json["actions"][1]["linux_name"], "alice");
    assert_eq!(json["actions"][1]["uid"], uid_for(&config(), "AIDAALICE"));
    assert_eq!(json["actions"][1]["groups"][0], "dev");
    assert_eq!(json["actions"][2]["users"][0], "alice");
    assert!(json["actions"][2].get("content").is_none());
}

#[test]
fn plan_for_2000_users_in_100_groups_is_fast() {
    let cfg = Config {
        allowed_groups: vec!["*".into()],
        ..Config::default()
    };
    let people: Vec<String> = (0..2000).map(|n| format!("user{n}")).collect();
    let refs: Vec<&str> = people.iter().map(String::as_str).collect();
    let group_names: Vec<String> = (0..100).map(|n| format!("keyward_g{n}")).collect();
    let groups: Vec<(&str, &[&str])> = group_names
        .iter()
        .enumerate()
        .map(|(i, g)| (g.as_str(), &refs[i * 20..i * 20 + 20]))
        .collect();
    let snap = iam(&refs, &groups, &[]);
    let mut db = FakeAccounts::new(host());
    let started = std::time::Instant::now();
    let p = sync(&cfg, &snap, &mut db, T0);
    assert_eq!(p.count("create_user") + p.skipped.len(), 2000);
    let again = plan(&cfg, &snap, &db.state, T0 + 1);
    assert!(again.actions.is_empty());
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}

// --- keymaker migration (issue 10): every keymaker account gets a stated outcome.

fn km_config() -> Config {
    Config {
        allowed_groups: vec!["ops".into()],
        uid_scheme: UidScheme::Keymaker,
        group_prefix: "keymaker_".into(),
        name_mapping: crate::accounts::names::NameMapping::Identity {
            suffix: String::new(),
        },
        adopt_keymaker_accounts: true,
        ..Config::default()
    }
}

fn km_uid(id: &str) -> u32 {
    ids::id_for(UidScheme::Keymaker, id, Config::default().uid_range)
}

/// An account as keymaker's PAM hook made it: named exactly like the IAM user, UID hashed from
/// `id`, a private group with the same name.
fn keymaker_account(local: &mut LocalState, name: &str, id: &str) -> u32 {
    let uid = km_uid(id);
    local_user(local, name, uid);
    local_group(local, name, uid, vec![]);
    uid
}

fn iam_user(name: &str, id: &str) -> IamUser {
    IamUser {
        name: name.into(),
        id: id.into(),
        created_at: Some(CREATED_AT),
    }
}

fn allowed(users: &[IamUser]) -> IamSnapshot {
    IamSnapshot {
        allowed: users.iter().map(|u| (u.id.clone(), u.clone())).collect(),
        ..IamSnapshot::default()
    }
}

fn skip_of<'p>(p: &'p Plan, subject: &str) -> &'p super::plan::Skipped {
    p.skipped
        .iter()
        .find(|s| s.subject == subject)
        .unwrap_or_else(|| panic!("no line for {subject}: {:#?}", p.skipped))
}

#[test]
fn k1_keymaker_accounts_identity_cannot_name_get_an_error_with_the_rename_path() {
    let cfg = km_config();
    let mut local = host();
    let erin = keymaker_account(&mut local, "Erin", "AIDAERIN0000000000001");
    keymaker_account(&mut local, "dave@example.com", "AIDADAVE0000000000001");
    let snap = allowed(&[
        iam_user("Erin", "AIDAERIN0000000000001"),
        iam_user("dave@example.com", "AIDADAVE0000000000001"),
    ]);
    let p = plan(&cfg, &snap, &local, T0);
    assert!(p.actions.is_empty(), "{:?}", p.actions);
    let e = skip_of(&p, "Erin");
    assert!(e.error, "{e:?}");
    for part in [
        &format!("keymaker account Erin (uid {erin}) of IAM user Erin"),
        "name_mapping = \"escape\"",
        "_erin",
        "keyward rename-keymaker",
    ] {
        assert!(e.reason.contains(part), "{part:?} not in {e:?}");
    }
    let d = skip_of(&p, "dave@example.com");
    assert!(d.error && d.reason.contains("dave_0example.com"), "{d:?}");
}

#[test]
fn k1_under_the_escape_mapping_a_keymaker_account_is_named_for_rename_not_refused_for_its_uid() {
    let cfg = Config {
        name_mapping: crate::accounts::names::NameMapping::Escape,
        ..km_config()
    };
    let mut local = host();
    let erin = keymaker_account(&mut local, "Erin", "AIDAERIN0000000000001");
    let snap = allowed(&[iam_user("Erin", "AIDAERIN0000000000001")]);
    let p = plan(&cfg, &snap, &local, T0);
    assert!(p.actions.is_empty(), "{:?}", p.actions);
    let e = skip_of(&p, "Erin");
    assert!(e.error, "{e:?}");
    assert!(!e.reason.contains("already held"), "{e:?}");
    assert!(
        e.reason.contains(&format!(
            "keymaker account Erin (uid {erin}) of IAM user Erin: keyward names it _erin"
        )) && e.reason.contains("keyward rename-keymaker"),
        "{e:?}"
    );
}

#[test]
fn k2_a_reused_local_group_names_the_exact_adopt_groups_line() {
    let cfg = Config {
        adopt_groups: vec!["docker".into()],
        ..km_config()
    };
    let mut local = host();
    local_group(&mut local, "web", 3000, vec![]);
    let snap = iam(&[], &[("keymaker_web", &[]), ("keymaker_db", &[])], &[]);
    local_group(&mut local, "db", 3001, vec![]);
    let p = plan(&cfg, &snap, &local, T0);
    let web = skip_of(&p, "web");
    assert!(web.error, "{web:?}");
    assert!(
        web.reason
            .contains(r#"add to keyward.toml: adopt_groups = ["docker", "db", "web"]"#),
        "{web:?}"
    );
    assert!(web.reason.contains("GID 3000"), "{web:?}");
    assert_eq!(p.unadopted_groups, ["db", "web"]);
}

#[test]
fn k3_keymaker_accounts_of_iam_users_not_allowed_are_reported_with_the_reason() {
    let cfg = km_config();
    let mut local = host();
    keymaker_account(&mut local, "carol", "AIDACAROL000000000001");
    // An account in keymaker's range that no IAM user accounts for.
    local_user(&mut local, "ghost", 5000);
    let mut snap = allowed(&[]);
    let carol = iam_user("carol", "AIDACAROL000000000001");
    snap.others.insert(carol.id.clone(), carol);
    let p = plan(&cfg, &snap, &local, T0);
    assert!(p.actions.is_empty(), "{:?}", p.actions);
    let c = skip_of(&p, "carol");
    assert!(!c.error, "{c:?}");
    assert!(
        c.reason.contains("keymaker account of IAM user carol")
            && c.reason.contains("not in allowed_groups (ops)")
            && c.reason.contains("not locked"),
        "{c:?}"
    );
    let g = skip_of(&p, "ghost");
    assert!(
        !g.error && g.reason.contains("no IAM user is named ghost"),
        "{g:?}"
    );
    // The AMI's own accounts (below keymaker's range) get no line.
    assert!(p.skipped.iter().all(|s| s.subject != "admin"), "{p:#?}");
}

#[test]
fn k3_an_iam_user_recreated_under_a_keymaker_name_is_told_why_it_is_not_adopted() {
    let cfg = km_config();
    let mut local = host();
    let old = keymaker_account(&mut local, "alice", "AIDAALICEOLD000000001");
    let snap = allowed(&[iam_user("alice", "AIDAALICENEW000000001")]);
    let p = plan(&cfg, &snap, &local, T0);
    assert!(p.actions.is_empty(), "{:?}", p.actions);
    let a = skip_of(&p, "alice");
    let new = km_uid("AIDAALICENEW000000001");
    for part in [
        "not touched".to_string(),
        format!("its UID {old} is not keymaker's UID for IAM user alice's UserId AIDAALICENEW000000001 ({new})"),
        "deleted and re-created".into(),
    ] {
        assert!(a.reason.contains(&part), "{part:?} not in {a:?}");
    }
}

#[test]
fn k1_a_keymaker_account_whose_keyward_name_is_taken_still_gets_a_line() {
    let cfg = Config {
        name_mapping: crate::accounts::names::NameMapping::Escape,
        ..km_config()
    };
    let mut local = host();
    keymaker_account(&mut local, "Erin", "AIDAERIN0000000000001");
    local_user(&mut local, "_erin", 1500);
    let snap = allowed(&[iam_user("Erin", "AIDAERIN0000000000001")]);
    let p = plan(&cfg, &snap, &local, T0);
    assert!(p.actions.is_empty(), "{:?}", p.actions);
    let e = skip_of(&p, "Erin");
    assert!(
        e.reason.contains("keymaker account of IAM user Erin")
            && e.reason
                .contains("keyward's name for it, _erin, is another account"),
        "{e:?}"
    );
    assert!(skip_of(&p, "_erin").reason.contains("not touched"));
}

#[test]
fn c2_a_userid_ground_to_keymakers_uid_does_not_adopt_an_older_account() {
    // erin and Gina left; their accounts stay. New IAM users were given their names and
    // re-created until each UserId hashed to the old account's UID, long after the accounts
    // were made. `erin` is already keyward's name (adopted without rename); `Gina` is not.
    let cfg = Config {
        name_mapping: crate::accounts::names::NameMapping::Escape,
        ..km_config()
    };
    let (erin_id, gina_id) = ("AIDAGROUNDERIN000001", "AIDAGROUNDGINA000001");
    let mut local = host();
    keymaker_account(&mut local, "erin", erin_id);
    keymaker_account(&mut local, "Gina", gina_id);
    let mut erin = iam_user("erin", erin_id);
    let mut gina = iam_user("Gina", gina_id);
    erin.created_at = Some(T0);
    gina.created_at = Some(T0);
    let p = plan(&cfg, &allowed(&[erin.clone(), gina.clone()]), &local, T0);
    assert!(p.actions.is_empty(), "{:#?}", p.actions);
    for (name, iam) in [("erin", &erin), ("Gina", &gina)] {
        let s = skip_of(&p, name);
        assert!(s.error, "{s:?}");
        for part in [
            format!(
                "IAM user {} was created on 2027-01-15, after the account (2026-10-07",
                iam.name
            ),
            "not renamed or adopted".into(),
            format!("adopt_keymaker_user_ids = [\"{}\"]", iam.id),
        ] {
            assert!(s.reason.contains(&part), "{part:?} not in {s:?}");
        }
        assert!(!s.reason.contains("keyward rename-keymaker"), "{s:?}");
    }

    // No CreateDate, or no day in /etc/shadow (empty or 0), is no evidence either.
    let mut undated = iam_user("erin", erin_id);
    undated.created_at = None;
    let p = plan(&cfg, &allowed(&[undated]), &local, T0);
    assert_eq!(p.count("adopt_user"), 0, "{p:#?}");
    assert!(skip_of(&p, "erin").reason.contains("no CreateDate"));
    let mut no_day = local.clone();
    no_day.users.get_mut("erin").unwrap().last_change_day = None;
    let p = plan(&cfg, &allowed(&[iam_user("erin", erin_id)]), &no_day, T0);
    assert_eq!(p.count("adopt_user"), 0, "{p:#?}");
    assert!(skip_of(&p, "erin").reason.contains("last-change"));

    // An IAM user created the day the account was made (keymaker's first login) is its owner.
    erin.created_at = Some(ACCOUNT_DAY * DAY + DAY - 1);
    let p = plan(&cfg, &allowed(&[erin.clone()]), &local, T0);
    assert_eq!(names(&p, "adopt_user"), ["erin"], "{p:#?}");

    // And an admin who checked who it is adopts it deliberately, by UserId.
    erin.created_at = Some(T0);
    let listed = Config {
        adopt_keymaker_user_ids: vec![erin_id.into()],
        ..cfg
    };
    let p = plan(&listed, &allowed(&[erin, gina]), &local, T0);
    assert_eq!(names(&p, "adopt_user"), ["erin"], "{p:#?}");
    assert!(skip_of(&p, "Gina").error);
}

#[test]
fn i1_with_adoption_off_sync_does_not_send_the_admin_to_a_rename_that_refuses() {
    for mapping in [
        crate::accounts::names::NameMapping::Escape,
        crate::accounts::names::NameMapping::Identity {
            suffix: String::new(),
        },
    ] {
        let cfg = Config {
            name_mapping: mapping,
            adopt_keymaker_accounts: false,
            ..km_config()
        };
        let mut local = host();
        keymaker_account(&mut local, "Erin", "AIDAERIN0000000000001");
        let snap = allowed(&[iam_user("Erin", "AIDAERIN0000000000001")]);
        assert_eq!(
            super::rename::plan(&cfg, &snap, &local),
            Err(super::rename::NotMigrating::NotKeymakerConfig)
        );
        let p = plan(&cfg, &snap, &local, T0);
        assert!(p.actions.is_empty(), "{:?}", p.actions);
        let e = skip_of(&p, "Erin");
        // Adoption off is the admin's choice: no error every hour, and the advice starts with
        // the setting rename-keymaker needs.
        assert!(!e.error, "{e:?}");
        assert!(
            e.reason.contains("set adopt_keymaker_accounts = true"),
            "{e:?}"
        );
        let flag = e.reason.find("adopt_keymaker_accounts = true").unwrap();
        let rename = e.reason.find("keyward rename-keymaker").unwrap();
        assert!(flag < rename, "{e:?}");
    }
}
