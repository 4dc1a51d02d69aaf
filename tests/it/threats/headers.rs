//! Header trust (HP-*, FW-*, peers.md 3b and 3e 7-9): identity and forwarding headers are the
//! gateway's alone, hop-by-hop fields and ambiguous names never cross it, the authority is read
//! one way, and credentials never travel where the gateway does not look for them.
//!
//! Already covered elsewhere and not repeated: identity headers on a public route and on a
//! protected one, the common hop-by-hop fields, `Connection` naming identity headers, and the
//! basic X-Forwarded-* replacement (forwarding.rs).

use super::*;
use crate::support::Options;

/// Forged identity headers, as raw lines.
const FORGED_IDENTITY: &str =
    "X-Auth-Subject: admin\r\nx-auth-client-id: forged\r\nX-AUTH-SCOPES: orders.write admin\r\n";
const IDENTITY: [&str; 3] = ["x-auth-subject", "x-auth-client-id", "x-auth-scopes"];

fn assert_no_identity(seen: &RecordedRequest, case: &str) {
    for name in IDENTITY {
        assert!(
            values(seen, name).is_empty(),
            "{case}: {name} reached the upstream: {:?}",
            values(seen, name)
        );
    }
}

/// `GET <target>` with `Host: x`, extra raw header lines, and `Connection: close`.
async fn get(h: &Harness, target: &str, extra: &str) -> Wire {
    let request = format!("GET {target} HTTP/1.1\r\nHost: x\r\n{extra}Connection: close\r\n\r\n");
    exchange(h.addr, request.as_bytes()).await
}

#[tokio::test]
async fn identity_headers_sent_with_a_refused_request_reach_nothing() {
    let h = Harness::start_with(Options {
        extra: "limits:\n  max_uri_bytes: 256\n  max_body_bytes: 16\n".into(),
        ..Options::default()
    })
    .await;
    let valid = h.token("alice", &["profile"]);
    let bearer = |t: &str| format!("Authorization: Bearer {t}\r\n");
    let long = format!("/public/{}", "a".repeat(300));
    let cases: Vec<(&str, String, String, u16)> = vec![
        ("no route", "/nowhere".into(), String::new(), 404),
        ("no token", "/orders/1".into(), String::new(), 401),
        (
            "unknown token",
            "/orders/1".into(),
            bearer("unknown-token-123"),
            401,
        ),
        ("missing scope", "/orders/1".into(), bearer(&valid), 403),
        (
            "bad path",
            "/public/%2e%2e%2forders".into(),
            String::new(),
            400,
        ),
        (
            "query token",
            "/public/x?access_token=a".into(),
            String::new(),
            400,
        ),
        ("target too long", long, String::new(), 414),
    ];
    for (case, target, auth, status) in &cases {
        let r = get(&h, target, &format!("{FORGED_IDENTITY}{auth}")).await;
        assert_eq!(r.statuses(), [*status], "{case}: {}", r.raw);
    }
    let r = exchange(
        h.addr,
        format!(
            "TRACE /public/x HTTP/1.1\r\nHost: x\r\n{FORGED_IDENTITY}Connection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .await;
    assert_eq!(r.statuses(), [405], "{}", r.raw);
    let r = exchange(
        h.addr,
        format!(
            "POST /public/x HTTP/1.1\r\nHost: x\r\n{FORGED_IDENTITY}Content-Length: 17\r\n\
             Connection: close\r\n\r\n{}",
            "b".repeat(17)
        )
        .as_bytes(),
    )
    .await;
    assert_eq!(r.statuses(), [413], "{}", r.raw);
    assert_upstream_untouched(&h, "refused requests");
    h.shutdown().await;
}

#[tokio::test]
async fn identity_headers_are_stripped_on_the_preflight_and_upgrade_paths_too() {
    let h = Harness::start().await;
    // A CORS preflight skips the token check (DESIGN.md 3.3) but not the header hygiene.
    let r = exchange(
        h.addr,
        format!(
            "OPTIONS /orders/1 HTTP/1.1\r\nHost: x\r\nOrigin: https://app.example\r\n\
             Access-Control-Request-Method: GET\r\n{FORGED_IDENTITY}Connection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .await;
    assert_eq!(r.statuses(), [200], "{}", r.raw);
    let seen = last_forwarded(&h);
    assert_eq!(seen.method, "OPTIONS");
    assert_no_identity(&seen, "preflight");
    // A WebSocket handshake keeps Upgrade/Connection for the upstream, and nothing else extra.
    let r = exchange(
        h.addr,
        format!(
            "GET /echo-headers-back HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, X-Auth-Subject, close\r\n\
             Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{FORGED_IDENTITY}\r\n"
        )
        .as_bytes(),
    )
    .await;
    // The echo upstream does not speak WebSocket: it answers 200 and the gateway passes it on.
    assert_eq!(r.statuses(), [200], "{}", r.raw);
    let seen = last_forwarded(&h);
    assert_eq!(values(&seen, "upgrade"), ["websocket"]);
    assert_no_identity(&seen, "upgrade");
    for name in IDENTITY {
        assert!(
            r.only().header(&format!("x-echo-{name}")).is_empty(),
            "{}",
            r.raw
        );
    }
    assert_eq!(h.upstream.request_count(), 2);
    h.shutdown().await;
}

#[tokio::test]
async fn underscore_spellings_and_the_proxy_header_never_reach_the_upstream() {
    let h = Harness::start().await;
    let token = h.token("alice", &["orders.read"]);
    // HP-10: CGI-style upstreams map `X_Auth_Subject` and `X-Auth-Subject` to one variable, and
    // `Proxy` to HTTP_PROXY (httpoxy).
    let forged = "X_Auth_Subject: admin\r\nx_auth_client_id: forged\r\nX_Auth_Scopes: admin\r\n\
                  Transfer_Encoding: chunked\r\nContent_Length: 5\r\nX_Forwarded_For: 10.0.0.1\r\n\
                  X-Forwarded_For: 10.0.0.1\r\nX_Real_IP: 10.0.0.1\r\nProxy: http://attacker:8080\r\n";
    let r = get(&h, "/public/u", forged).await;
    assert_eq!(r.statuses(), [200], "{}", r.raw);
    let seen = last_forwarded(&h);
    for (name, _) in &seen.headers {
        assert!(!name.contains('_'), "{name} reached the upstream");
        assert_ne!(name, "proxy", "Proxy reached the upstream");
    }
    assert_no_identity(&seen, "public");
    assert_eq!(values(&seen, "x-forwarded-for"), ["127.0.0.1"]);
    assert!(values(&seen, "transfer-encoding").is_empty());
    // On a protected route the upstream sees only the gateway's identity values.
    let r = get(
        &h,
        "/orders/1",
        &format!("{forged}Authorization: Bearer {token}\r\n"),
    )
    .await;
    assert_eq!(r.statuses(), [200], "{}", r.raw);
    let seen = last_forwarded(&h);
    assert_eq!(values(&seen, "x-auth-subject"), ["alice"]);
    assert_eq!(values(&seen, "x-auth-scopes"), ["orders.read"]);
    assert!(seen.headers.iter().all(|(n, _)| !n.contains('_')));
    assert_eq!(h.upstream.request_count(), 2);
    h.shutdown().await;
}

#[tokio::test]
async fn connection_cannot_remove_host_content_length_authorization_or_gateway_headers() {
    let h = Harness::start().await;
    let token = h.token("alice", &["orders.read"]);
    // HP-04 / CVE-2024-45410: hop-by-hop names must not strip what the request depends on, nor
    // the headers the gateway adds afterwards.
    let listed = "Host, Content-Length, Authorization, DPoP, X-Forwarded-For, X-Forwarded-Proto, \
                  X-Forwarded-Host, X-Auth-Subject, X-Auth-Scopes, close";
    let r = exchange(
        h.addr,
        format!(
            "POST /fwd/c HTTP/1.1\r\nHost: api.test\r\nAuthorization: Bearer {token}\r\n\
             Content-Length: 5\r\nConnection: {listed}\r\n\r\nhello"
        )
        .as_bytes(),
    )
    .await;
    assert_eq!(r.statuses(), [200], "{}", r.raw);
    let seen = last_forwarded(&h);
    assert_eq!(values(&seen, "host"), ["api.test"]);
    assert_eq!(values(&seen, "content-length"), ["5"]);
    assert_eq!(seen.body_len, 5);
    assert_eq!(values(&seen, "authorization"), [format!("Bearer {token}")]);
    assert_eq!(values(&seen, "x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(values(&seen, "x-forwarded-proto"), ["http"]);
    assert_eq!(values(&seen, "x-forwarded-host"), ["api.test"]);
    assert_eq!(values(&seen, "x-auth-subject"), ["alice"]);
    assert!(values(&seen, "connection").is_empty());
    // Listing Authorization does not hide the credential from the gateway either.
    let r = get(
        &h,
        "/orders/1",
        &format!("Authorization: Bearer {token}\r\nConnection: Authorization\r\n"),
    )
    .await;
    assert_eq!(r.statuses(), [200], "{}", r.raw);
    // A chunked body whose Transfer-Encoding is also "listed" is still read as chunked.
    let r = exchange(
        h.addr,
        b"POST /public/te HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\
          Connection: Transfer-Encoding, close\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    )
    .await;
    assert_eq!(r.statuses(), [200], "{}", r.raw);
    assert_eq!(last_forwarded(&h).body_len, 5);
    assert_eq!(h.upstream.request_count(), 3);
    h.shutdown().await;
}

#[tokio::test]
async fn forwarding_headers_from_a_peer_outside_trusted_proxies_are_all_replaced() {
    // A trusted list exists, but the test client (127.0.0.1) is not in it.
    let h = Harness::start_with(Options {
        extra: "trusted_proxies: [\"10.0.0.0/8\"]\n".into(),
        ..Options::default()
    })
    .await;
    let forged = "X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-For: 198.51.100.1\r\n\
                  X-Forwarded-Proto: https\r\nX-Forwarded-Host: evil.example\r\n\
                  X-Forwarded-Port: 443\r\nX-Forwarded-Prefix: /admin\r\nX-Real-IP: 203.0.113.7\r\n\
                  True-Client-IP: 203.0.113.7\r\nCF-Connecting-IP: 203.0.113.7\r\n\
                  Forwarded: for=203.0.113.7;proto=https;host=evil.example, for=10.0.0.1\r\n";
    let r = get(&h, "/public/fw", forged).await;
    assert_eq!(r.statuses(), [200], "{}", r.raw);
    let seen = last_forwarded(&h);
    assert_eq!(values(&seen, "x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(values(&seen, "x-forwarded-proto"), ["http"]);
    assert_eq!(values(&seen, "x-forwarded-host"), ["x"]);
    for name in [
        "x-forwarded-port",
        "x-forwarded-prefix",
        "x-real-ip",
        "true-client-ip",
        "cf-connecting-ip",
        "forwarded",
    ] {
        assert!(values(&seen, name).is_empty(), "{name}: {:?}", seen.headers);
    }
    assert!(
        !seen.headers.iter().any(|(_, v)| v.contains("203.0.113.7")),
        "{:?}",
        seen.headers
    );
    assert_eq!(h.upstream.request_count(), 1);
    h.shutdown().await;
}

#[tokio::test]
async fn path_override_headers_never_reach_the_upstream() {
    let h = Harness::start().await;
    // peers.md 3e 8, CVE-2023-27487 (x-envoy-original-path), CVE-2026-40575 (X-Forwarded-Uri):
    // the path the gateway authorized must be the only path the upstream can see.
    let names = [
        "x-original-url",
        "x-rewrite-url",
        "x-original-uri",
        "x-forwarded-uri",
        "x-forwarded-path",
        "x-envoy-original-path",
    ];
    let lines: String = names.iter().map(|n| format!("{n}: /admin\r\n")).collect();
    let r = get(&h, "/public/override", &lines).await;
    assert_eq!(r.statuses(), [200], "{}", r.raw);
    let seen = last_forwarded(&h);
    for name in names {
        assert!(
            values(&seen, name).is_empty(),
            "{name} reached the upstream"
        );
    }
    h.shutdown().await;
}

#[tokio::test]
async fn method_override_headers_never_reach_the_upstream() {
    let h = Harness::start().await;
    let reader = h.token("alice", &["orders.read"]);
    let names = [
        "x-http-method-override",
        "x-http-method",
        "x-method-override",
    ];
    let lines: String = names.iter().map(|n| format!("{n}: DELETE\r\n")).collect();
    let r = get(
        &h,
        "/orders/1",
        &format!("{lines}Authorization: Bearer {reader}\r\n"),
    )
    .await;
    // Either refused, or forwarded as exactly the GET that was authorized.
    if r.statuses() == [200] {
        let seen = last_forwarded(&h);
        for name in names {
            assert!(
                values(&seen, name).is_empty(),
                "{name} reached the upstream"
            );
        }
    } else {
        assert_eq!(r.statuses(), [400], "{}", r.raw);
        assert_upstream_untouched(&h, "method override");
    }
    h.shutdown().await;
}

#[tokio::test]
async fn other_client_address_and_scheme_headers_from_untrusted_peers_are_dropped() {
    let h = Harness::start().await;
    let names = [
        "x-client-ip",
        "x-cluster-client-ip",
        "x-forwarded-server",
        "x-forwarded-scheme",
        "x-forwarded-ssl",
        "x-url-scheme",
        "front-end-https",
    ];
    let lines: String = names.iter().map(|n| format!("{n}: on\r\n")).collect();
    let r = get(&h, "/public/schemes", &lines).await;
    assert_eq!(r.statuses(), [200], "{}", r.raw);
    let seen = last_forwarded(&h);
    for name in names {
        assert!(
            values(&seen, name).is_empty(),
            "{name} reached the upstream"
        );
    }
    h.shutdown().await;
}

/// What the scripted upstream answers to everything: forwarding headers that would reveal
/// internal addresses (RFC 7239 8.2), and hop-by-hop fields of its own connection.
fn leaky_response(_head: &str) -> String {
    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Forwarded-For: 10.9.8.7\r\n\
     Forwarded: for=10.9.8.7;host=internal.example\r\nX-Real-IP: 10.9.8.7\r\n\
     X-Forwarded-Host: internal.example\r\nX-Forwarded-Proto: https\r\n\
     True-Client-IP: 10.9.8.7\r\nConnection: X-Internal-Secret\r\nX-Internal-Secret: s3cret\r\n\
     Keep-Alive: timeout=5\r\nProxy-Authenticate: Basic realm=\"internal\"\r\n\
     Proxy-Connection: keep-alive\r\nX-Ordinary: kept\r\n\r\nok"
        .to_owned()
}

#[tokio::test]
async fn forwarding_and_hop_by_hop_headers_from_the_upstream_never_reach_the_client() {
    // The echo upstream can only reflect request headers as `x-echo-*`, so it cannot send an
    // `X-Forwarded-For` response header; a scripted upstream does.
    let upstream = ScriptedUpstream::default();
    let addr = upstream.spawn(leaky_response).await;
    let h = Harness::start_with(Options {
        upstream_url: Some(format!("http://{addr}")),
        ..Options::default()
    })
    .await;
    let r = get(&h, "/public/leak", "").await;
    assert_eq!(r.statuses(), [200], "{}", r.raw);
    let response = r.only();
    for name in [
        "x-forwarded-for",
        "forwarded",
        "x-real-ip",
        "x-forwarded-host",
        "x-forwarded-proto",
        "true-client-ip",
        "x-internal-secret",
        "keep-alive",
        "proxy-authenticate",
        "proxy-connection",
    ] {
        assert!(response.header(name).is_empty(), "{name}: {}", r.raw);
    }
    assert!(
        !r.raw.contains("10.9.8.7") && !r.raw.contains("s3cret"),
        "{}",
        r.raw
    );
    assert_eq!(response.header("x-ordinary"), ["kept"]);
    assert_eq!(response.body_text(), "ok");
    assert_eq!(upstream.heads().len(), 1);
    h.shutdown().await;
}

#[tokio::test]
async fn duplicate_or_malformed_host_is_400_and_reaches_nothing() {
    let h = Harness::start().await;
    for hosts in [
        "Host: x\r\nHost: x\r\n",
        "Host: api.example.com\r\nHost: other.example\r\n",
        "Host: api.example.com, other.example\r\n",
        "Host: \r\n",
        "Host: user@api.example.com\r\n",
        "Host: api.example.com/admin\r\n",
        "Host: api.example.com other\r\n",
    ] {
        let request = format!("GET /public/h HTTP/1.1\r\n{hosts}Connection: close\r\n\r\n");
        let r = exchange(h.addr, request.as_bytes()).await;
        assert_eq!(r.statuses(), [400], "{hosts:?}: {}", r.raw);
        assert!(
            r.only()
                .body_text()
                .contains(r#""error":"invalid_request""#),
            "{}",
            r.raw
        );
    }
    assert_upstream_untouched(&h, "bad Host");
    h.shutdown().await;
}

#[tokio::test]
async fn absolute_form_authority_is_the_only_authority_and_a_conflicting_host_is_400() {
    let h = Harness::start().await;
    let send =
        |line: &str, host: &str| format!("GET {line} HTTP/1.1\r\n{host}Connection: close\r\n\r\n");
    // SM-11: a Host that disagrees with the target is a request crafted to be read two ways.
    for (target, host) in [
        ("http://api.example.com/hosted/x", "Host: other.example\r\n"),
        ("http://other.example/hosted/x", "Host: api.example.com\r\n"),
        // Even a default port spelled differently is refused rather than guessed at.
        (
            "http://api.example.com:80/hosted/x",
            "Host: api.example.com\r\n",
        ),
    ] {
        let r = exchange(h.addr, send(target, host).as_bytes()).await;
        assert_eq!(r.statuses(), [400], "{target} / {host:?}: {}", r.raw);
    }
    // Agreeing (case-insensitively) or absent: routed on the target's authority.
    for host in ["Host: API.Example.com\r\n", ""] {
        let r = exchange(
            h.addr,
            send("http://api.example.com/hosted/x", host).as_bytes(),
        )
        .await;
        assert_eq!(r.statuses(), [401], "{host:?}: {}", r.raw);
    }
    let r = exchange(h.addr, send("http://other.example/hosted/x", "").as_bytes()).await;
    assert_eq!(r.statuses(), [404], "{}", r.raw);
    assert_upstream_untouched(&h, "absolute form");
    assert_eq!(h.introspections(), 0);
    h.shutdown().await;
}

#[tokio::test]
async fn userinfo_in_an_absolute_form_target_is_400() {
    let h = Harness::start().await;
    for request in [
        "GET http://user@api.example.com/ HTTP/1.1\r\nHost: api.example.com\r\n",
        "GET http://user@api.example.com/ HTTP/1.1\r\n",
        "GET http://user:password@x/public/a HTTP/1.1\r\nHost: x\r\n",
        "GET http://api.example.com@x/public/a HTTP/1.1\r\n",
    ] {
        let r = exchange(
            h.addr,
            format!("{request}Connection: close\r\n\r\n").as_bytes(),
        )
        .await;
        assert_eq!(r.statuses(), [400], "{request:?}: {}", r.raw);
    }
    assert_upstream_untouched(&h, "userinfo");
    h.shutdown().await;
}

#[tokio::test]
async fn trace_is_405_on_every_path_and_reflects_nothing() {
    let h = Harness::start().await;
    let token = h.token("alice", &["orders.read"]);
    for target in ["/public/t", "/orders/1", "/nowhere", "*"] {
        let request = format!(
            "TRACE {target} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
             {FORGED_IDENTITY}Max-Forwards: 0\r\nConnection: close\r\n\r\n"
        );
        let r = exchange(h.addr, request.as_bytes()).await;
        assert_eq!(r.statuses(), [405], "{target}: {}", r.raw);
        assert!(
            !r.raw.contains(&token) && !r.raw.contains("forged"),
            "{}",
            r.raw
        );
    }
    assert_upstream_untouched(&h, "TRACE");
    assert_eq!(h.introspections(), 0);
    h.shutdown().await;
}

#[tokio::test]
async fn access_token_in_the_query_is_400_on_a_public_route_and_forwards_nothing() {
    let h = Harness::start().await;
    for query in [
        "access_token=abcdefgh",
        "ACCESS_TOKEN=abcdefgh",
        "Access_Token=abcdefgh",
        "access%5Ftoken=abcdefgh",
        "access%5ftoken=abcdefgh",
        "%61ccess_token=abcdefgh",
        "a=1&access_token=abcdefgh",
        "access_token=",
        "access_token",
    ] {
        let r = get(&h, &format!("/public/q?{query}"), "").await;
        assert_eq!(r.statuses(), [400], "{query}: {}", r.raw);
        assert!(!r.raw.contains("abcdefgh"), "{}", r.raw);
    }
    assert_upstream_untouched(&h, "access_token");
    // Names that only contain the word are ordinary parameters.
    let r = get(&h, "/public/q?access_tokens=1&my_access_token=2", "").await;
    assert_eq!(r.statuses(), [200], "{}", r.raw);
    assert_eq!(
        last_forwarded(&h).query.as_deref(),
        Some("access_tokens=1&my_access_token=2")
    );
    h.shutdown().await;
}

#[tokio::test]
async fn proxy_authorization_is_not_a_credential_and_is_never_forwarded() {
    let h = Harness::start().await;
    let token = h.token("alice", &["orders.read"]);
    let r = get(
        &h,
        "/orders/1",
        &format!("Proxy-Authorization: Bearer {token}\r\n"),
    )
    .await;
    assert_eq!(r.statuses(), [401], "{}", r.raw);
    assert_eq!(
        r.only().header("www-authenticate"),
        [r#"Bearer realm="tokengate""#]
    );
    assert_upstream_untouched(&h, "Proxy-Authorization alone");
    assert_eq!(h.introspections(), 0);
    // With a real credential, on a route that forwards it: Authorization goes, the proxy one not.
    let r = get(
        &h,
        "/fwd/p",
        &format!("Authorization: Bearer {token}\r\nProxy-Authorization: Bearer other-secret\r\n"),
    )
    .await;
    assert_eq!(r.statuses(), [200], "{}", r.raw);
    let seen = last_forwarded(&h);
    assert!(values(&seen, "proxy-authorization").is_empty());
    assert!(!seen.headers.iter().any(|(_, v)| v.contains("other-secret")));
    h.shutdown().await;
}

#[tokio::test]
async fn request_without_any_authority_is_400() {
    let h = Harness::start().await;
    let r = exchange(
        h.addr,
        b"GET /public/nohost HTTP/1.1\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(r.statuses(), [400], "{}", r.raw);
    let fields: Vec<(&str, &[u8])> = vec![
        (":method", b"GET"),
        (":scheme", b"http"),
        (":path", b"/public/nohost"),
    ];
    let r = h2_request(h.addr, &fields, None).await;
    assert!(
        matches!(r, H2::Status(400) | H2::Reset(PROTOCOL_ERROR)),
        "{r:?}"
    );
    settle().await;
    assert_upstream_untouched(&h, "no authority");
    h.shutdown().await;
}
