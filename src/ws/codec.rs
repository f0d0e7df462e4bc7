//! The decoder of client→server frames: [`WsState::decode`] parses frames in
//! place from the caller's buffer and yields messages and control frames.
//!
//! A complete unfragmented frame is unmasked where it lies and handed out
//! borrowed; only the payload of a frame split across reads, or of a
//! fragmented message, is copied into a per-connection buffer, which exists
//! only while that message is incomplete. This file owns that state and the
//! framing rules; it never writes frames (see [`super::frame`] and
//! [`super::close`]) and never sees a socket.

use std::borrow::Cow;

use super::close::{self, CloseCode};
use super::frame::{Opcode, MAX_CONTROL_PAYLOAD};
use super::mask;

pub use super::error::WsError;

/// Bound on what the caller keeps between calls: after a call that yields
/// no event, fewer than this many bytes remain unconsumed (an incomplete
/// control frame: 2 + 4 + 125 bytes, or an incomplete frame header).
pub const MAX_KEPT: usize = 2 + 4 + MAX_CONTROL_PAYLOAD;

/// A connection's decoder state: 8 bytes, and no heap memory unless a frame
/// is partly received or a fragmented message is being reassembled.
#[derive(Debug, Default)]
pub struct WsState {
    partial: Option<Box<Partial>>,
}

/// A data message in progress.
#[derive(Debug)]
struct Partial {
    /// A text message (validated as it arrives); else binary.
    text: bool,
    /// The unmasked payload received so far.
    data: Vec<u8>,
    /// How much of `data` is known to be valid UTF-8; the rest is the start
    /// of a sequence that may still be completed.
    utf8_valid: usize,
    /// Payload bytes of the current frame still to come.
    frame_left: u64,
    /// The current frame's mask and the mask index of its next byte.
    mask: [u8; 4],
    phase: usize,
    /// The current frame ends the message.
    fin: bool,
}

impl Partial {
    /// Takes as much of the current frame's payload as `bytes` holds:
    /// unmasks it, appends it, checks UTF-8. Returns how many bytes it took.
    fn take_payload(&mut self, bytes: &mut [u8]) -> Result<usize, WsError> {
        let n = usize::try_from(self.frame_left).map_or(bytes.len(), |left| left.min(bytes.len()));
        let chunk = &mut bytes[..n];
        mask::unmask(chunk, self.mask, self.phase);
        self.phase = mask::advance(self.phase, n);
        self.frame_left -= n as u64;
        self.data.extend_from_slice(chunk);
        if self.text {
            match std::str::from_utf8(&self.data[self.utf8_valid..]) {
                Ok(_) => self.utf8_valid = self.data.len(),
                // The end cut a sequence that is still a valid prefix.
                Err(e) if e.error_len().is_none() => self.utf8_valid += e.valid_up_to(),
                Err(_) => return Err(WsError::InvalidUtf8),
            }
        }
        Ok(n)
    }
}

/// A message or control frame from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event<'a> {
    /// A whole text message, valid UTF-8: borrowed from the caller's buffer
    /// when it came in one frame and one read, else owned.
    Text(Cow<'a, str>),
    /// A whole binary message (borrowed or owned as for text).
    Binary(Cow<'a, [u8]>),
    /// A ping; answer with [`super::frame::push_pong`] of this payload.
    Ping(&'a [u8]),
    /// A pong (solicited or not); nothing to answer.
    Pong(&'a [u8]),
    /// The client's close; answer with [`Close::reply`], then half-close.
    Close(Close<'a>),
}

/// A client's close frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Close<'a> {
    /// The code, `None` when the frame had no payload.
    pub code: Option<CloseCode>,
    /// The reason, possibly empty.
    pub reason: &'a str,
}

impl Close<'_> {
    /// The close frame that answers this one (the code echoed, or 1000).
    pub fn reply(&self) -> Vec<u8> {
        close::close_reply(self.code)
    }
}

/// What one call of [`WsState::decode`] did.
#[derive(Debug, PartialEq, Eq)]
pub struct Decoded<'a> {
    /// Bytes at the start of the buffer that were used; the caller drops
    /// them and presents the rest again, followed by what it reads next.
    pub consumed: usize,
    /// The event found, or `None` when more input is needed (then every
    /// byte that can be used now has been consumed, and fewer than
    /// [`MAX_KEPT`] remain).
    pub event: Option<Event<'a>>,
}

impl WsState {
    /// The state of a connection that has just been upgraded.
    pub fn new() -> WsState {
        WsState::default()
    }

    /// True when no message is in progress and no heap memory is held.
    pub fn is_idle(&self) -> bool {
        self.partial.is_none()
    }

    /// Heap bytes held for a message in progress (0 when idle).
    pub fn heap_bytes(&self) -> usize {
        self.partial
            .as_ref()
            .map_or(0, |p| std::mem::size_of::<Partial>() + p.data.capacity())
    }

    /// Decodes from the start of `buf` (client bytes, unmasked in place as
    /// they are used) until one event or the end of the usable input.
    ///
    /// Call it again on `buf[consumed..]` until it returns no event; keep
    /// the unconsumed bytes and present them again, with the next read
    /// appended. Data messages over `max_message` bytes are refused as soon
    /// as a header announces them. After an error or a [`Event::Close`] the
    /// connection is finished: do not call it again.
    ///
    /// A worker decodes straight from its shared read buffer when the
    /// connection kept nothing, and copies only the fewer than [`MAX_KEPT`]
    /// unconsumed bytes into the connection:
    ///
    /// ```
    /// use comet::ws::{frame, Decoded, Event, WsState};
    ///
    /// // A masked "hi" and the first byte of the next frame.
    /// let mut read = vec![0x81, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2, 0x89];
    /// let mut state = WsState::new();
    /// let (mut pos, mut out) = (0, Vec::new());
    /// loop {
    ///     let Decoded { consumed, event } = state.decode(&mut read[pos..], 4096).expect("valid frames");
    ///     pos += consumed;
    ///     match event {
    ///         Some(Event::Text(t)) => assert_eq!(t, "hi"),
    ///         Some(Event::Ping(p)) => frame::push_pong(&mut out, p),
    ///         Some(_) => {}
    ///         None => break,
    ///     }
    /// }
    /// let kept = read[pos..].to_vec(); // presented again before the next read
    /// assert_eq!(kept, [0x89]);
    /// assert!(state.is_idle());
    /// ```
    pub fn decode<'a>(&mut self, buf: &'a mut [u8], max_message: usize) -> Result<Decoded<'a>, WsError> {
        let mut pos = 0;
        loop {
            let mut finished = false;
            if let Some(p) = self.partial.as_deref_mut() {
                if p.frame_left > 0 {
                    pos += p.take_payload(&mut buf[pos..])?;
                    if p.frame_left > 0 {
                        return Ok(need_more(pos));
                    }
                    finished = p.fin;
                }
            }
            if finished {
                return self.finish(pos);
            }
            let rest = &buf[pos..];
            let Some(&b0) = rest.first() else {
                return Ok(need_more(pos));
            };
            if b0 & 0x70 != 0 {
                return Err(WsError::ReservedBits);
            }
            let opcode = Opcode::from_bits(b0).ok_or(WsError::ReservedOpcode(b0 & 0x0f))?;
            let fin = b0 & 0x80 != 0;
            let in_message = self.partial.is_some();
            match opcode {
                Opcode::Close | Opcode::Ping | Opcode::Pong if !fin => return Err(WsError::FragmentedControl),
                Opcode::Continuation if !in_message => return Err(WsError::UnexpectedContinuation),
                Opcode::Text | Opcode::Binary if in_message => return Err(WsError::ExpectedContinuation),
                _ => {}
            }
            let Some(&b1) = rest.get(1) else {
                return Ok(need_more(pos));
            };
            if b1 & 0x80 == 0 {
                return Err(WsError::Unmasked);
            }
            let len7 = b1 & 0x7f;
            if opcode.is_control() && usize::from(len7) > MAX_CONTROL_PAYLOAD {
                return Err(WsError::ControlTooLong);
            }
            let len_bytes = match len7 {
                126 => 2,
                127 => 8,
                _ => 0,
            };
            if len7 == 127 && rest.get(2).is_some_and(|b| b & 0x80 != 0) {
                return Err(WsError::LengthTopBit);
            }
            if rest.len() < 2 + len_bytes {
                return Ok(need_more(pos));
            }
            let payload_len = match len_bytes {
                2 => u64::from(u16::from_be_bytes([rest[2], rest[3]])),
                8 => u64::from_be_bytes(rest[2..10].try_into().expect("eight length bytes")),
                _ => u64::from(len7),
            };
            if !opcode.is_control() {
                let so_far = self.partial.as_ref().map_or(0, |p| p.data.len()) as u64;
                if so_far.saturating_add(payload_len) > max_message as u64 {
                    return Err(WsError::MessageTooBig { limit: max_message });
                }
            }
            let header_len = 2 + len_bytes + 4;
            if rest.len() < header_len {
                return Ok(need_more(pos));
            }
            let mask: [u8; 4] = rest[header_len - 4..header_len].try_into().expect("four mask bytes");
            let whole = (rest.len() - header_len) as u64 >= payload_len;
            if opcode.is_control() || (whole && fin && !in_message) {
                if !whole {
                    return Ok(need_more(pos));
                }
                let start = pos + header_len;
                let end = start + payload_len as usize;
                return single_frame(opcode, &mut buf[start..end], mask).map(|event| Decoded {
                    consumed: end,
                    event: Some(event),
                });
            }
            let p = self.partial.get_or_insert_with(|| {
                Box::new(Partial {
                    text: opcode == Opcode::Text,
                    data: Vec::new(),
                    utf8_valid: 0,
                    frame_left: 0,
                    mask,
                    phase: 0,
                    fin,
                })
            });
            p.frame_left = payload_len;
            p.mask = mask;
            p.phase = 0;
            p.fin = fin;
            pos += header_len;
            if payload_len == 0 && fin {
                return self.finish(pos);
            }
        }
    }

    /// Hands out the message whose last byte has just arrived and frees its buffer.
    fn finish<'a>(&mut self, consumed: usize) -> Result<Decoded<'a>, WsError> {
        let p = self
            .partial
            .take()
            .expect("finish is only called with a message in progress");
        let event = if p.text {
            if p.utf8_valid != p.data.len() {
                return Err(WsError::InvalidUtf8);
            }
            Event::Text(Cow::Owned(String::from_utf8(p.data).map_err(|_| WsError::InvalidUtf8)?))
        } else {
            Event::Binary(Cow::Owned(p.data))
        };
        Ok(Decoded {
            consumed,
            event: Some(event),
        })
    }
}

fn need_more<'a>(consumed: usize) -> Decoded<'a> {
    Decoded { consumed, event: None }
}

/// The event of one whole frame lying in `payload` (still masked): a
/// control frame, or a data message in a single frame.
fn single_frame(opcode: Opcode, payload: &mut [u8], mask: [u8; 4]) -> Result<Event<'_>, WsError> {
    mask::unmask(payload, mask, 0);
    let payload: &[u8] = payload;
    Ok(match opcode {
        Opcode::Text => Event::Text(Cow::Borrowed(
            std::str::from_utf8(payload).map_err(|_| WsError::InvalidUtf8)?,
        )),
        // A continuation never comes here: it always has a message in progress.
        Opcode::Binary | Opcode::Continuation => Event::Binary(Cow::Borrowed(payload)),
        Opcode::Ping => Event::Ping(payload),
        Opcode::Pong => Event::Pong(payload),
        Opcode::Close => Event::Close(parse_close(payload)?),
    })
}

/// A close frame's payload: nothing, or a code that may be sent and a UTF-8 reason.
fn parse_close(payload: &[u8]) -> Result<Close<'_>, WsError> {
    match payload {
        [] => Ok(Close { code: None, reason: "" }),
        [_] => Err(WsError::CloseOneByte),
        [hi, lo, reason @ ..] => {
            let raw = u16::from_be_bytes([*hi, *lo]);
            let code = CloseCode::new(raw).ok_or(WsError::BadCloseCode(raw))?;
            let reason = std::str::from_utf8(reason).map_err(|_| WsError::InvalidCloseReason)?;
            Ok(Close {
                code: Some(code),
                reason,
            })
        }
    }
}

#[cfg(test)]
#[path = "codec_tests.rs"]
mod tests;
