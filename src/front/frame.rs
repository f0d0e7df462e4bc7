//! Framing of messages per transport (reference §3.2), built once per event.
//!
//! The bytes for each (transport, chunked) variant of an [`Event`] are built
//! the first time a subscriber of that variant needs them and then shared by
//! every subscriber and worker. JSONP long-poll frames differ per callback
//! name, so they are written as parts around the shared body.

use bytes::Bytes;

use crate::channel::{Event, EventKind};
use crate::encode;
use crate::front::request::Transport;

/// The end of a chunked response.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

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

/// Appends one frame of a single message object `json` for a streaming transport.
/// `sse_id` is the `id:` line's value (SSE only).
pub fn stream_frame_into(out: &mut Vec<u8>, t: Transport, json: &[u8], sse_id: Option<i32>, chunked: bool) {
    let mut body = Vec::with_capacity(json.len() + 48);
    match t {
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
        _ => {
            body.extend_from_slice(json);
            body.push(b'\n');
        }
    }
    if chunked {
        chunk_into(out, &body);
    } else {
        out.extend_from_slice(&body);
    }
}

/// The long-poll body of an event without any callback: `M` or `[M,NS]` for a broadcast.
pub fn longpoll_body(e: &Event) -> Vec<u8> {
    match &e.next_json {
        Some(ns) => [&b"["[..], &e.json, b",", ns, b"]"].concat(),
        None => e.json.to_vec(),
    }
}

/// Number of (transport, chunked) framings.
pub(crate) const VARIANTS: usize = 8;

/// Index of a (transport, chunked) framing in a per-event cache.
pub(crate) fn variant(t: Transport, chunked: bool) -> usize {
    let base = match t {
        Transport::LongPoll => 0,
        Transport::Stream => 2,
        Transport::Sse => 4,
        Transport::Iframe => 6,
    };
    base + usize::from(chunked)
}

/// The wire bytes of `e` for a subscriber without a JSONP callback. For a
/// long poll and for close events this includes the end of the response.
pub fn event_bytes(e: &Event, t: Transport, chunked: bool) -> Bytes {
    e.frame(variant(t, chunked), VARIANTS, |e| {
        let mut out = Vec::new();
        if t == Transport::LongPoll {
            let mut body = longpoll_body(e);
            body.push(b'\n');
            if chunked {
                chunk_into(&mut out, &body);
            } else {
                out.extend_from_slice(&body);
            }
        } else {
            let id = (e.kind != EventKind::Close).then_some(e.seq);
            stream_frame_into(&mut out, t, &e.json, id, chunked);
            if let Some(ns) = &e.next_json {
                stream_frame_into(&mut out, t, ns, id, chunked);
            }
        }
        if chunked && (t == Transport::LongPoll || e.kind == EventKind::Close) {
            out.extend_from_slice(LAST_CHUNK);
        }
        Bytes::from(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::ChannelId;

    fn ev(kind: EventKind) -> Event {
        let id = ChannelId { slot: 0, gen: 1 };
        let (json, ns) = match kind {
            EventKind::Broadcast => (
                encode::message("broadcast", "c", 2, "B"),
                Some(encode::message("next_seq", "c", 3, "")),
            ),
            EventKind::Data => (encode::message("data", "c", 2, "x</script>"), None),
            EventKind::Close => (encode::message("close", "c", 3, ""), None),
        };
        Event::new(id, 2, kind, json, ns)
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
        let e = ev(EventKind::Broadcast);
        assert_eq!(
            &event_bytes(&e, Transport::LongPoll, false)[..],
            &b"[{\"type\":\"broadcast\",\"cname\":\"c\",\"seq\":2,\"content\":\"B\"},{\"type\":\"next_seq\",\"cname\":\"c\",\"seq\":3,\"content\":\"\"}]\n"[..]
        );
        let d = ev(EventKind::Data);
        let b = event_bytes(&d, Transport::LongPoll, true);
        assert!(b.starts_with(b"3b\r\n{\"type\":\"data\""), "{b:?}");
        assert!(b.ends_with(b"}\n\r\n0\r\n\r\n"));
    }

    #[test]
    fn streaming_frames() {
        let e = ev(EventKind::Broadcast);
        let sse = event_bytes(&e, Transport::Sse, false);
        assert_eq!(
            &sse[..],
            &b"id: 2\ndata: {\"type\":\"broadcast\",\"cname\":\"c\",\"seq\":2,\"content\":\"B\"}\n\nid: 2\ndata: {\"type\":\"next_seq\",\"cname\":\"c\",\"seq\":3,\"content\":\"\"}\n\n"[..]
        );
        let d = ev(EventKind::Data);
        let ifr = event_bytes(&d, Transport::Iframe, false);
        assert_eq!(&ifr[..], &b"<script>parent.icomet_cb({\"type\":\"data\",\"cname\":\"c\",\"seq\":2,\"content\":\"x<\\/script>\"});</script>\n"[..]);
        let c = ev(EventKind::Close);
        let s = event_bytes(&c, Transport::Stream, true);
        assert!(s.ends_with(b"\"content\":\"\"}\n\r\n0\r\n\r\n"));
        // The cache returns the same bytes.
        assert_eq!(event_bytes(&c, Transport::Stream, true), s);
    }
}
