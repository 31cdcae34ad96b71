//! Holds back the engine's first PING on a WebSocket that opened an Engine.IO v4 session, on
//! the connection's write path, without buffering or allocating (see [`crate::edge`] for why).
//!
//! `FirstPingFilter` follows what the server writes: the response head (only a `101` is
//! followed by frames; anything else passes untouched), then the unmasked frames. The engine
//! writes its first PING, the text frame `2`, among the first frames; the filter tells the
//! connection to write everything up to that frame's start, then to drop its three bytes, and
//! steps aside. It never looks past `MAX_FRAMES` frames. A WebSocket writer hands over whole
//! frames (and after a short write, the rest from where it stopped, which the filter ends at the
//! PING's start): a PING split by the writer itself over two writes would go through.

/// The PING packet `2` as an unmasked final text frame.
const PING_FRAME: [u8; 3] = [0x81, 0x01, b'2'];
/// The start of the only response head that frames follow.
const SWITCHING: &[u8] = b"HTTP/1.1 101";
/// Frames looked at before the filter steps aside.
const MAX_FRAMES: u8 = 8;

/// Where the filter is in what the server writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// At the start of the response: how much of [`SWITCHING`] matched.
    Status(u8),
    /// In the response head: how much of `\r\n\r\n` was just seen.
    Head(u8),
    /// In a frame header: its bytes so far.
    Header { bytes: [u8; 10], len: u8 },
    /// In a frame's payload: bytes left.
    Payload(u64),
    /// Stepped aside.
    Done,
}

/// What to do with the start of the bytes the server writes next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Write this many bytes as they are.
    Write(usize),
    /// Drop this many bytes (the first PING) without writing them.
    Drop(usize),
}

/// Finds the first PING among the first frames of an upgraded connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FirstPingFilter {
    phase: Phase,
    frames: u8,
}

impl Default for FirstPingFilter {
    fn default() -> Self {
        Self {
            phase: Phase::Status(0),
            frames: 0,
        }
    }
}

impl FirstPingFilter {
    /// Whether it has stepped aside: writes go straight through from now on.
    pub(crate) fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// What to do with `buf`, the bytes to write next. Changes nothing: call [`Self::written`]
    /// with what was then written, or [`Self::dropped`].
    pub(crate) fn step(&self, buf: &[u8]) -> Step {
        let mut probe = *self;
        let mut at = 0;
        while at < buf.len() && !probe.is_done() {
            if probe.at_frame_start() && buf[at..].starts_with(&PING_FRAME) {
                return if at == 0 {
                    Step::Drop(PING_FRAME.len())
                } else {
                    Step::Write(at)
                };
            }
            at += probe.pass_some(&buf[at..]);
        }
        Step::Write(buf.len())
    }

    /// The PING that [`Self::step`] found was dropped: the filter steps aside.
    pub(crate) fn dropped(&mut self) {
        self.phase = Phase::Done;
    }

    /// Follows bytes that were written.
    pub(crate) fn written(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() && !self.is_done() {
            let n = self.pass_some(bytes);
            bytes = &bytes[n..];
        }
    }

    fn at_frame_start(&self) -> bool {
        matches!(self.phase, Phase::Header { len: 0, .. })
    }

    /// Follows the start of `bytes` (at least one byte; a payload in one go) and says how many
    /// bytes it took.
    fn pass_some(&mut self, bytes: &[u8]) -> usize {
        match &mut self.phase {
            Phase::Payload(left) => {
                let n = usize::try_from(*left)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                *left -= n as u64;
                if *left == 0 {
                    self.frame_done();
                }
                n
            }
            _ => {
                self.pass_byte(bytes[0]);
                1
            }
        }
    }

    fn pass_byte(&mut self, byte: u8) {
        self.phase = match self.phase {
            Phase::Status(matched) => {
                let matched = usize::from(matched);
                if byte != SWITCHING[matched] {
                    Phase::Done
                } else if matched + 1 == SWITCHING.len() {
                    Phase::Head(0)
                } else {
                    Phase::Status(u8::try_from(matched + 1).unwrap_or(0))
                }
            }
            Phase::Head(matched) => {
                const END: &[u8] = b"\r\n\r\n";
                let matched = if byte == END[usize::from(matched)] {
                    matched + 1
                } else {
                    u8::from(byte == END[0])
                };
                if usize::from(matched) == END.len() {
                    Phase::Header {
                        bytes: [0; 10],
                        len: 0,
                    }
                } else {
                    Phase::Head(matched)
                }
            }
            Phase::Header { mut bytes, len } => {
                bytes[usize::from(len)] = byte;
                let len = len + 1;
                match header_payload(&bytes[..usize::from(len)]) {
                    Some(0) => {
                        self.frame_done();
                        return;
                    }
                    Some(payload) => Phase::Payload(payload),
                    None if bytes[1] & 0x80 != 0 && len >= 2 => Phase::Done,
                    None => Phase::Header { bytes, len },
                }
            }
            phase => phase,
        };
    }

    fn frame_done(&mut self) {
        self.frames += 1;
        self.phase = if self.frames >= MAX_FRAMES {
            Phase::Done
        } else {
            Phase::Header {
                bytes: [0; 10],
                len: 0,
            }
        };
    }
}

/// The payload length of an unmasked frame whose header is `header`, once it is whole.
fn header_payload(header: &[u8]) -> Option<u64> {
    let second = *header.get(1)?;
    if second & 0x80 != 0 {
        return None;
    }
    match second & 0x7f {
        126 if header.len() == 4 => Some(u64::from(u16::from_be_bytes([header[2], header[3]]))),
        127 if header.len() == 10 => {
            let mut len = [0; 8];
            len.copy_from_slice(&header[2..10]);
            Some(u64::from_be_bytes(len))
        }
        126 | 127 => None,
        short => Some(u64::from(short)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n";

    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut out = vec![0x81];
        match payload.len() {
            n if n < 126 => out.push(u8::try_from(n).unwrap()),
            n if n < 65_536 => {
                out.push(126);
                out.extend_from_slice(&u16::try_from(n).unwrap().to_be_bytes());
            }
            n => {
                out.push(127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(payload);
        out
    }

    /// Writes `writes` one after the other as a WebSocket writer would (the rest of a write
    /// again after a short one), the connection taking at most `take` bytes at a time; returns
    /// what reached the wire and how many PINGs were dropped.
    fn run(writes: &[Vec<u8>], take: usize) -> (Vec<u8>, usize) {
        let mut filter = FirstPingFilter::default();
        let (mut wire, mut dropped) = (Vec::new(), 0);
        for write in writes {
            let mut piece = write.as_slice();
            while !piece.is_empty() {
                if filter.is_done() {
                    wire.extend_from_slice(piece);
                    break;
                }
                let n = match filter.step(piece) {
                    Step::Drop(n) => {
                        dropped += 1;
                        filter.dropped();
                        n
                    }
                    Step::Write(n) => {
                        let n = n.min(take);
                        wire.extend_from_slice(&piece[..n]);
                        filter.written(&piece[..n]);
                        n
                    }
                };
                piece = &piece[n..];
            }
        }
        (wire, dropped)
    }

    #[test]
    fn the_first_ping_is_dropped_once_whatever_the_write_sizes() {
        let writes = vec![
            HEAD.to_vec(),
            frame(br#"0{"sid":"abc","upgrades":[],"pingInterval":25000}"#),
            frame(b"2"),
            frame(&[b'x'; 300]),
            frame(b"2"),
        ];
        let mut expected = Vec::new();
        for (i, write) in writes.iter().enumerate() {
            if i != 2 {
                expected.extend_from_slice(write);
            }
        }
        let together = vec![writes.concat()];
        for take in [usize::MAX, 1, 2, 7] {
            for (how, writes) in [("frame by frame", &writes), ("in one write", &together)] {
                let (wire, dropped) = run(writes, take);
                assert_eq!(wire, expected, "{how}, taking {take}");
                assert_eq!(dropped, 1, "{how}, taking {take}");
            }
        }
    }

    #[test]
    fn a_two_inside_a_payload_is_no_ping() {
        let mut input = HEAD.to_vec();
        input.extend(frame(&[0x81, 0x01, b'2']));
        input.extend(frame(&vec![b'2'; 70_000]));
        let (wire, dropped) = run(std::slice::from_ref(&input), usize::MAX);
        assert_eq!((wire, dropped), (input, 0));
    }

    #[test]
    fn an_answer_that_is_not_a_101_passes_whole() {
        let refusal = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 3\r\n\r\n\x81\x012".to_vec();
        let (wire, dropped) = run(std::slice::from_ref(&refusal), 5);
        assert_eq!((wire, dropped), (refusal, 0));
    }

    #[test]
    fn it_steps_aside_after_max_frames() {
        let mut input = HEAD.to_vec();
        for _ in 0..MAX_FRAMES {
            input.extend(frame(b"4x"));
        }
        input.extend(frame(b"2"));
        let (wire, dropped) = run(std::slice::from_ref(&input), usize::MAX);
        assert_eq!((wire, dropped), (input, 0));
    }
}
