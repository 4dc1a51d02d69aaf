//! Forwarding: one pooled hyper client for every upstream; bodies stream both ways and are
//! never buffered whole; the path sent is the `NormalizedPath` that routing matched.
//! Upstream faults are the upstream's: unreachable is 502, slow (no response head within the
//! upstream's `timeout_ms`) is 504. The timeout bounds the wait for the response head only, so
//! a long download is never cut off mid-body.

pub mod headers;

use crate::body::Body;
use crate::config::Upstream;
use crate::metrics::{Metrics, status_class};
use crate::path::NormalizedPath;
use http::request::Parts;
use http::{HeaderValue, Request, Response, StatusCode, Uri, Version, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ForwardError {
    #[error("upstream unreachable")]
    Unreachable,
    #[error("upstream timed out")]
    Timeout,
}

pub struct Forwarder {
    client: Client<HttpConnector, Incoming>,
    metrics: Arc<Metrics>,
}

impl Forwarder {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        connector.enforce_http(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(1024)
            .build(connector);
        Self { client, metrics }
    }

    /// Sends the prepared request head and the client's body to `upstream`.
    pub async fn send(
        &self,
        upstream: &Upstream,
        path: &NormalizedPath,
        mut head: Parts,
        body: Incoming,
    ) -> Result<Response<Body>, ForwardError> {
        let uri =
            upstream_uri(upstream, path, head.uri.query()).ok_or(ForwardError::Unreachable)?;
        let client_upgrade = head.extensions.remove::<hyper::upgrade::OnUpgrade>();
        let is_upgrade = head.headers.contains_key(header::UPGRADE);
        head.uri = uri;
        // The gateway speaks its own HTTP/1.1 to the upstream whatever the client used
        // (RFC 9112 section 2.3).
        head.version = Version::HTTP_11;
        let request = Request::from_parts(head, body);
        let response = match tokio::time::timeout(upstream.timeout, self.client.request(request))
            .await
        {
            Err(_) => return Err(ForwardError::Timeout),
            Ok(Err(e)) => {
                tracing::warn!(upstream = %upstream.name, error = %e, "upstream request failed");
                return Err(ForwardError::Unreachable);
            }
            Ok(Ok(response)) => response,
        };
        let (mut parts, body) = response.into_parts();
        self.metrics
            .upstream_responses_total
            .with_label_values(&[upstream.name.as_str(), status_class(parts.status.as_u16())])
            .inc();
        let switching = parts.status == StatusCode::SWITCHING_PROTOCOLS && is_upgrade;
        if switching {
            let upstream_upgrade = parts.extensions.remove::<hyper::upgrade::OnUpgrade>();
            if let (Some(client_side), Some(upstream_side)) = (client_upgrade, upstream_upgrade) {
                tokio::spawn(splice(client_side, upstream_side));
            }
        }
        headers::strip_response(&mut parts.headers, switching);
        Ok(Response::from_parts(
            parts,
            body.map_err(Into::into).boxed(),
        ))
    }
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

fn upstream_uri(upstream: &Upstream, path: &NormalizedPath, query: Option<&str>) -> Option<Uri> {
    let mut target = String::with_capacity(
        upstream.base_path.len() + path.as_str().len() + query.map_or(0, |q| q.len() + 1),
    );
    target.push_str(&upstream.base_path);
    target.push_str(path.as_str());
    if let Some(q) = query {
        target.push('?');
        target.push_str(q);
    }
    Uri::builder()
        .scheme(upstream.scheme.clone())
        .authority(upstream.authority.clone())
        .path_and_query(target)
        .build()
        .ok()
}

/// Sets `Host` to the host the request was routed on, so that the upstream sees the same
/// authority the gateway authorized (HTTP/2 clients send `:authority`, not `Host`).
pub fn set_host(headers: &mut http::HeaderMap, authority: Option<&str>) {
    if let Some(a) = authority.and_then(|a| HeaderValue::from_str(a).ok()) {
        headers.insert(header::HOST, a);
    }
}
