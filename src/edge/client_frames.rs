//! Puts one frame of herald's own into the stream of WebSocket frames a client sends, at a
//! frame boundary, on the connection's read path.
//!
//! herald uses it to answer the first Engine.IO PING itself (see [`crate::edge`]): the engine
//! sends that PING at the handshake, herald holds it back from the client and feeds the engine
//! the PONG it waits for. The `ClientFrames` tracker follows the client's frames (masked, as
//! RFC 6455 requires of clients) from the first byte after the `101`, so that the frame goes in
//! between two messages, never inside one or inside a fragmented message.

use tokio::io::ReadBuf;

/// A final, masked text frame carrying the Engine.IO PONG packet `3` (mask key zero).
pub(crate) const PONG_FRAME: [u8; 7] = [0x81, 0x81, 0, 0, 0, 0, b'3'];

/// Where the tracker is in the client's byte stream.
#[derive(Debug, Default)]
pub(crate) struct ClientFrames {
    /// Bytes of the current frame's header seen so far (at most 14).
    header: [u8; 14],
    header_len: u8,
    /// Payload bytes of the current frame still to pass (0 while reading a header).
    payload_left: u64,
    /// A data frame without FIN was seen: the message goes on in continuation frames.
    in_message: bool,
}

impl ClientFrames {
    /// Whether the stream is between two messages: a frame may go in here.
    pub(crate) fn at_boundary(&self) -> bool {
        self.header_len == 0 && self.payload_left == 0 && !self.in_message
    }

    /// Follows `bytes`, read from the client; returns the offset just past the first point in
    /// them (or at their end) where the stream is between two messages, if there is one.
    pub(crate) fn pass(&mut self, bytes: &[u8]) -> Option<usize> {
        let mut at = 0;
        let mut boundary = None;
        while at < bytes.len() {
            if self.payload_left > 0 {
                let n = usize::try_from(self.payload_left)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len() - at);
                at += n;
                self.payload_left -= n as u64;
            } else {
                self.header[usize::from(self.header_len)] = bytes[at];
                self.header_len += 1;
                at += 1;
                if let Some(payload) = self.header_complete() {
                    self.payload_left = payload;
                    self.header_len = 0;
                }
            }
            if boundary.is_none() && self.at_boundary() {
                boundary = Some(at);
            }
        }
        boundary
    }

    /// The payload length once the header in `header` is whole (recording whether a message
    /// goes on after this frame).
    fn header_complete(&mut self) -> Option<u64> {
        let h = &self.header[..usize::from(self.header_len)];
        if h.len() < 2 {
            return None;
        }
        let masked = h[1] & 0x80 != 0;
        let mask_len = if masked { 4 } else { 0 };
        let (len_len, short) = match h[1] & 0x7f {
            126 => (2, None),
            127 => (8, None),
            short => (0, Some(u64::from(short))),
        };
        if h.len() < 2 + len_len + mask_len {
            return None;
        }
        let payload = short.unwrap_or_else(|| {
            h[2..2 + len_len]
                .iter()
                .fold(0u64, |n, &b| (n << 8) | u64::from(b))
        });
        let (fin, opcode) = (h[0] & 0x80 != 0, h[0] & 0x0f);
        // Control frames (0x8..) may come between fragments and change nothing.
        if opcode < 0x8 {
            self.in_message = !fin;
        }
        Some(payload)
    }
}

/// Puts `frame` into `buf` at `at` (an offset into its filled part), moving what follows;
/// false, and `buf` unchanged, when there is no room for it.
pub(crate) fn insert(buf: &mut ReadBuf<'_>, at: usize, frame: &[u8]) -> bool {
    if buf.remaining() < frame.len() || at > buf.filled().len() {
        return false;
    }
    let tail = buf.filled()[at..].to_vec();
    buf.set_filled(at);
    buf.put_slice(frame);
    buf.put_slice(&tail);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(first: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![first];
        match payload.len() {
            n if n < 126 => out.push(0x80 | u8::try_from(n).unwrap()),
            n if n < 65_536 => {
                out.push(0x80 | 126);
                out.extend_from_slice(&u16::try_from(n).unwrap().to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&[1, 2, 3, 4]);
        out.extend(
            payload
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ [1, 2, 3, 4][i % 4]),
        );
        out
    }

    #[test]
    fn boundaries_are_found_whatever_the_read_sizes() {
        let mut stream = masked(0x81, b"40");
        let first_end = stream.len();
        stream.extend(masked(0x81, &[b'x'; 300]));
        stream.extend(masked(0x82, &vec![7u8; 70_000]));
        for chunk in [1, 2, 3, 5, 100, stream.len()] {
            let mut frames = ClientFrames::default();
            let mut offset = 0;
            let mut first = None;
            for piece in stream.chunks(chunk) {
                if let Some(at) = frames.pass(piece) {
                    first.get_or_insert(offset + at);
                }
                offset += piece.len();
            }
            assert_eq!(first, Some(first_end), "reads of {chunk} bytes");
            assert!(frames.at_boundary(), "reads of {chunk} bytes");
        }
    }

    #[test]
    fn a_fragmented_message_has_no_boundary_until_its_last_fragment() {
        let mut frames = ClientFrames::default();
        assert_eq!(frames.pass(&masked(0x01, b"4")), None, "text without FIN");
        assert_eq!(frames.pass(&masked(0x89, b"")), None, "a ping in between");
        let last = masked(0x80, b"2");
        assert_eq!(frames.pass(&last), Some(last.len()));
    }

    #[test]
    fn a_frame_goes_in_at_the_given_offset() {
        let mut storage = [0u8; 16];
        let mut buf = ReadBuf::new(&mut storage);
        buf.put_slice(b"abcd");
        assert!(insert(&mut buf, 2, &PONG_FRAME));
        assert_eq!(buf.filled(), b"ab\x81\x81\0\0\0\x003cd");
        let mut small = [0u8; 8];
        let mut buf = ReadBuf::new(&mut small);
        buf.put_slice(b"abcd");
        assert!(!insert(&mut buf, 4, &PONG_FRAME));
        assert_eq!(buf.filled(), b"abcd");
    }
}
