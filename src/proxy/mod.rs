//! Forwarding: per worker and upstream, a keep-alive pool of HTTP/1.1 connections for plain http
//! upstreams (`pool.rs`), or hyper-util's pooled client for TLS via rustls and HTTP/2 (when an
//! https upstream offers it in ALPN, or always with `http2: true`); bodies stream both ways and
//! are never buffered whole; the path sent is the `NormalizedPath` that routing matched.
//! Upstream faults are the upstream's: unreachable is 502, slow (no response head within the
//! upstream's `timeout_ms`) is 504. The timeout bounds the wait for the response head only, so
//! a long download is never cut off mid-body.

pub mod headers;
mod limit;
mod pool;

pub use limit::{BodyTooLarge, LimitedBody};

use crate::body::{Body, BoxError};
use crate::config::Upstream;
use crate::metrics::{Metrics, STATUS_CLASSES, status_class_index};
use crate::path::NormalizedPath;
use http::request::Parts;
use http::{HeaderValue, Request, Response, StatusCode, Uri, Version, header};
use http_body_util::BodyExt;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use prometheus::IntCounter;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ForwardError {
    #[error("upstream unreachable")]
    Unreachable,
    #[error("upstream timed out")]
    Timeout,
    /// The client's body grew past the route's limit while streaming.
    #[error("request body too large")]
    BodyTooLarge,
    /// The client's body was malformed (e.g. bad chunked encoding).
    #[error("request body malformed")]
    ClientBody,
}

type LegacyClient = Client<HttpsConnector<HttpConnector>, LimitedBody>;

/// How one worker reaches one upstream: plain HTTP/1.1 through its own keep-alive pool (the
/// common, hot case), HTTPS or HTTP/2 through hyper-util's client.
enum UpstreamClient {
    Http1(Arc<pool::Http1Pool>),
    Legacy(Box<LegacyClient>),
}

pub struct Forwarder {
    /// `[worker][upstream]`: each data-plane worker has its own pools, so a request's upstream
    /// connection lives on the same thread as the request (no cross-thread wake-ups).
    clients: Vec<Vec<UpstreamClient>>,
    /// `[upstream][status class]`, resolved once so that a response costs no label lookup.
    responses: Vec<[IntCounter; 5]>,
}

impl Forwarder {
    /// Builds one client per upstream. Fails only when an https upstream has no usable roots.
    pub fn new(
        upstreams: &[Upstream],
        workers: usize,
        metrics: Arc<Metrics>,
    ) -> Result<Self, String> {
        let clients = (0..workers.max(1))
            .map(|_| {
                upstreams
                    .iter()
                    .map(|u| client_for(u).map_err(|e| format!("upstream {}: {e}", u.name)))
                    .collect::<Result<Vec<_>, _>>()
            })
            .collect::<Result<_, _>>()?;
        let responses = upstreams
            .iter()
            .map(|u| {
                STATUS_CLASSES.map(|class| {
                    metrics
                        .upstream_responses_total
                        .with_label_values(&[u.name.as_str(), class])
                })
            })
            .collect();
        Ok(Self { clients, responses })
    }

    /// Sends the prepared request head and the client's body to `upstream`.
    pub async fn send(
        &self,
        worker: usize,
        index: usize,
        upstream: &Upstream,
        path: &NormalizedPath,
        mut head: Parts,
        body: LimitedBody,
    ) -> Result<Response<Body>, ForwardError> {
        let pools = self.clients.get(worker).or_else(|| self.clients.first());
        let client = pools
            .and_then(|p| p.get(index))
            .ok_or(ForwardError::Unreachable)?;
        let client_upgrade = head.extensions.remove::<hyper::upgrade::OnUpgrade>();
        let is_upgrade = head.headers.contains_key(header::UPGRADE);
        // The gateway speaks its own protocol to the upstream whatever the client used
        // (RFC 9112 section 2.3): HTTP/1.1, or HTTP/2 when configured or negotiated.
        head.version = if upstream.http2 {
            Version::HTTP_2
        } else {
            Version::HTTP_11
        };
        let query = head.uri.query();
        let sent: Result<Result<Response<Body>, BoxError>, _> = match client {
            UpstreamClient::Http1(pool) => {
                head.uri = origin_form(upstream, path, query).ok_or(ForwardError::Unreachable)?;
                if !head.headers.contains_key(header::HOST) {
                    // An HTTP/1.0 request without Host: name the upstream, as a client would.
                    if let Ok(host) = HeaderValue::from_str(upstream.authority.as_str()) {
                        head.headers.insert(header::HOST, host);
                    }
                }
                let request = Request::from_parts(head, body);
                let send = async { pool.send(request).await.map(boxed).map_err(Into::into) };
                tokio::time::timeout(upstream.timeout, send).await
            }
            UpstreamClient::Legacy(client) => {
                head.uri = upstream_uri(upstream, path, query).ok_or(ForwardError::Unreachable)?;
                let request = Request::from_parts(head, body);
                let send = async { client.request(request).await.map(boxed).map_err(Into::into) };
                tokio::time::timeout(upstream.timeout, send).await
            }
        };
        let response = match sent {
            Err(_elapsed) => return Err(ForwardError::Timeout),
            Ok(Err(e)) if limit::caused_by::<BodyTooLarge>(&*e) => {
                return Err(ForwardError::BodyTooLarge);
            }
            Ok(Err(e)) if limit::caused_by::<limit::ClientBodyError>(&*e) => {
                return Err(ForwardError::ClientBody);
            }
            Ok(Err(e)) => {
                tracing::warn!(upstream = %upstream.name, error = %e, "upstream request failed");
                return Err(ForwardError::Unreachable);
            }
            Ok(Ok(response)) => response,
        };
        let (mut parts, body) = response.into_parts();
        if let Some(counters) = self.responses.get(index) {
            counters[status_class_index(parts.status.as_u16())].inc();
        }
        let switching = parts.status == StatusCode::SWITCHING_PROTOCOLS && is_upgrade;
        if switching {
            let upstream_upgrade = parts.extensions.remove::<hyper::upgrade::OnUpgrade>();
            if let (Some(client_side), Some(upstream_side)) = (client_upgrade, upstream_upgrade) {
                tokio::spawn(splice(client_side, upstream_side));
            }
        }
        headers::strip_response(&mut parts.headers, switching);
        Ok(Response::from_parts(parts, body))
    }
}

fn client_for(upstream: &Upstream) -> Result<UpstreamClient, String> {
    if upstream.scheme == http::uri::Scheme::HTTP && !upstream.http2 {
        let port = upstream.authority.port_u16().unwrap_or(80);
        let address = format!("{}:{port}", upstream.authority.host());
        return Ok(UpstreamClient::Http1(pool::Http1Pool::new(address)));
    }
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http.set_connect_timeout(Some(Duration::from_secs(5)));
    http.enforce_http(false);
    let builder = hyper_rustls::HttpsConnectorBuilder::new();
    let connector = if upstream.scheme == http::uri::Scheme::HTTPS {
        let tls = crate::tls::upstream_client_config(&upstream.extra_roots)?;
        builder
            .with_tls_config(tls)
            .https_or_http()
            .enable_all_versions()
            .wrap_connector(http)
    } else {
        // Plain http: no TLS roots are needed; the connector passes connections through.
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
        builder
            .with_tls_config(tls)
            .https_or_http()
            .enable_all_versions()
            .wrap_connector(http)
    };
    Ok(UpstreamClient::Legacy(Box::new(
        Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(1024)
            .http2_only(upstream.http2)
            .build(connector),
    )))
}

fn boxed<B>(response: Response<B>) -> Response<Body>
where
    B: http_body::Body<Data = bytes::Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError>,
{
    response.map(|body| body.map_err(Into::into).boxed())
}

/// Joins both upgraded connections (WebSocket and other `Upgrade` protocols).
async fn splice(client: hyper::upgrade::OnUpgrade, upstream: hyper::upgrade::OnUpgrade) {
    let (Ok(client), Ok(upstream)) = (client.await, upstream.await) else {
        return;
    };
    let mut client = TokioIo::new(client);
    let mut upstream = TokioIo::new(upstream);
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
}

/// The absolute URI the legacy client wants (it picks the connection from it).
fn upstream_uri(upstream: &Upstream, path: &NormalizedPath, query: Option<&str>) -> Option<Uri> {
    Uri::builder()
        .scheme(upstream.scheme.clone())
        .authority(upstream.authority.clone())
        .path_and_query(request_target(upstream, path, query))
        .build()
        .ok()
}

/// The origin-form request target (RFC 9112 section 3.2.1) sent on a pooled connection.
fn origin_form(upstream: &Upstream, path: &NormalizedPath, query: Option<&str>) -> Option<Uri> {
    Uri::from_maybe_shared(request_target(upstream, path, query)).ok()
}

fn request_target(upstream: &Upstream, path: &NormalizedPath, query: Option<&str>) -> String {
    let mut target = String::with_capacity(
        upstream.base_path.len() + path.as_str().len() + query.map_or(0, |q| q.len() + 1),
    );
    target.push_str(&upstream.base_path);
    target.push_str(path.as_str());
    if let Some(q) = query {
        target.push('?');
        target.push_str(q);
    }
    target
}

/// Sets `Host` to the host the request was routed on, so that the upstream sees the same
/// authority the gateway authorized (HTTP/2 clients send `:authority`, not `Host`).
pub fn set_host(headers: &mut http::HeaderMap, authority: Option<&HeaderValue>) {
    if let Some(a) = authority {
        headers.insert(header::HOST, a.clone());
    }
}
