//! Time limits on upstream connections, as nginx applies them: one to establish a connection
//! (TLS handshake included), one to each write that has to wait, and one to waiting for the
//! upstream's answer after a write.
//!
//! Key decision: the read limit runs only from a write to the next read that returns data
//! (or end of stream), never on an idle pooled connection, so a short read timeout does not
//! close keep-alive connections between requests. Each write restarts it, so a request
//! body still being streamed keeps the wait fresh. Stalls later in a response body are the
//! caller's to bound (the gateway does it per body frame).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection};
use tokio::time::{Instant, Sleep};

/// Per-connection time limits of an upstream client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Timeouts {
    /// Establishing a connection, TLS handshake included.
    pub connect: Duration,
    /// Each write that cannot complete at once.
    pub write: Duration,
    /// From a write to the next data (or end of stream) read back.
    pub read: Duration,
}

impl Default for Timeouts {
    /// Kong's service defaults: 60 s each.
    fn default() -> Self {
        let minute = Duration::from_secs(60);
        Self {
            connect: minute,
            write: minute,
            read: minute,
        }
    }
}

/// Whether `err` (or anything in its source chain) is a time limit running out.
pub fn is_timeout(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(e) = next {
        if e.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::TimedOut)
        {
            return true;
        }
        next = e.source();
    }
    false
}

/// Wraps a connector: connecting is bounded, and connections come back as [`TimedIo`].
#[derive(Debug, Clone)]
pub struct TimedConnector<C> {
    inner: C,
    timeouts: Timeouts,
}

impl<C> TimedConnector<C> {
    /// `inner`, with `timeouts` applied to what it connects.
    pub fn new(inner: C, timeouts: Timeouts) -> Self {
        Self { inner, timeouts }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<C> tower::Service<Uri> for TimedConnector<C>
where
    C: tower::Service<Uri>,
    C::Response: Read + Write + Connection + Unpin + Send,
    C::Future: Send + 'static,
    C::Error: Into<BoxError>,
{
    type Response = TimedIo<C::Response>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let timeouts = self.timeouts;
        let connecting = self.inner.call(uri);
        Box::pin(async move {
            match tokio::time::timeout(timeouts.connect, connecting).await {
                Ok(Ok(io)) => Ok(TimedIo::new(io, timeouts)),
                Ok(Err(e)) => Err(e.into()),
                Err(_) => Err(Box::new(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "connecting to the upstream timed out",
                )) as BoxError),
            }
        })
    }
}

/// A connection whose waiting writes, and whose wait for an answer, are bounded. hyper
/// polls both directions of a connection at once, so each has its own timer.
#[derive(Debug)]
pub struct TimedIo<S> {
    io: S,
    timeouts: Timeouts,
    read: Deadline,
    write: Deadline,
    /// A write happened and nothing has been read since.
    awaiting: bool,
}

/// A deadline for one wait at a time (a direction of a connection, a body): the timer is
/// allocated when first needed, then reset for each new wait.
#[derive(Debug, Default)]
pub struct Deadline {
    sleep: Option<Pin<Box<Sleep>>>,
    /// The deadline belongs to the current wait.
    armed: bool,
}

impl Deadline {
    /// Polls the deadline of the current wait, starting one of `limit` if none runs;
    /// `Err` (timed out, saying `what`) once it has passed.
    pub fn poll(&mut self, cx: &mut Context<'_>, limit: Duration, what: &str) -> io::Result<()> {
        if !self.armed {
            self.armed = true;
            let deadline = Instant::now() + limit;
            match &mut self.sleep {
                Some(sleep) => sleep.as_mut().reset(deadline),
                None => self.sleep = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
        }
        let passed = self
            .sleep
            .as_mut()
            .is_some_and(|sleep| sleep.as_mut().poll(cx).is_ready());
        if passed {
            self.armed = false;
            return Err(io::Error::new(io::ErrorKind::TimedOut, what.to_string()));
        }
        Ok(())
    }

    /// The wait ended: the next [`Deadline::poll`] starts a new one.
    pub fn disarm(&mut self) {
        self.armed = false;
    }
}

impl<S> TimedIo<S> {
    fn new(io: S, timeouts: Timeouts) -> Self {
        Self {
            io,
            timeouts,
            read: Deadline::default(),
            write: Deadline::default(),
            awaiting: false,
        }
    }

    /// After a write: the wait for an answer starts again from here. The read deadline is
    /// armed now, with the writing task's waker, because hyper may have polled the read side
    /// (and be waiting on it) before this write.
    fn wrote(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        self.write.disarm();
        self.awaiting = true;
        self.read.disarm();
        self.read.poll(
            cx,
            self.timeouts.read,
            "reading from the upstream timed out",
        )
    }

    /// What a write's `polled` result becomes: a completed write restarts the wait for an
    /// answer; a waiting one runs against the write limit.
    fn after_write(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        match polled {
            Poll::Ready(result) => {
                if result.is_ok() {
                    self.wrote(cx)?;
                }
                Poll::Ready(result)
            }
            Poll::Pending => {
                self.write_pending(cx)?;
                Poll::Pending
            }
        }
    }

    fn write_pending(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        self.write
            .poll(cx, self.timeouts.write, "writing to the upstream timed out")
    }
}

impl<S: Read + Unpin> Read for TimedIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(result) => {
                // Data or end of stream: the answer has started (or the connection ended).
                this.awaiting = false;
                this.read.disarm();
                Poll::Ready(result)
            }
            Poll::Pending if this.awaiting => {
                this.read.poll(
                    cx,
                    this.timeouts.read,
                    "reading from the upstream timed out",
                )?;
                Poll::Pending
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: Write + Unpin> Write for TimedIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.io).poll_write(cx, buf);
        this.after_write(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.after_write(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        match Pin::new(&mut this.io).poll_flush(cx) {
            Poll::Ready(result) => {
                this.write.disarm();
                Poll::Ready(result)
            }
            Poll::Pending => {
                this.write_pending(cx)?;
                Poll::Pending
            }
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

impl<S: Connection> Connection for TimedIo<S> {
    fn connected(&self) -> Connected {
        self.io.connected()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{UpstreamTls, upstream_client_with};
    use axum::body::Body;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    fn client(timeouts: Timeouts) -> crate::UpstreamClient {
        upstream_client_with(&UpstreamTls::default(), timeouts)
    }

    fn short(read: Duration, write: Duration) -> Timeouts {
        Timeouts {
            connect: Duration::from_secs(60),
            write,
            read,
        }
    }

    /// A server that answers every request on a connection with `ok` (or, with `answer`
    /// false, reads and never answers), counting connections.
    async fn server(answer: bool) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&accepted);
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 65536];
                    loop {
                        match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(_) if answer => {
                                let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                                if conn.write_all(ok).await.is_err() {
                                    return;
                                }
                            }
                            Ok(_) => {}
                        }
                    }
                });
            }
        });
        (addr, accepted)
    }

    fn get(addr: std::net::SocketAddr) -> http::Request<Body> {
        http::Request::get(format!("http://{addr}/"))
            .body(Body::empty())
            .expect("request")
    }

    #[tokio::test]
    async fn a_silent_upstream_times_out_but_idle_pooled_connections_do_not() {
        let read = Duration::from_millis(200);
        let (silent, _) = server(false).await;
        let c = client(short(read, Duration::from_secs(60)));
        let err = tokio::time::timeout(Duration::from_secs(20), c.request(get(silent)))
            .await
            .expect("the read limit ended the request")
            .expect_err("no answer");
        assert!(is_timeout(&err), "{err:?}");

        let (answering, accepted) = server(true).await;
        for _ in 0..2 {
            let res = tokio::time::timeout(Duration::from_secs(20), c.request(get(answering)))
                .await
                .expect("answered in time")
                .expect("answer");
            assert_eq!(res.status(), 200);
            drop(res);
            // Idle for longer than the read limit between requests.
            tokio::time::sleep(read * 3).await;
        }
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            1,
            "the idle connection was reused"
        );
    }

    #[tokio::test]
    async fn writes_to_an_upstream_that_stops_reading_time_out() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        // Accepts, never reads.
        let held = tokio::spawn(async move {
            let mut conns = Vec::new();
            while let Ok((conn, _)) = listener.accept().await {
                conns.push(conn);
            }
        });
        let c = client(short(Duration::from_secs(60), Duration::from_millis(200)));
        let req = http::Request::post(format!("http://{addr}/"))
            .body(Body::from(vec![b'a'; 64 << 20]))
            .expect("request");
        let err = tokio::time::timeout(Duration::from_secs(20), c.request(req))
            .await
            .expect("the write limit ended the request")
            .expect_err("the upstream never reads");
        assert!(is_timeout(&err), "{err:?}");
        held.abort();
    }

    #[test]
    fn timeouts_are_found_in_source_chains() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] io::Error);
        let timed_out = Outer(io::Error::new(io::ErrorKind::TimedOut, "late"));
        assert!(is_timeout(&timed_out));
        let refused = Outer(io::Error::from(io::ErrorKind::ConnectionRefused));
        assert!(!is_timeout(&refused));
    }
}
