//! What a body line carries, per transport: the JSON payload inside JSONP, SSE
//! and iframe framing; the icomet message objects in that payload (one object,
//! or an array for replays and broadcast pairs); and the content stamp that the
//! publisher puts in every message (`m=<number>;t=<send µs>;r=<run id>`).
//! Pure functions on byte slices, no state and no I/O; the subscriber logic that
//! acts on the messages lives in `conn`.

use crate::args::Transport;
use crate::fault::Fault;

/// The `type` of an icomet message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `data`: a `/push` or `/pub` message.
    Data,
    /// `broadcast`: a `/broadcast` message.
    Broadcast,
    /// `next_seq`: where to resume.
    NextSeq,
    /// `noop`: heartbeat.
    Noop,
    /// `close`: the channel was closed.
    Close,
    /// `401` or `429`: the subscription was refused.
    Refused,
    /// Anything else.
    Other,
}

/// One message object, borrowed from the line it came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    /// The `type` member.
    pub kind: Kind,
    /// The `cname` member, as sent (JSON-escaped form).
    pub cname: &'a [u8],
    /// The `seq` member.
    pub seq: i32,
    /// The `content` member, as sent (JSON-escaped form).
    pub content: &'a [u8],
}

const IFRAME_OPEN: &[u8] = b"<script>parent.icomet_cb(";
const IFRAME_CLOSE: &[u8] = b");</script>";

/// The JSON payload of one body line, or `None` for lines that carry no message
/// (blank lines, SSE `id:`/`retry:`/`event:`/comment lines, the iframe prologue).
/// `index` is the connection number, which names its JSONP callback `cb_<index>`.
pub fn payload(transport: Transport, line: &[u8], index: u32) -> Result<Option<&[u8]>, Fault> {
    if line.is_empty() {
        return Ok(None);
    }
    match transport {
        // A WebSocket text frame is its payload (`conn` hands it over whole).
        Transport::LongPoll | Transport::Stream | Transport::Ws => Ok(Some(line)),
        Transport::Jsonp => {
            let rest = line.strip_prefix(b"cb_").ok_or(Fault::Protocol)?;
            let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
            if parse_u64(&rest[..digits]) != Some(u64::from(index)) {
                return Err(Fault::Protocol);
            }
            rest[digits..]
                .strip_prefix(b"(")
                .and_then(|r| r.strip_suffix(b");"))
                .map(Some)
                .ok_or(Fault::Protocol)
        }
        Transport::Sse => Ok(line.strip_prefix(b"data:").map(|d| d.strip_prefix(b" ").unwrap_or(d))),
        Transport::Iframe => match line.strip_prefix(IFRAME_OPEN) {
            Some(rest) => rest.strip_suffix(IFRAME_CLOSE).map(Some).ok_or(Fault::Protocol),
            None => Ok(None),
        },
    }
}

/// Calls `f` for every message object in a payload: one object, or an array of them.
pub fn messages<'a, F>(payload: &'a [u8], mut f: F) -> Result<(), Fault>
where
    F: FnMut(Message<'a>) -> Result<(), Fault>,
{
    let mut i = skip_ws(payload, 0);
    match payload.get(i) {
        Some(b'{') => {
            let (msg, end) = object(payload, i)?;
            f(msg)?;
            i = end;
        }
        Some(b'[') => {
            i = skip_ws(payload, i + 1);
            if payload.get(i) == Some(&b']') {
                i += 1;
            } else {
                loop {
                    let (msg, end) = object(payload, i)?;
                    f(msg)?;
                    i = skip_ws(payload, end);
                    match payload.get(i) {
                        Some(b',') => i = skip_ws(payload, i + 1),
                        Some(b']') => {
                            i += 1;
                            break;
                        }
                        _ => return Err(Fault::Protocol),
                    }
                }
            }
        }
        _ => return Err(Fault::Protocol),
    }
    if skip_ws(payload, i) == payload.len() {
        Ok(())
    } else {
        Err(Fault::Protocol)
    }
}

/// Parses one flat object of string and number members starting at `i`.
fn object(s: &[u8], mut i: usize) -> Result<(Message<'_>, usize), Fault> {
    if s.get(i) != Some(&b'{') {
        return Err(Fault::Protocol);
    }
    let mut msg = Message {
        kind: Kind::Other,
        cname: b"",
        seq: 0,
        content: b"",
    };
    let mut has_type = false;
    i = skip_ws(s, i + 1);
    if s.get(i) == Some(&b'}') {
        return Err(Fault::Protocol);
    }
    loop {
        let key = string(s, &mut i)?;
        i = skip_ws(s, i);
        if s.get(i) != Some(&b':') {
            return Err(Fault::Protocol);
        }
        i = skip_ws(s, i + 1);
        let (value, quoted) = if s.get(i) == Some(&b'"') {
            (string(s, &mut i)?, true)
        } else {
            let start = i;
            while i < s.len() && (s[i].is_ascii_alphanumeric() || matches!(s[i], b'-' | b'+' | b'.')) {
                i += 1;
            }
            (&s[start..i], false)
        };
        if value.is_empty() && !quoted {
            return Err(Fault::Protocol);
        }
        match key {
            b"type" => {
                has_type = true;
                msg.kind = match value {
                    b"data" => Kind::Data,
                    b"broadcast" => Kind::Broadcast,
                    b"next_seq" => Kind::NextSeq,
                    b"noop" => Kind::Noop,
                    b"close" => Kind::Close,
                    b"401" | b"429" => Kind::Refused,
                    _ => Kind::Other,
                }
            }
            b"cname" => msg.cname = value,
            b"content" => msg.content = value,
            // icomet before 0.2.1 sent seq as a string; accept both.
            b"seq" => msg.seq = parse_i32(value).ok_or(Fault::Protocol)?,
            _ => {}
        }
        i = skip_ws(s, i);
        match s.get(i) {
            Some(b',') => i = skip_ws(s, i + 1),
            Some(b'}') => break,
            _ => return Err(Fault::Protocol),
        }
    }
    if has_type {
        Ok((msg, i + 1))
    } else {
        Err(Fault::Protocol)
    }
}

/// A JSON string at `*i`: returns its raw (still escaped) inside and moves past it.
fn string<'a>(s: &'a [u8], i: &mut usize) -> Result<&'a [u8], Fault> {
    if s.get(*i) != Some(&b'"') {
        return Err(Fault::Protocol);
    }
    let start = *i + 1;
    let mut j = start;
    while j < s.len() {
        match s[j] {
            b'\\' => j += 2,
            b'"' => {
                *i = j + 1;
                return Ok(&s[start..j]);
            }
            _ => j += 1,
        }
    }
    Err(Fault::Protocol)
}

fn skip_ws(s: &[u8], mut i: usize) -> usize {
    while i < s.len() && s[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

fn parse_u64(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(digits.iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')))
}

fn parse_i32(text: &[u8]) -> Option<i32> {
    let (negative, digits) = match text.strip_prefix(b"-") {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let n = i64::try_from(parse_u64(digits)?).ok()?;
    i32::try_from(if negative { -n } else { n }).ok()
}

/// What the publisher writes into every message's content, and the receiver
/// reads back to check completeness and measure latency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Message number, 0-based.
    pub number: u32,
    /// Send time, microseconds since the UNIX epoch.
    pub sent_us: u64,
    /// Identifies the run, so messages of other runs are not mistaken for ours.
    pub run: u32,
}

impl Stamp {
    /// The content text, e.g. `m=3;t=1700000000123456;r=0badcafe`.
    pub fn encode(&self) -> String {
        format!("m={};t={};r={:08x}", self.number, self.sent_us, self.run)
    }

    /// Reads a content field written by [`Stamp::encode`].
    pub fn parse(content: &[u8]) -> Option<Stamp> {
        let (mut number, mut sent_us, mut run) = (None, None, None);
        for field in content.split(|&b| b == b';') {
            let eq = field.iter().position(|&b| b == b'=')?;
            let (key, value) = (&field[..eq], &field[eq + 1..]);
            match key {
                b"m" => number = u32::try_from(parse_u64(value)?).ok(),
                b"t" => sent_us = parse_u64(value),
                b"r" => {
                    let text = std::str::from_utf8(value).ok()?;
                    run = u32::from_str_radix(text, 16).ok();
                }
                _ => return None,
            }
        }
        Some(Stamp {
            number: number?,
            sent_us: sent_us?,
            run: run?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(payload: &[u8]) -> Result<Vec<(Kind, String, i32, String)>, Fault> {
        let mut out = Vec::new();
        messages(payload, |m| {
            let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
            out.push((m.kind, text(m.cname), m.seq, text(m.content)));
            Ok(())
        })?;
        Ok(out)
    }

    fn one(kind: Kind, cname: &str, seq: i32, content: &str) -> (Kind, String, i32, String) {
        (kind, cname.into(), seq, content.into())
    }

    #[test]
    fn single_objects() {
        assert_eq!(
            all(br#"{"type":"data","cname":"abc","seq":3,"content":"hello"}"#),
            Ok(vec![one(Kind::Data, "abc", 3, "hello")])
        );
        assert_eq!(
            all(br#"{"type":"noop","cname":"c3","seq":42,"content":""}"#),
            Ok(vec![one(Kind::Noop, "c3", 42, "")])
        );
        assert_eq!(
            all(br#"{"type":"429","cname":"c2","seq":0,"content":"Too many subscribers"}"#),
            Ok(vec![one(Kind::Refused, "c2", 0, "Too many subscribers")])
        );
        // Escapes stay raw; old string seqs and spaces are accepted.
        assert_eq!(
            all(br#" { "type" : "data", "cname":"c1", "seq":"-7", "content":"hello\"\\\n\r	end" } "#),
            Ok(vec![one(Kind::Data, "c1", -7, "hello\\\"\\\\\\n\\r\tend")])
        );
    }

    #[test]
    fn arrays_replays_and_broadcast_pairs() {
        let pair = br#"[{"type":"broadcast","cname":"c2","seq":3,"content":"B2"},{"type":"next_seq","cname":"c2","seq":4,"content":""}]"#;
        assert_eq!(
            all(pair),
            Ok(vec![
                one(Kind::Broadcast, "c2", 3, "B2"),
                one(Kind::NextSeq, "c2", 4, "")
            ])
        );
        assert_eq!(
            all(br#"[{"type":"data","cname":"q5","seq":1,"content":"x"}]"#),
            Ok(vec![one(Kind::Data, "q5", 1, "x")])
        );
        assert_eq!(all(b"[]"), Ok(vec![]));
    }

    #[test]
    fn malformed_payloads() {
        for bad in [
            &b""[..],
            b"{",
            b"[{\"type\":\"data\"},]",
            b"[{\"type\":\"data\"}",
            b"{\"type\":\"data\"} x",
            b"{\"cname\":\"a\"}",
            b"{}",
            b"{\"type\":\"data\",\"seq\":9999999999}",
            b"{\"type\":\"data\",\"content\":\"unterminated}",
            b"hello",
        ] {
            assert_eq!(all(bad), Err(Fault::Protocol), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn jsonp_framing() {
        let line = br#"cb_17({"type":"data","cname":"a","seq":1,"content":"x"});"#;
        let p = payload(Transport::Jsonp, line, 17).expect("ok").expect("payload");
        assert_eq!(p, br#"{"type":"data","cname":"a","seq":1,"content":"x"}"#);
        let batch = br#"cb_3([{"type":"broadcast","cname":"c","seq":3,"content":"B"},{"type":"next_seq","cname":"c","seq":4,"content":""}]);"#;
        let p = payload(Transport::Jsonp, batch, 3).expect("ok").expect("payload");
        assert_eq!(all(p).expect("parses").len(), 2);
        assert_eq!(
            payload(Transport::Jsonp, line, 1),
            Err(Fault::Protocol),
            "other callback"
        );
        assert_eq!(
            payload(Transport::Jsonp, br#"{"type":"data"}"#, 17),
            Err(Fault::Protocol)
        );
        assert_eq!(payload(Transport::Jsonp, b"cb_17({})", 17), Err(Fault::Protocol));
    }

    #[test]
    fn sse_framing() {
        let m = br#"{"type":"data","cname":"a","seq":1,"content":"x"}"#;
        let line = [&b"data: "[..], m].concat();
        assert_eq!(payload(Transport::Sse, &line, 0), Ok(Some(&m[..])));
        let tight = [&b"data:"[..], m].concat();
        assert_eq!(payload(Transport::Sse, &tight, 0), Ok(Some(&m[..])));
        for ignored in [&b"id: 5"[..], b"retry: 3000", b"event: message", b": comment", b""] {
            assert_eq!(payload(Transport::Sse, ignored, 0), Ok(None));
        }
    }

    #[test]
    fn iframe_framing() {
        let prologue = b"<html><head><meta http-equiv=\"Content-Type\" content=\"text/html; charset=utf-8\"><script type='text/javascript'>window.onError = null;</script></head><body>";
        assert_eq!(payload(Transport::Iframe, prologue, 0), Ok(None));
        let line = br#"<script>parent.icomet_cb({"type":"next_seq","cname":"a","seq":1,"content":""});</script>"#;
        let p = payload(Transport::Iframe, line, 0).expect("ok").expect("payload");
        assert_eq!(all(p), Ok(vec![one(Kind::NextSeq, "a", 1, "")]));
        assert_eq!(
            payload(Transport::Iframe, b"<script>parent.icomet_cb({});", 0),
            Err(Fault::Protocol)
        );
    }

    #[test]
    fn iframe_through_the_http_reader() {
        let body = [
            "<html><head><script type='text/javascript'>try{document.domain='x';}catch(e){}</script></head><body>\n",
            "<script>parent.icomet_cb({\"type\":\"next_seq\",\"cname\":\"a\",\"seq\":1,\"content\":\"\"});</script>\n",
        ];
        let mut input = String::from("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        for b in body {
            input.push_str(&format!("{:x}\r\n{b}\r\n", b.len()));
        }
        let log = crate::http::tests::feed_split(input.as_bytes(), &[60, 61, 200]).expect("parses");
        let lines: Vec<&str> = log.iter().filter_map(|l| l.strip_prefix("line ")).collect();
        let found: Vec<_> = lines
            .iter()
            .filter_map(|l| payload(Transport::Iframe, l.as_bytes(), 0).expect("framing"))
            .collect();
        assert_eq!(found.len(), 1);
    }

    #[test]
    fn stamps_round_trip() {
        let s = Stamp {
            number: 3,
            sent_us: 1_700_000_000_123_456,
            run: 0x0bad_cafe,
        };
        assert_eq!(s.encode(), "m=3;t=1700000000123456;r=0badcafe");
        assert_eq!(Stamp::parse(s.encode().as_bytes()), Some(s));
        assert_eq!(Stamp::parse(b"m=3;t=17"), None);
        assert_eq!(Stamp::parse(b"hello"), None);
        assert_eq!(Stamp::parse(b"m=x;t=1;r=1"), None);
    }
}
