//! DPoP (RFC 9449; DESIGN.md sections 3-4; research/standards.md DP-01 … DP-34): proofs are
//! verified locally before any introspection, the token's binding is learned once (Authlete:
//! a plain call answering A065308, then one call with the proof) and cached, every refusal
//! carries the right scheme and error, nothing refused is forwarded, and a refused
//! presentation never poisons the cache entry of a good token.

use crate::routing::raw_request;
use crate::support::{Harness, Options, echoed_headers, spec};
use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use serde_json::{Value, json};
use tokengate::auth::dpop::{Alg, ProofClaims, ProofSigner, ath, random_jti};
use tokengate::demo::emulator::TokenSpec;

/// The `algs` parameter for the default allow-list.
const ALGS: &str = r#"algs="ES256 ES384 PS256 RS256 EdDSA""#;
const PUBLIC_ORIGIN: &str = "https://api.example.com";

fn dpop_options() -> Options {
    Options {
        extra: "dpop:\n  enabled: true\n".into(),
        ..Options::default()
    }
}

fn public_origin_options() -> Options {
    Options {
        extra: format!("dpop:\n  enabled: true\npublic_origin: \"{PUBLIC_ORIGIN}\"\n"),
        ..Options::default()
    }
}

async fn start() -> Harness {
    Harness::start_with(dpop_options()).await
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

fn key(alg: Alg) -> ProofSigner {
    ProofSigner::generate(alg).expect("key generation")
}

/// The URL the client uses when no `public_origin` is configured.
fn htu(h: &Harness, path: &str) -> String {
    format!("http://{}{path}", h.addr)
}

/// A token DPoP-bound to `signer`'s key.
fn bound_token(h: &Harness, signer: &ProofSigner, scopes: &[&str]) -> String {
    h.emulator.add_token(TokenSpec {
        dpop_jkt: Some(signer.thumbprint()),
        ..spec("alice", scopes, 3600)
    })
}

/// A fresh, valid proof for `method url` presenting `token`.
fn proof(signer: &ProofSigner, method: &str, url: &str, token: &str) -> String {
    signer.sign(&ProofClaims::new(method, url, Some(token), now()))
}

/// A compact JWS with arbitrary parts (for algorithms the signer refuses to make).
fn jws(header: &Value, payload: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        B64.encode(header.to_string()),
        B64.encode(payload.to_string()),
        B64.encode(signature)
    )
}

fn payload(method: &str, url: &str, token: &str) -> Value {
    json!({"jti": random_jti(), "htm": method, "htu": url, "iat": now(), "ath": ath(token)})
}

/// What the client saw.
struct Answer {
    status: u16,
    headers: HeaderMap,
    body: String,
}

impl Answer {
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

    fn challenges(&self) -> Vec<String> {
        self.headers
            .get_all("www-authenticate")
            .iter()
            .map(|v| v.to_str().expect("ASCII challenge").to_owned())
            .collect()
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    /// 401 with exactly one challenge, in the `DPoP` scheme, carrying `error="<code>"` and the
    /// `algs` list (DP-30, DP-32).
    fn assert_dpop_error(&self, code: &str, case: &str) {
        assert_eq!(self.status, 401, "{case}: {}", self.body);
        let challenges = self.challenges();
        assert_eq!(challenges.len(), 1, "{case}: {challenges:?}");
        let c = &challenges[0];
        assert!(c.starts_with("DPoP "), "{case}: {c}");
        assert!(c.contains(&format!(r#"error="{code}""#)), "{case}: {c}");
        assert!(c.contains(ALGS), "{case}: {c}");
        assert_eq!(self.json()["error"], code, "{case}");
        assert_eq!(self.headers["cache-control"], "no-store", "{case}");
    }

    /// 401 whose error is in the `Bearer` challenge, with a plain `DPoP algs` challenge next to
    /// it (RFC 9449 section 7.2, DP-31).
    fn assert_bearer_error(&self, code: &str, case: &str) {
        assert_eq!(self.status, 401, "{case}: {}", self.body);
        let challenges = self.challenges();
        assert_eq!(challenges.len(), 2, "{case}: {challenges:?}");
        assert!(
            challenges[0].starts_with("Bearer "),
            "{case}: {challenges:?}"
        );
        assert!(
            challenges[0].contains(&format!(r#"error="{code}""#)),
            "{case}: {challenges:?}"
        );
        assert!(challenges[1].starts_with("DPoP "), "{case}: {challenges:?}");
        assert!(challenges[1].contains(ALGS), "{case}: {challenges:?}");
        assert!(!challenges[1].contains("error"), "{case}: {challenges:?}");
        assert_eq!(self.json()["error"], code, "{case}");
    }
}

/// Sends `method path` with the given `Authorization` value and `DPoP` header lines.
async fn send(
    h: &Harness,
    method: &str,
    path: &str,
    authorization: Option<&str>,
    proofs: &[&str],
    extra: &[(&str, &str)],
) -> Answer {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut headers = HeaderMap::new();
    if let Some(a) = authorization {
        headers.append(
            AUTHORIZATION,
            HeaderValue::from_str(a).expect("header value"),
        );
    }
    for p in proofs {
        headers.append("dpop", HeaderValue::from_str(p).expect("proof value"));
    }
    for (name, value) in extra {
        headers.append(
            reqwest::header::HeaderName::from_bytes(name.as_bytes()).expect("name"),
            HeaderValue::from_str(value).expect("value"),
        );
    }
    let r = h
        .client
        .request(method, h.url(path))
        .headers(headers)
        .send()
        .await
        .expect("request");
    Answer::from(r).await
}

/// `Authorization: DPoP <token>` with one proof.
async fn dpop_get(h: &Harness, path: &str, token: &str, proof: &str) -> Answer {
    let auth = format!("DPoP {token}");
    send(h, "GET", path, Some(&auth), &[proof], &[]).await
}

/// The value of a counter line such as `name{label="x"} 3` in the Prometheus text.
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn valid_dpop_request_is_forwarded_with_identity_and_without_token_or_proof() {
    let h = start().await;
    let signer = key(Alg::ES256);
    let token = bound_token(&h, &signer, &["orders.read"]);
    let url = htu(&h, "/orders/1");
    let p = proof(&signer, "GET", &url, &token);
    let r = dpop_get(&h, "/orders/1", &token, &p).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let body = r.json();
    assert_eq!(echoed_headers(&body, "x-auth-subject"), ["alice"]);
    assert_eq!(echoed_headers(&body, "x-auth-scopes"), ["orders.read"]);
    assert_eq!(echoed_headers(&body, "x-auth-client-id"), ["1001"]);
    assert!(echoed_headers(&body, "authorization").is_empty(), "{body}");
    assert!(echoed_headers(&body, "dpop").is_empty(), "{body}");
    assert!(!body.to_string().contains(&token));
    assert!(!body.to_string().contains(&p));
    assert_eq!(h.upstream_requests(), 1);
    // Authlete learns the binding: a plain call (A065308), then one with dpop/htm/htu.
    assert_eq!(h.introspections(), 2);
    let sent = h.emulator.requests();
    assert_eq!(sent.len(), 2);
    assert!(sent[0].get("dpop").is_none(), "{}", sent[0]);
    assert_eq!(sent[1]["dpop"], p.as_str());
    assert_eq!(sent[1]["htm"], "GET");
    assert_eq!(sent[1]["htu"], url.as_str());
    // The scheme name is case-insensitive (RFC 9110 section 11.1); the binding comes from cache.
    let p = proof(&signer, "GET", &url, &token);
    let r = send(
        &h,
        "GET",
        "/orders/1",
        Some(&format!("dpop {token}")),
        &[&p],
        &[],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(h.upstream_requests(), 2);
    assert_eq!(h.introspections(), 2);
    h.shutdown().await;
}

#[tokio::test]
async fn bound_token_is_introspected_twice_then_served_from_cache_and_refused_as_bearer() {
    let h = start().await;
    let signer = key(Alg::ES256);
    let token = bound_token(&h, &signer, &["orders.read"]);
    for i in 1..=5 {
        let path = format!("/orders/{i}");
        let p = proof(&signer, "GET", &htu(&h, &path), &token);
        let r = dpop_get(&h, &path, &token, &p).await;
        assert_eq!(r.status, 200, "request {i}: {}", r.body);
        // Two calls for the first request, none after.
        assert_eq!(h.introspections(), 2, "after request {i}");
    }
    assert_eq!(h.upstream_requests(), 5);
    // The cached binding refuses the Bearer scheme without asking again (RFC 9449 7.2).
    let r = send(
        &h,
        "GET",
        "/orders/1",
        Some(&format!("Bearer {token}")),
        &[],
        &[],
    )
    .await;
    r.assert_bearer_error("invalid_token", "bound token as Bearer");
    assert_eq!(h.introspections(), 2);
    assert_eq!(h.upstream_requests(), 5);
    h.shutdown().await;
}

#[tokio::test]
async fn no_credentials_get_a_bearer_and_a_dpop_challenge_without_error() {
    let h = start().await;
    let r = send(&h, "GET", "/orders/1", None, &[], &[]).await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.challenges(),
        [
            r#"Bearer realm="tokengate""#.to_owned(),
            format!(r#"DPoP realm="tokengate", {ALGS}"#),
        ]
    );
    // DP-24: a valid proof alone is not a credential.
    let signer = key(Alg::ES256);
    let token = bound_token(&h, &signer, &["orders.read"]);
    let p = proof(&signer, "GET", &htu(&h, "/orders/1"), &token);
    let r = send(&h, "GET", "/orders/1", None, &[&p], &[]).await;
    assert_eq!(r.status, 401);
    let challenges = r.challenges();
    assert_eq!(challenges.len(), 2, "{challenges:?}");
    assert_eq!(challenges[0], r#"Bearer realm="tokengate""#);
    assert!(challenges[1].starts_with("DPoP ") && challenges[1].contains(ALGS));
    assert!(
        challenges.iter().all(|c| !c.contains("error")),
        "{challenges:?}"
    );
    assert_eq!(h.upstream_requests(), 0);
    assert_eq!(h.introspections(), 0);
    h.shutdown().await;
}

#[tokio::test]
async fn replayed_proof_is_refused_and_counted_in_metrics() {
    let h = start().await;
    let signer = key(Alg::ES256);
    let token = bound_token(&h, &signer, &["orders.read"]);
    let p = proof(&signer, "GET", &htu(&h, "/orders/1"), &token);
    assert_eq!(dpop_get(&h, "/orders/1", &token, &p).await.status, 200);
    assert_eq!(h.upstream_requests(), 1);
    assert_eq!(h.introspections(), 2);
    let r = dpop_get(&h, "/orders/1", &token, &p).await;
    r.assert_dpop_error("invalid_dpop_proof", "replay");
    assert_eq!(h.upstream_requests(), 1);
    assert_eq!(h.introspections(), 2);
    let text = h.metrics_text().await;
    let replays = metric(&text, r#"tokengate_dpop_rejections_total{reason="replay"}"#)
        .unwrap_or_else(|| panic!("no replay series in:\n{text}"));
    assert!(replays >= 1.0, "{replays}");
    // A fresh proof from the same key still works.
    let fresh = proof(&signer, "GET", &htu(&h, "/orders/1"), &token);
    assert_eq!(dpop_get(&h, "/orders/1", &token, &fresh).await.status, 200);
    assert_eq!(h.upstream_requests(), 2);
    h.shutdown().await;
}

/// Every proof defect that the gateway can see by itself is refused before introspection.
#[tokio::test]
async fn locally_invalid_proofs_are_401_invalid_dpop_proof_without_introspection() {
    let h = start().await;
    let signer = key(Alg::ES256);
    let other_key = key(Alg::ES256);
    let p384 = key(Alg::ES384);
    let token = bound_token(&h, &signer, &["orders.read", "orders.write"]);
    let other_token = bound_token(&h, &signer, &["orders.read"]);
    let url = htu(&h, "/orders/1");
    let claims = |iat: i64| ProofClaims::new("GET", &url, Some(&token), iat);
    let header = |typ: &str, alg: &str, jwk: &Value| json!({"typ": typ, "alg": alg, "jwk": jwk});

    let mut cases: Vec<(&str, String)> = Vec::new();
    cases.push((
        "wrong path",
        proof(&signer, "GET", &htu(&h, "/orders/2"), &token),
    ));
    cases.push((
        "wrong host",
        proof(&signer, "GET", "http://other.example/orders/1", &token),
    ));
    cases.push((
        "wrong scheme",
        proof(
            &signer,
            "GET",
            &format!("https://{}/orders/1", h.addr),
            &token,
        ),
    ));
    cases.push((
        "wrong port",
        proof(&signer, "GET", "http://127.0.0.1:1/orders/1", &token),
    ));
    cases.push(("lower-case htm", proof(&signer, "get", &url, &token)));
    cases.push((
        "missing ath",
        signer.sign(&ProofClaims {
            ath_token: None,
            ..claims(now())
        }),
    ));
    cases.push((
        "ath of another token",
        proof(&signer, "GET", &url, &other_token),
    ));
    cases.push((
        "ath of \"DPoP \" + token",
        proof(&signer, "GET", &url, &format!("DPoP {token}")),
    ));
    cases.push(("iat an hour old", signer.sign(&claims(now() - 3600))));
    cases.push(("iat an hour ahead", signer.sign(&claims(now() + 3600))));
    cases.push((
        "missing iat",
        signer.sign(&ProofClaims {
            iat: None,
            ..claims(now())
        }),
    ));
    cases.push((
        "missing jti",
        signer.sign(&ProofClaims {
            jti: None,
            ..claims(now())
        }),
    ));
    cases.push((
        "typ JWT",
        signer.sign_with_header(&header("JWT", "ES256", signer.jwk()), &claims(now())),
    ));
    cases.push((
        "typ at+jwt",
        signer.sign_with_header(&header("at+jwt", "ES256", signer.jwk()), &claims(now())),
    ));
    let body = payload("GET", &url, &token);
    cases.push((
        "alg none, empty signature",
        format!(
            "{}.{}.",
            B64.encode(header("dpop+jwt", "none", signer.jwk()).to_string()),
            B64.encode(body.to_string())
        ),
    ));
    cases.push((
        "alg none, some signature",
        jws(&header("dpop+jwt", "none", signer.jwk()), &body, b"x"),
    ));
    let hs256 = {
        let h64 = B64.encode(header("dpop+jwt", "HS256", signer.jwk()).to_string());
        let p64 = B64.encode(payload("GET", &url, &token).to_string());
        let input = format!("{h64}.{p64}");
        // HMAC keyed by the public JWK's bytes: the classic key-confusion attack.
        let mac_key = hmac::Key::new(hmac::HMAC_SHA256, signer.jwk().to_string().as_bytes());
        let tag = hmac::sign(&mac_key, input.as_bytes());
        format!("{input}.{}", B64.encode(tag.as_ref()))
    };
    cases.push(("alg HS256", hs256));
    cases.push((
        "alg ES256 with a P-384 key",
        p384.sign_with_header(&header("dpop+jwt", "ES256", p384.jwk()), &claims(now())),
    ));
    let mut private = signer.jwk().clone();
    private["d"] = json!(B64.encode([7u8; 32]));
    cases.push((
        "private jwk",
        signer.sign_with_header(&header("dpop+jwt", "ES256", &private), &claims(now())),
    ));
    cases.push((
        "signed by key A, carrying key B's jwk",
        signer.sign_with_header(
            &header("dpop+jwt", "ES256", other_key.jwk()),
            &claims(now()),
        ),
    ));
    // The payload of a valid, unused proof under the signature of another one.
    let donor = proof(&signer, "GET", &htu(&h, "/orders/2"), &token);
    let kept = proof(&signer, "GET", &url, &token);
    let tampered = {
        let d: Vec<&str> = donor.split('.').collect();
        let k: Vec<&str> = kept.split('.').collect();
        format!("{}.{}.{}", d[0], k[1], d[2])
    };
    cases.push(("tampered payload", tampered));
    cases.push((
        "empty signature",
        format!("{}.", kept.rsplit_once('.').expect("three parts").0),
    ));
    cases.push(("two proofs in one value", format!("{kept},{donor}")));
    cases.push(("not a JWS", "not-a-proof".to_owned()));

    let auth = format!("DPoP {token}");
    for (case, p) in &cases {
        let r = send(&h, "GET", "/orders/1", Some(&auth), &[p], &[]).await;
        r.assert_dpop_error("invalid_dpop_proof", case);
        assert_eq!(h.introspections(), 0, "{case}");
        assert_eq!(h.upstream_requests(), 0, "{case}");
    }

    // Wrong htm: a GET proof on a POST that the token may make.
    let get_proof = proof(&signer, "GET", &url, &token);
    let r = send(&h, "POST", "/orders/1", Some(&auth), &[&get_proof], &[]).await;
    r.assert_dpop_error("invalid_dpop_proof", "GET proof on POST");

    // Two DPoP headers, each a valid proof (DP-10).
    let (a, b) = (
        proof(&signer, "GET", &url, &token),
        proof(&signer, "GET", &url, &token),
    );
    let r = send(&h, "GET", "/orders/1", Some(&auth), &[&a, &b], &[]).await;
    r.assert_dpop_error("invalid_dpop_proof", "two DPoP headers");
    // The same with differently cased names, on a raw socket so that nothing merges them.
    let raw = raw_request(
        h.addr,
        &format!(
            "GET /orders/1 HTTP/1.1\r\nHost: {}\r\nAuthorization: DPoP {token}\r\nDPoP: {a}\r\ndpop: {b}\r\n",
            h.addr
        ),
    )
    .await;
    assert_eq!(raw.status, 401, "{}", raw.raw);
    let challenges = raw.header("www-authenticate");
    assert_eq!(challenges.len(), 1, "{}", raw.raw);
    assert!(
        challenges[0].starts_with("DPoP ")
            && challenges[0].contains(r#"error="invalid_dpop_proof""#)
            && challenges[0].contains(ALGS),
        "{}",
        raw.raw
    );

    // The DPoP scheme without any proof (DP-01).
    let r = send(&h, "GET", "/orders/1", Some(&auth), &[], &[]).await;
    r.assert_dpop_error("invalid_dpop_proof", "no DPoP header");

    assert_eq!(h.introspections(), 0);
    assert_eq!(h.upstream_requests(), 0);

    // None of the refusals burned a jti: the proofs whose parts were reused still work once,
    // which also shows that the setup itself was valid.
    let r = dpop_get(&h, "/orders/1", &token, &kept).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = dpop_get(&h, "/orders/1", &token, &a).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = send(
        &h,
        "POST",
        "/orders/1",
        Some(&auth),
        &[&proof(&signer, "POST", &url, &token)],
        &[],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(h.introspections(), 2);
    assert_eq!(h.upstream_requests(), 3);
    h.shutdown().await;
}

#[tokio::test]
async fn oversized_proof_is_refused_without_introspection() {
    let h = start().await;
    let signer = key(Alg::ES256);
    let token = bound_token(&h, &signer, &["orders.read"]);
    // Otherwise valid, but 20 KiB.
    let big = signer.sign(&ProofClaims {
        jti: Some("j".repeat(20 * 1024)),
        ..ProofClaims::new("GET", &htu(&h, "/orders/1"), Some(&token), now())
    });
    assert!(big.len() > 20 * 1024);
    let r = dpop_get(&h, "/orders/1", &token, &big).await;
    r.assert_dpop_error("invalid_dpop_proof", "20 KiB proof");
    assert_eq!(h.introspections(), 0);
    assert_eq!(h.upstream_requests(), 0);
    h.shutdown().await;
}

#[tokio::test]
async fn ambiguous_bearer_and_dpop_authorization_is_400_without_introspection() {
    let h = start().await;
    let signer = key(Alg::ES256);
    let token = bound_token(&h, &signer, &["orders.read"]);
    let p = proof(&signer, "GET", &htu(&h, "/orders/1"), &token);
    let mut headers = HeaderMap::new();
    for scheme in ["Bearer", "DPoP"] {
        headers.append(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("{scheme} {token}")).expect("value"),
        );
    }
    headers.append("dpop", HeaderValue::from_str(&p).expect("value"));
    let r = h
        .client
        .get(h.url("/orders/1"))
        .headers(headers)
        .send()
        .await
        .expect("request");
    let r = Answer::from(r).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.challenges()
            .iter()
            .any(|c| c.contains(r#"error="invalid_request""#)),
        "{:?}",
        r.challenges()
    );
    assert_eq!(r.json()["error"], "invalid_request");
    assert_eq!(h.introspections(), 0);
    assert_eq!(h.upstream_requests(), 0);
    h.shutdown().await;
}

#[tokio::test]
async fn other_key_after_the_binding_is_cached_is_invalid_token_from_cache() {
    let h = start().await;
    let holder = key(Alg::ES256);
    let thief = key(Alg::ES256);
    let token = bound_token(&h, &holder, &["orders.read"]);
    let url = htu(&h, "/orders/1");
    let r = dpop_get(
        &h,
        "/orders/1",
        &token,
        &proof(&holder, "GET", &url, &token),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(h.introspections(), 2);
    // A perfectly valid proof, from the wrong key: RFC 9449 Figure 16.
    let r = dpop_get(&h, "/orders/1", &token, &proof(&thief, "GET", &url, &token)).await;
    r.assert_dpop_error("invalid_token", "thief after holder");
    assert_eq!(h.introspections(), 2);
    assert_eq!(h.upstream_requests(), 1);
    // The holder is unaffected.
    let r = dpop_get(
        &h,
        "/orders/1",
        &token,
        &proof(&holder, "GET", &url, &token),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(h.introspections(), 2);
    assert_eq!(h.upstream_requests(), 2);
    h.shutdown().await;
}

#[tokio::test]
async fn other_key_first_is_refused_by_the_server_and_does_not_poison_the_holder() {
    let h = start().await;
    let holder = key(Alg::ES256);
    let thief = key(Alg::ES256);
    let token = bound_token(&h, &holder, &["orders.read"]);
    let url = htu(&h, "/orders/1");
    // First presentation, by the thief: Authlete answers A065309.
    let thief_proof = proof(&thief, "GET", &url, &token);
    let r = dpop_get(&h, "/orders/1", &token, &thief_proof).await;
    r.assert_dpop_error("invalid_dpop_proof", "thief first");
    assert_eq!(h.introspections(), 2);
    assert_eq!(h.upstream_requests(), 0);
    let sent = h.emulator.requests();
    assert_eq!(sent[1]["dpop"], thief_proof.as_str());
    // The thief's refusal was not remembered against the token: the holder gets in.
    let r = dpop_get(
        &h,
        "/orders/1",
        &token,
        &proof(&holder, "GET", &url, &token),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // That "the token is bound" was cached on the thief's attempt (a property of the token),
    // so the holder's first request costs only the call with its proof.
    assert_eq!(h.introspections(), 3);
    assert_eq!(h.upstream_requests(), 1);
    // Now the binding is cached: the thief is refused locally.
    let r = dpop_get(&h, "/orders/1", &token, &proof(&thief, "GET", &url, &token)).await;
    r.assert_dpop_error("invalid_token", "thief after holder");
    assert_eq!(h.introspections(), 3);
    let r = dpop_get(
        &h,
        "/orders/1",
        &token,
        &proof(&holder, "GET", &url, &token),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(h.introspections(), 3);
    assert_eq!(h.upstream_requests(), 2);
    h.shutdown().await;
}

#[tokio::test]
async fn bound_token_as_bearer_is_refused_and_does_not_poison_the_dpop_presentation() {
    let h = start().await;
    let signer = key(Alg::ES256);
    let token = bound_token(&h, &signer, &["orders.read"]);
    let url = htu(&h, "/orders/1");
    let bearer = format!("Bearer {token}");
    // Without a proof.
    let r = send(&h, "GET", "/orders/1", Some(&bearer), &[], &[]).await;
    r.assert_bearer_error("invalid_token", "Bearer, no proof");
    assert_eq!(h.introspections(), 1);
    // With a perfectly valid proof next to it (DP-03).
    let p = proof(&signer, "GET", &url, &token);
    let r = send(&h, "GET", "/orders/1", Some(&bearer), &[&p], &[]).await;
    r.assert_bearer_error("invalid_token", "Bearer with a valid proof");
    // "Bound, key unknown" is a property of the token and was cached by the first refusal.
    assert_eq!(h.introspections(), 1);
    assert_eq!(h.upstream_requests(), 0);
    // The refusals were not remembered: the DPoP presentation works.
    let r = dpop_get(
        &h,
        "/orders/1",
        &token,
        &proof(&signer, "GET", &url, &token),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(h.introspections(), 2);
    assert_eq!(h.upstream_requests(), 1);
    // And once the binding is cached, the downgrade is refused without asking.
    let p = proof(&signer, "GET", &url, &token);
    let r = send(&h, "GET", "/orders/1", Some(&bearer), &[&p], &[]).await;
    r.assert_bearer_error("invalid_token", "Bearer with a valid proof, binding cached");
    assert_eq!(h.introspections(), 2);
    assert_eq!(h.upstream_requests(), 1);
    h.shutdown().await;
}

#[tokio::test]
async fn unbound_token_with_the_dpop_scheme_is_invalid_token_and_never_becomes_bound() {
    let h = start().await;
    let signer = key(Alg::ES256);
    let token = h.token("alice", &["orders.read"]);
    let url = htu(&h, "/orders/1");
    let r = dpop_get(
        &h,
        "/orders/1",
        &token,
        &proof(&signer, "GET", &url, &token),
    )
    .await;
    r.assert_dpop_error("invalid_token", "unbound token, DPoP scheme");
    assert_eq!(h.introspections(), 1);
    assert_eq!(h.upstream_requests(), 0);
    // The proof was never offered to the authorization server as a binding.
    assert!(
        h.emulator
            .requests()
            .iter()
            .all(|r| r.get("dpop").is_none()),
        "{:?}",
        h.emulator.requests()
    );
    // Still a good Bearer token.
    let r = send(
        &h,
        "GET",
        "/orders/1",
        Some(&format!("Bearer {token}")),
        &[],
        &[],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(h.upstream_requests(), 1);
    // And not bound to the key that presented it first.
    let r = dpop_get(
        &h,
        "/orders/1",
        &token,
        &proof(&signer, "GET", &url, &token),
    )
    .await;
    r.assert_dpop_error("invalid_token", "unbound token, DPoP scheme again");
    assert_eq!(h.introspections(), 1);
    assert_eq!(h.upstream_requests(), 1);
    h.shutdown().await;
}

#[tokio::test]
async fn stray_proof_on_an_unbound_bearer_token_is_ignored_and_stripped() {
    let h = start().await;
    let signer = key(Alg::ES256);
    let token = h.token("alice", &["orders.read"]);
    let p = proof(&signer, "GET", &htu(&h, "/orders/1"), &token);
    let r = send(
        &h,
        "GET",
        "/orders/1",
        Some(&format!("Bearer {token}")),
        &[&p],
        &[],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let body = r.json();
    assert!(echoed_headers(&body, "dpop").is_empty(), "{body}");
    assert!(echoed_headers(&body, "authorization").is_empty(), "{body}");
    assert_eq!(echoed_headers(&body, "x-auth-subject"), ["alice"]);
    // Also a garbage proof: it is not looked at.
    let r = send(
        &h,
        "GET",
        "/orders/2",
        Some(&format!("Bearer {token}")),
        &["garbage"],
        &[],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(echoed_headers(&r.json(), "dpop").is_empty());
    assert_eq!(h.upstream_requests(), 2);
    assert_eq!(h.introspections(), 1);
    assert!(
        h.emulator
            .requests()
            .iter()
            .all(|r| r.get("dpop").is_none())
    );
    h.shutdown().await;
}

#[tokio::test]
async fn htu_is_checked_against_public_origin_not_the_host_or_forwarded_headers() {
    let h = Harness::start_with(public_origin_options()).await;
    let signer = key(Alg::ES256);
    let token = bound_token(&h, &signer, &["orders.read"]);
    let external = format!("{PUBLIC_ORIGIN}/orders/1");
    let internal = htu(&h, "/orders/1");

    // The URL the client sees from outside is accepted.
    let r = dpop_get(
        &h,
        "/orders/1",
        &token,
        &proof(&signer, "GET", &external, &token),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(h.introspections(), 2);
    assert_eq!(h.emulator.requests()[1]["htu"], external.as_str());

    // The listener's own URL is not.
    let r = dpop_get(
        &h,
        "/orders/1",
        &token,
        &proof(&signer, "GET", &internal, &token),
    )
    .await;
    r.assert_dpop_error("invalid_dpop_proof", "htu from the Host header");

    // Client-sent forwarding headers do not move the expected htu.
    let auth = format!("DPoP {token}");
    let forged: [(&str, &[(&str, &str)]); 3] = [
        (
            "https://other.example/orders/1",
            &[
                ("x-forwarded-host", "other.example"),
                ("x-forwarded-proto", "https"),
            ],
        ),
        (
            "http://api.example.com/orders/1",
            &[("x-forwarded-proto", "http")],
        ),
        (
            "https://other.example/orders/1",
            &[("forwarded", "host=other.example;proto=https")],
        ),
    ];
    for (url, extra) in forged {
        let p = proof(&signer, "GET", url, &token);
        let r = send(&h, "GET", "/orders/1", Some(&auth), &[&p], extra).await;
        r.assert_dpop_error("invalid_dpop_proof", &format!("{url} with {extra:?}"));
    }
    // Nor does the Host header: a proof made for the Host the client sent is refused, since
    // htu comes from public_origin.
    let raw = raw_request(
        h.addr,
        &format!(
            "GET /orders/1 HTTP/1.1\r\nHost: other.example\r\nAuthorization: DPoP {token}\r\nDPoP: {}\r\n",
            proof(&signer, "GET", "http://other.example/orders/1", &token)
        ),
    )
    .await;
    assert_eq!(raw.status, 401, "{}", raw.raw);
    assert!(
        raw.header("www-authenticate")
            .iter()
            .any(|c| c.starts_with("DPoP ") && c.contains(r#"error="invalid_dpop_proof""#)),
        "{}",
        raw.raw
    );

    // Still fine with the right htu, and nothing refused was forwarded or introspected.
    let r = dpop_get(
        &h,
        "/orders/1",
        &token,
        &proof(&signer, "GET", &external, &token),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(h.introspections(), 2);
    assert_eq!(h.upstream_requests(), 2);
    h.shutdown().await;
}

#[tokio::test]
async fn forwarded_headers_do_not_move_htu_without_public_origin_either() {
    let h = start().await;
    let signer = key(Alg::ES256);
    let token = bound_token(&h, &signer, &["orders.read"]);
    let p = proof(&signer, "GET", "https://other.example/orders/1", &token);
    let r = send(
        &h,
        "GET",
        "/orders/1",
        Some(&format!("DPoP {token}")),
        &[&p],
        &[
            ("x-forwarded-host", "other.example"),
            ("x-forwarded-proto", "https"),
        ],
    )
    .await;
    r.assert_dpop_error("invalid_dpop_proof", "X-Forwarded-Host");
    assert_eq!(h.introspections(), 0);
    assert_eq!(h.upstream_requests(), 0);
    h.shutdown().await;
}

#[tokio::test]
async fn htu_with_query_default_port_and_upper_case_scheme_and_host_is_accepted() {
    let h = Harness::start_with(public_origin_options()).await;
    let signer = key(Alg::ES256);
    let token = bound_token(&h, &signer, &["orders.read"]);
    let p = proof(
        &signer,
        "GET",
        "HTTPS://API.example.com:443/orders/1?x=1",
        &token,
    );
    let r = dpop_get(&h, "/orders/1?z=2", &token, &p).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["query"], "z=2");
    assert_eq!(h.upstream_requests(), 1);
    assert_eq!(h.introspections(), 2);
    h.shutdown().await;
}

#[tokio::test]
async fn dpop_scheme_is_unsupported_when_dpop_is_disabled() {
    let h = Harness::start().await;
    let signer = key(Alg::ES256);
    let token = bound_token(&h, &signer, &["orders.read"]);
    let p = proof(&signer, "GET", &htu(&h, "/orders/1"), &token);
    let r = dpop_get(&h, "/orders/1", &token, &p).await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(r.challenges(), [r#"Bearer realm="tokengate""#]);
    assert_eq!(h.introspections(), 0);
    assert_eq!(h.upstream_requests(), 0);
    h.shutdown().await;
}

#[tokio::test]
async fn every_allowed_algorithm_works_end_to_end() {
    let h = start().await;
    let algs = [Alg::ES256, Alg::ES384, Alg::PS256, Alg::RS256, Alg::EdDSA];
    for (i, alg) in algs.into_iter().enumerate() {
        let signer = key(alg);
        let token = bound_token(&h, &signer, &["orders.read"]);
        let p = proof(&signer, "GET", &htu(&h, "/orders/1"), &token);
        let r = dpop_get(&h, "/orders/1", &token, &p).await;
        assert_eq!(r.status, 200, "{}: {}", alg.name(), r.body);
        assert_eq!(h.upstream_requests(), i + 1, "{}", alg.name());
        assert_eq!(h.introspections(), 2 * (i as u64 + 1), "{}", alg.name());
    }
    h.shutdown().await;
}

fn nonce_options() -> Options {
    Options {
        extra: "dpop:\n  enabled: true\n  nonce: authlete\n".into(),
        ..Options::default()
    }
}

fn proof_with_nonce(signer: &ProofSigner, url: &str, token: &str, nonce: &str) -> String {
    let mut claims = ProofClaims::new("GET", url, Some(token), now());
    claims.nonce = Some(nonce.to_owned());
    signer.sign(&claims)
}

#[tokio::test]
async fn nonce_mode_demands_the_servers_nonce_and_passes_it_on() {
    let h = Harness::start_with(nonce_options()).await;
    let signer = key(Alg::ES256);
    let token = bound_token(&h, &signer, &["orders.read"]);
    let url = htu(&h, "/orders/1");
    // Without a nonce: 401 use_dpop_nonce and exactly one DPoP-Nonce header (RFC 9449 section 9).
    let r = dpop_get(
        &h,
        "/orders/1",
        &token,
        &proof(&signer, "GET", &url, &token),
    )
    .await;
    r.assert_dpop_error("use_dpop_nonce", "no nonce");
    let nonces: Vec<_> = r.headers.get_all("dpop-nonce").iter().collect();
    assert_eq!(nonces, [h.emulator.dpop_nonce()]);
    assert_eq!(h.upstream_requests(), 0);
    // The emulator was asked to enforce its nonce.
    assert!(
        h.emulator
            .requests()
            .iter()
            .any(|q| q["dpopNonceRequired"] == true)
    );
    // With the nonce: 200, and the nonce is passed on again.
    let nonce = h.emulator.dpop_nonce().to_owned();
    let r = dpop_get(
        &h,
        "/orders/1",
        &token,
        &proof_with_nonce(&signer, &url, &token, &nonce),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.headers["dpop-nonce"], nonce.as_str());
    // Every DPoP request is checked by the server in this mode, even with the binding cached.
    let before = h.introspections();
    let r = dpop_get(
        &h,
        "/orders/1",
        &token,
        &proof_with_nonce(&signer, &url, &token, &nonce),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(h.introspections(), before + 1);
    // A wrong nonce is refused by the server.
    let r = dpop_get(
        &h,
        "/orders/1",
        &token,
        &proof_with_nonce(&signer, &url, &token, "stale"),
    )
    .await;
    r.assert_dpop_error("use_dpop_nonce", "stale nonce");
    assert_eq!(h.upstream_requests(), 2);
    h.shutdown().await;
}

#[tokio::test]
async fn nonce_mode_still_checks_proofs_locally_first() {
    let h = Harness::start_with(nonce_options()).await;
    let signer = key(Alg::ES256);
    let token = bound_token(&h, &signer, &["orders.read"]);
    let wrong_url = htu(&h, "/orders/2");
    let nonce = h.emulator.dpop_nonce().to_owned();
    let r = dpop_get(
        &h,
        "/orders/1",
        &token,
        &proof_with_nonce(&signer, &wrong_url, &token, &nonce),
    )
    .await;
    r.assert_dpop_error("invalid_dpop_proof", "wrong htu in nonce mode");
    assert_eq!(h.introspections(), 0);
    h.shutdown().await;
}
