//! `keyward ca lambda`: the issuer as an AWS Lambda function behind a Function URL (custom
//! runtime, `provided.al2023`; the binary is the package's `bootstrap`).
//!
//! The Function URL turns each HTTPS request into a payload-2.0 event; [`handle_event`] turns
//! that event back into the method, path and body [`handler::handle_http`] takes, and its answer
//! into the Function URL's response shape. The runtime loop (`run`) asks the Lambda runtime API
//! for the next event and posts the answer back.
//!
//! Invariants:
//! - The same handler as `ca serve`: nothing here decides anything about a certificate.
//! - Bounded: a body (after base64) over [`wire::MAX_REQUEST_BYTES`] is refused unread by the
//!   handler; an event that is not a Function URL request is answered with an error, never
//!   passed on.
//! - The Function URL's own TLS protects the proof in transit (AuthType NONE: the STS proof is
//!   the authentication).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::handler::{self, Deps, Random};
use super::wire::{self, ErrorResponse};
use super::Sts;
use crate::ca::Kms;
use crate::ec2::Ec2;
use crate::iam::Directory;

/// The environment variable holding the issuer's whole config file (TOML) in Lambda, where
/// there is no trusted file system to read it from: the function's configuration is as
/// protected as its code (`lambda:UpdateFunctionConfiguration`).
pub const CONFIG_ENV: &str = "KEYWARD_CONFIG_TOML";
/// The runtime API's address, set by Lambda (`127.0.0.1:9001`).
pub const RUNTIME_API_ENV: &str = "AWS_LAMBDA_RUNTIME_API";

/// The parts of a Function URL event (payload format 2.0) the issuer reads.
#[derive(Debug, Deserialize)]
struct Event {
    #[serde(rename = "requestContext")]
    request_context: RequestContext,
    #[serde(default)]
    body: Option<String>,
    #[serde(default, rename = "isBase64Encoded")]
    is_base64_encoded: bool,
}

#[derive(Debug, Deserialize)]
struct RequestContext {
    http: HttpContext,
}

#[derive(Debug, Deserialize)]
struct HttpContext {
    method: String,
    path: String,
}

/// The request an event carries: method, path, body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRequest {
    pub method: String,
    pub path: String,
    pub body: Vec<u8>,
}

/// What a Function URL sends back to the client.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct EventResponse {
    #[serde(rename = "statusCode")]
    pub status_code: u16,
    pub headers: std::collections::BTreeMap<String, String>,
    pub body: String,
    #[serde(rename = "isBase64Encoded")]
    pub is_base64_encoded: bool,
}

/// Reads a Function URL event. `Err` holds the status and message to answer with.
pub fn event_request(event: &[u8]) -> Result<EventRequest, (u16, String)> {
    let event: Event = serde_json::from_slice(event).map_err(|_| {
        (
            400,
            "bad request: not a Lambda Function URL event (payload format 2.0)".to_owned(),
        )
    })?;
    let body = event.body.unwrap_or_default();
    // base64 grows a body by a third: anything longer cannot decode to an acceptable body.
    if body.len() > wire::MAX_REQUEST_BYTES * 4 / 3 + 4 {
        return Err((
            413,
            format!(
                "the request is larger than {} bytes",
                wire::MAX_REQUEST_BYTES
            ),
        ));
    }
    let body = if event.is_base64_encoded {
        STANDARD
            .decode(body.as_bytes())
            .map_err(|_| (400, "bad request: the body is not base64".to_owned()))?
    } else {
        body.into_bytes()
    };
    Ok(EventRequest {
        method: event.request_context.http.method,
        path: event.request_context.http.path,
        body,
    })
}

/// The Function URL response for an answer of the handler.
pub fn event_response(status: u16, json: String) -> EventResponse {
    EventResponse {
        status_code: status,
        headers: [
            ("content-type".to_owned(), "application/json".to_owned()),
            ("cache-control".to_owned(), "no-store".to_owned()),
        ]
        .into_iter()
        .collect(),
        body: json,
        is_base64_encoded: false,
    }
}

/// Answers one Function URL event with the issuer's handler: the JSON to post to the runtime
/// API's `/response`.
pub async fn handle_event<S: Sts, D: Directory, K: Kms, E: Ec2>(
    deps: &Deps<S, D, K, E>,
    event: &[u8],
    now: u64,
    rng: &mut impl Random,
) -> String {
    let (status, json) = match event_request(event) {
        Ok(request) => {
            handler::handle_http(
                deps,
                &request.method,
                &request.path,
                &request.body,
                now,
                rng,
            )
            .await
        }
        Err((status, error)) => {
            tracing::warn!(status, error, "refused a Lambda event");
            let json = serde_json::to_string(&ErrorResponse { error })
                .unwrap_or_else(|_| r#"{"error":"bad request"}"#.into());
            (status, json)
        }
    };
    serde_json::to_string(&event_response(status, json)).unwrap_or_else(|_| {
        r#"{"statusCode":500,"body":"{\"error\":\"issuer error\"}"}"#.to_owned()
    })
}

/// One invocation the runtime API handed out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// `Lambda-Runtime-Aws-Request-Id`, checked by [`is_valid_request_id`].
    pub id: String,
    pub event: Vec<u8>,
}

/// Why the runtime loop stopped; Lambda then restarts the process.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuntimeError {
    #[error("the Lambda runtime API: {0}")]
    Api(String),
}

/// The Lambda runtime API (`/2018-06-01/runtime/...`): production speaks HTTP to
/// `AWS_LAMBDA_RUNTIME_API`, unit tests use a fake.
pub trait RuntimeApi {
    /// `GET invocation/next`: waits for the next event.
    fn next(&self) -> impl std::future::Future<Output = Result<Invocation, RuntimeError>>;
    /// `POST invocation/{id}/response`.
    fn respond(
        &self,
        id: &str,
        response: &str,
    ) -> impl std::future::Future<Output = Result<(), RuntimeError>>;
}

/// A request id that may go into the runtime API's URL path.
pub fn is_valid_request_id(id: &str) -> bool {
    (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// The custom runtime's loop: each event through [`handle_event`], each answer posted back.
/// Returns only when the runtime API fails (the process then exits and Lambda starts anew).
pub async fn run<A, S, D, K, E>(api: &A, deps: &Deps<S, D, K, E>) -> RuntimeError
where
    A: RuntimeApi,
    S: Sts,
    D: Directory,
    K: Kms,
    E: Ec2,
{
    loop {
        let invocation = match api.next().await {
            Ok(invocation) => invocation,
            Err(err) => return err,
        };
        let now = crate::clock::unix_secs(std::time::SystemTime::now());
        let response = handle_event(deps, &invocation.event, now, &mut handler::OsRandom).await;
        if let Err(err) = api.respond(&invocation.id, &response).await {
            return err;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests;
