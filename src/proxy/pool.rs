//! Keep-alive HTTP/1.1 connections to one plain-http upstream, for one data-plane worker.
//!
//! Hand-written over hyper's low-level `client::conn::http1` rather than hyper-util's legacy
//! `Client` because of what the legacy client does per request on the hot path: it spawns a
//! task to hand the connection back to its pool when the response ends, locks the pool twice,
//! rebuilds an absolute URI and moves a large future around. Here a connection goes back to
//! the idle stack when the response body is finished (its `Drop`), and the next checkout waits
//! for hyper to report it ready: one uncontended lock, no task. The lock is only ever taken by
//! this pool's own worker thread (pools are per worker); it exists because the forwarder is
//! shared between workers and must be `Sync`. HTTPS and HTTP/2 upstreams keep the legacy
//! client (TLS connector, stream multiplexing).

use super::LimitedBody;
use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// Idle connections kept per worker and upstream; more are closed when they finish.
const MAX_IDLE: usize = 1024;
/// An idle connection older than this is closed instead of reused: the upstream may be about
/// to close it (nginx's default `keepalive_timeout` is 75 s).
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

type Sender = SendRequest<LimitedBody>;

#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("cannot connect to the upstream: {0}")]
    Connect(#[source] std::io::Error),
    #[error("connecting to the upstream timed out")]
    ConnectTimeout,
    #[error(transparent)]
    Http(#[from] hyper::Error),
}

struct Idle {
    sender: Sender,
    since: Instant,
}

pub struct Http1Pool {
    /// `host:port`, resolved on each new connection (the address may change behind a name).
    address: String,
    idle: Mutex<Vec<Idle>>,
}

impl Http1Pool {
    pub fn new(address: String) -> Arc<Self> {
        Arc::new(Self {
            address,
            idle: Mutex::new(Vec::new()),
        })
    }

    /// Sends `request` (origin-form URI, `Host` set) on an idle connection, or on a new one.
    /// A request that an idle connection could not take (the upstream closed it at the same
    /// moment) is sent again on a new connection; hyper hands it back unsent in that case.
    pub async fn send(
        self: &Arc<Self>,
        request: Request<LimitedBody>,
    ) -> Result<Response<PooledBody>, PoolError> {
        let mut request = request;
        while let Some(mut sender) = self.checkout().await {
            match sender.try_send_request(request).await {
                Ok(response) => return Ok(self.wrap(response, sender)),
                Err(mut e) => match e.take_message() {
                    Some(unsent) => request = unsent,
                    None => return Err(e.into_error().into()),
                },
            }
        }
        // Boxed: connecting is the rare path, and its future would size every request's.
        let mut sender = Box::pin(self.connect()).await?;
        let response = sender.send_request(request).await?;
        Ok(self.wrap(response, sender))
    }

    /// The most recently used idle connection that is still open and ready.
    async fn checkout(&self) -> Option<Sender> {
        loop {
            let Idle { mut sender, since } = self.lock().pop()?;
            if sender.is_closed() || since.elapsed() > IDLE_TIMEOUT {
                continue;
            }
            // Usually ready at once; otherwise hyper is finishing the previous exchange (a
            // body just ended) and readiness follows within this worker's next turn.
            if sender.ready().await.is_ok() {
                return Some(sender);
            }
        }
    }

    async fn connect(&self) -> Result<Sender, PoolError> {
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&self.address))
            .await
            .map_err(|_| PoolError::ConnectTimeout)?
            .map_err(PoolError::Connect)?;
        stream.set_nodelay(true).map_err(PoolError::Connect)?;
        let (sender, connection) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await?;
        // Runs on this worker's own runtime, next to the requests that use it.
        tokio::spawn(async move {
            if let Err(e) = connection.with_upgrades().await {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
        });
        Ok(sender)
    }

    fn wrap(
        self: &Arc<Self>,
        response: Response<Incoming>,
        sender: Sender,
    ) -> Response<PooledBody> {
        // A connection that switched protocols belongs to the upgraded stream from now on.
        let reusable = response.status() != http::StatusCode::SWITCHING_PROTOCOLS;
        response.map(|inner| PooledBody {
            inner,
            finished: false,
            owner: reusable.then(|| (sender, Arc::clone(self))),
        })
    }

    fn checkin(&self, sender: Sender) {
        let mut idle = self.lock();
        if idle.len() < MAX_IDLE {
            idle.push(Idle {
                sender,
                since: Instant::now(),
            });
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Idle>> {
        // The guarded Vec stays consistent whatever panicked while holding it.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The upstream's response body; when it has been read to the end, its connection goes back to
/// the pool. A body dropped early (the client went away mid-download) takes its connection with
/// it: hyper closes a connection whose response was not read.
pub struct PooledBody {
    inner: Incoming,
    finished: bool,
    owner: Option<(Sender, Arc<Http1Pool>)>,
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(None) = polled {
            self.finished = true;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.finished || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for PooledBody {
    fn drop(&mut self) {
        if let Some((sender, pool)) = self.owner.take()
            && (self.finished || self.inner.is_end_stream())
        {
            pool.checkin(sender);
        }
    }
}
