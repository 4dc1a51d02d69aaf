//! Routing (DESIGN.md section 3, steps 1-3): path normalization, route matching on host, method
//! and normalized path, the 404 for no route (without introspection), public routes, query
//! handling and CORS preflights.

use crate::support::{Harness, echoed_headers};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A response read off a raw socket.
pub struct RawResponse {
    pub status: u16,
    /// Lower-case names, values as sent.
    pub headers: Vec<(String, String)>,
    /// Everything after the header block, undecoded (may be chunked).
    pub body: String,
    /// The whole response as received.
    pub raw: String,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// Sends `head` (the request line and header lines, each ending in CRLF, without the final empty
/// line) to `addr` byte for byte, adds `Connection: close` and the empty line, and reads the
/// whole response. No client library touches the target or the header values.
pub async fn raw_request(addr: std::net::SocketAddr, head: &str) -> RawResponse {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let request = format!("{head}Connection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("write request");
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut buf))
        .await
        .expect("the gateway answers and closes the connection")
        .expect("read response");
    let raw = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no header block in response: {raw:?}"));
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .unwrap_or_else(|| panic!("bad status line: {status_line:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    RawResponse {
        status,
        headers,
        body: body.to_owned(),
        raw: raw.clone(),
    }
}

/// `GET <target>` with `Host: x`, sent raw.
async fn raw_get(h: &Harness, target: &str) -> RawResponse {
    raw_request(h.addr, &format!("GET {target} HTTP/1.1\r\nHost: x\r\n")).await
}

async fn json(r: reqwest::Response) -> serde_json::Value {
    r.json().await.expect("JSON body")
}

#[tokio::test]
async fn no_route_is_404_with_json_body_and_no_introspection_even_with_a_token() {
    let h = Harness::start().await;
    let token = h.token("alice", &["orders.read"]);
    for token in [Some(token.as_str()), None] {
        let r = h.get("/nothing/here", token).await;
        assert_eq!(r.status(), 404);
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json")
        );
        let body = json(r).await;
        assert_eq!(body["error"], "not_found");
    }
    // A prefix that only looks like a routed one does not match `/orders/**`.
    let r = h.get("/ordersX/1", Some(&token)).await;
    assert_eq!(r.status(), 404);
    assert_eq!(h.introspections(), 0);
    assert_eq!(h.upstream_requests(), 0);
    h.shutdown().await;
}

#[tokio::test]
async fn public_route_is_forwarded_without_a_token() {
    let h = Harness::start().await;
    let r = h.get("/public/info", None).await;
    assert_eq!(r.status(), 200);
    let body = json(r).await;
    assert_eq!(body["path"], "/public/info");
    assert_eq!(h.upstream_requests(), 1);
    assert_eq!(h.introspections(), 0);
    h.shutdown().await;
}

#[tokio::test]
async fn public_route_strips_authorization_before_forwarding_and_does_not_introspect() {
    let h = Harness::start().await;
    let token = h.token("alice", &["orders.read"]);
    let r = h.get("/public/info", Some(&token)).await;
    assert_eq!(r.status(), 200);
    let body = json(r).await;
    assert!(echoed_headers(&body, "authorization").is_empty(), "{body}");
    assert!(!body.to_string().contains(&token));
    assert_eq!(h.introspections(), 0);
    h.shutdown().await;
}

#[tokio::test]
async fn method_allowed_by_no_route_is_404_without_introspection() {
    let h = Harness::start().await;
    let token = h.token("alice", &["orders.read", "orders.write"]);
    let r = h
        .client
        .patch(h.url("/orders/1"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let body = json(r).await;
    assert_eq!(body["error"], "not_found");
    assert_eq!(h.introspections(), 0);
    assert_eq!(h.upstream_requests(), 0);
    // The same path with an allowed method is served.
    assert_eq!(h.get("/orders/1", Some(&token)).await.status(), 200);
    h.shutdown().await;
}

#[tokio::test]
async fn host_route_matches_case_insensitively_and_ignores_the_port() {
    let h = Harness::start().await;
    let token = h.token("alice", &[]);
    for host in ["api.example.com:8080", "API.Example.COM", "api.example.com"] {
        let r = h
            .client
            .get(h.url("/hosted/x"))
            .header("host", host)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "Host: {host}");
        let body = json(r).await;
        assert_eq!(body["path"], "/hosted/x");
    }
    assert_eq!(h.upstream_requests(), 3);
    h.shutdown().await;
}

#[tokio::test]
async fn host_route_does_not_match_another_host() {
    let h = Harness::start().await;
    let token = h.token("alice", &[]);
    for host in [
        "other.example.com",
        "api.example.com.evil.test",
        "xapi.example.com:8080",
    ] {
        let r = h
            .client
            .get(h.url("/hosted/x"))
            .header("host", host)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "Host: {host}");
    }
    // The loopback address the client uses by default is not the route's host either.
    assert_eq!(h.get("/hosted/x", Some(&token)).await.status(), 404);
    assert_eq!(h.introspections(), 0);
    assert_eq!(h.upstream_requests(), 0);
    h.shutdown().await;
}

#[tokio::test]
async fn equivalent_paths_are_matched_and_forwarded_in_normalized_form() {
    let h = Harness::start().await;
    let token = h.token("alice", &["orders.read"]);
    for target in [
        "/orders/./42",
        "/orders//42",
        "/public/../orders/42",
        "/orders/%34%32",
        "//orders/42",
        "/orders/x/../42",
    ] {
        let r = raw_request(
            h.addr,
            &format!("GET {target} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"),
        )
        .await;
        assert_eq!(r.status, 200, "{target}: {}", r.raw);
        let forwarded = h.upstream.requests().pop().expect("forwarded");
        assert_eq!(forwarded.path, "/orders/42", "{target}");
    }
    assert_eq!(h.upstream_requests(), 6);
    h.shutdown().await;
}

#[tokio::test]
async fn dot_segments_out_of_a_public_route_require_the_target_routes_scope() {
    let h = Harness::start().await;
    // `/public/../orders/42` is `/orders/42`: the orders-read route, not the public one.
    let r = raw_get(&h, "/public/../orders/42").await;
    assert_eq!(r.status, 401, "{}", r.raw);
    assert_eq!(
        r.header("www-authenticate"),
        [r#"Bearer realm="tokengate""#]
    );
    // Percent-encoded dots are unreserved: decoded once, then removed as a dot segment.
    let r = raw_get(&h, "/public/%2e%2e/orders/42").await;
    assert_eq!(r.status, 401, "{}", r.raw);
    let r = raw_get(&h, "/public/.%2E/orders/42").await;
    assert_eq!(r.status, 401, "{}", r.raw);
    // A token without orders.read is refused even though the raw path starts with /public.
    let token = h.token("bob", &["profile"]);
    let r = raw_request(
        h.addr,
        &format!(
            "GET /public/../orders/42 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
        ),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.raw);
    assert_eq!(h.upstream_requests(), 0);
    assert_eq!(h.introspections(), 1);
    h.shutdown().await;
}

#[tokio::test]
async fn hostile_paths_are_400_and_nothing_is_forwarded() {
    let h = Harness::start().await;
    let token = h.token("alice", &["orders.read"]);
    for target in [
        "/orders%2F42",
        "/orders%2f42",
        "/orders%5C42",
        "/orders%00",
        "/orders;x=1",
        "/orders/42;x=1",
        "/public/%252e%252e/x",
        "/public/%252F/x",
        "/%C0%AE%C0%AE/x",
        "/public/%C0%AE%C0%AE/orders",
        "/public/..\\orders",
        "/public\\..\\orders",
        "/../orders/42",
        "/public/../../orders/42",
        "/public/%2e%2e/%2e%2e/orders",
        "/orders/%zz",
        "/orders/%4",
    ] {
        for auth in [String::new(), format!("Authorization: Bearer {token}\r\n")] {
            let r = raw_request(
                h.addr,
                &format!("GET {target} HTTP/1.1\r\nHost: x\r\n{auth}"),
            )
            .await;
            assert_eq!(r.status, 400, "{target}: {}", r.raw);
            assert!(
                r.body.contains(r#""error":"invalid_request""#),
                "{target}: {}",
                r.raw
            );
        }
    }
    assert_eq!(h.upstream_requests(), 0);
    assert_eq!(h.introspections(), 0);
    h.shutdown().await;
}

#[tokio::test]
async fn hostile_path_rejection_has_a_json_body() {
    let h = Harness::start().await;
    let r = raw_get(&h, "/orders%2F42").await;
    assert_eq!(r.status, 400);
    assert!(r.header("content-type")[0].starts_with("application/json"));
    assert!(r.body.contains(r#""error":"invalid_request""#), "{}", r.raw);
    assert_eq!(h.upstream_requests(), 0);
    h.shutdown().await;
}

#[tokio::test]
async fn query_string_does_not_take_part_in_matching() {
    let h = Harness::start().await;
    for target in [
        "/orders/1?x=/public",
        "/orders/1?/public/x",
        "/orders?x=/../public",
    ] {
        let r = raw_get(&h, target).await;
        assert_eq!(r.status, 401, "{target}: {}", r.raw);
    }
    // Nor does a query make an unrouted path routable.
    let r = raw_get(&h, "/nothing?/public/x").await;
    assert_eq!(r.status, 404);
    assert_eq!(h.upstream_requests(), 0);
    assert_eq!(h.introspections(), 0);
    h.shutdown().await;
}

#[tokio::test]
async fn query_string_is_forwarded_verbatim() {
    let h = Harness::start().await;
    let token = h.token("alice", &["orders.read"]);
    let query = "x=/public&b=%2F..%2f&c=%41%zz&d=a+b&e=&e=2";
    let r = raw_request(
        h.addr,
        &format!(
            "GET /orders/./42?{query} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let forwarded = h.upstream.requests().pop().expect("forwarded");
    assert_eq!(forwarded.path, "/orders/42");
    assert_eq!(forwarded.query.as_deref(), Some(query));
    h.shutdown().await;
}

#[tokio::test]
async fn cors_preflight_is_forwarded_without_a_token() {
    let h = Harness::start().await;
    let r = h
        .client
        .request(reqwest::Method::OPTIONS, h.url("/orders/1"))
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = json(r).await;
    assert_eq!(body["method"], "OPTIONS");
    assert_eq!(body["path"], "/orders/1");
    assert_eq!(h.upstream_requests(), 1);
    assert_eq!(h.introspections(), 0);
    h.shutdown().await;
}

#[tokio::test]
async fn options_without_preflight_headers_is_not_a_preflight() {
    let h = Harness::start().await;
    // No route allows OPTIONS on /orders/**; without the preflight headers it is a plain request.
    let r = h
        .client
        .request(reqwest::Method::OPTIONS, h.url("/orders/1"))
        .header("origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // On a route allowing every method, it needs a token.
    let r = h
        .client
        .request(reqwest::Method::OPTIONS, h.url("/me"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(h.upstream_requests(), 0);
    assert_eq!(h.introspections(), 0);
    h.shutdown().await;
}

#[tokio::test]
async fn preflight_for_a_method_no_route_allows_is_404() {
    let h = Harness::start().await;
    let r = h
        .client
        .request(reqwest::Method::OPTIONS, h.url("/orders/1"))
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "PATCH")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(h.upstream_requests(), 0);
    assert_eq!(h.introspections(), 0);
    h.shutdown().await;
}
