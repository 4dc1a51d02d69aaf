//! TLS termination (rustls, ALPN h2/http1.1), RFC 8705 certificate-bound tokens over mutual TLS,
//! forwarded client-certificate headers (only from trusted proxies), and HTTP/2 / TLS towards the
//! upstream. A fresh test PKI (a CA, a server certificate for `localhost` and 127.0.0.1, two
//! client certificates) is written per test into its own directory under the temp dir.

use crate::support::{Harness, Options, config_yaml, echoed_headers, spec};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokengate::app::App;
use tokengate::config::Config;
use tokengate::demo::echo::EchoUpstream;
use tokengate::demo::emulator::{Emulator, EmulatorConfig};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

// ---------------------------------------------------------------------------------------------
// Test PKI

/// An end-entity certificate with its key.
struct Leaf {
    cert_pem: String,
    key_pem: String,
    der: Vec<u8>,
}

impl Leaf {
    fn identity(&self) -> reqwest::Identity {
        reqwest::Identity::from_pem(format!("{}{}", self.cert_pem, self.key_pem).as_bytes())
            .expect("identity")
    }

    /// RFC 8705 `x5t#S256`: base64url (no padding) SHA-256 of the DER certificate.
    fn thumbprint(&self) -> String {
        URL_SAFE_NO_PAD
            .encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &self.der).as_ref())
    }

    /// RFC 9440 `Client-Cert` form: `:base64(DER):`.
    fn rfc9440(&self) -> String {
        format!(":{}:", STANDARD.encode(&self.der))
    }
}

struct Pki {
    dir: PathBuf,
    ca_pem: String,
    server: Leaf,
    client_a: Leaf,
    client_b: Leaf,
}

static PKI_SEQ: AtomicUsize = AtomicUsize::new(0);

fn leaf(names: &[&str], cn: &str, purpose: ExtendedKeyUsagePurpose, ca: &Issuer<KeyPair>) -> Leaf {
    let mut params =
        CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .expect("params");
    params.distinguished_name.push(DnType::CommonName, cn);
    params.use_authority_key_identifier_extension = true;
    params.key_usages.push(KeyUsagePurpose::DigitalSignature);
    params.extended_key_usages.push(purpose);
    let key = KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, ca).expect("sign");
    Leaf {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        der: cert.der().to_vec(),
    }
}

impl Pki {
    fn new() -> Self {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "tokengate test CA");
        ca_params.key_usages.push(KeyUsagePurpose::KeyCertSign);
        ca_params.key_usages.push(KeyUsagePurpose::CrlSign);
        ca_params.key_usages.push(KeyUsagePurpose::DigitalSignature);
        let ca_key = KeyPair::generate().expect("ca key");
        let ca_cert = ca_params.self_signed(&ca_key).expect("ca cert");
        let issuer = Issuer::new(ca_params, ca_key);
        let server = leaf(
            &["localhost", "127.0.0.1"],
            "localhost",
            ExtendedKeyUsagePurpose::ServerAuth,
            &issuer,
        );
        let client_a = leaf(
            &[],
            "client A",
            ExtendedKeyUsagePurpose::ClientAuth,
            &issuer,
        );
        let client_b = leaf(
            &[],
            "client B",
            ExtendedKeyUsagePurpose::ClientAuth,
            &issuer,
        );
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "tokengate-tls-{}-{}-{nanos}",
            std::process::id(),
            PKI_SEQ.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir(&dir).expect("fresh PKI directory");
        let pki = Self {
            dir,
            ca_pem: ca_cert.pem(),
            server,
            client_a,
            client_b,
        };
        pki.write("ca.pem", &pki.ca_pem);
        pki.write("server.pem", &pki.server.cert_pem);
        pki.write("server.key", &pki.server.key_pem);
        pki.write("client-a.key", &pki.client_a.key_pem);
        pki
    }

    fn write(&self, name: &str, contents: &str) {
        std::fs::write(self.dir.join(name), contents).expect("write PEM");
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// A `tls:` block; `client_ca` enables client certificates, `header` a forwarded-cert header.
    fn tls_yaml(&self, client_ca: bool, header: Option<&str>) -> String {
        let mut yaml = format!(
            "tls:\n  cert_file: \"{}\"\n  key_file: \"{}\"\n",
            self.path("server.pem"),
            self.path("server.key")
        );
        if client_ca {
            yaml.push_str(&format!("  client_ca_file: \"{}\"\n", self.path("ca.pem")));
        }
        if let Some(h) = header {
            yaml.push_str(&format!("  client_cert_header: \"{h}\"\n"));
        }
        yaml
    }

    fn ca_certificate(&self) -> reqwest::Certificate {
        reqwest::Certificate::from_pem(self.ca_pem.as_bytes()).expect("CA certificate")
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// ---------------------------------------------------------------------------------------------
// Clients and helpers

/// An https client that trusts only the test CA and resolves `localhost` to the gateway.
fn https_client(
    pki: &Pki,
    addr: SocketAddr,
    identity: Option<&Leaf>,
    http1_only: bool,
) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .tls_certs_only([pki.ca_certificate()])
        .resolve("localhost", addr);
    if let Some(leaf) = identity {
        builder = builder.identity(leaf.identity());
    }
    if http1_only {
        builder = builder.http1_only();
    }
    builder.build().expect("https client")
}

fn https_url(addr: SocketAddr, path: &str) -> String {
    format!("https://localhost:{}{path}", addr.port())
}

async fn get(
    client: &reqwest::Client,
    addr: SocketAddr,
    path: &str,
    token: &str,
) -> reqwest::Response {
    client
        .get(https_url(addr, path))
        .bearer_auth(token)
        .send()
        .await
        .expect("request")
}

async fn start_tls(pki: &Pki, client_ca: bool, extra: &str) -> Harness {
    Harness::start_with(Options {
        extra: format!("{}{extra}", pki.tls_yaml(client_ca, None)),
        ..Options::default()
    })
    .await
}

fn assert_invalid_token(response: &reqwest::Response, what: &str) {
    assert_eq!(response.status(), 401, "{what}");
    let challenge = response
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(
        challenge.starts_with("Bearer") && challenge.contains("error=\"invalid_token\""),
        "{what}: {challenge}"
    );
}

/// A token bound to `leaf` (RFC 8705 `x5t#S256`), valid for an hour.
fn bound_token(h: &Harness, leaf: &Leaf) -> String {
    let mut spec = spec("alice", &["orders.read"], 3600);
    spec.certificate_thumbprint = Some(leaf.thumbprint());
    h.emulator.add_token(spec)
}

/// The base64 body of a PEM certificate, without armour or whitespace.
fn pem_body(pem: &str) -> String {
    pem.lines()
        .filter(|l| !l.starts_with("-----"))
        .flat_map(|l| l.chars())
        .filter(|c| !c.is_whitespace())
        .collect()
}

/// The `clientCertificate` (as base64 DER) the emulator received in introspection request `i`.
fn introspected_certificate(h: &Harness, i: usize) -> Option<String> {
    h.emulator
        .requests()
        .get(i)
        .and_then(|r| r.get("clientCertificate"))
        .and_then(|c| c.as_str())
        .map(pem_body)
}

// ---------------------------------------------------------------------------------------------
// TLS termination

#[tokio::test]
async fn https_request_with_valid_token_negotiates_h2_or_http1_and_forwards_proto_https() {
    let pki = Pki::new();
    let h = start_tls(&pki, false, "").await;
    let token = h.token("alice", &["orders.read"]);

    let h2 = https_client(&pki, h.addr, None, false);
    let r = get(&h2, h.addr, "/orders/1", &token).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.version(), reqwest::Version::HTTP_2, "ALPN should pick h2");
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(
        echoed_headers(&body, "x-forwarded-proto"),
        vec!["https".to_owned()]
    );

    let h1 = https_client(&pki, h.addr, None, true);
    let r = get(&h1, h.addr, "/orders/2", &token).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.version(), reqwest::Version::HTTP_11);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(
        echoed_headers(&body, "x-forwarded-proto"),
        vec!["https".to_owned()]
    );
    assert_eq!(h.upstream_requests(), 2);
    h.shutdown().await;
}

#[tokio::test]
async fn plain_http_to_the_tls_port_fails_and_the_gateway_keeps_serving() {
    let pki = Pki::new();
    let h = start_tls(&pki, false, "").await;
    let token = h.token("alice", &["orders.read"]);

    let plain = crate::support::client();
    let result = plain
        .get(format!("http://{}/orders/1", h.addr))
        .bearer_auth(&token)
        .timeout(Duration::from_secs(20))
        .send()
        .await;
    if let Ok(response) = &result {
        assert_ne!(response.status(), 200, "plaintext must not be served");
    }
    assert_eq!(h.upstream_requests(), 0);
    assert_eq!(h.introspections(), 0);

    let client = https_client(&pki, h.addr, None, false);
    let r = get(&client, h.addr, "/orders/1", &token).await;
    assert_eq!(r.status(), 200);
    assert_eq!(h.upstream_requests(), 1);
    h.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Config errors

fn dummy_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9))
}

fn config_error(extra: String) -> String {
    let yaml = config_yaml(
        dummy_addr(),
        dummy_addr(),
        &Options {
            extra,
            ..Options::default()
        },
    );
    match Config::from_yaml(&yaml, "test.yaml", |_| None) {
        Ok(_) => panic!("config should be refused:\n{yaml}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_missing_certificate_file_is_a_config_error_naming_tls_cert_file() {
    let pki = Pki::new();
    let extra = format!(
        "tls:\n  cert_file: \"{}\"\n  key_file: \"{}\"\n",
        pki.path("does-not-exist.pem"),
        pki.path("server.key")
    );
    let e = config_error(extra);
    assert!(e.contains("tls.cert_file"), "{e}");
}

#[test]
fn a_key_that_does_not_match_the_certificate_is_a_config_error_naming_tls_key_file() {
    let pki = Pki::new();
    let extra = format!(
        "tls:\n  cert_file: \"{}\"\n  key_file: \"{}\"\n",
        pki.path("server.pem"),
        pki.path("client-a.key")
    );
    let e = config_error(extra);
    assert!(e.contains("tls.key_file"), "{e}");
}

#[test]
fn client_cert_header_without_trusted_proxies_is_a_config_error() {
    let pki = Pki::new();
    let e = config_error(pki.tls_yaml(true, Some("Client-Cert")));
    assert!(e.contains("tls.client_cert_header"), "{e}");
    // The same block with trusted proxies compiles (the files themselves are fine).
    let yaml = config_yaml(
        dummy_addr(),
        dummy_addr(),
        &Options {
            extra: format!(
                "{}trusted_proxies: [\"10.0.0.0/8\"]\n",
                pki.tls_yaml(true, Some("Client-Cert"))
            ),
            ..Options::default()
        },
    );
    if let Err(e) = Config::from_yaml(&yaml, "test.yaml", |_| None) {
        panic!("valid config refused: {e}");
    }
}

// ---------------------------------------------------------------------------------------------
// RFC 8705 certificate-bound tokens

#[tokio::test]
async fn bound_token_with_its_certificate_is_accepted_and_the_certificate_is_introspected() {
    let pki = Pki::new();
    let h = start_tls(&pki, true, "").await;
    let token = bound_token(&h, &pki.client_a);
    let a = https_client(&pki, h.addr, Some(&pki.client_a), false);

    let r = get(&a, h.addr, "/orders/1", &token).await;
    assert_eq!(r.status(), 200);
    assert_eq!(h.introspections(), 1);
    assert_eq!(
        introspected_certificate(&h, 0),
        Some(STANDARD.encode(&pki.client_a.der)),
        "the first introspection carries the connection's client certificate"
    );
    assert_eq!(h.upstream_requests(), 1);
    h.shutdown().await;
}

#[tokio::test]
async fn bound_token_without_a_client_certificate_is_invalid_token() {
    let pki = Pki::new();
    let h = start_tls(&pki, true, "").await;
    let token = bound_token(&h, &pki.client_a);
    let anonymous = https_client(&pki, h.addr, None, false);

    let r = get(&anonymous, h.addr, "/orders/1", &token).await;
    assert_invalid_token(&r, "no client certificate");
    assert_eq!(h.upstream_requests(), 0);

    // The refusal belonged to the presentation: the holder of A is still served.
    let a = https_client(&pki, h.addr, Some(&pki.client_a), false);
    let r = get(&a, h.addr, "/orders/1", &token).await;
    assert_eq!(r.status(), 200);
    assert_eq!(h.upstream_requests(), 1);
    h.shutdown().await;
}

#[tokio::test]
async fn bound_token_with_another_certificate_is_refused_and_does_not_poison_the_cache() {
    let pki = Pki::new();
    let h = start_tls(&pki, true, "").await;
    let token = bound_token(&h, &pki.client_a);
    let a = https_client(&pki, h.addr, Some(&pki.client_a), false);
    let b = https_client(&pki, h.addr, Some(&pki.client_b), false);

    // B first: Authlete answers A065305; this must not be remembered against the token.
    let r = get(&b, h.addr, "/orders/1", &token).await;
    assert_invalid_token(&r, "client certificate B");
    assert_eq!(h.introspections(), 1);
    assert_eq!(
        introspected_certificate(&h, 0),
        Some(STANDARD.encode(&pki.client_b.der))
    );
    assert_eq!(h.upstream_requests(), 0);

    let r = get(&a, h.addr, "/orders/2", &token).await;
    assert_eq!(r.status(), 200, "a refused presentation must not poison");
    assert_eq!(h.introspections(), 2);
    assert_eq!(h.upstream_requests(), 1);
    h.shutdown().await;
}

#[tokio::test]
async fn cached_binding_refuses_other_certificates_without_introspection() {
    let pki = Pki::new();
    let h = start_tls(&pki, true, "").await;
    let token = bound_token(&h, &pki.client_a);
    let a = https_client(&pki, h.addr, Some(&pki.client_a), false);
    let b = https_client(&pki, h.addr, Some(&pki.client_b), false);
    let anonymous = https_client(&pki, h.addr, None, false);

    let r = get(&a, h.addr, "/orders/1", &token).await;
    assert_eq!(r.status(), 200);
    assert_eq!(h.introspections(), 1);

    let r = get(&b, h.addr, "/orders/2", &token).await;
    assert_invalid_token(&r, "B against a cached binding to A");
    let r = get(&anonymous, h.addr, "/orders/3", &token).await;
    assert_invalid_token(&r, "no certificate against a cached binding to A");
    assert_eq!(h.introspections(), 1, "refused from the cache");
    assert_eq!(h.upstream_requests(), 1);

    let r = get(&a, h.addr, "/orders/4", &token).await;
    assert_eq!(r.status(), 200);
    assert_eq!(h.introspections(), 1, "A is served from the cache");
    assert_eq!(h.upstream_requests(), 2);
    h.shutdown().await;
}

#[tokio::test]
async fn unbound_token_works_with_or_without_a_client_certificate() {
    let pki = Pki::new();
    let h = start_tls(&pki, true, "").await;
    let with_cert = h.token("alice", &["orders.read"]);
    let without_cert = h.token("bob", &["orders.read"]);
    let a = https_client(&pki, h.addr, Some(&pki.client_a), false);
    let anonymous = https_client(&pki, h.addr, None, false);

    assert_eq!(get(&a, h.addr, "/orders/1", &with_cert).await.status(), 200);
    assert_eq!(
        get(&anonymous, h.addr, "/orders/2", &without_cert)
            .await
            .status(),
        200
    );
    // And each from the other side once cached.
    assert_eq!(
        get(&anonymous, h.addr, "/orders/3", &with_cert)
            .await
            .status(),
        200
    );
    assert_eq!(
        get(&a, h.addr, "/orders/4", &without_cert).await.status(),
        200
    );
    assert_eq!(h.upstream_requests(), 4);
    h.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Forwarded client-certificate headers

async fn start_with_cert_header(pki: &Pki, trusted: &str) -> Harness {
    Harness::start_with(Options {
        extra: format!(
            "{}trusted_proxies: [\"{trusted}\"]\n",
            pki.tls_yaml(true, Some("Client-Cert"))
        ),
        ..Options::default()
    })
    .await
}

#[tokio::test]
async fn certificate_header_from_an_untrusted_peer_is_ignored_and_not_forwarded() {
    let pki = Pki::new();
    let h = start_with_cert_header(&pki, "10.0.0.0/8").await;
    let bound = bound_token(&h, &pki.client_a);
    let unbound = h.token("bob", &["orders.read"]);
    let anonymous = https_client(&pki, h.addr, None, false);

    let r = anonymous
        .get(https_url(h.addr, "/orders/1"))
        .bearer_auth(&bound)
        .header("client-cert", pki.client_a.rfc9440())
        .send()
        .await
        .expect("request");
    assert_invalid_token(&r, "spoofed Client-Cert from an untrusted peer");
    assert_eq!(h.upstream_requests(), 0);
    assert!(
        h.emulator
            .requests()
            .iter()
            .all(|r| r.get("clientCertificate").is_none_or(|c| c.is_null())),
        "a spoofed certificate must not reach introspection: {:?}",
        h.emulator.requests()
    );

    for path in ["/public/x", "/orders/2"] {
        let r = anonymous
            .get(https_url(h.addr, path))
            .bearer_auth(&unbound)
            .header("client-cert", pki.client_a.rfc9440())
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), 200, "{path}");
        let body: serde_json::Value = r.json().await.expect("json");
        assert!(
            echoed_headers(&body, "client-cert").is_empty(),
            "{path}: the header reached the upstream: {body}"
        );
    }
    h.shutdown().await;
}

/// nginx's `$ssl_client_escaped_cert`: the PEM, percent-encoded.
fn url_escaped_pem(pem: &str) -> String {
    pem.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test]
async fn certificate_header_from_a_trusted_proxy_is_honoured_and_not_forwarded() {
    let pki = Pki::new();
    let h = start_with_cert_header(&pki, "127.0.0.1/32").await;
    let proxy = https_client(&pki, h.addr, None, false);

    let forms = [
        ("RFC 9440", pki.client_a.rfc9440()),
        ("escaped PEM", url_escaped_pem(&pki.client_a.cert_pem)),
    ];
    for (i, (form, value)) in forms.iter().enumerate() {
        let token = bound_token(&h, &pki.client_a);
        let r = proxy
            .get(https_url(h.addr, "/orders/1"))
            .bearer_auth(&token)
            .header("client-cert", value.as_str())
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), 200, "{form}");
        assert_eq!(
            introspected_certificate(&h, i),
            Some(STANDARD.encode(&pki.client_a.der)),
            "{form}: the forwarded certificate is the one introspected"
        );
        let body: serde_json::Value = r.json().await.expect("json");
        assert!(
            echoed_headers(&body, "client-cert").is_empty(),
            "{form}: the header reached the upstream: {body}"
        );
    }

    // A forwarded certificate that is not the bound one is still refused.
    let token = bound_token(&h, &pki.client_a);
    let r = proxy
        .get(https_url(h.addr, "/orders/1"))
        .bearer_auth(&token)
        .header("client-cert", pki.client_b.rfc9440())
        .send()
        .await
        .expect("request");
    assert_invalid_token(&r, "forwarded certificate B");
    assert_eq!(h.upstream_requests(), 2);
    h.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// HTTP/2 and TLS towards the upstream

/// A gateway built from hand-written YAML (for upstream settings the harness cannot express),
/// with its own emulator.
struct Custom {
    emulator: Emulator,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Custom {
    /// `upstream_settings` are YAML lines under `upstreams.app` (indented four spaces).
    async fn start(upstream_settings: &str) -> Self {
        let emulator = Emulator::new(EmulatorConfig::default());
        let emulator_addr = emulator.clone().spawn().await.expect("emulator starts");
        let yaml = format!(
            r#"listen: "127.0.0.1:0"
introspection:
  authlete:
    base_url: "http://{emulator_addr}"
    api_version: 3
    service_id: "1000000001"
    access_token: "emulator-service-token"
  timeout_ms: 1000
upstreams:
  app:
{upstream_settings}
routes:
  - name: public
    path: /public/**
    auth: none
    upstream: app
  - name: orders-read
    path: /orders/**
    upstream: app
    scopes: [orders.read]
"#
        );
        let config = Config::from_yaml(&yaml, "test.yaml", |_| None)
            .unwrap_or_else(|e| panic!("config: {e}\n{yaml}"));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = App::with_listeners(config, listener, None).expect("app");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(app.run(async move {
            let _ = stopped.await;
        }));
        Self {
            emulator,
            addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

#[tokio::test]
async fn http2_true_speaks_h2c_to_a_plain_upstream() {
    let upstream = EchoUpstream::new();
    let upstream_addr = upstream.clone().spawn().await.expect("upstream");
    let g = Custom::start(&format!(
        "    url: \"http://{upstream_addr}\"\n    timeout_ms: 5000\n    http2: true\n"
    ))
    .await;
    let token = g.emulator.add_token(spec("alice", &["orders.read"], 3600));
    let r = crate::support::client()
        .get(g.url("/orders/1"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200);
    let recorded = upstream.requests();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].version, "HTTP/2.0");
    g.shutdown().await;
}

/// A TLS upstream with the test server certificate, ALPN h2 and http/1.1, that answers 200 with
/// the request's HTTP version as its body. Returns its address and a count of served requests.
async fn spawn_tls_upstream(pki: &Pki) -> (SocketAddr, Arc<AtomicUsize>) {
    let certs = vec![CertificateDer::from(pki.server.der.clone())];
    let key = PrivateKeyDer::from_pem_slice(pki.server.key_pem.as_bytes()).expect("server key");
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .expect("server config");
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let served = Arc::new(AtomicUsize::new(0));
    let counter = served.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (acceptor, counter) = (acceptor.clone(), counter.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let service = service_fn(move |request: hyper::Request<Incoming>| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    let body = format!("{:?}", request.version());
                    async move {
                        Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from(body))))
                    }
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (addr, served)
}

#[tokio::test]
async fn https_upstream_with_ca_file_is_reached_over_h2_by_alpn() {
    let pki = Pki::new();
    let (upstream_addr, served) = spawn_tls_upstream(&pki).await;
    let g = Custom::start(&format!(
        "    url: \"https://127.0.0.1:{}\"\n    timeout_ms: 5000\n    ca_file: \"{}\"\n",
        upstream_addr.port(),
        pki.path("ca.pem")
    ))
    .await;
    let r = crate::support::client()
        .get(g.url("/public/version"))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.expect("body"), "HTTP/2.0");
    assert_eq!(served.load(Ordering::SeqCst), 1);
    g.shutdown().await;
}

#[tokio::test]
async fn https_upstream_with_an_unknown_ca_is_a_bad_gateway() {
    let pki = Pki::new();
    let (upstream_addr, served) = spawn_tls_upstream(&pki).await;
    let g = Custom::start(&format!(
        "    url: \"https://127.0.0.1:{}\"\n    timeout_ms: 5000\n",
        upstream_addr.port()
    ))
    .await;
    let r = crate::support::client()
        .get(g.url("/public/version"))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 502);
    assert_eq!(served.load(Ordering::SeqCst), 0);
    g.shutdown().await;
}
