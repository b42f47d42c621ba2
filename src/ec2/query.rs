//! The production [`Ec2`]: DescribeInstances over EC2's Query API (a SigV4-signed form POST,
//! service `ec2`), read strictly into an [`Instance`].
//!
//! Invariants (with those of [`crate::ec2`]):
//! - Only an instance id of the documented shape is sent; any other text cannot name an
//!   instance and is answered `Ok(None)` without a call.
//! - The answer must be one whole `DescribeInstancesResponse` holding at most one instance,
//!   the one asked for; only the instance's own elements are read (the network interfaces
//!   repeat `privateIpAddress` and friends deeper down), each at most once and each checked.
//! - `InvalidInstanceID.NotFound` / `.Malformed` are "none"; denied access names the action;
//!   rejected credentials are `NoCredentials`; everything else is an outage or malformed.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use super::{Ec2, Ec2Error, Instance};
use crate::http::{self, HttpError, Target};
use crate::sigv4::{self, walk_answer, AwsContext, SignError, Signer, Xml};

/// A DescribeInstances answer for one instance is a few KB.
pub const MAX_ANSWER_BYTES: usize = 256 * 1024;
/// The bound on each call when the options set none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
const ACTION: &str = "ec2:DescribeInstances";
const CONTENT_TYPE: &str = "application/x-www-form-urlencoded; charset=utf-8";
const STATES: &[&str] = &[
    "pending",
    "running",
    "stopping",
    "stopped",
    "shutting-down",
    "terminated",
];

/// EC2 in one region, through the standard credential chain. Keep it within one tokio runtime:
/// it pools connections.
#[derive(Clone)]
pub struct AwsEc2 {
    aws: AwsContext,
    region: String,
    endpoint: Target,
    timeout: Duration,
    client: http::Client,
}

impl AwsEc2 {
    /// Region, credentials and endpoint (`AWS_ENDPOINT_URL_EC2`, `AWS_ENDPOINT_URL`, else
    /// `https://ec2.{region}.amazonaws.com`) as keyward's SDK clients find them.
    pub async fn new(options: &crate::iam::ClientOptions) -> Result<AwsEc2, Ec2Error> {
        AwsEc2::from_config(crate::iam::sdk_config(options).await, options)
    }

    /// A client from an SDK config already loaded with `options` (the issuer loads one for
    /// KMS, IAM and EC2).
    pub fn from_config(
        shared: aws_config::SdkConfig,
        options: &crate::iam::ClientOptions,
    ) -> Result<AwsEc2, Ec2Error> {
        AwsEc2::from_context(
            AwsContext::from_config(shared),
            options.timeout.unwrap_or(DEFAULT_TIMEOUT),
        )
    }

    pub fn from_context(aws: AwsContext, timeout: Duration) -> Result<AwsEc2, Ec2Error> {
        let setup = |e: String| Ec2Error::NoCredentials(e);
        let region = aws
            .region()
            .ok_or_else(|| setup(SignError::NoRegion.to_string()))?
            .to_owned();
        let url = aws
            .endpoint("EC2", "ec2")
            .map_err(|e| setup(e.to_string()))?;
        let endpoint = Target::parse(&url).map_err(|e| setup(format!("EC2 endpoint: {e}")))?;
        let client = http::Client::new().map_err(|e| Ec2Error::Unreachable(e.to_string()))?;
        Ok(AwsEc2 {
            aws,
            region,
            endpoint,
            timeout,
            client,
        })
    }

    pub fn endpoint(&self) -> &Target {
        &self.endpoint
    }
}

impl Ec2 for AwsEc2 {
    async fn instance(&self, id: &str) -> Result<Option<Instance>, Ec2Error> {
        if !super::is_instance_id(id) {
            return Ok(None);
        }
        let credentials = self
            .aws
            .credentials()
            .await
            .map_err(|e| Ec2Error::NoCredentials(e.to_string()))?;
        let body = format!("Action=DescribeInstances&Version=2016-11-15&InstanceId.1={id}");
        let signer = Signer {
            credentials: &credentials,
            region: &self.region,
            service: "ec2",
            now: SystemTime::now(),
        };
        let content_type = ("content-type", CONTENT_TYPE);
        let signed = sigv4::sign_request(
            &signer,
            "POST",
            &self.endpoint,
            &[content_type],
            body.as_bytes(),
        )
        .map_err(|e| Ec2Error::NoCredentials(e.to_string()))?;
        let mut headers = vec![content_type];
        headers.extend(signed.iter().map(|(n, v)| (n.as_str(), v.as_str())));
        let answer = self
            .client
            .send(
                ::http::Method::POST,
                &self.endpoint,
                &headers,
                body.as_bytes(),
                self.timeout,
                MAX_ANSWER_BYTES,
            )
            .await
            .map_err(|e: HttpError| Ec2Error::Unreachable(e.to_string()))?;
        judge(id, answer.status, &answer.body)
    }
}

// Issue 12: not yet spoken; the ec2 helper fills these in.
impl super::Instances for AwsEc2 {
    async fn instances(
        &self,
        _filters: &[super::InstanceFilter],
    ) -> Result<Vec<Instance>, Ec2Error> {
        Err(Ec2Error::Unreachable(
            "DescribeInstances by filter is not implemented yet".into(),
        ))
    }
}

impl super::SecurityGroups for AwsEc2 {
    async fn security_groups(
        &self,
        _ids: &[String],
    ) -> Result<Vec<super::SecurityGroup>, Ec2Error> {
        Err(Ec2Error::Unreachable("not implemented yet".into()))
    }
    async fn tagged_security_groups(
        &self,
        _key: &str,
    ) -> Result<Vec<super::SecurityGroup>, Ec2Error> {
        Err(Ec2Error::Unreachable("not implemented yet".into()))
    }
    async fn ingress_rules(&self, _group_id: &str) -> Result<Vec<super::IngressRule>, Ec2Error> {
        Err(Ec2Error::Unreachable("not implemented yet".into()))
    }
    async fn authorize_ingress(
        &self,
        _rule: &super::NewIngressRule,
    ) -> Result<String, super::RuleError> {
        Err(Ec2Error::Unreachable("not implemented yet".into()).into())
    }
    async fn revoke_ingress(
        &self,
        _group_id: &str,
        _rule_ids: &[String],
    ) -> Result<(), super::RuleError> {
        Err(Ec2Error::Unreachable("not implemented yet".into()).into())
    }
    async fn tag_rule(
        &self,
        _rule_id: &str,
        _tags: &[(String, String)],
    ) -> Result<(), super::RuleError> {
        Err(Ec2Error::Unreachable("not implemented yet".into()).into())
    }
}

/// What an answer to DescribeInstances for `id` says.
pub fn judge(id: &str, status: u16, body: &[u8]) -> Result<Option<Instance>, Ec2Error> {
    if status == 200 {
        return parse_instance(id, body).map_err(Ec2Error::Malformed);
    }
    let code = sigv4::error_code(body);
    let code_text = code.as_deref().unwrap_or("no error code");
    let message = format!("HTTP {status}, {code_text}");
    match code.as_deref() {
        Some("InvalidInstanceID.NotFound" | "InvalidInstanceID.Malformed") => Ok(None),
        Some("UnauthorizedOperation" | "AccessDenied" | "AccessDeniedException") => {
            Err(Ec2Error::AccessDenied {
                action: ACTION,
                message,
            })
        }
        Some(
            "AuthFailure"
            | "InvalidClientTokenId"
            | "SignatureDoesNotMatch"
            | "ExpiredToken"
            | "RequestExpired"
            | "MissingAuthenticationToken"
            | "OptInRequired",
        ) => Err(Ec2Error::NoCredentials(format!(
            "EC2 rejected the credentials ({message})"
        ))),
        None if status == 403 => Err(Ec2Error::AccessDenied {
            action: ACTION,
            message,
        }),
        // Throttling, 5xx, and any other refusal: EC2 said nothing about the instance.
        _ => Err(Ec2Error::Unreachable(message)),
    }
}

/// The instance element's fields, as read from the document.
#[derive(Debug, Default)]
struct Fields {
    instances: usize,
    id: Vec<String>,
    state: Vec<String>,
    profile_arn: Vec<String>,
    private_ip: Vec<String>,
    private_dns: Vec<String>,
    public_ip: Vec<String>,
    public_dns: Vec<String>,
    name_tag: Vec<String>,
}

/// The instance `id` in a 200 answer; `None` for an empty reservation set.
pub fn parse_instance(id: &str, body: &[u8]) -> Result<Option<Instance>, String> {
    let text = std::str::from_utf8(body).map_err(|_| "a body that is not UTF-8".to_owned())?;
    let fields = read_fields(text)?;
    match fields.instances {
        0 => return Ok(None),
        1 => {}
        n => return Err(format!("{n} instances for one instance id")),
    }
    let one = |values: &[String], name: &str| -> Result<Option<String>, String> {
        match values {
            [] => Ok(None),
            [v] if v.contains('&') => Err(format!("<{name}> with an entity reference")),
            [v] if v.chars().any(char::is_control) => {
                Err(format!("<{name}> with a control character"))
            }
            [v] if v.is_empty() => Ok(None),
            [v] => Ok(Some(v.clone())),
            _ => Err(format!("<{name}> more than once")),
        }
    };
    let required = |values: &[String], name: &str| {
        one(values, name)?.ok_or_else(|| format!("an instance without <{name}>"))
    };
    let got_id = required(&fields.id, "instanceId")?;
    if got_id != id {
        return Err("an instance other than the one asked for".into());
    }
    let state = required(&fields.state, "instanceState/name")?;
    if !STATES.contains(&state.as_str()) {
        return Err("an unknown <instanceState>".into());
    }
    let ip = |values: &[String], name: &str| -> Result<Option<IpAddr>, String> {
        one(values, name)?
            .map(|v| {
                v.parse()
                    .map_err(|_| format!("a <{name}> that is not an IP address"))
            })
            .transpose()
    };
    let dns = |values: &[String], name: &str| -> Result<Option<String>, String> {
        match one(values, name)? {
            Some(v) if !is_host_name(&v) => Err(format!("a <{name}> that is not a host name")),
            other => Ok(other),
        }
    };
    let profile = one(&fields.profile_arn, "iamInstanceProfile/arn")?;
    if profile.as_deref().is_some_and(|arn| !is_profile_arn(arn)) {
        return Err("an <iamInstanceProfile> ARN that is not an instance profile's".into());
    }
    let name_tag = one(&fields.name_tag, "tagSet Name")?;
    if name_tag.as_deref().is_some_and(|n| n.chars().count() > 256) {
        return Err("a Name tag over 256 characters".into());
    }
    Ok(Some(Instance {
        id: got_id,
        state,
        instance_profile_arn: profile,
        private_ip: ip(&fields.private_ip, "privateIpAddress")?,
        private_dns: dns(&fields.private_dns, "privateDnsName")?,
        public_ip: ip(&fields.public_ip, "ipAddress")?,
        public_dns: dns(&fields.public_dns, "dnsName")?,
        name_tag,
        vpc_id: None,
        security_groups: Vec::new(),
    }))
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

/// Collects the instance's own fields (and counts instances and reservation sets) while
/// [`walk_answer`] checks the document.
fn read_fields(text: &str) -> Result<Fields, String> {
    const RESERVATIONS: &str = "reservationSet";
    const INSTANCES: &str = "instancesSet";
    let mut fields = Fields::default();
    let mut reservation_sets = 0;
    // The tag item being read: (key, value).
    let mut tag: Option<(String, String)> = None;
    walk_answer(text, "DescribeInstancesResponse", |step| {
        match step {
            Xml::Start {
                path: [_, RESERVATIONS],
            } => reservation_sets += 1,
            Xml::Start {
                path: [_, RESERVATIONS, "item", INSTANCES, "item"],
            } => fields.instances += 1,
            Xml::Start {
                path: [_, RESERVATIONS, "item", INSTANCES, "item", "tagSet", "item"],
            } => tag = Some((String::new(), String::new())),
            Xml::End {
                path: [_, RESERVATIONS, "item", INSTANCES, "item", "tagSet", "item"],
            } => {
                if let Some((key, value)) = tag.take() {
                    if key == "Name" {
                        fields.name_tag.push(value);
                    }
                }
            }
            Xml::Start {
                path: [_, RESERVATIONS, "item", INSTANCES, "item", field @ ..],
            } => {
                // A field element starts: an empty value that its text fills.
                if let Some(list) = field_list(&mut fields, field) {
                    list.push(String::new());
                }
            }
            Xml::Text {
                path: [_, RESERVATIONS, "item", INSTANCES, "item", "tagSet", "item", part],
                text,
            } => {
                if let Some((key, value)) = tag.as_mut() {
                    match *part {
                        "key" => key.push_str(text),
                        "value" => value.push_str(text),
                        _ => {}
                    }
                }
            }
            Xml::Text {
                path: [_, RESERVATIONS, "item", INSTANCES, "item", field @ ..],
                text,
            } => {
                if let Some(last) = field_list(&mut fields, field).and_then(|l| l.last_mut()) {
                    last.push_str(text.trim());
                }
            }
            _ => {}
        }
        Ok(())
    })?;
    if reservation_sets != 1 {
        return Err(format!("{reservation_sets} <{RESERVATIONS}> elements"));
    }
    Ok(fields)
}

/// The list a field element of the instance records into, by its path below the instance
/// element, if it is one that is read.
fn field_list<'f>(fields: &'f mut Fields, below_instance: &[&str]) -> Option<&'f mut Vec<String>> {
    match below_instance {
        ["instanceId"] => Some(&mut fields.id),
        ["instanceState", "name"] => Some(&mut fields.state),
        ["iamInstanceProfile", "arn"] => Some(&mut fields.profile_arn),
        ["privateIpAddress"] => Some(&mut fields.private_ip),
        ["privateDnsName"] => Some(&mut fields.private_dns),
        ["ipAddress"] => Some(&mut fields.public_ip),
        ["dnsName"] => Some(&mut fields.public_dns),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests;
