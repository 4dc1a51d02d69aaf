//! Message framing and request smuggling (SM-01 … SM-15, HP-05, HP-15), on raw sockets and
//! hand-made HTTP/2 frames. Most of these are hyper's to refuse; each test states what hyper
//! answers (status, and whether it closes the connection) and that nothing, in particular no
//! smuggled second request, reaches the upstream.
//!
//! hyper's own refusals are `400 Bad Request` with an empty body and `connection: close`; the
//! gateway's refusals are JSON. The smuggled request is always `GET /public/smuggled`, on a
//! public route, where it would be forwarded without any credential if it were ever parsed.

use super::*;
use crate::support::Options;

const SMUGGLED: &str = "GET /public/smuggled HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

/// `head` (ending in CRLF, without the empty line), then the empty line, `body`, and a
/// pipelined smuggling attempt.
fn with_smuggled(head: &str, body: &str) -> Vec<u8> {
    format!("{head}\r\n{body}{SMUGGLED}").into_bytes()
}

/// hyper refused the request itself: one empty-bodied 400 and a closed connection.
fn assert_hyper_400(r: &Wire, case: &str) {
    assert_eq!(r.statuses(), [400], "{case}: {}", r.raw);
    assert!(
        r.only().body.is_empty(),
        "{case}: not hyper's own answer: {}",
        r.raw
    );
    assert_eq!(
        r.only().header("connection"),
        ["close"],
        "{case}: {}",
        r.raw
    );
    assert!(r.closed, "{case}: connection left open");
}

fn assert_nothing_smuggled(h: &Harness) {
    assert!(
        h.upstream
            .requests()
            .iter()
            .all(|r| r.path != "/public/smuggled"),
        "the smuggled request reached the upstream"
    );
}

#[tokio::test]
async fn content_length_with_transfer_encoding_never_lets_a_smuggled_request_through() {
    let h = Harness::start().await;
    // SM-01. hyper reads the body by Transfer-Encoding alone, drops Content-Length, answers,
    // and closes the connection (RFC 9112 6.1), so the bytes after the chunked body are never
    // parsed as a request.
    for head in [
        "POST /public/clte HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n",
        "POST /public/clte HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n",
        "POST /public/clte HTTP/1.1\r\nHost: x\r\nContent-Length: 60\r\nTransfer-Encoding: chunked\r\n",
    ] {
        let before = h.upstream.request_count();
        let r = exchange(h.addr, &with_smuggled(head, "5\r\nhello\r\n0\r\n\r\n")).await;
        assert_eq!(r.statuses(), [200], "{head:?}: {}", r.raw);
        assert!(r.closed, "{head:?}: connection left open");
        assert_eq!(h.upstream.request_count(), before + 1);
        let seen = last_forwarded(&h);
        assert_eq!(seen.path, "/public/clte");
        assert_eq!(
            seen.body_len, 5,
            "the chunked reading, not the Content-Length one"
        );
        assert!(
            values(&seen, "content-length").is_empty(),
            "{:?}",
            seen.headers
        );
    }
    assert_nothing_smuggled(&h);
    h.shutdown().await;
}

#[tokio::test]
async fn invalid_or_conflicting_content_length_is_400_from_hyper_and_closes() {
    let h = Harness::start().await;
    // SM-05. hyper accepts only 1*DIGIT, and one value (it refuses even `5, 5`).
    for value in [
        "5, 6",
        "5, 5",
        "+5",
        "0x5",
        "-1",
        "5 5",
        "5.0",
        " ",
        "100000000000000000000000000000",
    ] {
        let head = format!("POST /public/cl HTTP/1.1\r\nHost: x\r\nContent-Length: {value}\r\n");
        let r = exchange(h.addr, &with_smuggled(&head, "hello")).await;
        assert_hyper_400(&r, &format!("Content-Length: {value}"));
    }
    let head = "POST /public/cl HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n";
    let r = exchange(h.addr, &with_smuggled(head, "hello!")).await;
    assert_hyper_400(&r, "two Content-Length lines");
    assert_upstream_untouched(&h, "Content-Length");
    h.shutdown().await;
}

#[tokio::test]
async fn transfer_encoding_other_than_a_final_chunked_is_400_from_hyper_and_closes() {
    let h = Harness::start().await;
    // SM-02, SM-03: `chunked` must be the final (here: only) coding; unknown codings refused.
    for te in [
        "Transfer-Encoding: chunked, gzip\r\n",
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n",
        "Transfer-Encoding: xchunked\r\n",
        "Transfer-Encoding: gzip\r\n",
        "Transfer-Encoding: identity\r\n",
        "Transfer-Encoding: chunked-false\r\n",
    ] {
        let head = format!("POST /public/te HTTP/1.1\r\nHost: x\r\n{te}");
        let r = exchange(h.addr, &with_smuggled(&head, "5\r\nhello\r\n0\r\n\r\n")).await;
        assert_hyper_400(&r, te);
    }
    assert_upstream_untouched(&h, "Transfer-Encoding");
    // Coding names are case-insensitive (RFC 9112 7): `Chunked` is chunked.
    let r = exchange(
        h.addr,
        b"POST /public/te HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    )
    .await;
    assert_eq!(r.statuses(), [200], "{}", r.raw);
    assert_eq!(last_forwarded(&h).body_len, 5);
    h.shutdown().await;
}

#[tokio::test]
async fn transfer_encoding_in_http_1_0_is_400_from_hyper_and_closes() {
    let h = Harness::start().await;
    // SM-04.
    let head = "POST /public/te10 HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n";
    let r = exchange(h.addr, &with_smuggled(head, "5\r\nhello\r\n0\r\n\r\n")).await;
    assert_hyper_400(&r, "HTTP/1.0 with Transfer-Encoding");
    assert_upstream_untouched(&h, "HTTP/1.0 TE");
    h.shutdown().await;
}

/// Chunked bodies whose framing is broken after the head was accepted: a chunk size that
/// overflows 64 bits (SM-09), and 100 KB of chunk extensions.
fn broken_chunked_bodies() -> Vec<(&'static str, Vec<u8>)> {
    let head = "POST /public/chunks HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    let mut extensions = format!("{head}5;").into_bytes();
    extensions.extend(std::iter::repeat_n(b'a', 100_000));
    extensions.extend_from_slice(b"\r\nhello\r\n0\r\n\r\n");
    extensions.extend_from_slice(SMUGGLED.as_bytes());
    vec![
        (
            "chunk size FFFFFFFFFFFFFFFFF1",
            format!("{head}FFFFFFFFFFFFFFFFF1\r\nhello\r\n0\r\n\r\n{SMUGGLED}").into_bytes(),
        ),
        ("100 KB chunk extension", extensions),
    ]
}

#[tokio::test]
async fn broken_chunked_framing_never_reaches_the_upstream_and_closes() {
    let h = Harness::start().await;
    for (case, bytes) in broken_chunked_bodies() {
        let r = exchange(h.addr, &bytes).await;
        // The status is the subject of the ignored test below; here: refused, closed.
        assert_eq!(r.responses.len(), 1, "{case}: {}", r.raw);
        assert!(r.only().status >= 400, "{case}: {}", r.raw);
        assert!(r.closed, "{case}: connection left open");
    }
    settle().await;
    assert_upstream_untouched(&h, "broken chunked framing");
    h.shutdown().await;
}

#[tokio::test]
async fn broken_chunked_framing_is_400() {
    let h = Harness::start().await;
    for (case, bytes) in broken_chunked_bodies() {
        let r = exchange(h.addr, &bytes).await;
        assert_eq!(r.statuses(), [400], "{case}: {}", r.raw);
    }
    settle().await;
    assert_upstream_untouched(&h, "broken chunked framing");
    h.shutdown().await;
}

#[tokio::test]
async fn trailers_never_reach_the_upstream() {
    // SM-09: trailer fields are not merged into the headers, and are not forwarded at all (the
    // gateway drops `Trailer`, and hyper's client only sends announced trailers). The echo
    // upstream does not record trailers, so a scripted upstream records the raw body.
    let upstream = ScriptedUpstream::default();
    let addr = upstream
        .spawn(|_| "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_owned())
        .await;
    let h = Harness::start_with(Options {
        upstream_url: Some(format!("http://{addr}")),
        ..Options::default()
    })
    .await;
    let r = exchange(
        h.addr,
        b"POST /public/trailers HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\
          Trailer: Authorization, X-Auth-Subject, Content-Length\r\nConnection: close\r\n\r\n\
          5\r\nhello\r\n0\r\nContent-Length: 99\r\nAuthorization: Bearer trailer-token\r\n\
          X-Auth-Subject: admin\r\n\r\n",
    )
    .await;
    assert_eq!(r.statuses(), [200], "{}", r.raw);
    let heads = upstream.heads();
    let bodies = upstream.bodies();
    assert_eq!(heads.len(), 1, "{heads:?}");
    let head = heads[0].to_ascii_lowercase();
    assert!(!head.lines().any(|l| l.starts_with("trailer:")), "{head}");
    let body = String::from_utf8_lossy(&bodies[0]).to_ascii_lowercase();
    assert_eq!(body, "5\r\nhello\r\n0\r\n\r\n");
    h.shutdown().await;
}

#[tokio::test]
async fn obsolete_line_folding_is_400_from_hyper_and_closes() {
    let h = Harness::start().await;
    // SM-07.
    for fold in [
        "X-A: 1\r\n Transfer-Encoding: chunked\r\n",
        "X-A: 1\r\n\tfolded\r\n",
        "Authorization: Bearer\r\n abcdefgh\r\n",
    ] {
        let head = format!("POST /public/fold HTTP/1.1\r\nHost: x\r\n{fold}Content-Length: 0\r\n");
        let r = exchange(h.addr, &with_smuggled(&head, "")).await;
        assert_hyper_400(&r, fold);
    }
    assert_upstream_untouched(&h, "obs-fold");
    h.shutdown().await;
}

#[tokio::test]
async fn bare_cr_and_whitespace_in_the_wrong_places_are_400_from_hyper_and_close() {
    let h = Harness::start().await;
    for (case, head) in [
        // SM-08: bare CR.
        ("bare CR", "GET /public/w HTTP/1.1\r\nHost: x\rX-A: 1\r\n"),
        // SM-06: whitespace between name and colon.
        (
            "space before colon (TE)",
            "GET /public/w HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n",
        ),
        (
            "space before colon",
            "GET /public/w HTTP/1.1\r\nHost: x\r\nX-A : 1\r\n",
        ),
        (
            "tab before colon",
            "GET /public/w HTTP/1.1\r\nHost: x\r\nX-A\t: 1\r\n",
        ),
        // SM-08: whitespace between the start line and the first field.
        (
            "leading whitespace line",
            "GET /public/w HTTP/1.1\r\n Host: x\r\n",
        ),
        // HP-09: NUL in a field value.
        (
            "NUL in a value",
            "GET /public/w HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n",
        ),
        // SM-12: a raw space or tab (or NUL) in the target is not autocorrected.
        (
            "raw space in target",
            "GET /public/a b HTTP/1.1\r\nHost: x\r\n",
        ),
        (
            "raw tab in target",
            "GET /public/a\tb HTTP/1.1\r\nHost: x\r\n",
        ),
        (
            "raw NUL in target",
            "GET /public/a\0b HTTP/1.1\r\nHost: x\r\n",
        ),
        // Not HTTP/1.x.
        ("HTTP/0.9 request line", "GET /public/w\r\n"),
        (
            "HTTP/2.0 in an HTTP/1 request line",
            "GET /public/w HTTP/2.0\r\nHost: x\r\n",
        ),
        ("HTTP/1.2", "GET /public/w HTTP/1.2\r\nHost: x\r\n"),
    ] {
        let r = exchange(h.addr, &with_smuggled(head, "")).await;
        assert_hyper_400(&r, case);
    }
    assert_upstream_untouched(&h, "malformed heads");
    h.shutdown().await;
}

#[tokio::test]
async fn bare_lf_line_endings_are_read_as_line_ends_and_forwarded_with_crlf() {
    let h = Harness::start().await;
    // hyper (httparse) accepts a bare LF as a line end. The upstream then receives the
    // gateway's own CRLF serialization of the same fields, so it cannot read them differently.
    let r = exchange(
        h.addr,
        b"GET /public/lf HTTP/1.1\nHost: x\nX-A: 1\r\nX-B: 2\nConnection: close\n\n",
    )
    .await;
    assert_eq!(r.statuses(), [200], "{}", r.raw);
    let seen = last_forwarded(&h);
    assert_eq!(values(&seen, "x-a"), ["1"]);
    assert_eq!(values(&seen, "x-b"), ["2"]);
    assert_eq!(h.upstream.request_count(), 1);
    h.shutdown().await;
}

#[tokio::test]
async fn overlong_method_token_is_refused() {
    let h = Harness::start().await;
    let method = "A".repeat(1024);
    let request = format!("{method} /public/m HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let r = exchange(h.addr, request.as_bytes()).await;
    assert!(matches!(r.statuses()[..], [501] | [400]), "{}", r.raw);
    assert_upstream_untouched(&h, "long method");
    h.shutdown().await;
}

#[tokio::test]
async fn expect_100_continue_without_a_token_is_401_without_reading_the_body() {
    let h = Harness::start().await;
    // HP-15: the body is never asked for, so no `100 Continue` is sent.
    let r = exchange(
        h.addr,
        b"POST /orders/1 HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 1000000000\r\n\r\n",
    )
    .await;
    assert_eq!(r.statuses(), [401], "{}", r.raw);
    assert!(!r.raw.contains("100 Continue"), "{}", r.raw);
    assert!(
        r.closed,
        "the unread body must not be parsed as the next request"
    );
    assert_upstream_untouched(&h, "Expect");
    assert_eq!(h.introspections(), 0);
    h.shutdown().await;
}

#[tokio::test]
async fn h2c_upgrade_request_does_not_let_a_pipelined_request_skip_authentication() {
    let h = Harness::start().await;
    // HP-05. The echo upstream does not switch protocols, so the gateway answers the upgrade
    // request normally and parses the pipelined request as a request of its own: 401.
    let r = exchange(
        h.addr,
        b"GET /public/h2c HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n\
          Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n\
          GET /orders/secret HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(r.statuses(), [200, 401], "{}", r.raw);
    let seen = h.upstream.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/public/h2c");
    assert!(values(&seen[0], "http2-settings").is_empty());
    assert_eq!(h.introspections(), 0);
    h.shutdown().await;
}

/// An upstream that, like many HTTP/1.1 servers, accepts an h2c upgrade.
fn h2c_capable(head: &str) -> String {
    if head.to_ascii_lowercase().contains("upgrade: h2c") {
        "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n".into()
    } else {
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".into()
    }
}

#[tokio::test]
async fn h2c_upgrade_is_never_forwarded_to_the_upstream() {
    let upstream = ScriptedUpstream::default();
    let addr = upstream.spawn(h2c_capable).await;
    let h = Harness::start_with(Options {
        upstream_url: Some(format!("http://{addr}")),
        ..Options::default()
    })
    .await;
    let r = exchange(
        h.addr,
        b"GET /public/h2c HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n\
          Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n\
          GET /orders/secret HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(r.statuses(), [200, 401], "{}", r.raw);
    let heads = upstream.heads();
    assert_eq!(heads.len(), 1, "{heads:?}");
    assert!(
        !heads[0].to_ascii_lowercase().contains("upgrade"),
        "{}",
        heads[0]
    );
    assert!(
        upstream.tunnelled().is_empty(),
        "bytes reached the upstream through a tunnel: {:?}",
        String::from_utf8_lossy(&upstream.tunnelled())
    );
    h.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// HTTP/2 (SM-15, RFC 9113 8.1.1, 8.2, 8.3): malformed requests are stream or connection errors
// in hyper/h2 and never become HTTP/1.1 requests to the upstream.

#[tokio::test]
async fn http2_malformed_pseudo_headers_reset_the_stream_and_reach_nothing() {
    let h = Harness::start().await;
    let a = h.addr.to_string();
    let a = a.as_bytes();
    let cases: Vec<(&str, Fields)> = vec![
        (
            "duplicate :path",
            vec![
                (":method", b"GET"),
                (":scheme", b"http"),
                (":authority", a),
                (":path", b"/public/a"),
                (":path", b"/orders/1"),
            ],
        ),
        (
            "missing :path",
            vec![(":method", b"GET"), (":scheme", b"http"), (":authority", a)],
        ),
        (
            "missing :method",
            vec![
                (":scheme", b"http"),
                (":authority", a),
                (":path", b"/public/a"),
            ],
        ),
        (
            "missing :scheme",
            vec![
                (":method", b"GET"),
                (":authority", a),
                (":path", b"/public/a"),
            ],
        ),
        (
            "empty :path",
            vec![
                (":method", b"GET"),
                (":scheme", b"http"),
                (":authority", a),
                (":path", b""),
            ],
        ),
        (
            "pseudo-header after a regular one",
            vec![
                (":method", b"GET"),
                (":scheme", b"http"),
                ("x-a", b"1"),
                (":authority", a),
                (":path", b"/public/a"),
            ],
        ),
        (
            "CONNECT with :path",
            vec![
                (":method", b"CONNECT"),
                (":scheme", b"http"),
                (":authority", a),
                (":path", b"/public/a"),
            ],
        ),
    ];
    for (case, fields) in cases {
        let r = h2_request(h.addr, &fields, None).await;
        assert_eq!(r, H2::Reset(PROTOCOL_ERROR), "{case}");
    }
    settle().await;
    assert_upstream_untouched(&h, "h2 pseudo-headers");
    h.shutdown().await;
}

#[tokio::test]
async fn http2_invalid_field_names_or_values_are_a_connection_error() {
    let h = Harness::start().await;
    let authority = h.addr.to_string();
    for (case, name, value) in [
        ("unknown pseudo-header", ":foo", &b"bar"[..]),
        ("upper-case name", "X-Auth-Subject", b"admin"),
        ("CRLF in a value", "x-a", b"a\r\nx-injected: 1"),
        (
            "LF in a value",
            "authorization",
            b"Bearer abc\nx-injected: 1",
        ),
        ("NUL in a value", "x-a", b"a\0b"),
        ("space in a name", "x a", b"b"),
    ] {
        let mut fields = h2_get(&authority, "/public/a");
        fields.push((name, value));
        let r = h2_request(h.addr, &fields, None).await;
        assert_eq!(r, H2::GoAway(PROTOCOL_ERROR), "{case}");
    }
    settle().await;
    assert_upstream_untouched(&h, "h2 invalid fields");
    h.shutdown().await;
}

#[tokio::test]
async fn http2_connection_specific_headers_reset_the_stream_and_reach_nothing() {
    let h = Harness::start().await;
    let authority = h.addr.to_string();
    // RFC 9113 8.2.2; the `transfer-encoding` case carries HTTP/1 bytes that would be a
    // smuggled request if the gateway translated it into HTTP/1.1 with that header.
    for (case, name, value) in [
        ("connection", "connection", &b"keep-alive"[..]),
        ("transfer-encoding", "transfer-encoding", b"chunked"),
        ("te other than trailers", "te", b"gzip"),
        ("upgrade", "upgrade", b"h2c"),
        ("keep-alive", "keep-alive", b"timeout=5"),
        ("proxy-connection", "proxy-connection", b"keep-alive"),
    ] {
        let mut fields = h2_get(&authority, "/public/a");
        fields[0].1 = b"POST";
        fields.push((name, value));
        let body = format!("0\r\n\r\n{SMUGGLED}");
        let r = h2_request(h.addr, &fields, Some(body.as_bytes())).await;
        assert_eq!(r, H2::Reset(PROTOCOL_ERROR), "{case}");
    }
    settle().await;
    assert_upstream_untouched(&h, "h2 connection-specific headers");
    // `te: trailers` is the one allowed value.
    let mut fields = h2_get(&authority, "/public/te");
    fields.push(("te", b"trailers"));
    assert_eq!(h2_request(h.addr, &fields, None).await, H2::Status(200));
    let seen = last_forwarded(&h);
    assert_eq!(seen.version, "HTTP/1.1");
    assert!(values(&seen, "te").is_empty());
    h.shutdown().await;
}

#[tokio::test]
async fn http2_content_length_that_disagrees_with_the_data_resets_the_stream() {
    let h = Harness::start().await;
    let authority = h.addr.to_string();
    let mut fields = h2_get(&authority, "/public/cl");
    fields[0].1 = b"POST";
    fields.push(("content-length", b"5"));
    let r = h2_request(h.addr, &fields, Some(b"0123456789")).await;
    assert_eq!(r, H2::Reset(PROTOCOL_ERROR));
    settle().await;
    assert_upstream_untouched(&h, "h2 content-length");
    h.shutdown().await;
}

#[tokio::test]
async fn http2_requests_are_held_to_the_same_authority_and_method_rules_as_http1() {
    let h = Harness::start().await;
    let authority = h.addr.to_string();
    // :authority and a disagreeing Host: read two ways, refused.
    let mut fields = h2_get(&authority, "/public/a");
    fields.push(("host", b"other.example"));
    assert_eq!(h2_request(h.addr, &fields, None).await, H2::Status(400));
    let fields = h2_get("user@x", "/public/a");
    assert_eq!(h2_request(h.addr, &fields, None).await, H2::Status(400));
    let mut fields = h2_get(&authority, "*");
    fields[0].1 = b"OPTIONS";
    assert_eq!(h2_request(h.addr, &fields, None).await, H2::Status(400));
    let fields = vec![
        (":method", &b"CONNECT"[..]),
        (":authority", b"127.0.0.1:443"),
    ];
    assert_eq!(h2_request(h.addr, &fields, None).await, H2::Status(400));
    let mut fields = h2_get(&authority, "/public/a");
    fields[0].1 = b"TRACE";
    assert_eq!(h2_request(h.addr, &fields, None).await, H2::Status(405));
    // Identity and underscore headers are stripped on HTTP/2 as well.
    let mut fields = h2_get(&authority, "/public/ok");
    fields.push(("x-auth-subject", b"admin"));
    fields.push(("x_auth_subject", b"admin"));
    assert_eq!(h2_request(h.addr, &fields, None).await, H2::Status(200));
    let seen = last_forwarded(&h);
    assert!(values(&seen, "x-auth-subject").is_empty());
    assert!(values(&seen, "x_auth_subject").is_empty());
    assert_eq!(h.upstream.request_count(), 1);
    h.shutdown().await;
}
