//! A minimal WebSocket client (RFC 6455), just what the load generator needs: the HTTP upgrade,
//! masked client frames, unmasked server frames, no extensions, no fragmentation.
//!
//! Written by hand instead of taken from a crate so that one connection costs a few hundred
//! bytes plus one small read buffer: [`Conn`] owns its `TcpStream` and a `Vec<u8>` that starts
//! at [`READ_BUFFER`] bytes and only grows for a frame larger than that. [`crate::sio`] speaks
//! Engine.IO / Socket.IO on top of it.

use std::net::{IpAddr, SocketAddr};

use anyhow::{Context as _, bail};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpSocket, TcpStream},
};

/// The other headers a browser sends when it opens a WebSocket (Chrome 131, as nginx passes
/// them on), with a file-sharing application's session cookies: a server keeps the head of the
/// request that opened a session for the session's life, so an idle connection's memory
/// depends on them (docs/benchmarks.md, S1).
const BROWSER_HEADERS: &str = "Pragma: no-cache\r\nCache-Control: no-cache\r\n\
    User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
    Chrome/131.0.0.0 Safari/537.36\r\n\
    Origin: http://127.0.0.1\r\n\
    Accept-Encoding: gzip, deflate, br, zstd\r\n\
    Accept-Language: en-GB,en-US;q=0.9,en;q=0.8,fr;q=0.7\r\n\
    Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\
    Cookie: JSESSIONID=6f1c9d2e8a4b7f3c1d5e9a2b8c4f7e1d.node1; \
    open-xchange-secret-Zk3Xp9QmT2vL8rN4=2b7e151628aed2a6abf7158809cf4f3c; \
    open-xchange-public-session-Zk3Xp9QmT2vL8rN4=f0e1d2c3b4a5968778695a4b3c2d1e0f; \
    open-xchange-session-Zk3Xp9QmT2vL8rN4=a1b2c3d4e5f60718293a4b5c6d7e8f90; locale=en_GB\r\n\
    X-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: https\r\nX-Real-IP: 127.0.0.1\r\n";

/// Initial (and usual) read buffer per connection. Bench frames are ~150 bytes.
pub(crate) const READ_BUFFER: usize = 1024;
/// A buffer grown past this for one large frame is shrunk back once it is empty again.
const SHRINK_ABOVE: usize = 8 * 1024;

/// One WebSocket frame as the server sent it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Frame<'a> {
    /// A text frame's payload.
    Text(&'a [u8]),
    /// A ping: the payload to echo in a pong.
    Ping(&'a [u8]),
    /// The server closed the connection.
    Close,
    /// Binary frames and pongs: not used by the servers under test.
    Other,
}

/// A client WebSocket connection.
pub(crate) struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Bytes of `buf` holding received data.
    filled: usize,
    /// Start of the next unparsed frame in `buf`.
    start: usize,
    /// Length of the frame returned by the last `next_frame`, consumed on the next call.
    pending: usize,
    mask_seed: u32,
}

impl Conn {
    /// Connects from `source` (port chosen by the kernel) to `server` and upgrades `path`.
    ///
    /// # Errors
    /// TCP errors, or an upgrade that does not answer `101`.
    pub(crate) async fn connect(
        source: Option<IpAddr>,
        server: SocketAddr,
        path_and_query: &str,
    ) -> anyhow::Result<Self> {
        let socket = TcpSocket::new_v4().context("socket")?;
        if let Some(ip) = source {
            socket.bind(SocketAddr::new(ip, 0)).context("bind source")?;
        }
        let stream = socket.connect(server).await.context("connect")?;
        stream.set_nodelay(true).context("nodelay")?;
        let mut conn = Conn {
            stream,
            buf: vec![0; READ_BUFFER],
            filled: 0,
            start: 0,
            pending: 0,
            mask_seed: u32::from(server.port()) ^ 0x9e37_79b9,
        };
        let request = format!(
            "GET {path_and_query} HTTP/1.1\r\nHost: {server}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n{BROWSER_HEADERS}\r\n"
        );
        conn.stream
            .write_all(request.as_bytes())
            .await
            .context("send upgrade")?;
        let head_end = loop {
            if let Some(i) = find(&conn.buf[..conn.filled], b"\r\n\r\n") {
                break i + 4;
            }
            conn.fill().await.context("read upgrade answer")?;
        };
        let status_line = conn.buf[..head_end]
            .split(|&b| b == b'\r')
            .next()
            .unwrap_or(&[]);
        if !status_line.starts_with(b"HTTP/1.1 101") {
            bail!("upgrade refused: {}", String::from_utf8_lossy(status_line));
        }
        conn.start = head_end;
        Ok(conn)
    }

    /// Reads more bytes into the buffer, growing it when it is full.
    async fn fill(&mut self) -> anyhow::Result<()> {
        if self.start > 0 && self.start == self.filled {
            self.start = 0;
            self.filled = 0;
            if self.buf.len() > SHRINK_ABOVE {
                self.buf = vec![0; READ_BUFFER];
            }
        } else if self.start > 0 && self.filled == self.buf.len() {
            self.buf.copy_within(self.start..self.filled, 0);
            self.filled -= self.start;
            self.start = 0;
        }
        if self.filled == self.buf.len() {
            let len = self.buf.len() * 2;
            self.buf.resize(len, 0);
        }
        let n = self.stream.read(&mut self.buf[self.filled..]).await?;
        if n == 0 {
            bail!("connection closed by the server");
        }
        self.filled += n;
        Ok(())
    }

    /// The next frame from the server; waits for it.
    ///
    /// # Errors
    /// The connection ended or sent a frame this client does not support.
    pub(crate) async fn next_frame(&mut self) -> anyhow::Result<Frame<'_>> {
        self.start += std::mem::take(&mut self.pending);
        let (header, payload) = loop {
            if let Some(parsed) = parse_header(&self.buf[self.start..self.filled])? {
                break parsed;
            }
            self.fill().await?;
        };
        let begin = self.start + header;
        self.pending = header + payload;
        let opcode = self.buf[self.start] & 0x0f;
        let data = &self.buf[begin..begin + payload];
        Ok(match opcode {
            0x1 => Frame::Text(data),
            0x8 => Frame::Close,
            0x9 => Frame::Ping(data),
            _ => Frame::Other,
        })
    }

    /// Sends one masked text frame.
    ///
    /// # Errors
    /// The connection failed.
    pub(crate) async fn send_text(&mut self, payload: &[u8]) -> anyhow::Result<()> {
        let mut out = Vec::with_capacity(payload.len() + 14);
        self.encode(0x1, payload, &mut out);
        self.stream.write_all(&out).await?;
        Ok(())
    }

    /// Sends a pong echoing `payload` (WebSocket-level; Engine.IO pongs are text frames).
    ///
    /// # Errors
    /// The connection failed.
    pub(crate) async fn send_pong(&mut self, payload: Vec<u8>) -> anyhow::Result<()> {
        let mut out = Vec::with_capacity(payload.len() + 14);
        self.encode(0xA, &payload, &mut out);
        self.stream.write_all(&out).await?;
        Ok(())
    }

    /// Writes prepared bytes (frames made with [`Conn::encode`]) in one call.
    ///
    /// # Errors
    /// The connection failed.
    pub(crate) async fn send_raw(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.stream.write_all(bytes).await?;
        Ok(())
    }

    /// Appends one masked frame to `out` (for batching several frames in one write).
    pub(crate) fn encode(&mut self, opcode: u8, payload: &[u8], out: &mut Vec<u8>) {
        // xorshift: masks need not be secret here, only present (RFC 6455 5.3).
        let mut x = self.mask_seed;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.mask_seed = x;
        let mask = x.to_be_bytes();
        out.push(0x80 | opcode);
        match payload.len() {
            n @ 0..=125 => out.push(0x80 | n as u8),
            n @ 126..=65535 => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    }
}

/// Header length and payload length of the frame at the start of `buf`, if complete.
fn parse_header(buf: &[u8]) -> anyhow::Result<Option<(usize, usize)>> {
    if buf.len() < 2 {
        return Ok(None);
    }
    if buf[0] & 0x80 == 0 || buf[0] & 0x0f == 0 {
        bail!("fragmented frames are not supported");
    }
    if buf[1] & 0x80 != 0 {
        bail!("masked server frame");
    }
    let (header, payload) = match buf[1] & 0x7f {
        126 if buf.len() >= 4 => (4, usize::from(u16::from_be_bytes([buf[2], buf[3]]))),
        127 if buf.len() >= 10 => {
            let mut len = [0; 8];
            len.copy_from_slice(&buf[2..10]);
            (10, usize::try_from(u64::from_be_bytes(len))?)
        }
        126 | 127 => return Ok(None),
        n => (2, usize::from(n)),
    };
    Ok((buf.len() >= header + payload).then_some((header, payload)))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_of_short_medium_and_incomplete_frames() {
        assert_eq!(
            parse_header(&[0x81, 3, b'a', b'b', b'c']).unwrap(),
            Some((2, 3))
        );
        assert_eq!(parse_header(&[0x81, 3, b'a']).unwrap(), None);
        let mut medium = vec![0x81, 126, 0x01, 0x00];
        medium.resize(4 + 256, b'x');
        assert_eq!(parse_header(&medium).unwrap(), Some((4, 256)));
        assert!(parse_header(&[0x01, 1, b'a']).is_err());
    }
}
