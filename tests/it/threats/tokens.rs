//! Credential ambiguity (peers.md 3e 10-15, RFC 6750 2): exactly one credential, in exactly
//! one place, in exactly one shape; anything else is refused before introspection.
//!
//! Already covered elsewhere and not repeated: case-flipped tokens (cache.rs), CRLF and quote
//! injection through a token, two identical `Authorization` lines, `Bearer tok b`/`tok,b`/
//! `"tok"` (bearer.rs), Bearer and DPoP schemes together (dpop.rs), CR/LF/NUL in HTTP/2
//! values (threats::framing).

use super::*;

/// `GET /orders/1` with raw header lines (bytes, so that any octet can be sent).
async fn get_orders(h: &Harness, lines: &[u8]) -> Wire {
    let mut request = b"GET /orders/1 HTTP/1.1\r\nHost: x\r\n".to_vec();
    request.extend_from_slice(lines);
    request.extend_from_slice(b"Connection: close\r\n\r\n");
    exchange(h.addr, &request).await
}

fn authorization(value: &[u8]) -> Vec<u8> {
    let mut line = b"Authorization: ".to_vec();
    line.extend_from_slice(value);
    line.extend_from_slice(b"\r\n");
    line
}

#[tokio::test]
async fn bearer_value_with_trailing_or_embedded_garbage_is_400_without_introspection() {
    let h = Harness::start().await;
    let token = h.token("alice", &["orders.read"]);
    let t = token.as_bytes();
    let with = |before: &[u8], after: &[u8]| [before, t, after].concat();
    let cases: Vec<Vec<u8>> = vec![
        with(b"Bearer ", b";x"),
        with(b"Bearer ", b")"),
        with(b"Bearer ", b"\\"),
        with(b"Bearer ", b"%00"),
        with(b"Bearer ", b"%41"),
        with(b"Bearer ", b"==x"),
        with(b"Bearer ", b"= ="),
        with(b"Bearer ", b" ,"),
        with(b"Bearer ", b"\t;"),
        with(b"Bearer ", "\u{f6}".as_bytes()),
        with(b"Bearer ", b"\xff"),
        with(b"Bearer ", b"\x7f"),
        with(b"Bearer ", b"\x01"),
        with(b"Bearer\t", b""),
        with(b"Bearer,", b""),
        with(b"Bearer:", b""),
        with(b"Bearer=", b""),
    ];
    for value in &cases {
        let r = get_orders(&h, &authorization(value)).await;
        assert_eq!(
            r.statuses(),
            [400],
            "{:?}: {}",
            String::from_utf8_lossy(value),
            r.raw
        );
        assert!(!r.raw.contains(&token), "{}", r.raw);
    }
    assert_eq!(h.introspections(), 0);
    assert_upstream_untouched(&h, "garbage around the token");
    // Whitespace around the field value is not part of it (RFC 9110 5.5): the same token.
    for value in [
        with(b"Bearer ", b" "),
        with(b"Bearer ", b"\t"),
        with(b"   Bearer ", b""),
    ] {
        let r = get_orders(&h, &authorization(&value)).await;
        assert_eq!(
            r.statuses(),
            [200],
            "{:?}: {}",
            String::from_utf8_lossy(&value),
            r.raw
        );
    }
    assert_eq!(h.introspections(), 1);
    h.shutdown().await;
}

#[tokio::test]
async fn authorization_together_with_an_access_token_query_parameter_is_400_without_introspection()
{
    let h = Harness::start().await;
    let token = h.token("alice", &["orders.read"]);
    let auth = format!("Authorization: Bearer {token}\r\n");
    for (query, lines) in [
        // RFC 6750 2: one method per request; the query method is never accepted at all.
        (format!("access_token={token}"), auth.clone()),
        ("access_token=other-token-value".to_owned(), auth.clone()),
        (format!("x=1&ACCESS_TOKEN={token}"), auth.clone()),
        (format!("access_token={token}"), String::new()),
    ] {
        let request = format!(
            "GET /orders/1?{query} HTTP/1.1\r\nHost: x\r\n{lines}Connection: close\r\n\r\n"
        );
        let r = exchange(h.addr, request.as_bytes()).await;
        assert_eq!(r.statuses(), [400], "{query}: {}", r.raw);
        assert!(
            r.only().body_text().contains("invalid_request"),
            "{}",
            r.raw
        );
        assert!(!r.raw.contains(&token), "{}", r.raw);
    }
    assert_eq!(h.introspections(), 0);
    assert_upstream_untouched(&h, "token in header and query");
    h.shutdown().await;
}

#[tokio::test]
async fn several_authorization_fields_of_any_kind_are_400_without_introspection() {
    let h = Harness::start().await;
    let token = h.token("alice", &["orders.read"]);
    let bearer = format!("Authorization: Bearer {token}\r\n");
    for lines in [
        format!("{bearer}Authorization: Basic dXNlcjpwYXNz\r\n"),
        format!("Authorization:\r\n{bearer}"),
        format!("AUTHORIZATION: Bearer {token}\r\n{bearer}"),
        format!("{bearer}authorization: Bearer other-token-value\r\n"),
    ] {
        let r = get_orders(&h, lines.as_bytes()).await;
        assert_eq!(r.statuses(), [400], "{lines:?}: {}", r.raw);
        let challenge = r.only().header("www-authenticate").join(", ");
        assert!(
            challenge.contains(r#"error="invalid_request""#),
            "{challenge}"
        );
    }
    assert_eq!(h.introspections(), 0);
    assert_upstream_untouched(&h, "several Authorization fields");
    h.shutdown().await;
}

#[tokio::test]
async fn a_token_anywhere_but_authorization_is_no_credential() {
    let h = Harness::start().await;
    let token = h.token("alice", &["orders.read"]);
    for lines in [
        format!("X-Access-Token: {token}\r\n"),
        format!("Access-Token: Bearer {token}\r\n"),
        format!("Cookie: access_token={token}\r\n"),
        format!("X-Authorization: Bearer {token}\r\n"),
        format!("Authorization_: Bearer {token}\r\n"),
    ] {
        let r = get_orders(&h, lines.as_bytes()).await;
        assert_eq!(r.statuses(), [401], "{lines:?}: {}", r.raw);
        assert_eq!(
            r.only().header("www-authenticate"),
            [r#"Bearer realm="tokengate""#],
            "{lines:?}"
        );
    }
    assert_eq!(h.introspections(), 0);
    assert_upstream_untouched(&h, "tokens elsewhere");
    h.shutdown().await;
}
