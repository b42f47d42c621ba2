//! Key lookup: which key lines sshd may accept for a Linux user, right now.
//!
//! `gate` decides without IAM whether a name may be looked up at all (reserved, unmappable and
//! local accounts keyward does not own never reach IAM) and which IAM identity an existing
//! account is bound to. `live` asks IAM (one call when warm) and `decide` combines the answer
//! with the cache. Nothing here prints: the caller writes the returned keys.
//!
//! Invariants:
//! - A lookup has three parts: the key list (ListSSHPublicKeys), the groups (ListGroupsForUser,
//!   only with `allowed_groups`) and the identity (GetUser). Groups and identity are trusted
//!   from the cache for `group_cache_ttl`, which keeps the warm path at one call.
//! - Stale data stands in only for the part IAM failed to answer, and only within `max_stale`:
//!   a key that a live answer shows Inactive or absent is never printed (H1).
//! - An account is bound to the IAM UserId in its ownership record. Keys are served only when
//!   the UserId behind the name (live, or verified within the TTL, or while IAM is unreachable
//!   the last verified one within `max_stale`) is that UserId, and only when the name is the
//!   canonical mapping of IAM's own spelling of the user name (C2).
//! - Only an authoritative "no such user" purges the cache.

use std::collections::HashMap;
use std::time::SystemTime;

use tokio::time::Instant;

use super::cache::{self, Cache, UserRecord};
use super::{KeyError, PublicKey};
use crate::accounts::local::{AccountDbError, LocalAccounts};
use crate::accounts::names::{self, NameError};
use crate::accounts::ownership;
use crate::config::Config;
use crate::iam::{Directory, IamError, Identity, KeyMeta};
use crate::logging::untrusted;

/// Why a name is not looked up in IAM at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("not a valid Linux user name")]
    InvalidName,
    #[error("reserved account")]
    Reserved,
    #[error("not a keyward name: {0}")]
    Unmappable(NameError),
    #[error("local account not created by keyward")]
    LocalAccount,
    #[error("{0}: not looked up, in case the account exists and is not keyward's")]
    AccountDatabase(AccountDbError),
    #[error("allowed_groups is empty, so nobody may log in: set allowed_groups = [\"*\"] or list IAM groups in the config")]
    NobodyAllowed,
}

/// A name that may be looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gate {
    /// The IAM user name the Linux name maps to.
    pub iam_user: String,
    /// The IAM UserId the existing local account belongs to; `None` when there is no local
    /// account yet (first login).
    pub bound_to: Option<String>,
}

/// Decides, without IAM, whether `linux_user` may be looked up, and for which identity.
pub fn gate(
    config: &Config,
    linux_user: &str,
    local: &impl LocalAccounts,
) -> Result<Gate, Refusal> {
    if !names::is_valid_linux_name(linux_user) {
        return Err(Refusal::InvalidName);
    }
    if config.is_reserved(linux_user) {
        return Err(Refusal::Reserved);
    }
    let iam_user = config
        .name_mapping
        .to_iam(linux_user)
        .map_err(Refusal::Unmappable)?;
    let bound_to = match local.uid(linux_user).map_err(Refusal::AccountDatabase)? {
        None => None,
        Some(uid) => match local.record(linux_user) {
            Some(record) if ownership::owns(&record, uid) => Some(record.iam_user_id),
            _ => return Err(Refusal::LocalAccount),
        },
    };
    if config.allowed_groups.is_empty() {
        return Err(Refusal::NobodyAllowed);
    }
    Ok(Gate { iam_user, bound_to })
}

/// Why an IAM identity may not use an account. The messages are log lines: IAM's spelling
/// and UserId go through `untrusted`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WrongIdentity {
    #[error("IAM spells this user \"{}\", whose Linux name is {canonical}, not {linux_user}", untrusted(.iam_spelling))]
    OtherName {
        iam_spelling: String,
        canonical: String,
        linux_user: String,
    },
    #[error("IAM spells this user \"{}\", which has no Linux name", untrusted(.iam_spelling))]
    NoLinuxName { iam_spelling: String },
    #[error("account {linux_user} belongs to IAM UserId {bound}, but IAM user \"{}\" now has UserId {} (deleted and re-created?): not the same person", untrusted(.iam_user), untrusted(.user_id))]
    Remade {
        linux_user: String,
        bound: String,
        iam_user: String,
        user_id: String,
    },
}

/// Whether `identity` may use the account `linux_user`: the name must be the canonical mapping
/// of IAM's spelling (IAM names are case-insensitive, so `_bob` and `_b_o_b` both reach "Bob"),
/// and an existing account must belong to this UserId.
pub fn check_identity(
    config: &Config,
    linux_user: &str,
    bound_to: Option<&str>,
    identity: &Identity,
) -> Result<(), WrongIdentity> {
    match config.name_mapping.to_linux(&identity.user_name) {
        Ok(canonical) if canonical == linux_user => {}
        Ok(canonical) => {
            return Err(WrongIdentity::OtherName {
                iam_spelling: identity.user_name.clone(),
                canonical,
                linux_user: linux_user.to_owned(),
            })
        }
        Err(_) => {
            return Err(WrongIdentity::NoLinuxName {
                iam_spelling: identity.user_name.clone(),
            })
        }
    }
    match bound_to {
        Some(bound) if bound != identity.user_id => Err(WrongIdentity::Remade {
            linux_user: linux_user.to_owned(),
            bound: bound.to_owned(),
            iam_user: identity.user_name.clone(),
            user_id: identity.user_id.clone(),
        }),
        _ => Ok(()),
    }
}

/// Where a printed key came from, for the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Body fetched from IAM during this lookup.
    Live,
    /// Status verified live; body from the cache (a key id's body never changes).
    Cache,
    /// IAM could not list the keys: the last verified key set, within `max_stale`.
    Stale,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Live => "live",
            Source::Cache => "cache",
            Source::Stale => "stale",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedKey {
    pub id: String,
    pub key: PublicKey,
    pub source: Source,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The user may log in with these keys (possibly none).
    Keys(Vec<ServedKey>),
    /// The user exists but is in none of `allowed_groups`.
    NotAllowed,
    /// IAM says there is no such user.
    NoSuchUser,
    /// The name does not stand for the identity the account belongs to (the log line).
    WrongIdentity(WrongIdentity),
    /// IAM could not answer a part and no usable cached stand-in exists.
    Unavailable(IamError),
}

/// The key sshd offered (`%f`, `%k`); when given, only that key may be printed.
#[derive(Debug, Clone, Default)]
pub struct Offer {
    pub fingerprint: Option<String>,
    pub key: Option<PublicKey>,
}

impl Offer {
    pub fn matches(&self, key: &PublicKey) -> bool {
        self.key.as_ref().is_none_or(|k| k.blob() == key.blob())
            && self
                .fingerprint
                .as_ref()
                .is_none_or(|f| *f == key.fingerprint())
    }
}

/// A key IAM listed but keyward would not print, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub id: String,
    pub reason: Rejection,
}

/// Why a listed key is not printed. The other keys are still served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// GetSSHPublicKey failed for this key.
    #[error(transparent)]
    Iam(IamError),
    #[error("invalid key body from IAM: {0}")]
    InvalidBody(KeyError),
    /// A valid key this host's policy refuses (`min_rsa_bits`).
    #[error(transparent)]
    Policy(KeyError),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveResult {
    pub outcome: Outcome,
    pub rejected: Vec<Rejected>,
    /// The parts IAM failed to answer for which cached data stood in, and why they failed.
    pub stood_in: Vec<(&'static str, IamError)>,
    /// IAM answered the key list (with keys or an authoritative "no such user"): no outage.
    pub keys_answered: bool,
}

/// What IAM answered in one lookup, per part; `None` for a part that was not asked (not needed,
/// or fresh in the cache).
#[derive(Debug, Clone)]
pub struct Answers {
    pub keys: Result<Vec<KeyMeta>, IamError>,
    pub groups: Option<Result<Vec<String>, IamError>>,
    pub identity: Option<Result<Identity, IamError>>,
}

impl Answers {
    /// IAM answered nothing (the whole lookup timed out).
    pub fn none(why: IamError) -> Answers {
        Answers {
            keys: Err(why.clone()),
            groups: Some(Err(why.clone())),
            identity: Some(Err(why)),
        }
    }
}

/// The decision about one lookup, before key bodies are fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub verdict: Verdict,
    /// What to cache about the user now (`None`: leave the cache alone).
    pub store: Option<UserRecord>,
    /// Purge the user's cached state (an authoritative "gone", or the wrong person).
    pub forget: bool,
    /// The parts IAM failed to answer for which cached data stood in, and why they failed.
    pub stood_in: Vec<(&'static str, IamError)>,
    /// IAM listed key ids never listed for a verified identity, and the identity came from the
    /// cache without asking: ask GetUser and decide again before serving them.
    pub needs_identity: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Serve these key ids; `stale`: the list came from the cache, not from IAM.
    Keys {
        ids: Vec<String>,
        stale: bool,
    },
    NotAllowed,
    NoSuchUser,
    WrongIdentity(WrongIdentity),
    Unavailable(IamError),
}

/// The cached state of `linux_user`, if it was recorded for the same IAM name.
fn cached_for(cache: Option<&Cache>, linux_user: &str, iam_user: &str) -> Option<UserRecord> {
    cache
        .and_then(|c| c.user(linux_user))
        .filter(|r| r.iam_user == iam_user)
}

/// Asks IAM, concurrently, for the parts the cache cannot answer.
/// Each read is bounded by `deadline`, separately: a read that answered in time is used even
/// when another hangs (a key list showing a revocation must not be lost to a hanging
/// ListGroupsForUser).
pub async fn ask(
    config: &Config,
    dir: &impl Directory,
    cached: Option<&UserRecord>,
    iam_user: &str,
    now: SystemTime,
    deadline: Instant,
) -> Answers {
    let ttl = config.group_cache_ttl;
    let groups_fresh = cached.is_some_and(|r| {
        r.groups.is_some() && cache::groups_fresh(iam_user, r.groups_checked_at, now, ttl)
    });
    let identity_fresh = cached.is_some_and(|r| {
        r.identity.is_some() && cache::groups_fresh(iam_user, r.identity_checked_at, now, ttl)
    });
    let need_groups = !config.allows_everyone() && !groups_fresh;
    let groups = async {
        if need_groups {
            Some(by(deadline, dir.groups_for_user(iam_user)).await)
        } else {
            None
        }
    };
    let identity = async {
        if identity_fresh {
            None
        } else {
            Some(by(deadline, dir.identity(iam_user)).await)
        }
    };
    let keys = by(deadline, dir.list_keys(iam_user));
    let (keys, groups, identity) = tokio::join!(keys, groups, identity);
    Answers {
        keys,
        groups,
        identity,
    }
}

/// `read`, or an outage once `deadline` has passed.
async fn by<T>(
    deadline: Instant,
    read: impl std::future::Future<Output = Result<T, IamError>>,
) -> Result<T, IamError> {
    tokio::time::timeout_at(deadline, read)
        .await
        .unwrap_or_else(|_| {
            Err(IamError::Unreachable(
                "no answer in time (lookup_timeout)".into(),
            ))
        })
}

/// One part of the answer: live, or the cached stand-in.
enum Part<T> {
    Known(T),
    Unavailable(IamError),
}

/// Combines IAM's answers with the cache. Pure: `now` is passed in.
pub fn decide(
    config: &Config,
    linux_user: &str,
    gate: &Gate,
    cached: Option<&UserRecord>,
    answers: Answers,
    now: SystemTime,
) -> Decision {
    let not_found = matches!(answers.keys, Err(IamError::NotFound(_)))
        || matches!(answers.groups, Some(Err(IamError::NotFound(_))))
        || matches!(answers.identity, Some(Err(IamError::NotFound(_))));
    if not_found {
        return Decision {
            verdict: Verdict::NoSuchUser,
            store: None,
            forget: true,
            stood_in: Vec::new(),
            needs_identity: false,
        };
    }
    let now_secs = crate::clock::unix_secs(now);
    let usable = |at: u64| cache::stale_usable(at, now, config.max_stale);
    // The cache may stand in for a part only while IAM said nothing about the user, and only
    // with data verified within max_stale.
    let may_stand_in = |e: &IamError, at: u64| e.is_outage() && usable(at);
    let mut stood_in = Vec::new();

    let mut store = cached.cloned().unwrap_or(UserRecord {
        iam_user: gate.iam_user.clone(),
        verified_at: 0,
        active_keys: Vec::new(),
        groups: None,
        groups_checked_at: 0,
        identity: None,
        identity_checked_at: 0,
    });
    let mut fresh = false;

    // Whether this lookup verified the identity with IAM; if not, it is a cached one.
    let identity_live = matches!(answers.identity, Some(Ok(_)));
    let identity_asked = answers.identity.is_some();
    let identity = match answers.identity {
        None => match cached.and_then(|r| r.identity.clone()) {
            Some(id) => Part::Known(id),
            None => Part::Unavailable(IamError::Other("identity not read".into())),
        },
        Some(Ok(id)) => {
            store.identity = Some(id.clone());
            store.identity_checked_at = now_secs;
            fresh = true;
            Part::Known(id)
        }
        Some(Err(e)) => match cached.and_then(|r| r.identity.clone().map(|id| (r, id))) {
            Some((r, id)) if may_stand_in(&e, r.identity_checked_at) => {
                stood_in.push(("GetUser", e));
                Part::Known(id)
            }
            _ => Part::Unavailable(e),
        },
    };
    if let Part::Known(id) = &identity {
        if let Err(why) = check_identity(config, linux_user, gate.bound_to.as_deref(), id) {
            return Decision {
                verdict: Verdict::WrongIdentity(why),
                store: None,
                forget: true,
                stood_in,
                needs_identity: false,
            };
        }
    }

    let groups: Part<Option<Vec<String>>> = if config.allows_everyone() {
        Part::Known(None)
    } else {
        match answers.groups {
            None => Part::Known(cached.and_then(|r| r.groups.clone())),
            Some(Ok(gs)) => {
                store.groups = Some(gs.clone());
                store.groups_checked_at = now_secs;
                fresh = true;
                Part::Known(Some(gs))
            }
            Some(Err(e)) => match cached.filter(|r| r.groups.is_some()) {
                Some(r) if may_stand_in(&e, r.groups_checked_at) => {
                    stood_in.push(("ListGroupsForUser", e));
                    Part::Known(r.groups.clone())
                }
                _ => Part::Unavailable(e),
            },
        }
    };
    if let Part::Known(gs) = &groups {
        if !config.allows(gs.as_deref()) {
            return Decision {
                verdict: Verdict::NotAllowed,
                store: fresh.then_some(store),
                forget: false,
                stood_in,
                needs_identity: false,
            };
        }
    }

    let mut needs_identity = false;
    let keys = match answers.keys {
        Ok(listed) => {
            let mut active: Vec<String> = listed
                .into_iter()
                .filter(|k| k.active)
                .map(|k| k.id)
                .collect();
            if !identity_live {
                // The identity was not verified by this lookup: serve only keys that were
                // listed for a verified identity before. A live list may take keys away, never
                // add them: a new key id (a re-created user's, say) waits for GetUser.
                let verified = cached.map(|r| r.active_keys.as_slice()).unwrap_or_default();
                let before = active.len();
                active.retain(|id| verified.contains(id));
                needs_identity = active.len() < before && !identity_asked;
            }
            store.active_keys = active.clone();
            store.verified_at = now_secs;
            fresh = true;
            Part::Known((active, false))
        }
        Err(e) => match cached {
            Some(r) if may_stand_in(&e, r.verified_at) => {
                stood_in.push(("ListSSHPublicKeys", e));
                Part::Known((r.active_keys.clone(), true))
            }
            _ => Part::Unavailable(e),
        },
    };

    let store = fresh.then_some(store);
    let verdict = match (identity, groups, keys) {
        (Part::Unavailable(e), _, _)
        | (_, Part::Unavailable(e), _)
        | (_, _, Part::Unavailable(e)) => Verdict::Unavailable(e),
        (Part::Known(_), Part::Known(_), Part::Known((ids, stale))) => Verdict::Keys { ids, stale },
    };
    Decision {
        verdict,
        store,
        forget: false,
        stood_in,
        needs_identity,
    }
}

/// Asks IAM (one call when warm) and decides. Key bodies come from the cache or, for ids not
/// cached yet, from IAM concurrently. Every IAM read is bounded by `deadline`.
pub async fn live(
    config: &Config,
    dir: &impl Directory,
    cache: Option<&Cache>,
    linux_user: &str,
    gate: &Gate,
    now: SystemTime,
    deadline: Instant,
) -> LiveResult {
    let cached = cached_for(cache, linux_user, &gate.iam_user);
    let mut answers = ask(config, dir, cached.as_ref(), &gate.iam_user, now, deadline).await;
    let keys_answered = !matches!(&answers.keys, Err(e) if e.is_outage());
    let mut decision = decide(
        config,
        linux_user,
        gate,
        cached.as_ref(),
        answers.clone(),
        now,
    );
    if decision.needs_identity {
        // New key ids while the identity is trusted from the cache: one more call, made only
        // when the keys changed.
        answers.identity = Some(by(deadline, dir.identity(&gate.iam_user)).await);
        decision = decide(config, linux_user, gate, cached.as_ref(), answers, now);
    }
    let iam_user = gate.iam_user.as_str();
    let mut result = settle(
        config,
        Some(dir),
        cache,
        linux_user,
        iam_user,
        decision,
        deadline,
    )
    .await;
    result.keys_answered = keys_answered;
    result
}

/// Answers from the cache alone, when IAM could not answer at all (`why`).
pub async fn stale(
    config: &Config,
    cache: Option<&Cache>,
    linux_user: &str,
    gate: &Gate,
    now: SystemTime,
    why: IamError,
) -> Outcome {
    let cached = cached_for(cache, linux_user, &gate.iam_user);
    let decision = decide(
        config,
        linux_user,
        gate,
        cached.as_ref(),
        Answers::none(why),
        now,
    );
    let none: Option<&NoDirectory> = None;
    settle(
        config,
        none,
        cache,
        linux_user,
        &gate.iam_user,
        decision,
        Instant::now(),
    )
    .await
    .outcome
}

/// Carries out a decision: updates the cache and turns key ids into keys.
async fn settle(
    config: &Config,
    dir: Option<&impl Directory>,
    cache: Option<&Cache>,
    linux_user: &str,
    iam_user: &str,
    decision: Decision,
    deadline: Instant,
) -> LiveResult {
    if let Some(c) = cache {
        if decision.forget {
            c.forget_user(linux_user);
        } else if let Some(record) = &decision.store {
            if let Err(e) = c.store_user(linux_user, record) {
                tracing::warn!("user record not cached: {e}");
            }
        }
    }
    let stood_in = decision.stood_in;
    let result = |outcome| LiveResult {
        outcome,
        rejected: Vec::new(),
        stood_in: stood_in.clone(),
        keys_answered: false,
    };
    let (ids, stale) = match decision.verdict {
        Verdict::Keys { ids, stale } => (ids, stale),
        Verdict::NotAllowed => return result(Outcome::NotAllowed),
        Verdict::NoSuchUser => return result(Outcome::NoSuchUser),
        Verdict::WrongIdentity(why) => return result(Outcome::WrongIdentity(why)),
        Verdict::Unavailable(e) => return result(Outcome::Unavailable(e)),
    };

    let mut found: HashMap<String, (PublicKey, Source)> = HashMap::new();
    let mut misses = Vec::new();
    let mut rejected = Vec::new();
    for id in &ids {
        let cached = cache.and_then(|c| c.key(id));
        if let Some(Err(e)) = cached
            .as_ref()
            .map(|k| k.check_min_rsa_bits(config.min_rsa_bits))
        {
            rejected.push(Rejected {
                id: id.clone(),
                reason: Rejection::Policy(e),
            });
            continue;
        }
        match cached {
            Some(key) if stale => {
                found.insert(id.clone(), (key, Source::Stale));
            }
            Some(key) => {
                found.insert(id.clone(), (key, Source::Cache));
            }
            None => misses.push(id.clone()),
        }
    }
    let fetched = match dir {
        Some(dir) if !misses.is_empty() => {
            tokio::time::timeout_at(deadline, dir.get_keys(iam_user, &misses))
                .await
                .unwrap_or_default()
        }
        _ => Vec::new(),
    };
    for (id, body) in misses.iter().zip(fetched) {
        let key = body
            .map_err(Rejection::Iam)
            .and_then(|b| PublicKey::parse(&b).map_err(Rejection::InvalidBody));
        let key = key.and_then(|k| {
            k.check_min_rsa_bits(config.min_rsa_bits)
                .map(|()| k)
                .map_err(Rejection::Policy)
        });
        match key {
            Ok(key) => {
                if let Some(c) = cache {
                    if let Err(e) = c.store_key(id, &key) {
                        tracing::warn!("key not cached: {e}");
                    }
                }
                let source = if stale { Source::Stale } else { Source::Live };
                found.insert(id.clone(), (key, source));
            }
            Err(reason) => rejected.push(Rejected {
                id: id.clone(),
                reason,
            }),
        }
    }
    let keys = ids
        .iter()
        .filter_map(|id| {
            found.remove(id).map(|(key, source)| ServedKey {
                id: id.clone(),
                key,
                source,
            })
        })
        .collect();
    LiveResult {
        outcome: Outcome::Keys(keys),
        rejected,
        stood_in,
        keys_answered: false,
    }
}

/// The directory `stale` passes to `settle`: never called, it only names a type.
struct NoDirectory;

impl Directory for NoDirectory {
    async fn list_keys(&self, _: &str) -> Result<Vec<KeyMeta>, IamError> {
        Err(IamError::Unreachable("no directory".into()))
    }
    async fn get_keys(&self, _: &str, ids: &[String]) -> Vec<Result<String, IamError>> {
        ids.iter()
            .map(|_| Err(IamError::Unreachable("no directory".into())))
            .collect()
    }
    async fn groups_for_user(&self, _: &str) -> Result<Vec<String>, IamError> {
        Err(IamError::Unreachable("no directory".into()))
    }
    async fn identity(&self, _: &str) -> Result<Identity, IamError> {
        Err(IamError::Unreachable("no directory".into()))
    }
    fn calls(&self) -> usize {
        0
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
pub(crate) mod tests {
    use std::cell::{Cell, RefCell};
    use std::time::Duration;

    use super::*;
    use crate::accounts::ownership::OwnershipRecord;

    pub(crate) const ED: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl alice";
    pub(crate) const ALICE_ID: &str = "AIDAALICE0000000001";

    /// An in-memory IAM directory. IAM names are case-insensitive, as in real IAM (moto's
    /// are not): every call finds the user whatever the case, and GetUser answers IAM's own
    /// spelling.
    pub(crate) struct Fake {
        pub(crate) name: String,
        pub(crate) user_id: String,
        pub(crate) keys: Vec<(String, bool, String)>,
        pub(crate) groups: Vec<String>,
        /// Per call kind ("keys", "groups", "identity"): the error it fails with.
        pub(crate) fail: RefCell<Vec<(&'static str, IamError)>>,
        pub(crate) calls: Cell<usize>,
    }

    impl Fake {
        fn call(&self, kind: &'static str, user: &str) -> Result<(), IamError> {
            self.calls.set(self.calls.get() + 1);
            if let Some((_, e)) = self.fail.borrow().iter().find(|(k, _)| *k == kind) {
                return Err(e.clone());
            }
            if user.eq_ignore_ascii_case(&self.name) {
                Ok(())
            } else {
                Err(IamError::NotFound(user.to_owned()))
            }
        }

        pub(crate) fn failing(self, kind: &'static str, e: IamError) -> Fake {
            self.fail.borrow_mut().push((kind, e));
            self
        }
    }

    impl Directory for Fake {
        async fn list_keys(&self, user: &str) -> Result<Vec<KeyMeta>, IamError> {
            self.call("keys", user)?;
            Ok(self
                .keys
                .iter()
                .map(|(id, active, _)| KeyMeta {
                    id: id.clone(),
                    active: *active,
                    uploaded: String::new(),
                })
                .collect())
        }
        async fn get_keys(&self, _: &str, ids: &[String]) -> Vec<Result<String, IamError>> {
            self.calls.set(self.calls.get() + ids.len());
            ids.iter()
                .map(|id| {
                    self.keys
                        .iter()
                        .find(|k| &k.0 == id)
                        .map(|k| k.2.clone())
                        .ok_or(IamError::NotFound(id.clone()))
                })
                .collect()
        }
        async fn groups_for_user(&self, user: &str) -> Result<Vec<String>, IamError> {
            self.call("groups", user)?;
            Ok(self.groups.clone())
        }
        async fn identity(&self, user: &str) -> Result<Identity, IamError> {
            self.call("identity", user)?;
            Ok(Identity {
                user_name: self.name.clone(),
                user_id: self.user_id.clone(),
            })
        }
        fn calls(&self) -> usize {
            self.calls.get()
        }
    }

    /// Local accounts: (name, uid, record's UserId if any).
    pub(crate) struct Accounts(pub(crate) Vec<(&'static str, u32, Option<&'static str>)>);
    impl LocalAccounts for Accounts {
        fn uid(&self, n: &str) -> Result<Option<u32>, AccountDbError> {
            if n == "nss-down" {
                return Err(AccountDbError(nix::errno::Errno::EIO));
            }
            Ok(self.0.iter().find(|a| a.0 == n).map(|a| a.1))
        }
        fn record(&self, n: &str) -> Option<OwnershipRecord> {
            self.0.iter().find(|a| a.0 == n).and_then(|a| {
                a.2.map(|id| OwnershipRecord {
                    iam_user: n.into(),
                    iam_user_id: id.into(),
                    uid: a.1,
                    created_at: 0,
                })
            })
        }
    }

    pub(crate) fn config(groups: &[&str]) -> Config {
        Config {
            allowed_groups: groups.iter().map(|s| s.to_string()).collect(),
            ..Config::default()
        }
    }

    pub(crate) fn fake(keys: Vec<(&str, bool, &str)>, groups: &[&str]) -> Fake {
        Fake {
            name: "alice".into(),
            user_id: ALICE_ID.into(),
            keys: keys
                .into_iter()
                .map(|(a, b, c)| (a.to_string(), b, c.to_string()))
                .collect(),
            groups: groups.iter().map(|s| s.to_string()).collect(),
            fail: RefCell::new(Vec::new()),
            calls: Cell::new(0),
        }
    }

    pub(crate) fn cache() -> (tempfile::TempDir, Cache) {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open_with(&dir.path().join("c"), cache::Access::ReadWrite).unwrap();
        (dir, cache)
    }

    pub(crate) fn at(secs: u64) -> SystemTime {
        crate::clock::from_unix_secs(secs)
    }

    /// alice's account, bound to her UserId.
    fn alice() -> Gate {
        Gate {
            iam_user: "alice".into(),
            bound_to: Some(ALICE_ID.into()),
        }
    }

    async fn look(c: &Config, dir: &Fake, cache: Option<&Cache>, secs: u64) -> LiveResult {
        live(c, dir, cache, "alice", &alice(), at(secs), far()).await
    }

    /// A deadline no test reaches.
    fn far() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    fn ids(outcome: &Outcome) -> Vec<(&str, Source)> {
        match outcome {
            Outcome::Keys(ks) => ks.iter().map(|k| (k.id.as_str(), k.source)).collect(),
            other => panic!("no keys: {other:?}"),
        }
    }

    pub(crate) fn down() -> IamError {
        IamError::Unreachable("throttled".into())
    }

    #[test]
    fn gate_refuses_without_iam() {
        let c = config(&["*"]);
        let local = Accounts(vec![
            ("ubuntu", 1000, None),
            ("owned", 4000, Some(ALICE_ID)),
        ]);
        assert_eq!(gate(&c, "root", &local), Err(Refusal::Reserved));
        assert_eq!(gate(&c, "ubuntu", &local), Err(Refusal::LocalAccount));
        assert_eq!(gate(&c, "Bad;name", &local), Err(Refusal::InvalidName));
        assert!(matches!(
            gate(&c, "a_9", &local),
            Err(Refusal::Unmappable(_))
        ));
        assert_eq!(
            gate(&c, "owned", &local).unwrap().bound_to.as_deref(),
            Some(ALICE_ID)
        );
        assert_eq!(gate(&c, "_alice", &local).unwrap().iam_user, "Alice");
        assert_eq!(gate(&c, "_alice", &local).unwrap().bound_to, None);
        assert!(matches!(
            gate(&c, "nss-down", &local),
            Err(Refusal::AccountDatabase(_))
        ));
        assert_eq!(
            gate(&config(&[]), "alice", &local),
            Err(Refusal::NobodyAllowed)
        );
    }

    #[test]
    fn c1_a_record_for_another_uid_or_without_user_id_is_not_ownership() {
        let c = config(&["*"]);
        struct Remade;
        impl LocalAccounts for Remade {
            fn uid(&self, _: &str) -> Result<Option<u32>, AccountDbError> {
                Ok(Some(4242))
            }
            fn record(&self, n: &str) -> Option<OwnershipRecord> {
                Some(OwnershipRecord {
                    iam_user: n.into(),
                    iam_user_id: if n == "carol" { ALICE_ID } else { "" }.into(),
                    uid: if n == "carol" { 4000 } else { 4242 },
                    created_at: 0,
                })
            }
        }
        assert_eq!(gate(&c, "carol", &Remade), Err(Refusal::LocalAccount));
        assert_eq!(gate(&c, "dave", &Remade), Err(Refusal::LocalAccount));
    }

    #[tokio::test]
    async fn warm_lookup_makes_one_call_and_skips_inactive_keys() {
        let (_d, cache) = cache();
        let dir = fake(vec![("K1", true, ED), ("K2", false, ED)], &[]);
        let c = config(&["*"]);
        let first = look(&c, &dir, Some(&cache), 100).await;
        assert_eq!(ids(&first.outcome), vec![("K1", Source::Live)]);
        assert_eq!(dir.calls(), 3, "list + identity + one body");
        let warm = look(&c, &dir, Some(&cache), 101).await;
        assert_eq!(ids(&warm.outcome), vec![("K1", Source::Cache)]);
        assert_eq!(dir.calls(), 4);
    }

    #[tokio::test]
    async fn group_gate_and_identity_are_read_once_per_ttl() {
        let (_d, cache) = cache();
        let dir = fake(vec![("K1", true, ED)], &["ops"]);
        let c = config(&["ops"]);
        look(&c, &dir, Some(&cache), 100).await;
        assert_eq!(dir.calls(), 4, "list + groups + identity + one body");
        let warm = look(&c, &dir, Some(&cache), 110).await;
        assert_eq!(ids(&warm.outcome), vec![("K1", Source::Cache)]);
        assert_eq!(dir.calls(), 5);
        look(&c, &dir, Some(&cache), 1000).await;
        assert_eq!(
            dir.calls(),
            8,
            "groups and identity read again after the TTL"
        );
    }

    #[tokio::test]
    async fn user_outside_allowed_groups_gets_nothing() {
        let dir = fake(vec![("K1", true, ED)], &["dev"]);
        let r = look(&config(&["ops"]), &dir, None, 1).await;
        assert_eq!(r.outcome, Outcome::NotAllowed);
    }

    #[tokio::test]
    async fn invalid_body_is_rejected_and_others_still_served() {
        let dir = fake(
            vec![
                ("K1", true, "command=\"sh\" ssh-ed25519 AAAA x"),
                ("K2", true, ED),
            ],
            &[],
        );
        let r = look(&config(&["*"]), &dir, None, 1).await;
        assert_eq!(ids(&r.outcome), vec![("K2", Source::Live)]);
        assert_eq!(r.rejected.len(), 1);
        assert_eq!(r.rejected[0].id, "K1");
    }

    #[tokio::test]
    async fn deleted_user_purges_the_cache() {
        let (_d, cache) = cache();
        let c = config(&["*"]);
        look(&c, &fake(vec![("K1", true, ED)], &[]), Some(&cache), 1).await;
        let gone = Fake {
            name: "someone-else".into(),
            ..fake(vec![], &[])
        };
        let r = look(&c, &gone, Some(&cache), 2).await;
        assert_eq!(r.outcome, Outcome::NoSuchUser);
        let got = stale(&c, Some(&cache), "alice", &alice(), at(3), down()).await;
        assert!(matches!(got, Outcome::Unavailable(_)));
    }

    #[tokio::test]
    async fn outage_serves_stale_keys_only_within_max_stale() {
        let (_d, cache) = cache();
        let c = Config {
            max_stale: Duration::from_secs(60),
            ..config(&["*"])
        };
        look(&c, &fake(vec![("K1", true, ED)], &[]), Some(&cache), 1000).await;
        let within = stale(&c, Some(&cache), "alice", &alice(), at(1030), down()).await;
        assert_eq!(ids(&within), vec![("K1", Source::Stale)]);
        let beyond = stale(&c, Some(&cache), "alice", &alice(), at(1061), down()).await;
        assert!(matches!(beyond, Outcome::Unavailable(_)));
    }

    #[tokio::test]
    async fn h1_a_key_iam_just_showed_inactive_is_never_served_when_groups_fail() {
        let (_d, cache) = cache();
        let c = config(&["ops"]);
        look(
            &c,
            &fake(vec![("K1", true, ED)], &["ops"]),
            Some(&cache),
            1000,
        )
        .await;
        // Past the group TTL: ListGroupsForUser is asked again, and is throttled, while
        // ListSSHPublicKeys answers that K1 was just set Inactive.
        let revoked = fake(vec![("K1", false, ED)], &["ops"]).failing("groups", down());
        let r = look(&c, &revoked, Some(&cache), 2000).await;
        assert_eq!(ids(&r.outcome), vec![], "the revoked key was served");
        assert_eq!(
            r.stood_in.len(),
            1,
            "cached groups stood in: {:?}",
            r.stood_in
        );
        // An absent key likewise.
        let deleted = fake(vec![], &["ops"]).failing("groups", down());
        assert_eq!(
            ids(&look(&c, &deleted, Some(&cache), 2001).await.outcome),
            vec![]
        );
        // And a failing identity read changes nothing about that either.
        let r = look(
            &c,
            &fake(vec![("K1", false, ED)], &["ops"]).failing("identity", down()),
            Some(&cache),
            3000,
        )
        .await;
        assert_eq!(ids(&r.outcome), vec![]);
    }

    #[tokio::test]
    async fn h1_stale_keys_stand_in_only_for_a_failed_list_and_live_groups_still_decide() {
        let (_d, cache) = cache();
        let c = config(&["ops"]);
        look(
            &c,
            &fake(vec![("K1", true, ED)], &["ops"]),
            Some(&cache),
            1000,
        )
        .await;
        // Keys throttled, still in ops: the cached key set stands in.
        let still = fake(vec![("K1", true, ED)], &["ops"]).failing("keys", down());
        let r = look(&c, &still, Some(&cache), 2000).await;
        assert_eq!(ids(&r.outcome), vec![("K1", Source::Stale)]);
        // Keys throttled, groups answered (read again after the TTL): the user just left ops.
        let left = fake(vec![("K1", true, ED)], &["dev"]).failing("keys", down());
        let r = look(&c, &left, Some(&cache), 3000).await;
        assert_eq!(r.outcome, Outcome::NotAllowed);
    }

    #[tokio::test]
    async fn c2_a_re_created_user_gets_nothing_from_the_old_account() {
        let (_d, cache) = cache();
        let c = config(&["*"]);
        look(&c, &fake(vec![("K1", true, ED)], &[]), Some(&cache), 1000).await;
        let reborn = Fake {
            user_id: "AIDANEWPERSON000001".into(),
            ..fake(vec![("K9", true, ED)], &[])
        };
        // Within the TTL the identity is trusted from the cache, but K9 was never listed for
        // it: GetUser is asked before K9 is served, and the new UserId refuses the account.
        let r = look(&c, &reborn, Some(&cache), 1001).await;
        let Outcome::WrongIdentity(why) = &r.outcome else {
            panic!("{:?}", r.outcome)
        };
        assert!(
            matches!(why, WrongIdentity::Remade { bound, user_id, .. }
                if bound == ALICE_ID && user_id == "AIDANEWPERSON000001"),
            "{why}"
        );
        assert_eq!(reborn.calls(), 2, "ListSSHPublicKeys, then GetUser");
        // The cache is purged, so no stale key set of the old person stands in later.
        let s = stale(&c, Some(&cache), "alice", &alice(), at(1002), down()).await;
        assert!(matches!(s, Outcome::Unavailable(_)));
        // Once the TTL has passed, GetUser is asked anyway.
        look(&c, &fake(vec![("K1", true, ED)], &[]), Some(&cache), 2000).await;
        let r = look(&c, &reborn, Some(&cache), 3000).await;
        assert!(
            matches!(r.outcome, Outcome::WrongIdentity(_)),
            "{:?}",
            r.outcome
        );
    }

    #[tokio::test]
    async fn c2_a_new_key_within_the_ttl_costs_one_get_user_and_is_served() {
        let (_d, cache) = cache();
        let c = config(&["*"]);
        look(&c, &fake(vec![("K1", true, ED)], &[]), Some(&cache), 1000).await;
        let more = fake(vec![("K1", true, ED), ("K2", true, ED)], &[]);
        let r = look(&c, &more, Some(&cache), 1001).await;
        assert_eq!(
            ids(&r.outcome),
            vec![("K1", Source::Cache), ("K2", Source::Live)]
        );
        assert_eq!(more.calls(), 3, "list, GetUser, K2's body");
        // Then the warm path is one call again.
        let warm = fake(vec![("K1", true, ED), ("K2", true, ED)], &[]);
        look(&c, &warm, Some(&cache), 1002).await;
        assert_eq!(warm.calls(), 1);
    }

    #[tokio::test]
    async fn c2_while_get_user_fails_only_keys_listed_for_the_verified_identity_are_served() {
        let (_d, cache) = cache();
        let c = Config {
            group_cache_ttl: Duration::ZERO,
            ..config(&["*"])
        };
        look(&c, &fake(vec![("K1", true, ED)], &[]), Some(&cache), 1000).await;
        let reborn = Fake {
            user_id: "AIDANEWPERSON000001".into(),
            ..fake(vec![("K1", true, ED), ("K9", true, ED)], &[])
        }
        .failing("identity", down());
        let r = look(&c, &reborn, Some(&cache), 1001).await;
        assert_eq!(ids(&r.outcome), vec![("K1", Source::Cache)]);
        // Nor is K9 remembered as verified for a later outage.
        let s = stale(&c, Some(&cache), "alice", &alice(), at(1002), down()).await;
        assert_eq!(ids(&s), vec![("K1", Source::Stale)]);
    }

    #[tokio::test]
    async fn h1_a_read_that_hangs_past_the_deadline_does_not_discard_the_others() {
        struct Hanging(Fake);
        impl Directory for Hanging {
            async fn list_keys(&self, u: &str) -> Result<Vec<KeyMeta>, IamError> {
                self.0.list_keys(u).await
            }
            async fn get_keys(&self, u: &str, ids: &[String]) -> Vec<Result<String, IamError>> {
                self.0.get_keys(u, ids).await
            }
            async fn groups_for_user(&self, _: &str) -> Result<Vec<String>, IamError> {
                std::future::pending().await
            }
            async fn identity(&self, u: &str) -> Result<Identity, IamError> {
                self.0.identity(u).await
            }
            fn calls(&self) -> usize {
                self.0.calls()
            }
        }
        let (_d, cache) = cache();
        let c = Config {
            group_cache_ttl: Duration::ZERO,
            ..config(&["ops"])
        };
        look(
            &c,
            &fake(vec![("K1", true, ED)], &["ops"]),
            Some(&cache),
            1000,
        )
        .await;
        let revoked = Hanging(fake(vec![("K1", false, ED)], &["ops"]));
        let deadline = Instant::now() + Duration::from_millis(200);
        let r = live(
            &c,
            &revoked,
            Some(&cache),
            "alice",
            &alice(),
            at(1001),
            deadline,
        )
        .await;
        assert_eq!(ids(&r.outcome), vec![], "the revoked key was served");
    }

    #[tokio::test]
    async fn c2_only_the_canonical_spelling_of_an_iam_name_is_accepted() {
        let c = config(&["*"]);
        let bob = Fake {
            name: "Bob".into(),
            ..fake(vec![("K1", true, ED)], &[])
        };
        for (linux, iam) in [("_b_o_b", "BOB"), ("bob", "bob"), ("_b_ob", "BOb")] {
            let g = Gate {
                iam_user: iam.into(),
                bound_to: None,
            };
            let r = live(&c, &bob, None, linux, &g, at(1), far()).await;
            assert!(
                matches!(r.outcome, Outcome::WrongIdentity(_)),
                "{linux} reached Bob: {:?}",
                r.outcome
            );
        }
        let g = Gate {
            iam_user: "Bob".into(),
            bound_to: None,
        };
        let r = live(&c, &bob, None, "_bob", &g, at(1), far()).await;
        assert_eq!(ids(&r.outcome), vec![("K1", Source::Live)]);
    }

    #[tokio::test]
    async fn c2_stale_keys_need_a_verified_identity() {
        let (_d, cache) = cache();
        let c = config(&["*"]);
        look(&c, &fake(vec![("K1", true, ED)], &[]), Some(&cache), 1000).await;
        // A cache written before identities were checked has none: no stale keys.
        let mut old = cache.user("alice").unwrap();
        old.identity = None;
        cache.store_user("alice", &old).unwrap();
        let s = stale(&c, Some(&cache), "alice", &alice(), at(1001), down()).await;
        assert!(matches!(s, Outcome::Unavailable(_)));
    }

    #[test]
    fn offer_matches_only_the_offered_key() {
        let key = PublicKey::parse(ED).unwrap();
        assert!(Offer::default().matches(&key));
        let fp = Offer {
            fingerprint: Some(key.fingerprint()),
            key: None,
        };
        assert!(fp.matches(&key));
        let other = Offer {
            fingerprint: Some("SHA256:other".into()),
            key: None,
        };
        assert!(!other.matches(&key));
    }
}
