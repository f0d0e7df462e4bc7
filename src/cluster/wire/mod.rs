//! The bytes comet puts into Redis: PUB/SUB payloads, history entries and
//! presence lines, with an encoder and a strict decoder.
//!
//! Nodes never put finished JSON frames into Redis; they store and send
//! `(kind, seq, escaped content)` and every node builds its own frames. The Lua
//! scripts (`scripts.rs`) write exactly what [`encode_payload`] and
//! [`encode_history_entry`] write; a test runs both against each other.
//!
//! ```text
//! payload   = epoch SP seq SP kind [SP body]      on <prefix>:{<cname>}
//! epoch     = 16 lower-case hex | "-" (only in close/clear/free: no state left)
//! seq       = decimal i32 (icomet's wrapping seq; "-5", "0", "17")
//! kind "d"  one data message:       body = escaped content (the rest, may be empty)
//! kind "b"  one broadcast message:  body = escaped content
//! kind "m"  n >= 1 data messages with seqs seq, seq+1, ... (wrapping):
//!           body = (len ":" content)+   len = decimal byte count
//! kind "c"  close: seq = the channel's next seq; no body
//! kind "x"  clear: seq = the channel's next seq; no body
//! kind "f"  free (idle expiry): seq = the next seq it had; no body
//!
//! history   = seq SP ("d" | "b") SP content       LIST <prefix>:{<cname>}:h
//! presence  = ("1" | "0") SP cname                on <prefix>:psub
//! ```
//!
//! Content is JSON-string-escaped text without the quotes (what `/pub` takes);
//! the decoder checks it (UTF-8, no raw `"` or control byte, valid escapes),
//! because anything read from Redis is external input. This module is pure:
//! no I/O, no Redis types.

use bytes::Bytes;

use crate::encode::check_json_string_body;

/// Why bytes from Redis were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// A required field is missing (the payload ended early).
    #[error("truncated: no {0}")]
    Truncated(&'static str),
    /// The epoch is not 16 lower-case hex characters (or `-` where allowed).
    #[error("bad epoch")]
    BadEpoch,
    /// The seq is not a decimal i32.
    #[error("bad seq")]
    BadSeq,
    /// An unknown kind letter.
    #[error("unknown kind {0:?}")]
    BadKind(String),
    /// A length prefix in an `m` body is malformed or runs past the end.
    #[error("bad length in a multi-message body")]
    BadLength,
    /// Bytes after a kind that takes no body.
    #[error("unexpected bytes after a {0} message")]
    Trailing(&'static str),
    /// The content is not UTF-8 or not a valid JSON string body.
    #[error("bad content: {0}")]
    BadContent(&'static str),
    /// A presence line that is not `1 name` or `0 name`.
    #[error("bad presence line")]
    BadPresence,
}

/// A channel's epoch: 16 lower-case hex characters from the OS CSPRNG, made
/// when the channel's state is created in Redis. A different epoch for the
/// same name means Redis lost or recreated the channel (`/close`, expiry, a
/// restart without persistence): the node resets its copy.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Epoch([u8; 16]);

impl Epoch {
    /// A fresh random epoch.
    pub fn random() -> Epoch {
        let mut raw = [0u8; 8];
        getrandom::getrandom(&mut raw).expect("the OS random source is available");
        let mut out = [0u8; 16];
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for (i, b) in raw.iter().enumerate() {
            out[2 * i] = HEX[usize::from(b >> 4)];
            out[2 * i + 1] = HEX[usize::from(b & 15)];
        }
        Epoch(out)
    }

    /// Parses 16 lower-case hex characters.
    pub fn parse(s: &[u8]) -> Result<Epoch, WireError> {
        let raw: [u8; 16] = s.try_into().map_err(|_| WireError::BadEpoch)?;
        if raw.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(Epoch(raw))
        } else {
            Err(WireError::BadEpoch)
        }
    }

    /// The 16 hex characters.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("an epoch is ASCII hex")
    }
}

impl std::fmt::Debug for Epoch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Epoch({})", self.as_str())
    }
}

impl std::fmt::Display for Epoch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kind of a message that takes a seq.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `/pub`, `/push`: icomet type `data`.
    Data,
    /// `/broadcast`: icomet type `broadcast` (the node adds `next_seq`).
    Broadcast,
}

impl Kind {
    /// The letter on the wire.
    pub fn letter(self) -> u8 {
        match self {
            Kind::Data => b'd',
            Kind::Broadcast => b'b',
        }
    }
}

/// JSON-escaped content (without quotes), checked: valid UTF-8 and a valid
/// JSON string body, so a node may put it between quotes as it is.
#[derive(Clone, PartialEq, Eq)]
pub struct Escaped(Bytes);

impl Escaped {
    /// Checks `b` and wraps it.
    pub fn new(b: Bytes) -> Result<Escaped, WireError> {
        let s = std::str::from_utf8(&b).map_err(|_| WireError::BadContent("not UTF-8"))?;
        check_json_string_body(s).map_err(WireError::BadContent)?;
        Ok(Escaped(b))
    }

    /// The content as text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("checked as UTF-8 when built")
    }

    /// The content bytes (shared, no copy).
    pub fn bytes(&self) -> &Bytes {
        &self.0
    }
}

impl std::fmt::Debug for Escaped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

/// A control message of a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// `/close`: close every subscriber with icomet's close frame, free the channel.
    Close,
    /// `/clear`: empty the local history (subscribers are not told).
    Clear,
    /// The reaper freed the idle channel cluster-wide; a node still holding
    /// it recreates it (sign/touch), which gives it a new epoch.
    Free,
}

/// A decoded PUB/SUB payload of one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// One or more messages that take seqs: `seq`, `seq + 1`, ... (wrapping).
    Messages {
        /// The channel's epoch.
        epoch: Epoch,
        /// Seq of the first message.
        first_seq: i32,
        /// Data or broadcast (a multi-message payload is always data).
        kind: Kind,
        /// The contents, in seq order (at least one).
        contents: Vec<Escaped>,
    },
    /// A control message.
    Control {
        /// The epoch it applies to; `None` when Redis had no state left.
        epoch: Option<Epoch>,
        /// What happened.
        control: Control,
        /// The channel's next seq at that moment (icomet's `/close` answer).
        next_seq: i32,
    },
}

/// Parses an icomet seq: a decimal i32, optional `-`, no `+`, no spaces.
pub fn parse_seq(s: &[u8]) -> Result<i32, WireError> {
    let digits = s.strip_prefix(b"-").unwrap_or(s);
    if digits.is_empty() || digits.len() > 10 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(WireError::BadSeq);
    }
    std::str::from_utf8(s)
        .ok()
        .and_then(|t| t.parse::<i32>().ok())
        .ok_or(WireError::BadSeq)
}

/// Splits at the first space: (field, rest after the space or `None`).
fn field(b: &Bytes) -> (Bytes, Option<Bytes>) {
    match b.iter().position(|&c| c == b' ') {
        Some(i) => (b.slice(..i), Some(b.slice(i + 1..))),
        None => (b.clone(), None),
    }
}

/// Decodes a PUB/SUB payload (see the module doc). Content is sliced out of
/// `b` without copying.
pub fn decode_payload(b: &Bytes) -> Result<Payload, WireError> {
    let (epoch, rest) = field(b);
    let rest = rest.ok_or(WireError::Truncated("seq"))?;
    let (seq, rest) = field(&rest);
    let seq = parse_seq(&seq)?;
    let rest = rest.ok_or(WireError::Truncated("kind"))?;
    let (kind, body) = field(&rest);
    let kind_letter = match &kind[..] {
        [k] => *k,
        _ => return Err(WireError::BadKind(String::from_utf8_lossy(&kind).into_owned())),
    };
    let control = match kind_letter {
        b'c' => Some((Control::Close, "close")),
        b'x' => Some((Control::Clear, "clear")),
        b'f' => Some((Control::Free, "free")),
        _ => None,
    };
    if let Some((control, name)) = control {
        if body.is_some() {
            return Err(WireError::Trailing(name));
        }
        let epoch = match &epoch[..] {
            b"-" => None,
            e => Some(Epoch::parse(e)?),
        };
        return Ok(Payload::Control {
            epoch,
            control,
            next_seq: seq,
        });
    }
    let epoch = Epoch::parse(&epoch)?;
    let body = body.ok_or(WireError::Truncated("content"))?;
    let (kind, contents) = match kind_letter {
        b'd' => (Kind::Data, vec![Escaped::new(body)?]),
        b'b' => (Kind::Broadcast, vec![Escaped::new(body)?]),
        b'm' => (Kind::Data, decode_multi(&body)?),
        _ => return Err(WireError::BadKind(String::from_utf8_lossy(&kind).into_owned())),
    };
    Ok(Payload::Messages {
        epoch,
        first_seq: seq,
        kind,
        contents,
    })
}

/// Decodes `(len ":" content)+`.
fn decode_multi(body: &Bytes) -> Result<Vec<Escaped>, WireError> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < body.len() {
        let colon = body[at..]
            .iter()
            .take(11)
            .position(|&c| c == b':')
            .ok_or(WireError::BadLength)?;
        let digits = &body[at..at + colon];
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return Err(WireError::BadLength);
        }
        let len: usize = std::str::from_utf8(digits)
            .ok()
            .and_then(|t| t.parse().ok())
            .ok_or(WireError::BadLength)?;
        let start = at + colon + 1;
        let end = start
            .checked_add(len)
            .filter(|&e| e <= body.len())
            .ok_or(WireError::BadLength)?;
        out.push(Escaped::new(body.slice(start..end))?);
        at = end;
    }
    if out.is_empty() {
        return Err(WireError::Truncated("message"));
    }
    Ok(out)
}

/// Encodes one message payload (`d` or `b`), as the publish script does.
pub fn encode_payload(epoch: &Epoch, seq: i32, kind: Kind, content: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + content.len());
    out.extend_from_slice(epoch.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(seq.to_string().as_bytes());
    out.push(b' ');
    out.push(kind.letter());
    out.push(b' ');
    out.extend_from_slice(content.as_bytes());
    out
}

/// Encodes several data messages of one channel (`m`, or `d` for one).
pub fn encode_multi(epoch: &Epoch, first_seq: i32, contents: &[&str]) -> Vec<u8> {
    if let [one] = contents {
        return encode_payload(epoch, first_seq, Kind::Data, one);
    }
    let mut out = Vec::with_capacity(32 + contents.iter().map(|c| c.len() + 8).sum::<usize>());
    out.extend_from_slice(epoch.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(first_seq.to_string().as_bytes());
    out.extend_from_slice(b" m ");
    for c in contents {
        out.extend_from_slice(c.len().to_string().as_bytes());
        out.push(b':');
        out.extend_from_slice(c.as_bytes());
    }
    out
}

/// Encodes a control payload.
pub fn encode_control(epoch: Option<&Epoch>, control: Control, next_seq: i32) -> Vec<u8> {
    let letter = match control {
        Control::Close => 'c',
        Control::Clear => 'x',
        Control::Free => 'f',
    };
    let e = epoch.map_or("-", Epoch::as_str);
    format!("{e} {next_seq} {letter}").into_bytes()
}

/// One entry of a channel's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// The message's seq.
    pub seq: i32,
    /// Data or broadcast.
    pub kind: Kind,
    /// The escaped content.
    pub content: Escaped,
}

/// Encodes a history entry, as the publish script does.
pub fn encode_history_entry(seq: i32, kind: Kind, content: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + content.len());
    out.extend_from_slice(seq.to_string().as_bytes());
    out.push(b' ');
    out.push(kind.letter());
    out.push(b' ');
    out.extend_from_slice(content.as_bytes());
    out
}

/// Decodes a history entry.
pub fn decode_history_entry(b: &Bytes) -> Result<HistoryEntry, WireError> {
    let (seq, rest) = field(b);
    let seq = parse_seq(&seq)?;
    let rest = rest.ok_or(WireError::Truncated("kind"))?;
    let (kind, content) = field(&rest);
    let kind = match &kind[..] {
        b"d" => Kind::Data,
        b"b" => Kind::Broadcast,
        other => return Err(WireError::BadKind(String::from_utf8_lossy(other).into_owned())),
    };
    let content = content.ok_or(WireError::Truncated("content"))?;
    Ok(HistoryEntry {
        seq,
        kind,
        content: Escaped::new(content)?,
    })
}

/// Decodes a presence line: `(online, cname)`.
pub fn decode_presence(b: &[u8]) -> Result<(bool, String), WireError> {
    let online = match b.get(..2) {
        Some(b"1 ") => true,
        Some(b"0 ") => false,
        _ => return Err(WireError::BadPresence),
    };
    let name = std::str::from_utf8(&b[2..]).map_err(|_| WireError::BadPresence)?;
    Ok((online, name.to_string()))
}

#[cfg(test)]
mod tests;
