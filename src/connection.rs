//! Accepted TCP connections that herald can cut off one by one.
//!
//! socketioxide cannot disconnect a socket whose outgoing queue is full: its `disconnect`
//! needs room in that queue for the DISCONNECT packet. herald owns the accept loop instead:
//! every connection is wrapped in [`Severable`], whose [`Severer`] makes the next read end and
//! the next (or pending) write fail, so hyper and the WebSocket task drop the connection and
//! the socket ends as a transport close, which socket.io-client answers by reconnecting.
//!
//! Requests carry their connection's [`Severer`] (and the usual `ConnectInfo<SocketAddr>`).
//! A socket that started on long-polling and upgraded lives on the connection of its upgrade
//! request, not of its handshake: [`Connections`] remembers those by Engine.IO session id.

use std::{
    collections::HashMap,
    io,
    net::SocketAddr,
    pin::Pin,
    sync::{Arc, Mutex, Weak},
    task::{Context, Poll},
};

use axum::{
    extract::{ConnectInfo, Request, State, connect_info::Connected},
    middleware::Next,
    response::Response,
    serve::{IncomingStream, Listener},
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// Cuts off one connection; cheap to clone.
#[derive(Debug, Clone)]
pub struct Severer(Arc<CancellationToken>);

impl Severer {
    /// Ends the connection: reads see EOF, writes fail.
    pub fn sever(&self) {
        self.0.cancel();
    }
}

/// A connection that a [`Severer`] can end.
pub struct Severable<T> {
    inner: T,
    token: Arc<CancellationToken>,
    // One per direction: the reader and the writer may be polled by different tasks.
    read_cut: Pin<Box<WaitForCancellationFutureOwned>>,
    write_cut: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl<T> Severable<T> {
    /// Wraps a connection.
    pub fn new(inner: T) -> Self {
        let token = CancellationToken::new();
        Self {
            inner,
            read_cut: Box::pin(token.clone().cancelled_owned()),
            write_cut: Box::pin(token.clone().cancelled_owned()),
            token: Arc::new(token),
        }
    }

    /// The handle that ends this connection.
    pub fn severer(&self) -> Severer {
        Severer(self.token.clone())
    }
}

fn severed() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, "connection cut off")
}

impl<T: AsyncRead + Unpin> AsyncRead for Severable<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.read_cut.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Severable<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.write_cut.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(severed()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.write_cut.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(severed()));
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.write_cut.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(severed()));
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The peer of a connection and the handle that ends it (axum's connect info).
#[derive(Debug, Clone)]
pub struct Peer {
    /// The remote address.
    pub addr: SocketAddr,
    /// Ends the connection.
    pub severer: Severer,
}

/// A TCP listener whose connections are [`Severable`], with `TCP_NODELAY` set (push traffic is
/// small frames that must leave at once).
#[derive(Debug)]
pub struct SeverableListener(pub TcpListener);

impl Listener for SeverableListener {
    type Io = Severable<TcpStream>;
    type Addr = Peer;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (tcp, addr) = Listener::accept(&mut self.0).await;
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "TCP_NODELAY not set");
        }
        let io = Severable::new(tcp);
        let severer = io.severer();
        (io, Peer { addr, severer })
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(Peer {
            addr: self.0.local_addr()?,
            severer: Severer(Arc::new(CancellationToken::new())),
        })
    }
}

impl Connected<IncomingStream<'_, SeverableListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, SeverableListener>) -> Self {
        stream.remote_addr().clone()
    }
}

/// The connections of upgraded Engine.IO sessions, by session id. Entries die with their
/// connection (weak handles) and are purged as the map grows.
#[derive(Debug, Clone, Default)]
pub struct Connections(Arc<Mutex<Registry>>);

#[derive(Debug, Default)]
struct Registry {
    by_sid: HashMap<String, Weak<CancellationToken>>,
    purge_at: usize,
}

/// Entries kept before the first purge of dead ones.
const FIRST_PURGE: usize = 1024;

impl Connections {
    /// The connection an Engine.IO session upgraded to, while it is open.
    pub fn upgraded(&self, sid: &str) -> Option<Severer> {
        let registry = self.lock();
        registry.by_sid.get(sid)?.upgrade().map(Severer)
    }

    fn remember(&self, sid: &str, severer: &Severer) {
        let mut registry = self.lock();
        if registry.by_sid.len() >= registry.purge_at.max(FIRST_PURGE) {
            registry.by_sid.retain(|_, token| token.strong_count() > 0);
            registry.purge_at = registry.by_sid.len() * 2;
        }
        registry
            .by_sid
            .insert(sid.to_owned(), Arc::downgrade(&severer.0));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        // Plain data, consistent after every statement: a poisoned lock is still usable.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Outermost middleware: exposes the peer as `ConnectInfo<SocketAddr>` and the [`Severer`] to
/// everything inside, and remembers the connection of each WebSocket upgrade of a session.
pub async fn expose(
    State(connections): State<Connections>,
    mut request: Request,
    next: Next,
) -> Response {
    if let Some(ConnectInfo(peer)) = request.extensions_mut().remove::<ConnectInfo<Peer>>() {
        if request.headers().contains_key(axum::http::header::UPGRADE) {
            let sid = request.uri().query().and_then(|query| {
                query
                    .split('&')
                    .find_map(|pair| pair.strip_prefix("sid="))
                    .map(str::to_owned)
            });
            if let Some(sid) = sid {
                connections.remember(&sid, &peer.severer);
            }
        }
        request.extensions_mut().insert(ConnectInfo(peer.addr));
        request.extensions_mut().insert(peer.severer);
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};

    use super::*;

    #[tokio::test]
    async fn a_severed_connection_reads_eof_and_fails_writes() {
        let (near, mut far) = duplex(64);
        let mut near = Severable::new(near);
        let severer = near.severer();
        far.write_all(b"hi").await.unwrap();
        let mut buf = [0u8; 2];
        near.read_exact(&mut buf).await.unwrap();

        // A read waiting for data ends when the connection is cut.
        let reading = tokio::spawn(async move {
            let mut rest = Vec::new();
            let n = near.read_to_end(&mut rest).await.unwrap();
            (near, n)
        });
        severer.sever();
        let (mut near, n) = reading.await.unwrap();
        assert_eq!(n, 0);
        let error = near.write_all(b"more").await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::ConnectionAborted);
    }

    #[tokio::test]
    async fn a_write_blocked_on_a_full_peer_fails_when_cut() {
        let (near, _far) = duplex(8);
        let mut near = Severable::new(near);
        let severer = near.severer();
        let writing = tokio::spawn(async move { near.write_all(&[0u8; 64]).await });
        tokio::task::yield_now().await;
        severer.sever();
        let result = tokio::time::timeout(std::time::Duration::from_secs(5), writing)
            .await
            .expect("the blocked write did not end when the connection was cut")
            .unwrap();
        assert!(result.is_err());
    }

    #[test]
    fn dead_upgrades_are_forgotten() {
        let connections = Connections::default();
        let live = Severable::new(tokio::io::empty());
        connections.remember("live", &live.severer());
        {
            let gone = Severable::new(tokio::io::empty());
            connections.remember("gone", &gone.severer());
        }
        assert!(connections.upgraded("live").is_some());
        assert!(connections.upgraded("gone").is_none());
        assert!(connections.upgraded("never").is_none());
    }
}
