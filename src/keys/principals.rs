//! Which principals sshd may accept for a keyward user certificate, decided from local files
//! only (`keyward authorized-principals %u %i`, sshd's AuthorizedPrincipalsCommand).
//!
//! sshd has already checked that the certificate is signed by the CA in `TrustedUserCAKeys`,
//! is within its validity window and (with its `source-address`) comes from an allowed address;
//! it then asks this command which principals the account accepts and lets the certificate in
//! when one of its principals is among them. The certificate's key id
//! (`keyward:<iam user>:<UserId>:<serial>`, `keys::cert`) names the IAM identity the issuer
//! verified; this module accepts it only for an account that is keyward's
//! (`ownership::owns`, the one rule) and bound to that same UserId, and that sync has not
//! locked. A re-created IAM user (same name, new UserId) never opens the old person's account.
//!
//! Invariants:
//! - **The login gate is `keys::lookup::gate`**, the one `authorized-keys` passes through
//!   (valid, unreserved, mappable name; an existing account must be keyward's; someone may log
//!   in at all); a certificate then needs an existing account bound to its UserId.
//! - **No IAM, no network**: the decision reads the account database, the ownership record and
//!   sync's lock record; it runs on every certificate login and works through an IAM outage.
//! - **Doubt refuses**: an invalid or reserved name, no account, an account keyward does not
//!   own, a key id that is not exactly keyward's, another UserId, a lock record (or one that
//!   cannot be read or trusted) all give no principal at all.
//! - The principals are the account's own name and, on an EC2 instance whose id is known,
//!   `NAME@<instance id>` (the per-host scope of `ssh-cert --host`). Nothing else is printed:
//!   every line is a valid Linux name, optionally followed by `@i-` and hex digits.

use std::path::{Path, PathBuf};

use super::cert;
use super::lookup;
use crate::accounts::local::LocalAccounts;
use crate::accounts::names;
use crate::config::Config;
use crate::files;
use crate::state::StateDir;

/// Where cloud-init keeps the instance id of the EC2 instance it booted.
pub const CLOUD_INIT_INSTANCE_ID: &str = "/var/lib/cloud/data/instance-id";
/// An instance id file holds one short line.
const MAX_INSTANCE_ID_FILE: u64 = 256;
/// A lock record is a few bytes of JSON; its presence is what counts.
const MAX_LOCK_RECORD: u64 = 16 * 1024;

/// An EC2 instance id: `i-` and 8 or 17 lower-case hex digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceId(String);

impl InstanceId {
    /// The id `text` is exactly, or `None`.
    pub fn parse(text: &str) -> Option<InstanceId> {
        crate::ec2::is_instance_id(text).then(|| InstanceId(text.to_owned()))
    }

    /// The id in cloud-init's file: one line, its newline optional.
    pub fn from_cloud_init(bytes: &[u8]) -> Option<InstanceId> {
        let text = std::str::from_utf8(bytes).ok()?;
        InstanceId::parse(text.strip_suffix('\n').unwrap_or(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What sync's lock record for an account says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockState {
    /// No `state_dir/locked/NAME`.
    Unlocked,
    /// sync locked the account (it writes the record before `usermod --lock`).
    Locked,
    /// A record is there but cannot be read or trusted: counted as locked.
    Doubtful,
}

/// Sync's lock records (`state_dir/locked/NAME`, written by `sync::apply` for `Action::Lock`).
pub trait Locks {
    fn lock_state(&self, linux_name: &str) -> LockState;
}

/// The lock records on this host.
#[derive(Debug, Clone)]
pub struct LockRecords {
    dir: PathBuf,
}

impl LockRecords {
    pub fn new(state_dir: &Path) -> LockRecords {
        LockRecords {
            dir: StateDir::new(state_dir).locked(),
        }
    }
}

impl Locks for LockRecords {
    fn lock_state(&self, linux_name: &str) -> LockState {
        if !names::is_valid_linux_name(linux_name) {
            return LockState::Doubtful;
        }
        match files::read_trusted(&self.dir.join(linux_name), MAX_LOCK_RECORD) {
            Ok(None) => LockState::Unlocked,
            Ok(Some(_)) => LockState::Locked,
            Err(e) => {
                tracing::warn!("lock record not usable, the account counts as locked: {e}");
                LockState::Doubtful
            }
        }
    }
}

/// Why a certificate gets no principal for an account. The messages are log lines and quote
/// nothing unvalidated: the key id's parts appear only once they parsed as IAM values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The login gate every key lookup passes (`keys::lookup::gate`).
    #[error(transparent)]
    Gate(lookup::Refusal),
    #[error("no such local account (sync or the first login makes it)")]
    NoAccount,
    #[error("the certificate's key id is not keyward:<iam user>:<UserId>:<serial>")]
    BadKeyId,
    #[error(
        "the account belongs to IAM UserId {bound}, the certificate to IAM user {iam_user} with \
         UserId {presented} (deleted and re-created?): not the same person"
    )]
    OtherIdentity {
        bound: String,
        iam_user: String,
        presented: String,
    },
    #[error("sync locked the account (its IAM user is no longer allowed)")]
    Locked,
    #[error("sync's lock record for the account cannot be read or trusted: counted as locked")]
    LockDoubtful,
}

/// The principals an accepted certificate may use, and whose certificate it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The lines for sshd: the account's name, then `NAME@<instance id>` when known.
    pub principals: Vec<String>,
    pub iam_user: String,
    pub user_id: String,
    pub serial: u64,
}

/// The principals sshd may accept for a certificate with key id `key_id` logging in to
/// `linux_user`, from the account database, the ownership record and sync's lock record.
pub fn principals(
    config: &Config,
    linux_user: &str,
    key_id: &str,
    local: &impl LocalAccounts,
    locks: &impl Locks,
    instance: Option<&InstanceId>,
) -> Result<Accepted, Refusal> {
    let gate = lookup::gate(config, linux_user, local).map_err(Refusal::Gate)?;
    let (identity, serial) = cert::parse_key_id(key_id).ok_or(Refusal::BadKeyId)?;
    let bound = gate.bound_to.ok_or(Refusal::NoAccount)?;
    if bound != identity.user_id {
        return Err(Refusal::OtherIdentity {
            bound,
            iam_user: identity.user_name,
            presented: identity.user_id,
        });
    }
    match locks.lock_state(linux_user) {
        LockState::Unlocked => {}
        LockState::Locked => return Err(Refusal::Locked),
        LockState::Doubtful => return Err(Refusal::LockDoubtful),
    }
    let mut principals = vec![linux_user.to_owned()];
    if let Some(instance) = instance {
        principals.push(format!("{linux_user}@{}", instance.as_str()));
    }
    Ok(Accepted {
        principals,
        iam_user: identity.user_name,
        user_id: identity.user_id,
        serial,
    })
}

/// This host's instance id: `instance_id` from the config, else cloud-init's file (read as a
/// file that decides access: root's, not writable by others), else none.
pub fn instance_id(config: &Config) -> Option<InstanceId> {
    if let Some(id) = config.instance_id.as_deref() {
        return InstanceId::parse(id);
    }
    match files::read_trusted(Path::new(CLOUD_INIT_INSTANCE_ID), MAX_INSTANCE_ID_FILE) {
        Ok(Some(bytes)) => {
            let id = InstanceId::from_cloud_init(&bytes);
            if id.is_none() {
                tracing::warn!(
                    "{CLOUD_INIT_INSTANCE_ID} does not hold an EC2 instance id: no per-instance principal"
                );
            }
            id
        }
        Ok(None) => None,
        Err(e) => {
            tracing::warn!("no per-instance principal: {e}");
            None
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::accounts::local::AccountDbError;
    use crate::accounts::ownership::OwnershipRecord;

    const CAROL_ID: &str = "AIDAEXAMPLE0CAROL01";
    const KEY_ID: &str = "keyward:carol:AIDAEXAMPLE0CAROL01:42";

    #[derive(Default)]
    struct Host {
        uids: BTreeMap<String, u32>,
        records: BTreeMap<String, OwnershipRecord>,
        locks: BTreeMap<String, LockState>,
        db_down: bool,
    }

    impl LocalAccounts for Host {
        fn uid(&self, linux_name: &str) -> Result<Option<u32>, AccountDbError> {
            if self.db_down {
                return Err(AccountDbError(nix::errno::Errno::EIO));
            }
            Ok(self.uids.get(linux_name).copied())
        }
        fn record(&self, linux_name: &str) -> Option<OwnershipRecord> {
            self.records.get(linux_name).cloned()
        }
    }

    impl Locks for Host {
        fn lock_state(&self, linux_name: &str) -> LockState {
            self.locks
                .get(linux_name)
                .copied()
                .unwrap_or(LockState::Unlocked)
        }
    }

    /// carol, made by keyward for CAROL_ID with UID 4000; ops1, a local account of its own.
    fn host() -> Host {
        let mut h = Host::default();
        h.uids.insert("carol".into(), 4000);
        h.uids.insert("ops1".into(), 1000);
        h.uids.insert("root".into(), 0);
        h.records.insert(
            "carol".into(),
            OwnershipRecord {
                iam_user: "carol".into(),
                iam_user_id: CAROL_ID.into(),
                uid: 4000,
                created_at: 1,
            },
        );
        h
    }

    fn config() -> Config {
        Config {
            allowed_groups: vec!["ops".into()],
            ..Config::default()
        }
    }

    fn decide(h: &Host, user: &str, key_id: &str) -> Result<Accepted, Refusal> {
        principals(&config(), user, key_id, h, h, None)
    }

    #[test]
    fn keywards_account_bound_to_the_certificates_user_id_gets_its_name() {
        let accepted = decide(&host(), "carol", KEY_ID).unwrap();
        assert_eq!(accepted.principals, ["carol"]);
        assert_eq!(accepted.iam_user, "carol");
        assert_eq!(accepted.user_id, CAROL_ID);
        assert_eq!(accepted.serial, 42);
    }

    #[test]
    fn a_known_instance_id_adds_the_per_instance_principal() {
        let h = host();
        let id = InstanceId::parse("i-0123456789abcdef0").unwrap();
        let accepted = principals(&config(), "carol", KEY_ID, &h, &h, Some(&id)).unwrap();
        assert_eq!(accepted.principals, ["carol", "carol@i-0123456789abcdef0"]);
    }

    #[test]
    fn c2_a_recreated_iam_users_certificate_does_not_open_the_old_account() {
        let err = decide(&host(), "carol", "keyward:carol:AIDAEXAMPLE0CAROL02:1").unwrap_err();
        assert_eq!(
            err,
            Refusal::OtherIdentity {
                bound: CAROL_ID.into(),
                iam_user: "carol".into(),
                presented: "AIDAEXAMPLE0CAROL02".into(),
            }
        );
        assert!(err.to_string().contains("not the same person"), "{err}");
    }

    #[test]
    fn an_account_sync_locked_gets_nothing_and_so_does_a_doubtful_lock() {
        let mut h = host();
        h.locks.insert("carol".into(), LockState::Locked);
        assert_eq!(decide(&h, "carol", KEY_ID), Err(Refusal::Locked));
        h.locks.insert("carol".into(), LockState::Doubtful);
        assert_eq!(decide(&h, "carol", KEY_ID), Err(Refusal::LockDoubtful));
    }

    #[test]
    fn accounts_keyward_does_not_own_get_nothing() {
        let mut h = host();
        // A local account with no record, even when the key id names a real UserId.
        assert_eq!(
            decide(&h, "ops1", "keyward:ops1:AIDAEXAMPLE0OPS1:1"),
            Err(Refusal::Gate(lookup::Refusal::LocalAccount))
        );
        // C1: the account re-made by hand with another UID.
        h.uids.insert("carol".into(), 4242);
        assert_eq!(
            decide(&h, "carol", KEY_ID),
            Err(Refusal::Gate(lookup::Refusal::LocalAccount))
        );
        // No account at all, and an account database that does not answer.
        assert_eq!(
            decide(&h, "dave", "keyward:dave:AIDA1:1"),
            Err(Refusal::NoAccount)
        );
        h.db_down = true;
        assert!(matches!(
            decide(&h, "carol", KEY_ID),
            Err(Refusal::Gate(lookup::Refusal::AccountDatabase(_)))
        ));
    }

    #[test]
    fn a_host_that_lets_nobody_in_accepts_no_certificate_either() {
        let h = host();
        assert_eq!(
            principals(&Config::default(), "carol", KEY_ID, &h, &h, None),
            Err(Refusal::Gate(lookup::Refusal::NobodyAllowed))
        );
    }

    #[test]
    fn doubtful_names_and_key_ids_get_nothing() {
        let h = host();
        assert_eq!(
            decide(&h, "root", KEY_ID),
            Err(Refusal::Gate(lookup::Refusal::Reserved))
        );
        for name in ["", "-carol", "Carol", "car ol", "../carol"] {
            assert!(
                matches!(
                    decide(&h, name, KEY_ID),
                    Err(Refusal::Gate(
                        lookup::Refusal::InvalidName | lookup::Refusal::Unmappable(_)
                    ))
                ),
                "{name}"
            );
        }
        for key_id in [
            "",
            "carol",
            "keyward:carol:AIDAEXAMPLE0CAROL01",
            "keyward:carol:AIDAEXAMPLE0CAROL01:42\n",
            "keyward:carol:AIDAEXAMPLE0CAROL01:42:x",
            "ssh-keygen-made key id",
        ] {
            assert_eq!(
                decide(&h, "carol", key_id),
                Err(Refusal::BadKeyId),
                "{key_id:?}"
            );
        }
    }

    #[test]
    fn instance_ids_are_i_and_8_or_17_lower_case_hex_digits() {
        for good in ["i-0123abcd", "i-0123456789abcdef0"] {
            assert_eq!(InstanceId::parse(good).unwrap().as_str(), good);
        }
        for bad in [
            "",
            "i-",
            "i-0123abc",
            "i-0123456789ABCDEF0",
            "i-0123456789abcdef",
            "i-0123456789abcdef01",
            "x-0123abcd",
            "i-0123abcd\n",
            "i-0123abcg",
        ] {
            assert_eq!(InstanceId::parse(bad), None, "{bad:?}");
        }
        assert_eq!(
            InstanceId::from_cloud_init(b"i-0123456789abcdef0\n")
                .unwrap()
                .as_str(),
            "i-0123456789abcdef0"
        );
        assert_eq!(
            InstanceId::from_cloud_init(b"i-0123456789abcdef0\n\n"),
            None
        );
        assert_eq!(InstanceId::from_cloud_init(b"\xffi-0123abcd"), None);
    }

    #[test]
    fn lock_records_are_read_as_files_that_decide_access() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let locks = LockRecords::new(dir.path());
        // No locked/ directory at all: nothing is locked.
        assert_eq!(locks.lock_state("carol"), LockState::Unlocked);
        let locked = StateDir::new(dir.path()).locked();
        std::fs::create_dir(&locked).unwrap();
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(locks.lock_state("carol"), LockState::Unlocked);
        std::fs::write(locked.join("carol"), br#"{"locked_at": 5}"#).unwrap();
        std::fs::set_permissions(locked.join("carol"), std::fs::Permissions::from_mode(0o644))
            .unwrap();
        assert_eq!(locks.lock_state("carol"), LockState::Locked);
        std::fs::write(locked.join("dave"), b"").unwrap();
        std::fs::set_permissions(locked.join("dave"), std::fs::Permissions::from_mode(0o666))
            .unwrap();
        assert_eq!(locks.lock_state("dave"), LockState::Doubtful);
        assert_eq!(locks.lock_state("../carol"), LockState::Doubtful);
    }
}
