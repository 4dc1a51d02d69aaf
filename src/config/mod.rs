//! Configuration: the only entry point is [`Config::load`] (or [`Config::from_yaml`]), which
//! reads YAML, substitutes `${VAR}` from the environment, rejects unknown fields, validates,
//! and compiles everything the hot path needs (route table, header names, URLs, durations).
//! Nothing downstream ever sees the raw file structures.

mod compile;
mod env;
mod error;
mod file;

pub use error::{ConfigError, Position};

use crate::auth::CacheSettings;
use crate::auth::introspect::Backend;
use crate::policy::RouteTable;
use http::HeaderName;
use http::uri::{Authority, Scheme};
use ipnet::IpNet;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

/// A validated, compiled configuration.
#[derive(Debug)]
pub struct Config {
    pub source: String,
    pub listen: SocketAddr,
    pub admin_listen: Option<SocketAddr>,
    pub introspection: IntrospectionSettings,
    /// `Some` when DPoP is enabled.
    pub dpop: Option<crate::auth::dpop::DpopSettings>,
    /// The origin clients use (`scheme://host[:port]`, canonical), for DPoP `htu`.
    pub public_origin: Option<String>,
    /// TLS termination (and client certificates) when `tls:` is set.
    pub tls: Option<crate::tls::TlsConfig>,
    /// Header carrying a client certificate forwarded by a trusted proxy.
    pub client_cert_header: Option<HeaderName>,
    pub trusted_proxies: Vec<IpNet>,
    /// Data-plane worker threads, each with its own event loop and upstream connection pools.
    pub workers: usize,
    pub identity_headers: IdentityHeaders,
    pub limits: Limits,
    pub upstreams: Vec<Upstream>,
    pub routes: RouteTable,
}

#[derive(Debug)]
pub struct IntrospectionSettings {
    pub backend: Backend,
    pub timeout: Duration,
    pub cache: CacheSettings,
}

#[derive(Debug, Clone)]
pub struct IdentityHeaders {
    pub subject: HeaderName,
    pub client_id: HeaderName,
    pub scopes: HeaderName,
}

#[derive(Debug, Clone)]
pub struct Limits {
    pub max_token_bytes: usize,
    /// Request line plus header section (HTTP/1) or header list (HTTP/2): 431 beyond.
    pub max_header_bytes: usize,
    /// Request target: 414 beyond.
    pub max_uri_bytes: usize,
    /// Default request body limit: 413 beyond (routes may override).
    pub max_body_bytes: u64,
    /// Time a client has to send a complete request head; also bounds HTTP/1 keep-alive idle
    /// time (hyper starts this timer whenever it waits for a request head).
    pub header_read_timeout: Duration,
    /// A connection that moved no bytes for this long is closed gracefully (HTTP/1 keep-alive
    /// and HTTP/2 alike).
    pub idle_timeout: Duration,
    /// Concurrent client connections; beyond it, new connections wait in the listen backlog.
    pub max_connections: usize,
}

/// A compiled upstream: scheme and authority to connect to, and a path prefix to put in front
/// of every forwarded path.
#[derive(Debug)]
pub struct Upstream {
    pub name: String,
    pub scheme: Scheme,
    pub authority: Authority,
    /// Empty, or a prefix starting with `/` and not ending with `/`.
    pub base_path: String,
    pub timeout: Duration,
    /// CA certificates trusted for this (https) upstream in addition to the system roots.
    pub extra_roots: Vec<rustls::pki_types::CertificateDer<'static>>,
    /// Force HTTP/2 (h2c prior knowledge, or h2 over TLS).
    pub http2: bool,
}

impl Config {
    /// Reads and compiles a file. Errors name the file, position and field.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new("", None, format!("cannot read the file: {e}")).in_file(&file)
        })?;
        Self::from_yaml(&text, &file, |name| std::env::var(name).ok())
    }

    /// Compiles YAML text; `file` is only used in error messages, `lookup` resolves `${VAR}`.
    pub fn from_yaml(
        text: &str,
        file: &str,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let expanded = env::substitute(text, lookup).map_err(|e| e.in_file(file))?;
        let raw: file::FileConfig = serde_saphyr::from_str(&expanded)
            .map_err(|e| parse_error(&e, &expanded).in_file(file))?;
        compile::compile(raw, file).map_err(|e| e.in_file(file))
    }

    /// A human-readable table of the compiled routes, for `tokengate check`.
    pub fn describe_routes(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<4} {:<20} {:<18} {:<22} {:<28} {:<10} access",
            "#", "route", "host", "methods", "path", "upstream"
        );
        for (i, r) in self.routes.iter().enumerate() {
            let methods = r
                .methods
                .as_ref()
                .map(|m| m.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(","))
                .unwrap_or_else(|| "*".into());
            let access = match &r.access {
                crate::policy::Access::Public => "public".to_owned(),
                crate::policy::Access::Protected { scopes } if scopes.is_empty() => {
                    "token".to_owned()
                }
                crate::policy::Access::Protected { scopes } => {
                    format!("token + scopes [{}]", scopes.join(" "))
                }
            };
            let _ = writeln!(
                out,
                "{:<4} {:<20} {:<18} {:<22} {:<28} {:<10} {}{}",
                i + 1,
                r.name,
                r.host.as_deref().unwrap_or("*"),
                methods,
                r.path.as_str(),
                self.upstreams
                    .get(r.upstream)
                    .map(|u| u.name.as_str())
                    .unwrap_or("?"),
                access,
                if r.forward_token {
                    " (forwards token)"
                } else {
                    ""
                }
            );
        }
        out
    }
}

/// A YAML or schema error from the parser: keep its position and reason, and work out the
/// field path from the position (the parser reports where, not which field).
fn parse_error(e: &serde_saphyr::Error, text: &str) -> ConfigError {
    let location = e.location();
    let position = location.filter(|l| l.line() > 0).map(|l| Position {
        line: l.line(),
        column: l.column(),
    });
    let reason = e.to_string();
    // The parser's Display is multi-line with a source snippet; keep only the message.
    let reason = reason
        .lines()
        .next()
        .map(|l| l.trim_start_matches("error: "))
        .map(|l| match l.split_once(": ") {
            Some((prefix, rest)) if prefix.starts_with("line ") => rest.to_owned(),
            _ => l.to_owned(),
        })
        .unwrap_or_default();
    let field = position
        .map(|p| compile::field_path_at(text, p.line as usize, p.column as usize))
        .unwrap_or_default();
    ConfigError::new(field, position, reason)
}
