//! The pipeline. This module alone knows the order of the steps; the stages never call each
//! other:
//!
//! normalize path → match route → strip client headers → extract credential → introspect
//! (cache, coalesced, fail closed) → check scopes → prepare headers → forward.
//!
//! Every request ends in exactly one access-log line and one set of metric updates, written
//! from the per-request `Exchange` in `finish`.

use crate::auth::introspect::Introspector;
use crate::auth::{
    AuthError, Credential, CredentialError, Grant, Scheme, Source, TokenCache, TokenHash,
};
use crate::body::Body;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::path::NormalizedPath;
use crate::policy::{self, Access};
use crate::proxy::{self, Forwarder, headers};
use crate::respond::{self, Rejection};
use http::request::Parts;
use http::{HeaderMap, Method, Request, Response, header};
use hyper::body::Incoming;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// What the gateway knows about the connection a request arrived on.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionInfo {
    pub peer: SocketAddr,
    /// `http` or `https`.
    pub scheme: &'static str,
}

/// One configuration snapshot with the shared components it uses. A reload builds a new
/// `Gateway`; a request uses one from start to end.
pub struct Gateway {
    config: Config,
    /// Per route, its required scopes joined for the `insufficient_scope` challenge.
    scope_challenges: Vec<Box<str>>,
    cache: Arc<TokenCache>,
    introspector: Arc<Introspector>,
    forwarder: Arc<Forwarder>,
    metrics: Arc<Metrics>,
}

/// The per-request record, filled as the request moves and read once at the end.
struct Exchange {
    started: Instant,
    method: Method,
    route: Option<usize>,
    path: Option<NormalizedPath>,
    grant: Option<Arc<Grant>>,
    outcome: &'static str,
}

impl Gateway {
    pub fn new(
        config: Config,
        cache: Arc<TokenCache>,
        introspector: Arc<Introspector>,
        forwarder: Arc<Forwarder>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let scope_challenges = config
            .routes
            .iter()
            .map(|r| match &r.access {
                Access::Protected { scopes } => scopes.join(" ").into_boxed_str(),
                Access::Public => "".into(),
            })
            .collect();
        Self {
            config,
            scope_challenges,
            cache,
            introspector,
            forwarder,
            metrics,
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn cache(&self) -> &Arc<TokenCache> {
        &self.cache
    }

    pub fn introspector(&self) -> &Arc<Introspector> {
        &self.introspector
    }

    pub fn forwarder(&self) -> &Arc<Forwarder> {
        &self.forwarder
    }

    /// Handles one request; never fails (every error becomes a response).
    pub async fn handle(
        &self,
        request: Request<Incoming>,
        connection: ConnectionInfo,
    ) -> Response<Body> {
        let mut exchange = Exchange {
            started: Instant::now(),
            method: request.method().clone(),
            route: None,
            path: None,
            grant: None,
            outcome: "forwarded",
        };
        let response = match self.pass(&mut exchange, request, connection).await {
            Ok(response) => response,
            Err(rejection) => {
                exchange.outcome = respond::outcome(&rejection);
                let required_scopes = exchange
                    .route
                    .and_then(|i| self.scope_challenges.get(i))
                    .map(|s| &**s);
                respond::reject(&rejection, &respond::Context { required_scopes })
            }
        };
        self.finish(&exchange, &response);
        response
    }

    async fn pass(
        &self,
        exchange: &mut Exchange,
        request: Request<Incoming>,
        connection: ConnectionInfo,
    ) -> Result<Response<Body>, Rejection> {
        let (mut head, body) = request.into_parts();
        let path = NormalizedPath::parse(head.uri.path())?;
        exchange.path = Some(path.clone());
        let authority = request_authority(&head)?;
        let host = authority.as_deref().map(host_without_port);
        let preflight = preflight_method(&head.headers, &head.method);
        let match_method = preflight.as_ref().unwrap_or(&head.method);
        let (index, route) = self
            .config
            .routes
            .find(match_method, host, &path)
            .ok_or(Rejection::NoRoute)?;
        exchange.route = Some(index);

        let is_upgrade = head.headers.contains_key(header::UPGRADE);
        headers::strip_hop_by_hop(&mut head.headers, is_upgrade);
        headers::strip_identity(&mut head.headers, &self.config.identity_headers);

        let grant = match (&route.access, preflight.is_some()) {
            // A CORS preflight carries no credentials by design (Fetch standard); the upstream
            // answers it, and the real request that follows is authenticated.
            (_, true) => {
                exchange.outcome = "preflight";
                None
            }
            (Access::Public, false) => {
                exchange.outcome = "public";
                None
            }
            (access @ Access::Protected { .. }, false) => {
                let grant = self.authenticate(&head.headers).await?;
                exchange.grant = Some(grant.clone());
                policy::authorize(access, &grant)?;
                Some(grant)
            }
        };

        if !route.forward_token {
            head.headers.remove(header::AUTHORIZATION);
            head.headers.remove("dpop");
        }
        let trusted = self
            .config
            .trusted_proxies
            .iter()
            .any(|net| net.contains(&connection.peer.ip()));
        let peer = headers::Peer {
            ip: connection.peer.ip(),
            trusted,
            proto: connection.scheme,
            host: authority.as_deref(),
        };
        headers::set_forwarding(&mut head.headers, &peer);
        proxy::set_host(&mut head.headers, authority.as_deref());
        if let Some(grant) = &grant {
            headers::add_identity(&mut head.headers, &self.config.identity_headers, grant);
        }
        let upstream = &self.config.upstreams[route.upstream];
        Ok(self.forwarder.send(upstream, &path, head, body).await?)
    }

    /// Credential → grant, through the cache.
    async fn authenticate(&self, headers: &HeaderMap) -> Result<Arc<Grant>, Rejection> {
        let credential = Credential::extract(headers, self.config.limits.max_token_bytes)?;
        if credential.scheme == Scheme::Dpop {
            // DPoP is not enabled: the scheme is unsupported here (RFC 6750 section 3.1: answer
            // as if no credentials were sent).
            return Err(CredentialError::UnsupportedScheme.into());
        }
        let key = TokenHash::of(credential.token.expose());
        let (result, source) = self
            .cache
            .get_or_introspect(key, self.introspector.introspect(&credential.token))
            .await;
        match source {
            Source::Cache => self.metrics.token_cache_hits_total.inc(),
            Source::Introspection => self.metrics.token_cache_misses_total.inc(),
        }
        result.map_err(|e: AuthError| {
            tracing::debug!(token = %key, error = %e, "token refused");
            Rejection::Auth(e)
        })
    }

    fn finish(&self, exchange: &Exchange, response: &Response<Body>) {
        let route = exchange
            .route
            .and_then(|i| self.config.routes.get(i))
            .map(|r| &*r.name)
            .unwrap_or("-");
        let elapsed = exchange.started.elapsed();
        self.metrics
            .requests_total
            .with_label_values(&[route, exchange.outcome])
            .inc();
        self.metrics
            .request_duration_seconds
            .with_label_values(&[route])
            .observe(elapsed.as_secs_f64());
        let grant = exchange.grant.as_deref();
        tracing::info!(
            target: "tokengate::access",
            route,
            method = %exchange.method,
            path = exchange.path.as_ref().map(NormalizedPath::as_str).unwrap_or("-"),
            status = response.status().as_u16(),
            outcome = exchange.outcome,
            subject = grant.and_then(|g| g.subject.as_deref()).unwrap_or("-"),
            client_id = grant.and_then(|g| g.client_id.as_deref()).unwrap_or("-"),
            latency_ms = elapsed.as_secs_f64() * 1000.0,
        );
    }
}

/// The authority the request addresses: the absolute-form or HTTP/2 `:authority` when present
/// (RFC 9112 section 3.2.2: then `Host` is ignored), else the single `Host` header.
fn request_authority(head: &Parts) -> Result<Option<String>, Rejection> {
    if let Some(authority) = head.uri.authority() {
        return Ok(Some(authority.as_str().to_owned()));
    }
    let mut hosts = head.headers.get_all(header::HOST).iter();
    let first = hosts.next();
    if hosts.next().is_some() {
        return Err(Rejection::BadRequest("more than one Host header"));
    }
    match first {
        None => Ok(None),
        Some(v) => {
            let s = v
                .to_str()
                .map_err(|_| Rejection::BadRequest("the Host header is not valid"))?;
            if s.is_empty() || s.contains([',', ' ', '@', '/']) {
                return Err(Rejection::BadRequest("the Host header is not valid"));
            }
            Ok(Some(s.to_owned()))
        }
    }
}

/// `api.example.com:8443` → `api.example.com`; `[::1]:80` → `[::1]`.
fn host_without_port(authority: &str) -> &str {
    if authority.starts_with('[') {
        return authority
            .find(']')
            .map_or(authority, |end| &authority[..=end]);
    }
    authority
        .rsplit_once(':')
        .map_or(authority, |(host, _)| host)
}

/// For a CORS preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`), the
/// method the real request will use; routing matches on it so that a route limited to `GET`
/// still receives its preflight.
fn preflight_method(headers: &HeaderMap, method: &Method) -> Option<Method> {
    if method != Method::OPTIONS || !headers.contains_key(header::ORIGIN) {
        return None;
    }
    let requested = headers.get(header::ACCESS_CONTROL_REQUEST_METHOD)?;
    Method::from_bytes(requested.as_bytes()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_ignored_for_host_matching() {
        assert_eq!(host_without_port("api.example.com:8443"), "api.example.com");
        assert_eq!(host_without_port("api.example.com"), "api.example.com");
        assert_eq!(host_without_port("[::1]:80"), "[::1]");
    }
}
