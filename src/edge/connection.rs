//! Accepted TCP connections that herald can cut off one by one.
//!
//! socketioxide cannot disconnect a socket whose outgoing queue is full: its `disconnect`
//! needs room in that queue for the DISCONNECT packet. herald owns the accept loop instead:
//! every connection is wrapped in a [`CuttableConnection`], whose [`ConnectionHandle`] cuts it
//! off: the next read ends and the next (or pending) write fails, so hyper and the WebSocket
//! task drop the connection and the socket ends as a transport close, which socket.io-client
//! answers by reconnecting.
//!
//! Requests carry their connection's [`ConnectionHandle`] (and the usual
//! `ConnectInfo<SocketAddr>`); [`super::session_connections`] finds the connection an Engine.IO
//! session lives on.
//!
//! A connection upgraded to a WebSocket runs its first frames through a [`FrameRewriter`]: with
//! connection state recovery on, it adds the `pid` to the CONNECT answer; on an Engine.IO v4
//! session opened by this WebSocket, it holds back the engine's first PING, and the connection
//! puts the PONG the engine waits for into the client's frames ([`crate::edge`] says why).
//!
//! A connection that carries an Engine.IO session's WebSocket ends that session's count
//! against `limits.max_connections` when it closes ([`ConnectionHandle::carries_session`]).
//!
//! With `[tls]` set, the [`CuttableListener`] runs the TLS handshakes (off its accept loop)
//! and wraps the decrypted [`Stream`]: cutting off and the rewrite work on plaintext, as
//! without TLS.
//!
//! [`CuttableListener`]: super::listener::CuttableListener
//! [`Stream`]: super::listener::Stream

use std::{
    io,
    pin::Pin,
    sync::{
        Arc, OnceLock, Weak,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
};

use futures_util::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::ws_frames::{FrameRewriter, RewriteContext};
use super::{
    client_frames::{self, ClientFrames, PONG_FRAME},
    first_ping::{FirstPingFilter, Step},
};
use crate::limits::Ticket;

/// What a connection shares with its handles.
///
/// Every read and write of every connection looks at it, so it is a flag and two wakers, not
/// a `CancellationToken`: checking a token and keeping its `Notified` future registered takes
/// a lock per poll, which showed as 2–3 % of herald's CPU under fan-out, and a token with its
/// two boxed futures cost each connection about 400 bytes.
#[derive(Debug, Default)]
struct Shared {
    /// Set once, when the connection is cut off.
    cut_off: AtomicBool,
    /// The task last waiting to read, woken when the connection is cut off.
    reader: AtomicWaker,
    /// The task last waiting to write or flush, woken when the connection is cut off.
    writer: AtomicWaker,
    /// Set when a WebSocket upgrade was requested on this connection.
    upgrading: AtomicBool,
    /// Set with `upgrading` when the upgrade opens an Engine.IO v4 session: its first PING is
    /// to be held back.
    hold_first_ping: AtomicBool,
    /// The Engine.IO session whose WebSocket this connection carries.
    session: OnceLock<Arc<Ticket>>,
}

impl Shared {
    fn is_cut_off(&self) -> bool {
        self.cut_off.load(Ordering::Acquire)
    }

    /// What a poll of the inner connection gives; a poll that is to wait ends as `cut` instead
    /// when the connection is cut off, and otherwise leaves its task's waker in `waiting`, so
    /// that a cut wakes it. Ready polls touch no waker (the next poll sees the flag). The
    /// reader and the writer may be different tasks, so each direction has its waker.
    fn unless_cut_off<R>(
        &self,
        waiting: &AtomicWaker,
        cx: &Context<'_>,
        poll: Poll<R>,
        cut: impl FnOnce() -> R,
    ) -> Poll<R> {
        if poll.is_ready() {
            return poll;
        }
        waiting.register(cx.waker());
        // After registering: a cut before it is seen here, one after it wakes the task.
        if self.is_cut_off() {
            Poll::Ready(cut())
        } else {
            Poll::Pending
        }
    }
}

/// A handle on one connection, to cut it off; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct ConnectionHandle(Arc<Shared>);

impl ConnectionHandle {
    /// Ends the connection: reads see EOF, writes fail.
    pub(crate) fn cut_off(&self) {
        self.0.cut_off.store(true, Ordering::Release);
        self.0.reader.wake();
        self.0.writer.wake();
    }

    /// Marks the connection as being upgraded to a WebSocket (its next write is the `101`);
    /// `opens_v4_session`: the upgrade opens an Engine.IO v4 session.
    pub(super) fn upgrading(&self, opens_v4_session: bool) {
        self.0
            .hold_first_ping
            .store(opens_v4_session, Ordering::Release);
        self.0.upgrading.store(true, Ordering::Release);
    }

    /// This connection carries `session`'s WebSocket: when it closes, the session is over.
    pub(crate) fn carries_session(&self, session: Arc<Ticket>) {
        let _ = self.0.session.set(session);
    }

    /// A handle to no connection (the listener's own address has none).
    pub(super) fn detached() -> Self {
        Self(Arc::default())
    }

    /// A handle that does not keep the connection's state alive.
    pub(super) fn downgrade(&self) -> WeakConnectionHandle {
        WeakConnectionHandle(Arc::downgrade(&self.0))
    }

    /// Whether the connection was cut off.
    #[cfg(test)]
    pub(super) fn is_cut_off(&self) -> bool {
        self.0.is_cut_off()
    }
}

/// A [`ConnectionHandle`] that lets its connection's state go when the connection and its
/// other handles are gone.
#[derive(Debug)]
pub(super) struct WeakConnectionHandle(Weak<Shared>);

impl WeakConnectionHandle {
    /// The handle, while the connection's state lives.
    pub(super) fn upgrade(&self) -> Option<ConnectionHandle> {
        self.0.upgrade().map(ConnectionHandle)
    }

    /// Whether the connection's state still lives.
    pub(super) fn is_alive(&self) -> bool {
        self.0.strong_count() > 0
    }
}

/// A connection that a [`ConnectionHandle`] can end.
pub(crate) struct CuttableConnection<T> {
    inner: T,
    shared: Arc<Shared>,
    /// Recovery on: the context for a rewriter, taken when the connection is upgraded.
    rewrite: Option<Arc<RewriteContext>>,
    /// With recovery on, the first frames of an upgraded connection and what they became.
    rewriting: Option<Box<Rewriting>>,
    /// Recovery off, on a WebSocket that opened an Engine.IO v4 session: the first PING held
    /// back and its PONG owed to the engine. Boxed: it lives only until the PONG is in.
    first_ping: Option<Box<FirstPing>>,
    /// The upgrade was seen by the write path (what its first frames go through is set).
    upgrade_seen: bool,
}

/// A frame rewriter and the bytes it produced that are not written yet.
struct Rewriting {
    rewriter: FrameRewriter,
    out: Vec<u8>,
}

/// The first PING of a WebSocket session, held back, and the PONG the engine waits for.
#[derive(Debug, Default)]
struct FirstPing {
    /// Finds the PING on the write path (`None` once it stepped aside; with recovery on, the
    /// frame rewriter finds it instead).
    filter: Option<FirstPingFilter>,
    /// The client's frames, to find where the PONG can go.
    client_frames: ClientFrames,
    /// The PING was held back: its PONG goes to the engine at the next boundary.
    pong_due: bool,
}

impl<T> CuttableConnection<T> {
    /// Wraps a connection (the tests' way; the listener gives each its recovery context).
    #[cfg(test)]
    pub(crate) fn new(inner: T) -> Self {
        Self::with_recovery(inner, None)
    }

    /// Wraps a connection whose WebSocket CONNECT answers get their recovery `pid`.
    pub(crate) fn with_recovery(inner: T, rewrite: Option<Arc<RewriteContext>>) -> Self {
        Self {
            inner,
            shared: Arc::default(),
            rewrite,
            rewriting: None,
            first_ping: None,
            upgrade_seen: false,
        }
    }

    /// The handle that ends this connection.
    pub(crate) fn handle(&self) -> ConnectionHandle {
        ConnectionHandle(self.shared.clone())
    }

    /// At the first write after an upgrade was asked (the response starts): sets what its
    /// first frames go through.
    fn start_upgrade(&mut self) {
        if self.upgrade_seen || !self.shared.upgrading.load(Ordering::Acquire) {
            return;
        }
        self.upgrade_seen = true;
        let hold_ping = self.shared.hold_first_ping.load(Ordering::Acquire);
        let rewrite = self.rewrite.take();
        if hold_ping {
            // Every byte the client sends from now on is a frame.
            self.first_ping = Some(Box::new(FirstPing {
                filter: rewrite.is_none().then(FirstPingFilter::default),
                ..FirstPing::default()
            }));
        }
        if let Some(context) = rewrite {
            self.rewriting = Some(Box::new(Rewriting {
                rewriter: FrameRewriter::new(Some((*context).clone()), hold_ping),
                out: Vec::new(),
            }));
        }
    }

    /// The reader owes the engine the PONG of the PING just held back.
    fn owe_pong(&mut self) {
        if let Some(first_ping) = &mut self.first_ping {
            first_ping.pong_due = true;
            self.shared.reader.wake();
        }
    }

    /// Drops the first-PING state once nothing is left to do with it.
    fn first_ping_settled(&mut self) {
        if self
            .first_ping
            .as_ref()
            .is_some_and(|f| !f.pong_due && f.filter.is_none_or(|filter| filter.is_done()))
            && self.rewriting.is_none()
        {
            self.first_ping = None;
        }
    }
}

impl<T: AsyncWrite + Unpin> CuttableConnection<T> {
    /// Writes out what the rewriter produced; ready when all of it is written.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some(rewriting) = &mut self.rewriting else {
            return Poll::Ready(Ok(()));
        };
        while !rewriting.out.is_empty() {
            match Pin::new(&mut self.inner).poll_write(cx, &rewriting.out) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => {
                    rewriting.out.drain(..n);
                }
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Pending => return Poll::Pending,
            }
        }
        if rewriting.rewriter.is_done() {
            self.rewriting = None;
            self.first_ping_settled();
        }
        Poll::Ready(Ok(()))
    }

    /// Writes through the first-PING filter; `None` when it is not running.
    fn write_filtered(
        &mut self,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Option<Poll<io::Result<usize>>> {
        let filter = self.first_ping.as_mut()?.filter.as_mut()?;
        let poll = match filter.step(buf) {
            Step::Drop(n) => {
                filter.dropped();
                self.owe_pong();
                Poll::Ready(Ok(n))
            }
            Step::Write(n) => {
                let poll = Pin::new(&mut self.inner).poll_write(cx, &buf[..n]);
                if let Poll::Ready(Ok(written)) = poll {
                    filter.written(&buf[..written]);
                }
                poll
            }
        };
        self.first_ping_settled();
        Some(poll)
    }

    /// Writes through the frame rewriter; `None` when it is not running.
    fn write_rewritten(
        &mut self,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Option<Poll<io::Result<usize>>> {
        self.rewriting.as_ref()?;
        match self.poll_drain(cx) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(error)) => return Some(Poll::Ready(Err(error))),
            Poll::Pending => return Some(Poll::Pending),
        }
        let Some(rewriting) = self.rewriting.as_mut() else {
            // The rewriter stepped aside as its last bytes went out.
            return Some(Pin::new(&mut self.inner).poll_write(cx, buf));
        };
        rewriting.rewriter.feed(buf, &mut rewriting.out);
        if rewriting.rewriter.take_held_ping() {
            self.owe_pong();
        }
        // Taken: what cannot be written now goes out with the next write or flush.
        if let Poll::Ready(Err(error)) = self.poll_drain(cx) {
            return Some(Poll::Ready(Err(error)));
        }
        Some(Poll::Ready(Ok(buf.len())))
    }
}

impl<T> Drop for CuttableConnection<T> {
    fn drop(&mut self) {
        if let Some(session) = self.shared.session.get() {
            session.session_ended();
        }
    }
}

fn cut_off_error() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, "connection cut off")
}

impl<T: AsyncRead + Unpin> AsyncRead for CuttableConnection<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        // A cut connection reads as closed by the peer.
        let eof = || Ok(());
        if self.shared.is_cut_off() {
            return Poll::Ready(eof());
        }
        let this = &mut *self;
        let Some(first_ping) = &mut this.first_ping else {
            let poll = Pin::new(&mut this.inner).poll_read(cx, buf);
            return this
                .shared
                .unless_cut_off(&this.shared.reader, cx, poll, eof);
        };
        if first_ping.pong_due
            && first_ping.client_frames.at_boundary()
            && buf.remaining() >= PONG_FRAME.len()
        {
            buf.put_slice(&PONG_FRAME);
            first_ping.pong_due = false;
            this.first_ping_settled();
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &poll {
            let boundary = first_ping.client_frames.pass(&buf.filled()[before..]);
            if first_ping.pong_due
                && let Some(at) = boundary
                && client_frames::insert(buf, before + at, &PONG_FRAME)
            {
                first_ping.pong_due = false;
                this.first_ping_settled();
            }
        }
        this.shared
            .unless_cut_off(&this.shared.reader, cx, poll, eof)
    }
}

impl<T: AsyncWrite + Unpin> CuttableConnection<T> {
    fn write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.start_upgrade();
        if let Some(poll) = self.write_filtered(cx, buf) {
            return poll;
        }
        if let Some(poll) = self.write_rewritten(cx, buf) {
            return poll;
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn write_vectored(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.start_upgrade();
        if self.rewriting.is_some() || self.first_ping.as_ref().is_some_and(|f| f.filter.is_some())
        {
            let first = bufs
                .iter()
                .find(|b| !b.is_empty())
                .map_or(&[][..], |b| &**b);
            return self.write(cx, first);
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.poll_drain(cx)?.is_pending() {
            return Poll::Pending;
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    /// `poll` unless the connection is cut off: then writes fail.
    fn unless_cut_off<R>(
        &mut self,
        cx: &mut Context<'_>,
        poll: impl FnOnce(&mut Self, &mut Context<'_>) -> Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        if self.shared.is_cut_off() {
            return Poll::Ready(Err(cut_off_error()));
        }
        let poll = poll(self, cx);
        self.shared
            .unless_cut_off(&self.shared.writer, cx, poll, || Err(cut_off_error()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for CuttableConnection<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.unless_cut_off(cx, |this, cx| this.write(cx, buf))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.unless_cut_off(cx, |this, cx| this.write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.unless_cut_off(cx, Self::flush)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.poll_drain(cx)?.is_pending() {
            return Poll::Pending;
        }
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};

    use super::*;

    #[tokio::test]
    async fn a_cut_off_connection_reads_eof_and_fails_writes() {
        let (near, mut far) = duplex(64);
        let mut near = CuttableConnection::new(near);
        let handle = near.handle();
        far.write_all(b"hi").await.unwrap();
        let mut buf = [0u8; 2];
        near.read_exact(&mut buf).await.unwrap();

        // A read waiting for data ends when the connection is cut.
        let reading = tokio::spawn(async move {
            let mut rest = Vec::new();
            let n = near.read_to_end(&mut rest).await.unwrap();
            (near, n)
        });
        handle.cut_off();
        let (mut near, n) = reading.await.unwrap();
        assert_eq!(n, 0);
        let error = near.write_all(b"more").await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::ConnectionAborted);
    }

    #[tokio::test]
    async fn a_write_blocked_on_a_full_peer_fails_when_cut() {
        let (near, _far) = duplex(8);
        let mut near = CuttableConnection::new(near);
        let handle = near.handle();
        let writing = tokio::spawn(async move { near.write_all(&[0u8; 64]).await });
        tokio::task::yield_now().await;
        handle.cut_off();
        let result = tokio::time::timeout(std::time::Duration::from_secs(5), writing)
            .await
            .expect("the blocked write did not end when the connection was cut")
            .unwrap();
        assert!(result.is_err());
    }
}
