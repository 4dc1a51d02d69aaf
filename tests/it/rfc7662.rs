//! The generic RFC 7662 backend end to end, against the emulator's standard endpoint: verdicts,
//! identity, caching, DPoP binding from `cnf.jkt` in one call, certificate binding absent.

use crate::support::{Harness, Options, echoed_headers, spec};
use tokengate::auth::dpop::{Alg, ProofClaims, ProofSigner};
use tokengate::demo::emulator::TokenSpec;

fn options() -> Options {
    Options {
        rfc7662: true,
        extra: "dpop:\n  enabled: true\n".into(),
        ..Options::default()
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

#[tokio::test]
async fn active_token_is_forwarded_with_identity_and_cached() {
    let h = Harness::start_with(options()).await;
    let token = h.token("alice", &["orders.read"]);
    for _ in 0..5 {
        let r = h.get("/orders/1", Some(&token)).await;
        assert_eq!(r.status(), 200);
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(echoed_headers(&body, "x-auth-subject"), ["alice"]);
        assert_eq!(echoed_headers(&body, "x-auth-client-id"), ["1001"]);
        assert_eq!(echoed_headers(&body, "x-auth-scopes"), ["orders.read"]);
    }
    assert_eq!(h.introspections(), 1);
    // The request carried the token (form-encoded) and nothing route-specific.
    let sent = h.emulator.requests();
    assert_eq!(sent[0]["token"], token.as_str());
    assert_eq!(sent[0]["token_type_hint"], "access_token");
    h.shutdown().await;
}

#[tokio::test]
async fn inactive_token_is_401_and_missing_scope_403() {
    let h = Harness::start_with(options()).await;
    let r = h.get("/orders/1", Some("no-such-token")).await;
    assert_eq!(r.status(), 401);
    let expired = h.token_expiring_in("bob", &["orders.read"], -5);
    assert_eq!(h.get("/orders/1", Some(&expired)).await.status(), 401);
    let reader = h.token("carol", &["orders.read"]);
    let r = h
        .client
        .post(h.url("/orders"))
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(h.upstream_requests(), 0);
    h.shutdown().await;
}

#[tokio::test]
async fn dpop_binding_comes_from_cnf_jkt_in_a_single_introspection() {
    let h = Harness::start_with(options()).await;
    let holder = ProofSigner::generate(Alg::ES256).unwrap();
    let token = h.emulator.add_token(TokenSpec {
        dpop_jkt: Some(holder.thumbprint()),
        ..spec("dave", &["orders.read"], 3600)
    });
    let url = h.url("/orders/1");
    for _ in 0..5 {
        let proof = holder.sign(&ProofClaims::new("GET", &url, Some(&token), now()));
        let r = h
            .client
            .get(&url)
            .header("authorization", format!("DPoP {token}"))
            .header("dpop", proof)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    assert_eq!(
        h.introspections(),
        1,
        "one call learns the token and its binding"
    );
    // Another key's valid proof is refused from cache; so is the Bearer downgrade.
    let thief = ProofSigner::generate(Alg::ES256).unwrap();
    let proof = thief.sign(&ProofClaims::new("GET", &url, Some(&token), now()));
    let r = h
        .client
        .get(&url)
        .header("authorization", format!("DPoP {token}"))
        .header("dpop", proof)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains(r#"error="invalid_token""#)
    );
    let r = h.get("/orders/1", Some(&token)).await;
    assert_eq!(r.status(), 401);
    assert_eq!(h.introspections(), 1);
    assert_eq!(h.upstream_requests(), 5);
    h.shutdown().await;
}

#[tokio::test]
async fn unbound_token_with_dpop_scheme_is_refused() {
    let h = Harness::start_with(options()).await;
    let token = h.token("erin", &["orders.read"]);
    let key = ProofSigner::generate(Alg::ES256).unwrap();
    let url = h.url("/orders/1");
    let proof = key.sign(&ProofClaims::new("GET", &url, Some(&token), now()));
    let r = h
        .client
        .get(&url)
        .header("authorization", format!("DPoP {token}"))
        .header("dpop", proof)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(h.get("/orders/1", Some(&token)).await.status(), 200);
    assert_eq!(h.introspections(), 1);
    h.shutdown().await;
}

#[tokio::test]
async fn unreachable_rfc7662_endpoint_fails_closed() {
    let closed = crate::support::closed_port().await;
    let h = Harness::start_with(Options {
        authlete_url: Some(format!("http://{closed}")),
        ..options()
    })
    .await;
    let token = h.token("frank", &["orders.read"]);
    let r = h.get("/orders/1", Some(&token)).await;
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(h.upstream_requests(), 0);
    h.shutdown().await;
}
