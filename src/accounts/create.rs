//! Creating the Linux account of an IAM user, shared by `pam-create-account` and `sync`.
//!
//! `plan` decides from facts (IAM's answer, who holds the numbers locally) and never touches
//! the system; `ShadowUtils` carries a plan out with groupadd/useradd, never by editing
//! /etc/passwd. A UID or GID held by someone else is refused, never reused, and the ownership
//! record that lets keyward serve keys for the account is written by the same code.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use serde::Serialize;

use super::ids;
use super::ownership::{RecordError, Records};
use crate::config::Config;
use crate::files;
use crate::process::{run, CommandError};

/// What IAM says about the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IamFacts {
    pub user_id: String,
    pub has_active_key: bool,
    /// The user's IAM groups; `None` when they were not read.
    pub groups: Option<Vec<String>>,
}

/// The Linux groups, among the keyward-managed ones that exist here, that a new account joins:
/// its prefixed IAM groups, prefix stripped and name-mapped like `sync` does. `managed` lists
/// the local groups keyward created or adopted; a reserved name (root, keyward,
/// reserved_users) is never joined, whatever a record says.
pub fn managed_groups_to_join(
    config: &Config,
    iam_groups: &[String],
    managed: &[String],
) -> Vec<String> {
    let mut join: Vec<String> = iam_groups
        .iter()
        .filter_map(|g| g.strip_prefix(config.group_prefix.as_str()))
        .filter_map(|stripped| config.name_mapping.to_linux(stripped).ok())
        .filter(|linux| managed.contains(linux) && !config.is_reserved_group(linux))
        .collect();
    join.sort();
    join.dedup();
    join
}

/// Who, locally, already holds what the new account would take, and which local groups are
/// keyward's to manage.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalFacts {
    pub uid_holder: Option<String>,
    pub gid_holder: Option<String>,
    pub group_exists: bool,
    pub managed_groups: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewAccount {
    pub linux_name: String,
    pub iam_user: String,
    pub iam_user_id: String,
    pub uid: u32,
    pub shell: PathBuf,
    /// keyward-managed Linux groups to join once the account exists.
    pub groups: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("IAM user has no Active SSH key")]
    NoActiveKey,
    #[error("IAM user is in none of allowed_groups")]
    NotAllowed,
    #[error("UID {uid} is already held by {holder:?}; not reused")]
    UidTaken { uid: u32, holder: String },
    #[error("GID {gid} is already held by group {holder:?}; not reused")]
    GidTaken { gid: u32, holder: String },
    #[error("a local group named {0:?} already exists and keyward did not create it")]
    GroupNameTaken(String),
}

/// The id both the account and its private group get.
pub fn uid_for(config: &Config, iam_user_id: &str) -> u32 {
    ids::id_for(config.uid_scheme, iam_user_id, config.uid_range)
}

/// Decides whether and how to create the account of `iam_user` as `linux_name`.
pub fn plan(
    config: &Config,
    linux_name: &str,
    iam_user: &str,
    iam: &IamFacts,
    local: &LocalFacts,
) -> Result<NewAccount, Refused> {
    if !iam.has_active_key {
        return Err(Refused::NoActiveKey);
    }
    if !config.allows(iam.groups.as_deref()) {
        return Err(Refused::NotAllowed);
    }
    let uid = uid_for(config, &iam.user_id);
    if let Some(holder) = &local.uid_holder {
        return Err(Refused::UidTaken {
            uid,
            holder: holder.clone(),
        });
    }
    if let Some(holder) = &local.gid_holder {
        return Err(Refused::GidTaken {
            gid: uid,
            holder: holder.clone(),
        });
    }
    if local.group_exists {
        return Err(Refused::GroupNameTaken(linux_name.to_owned()));
    }
    Ok(NewAccount {
        linux_name: linux_name.to_owned(),
        iam_user: iam_user.to_owned(),
        iam_user_id: iam.user_id.clone(),
        uid,
        shell: config.account_shell.clone(),
        groups: managed_groups_to_join(
            config,
            iam.groups.as_deref().unwrap_or_default(),
            &local.managed_groups,
        ),
    })
}

pub use super::ownership::OwnershipRecord;

/// The local account database, as account creation needs it.
pub trait AccountDb {
    fn local_facts(&self, config: &Config, linux_name: &str, uid: u32) -> LocalFacts;
    fn create(&self, account: &NewAccount, now: SystemTime) -> Result<(), CreateError>;
}

/// Why an account that was to be created was not.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error(transparent)]
    Command(#[from] CommandError),
}

/// shadow-utils (groupadd, useradd) plus keyward's ownership records under `state_dir`.
pub struct ShadowUtils {
    state_dir: PathBuf,
}

impl ShadowUtils {
    pub fn new(state_dir: &Path) -> ShadowUtils {
        ShadowUtils {
            state_dir: state_dir.to_owned(),
        }
    }

    /// Writes the ownership record of `account` (also used by `sync` to adopt an account).
    pub fn write_record(&self, account: &NewAccount, now: SystemTime) -> Result<(), RecordError> {
        let record = OwnershipRecord {
            iam_user: account.iam_user.clone(),
            iam_user_id: account.iam_user_id.clone(),
            uid: account.uid,
            created_at: crate::clock::unix_secs(now),
        };
        Records::new(&self.state_dir).write(&account.linux_name, &record)
    }
}

impl AccountDb for ShadowUtils {
    fn local_facts(&self, config: &Config, linux_name: &str, uid: u32) -> LocalFacts {
        LocalFacts {
            managed_groups: self.managed_groups(config),
            uid_holder: uzers::get_user_by_uid(uid)
                .map(|u| u.name().to_string_lossy().into_owned()),
            gid_holder: uzers::get_group_by_gid(uid)
                .map(|g| g.name().to_string_lossy().into_owned()),
            group_exists: uzers::get_group_by_name(linux_name).is_some(),
        }
    }

    fn create(&self, account: &NewAccount, now: SystemTime) -> Result<(), CreateError> {
        // The record first: should useradd succeed and the process die right after, the
        // account is still known to be keyward's. A record without an account is harmless.
        self.write_record(account, now)?;
        let id = account.uid.to_string();
        run(shadow("groupadd").args(["--gid", &id, "--", &account.linux_name]))?;
        if let Err(e) = useradd(account) {
            let _ = run(shadow("groupdel").args(["--", &account.linux_name]));
            let _ = Records::new(&self.state_dir).remove(&account.linux_name);
            return Err(e.into());
        }
        for group in &account.groups {
            // The account is usable without the group; sync adds it on its next run.
            if let Err(e) = run(shadow("gpasswd").args(["-a", &account.linux_name, group])) {
                tracing::warn!(
                    linux_user = account.linux_name,
                    group,
                    "not added to group: {e}"
                );
            }
        }
        Ok(())
    }
}

impl ShadowUtils {
    /// Local groups keyward manages: those with a trusted record whose GID still matches (as
    /// `sync` writes them), and the existing `adopt_groups`.
    fn managed_groups(&self, config: &Config) -> Vec<String> {
        let dir = crate::state::StateDir::new(&self.state_dir).groups();
        let mut managed: Vec<String> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|name| crate::accounts::names::is_valid_linux_name(name))
            .filter(|name| {
                let path = dir.join(name);
                let gid = files::check_trusted(&path)
                    .ok()
                    .and_then(|()| std::fs::read(&path).ok())
                    .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                    .and_then(|v| v.get("gid").and_then(serde_json::Value::as_u64));
                let local = uzers::get_group_by_name(name.as_str()).map(|g| u64::from(g.gid()));
                gid.is_some() && gid == local
            })
            .collect();
        managed.extend(
            config
                .adopt_groups
                .iter()
                .filter(|g| uzers::get_group_by_name(g.as_str()).is_some())
                .cloned(),
        );
        managed
    }
}

/// How a new account gets its private group (its own name, GID = UID).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrivateGroup {
    /// The group exists already (made by groupadd, or left by a run killed before useradd).
    Exists,
    /// useradd makes it (`--user-group`) in the same command. useradd takes the UID as the
    /// group's GID only when that GID is free and inside GID_MIN..GID_MAX, and otherwise picks
    /// another one; so GID_MIN = GID_MAX = UID for this command (`-K`): a GID taken meanwhile
    /// fails the whole command (nothing created) instead of giving the group a different GID.
    Create,
}

/// The arguments of useradd for `account`, joining the existing local groups `groups` as
/// supplementary groups in the same command (useradd fails, creating nothing, if one of them
/// does not exist). `--no-log-init`: lastlog and faillog are sparse files indexed by UID, and
/// hashed UIDs are near 2^31.
pub fn useradd_args(
    account: &NewAccount,
    private: PrivateGroup,
    groups: &[String],
) -> Vec<std::ffi::OsString> {
    let id = account.uid.to_string();
    let comment = format!("IAM user {}", account.iam_user.replace(',', "_"));
    let mut args: Vec<std::ffi::OsString> = vec!["--uid".into(), id.clone().into()];
    match private {
        PrivateGroup::Exists => args.extend(["--gid".into(), id.into()]),
        PrivateGroup::Create => args.extend([
            "--user-group".into(),
            "-K".into(),
            format!("GID_MIN={id}").into(),
            "-K".into(),
            format!("GID_MAX={id}").into(),
        ]),
    }
    if !groups.is_empty() {
        args.extend(["--groups".into(), groups.join(",").into()]);
    }
    args.extend([
        "--create-home".into(),
        "--no-log-init".into(),
        "--shell".into(),
        account.shell.clone().into_os_string(),
        "--comment".into(),
        comment.into(),
        "--".into(),
        account.linux_name.clone().into(),
    ]);
    args
}

/// useradd for `account`, whose private group (GID = UID) already exists.
pub fn useradd(account: &NewAccount) -> Result<(), CommandError> {
    run(shadow("useradd").args(useradd_args(account, PrivateGroup::Exists, &[]))).map(drop)
}

/// A shadow-utils command by absolute path with a sane PATH: pam_exec gives the hook no PATH
/// at all, and execvp's fallback (/bin:/usr/bin) misses /usr/sbin.
pub fn shadow(tool: &str) -> Command {
    let path = ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        .iter()
        .map(|dir| Path::new(dir).join(tool))
        .find(|p| p.is_file())
        .unwrap_or_else(|| Path::new("/usr/sbin").join(tool));
    let mut cmd = Command::new(path);
    cmd.env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    cmd
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn facts(groups: Option<&[&str]>) -> IamFacts {
        IamFacts {
            user_id: "AIDAEXAMPLE000000001".into(),
            has_active_key: true,
            groups: groups.map(|gs| gs.iter().map(|g| g.to_string()).collect()),
        }
    }

    fn config(groups: &[&str]) -> Config {
        Config {
            allowed_groups: groups.iter().map(|g| g.to_string()).collect(),
            ..Config::default()
        }
    }

    #[test]
    fn allowed_user_gets_the_hashed_uid_and_configured_shell() {
        let c = config(&["ops"]);
        let a = plan(
            &c,
            "alice",
            "alice",
            &facts(Some(&["ops"])),
            &LocalFacts::default(),
        )
        .unwrap();
        assert_eq!(
            a.uid,
            ids::id_for(c.uid_scheme, "AIDAEXAMPLE000000001", c.uid_range)
        );
        assert!(c.uid_range.contains(a.uid));
        assert_eq!(a.shell, Path::new("/bin/bash"));
    }

    #[test]
    fn useradd_makes_the_private_group_only_with_gid_equal_to_uid() {
        let account = NewAccount {
            linux_name: "alice".into(),
            iam_user: "alice,x".into(),
            iam_user_id: "AIDAALICE".into(),
            uid: 1_900_000_001,
            shell: "/bin/bash".into(),
            groups: vec!["dev".into()],
        };
        let line = |private, groups: &[String]| {
            useradd_args(&account, private, groups)
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(
            line(PrivateGroup::Create, &["dev".into(), "ops".into()]),
            "--uid 1900000001 --user-group -K GID_MIN=1900000001 -K GID_MAX=1900000001 \
             --groups dev,ops --create-home --no-log-init --shell /bin/bash \
             --comment IAM user alice_x -- alice"
        );
        assert_eq!(
            line(PrivateGroup::Exists, &[]),
            "--uid 1900000001 --gid 1900000001 --create-home --no-log-init --shell /bin/bash \
             --comment IAM user alice_x -- alice"
        );
    }

    #[test]
    fn m2_new_account_never_joins_a_reserved_group() {
        // `keyward` made by an older sync before install, or a stale record: still reserved.
        let c = Config {
            reserved_users: vec!["ec2-user".into()],
            ..config(&["ops"])
        };
        let iam: Vec<String> = [
            "keyward_keyward",
            "keyward_root",
            "keyward_ec2-user",
            "keyward_dev",
        ]
        .map(String::from)
        .to_vec();
        let managed: Vec<String> = ["keyward", "root", "ec2-user", "dev"]
            .map(String::from)
            .to_vec();
        assert_eq!(managed_groups_to_join(&c, &iam, &managed), ["dev"]);
    }

    #[test]
    fn new_account_joins_only_its_managed_prefixed_groups() {
        let c = config(&["*"]);
        let f = facts(Some(&[
            "keyward_devs",
            "keyward_Ops",
            "keyward_gone",
            "sudo",
            "ops",
        ]));
        let local = LocalFacts {
            managed_groups: vec!["devs".into(), "_ops".into(), "sudo".into()],
            ..LocalFacts::default()
        };
        let a = plan(&c, "alice", "alice", &f, &local).unwrap();
        assert_eq!(a.groups, vec!["_ops".to_string(), "devs".to_string()]);
    }

    #[test]
    fn user_without_active_key_or_outside_groups_is_refused() {
        let mut f = facts(Some(&["dev"]));
        assert_eq!(
            plan(&config(&["ops"]), "a", "a", &f, &LocalFacts::default()),
            Err(Refused::NotAllowed)
        );
        f.has_active_key = false;
        assert_eq!(
            plan(&config(&["*"]), "a", "a", &f, &LocalFacts::default()),
            Err(Refused::NoActiveKey)
        );
    }

    #[test]
    fn taken_uid_gid_or_group_name_is_never_reused() {
        let c = config(&["*"]);
        let f = facts(None);
        let uid_taken = LocalFacts {
            uid_holder: Some("bob".into()),
            ..LocalFacts::default()
        };
        assert!(
            matches!(plan(&c, "a", "a", &f, &uid_taken), Err(Refused::UidTaken { holder, .. }) if holder == "bob")
        );
        let gid_taken = LocalFacts {
            gid_holder: Some("docker".into()),
            ..LocalFacts::default()
        };
        assert!(matches!(
            plan(&c, "a", "a", &f, &gid_taken),
            Err(Refused::GidTaken { .. })
        ));
        let name_taken = LocalFacts {
            group_exists: true,
            ..LocalFacts::default()
        };
        assert_eq!(
            plan(&c, "a", "a", &f, &name_taken),
            Err(Refused::GroupNameTaken("a".into()))
        );
    }
}
