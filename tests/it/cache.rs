//! The token cache (DESIGN.md section 4): one introspection per token while the entry lives,
//! coalesced concurrent misses, positive entries bounded by the token's expiry and `max_ttl_secs`,
//! negative entries for `negative_ttl_secs`, distinct tokens distinct entries, errors never
//! cached. Sleeps here only let a TTL pass.

use crate::support::{Harness, Options, spec};
use std::time::Duration;
use tokengate::demo::emulator::Fault;

/// The value of an unlabelled metric line `name value`.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (n, v) = l.split_once(' ')?;
        (n == name).then(|| v.trim().parse().ok())?
    })
}

#[tokio::test]
async fn sequential_requests_with_one_token_introspect_once() {
    let h = Harness::start().await;
    let token = h.token("alice", &["orders.read"]);
    for i in 0..10 {
        let r = h.get(&format!("/orders/{i}"), Some(&token)).await;
        assert_eq!(r.status(), 200, "request {i}");
    }
    assert_eq!(h.introspections(), 1);
    assert_eq!(h.upstream_requests(), 10);
    let text = h.metrics_text().await;
    assert_eq!(
        metric(&text, "tokengate_token_cache_hits_total"),
        Some(9.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "tokengate_token_cache_misses_total"),
        Some(1.0),
        "{text}"
    );
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_requests_with_one_token_introspect_once() {
    let h = Harness::start().await;
    let token = h.token("alice", &["orders.read"]);
    // A slow answer keeps the first call in flight while the others miss.
    h.emulator
        .set_fault(Fault::Slow(Duration::from_millis(300)));
    let requests = (0..20).map(|i| {
        let request = h
            .client
            .get(h.url(&format!("/orders/{i}")))
            .bearer_auth(&token)
            .send();
        async move { request.await.expect("request").status() }
    });
    let statuses = futures_util::future::join_all(requests).await;
    h.emulator.set_fault(Fault::None);
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(h.introspections(), 1);
    assert_eq!(h.upstream_requests(), 20);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_requests_with_an_unknown_token_introspect_once() {
    let h = Harness::start().await;
    h.emulator
        .set_fault(Fault::Slow(Duration::from_millis(300)));
    let requests = (0..20).map(|i| {
        let request = h
            .client
            .get(h.url(&format!("/orders/{i}")))
            .bearer_auth("unknown-token-for-coalescing")
            .send();
        async move { request.await.expect("request").status() }
    });
    let statuses = futures_util::future::join_all(requests).await;
    h.emulator.set_fault(Fault::None);
    assert!(statuses.iter().all(|s| *s == 401), "{statuses:?}");
    assert_eq!(h.introspections(), 1);
    assert_eq!(h.upstream_requests(), 0);
    h.shutdown().await;
}

#[tokio::test]
async fn positive_entry_dies_at_token_expiry_before_max_ttl() {
    let h = Harness::start().await; // max_ttl_secs: 300
    let token = h.token_expiring_in("alice", &["orders.read"], 2);
    assert_eq!(h.get("/orders/1", Some(&token)).await.status(), 200);
    assert_eq!(h.introspections(), 1);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let r = h.get("/orders/1", Some(&token)).await;
    assert_eq!(r.status(), 401);
    let challenge = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(
        challenge.contains(r#"error="invalid_token""#),
        "{challenge}"
    );
    assert_eq!(h.introspections(), 2);
    assert_eq!(h.upstream_requests(), 1);
    h.shutdown().await;
}

#[tokio::test]
async fn max_ttl_caps_a_positive_entry() {
    let h = Harness::start_with(Options {
        max_ttl_secs: 1,
        ..Options::default()
    })
    .await;
    let token = h.token("alice", &["orders.read"]); // valid for an hour
    assert_eq!(h.get("/orders/1", Some(&token)).await.status(), 200);
    assert_eq!(h.get("/orders/1", Some(&token)).await.status(), 200);
    assert_eq!(h.introspections(), 1);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(h.get("/orders/1", Some(&token)).await.status(), 200);
    assert_eq!(h.introspections(), 2);
    assert_eq!(h.upstream_requests(), 3);
    h.shutdown().await;
}

#[tokio::test]
async fn unknown_token_is_remembered_negatively() {
    let h = Harness::start().await; // negative_ttl_secs: 5
    for _ in 0..3 {
        let r = h.get("/orders/1", Some("never-issued-token-123456")).await;
        assert_eq!(r.status(), 401);
    }
    assert_eq!(h.introspections(), 1);
    assert_eq!(h.upstream_requests(), 0);
    h.shutdown().await;
}

#[tokio::test]
async fn negative_entry_expires_after_negative_ttl() {
    let h = Harness::start_with(Options {
        negative_ttl_secs: 1,
        ..Options::default()
    })
    .await;
    let token = "issued-later-token-abcdef";
    assert_eq!(h.get("/orders/1", Some(token)).await.status(), 401);
    assert_eq!(h.get("/orders/1", Some(token)).await.status(), 401);
    assert_eq!(h.introspections(), 1);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Issued meanwhile: once the negative entry is gone, the token works.
    let mut s = spec("alice", &["orders.read"], 3600);
    s.access_token = Some(token.to_owned());
    h.emulator.add_token(s);
    assert_eq!(h.get("/orders/1", Some(token)).await.status(), 200);
    assert_eq!(h.introspections(), 2);
    assert_eq!(h.upstream_requests(), 1);
    h.shutdown().await;
}

#[tokio::test]
async fn negative_entry_does_not_outlive_negative_ttl_for_an_unknown_token() {
    let h = Harness::start_with(Options {
        negative_ttl_secs: 1,
        ..Options::default()
    })
    .await;
    let token = "never-issued-token-654321";
    assert_eq!(h.get("/orders/1", Some(token)).await.status(), 401);
    assert_eq!(h.get("/orders/1", Some(token)).await.status(), 401);
    assert_eq!(h.introspections(), 1);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(h.get("/orders/1", Some(token)).await.status(), 401);
    assert_eq!(h.introspections(), 2);
    assert_eq!(h.upstream_requests(), 0);
    h.shutdown().await;
}

#[tokio::test]
async fn tokens_differing_only_in_case_are_distinct_entries() {
    let h = Harness::start().await;
    let mut s = spec("alice", &["orders.read"], 3600);
    s.access_token = Some("CaseSensitiveTokenValue_xyZ".to_owned());
    let token = h.emulator.add_token(s);
    assert_eq!(h.get("/orders/1", Some(&token)).await.status(), 200);
    assert_eq!(h.introspections(), 1);
    let flipped = "CaseSensitiveTokenValue_xyz";
    let r = h.get("/orders/1", Some(flipped)).await;
    assert_eq!(r.status(), 401);
    assert_eq!(h.introspections(), 2);
    // Neither entry disturbed the other.
    assert_eq!(h.get("/orders/1", Some(&token)).await.status(), 200);
    assert_eq!(h.get("/orders/1", Some(flipped)).await.status(), 401);
    assert_eq!(h.introspections(), 2);
    assert_eq!(h.upstream_requests(), 2);
    h.shutdown().await;
}

#[tokio::test]
async fn distinct_tokens_get_their_own_grants() {
    let h = Harness::start().await;
    let reader = h.token("alice", &["orders.read"]);
    let writer = h.token("bob", &["orders.write"]);
    assert_eq!(h.get("/orders/1", Some(&reader)).await.status(), 200);
    // The writer's request must not be answered from the reader's entry.
    assert_eq!(h.get("/orders/1", Some(&writer)).await.status(), 403);
    let body: serde_json::Value = h
        .get("/orders/1", Some(&reader))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        crate::support::echoed_headers(&body, "x-auth-subject"),
        ["alice"]
    );
    assert_eq!(h.introspections(), 2);
    assert_eq!(h.upstream_requests(), 2);
    h.shutdown().await;
}

#[tokio::test]
async fn introspection_errors_are_never_cached() {
    let h = Harness::start().await;
    let token = h.token("alice", &["orders.read"]);
    h.emulator.set_fault(Fault::Http500);
    let r = h.get("/orders/1", Some(&token)).await;
    assert_eq!(r.status(), 503);
    assert_eq!(h.introspections(), 1);
    assert_eq!(h.upstream_requests(), 0);
    h.emulator.set_fault(Fault::None);
    assert_eq!(h.get("/orders/1", Some(&token)).await.status(), 200);
    assert_eq!(h.introspections(), 2);
    assert_eq!(h.upstream_requests(), 1);
    h.shutdown().await;
}

#[tokio::test]
async fn errors_for_an_unknown_token_do_not_become_negative_entries() {
    let h = Harness::start().await;
    let token = "some-unknown-token-987654";
    h.emulator.set_fault(Fault::Http500);
    assert_eq!(h.get("/orders/1", Some(token)).await.status(), 503);
    assert_eq!(h.get("/orders/1", Some(token)).await.status(), 503);
    assert_eq!(h.introspections(), 2);
    h.emulator.set_fault(Fault::None);
    assert_eq!(h.get("/orders/1", Some(token)).await.status(), 401);
    assert_eq!(h.introspections(), 3);
    assert_eq!(h.upstream_requests(), 0);
    h.shutdown().await;
}
