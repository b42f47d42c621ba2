//! Reading IAM for `sync`: one complete snapshot, or nothing.
//!
//! The snapshot decides who keeps a shell, so it is all-or-nothing: a failed, throttled or
//! truncated page anywhere makes the whole read fail, and a partial list is never mistaken for
//! "these people left". Only IAM's authoritative NoSuchEntity for one group counts as "this
//! group is gone". Costs ListGroups + one GetGroup per group read (+ ListUsers with
//! `allowed_groups = ["*"]` or `adopt_keymaker_accounts`), extra pages included; never a call
//! per user.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;

use crate::config::Config;
use crate::iam::{AwsIam, IamError};

pub use crate::iam::IamUser;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct IamGroup {
    pub name: String,
    /// The immutable GroupId (`AGPA…`) that GIDs are hashed from.
    pub id: String,
    pub members: Vec<IamUser>,
}

/// Everything `sync` needs from IAM, read completely.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IamSnapshot {
    /// Users allowed to log in, by UserId.
    pub allowed: BTreeMap<String, IamUser>,
    /// Groups whose name starts with `group_prefix`, by name.
    pub prefixed: BTreeMap<String, IamGroup>,
    /// UserIds of the members of `sudo_groups`.
    pub sudoers: BTreeSet<String>,
    /// IAM users known not to be allowed, by UserId: members of the groups read, and with
    /// `adopt_keymaker_accounts` every IAM user (one ListUsers), so that each of keymaker's
    /// accounts gets a stated outcome in the plan. Never a reason to change an account.
    pub others: BTreeMap<String, IamUser>,
}

/// The IAM reads `sync` makes. Production is [`AwsIam`]; tests use an in-memory fake.
pub trait SyncDirectory {
    /// (GroupName, GroupId) of every group.
    fn list_groups(&self) -> impl Future<Output = Result<Vec<(String, String)>, IamError>>;
    /// (GroupId, members).
    fn get_group(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<(String, Vec<IamUser>), IamError>>;
    /// Every user.
    fn list_users(&self) -> impl Future<Output = Result<Vec<IamUser>, IamError>>;
}

impl SyncDirectory for AwsIam {
    async fn list_groups(&self) -> Result<Vec<(String, String)>, IamError> {
        AwsIam::list_groups(self).await
    }

    async fn get_group(&self, name: &str) -> Result<(String, Vec<IamUser>), IamError> {
        AwsIam::get_group(self, name).await
    }

    async fn list_users(&self) -> Result<Vec<IamUser>, IamError> {
        AwsIam::list_users(self).await
    }
}

/// (name, id) of each user, for `check_names`.
fn pairs(users: &[IamUser]) -> impl Iterator<Item = (&str, &str)> {
    users.iter().map(|u| (u.name.as_str(), u.id.as_str()))
}

/// IAM names are `[\w+=,.@-]` (users at most 64, groups 128) and ids `[\w]`: anything else
/// did not come from IAM as it is, so the whole answer is treated as malformed (an outage),
/// never acted on or echoed into a log line.
fn check_names<'a>(
    what: &str,
    mut pairs: impl Iterator<Item = (&'a str, &'a str)>,
) -> Result<(), IamError> {
    let bad = pairs.find(|(name, id)| {
        !crate::config::is_valid_iam_group_name(name)
            || !crate::accounts::ownership::is_plausible_user_id(id)
    });
    match bad {
        Some((name, _)) => Err(IamError::Unreachable(format!(
            "{what} answered a name or id IAM cannot have (\"{}\"): a malformed answer is treated as no answer",
            crate::logging::untrusted(name)
        ))),
        None => Ok(()),
    }
}

/// Reads the snapshot. Any error but a group's NoSuchEntity fails the whole read.
///
/// GetGroup calls overlap, at most `sync_concurrency` at a time (a small default): an hourly
/// job gains little from more, and a burst of concurrent calls from every host at the top of
/// the hour is what gets IAM to throttle. A throttled call is retried by the SDK's standard
/// strategy (exponential backoff with full jitter, 3 attempts, counted as one call); a call
/// still failing fails the read, and the calls in flight are dropped unanswered.
pub async fn read(config: &Config, iam: &impl SyncDirectory) -> Result<IamSnapshot, IamError> {
    let listed = iam.list_groups().await?;
    check_names(
        "ListGroups",
        listed.iter().map(|(n, i)| (n.as_str(), i.as_str())),
    )?;
    let prefixed_names: BTreeSet<String> = listed
        .into_iter()
        .map(|(name, _)| name)
        .filter(|name| name.starts_with(&config.group_prefix))
        .collect();
    let allowed_names: BTreeSet<String> = if config.allows_everyone() {
        BTreeSet::new()
    } else {
        config.allowed_groups.iter().cloned().collect()
    };
    let sudo_names: BTreeSet<String> = config.sudo_groups.iter().cloned().collect();

    let wanted = prefixed_names
        .iter()
        .chain(&allowed_names)
        .chain(&sudo_names)
        .cloned()
        .collect::<BTreeSet<String>>();
    let reads = wanted.into_iter().map(|name| async move {
        let group = match iam.get_group(&name).await {
            Ok((id, members)) => {
                check_names("GetGroup", pairs(&members))?;
                check_names("GetGroup", [(name.as_str(), id.as_str())].into_iter())?;
                Some(IamGroup {
                    name: name.clone(),
                    id,
                    members,
                })
            }
            // Deleted (or never created): an authoritative answer about this group only.
            Err(IamError::NotFound(_)) => {
                tracing::warn!(group = name, "IAM group does not exist; counted as empty");
                None
            }
            Err(e) => return Err(e),
        };
        Ok((name, group))
    });
    let read_groups: BTreeMap<String, Option<IamGroup>> =
        bounded(reads, usize::from(config.sync_concurrency))
            .await?
            .into_iter()
            .collect();

    let members_of = |names: &BTreeSet<String>| -> Vec<IamUser> {
        names
            .iter()
            .filter_map(|n| read_groups.get(n).and_then(Option::as_ref))
            .flat_map(|g| g.members.iter().cloned())
            .collect()
    };
    let listed = if config.allows_everyone() || config.adopt_keymaker_accounts {
        let listed = iam.list_users().await?;
        check_names("ListUsers", pairs(&listed))?;
        Some(listed)
    } else {
        None
    };
    let allowed_users = match (&listed, config.allows_everyone()) {
        (Some(all), true) => all.clone(),
        _ => members_of(&allowed_names),
    };
    let allowed: BTreeMap<String, IamUser> = allowed_users
        .into_iter()
        .map(|u| (u.id.clone(), u))
        .collect();
    let others = listed
        .unwrap_or_default()
        .into_iter()
        .chain(
            read_groups
                .values()
                .flatten()
                .flat_map(|g| g.members.clone()),
        )
        .filter(|u| !allowed.contains_key(&u.id))
        .map(|u| (u.id.clone(), u))
        .collect();
    Ok(IamSnapshot {
        allowed,
        others,
        prefixed: prefixed_names
            .iter()
            .filter_map(|n| read_groups.get(n).cloned().flatten())
            .map(|g| (g.name.clone(), g))
            .collect(),
        sudoers: members_of(&sudo_names).into_iter().map(|u| u.id).collect(),
    })
}

/// Runs `jobs` with at most `limit` (at least 1) in flight, starting them in order, and
/// returns their results in order; the first error ends the run and drops the jobs in flight.
/// One task: the jobs borrow the caller's client and need not be `Send`.
pub async fn bounded<T, E, F>(jobs: impl IntoIterator<Item = F>, limit: usize) -> Result<Vec<T>, E>
where
    F: Future<Output = Result<T, E>>,
{
    let limit = limit.max(1);
    let mut pending = jobs.into_iter().enumerate();
    let mut running: Vec<(usize, std::pin::Pin<Box<F>>)> = Vec::with_capacity(limit);
    let mut done: BTreeMap<usize, T> = BTreeMap::new();
    std::future::poll_fn(|cx| loop {
        while running.len() < limit {
            match pending.next() {
                Some((i, job)) => running.push((i, Box::pin(job))),
                None => break,
            }
        }
        if running.is_empty() {
            return std::task::Poll::Ready(Ok(()));
        }
        let before = running.len();
        let mut k = 0;
        while k < running.len() {
            match running[k].1.as_mut().poll(cx) {
                std::task::Poll::Ready(Ok(value)) => {
                    let (i, _) = running.swap_remove(k);
                    done.insert(i, value);
                }
                std::task::Poll::Ready(Err(e)) => return std::task::Poll::Ready(Err(e)),
                std::task::Poll::Pending => k += 1,
            }
        }
        if running.len() == before {
            return std::task::Poll::Pending;
        }
    })
    .await?;
    Ok(done.into_values().collect())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub mod fake {
    //! An in-memory IAM that counts calls and can fail the Nth one.

    use std::cell::Cell;
    use std::collections::BTreeMap;

    use super::*;

    /// The CreateDate every fake IAM user has (2020-09-13), before any fake account.
    pub const CREATED_AT: u64 = 1_600_000_000;

    #[derive(Default)]
    pub struct FakeIam {
        /// name → (GroupId, members).
        pub groups: BTreeMap<String, (String, Vec<IamUser>)>,
        pub users: Vec<IamUser>,
        pub calls: Cell<usize>,
        /// The call (1-based) that fails, and how.
        pub fail_at: Option<(usize, IamError)>,
        /// GetGroup calls started and not yet answered, and the most there ever were.
        pub in_flight: Cell<usize>,
        pub max_in_flight: Cell<usize>,
    }

    impl FakeIam {
        /// A group with members (UserName, UserId), each created at `CREATED_AT`.
        pub fn group(mut self, name: &str, id: &str, members: &[(&str, &str)]) -> FakeIam {
            let members: Vec<IamUser> = members
                .iter()
                .map(|(n, i)| IamUser {
                    name: n.to_string(),
                    id: i.to_string(),
                    created_at: Some(CREATED_AT),
                })
                .collect();
            for m in &members {
                if !self.users.contains(m) {
                    self.users.push(m.clone());
                }
            }
            self.groups.insert(name.into(), (id.into(), members));
            self
        }

        fn call(&self) -> Result<(), IamError> {
            self.calls.set(self.calls.get() + 1);
            match &self.fail_at {
                Some((n, e)) if *n == self.calls.get() => Err(e.clone()),
                _ => Ok(()),
            }
        }
    }

    impl SyncDirectory for FakeIam {
        async fn list_groups(&self) -> Result<Vec<(String, String)>, IamError> {
            self.call()?;
            Ok(self
                .groups
                .iter()
                .map(|(n, (id, _))| (n.clone(), id.clone()))
                .collect())
        }

        async fn get_group(&self, name: &str) -> Result<(String, Vec<IamUser>), IamError> {
            self.call()?;
            // Answered only after the caller had a chance to start other calls.
            self.in_flight.set(self.in_flight.get() + 1);
            self.max_in_flight
                .set(self.max_in_flight.get().max(self.in_flight.get()));
            tokio::task::yield_now().await;
            self.in_flight.set(self.in_flight.get() - 1);
            self.groups
                .get(name)
                .cloned()
                .ok_or_else(|| IamError::NotFound(name.into()))
        }

        async fn list_users(&self) -> Result<Vec<IamUser>, IamError> {
            self.call()?;
            Ok(self.users.clone())
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::fake::FakeIam;
    use super::*;

    fn block<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    fn config(allowed: &[&str], sudo: &[&str]) -> Config {
        Config {
            allowed_groups: allowed.iter().map(|s| s.to_string()).collect(),
            sudo_groups: sudo.iter().map(|s| s.to_string()).collect(),
            ..Config::default()
        }
    }

    fn iam() -> FakeIam {
        FakeIam::default()
            .group(
                "ops",
                "AGPAOPS",
                &[("alice", "AIDAALICE"), ("bob", "AIDABOB")],
            )
            .group("keyward_dev", "AGPADEV", &[("alice", "AIDAALICE")])
            .group("keyward_db", "AGPADB", &[("carol", "AIDACAROL")])
            .group("admins", "AGPAADM", &[("bob", "AIDABOB")])
            .group("other", "AGPAOTHER", &[("dave", "AIDADAVE")])
    }

    #[test]
    fn snapshot_costs_one_list_plus_one_call_per_group_read() {
        let iam = iam();
        let snap = block(read(&config(&["ops", "keyward_dev"], &["admins"]), &iam)).unwrap();
        // ListGroups + keyward_db, keyward_dev, ops, admins (keyward_dev read once).
        assert_eq!(iam.calls.get(), 5);
        assert_eq!(
            snap.allowed.keys().collect::<Vec<_>>(),
            ["AIDAALICE", "AIDABOB"]
        );
        assert_eq!(
            snap.prefixed.keys().collect::<Vec<_>>(),
            ["keyward_db", "keyward_dev"]
        );
        assert_eq!(snap.sudoers.iter().collect::<Vec<_>>(), ["AIDABOB"]);
    }

    #[test]
    fn group_reads_overlap_up_to_sync_concurrency_and_still_cost_one_call_each() {
        for (limit, want) in [(1, 1), (2, 2), (4, 4), (16, 10)] {
            let mut iam = FakeIam::default();
            for n in 0..10 {
                iam = iam.group(&format!("keyward_g{n}"), &format!("AGPAG{n}"), &[]);
            }
            let mut cfg = config(&[], &[]);
            cfg.sync_concurrency = limit;
            let snap = block(read(&cfg, &iam)).unwrap();
            assert_eq!(iam.calls.get(), 1 + 10, "limit {limit}");
            assert_eq!(iam.max_in_flight.get(), want, "limit {limit}");
            assert_eq!(snap.prefixed.len(), 10);
        }
    }

    #[test]
    fn bounded_keeps_the_order_and_stops_at_the_first_error() {
        let jobs = (0..7).map(|n| async move {
            tokio::task::yield_now().await;
            if n == 5 {
                Err(n)
            } else {
                Ok(n * 10)
            }
        });
        assert_eq!(block(bounded(jobs, 3)), Err(5));
        let jobs = (0..7).map(|n| async move {
            // Later jobs answer first: the results still come in the jobs' order.
            for _ in 0..(7 - n) {
                tokio::task::yield_now().await;
            }
            Ok::<_, ()>(n)
        });
        assert_eq!(block(bounded(jobs, 4)), Ok((0..7).collect::<Vec<_>>()));
        let none: Vec<std::future::Ready<Result<u8, ()>>> = Vec::new();
        assert_eq!(block(bounded(none, 0)), Ok(vec![]));
    }

    #[test]
    fn keymaker_migration_lists_every_user_to_account_for_keymakers_accounts() {
        let mut cfg = config(&["ops"], &[]);
        // Without adoption, only the members of the groups read are known.
        let snap = block(read(&cfg, &iam())).unwrap();
        assert_eq!(
            snap.others.values().map(|u| &u.name).collect::<Vec<_>>(),
            ["carol"]
        );
        cfg.uid_scheme = crate::accounts::ids::UidScheme::Keymaker;
        cfg.adopt_keymaker_accounts = true;
        let iam = iam();
        let snap = block(read(&cfg, &iam)).unwrap();
        // ListGroups + 3 groups + one ListUsers.
        assert_eq!(iam.calls.get(), 1 + 3 + 1);
        // CreateDate, the evidence of keymaker's adoption, comes along from both reads.
        assert!(snap
            .allowed
            .values()
            .chain(snap.others.values())
            .all(|u| u.created_at == Some(super::fake::CREATED_AT)));
        assert_eq!(
            snap.others.values().map(|u| &u.name).collect::<Vec<_>>(),
            ["carol", "dave"]
        );
        assert_eq!(snap.allowed.len(), 2);
    }

    #[test]
    fn everyone_allowed_reads_list_users_instead_of_groups() {
        let iam = iam();
        let snap = block(read(&config(&["*"], &[]), &iam)).unwrap();
        assert_eq!(iam.calls.get(), 1 + 2 + 1);
        assert_eq!(snap.allowed.len(), 4);
    }

    #[test]
    fn any_failed_call_fails_the_whole_read() {
        for n in 1..=5 {
            for err in [
                IamError::Unreachable("throttled".into()),
                IamError::AccessDenied {
                    action: "iam:GetGroup",
                    message: "no".into(),
                },
            ] {
                let mut iam = iam();
                iam.fail_at = Some((n, err.clone()));
                let got = block(read(&config(&["ops"], &["admins"]), &iam));
                assert_eq!(got, Err(err), "call {n}");
            }
        }
    }

    #[test]
    fn m1_a_name_iam_cannot_have_fails_the_whole_read() {
        for bad in ["evil\nINFO forged", "a b", "", "x\u{1b}[2J"] {
            let iam = iam().group("keyward_x", "AGPAX", &[(bad, "AIDAEVIL")]);
            let got = block(read(&config(&["ops"], &[]), &iam));
            assert!(
                matches!(&got, Err(IamError::Unreachable(m)) if !m.contains('\n')),
                "{bad:?}: {got:?}"
            );
        }
        let iam = iam().group("keyward_x", "AGPAX", &[("ok", "AIDA/../x")]);
        assert!(block(read(&config(&["ops"], &[]), &iam)).is_err());
    }

    #[test]
    fn missing_allowed_group_counts_as_empty_not_as_failure() {
        let iam = iam();
        let snap = block(read(&config(&["gone"], &[]), &iam)).unwrap();
        assert!(snap.allowed.is_empty());
    }
}
