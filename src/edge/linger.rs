//! [`LingeringTcp`]: a TCP connection (under TLS too) that closes the way nginx's
//! `lingering_close` does.
//!
//! Closing a socket whose receive buffer still holds bytes makes the kernel answer with a RST
//! instead of a FIN, and a RST can make the peer's kernel throw away what herald wrote last: a
//! client disconnected while it was still sending (a flood cut off by the rate limit) would
//! lose the DISCONNECT packet, see a transport close, and reconnect by itself. So when herald
//! drops a connection, its write side is shut down (a FIN after everything written) and what
//! the peer still sends is read and thrown away until the peer closes, for at most
//! [`MAX_LINGER`]. A peer that closed first (the usual case) costs one read that returns at once.

use std::{
    io,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf},
    net::TcpStream,
};

/// How long a dropped connection may wait for its peer to close.
pub(crate) const MAX_LINGER: Duration = Duration::from_secs(2);

/// Bytes read at a time while draining (on the lingering task's stack, so kept small).
const DRAIN_CHUNK: usize = 512;

/// A TCP connection that lingers when dropped.
#[derive(Debug)]
pub(crate) struct LingeringTcp(Option<TcpStream>);

impl LingeringTcp {
    /// Wraps an accepted connection.
    pub(crate) fn new(tcp: TcpStream) -> Self {
        Self(Some(tcp))
    }

    fn tcp(&mut self) -> io::Result<&mut TcpStream> {
        self.0
            .as_mut()
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))
    }

    /// Whether writes may be vectored.
    pub(crate) fn is_write_vectored(&self) -> bool {
        self.0.as_ref().is_some_and(TcpStream::is_write_vectored)
    }
}

impl Drop for LingeringTcp {
    fn drop(&mut self) {
        let Some(tcp) = self.0.take() else {
            return;
        };
        // Outside a runtime (a test's teardown, the process ending) it just closes.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(linger(tcp));
        }
    }
}

/// Shuts the write side, then drains the peer's bytes until it closes or [`MAX_LINGER`] passes.
async fn linger(mut tcp: TcpStream) {
    if tcp.shutdown().await.is_err() {
        return;
    }
    let mut sink = [0u8; DRAIN_CHUNK];
    let drain = async { while let Ok(1..) = tcp.read(&mut sink).await {} };
    let _ = tokio::time::timeout(MAX_LINGER, drain).await;
}

impl AsyncRead for LingeringTcp {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(self.get_mut().tcp()?).poll_read(cx, buf)
    }
}

impl AsyncWrite for LingeringTcp {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(self.get_mut().tcp()?).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(self.get_mut().tcp()?).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        LingeringTcp::is_write_vectored(self)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.get_mut().tcp()?).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.get_mut().tcp()?).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use tokio::net::TcpListener;

    use super::*;

    /// A connected pair: herald's side wrapped, and the peer.
    async fn pair() -> (LingeringTcp, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let peer = TcpStream::connect(listener.local_addr().unwrap());
        let (peer, accepted) = tokio::join!(peer, listener.accept());
        (LingeringTcp::new(accepted.unwrap().0), peer.unwrap())
    }

    #[tokio::test]
    async fn a_peer_still_sending_gets_what_was_written_then_a_clean_end() {
        let (mut herald, mut peer) = pair().await;
        // The peer floods; herald reads none of it, writes its last words and drops.
        peer.write_all(&[b'x'; 64 * 1024]).await.unwrap();
        herald.write_all(b"goodbye").await.unwrap();
        drop(herald);
        // The peer reads the last words and then a clean end (EOF), not a reset.
        let mut got = Vec::new();
        let read = tokio::time::timeout(MAX_LINGER, peer.read_to_end(&mut got))
            .await
            .expect("no end of stream within the linger time");
        assert_eq!(read.expect("the connection was reset"), 7);
        assert_eq!(got, b"goodbye");
    }

    #[tokio::test]
    async fn a_silent_peer_is_let_go_after_the_linger_time() {
        let (herald, mut peer) = pair().await;
        let dropped = Instant::now();
        drop(herald);
        let mut byte = [0u8; 1];
        assert_eq!(peer.read(&mut byte).await.unwrap(), 0, "herald's FIN");
        // The peer never closes: herald's side is closed after MAX_LINGER; a write then fails.
        let deadline = dropped + MAX_LINGER * 3;
        loop {
            if peer.write_all(b"?").await.is_err() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "herald's side still open {:?} after the drop",
                dropped.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(50)).await; // poll interval, bounded above
        }
        assert!(
            dropped.elapsed() >= MAX_LINGER / 2,
            "closed before lingering"
        );
    }
}
