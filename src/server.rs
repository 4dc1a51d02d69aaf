//! The data-plane listener: accept loop → optional TLS (rustls, ALPN h2/http1.1, client
//! certificates) → hyper-util's auto builder (HTTP/1.1, and HTTP/2 by ALPN or h2c prior
//! knowledge) → `Gateway::handle` on the current configuration snapshot. Survives accept and
//! handshake errors; on shutdown stops accepting and lets in-flight requests finish (up to a
//! deadline).

use crate::config::Limits;
use crate::gateway::{ConnectionInfo, Gateway};
use crate::tls::ClientCertificate;
use arc_swap::ArcSwap;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// How long in-flight requests may take to finish after a shutdown signal (DESIGN.md section 6).
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(30);

/// How long a client may take to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves until `shutdown` resolves, then drains.
pub async fn serve(
    listener: TcpListener,
    gateway: Arc<ArcSwap<Gateway>>,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let max_connections = gateway.load().config().limits.max_connections;
    // Beyond the limit, connections are not accepted and wait in the kernel's listen backlog
    // (back-pressure rather than resets).
    let connections = Arc::new(Semaphore::new(max_connections));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = connections.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
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
        // The TLS settings and limits of the current snapshot: a reload applies to new
        // connections.
        let snapshot = gateway.load();
        let tls = snapshot.config().tls.clone();
        let builder = connection_builder(&snapshot.config().limits);
        drop(snapshot);
        let (gateway, watcher) = (gateway.clone(), graceful.watcher());
        tokio::spawn(async move {
            let _permit = permit;
            match tls {
                None => {
                    let info = ConnectionInfo::new(peer, "http", None);
                    serve_connection(stream, info, gateway, &builder, watcher).await;
                }
                Some(tls) => {
                    let acceptor = tokio_rustls::TlsAcceptor::from(tls.server.clone());
                    let stream = match tokio::time::timeout(
                        HANDSHAKE_TIMEOUT,
                        acceptor.accept(stream),
                    )
                    .await
                    {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(e)) => {
                            tracing::debug!(peer = %peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(peer = %peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    let client_cert = stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|chain| chain.first())
                        .map(|leaf| Arc::new(ClientCertificate::from_der(leaf.as_ref())));
                    let info = ConnectionInfo::new(peer, "https", client_cert);
                    serve_connection(stream, info, gateway, &builder, watcher).await;
                }
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

/// HTTP settings from the configured limits. hyper answers 431 itself when the request head
/// outgrows its read buffer, and closes a connection that does not deliver a complete head in
/// time (slowloris), including while idle between keep-alive requests.
fn connection_builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20));
    builder
}

async fn serve_connection<S>(
    stream: S,
    info: ConnectionInfo,
    gateway: Arc<ArcSwap<Gateway>>,
    builder: &auto::Builder<TokioExecutor>,
    watcher: hyper_util::server::graceful::Watcher,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let peer: SocketAddr = info.peer;
    let service = service_fn(move |request| {
        let gateway = gateway.load_full();
        let info = info.clone();
        async move { Ok::<_, Infallible>(gateway.handle(request, info).await) }
    });
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    if let Err(e) = watcher.watch(conn.into_owned()).await {
        tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
    }
}
