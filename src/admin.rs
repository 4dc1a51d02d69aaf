//! The admin listener (DESIGN.md section 5): `/healthz` (the process runs), `/readyz` (config
//! loaded and listeners bound), `/metrics` (Prometheus text). Kept off the data plane so that
//! it can be bound to loopback or a pod-internal port.

use crate::body::{Body, full};
use crate::gateway::Gateway;
use crate::metrics::Metrics;
use arc_swap::ArcSwap;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::net::TcpListener;

/// Shared state of the admin endpoints.
pub struct Admin {
    pub metrics: Arc<Metrics>,
    pub gateway: Arc<ArcSwap<Gateway>>,
    pub ready: Arc<AtomicBool>,
}

impl Admin {
    async fn respond(&self, request: &Request<Incoming>) -> Response<Body> {
        if request.method() != Method::GET && request.method() != Method::HEAD {
            return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        }
        match request.uri().path() {
            "/healthz" => text(StatusCode::OK, "ok\n"),
            "/readyz" if self.ready.load(Ordering::Acquire) => text(StatusCode::OK, "ready\n"),
            "/readyz" => text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
            "/metrics" => {
                let cache = self.gateway.load().cache().clone();
                // moka counts lazily; apply pending work so the gauge is exact when scraped.
                cache.sync().await;
                let entries = cache.entry_count();
                self.metrics
                    .token_cache_entries
                    .set(i64::try_from(entries).unwrap_or(i64::MAX));
                let mut r = text(StatusCode::OK, self.metrics.render());
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                );
                r
            }
            _ => text(StatusCode::NOT_FOUND, "not found\n"),
        }
    }
}

fn text(status: StatusCode, body: impl Into<bytes::Bytes>) -> Response<Body> {
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Serves the admin endpoints until `shutdown` resolves.
pub async fn serve(listener: TcpListener, admin: Arc<Admin>, shutdown: impl Future<Output = ()>) {
    let builder = auto::Builder::new(TokioExecutor::new());
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => continue,
            },
            () = &mut shutdown => return,
        };
        let admin = admin.clone();
        let service = service_fn(move |request: Request<Incoming>| {
            let admin = admin.clone();
            async move { Ok::<_, Infallible>(admin.respond(&request).await) }
        });
        let conn = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
}
