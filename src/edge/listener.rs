//! [`CuttableListener`]: herald's accept loop, plain TCP or TLS.
//!
//! Plain: each accepted TCP connection is wrapped at once. TLS: a task of its own accepts, and
//! each handshake runs in a task of its own under `HANDSHAKE_TIMEOUT`, so one slow or silent
//! client never holds up the others; finished handshakes queue for the server. A client that
//! does not speak TLS (plain HTTP, garbage) fails its handshake: it is dropped and logged at
//! debug. Either way the server gets a [`CuttableConnection`] [`Stream`] of plaintext.

use std::{
    io,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use axum::{
    extract::connect_info::Connected,
    serve::{IncomingStream, Listener},
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{Semaphore, mpsc},
};
use tokio_rustls::{TlsAcceptor, server::TlsStream};
use tokio_util::sync::{CancellationToken, DropGuard};

use super::{
    connection::{ConnectionHandle, CuttableConnection},
    linger::LingeringTcp,
    ws_frames::RewriteContext,
};

/// How long a client may take over its TLS handshake before it is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// TLS handshakes in progress at once. At the bound accepting pauses, and new connections wait
/// in the kernel's listen backlog; a silent client holds its slot for [`HANDSHAKE_TIMEOUT`] at
/// most.
const MAX_HANDSHAKES: usize = 1024;

/// Connections past their handshake that the server has not taken yet.
const READY_QUEUE: usize = 64;

/// An accepted connection: plain TCP, or TLS over TCP (decrypted here).
#[derive(Debug)]
pub(crate) enum Stream {
    /// Plain TCP.
    Plain(LingeringTcp),
    /// TLS over TCP, past its handshake.
    Tls(Box<TlsStream<LingeringTcp>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            Self::Tls(tls) => Pin::new(tls.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(tcp) => Pin::new(tcp).poll_write(cx, buf),
            Self::Tls(tls) => Pin::new(tls.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(tcp) => Pin::new(tcp).poll_write_vectored(cx, bufs),
            Self::Tls(tls) => Pin::new(tls.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Plain(tcp) => tcp.is_write_vectored(),
            Self::Tls(tls) => tls.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            Self::Tls(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            Self::Tls(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The peer of a connection and the handle that ends it (axum's connect info).
#[derive(Debug, Clone)]
pub(crate) struct Peer {
    /// The remote address.
    pub addr: SocketAddr,
    /// Ends the connection.
    pub handle: ConnectionHandle,
}

/// A listener whose connections are [`CuttableConnection`]s, with `TCP_NODELAY` set (push
/// traffic is small frames that must leave at once), TLS when configured, and, with recovery
/// on, the pid rewrite.
#[derive(Debug)]
pub(crate) struct CuttableListener {
    incoming: Incoming,
    local_addr: SocketAddr,
    /// Recovery on: what the rewriters of upgraded connections need.
    rewrite: Option<Arc<RewriteContext>>,
}

#[derive(Debug)]
enum Incoming {
    Plain(TcpListener),
    Tls {
        ready: mpsc::Receiver<(TlsStream<LingeringTcp>, SocketAddr)>,
        /// Stops the accepting task (and pending handshakes) with the listener.
        _stop: DropGuard,
    },
}

impl CuttableListener {
    /// Serves `listener`, over TLS when an acceptor is given (its accept task starts now, on
    /// the current tokio runtime).
    ///
    /// # Errors
    /// The listener's local address cannot be read.
    pub(crate) fn new(
        listener: TcpListener,
        tls: Option<TlsAcceptor>,
        rewrite: Option<RewriteContext>,
    ) -> io::Result<Self> {
        let local_addr = listener.local_addr()?;
        let incoming = match tls {
            None => Incoming::Plain(listener),
            Some(acceptor) => {
                let stop = CancellationToken::new();
                let (done, ready) = mpsc::channel(READY_QUEUE);
                tokio::spawn(accept_tls(listener, acceptor, done, stop.clone()));
                Incoming::Tls {
                    ready,
                    _stop: stop.drop_guard(),
                }
            }
        };
        Ok(Self {
            incoming,
            local_addr,
            rewrite: rewrite.map(Arc::new),
        })
    }

    fn wrap(&self, stream: Stream, addr: SocketAddr) -> (CuttableConnection<Stream>, Peer) {
        let io = CuttableConnection::with_recovery(stream, self.rewrite.clone());
        let handle = io.handle();
        (io, Peer { addr, handle })
    }
}

fn no_delay(tcp: &TcpStream) {
    if let Err(error) = tcp.set_nodelay(true) {
        tracing::debug!(%error, "TCP_NODELAY not set");
    }
}

/// Accepts TCP connections and hands each to a handshake task, at most [`MAX_HANDSHAKES`] at
/// once, until `stop`.
async fn accept_tls(
    mut listener: TcpListener,
    acceptor: TlsAcceptor,
    done: mpsc::Sender<(TlsStream<LingeringTcp>, SocketAddr)>,
    stop: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    loop {
        let next = async {
            let slot = slots.clone().acquire_owned().await;
            // axum's accept retries by itself on errors (a full file table: after a pause).
            let (tcp, addr) = Listener::accept(&mut listener).await;
            (slot, tcp, addr)
        };
        let (slot, tcp, addr) = tokio::select! {
            () = stop.cancelled() => return,
            next = next => next,
        };
        // The semaphore is never closed.
        let Ok(slot) = slot else { return };
        no_delay(&tcp);
        let (acceptor, done, stop) = (acceptor.clone(), done.clone(), stop.clone());
        tokio::spawn(async move {
            let handshake =
                tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(LingeringTcp::new(tcp)));
            let outcome = tokio::select! {
                () = stop.cancelled() => return,
                outcome = handshake => outcome,
            };
            drop(slot);
            match outcome {
                Ok(Ok(tls)) => {
                    tokio::select! {
                        () = stop.cancelled() => {}
                        // An error: the server stopped accepting; the connection is dropped.
                        _ = done.send((tls, addr)) => {}
                    }
                }
                Ok(Err(error)) => {
                    tracing::debug!(%addr, %error, "TLS handshake failed; connection dropped");
                }
                Err(_) => {
                    tracing::debug!(%addr, timeout = ?HANDSHAKE_TIMEOUT, "TLS handshake timed out; connection dropped");
                }
            }
        });
    }
}

impl Listener for CuttableListener {
    type Io = CuttableConnection<Stream>;
    type Addr = Peer;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (stream, addr) = match &mut self.incoming {
            Incoming::Plain(listener) => {
                let (tcp, addr) = Listener::accept(listener).await;
                no_delay(&tcp);
                (Stream::Plain(LingeringTcp::new(tcp)), addr)
            }
            Incoming::Tls { ready, .. } => match ready.recv().await {
                Some((tls, addr)) => (Stream::Tls(Box::new(tls)), addr),
                None => {
                    // The accept task ends only with the listener (or by a panic): nothing
                    // more will come.
                    tracing::error!("the TLS accept task is gone; no new connections");
                    std::future::pending().await
                }
            },
        };
        self.wrap(stream, addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(Peer {
            addr: self.local_addr,
            handle: ConnectionHandle::detached(),
        })
    }
}

impl Connected<IncomingStream<'_, CuttableListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, CuttableListener>) -> Self {
        stream.remote_addr().clone()
    }
}
