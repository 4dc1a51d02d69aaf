//! Test harness: starts the emulator, the echo upstream and the gateway on loopback ports and
//! tears them down. Nothing here sleeps to wait for start-up: every listener is bound before
//! its address is handed out.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use tokengate::app::{App, ReloadHandle};
use tokengate::config::Config;
use tokengate::demo::echo::EchoUpstream;
use tokengate::demo::emulator::{Emulator, EmulatorConfig, TokenSpec};
use tokengate::metrics::Metrics;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// Knobs for the generated configuration.
#[derive(Clone)]
pub struct Options {
    /// 3 (Bearer service token) or 2 (Basic key:secret).
    pub api_version: u8,
    pub timeout_ms: u64,
    pub max_ttl_secs: u64,
    pub negative_ttl_secs: u64,
    /// Replaces the Authlete base URL (e.g. a closed port) when set.
    pub authlete_url: Option<String>,
    /// Replaces the upstream URL when set.
    pub upstream_url: Option<String>,
    pub upstream_timeout_ms: u64,
    /// Extra top-level YAML (e.g. `trusted_proxies: ["127.0.0.1"]`).
    pub extra: String,
    /// Replaces the default routes when set (YAML list items under `routes:`).
    pub routes: Option<String>,
    /// Use the emulator's generic RFC 7662 endpoint instead of Authlete's API.
    pub rfc7662: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            api_version: 3,
            timeout_ms: 1000,
            max_ttl_secs: 300,
            negative_ttl_secs: 5,
            authlete_url: None,
            upstream_url: None,
            upstream_timeout_ms: 5000,
            extra: String::new(),
            routes: None,
            rfc7662: false,
        }
    }
}

/// The default routes every test can rely on.
pub const DEFAULT_ROUTES: &str = r#"
  - name: public
    path: /public/**
    auth: none
    upstream: app
  - name: hosted
    host: api.example.com
    path: /hosted/**
    upstream: app
  - name: orders-read
    path: /orders/**
    methods: [GET, HEAD]
    upstream: app
    scopes: [orders.read]
  - name: orders-write
    path: /orders/**
    methods: [POST, PUT, DELETE]
    upstream: app
    scopes: [orders.write]
  - name: me
    path: /me
    upstream: app
  - name: upload
    path: /upload/**
    upstream: app
  - name: download
    path: /download/*
    upstream: app
  - name: forward
    path: /fwd/**
    upstream: app
    forward_token: true
  - name: slow
    path: /slow/*
    upstream: app
  - name: status
    path: /status/*
    auth: none
    upstream: app
  - name: ws
    path: /echo-headers-back
    auth: none
    upstream: app
"#;

/// The gateway config text for the given emulator and upstream.
pub fn config_yaml(emulator: SocketAddr, upstream: SocketAddr, o: &Options) -> String {
    let authlete_url = o
        .authlete_url
        .clone()
        .unwrap_or_else(|| format!("http://{emulator}"));
    let upstream_url = o
        .upstream_url
        .clone()
        .unwrap_or_else(|| format!("http://{upstream}"));
    let credentials = if o.api_version == 2 {
        "    api_version: 2\n    api_key: \"1000000001\"\n    api_secret: \"emulator-secret\"\n"
            .to_owned()
    } else {
        "    api_version: 3\n    service_id: \"1000000001\"\n    access_token: \"emulator-service-token\"\n"
            .to_owned()
    };
    let backend = if o.rfc7662 {
        format!(
            "  rfc7662:\n    endpoint: \"{authlete_url}{}\"\n    client_id: \"1000000001\"\n    client_secret: \"emulator-secret\"\n",
            tokengate::demo::emulator::RFC7662_PATH
        )
    } else {
        format!("  authlete:\n    base_url: \"{authlete_url}\"\n{credentials}")
    };
    format!(
        r#"listen: "127.0.0.1:0"
admin_listen: "127.0.0.1:0"
introspection:
{backend}  timeout_ms: {timeout}
  cache:
    max_entries: 1000
    max_ttl_secs: {max_ttl}
    negative_ttl_secs: {neg_ttl}
upstreams:
  app:
    url: "{upstream_url}"
    timeout_ms: {up_timeout}
{extra}
routes:{routes}"#,
        timeout = o.timeout_ms,
        max_ttl = o.max_ttl_secs,
        neg_ttl = o.negative_ttl_secs,
        up_timeout = o.upstream_timeout_ms,
        extra = o.extra,
        routes = o.routes.as_deref().unwrap_or(DEFAULT_ROUTES),
    )
}

/// A running gateway with its emulator and upstream.
pub struct Harness {
    pub emulator: Emulator,
    pub emulator_addr: SocketAddr,
    pub upstream: EchoUpstream,
    pub upstream_addr: SocketAddr,
    pub addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub reload: ReloadHandle,
    pub metrics: Arc<Metrics>,
    pub client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Harness {
    pub async fn start() -> Self {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options) -> Self {
        let emulator = Emulator::new(EmulatorConfig::default());
        let emulator_addr = emulator.clone().spawn().await.expect("emulator starts");
        let upstream = EchoUpstream::new();
        let upstream_addr = upstream.clone().spawn().await.expect("upstream starts");
        let yaml = config_yaml(emulator_addr, upstream_addr, &options);
        let config = Config::from_yaml(&yaml, "test.yaml", |_| None)
            .unwrap_or_else(|e| panic!("config: {e}\n{yaml}"));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let admin = TcpListener::bind("127.0.0.1:0").await.expect("bind admin");
        let addr = listener.local_addr().expect("addr");
        let admin_addr = admin.local_addr().expect("admin addr");
        let app = App::with_listeners(config, listener, Some(admin)).expect("app");
        let reload = app.reload_handle();
        let metrics = app.metrics();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(app.run(async move {
            let _ = stopped.await;
        }));
        Self {
            emulator,
            emulator_addr,
            upstream,
            upstream_addr,
            addr,
            admin_addr,
            reload,
            metrics,
            client: client(),
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{}", self.addr, path_and_query)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{}", self.admin_addr, path)
    }

    /// Mints a token in the emulator valid for an hour.
    pub fn token(&self, subject: &str, scopes: &[&str]) -> String {
        self.emulator.add_token(spec(subject, scopes, 3600))
    }

    pub fn token_expiring_in(&self, subject: &str, scopes: &[&str], secs: i64) -> String {
        self.emulator.add_token(spec(subject, scopes, secs))
    }

    pub fn introspections(&self) -> u64 {
        self.emulator.introspection_calls()
    }

    pub fn upstream_requests(&self) -> usize {
        self.upstream.request_count()
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut request = self.client.get(self.url(path));
        if let Some(t) = token {
            request = request.header("authorization", format!("Bearer {t}"));
        }
        request.send().await.expect("request")
    }

    pub async fn metrics_text(&self) -> String {
        self.client
            .get(self.admin_url("/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text")
    }

    /// Stops the gateway and waits for it to drain.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

pub fn spec(subject: &str, scopes: &[&str], expires_in: i64) -> TokenSpec {
    TokenSpec {
        access_token: None,
        subject: Some(subject.into()),
        client_id: Some(1001),
        client_id_alias: None,
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        expires_in: Some(expires_in),
        dpop_jkt: None,
        certificate_thumbprint: None,
        refreshable: None,
    }
}

/// An HTTP/1.1 client with no proxy, no redirects, no pooling surprises.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// The echo upstream's JSON view of a request: header values by lower-case name.
pub fn echoed_headers(body: &serde_json::Value, name: &str) -> Vec<String> {
    body["headers"]
        .as_array()
        .map(|pairs| {
            pairs
                .iter()
                .filter(|p| p[0].as_str() == Some(name))
                .filter_map(|p| p[1].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// A closed loopback port (bound, then released).
pub async fn closed_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let a = l.local_addr().expect("addr");
    drop(l);
    a
}
