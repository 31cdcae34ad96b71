//! Rewrites the first frames a server writes on a WebSocket, on the connection's write path:
//! - with recovery on, the CONNECT answer of the browsers' namespace gets its `pid`;
//! - on an Engine.IO v4 session opened on this WebSocket, the engine's first PING (which it
//!   sends at the handshake, not after `pingInterval`) is held back; the connection then answers
//!   it to the engine itself (see [`crate::edge`]).
//!
//! After the `101 Switching Protocols` head, the server writes unmasked WebSocket frames. The
//! [`FrameRewriter`] reads the first [`MAX_FRAMES`] of them, then steps aside for good: the rest
//! of the connection is copied through untouched. Large frames are never buffered, only passed.
//! A response that is not a `101` (an error answered to an upgrade request) passes untouched.

use std::sync::Arc;

use super::connect_packet;
use crate::recovery::Recovery;

/// Frames inspected before the rewriter steps aside (the CONNECT answer comes among the first:
/// after the Engine.IO open packet and a ping or two).
pub(crate) const MAX_FRAMES: usize = 32;
/// Largest frame payload inspected; anything larger is passed as it comes.
const MAX_INSPECTED: u64 = 1024;

/// What a rewriter needs to know: where pids come from, and the namespace to look for.
#[derive(Debug, Clone)]
pub(crate) struct RewriteContext {
    /// Announced pids, by sid.
    pub recovery: Arc<Recovery>,
    /// The browsers' namespace, e.g. `/public`.
    pub public_ns: Arc<str>,
}

/// The start of the only response head the rewriter reads frames after.
const SWITCHING: &[u8] = b"HTTP/1.1 101";

#[derive(Debug)]
enum Phase {
    /// At the start of the response: how much of it matched [`SWITCHING`].
    Status(usize),
    /// In the HTTP response head: how much of `\r\n\r\n` was just seen.
    Head(usize),
    /// Reading frames; `passing` bytes of a large frame still to copy through.
    Frames { passing: u64 },
    /// Stepped aside.
    Done,
}

/// Rewrites the first frames of an upgraded connection.
#[derive(Debug)]
pub(crate) struct FrameRewriter {
    /// Recovery on and the CONNECT answer not yet seen: where its pid comes from.
    pid: Option<RewriteContext>,
    /// The first PING is still to be held back.
    hold_ping: bool,
    /// The first PING was held back and not yet reported by [`Self::take_held_ping`].
    ping_held: bool,
    phase: Phase,
    held: Vec<u8>,
    frames: usize,
}

impl FrameRewriter {
    /// A rewriter for a connection whose next write starts the response head: with `pid`, it
    /// adds the pid to the CONNECT answer; with `hold_first_ping`, it holds back the first
    /// PING.
    pub(crate) fn new(pid: Option<RewriteContext>, hold_first_ping: bool) -> Self {
        Self {
            pid,
            hold_ping: hold_first_ping,
            ping_held: false,
            phase: Phase::Status(0),
            held: Vec::new(),
            frames: 0,
        }
    }

    /// Whether the first PING was held back since the last call: the engine waits for its
    /// PONG.
    pub(crate) fn take_held_ping(&mut self) -> bool {
        std::mem::take(&mut self.ping_held)
    }

    /// Whether it has stepped aside and holds nothing: writes can go straight through.
    pub(crate) fn is_done(&self) -> bool {
        matches!(self.phase, Phase::Done) && self.held.is_empty()
    }

    /// Takes what the server writes and appends what goes on the wire to `out`.
    pub(crate) fn feed(&mut self, mut input: &[u8], out: &mut Vec<u8>) {
        while !input.is_empty() {
            match &mut self.phase {
                Phase::Status(matched) => {
                    let n = (SWITCHING.len() - *matched).min(input.len());
                    let (piece, rest) = input.split_at(n);
                    out.extend_from_slice(piece);
                    input = rest;
                    if piece != &SWITCHING[*matched..*matched + n] {
                        // Not a 101: no frames follow, whatever the response says.
                        self.phase = Phase::Done;
                    } else if *matched + n == SWITCHING.len() {
                        self.phase = Phase::Head(0);
                    } else {
                        *matched += n;
                    }
                }
                Phase::Head(matched) => {
                    const END: &[u8] = b"\r\n\r\n";
                    let mut taken = 0;
                    for &byte in input {
                        taken += 1;
                        *matched = if byte == END[*matched] {
                            *matched + 1
                        } else if byte == END[0] {
                            1
                        } else {
                            0
                        };
                        if *matched == END.len() {
                            self.phase = Phase::Frames { passing: 0 };
                            break;
                        }
                    }
                    out.extend_from_slice(&input[..taken]);
                    input = &input[taken..];
                }
                Phase::Frames { passing } if *passing > 0 => {
                    let n = usize::try_from(*passing)
                        .unwrap_or(usize::MAX)
                        .min(input.len());
                    out.extend_from_slice(&input[..n]);
                    *passing -= n as u64;
                    input = &input[n..];
                }
                Phase::Frames { .. } => {
                    self.held.extend_from_slice(input);
                    input = &[];
                    self.frames_from_held(out);
                }
                Phase::Done => {
                    out.extend_from_slice(input);
                    input = &[];
                }
            }
        }
    }

    /// Handles every complete frame (or large frame start) in `held`.
    fn frames_from_held(&mut self, out: &mut Vec<u8>) {
        loop {
            if self.frames >= MAX_FRAMES {
                self.step_aside(out);
                return;
            }
            let Some((header_len, payload_len)) = frame_header(&self.held) else {
                if self.held.len() >= 2 && self.held[1] & 0x80 != 0 {
                    // A masked frame is not what a server writes: not ours to read.
                    self.step_aside(out);
                }
                return;
            };
            if payload_len > MAX_INSPECTED {
                self.frames += 1;
                let total = header_len as u64 + payload_len;
                let available = self.held.len() as u64;
                out.append(&mut self.held);
                self.phase = Phase::Frames {
                    passing: total.saturating_sub(available),
                };
                if available > total {
                    // Frames after it came in the same write and were copied with it: step
                    // aside rather than read them again.
                    self.step_aside(out);
                }
                return;
            }
            let total = header_len + usize::try_from(payload_len).unwrap_or(usize::MAX);
            if self.held.len() < total {
                return;
            }
            self.frames += 1;
            let frame: Vec<u8> = self.held.drain(..total).collect();
            let text = (frame[0] == 0x81)
                .then(|| std::str::from_utf8(&frame[header_len..]).ok())
                .flatten();
            if self.hold_ping && text == Some("2") {
                self.hold_ping = false;
                self.ping_held = true;
            } else {
                let rewritten = text.zip(self.pid.as_ref()).and_then(|(text, context)| {
                    connect_packet::with_pid(text, &context.public_ns, |sid| {
                        context.recovery.take_announced(sid)
                    })
                });
                match rewritten {
                    Some(text) => {
                        text_frame(&text, out);
                        self.pid = None;
                    }
                    None => out.extend_from_slice(&frame),
                }
            }
            if self.pid.is_none() && !self.hold_ping {
                self.step_aside(out);
                return;
            }
        }
    }

    fn step_aside(&mut self, out: &mut Vec<u8>) {
        out.append(&mut self.held);
        self.phase = Phase::Done;
    }
}

/// `(header length, payload length)` of an unmasked frame whose header is complete.
fn frame_header(bytes: &[u8]) -> Option<(usize, u64)> {
    let second = *bytes.get(1)?;
    if second & 0x80 != 0 {
        return None;
    }
    match second & 0x7f {
        126 => {
            let len = bytes.get(2..4)?;
            Some((4, u64::from(u16::from_be_bytes([len[0], len[1]]))))
        }
        127 => {
            let len: [u8; 8] = bytes.get(2..10)?.try_into().ok()?;
            Some((10, u64::from_be_bytes(len)))
        }
        short => Some((2, u64::from(short))),
    }
}

/// A final, unmasked text frame.
fn text_frame(text: &str, out: &mut Vec<u8>) {
    out.push(0x81);
    let len = text.len();
    if len < 126 {
        out.push(u8::try_from(len).unwrap_or(125));
    } else if let Ok(len) = u16::try_from(len) {
        out.push(126);
        out.extend_from_slice(&len.to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(text.as_bytes());
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn rewriter() -> FrameRewriter {
        let recovery = Arc::new(Recovery::new(Arc::new(
            crate::recovery::MemorySessions::new(Duration::from_secs(60)),
        )));
        recovery.announce("abc", "P1");
        FrameRewriter::new(
            Some(RewriteContext {
                recovery,
                public_ns: "/public".into(),
            }),
            false,
        )
    }

    fn frame(text: &str) -> Vec<u8> {
        let mut out = Vec::new();
        text_frame(text, &mut out);
        out
    }

    const HEAD: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n";

    fn stream() -> Vec<u8> {
        let mut input = HEAD.to_vec();
        input.extend(frame(r#"0{"sid":"abc","upgrades":[]}"#));
        input.extend(frame("2"));
        input.extend(frame(r#"40/public,{"sid":"abc"}"#));
        input.extend(frame(r#"42/public,["e",{"sid":"abc"}]"#));
        input.extend(frame(&"x".repeat(70_000)));
        input
    }

    fn expected() -> Vec<u8> {
        let mut expected = HEAD.to_vec();
        expected.extend(frame(r#"0{"sid":"abc","upgrades":[]}"#));
        expected.extend(frame("2"));
        expected.extend(frame(r#"40/public,{"sid":"abc","pid":"P1"}"#));
        expected.extend(frame(r#"42/public,["e",{"sid":"abc"}]"#));
        expected.extend(frame(&"x".repeat(70_000)));
        expected
    }

    #[test]
    fn the_connect_answer_gains_the_pid_whatever_the_write_sizes() {
        let input = stream();
        for chunk in [1, 2, 3, 7, 64, 1000, input.len()] {
            let mut rewriter = rewriter();
            let mut out = Vec::new();
            for piece in input.chunks(chunk) {
                rewriter.feed(piece, &mut out);
            }
            assert_eq!(out, expected(), "writes of {chunk} bytes");
            assert!(rewriter.is_done(), "writes of {chunk} bytes");
        }
    }

    #[test]
    fn without_a_connect_answer_it_steps_aside_after_max_frames() {
        let mut rewriter = rewriter();
        let mut input = HEAD.to_vec();
        for _ in 0..MAX_FRAMES {
            input.extend(frame("3"));
        }
        let mut out = Vec::new();
        rewriter.feed(&input, &mut out);
        assert!(rewriter.is_done());
        let late = frame(r#"40/public,{"sid":"abc"}"#);
        rewriter.feed(&late, &mut out);
        input.extend(&late);
        assert_eq!(out, input, "nothing rewritten after stepping aside");
    }

    #[test]
    fn the_first_ping_is_held_back_once_whatever_the_write_sizes() {
        let mut input = HEAD.to_vec();
        input.extend(frame(r#"0{"sid":"abc","upgrades":[]}"#));
        input.extend(frame("2"));
        input.extend(frame(r#"40/public,{"sid":"abc"}"#));
        input.extend(frame("2"));
        let mut expected = HEAD.to_vec();
        expected.extend(frame(r#"0{"sid":"abc","upgrades":[]}"#));
        expected.extend(frame(r#"40/public,{"sid":"abc"}"#));
        expected.extend(frame("2"));
        for chunk in [1, 2, 5, 13, input.len()] {
            let mut rewriter = FrameRewriter::new(None, true);
            let mut out = Vec::new();
            let mut held = 0;
            for piece in input.chunks(chunk) {
                rewriter.feed(piece, &mut out);
                held += usize::from(rewriter.take_held_ping());
            }
            assert_eq!(out, expected, "writes of {chunk} bytes");
            assert_eq!(held, 1, "writes of {chunk} bytes");
            assert!(rewriter.is_done(), "writes of {chunk} bytes");
        }
    }

    #[test]
    fn an_answer_that_is_not_a_101_passes_whole() {
        let refusal = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 80\r\n\r\n\
            {\"code\":\"server_full\",\"message\":\"this node holds as many connections as it may\"}";
        for chunk in [1, 3, 12, refusal.len()] {
            let mut rewriter = FrameRewriter::new(None, true);
            let mut out = Vec::new();
            for piece in refusal.chunks(chunk) {
                rewriter.feed(piece, &mut out);
            }
            assert_eq!(out, refusal, "writes of {chunk} bytes");
            assert!(rewriter.is_done());
            assert!(!rewriter.take_held_ping());
        }
    }

    #[test]
    fn medium_and_large_frames_keep_their_length_encoding() {
        for len in [125, 126, 1024, 1025, 65_535, 65_536] {
            let text = "y".repeat(len);
            let mut rewriter = rewriter();
            let mut input = HEAD.to_vec();
            input.extend(frame(&text));
            let mut out = Vec::new();
            rewriter.feed(&input, &mut out);
            assert_eq!(out, input, "{len}");
        }
    }
}
