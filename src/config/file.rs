//! The configuration file as written: raw serde structures with `deny_unknown_fields` at every
//! level (a typo must never silently weaken security). These types never leave `config/`;
//! `compile.rs` turns them into validated structures.
//!
//! Values that later validation may reject carry a [`Spanned`] so that the error can name the
//! line and column.

use serde::Deserialize;
use serde_saphyr::Spanned;
use std::collections::BTreeMap;

pub(crate) type S<T> = Spanned<T>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileConfig {
    pub listen: S<String>,
    #[serde(default)]
    pub admin_listen: Option<S<String>>,
    #[serde(default)]
    pub tls: Option<S<FileTls>>,
    pub introspection: FileIntrospection,
    #[serde(default)]
    pub dpop: Option<S<FileDpop>>,
    #[serde(default)]
    pub public_origin: Option<S<String>>,
    #[serde(default)]
    pub trusted_proxies: Vec<S<String>>,
    /// Data-plane worker threads (one event loop each); 0 = one per CPU.
    #[serde(default = "default_workers")]
    pub workers: S<u64>,
    #[serde(default)]
    pub identity_headers: FileIdentityHeaders,
    #[serde(default)]
    pub limits: FileLimits,
    pub upstreams: BTreeMap<String, FileUpstream>,
    pub routes: Vec<FileRoute>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileTls {
    pub cert_file: String,
    pub key_file: String,
    #[serde(default)]
    pub client_ca_file: Option<String>,
    /// Header in which a TLS-terminating proxy in `trusted_proxies` forwards the client
    /// certificate (RFC 9440 `Client-Cert`, or nginx's escaped PEM).
    #[serde(default)]
    pub client_cert_header: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileIntrospection {
    #[serde(default)]
    pub authlete: Option<S<FileAuthlete>>,
    #[serde(default)]
    pub rfc7662: Option<S<FileRfc7662>>,
    #[serde(default = "default_introspection_timeout_ms")]
    pub timeout_ms: S<u64>,
    #[serde(default)]
    pub cache: FileCache,
}

fn default_workers() -> S<u64> {
    unspanned(0)
}

fn default_introspection_timeout_ms() -> S<u64> {
    unspanned(2000)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileAuthlete {
    pub base_url: S<String>,
    #[serde(default = "default_api_version")]
    pub api_version: S<u8>,
    #[serde(default)]
    pub service_id: Option<S<String>>,
    #[serde(default)]
    pub access_token: Option<S<String>>,
    #[serde(default)]
    pub api_key: Option<S<String>>,
    #[serde(default)]
    pub api_secret: Option<S<String>>,
}

fn default_api_version() -> S<u8> {
    unspanned(3)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileRfc7662 {
    pub endpoint: S<String>,
    pub client_id: String,
    pub client_secret: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileCache {
    #[serde(default = "default_max_entries")]
    pub max_entries: S<u64>,
    #[serde(default = "default_max_ttl_secs")]
    pub max_ttl_secs: u64,
    #[serde(default = "default_negative_ttl_secs")]
    pub negative_ttl_secs: u64,
    #[serde(default)]
    pub negative_max_entries: Option<S<u64>>,
}

impl Default for FileCache {
    fn default() -> Self {
        Self {
            max_entries: default_max_entries(),
            max_ttl_secs: default_max_ttl_secs(),
            negative_ttl_secs: default_negative_ttl_secs(),
            negative_max_entries: None,
        }
    }
}

fn default_max_entries() -> S<u64> {
    unspanned(100_000)
}
fn default_max_ttl_secs() -> u64 {
    300
}
fn default_negative_ttl_secs() -> u64 {
    5
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileDpop {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default = "default_dpop_max_age")]
    pub max_age_secs: S<u64>,
    #[serde(default = "default_dpop_skew")]
    pub clock_skew_secs: S<u64>,
    #[serde(default)]
    pub algs: Option<S<Vec<String>>>,
    #[serde(default = "default_dpop_max_proof_bytes")]
    pub max_proof_bytes: S<u64>,
    #[serde(default)]
    pub nonce: Option<S<String>>,
}

fn default_dpop_max_age() -> S<u64> {
    unspanned(60)
}
fn default_dpop_skew() -> S<u64> {
    unspanned(5)
}
fn default_dpop_max_proof_bytes() -> S<u64> {
    unspanned(8192)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileIdentityHeaders {
    #[serde(default = "default_subject_header")]
    pub subject: S<String>,
    #[serde(default = "default_client_id_header")]
    pub client_id: S<String>,
    #[serde(default = "default_scopes_header")]
    pub scopes: S<String>,
}

impl Default for FileIdentityHeaders {
    fn default() -> Self {
        Self {
            subject: default_subject_header(),
            client_id: default_client_id_header(),
            scopes: default_scopes_header(),
        }
    }
}

fn default_subject_header() -> S<String> {
    unspanned("X-Auth-Subject".into())
}
fn default_client_id_header() -> S<String> {
    unspanned("X-Auth-Client-Id".into())
}
fn default_scopes_header() -> S<String> {
    unspanned("X-Auth-Scopes".into())
}

/// Request limits. DESIGN.md fixes the token limit at 4096 bytes; the rest are tokengate's own
/// safe defaults (README, "Behaviour choices").
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileLimits {
    #[serde(default = "default_max_token_bytes")]
    pub max_token_bytes: S<u64>,
    #[serde(default = "default_max_header_bytes")]
    pub max_header_bytes: S<u64>,
    #[serde(default = "default_max_uri_bytes")]
    pub max_uri_bytes: S<u64>,
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: S<u64>,
    #[serde(default = "default_header_read_timeout_ms")]
    pub header_read_timeout_ms: S<u64>,
    #[serde(default = "default_max_connections")]
    pub max_connections: S<u64>,
    #[serde(default = "default_idle_timeout_ms")]
    pub idle_timeout_ms: S<u64>,
}

impl Default for FileLimits {
    fn default() -> Self {
        Self {
            max_token_bytes: default_max_token_bytes(),
            max_header_bytes: default_max_header_bytes(),
            max_uri_bytes: default_max_uri_bytes(),
            max_body_bytes: default_max_body_bytes(),
            header_read_timeout_ms: default_header_read_timeout_ms(),
            max_connections: default_max_connections(),
            idle_timeout_ms: default_idle_timeout_ms(),
        }
    }
}

fn default_max_header_bytes() -> S<u64> {
    unspanned(32 * 1024)
}
fn default_max_uri_bytes() -> S<u64> {
    unspanned(8 * 1024)
}
fn default_max_body_bytes() -> S<u64> {
    unspanned(64 * 1024 * 1024)
}
fn default_header_read_timeout_ms() -> S<u64> {
    unspanned(10_000)
}
fn default_idle_timeout_ms() -> S<u64> {
    unspanned(60_000)
}
fn default_max_connections() -> S<u64> {
    unspanned(10_000)
}

fn default_max_token_bytes() -> S<u64> {
    unspanned(4096)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileUpstream {
    pub url: S<String>,
    #[serde(default = "default_upstream_timeout_ms")]
    pub timeout_ms: S<u64>,
    /// Extra CA certificates (PEM) trusted for an https upstream, besides the system roots.
    #[serde(default)]
    pub ca_file: Option<S<String>>,
    /// Speak HTTP/2 to the upstream: h2c with prior knowledge for http://, h2 only for https://.
    /// Without it, https upstreams get HTTP/2 when they offer it in ALPN, else HTTP/1.1.
    #[serde(default)]
    pub http2: bool,
}

fn default_upstream_timeout_ms() -> S<u64> {
    unspanned(30_000)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileRoute {
    pub name: S<String>,
    #[serde(default)]
    pub host: Option<S<String>>,
    pub path: S<String>,
    #[serde(default)]
    pub methods: Option<S<Vec<String>>>,
    pub upstream: S<String>,
    #[serde(default)]
    pub auth: FileAuth,
    #[serde(default)]
    pub scopes: Vec<S<String>>,
    #[serde(default)]
    pub forward_token: bool,
    /// Overrides `limits.max_body_bytes` for this route.
    #[serde(default)]
    pub max_body_bytes: Option<S<u64>>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum FileAuth {
    None,
    #[default]
    Required,
}

/// A default value has no place in the file; position 0:0 marks it and is never printed.
fn unspanned<T>(value: T) -> S<T> {
    let nowhere = serde_saphyr::Location::UNKNOWN;
    Spanned::new(value, nowhere, nowhere)
}
