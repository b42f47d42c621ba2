//! The production [`Kms`]: aws-sdk-kms, built from the same SDK config as IAM
//! ([`crate::iam::ClientOptions`]: region, credentials, endpoint, retries, timeouts, role).
//!
//! Every error is classified into [`KmsError`] here and nowhere else. An answer missing a
//! member keyward acts on (the SDK would fill a required string with "") is a failed answer.

use aws_sdk_kms::config::http::HttpResponse;
use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{KeyMetadata, KeySpec, KeyUsageType, MessageType, SigningAlgorithmSpec};

use super::{Curve, KeyInfo, Kms, KmsError};
use crate::iam::{classify_sdk, printable, ClientOptions, SdkErrorKinds};

/// KMS's shortest waiting period; the key was never used.
const DELETION_WINDOW_DAYS: i32 = 7;

#[derive(Debug, Clone)]
pub struct AwsKms {
    client: aws_sdk_kms::Client,
}

impl AwsKms {
    pub async fn new(options: &ClientOptions) -> Result<AwsKms, KmsError> {
        AwsKms::from_config(&crate::iam::sdk_config(options).await)
    }

    /// A client from an SDK config already loaded (the issuer loads one for KMS, IAM and EC2).
    pub fn from_config(shared: &aws_config::SdkConfig) -> Result<AwsKms, KmsError> {
        if shared.region().is_none() {
            return Err(KmsError::NoRegion);
        }
        Ok(AwsKms {
            client: aws_sdk_kms::Client::new(shared),
        })
    }

    /// Wraps a client built elsewhere (tests point one at moto without touching the
    /// environment).
    pub fn from_client(client: aws_sdk_kms::Client) -> AwsKms {
        AwsKms { client }
    }
}

impl Kms for AwsKms {
    async fn describe(&self, key: &str) -> Result<Option<KeyInfo>, KmsError> {
        match self.client.describe_key().key_id(key).send().await {
            Ok(out) => key_info("DescribeKey", out.key_metadata).map(Some),
            Err(err) => match classify("kms:DescribeKey", err) {
                KmsError::NotFound(_) => Ok(None),
                other => Err(other),
            },
        }
    }

    async fn create_key(&self, curve: Curve, description: &str) -> Result<KeyInfo, KmsError> {
        let out = self
            .client
            .create_key()
            .key_usage(KeyUsageType::SignVerify)
            .key_spec(KeySpec::from(curve.key_spec()))
            .description(description)
            .send()
            .await
            .map_err(|e| classify("kms:CreateKey", e))?;
        key_info("CreateKey", out.key_metadata)
    }

    async fn create_alias(&self, alias: &str, key_id: &str) -> Result<(), KmsError> {
        self.client
            .create_alias()
            .alias_name(alias)
            .target_key_id(key_id)
            .send()
            .await
            .map_err(|e| classify("kms:CreateAlias", e))?;
        Ok(())
    }

    async fn schedule_deletion(&self, key_id: &str) -> Result<(), KmsError> {
        self.client
            .schedule_key_deletion()
            .key_id(key_id)
            .pending_window_in_days(DELETION_WINDOW_DAYS)
            .send()
            .await
            .map_err(|e| classify("kms:ScheduleKeyDeletion", e))?;
        Ok(())
    }

    async fn public_key(&self, key_id: &str) -> Result<Vec<u8>, KmsError> {
        let out = self
            .client
            .get_public_key()
            .key_id(key_id)
            .send()
            .await
            .map_err(|e| classify("kms:GetPublicKey", e))?;
        out.public_key
            .map(Blob::into_inner)
            .ok_or_else(|| KmsError::Unreachable("GetPublicKey returned no PublicKey".into()))
    }

    async fn sign(&self, key_id: &str, message: &[u8], curve: Curve) -> Result<Vec<u8>, KmsError> {
        let algorithm = SigningAlgorithmSpec::from(curve.kms_signing_algorithm());
        let out = self
            .client
            .sign()
            .key_id(key_id)
            .message(Blob::new(message))
            .message_type(MessageType::Raw)
            .signing_algorithm(algorithm.clone())
            .send()
            .await
            .map_err(|e| classify("kms:Sign", e))?;
        if out
            .signing_algorithm
            .as_ref()
            .is_some_and(|a| *a != algorithm)
        {
            return Err(KmsError::Other(format!(
                "Sign answered with {}, not the requested {}",
                printable(out.signing_algorithm.as_ref().map_or("", |a| a.as_str())),
                algorithm.as_str()
            )));
        }
        out.signature
            .map(Blob::into_inner)
            .ok_or_else(|| KmsError::Unreachable("Sign returned no Signature".into()))
    }
}

/// The members of a key's metadata keyward acts on; missing ones make the answer a failure.
fn key_info(operation: &str, metadata: Option<KeyMetadata>) -> Result<KeyInfo, KmsError> {
    let incomplete = |what: &str| KmsError::Unreachable(format!("{operation} returned no {what}"));
    let metadata = metadata.ok_or_else(|| incomplete("KeyMetadata"))?;
    if metadata.key_id.is_empty() {
        return Err(incomplete("KeyId"));
    }
    let text = |value: Option<&str>, what: &str| {
        value
            .filter(|v| !v.is_empty())
            .map(printable)
            .ok_or_else(|| incomplete(what))
    };
    Ok(KeyInfo {
        usage: text(metadata.key_usage.as_ref().map(|u| u.as_str()), "KeyUsage")?,
        spec: text(metadata.key_spec.as_ref().map(|s| s.as_str()), "KeySpec")?,
        state: text(metadata.key_state.as_ref().map(|s| s.as_str()), "KeyState")?,
        arn: text(metadata.arn.as_deref(), "Arn")?,
        key_id: printable(&metadata.key_id),
    })
}

/// Turns an SDK error into the variant that decides what the caller does (the shared part:
/// `iam::classify_sdk`).
fn classify<E>(action: &'static str, err: SdkError<E, HttpResponse>) -> KmsError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    classify_sdk("KMS", action, &err, |e| {
        let message = e.message.clone();
        Some(match e.code.as_str() {
            "NotFoundException" => KmsError::NotFound(message),
            "AlreadyExistsException" => KmsError::AlreadyExists(message),
            "AccessDeniedException" => KmsError::AccessDenied { action, message },
            "ThrottlingException"
            | "LimitExceededException"
            | "KMSInternalException"
            | "DependencyTimeoutException"
            | "KeyUnavailableException" => KmsError::Unreachable(e.text.clone()),
            "UnrecognizedClientException"
            | "InvalidSignatureException"
            | "IncompleteSignature"
            | "ExpiredTokenException"
            | "MissingAuthenticationToken" => {
                KmsError::NoCredentials(format!("KMS rejected the credentials: {message}"))
            }
            _ => return None,
        })
    })
}

impl SdkErrorKinds for KmsError {
    fn unreachable(text: String) -> Self {
        KmsError::Unreachable(text)
    }
    fn no_credentials(text: String) -> Self {
        KmsError::NoCredentials(text)
    }
    fn other(text: String) -> Self {
        KmsError::Other(text)
    }
}
