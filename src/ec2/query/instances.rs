//! DescribeInstances: one instance by id ([`Ec2`], host certificates) and every instance
//! matching filters ([`Instances`], `proxy` and `hosts`).
//!
//! Invariants (with those of [`super`]):
//! - Only an instance id of the documented shape is sent; any other text cannot name an
//!   instance and is answered "none" without a call. Likewise a filter no instance can match
//!   (a tag value over 256 characters, a control character, an unknown state) is answered with
//!   an empty list without a call.
//! - Filter values are exact: EC2's wildcards (`*`, `?`) and its escape (`\`) in a value are
//!   escaped, so `web*` names the instance called `web*` only.
//! - Each instance is read from its own elements only (`instancesSet/item/…`; the network
//!   interfaces repeat `privateIpAddress` and `groupSet` deeper down), each single field at
//!   most once, and each checked; one instance failing a check fails the whole answer.
//! - An instance id appearing twice across the pages of one answer is malformed.
//! - `InvalidInstanceID.NotFound` / `.Malformed` are "none".

use std::borrow::Cow;
use std::net::IpAddr;

use super::{
    action, check_tag_key, check_tag_value, each_once, exact_filter_value, read_list, Action,
    AwsEc2, Form, Item, Page, Shape,
};
use crate::ec2::{
    is_instance_id, is_resource_id, Ec2, Ec2Error, Instance, InstanceFilter, Instances,
};

const DESCRIBE: Action = action!("DescribeInstances");
const STATES: &[&str] = &[
    "pending",
    "running",
    "stopping",
    "stopped",
    "shutting-down",
    "terminated",
];
const ID: usize = 0;
const STATE: usize = 1;
const PROFILE: usize = 2;
const PRIVATE_IP: usize = 3;
const PRIVATE_DNS: usize = 4;
const PUBLIC_IP: usize = 5;
const PUBLIC_DNS: usize = 6;
const VPC: usize = 7;
const GROUPS: usize = 8;

const SHAPE: Shape<'static> = Shape {
    root: "DescribeInstancesResponse",
    item: &["reservationSet", "item", "instancesSet", "item"],
    fields: &[
        &["instanceId"],
        &["instanceState", "name"],
        &["iamInstanceProfile", "arn"],
        &["privateIpAddress"],
        &["privateDnsName"],
        &["ipAddress"],
        &["dnsName"],
        &["vpcId"],
        &["groupSet", "item", "groupId"],
    ],
    top: &["nextToken"],
};

impl Ec2 for AwsEc2 {
    async fn instance(&self, id: &str) -> Result<Option<Instance>, Ec2Error> {
        if !is_instance_id(id) {
            return Ok(None);
        }
        let mut form = Form::new(DESCRIBE);
        form.add("InstanceId.1", id);
        let answer = self.send(&form).await?;
        judge(id, answer.status, &answer.body)
    }
}

impl Instances for AwsEc2 {
    async fn instances(&self, filters: &[InstanceFilter]) -> Result<Vec<Instance>, Ec2Error> {
        let Some(form) = filter_form(filters) else {
            return Ok(Vec::new());
        };
        let instances = self
            .all_pages(DESCRIBE, &form, true, parse_page)
            .await
            .map_err(|r| r.error)?;
        each_once(&instances, |i| i.id.as_str())?;
        Ok(instances)
    }
}

/// The DescribeInstances form for `filters` (`Filter.N.Name`, `Filter.N.Value.1`); `None` when
/// no instance can match them.
pub fn filter_form(filters: &[InstanceFilter]) -> Option<Form> {
    let mut form = Form::new(DESCRIBE);
    for (n, filter) in filters.iter().enumerate() {
        let (name, value): (Cow<'_, str>, Cow<'_, str>) = match filter {
            InstanceFilter::Id(id) if is_instance_id(id) => ("instance-id".into(), id.into()),
            InstanceFilter::Id(_) => return None,
            InstanceFilter::Name(name) => ("tag:Name".into(), tag_value(name)?.into()),
            InstanceFilter::PrivateIp(ip) => ("private-ip-address".into(), ip.to_string().into()),
            InstanceFilter::PublicIp(ip) => ("ip-address".into(), ip.to_string().into()),
            InstanceFilter::Tag { key, value } => (
                format!("tag:{}", tag_key(key)?).into(),
                tag_value(value)?.into(),
            ),
            InstanceFilter::State(state) if STATES.contains(&state.as_str()) => {
                ("instance-state-name".into(), state.into())
            }
            InstanceFilter::State(_) => return None,
        };
        let n = n + 1;
        form.add(&format!("Filter.{n}.Name"), &name)
            .add(&format!("Filter.{n}.Value.1"), &value);
    }
    Some(form)
}

/// A tag key that can exist, without EC2's wildcards (`*`, `?`, `\`): in a filter name they
/// would make it a pattern.
fn tag_key(key: &str) -> Option<&str> {
    let exact = check_tag_key(key).is_ok() && !key.chars().any(|c| "*?\\".contains(c));
    exact.then_some(key)
}

/// A tag value that can exist, with EC2's filter wildcards escaped so that it matches exactly.
fn tag_value(value: &str) -> Option<String> {
    check_tag_value(value).ok()?;
    Some(exact_filter_value(value))
}

/// What an answer to DescribeInstances for `id` says.
pub fn judge(id: &str, status: u16, body: &[u8]) -> Result<Option<Instance>, Ec2Error> {
    if status == 200 {
        return parse_instance(id, body).map_err(Ec2Error::Malformed);
    }
    let refusal = super::refusal(DESCRIBE, status, body);
    match refusal.code.as_deref() {
        Some("InvalidInstanceID.NotFound" | "InvalidInstanceID.Malformed") => Ok(None),
        _ => Err(refusal.error),
    }
}

/// The instance `id` in a 200 answer; `None` for an empty reservation set.
pub fn parse_instance(id: &str, body: &[u8]) -> Result<Option<Instance>, String> {
    let page = parse_page(body)?;
    match &page.items[..] {
        [] => Ok(None),
        [one] if one.id == id => Ok(page.items.into_iter().next()),
        [_] => Err("an instance other than the one asked for".into()),
        more => Err(format!("{} instances for one instance id", more.len())),
    }
}

/// Every instance of one DescribeInstances page, each checked, and the next page's token.
pub fn parse_page(body: &[u8]) -> Result<Page<Instance>, String> {
    let list = read_list(body, &SHAPE)?;
    if list.lists != 1 {
        return Err(format!("{} <reservationSet> elements", list.lists));
    }
    let items = list
        .items
        .iter()
        .map(instance)
        .collect::<Result<Vec<_>, _>>()?;
    let next_token = list.top_one(0, "nextToken")?.map(str::to_owned);
    Ok(Page { items, next_token })
}

/// One instance element, checked.
fn instance(item: &Item) -> Result<Instance, String> {
    let id = item.required(ID, "instanceId")?;
    if !is_instance_id(id) {
        return Err("an <instanceId> that is not an instance id".into());
    }
    let state = item.required(STATE, "instanceState/name")?;
    if !STATES.contains(&state) {
        return Err("an unknown <instanceState>".into());
    }
    let ip = |field: usize, name: &str| -> Result<Option<IpAddr>, String> {
        item.one(field, name)?
            .map(|v| {
                v.parse()
                    .map_err(|_| format!("a <{name}> that is not an IP address"))
            })
            .transpose()
    };
    let dns = |field: usize, name: &str| -> Result<Option<String>, String> {
        match item.one(field, name)? {
            Some(v) if !is_host_name(v) => Err(format!("a <{name}> that is not a host name")),
            other => Ok(other.map(str::to_owned)),
        }
    };
    let profile = item.one(PROFILE, "iamInstanceProfile/arn")?;
    if profile.is_some_and(|arn| !is_profile_arn(arn)) {
        return Err("an <iamInstanceProfile> ARN that is not an instance profile's".into());
    }
    let name_tag = item.tag("Name").filter(|n| !n.is_empty());
    if name_tag.is_some_and(|n| n.chars().count() > super::MAX_TAG_VALUE) {
        return Err("a Name tag over 256 characters".into());
    }
    let vpc_id = item.one(VPC, "vpcId")?;
    if vpc_id.is_some_and(|v| !is_resource_id("vpc", v)) {
        return Err("a <vpcId> that is not a VPC id".into());
    }
    let mut security_groups: Vec<String> = Vec::new();
    for group in &item.fields[GROUPS] {
        if !is_resource_id("sg", group) {
            return Err("a <groupSet> <groupId> that is not a security group id".into());
        }
        if security_groups.contains(group) {
            return Err("a security group listed twice".into());
        }
        security_groups.push(group.clone());
    }
    Ok(Instance {
        id: id.to_owned(),
        state: state.to_owned(),
        instance_profile_arn: profile.map(str::to_owned),
        private_ip: ip(PRIVATE_IP, "privateIpAddress")?,
        private_dns: dns(PRIVATE_DNS, "privateDnsName")?,
        public_ip: ip(PUBLIC_IP, "ipAddress")?,
        public_dns: dns(PUBLIC_DNS, "dnsName")?,
        name_tag: name_tag.map(str::to_owned),
        vpc_id: vpc_id.map(str::to_owned),
        security_groups,
    })
}

/// A DNS name of labels of letters, digits and `-`, joined by dots; at most 253 characters.
fn is_host_name(name: &str) -> bool {
    name.len() <= 253
        && name.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// `arn:PARTITION:iam::ACCOUNT:instance-profile/[PATH/]NAME`.
fn is_profile_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    matches!(parts[..], ["arn", partition, "iam", "", account, resource]
    if partition.starts_with("aws")
        && partition.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && resource.strip_prefix("instance-profile/").is_some_and(|rest| {
            !rest.is_empty()
                && rest.len() <= 512
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-/".contains(&b))
        }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests;
