//! Account creation at first login: what `keyward pam-create-account` decides.
//!
//! sshd's PAM stack runs the hook as root for anyone who reaches sshd, with the name straight
//! from the network. `create_on_login` takes every decision (gate, existing account, negative
//! cache and budget, the three IAM reads, identity, the creation plan) with the local accounts,
//! throttle, IAM directory, account database and clock as parameters, and returns one outcome;
//! the cli only logs it and prints the one line every client sees.
//!
//! Invariants: a refused or doubtful name reaches neither IAM nor useradd; an account database
//! that cannot answer is an error, never "no account"; every valid name that is not a local
//! account yet costs the same three concurrent IAM reads; only an authoritative answer about
//! the user (none such, wrong identity, a refusal by the plan) is remembered as a refusal.

use std::future::Future;
use std::time::SystemTime;

use tokio::time::timeout;

use super::create::{self, AccountDb, CreateError, IamFacts, NewAccount, Refused};
use super::local::{AccountDbError, LocalAccounts};
use super::throttle::Throttle;
use crate::config::Config;
use crate::files::FileError;
use crate::iam::{Directory, IamError, Identity};
use crate::keys::lookup::{self, Refusal};

/// How the hook was started, from its argument and pam_exec's environment (`PAM_TYPE`,
/// `PAM_USER`). Under PAM the hook acts only in the auth stack and always exits non-zero
/// ([`Invocation::exits_ok`]), so it can never make authentication succeed by itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    /// Run by an admin: the name given, if any.
    ByHand(Option<String>),
    /// pam_exec in the auth stack: the user to create (the argument wins over `PAM_USER`), or
    /// why there is none.
    PamAuth(Result<String, PamUserProblem>),
    /// pam_exec in another stack (account, session, password): nothing to do.
    PamOther,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PamUserProblem {
    #[error("pam_exec set no PAM_USER")]
    Missing,
    /// The name, lossily decoded, for the log only (escaped there).
    #[error("PAM_USER is not UTF-8")]
    NotUtf8(String),
}

impl Invocation {
    pub fn new(
        arg: Option<String>,
        pam_type: Option<std::ffi::OsString>,
        pam_user: Option<std::ffi::OsString>,
    ) -> Invocation {
        let Some(pam_type) = pam_type else {
            return Invocation::ByHand(arg);
        };
        if pam_type != "auth" {
            return Invocation::PamOther;
        }
        let name = arg.map(std::ffi::OsString::from).or(pam_user);
        Invocation::PamAuth(match name {
            None => Err(PamUserProblem::Missing),
            Some(n) => n
                .into_string()
                .map_err(|n| PamUserProblem::NotUtf8(n.to_string_lossy().into_owned())),
        })
    }

    /// Whether the hook may exit 0: only when an admin ran it by hand.
    pub fn exits_ok(&self) -> bool {
        matches!(self, Invocation::ByHand(_))
    }
}

/// The negative cache and lookup budget, as account creation needs them.
pub trait Throttling {
    fn recently_refused(&self, linux_name: &str, now: SystemTime) -> bool;
    fn remember_refused(&self, linux_name: &str, now: SystemTime);
    fn take_budget(&self, now: SystemTime) -> bool;
}

impl Throttling for Throttle {
    fn recently_refused(&self, linux_name: &str, now: SystemTime) -> bool {
        Throttle::recently_refused(self, linux_name, now)
    }
    fn remember_refused(&self, linux_name: &str, now: SystemTime) {
        Throttle::remember_refused(self, linux_name, now)
    }
    fn take_budget(&self, now: SystemTime) -> bool {
        Throttle::take_budget(self, now)
    }
}

/// Why an attempt failed. Nothing is remembered: the next attempt asks again.
#[derive(Debug, thiserror::Error)]
pub enum LoginFailure {
    #[error(transparent)]
    AccountDb(#[from] AccountDbError),
    #[error("the lookup throttle is unusable: {0}")]
    Throttle(FileError),
    #[error(transparent)]
    Iam(#[from] IamError),
    #[error(transparent)]
    Create(#[from] CreateError),
}

/// Tests compare outcomes; two failures are alike when they say the same.
#[cfg(test)]
impl PartialEq for LoginFailure {
    fn eq(&self, other: &LoginFailure) -> bool {
        self.to_string() == other.to_string()
    }
}

/// What one attempt came to.
#[derive(Debug)]
#[cfg_attr(test, derive(PartialEq))]
pub enum OnLogin {
    /// `create_on_login = false`.
    Off,
    /// Not looked up in IAM at all.
    Refused(Refusal),
    /// The account exists already: nothing to do.
    Exists,
    /// Refused within the negative cache's time: IAM not asked again.
    RecentlyRefused,
    /// Over the lookup budget: IAM not asked.
    OverBudget,
    NoSuchUser,
    /// The name is not IAM's canonical spelling of the user.
    WrongIdentity(lookup::WrongIdentity),
    /// IAM answered, and the plan refuses (no Active key, not allowed, ids taken).
    NotCreated(Refused),
    Created(NewAccount),
    /// Something failed (IAM unavailable, the account database, useradd): nothing remembered.
    Failed(LoginFailure),
}

/// Decides and, when allowed, creates the account of `name`. `open_throttle` is called only
/// for a name that passed the gate and has no account; `directory` only within the budget.
pub async fn create_on_login<T: Throttling, D: Directory>(
    config: &Config,
    name: &str,
    local: &impl LocalAccounts,
    open_throttle: impl FnOnce() -> Result<T, FileError>,
    directory: impl Future<Output = D>,
    db: &impl AccountDb,
    now: SystemTime,
) -> OnLogin {
    if !config.create_on_login {
        return OnLogin::Off;
    }
    let gate = match lookup::gate(config, name, local) {
        Ok(gate) => gate,
        Err(refusal) => return OnLogin::Refused(refusal),
    };
    match local.uid(name) {
        Ok(None) => {}
        Ok(Some(_)) => return OnLogin::Exists,
        Err(e) => return OnLogin::Failed(e.into()),
    }
    let throttle = match open_throttle() {
        Ok(t) => t,
        Err(e) => return OnLogin::Failed(LoginFailure::Throttle(e)),
    };
    if throttle.recently_refused(name, now) {
        return OnLogin::RecentlyRefused;
    }
    if !throttle.take_budget(now) {
        return OnLogin::OverBudget;
    }
    let read = timeout(config.lookup_timeout, async {
        let dir = directory.await;
        iam_facts(&dir, &gate.iam_user).await
    })
    .await
    .unwrap_or_else(|_| {
        Err(IamError::Unreachable(
            "no answer within lookup_timeout".into(),
        ))
    });
    let (identity, facts) = match read {
        Ok(read) => read,
        Err(IamError::NotFound(_)) => {
            throttle.remember_refused(name, now);
            return OnLogin::NoSuchUser;
        }
        Err(e) => return OnLogin::Failed(e.into()),
    };
    if let Err(why) = lookup::check_identity(config, name, None, &identity) {
        throttle.remember_refused(name, now);
        return OnLogin::WrongIdentity(why);
    }
    let uid = create::uid_for(config, &facts.user_id);
    let local_facts = db.local_facts(config, name, uid);
    match create::plan(config, name, &gate.iam_user, &facts, &local_facts) {
        Ok(account) => match db.create(&account, now) {
            Ok(()) => OnLogin::Created(account),
            Err(e) => OnLogin::Failed(e.into()),
        },
        Err(refused) => {
            throttle.remember_refused(name, now);
            OnLogin::NotCreated(refused)
        }
    }
}

/// The three reads every attempt makes, concurrently, whatever the name: an absent user costs
/// the same calls as an allowed one.
async fn iam_facts(dir: &impl Directory, iam_user: &str) -> Result<(Identity, IamFacts), IamError> {
    let (identity, keys, groups) = tokio::join!(
        dir.identity(iam_user),
        dir.list_keys(iam_user),
        // Read even when every IAM user is allowed: the new account joins its managed groups.
        dir.groups_for_user(iam_user),
    );
    let (identity, keys, groups) = match (identity, keys, groups) {
        (Err(e @ IamError::NotFound(_)), _, _)
        | (_, Err(e @ IamError::NotFound(_)), _)
        | (_, _, Err(e @ IamError::NotFound(_))) => return Err(e),
        (Ok(i), Ok(k), Ok(g)) => (i, k, g),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return Err(e),
    };
    let facts = IamFacts {
        user_id: identity.user_id.clone(),
        has_active_key: keys.iter().any(|k| k.active),
        groups: Some(groups),
    };
    Ok((identity, facts))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use std::cell::{Cell, RefCell};

    use super::*;
    use crate::accounts::create::LocalFacts;
    use crate::keys::lookup::tests::{at, config, down, fake, Accounts, Fake, ED};

    #[test]
    fn under_pam_only_the_auth_stack_acts_and_nothing_exits_ok() {
        use std::ffi::OsString;
        use std::os::unix::ffi::OsStringExt;
        let pam = |t: &str| Some(OsString::from(t));
        assert_eq!(
            Invocation::new(Some("bob".into()), None, None),
            Invocation::ByHand(Some("bob".into()))
        );
        assert!(Invocation::new(None, None, pam("alice")).exits_ok());
        let auth = Invocation::new(None, pam("auth"), pam("alice"));
        assert_eq!(auth, Invocation::PamAuth(Ok("alice".into())));
        assert!(!auth.exits_ok());
        assert_eq!(
            Invocation::new(Some("bob".into()), pam("auth"), pam("alice")),
            Invocation::PamAuth(Ok("bob".into()))
        );
        assert_eq!(
            Invocation::new(None, pam("auth"), None),
            Invocation::PamAuth(Err(PamUserProblem::Missing))
        );
        let bytes = OsString::from_vec(b"al\xffce".to_vec());
        assert!(matches!(
            Invocation::new(None, pam("auth"), Some(bytes)),
            Invocation::PamAuth(Err(PamUserProblem::NotUtf8(_)))
        ));
        for other in ["account", "session", "password", ""] {
            let i = Invocation::new(None, pam(other), pam("alice"));
            assert_eq!(i, Invocation::PamOther);
            assert!(!i.exits_ok());
        }
    }

    #[derive(Default)]
    struct FakeThrottle {
        refused: RefCell<Vec<String>>,
        budget: Cell<u32>,
    }

    impl Throttling for &FakeThrottle {
        fn recently_refused(&self, n: &str, _: SystemTime) -> bool {
            self.refused.borrow().iter().any(|r| r == n)
        }
        fn remember_refused(&self, n: &str, _: SystemTime) {
            self.refused.borrow_mut().push(n.into());
        }
        fn take_budget(&self, _: SystemTime) -> bool {
            let left = self.budget.get();
            self.budget.set(left.saturating_sub(1));
            left > 0
        }
    }

    #[derive(Default)]
    struct FakeDb {
        facts: LocalFacts,
        created: RefCell<Vec<NewAccount>>,
        fail: bool,
    }

    impl AccountDb for FakeDb {
        fn local_facts(&self, _: &Config, _: &str, _: u32) -> LocalFacts {
            self.facts.clone()
        }
        fn create(&self, account: &NewAccount, _: SystemTime) -> Result<(), CreateError> {
            if self.fail {
                return Err(useradd_failed().into());
            }
            self.created.borrow_mut().push(account.clone());
            Ok(())
        }
    }

    fn useradd_failed() -> crate::process::CommandError {
        crate::process::CommandError::Spawn {
            program: "/usr/sbin/useradd".into(),
            source: std::io::ErrorKind::NotFound.into(),
        }
    }

    fn throttle(budget: u32) -> FakeThrottle {
        FakeThrottle {
            budget: Cell::new(budget),
            ..FakeThrottle::default()
        }
    }

    async fn attempt(
        c: &Config,
        name: &str,
        local: &Accounts,
        t: &FakeThrottle,
        dir: &Fake,
        db: &FakeDb,
    ) -> OnLogin {
        create_on_login(c, name, local, || Ok(t), async { dir }, db, at(1)).await
    }

    fn nobody() -> Accounts {
        Accounts(vec![])
    }

    #[tokio::test]
    async fn an_allowed_user_with_a_key_gets_an_account_after_three_reads() {
        let (t, db) = (throttle(10), FakeDb::default());
        let dir = fake(vec![("K1", true, ED)], &["ops"]);
        let got = attempt(&config(&["ops"]), "alice", &nobody(), &t, &dir, &db).await;
        let OnLogin::Created(account) = got else {
            panic!("{got:?}")
        };
        assert_eq!(account.linux_name, "alice");
        assert_eq!(db.created.borrow().len(), 1);
        assert_eq!(
            dir.calls(),
            3,
            "GetUser, ListSSHPublicKeys, ListGroupsForUser"
        );
    }

    #[tokio::test]
    async fn refused_names_existing_accounts_and_a_failing_database_reach_no_iam() {
        let c = config(&["*"]);
        let dir = fake(vec![("K1", true, ED)], &[]);
        let (t, db) = (throttle(10), FakeDb::default());
        let got = attempt(&c, "root", &nobody(), &t, &dir, &db).await;
        assert_eq!(got, OnLogin::Refused(Refusal::Reserved));
        let exists = Accounts(vec![("alice", 4000, Some("AIDAALICE0000000001"))]);
        assert_eq!(
            attempt(&c, "alice", &exists, &t, &dir, &db).await,
            OnLogin::Exists
        );
        let got = attempt(&c, "nss-down", &nobody(), &t, &dir, &db).await;
        assert!(
            matches!(got, OnLogin::Refused(Refusal::AccountDatabase(_))),
            "{got:?}"
        );
        let off = Config {
            create_on_login: false,
            ..c.clone()
        };
        assert_eq!(
            attempt(&off, "alice", &nobody(), &t, &dir, &db).await,
            OnLogin::Off
        );
        assert_eq!(dir.calls(), 0);
        assert!(db.created.borrow().is_empty());
    }

    #[tokio::test]
    async fn every_valid_name_costs_the_same_three_reads_and_refusals_are_remembered() {
        let c = config(&["ops"]);
        let (t, db) = (throttle(10), FakeDb::default());
        for (name, dir) in [
            (
                "ghost",
                Fake {
                    name: "someone".into(),
                    ..fake(vec![], &["ops"])
                },
            ),
            ("alice", fake(vec![], &["ops"])),
            ("alice", fake(vec![("K1", true, ED)], &["dev"])),
        ] {
            t.refused.borrow_mut().clear();
            let got = attempt(&c, name, &nobody(), &t, &dir, &db).await;
            assert!(
                matches!(got, OnLogin::NoSuchUser | OnLogin::NotCreated(_)),
                "{got:?}"
            );
            assert_eq!(dir.calls(), 3, "{name}: {got:?}");
            assert_eq!(*t.refused.borrow(), vec![name.to_string()]);
        }
        // Remembered: not asked again.
        let dir = fake(vec![("K1", true, ED)], &["ops"]);
        assert_eq!(
            attempt(&c, "alice", &nobody(), &t, &dir, &db).await,
            OnLogin::RecentlyRefused
        );
        assert_eq!(dir.calls(), 0);
    }

    #[tokio::test]
    async fn over_budget_outage_and_failed_useradd_remember_nothing() {
        let c = config(&["*"]);
        let db = FakeDb::default();
        let dir = fake(vec![("K1", true, ED)], &[]);
        let broke = throttle(0);
        assert_eq!(
            attempt(&c, "alice", &nobody(), &broke, &dir, &db).await,
            OnLogin::OverBudget
        );
        assert_eq!(dir.calls(), 0);
        let t = throttle(10);
        let down_dir = fake(vec![("K1", true, ED)], &[]).failing("groups", down());
        let got = attempt(&c, "alice", &nobody(), &t, &down_dir, &db).await;
        assert!(matches!(got, OnLogin::Failed(_)), "{got:?}");
        let failing_db = FakeDb {
            fail: true,
            ..FakeDb::default()
        };
        let got = attempt(&c, "alice", &nobody(), &t, &dir, &failing_db).await;
        assert_eq!(
            got,
            OnLogin::Failed(CreateError::from(useradd_failed()).into())
        );
        assert!(t.refused.borrow().is_empty());
    }

    #[tokio::test]
    async fn c2_a_non_canonical_spelling_creates_nothing() {
        let c = config(&["*"]);
        let (t, db) = (throttle(10), FakeDb::default());
        let bob = Fake {
            name: "Bob".into(),
            ..fake(vec![("K1", true, ED)], &[])
        };
        // `_b_o_b` maps to IAM "BOB", which case-insensitive IAM answers as "Bob".
        let got = attempt(&c, "_b_o_b", &nobody(), &t, &bob, &db).await;
        assert!(matches!(got, OnLogin::WrongIdentity(_)), "{got:?}");
        assert!(db.created.borrow().is_empty());
    }
}
