//! Key lookup: which key lines sshd may accept for a Linux user, right now.
//!
//! `gate` decides without IAM whether a name may be looked up at all (reserved, unmappable and
//! pre-existing local accounts never reach IAM). `live` asks IAM (one call when warm), `stale`
//! answers from the cache while IAM is unreachable, within `max_stale`. Nothing here prints: the
//! caller writes the returned keys. Only an authoritative "no such user" purges the cache.

use std::collections::HashMap;
use std::time::SystemTime;

use super::cache::{self, Cache, UserRecord};
use super::PublicKey;
use crate::accounts::local::LocalAccounts;
use crate::accounts::names::{self, NameError};
use crate::config::Config;
use crate::iam::{Directory, IamError};

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
    #[error("allowed_groups is empty, so nobody may log in: set allowed_groups = [\"*\"] or list IAM groups in the config")]
    NobodyAllowed,
}

/// Decides, without IAM, whether `linux_user` may be looked up; returns the IAM user name.
pub fn gate(
    config: &Config,
    linux_user: &str,
    local: &impl LocalAccounts,
) -> Result<String, Refusal> {
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
    if local.exists(linux_user) && !local.owned_by_keyward(linux_user) {
        return Err(Refusal::LocalAccount);
    }
    if config.allowed_groups.is_empty() {
        return Err(Refusal::NobodyAllowed);
    }
    Ok(iam_user)
}

/// Where a printed key came from, for the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Body fetched from IAM during this lookup.
    Live,
    /// Status verified live; body from the cache (a key id's body never changes).
    Cache,
    /// IAM unreachable: the last verified key set, within `max_stale`.
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
    /// IAM could not answer and no usable cached key set exists.
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
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveResult {
    pub outcome: Outcome,
    pub rejected: Vec<Rejected>,
}

/// Asks IAM. Errors that say nothing about the user (`is_outage`) are returned for the caller
/// to fall back to `stale`; a missing user purges the cache.
pub async fn live(
    config: &Config,
    dir: &impl Directory,
    cache: Option<&Cache>,
    linux_user: &str,
    iam_user: &str,
    now: SystemTime,
) -> Result<LiveResult, IamError> {
    let record = cache
        .and_then(|c| c.user(linux_user))
        .filter(|r| r.iam_user == iam_user);
    let cached_groups = record.as_ref().and_then(|r| {
        let fresh = cache::groups_fresh(iam_user, r.groups_checked_at, now, config.group_cache_ttl);
        r.groups.clone().filter(|_| fresh)
    });
    let need_groups = !config.allows_everyone() && cached_groups.is_none();

    let (listed, groups) = if need_groups {
        let (listed, groups) = tokio::join!(dir.list_keys(iam_user), dir.groups_for_user(iam_user));
        (listed, groups.map(Some))
    } else {
        (dir.list_keys(iam_user).await, Ok(cached_groups))
    };
    let (listed, groups) = match (listed, groups) {
        (Err(IamError::NotFound(m)), _) | (_, Err(IamError::NotFound(m))) => {
            if let Some(c) = cache {
                c.forget_user(linux_user);
            }
            tracing::debug!(iam_user, "IAM has no such user: {m}");
            return Ok(LiveResult {
                outcome: Outcome::NoSuchUser,
                rejected: Vec::new(),
            });
        }
        (Err(e), _) | (_, Err(e)) => return Err(e),
        (Ok(listed), Ok(groups)) => (listed, groups),
    };

    let groups_checked_at = if need_groups {
        cache::unix_secs(now)
    } else {
        record.as_ref().map_or(0, |r| r.groups_checked_at)
    };
    let active: Vec<String> = listed
        .into_iter()
        .filter(|k| k.active)
        .map(|k| k.id)
        .collect();
    let allowed = is_allowed(config, groups.as_deref());
    if let Some(c) = cache {
        let record = UserRecord {
            iam_user: iam_user.to_owned(),
            verified_at: cache::unix_secs(now),
            active_keys: active.clone(),
            groups: groups.clone(),
            groups_checked_at,
        };
        if let Err(e) = c.store_user(linux_user, &record) {
            tracing::warn!("{e}");
        }
    }
    if !allowed {
        return Ok(LiveResult {
            outcome: Outcome::NotAllowed,
            rejected: Vec::new(),
        });
    }

    let mut found: HashMap<String, (PublicKey, Source)> = HashMap::new();
    let mut misses = Vec::new();
    for id in &active {
        match cache.and_then(|c| c.key(id)) {
            Some(key) => {
                found.insert(id.clone(), (key, Source::Cache));
            }
            None => misses.push(id.clone()),
        }
    }
    let mut rejected = Vec::new();
    let fetched = if misses.is_empty() {
        Vec::new()
    } else {
        dir.get_keys(iam_user, &misses).await
    };
    for (id, body) in misses.iter().zip(fetched) {
        match body.map_err(|e| e.to_string()).and_then(|b| {
            PublicKey::parse(&b).map_err(|e| format!("invalid key body from IAM: {e}"))
        }) {
            Ok(key) => {
                if let Some(c) = cache {
                    if let Err(e) = c.store_key(id, &key) {
                        tracing::warn!("{e}");
                    }
                }
                found.insert(id.clone(), (key, Source::Live));
            }
            Err(reason) => rejected.push(Rejected {
                id: id.clone(),
                reason,
            }),
        }
    }
    let keys = active
        .iter()
        .filter_map(|id| {
            found.remove(id).map(|(key, source)| ServedKey {
                id: id.clone(),
                key,
                source,
            })
        })
        .collect();
    Ok(LiveResult {
        outcome: Outcome::Keys(keys),
        rejected,
    })
}

/// Answers from the cache while IAM cannot: the last verified key set, if younger than
/// `max_stale` and if the cached groups still pass `allowed_groups`.
pub fn stale(
    config: &Config,
    cache: Option<&Cache>,
    linux_user: &str,
    iam_user: &str,
    now: SystemTime,
    why: IamError,
) -> Outcome {
    let Some(cache) = cache else {
        return Outcome::Unavailable(why);
    };
    let usable = cache.user(linux_user).filter(|r| {
        r.iam_user == iam_user && cache::stale_usable(r.verified_at, now, config.max_stale)
    });
    let Some(record) = usable else {
        return Outcome::Unavailable(why);
    };
    if !is_allowed(config, record.groups.as_deref()) {
        return Outcome::NotAllowed;
    }
    Outcome::Keys(
        record
            .active_keys
            .iter()
            .filter_map(|id| {
                cache.key(id).map(|key| ServedKey {
                    id: id.clone(),
                    key,
                    source: Source::Stale,
                })
            })
            .collect(),
    )
}

fn is_allowed(config: &Config, groups: Option<&[String]>) -> bool {
    config.allows_everyone()
        || groups.is_some_and(|gs| gs.iter().any(|g| config.allowed_groups.contains(g)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use std::cell::Cell;
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::iam::KeyMeta;

    const ED: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl alice";

    struct Fake {
        keys: Result<Vec<(String, bool, String)>, IamError>,
        groups: Vec<String>,
        calls: Cell<usize>,
    }

    impl Directory for Fake {
        async fn list_keys(&self, _: &str) -> Result<Vec<KeyMeta>, IamError> {
            self.calls.set(self.calls.get() + 1);
            self.keys.clone().map(|ks| {
                ks.into_iter()
                    .map(|(id, active, _)| KeyMeta {
                        id,
                        active,
                        uploaded: String::new(),
                    })
                    .collect()
            })
        }
        async fn get_keys(&self, _: &str, ids: &[String]) -> Vec<Result<String, IamError>> {
            self.calls.set(self.calls.get() + ids.len());
            let keys = self.keys.clone().unwrap_or_default();
            ids.iter()
                .map(|id| {
                    keys.iter()
                        .find(|k| &k.0 == id)
                        .map(|k| k.2.clone())
                        .ok_or(IamError::NotFound(id.clone()))
                })
                .collect()
        }
        async fn groups_for_user(&self, _: &str) -> Result<Vec<String>, IamError> {
            self.calls.set(self.calls.get() + 1);
            self.keys.as_ref().map_err(Clone::clone)?;
            Ok(self.groups.clone())
        }
        fn calls(&self) -> usize {
            self.calls.get()
        }
    }

    struct Accounts(&'static [&'static str], &'static [&'static str]);
    impl LocalAccounts for Accounts {
        fn exists(&self, n: &str) -> bool {
            self.0.contains(&n)
        }
        fn owned_by_keyward(&self, n: &str) -> bool {
            self.1.contains(&n)
        }
    }

    fn config(groups: &[&str]) -> Config {
        Config {
            allowed_groups: groups.iter().map(|s| s.to_string()).collect(),
            ..Config::default()
        }
    }

    fn fake(keys: Vec<(&str, bool, &str)>, groups: &[&str]) -> Fake {
        Fake {
            keys: Ok(keys
                .into_iter()
                .map(|(a, b, c)| (a.to_string(), b, c.to_string()))
                .collect()),
            groups: groups.iter().map(|s| s.to_string()).collect(),
            calls: Cell::new(0),
        }
    }

    fn cache() -> (tempfile::TempDir, Cache) {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open_with(&dir.path().join("c"), cache::Access::ReadWrite).unwrap();
        (dir, cache)
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn ids(outcome: &Outcome) -> Vec<(&str, Source)> {
        match outcome {
            Outcome::Keys(ks) => ks.iter().map(|k| (k.id.as_str(), k.source)).collect(),
            other => panic!("no keys: {other:?}"),
        }
    }

    #[test]
    fn gate_refuses_without_iam() {
        let c = config(&["*"]);
        let local = Accounts(&["ubuntu", "owned"], &["owned"]);
        assert_eq!(gate(&c, "root", &local), Err(Refusal::Reserved));
        assert_eq!(gate(&c, "ubuntu", &local), Err(Refusal::LocalAccount));
        assert_eq!(gate(&c, "Bad;name", &local), Err(Refusal::InvalidName));
        assert!(matches!(
            gate(&c, "a_9", &local),
            Err(Refusal::Unmappable(_))
        ));
        assert_eq!(gate(&c, "owned", &local), Ok("owned".into()));
        assert_eq!(gate(&c, "_alice", &local), Ok("Alice".into()));
        assert_eq!(
            gate(&config(&[]), "alice", &local),
            Err(Refusal::NobodyAllowed)
        );
    }

    #[tokio::test]
    async fn warm_lookup_makes_one_call_and_skips_inactive_keys() {
        let (_d, cache) = cache();
        let dir = fake(vec![("K1", true, ED), ("K2", false, ED)], &[]);
        let c = config(&["*"]);
        let first = live(&c, &dir, Some(&cache), "alice", "alice", at(100))
            .await
            .unwrap();
        assert_eq!(ids(&first.outcome), vec![("K1", Source::Live)]);
        assert_eq!(dir.calls(), 2);
        let warm = live(&c, &dir, Some(&cache), "alice", "alice", at(101))
            .await
            .unwrap();
        assert_eq!(ids(&warm.outcome), vec![("K1", Source::Cache)]);
        assert_eq!(dir.calls(), 3);
    }

    #[tokio::test]
    async fn group_gate_reads_groups_once_per_ttl() {
        let (_d, cache) = cache();
        let dir = fake(vec![("K1", true, ED)], &["ops"]);
        let c = config(&["ops"]);
        live(&c, &dir, Some(&cache), "alice", "alice", at(100))
            .await
            .unwrap();
        assert_eq!(dir.calls(), 3, "list + groups + one body");
        let warm = live(&c, &dir, Some(&cache), "alice", "alice", at(110))
            .await
            .unwrap();
        assert_eq!(ids(&warm.outcome), vec![("K1", Source::Cache)]);
        assert_eq!(dir.calls(), 4);
        live(&c, &dir, Some(&cache), "alice", "alice", at(1000))
            .await
            .unwrap();
        assert_eq!(dir.calls(), 6, "groups read again after the TTL");
    }

    #[tokio::test]
    async fn user_outside_allowed_groups_gets_nothing() {
        let dir = fake(vec![("K1", true, ED)], &["dev"]);
        let r = live(&config(&["ops"]), &dir, None, "alice", "alice", at(1))
            .await
            .unwrap();
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
        let r = live(&config(&["*"]), &dir, None, "alice", "alice", at(1))
            .await
            .unwrap();
        assert_eq!(ids(&r.outcome), vec![("K2", Source::Live)]);
        assert_eq!(r.rejected.len(), 1);
        assert_eq!(r.rejected[0].id, "K1");
    }

    #[tokio::test]
    async fn deleted_user_purges_the_cache() {
        let (_d, cache) = cache();
        let c = config(&["*"]);
        let dir = fake(vec![("K1", true, ED)], &[]);
        live(&c, &dir, Some(&cache), "alice", "alice", at(1))
            .await
            .unwrap();
        let gone = Fake {
            keys: Err(IamError::NotFound("alice".into())),
            ..fake(vec![], &[])
        };
        let r = live(&c, &gone, Some(&cache), "alice", "alice", at(2))
            .await
            .unwrap();
        assert_eq!(r.outcome, Outcome::NoSuchUser);
        let why = IamError::Unreachable("down".into());
        assert!(matches!(
            stale(&c, Some(&cache), "alice", "alice", at(3), why),
            Outcome::Unavailable(_)
        ));
    }

    #[tokio::test]
    async fn outage_serves_stale_keys_only_within_max_stale() {
        let (_d, cache) = cache();
        let c = Config {
            max_stale: Duration::from_secs(60),
            ..config(&["*"])
        };
        let dir = fake(vec![("K1", true, ED)], &[]);
        live(&c, &dir, Some(&cache), "alice", "alice", at(1000))
            .await
            .unwrap();
        let down = Fake {
            keys: Err(IamError::Unreachable("down".into())),
            ..fake(vec![], &[])
        };
        let err = live(&c, &down, Some(&cache), "alice", "alice", at(1030))
            .await
            .unwrap_err();
        assert!(err.is_outage());
        let within = stale(&c, Some(&cache), "alice", "alice", at(1030), err.clone());
        assert_eq!(ids(&within), vec![("K1", Source::Stale)]);
        let beyond = stale(&c, Some(&cache), "alice", "alice", at(1061), err);
        assert!(matches!(beyond, Outcome::Unavailable(_)));
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
