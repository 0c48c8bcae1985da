//! A bound on how long a streamed response body may stall (the hyper path's per-read
//! `read_timeout`; the connection bounds the wait for the head, see `portcullis_http::timed`).

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use portcullis_http::Deadline;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// `inner`, failing with a timed-out error when no frame arrives for `limit`. The timer is
/// allocated only when a frame is not ready at once.
pub(super) struct StallLimit<B> {
    inner: B,
    limit: Duration,
    deadline: Deadline,
}

impl<B> StallLimit<B> {
    pub(super) fn new(inner: B, limit: Duration) -> Self {
        Self {
            inner,
            limit,
            deadline: Deadline::default(),
        }
    }
}

impl<B> Body for StallLimit<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            this.deadline.disarm();
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        match this.deadline.poll(
            cx,
            this.limit,
            "reading the response body from the upstream timed out",
        ) {
            Ok(()) => Poll::Pending,
            Err(e) => {
                tracing::debug!("upstream response body stalled past read_timeout");
                Poll::Ready(Some(Err(Box::new(e))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
