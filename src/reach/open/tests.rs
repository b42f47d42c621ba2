use std::cell::RefCell;
use std::time::{Duration, SystemTime};

use super::plan::{keep_first, plan, GroupRead, Mode, Step};
use super::*;
use crate::ec2::{SecurityGroup, SecurityGroups};

const ME: &str = "arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_Dev_0a1b/alice@example.com";
const BOB: &str = "arn:aws:iam::123456789012:user/bob";
const SG: &str = "sg-0123456789abcdef0";

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
}

fn net(text: &str) -> IpNet {
    text.parse().unwrap()
}

fn rule(id: &str, cidr: &str, port: i32, owner: &str, expires: SystemTime) -> IngressRule {
    IngressRule {
        id: id.into(),
        group_id: SG.into(),
        protocol: "tcp".into(),
        from_port: port,
        to_port: port,
        cidr: Some(net(cidr)),
        description: None,
        tags: vec![
            (OWNER_TAG.into(), owner.into()),
            (EXPIRES_TAG.into(), plan::rfc3339(expires)),
        ],
    }
}

fn read_ok(rules: Vec<IngressRule>) -> Vec<GroupRead> {
    vec![GroupRead {
        group_id: SG.into(),
        rules: Ok(rules),
    }]
}

fn open_mode(cidr: &str, expires: SystemTime) -> Mode {
    Mode::Open {
        cidr: net(cidr),
        port: 22,
        expires,
    }
}

/// (kind, rule id or cidr) of each step, for compact assertions.
fn kinds(steps: &[Step]) -> Vec<String> {
    steps
        .iter()
        .map(|s| match s {
            Step::Authorize { cidr, .. } => format!("authorize {cidr}"),
            Step::Extend { rule, expires } => {
                format!("extend {} {}", rule.id, plan::rfc3339(*expires))
            }
            Step::Revoke { rule, why } => format!("revoke {} {why:?}", rule.id),
            Step::AlreadyAllowed { rule_id, .. } => format!("already {rule_id}"),
            Step::Skip { group_id, .. } => format!("skip {group_id}"),
        })
        .collect()
}

#[test]
fn a_new_address_is_authorized_with_nothing_else_in_the_group() {
    let p = plan(
        &read_ok(vec![]),
        ME,
        &open_mode("198.51.100.7/32", at(3600)),
        at(0),
    );
    assert_eq!(kinds(&p.steps), ["authorize 198.51.100.7/32"]);
}

#[test]
fn an_unchanged_address_extends_the_rule_instead_of_adding_one() {
    let mine = rule("sgr-1", "198.51.100.7/32", 22, ME, at(600));
    let p = plan(
        &read_ok(vec![mine]),
        ME,
        &open_mode("198.51.100.7/32", at(3600)),
        at(0),
    );
    assert_eq!(
        kinds(&p.steps),
        [format!("extend sgr-1 {}", plan::rfc3339(at(3600)))]
    );
    // Never shortened: a later expiry stays as it is.
    let later = rule("sgr-1", "198.51.100.7/32", 22, ME, at(7200));
    let p = plan(
        &read_ok(vec![later]),
        ME,
        &open_mode("198.51.100.7/32", at(3600)),
        at(0),
    );
    assert!(p.steps.is_empty(), "{:?}", p.steps);
    // Expired but still there: extended in place (a new one would be a duplicate).
    let old = rule("sgr-1", "198.51.100.7/32", 22, ME, at(0));
    let p = plan(
        &read_ok(vec![old]),
        ME,
        &open_mode("198.51.100.7/32", at(3600)),
        at(10),
    );
    assert_eq!(
        kinds(&p.steps),
        [format!("extend sgr-1 {}", plan::rfc3339(at(3600)))]
    );
}

#[test]
fn a_new_address_replaces_the_callers_old_rule_after_adding_the_new_one() {
    let mine = rule("sgr-1", "203.0.113.9/32", 22, ME, at(600));
    let other_port = rule("sgr-2", "203.0.113.9/32", 443, ME, at(600));
    let p = plan(
        &read_ok(vec![mine, other_port]),
        ME,
        &open_mode("198.51.100.7/32", at(3600)),
        at(0),
    );
    assert_eq!(
        kinds(&p.steps),
        ["authorize 198.51.100.7/32", "revoke sgr-1 Replaced"]
    );
}

#[test]
fn expired_rules_of_anyone_are_swept_by_open_and_by_sweep() {
    let bobs_expired = rule("sgr-b", "192.0.2.1/32", 22, BOB, at(5));
    let bobs_live = rule("sgr-c", "192.0.2.2/32", 22, BOB, at(500));
    let rules = vec![bobs_expired, bobs_live];
    let p = plan(
        &read_ok(rules.clone()),
        ME,
        &open_mode("198.51.100.7/32", at(3600)),
        at(10),
    );
    assert_eq!(
        kinds(&p.steps),
        ["authorize 198.51.100.7/32", "revoke sgr-b Expired"]
    );
    let p = plan(&read_ok(rules), ME, &Mode::Sweep, at(10));
    assert_eq!(kinds(&p.steps), ["revoke sgr-b Expired"]);
}

/// Review finding: anyone holding `policy --open` may tag a rule's expiry as they like; a year
/// far ahead kept a rule forever although no `open` sets more than `MAX_TTL`.
#[test]
fn h2_an_expiry_beyond_the_longest_ttl_is_swept_and_reset_on_extend() {
    let far = at(10) + MAX_TTL + Duration::from_secs(2 * 86_400);
    let bobs_forever = rule("sgr-b", "192.0.2.1/32", 22, BOB, far);
    // The longest ttl, set by a laptop whose clock ran a few minutes ahead: kept.
    let bobs_longest = rule("sgr-c", "192.0.2.2/32", 22, BOB, at(10 + 600) + MAX_TTL);
    let mine_forever = rule("sgr-d", "198.51.100.7/32", 22, ME, far);
    let p = plan(
        &read_ok(vec![bobs_forever.clone(), bobs_longest.clone()]),
        ME,
        &Mode::Sweep,
        at(10),
    );
    assert_eq!(kinds(&p.steps), ["revoke sgr-b TooLong"]);
    let p = plan(
        &read_ok(vec![bobs_forever, bobs_longest, mine_forever]),
        ME,
        &open_mode("198.51.100.7/32", at(3600)),
        at(10),
    );
    assert_eq!(
        kinds(&p.steps),
        [
            format!("extend sgr-d {}", plan::rfc3339(at(3600))),
            "revoke sgr-b TooLong".to_owned()
        ]
    );
    assert!(plan::describe(&p).contains("beyond the longest ttl"));
}

#[test]
fn rules_keyward_did_not_make_are_left_alone() {
    let mut no_tags = rule("sgr-n", "192.0.2.3/32", 22, ME, at(0));
    no_tags.tags.clear();
    let mut udp = rule("sgr-u", "192.0.2.4/32", 22, ME, at(0));
    udp.protocol = "udp".into();
    let mut range = rule("sgr-r", "192.0.2.5/32", 22, ME, at(0));
    range.to_port = 23;
    let mut bad_expiry = rule("sgr-e", "192.0.2.6/32", 22, ME, at(0));
    bad_expiry.tags[1].1 = "tomorrow".into();
    let mut two_owners = rule("sgr-o", "192.0.2.7/32", 22, ME, at(0));
    two_owners.tags.push((OWNER_TAG.into(), BOB.into()));
    let mut not_arn = rule("sgr-a", "192.0.2.8/32", 22, ME, at(0));
    not_arn.tags[0].1 = "alice".into();
    let mut group_rule = rule("sgr-g", "192.0.2.9/32", 22, ME, at(0));
    group_rule.cidr = None;
    let rules = vec![
        no_tags, udp, range, bad_expiry, two_owners, not_arn, group_rule,
    ];
    for mode in [
        open_mode("198.51.100.7/32", at(3600)),
        Mode::Sweep,
        Mode::Close,
    ] {
        let p = plan(&read_ok(rules.clone()), ME, &mode, at(100));
        assert!(
            p.steps
                .iter()
                .all(|s| !matches!(s, Step::Revoke { .. } | Step::Extend { .. })),
            "{mode:?}: {:?}",
            p.steps
        );
    }
}

#[test]
fn an_address_already_allowed_by_someone_else_is_not_added_or_taken_over() {
    let bobs = rule("sgr-b", "198.51.100.7/32", 22, BOB, at(500));
    let mut manual = rule("sgr-m", "198.51.100.8/32", 22, BOB, at(500));
    manual.tags.clear();
    let rules = vec![bobs, manual];
    let p = plan(
        &read_ok(rules.clone()),
        ME,
        &open_mode("198.51.100.7/32", at(3600)),
        at(0),
    );
    assert_eq!(kinds(&p.steps), ["already sgr-b"]);
    let p = plan(
        &read_ok(rules),
        ME,
        &open_mode("198.51.100.8/32", at(3600)),
        at(0),
    );
    assert_eq!(kinds(&p.steps), ["already sgr-m"]);
    // Bob's rule for the same address has expired: it goes first, then the caller's is added.
    let expired = rule("sgr-b", "198.51.100.7/32", 22, BOB, at(5));
    let p = plan(
        &read_ok(vec![expired]),
        ME,
        &open_mode("198.51.100.7/32", at(3600)),
        at(10),
    );
    assert_eq!(
        kinds(&p.steps),
        ["revoke sgr-b Expired", "authorize 198.51.100.7/32"]
    );
}

#[test]
fn a_group_that_could_not_be_read_revokes_nothing() {
    let reads = vec![
        GroupRead {
            group_id: "sg-11111111".into(),
            rules: Err("EC2 could not be reached".into()),
        },
        GroupRead {
            group_id: SG.into(),
            rules: Ok(vec![rule("sgr-b", "192.0.2.1/32", 22, BOB, at(5))]),
        },
    ];
    for mode in [
        open_mode("198.51.100.7/32", at(3600)),
        Mode::Sweep,
        Mode::Close,
    ] {
        let p = plan(&reads, ME, &mode, at(10));
        assert!(p
            .steps
            .iter()
            .filter(|s| s.group_id() == "sg-11111111")
            .all(|s| matches!(s, Step::Skip { .. })));
        assert_eq!(p.skipped().count(), 1);
    }
}

#[test]
fn close_revokes_only_the_callers_rules_on_every_port() {
    let rules = vec![
        rule("sgr-1", "198.51.100.7/32", 22, ME, at(600)),
        rule("sgr-2", "198.51.100.7/32", 443, ME, at(600)),
        rule("sgr-b", "192.0.2.1/32", 22, BOB, at(600)),
    ];
    let p = plan(&read_ok(rules), ME, &Mode::Close, at(0));
    assert_eq!(
        kinds(&p.steps),
        ["revoke sgr-1 Closed", "revoke sgr-2 Closed"]
    );
}

#[test]
fn converging_keeps_the_latest_expiry_then_the_smallest_id() {
    let rules = vec![
        rule("sgr-3", "198.51.100.9/32", 22, ME, at(900)),
        rule("sgr-2", "198.51.100.8/32", 22, ME, at(900)),
        rule("sgr-1", "198.51.100.7/32", 22, ME, at(600)),
        rule("sgr-b", "192.0.2.1/32", 22, BOB, at(900)),
    ];
    let p = plan(
        &read_ok(rules.clone()),
        ME,
        &Mode::Converge { port: 22 },
        at(0),
    );
    assert_eq!(
        kinds(&p.steps),
        ["revoke sgr-3 Duplicate", "revoke sgr-1 Duplicate"]
    );
    // The same choice whatever order EC2 lists the rules in.
    let mut reversed = rules;
    reversed.reverse();
    let q = plan(&read_ok(reversed), ME, &Mode::Converge { port: 22 }, at(0));
    let mut a = kinds(&p.steps);
    let mut b = kinds(&q.steps);
    a.sort();
    b.sort();
    assert_eq!(a, b);
    let one = keyward_rule(&rule("sgr-9", "198.51.100.7/32", 22, ME, at(1))).unwrap();
    assert_eq!(keep_first(&one, &one), std::cmp::Ordering::Equal);
}

#[test]
fn describe_says_each_step_once_in_order() {
    let mine = rule("sgr-1", "203.0.113.9/32", 22, ME, at(600));
    let p = plan(
        &read_ok(vec![mine]),
        ME,
        &open_mode("198.51.100.7/32", at(3600)),
        at(0),
    );
    let text = plan::describe(&p);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].starts_with("allow 198.51.100.7/32 on tcp/22 in sg-0123456789abcdef0 until 2027-")
    );
    assert!(lines[1].starts_with("revoke sgr-1 (203.0.113.9/32 on tcp/22"));
    assert!(lines[1].ends_with("your address changed"));
}

#[test]
fn descriptions_keep_to_ec2s_characters() {
    let d = rule_description("arn:aws:sts::1:assumed-role/R/a+b=c,d.e@f_g-h");
    assert_eq!(
        d,
        "keyward open for arn:aws:sts::1:assumed-role/R/a+b=c,d.e@f_g-h"
    );
    assert_eq!(
        rule_description("arn:x\u{e9}\"'<y"),
        "keyward open for arn:xy"
    );
    assert_eq!(rule_description(&"a".repeat(400)).len(), 255);
}

#[test]
fn ttl_is_bounded() {
    assert_eq!(parse_ttl("1h").unwrap(), Duration::from_secs(3600));
    for bad in ["0s", "30s", "8days", "soon"] {
        assert!(parse_ttl(bad).is_err(), "{bad}");
    }
}

/// In-memory EC2: one group's rules; `race` plays another run that adds the same rule just
/// before this run's authorize.
#[derive(Default)]
struct FakeEc2 {
    groups: Vec<SecurityGroup>,
    rules: RefCell<Vec<IngressRule>>,
    next: RefCell<u32>,
    race: RefCell<Option<IngressRule>>,
    fail_reads: bool,
    calls: RefCell<Vec<String>>,
}

impl FakeEc2 {
    fn new() -> FakeEc2 {
        FakeEc2 {
            groups: vec![SecurityGroup {
                id: SG.into(),
                name: "ssh".into(),
                vpc_id: None,
                tags: vec![(DEFAULT_GROUP_TAG.into(), String::new())],
            }],
            ..FakeEc2::default()
        }
    }
}

impl SecurityGroups for FakeEc2 {
    async fn security_groups(&self, ids: &[String]) -> Result<Vec<SecurityGroup>, Ec2Error> {
        Ok(self
            .groups
            .iter()
            .filter(|g| ids.contains(&g.id))
            .cloned()
            .collect())
    }
    async fn tagged_security_groups(&self, key: &str) -> Result<Vec<SecurityGroup>, Ec2Error> {
        Ok(self
            .groups
            .iter()
            .filter(|g| g.tags.iter().any(|(k, _)| k == key))
            .cloned()
            .collect())
    }
    async fn ingress_rules(&self, group_id: &str) -> Result<Vec<IngressRule>, Ec2Error> {
        if self.fail_reads {
            return Err(Ec2Error::Unreachable("timeout".into()));
        }
        Ok(self
            .rules
            .borrow()
            .iter()
            .filter(|r| r.group_id == group_id)
            .cloned()
            .collect())
    }
    async fn authorize_ingress(&self, new: &NewIngressRule) -> Result<String, RuleError> {
        self.calls
            .borrow_mut()
            .push(format!("authorize {}", new.cidr));
        if let Some(theirs) = self.race.borrow_mut().take() {
            self.rules.borrow_mut().push(theirs);
        }
        let dup = self.rules.borrow().iter().any(|r| {
            r.group_id == new.group_id
                && r.from_port == i32::from(new.port)
                && r.cidr == Some(new.cidr)
        });
        if dup {
            return Err(RuleError::Duplicate);
        }
        *self.next.borrow_mut() += 1;
        let id = format!("sgr-new{}", self.next.borrow());
        self.rules.borrow_mut().push(IngressRule {
            id: id.clone(),
            group_id: new.group_id.clone(),
            protocol: "tcp".into(),
            from_port: new.port.into(),
            to_port: new.port.into(),
            cidr: Some(new.cidr),
            description: Some(new.description.clone()),
            tags: new.tags.clone(),
        });
        Ok(id)
    }
    async fn revoke_ingress(&self, _group: &str, ids: &[String]) -> Result<(), RuleError> {
        self.calls
            .borrow_mut()
            .push(format!("revoke {}", ids.join(",")));
        let before = self.rules.borrow().len();
        self.rules.borrow_mut().retain(|r| !ids.contains(&r.id));
        if self.rules.borrow().len() == before {
            return Err(RuleError::NotFound);
        }
        Ok(())
    }
    async fn tag_rule(&self, id: &str, tags: &[(String, String)]) -> Result<(), RuleError> {
        self.calls.borrow_mut().push(format!("tag {id}"));
        let mut rules = self.rules.borrow_mut();
        let rule = rules
            .iter_mut()
            .find(|r| r.id == id)
            .ok_or(RuleError::NotFound)?;
        for (k, v) in tags {
            rule.tags.retain(|(key, _)| key != k);
            rule.tags.push((k.clone(), v.clone()));
        }
        Ok(())
    }
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn run_open(ec2: &FakeEc2, cidr: &str, now: SystemTime, dry_run: bool) -> (Outcome, String) {
    let mut out = Vec::new();
    let outcome = block_on(run(
        ec2,
        &[SG.to_owned()],
        ME,
        &open_mode(cidr, now + Duration::from_secs(3600)),
        now,
        dry_run,
        &mut out,
    ))
    .unwrap();
    (outcome, String::from_utf8(out).unwrap())
}

#[test]
fn a_duplicate_on_authorize_reads_again_and_extends_the_rule_the_other_run_made() {
    let ec2 = FakeEc2::new();
    *ec2.race.borrow_mut() = Some(rule("sgr-other", "198.51.100.7/32", 22, ME, at(60)));
    let (outcome, out) = run_open(&ec2, "198.51.100.7/32", at(0), false);
    assert_eq!(outcome, Outcome::default());
    assert!(out.contains("reading again"), "{out}");
    let rules = ec2.rules.borrow();
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0].id, "sgr-other");
    assert_eq!(keyward_rule(&rules[0]).unwrap().expires, at(3600));
}

#[test]
fn after_applying_one_rule_per_caller_and_port_is_kept() {
    // Another laptop of the caller's added a rule for its own address with a later expiry
    // while this run authorized: the converging pass keeps the later one.
    let ec2 = FakeEc2::new();
    *ec2.race.borrow_mut() = Some(rule("sgr-laptop2", "203.0.113.9/32", 22, ME, at(9000)));
    let (outcome, out) = run_open(&ec2, "198.51.100.7/32", at(0), false);
    let rules = ec2.rules.borrow();
    assert_eq!(rules.len(), 1, "{rules:?}");
    assert_eq!(rules[0].id, "sgr-laptop2");
    assert_eq!(outcome.displaced, [SG]);
    assert!(out.contains("another rule of yours is kept"), "{out}");
}

#[test]
fn dry_run_prints_the_same_steps_and_changes_nothing() {
    let ec2 = FakeEc2::new();
    ec2.rules
        .borrow_mut()
        .push(rule("sgr-1", "203.0.113.9/32", 22, ME, at(600)));
    let (_, dry) = run_open(&ec2, "198.51.100.7/32", at(0), true);
    assert!(ec2.calls.borrow().is_empty());
    assert!(dry.ends_with("(dry run: nothing was changed)\n"), "{dry}");
    let (_, real) = run_open(&ec2, "198.51.100.7/32", at(0), false);
    assert!(real.starts_with(dry.trim_end_matches("(dry run: nothing was changed)\n")));
    assert_eq!(ec2.calls.borrow().len(), 2, "{:?}", ec2.calls.borrow());
}

#[test]
fn a_failed_read_changes_nothing_and_is_reported() {
    let ec2 = FakeEc2 {
        fail_reads: true,
        ..FakeEc2::new()
    };
    ec2.rules
        .borrow_mut()
        .push(rule("sgr-b", "192.0.2.1/32", 22, BOB, at(5)));
    let (outcome, out) = run_open(&ec2, "198.51.100.7/32", at(10), false);
    assert_eq!(outcome.skipped, [SG]);
    assert!(ec2.calls.borrow().is_empty());
    assert!(out.contains("could not be read"), "{out}");
}

#[test]
fn wait_for_port_returns_once_the_port_accepts_and_gives_up_at_the_bound() {
    block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        wait_for_port(addr, Duration::from_secs(5)).await.unwrap();
        drop(listener);
        let err = wait_for_port(addr, Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(matches!(err, OpenError::PortClosed { .. }), "{err}");
    });
}
