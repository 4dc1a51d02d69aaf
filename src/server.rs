//! The data-plane listener: accept loop → hyper-util's auto builder (HTTP/1.1 and h2c by prior
//! knowledge) → `Gateway::handle` on the current configuration snapshot. Survives accept
//! errors; on shutdown stops accepting and lets in-flight requests finish (up to a deadline).

use crate::gateway::{ConnectionInfo, Gateway};
use arc_swap::ArcSwap;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// How long in-flight requests may take to finish after a shutdown signal (DESIGN.md section 6).
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(30);

/// Serves until `shutdown` resolves, then drains.
pub async fn serve(
    listener: TcpListener,
    gateway: Arc<ArcSwap<Gateway>>,
    shutdown: impl Future<Output = ()>,
) {
    let builder = auto::Builder::new(TokioExecutor::new());
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let connection = ConnectionInfo {
            peer,
            scheme: "http",
        };
        let gateway = gateway.clone();
        let service = service_fn(move |request| {
            let gateway = gateway.load_full();
            async move { Ok::<_, Infallible>(gateway.handle(request, connection).await) }
        });
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tracing::info!("draining in-flight requests");
    if tokio::time::timeout(DRAIN_DEADLINE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("drain deadline passed; closing remaining connections");
    }
}
