//! The production [`Sts`]: replay a proof to the issuer's own STS endpoint and read who signed
//! it.
//!
//! Invariants (defense in depth: the handler has checked the proof's binding already):
//! - The request is built here: POST to the configured endpoint (Host from it), the body
//!   [`STS_BODY`], and of the proof only the [`PROOF_HEADERS`]. Nothing else of the proof (its
//!   body, any other header) reaches STS.
//! - The answer is read strictly: one well-formed `GetCallerIdentityResponse` with exactly one
//!   each of `Arn`, `UserId` and `Account`, all plausible; anything else is
//!   [`IssueError::Unavailable`], never a partly known caller.
//! - STS refusing the proof is [`IssueError::Unauthenticated`] with text that names only STS's
//!   error code; outages (network, 5xx, throttling) are [`IssueError::Unavailable`].

use std::time::Duration;

use super::{Caller, IssueError, Proof, Sts, PROOF_HEADERS, STS_BODY};
use crate::http::{self, Target};

/// A GetCallerIdentity answer is a few hundred bytes; an error answer under 1 KB.
pub const MAX_ANSWER_BYTES: usize = 16 * 1024;

/// STS error codes that mean "this proof does not authenticate anyone".
const REFUSALS: &[&str] = &[
    "SignatureDoesNotMatch",
    "InvalidClientTokenId",
    "ExpiredToken",
    "IncompleteSignature",
    "AccessDenied",
    "MissingAuthenticationToken",
    "RequestExpired",
    "InvalidSignatureException",
];
/// STS error codes that mean "ask again later".
const OUTAGES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "ServiceUnavailable",
    "InternalFailure",
    "RegionDisabledException",
];

/// Replays proofs to one STS endpoint. Keep it within one tokio runtime: it pools connections.
#[derive(Clone)]
pub struct StsReplay {
    endpoint: Target,
    timeout: Duration,
    client: http::Client,
}

impl StsReplay {
    /// `endpoint` from the issuer's config (`https://sts.{region}.amazonaws.com`, or loopback
    /// http for tests); `timeout` bounds each replay.
    pub fn new(endpoint: &str, timeout: Duration) -> Result<StsReplay, IssueError> {
        let endpoint = Target::parse(endpoint)
            .map_err(|e| IssueError::Internal(format!("the STS endpoint: {e}")))?;
        let client = http::Client::new()
            .map_err(|e| IssueError::Internal(format!("cannot set up HTTPS: {e}")))?;
        Ok(StsReplay {
            endpoint,
            timeout,
            client,
        })
    }

    pub fn endpoint(&self) -> &Target {
        &self.endpoint
    }
}

/// The proof's allow-listed headers, in [`PROOF_HEADERS`] order.
pub fn replayed_headers(proof: &Proof) -> Vec<(&str, &str)> {
    PROOF_HEADERS
        .iter()
        .filter_map(|name| proof.headers.get(*name).map(|v| (*name, v.as_str())))
        .collect()
}

impl Sts for StsReplay {
    async fn caller(&self, proof: &Proof) -> Result<Caller, IssueError> {
        let headers = replayed_headers(proof);
        let answer = self
            .client
            .send(
                ::http::Method::POST,
                &self.endpoint,
                &headers,
                STS_BODY.as_bytes(),
                self.timeout,
                MAX_ANSWER_BYTES,
            )
            .await
            .map_err(|e| match e {
                http::HttpError::BadHeader(name) => IssueError::BadRequest(format!(
                    "proof header {name} is not a valid header value"
                )),
                other => IssueError::Unavailable(format!("STS: {other}")),
            })?;
        judge(answer.status, &answer.body)
    }
}

/// What an STS answer says: the caller, a refusal or an outage.
pub fn judge(status: u16, body: &[u8]) -> Result<Caller, IssueError> {
    if status == 200 {
        return parse_caller(body)
            .map_err(|why| IssueError::Unavailable(format!("STS answered badly: {why}")));
    }
    let code = crate::sigv4::error_code(body);
    let code_text = code.as_deref().unwrap_or("no error code");
    let refused = code.as_deref().is_some_and(|c| REFUSALS.contains(&c));
    let outage = code.as_deref().is_some_and(|c| OUTAGES.contains(&c));
    if refused || (status == 403 && !outage) {
        return Err(IssueError::Unauthenticated(format!(
            "STS did not accept the proof ({code_text}): sign a new one with valid credentials"
        )));
    }
    Err(IssueError::Unavailable(format!(
        "STS answered HTTP {status} ({code_text})"
    )))
}

/// The caller of a 200 answer, or why the answer is not one.
pub fn parse_caller(body: &[u8]) -> Result<Caller, String> {
    let text = std::str::from_utf8(body).map_err(|_| "a body that is not UTF-8".to_owned())?;
    let fields = result_fields(text)?;
    let one = |name: &str| -> Result<String, String> {
        let mut found = fields.iter().filter(|(n, _)| n == name);
        match (found.next(), found.next()) {
            (Some((_, v)), None) => Ok(v.trim().to_owned()),
            (None, _) => Err(format!("no <{name}>")),
            (Some(_), Some(_)) => Err(format!("<{name}> more than once")),
        }
    };
    let caller = Caller {
        arn: one("Arn")?,
        account: one("Account")?,
        user_id: one("UserId")?,
    };
    check_plausible(&caller)?;
    Ok(caller)
}

fn check_plausible(caller: &Caller) -> Result<(), String> {
    let account_ok =
        caller.account.len() == 12 && caller.account.bytes().all(|b| b.is_ascii_digit());
    if !account_ok {
        return Err("an <Account> that is not 12 digits".into());
    }
    // arn:PARTITION:iam|sts::ACCOUNT:RESOURCE
    let parts: Vec<&str> = caller.arn.splitn(6, ':').collect();
    let arn_ok = caller.arn.len() <= 2048
        && matches!(parts[..], ["arn", partition, "iam" | "sts", "", account, resource]
            if partition.starts_with("aws")
                && partition.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')
                && account == caller.account
                && !resource.is_empty()
                && resource.bytes().all(|b| b.is_ascii_graphic()));
    if !arn_ok {
        return Err("an <Arn> that is not an IAM or STS ARN of <Account>".into());
    }
    let user_id_ok = (1..=512).contains(&caller.user_id.len())
        && caller
            .user_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@:-".contains(&b));
    if !user_id_ok {
        return Err("a <UserId> that is not an IAM unique id".into());
    }
    Ok(())
}

/// The (name, text) of each child of `<GetCallerIdentityResult>`, after checking the document:
/// well formed, complete, one root `<GetCallerIdentityResponse>` holding one Result, no DTD.
fn result_fields(text: &str) -> Result<Vec<(String, String)>, String> {
    use xmlparser::{ElementEnd, Token};
    const ROOT: &str = "GetCallerIdentityResponse";
    const RESULT: &str = "GetCallerIdentityResult";
    let mut open: Vec<&str> = Vec::new();
    let mut root_seen = false;
    let mut results = 0;
    let mut fields: Vec<(String, String)> = Vec::new();
    for token in xmlparser::Tokenizer::from(text) {
        let token = token.map_err(|e| format!("a body that is not well-formed XML ({e})"))?;
        match token {
            Token::ElementStart { local, .. } => {
                let local = local.as_str();
                match open.len() {
                    0 if root_seen => return Err("more than one root element".into()),
                    0 if local != ROOT => {
                        return Err(format!("a root <{local}>, not <{ROOT}>"));
                    }
                    0 => root_seen = true,
                    1 if local == RESULT => results += 1,
                    2 if open[1] == RESULT => fields.push((local.to_owned(), String::new())),
                    3 if open[1] == RESULT => {
                        return Err(format!("<{}> with child elements", open[2]));
                    }
                    _ => {}
                }
                open.push(local);
            }
            Token::ElementEnd { end, .. } => match end {
                ElementEnd::Open => {}
                ElementEnd::Empty => {
                    open.pop();
                }
                ElementEnd::Close(_, local) => match open.pop() {
                    Some(name) if name == local.as_str() => {}
                    _ => return Err(format!("an unexpected </{}>", local.as_str())),
                },
            },
            Token::Text { text } | Token::Cdata { text, .. }
                if open.len() == 3 && open[1] == RESULT =>
            {
                if let Some((_, value)) = fields.last_mut() {
                    value.push_str(text.as_str());
                }
            }
            Token::DtdStart { .. } | Token::EmptyDtd { .. } | Token::EntityDeclaration { .. } => {
                return Err("a DTD".into())
            }
            _ => {}
        }
    }
    if !root_seen {
        return Err(format!("no <{ROOT}>"));
    }
    if !open.is_empty() {
        return Err("a body cut short".into());
    }
    if results != 1 {
        return Err(format!("{results} <{RESULT}> elements"));
    }
    // Values are read raw (entities not expanded); no plausible value has one.
    if fields.iter().any(|(_, v)| v.contains('&')) {
        return Err("a value with an entity reference".into());
    }
    Ok(fields)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests;
