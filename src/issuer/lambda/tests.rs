use super::*;
use crate::ca::fake::FakeKms;
use crate::issuer::handler::tests::{
    alice_deps, block_on, proof_for, user_request, AUDIENCE, NOW, OTHER_KEY,
};
use crate::issuer::handler::OsRandom;

/// A Function URL event as Lambda delivers it (payload format 2.0), trimmed of nothing.
fn event(method: &str, path: &str, body: &str, base64: bool) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {
            "content-type": "application/json",
            "host": "abcdefghijklmnop.lambda-url.us-east-1.on.aws",
            "x-forwarded-proto": "https"
        },
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "abcdefghijklmnop",
            "domainName": "abcdefghijklmnop.lambda-url.us-east-1.on.aws",
            "domainPrefix": "abcdefghijklmnop",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "192.0.2.1",
                "userAgent": "keyward"
            },
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "routeKey": "$default",
            "stage": "$default",
            "time": "30/Nov/2026:15:40:00 +0000",
            "timeEpoch": 1796053200000u64
        },
        "body": body,
        "isBase64Encoded": base64
    }))
    .unwrap()
}

fn answer(deps_event: &[u8]) -> (EventResponse, serde_json::Value) {
    let kms: &'static FakeKms = Box::leak(Box::default());
    let deps = alice_deps(kms);
    let json = block_on(handle_event(&deps, deps_event, NOW, &mut OsRandom));
    let response: EventResponse = serde_json::from_str(&json).unwrap();
    let body = serde_json::from_str(&response.body).unwrap();
    (response, body)
}

#[test]
fn a_function_url_post_gets_a_certificate() {
    let body = serde_json::to_string(&user_request()).unwrap();
    for (text, base64) in [(body.clone(), false), (STANDARD.encode(&body), true)] {
        let (response, json) = answer(&event("POST", wire::PATH, &text, base64));
        assert_eq!(response.status_code, 200, "{json}");
        assert_eq!(response.headers["content-type"], "application/json");
        assert!(!response.is_base64_encoded);
        let line = json["certificate"].as_str().unwrap();
        let cert = ssh_key::Certificate::from_openssh(line).unwrap();
        assert_eq!(cert.valid_principals(), ["alice"]);
    }
}

#[test]
fn refusals_keep_their_status_and_message() {
    let mut request = user_request();
    request.proof = proof_for(OTHER_KEY, AUDIENCE);
    let body = serde_json::to_string(&request).unwrap();
    let (response, json) = answer(&event("POST", wire::PATH, &body, false));
    assert_eq!(response.status_code, 401);
    assert!(json["error"]
        .as_str()
        .unwrap()
        .contains("another public key"));
    assert_eq!(
        answer(&event("GET", wire::PATH, "", false)).0.status_code,
        405
    );
    assert_eq!(
        answer(&event("POST", "/other", &body, false)).0.status_code,
        404
    );
}

#[test]
fn events_that_are_not_function_url_requests_are_refused() {
    let (response, json) = answer(br#"{"source":"aws.events","detail":{}}"#);
    assert_eq!(response.status_code, 400);
    assert!(
        json["error"].as_str().unwrap().contains("Function URL"),
        "{json}"
    );
    assert_eq!(answer(b"not json").0.status_code, 400);
    let (response, _) = answer(&event("POST", wire::PATH, "!!!", true));
    assert_eq!(response.status_code, 400);
    let huge = "A".repeat(wire::MAX_REQUEST_BYTES * 2);
    assert_eq!(
        answer(&event("POST", wire::PATH, &huge, true))
            .0
            .status_code,
        413
    );
    assert_eq!(
        answer(&event("POST", wire::PATH, &huge, false))
            .0
            .status_code,
        413
    );
}

/// Hands out `events` in order, records the answers, then fails like an API that went away.
struct FakeApi {
    events: std::cell::RefCell<Vec<Invocation>>,
    answers: std::cell::RefCell<Vec<(String, String)>>,
}

impl RuntimeApi for FakeApi {
    async fn next(&self) -> Result<Invocation, RuntimeError> {
        let mut events = self.events.borrow_mut();
        if events.is_empty() {
            return Err(RuntimeError::Api("no more events".into()));
        }
        Ok(events.remove(0))
    }
    async fn respond(&self, id: &str, response: &str) -> Result<(), RuntimeError> {
        self.answers
            .borrow_mut()
            .push((id.to_owned(), response.to_owned()));
        Ok(())
    }
}

#[test]
fn the_runtime_loop_answers_each_event_under_its_request_id() {
    let kms: &'static FakeKms = Box::leak(Box::default());
    let deps = alice_deps(kms);
    let mut request = user_request();
    request.proof = proof_for(OTHER_KEY, AUDIENCE);
    let body = serde_json::to_string(&request).unwrap();
    let api = FakeApi {
        events: std::cell::RefCell::new(vec![
            Invocation {
                id: "8476a536-e9f4-11e8-9739-2dfe598c3fcd".into(),
                event: event("POST", wire::PATH, &body, false),
            },
            Invocation {
                id: "second".into(),
                event: event("GET", wire::PATH, "", false),
            },
        ]),
        answers: std::cell::RefCell::default(),
    };
    let stopped = block_on(run(&api, &deps));
    assert_eq!(stopped, RuntimeError::Api("no more events".into()));
    let answers = api.answers.borrow();
    assert_eq!(answers.len(), 2);
    assert_eq!(answers[0].0, "8476a536-e9f4-11e8-9739-2dfe598c3fcd");
    let first: EventResponse = serde_json::from_str(&answers[0].1).unwrap();
    assert_eq!(first.status_code, 401);
    let second: EventResponse = serde_json::from_str(&answers[1].1).unwrap();
    assert_eq!((answers[1].0.as_str(), second.status_code), ("second", 405));
}

#[test]
fn request_ids_are_checked_before_they_reach_a_url() {
    assert!(is_valid_request_id("8476a536-e9f4-11e8-9739-2dfe598c3fcd"));
    for bad in [
        "",
        "../../runtime/init/error",
        "a/b",
        "a b",
        &"a".repeat(129),
    ] {
        assert!(!is_valid_request_id(bad), "{bad}");
    }
}
