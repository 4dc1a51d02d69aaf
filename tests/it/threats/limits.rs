//! Resource limits (HP-08, SM-13, peers.md 3e 15 and 28): every configured limit refuses with
//! its own status before anything reaches the upstream, slow or idle clients are disconnected,
//! connections beyond `max_connections` wait, and body limits hold for declared and streamed
//! bodies alike. Waits are liveness bounds, not timing assertions.
//!
//! Already covered elsewhere: a 4097-byte Bearer token (bearer.rs) and a 20 KiB DPoP proof
//! against the default `max_proof_bytes` (dpop.rs).

use super::*;
use crate::support::Options;
use serde_json::json;
use std::time::Instant;

/// A generous bound for "the gateway reacts": the configured timeouts are a few hundred ms.
const LIVENESS: Duration = Duration::from_secs(5);

async fn start(extra: &str, routes: Option<&str>) -> Harness {
    Harness::start_with(Options {
        extra: extra.into(),
        routes: routes.map(str::to_owned),
        ..Options::default()
    })
    .await
}

fn get_request(target: &str, extra: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nHost: x\r\n{extra}Connection: close\r\n\r\n").into_bytes()
}

#[tokio::test]
async fn target_longer_than_max_uri_bytes_is_414_and_reaches_nothing() {
    let h = start("limits:\n  max_uri_bytes: 1024\n", None).await;
    let exact = format!("/public/{}", "a".repeat(1024 - "/public/".len()));
    let over = format!("{exact}a");
    let over_by_query = format!("/public/q?{}", "q".repeat(1025 - "/public/q?".len()));
    assert_eq!(
        (exact.len(), over.len(), over_by_query.len()),
        (1024, 1025, 1025)
    );
    for target in [&over, &over_by_query] {
        let r = exchange(h.addr, &get_request(target, "")).await;
        assert_eq!(r.statuses(), [414], "{}", r.raw);
        assert!(
            r.only().body_text().contains("invalid_request"),
            "{}",
            r.raw
        );
    }
    // Beyond hyper's read buffer (max_header_bytes, 32 KiB by default) hyper answers 431.
    let huge = format!("/public/{}", "a".repeat(70_000));
    let r = exchange(h.addr, &get_request(&huge, "")).await;
    assert_eq!(r.statuses(), [431], "{}", r.raw);
    let r = h2_request(h.addr, &h2_get(&h.addr.to_string(), &over), None).await;
    assert_eq!(r, H2::Status(414));
    assert_upstream_untouched(&h, "long targets");
    let r = exchange(h.addr, &get_request(&exact, "")).await;
    assert_eq!(r.statuses(), [200], "{}", r.raw);
    assert_eq!(last_forwarded(&h).path, exact);
    h.shutdown().await;
}

#[tokio::test]
async fn header_section_over_max_header_bytes_is_431_from_hyper_and_reaches_nothing() {
    let h = start("limits:\n  max_header_bytes: 8192\n", None).await;
    let big = |n: usize| format!("X-Big: {}\r\n", "b".repeat(n));
    let r = exchange(h.addr, &get_request("/public/h", &big(9000))).await;
    assert_eq!(r.statuses(), [431], "{}", r.raw);
    assert!(r.closed);
    // hyper also caps the number of fields at 100.
    let many: String = (0..150).map(|i| format!("X-H{i}: v\r\n")).collect();
    let r = exchange(h.addr, &get_request("/public/h", &many)).await;
    assert_eq!(r.statuses(), [431], "{}", r.raw);
    // HTTP/2: h2 enforces the advertised header list size and answers 431 itself.
    let authority = h.addr.to_string();
    let mut fields = h2_get(&authority, "/public/h");
    let value = "b".repeat(9000);
    fields.push(("x-big", value.as_bytes()));
    assert_eq!(h2_request(h.addr, &fields, None).await, H2::Status(431));
    settle().await;
    assert_upstream_untouched(&h, "large header sections");
    let r = exchange(h.addr, &get_request("/public/h", &big(7000))).await;
    assert_eq!(r.statuses(), [200], "{}", r.raw);
    h.shutdown().await;
}

#[tokio::test]
async fn token_over_max_token_bytes_is_400_without_introspection_in_both_schemes() {
    let h = start("dpop:\n  enabled: true\n", None).await;
    let signer = es256();
    let long = "t".repeat(4097);
    let htu = format!("http://{}/orders/1", h.addr);
    let p = proof(&signer, "GET", &htu, &long);
    let r = exchange(
        h.addr,
        format!(
            "GET /orders/1 HTTP/1.1\r\nHost: {}\r\nAuthorization: DPoP {long}\r\nDPoP: {p}\r\n\
             Connection: close\r\n\r\n",
            h.addr
        )
        .as_bytes(),
    )
    .await;
    assert_eq!(r.statuses(), [400], "{}", r.raw);
    assert!(!r.raw.contains(&long));
    assert_eq!(h.introspections(), 0);
    h.shutdown().await;

    // A configured limit applies the same way, to both schemes.
    let h = start(
        "dpop:\n  enabled: true\nlimits:\n  max_token_bytes: 64\n",
        None,
    )
    .await;
    for scheme in ["Bearer", "DPoP"] {
        let auth = format!("Authorization: {scheme} {}\r\n", "t".repeat(65));
        let r = exchange(h.addr, &get_request("/orders/1", &auth)).await;
        assert_eq!(r.statuses(), [400], "{scheme}: {}", r.raw);
    }
    assert_eq!(h.introspections(), 0);
    let auth = format!("Authorization: Bearer {}\r\n", "t".repeat(64));
    let r = exchange(h.addr, &get_request("/orders/1", &auth)).await;
    assert_eq!(r.statuses(), [401], "{}", r.raw);
    assert_eq!(h.introspections(), 1);
    assert_upstream_untouched(&h, "long tokens");
    h.shutdown().await;
}

#[tokio::test]
async fn slow_or_stalled_request_heads_are_disconnected_after_header_read_timeout() {
    let h = start("limits:\n  header_read_timeout_ms: 300\n", None).await;
    // Half a head, then nothing (slowloris).
    let r = exchange_within(
        h.addr,
        b"GET /public/slow HTTP/1.1\r\nHost: x\r\n",
        LIVENESS,
    )
    .await;
    assert!(
        r.closed,
        "a stalled head kept its connection for {LIVENESS:?}"
    );
    assert!(r.responses.is_empty(), "{}", r.raw);
    // A byte every 50 ms: the timeout covers the whole head, it is not renewed per byte.
    let head = b"GET /public/drip HTTP/1.1\r\nHost: x\r\nX-Padding: 0123456789012345678901234567890123456789\r\n\r\n";
    let mut stream = TcpStream::connect(h.addr).await.expect("connect");
    let started = Instant::now();
    let mut sent = 0;
    let mut buf = [0u8; 1024];
    let closed = loop {
        if sent == head.len() || started.elapsed() > LIVENESS {
            break false;
        }
        if stream.write_all(&head[sent..=sent]).await.is_err() {
            break true;
        }
        sent += 1;
        match tokio::time::timeout(Duration::from_millis(50), stream.read(&mut buf)).await {
            Err(_) => {}
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(n)) => panic!("answered: {:?}", String::from_utf8_lossy(&buf[..n])),
        }
    };
    assert!(
        closed,
        "the dripped head was not cut off ({sent} bytes sent)"
    );
    assert!(sent < head.len(), "the whole head got through");
    assert_upstream_untouched(&h, "slow heads");
    h.shutdown().await;
}

#[tokio::test]
async fn idle_keep_alive_connection_is_closed_after_header_read_timeout() {
    let h = start("limits:\n  header_read_timeout_ms: 300\n", None).await;
    // A complete request without `Connection: close`, then silence.
    let r = exchange_within(
        h.addr,
        b"GET /public/idle HTTP/1.1\r\nHost: x\r\n\r\n",
        LIVENESS,
    )
    .await;
    assert_eq!(r.statuses(), [200], "{}", r.raw);
    assert!(
        r.closed,
        "an idle keep-alive connection stayed open for {LIVENESS:?}"
    );
    assert_eq!(h.upstream.request_count(), 1);
    h.shutdown().await;
}

/// Reads one complete response (with a Content-Length body) from a keep-alive connection.
async fn read_one(stream: &mut TcpStream, wait: Duration) -> Option<Response> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut received = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        if let Some(r) = parse_responses(&received).into_iter().next() {
            let declared = r
                .header("content-length")
                .first()
                .and_then(|v| v.parse().ok());
            if declared == Some(r.body.len()) {
                return Some(r);
            }
        }
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => received.extend_from_slice(&buf[..n]),
            _ => return None,
        }
    }
}

#[tokio::test]
async fn connections_beyond_max_connections_wait_until_one_closes() {
    let h = start("limits:\n  max_connections: 2\n", None).await;
    let request = b"GET /public/conn HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut first = TcpStream::connect(h.addr).await.expect("connect");
    first.write_all(request).await.expect("write");
    assert_eq!(
        read_one(&mut first, LIVENESS).await.map(|r| r.status),
        Some(200)
    );
    let mut second = TcpStream::connect(h.addr).await.expect("connect");
    second.write_all(request).await.expect("write");
    assert_eq!(
        read_one(&mut second, LIVENESS).await.map(|r| r.status),
        Some(200)
    );
    // The third connection sits in the listen backlog: its request is not read.
    let mut third = TcpStream::connect(h.addr).await.expect("connect");
    third.write_all(request).await.expect("write");
    assert!(
        read_one(&mut third, Duration::from_millis(500))
            .await
            .is_none(),
        "a third connection was served while two were open"
    );
    assert_eq!(h.upstream.request_count(), 2);
    // Closing one frees a slot, and the waiting request is served.
    drop(first);
    assert_eq!(
        read_one(&mut third, LIVENESS).await.map(|r| r.status),
        Some(200)
    );
    assert_eq!(h.upstream.request_count(), 3);
    drop(second);
    h.shutdown().await;
}

const BODY_ROUTES: &str = r#"
  - name: public
    path: /public/**
    auth: none
    upstream: app
  - name: small
    path: /small/**
    auth: none
    upstream: app
    max_body_bytes: 1024
"#;

fn post(target: &str, framing: &str, body: &str) -> Vec<u8> {
    format!("POST {target} HTTP/1.1\r\nHost: x\r\n{framing}Connection: close\r\n\r\n{body}")
        .into_bytes()
}

fn chunked(chunk: usize, count: usize) -> String {
    let one = format!("{chunk:x}\r\n{}\r\n", "x".repeat(chunk));
    format!("{}0\r\n\r\n", one.repeat(count))
}

#[tokio::test]
async fn body_over_the_limit_is_413_whether_declared_or_streamed_and_never_arrives_whole() {
    let h = start("limits:\n  max_body_bytes: 4096\n", Some(BODY_ROUTES)).await;
    let te = "Transfer-Encoding: chunked\r\n";
    let cl = |n: usize| format!("Content-Length: {n}\r\n");
    let over: Vec<(&str, Vec<u8>)> = vec![
        (
            "declared, route limit",
            post("/small/a", &cl(1025), &"x".repeat(1025)),
        ),
        (
            "declared, global limit",
            post("/public/a", &cl(4097), &"x".repeat(4097)),
        ),
        (
            "chunked, one 2 KiB chunk",
            post("/small/b", te, &chunked(2048, 1)),
        ),
        (
            "chunked, 16 chunks of 128",
            post("/small/c", te, &chunked(128, 16)),
        ),
        (
            "chunked, global limit",
            post("/public/d", te, &chunked(512, 9)),
        ),
    ];
    for (case, request) in &over {
        let r = exchange(h.addr, request).await;
        assert_eq!(r.statuses(), [413], "{case}: {}", r.raw);
        assert!(r.closed, "{case}");
    }
    // HTTP/2: declared, and streamed without content-length.
    let authority = h.addr.to_string();
    let mut fields = h2_get(&authority, "/small/e");
    fields[0].1 = b"POST";
    let body = vec![b'x'; 2048];
    assert_eq!(
        h2_request(h.addr, &fields, Some(&body)).await,
        H2::Status(413)
    );
    fields.push(("content-length", b"2048"));
    assert_eq!(
        h2_request(h.addr, &fields, Some(&body)).await,
        H2::Status(413)
    );
    settle().await;
    // A streamed body is cut at the limit: the upstream may have seen its head and part of its
    // body (then an aborted stream), never more than the limit and never the whole body.
    for seen in h.upstream.requests() {
        let limit = if seen.path.starts_with("/small/") {
            1024
        } else {
            4096
        };
        assert!(
            seen.body_len <= limit,
            "{} got {} bytes",
            seen.path,
            seen.body_len
        );
        assert!(
            ["/small/c", "/public/d"].contains(&seen.path.as_str()),
            "{} reached the upstream",
            seen.path
        );
    }
    // In-limit bodies pass whole.
    let within: Vec<(&str, Vec<u8>, u64)> = vec![
        (
            "declared 1024",
            post("/small/ok1", &cl(1024), &"x".repeat(1024)),
            1024,
        ),
        (
            "chunked 1024",
            post("/small/ok2", te, &chunked(128, 8)),
            1024,
        ),
        (
            "global 4096",
            post("/public/ok3", &cl(4096), &"x".repeat(4096)),
            4096,
        ),
    ];
    for (case, request, len) in &within {
        let r = exchange(h.addr, request).await;
        assert_eq!(r.statuses(), [200], "{case}: {}", r.raw);
        assert_eq!(last_forwarded(&h).body_len, *len, "{case}");
    }
    h.shutdown().await;
}

/// Sends `GET /orders/1` with `Authorization: DPoP <token>` and `proof`.
async fn dpop_get(h: &Harness, token: &str, proof: &str) -> Wire {
    exchange(
        h.addr,
        format!(
            "GET /orders/1 HTTP/1.1\r\nHost: {}\r\nAuthorization: DPoP {token}\r\nDPoP: {proof}\r\n\
             Connection: close\r\n\r\n",
            h.addr
        )
        .as_bytes(),
    )
    .await
}

fn assert_invalid_proof(r: &Wire, case: &str) {
    assert_eq!(r.statuses(), [401], "{case}: {}", r.raw);
    let challenge = r.only().header("www-authenticate").join(", ");
    assert!(
        challenge.starts_with("DPoP ") && challenge.contains(r#"error="invalid_dpop_proof""#),
        "{case}: {challenge}"
    );
}

#[tokio::test]
async fn dpop_proof_over_max_proof_bytes_or_jti_over_256_bytes_is_invalid_dpop_proof() {
    let h = start("dpop:\n  enabled: true\n  max_proof_bytes: 2048\n", None).await;
    let signer = es256();
    let token = bound_token(&h, &signer, &["orders.read"]);
    let htu = format!("http://{}/orders/1", h.addr);
    let claims = || ProofClaims::new("GET", &htu, Some(&token), unix_now());
    // Pad an unknown header parameter until the proof crosses the configured size.
    let padded = |n: usize| {
        let header =
            json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": signer.jwk(), "pad": "p".repeat(n)});
        signer.sign_with_header(&header, &claims())
    };
    let mut pad = 0;
    while padded(pad + 1).len() <= 2048 {
        pad += 1;
    }
    let largest = padded(pad);
    let too_large = padded(pad + 1);
    assert!(largest.len() <= 2048 && too_large.len() > 2048);
    assert_invalid_proof(
        &dpop_get(&h, &token, &too_large).await,
        "proof over the limit",
    );
    let jti = |n: usize| {
        signer.sign(&ProofClaims {
            jti: Some("j".repeat(n)),
            ..claims()
        })
    };
    assert_invalid_proof(&dpop_get(&h, &token, &jti(257)).await, "257-byte jti");
    assert_eq!(h.introspections(), 0);
    assert_upstream_untouched(&h, "oversized proofs");
    // Exactly at the limits: accepted.
    let r = dpop_get(&h, &token, &largest).await;
    assert_eq!(r.statuses(), [200], "{}", r.raw);
    let r = dpop_get(&h, &token, &jti(256)).await;
    assert_eq!(r.statuses(), [200], "{}", r.raw);
    assert_eq!(h.upstream.request_count(), 2);
    h.shutdown().await;
}
