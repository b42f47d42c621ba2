//! The caller's side of the proof: a SigV4-signed STS `GetCallerIdentity` POST that the
//! issuer replays to STS (see the module doc of [`crate::issuer`]).
//!
//! The request is signed for the STS endpoint the issuer replays to: its Host is signed, and
//! the issuer sends it to its own configured endpoint, so the two must agree (by default both
//! use `https://sts.{region}.amazonaws.com` of their region; a laptop in another region than
//! the issuer sets the issuer's STS endpoint, e.g. `AWS_ENDPOINT_URL_STS`).
//!
//! Invariants:
//! - The binding headers ([`AUDIENCE_HEADER`], [`KEY_HEADER`]) are among the SigV4
//!   SignedHeaders, with `host`, `x-amz-date` and (with temporary credentials)
//!   `x-amz-security-token`, so STS refuses a proof whose binding was changed.
//! - The proof holds only [`PROOF_HEADERS`], names lower case; never `host` (the issuer sets
//!   it from its own endpoint).
//! - Signing is pure (credentials and `now` in); only [`ProofSigner::load`] and
//!   [`ProofSigner::sign`] touch the credential chain.

use std::collections::BTreeMap;
use std::time::SystemTime;

use aws_credential_types::Credentials;

use super::{Proof, AUDIENCE_HEADER, KEY_HEADER, PROOF_HEADERS, STS_BODY};
use crate::http::{HttpError, Target};
use crate::sigv4::{self, AwsContext, SignError, Signer};

/// The content type of the signed STS request (the AWS CLI's).
pub const CONTENT_TYPE: &str = "application/x-www-form-urlencoded; charset=utf-8";
/// Where proofs are signed for when nothing else is configured: STS is in every region, and a
/// laptop may have none configured.
pub const DEFAULT_REGION: &str = "us-east-1";
/// The longest audience accepted (an issuer URL).
pub const MAX_AUDIENCE: usize = 512;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error(transparent)]
    Aws(#[from] SignError),
    #[error("STS endpoint: {0}")]
    Endpoint(HttpError),
    /// The audience or key fingerprint cannot be a header value.
    #[error("cannot bind the proof: {0}")]
    Binding(String),
}

/// A fingerprint as `ssh-keygen -l` prints it: `SHA256:` and 43 unpadded base64 characters.
pub fn is_key_fingerprint(text: &str) -> bool {
    text.strip_prefix("SHA256:").is_some_and(|b64| {
        b64.len() == 43
            && b64
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
    })
}

fn check_audience(audience: &str) -> Result<(), ProofError> {
    let ok = (1..=MAX_AUDIENCE).contains(&audience.len())
        && audience.bytes().all(|b| (0x21..0x7f).contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ProofError::Binding(format!(
            "the audience must be 1 to {MAX_AUDIENCE} printable ASCII characters without spaces"
        )))
    }
}

/// Signs the proof for `audience` and the key whose fingerprint is `key_fingerprint`
/// (`SHA256:…`), with `credentials` for STS at `sts_endpoint` in `region`, at `now`.
pub fn sign_proof(
    credentials: &Credentials,
    region: &str,
    sts_endpoint: &Target,
    audience: &str,
    key_fingerprint: &str,
    now: SystemTime,
) -> Result<Proof, ProofError> {
    check_audience(audience)?;
    if !is_key_fingerprint(key_fingerprint) {
        return Err(ProofError::Binding(
            "the key fingerprint must be SHA256: and 43 base64 characters".into(),
        ));
    }
    if !sigv4::is_region_name(region) {
        return Err(SignError::BadRegion(crate::iam::printable(region)).into());
    }
    let bound = [
        ("content-type", CONTENT_TYPE),
        (AUDIENCE_HEADER, audience),
        (KEY_HEADER, key_fingerprint),
    ];
    let signer = Signer {
        credentials,
        region,
        service: "sts",
        now,
    };
    let added = sigv4::sign_request(&signer, "POST", sts_endpoint, &bound, STS_BODY.as_bytes())?;
    let headers: BTreeMap<String, String> = bound
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .chain(added)
        .filter(|(name, _)| PROOF_HEADERS.contains(&name.as_str()))
        .collect();
    Ok(Proof {
        headers,
        body: STS_BODY.to_owned(),
    })
}

/// Credentials, region and STS endpoint for proofs, from the standard chain.
#[derive(Debug, Clone)]
pub struct ProofSigner {
    aws: AwsContext,
    region: String,
    sts_endpoint: Target,
}

impl ProofSigner {
    /// The chain keyward's SDK clients use (`options` as for IAM). The STS endpoint:
    /// `sts_endpoint` if given, else `AWS_ENDPOINT_URL_STS` / `AWS_ENDPOINT_URL` (or the
    /// profile's), else `https://sts.{region}.amazonaws.com`; the region defaults to
    /// [`DEFAULT_REGION`].
    pub async fn load(
        options: &crate::iam::ClientOptions,
        sts_endpoint: Option<&str>,
    ) -> Result<ProofSigner, ProofError> {
        ProofSigner::from_context(AwsContext::load(options).await, sts_endpoint)
    }

    pub fn from_context(
        aws: AwsContext,
        sts_endpoint: Option<&str>,
    ) -> Result<ProofSigner, ProofError> {
        let url = match sts_endpoint {
            Some(url) => url.to_owned(),
            None => aws
                .configured_endpoint("STS")
                .unwrap_or_else(|| super::DEFAULT_STS_ENDPOINT.to_owned()),
        };
        let sts_endpoint = Target::parse(&url).map_err(ProofError::Endpoint)?;
        let region = signing_region(sts_endpoint.host(), aws.region());
        Ok(ProofSigner {
            aws,
            region,
            sts_endpoint,
        })
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    pub fn sts_endpoint(&self) -> &Target {
        &self.sts_endpoint
    }

    /// Resolves credentials now and signs a proof with them.
    pub async fn sign(
        &self,
        audience: &str,
        key_fingerprint: &str,
        now: SystemTime,
    ) -> Result<Proof, ProofError> {
        let credentials = self.aws.credentials().await?;
        sign_proof(
            &credentials,
            &self.region,
            &self.sts_endpoint,
            audience,
            key_fingerprint,
            now,
        )
    }
}

/// The region a proof for STS at `host` is signed for: STS checks the signature's scope against
/// itself, so it follows the endpoint (`sts.amazonaws.com`: us-east-1; `sts.REGION.amazonaws.com`:
/// REGION), and only for any other host (an emulator, a VPC endpoint) the caller's region.
pub fn signing_region(host: &str, configured: Option<&str>) -> String {
    let named = host
        .strip_suffix(".amazonaws.com")
        .or_else(|| host.strip_suffix(".amazonaws.com.cn"));
    match named {
        Some("sts") => DEFAULT_REGION.to_owned(),
        Some(rest) => match rest.strip_prefix("sts.") {
            Some(region) if sigv4::is_region_name(region) => region.to_owned(),
            _ => configured.unwrap_or(DEFAULT_REGION).to_owned(),
        },
        None => configured.unwrap_or(DEFAULT_REGION).to_owned(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests;
