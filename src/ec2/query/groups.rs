//! Security groups and their ingress rules over the Query API: what `open`, `close` and
//! `--sweep` read (DescribeSecurityGroups, DescribeSecurityGroupRules) and change
//! (AuthorizeSecurityGroupIngress with tags in the same call, RevokeSecurityGroupIngress by rule
//! id, CreateTags on a rule).
//!
//! Invariants (with those of [`super`]):
//! - Only ids of EC2's shape (`sg-…`, `sgr-…`) are sent, and only tags EC2 could hold (key 1 to
//!   128 characters, value up to 256, no control characters, no `aws:` prefix) and
//!   descriptions EC2 accepts; anything else is [`Ec2Error::Invalid`] without a call.
//! - Every group and rule read is checked whole (ids, ports, protocol, CIDR, tags); one bad
//!   item fails the answer, so a caller deciding what to revoke never sees a partial list.
//! - A rule list holds only the asked group's rules (another group's rule in the answer is
//!   malformed); egress rules are left out; a rule id twice across pages is malformed.
//! - A group list asked by ids holds exactly those groups, each once.
//! - An authorize answer must confirm the one rule asked for (group, TCP, port, CIDR) before
//!   its id is returned.

use std::collections::HashSet;

use super::{
    action, check_tag_key, check_tag_value, each_once, exact_filter_value, read_list, Action,
    AwsEc2, Form, Item, List, Page, Refusal, Shape,
};
use crate::ec2::{
    is_resource_id, Ec2Error, IngressRule, NewIngressRule, RuleError, SecurityGroup, SecurityGroups,
};

const DESCRIBE_GROUPS: Action = action!("DescribeSecurityGroups");
const DESCRIBE_RULES: Action = action!("DescribeSecurityGroupRules");
const AUTHORIZE: Action = action!("AuthorizeSecurityGroupIngress");
const REVOKE: Action = action!("RevokeSecurityGroupIngress");
const CREATE_TAGS: Action = action!("CreateTags");

/// At most this many group ids in one DescribeSecurityGroups call.
pub const MAX_GROUP_IDS: usize = 200;
/// Rule ids per RevokeSecurityGroupIngress call; more are revoked in several calls.
pub const REVOKE_BATCH: usize = 100;
/// At most this many tags on a rule (EC2's limit per resource).
pub const MAX_TAGS: usize = 50;
/// EC2's longest rule description, in characters.
pub const MAX_DESCRIPTION: usize = 255;

const GROUP_SHAPE: Shape<'static> = Shape {
    root: "DescribeSecurityGroupsResponse",
    item: &["securityGroupInfo", "item"],
    fields: &[&["groupId"], &["groupName"], &["vpcId"]],
    top: &["nextToken"],
};

const RULE_FIELDS: &[&[&str]] = &[
    &["securityGroupRuleId"],
    &["groupId"],
    &["isEgress"],
    &["ipProtocol"],
    &["fromPort"],
    &["toPort"],
    &["cidrIpv4"],
    &["cidrIpv6"],
    &["description"],
];
const RULE_ID: usize = 0;
const GROUP_ID: usize = 1;
const EGRESS: usize = 2;
const PROTOCOL: usize = 3;
const FROM_PORT: usize = 4;
const TO_PORT: usize = 5;
const CIDR_V4: usize = 6;
const CIDR_V6: usize = 7;
const DESCRIPTION: usize = 8;

const RULE_SHAPE: Shape<'static> = Shape {
    root: "DescribeSecurityGroupRulesResponse",
    item: &["securityGroupRuleSet", "item"],
    fields: RULE_FIELDS,
    top: &["nextToken"],
};

const AUTHORIZE_SHAPE: Shape<'static> = Shape {
    root: "AuthorizeSecurityGroupIngressResponse",
    item: &["securityGroupRuleSet", "item"],
    fields: RULE_FIELDS,
    top: &["return"],
};

const REVOKE_SHAPE: Shape<'static> = Shape {
    root: "RevokeSecurityGroupIngressResponse",
    item: &["unknownIpPermissionSet", "item"],
    fields: &[],
    top: &["return"],
};

const CREATE_TAGS_SHAPE: Shape<'static> = Shape {
    root: "CreateTagsResponse",
    item: &[],
    fields: &[],
    top: &["return"],
};

impl SecurityGroups for AwsEc2 {
    async fn security_groups(&self, ids: &[String]) -> Result<Vec<SecurityGroup>, Ec2Error> {
        let form = groups_form(ids)?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let groups = self
            .all_pages(DESCRIBE_GROUPS, &form, false, parse_groups)
            .await
            .map_err(|r| group_refusal(r, ids))?;
        exactly_these(groups, ids)
    }

    async fn tagged_security_groups(&self, key: &str) -> Result<Vec<SecurityGroup>, Ec2Error> {
        let form = tagged_groups_form(key)?;
        let groups = self
            .all_pages(DESCRIBE_GROUPS, &form, true, parse_groups)
            .await
            .map_err(|r| r.error)?;
        each_once(&groups, |g| g.id.as_str())?;
        if groups.iter().any(|g| !g.tags.iter().any(|(k, _)| k == key)) {
            return Err(Ec2Error::Malformed(
                "a security group without the tag asked for".into(),
            ));
        }
        Ok(groups)
    }

    async fn ingress_rules(&self, group_id: &str) -> Result<Vec<IngressRule>, Ec2Error> {
        let form = rules_form(group_id)?;
        let rules = self
            .all_pages(DESCRIBE_RULES, &form, true, |body| {
                parse_rules(body, group_id)
            })
            .await
            .map_err(|r| r.error)?;
        each_once(&rules, |r| r.id.as_str())?;
        Ok(rules)
    }

    async fn authorize_ingress(&self, rule: &NewIngressRule) -> Result<String, RuleError> {
        let form = authorize_form(rule)?;
        let body = self
            .call(AUTHORIZE, &form)
            .await
            .map_err(|r| rule_refusal(r, &rule.group_id))?;
        parse_authorized(&body, rule)
            .map_err(Ec2Error::Malformed)
            .map_err(RuleError::from)
    }

    async fn revoke_ingress(&self, group_id: &str, rule_ids: &[String]) -> Result<(), RuleError> {
        for batch in revoke_forms(group_id, rule_ids)? {
            let body = self
                .call(REVOKE, &batch)
                .await
                .map_err(|r| rule_refusal(r, group_id))?;
            parse_revoked(&body)?;
        }
        Ok(())
    }

    async fn tag_rule(&self, rule_id: &str, tags: &[(String, String)]) -> Result<(), RuleError> {
        let form = tag_rule_form(rule_id, tags)?;
        if tags.is_empty() {
            return Ok(());
        }
        let body = self
            .call(CREATE_TAGS, &form)
            .await
            .map_err(|r| rule_refusal(r, rule_id))?;
        parse_tagged(&body)
            .map_err(Ec2Error::Malformed)
            .map_err(RuleError::from)
    }
}

fn invalid(why: impl Into<String>) -> Ec2Error {
    Ec2Error::Invalid(why.into())
}

fn check_group_id(id: &str) -> Result<(), Ec2Error> {
    if is_resource_id("sg", id) {
        Ok(())
    } else {
        Err(invalid("a security group id is sg- and 8 or 17 hex digits"))
    }
}

fn check_rule_id(id: &str) -> Result<(), Ec2Error> {
    if is_resource_id("sgr", id) {
        Ok(())
    } else {
        Err(invalid(
            "a security group rule id is sgr- and 8 or 17 hex digits",
        ))
    }
}

/// Tags keyward may set: EC2's limits, unique keys, and no `aws:` prefix (reserved for AWS).
fn check_tags(tags: &[(String, String)]) -> Result<(), Ec2Error> {
    if tags.len() > MAX_TAGS {
        return Err(invalid(format!("more than {MAX_TAGS} tags")));
    }
    let mut keys = HashSet::new();
    for (key, value) in tags {
        check_tag_key(key).map_err(invalid)?;
        check_tag_value(value).map_err(invalid)?;
        if key.to_ascii_lowercase().starts_with("aws:") {
            return Err(invalid("tag keys starting with aws: are AWS's"));
        }
        if !keys.insert(key.as_str()) {
            return Err(invalid("a tag key given twice"));
        }
    }
    Ok(())
}

/// A description EC2 accepts for a rule: up to 255 characters of letters, digits, spaces and
/// `._-:/()#,@[]+=&;{}!$*`.
fn check_description(text: &str) -> Result<(), Ec2Error> {
    let ok = text.chars().count() <= MAX_DESCRIPTION
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || " ._-:/()#,@[]+=&;{}!$*".contains(c));
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "a rule description is up to {MAX_DESCRIPTION} letters, digits, spaces and ._-:/()#,@[]+=&;{{}}!$*"
        )))
    }
}

fn add_tags(form: &mut Form, prefix: &str, tags: &[(String, String)]) {
    for (n, (key, value)) in tags.iter().enumerate() {
        let n = n + 1;
        form.add(&format!("{prefix}Tag.{n}.Key"), key)
            .add(&format!("{prefix}Tag.{n}.Value"), value);
    }
}

/// DescribeSecurityGroups for these ids (`GroupId.N`).
pub fn groups_form(ids: &[String]) -> Result<Form, Ec2Error> {
    if ids.len() > MAX_GROUP_IDS {
        return Err(invalid(format!(
            "more than {MAX_GROUP_IDS} security groups at once"
        )));
    }
    let mut form = Form::new(DESCRIBE_GROUPS);
    for (n, id) in ids.iter().enumerate() {
        check_group_id(id)?;
        form.add(&format!("GroupId.{}", n + 1), id);
    }
    Ok(form)
}

/// DescribeSecurityGroups of the groups carrying tag `key` (filter `tag-key`).
pub fn tagged_groups_form(key: &str) -> Result<Form, Ec2Error> {
    check_tag_key(key).map_err(invalid)?;
    let mut form = Form::new(DESCRIBE_GROUPS);
    form.add("Filter.1.Name", "tag-key")
        .add("Filter.1.Value.1", &exact_filter_value(key));
    Ok(form)
}

/// DescribeSecurityGroupRules of one group (filter `group-id`).
pub fn rules_form(group_id: &str) -> Result<Form, Ec2Error> {
    check_group_id(group_id)?;
    let mut form = Form::new(DESCRIBE_RULES);
    form.add("Filter.1.Name", "group-id")
        .add("Filter.1.Value.1", group_id);
    Ok(form)
}

/// AuthorizeSecurityGroupIngress of TCP `port` from the rule's network (host bits cleared),
/// with its description, and its tags on the new rule.
pub fn authorize_form(rule: &NewIngressRule) -> Result<Form, Ec2Error> {
    check_group_id(&rule.group_id)?;
    check_description(&rule.description)?;
    check_tags(&rule.tags)?;
    let port = rule.port.to_string();
    let cidr = rule.cidr.trunc().to_string();
    let mut form = Form::new(AUTHORIZE);
    form.add("GroupId", &rule.group_id)
        .add("IpPermissions.1.IpProtocol", "tcp")
        .add("IpPermissions.1.FromPort", &port)
        .add("IpPermissions.1.ToPort", &port);
    let range = match rule.cidr {
        ipnet::IpNet::V4(_) => {
            form.add("IpPermissions.1.IpRanges.1.CidrIp", &cidr);
            "IpPermissions.1.IpRanges.1.Description"
        }
        ipnet::IpNet::V6(_) => {
            form.add("IpPermissions.1.Ipv6Ranges.1.CidrIpv6", &cidr);
            "IpPermissions.1.Ipv6Ranges.1.Description"
        }
    };
    if !rule.description.is_empty() {
        form.add(range, &rule.description);
    }
    if !rule.tags.is_empty() {
        form.add("TagSpecification.1.ResourceType", "security-group-rule");
        add_tags(&mut form, "TagSpecification.1.", &rule.tags);
    }
    Ok(form)
}

/// RevokeSecurityGroupIngress of these rules, [`REVOKE_BATCH`] per call.
pub fn revoke_forms(group_id: &str, rule_ids: &[String]) -> Result<Vec<Form>, Ec2Error> {
    check_group_id(group_id)?;
    rule_ids.iter().try_for_each(|id| check_rule_id(id))?;
    Ok(rule_ids
        .chunks(REVOKE_BATCH)
        .map(|batch| {
            let mut form = Form::new(REVOKE);
            form.add("GroupId", group_id);
            for (n, id) in batch.iter().enumerate() {
                form.add(&format!("SecurityGroupRuleId.{}", n + 1), id);
            }
            form
        })
        .collect())
}

/// CreateTags on one rule.
pub fn tag_rule_form(rule_id: &str, tags: &[(String, String)]) -> Result<Form, Ec2Error> {
    check_rule_id(rule_id)?;
    check_tags(tags)?;
    let mut form = Form::new(CREATE_TAGS);
    form.add("ResourceId.1", rule_id);
    add_tags(&mut form, "", tags);
    Ok(form)
}

/// A group lookup's refusal: `InvalidGroup.NotFound` names the groups asked for.
fn group_refusal(refusal: Refusal, ids: &[String]) -> Ec2Error {
    match refusal.code.as_deref() {
        Some("InvalidGroup.NotFound" | "InvalidGroupId.Malformed") => {
            Ec2Error::NotFound(format!("security group among {}", ids.join(", ")))
        }
        _ => refusal.error,
    }
}

/// A rule change's refusal. `subject` is the (checked) group or rule id the call was about.
fn rule_refusal(refusal: Refusal, subject: &str) -> RuleError {
    match refusal.code.as_deref() {
        Some("InvalidPermission.Duplicate") => RuleError::Duplicate,
        Some(
            "InvalidPermission.NotFound"
            | "InvalidSecurityGroupRuleId.NotFound"
            | "InvalidSecurityGroupRuleId.Malformed",
        ) => RuleError::NotFound,
        Some("RulesPerSecurityGroupLimitExceeded") => {
            RuleError::LimitExceeded(format!("{subject}: RulesPerSecurityGroupLimitExceeded"))
        }
        Some("InvalidGroup.NotFound" | "InvalidGroupId.Malformed") => {
            RuleError::Ec2(Ec2Error::NotFound(format!("security group {subject}")))
        }
        _ => RuleError::Ec2(refusal.error),
    }
}

/// One page of DescribeSecurityGroups, every group checked.
pub fn parse_groups(body: &[u8]) -> Result<Page<SecurityGroup>, String> {
    let list = read_list(body, &GROUP_SHAPE)?;
    if list.lists != 1 {
        return Err("no <securityGroupInfo>".into());
    }
    let items = list
        .items
        .iter()
        .map(group)
        .collect::<Result<Vec<_>, _>>()?;
    let next_token = list.top_one(0, "nextToken")?.map(str::to_owned);
    Ok(Page { items, next_token })
}

fn group(item: &Item) -> Result<SecurityGroup, String> {
    let id = item.required(0, "groupId")?;
    if !is_resource_id("sg", id) {
        return Err("a <groupId> that is not a security group id".into());
    }
    let name = item.required(1, "groupName")?;
    if name.chars().count() > 255 {
        return Err("a <groupName> over 255 characters".into());
    }
    let vpc_id = item.one(2, "vpcId")?;
    if vpc_id.is_some_and(|v| !is_resource_id("vpc", v)) {
        return Err("a <vpcId> that is not a VPC id".into());
    }
    check_read_tags(&item.tags)?;
    Ok(SecurityGroup {
        id: id.to_owned(),
        name: name.to_owned(),
        vpc_id: vpc_id.map(str::to_owned),
        tags: item.tags.clone(),
    })
}

fn check_read_tags(tags: &[(String, String)]) -> Result<(), String> {
    tags.iter()
        .try_for_each(|(k, v)| check_tag_key(k).and_then(|()| check_tag_value(v)))
}

/// The groups asked for by `ids`: each exactly once, no other.
fn exactly_these(
    groups: Vec<SecurityGroup>,
    ids: &[String],
) -> Result<Vec<SecurityGroup>, Ec2Error> {
    each_once(&groups, |g| g.id.as_str())?;
    if groups.iter().any(|g| !ids.contains(&g.id)) {
        return Err(Ec2Error::Malformed(
            "a security group other than those asked for".into(),
        ));
    }
    if let Some(missing) = ids.iter().find(|id| !groups.iter().any(|g| g.id == **id)) {
        return Err(Ec2Error::NotFound(format!("security group {missing}")));
    }
    Ok(groups)
}

/// One page of DescribeSecurityGroupRules of `group_id`: its ingress rules, every rule (egress
/// ones too) checked.
pub fn parse_rules(body: &[u8], group_id: &str) -> Result<Page<IngressRule>, String> {
    let list = read_list(body, &RULE_SHAPE)?;
    if list.lists != 1 {
        return Err("no <securityGroupRuleSet>".into());
    }
    let mut items = Vec::new();
    for item in &list.items {
        let (rule, egress) = rule(item)?;
        if rule.group_id != group_id {
            return Err("a rule of another security group".into());
        }
        if !egress {
            items.push(rule);
        }
    }
    let next_token = list.top_one(0, "nextToken")?.map(str::to_owned);
    Ok(Page { items, next_token })
}

/// One rule element, checked; and whether it is an egress rule.
fn rule(item: &Item) -> Result<(IngressRule, bool), String> {
    let id = item.required(RULE_ID, "securityGroupRuleId")?;
    if !is_resource_id("sgr", id) {
        return Err("a <securityGroupRuleId> that is not a rule id".into());
    }
    let group_id = item.required(GROUP_ID, "groupId")?;
    if !is_resource_id("sg", group_id) {
        return Err("a rule's <groupId> that is not a security group id".into());
    }
    let egress = match item.required(EGRESS, "isEgress")? {
        "true" => true,
        "false" => false,
        _ => return Err("an <isEgress> that is neither true nor false".into()),
    };
    let protocol = item.required(PROTOCOL, "ipProtocol")?;
    if protocol.len() > 16
        || !protocol
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err("an <ipProtocol> that is not a protocol".into());
    }
    // EC2 writes -1 for "all ports" (and may leave them out for all protocols).
    let port = |field: usize, name: &str| -> Result<i32, String> {
        match item.one(field, name)? {
            None => Ok(-1),
            Some(text) => text
                .parse::<i32>()
                .ok()
                .filter(|p| (-1..=65535).contains(p))
                .ok_or_else(|| format!("a <{name}> that is not a port")),
        }
    };
    let from_port = port(FROM_PORT, "fromPort")?;
    let to_port = port(TO_PORT, "toPort")?;
    let v4 = item.one(CIDR_V4, "cidrIpv4")?;
    let v6 = item.one(CIDR_V6, "cidrIpv6")?;
    let cidr = match (v4, v6) {
        (None, None) => None,
        (Some(v4), None) => {
            Some(ipnet::IpNet::V4(v4.parse().map_err(|_| {
                "a <cidrIpv4> that is not an IPv4 CIDR".to_owned()
            })?))
        }
        (None, Some(v6)) => {
            Some(ipnet::IpNet::V6(v6.parse().map_err(|_| {
                "a <cidrIpv6> that is not an IPv6 CIDR".to_owned()
            })?))
        }
        (Some(_), Some(_)) => return Err("a rule with both an IPv4 and an IPv6 CIDR".into()),
    };
    let description = item.one(DESCRIPTION, "description")?;
    if description.is_some_and(|d| d.chars().count() > MAX_DESCRIPTION) {
        return Err(format!("a <description> over {MAX_DESCRIPTION} characters"));
    }
    check_read_tags(&item.tags)?;
    let rule = IngressRule {
        id: id.to_owned(),
        group_id: group_id.to_owned(),
        protocol: protocol.to_owned(),
        from_port,
        to_port,
        cidr,
        description: description.map(str::to_owned),
        tags: item.tags.clone(),
    };
    Ok((rule, egress))
}

/// The new rule's id from an authorize answer, once the answer confirms the rule asked for.
pub fn parse_authorized(body: &[u8], asked: &NewIngressRule) -> Result<String, String> {
    let list = read_list(body, &AUTHORIZE_SHAPE)?;
    if list.top_one(0, "return")? != Some("true") {
        return Err("an authorize answer without <return>true</return>".into());
    }
    let rules = list.items.iter().map(rule).collect::<Result<Vec<_>, _>>()?;
    let [(rule, false)] = &rules[..] else {
        return Err(format!("{} rules for one new ingress rule", rules.len()));
    };
    let port = i32::from(asked.port);
    let same = rule.group_id == asked.group_id
        && rule.protocol == "tcp"
        && (rule.from_port, rule.to_port) == (port, port)
        && rule.cidr == Some(asked.cidr.trunc());
    if !same {
        return Err("a new rule other than the one asked for".into());
    }
    Ok(rule.id.clone())
}

/// A revoke answer: confirmed, and no rule EC2 did not know.
pub fn parse_revoked(body: &[u8]) -> Result<(), RuleError> {
    let list = read_list(body, &REVOKE_SHAPE).map_err(Ec2Error::Malformed)?;
    if !list.items.is_empty() {
        return Err(RuleError::NotFound);
    }
    confirmed(&list, &REVOKE_SHAPE, true).map_err(|e| Ec2Error::Malformed(e).into())
}

/// A CreateTags answer: confirmed (moto leaves `<return>` out).
pub fn parse_tagged(body: &[u8]) -> Result<(), String> {
    let list = read_list(body, &CREATE_TAGS_SHAPE)?;
    confirmed(&list, &CREATE_TAGS_SHAPE, false)
}

/// Whether an answer of `shape` says `<return>true</return>`, or (when not `required`)
/// nothing.
fn confirmed(list: &List, shape: &Shape<'_>, required: bool) -> Result<(), String> {
    match list.top_one(0, "return")? {
        Some("true") => Ok(()),
        None if !required => Ok(()),
        _ => Err(format!("a <{}> without <return>true</return>", shape.root)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests;
