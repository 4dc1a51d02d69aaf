//! What reaches the upstream (DESIGN.md section 3, steps 3 and 5): identity and hop-by-hop
//! headers from the client never do, forwarding headers are rewritten, bodies stream intact both
//! ways, upstream faults map to 502/504 while upstream answers pass through unchanged.

use crate::support::{Harness, Options, closed_port};
use aws_lc_rs::digest;
use bytes::Bytes;
use http_body::Frame;
use tokengate::demo::echo::RecordedRequest;

/// Values of header `name` (lower case) as the upstream received it.
fn values(r: &RecordedRequest, name: &str) -> Vec<String> {
    r.headers
        .iter()
        .filter(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
        .collect()
}

fn has(r: &RecordedRequest, name: &str) -> bool {
    r.headers.iter().any(|(n, _)| n == name)
}

/// The single request the upstream received during the test.
fn only_request(h: &Harness) -> RecordedRequest {
    let mut all = h.upstream.requests();
    assert_eq!(all.len(), 1, "upstream saw {} requests", all.len());
    all.remove(0)
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// Client-sent identity headers, in mixed case and with several copies of each.
fn with_forged_identity(request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    request
        .header("X-Auth-Subject", "mallory")
        .header("X-Auth-Subject", "root")
        .header("x-auth-client-id", "forged-client")
        .header("x-auth-client-id", "forged-client-2")
        .header("X-AUTH-SCOPES", "admin orders.write")
        .header("X-AUTH-SCOPES", "superuser")
}

const IDENTITY: [&str; 3] = ["x-auth-subject", "x-auth-client-id", "x-auth-scopes"];

#[tokio::test]
async fn client_identity_headers_never_reach_the_upstream_on_a_public_route() {
    let h = Harness::start().await;
    let r = with_forged_identity(h.client.get(h.url("/public/profile")))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200);
    let seen = only_request(&h);
    for name in IDENTITY {
        assert!(
            !has(&seen, name),
            "{name} reached the upstream: {:?}",
            values(&seen, name)
        );
    }
    h.shutdown().await;
}

#[tokio::test]
async fn protected_route_upstream_sees_exactly_the_gateways_identity_values() {
    let h = Harness::start().await;
    let token = h.token("alice", &["orders.read"]);
    let r = with_forged_identity(h.client.get(h.url("/orders/1")))
        .bearer_auth(&token)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200);
    let seen = only_request(&h);
    assert_eq!(values(&seen, "x-auth-subject"), vec!["alice"]);
    assert_eq!(values(&seen, "x-auth-scopes"), vec!["orders.read"]);
    let client_ids = values(&seen, "x-auth-client-id");
    assert_eq!(client_ids.len(), 1, "client id values: {client_ids:?}");
    assert!(
        !client_ids[0].contains("forged"),
        "client id value came from the client: {client_ids:?}"
    );
    assert_eq!(client_ids[0], "1001");
    h.shutdown().await;
}

#[tokio::test]
async fn hop_by_hop_headers_and_connection_listed_headers_are_removed_ordinary_ones_kept() {
    let h = Harness::start().await;
    let r = h
        .client
        .get(h.url("/public/hop"))
        .header("Connection", "close, X-Secret")
        .header("X-Secret", "do-not-forward")
        .header("Keep-Alive", "timeout=5, max=100")
        .header("TE", "trailers")
        .header("Proxy-Authorization", "Basic cHJveHk6c2VjcmV0")
        .header("X-Ordinary", "kept")
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200);
    let seen = only_request(&h);
    for name in ["x-secret", "keep-alive", "te", "proxy-authorization"] {
        assert!(
            !has(&seen, name),
            "{name} reached the upstream: {:?}",
            values(&seen, name)
        );
    }
    // The gateway's own connection to the upstream may carry its own Connection header, but
    // never the client's options.
    for v in values(&seen, "connection") {
        assert!(
            !v.to_ascii_lowercase().contains("x-secret"),
            "client Connection options forwarded: {v}"
        );
    }
    assert_eq!(values(&seen, "x-ordinary"), vec!["kept"]);
    h.shutdown().await;
}

#[tokio::test]
async fn upgrade_header_on_a_request_that_is_not_an_upgrade_is_removed() {
    let h = Harness::start().await;
    // `Upgrade` without `Connection: upgrade` is not an upgrade request (RFC 9110 7.8): the
    // field is hop-by-hop and must not reach the upstream.
    let r = h
        .client
        .get(h.url("/public/not-an-upgrade"))
        .header("Upgrade", "websocket")
        .header("X-Ordinary", "kept")
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200);
    let seen = only_request(&h);
    assert!(
        !has(&seen, "upgrade"),
        "upgrade reached the upstream: {:?}",
        values(&seen, "upgrade")
    );
    for v in values(&seen, "connection") {
        assert!(
            !v.to_ascii_lowercase().contains("upgrade"),
            "a non-upgrade request was forwarded as an upgrade: connection: {v}"
        );
    }
    assert_eq!(values(&seen, "x-ordinary"), vec!["kept"]);
    h.shutdown().await;
}

#[tokio::test]
async fn connection_header_cannot_remove_the_identity_header_the_gateway_sets() {
    let h = Harness::start().await;
    let token = h.token("alice", &["orders.read"]);
    let r = h
        .client
        .get(h.url("/orders/2"))
        .bearer_auth(&token)
        .header(
            "Connection",
            "X-Auth-Subject, x-auth-client-id, X-Auth-Scopes",
        )
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200);
    let seen = only_request(&h);
    assert_eq!(values(&seen, "x-auth-subject"), vec!["alice"]);
    assert_eq!(values(&seen, "x-auth-client-id"), vec!["1001"]);
    assert_eq!(values(&seen, "x-auth-scopes"), vec!["orders.read"]);
    h.shutdown().await;
}

#[tokio::test]
async fn authorization_is_removed_before_forwarding_by_default() {
    let h = Harness::start().await;
    let token = h.token("alice", &["orders.read"]);
    let r = h.get("/orders/3", Some(&token)).await;
    assert_eq!(r.status(), 200);
    let seen = only_request(&h);
    assert!(!has(&seen, "authorization"), "authorization forwarded");
    assert!(
        !seen.headers.iter().any(|(_, v)| v.contains(&token)),
        "the token reached the upstream in some header"
    );
    h.shutdown().await;
}

#[tokio::test]
async fn authorization_is_forwarded_unchanged_on_a_forward_token_route() {
    let h = Harness::start().await;
    let token = h.token("alice", &[]);
    let r = h.get("/fwd/resource", Some(&token)).await;
    assert_eq!(r.status(), 200);
    let seen = only_request(&h);
    assert_eq!(
        values(&seen, "authorization"),
        vec![format!("Bearer {token}")]
    );
    assert_eq!(values(&seen, "x-auth-subject"), vec!["alice"]);
    h.shutdown().await;
}

/// A request carrying forged forwarding headers.
fn with_forged_forwarding(request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    request
        .header("X-Forwarded-For", "203.0.113.7")
        .header("X-Forwarded-Proto", "https")
        .header("X-Forwarded-Host", "evil.example")
        .header("Forwarded", "for=203.0.113.7;proto=https;host=evil.example")
        .header("X-Real-IP", "203.0.113.7")
}

#[tokio::test]
async fn forwarding_headers_from_an_untrusted_client_are_replaced() {
    let h = Harness::start().await;
    let r = with_forged_forwarding(h.client.get(h.url("/public/fwd-headers")))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200);
    let seen = only_request(&h);
    assert_eq!(values(&seen, "x-forwarded-for"), vec!["127.0.0.1"]);
    assert_eq!(values(&seen, "x-forwarded-proto"), vec!["http"]);
    assert_eq!(
        values(&seen, "x-forwarded-host"),
        vec![h.addr.to_string()],
        "x-forwarded-host must be the Host the client used"
    );
    assert!(!has(&seen, "forwarded"), "forwarded kept");
    assert!(!has(&seen, "x-real-ip"), "x-real-ip kept");
    h.shutdown().await;
}

#[tokio::test]
async fn forwarding_chain_from_a_trusted_proxy_is_kept_and_the_peer_appended() {
    let h = Harness::start_with(Options {
        extra: "trusted_proxies: [\"127.0.0.1\"]".into(),
        ..Options::default()
    })
    .await;
    let r = with_forged_forwarding(h.client.get(h.url("/public/fwd-headers")))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200);
    let seen = only_request(&h);
    assert_eq!(
        values(&seen, "x-forwarded-for"),
        vec!["203.0.113.7, 127.0.0.1"]
    );
    assert_eq!(values(&seen, "x-forwarded-proto"), vec!["https"]);
    h.shutdown().await;
}

const BIG: usize = 24 << 20;
const CHUNK: usize = 64 << 10;

/// 24 MiB in 64 KiB chunks of a non-periodic pattern (so a dropped or reordered chunk shows).
fn upload_chunks() -> Vec<Bytes> {
    let mut state: u32 = 0x9e37_79b9;
    (0..BIG / CHUNK)
        .map(|_| {
            let chunk: Vec<u8> = (0..CHUNK)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 17;
                    state ^= state << 5;
                    (state >> 24) as u8
                })
                .collect();
            Bytes::from(chunk)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn streamed_24_mib_upload_arrives_intact() {
    let h = Harness::start().await;
    let token = h.token("alice", &[]);
    let chunks = upload_chunks();
    let mut hasher = digest::Context::new(&digest::SHA256);
    for c in &chunks {
        hasher.update(c);
    }
    let expected = hex(hasher.finish().as_ref());
    let frames = futures_util::stream::iter(
        chunks
            .into_iter()
            .map(|c| Ok::<_, std::convert::Infallible>(Frame::data(c))),
    );
    let body = reqwest::Body::wrap(http_body_util::StreamBody::new(frames));
    let r = h
        .client
        .post(h.url("/upload/x"))
        .bearer_auth(&token)
        .body(body)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200);
    let seen = only_request(&h);
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.path, "/upload/x");
    assert_eq!(seen.body_len, BIG as u64);
    assert_eq!(seen.body_sha256, expected);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn streamed_24_mib_download_arrives_intact() {
    let h = Harness::start().await;
    let token = h.token("alice", &[]);
    let mut r = h.get(&format!("/download/{BIG}"), Some(&token)).await;
    assert_eq!(r.status(), 200);
    let announced = r
        .headers()
        .get("x-body-sha256")
        .expect("x-body-sha256 passed through")
        .to_str()
        .expect("ascii")
        .to_owned();
    let mut hasher = digest::Context::new(&digest::SHA256);
    let mut len = 0usize;
    while let Some(chunk) = r.chunk().await.expect("body chunk") {
        len += chunk.len();
        hasher.update(&chunk);
    }
    assert_eq!(len, BIG);
    assert_eq!(hex(hasher.finish().as_ref()), announced);
    h.shutdown().await;
}

#[tokio::test]
async fn unreachable_upstream_gives_502_json() {
    let closed = closed_port().await;
    let h = Harness::start_with(Options {
        upstream_url: Some(format!("http://{closed}")),
        ..Options::default()
    })
    .await;
    let r = h.get("/public/anything", None).await;
    assert_eq!(r.status(), 502);
    let content_type = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        content_type.starts_with("application/json"),
        "content-type {content_type:?}"
    );
    let body: serde_json::Value = r.json().await.expect("JSON body");
    assert!(body["error"].is_string(), "body {body}");

    let token = h.token("alice", &["orders.read"]);
    let r = h.get("/orders/9", Some(&token)).await;
    assert_eq!(r.status(), 502);
    h.shutdown().await;
}

#[tokio::test]
async fn slow_upstream_gives_504() {
    let h = Harness::start_with(Options {
        upstream_timeout_ms: 200,
        ..Options::default()
    })
    .await;
    let token = h.token("alice", &[]);
    let r = h.get("/slow/2000", Some(&token)).await;
    assert_eq!(r.status(), 504);
    let body: serde_json::Value = r.json().await.expect("JSON body");
    assert!(body["error"].is_string(), "body {body}");
    h.shutdown().await;
}

#[tokio::test]
async fn upstream_503_is_passed_through_not_rewritten() {
    let h = Harness::start().await;
    let r = h.get("/status/503", None).await;
    assert_eq!(r.status(), 503);
    // The gateway's own 503 (introspection down) carries Retry-After and a JSON error; the
    // upstream's answer must come back as the upstream sent it.
    assert!(r.headers().get("retry-after").is_none());
    let body = r.bytes().await.expect("body");
    assert!(body.is_empty(), "body rewritten: {body:?}");
    assert_eq!(only_request(&h).path, "/status/503");
    h.shutdown().await;
}

#[tokio::test]
async fn query_string_is_forwarded_verbatim() {
    let h = Harness::start().await;
    let query = "b=2&a=1&a=%20x&empty=&plus=a+b&enc=%2F%3F&utf=%C3%A9&flag";
    let r = h.get(&format!("/public/q?{query}"), None).await;
    assert_eq!(r.status(), 200);
    let seen = only_request(&h);
    assert_eq!(seen.path, "/public/q");
    assert_eq!(seen.query.as_deref(), Some(query));
    h.shutdown().await;
}

#[tokio::test]
async fn h2c_request_to_a_protected_route_is_forwarded_as_http_1_1_with_host() {
    let h = Harness::start().await;
    let token = h.token("alice", &["orders.read"]);
    let client = reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .build()
        .expect("client");
    let r = client
        .get(h.url("/orders/h2"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("request");
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 200);
    let seen = only_request(&h);
    assert_eq!(seen.version, "HTTP/1.1");
    assert_eq!(values(&seen, "host"), vec![h.addr.to_string()]);
    assert_eq!(values(&seen, "x-auth-subject"), vec!["alice"]);
    h.shutdown().await;
}
