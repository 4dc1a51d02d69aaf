//! A request body that refuses to grow past the route's limit while it streams, so a body
//! without `Content-Length` (chunked, HTTP/2) is held to the same limit as one with it. The
//! error is recognisable (`BodyTooLarge`) so the forwarder can answer 413.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The request body grew past the configured limit.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("request body larger than the configured limit")]
pub struct BodyTooLarge;

/// The client's body could not be read (malformed chunked encoding, a reset): the client's
/// fault, answered 400, never reported as an upstream failure.
#[derive(Debug, thiserror::Error)]
#[error("the request body could not be read: {0}")]
pub struct ClientBodyError(#[source] hyper::Error);

pub struct LimitedBody {
    inner: Incoming,
    remaining: u64,
}

impl LimitedBody {
    pub fn new(inner: Incoming, limit: u64) -> Self {
        Self {
            inner,
            remaining: limit,
        }
    }
}

impl Body for LimitedBody {
    type Data = Bytes;
    type Error = crate::body::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let len = data.len() as u64;
                    if len > this.remaining {
                        return Poll::Ready(Some(Err(Box::new(BodyTooLarge))));
                    }
                    this.remaining -= len;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Box::new(ClientBodyError(e))))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// True when `error`, or anything that caused it, is a `T`.
pub fn caused_by<T: std::error::Error + 'static>(
    error: &(dyn std::error::Error + 'static),
) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if e.is::<T>() {
            return true;
        }
        current = e.source();
    }
    false
}
