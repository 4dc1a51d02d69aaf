//! Path interpretation (PN-01 … PN-15, peers.md 3a and 3e 1-6): for every hostile target, the
//! route that matched, the authorization that applied, the path the DPoP `htu` was compared
//! with and the path the upstream received are one and the same normalized string, or the
//! request is refused with 400 before any credential is looked at.
//!
//! The route table makes each of those observable: a public route, an `admin` route and a
//! catch-all `rest` route with distinct scopes. A token without scopes gets a 403 naming the
//! matched route's scope; a DPoP-bound token holding every scope gets a 200 only if its proof
//! was made for the normalized path; the echo upstream records the forwarded path.

use super::*;
use crate::support::Options;

const ROUTES: &str = r#"
  - name: public
    path: /public/**
    auth: none
    upstream: app
  - name: admin
    path: /admin/**
    upstream: app
    scopes: [admin]
  - name: rest
    path: /**
    upstream: app
    scopes: [rest]
"#;

async fn start() -> Harness {
    Harness::start_with(Options {
        extra: "dpop:\n  enabled: true\n".into(),
        routes: Some(ROUTES.into()),
        ..Options::default()
    })
    .await
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Public,
    Admin,
    Rest,
}

/// Sends `GET <target>` raw with `Host: <gateway address>` and optional extra header lines.
async fn get(h: &Harness, target: &[u8], extra: &str) -> Wire {
    let mut request = b"GET ".to_vec();
    request.extend_from_slice(target);
    request.extend_from_slice(
        format!(
            " HTTP/1.1\r\nHost: {}\r\n{extra}Connection: close\r\n\r\n",
            h.addr
        )
        .as_bytes(),
    );
    exchange(h.addr, &request).await
}

/// The three presentations that together show route, authorization, `htu` and forwarding.
struct Credentials {
    /// A valid Bearer token with no useful scope: its 403 names the matched route's scope.
    scopeless: String,
    signer: ProofSigner,
    /// DPoP-bound to `signer`, holding `admin` and `rest`.
    bound: String,
}

impl Credentials {
    fn new(h: &Harness) -> Self {
        let signer = es256();
        let bound = bound_token(h, &signer, &["admin", "rest"]);
        Self {
            scopeless: h.token("bob", &["profile"]),
            signer,
            bound,
        }
    }
}

/// Asserts the single interpretation of `target`: it is `canonical` (with `query`) for every
/// stage, and exactly one request reaches the upstream.
async fn assert_one_interpretation(
    h: &Harness,
    creds: &Credentials,
    target: &str,
    canonical: &str,
    query: Option<&str>,
    route: Route,
) {
    let before = h.upstream.request_count();
    let case = format!("{target} (expected {canonical} on {route:?})");
    if route == Route::Public {
        let r = get(h, target.as_bytes(), "").await;
        assert_eq!(r.statuses(), [200], "{case}: {}", r.raw);
    } else {
        // No credentials: the matched route is protected.
        let r = get(h, target.as_bytes(), "").await;
        assert_eq!(r.statuses(), [401], "{case}: {}", r.raw);
        // A valid token without the scope: the challenge names the matched route's scope.
        let auth = format!("Authorization: Bearer {}\r\n", creds.scopeless);
        let r = get(h, target.as_bytes(), &auth).await;
        assert_eq!(r.statuses(), [403], "{case}: {}", r.raw);
        let scope = if route == Route::Admin {
            r#"scope="admin""#
        } else {
            r#"scope="rest""#
        };
        let challenge = r.only().header("www-authenticate").join(", ");
        assert!(challenge.contains(scope), "{case}: {challenge}");
        // A proof made for the normalized URL is accepted: htu was compared with it.
        let htu = format!("http://{}{canonical}", h.addr);
        let p = proof(&creds.signer, "GET", &htu, &creds.bound);
        let auth = format!("Authorization: DPoP {}\r\nDPoP: {p}\r\n", creds.bound);
        let r = get(h, target.as_bytes(), &auth).await;
        assert_eq!(r.statuses(), [200], "{case}: {}", r.raw);
    }
    assert_eq!(
        h.upstream.request_count(),
        before + 1,
        "{case}: one forward"
    );
    let seen = last_forwarded(h);
    assert_eq!(seen.path, canonical, "{case}");
    assert_eq!(seen.query.as_deref(), query, "{case}");
}

#[tokio::test]
async fn equivalent_hostile_paths_are_matched_authorized_proof_checked_and_forwarded_as_one_string()
{
    let h = start().await;
    let creds = Credentials::new(&h);
    use Route::*;
    let cases: &[(&str, &str, Option<&str>, Route)] = &[
        // PN-06 / 3e 1: dot segments out of the public prefix land on the admin route.
        ("/public/../admin", "/admin", None, Admin),
        ("/public/./admin", "/public/admin", None, Public),
        ("/a/b/../../admin", "/admin", None, Admin),
        ("/a/b/c/./../../g", "/a/g", None, Rest),
        ("/public/..", "/", None, Rest),
        ("/public/x/..", "/public/", None, Public),
        // PN-04: encoded dots are unreserved, decoded once, then removed, in any hex case.
        ("/public/%2e%2e/admin", "/admin", None, Admin),
        ("/public/%2E%2E/admin", "/admin", None, Admin),
        ("/public/%2e%2E/admin", "/admin", None, Admin),
        ("/public/.%2e/admin", "/admin", None, Admin),
        ("/public/%2E./admin", "/admin", None, Admin),
        ("/public/%2e/admin", "/public/admin", None, Public),
        ("/public/x/%2E%2E", "/public/", None, Public),
        // Three dots are a name, not a dot segment.
        ("/public/...", "/public/...", None, Public),
        // PN-08: empty segments collapse, also before `..`.
        ("/public//admin", "/public/admin", None, Public),
        ("//admin", "/admin", None, Admin),
        ("///admin//", "/admin/", None, Admin),
        ("/public//../admin", "/admin", None, Admin),
        // PN-12: segment-aware prefixes; trailing-slash variants stay on the route.
        ("/admin/", "/admin/", None, Admin),
        ("/admin/.", "/admin/", None, Admin),
        ("/admin/x/..", "/admin/", None, Admin),
        ("/administrator", "/administrator", None, Rest),
        // PN-11: no case folding of the path.
        ("/Admin", "/Admin", None, Rest),
        ("/ADMIN", "/ADMIN", None, Rest),
        ("/%41dmin", "/Admin", None, Rest),
        // PN-04: other unreserved escapes decode; PN-03: the rest are kept, upper-cased.
        ("/%61dmin", "/admin", None, Admin),
        ("/%61%64%6D%69%6e/users", "/admin/users", None, Admin),
        ("/public/%7euser", "/public/~user", None, Public),
        ("/public/a%20b", "/public/a%20b", None, Public),
        ("/public/caf%c3%a9", "/public/caf%C3%A9", None, Public),
        ("/public/a%2a", "/public/a%2A", None, Public),
        ("/public/100%25", "/public/100%25", None, Public),
        // 3e 6: a raw `*` is a path character, not a wildcard.
        ("/public/*", "/public/*", None, Public),
        // PN-01: an encoded `?` never splits; the query never routes (PN-14, 3e 4).
        ("/public%3F/../admin", "/admin", None, Admin),
        (
            "/public/x?/../admin",
            "/public/x",
            Some("/../admin"),
            Public,
        ),
        ("/admin?/public/x", "/admin", Some("/public/x"), Admin),
        (
            "/admin?path=../public",
            "/admin",
            Some("path=../public"),
            Admin,
        ),
    ];
    for (target, canonical, query, route) in cases {
        assert_one_interpretation(&h, &creds, target, canonical, *query, *route).await;
    }
    assert_eq!(h.upstream.request_count(), cases.len());
    // One call for the scopeless token, two to learn the bound token's key; then the cache.
    assert_eq!(h.introspections(), 3);
    h.shutdown().await;
}

#[tokio::test]
async fn ambiguous_paths_are_400_before_any_credential_is_read_and_reach_nothing() {
    let h = start().await;
    let token = h.token("alice", &["admin", "rest"]);
    let cases: &[&[u8]] = &[
        // PN-05: encoded separators and NUL, any hex case (CVE-2021-29492, CVE-2026-42272).
        b"/public/%2e%2e%2fadmin",
        b"/public/%2E%2E%2Fadmin",
        b"/public%2F..%2Fadmin",
        b"/admin%2F",
        b"/admin%2f",
        b"/public/..%5cadmin",
        b"/public/..%5Cadmin",
        b"/admin%00",
        // Control characters, encoded.
        b"/admin%0d%0aX-Injected:%201",
        b"/admin%0A",
        b"/admin%09",
        b"/admin%7f",
        // PN-07: double encoding of '.', '/' and '\', any hex case.
        b"/public/%252e%252e/admin",
        b"/public/%252E%252E/admin",
        b"/public/%252f",
        b"/public/%255c",
        b"/public/%255C",
        // PN-10: overlong UTF-8 for '/', '.' and NUL, and invalid UTF-8.
        b"/%c0%af",
        b"/%C0%AF",
        b"/%c0%ae%c0%ae/admin",
        b"/%e0%80%ae",
        b"/%c0%80",
        b"/%ff",
        b"/%80",
        // PN-10: raw backslash, raw non-ASCII (valid and invalid UTF-8).
        b"/public/..\\admin",
        b"/public\\..\\admin",
        b"/public/caf\xc3\xa9",
        b"/public/\xff",
        // PN-09: matrix parameters (CVE-2026-73551/-73553).
        b"/admin;x=y",
        b"/..;/admin",
        b"/public/..;/admin",
        b"/a;b/../admin",
        b"/admin;",
        b"/admin/;/",
        // PN-06: climbing above the root, decoded or not.
        b"/..",
        b"/../admin",
        b"/%2e%2e/admin",
        b"/./../admin",
        b"/public/../../admin",
        b"/public/%2e%2e/%2E%2E/admin",
        // PN-02: broken escapes.
        b"/admin%",
        b"/admin%2",
        b"/admin%g0",
        b"/admin%%32%66",
        // Characters that are not pchar.
        b"/admin\"x",
        b"/admin|x",
        b"/admin^x",
        b"/admin[x]",
        b"/admin{x}",
        b"/admin`x",
    ];
    for target in cases {
        let shown = String::from_utf8_lossy(target);
        for auth in [String::new(), format!("Authorization: Bearer {token}\r\n")] {
            let r = get(&h, target, &auth).await;
            assert_eq!(r.statuses(), [400], "{shown}: {}", r.raw);
        }
    }
    assert_upstream_untouched(&h, "ambiguous paths");
    assert_eq!(h.introspections(), 0);
    h.shutdown().await;
}

#[tokio::test]
async fn fragment_is_cut_by_the_parser_and_every_stage_sees_the_same_path() {
    let h = start().await;
    let creds = Credentials::new(&h);
    // http::Uri ends the path at '#', so the fragment never reaches routing, the DPoP check or
    // the upstream (CVE-2021-32779 was a router and an RBAC filter reading it differently).
    let r = get(&h, b"/public/x#/../../admin", "").await;
    assert_eq!(r.statuses(), [200], "{}", r.raw);
    assert_eq!(last_forwarded(&h).path, "/public/x");
    let r = get(&h, b"/admin#/../public/x", "").await;
    assert_eq!(r.statuses(), [401], "{}", r.raw);
    let htu = format!("http://{}/admin", h.addr);
    let p = proof(&creds.signer, "GET", &htu, &creds.bound);
    let auth = format!("Authorization: DPoP {}\r\nDPoP: {p}\r\n", creds.bound);
    let r = get(&h, b"/admin#/../public/x", &auth).await;
    assert_eq!(r.statuses(), [200], "{}", r.raw);
    assert_eq!(last_forwarded(&h).path, "/admin");
    assert_eq!(h.upstream.request_count(), 2);
    h.shutdown().await;
}

#[tokio::test]
async fn absolute_form_target_is_normalized_and_routed_like_origin_form() {
    let h = start().await;
    let creds = Credentials::new(&h);
    let target = format!("http://{}/public/../admin", h.addr);
    assert_one_interpretation(&h, &creds, &target, "/admin", None, Route::Admin).await;
    let target = format!("http://{}/public/%2e%2e%2fadmin", h.addr);
    let r = get(&h, target.as_bytes(), "").await;
    assert_eq!(r.statuses(), [400], "{}", r.raw);
    assert_eq!(h.upstream.request_count(), 1);
    h.shutdown().await;
}

#[tokio::test]
async fn asterisk_form_and_authority_form_targets_are_400_and_reach_nothing() {
    let h = start().await;
    let addr = h.addr;
    let cases = [
        format!("OPTIONS * HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
        // Also when it looks like a CORS preflight (which skips the token check).
        format!(
            "OPTIONS * HTTP/1.1\r\nHost: {addr}\r\nOrigin: https://app.example\r\n\
             Access-Control-Request-Method: GET\r\nConnection: close\r\n\r\n"
        ),
        // CONNECT with no path (CVE-2026-50572 was a crash on exactly this).
        format!("CONNECT {addr} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
        "CONNECT 127.0.0.1:443 HTTP/1.1\r\nHost: 127.0.0.1:443\r\nConnection: close\r\n\r\n"
            .to_owned(),
    ];
    for request in &cases {
        let r = exchange(addr, request.as_bytes()).await;
        assert_eq!(r.statuses(), [400], "{request:?}: {}", r.raw);
        assert!(
            r.only()
                .body_text()
                .contains(r#""error":"invalid_request""#),
            "{}",
            r.raw
        );
    }
    assert_upstream_untouched(&h, "asterisk and authority form");
    assert_eq!(h.introspections(), 0);
    h.shutdown().await;
}

#[tokio::test]
async fn http2_path_is_normalized_like_http1() {
    let h = start().await;
    let authority = h.addr.to_string();
    let r = h2_request(h.addr, &h2_get(&authority, "/public/../admin"), None).await;
    assert_eq!(r, H2::Status(401));
    let r = h2_request(h.addr, &h2_get(&authority, "/public/%2e%2e%2fadmin"), None).await;
    assert_eq!(r, H2::Status(400));
    let r = h2_request(h.addr, &h2_get(&authority, "/public/%2E/x//y"), None).await;
    assert_eq!(r, H2::Status(200));
    assert_eq!(h.upstream.request_count(), 1);
    assert_eq!(last_forwarded(&h).path, "/public/x/y");
    assert_eq!(h.introspections(), 0);
    h.shutdown().await;
}
