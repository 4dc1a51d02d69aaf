//! Bearer credentials (DESIGN.md section 3 step 4, RFC 6750): the challenge for each kind of
//! refusal, scope checks per route, malformed, duplicated and oversized credentials, and that
//! the token never comes back in a response.

use crate::routing::{RawResponse, raw_request};
use crate::support::Harness;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};

const BARE_CHALLENGE: &str = r#"Bearer realm="tokengate""#;

/// A refusal as seen by the client: status, headers and body text.
struct Refusal {
    status: u16,
    headers: HeaderMap,
    body: String,
}

impl Refusal {
    async fn from(r: reqwest::Response) -> Self {
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let body = r.text().await.expect("body");
        Self {
            status,
            headers,
            body,
        }
    }

    fn challenge(&self) -> &str {
        let mut all = self.headers.get_all("www-authenticate").iter();
        let first = all.next().expect("a WWW-Authenticate header");
        assert!(all.next().is_none(), "one challenge");
        first.to_str().expect("ASCII challenge")
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    /// The common shape of every refusal: JSON, `no-store`, and no trace of `secret`.
    fn assert_shape(&self, secret: &str) {
        assert!(
            self.headers["content-type"]
                .to_str()
                .expect("ASCII content-type")
                .starts_with("application/json")
        );
        assert_eq!(self.headers["cache-control"], "no-store");
        assert!(self.json()["error"].is_string(), "{}", self.body);
        assert_no_leak(&self.headers, &self.body, secret);
    }
}

/// The token appears nowhere in the response: not in the body, not in any header.
fn assert_no_leak(headers: &HeaderMap, body: &str, secret: &str) {
    // Short probes would match by chance; every token used here is long.
    assert!(secret.len() >= 8, "probe too short: {secret:?}");
    assert!(!body.contains(secret), "body echoes the token: {body}");
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        assert!(!value.contains(secret), "{name} echoes the token: {value}");
    }
}

fn assert_raw_no_leak(r: &RawResponse, secret: &str) {
    assert!(
        !r.raw.contains(secret),
        "response echoes the token: {}",
        r.raw
    );
}

async fn get_with_authorization(h: &Harness, path: &str, value: &str) -> Refusal {
    let r = h
        .client
        .get(h.url(path))
        .header(AUTHORIZATION, value)
        .send()
        .await
        .expect("request");
    Refusal::from(r).await
}

#[tokio::test]
async fn missing_token_is_401_with_a_bare_challenge() {
    let h = Harness::start().await;
    let r = Refusal::from(h.get("/orders/1", None).await).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.challenge(), BARE_CHALLENGE);
    assert!(!r.challenge().contains("error="));
    r.assert_shape("not-a-token-at-all");
    assert_eq!(h.upstream_requests(), 0);
    assert_eq!(h.introspections(), 0);
    h.shutdown().await;
}

#[tokio::test]
async fn basic_credentials_get_the_same_bare_401() {
    let h = Harness::start().await;
    let secret = "dXNlcjpwYXNzd29yZA==";
    let r = get_with_authorization(&h, "/orders/1", &format!("Basic {secret}")).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.challenge(), BARE_CHALLENGE);
    r.assert_shape(secret);
    assert_eq!(h.upstream_requests(), 0);
    assert_eq!(h.introspections(), 0);
    h.shutdown().await;
}

#[tokio::test]
async fn unknown_token_is_401_invalid_token() {
    let h = Harness::start().await;
    let token = "unknown-token-0123456789abcdef";
    let r = Refusal::from(h.get("/orders/1", Some(token)).await).await;
    assert_eq!(r.status, 401);
    assert!(
        r.challenge().starts_with(BARE_CHALLENGE),
        "{}",
        r.challenge()
    );
    assert!(r.challenge().contains(r#"error="invalid_token""#));
    assert_eq!(r.json()["error"], "invalid_token");
    r.assert_shape(token);
    assert_eq!(h.upstream_requests(), 0);
    assert_eq!(h.introspections(), 1);
    h.shutdown().await;
}

#[tokio::test]
async fn expired_token_is_401_invalid_token() {
    let h = Harness::start().await;
    let token = h.token_expiring_in("alice", &["orders.read"], -10);
    let r = Refusal::from(h.get("/orders/1", Some(&token)).await).await;
    assert_eq!(r.status, 401);
    assert!(r.challenge().contains(r#"error="invalid_token""#));
    r.assert_shape(&token);
    assert_eq!(h.upstream_requests(), 0);
    assert_eq!(h.introspections(), 1);
    h.shutdown().await;
}

#[tokio::test]
async fn insufficient_scope_is_403_naming_the_required_scope() {
    let h = Harness::start().await;
    let token = h.token("alice", &["orders.read"]);
    let r = h
        .client
        .post(h.url("/orders"))
        .bearer_auth(&token)
        .body("{}")
        .send()
        .await
        .unwrap();
    let r = Refusal::from(r).await;
    assert_eq!(r.status, 403);
    let challenge = r.challenge();
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    assert!(
        challenge.contains(r#"error="insufficient_scope""#),
        "{challenge}"
    );
    assert!(challenge.contains(r#"scope="orders.write""#), "{challenge}");
    assert_eq!(r.json()["error"], "insufficient_scope");
    r.assert_shape(&token);
    assert_eq!(h.upstream_requests(), 0);
    assert_eq!(h.introspections(), 1);
    h.shutdown().await;
}

#[tokio::test]
async fn scopes_are_rechecked_per_route_on_a_cache_hit() {
    let h = Harness::start().await;
    let token = h.token("alice", &["orders.read"]);
    assert_eq!(h.get("/orders/1", Some(&token)).await.status(), 200);
    assert_eq!(h.upstream_requests(), 1);
    let r = h
        .client
        .post(h.url("/orders"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let r = Refusal::from(r).await;
    assert_eq!(r.status, 403);
    assert!(r.challenge().contains(r#"scope="orders.write""#));
    r.assert_shape(&token);
    // And again the other way round: the cached grant still serves the read route.
    assert_eq!(h.get("/orders/2", Some(&token)).await.status(), 200);
    assert_eq!(h.upstream_requests(), 2);
    assert_eq!(h.introspections(), 1);
    h.shutdown().await;
}

#[tokio::test]
async fn route_without_scopes_accepts_any_valid_token() {
    let h = Harness::start().await;
    let no_scopes = h.token("alice", &[]);
    let other = h.token("bob", &["something.else"]);
    for token in [&no_scopes, &other] {
        let r = h.get("/me", Some(token)).await;
        assert_eq!(r.status(), 200);
    }
    assert_eq!(h.upstream_requests(), 2);
    // Still requires a valid one.
    let r = Refusal::from(h.get("/me", Some("not-a-valid-token-xyz")).await).await;
    assert_eq!(r.status, 401);
    r.assert_shape("not-a-valid-token-xyz");
    assert_eq!(h.upstream_requests(), 2);
    assert_eq!(h.introspections(), 3);
    h.shutdown().await;
}

#[tokio::test]
async fn malformed_authorization_is_400_invalid_request_without_introspection() {
    let h = Harness::start().await;
    let token = h.token("alice", &["orders.read"]);
    let cases = [
        format!("Bearer {token} b"),
        format!("Bearer {token},b"),
        format!("Bearer {token}=x"),
        format!("Bearer \"{token}\""),
        "Bearer".to_owned(),
        "Bearer ".to_owned(),
        "Bearer =".to_owned(),
    ];
    for value in &cases {
        let r = get_with_authorization(&h, "/orders/1", value).await;
        assert_eq!(r.status, 400, "{value:?}: {}", r.body);
        assert!(
            r.challenge().contains(r#"error="invalid_request""#),
            "{value:?}: {}",
            r.challenge()
        );
        assert_eq!(r.json()["error"], "invalid_request");
        r.assert_shape(&token);
    }
    assert_eq!(h.upstream_requests(), 0);
    assert_eq!(h.introspections(), 0);
    h.shutdown().await;
}

#[tokio::test]
async fn two_authorization_headers_are_400_invalid_request_without_introspection() {
    let h = Harness::start().await;
    let token = h.token("alice", &["orders.read"]);
    // Both valid, both the same: still ambiguous.
    for second in [token.clone(), h.token("bob", &["orders.read"])] {
        let mut headers = HeaderMap::new();
        headers.append(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
        );
        headers.append(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {second}")).unwrap(),
        );
        let r = h
            .client
            .get(h.url("/orders/1"))
            .headers(headers)
            .send()
            .await
            .unwrap();
        let r = Refusal::from(r).await;
        assert_eq!(r.status, 400, "{}", r.body);
        assert!(r.challenge().contains(r#"error="invalid_request""#));
        r.assert_shape(&token);
        r.assert_shape(&second);
    }
    // The same over a raw socket, so that no client library merges the lines.
    let raw = raw_request(
        h.addr,
        &format!(
            "GET /orders/1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nAuthorization: Bearer {token}\r\n"
        ),
    )
    .await;
    assert_eq!(raw.status, 400, "{}", raw.raw);
    assert_raw_no_leak(&raw, &token);
    assert_eq!(h.upstream_requests(), 0);
    assert_eq!(h.introspections(), 0);
    h.shutdown().await;
}

#[tokio::test]
async fn oversized_token_is_400_invalid_request_without_introspection() {
    let h = Harness::start().await;
    let token = "a".repeat(4097);
    let r = Refusal::from(h.get("/orders/1", Some(&token)).await).await;
    assert_eq!(r.status, 400);
    assert!(r.challenge().contains(r#"error="invalid_request""#));
    r.assert_shape(&token);
    assert_eq!(h.upstream_requests(), 0);
    assert_eq!(h.introspections(), 0);
    h.shutdown().await;
}

#[tokio::test]
async fn token_of_exactly_4096_bytes_is_introspected() {
    let h = Harness::start().await;
    let token = "b".repeat(4096);
    let r = Refusal::from(h.get("/orders/1", Some(&token)).await).await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(r.challenge().contains(r#"error="invalid_token""#));
    r.assert_shape(&token);
    assert_eq!(h.upstream_requests(), 0);
    assert_eq!(h.introspections(), 1);
    let sent = h.emulator.requests();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["token"].as_str().map(str::len), Some(4096));
    h.shutdown().await;
}

#[tokio::test]
async fn scheme_name_is_case_insensitive() {
    let h = Harness::start().await;
    let token = h.token("alice", &["orders.read"]);
    for scheme in ["bearer", "BEARER", "BeArEr"] {
        let r = h
            .client
            .get(h.url("/orders/1"))
            .header(AUTHORIZATION, format!("{scheme} {token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{scheme}");
    }
    assert_eq!(h.upstream_requests(), 3);
    assert_eq!(h.introspections(), 1);
    h.shutdown().await;
}

#[tokio::test]
async fn token_never_appears_in_any_refusal() {
    let h = Harness::start().await;
    let valid = h.token("alice", &["orders.read"]);
    let expired = h.token_expiring_in("alice", &["orders.read"], -10);
    let unknown = "unknown-secret-token-abcdef012345".to_owned();
    let mut refusals = Vec::new();
    // insufficient scope, invalid, expired, malformed, oversized, duplicated, path refused.
    refusals.push((
        valid.clone(),
        Refusal::from(
            h.client
                .delete(h.url("/orders/1"))
                .bearer_auth(&valid)
                .send()
                .await
                .unwrap(),
        )
        .await,
    ));
    refusals.push((
        unknown.clone(),
        Refusal::from(h.get("/orders/1", Some(&unknown)).await).await,
    ));
    refusals.push((
        expired.clone(),
        Refusal::from(h.get("/orders/1", Some(&expired)).await).await,
    ));
    refusals.push((
        valid.clone(),
        get_with_authorization(&h, "/orders/1", &format!("Bearer {valid} extra")).await,
    ));
    let long = format!("{valid}{}", "c".repeat(4097));
    refusals.push((
        long.clone(),
        Refusal::from(h.get("/orders/1", Some(&long)).await).await,
    ));
    refusals.push((
        valid.clone(),
        Refusal::from(h.get("/nowhere", Some(&valid)).await).await,
    ));
    for (secret, r) in &refusals {
        assert!(r.status >= 400, "{}", r.status);
        r.assert_shape(secret);
    }
    let statuses: Vec<u16> = refusals.iter().map(|(_, r)| r.status).collect();
    assert_eq!(statuses, [403, 401, 401, 400, 400, 404]);
    for target in ["/orders%2F1", "/orders;x"] {
        let raw = raw_request(
            h.addr,
            &format!("GET {target} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {valid}\r\n"),
        )
        .await;
        assert_eq!(raw.status, 400);
        assert_raw_no_leak(&raw, &valid);
    }
    assert_eq!(h.upstream_requests(), 0);
    h.shutdown().await;
}

#[tokio::test]
async fn quote_in_a_token_cannot_inject_into_the_challenge() {
    let h = Harness::start().await;
    let probe = "abcdefgh\", error=\"injected";
    let raw = raw_request(
        h.addr,
        &format!("GET /orders/1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {probe}\r\n"),
    )
    .await;
    assert_eq!(raw.status, 400, "{}", raw.raw);
    let challenges = raw.header("www-authenticate");
    assert_eq!(challenges.len(), 1, "{}", raw.raw);
    assert!(challenges[0].contains(r#"error="invalid_request""#));
    assert!(!raw.raw.contains("injected"), "{}", raw.raw);
    assert_raw_no_leak(&raw, "abcdefgh");
    assert_eq!(h.upstream_requests(), 0);
    assert_eq!(h.introspections(), 0);
    h.shutdown().await;
}

#[tokio::test]
async fn crlf_in_a_token_cannot_inject_a_response_header() {
    let h = Harness::start().await;
    // On the wire the CRLF ends the Authorization line; what follows is a request header the
    // gateway must not reflect into its response.
    let raw = raw_request(
        h.addr,
        "GET /orders/1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer abcdefgh12345678\r\nSet-Cookie: injected=1\r\nX-Injected: yes\r\n",
    )
    .await;
    assert_eq!(raw.status, 401, "{}", raw.raw);
    assert!(raw.header("set-cookie").is_empty(), "{}", raw.raw);
    assert!(raw.header("x-injected").is_empty(), "{}", raw.raw);
    assert!(!raw.raw.contains("injected"), "{}", raw.raw);
    assert_raw_no_leak(&raw, "abcdefgh12345678");
    // A bare CR or an encoded CRLF inside the value is not a token either.
    for value in [
        "Bearer abcdefgh\rX-Injected: yes",
        "Bearer abcdefgh%0d%0aX-Injected:yes",
    ] {
        let raw = raw_request(
            h.addr,
            &format!("GET /orders/1 HTTP/1.1\r\nHost: x\r\nAuthorization: {value}\r\n"),
        )
        .await;
        assert_eq!(raw.status, 400, "{value:?}: {}", raw.raw);
        assert!(raw.header("x-injected").is_empty(), "{}", raw.raw);
        assert!(!raw.raw.contains("X-Injected"), "{}", raw.raw);
        assert_raw_no_leak(&raw, "abcdefgh");
    }
    assert_eq!(h.upstream_requests(), 0);
    assert_eq!(h.introspections(), 1);
    h.shutdown().await;
}
