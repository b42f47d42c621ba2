//! The whole answer to sshd's question "which keys may log in as this user, now?".
//!
//! `answer` runs the decision tree of `keyward authorized-keys`: the gate (no IAM for names that
//! may not be looked up), IAM within one `lookup_timeout` budget (each read with its own
//! deadline inside it, `lookup::live`), the cache standing in when IAM cannot answer in time
//! (`lookup::stale`), the offered-key filter, and whether the answer is an outage (exit 3 when
//! nothing is printed). It returns the keys and the events to log; the cli only logs, writes and
//! maps to an exit code, so every branch here is reachable from unit tests with the in-memory
//! directory.
//!
//! Invariants: keys come only from `lookup` (validated, rebuilt, never echoed); an event
//! carries user-controlled text only as the caller must log it (escaped by `logging`).

use std::future::Future;
use std::time::SystemTime;

use tokio::time::{timeout, Instant};

use super::cache::{self, Cache};
use super::lookup::{self, Gate, Offer, Outcome, Refusal, Source, WrongIdentity};
use super::PublicKey;
use crate::accounts::local::LocalAccounts;
use crate::config::Config;
use crate::iam::{Directory, IamError};

/// Something to log about one lookup, in the order it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Not looked up in IAM at all.
    Refused(Refusal),
    /// IAM did not answer one read in time; cached data verified within `max_stale` stood in.
    StoodIn {
        part: &'static str,
        error: IamError,
    },
    /// IAM gave no answer at all within `lookup_timeout`.
    TimedOut(IamError),
    /// A lookup found IAM unreachable this recently (`outage_hold`): not asked, the cache
    /// answers. Value: seconds since.
    OutageKnown(u64),
    /// A key IAM listed but keyward would not print.
    Rejected {
        key_id: String,
        reason: lookup::Rejection,
    },
    /// A key printed for sshd.
    Served {
        key_id: String,
        fingerprint: String,
        source: Source,
    },
    NotAllowed,
    NoSuchUser,
    /// The name does not stand for the identity the account belongs to.
    WrongIdentity(WrongIdentity),
    /// Nothing served: IAM unavailable and no usable cached stand-in.
    Unavailable(IamError),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The IAM user the name maps to, once the gate let it through.
    pub iam_user: Option<String>,
    pub keys: Vec<PublicKey>,
    pub events: Vec<Event>,
    /// Why nothing could be served when IAM could not answer and nothing stood in (exit 3, or
    /// 4 for missing credentials or access denied, unless other keys are printed).
    pub unavailable: Option<IamError>,
}

/// What sshd gets: IAM's keys, then the chained command's keys that are not among them. The
/// outage (`unavailable`) is reported only with an empty answer: sshd ignores every key of a
/// command that exits non-zero, so keys that are printed (a chained command's during an IAM
/// outage, say) go with success, and the outage is only logged.
pub fn serve(
    iam: Vec<PublicKey>,
    unavailable: Option<IamError>,
    chained: Vec<PublicKey>,
) -> (Vec<PublicKey>, Option<IamError>) {
    let mut keys = iam;
    for key in chained {
        if !keys.iter().any(|k| k.blob() == key.blob()) {
            keys.push(key);
        }
    }
    let unavailable = unavailable.filter(|_| keys.is_empty());
    (keys, unavailable)
}

/// Answers for `linux_user`. `open_cache` is called only for a name the gate lets through;
/// `directory` makes the IAM client (its set-up counts against `lookup_timeout` too); `now` is
/// the clock.
pub async fn answer<'c, D: Directory>(
    config: &Config,
    linux_user: &str,
    offer: &Offer,
    local: &impl LocalAccounts,
    open_cache: impl FnOnce() -> Option<&'c Cache>,
    directory: impl Future<Output = D>,
    now: SystemTime,
) -> Answer {
    let mut events = Vec::new();
    let gate = match lookup::gate(config, linux_user, local) {
        Ok(gate) => gate,
        Err(refusal) => {
            return Answer {
                iam_user: None,
                keys: Vec::new(),
                events: vec![Event::Refused(refusal)],
                unavailable: None,
            }
        }
    };
    let cache = open_cache();
    let known_outage = cache
        .and_then(|c| c.outage_since())
        .filter(|since| cache::outage_holds(*since, now, config.outage_hold, config.max_stale));
    let outcome = match known_outage {
        Some(since) => {
            let ago = crate::clock::unix_secs(now).saturating_sub(since);
            events.push(Event::OutageKnown(ago));
            let why = IamError::Unreachable(format!(
                "IAM was unreachable {ago}s ago; not asked again within outage_hold"
            ));
            lookup::stale(config, cache, linux_user, &gate, now, why).await
        }
        // Boxed: the lookup's future is deep (client set-up, three concurrent reads, deadlines),
        // and nested whole in every caller's future it overflows rustc's layout query depth in
        // release builds.
        None => {
            Box::pin(ask_within_budget(
                config,
                linux_user,
                &gate,
                cache,
                directory,
                now,
                &mut events,
            ))
            .await
        }
    };
    let mut unavailable = None;
    let mut keys = Vec::new();
    match outcome {
        Outcome::Keys(served) => {
            for k in served.into_iter().filter(|k| offer.matches(&k.key)) {
                events.push(Event::Served {
                    key_id: k.id,
                    fingerprint: k.key.fingerprint(),
                    source: k.source,
                });
                keys.push(k.key);
            }
        }
        Outcome::NotAllowed => events.push(Event::NotAllowed),
        Outcome::NoSuchUser => events.push(Event::NoSuchUser),
        Outcome::WrongIdentity(why) => events.push(Event::WrongIdentity(why)),
        Outcome::Unavailable(e) => {
            unavailable = Some(e.clone());
            events.push(Event::Unavailable(e));
        }
    }
    Answer {
        iam_user: Some(gate.iam_user),
        keys,
        events,
        unavailable,
    }
}

/// IAM within `lookup_timeout`, each read bounded at 85 % of it so that the answers that did
/// arrive are used; if even the client set-up overruns the budget, the cache alone answers.
async fn ask_within_budget<D: Directory>(
    config: &Config,
    linux_user: &str,
    gate: &Gate,
    cache: Option<&Cache>,
    directory: impl Future<Output = D>,
    now: SystemTime,
    events: &mut Vec<Event>,
) -> Outcome {
    let budget = config.lookup_timeout;
    let deadline = Instant::now() + budget.mul_f64(0.85);
    let live = timeout(budget, async {
        let dir = directory.await;
        lookup::live(config, &dir, cache, linux_user, gate, now, deadline).await
    })
    .await;
    let mark = |answered: bool| {
        if let Some(c) = cache {
            if answered {
                c.clear_outage();
            } else if let Err(e) = c.mark_outage(now) {
                tracing::warn!("IAM outage not recorded: {e}");
            }
        }
    };
    match live {
        Ok(result) => {
            mark(result.keys_answered);
            events.extend(
                result
                    .stood_in
                    .into_iter()
                    .map(|(part, error)| Event::StoodIn { part, error }),
            );
            events.extend(result.rejected.into_iter().map(|r| Event::Rejected {
                key_id: r.id,
                reason: r.reason,
            }));
            result.outcome
        }
        Err(_) => {
            mark(false);
            let why = IamError::Unreachable(format!(
                "no answer within lookup_timeout ({})",
                humantime::format_duration(budget)
            ));
            events.push(Event::TimedOut(why.clone()));
            lookup::stale(config, cache, linux_user, gate, now, why).await
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::keys::lookup::tests::{at, cache, config, down, fake, Accounts, Fake, ALICE_ID, ED};

    fn nobody() -> Accounts {
        Accounts(vec![])
    }

    #[test]
    fn serve_adds_chained_keys_once_and_reports_an_outage_only_with_nothing_to_print() {
        let ed = PublicKey::parse(ED).unwrap();
        let other = PublicKey::parse(
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDrBa5jwefohSTnzHzXws2y0UBRW0rArbtyy5loPvxiB y",
        )
        .unwrap();
        let down = || Some(IamError::Unreachable("timed out".into()));
        // The same key from IAM and the chain is printed once.
        let (keys, outage) = serve(vec![ed.clone()], None, vec![ed.clone(), other.clone()]);
        assert_eq!(keys, [ed.clone(), other.clone()]);
        assert_eq!(outage, None);
        // IAM down, the chain answers: its keys are printed and the exit is success.
        let (keys, outage) = serve(vec![], down(), vec![other.clone()]);
        assert_eq!(keys, [other]);
        assert_eq!(outage, None);
        // IAM down and nothing else: the outage is the exit code.
        let (keys, outage) = serve(vec![], down(), vec![]);
        assert!(keys.is_empty());
        assert_eq!(outage, down());
    }

    async fn ask(c: &Config, dir: Fake, cache: Option<&Cache>, offer: &Offer, secs: u64) -> Answer {
        answer(
            c,
            "alice",
            offer,
            &nobody(),
            || cache,
            async { dir },
            at(secs),
        )
        .await
    }

    /// alice's directory: one Active key K1, in `groups`.
    fn k1(groups: &[&str]) -> Fake {
        fake(vec![("K1", true, ED)], groups)
    }

    /// A first lookup with IAM up, which fills the cache.
    async fn fill(c: &Config, cache: &Cache, groups: &[&str], secs: u64) {
        ask(c, k1(groups), Some(cache), &Offer::default(), secs).await;
    }

    fn served(a: &Answer) -> Vec<(String, Source)> {
        a.events
            .iter()
            .filter_map(|e| match e {
                Event::Served { key_id, source, .. } => Some((key_id.clone(), *source)),
                _ => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn a_refused_name_makes_no_iam_call_and_is_one_event() {
        let dir = k1(&[]);
        let a = answer(
            &config(&["*"]),
            "root",
            &Offer::default(),
            &nobody(),
            || None,
            async { &dir },
            at(1),
        )
        .await;
        assert_eq!(a.events, vec![Event::Refused(Refusal::Reserved)]);
        assert!(a.keys.is_empty() && a.unavailable.is_none());
        assert_eq!(dir.calls(), 0);
    }

    #[tokio::test]
    async fn keys_are_served_live_then_from_the_cache_and_only_the_offered_one() {
        let (_d, cache) = cache();
        let c = config(&["*"]);
        let first = ask(&c, k1(&[]), Some(&cache), &Offer::default(), 1).await;
        assert_eq!(served(&first), vec![("K1".into(), Source::Live)]);
        assert_eq!(first.iam_user.as_deref(), Some("alice"));
        let other = Offer {
            fingerprint: Some("SHA256:someone-else".into()),
            key: None,
        };
        let filtered = ask(&c, k1(&[]), Some(&cache), &other, 2).await;
        assert!(filtered.keys.is_empty() && served(&filtered).is_empty());
        let key = PublicKey::parse(ED).unwrap();
        let offered = Offer {
            fingerprint: Some(key.fingerprint()),
            key: Some(key),
        };
        let warm = ask(&c, k1(&[]), Some(&cache), &offered, 3).await;
        assert_eq!(served(&warm), vec![("K1".into(), Source::Cache)]);
    }

    #[tokio::test]
    async fn a_directory_that_never_comes_is_bounded_and_the_cache_stands_in_within_max_stale() {
        let (_d, cache) = cache();
        let c = Config {
            lookup_timeout: Duration::from_millis(100),
            max_stale: Duration::from_secs(60),
            ..config(&["*"])
        };
        fill(&c, &cache, &[], 1000).await;
        let never = std::future::pending::<Fake>();
        let within = answer(
            &c,
            "alice",
            &Offer::default(),
            &nobody(),
            || Some(&cache),
            never,
            at(1030),
        )
        .await;
        assert!(
            matches!(within.events[0], Event::TimedOut(_)),
            "{:?}",
            within.events
        );
        assert_eq!(served(&within), vec![("K1".into(), Source::Stale)]);
        assert!(within.unavailable.is_none());
        let never = std::future::pending::<Fake>();
        let beyond = answer(
            &c,
            "alice",
            &Offer::default(),
            &nobody(),
            || Some(&cache),
            never,
            at(1061),
        )
        .await;
        assert!(
            beyond.keys.is_empty() && matches!(beyond.unavailable, Some(IamError::Unreachable(_))),
            "{:?}",
            beyond.events
        );
        assert!(matches!(beyond.events.last(), Some(Event::Unavailable(_))));
    }

    #[tokio::test]
    async fn a_failed_read_with_a_stand_in_is_an_event_and_no_outage() {
        let (_d, cache) = cache();
        let c = Config {
            group_cache_ttl: Duration::ZERO,
            ..config(&["ops"])
        };
        fill(&c, &cache, &["ops"], 1000).await;
        let throttled = k1(&["ops"]).failing("groups", down());
        let a = ask(&c, throttled, Some(&cache), &Offer::default(), 1001).await;
        assert!(
            matches!(
                a.events[0],
                Event::StoodIn {
                    part: "ListGroupsForUser",
                    ..
                }
            ),
            "{:?}",
            a.events
        );
        assert_eq!(a.keys.len(), 1);
    }

    #[tokio::test]
    async fn refusals_after_iam_are_single_events_without_keys() {
        let c = config(&["ops"]);
        let a = ask(
            &c,
            fake(vec![("K1", true, ED)], &["dev"]),
            None,
            &Offer::default(),
            1,
        )
        .await;
        assert_eq!(a.events, vec![Event::NotAllowed]);
        let gone = Fake {
            name: "someone-else".into(),
            ..fake(vec![], &[])
        };
        let a = ask(&c, gone, None, &Offer::default(), 1).await;
        assert_eq!(a.events, vec![Event::NoSuchUser]);
        let bound = Accounts(vec![("alice", 4000, Some("AIDAOTHER000000001"))]);
        let dir = k1(&["ops"]);
        let a = answer(
            &c,
            "alice",
            &Offer::default(),
            &bound,
            || None,
            async { dir },
            at(1),
        )
        .await;
        assert!(
            matches!(&a.events[..], [Event::WrongIdentity(why)] if why.to_string().contains(ALICE_ID)),
            "{:?}",
            a.events
        );
        let invalid = fake(
            vec![("K1", true, "command=\"sh\" ssh-ed25519 AAAA x")],
            &["ops"],
        );
        let a = ask(&c, invalid, None, &Offer::default(), 1).await;
        assert!(matches!(&a.events[..], [Event::Rejected { key_id, .. }] if key_id == "K1"));
    }

    #[tokio::test]
    async fn a_known_outage_is_not_asked_again_within_outage_hold_and_ends_when_iam_answers() {
        let (_d, cache) = cache();
        let c = Config {
            lookup_timeout: Duration::from_millis(100),
            outage_hold: Duration::from_secs(30),
            ..config(&["*"])
        };
        fill(&c, &cache, &[], 1000).await;
        assert_eq!(cache.outage_since(), None);
        // The key list fails: the cache stands in, and the outage is recorded.
        let down_dir = k1(&[]).failing("keys", down());
        let first = ask(&c, down_dir, Some(&cache), &Offer::default(), 1001).await;
        assert_eq!(served(&first), vec![("K1".into(), Source::Stale)]);
        assert_eq!(cache.outage_since(), Some(1001));
        // Within outage_hold: not asked at all.
        let dir = k1(&[]);
        let held = answer(
            &c,
            "alice",
            &Offer::default(),
            &nobody(),
            || Some(&cache),
            async { &dir },
            at(1020),
        )
        .await;
        assert_eq!(dir.calls(), 0);
        assert!(
            matches!(held.events[0], Event::OutageKnown(19)),
            "{:?}",
            held.events
        );
        assert_eq!(served(&held), vec![("K1".into(), Source::Stale)]);
        // Past it, IAM is asked; its answer ends the outage.
        let back = answer(
            &c,
            "alice",
            &Offer::default(),
            &nobody(),
            || Some(&cache),
            async { &dir },
            at(1031),
        )
        .await;
        assert!(dir.calls() > 0);
        assert_eq!(served(&back), vec![("K1".into(), Source::Cache)]);
        assert_eq!(cache.outage_since(), None);
    }

    #[tokio::test]
    async fn a_failing_group_read_is_not_an_outage_of_the_key_list() {
        let (_d, cache) = cache();
        let c = Config {
            group_cache_ttl: Duration::ZERO,
            ..config(&["ops"])
        };
        fill(&c, &cache, &["ops"], 1000).await;
        let throttled = k1(&["ops"]).failing("groups", down());
        ask(&c, throttled, Some(&cache), &Offer::default(), 1001).await;
        assert_eq!(cache.outage_since(), None, "the key list answered");
    }
}
