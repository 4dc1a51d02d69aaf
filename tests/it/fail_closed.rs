//! Failing closed (DESIGN.md section 3 step 4, section 4): when introspection cannot give a
//! verdict the request is refused with 503 and `Retry-After`, never forwarded and never told its
//! token is invalid; the gateway recovers as soon as Authlete does. Also what is sent to Authlete.

use crate::support::{Harness, Options, closed_port};
use std::time::Duration;
use tokengate::demo::emulator::Fault;

/// Asserts a fail-closed refusal: 503, `Retry-After`, no-store JSON, no `invalid_token`.
async fn assert_unavailable(r: reqwest::Response) {
    assert_eq!(r.status(), 503);
    let headers = r.headers().clone();
    let retry_after = headers
        .get("retry-after")
        .expect("Retry-After")
        .to_str()
        .expect("ASCII Retry-After");
    assert!(
        retry_after.parse::<u64>().is_ok_and(|s| s > 0),
        "{retry_after}"
    );
    assert_eq!(headers["cache-control"], "no-store");
    for challenge in headers.get_all("www-authenticate") {
        let challenge = challenge.to_str().expect("ASCII challenge");
        assert!(!challenge.contains("invalid_token"), "{challenge}");
    }
    let body: serde_json::Value = r.json().await.expect("JSON body");
    assert_ne!(body["error"], "invalid_token");
    assert!(body["error"].is_string(), "{body}");
}

/// One request under `fault` (503, nothing forwarded), then recovery once the fault is cleared.
async fn fault_fails_closed_then_recovers(h: Harness, fault: Fault) {
    let token = h.token("alice", &["orders.read"]);
    h.emulator.set_fault(fault);
    assert_unavailable(h.get("/orders/1", Some(&token)).await).await;
    assert_eq!(h.upstream_requests(), 0);
    assert!(h.introspections() >= 1);
    let before = h.introspections();
    h.emulator.set_fault(Fault::None);
    let r = h.get("/orders/1", Some(&token)).await;
    assert_eq!(r.status(), 200, "{fault:?}: recovery");
    assert_eq!(h.upstream_requests(), 1);
    assert_eq!(h.introspections(), before + 1);
    h.shutdown().await;
}

#[tokio::test]
async fn authlete_http_500_is_503_and_recovers() {
    fault_fails_closed_then_recovers(Harness::start().await, Fault::Http500).await;
}

#[tokio::test]
async fn authlete_http_401_bad_service_credentials_is_503_and_recovers() {
    fault_fails_closed_then_recovers(Harness::start().await, Fault::Http401).await;
}

#[tokio::test]
async fn authlete_action_internal_server_error_is_503_and_recovers() {
    fault_fails_closed_then_recovers(Harness::start().await, Fault::ActionInternalServerError)
        .await;
}

#[tokio::test]
async fn authlete_connection_reset_is_503_and_recovers() {
    fault_fails_closed_then_recovers(Harness::start().await, Fault::Reset).await;
}

#[tokio::test]
async fn slow_authlete_is_503_and_recovers() {
    let h = Harness::start_with(Options {
        timeout_ms: 200,
        ..Options::default()
    })
    .await;
    fault_fails_closed_then_recovers(h, Fault::Slow(Duration::from_secs(2))).await;
}

#[tokio::test]
async fn authlete_connection_refused_is_503() {
    let h = Harness::start_with(Options {
        authlete_url: Some(format!("http://{}", closed_port().await)),
        ..Options::default()
    })
    .await;
    let token = h.token("alice", &["orders.read"]);
    assert_unavailable(h.get("/orders/1", Some(&token)).await).await;
    // Still 503 the second time: the failure was not cached as a verdict either way.
    assert_unavailable(h.get("/orders/1", Some(&token)).await).await;
    assert_eq!(h.upstream_requests(), 0);
    assert_eq!(h.introspections(), 0);
    // Public routes do not depend on Authlete.
    assert_eq!(h.get("/public/x", None).await.status(), 200);
    h.shutdown().await;
}

#[tokio::test]
async fn authlete_failure_does_not_hide_missing_or_malformed_credentials() {
    let h = Harness::start().await;
    h.emulator.set_fault(Fault::Http500);
    // Nothing to introspect: the answer does not depend on Authlete.
    assert_eq!(h.get("/orders/1", None).await.status(), 401);
    let r = h
        .client
        .get(h.url("/orders/1"))
        .header("authorization", "Bearer a b")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(h.introspections(), 0);
    assert_eq!(h.upstream_requests(), 0);
    h.shutdown().await;
}

#[tokio::test]
async fn api_v2_works_end_to_end() {
    let h = Harness::start_with(Options {
        api_version: 2,
        ..Options::default()
    })
    .await;
    let token = h.token("alice", &["orders.read"]);
    let r = h.get("/orders/1", Some(&token)).await;
    // The emulator's v2 endpoint answers only to HTTP Basic with the configured key and secret,
    // so a 200 means the gateway authenticated with Basic.
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        crate::support::echoed_headers(&body, "x-auth-subject"),
        ["alice"]
    );
    assert_eq!(h.introspections(), 1);
    let sent = h.emulator.requests();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["token"], token.as_str());
    // And an unknown token still gets a verdict, not an error.
    assert_eq!(
        h.get("/orders/1", Some("unknown-v2-token-1234"))
            .await
            .status(),
        401
    );
    h.shutdown().await;
}

#[tokio::test]
async fn introspection_request_carries_the_token_and_no_scopes() {
    let h = Harness::start().await;
    let token = h.token("alice", &["orders.read", "orders.write"]);
    assert_eq!(h.get("/orders/1", Some(&token)).await.status(), 200);
    let sent = h.emulator.requests();
    assert_eq!(sent.len(), 1, "{sent:?}");
    let body = sent[0].as_object().expect("a JSON object");
    assert_eq!(
        body.get("token").and_then(|t| t.as_str()),
        Some(token.as_str())
    );
    assert!(!body.contains_key("scopes"), "{body:?}");
    h.shutdown().await;
}
