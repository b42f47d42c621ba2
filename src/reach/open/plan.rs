//! The pure half of `open`, `close` and `--sweep`: from the rules read back (per group) and the
//! caller's request, the steps to take. No I/O; `now` comes in.
//!
//! Invariants:
//! - Only [`KeywardRule`]s are ever touched: TCP, one port, one CIDR, with a plausible owner
//!   and an RFC 3339 expiry in keyward's tags. Everything else in a group is left alone, even a
//!   rule for the same address (then the address is already allowed and nothing is added).
//! - A group whose rules could not be read completely gets no step but [`Step::Skip`]: a failed
//!   or partial read revokes nothing.
//! - Per (caller, group, port) at most one rule is kept; which one is decided by
//!   [`keep_first`], the same order in every run, so runs on two laptops converge.
//! - `open` never shortens a rule's life (the later expiry wins) unless its expiry lies beyond
//!   the longest ttl; `close` removes the caller's rules; anyone's expired rule, or one whose
//!   expiry lies further ahead than any `open` sets ([`overdue`]), is revoked by `open` and
//!   `--sweep`.

use std::cmp::Ordering;
use std::fmt::Write as _;
use std::time::SystemTime;

use ipnet::IpNet;

use super::{keyward_rule, KeywardRule, MAX_TTL};
use crate::ec2::IngressRule;

/// How far past `now` + [`MAX_TTL`] an expiry may lie and still be one an `open` set: the
/// clocks of the laptop that set it and of this one may differ (SigV4 refuses more than 15
/// minutes).
pub const EXPIRY_SLACK: std::time::Duration = std::time::Duration::from_secs(3600);

/// Why anyone's rule goes whoever owns it: its expiry has passed, or it lies further ahead
/// than any `open` sets — a tag edited by hand (the policy cannot bound its value), which would
/// otherwise keep the rule forever.
pub fn overdue(rule: &KeywardRule, now: SystemTime) -> Option<Why> {
    if rule.expires <= now {
        return Some(Why::Expired);
    }
    let latest = now.checked_add(MAX_TTL + EXPIRY_SLACK)?;
    (rule.expires > latest).then_some(Why::TooLong)
}

/// What the caller asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Allow `cidr` on `port` until `expires`, replacing the caller's other rules on that port.
    Open {
        cidr: IpNet,
        port: u16,
        expires: SystemTime,
    },
    /// Keep one of the caller's rules per port (the [`keep_first`] one), revoke the others: the
    /// pass after applying an `Open`, when another run may have added a rule meanwhile.
    Converge { port: u16 },
    /// Revoke every rule of the caller.
    Close,
    /// Revoke only expired rules, anyone's.
    Sweep,
}

/// The rules of one group as read: all of them, or why they could not all be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRead {
    pub group_id: String,
    pub rules: Result<Vec<IngressRule>, String>,
}

/// Why a rule goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// Its expiry has passed (anyone's rule).
    Expired,
    /// Its expiry lies beyond the longest ttl (anyone's rule): see [`overdue`].
    TooLong,
    /// The caller's rule for an address the caller no longer has.
    Replaced,
    /// Another rule of the caller for the same port is kept instead.
    Duplicate,
    /// `close`.
    Closed,
}

/// One change (or a note that a group is left as it is).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Add a rule for the caller.
    Authorize {
        group_id: String,
        cidr: IpNet,
        port: u16,
        expires: SystemTime,
    },
    /// Move the caller's rule's expiry to `expires` (tags only; the rule stays).
    Extend {
        rule: KeywardRule,
        expires: SystemTime,
    },
    Revoke {
        rule: KeywardRule,
        why: Why,
    },
    /// The address is already allowed on the port by a rule that is not the caller's (a
    /// colleague behind the same NAT, or a rule keyward did not make): EC2 allows no second
    /// identical rule, and the other one is not the caller's to change.
    AlreadyAllowed {
        group_id: String,
        rule_id: String,
        owner: Option<String>,
    },
    /// The group's rules could not be read completely: nothing in it is changed.
    Skip {
        group_id: String,
        reason: String,
    },
}

impl Step {
    pub fn group_id(&self) -> &str {
        match self {
            Step::Authorize { group_id, .. }
            | Step::AlreadyAllowed { group_id, .. }
            | Step::Skip { group_id, .. } => group_id,
            Step::Extend { rule, .. } | Step::Revoke { rule, .. } => &rule.group_id,
        }
    }

    /// Whether applying the step changes anything in EC2.
    pub fn changes(&self) -> bool {
        matches!(
            self,
            Step::Authorize { .. } | Step::Extend { .. } | Step::Revoke { .. }
        )
    }
}

/// The steps, in the order they are applied: additions and extensions first, revocations
/// after, so the caller's access never has a gap while an address is replaced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub steps: Vec<Step>,
}

impl Plan {
    pub fn changes(&self) -> bool {
        self.steps.iter().any(Step::changes)
    }

    pub fn skipped(&self) -> impl Iterator<Item = &Step> {
        self.steps.iter().filter(|s| matches!(s, Step::Skip { .. }))
    }
}

/// The order in which the caller's rules for one port are kept: the latest expiry first, then
/// the smallest rule id. Every run sorts the same rules the same way.
pub fn keep_first(a: &KeywardRule, b: &KeywardRule) -> Ordering {
    b.expires.cmp(&a.expires).then_with(|| a.id.cmp(&b.id))
}

/// The steps for `mode`, by `caller` (an ARN), at `now`.
pub fn plan(groups: &[GroupRead], caller: &str, mode: &Mode, now: SystemTime) -> Plan {
    let mut adds = Vec::new();
    let mut revokes = Vec::new();
    for group in groups {
        let rules = match &group.rules {
            Ok(rules) => rules,
            Err(reason) => {
                adds.push(Step::Skip {
                    group_id: group.group_id.clone(),
                    reason: reason.clone(),
                });
                continue;
            }
        };
        // A rule listed under another group is not this group's to change.
        let ours: Vec<KeywardRule> = rules
            .iter()
            .filter(|r| r.group_id == group.group_id)
            .filter_map(keyward_rule)
            .collect();
        plan_group(
            group,
            rules,
            &ours,
            caller,
            mode,
            now,
            &mut adds,
            &mut revokes,
        );
    }
    adds.extend(revokes);
    Plan { steps: adds }
}

#[allow(clippy::too_many_arguments)]
fn plan_group(
    group: &GroupRead,
    rules: &[IngressRule],
    ours: &[KeywardRule],
    caller: &str,
    mode: &Mode,
    now: SystemTime,
    adds: &mut Vec<Step>,
    revokes: &mut Vec<Step>,
) {
    let revoke = |rule: &KeywardRule, why| Step::Revoke {
        rule: rule.clone(),
        why,
    };
    match mode {
        Mode::Sweep => {
            revokes.extend(
                ours.iter()
                    .filter_map(|r| overdue(r, now).map(|why| revoke(r, why))),
            );
        }
        Mode::Close => {
            revokes.extend(
                ours.iter()
                    .filter(|r| r.owner == caller)
                    .map(|r| revoke(r, Why::Closed)),
            );
        }
        Mode::Converge { port } => {
            let mut mine: Vec<&KeywardRule> = ours
                .iter()
                .filter(|r| r.owner == caller && r.port == *port)
                .collect();
            mine.sort_by(|a, b| keep_first(a, b));
            revokes.extend(mine.iter().skip(1).map(|r| revoke(r, Why::Duplicate)));
        }
        Mode::Open {
            cidr,
            port,
            expires,
        } => {
            let is_mine = |r: &KeywardRule| r.owner == caller && r.port == *port;
            let authorize = || Step::Authorize {
                group_id: group.group_id.clone(),
                cidr: *cidr,
                port: *port,
                expires: *expires,
            };
            // The caller's rule for this very address, expired or not: extended in place.
            let same = ours.iter().find(|r| is_mine(r) && r.cidr == *cidr);
            match same {
                Some(rule)
                    if rule.expires < *expires || overdue(rule, now) == Some(Why::TooLong) =>
                {
                    adds.push(Step::Extend {
                        rule: rule.clone(),
                        expires: *expires,
                    })
                }
                Some(_) => {}
                None => {
                    let identical = identical_rule(rules, &group.group_id, *cidr, *port);
                    match identical.map(|other| (other, keyward_rule(other))) {
                        // Someone's expired rule for the same address: it goes first, or EC2
                        // refuses the new one as a duplicate.
                        Some((_, Some(theirs))) if overdue(&theirs, now).is_some() => {
                            let why = overdue(&theirs, now).unwrap_or(Why::Expired);
                            adds.push(revoke(&theirs, why));
                            adds.push(authorize());
                        }
                        Some((other, theirs)) => adds.push(Step::AlreadyAllowed {
                            group_id: group.group_id.clone(),
                            rule_id: other.id.clone(),
                            owner: theirs.map(|r| r.owner),
                        }),
                        None => adds.push(authorize()),
                    }
                }
            }
            let revoked_first = |rule: &KeywardRule| {
                adds.iter()
                    .any(|s| matches!(s, Step::Revoke { rule: r, .. } if r.id == rule.id))
            };
            for rule in ours {
                if revoked_first(rule) {
                    continue;
                }
                if is_mine(rule) && rule.cidr != *cidr {
                    revokes.push(revoke(rule, Why::Replaced));
                } else if !(is_mine(rule) && rule.cidr == *cidr) {
                    if let Some(why) = overdue(rule, now) {
                        revokes.push(revoke(rule, why));
                    }
                }
            }
        }
    }
}

/// A rule EC2 would call identical to TCP `port` from `cidr` (so refuses to add twice).
fn identical_rule<'r>(
    rules: &'r [IngressRule],
    group_id: &str,
    cidr: IpNet,
    port: u16,
) -> Option<&'r IngressRule> {
    rules.iter().find(|r| {
        r.group_id == group_id
            && r.protocol == "tcp"
            && r.from_port == i32::from(port)
            && r.to_port == i32::from(port)
            && r.cidr == Some(cidr)
    })
}

/// The plan as people read it, one line per step; `--dry-run` and the real run print this same
/// text. Owners are ARNs (checked by [`keyward_rule`]), so they are printable.
pub fn describe(plan: &Plan) -> String {
    let mut text = String::new();
    for step in &plan.steps {
        let _ = match step {
            Step::Authorize {
                group_id,
                cidr,
                port,
                expires,
            } => writeln!(
                text,
                "allow {cidr} on tcp/{port} in {group_id} until {}",
                rfc3339(*expires)
            ),
            Step::Extend { rule, expires } => writeln!(
                text,
                "extend {} ({} on tcp/{} in {}) until {}",
                rule.id,
                rule.cidr,
                rule.port,
                rule.group_id,
                rfc3339(*expires)
            ),
            Step::Revoke { rule, why } => writeln!(
                text,
                "revoke {} ({} on tcp/{} in {}, {}, expired {}): {}",
                rule.id,
                rule.cidr,
                rule.port,
                rule.group_id,
                rule.owner,
                rfc3339(rule.expires),
                match why {
                    Why::Expired => "expired",
                    Why::TooLong => "its expiry is beyond the longest ttl",
                    Why::Replaced => "your address changed",
                    Why::Duplicate => "another rule of yours is kept",
                    Why::Closed => "closed",
                }
            ),
            Step::AlreadyAllowed {
                group_id,
                rule_id,
                owner,
            } => writeln!(
                text,
                "already allowed in {group_id} by {rule_id} ({}): nothing to add",
                owner.as_deref().unwrap_or("not made by keyward")
            ),
            Step::Skip { group_id, reason } => writeln!(
                text,
                "skip {group_id}: its rules could not be read ({reason}); nothing there is changed"
            ),
        };
    }
    text
}

/// `2026-11-30T17:00:00Z`: the form of the expiry tag.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}
