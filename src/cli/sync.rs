//! `keyward sync`: the hourly job that makes Linux accounts and groups follow IAM.
//!
//! Reads IAM once (all or nothing), reads the local account database under an exclusive lock,
//! plans, and prints (`--dry-run`) or applies the plan. An IAM outage, throttling or a partial
//! read changes nothing and exits 3 (4 for denied access); a plan the mass-change guard refuses
//! changes nothing and exits 1 unless `--force`.

use std::path::Path;
use std::time::{Instant, SystemTime};

use serde::Serialize;

use super::{Context, Exit};
use crate::clock::unix_secs;
use crate::iam::{total_calls, AwsIam, ClientOptions};
use crate::logging::{untrusted, Audited};
use crate::sync::apply::{self, message_id, Outcome, ShadowAccounts, SyncLock};
use crate::sync::local::SystemState;
use crate::sync::plan::{self, Action, Plan, Skipped};
use crate::sync::read;

#[derive(Debug, clap::Args)]
pub struct Sync {
    /// Print the plan and change nothing (runs without root, but keymaker adoption reads
    /// /etc/shadow: without root those accounts are refused with "run as root")
    #[arg(long)]
    dry_run: bool,
    /// Print the plan and the outcome as JSON on stdout
    #[arg(long)]
    json: bool,
    /// Apply a plan with more than max_removals removals (locks, deletions, groups deleted,
    /// memberships removed), or one that removes every managed account or group
    #[arg(long)]
    force: bool,
}

/// What happened, counted from the actions done (or planned, for a dry run).
#[derive(Debug, Default, Serialize)]
struct Summary {
    created: usize,
    adopted: usize,
    unlocked: usize,
    locked: usize,
    deleted: usize,
    groups_created: usize,
    groups_removed: usize,
    members_added: usize,
    members_removed: usize,
    sudoers_changed: bool,
}

impl Summary {
    fn of<'a>(actions: impl Iterator<Item = &'a Action>) -> Summary {
        let mut s = Summary::default();
        for a in actions {
            match a {
                Action::CreateUser { account, .. } => {
                    s.created += 1;
                    // Its memberships come with its useradd (`--groups`).
                    s.members_added += account.groups.len();
                }
                Action::AdoptUser { .. } | Action::AdoptGroup { .. } => s.adopted += 1,
                Action::Unlock { .. } => s.unlocked += 1,
                Action::Lock { .. } => s.locked += 1,
                Action::DeleteUser { .. } => s.deleted += 1,
                Action::CreateGroup { .. } => s.groups_created += 1,
                Action::DeleteGroup { .. } => s.groups_removed += 1,
                Action::AddMember { .. } => s.members_added += 1,
                Action::RemoveMember { .. } => s.members_removed += 1,
                Action::WriteSudoers { .. } | Action::RemoveSudoers => s.sudoers_changed = true,
                Action::ForgetGroup { .. } | Action::ForgetUser { .. } => {}
            }
        }
        s
    }
}

#[derive(Debug, Serialize)]
struct Report<'a> {
    dry_run: bool,
    applied: bool,
    /// Why nothing was applied (IAM unreadable, guard), if so.
    error: Option<String>,
    actions: &'a [Action],
    skipped: &'a [Skipped],
    failed: Vec<Failed<'a>>,
    summary: Summary,
    iam_calls: usize,
    elapsed_ms: u128,
}

#[derive(Debug, Serialize)]
struct Failed<'a> {
    #[serde(flatten)]
    action: &'a Action,
    error: &'a str,
}

impl Sync {
    pub async fn run(self, ctx: &Context) -> anyhow::Result<Exit> {
        let started = Instant::now();
        let (config, _) = ctx.load_config()?;
        if !self.dry_run && !nix::unistd::geteuid().is_root() {
            anyhow::bail!("sync changes accounts and must run as root (or use --dry-run)");
        }
        let options = ClientOptions::for_host(&config)?;
        let iam = AwsIam::new(&options).await;
        let calls_before = total_calls();
        let snapshot = match read::read(&config, &iam).await {
            Ok(snapshot) => snapshot,
            Err(e) => {
                if self.json {
                    let empty = Plan::default();
                    let why = format!("IAM could not be read completely, nothing changed: {e}");
                    self.print_json(
                        &empty,
                        None,
                        Some(why),
                        total_calls() - calls_before,
                        started,
                    );
                }
                // Told once, by main, as the SYNC_REFUSED event.
                return Err(anyhow::Error::new(e).context(Audited {
                    message_id: message_id::SYNC_REFUSED,
                    message: "sync: IAM could not be read completely, nothing changed",
                }));
            }
        };
        let iam_calls = total_calls() - calls_before;

        // Held until the end of the run; a dry run changes nothing and needs no lock.
        let _lock = if self.dry_run {
            None
        } else {
            Some(SyncLock::acquire(Path::new(apply::LOCK_PATH))?)
        };
        let now = unix_secs(SystemTime::now());
        let local = SystemState::new(&config.state_dir).read(now)?;
        let plan = plan::plan(&config, &snapshot, &local, now);
        log_skipped(&plan.skipped);

        let refusal = plan.refused.clone().filter(|_| !self.force);
        if let Some(why) = &refusal {
            tracing::error!(
                message_id = message_id::SYNC_REFUSED,
                removals = plan.removals(),
                "{why}"
            );
        } else if plan.refused.is_some() {
            tracing::warn!(
                removals = plan.removals(),
                "mass-change guard overridden with --force"
            );
        }
        let outcome = if self.dry_run || refusal.is_some() {
            None
        } else {
            let mut accounts = ShadowAccounts::new(&config.state_dir);
            let outcome = apply::apply(&plan, &mut accounts, now);
            tracing::info!(
                commands = accounts.commands,
                done = outcome.done.len(),
                failed = outcome.failed.len(),
                iam_calls,
                "sync finished"
            );
            Some(outcome)
        };

        if self.json {
            self.print_json(&plan, outcome.as_ref(), refusal.clone(), iam_calls, started);
        } else {
            self.print_human(
                &plan,
                outcome.as_ref(),
                refusal.as_deref(),
                iam_calls,
                started,
            );
        }
        let failed = outcome.as_ref().is_some_and(|o| !o.failed.is_empty());
        Ok(if refusal.is_some() || failed || plan.has_errors() {
            Exit::Failure
        } else {
            Exit::Ok
        })
    }

    fn print_json(
        &self,
        plan: &Plan,
        outcome: Option<&Outcome>,
        error: Option<String>,
        iam_calls: usize,
        started: Instant,
    ) {
        let summary = match outcome {
            Some(o) => Summary::of(o.done.iter()),
            None if error.is_none() => Summary::of(plan.actions.iter()),
            None => Summary::default(),
        };
        let report = Report {
            dry_run: self.dry_run,
            applied: outcome.is_some(),
            error,
            actions: &plan.actions,
            skipped: &plan.skipped,
            failed: outcome
                .map(|o| {
                    o.failed
                        .iter()
                        .map(|(action, error)| Failed { action, error })
                        .collect()
                })
                .unwrap_or_default(),
            summary,
            iam_calls,
            elapsed_ms: started.elapsed().as_millis(),
        };
        match serde_json::to_string_pretty(&report) {
            Ok(text) => println!("{text}"),
            Err(e) => eprintln!("keyward: cannot render the report: {e}"),
        }
    }

    fn print_human(
        &self,
        plan: &Plan,
        outcome: Option<&Outcome>,
        refusal: Option<&str>,
        iam_calls: usize,
        started: Instant,
    ) {
        let heading = match (outcome, refusal) {
            (Some(_), _) => "applied",
            (None, Some(_)) => "refused, nothing applied",
            (None, None) => "dry run, nothing applied",
        };
        println!("keyward sync ({heading}): {} change(s)", plan.actions.len());
        let failed: Vec<&(Action, String)> = outcome
            .map(|o| o.failed.iter().collect())
            .unwrap_or_default();
        for action in &plan.actions {
            match failed.iter().find(|(a, _)| a == action) {
                Some((_, e)) => println!("  FAILED {action}: {e}"),
                None => println!("  {action}"),
            }
        }
        for s in &plan.skipped {
            let kind = if s.error { "error" } else { "skipped" };
            println!("  {kind}: {}: {}", s.subject, s.reason);
        }
        if let Some(why) = refusal {
            println!("  refused: {why}");
        }
        let s = match outcome {
            Some(o) => Summary::of(o.done.iter()),
            None => Summary::of(plan.actions.iter()),
        };
        let verb = if outcome.is_some() { "" } else { "would be " };
        println!(
            "{verb}created {}, adopted {}, unlocked {}, locked {}, deleted {}; groups created {}, removed {}; memberships +{} -{}; sudoers {}; {iam_calls} IAM calls in {:.1?}",
            s.created,
            s.adopted,
            s.unlocked,
            s.locked,
            s.deleted,
            s.groups_created,
            s.groups_removed,
            s.members_added,
            s.members_removed,
            if s.sudoers_changed { "changed" } else { "unchanged" },
            started.elapsed()
        );
    }
}

fn log_skipped(skipped: &[Skipped]) {
    for s in skipped {
        if s.error {
            tracing::error!(subject = untrusted(&s.subject), "sync: {}", s.reason);
        } else {
            tracing::info!(subject = untrusted(&s.subject), "sync: {}", s.reason);
        }
    }
}
