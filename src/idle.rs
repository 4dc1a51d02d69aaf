//! Connection idleness: an I/O wrapper that records when bytes last moved, so the server can
//! close connections (HTTP/1 keep-alive or HTTP/2) that carried nothing for `idle_timeout`.
//! Hand-written because hyper has no idle timeout for HTTP/2 and the wrapper is a few lines.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A count of the times the connection moved bytes. The wrapper only bumps a counter (no clock
/// read per read or write, which profiling showed on every request); the server's periodic
/// check (`IdleWatch`) turns "the count did not change" into a duration.
#[derive(Clone)]
pub struct Activity {
    moves: Arc<AtomicU64>,
}

impl Activity {
    pub fn new() -> Self {
        Self {
            moves: Arc::new(AtomicU64::new(0)),
        }
    }

    fn touch(&self) {
        self.moves.fetch_add(1, Ordering::Relaxed);
    }

    /// Starts watching for idleness from now.
    pub fn watch(&self) -> IdleWatch {
        IdleWatch {
            activity: self.clone(),
            seen: self.moves.load(Ordering::Relaxed),
            quiet_since: Instant::now(),
        }
    }
}

impl Default for Activity {
    fn default() -> Self {
        Self::new()
    }
}

/// The server's view of a connection's idleness, updated at each periodic check.
pub struct IdleWatch {
    activity: Activity,
    seen: u64,
    quiet_since: Instant,
}

impl IdleWatch {
    /// How long nothing moved, as far as the checks can tell: measured from the check that
    /// last saw movement, so a connection is never thought idle earlier than it is (at most one
    /// check period later).
    pub fn idle_for(&mut self) -> Duration {
        let moves = self.activity.moves.load(Ordering::Relaxed);
        if moves != self.seen {
            self.seen = moves;
            self.quiet_since = Instant::now();
        }
        self.quiet_since.elapsed()
    }
}

/// Wraps a stream and touches `activity` whenever bytes are read or written.
pub struct IdleIo<T> {
    inner: T,
    activity: Activity,
}

impl<T> IdleIo<T> {
    pub fn new(inner: T, activity: Activity) -> Self {
        Self { inner, activity }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for IdleIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        result
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for IdleIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn movement_restarts_the_quiet_period_and_silence_lets_it_grow() {
        let (client, server) = tokio::io::duplex(64);
        let activity = Activity::new();
        let mut watch = activity.watch();
        let mut io = IdleIo::new(server, activity);
        let mut client = client;
        tokio::time::sleep(Duration::from_millis(30)).await;
        let quiet = watch.idle_for();
        assert!(quiet >= Duration::from_millis(30), "{quiet:?}");
        client.write_all(b"ping").await.expect("write");
        let mut buf = [0u8; 4];
        io.read_exact(&mut buf).await.expect("read");
        assert!(watch.idle_for() < quiet, "a read counts as movement");
        tokio::time::sleep(Duration::from_millis(30)).await;
        let quiet = watch.idle_for();
        io.write_all(b"pong").await.expect("write");
        assert!(watch.idle_for() < quiet, "a write counts as movement");
    }
}
