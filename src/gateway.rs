//! The pipeline. This module alone knows the order of the steps; the stages never call each
//! other:
//!
//! normalize path → match route → strip client headers → extract credential → introspect
//! (cache, coalesced, fail closed) → check scopes → prepare headers → forward.
//!
//! Every request ends in exactly one access-log line and one set of metric updates, written
//! from the per-request `Exchange` in `finish`.

use crate::auth::dpop::{NonceMode, ProofError, ProofTarget, Verifier, canonical_origin};
use crate::auth::introspect::{Introspector, PresentedProof};
use crate::auth::{
    AuthError, Binding, Credential, CredentialError, Grant, Scheme, Source, TokenCache, TokenHash,
    Verdict,
};
use crate::body::Body;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::path::NormalizedPath;
use crate::policy::{self, Access};
use crate::proxy::{self, Forwarder, headers};
use crate::respond::{self, Rejection};
use crate::tls::ClientCertificate;
use http::request::Parts;
use http::{HeaderMap, Method, Request, Response, header};
use hyper::body::Incoming;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// What the gateway knows about the connection a request arrived on.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    pub peer: SocketAddr,
    /// `http` or `https`.
    pub scheme: &'static str,
    /// The certificate the client presented in the TLS handshake (RFC 8705), if any.
    pub client_cert: Option<Arc<ClientCertificate>>,
    /// The peer's IP address as a header value, rendered once per connection.
    pub peer_ip: http::HeaderValue,
    /// The data-plane worker serving the connection (selects its upstream pools).
    pub worker: usize,
}

impl ConnectionInfo {
    pub fn new(
        peer: SocketAddr,
        scheme: &'static str,
        client_cert: Option<Arc<ClientCertificate>>,
        worker: usize,
    ) -> Self {
        let peer_ip = http::HeaderValue::from_str(&peer.ip().to_string())
            .unwrap_or_else(|_| http::HeaderValue::from_static("unknown"));
        Self {
            peer,
            scheme,
            client_cert,
            peer_ip,
            worker,
        }
    }
}

/// One configuration snapshot with the shared components it uses. A reload builds a new
/// `Gateway`; a request uses one from start to end.
pub struct Gateway {
    config: Config,
    /// Per route, its required scopes joined for the `insufficient_scope` challenge.
    scope_challenges: Vec<Box<str>>,
    /// Present when DPoP is enabled.
    dpop: Option<Verifier>,
    /// `ES256 PS256 …` for the `DPoP algs` challenge.
    dpop_algs: Option<Box<str>>,
    /// The introspection backend's identity, mixed into every cache key.
    cache_salt: Box<[u8]>,
    /// Indexed like the route table.
    route_metrics: Vec<RouteMetrics>,
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
    presented: Option<Scheme>,
    /// A DPoP nonce from the authorization server, passed to the client (RFC 9449 section 9).
    dpop_nonce: Option<String>,
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
        let dpop = config.dpop.clone().map(Verifier::new);
        if dpop.is_some() {
            // Export every reason at 0 so that dashboards and alerts see the series before the
            // first rejection.
            for reason in ProofError::ALL
                .iter()
                .map(|e| e.reason())
                .chain(EXTRA_DPOP_REASONS)
            {
                metrics.dpop_rejections_total.with_label_values(&[reason]);
            }
        }
        let dpop_algs = config.dpop.as_ref().map(|d| d.algs_list().into_boxed_str());
        let cache_salt = introspector
            .backend()
            .identity()
            .into_bytes()
            .into_boxed_slice();
        let route_metrics = config
            .routes
            .iter()
            .map(|r| RouteMetrics {
                forwarded: metrics
                    .requests_total
                    .with_label_values(&[&*r.name, OUTCOME_FORWARDED]),
                duration: metrics
                    .request_duration_seconds
                    .with_label_values(&[&*r.name]),
            })
            .collect();
        Self {
            config,
            scope_challenges,
            dpop,
            dpop_algs,
            cache_salt,
            route_metrics,
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
            presented: None,
            dpop_nonce: None,
            outcome: OUTCOME_FORWARDED,
        };
        let response = match self.pass(&mut exchange, request, connection).await {
            Ok(response) => response,
            Err(rejection) => {
                exchange.outcome = respond::outcome(&rejection);
                self.count_dpop_rejection(&rejection);
                let context = respond::Context {
                    required_scopes: exchange
                        .route
                        .and_then(|i| self.scope_challenges.get(i))
                        .map(|s| &**s),
                    dpop_algs: self.dpop_algs.as_deref(),
                    presented: exchange.presented,
                };
                respond::reject(&rejection, &context)
            }
        };
        let mut response = response;
        if let Some(nonce) = exchange
            .dpop_nonce
            .as_deref()
            .and_then(|n| http::HeaderValue::from_str(n).ok())
        {
            response.headers_mut().insert(DPOP_NONCE, nonce);
        }
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
        // Cheap refusals first: nothing below runs for a request that fails these.
        if head.uri.path_and_query().map_or(0, |pq| pq.as_str().len())
            > self.config.limits.max_uri_bytes
        {
            return Err(Rejection::UriTooLong);
        }
        if head.method.as_str().len() > MAX_METHOD_BYTES {
            // RFC 9112 section 3 (SHOULD 501): no real method is this long.
            return Err(Rejection::MethodNotImplemented);
        }
        if head.method.as_str().eq_ignore_ascii_case("TRACE")
            || head.method.as_str().eq_ignore_ascii_case("TRACK")
        {
            // RFC 9110 section 9.3.8: TRACE (and IIS's TRACK) would reflect credentials and
            // identity headers back to the client.
            return Err(Rejection::MethodNotAllowed);
        }
        let path = NormalizedPath::parse(head.uri.path())?;
        exchange.path = Some(path.clone());
        if head.uri.query().is_some_and(has_access_token_parameter) {
            // RFC 6750 section 2.3 / RFC 9700 section 4.9.3: never accepted, never forwarded.
            return Err(Rejection::BadRequest(
                "access tokens are not accepted in the query",
            ));
        }
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

        let is_upgrade = headers::is_upgrade_request(&head.headers);
        let trusted = self
            .config
            .trusted_proxies
            .iter()
            .any(|net| net.contains(&connection.peer.ip()));
        headers::strip_hop_by_hop(
            &mut head.headers,
            is_upgrade,
            !trusted,
            Some(&self.config.identity_headers),
        );
        // The client certificate: from this connection's handshake, or, only from a trusted
        // TLS-terminating proxy, from the configured header (which never reaches the upstream).
        let forwarded_cert = self
            .config
            .client_cert_header
            .as_ref()
            .and_then(|name| head.headers.remove(name))
            .filter(|_| trusted)
            .and_then(|v| {
                v.to_str()
                    .ok()
                    .and_then(ClientCertificate::from_header_value)
            });
        let client_cert = connection
            .client_cert
            .as_deref()
            .or(forwarded_cert.as_ref());

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
                let request = RequestFacts {
                    method: &head.method,
                    authority: authority.as_deref(),
                    scheme: connection.scheme,
                    path: &path,
                    client_cert,
                };
                let grant = self.authenticate(&head.headers, &request, exchange).await?;
                exchange.grant = Some(grant.clone());
                policy::authorize(access, &grant)?;
                Some(grant)
            }
        };

        if !route.forward_token {
            head.headers.remove(header::AUTHORIZATION);
            head.headers.remove("dpop");
        }
        // The routed authority as a header value: the client's own Host value when it sent
        // one (a cheap clone), else rendered from the HTTP/2 or absolute-form authority.
        let host_value = match head.headers.get(header::HOST) {
            Some(h) if head.uri.authority().is_none() => Some(h.clone()),
            _ => authority
                .as_deref()
                .and_then(|a| http::HeaderValue::from_str(a).ok()),
        };
        let peer = headers::Peer {
            ip: &connection.peer_ip,
            trusted,
            proto: connection.scheme,
            host: host_value.as_ref(),
        };
        headers::set_forwarding(&mut head.headers, &peer);
        proxy::set_host(&mut head.headers, host_value.as_ref());
        if let Some(grant) = &grant {
            headers::add_identity(&mut head.headers, &self.config.identity_headers, grant);
        }
        let limit = route
            .max_body_bytes
            .unwrap_or(self.config.limits.max_body_bytes);
        let declared = head
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > limit) {
            return Err(Rejection::Forward(crate::proxy::ForwardError::BodyTooLarge));
        }
        let body = crate::proxy::LimitedBody::new(body, limit);
        let upstream = &self.config.upstreams[route.upstream];
        Ok(self
            .forwarder
            .send(
                connection.worker,
                route.upstream,
                upstream,
                &path,
                head,
                body,
            )
            .await?)
    }

    /// Credential (and DPoP proof) → grant, through the cache.
    async fn authenticate(
        &self,
        headers: &HeaderMap,
        request: &RequestFacts<'_>,
        exchange: &mut Exchange,
    ) -> Result<Arc<Grant>, Rejection> {
        let credential = Credential::extract(headers, self.config.limits.max_token_bytes)?;
        let key = TokenHash::for_backend(&self.cache_salt, credential.token.expose());
        let cert_pem = request.client_cert.map(|c| c.pem.as_str());
        let (verifier, Scheme::Dpop) = (&self.dpop, credential.scheme) else {
            // The Bearer scheme. A stray DPoP header is ignored (it is stripped before
            // forwarding and never raises trust).
            exchange.presented = Some(Scheme::Bearer);
            let grant = self
                .lookup(key, || {
                    self.introspector.introspect(&credential.token, cert_pem)
                })
                .await?;
            if grant.binding != Binding::None {
                // RFC 9449 section 7.2: a DPoP-bound token presented as Bearer is refused,
                // from cache too.
                return Err(AuthError::BindingRequired.into());
            }
            check_certificate(&grant, request.client_cert)?;
            return Ok(grant);
        };
        let Some(verifier) = verifier else {
            // DPoP is off: the scheme is unsupported here (answered as if no credentials).
            return Err(CredentialError::UnsupportedScheme.into());
        };
        exchange.presented = Some(Scheme::Dpop);
        let mut proofs = headers.get_all(DPOP).iter();
        let (Some(proof), None) = (proofs.next(), proofs.next()) else {
            return Err(AuthError::DpopProofMissing.into());
        };
        let proof = proof
            .to_str()
            .map_err(|_| AuthError::DpopProof(ProofError::Malformed))?;
        let origin = match &self.config.public_origin {
            Some(origin) => origin.clone(),
            None => request
                .authority
                .and_then(|a| canonical_origin(request.scheme, a))
                .ok_or(Rejection::BadRequest("the request has no usable Host"))?,
        };
        let target = ProofTarget {
            method: request.method.as_str(),
            origin: &origin,
            path: request.path,
            access_token: credential.token.expose(),
            now: unix_now(),
        };
        // Local checks first: a bad proof costs no introspection.
        let verified = verifier
            .verify(proof, &target)
            .map_err(AuthError::DpopProof)?;
        // What the token is (and whether it is bound) is a property of the token alone: cached.
        let grant = self
            .lookup(key, || {
                self.introspector.introspect(&credential.token, cert_pem)
            })
            .await?;
        check_certificate(&grant, request.client_cert)?;
        let nonce_mode = verifier.settings().nonce == NonceMode::Authlete;
        match &grant.binding {
            // Standards DP-04: the DPoP scheme claims a binding the token does not have.
            Binding::None => return Err(AuthError::NotDpopBound.into()),
            Binding::Dpop(jkt) if !constant_time_eq(jkt.as_bytes(), verified.jkt.as_bytes()) => {
                return Err(AuthError::DpopKeyMismatch.into());
            }
            Binding::Dpop(_) if !nonce_mode => return Ok(grant),
            Binding::Dpop(_) | Binding::DpopKeyUnknown => {}
        }
        // The authorization server must see this proof: to learn which key the token is bound
        // to (once per token: Authlete's API does not return `cnf.jkt`), or, in nonce mode, to
        // enforce its DPoP nonce on every request.
        let htu = format!("{origin}{}", request.path);
        let presented_proof = PresentedProof {
            proof,
            htm: request.method.as_str(),
            htu: &htu,
            nonce_required: nonce_mode,
        };
        // Boxed: a rare path whose (large) future should not size every request's.
        let (verdict, nonce) = Box::pin(self.introspector.introspect_proof(
            &credential.token,
            &presented_proof,
            cert_pem,
        ))
        .await;
        exchange.dpop_nonce = nonce;
        match verdict? {
            Verdict::Active(accepted)
                if accepted.binding == Binding::None
                    || accepted.binding == Binding::Dpop(verified.jkt.as_str().into()) =>
            {
                let bound = Arc::new(
                    Grant::clone(&accepted).with_binding(Binding::Dpop(verified.jkt.into())),
                );
                if grant.binding == Binding::DpopKeyUnknown {
                    self.cache.insert(key, bound.clone()).await;
                }
                Ok(bound)
            }
            // The server answered "bound, proof expected" or named another key: refuse.
            Verdict::Active(_) => Err(AuthError::DpopRefusedByServer.into()),
            Verdict::Refused { error, .. } => Err(error.into()),
        }
    }

    /// A cache lookup that counts hits and misses.
    async fn lookup<Fut: Future<Output = Result<Verdict, AuthError>>>(
        &self,
        key: TokenHash,
        introspect: impl FnOnce() -> Fut,
    ) -> Result<Arc<Grant>, Rejection> {
        let (result, source) = self.cache.get_or_introspect(key, introspect).await;
        match source {
            Source::Cache => self.metrics.token_cache_hits_total.inc(),
            Source::Introspection => self.metrics.token_cache_misses_total.inc(),
        }
        result.map_err(|e: AuthError| {
            tracing::debug!(token = %key, error = %e, "token refused");
            Rejection::Auth(e)
        })
    }

    fn count_dpop_rejection(&self, rejection: &Rejection) {
        let reason = match rejection {
            Rejection::Auth(AuthError::DpopProof(e)) => e.reason(),
            Rejection::Auth(AuthError::DpopProofMissing) => EXTRA_DPOP_REASONS[0],
            Rejection::Auth(AuthError::DpopRefusedByServer) => EXTRA_DPOP_REASONS[1],
            Rejection::Auth(AuthError::DpopKeyMismatch) => EXTRA_DPOP_REASONS[2],
            Rejection::Auth(AuthError::NotDpopBound) => EXTRA_DPOP_REASONS[3],
            Rejection::Auth(AuthError::UseDpopNonce) => EXTRA_DPOP_REASONS[4],
            _ => return,
        };
        self.metrics
            .dpop_rejections_total
            .with_label_values(&[reason])
            .inc();
    }

    fn finish(&self, exchange: &Exchange, response: &Response<Body>) {
        let route = exchange
            .route
            .and_then(|i| self.config.routes.get(i))
            .map(|r| &*r.name)
            .unwrap_or("-");
        let elapsed = exchange.started.elapsed();
        // The common case uses handles resolved when the snapshot was built, sparing a label
        // lookup (hash + lock) per request.
        match exchange.route.and_then(|i| self.route_metrics.get(i)) {
            Some(m) => {
                if exchange.outcome == OUTCOME_FORWARDED {
                    m.forwarded.inc();
                } else {
                    self.metrics
                        .requests_total
                        .with_label_values(&[route, exchange.outcome])
                        .inc();
                }
                m.duration.observe(elapsed.as_secs_f64());
            }
            None => {
                self.metrics
                    .requests_total
                    .with_label_values(&[route, exchange.outcome])
                    .inc();
                self.metrics
                    .request_duration_seconds
                    .with_label_values(&[route])
                    .observe(elapsed.as_secs_f64());
            }
        }
        let grant = exchange.grant.as_deref();
        tracing::info!(
            target: "tokengate::access",
            route,
            method = %exchange.method,
            path = exchange.path.as_ref().map(NormalizedPath::as_str).unwrap_or("-"),
            status = response.status().as_u16(),
            outcome = exchange.outcome,
            subject = grant.and_then(Grant::subject).unwrap_or("-"),
            client_id = grant.and_then(Grant::client_id).unwrap_or("-"),
            latency_ms = elapsed.as_secs_f64() * 1000.0,
        );
    }
}

/// The request facts a DPoP proof is checked against.
struct RequestFacts<'a> {
    method: &'a Method,
    authority: Option<&'a str>,
    scheme: &'static str,
    path: &'a NormalizedPath,
    client_cert: Option<&'a ClientCertificate>,
}

/// RFC 8705 section 3: a certificate-bound token is honoured only with the same certificate,
/// compared on every request (also when the grant comes from the cache).
fn check_certificate(
    grant: &Grant,
    presented: Option<&ClientCertificate>,
) -> Result<(), AuthError> {
    match (&grant.certificate, presented) {
        (None, _) => Ok(()),
        (Some(_), None) => Err(AuthError::BindingRequired),
        (Some(bound), Some(cert))
            if constant_time_eq(bound.as_bytes(), cert.thumbprint.as_bytes()) =>
        {
            Ok(())
        }
        (Some(_), Some(_)) => Err(AuthError::CertificateMismatch),
    }
}

const OUTCOME_FORWARDED: &str = "forwarded";

/// Longer method tokens are refused (501); the longest registered method is 17 bytes.
const MAX_METHOD_BYTES: usize = 32;

/// Metric handles of one route, resolved once per snapshot.
struct RouteMetrics {
    forwarded: prometheus::IntCounter,
    duration: prometheus::Histogram,
}

/// `dpop_rejections_total` reasons beyond the proof checks themselves.
const EXTRA_DPOP_REASONS: [&str; 5] = [
    "missing",
    "refused_by_server",
    "key_mismatch",
    "not_bound",
    "use_dpop_nonce",
];

const DPOP: http::HeaderName = http::HeaderName::from_static("dpop");
const DPOP_NONCE: http::HeaderName = http::HeaderName::from_static("dpop-nonce");

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Compares thumbprints without an early exit, so timing does not reveal how much matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The authority the request addresses: the absolute-form or HTTP/2 `:authority` when present
/// (RFC 9112 section 3.2.2: then `Host` is ignored), else the single `Host` header.
fn request_authority(head: &Parts) -> Result<Option<String>, Rejection> {
    let mut hosts = head.headers.get_all(header::HOST).iter();
    let first = hosts.next();
    if hosts.next().is_some() {
        return Err(Rejection::BadRequest("more than one Host header"));
    }
    if let Some(authority) = head.uri.authority() {
        if authority.as_str().contains('@') {
            return Err(Rejection::BadRequest(
                "the request target carries user information",
            ));
        }
        // RFC 9112 section 3.2.2 says to ignore Host here; a Host that disagrees with the
        // target is a sign of a request crafted to be read two ways, so it is refused.
        if let Some(host) = first
            && !host
                .as_bytes()
                .eq_ignore_ascii_case(authority.as_str().as_bytes())
        {
            return Err(Rejection::BadRequest(
                "the Host header disagrees with the request target",
            ));
        }
        return Ok(Some(authority.as_str().to_owned()));
    }
    match first {
        // RFC 9112 section 3.2: a request without Host (or, in HTTP/2, without :authority)
        // gets 400; forwarding it would let the upstream pick a default virtual host.
        None => Err(Rejection::BadRequest("the request has no Host")),
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

/// True when the query has an `access_token` parameter (in any percent-encoding of the name,
/// `;` or `&` separated, with or without a PHP-style `[]`).
fn has_access_token_parameter(query: &str) -> bool {
    query.split(['&', ';']).any(|pair| {
        let name = pair.split('=').next().unwrap_or("");
        let name = name
            .strip_suffix("[]")
            .or_else(|| name.strip_suffix("%5B%5D"))
            .unwrap_or(name);
        name.eq_ignore_ascii_case("access_token")
            || (name.contains('%') && percent_decoded_lowercase(name) == "access_token")
    })
}

fn percent_decoded_lowercase(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(v) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v.to_ascii_lowercase());
            i += 3;
            continue;
        }
        out.push(bytes[i].to_ascii_lowercase());
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
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
    fn access_token_parameters_are_found_in_any_spelling() {
        assert!(has_access_token_parameter("access_token=x"));
        assert!(has_access_token_parameter("a=1&ACCESS_TOKEN=x"));
        assert!(has_access_token_parameter("a=1&access%5Ftoken=x"));
        assert!(has_access_token_parameter("%61ccess_token"));
        assert!(!has_access_token_parameter(
            "access_tokens=x&my_access_token=y"
        ));
    }

    #[test]
    fn ports_are_ignored_for_host_matching() {
        assert_eq!(host_without_port("api.example.com:8443"), "api.example.com");
        assert_eq!(host_without_port("api.example.com"), "api.example.com");
        assert_eq!(host_without_port("[::1]:80"), "[::1]");
    }
}
