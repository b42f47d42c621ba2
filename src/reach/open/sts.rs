//! Who the caller is: STS `GetCallerIdentity`, signed here (no aws-sdk-sts) and read with the
//! issuer's strict reader ([`crate::issuer::sts::parse_caller`]): one whole answer with one
//! plausible `Arn`, `Account` and `UserId`, or an error. The call needs no IAM permission.

use std::time::{Duration, SystemTime};

use super::OpenError;
use crate::http::{self, Target};
use crate::issuer::proof::{CONTENT_TYPE, DEFAULT_REGION};
use crate::issuer::sts::{parse_caller, MAX_ANSWER_BYTES};
use crate::issuer::STS_BODY;
use crate::sigv4::{self, AwsContext, Signer};

pub(super) struct CallerSts {
    aws: AwsContext,
    region: String,
    endpoint: Target,
    timeout: Duration,
    client: http::Client,
}

impl CallerSts {
    pub(super) fn new(aws: AwsContext, timeout: Duration) -> Result<CallerSts, OpenError> {
        let fail = |e: String| OpenError::Caller(e);
        let region = aws.region().unwrap_or(DEFAULT_REGION).to_owned();
        let url = match aws.configured_endpoint("STS") {
            Some(url) => url,
            None => sigv4::default_endpoint("sts", &region).map_err(|e| fail(e.to_string()))?,
        };
        let endpoint = Target::parse(&url).map_err(|e| fail(format!("endpoint: {e}")))?;
        let client = http::Client::new().map_err(|e| fail(e.to_string()))?;
        Ok(CallerSts {
            aws,
            region,
            endpoint,
            timeout,
            client,
        })
    }

    pub(super) async fn caller_arn(&self) -> Result<String, OpenError> {
        caller_arn(
            &self.aws,
            &self.region,
            &self.endpoint,
            &self.client,
            self.timeout,
        )
        .await
    }
}

/// The ARN STS reports for the credentials of `aws`.
pub async fn caller_arn(
    aws: &AwsContext,
    region: &str,
    endpoint: &Target,
    client: &http::Client,
    timeout: Duration,
) -> Result<String, OpenError> {
    let credentials = aws
        .credentials()
        .await
        .map_err(|e| OpenError::Ec2(crate::ec2::Ec2Error::NoCredentials(e.to_string())))?;
    let signer = Signer {
        credentials: &credentials,
        region,
        service: "sts",
        now: SystemTime::now(),
    };
    let content_type = ("content-type", CONTENT_TYPE);
    let signed = sigv4::sign_request(
        &signer,
        "POST",
        endpoint,
        &[content_type],
        STS_BODY.as_bytes(),
    )
    .map_err(|e| OpenError::Ec2(crate::ec2::Ec2Error::NoCredentials(e.to_string())))?;
    let mut headers = vec![content_type];
    headers.extend(signed.iter().map(|(n, v)| (n.as_str(), v.as_str())));
    let answer = client
        .send(
            ::http::Method::POST,
            endpoint,
            &headers,
            STS_BODY.as_bytes(),
            timeout,
            MAX_ANSWER_BYTES,
        )
        .await
        .map_err(|e| OpenError::Caller(e.to_string()))?;
    if answer.status == 200 {
        return parse_caller(&answer.body)
            .map(|caller| caller.arn)
            .map_err(|why| OpenError::Caller(format!("STS answered badly: {why}")));
    }
    let code = sigv4::error_code(&answer.body);
    let message = format!(
        "HTTP {}, {}",
        answer.status,
        code.as_deref().unwrap_or("no error code")
    );
    if answer.status == 403 || code.as_deref().is_some_and(is_credentials_code) {
        return Err(OpenError::Ec2(crate::ec2::Ec2Error::NoCredentials(
            format!("STS rejected the credentials ({message})"),
        )));
    }
    Err(OpenError::Caller(message))
}

fn is_credentials_code(code: &str) -> bool {
    matches!(
        code,
        "InvalidClientTokenId"
            | "SignatureDoesNotMatch"
            | "ExpiredToken"
            | "MissingAuthenticationToken"
            | "RequestExpired"
            | "AccessDenied"
    )
}
