//! EC2, as keyward needs it: what an instance is, by id (host certificates), which running
//! instances a name, id or address means (`proxy`, `hosts`), and the ingress rules `open` and
//! `close` keep on security groups.
//!
//! aws-sdk-ec2 costs ~8 minutes of release build and ~10 GB of rustc memory for a handful of
//! calls, so keyward speaks EC2's Query API itself (a SigV4-signed form POST and a small XML
//! answer) behind the [`Ec2`], [`Instances`] and [`SecurityGroups`] traits
//! ([`query::AwsEc2`]); unit tests use fakes, integration tests moto.
//!
//! Invariants:
//! - Every field of an answer is checked before use: ids match EC2's shape
//!   ([`is_resource_id`]), addresses and CIDRs parse, DNS names are plain host names, tags
//!   have no control characters. An answer that fails a check is an error, never a partly
//!   filled [`Instance`] or a partial list.
//! - Nothing is sent that EC2 could not accept (ids, tags, descriptions): that is
//!   [`Ec2Error::Invalid`], without a call.

pub mod query;

use std::future::Future;
use std::net::IpAddr;

/// `i-` then 8 (older instances) or 17 lower-case hex digits, as EC2 writes them: the only
/// instance ids keyward puts in a request, a certificate, a principal or a log line.
pub fn is_instance_id(id: &str) -> bool {
    is_resource_id("i", id)
}

/// `PREFIX-` then 8 or 17 lower-case hex digits: how EC2 writes the ids of instances (`i`),
/// security groups (`sg`), their rules (`sgr`) and VPCs (`vpc`). Only ids of this shape are
/// sent to EC2 or accepted from its answers.
pub fn is_resource_id(prefix: &str, id: &str) -> bool {
    id.strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|hex| {
            matches!(hex.len(), 8 | 17)
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
}

/// One instance as DescribeInstances reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Instance {
    pub id: String,
    /// `pending`, `running`, `stopping`, `stopped`, `shutting-down`, `terminated`.
    pub state: String,
    /// `arn:aws:iam::123456789012:instance-profile/NAME`, when the instance has a profile.
    pub instance_profile_arn: Option<String>,
    pub private_ip: Option<IpAddr>,
    pub private_dns: Option<String>,
    pub public_ip: Option<IpAddr>,
    pub public_dns: Option<String>,
    /// The `Name` tag: shown to people, never certified (anyone with ec2:CreateTags sets it).
    pub name_tag: Option<String>,
    /// `vpc-…`, when the instance is in a VPC.
    #[serde(default)]
    pub vpc_id: Option<String>,
    /// The ids (`sg-…`) of the security groups of the instance's primary network interface.
    #[serde(default)]
    pub security_groups: Vec<String>,
}

/// Why EC2 gave no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Ec2Error {
    #[error("EC2 could not be reached: {0}")]
    Unreachable(String),
    #[error("no usable AWS credentials: {0}")]
    NoCredentials(String),
    #[error("EC2 denied {action}: allow \"{action}\" in the IAM policy of the caller ({message})")]
    AccessDenied {
        action: &'static str,
        message: String,
    },
    #[error("EC2 answered badly: {0}")]
    Malformed(String),
    /// EC2 says the thing named does not exist (e.g. `InvalidGroup.NotFound`).
    #[error("EC2 has no {0}")]
    NotFound(String),
    /// keyward refused to send the request: an id, tag or description EC2 would not accept.
    #[error("not sent to EC2: {0}")]
    Invalid(String),
}

pub trait Ec2 {
    /// The instance with this id; `Ok(None)` when EC2 says there is none.
    fn instance(&self, id: &str) -> impl Future<Output = Result<Option<Instance>, Ec2Error>>;
}

/// What DescribeInstances is asked to match (EC2 filters; several are ANDed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstanceFilter {
    /// `instance-id`: only ids that pass [`is_instance_id`] are ever sent.
    Id(String),
    /// `tag:Name`, exact.
    Name(String),
    /// `private-ip-address`.
    PrivateIp(IpAddr),
    /// `ip-address` (the public IPv4 address).
    PublicIp(IpAddr),
    /// `tag:KEY` = VALUE.
    Tag { key: String, value: String },
    /// `instance-state-name`, e.g. `running`.
    State(String),
}

/// Finding instances by what people call them.
pub trait Instances {
    /// Every instance matching all `filters` (all pages), each checked like [`Ec2::instance`]'s.
    fn instances(
        &self,
        filters: &[InstanceFilter],
    ) -> impl Future<Output = Result<Vec<Instance>, Ec2Error>>;
}

/// A security group, as DescribeSecurityGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityGroup {
    /// `sg-…`.
    pub id: String,
    pub name: String,
    pub vpc_id: Option<String>,
    pub tags: Vec<(String, String)>,
}

/// One ingress rule (`sgr-…`) of a security group, as DescribeSecurityGroupRules reports it.
/// keyward only ever creates TCP rules for one port and one CIDR; others are read so that they
/// are left alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressRule {
    /// `sgr-…`.
    pub id: String,
    /// `sg-…`.
    pub group_id: String,
    /// `tcp`, `udp`, `icmp`, `-1`, …
    pub protocol: String,
    pub from_port: i32,
    pub to_port: i32,
    /// `a.b.c.d/n` or an IPv6 CIDR; `None` for rules that name a prefix list or another group.
    pub cidr: Option<ipnet::IpNet>,
    pub description: Option<String>,
    pub tags: Vec<(String, String)>,
}

/// A rule `open` asks for: TCP `port` from `cidr`, tagged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewIngressRule {
    pub group_id: String,
    pub port: u16,
    pub cidr: ipnet::IpNet,
    pub description: String,
    pub tags: Vec<(String, String)>,
}

/// Why an ingress change was not made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// EC2 already has a rule with this group, protocol, port and CIDR
    /// (`InvalidPermission.Duplicate`): re-read the rules to find it.
    #[error("the security group already has this rule")]
    Duplicate,
    /// `InvalidPermission.NotFound` / `InvalidSecurityGroupRuleId.NotFound`: already gone.
    #[error("the rule no longer exists")]
    NotFound,
    #[error("the security group has no room for another rule ({0})")]
    LimitExceeded(String),
    #[error(transparent)]
    Ec2(#[from] Ec2Error),
}

/// The ingress rules of security groups: what `open`, `close` and `--sweep` read and change.
pub trait SecurityGroups {
    /// The groups with these ids (all of them, or an error).
    fn security_groups(
        &self,
        ids: &[String],
    ) -> impl Future<Output = Result<Vec<SecurityGroup>, Ec2Error>>;
    /// Every group carrying the tag `key` (any value).
    fn tagged_security_groups(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Vec<SecurityGroup>, Ec2Error>>;
    /// Every ingress rule of the group (all pages; egress rules are left out).
    fn ingress_rules(
        &self,
        group_id: &str,
    ) -> impl Future<Output = Result<Vec<IngressRule>, Ec2Error>>;
    /// Adds the rule with its tags in one call; the new rule's id.
    fn authorize_ingress(
        &self,
        rule: &NewIngressRule,
    ) -> impl Future<Output = Result<String, RuleError>>;
    /// Removes these rules (`sgr-…`) of the group.
    fn revoke_ingress(
        &self,
        group_id: &str,
        rule_ids: &[String],
    ) -> impl Future<Output = Result<(), RuleError>>;
    /// Sets (adds or overwrites) tags on a rule (`CreateTags` on the `sgr-…` id).
    fn tag_rule(
        &self,
        rule_id: &str,
        tags: &[(String, String)],
    ) -> impl Future<Output = Result<(), RuleError>>;
}
