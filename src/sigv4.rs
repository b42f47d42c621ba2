//! SigV4 and the Query API's error answers for the few AWS requests keyward builds itself
//! instead of through an SDK: the issuer's proof (an STS GetCallerIdentity POST,
//! `issuer::proof`) and EC2's Query API (`ec2::query`). Also where those requests get their credentials, region and endpoint: the
//! SDK's standard chain ([`crate::iam::sdk_config`]), so they behave like keyward's SDK clients
//! (profiles, SSO, instance roles, `AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_<SERVICE>`).
//!
//! Invariants:
//! - Signing is pure: credentials, region, service, URL, headers, body and a `now` in; headers
//!   out. The Host signed is the one [`crate::http`] sends (both come from [`Target`]).
//! - Every header given is signed (SigV4's default exclusions aside: authorization, user-agent,
//!   x-amzn-trace-id, transfer-encoding); a session token is signed too.
//! - A default endpoint is built only from a region that is a plain region name.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_config::SdkConfig;
use aws_credential_types::provider::ProvideCredentials;
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_types::service_config::ServiceConfigKey;

use crate::http::Target;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    #[error("no usable AWS credentials: set them up with `aws configure`, `aws sso login` or AWS_PROFILE (on EC2: attach an instance profile); {0}")]
    NoCredentials(String),
    #[error("no AWS region: set AWS_REGION or `region` in the AWS config file")]
    NoRegion,
    #[error("AWS region {0:?} is not a region name")]
    BadRegion(String),
    #[error("cannot sign the request: {0}")]
    Signing(String),
}

/// Who signs, where and when: the fixed part of a SigV4 signature.
#[derive(Debug, Clone, Copy)]
pub struct Signer<'a> {
    pub credentials: &'a Credentials,
    pub region: &'a str,
    /// The signing name: `sts`, `ec2`.
    pub service: &'a str,
    pub now: SystemTime,
}

/// The headers SigV4 adds to a request: `authorization`, `x-amz-date` and, with a session
/// token, `x-amz-security-token` (lower case). `headers` are sent as given and all signed, with
/// `host` from `target`.
pub fn sign_request(
    signer: &Signer<'_>,
    method: &str,
    target: &Target,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Vec<(String, String)>, SignError> {
    let Signer {
        credentials,
        region,
        service,
        now,
    } = *signer;
    let identity = credentials.clone().into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(now)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| SignError::Signing(e.to_string()))?
        .into();
    let mut all: Vec<(&str, &str)> = vec![("host", target.authority())];
    all.extend(
        headers
            .iter()
            .filter(|(name, _)| !name.eq_ignore_ascii_case("host")),
    );
    let url = target.url();
    let request = SignableRequest::new(
        method,
        url.as_str(),
        all.into_iter(),
        SignableBody::Bytes(body),
    )
    .map_err(|e| SignError::Signing(e.to_string()))?;
    let (instructions, _signature) = sign(request, &params)
        .map_err(|e| SignError::Signing(e.to_string()))?
        .into_parts();
    let (added, _params) = instructions.into_parts();
    Ok(added
        .into_iter()
        .map(|h| (h.name().to_ascii_lowercase(), h.value().to_owned()))
        .collect())
}

/// Whether `region` can stand in a host name: `us-east-1`, `eu-central-2`, `us-gov-west-1`.
pub fn is_region_name(region: &str) -> bool {
    (1..=32).contains(&region.len())
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !region.starts_with('-')
        && !region.ends_with('-')
}

/// `https://{prefix}.{region}.amazonaws.com` (`amazonaws.com.cn` in the China regions).
pub fn default_endpoint(prefix: &str, region: &str) -> Result<String, SignError> {
    if !is_region_name(region) {
        return Err(SignError::BadRegion(crate::iam::printable(region)));
    }
    let suffix = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    Ok(format!("https://{prefix}.{region}.{suffix}"))
}

/// Credentials are fetched again when they expire within this margin.
pub const CREDENTIALS_REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);

/// Whether credentials expiring at `expiry` (`None`: never) may still be used at `now`.
pub fn still_fresh(expiry: Option<SystemTime>, now: SystemTime) -> bool {
    expiry.is_none_or(|at| {
        now.checked_add(CREDENTIALS_REFRESH_MARGIN)
            .is_some_and(|limit| at > limit)
    })
}

/// Credentials, region and endpoints from the SDK's standard chain. The chain's providers do
/// not cache (the SDK clients' identity cache does), so this keeps the last credentials until
/// they near expiry: an issuer with `role_arn` must not call AssumeRole for every request.
#[derive(Debug, Clone)]
pub struct AwsContext {
    config: SdkConfig,
    cache: Arc<Mutex<Option<Credentials>>>,
}

impl AwsContext {
    /// The chain keyward's SDK clients use, with the same options (`role_arn`,
    /// `aws_config_file`, timeouts).
    pub async fn load(options: &crate::iam::ClientOptions) -> AwsContext {
        AwsContext::from_config(crate::iam::sdk_config(options).await)
    }

    pub fn from_config(config: SdkConfig) -> AwsContext {
        AwsContext {
            config,
            cache: Arc::new(Mutex::new(None)),
        }
    }

    pub fn region(&self) -> Option<&str> {
        self.config.region().map(|r| r.as_ref())
    }

    /// The endpoint for one service, the way the SDK picks it: an endpoint set in code, else
    /// `AWS_ENDPOINT_URL_<SERVICE_ID>` or the profile's `services` section, else
    /// `AWS_ENDPOINT_URL` or the profile's `endpoint_url`; `None` for the service's default.
    /// `service_id` is the SDK's (`STS`, `EC2`).
    pub fn configured_endpoint(&self, service_id: &str) -> Option<String> {
        if self.config.get_origin("endpoint_url").is_client_config() {
            return self.config.endpoint_url().map(str::to_owned);
        }
        let specific = self.config.service_config().and_then(|conf| {
            let key = ServiceConfigKey::builder()
                .service_id(service_id)
                .env("AWS_ENDPOINT_URL")
                .profile("endpoint_url")
                .build()
                .ok()?;
            conf.load_config(key)
        });
        specific.or_else(|| self.config.endpoint_url().map(str::to_owned))
    }

    /// The configured endpoint, else `https://{prefix}.{region}.amazonaws.com`.
    pub fn endpoint(&self, service_id: &str, prefix: &str) -> Result<String, SignError> {
        match self.configured_endpoint(service_id) {
            Some(url) => Ok(url),
            None => default_endpoint(prefix, self.region().ok_or(SignError::NoRegion)?),
        }
    }

    /// Credentials from the chain, or the last ones while [`still_fresh`].
    pub async fn credentials(&self) -> Result<Credentials, SignError> {
        if let Some(cached) = self.cached(SystemTime::now()) {
            return Ok(cached);
        }
        let provider = self.config.credentials_provider().ok_or_else(|| {
            SignError::NoCredentials("no credentials provider is configured".into())
        })?;
        let fresh = provider.provide_credentials().await.map_err(|e| {
            SignError::NoCredentials(crate::iam::printable(&crate::iam::cause_chain(&e)))
        })?;
        if let Ok(mut slot) = self.cache.lock() {
            *slot = Some(fresh.clone());
        }
        Ok(fresh)
    }

    fn cached(&self, now: SystemTime) -> Option<Credentials> {
        let slot = self.cache.lock().ok()?;
        slot.as_ref()
            .filter(|c| still_fresh(c.expiry(), now))
            .cloned()
    }
}

/// The `<Code>` of an AWS Query API error answer (STS: `<ErrorResponse><Error><Code>`, EC2:
/// `<Response><Errors><Error><Code>`; moto nests STS's in `<Errors>` too), if there is one and
/// it is a plain code (letters, digits, dots).
pub fn error_code(body: &[u8]) -> Option<String> {
    use xmlparser::Token;
    let text = std::str::from_utf8(body).ok()?;
    let mut in_error = false;
    let mut in_code = false;
    for token in xmlparser::Tokenizer::from(text) {
        match token.ok()? {
            Token::ElementStart { local, .. } => {
                in_code = in_error && local.as_str() == "Code";
                in_error |= local.as_str() == "Error";
            }
            Token::Text { text } if in_code => {
                let code = text.as_str().trim();
                let plain = (1..=64).contains(&code.len())
                    && code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.');
                return plain.then(|| code.to_owned());
            }
            Token::ElementEnd {
                end: xmlparser::ElementEnd::Close(..) | xmlparser::ElementEnd::Empty,
                ..
            } => in_code = false,
            _ => {}
        }
    }
    None
}

/// One step of [`walk_answer`]: `path` holds the open elements' local names, root first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Xml<'a> {
    /// An element starts; it is the last of `path`.
    Start { path: &'a [&'a str] },
    /// Text or CDATA (raw: entities are not expanded) inside the last of `path`.
    Text { path: &'a [&'a str], text: &'a str },
    /// An element ends; it is the last of `path`.
    End { path: &'a [&'a str] },
}

/// Walks a whole Query API answer and shows each step to `visit`. The document must be well
/// formed and complete, with one root element named `root` and no DTD; a `visit` error stops
/// the walk. Errors describe the document, never quote it.
pub fn walk_answer(
    text: &str,
    root: &str,
    mut visit: impl FnMut(Xml<'_>) -> Result<(), String>,
) -> Result<(), String> {
    use xmlparser::{ElementEnd, Token};
    let mut open: Vec<&str> = Vec::new();
    let mut root_seen = false;
    for token in xmlparser::Tokenizer::from(text) {
        let token = token.map_err(|e| format!("a body that is not well-formed XML ({e})"))?;
        match token {
            Token::ElementStart { local, .. } => {
                let local = local.as_str();
                if open.is_empty() {
                    if root_seen {
                        return Err("more than one root element".into());
                    }
                    if local != root {
                        return Err(format!("a root <{local}>, not <{root}>"));
                    }
                    root_seen = true;
                }
                open.push(local);
                visit(Xml::Start { path: &open })?;
            }
            Token::ElementEnd { end, .. } => {
                match end {
                    ElementEnd::Open => continue,
                    ElementEnd::Empty => {}
                    ElementEnd::Close(_, local) => {
                        if open.last() != Some(&local.as_str()) {
                            return Err(format!("an unexpected </{}>", local.as_str()));
                        }
                    }
                }
                visit(Xml::End { path: &open })?;
                open.pop();
            }
            Token::Text { text } | Token::Cdata { text, .. } => {
                visit(Xml::Text {
                    path: &open,
                    text: text.as_str(),
                })?;
            }
            Token::DtdStart { .. } | Token::EmptyDtd { .. } | Token::EntityDeclaration { .. } => {
                return Err("a DTD".into())
            }
            _ => {}
        }
    }
    if !root_seen {
        return Err(format!("no <{root}>"));
    }
    if !open.is_empty() {
        return Err("a body cut short".into());
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests;
