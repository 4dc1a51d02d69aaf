//! Real-socket tests of the emulator's HTTP surface: paths, authentication, body formats, verdicts,
//! faults and the control API.

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

use super::{Emulator, EmulatorConfig, Fault, now_ms, percent_decode};

const V3_AUTH: &str = "Bearer emulator-service-token";

struct Harness {
    emulator: Emulator,
    base: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

async fn start() -> Harness {
    let emulator = Emulator::new(EmulatorConfig::default());
    let addr = emulator.clone().spawn().await.unwrap();
    Harness {
        emulator,
        base: format!("http://{addr}"),
        client: Client::builder(TokioExecutor::new()).build_http(),
    }
}

impl Harness {
    async fn send(
        &self,
        method: Method,
        path: &str,
        auth: Option<&str>,
        content_type: &str,
        body: impl Into<Bytes>,
    ) -> Reply {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header(CONTENT_TYPE, content_type);
        if let Some(auth) = auth {
            req = req.header(AUTHORIZATION, auth);
        }
        let resp = self
            .client
            .request(req.body(Full::new(body.into())).unwrap())
            .await
            .unwrap();
        let (parts, body) = resp.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body: serde_json::from_slice(&bytes).unwrap(),
        }
    }

    /// v3 introspection with a JSON body.
    async fn introspect(&self, body: Value) -> Reply {
        let path = "/api/1000000001/auth/introspection";
        let body = body.to_string();
        self.send(Method::POST, path, Some(V3_AUTH), "application/json", body)
            .await
    }

    fn token(&self, spec: Value) -> String {
        self.emulator
            .add_token(serde_json::from_value(spec).unwrap())
    }
}

#[tokio::test]
async fn v3_valid_token_is_ok_with_authlete_fields() {
    let h = start().await;
    let token = h.token(json!({
        "subject": "john", "client_id": 26478243745571_i64, "client_id_alias": "my-client",
        "scopes": ["history.read", "timeline.read"], "refreshable": true
    }));
    let before = now_ms();
    let r = h
        .introspect(json!({"token": token, "scopes": ["history.read"], "subject": "john"}))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers[CONTENT_TYPE], "application/json");
    let b = &r.body;
    assert_eq!(b["action"], "OK");
    assert_eq!(b["resultCode"], "A056001");
    assert_eq!(b["resultMessage"], "[A056001] The access token is valid.");
    assert_eq!(b["responseContent"], r#"Bearer error="invalid_request""#);
    assert_eq!(b["clientId"], json!(26478243745571_i64));
    assert_eq!(b["clientIdAlias"], "my-client");
    assert_eq!(b["clientIdAliasUsed"], false);
    assert_eq!(b["subject"], "john");
    assert_eq!(b["scopes"], json!(["history.read", "timeline.read"]));
    assert_eq!(b["grantType"], "AUTHORIZATION_CODE");
    for flag in ["existent", "usable", "sufficient", "refreshable"] {
        assert_eq!(b[flag], true, "{flag}");
    }
    // Epoch milliseconds, one hour ahead.
    let expires_at = b["expiresAt"].as_i64().unwrap();
    assert!((before + 3_590_000..=now_ms() + 3_600_000).contains(&expires_at));
    assert_eq!(h.emulator.introspection_calls(), 1);
    assert_eq!(h.emulator.requests()[0]["token"], json!(token));
}

#[tokio::test]
async fn unknown_and_missing_tokens() {
    let h = start().await;
    let r = h.introspect(json!({"token": "nope"})).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["action"], "UNAUTHORIZED");
    assert_eq!(r.body["resultCode"], "A057302");
    assert_eq!(r.body["existent"], false);
    assert_eq!(
        r.body["responseContent"],
        r#"Bearer error="invalid_token",error_description="[A057302] The access token does not exist.",error_uri="https://docs.authlete.com/#A057302""#
    );
    // The Java SDK sends nulls and zeros for unset fields; they must not count as requested.
    let r = h
        .introspect(json!({"token": null, "scopes": null, "maxAge": 0}))
        .await;
    assert_eq!(r.body["action"], "BAD_REQUEST");
    assert_eq!(r.body["resultCode"], "A057301");
}

#[tokio::test]
async fn expired_token_is_reported_once_then_deleted() {
    let h = start().await;
    let refreshable = h.token(json!({"subject": "john", "expires_in": -5, "refreshable": true}));
    let r = h.introspect(json!({"token": refreshable})).await;
    assert_eq!(r.body["action"], "UNAUTHORIZED");
    assert_eq!(r.body["resultCode"], "A065301");
    assert_eq!(r.body["existent"], true);
    assert_eq!(r.body["usable"], false);
    assert_eq!(r.body["refreshable"], true);
    let r = h.introspect(json!({"token": refreshable})).await;
    assert_eq!(r.body["resultCode"], "A057302");
    assert_eq!(r.body["existent"], false);

    let plain = h.token(json!({"expires_in": -1}));
    let r = h.introspect(json!({"token": plain})).await;
    assert_eq!(r.body["resultCode"], "A065303");
    assert_eq!(
        r.body["resultMessage"],
        "[A065303] The access token has expired."
    );
}

#[tokio::test]
async fn missing_scope_is_forbidden_with_scope_challenge() {
    let h = start().await;
    let token = h.token(json!({"subject": "abc", "scopes": ["profile", "saying"]}));
    let r = h
        .introspect(json!({"token": token, "scopes": ["profile", "unknown"]}))
        .await;
    assert_eq!(r.body["action"], "FORBIDDEN");
    assert_eq!(r.body["resultCode"], "A064302");
    assert_eq!(r.body["sufficient"], false);
    assert_eq!(r.body["usable"], true);
    assert_eq!(
        r.body["responseContent"],
        r#"Bearer error="insufficient_scope",error_description="[A064302] The access token does not cover the required scope 'unknown'.",error_uri="https://docs.authlete.com/#A064302",scope="profile unknown""#
    );
    let r = h
        .introspect(json!({"token": token, "subject": "someone-else"}))
        .await;
    assert_eq!(r.body["action"], "FORBIDDEN");
    assert_eq!(r.body["resultCode"], "A066302");
    assert!(
        r.body["responseContent"]
            .as_str()
            .unwrap()
            .starts_with(r#"Bearer error="invalid_request","#)
    );
}

#[tokio::test]
async fn v2_basic_auth_is_accepted_and_bearer_is_not() {
    let h = start().await;
    let token = h.token(json!({"scopes": ["a"]}));
    let basic = format!("Basic {}", STANDARD.encode("1000000001:emulator-secret"));
    let body = json!({"token": token}).to_string();
    let path = "/api/auth/introspection";
    let r = h
        .send(
            Method::POST,
            path,
            Some(&basic),
            "application/json",
            body.clone(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["action"], "OK");
    // No subject: a client-credentials token.
    assert_eq!(r.body["grantType"], "CLIENT_CREDENTIALS");
    assert!(r.body.get("subject").is_none());

    let wrong = format!("Basic {}", STANDARD.encode("1000000001:wrong"));
    for auth in [wrong.as_str(), V3_AUTH] {
        let r = h
            .send(
                Method::POST,
                path,
                Some(auth),
                "application/json",
                body.clone(),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{auth}");
        assert_eq!(r.body["resultCode"], "A001203");
        assert!(r.body.get("action").is_none());
    }
}

#[tokio::test]
async fn bad_api_credentials_are_rejected_before_the_token_is_looked_at() {
    let h = start().await;
    let token = h.token(json!({}));
    let body = json!({"token": token}).to_string();
    let v3 = "/api/1000000001/auth/introspection";
    let ct = "application/json";

    let r = h.send(Method::POST, v3, None, ct, body.clone()).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.body,
        json!({"resultCode": "A001202", "resultMessage": "[A001202] /auth/introspection, Authorization header is missing."})
    );
    for auth in ["Bearer wrong-token", "Bearer", "Basic Zm9vOmJhcg=="] {
        let r = h.send(Method::POST, v3, Some(auth), ct, body.clone()).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{auth}");
        assert_eq!(r.body["resultCode"], "A001203", "{auth}");
    }
    let other = "/api/999/auth/introspection";
    let r = h.send(Method::POST, other, Some(V3_AUTH), ct, body).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.body["resultMessage"].as_str().unwrap().contains("999"));
    assert_eq!(h.emulator.introspection_calls(), 5);
}

#[tokio::test]
async fn http500_fault_then_recovery() {
    let h = start().await;
    let token = h.token(json!({}));
    h.emulator.set_fault(Fault::Http500);
    let r = h.introspect(json!({"token": token})).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        r.body,
        json!({"resultCode": "A001101", "resultMessage": "[A001101] /auth/introspection, Authlete Server error."})
    );
    h.emulator.set_fault(Fault::Http401);
    let r = h.introspect(json!({"token": token})).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.body["resultCode"], "A001202");
    h.emulator.set_fault(Fault::None);
    let r = h.introspect(json!({"token": token})).await;
    assert_eq!(r.body["action"], "OK");
    assert_eq!(h.emulator.introspection_calls(), 3);
}

#[tokio::test]
async fn action_internal_server_error_fault() {
    let h = start().await;
    let token = h.token(json!({}));
    h.emulator.set_fault(Fault::ActionInternalServerError);
    let r = h.introspect(json!({"token": token})).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["action"], "INTERNAL_SERVER_ERROR");
    assert_eq!(r.body["resultCode"], "A057101");
    assert_eq!(
        r.body["responseContent"],
        r#"Bearer error="server_error",error_description="[A057101] Failed to get information about the access token from the database.",error_uri="https://docs.authlete.com/#A057101""#
    );
}

#[tokio::test]
async fn reset_fault_drops_the_connection_and_slow_fault_delays() {
    let h = start().await;
    let token = h.token(json!({}));
    h.emulator.set_fault(Fault::Reset);
    let req = Request::post(format!("{}/api/1000000001/auth/introspection", h.base))
        .header(AUTHORIZATION, V3_AUTH)
        .body(Full::new(Bytes::from(json!({"token": token}).to_string())))
        .unwrap();
    assert!(h.client.request(req).await.is_err());
    assert_eq!(h.emulator.introspection_calls(), 1);

    h.emulator
        .set_fault(Fault::Slow(Duration::from_millis(150)));
    let started = Instant::now();
    let r = h.introspect(json!({"token": token})).await;
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert_eq!(r.body["action"], "OK");
}

#[tokio::test]
async fn form_body_is_parsed_like_json() {
    let h = start().await;
    let token = h.token(json!({"subject": "john@example.com", "scopes": ["a", "b c"]}));
    let form = format!("token={token}&scopes=a+b&subject=john%40example.com&maxAge=0");
    let path = "/api/1000000001/auth/introspection";
    let ct = "application/x-www-form-urlencoded";
    let r = h.send(Method::POST, path, Some(V3_AUTH), ct, form).await;
    // `scopes=a+b` is two scopes, and the token has `a` but not `b`.
    assert_eq!(r.body["resultCode"], "A064302");
    let recorded = h.emulator.requests().pop().unwrap();
    assert_eq!(recorded["scopes"], json!(["a", "b"]));
    assert_eq!(recorded["subject"], "john@example.com");

    let form = format!("token={token}&scopes=a&subject=john%40example.com");
    let r = h.send(Method::POST, path, Some(V3_AUTH), ct, form).await;
    assert_eq!(r.body["action"], "OK");
}

#[tokio::test]
async fn malformed_and_oversized_bodies() {
    let h = start().await;
    let path = "/api/1000000001/auth/introspection";
    let ct = "application/json";
    for body in ["{not json", "[1,2]", ""] {
        let r = h.send(Method::POST, path, Some(V3_AUTH), ct, body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body:?}");
        assert!(r.body["resultCode"].is_string());
    }
    let big = vec![b' '; (1 << 20) + 1];
    let r = h.send(Method::POST, path, Some(V3_AUTH), ct, big).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(h.emulator.requests().is_empty());
}

#[tokio::test]
async fn dpop_bound_token_needs_a_valid_proof_from_its_key() {
    let h = start().await;
    let token = h.token(json!({"dpop_jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}));
    let r = h.introspect(json!({"token": token})).await;
    assert_eq!(r.body["action"], "UNAUTHORIZED");
    assert_eq!(r.body["resultCode"], "A065308");
    assert_eq!(
        r.body["responseContent"],
        r#"DPoP error="invalid_token",error_description="[A065308] Expected a DPoP header but none was provided.",error_uri="https://docs.authlete.com/#A065308",algs="ES256 ES384 PS256 RS256 EdDSA""#
    );
    let r = h
        .introspect(json!({"token": token, "dpop": "eyJ0eXAiOiJkcG9wK2p3dCJ9.e30.sig", "htm": "GET", "htu": "https://api.example.com/x"}))
        .await;
    assert_eq!(r.body["resultCode"], "A065310");
    let challenge = r.body["responseContent"].as_str().unwrap();
    assert!(challenge.starts_with(r#"DPoP error="invalid_dpop_proof","#));

    use crate::auth::dpop::{Alg, ProofClaims, ProofSigner};
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let holder = ProofSigner::generate(Alg::ES256).unwrap();
    let bound = h.token(json!({"dpop_jkt": holder.thumbprint()}));
    let htu = "https://api.example.com/x";
    let proof = holder.sign(&ProofClaims::new("GET", htu, Some(&bound), now));
    let r = h
        .introspect(json!({"token": bound, "dpop": proof, "htm": "GET", "htu": htu}))
        .await;
    assert_eq!(r.body["action"], "OK", "{}", r.body);
    // The same proof again is a replay.
    let r = h
        .introspect(json!({"token": bound, "dpop": proof, "htm": "GET", "htu": htu}))
        .await;
    assert_eq!(r.body["resultCode"], "A065310");
    // A valid proof from another key: A065309.
    let thief = ProofSigner::generate(Alg::ES256).unwrap();
    let proof = thief.sign(&ProofClaims::new("GET", htu, Some(&bound), now));
    let r = h
        .introspect(json!({"token": bound, "dpop": proof, "htm": "GET", "htu": htu}))
        .await;
    assert_eq!(r.body["resultCode"], "A065309");
    // A proof for another method.
    let proof = holder.sign(&ProofClaims::new("GET", htu, Some(&bound), now));
    let r = h
        .introspect(json!({"token": bound, "dpop": proof, "htm": "POST", "htu": htu}))
        .await;
    assert_eq!(r.body["resultCode"], "A065310");
}

#[tokio::test]
async fn certificate_bound_token() {
    let h = start().await;
    let der = b"not really DER, but the emulator only hashes it";
    let thumbprint =
        URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der));
    let pem = format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        STANDARD.encode(der)
    );
    let token = h.token(json!({"certificate_thumbprint": thumbprint}));
    let r = h.introspect(json!({"token": token})).await;
    assert_eq!(r.body["resultCode"], "A065304");
    let other = "-----BEGIN CERTIFICATE-----\nb3RoZXI=\n-----END CERTIFICATE-----";
    let r = h
        .introspect(json!({"token": token, "clientCertificate": other}))
        .await;
    assert_eq!(r.body["resultCode"], "A065305");
    let r = h
        .introspect(json!({"token": token, "clientCertificate": pem}))
        .await;
    assert_eq!(r.body["action"], "OK");
    assert_eq!(r.body["certificateThumbprint"], json!(thumbprint));
}

#[tokio::test]
async fn control_api_creates_tokens_sets_faults_and_counts_calls() {
    let h = start().await;
    let spec =
        json!({"subject": "alice", "client_id": 7, "scopes": ["orders.read"], "expires_in": 60});
    let r = h
        .send(
            Method::POST,
            "/emulator/tokens",
            None,
            "application/json",
            spec.to_string(),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let token = r.body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(token.len(), 43);
    assert_eq!(r.body["expires_in"], 60);
    assert_eq!(r.body["client_id"], 7);
    let expires_at = r.body["expires_at"].as_i64().unwrap();
    assert!((expires_at - now_ms() / 1000 - 60).abs() <= 2);

    let r = h
        .introspect(json!({"token": token, "scopes": ["orders.read"]}))
        .await;
    assert_eq!(r.body["action"], "OK");
    assert_eq!(r.body["subject"], "alice");

    let fault = json!({"mode": "http500"}).to_string();
    let r = h
        .send(
            Method::POST,
            "/emulator/faults",
            None,
            "application/json",
            fault,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = h.introspect(json!({"token": token})).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    // Faults never apply to the control API itself.
    let r = h
        .send(Method::GET, "/emulator/stats", None, "application/json", "")
        .await;
    assert_eq!(r.body, json!({"introspection_calls": 2}));
    let bad = json!({"mode": "explode"}).to_string();
    let r = h
        .send(
            Method::POST,
            "/emulator/faults",
            None,
            "application/json",
            bad,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn tokens_file_accepts_yaml_and_json() {
    let emulator = Emulator::new(EmulatorConfig::default());
    let dir = std::env::temp_dir();
    let yaml = dir.join(format!("tokengate-emu-{}.yaml", std::process::id()));
    std::fs::write(
        &yaml,
        "- access_token: yaml-token\n  subject: bob\n  scopes: [a, b]\n- subject: carol\n",
    )
    .unwrap();
    let json_file = dir.join(format!("tokengate-emu-{}.json", std::process::id()));
    std::fs::write(
        &json_file,
        r#"[{"access_token": "json-token", "expires_in": 10}]"#,
    )
    .unwrap();
    assert_eq!(emulator.load_tokens_file(&yaml), Ok(2));
    assert_eq!(emulator.load_tokens_file(&json_file), Ok(1));
    std::fs::write(&yaml, "- subject: [not, a, string]\n").unwrap();
    assert!(emulator.load_tokens_file(&yaml).is_err());
    std::fs::write(&yaml, "- scope: [a]\n").unwrap();
    let error = emulator.load_tokens_file(&yaml).unwrap_err();
    assert!(error.contains("scope"), "{error}");
    let _ = std::fs::remove_file(&yaml);
    let _ = std::fs::remove_file(&json_file);

    let addr = emulator.clone().spawn().await.unwrap();
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let req = Request::post(format!("http://{addr}/api/1000000001/auth/introspection"))
        .header(AUTHORIZATION, V3_AUTH)
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(
            r#"{"token":"yaml-token","scopes":["b"]}"#,
        )))
        .unwrap();
    let body = client.request(req).await.unwrap().into_body();
    let body: Value = serde_json::from_slice(&body.collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["action"], "OK");
    assert_eq!(body["subject"], "bob");
}

#[tokio::test]
async fn h2c_is_served() {
    let h = start().await;
    let token = h.token(json!({}));
    let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    let req = Request::post(format!("{}/api/1000000001/auth/introspection", h.base))
        .header(AUTHORIZATION, V3_AUTH)
        .body(Full::new(Bytes::from(json!({"token": token}).to_string())))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    assert_eq!(resp.version(), hyper::Version::HTTP_2);
    let body: Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["action"], "OK");
}

#[test]
fn percent_decoding_never_panics_and_keeps_stray_percent_signs() {
    assert_eq!(percent_decode(b"a+b%20c%2Bd"), "a b c+d");
    assert_eq!(percent_decode(b"%"), "%");
    assert_eq!(percent_decode(b"%4"), "%4");
    assert_eq!(percent_decode(b"%zz%41"), "%zzA");
    assert_eq!(percent_decode(b"%ff"), "\u{fffd}");
}

#[tokio::test]
async fn chunked_oversized_body_is_refused() {
    let h = start().await;
    // A streamed body has no content-length, so the limit must hold while reading.
    let chunks = (0..17).map(|_| {
        Ok::<_, std::convert::Infallible>(hyper::body::Frame::data(Bytes::from(vec![
            b' ';
            64 * 1024
        ])))
    });
    let body = http_body_util::StreamBody::new(futures_util::stream::iter(chunks));
    let client: Client<HttpConnector, http_body_util::StreamBody<_>> =
        Client::builder(TokioExecutor::new()).build_http();
    let req = Request::post(format!("{}/api/1000000001/auth/introspection", h.base))
        .header(AUTHORIZATION, V3_AUTH)
        .body(body)
        .unwrap();
    let resp = client.request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
}
