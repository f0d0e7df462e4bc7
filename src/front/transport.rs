//! The subscriber transports and everything that differs between them:
//! paths, response heads, prologues, how one message object is framed, how
//! a response ends (reference §3.1, §3.2).
//!
//! This is the one place that knows the wire form of each transport: the
//! rest of the front asks a [`Transport`] to write a head, a frame or an end
//! and never branches on which transport it has. Adding a transport means
//! adding a variant here and its arms in these methods.

use crate::encode;
use crate::ws::frame::{FrameHeader, Opcode};
use crate::ws::{close, AcceptKey, CloseCode};

/// The end of a chunked response.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// The subscriber framings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `/sub`, `/poll`: one frame per response (JSON, or JSONP with `cb`).
    LongPoll,
    /// `/stream`: one JSON line per message.
    Stream,
    /// `/sse`: server-sent events.
    Sse,
    /// `/iframe`: script-wrapped frames for a forever-iframe.
    Iframe,
    /// `/ws`: a WebSocket (RFC 6455), one text frame per message object.
    Ws,
}

/// What a subscriber response head depends on.
#[derive(Debug, Clone, Copy)]
pub struct Head<'a> {
    /// The request was HTTP/1.0.
    pub http10: bool,
    /// The connection stays open after the response.
    pub keep_alive: bool,
    /// Accepted (false for a 401/429 refusal).
    pub ok: bool,
    /// The `Date:` line.
    pub date: &'a [u8],
    /// A WebSocket's accept key.
    pub accept: Option<&'a AcceptKey>,
}

/// One message object to frame, with what follows it.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// The message object.
    pub json: &'a [u8],
    /// A second object sent with it (the `next_seq` after a broadcast).
    pub next: Option<&'a [u8]>,
    /// The SSE `id:` of both objects, if any.
    pub sse_id: Option<i32>,
    /// Whether the response ends after it (a close, or a refusal).
    pub ends: bool,
}

impl Frame<'_> {
    /// A single object with no `id:` that does not end the response.
    pub fn control(json: &[u8]) -> Frame<'_> {
        Frame {
            json,
            next: None,
            sse_id: None,
            ends: false,
        }
    }
}

impl Transport {
    /// Every transport, in [`Transport::index`] order.
    pub const ALL: [Transport; 5] = [
        Transport::LongPoll,
        Transport::Stream,
        Transport::Sse,
        Transport::Iframe,
        Transport::Ws,
    ];

    /// Number of transports.
    pub const COUNT: usize = Transport::ALL.len();

    /// Number of (transport, chunked) framings, for per-event frame caches.
    pub const VARIANTS: usize = Transport::COUNT * 2;

    /// A dense index, for per-transport counters.
    pub fn index(self) -> usize {
        self as usize
    }

    /// Index of a (transport, chunked) framing in a per-event cache.
    pub fn variant(self, chunked: bool) -> usize {
        self.index() * 2 + usize::from(chunked)
    }

    /// The transport of a (percent-decoded) request path.
    pub fn from_path(path: &[u8]) -> Option<Transport> {
        Some(match path {
            b"/sub" | b"/poll" => Transport::LongPoll,
            b"/stream" => Transport::Stream,
            b"/sse" => Transport::Sse,
            b"/iframe" => Transport::Iframe,
            b"/ws" => Transport::Ws,
            _ => return None,
        })
    }

    /// The name used in `/stats` and `/metrics`.
    pub fn name(self) -> &'static str {
        match self {
            Transport::LongPoll => "poll",
            Transport::Stream => "stream",
            Transport::Sse => "sse",
            Transport::Iframe => "iframe",
            Transport::Ws => "ws",
        }
    }

    /// True for the transports whose response never ends on its own.
    pub fn is_streaming(self) -> bool {
        self != Transport::LongPoll
    }

    /// Whether a JSONP callback (`cb`) applies.
    pub fn takes_callback(self) -> bool {
        self == Transport::LongPoll
    }

    /// Whether the HTTP response ends and the connection carries frames of
    /// its own protocol from now on (WebSocket).
    pub fn upgrades(self) -> bool {
        self == Transport::Ws
    }

    /// Appends the head of a subscriber response (reference §3.1).
    /// `ok` is false for a 401/429 refusal, which omits `Connection:
    /// keep-alive`. A WebSocket's head is the `101` with its accept key
    /// (refusals come after the upgrade, as frames).
    pub fn head(self, out: &mut Vec<u8>, h: Head<'_>) {
        let Head {
            http10,
            keep_alive,
            ok,
            date,
            accept,
        } = h;
        if let (Transport::Ws, Some(accept)) = (self, accept) {
            accept.push_response(out);
            return;
        }
        out.extend_from_slice(if http10 {
            b"HTTP/1.0 200 OK\r\n"
        } else {
            b"HTTP/1.1 200 OK\r\n"
        });
        out.extend_from_slice(b"Expires: 0\r\nCache-Control: no-cache\r\n");
        out.extend_from_slice(match self {
            Transport::Sse => {
                &b"Content-Type: text/event-stream; charset=utf-8\r\nAccess-Control-Allow-Origin: *\r\n"[..]
            }
            // The embedding page is on another origin (the admin's /demo/, or an
            // app's port); `document.domain` only works across ports when both
            // documents leave origin-keyed agent clusters (Chromium ignores the
            // setter otherwise).
            Transport::Iframe => b"Content-Type: text/html; charset=utf-8\r\nOrigin-Agent-Cluster: ?0\r\n",
            Transport::LongPoll | Transport::Stream | Transport::Ws => {
                b"Content-Type: application/json; charset=utf-8\r\n"
            }
        });
        if self.is_streaming() {
            out.extend_from_slice(b"X-Accel-Buffering: no\r\n");
        }
        if http10 || !keep_alive {
            out.extend_from_slice(b"Connection: close\r\n");
        } else if ok {
            out.extend_from_slice(b"Connection: keep-alive\r\n");
        }
        if !http10 {
            out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
            out.extend_from_slice(date);
        }
        out.extend_from_slice(b"\r\n");
    }

    /// Appends what follows the head before any message: the iframe's HTML
    /// prologue (refusals included), and for an accepted SSE subscriber the
    /// `retry:` hint.
    pub fn prologue(self, out: &mut Vec<u8>, chunked: bool, accepted: bool, sse_retry_ms: u32) {
        match self {
            Transport::Iframe => body_into(out, &iframe_prologue(), chunked),
            Transport::Sse if accepted => body_into(out, format!("retry: {sse_retry_ms}\n\n").as_bytes(), chunked),
            _ => {}
        }
    }

    /// Appends one frame without a JSONP callback. A long poll's frame is its
    /// whole body (`M`, or `[M,NS]` when `next` is set) and always ends the
    /// response; a streaming frame is one chunk per object and ends the
    /// response only when `f.ends`.
    pub fn frame(self, out: &mut Vec<u8>, f: Frame<'_>, chunked: bool) {
        self.frame_jsonp(out, f, None, chunked);
    }

    /// [`Transport::frame`] for a long poll with a JSONP callback
    /// (`cb(M);\n`); streaming transports ignore `cb`.
    pub fn frame_jsonp(self, out: &mut Vec<u8>, f: Frame<'_>, cb: Option<&str>, chunked: bool) {
        match self {
            Transport::LongPoll => {
                let mut body = Vec::with_capacity(f.json.len() + f.next.map_or(0, <[u8]>::len) + 8);
                match f.next {
                    Some(next) => {
                        body.push(b'[');
                        body.extend_from_slice(f.json);
                        body.push(b',');
                        body.extend_from_slice(next);
                        body.push(b']');
                    }
                    None => body.extend_from_slice(f.json),
                }
                longpoll_into(out, cb, &body, chunked);
            }
            _ => {
                self.object_into(out, f.json, f.sse_id, chunked);
                if let Some(next) = f.next {
                    self.object_into(out, next, f.sse_id, chunked);
                }
                if f.ends && chunked && self != Transport::Ws {
                    out.extend_from_slice(LAST_CHUNK);
                }
            }
        }
    }

    /// Appends one message object in a streaming framing.
    fn object_into(self, out: &mut Vec<u8>, json: &[u8], sse_id: Option<i32>, chunked: bool) {
        if self == Transport::Ws {
            // One text frame whose payload is exactly the object: servers
            // never mask, so the frame is the same for every subscriber.
            out.extend_from_slice(FrameHeader::new(Opcode::Text, true, json.len() as u64).as_bytes());
            out.extend_from_slice(json);
            return;
        }
        let mut body = Vec::with_capacity(json.len() + 48);
        match self {
            Transport::Sse => {
                if let Some(id) = sse_id {
                    body.extend_from_slice(format!("id: {id}\n").as_bytes());
                }
                body.extend_from_slice(b"data: ");
                body.extend_from_slice(json);
                body.extend_from_slice(b"\n\n");
            }
            Transport::Iframe => {
                body.extend_from_slice(b"<script>parent.icomet_cb(");
                body.extend_from_slice(&encode::script_safe(json));
                body.extend_from_slice(b");</script>\n");
            }
            Transport::LongPoll | Transport::Stream | Transport::Ws => {
                body.extend_from_slice(json);
                body.push(b'\n');
            }
        }
        body_into(out, &body, chunked);
    }

    /// Appends the end of a streaming response for a shutdown (a
    /// WebSocket's close frame says "going away"); long polls end with their
    /// frame and have nothing to add.
    pub fn end(self, out: &mut Vec<u8>, chunked: bool) {
        match self {
            Transport::Ws => close::push_close_frame(out, CloseCode::GOING_AWAY, "server shutting down"),
            Transport::LongPoll => {}
            _ if chunked => out.extend_from_slice(LAST_CHUNK),
            _ => {}
        }
    }
}

/// Appends `body` as one HTTP chunk, or as it is when not chunked.
fn body_into(out: &mut Vec<u8>, body: &[u8], chunked: bool) {
    if chunked {
        chunk_into(out, body);
    } else {
        out.extend_from_slice(body);
    }
}

/// Appends a long-poll body: `cb(body);\n` or `body\n`, chunked if asked,
/// and the end of the response.
pub fn longpoll_into(out: &mut Vec<u8>, cb: Option<&str>, body: &[u8], chunked: bool) {
    let mut framed = Vec::with_capacity(body.len() + 8 + cb.map_or(0, str::len));
    match cb {
        Some(cb) => {
            framed.extend_from_slice(cb.as_bytes());
            framed.push(b'(');
            framed.extend_from_slice(body);
            framed.extend_from_slice(b");\n");
        }
        None => {
            framed.extend_from_slice(body);
            framed.push(b'\n');
        }
    }
    if chunked {
        chunk_into(out, &framed);
        out.extend_from_slice(LAST_CHUNK);
    } else {
        out.extend_from_slice(&framed);
    }
}

/// The prologue of `/iframe` responses: an HTML head, the `document.domain`
/// trick icomet's pages rely on, and padding so that browsers start
/// rendering (and running the scripts) at once.
///
/// `document.domain` becomes the hostname's last two labels, as icomet sets
/// it; where that is refused (an IP address such as 127.0.0.1, whose "last
/// two labels" are not a domain, or a public suffix) it is set to the
/// hostname itself, which still makes a page on another port of the same
/// host able to receive `parent.icomet_cb` calls once it sets the same value
/// (web/comet.js does both in this order).
pub fn iframe_prologue() -> Vec<u8> {
    let mut p = Vec::with_capacity(1400);
    p.extend_from_slice(
        b"<html><head>\
<meta http-equiv=\"Content-Type\" content=\"text/html; charset=utf-8\">\
<meta http-equiv=\"Cache-Control\" content=\"no-store\">\
<meta http-equiv=\"Cache-Control\" content=\"no-cache\">\
<meta http-equiv=\"Pragma\" content=\"no-cache\">\
<meta http-equiv=\"Expires\" content=\"Thu, 1 Jan 1970 00:00:00 GMT\">\
<script type=\"text/javascript\">window.onError = null;\
try{var h = window.location.hostname;try{document.domain = h.split('.').slice(-2).join('.');}catch(e){document.domain = h;}}catch(e){}\
</script></head><body>",
    );
    p.extend_from_slice(b"<!--");
    p.extend(std::iter::repeat_n(b' ', 1024));
    p.extend_from_slice(b"-->\n");
    p
}

/// A chunk-size line (`{len:x}\r\n`) built on the stack: written per
/// subscriber for JSONP deliveries, so it must not allocate.
pub struct ChunkHead {
    buf: [u8; 18],
    start: usize,
}

impl ChunkHead {
    /// The size line for a chunk of `len` bytes.
    pub fn new(len: usize) -> ChunkHead {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut buf = [0u8; 18];
        buf[16] = b'\r';
        buf[17] = b'\n';
        let mut start = 16;
        let mut n = len;
        loop {
            start -= 1;
            buf[start] = HEX[n & 15];
            n >>= 4;
            if n == 0 {
                break;
            }
        }
        ChunkHead { buf, start }
    }

    /// The line's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[self.start..]
    }
}

/// Appends `body` as one HTTP chunk.
pub fn chunk_into(out: &mut Vec<u8>, body: &[u8]) {
    out.extend_from_slice(ChunkHead::new(body.len()).as_bytes());
    out.extend_from_slice(body);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATA: &[u8] = br#"{"type":"data","cname":"c","seq":2,"content":"x</script>"}"#;
    const BCAST: &[u8] = br#"{"type":"broadcast","cname":"c","seq":2,"content":"B"}"#;
    const NEXT: &[u8] = br#"{"type":"next_seq","cname":"c","seq":3,"content":""}"#;

    fn frame(t: Transport, f: Frame<'_>, chunked: bool) -> Vec<u8> {
        let mut out = Vec::new();
        t.frame(&mut out, f, chunked);
        out
    }

    fn broadcast() -> Frame<'static> {
        Frame {
            json: BCAST,
            next: Some(NEXT),
            sse_id: Some(2),
            ends: false,
        }
    }

    #[test]
    fn paths_variants_and_names() {
        assert_eq!(Transport::from_path(b"/poll"), Some(Transport::LongPoll));
        assert_eq!(Transport::from_path(b"/sse"), Some(Transport::Sse));
        assert_eq!(Transport::from_path(b"/SSE"), None);
        let mut seen = [false; Transport::VARIANTS];
        for t in Transport::ALL {
            for chunked in [false, true] {
                assert!(!std::mem::replace(&mut seen[t.variant(chunked)], true));
            }
        }
        assert_eq!(
            Transport::ALL.map(Transport::name),
            ["poll", "stream", "sse", "iframe", "ws"]
        );
    }

    #[test]
    fn chunk_heads_are_lower_case_hex() {
        for (len, want) in [
            (0, "0\r\n"),
            (9, "9\r\n"),
            (59, "3b\r\n"),
            (4096, "1000\r\n"),
            (usize::MAX, "ffffffffffffffff\r\n"),
        ] {
            assert_eq!(ChunkHead::new(len).as_bytes(), want.as_bytes());
        }
    }

    #[test]
    fn longpoll_frames() {
        assert_eq!(
            frame(Transport::LongPoll, broadcast(), false),
            [&b"["[..], BCAST, b",", NEXT, b"]\n"].concat()
        );
        let b = frame(Transport::LongPoll, Frame::control(DATA), true);
        assert!(
            b.starts_with(b"3b\r\n{\"type\":\"data\""),
            "{:?}",
            String::from_utf8_lossy(&b)
        );
        assert!(b.ends_with(b"}\n\r\n0\r\n\r\n"));
        let mut out = Vec::new();
        Transport::LongPoll.frame_jsonp(&mut out, Frame::control(NEXT), Some("cb1"), false);
        assert_eq!(out, [&b"cb1("[..], NEXT, b");\n"].concat());
    }

    #[test]
    fn streaming_frames() {
        assert_eq!(
            frame(Transport::Sse, broadcast(), false),
            [&b"id: 2\ndata: "[..], BCAST, b"\n\nid: 2\ndata: ", NEXT, b"\n\n"].concat()
        );
        assert_eq!(
            frame(Transport::Iframe, Frame::control(DATA), false),
            &b"<script>parent.icomet_cb({\"type\":\"data\",\"cname\":\"c\",\"seq\":2,\"content\":\"x<\\/script>\"});</script>\n"[..]
        );
        let close = Frame {
            ends: true,
            ..Frame::control(NEXT)
        };
        let s = frame(Transport::Stream, close, true);
        assert!(s.ends_with(b"\"content\":\"\"}\n\r\n0\r\n\r\n"));
        assert_eq!(frame(Transport::Stream, close, false), [NEXT, b"\n"].concat());
    }

    #[test]
    fn websocket_frames_are_one_text_frame_per_object() {
        let f = frame(Transport::Ws, broadcast(), true);
        let want = [&[0x81, BCAST.len() as u8][..], BCAST, &[0x81, NEXT.len() as u8], NEXT].concat();
        assert_eq!(f, want, "a broadcast is two frames, neither chunked");
        let close = Frame {
            ends: true,
            ..Frame::control(NEXT)
        };
        assert_eq!(
            frame(Transport::Ws, close, true),
            [&[0x81, NEXT.len() as u8][..], NEXT].concat()
        );
        let long = vec![b'x'; 300];
        let f = frame(Transport::Ws, Frame::control(&long), true);
        assert_eq!(&f[..4], &[0x81, 126, 1, 44], "a 16-bit length");
        let mut out = Vec::new();
        Transport::Ws.end(&mut out, true);
        assert_eq!(&out[..4], &[0x88, 22, 0x03, 0xe9], "close 1001 on shutdown");
    }

    #[test]
    fn heads() {
        let mut out = Vec::new();
        let h = |http10, keep_alive, ok| Head {
            http10,
            keep_alive,
            ok,
            date: b"Date: x\r\n",
            accept: None,
        };
        Transport::Sse.head(&mut out, h(false, true, true));
        let head = String::from_utf8(out).expect("ascii");
        assert!(head.contains("Content-Type: text/event-stream; charset=utf-8\r\nAccess-Control-Allow-Origin: *\r\n"));
        assert!(head.contains(
            "X-Accel-Buffering: no\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\nDate: x\r\n\r\n"
        ));
        let mut out = Vec::new();
        Transport::LongPoll.head(&mut out, h(true, false, false));
        assert_eq!(
            out,
            b"HTTP/1.0 200 OK\r\nExpires: 0\r\nCache-Control: no-cache\r\nContent-Type: application/json; charset=utf-8\r\nConnection: close\r\n\r\n"
        );
    }
}
