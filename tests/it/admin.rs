//! The admin listener (DESIGN.md section 5): health, readiness, Prometheus metrics whose names
//! are all present after traffic and whose labels never carry request data.

use crate::support::Harness;

async fn admin_get(h: &Harness, path: &str) -> reqwest::Response {
    h.client
        .get(h.admin_url(path))
        .send()
        .await
        .expect("admin request")
}

/// The value of the sample line that starts with `series` (name plus exact label set).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// Sample lines of metric `name` (exact family name, any labels).
fn samples<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .collect()
}

#[tokio::test]
async fn healthz_and_readyz_answer_200_once_running() {
    let h = Harness::start().await;
    let r = admin_get(&h, "/healthz").await;
    assert_eq!(r.status(), 200);
    let r = admin_get(&h, "/readyz").await;
    assert_eq!(r.status(), 200);
    h.shutdown().await;
}

#[tokio::test]
async fn unknown_admin_path_is_404() {
    let h = Harness::start().await;
    for path in ["/nope", "/metrics/extra", "/healthz/x", "/"] {
        let r = admin_get(&h, path).await;
        assert_eq!(r.status(), 404, "{path}");
    }
    h.shutdown().await;
}

#[tokio::test]
async fn admin_endpoints_are_not_served_on_the_data_plane() {
    let h = Harness::start().await;
    for path in ["/metrics", "/healthz", "/readyz"] {
        let r = h.get(path, None).await;
        assert_eq!(r.status(), 404, "{path} on the data plane");
    }
    h.shutdown().await;
}

/// A mix of traffic that touches every metric the contract lists.
async fn traffic(h: &Harness, token: &str) {
    assert_eq!(h.get("/orders/1", Some(token)).await.status(), 200); // miss
    assert_eq!(h.get("/orders/2", Some(token)).await.status(), 200); // hit
    assert_eq!(
        h.get("/orders/3", Some("unknown-token-zzz")).await.status(),
        401
    );
    assert_eq!(h.get("/orders/4", None).await.status(), 401);
    assert_eq!(h.get("/public/5", None).await.status(), 200);
    assert_eq!(h.get("/no/such/route", None).await.status(), 404);
}

#[tokio::test]
async fn metrics_exposes_every_contract_metric_after_traffic() {
    let h = Harness::start().await;
    let token = h.token("alice", &["orders.read"]);
    traffic(&h, &token).await;
    let r = admin_get(&h, "/metrics").await;
    assert_eq!(r.status(), 200);
    let content_type = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        content_type.starts_with("text/plain"),
        "content-type {content_type:?}"
    );
    let text = r.text().await.expect("text");

    // Every sample name carries the prefix.
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        assert!(line.starts_with("tokengate_"), "unprefixed sample: {line}");
    }

    assert_eq!(
        sample(
            &text,
            r#"tokengate_requests_total{outcome="forwarded",route="orders-read"}"#
        ),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"tokengate_requests_total{outcome="public",route="public"}"#
        ),
        Some(1.0),
        "{text}"
    );
    let requests = samples(&text, "tokengate_requests_total");
    assert!(
        requests.len() >= 4,
        "requests_total series (forwarded, public, refused, no route): {requests:?}"
    );
    assert!(
        requests
            .iter()
            .all(|l| l.contains("route=\"") && l.contains("outcome=\"")),
        "{requests:?}"
    );

    let buckets = samples(&text, "tokengate_request_duration_seconds_bucket");
    assert!(
        buckets
            .iter()
            .any(|l| l.contains("route=\"orders-read\"") && l.contains("le=\"+Inf\"")),
        "histogram buckets: {buckets:?}"
    );
    assert_eq!(
        sample(
            &text,
            r#"tokengate_request_duration_seconds_count{route="orders-read"}"#
        ),
        Some(4.0),
        "four requests matched orders-read"
    );
    assert!(
        samples(&text, "tokengate_request_duration_seconds_sum")
            .iter()
            .any(|l| l.contains("route=\"orders-read\""))
    );

    let introspections = samples(&text, "tokengate_introspection_requests_total");
    assert!(
        introspections.iter().all(|l| l.contains("result=\"")),
        "{introspections:?}"
    );
    let introspected: f64 = introspections
        .iter()
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(
        introspected, 2.0,
        "one call for the good token, one for the unknown: {introspections:?}"
    );
    assert_eq!(
        sample(&text, "tokengate_introspection_duration_seconds_count"),
        Some(2.0)
    );
    assert!(!samples(&text, "tokengate_introspection_duration_seconds_bucket").is_empty());

    assert_eq!(sample(&text, "tokengate_token_cache_hits_total"), Some(1.0));
    assert_eq!(
        sample(&text, "tokengate_token_cache_misses_total"),
        Some(2.0)
    );
    let entries = sample(&text, "tokengate_token_cache_entries").expect("cache entries gauge");
    assert!(entries > 0.0, "token_cache_entries {entries} after misses");

    let upstream_2xx = sample(
        &text,
        r#"tokengate_upstream_responses_total{class="2xx",upstream="app"}"#,
    );
    assert_eq!(upstream_2xx, Some(3.0), "{text}");
    h.shutdown().await;
}

#[tokio::test]
async fn metrics_never_contain_tokens_or_request_paths() {
    let h = Harness::start().await;
    let token = h.token("alice", &["orders.read"]);
    let unknown = "tg-unknown-token-Zq8Xv1";
    assert_eq!(
        h.get("/orders/secret-path-123", Some(&token))
            .await
            .status(),
        200
    );
    assert_eq!(
        h.get("/orders/secret-path-456", Some(unknown))
            .await
            .status(),
        401
    );
    assert_eq!(
        h.get("/public/secret-path-789?q=secret-query-000", None)
            .await
            .status(),
        200
    );
    assert_eq!(h.get("/unrouted/secret-path-404", None).await.status(), 404);
    let text = h.metrics_text().await;
    assert!(text.contains("tokengate_requests_total"), "{text}");
    for needle in [
        token.as_str(),
        unknown,
        "secret-path",
        "secret-query",
        "/orders",
        "/public",
        "/unrouted",
        "alice",
    ] {
        assert!(
            !text.contains(needle),
            "metrics contain {needle:?}:\n{text}"
        );
    }
    h.shutdown().await;
}
