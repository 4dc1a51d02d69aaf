//! The data-plane listener: accept loop → optional TLS (rustls, ALPN h2/http1.1, client
//! certificates) → hyper-util's auto builder (HTTP/1.1, and HTTP/2 by ALPN or h2c prior
//! knowledge) → `Gateway::handle` on the current configuration snapshot. Survives accept and
//! handshake errors; on shutdown stops accepting and lets in-flight requests finish (up to a
//! deadline).

use crate::gateway::{ConnectionInfo, Gateway};
use crate::tls::ClientCertificate;
use arc_swap::ArcSwap;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;

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
    let builder = Arc::new(auto::Builder::new(TokioExecutor::new()));
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
        // The TLS settings of the current snapshot: a reload with new certificates applies to
        // new connections.
        let tls = gateway.load().config().tls.clone();
        let (gateway, builder, watcher) = (gateway.clone(), builder.clone(), graceful.watcher());
        tokio::spawn(async move {
            match tls {
                None => {
                    let info = ConnectionInfo {
                        peer,
                        scheme: "http",
                        client_cert: None,
                    };
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
                    let info = ConnectionInfo {
                        peer,
                        scheme: "https",
                        client_cert,
                    };
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
