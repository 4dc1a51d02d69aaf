//! Local stand-ins used by `tokengate demo`, `tokengate emulator` and the integration tests:
//! the Authlete introspection emulator and an echo upstream. They live in the library (not
//! under `tests/`) so that a newcomer's demo and CI exercise the same fakes.

pub mod echo;
pub mod emulator;
pub mod run;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use std::future::Future;
use std::time::Duration;
use tokio::net::TcpListener;

/// The accept loop the emulator and the echo upstream share: HTTP/1.1 and h2c, each connection
/// in its own task, survives accept errors, and on shutdown lets open connections finish for up
/// to five seconds.
pub(crate) async fn serve_loop<F, Fut, B, E>(
    name: &'static str,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
    handler: F,
) -> std::io::Result<()>
where
    F: Fn(http::Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<http::Response<B>, E>> + Send + 'static,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<crate::body::BoxError>,
    E: Into<crate::body::BoxError>,
{
    let builder = auto::Builder::new(TokioExecutor::new());
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Typically EMFILE: back off instead of spinning, keep serving.
                    tracing::warn!(%error, "{name}: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let conn = builder
            .serve_connection(TokioIo::new(stream), service_fn(handler.clone()))
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(error) = conn.await {
                tracing::debug!(%error, "{name}: connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(Duration::from_secs(5), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::debug!("{name}: connections still open after the shutdown grace period");
    }
    Ok(())
}
