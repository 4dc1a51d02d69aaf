//! The data-plane listener: accept loop → optional TLS (rustls, ALPN h2/http1.1, client
//! certificates) → hyper-util's auto builder (HTTP/1.1, and HTTP/2 by ALPN or h2c prior
//! knowledge) → `Gateway::handle` on the current configuration snapshot. Survives accept and
//! handshake errors; on shutdown stops accepting and lets in-flight requests finish (up to a
//! deadline).

use crate::config::Limits;
use crate::gateway::{ConnectionInfo, Gateway};
use crate::idle::{Activity, IdleIo};
use crate::tls::ClientCertificate;
use arc_swap::ArcSwap;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc, watch};

/// How long in-flight requests may take to finish after a shutdown signal (DESIGN.md section 6).
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(30);

/// How long a client may take to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves until `shutdown` resolves, then drains.
pub async fn serve(
    listener: TcpListener,
    gateway: Arc<ArcSwap<Gateway>>,
    worker: usize,
    shutdown: impl Future<Output = ()>,
) {
    // Drain: `stop` tells every connection to finish; each holds a clone of `open`, so
    // `closed.recv()` returns None once the last one is gone.
    let (stop, stopping) = watch::channel(false);
    let (open, mut closed) = mpsc::channel::<()>(1);
    // Each worker admits its share of the connection limit.
    let (limit, workers) = {
        let g = gateway.load();
        (g.config().limits.max_connections, g.config().workers.max(1))
    };
    let max_connections = limit.div_ceil(workers).max(1);
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
        let idle_timeout = gateway.load().config().limits.idle_timeout;
        let (gateway, stopping, open) = (gateway.clone(), stopping.clone(), open.clone());
        tokio::spawn(async move {
            let _open = open;
            let lifecycle = Lifecycle {
                stopping,
                idle_timeout,
            };
            let _permit = permit;
            match tls {
                None => {
                    let info = ConnectionInfo::new(peer, "http", None, worker);
                    serve_connection(stream, info, gateway, &builder, lifecycle).await;
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
                    let info = ConnectionInfo::new(peer, "https", client_cert, worker);
                    serve_connection(stream, info, gateway, &builder, lifecycle).await;
                }
            }
        });
    }
    drop(listener);
    tracing::info!("draining in-flight requests");
    let _ = stop.send(true);
    drop(open);
    if tokio::time::timeout(DRAIN_DEADLINE, closed.recv())
        .await
        .is_err()
    {
        tracing::warn!("drain deadline passed; closing remaining connections");
    }
}

/// What ends a connection besides its client: the server draining, or idleness.
struct Lifecycle {
    stopping: watch::Receiver<bool>,
    idle_timeout: Duration,
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
    mut lifecycle: Lifecycle,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let peer: SocketAddr = info.peer;
    let service = service_fn(move |request| {
        let gateway = gateway.load_full();
        let info = info.clone();
        async move { Ok::<_, Infallible>(gateway.handle(request, info).await) }
    });
    let activity = Activity::new();
    let mut idle = activity.watch();
    let io = TokioIo::new(IdleIo::new(stream, activity));
    let conn = builder.serve_connection_with_upgrades(io, service);
    let mut conn = std::pin::pin!(conn);
    // Idleness is checked a few times per timeout; graceful shutdown lets a request in flight
    // finish (HTTP/1) or sends GOAWAY and lets open streams finish (HTTP/2).
    let check_every = (lifecycle.idle_timeout / 4).max(Duration::from_millis(50));
    let mut closing = *lifecycle.stopping.borrow();
    let mut idle_close: Option<tokio::time::Instant> = None;
    if closing {
        conn.as_mut().graceful_shutdown();
    }
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
                }
                return;
            }
            changed = lifecycle.stopping.changed(), if !closing => {
                if changed.is_err() || *lifecycle.stopping.borrow() {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
            () = tokio::time::sleep(check_every), if !closing => {
                if idle.idle_for() >= lifecycle.idle_timeout {
                    tracing::debug!(peer = %peer, "closing an idle connection");
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                    idle_close = Some(tokio::time::Instant::now() + lifecycle.idle_timeout);
                }
            }
            // An HTTP/2 client that ignores GOAWAY (and its PING) would keep the connection
            // open; after another idle period it is dropped.
            () = tokio::time::sleep_until(idle_close.unwrap_or_else(tokio::time::Instant::now)), if idle_close.is_some() => {
                if idle.idle_for() >= lifecycle.idle_timeout {
                    return;
                }
                idle_close = Some(tokio::time::Instant::now() + lifecycle.idle_timeout);
            }
        }
    }
}
