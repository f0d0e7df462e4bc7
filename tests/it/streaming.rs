//! Streaming subscribers: `/stream`, `/sse` and `/iframe` framing byte for
//! byte, SSE ids, `retry:` and resume by `Last-Event-ID`, noop heartbeats,
//! history replay, `/close`, HTTP/1.0, and slow consumers (reference §1.3,
//! §2, §3.1, §3.2, §4.5, §11; the SSE ids and the bounded output queue are
//! comet's additions).

use std::sync::atomic::Ordering;

use crate::support::{admin, config, eventually, start, subscribers, Client};
use comet::front::transport::iframe_prologue;
use comet::server::Server;

/// The streaming transports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum T {
    Stream,
    Sse,
    Iframe,
}

const ALL: [T; 3] = [T::Stream, T::Sse, T::Iframe];

impl T {
    fn path(self) -> &'static str {
        match self {
            T::Stream => "/stream",
            T::Sse => "/sse",
            T::Iframe => "/iframe",
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            T::Stream => "application/json; charset=utf-8",
            T::Sse => "text/event-stream; charset=utf-8",
            T::Iframe => "text/html; charset=utf-8",
        }
    }

    /// One frame's bytes (without HTTP chunking); `id` is the SSE `id:` line.
    fn frame(self, json: &str, id: Option<i32>) -> String {
        match self {
            T::Stream => format!("{json}\n"),
            T::Iframe => format!("<script>parent.icomet_cb({json});</script>\n"),
            T::Sse => match id {
                Some(id) => format!("id: {id}\ndata: {json}\n\n"),
                None => format!("data: {json}\n\n"),
            },
        }
    }

    /// The two frames of a broadcast with seq `seq` (both carry `id: seq`).
    fn broadcast(self, cname: &str, seq: i32, content: &str) -> [String; 2] {
        [
            self.frame(&msg("broadcast", cname, seq, content), Some(seq)),
            self.frame(&msg("next_seq", cname, seq + 1, ""), Some(seq)),
        ]
    }

    /// What comes between the head and the first message frame.
    fn preamble(self, retry_ms: u32) -> Vec<u8> {
        match self {
            T::Stream => Vec::new(),
            T::Sse => format!("retry: {retry_ms}\n\n").into_bytes(),
            T::Iframe => iframe_prologue(),
        }
    }
}

/// One message object as icomet writes it (reference §2.1).
fn msg(ty: &str, cname: &str, seq: i32, content: &str) -> String {
    format!("{{\"type\":\"{ty}\",\"cname\":\"{cname}\",\"seq\":{seq},\"content\":\"{content}\"}}")
}

/// `body` as one HTTP chunk (lower-case hex size).
fn chunked(body: &[u8]) -> Vec<u8> {
    [format!("{:x}\r\n", body.len()).as_bytes(), body, b"\r\n"].concat()
}

/// Reads exactly `body` framed as one HTTP chunk.
fn expect_chunk(c: &mut Client, body: &str) {
    let want = chunked(body.as_bytes());
    let got = c.read_exact(want.len());
    assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(&want));
}

/// Reads the terminating chunk.
fn expect_last_chunk(c: &mut Client) {
    assert_eq!(String::from_utf8_lossy(&c.read_exact(5)), "0\r\n\r\n");
}

/// The exact head of a streaming response up to (not including) `Date`.
/// HTTP/1.0 heads are complete: no chunking, no `Date`, `Connection: close`.
fn head_prefix(t: T, http10: bool) -> String {
    let mut h = format!(
        "HTTP/1.{} 200 OK\r\nExpires: 0\r\nCache-Control: no-cache\r\nContent-Type: {}\r\n",
        if http10 { 0 } else { 1 },
        t.content_type()
    );
    if t == T::Sse {
        h.push_str("Access-Control-Allow-Origin: *\r\n");
    }
    if t == T::Iframe {
        h.push_str("Origin-Agent-Cluster: ?0\r\n");
    }
    h.push_str("X-Accel-Buffering: no\r\n");
    if http10 {
        h.push_str("Connection: close\r\n\r\n");
    } else {
        h.push_str("Connection: keep-alive\r\nTransfer-Encoding: chunked\r\n");
    }
    h
}

/// Asserts a whole head: exact bytes, plus a valid `Date` on HTTP/1.1.
fn assert_head(head: &str, t: T, http10: bool) {
    let want = head_prefix(t, http10);
    if http10 {
        assert_eq!(head, want);
        return;
    }
    let date = head
        .strip_prefix(want.as_str())
        .and_then(|r| r.strip_prefix("Date: "))
        .and_then(|r| r.strip_suffix("\r\n\r\n"));
    let date = date.unwrap_or_else(|| panic!("head {head:?} is not {want:?} + Date"));
    assert!(httpdate::parse_http_date(date).is_ok(), "Date {date:?}");
}

/// Opens an HTTP/1.1 streaming subscriber (`extra` is more header lines),
/// checks its head and reads its preamble (SSE `retry:`, iframe prologue).
fn open(s: &Server, t: T, query: &str, extra: &str) -> Client {
    let mut c = Client::connect(s.front_addr());
    c.send(format!("GET {}?{query} HTTP/1.1\r\n{extra}\r\n", t.path()).as_bytes());
    assert_head(&c.head(), t, false);
    let preamble = t.preamble(s.shared().config().front.sse_retry_ms);
    if !preamble.is_empty() {
        assert_eq!(
            String::from_utf8_lossy(&c.chunk()),
            String::from_utf8_lossy(&preamble),
            "{t:?} preamble"
        );
    }
    c
}

#[test]
fn stream_sends_one_json_line_per_chunk() {
    let s = start(config());
    // `cb` means nothing to /stream.
    let mut c = open(&s, T::Stream, "cname=st&cb=ignored", "");
    expect_chunk(&mut c, &format!("{}\n", msg("next_seq", "st", 1, "")));
    admin(&s, "/push?cname=st&content=hi");
    expect_chunk(&mut c, &format!("{}\n", msg("data", "st", 1, "hi")));
    admin(&s, "/push?cname=st&content=a%22b%5Cc%0Ad%0De");
    expect_chunk(&mut c, &format!("{}\n", msg("data", "st", 2, r#"a\"b\\c\nd\re"#)));
    assert_eq!(admin(&s, "/broadcast?content=B%22x").2, "ok\n");
    expect_chunk(&mut c, &format!("{}\n", msg("broadcast", "st", 3, r#"B\"x"#)));
    expect_chunk(&mut c, &format!("{}\n", msg("next_seq", "st", 4, "")));
    admin(&s, "/pub?cname=st&content=pre%5Cn");
    expect_chunk(&mut c, &format!("{}\n", msg("data", "st", 4, r"pre\n")));
}

#[test]
fn sse_frames_carry_ids_after_a_retry_hint() {
    let s = start(config());
    let mut c = Client::connect(s.front_addr());
    c.get("/sse?cname=ev&cb=ignored");
    assert_head(&c.head(), T::Sse, false);
    // The documented default retry hint, right after the headers.
    expect_chunk(&mut c, "retry: 3000\n\n");
    // next_seq on connect: id N-1, so that resuming from it asks for N.
    expect_chunk(&mut c, &format!("id: 0\ndata: {}\n\n", msg("next_seq", "ev", 1, "")));
    admin(&s, "/push?cname=ev&content=hi");
    expect_chunk(&mut c, &format!("id: 1\ndata: {}\n\n", msg("data", "ev", 1, "hi")));
    admin(&s, "/broadcast?content=all");
    expect_chunk(
        &mut c,
        &format!("id: 2\ndata: {}\n\n", msg("broadcast", "ev", 2, "all")),
    );
    expect_chunk(&mut c, &format!("id: 2\ndata: {}\n\n", msg("next_seq", "ev", 3, "")));
    admin(&s, "/push?cname=ev&content=x%0Ay");
    expect_chunk(&mut c, &format!("id: 3\ndata: {}\n\n", msg("data", "ev", 3, r"x\ny")));
}

#[test]
fn sse_retry_hint_follows_config() {
    let mut cfg = config();
    cfg.front.sse_retry_ms = 250;
    let s = start(cfg);
    let mut c = Client::connect(s.front_addr());
    c.get("/sse?cname=r");
    assert_head(&c.head(), T::Sse, false);
    expect_chunk(&mut c, "retry: 250\n\n");
    expect_chunk(&mut c, &format!("id: 0\ndata: {}\n\n", msg("next_seq", "r", 1, "")));
}

#[test]
fn iframe_sends_a_prologue_then_script_wrapped_frames() {
    let s = start(config());
    let mut c = Client::connect(s.front_addr());
    c.get("/iframe?cname=if&cb=ignored");
    assert_head(&c.head(), T::Iframe, false);
    // The prologue is one chunk: an HTML head with the document.domain trick.
    let prologue = String::from_utf8(c.chunk()).expect("utf8 prologue");
    assert!(prologue.starts_with("<html><head>"), "{prologue}");
    assert!(prologue.contains("document.domain"), "{prologue}");
    assert!(prologue.contains("</head><body>"), "{prologue}");
    assert!(prologue.ends_with('\n'), "{prologue}");
    let frame = |json: String| format!("<script>parent.icomet_cb({json});</script>\n");
    expect_chunk(&mut c, &frame(msg("next_seq", "if", 1, "")));
    admin(&s, "/push?cname=if&content=hi");
    expect_chunk(&mut c, &frame(msg("data", "if", 1, "hi")));
    admin(&s, "/broadcast?content=B");
    expect_chunk(&mut c, &frame(msg("broadcast", "if", 2, "B")));
    expect_chunk(&mut c, &frame(msg("next_seq", "if", 3, "")));
    // Content cannot end the script element early.
    admin(&s, "/push?cname=if&content=%3C%2Fscript%3E%3Cb%3E");
    let got = c.chunk_str();
    let inner = got
        .strip_prefix("<script>parent.icomet_cb(")
        .and_then(|r| r.strip_suffix(");</script>\n"))
        .unwrap_or_else(|| panic!("not a script frame: {got:?}"));
    assert!(!inner.to_ascii_lowercase().contains("</script"), "{got:?}");
    assert_eq!(inner.replace("<\\/", "</"), msg("data", "if", 3, "</script><b>"));
}

#[test]
fn streams_replay_history_from_seq_then_stay_live() {
    let mut cfg = config();
    cfg.front.channel_buffer_size = 3;
    let s = start(cfg);
    for i in 1..=6 {
        admin(&s, &format!("/push?cname=rp&content=m{i}"));
    }
    // History now holds seqs 3..=6 (trimmed at 1.5 x 3).
    let data = |t: T, n: i32| t.frame(&msg("data", "rp", n, &format!("m{n}")), Some(n));
    let mut behind = open(&s, T::Stream, "cname=rp&seq=5", "");
    expect_chunk(&mut behind, &data(T::Stream, 5));
    expect_chunk(&mut behind, &data(T::Stream, 6));
    // Older than the oldest buffered message: the whole buffer, gap silent.
    let mut too_old = open(&s, T::Stream, "cname=rp&seq=1", "");
    for n in 3..=6 {
        expect_chunk(&mut too_old, &data(T::Stream, n));
    }
    // Caught up: nothing until the next message.
    let mut caught_up = open(&s, T::Stream, "cname=rp&seq=7", "");
    // Ahead (a server restart): told where to resume.
    let mut ahead = open(&s, T::Stream, "cname=rp&seq=100", "");
    expect_chunk(&mut ahead, &T::Stream.frame(&msg("next_seq", "rp", 7, ""), None));
    let mut iframe = open(&s, T::Iframe, "cname=rp&seq=6", "");
    expect_chunk(&mut iframe, &data(T::Iframe, 6));
    let mut sse = open(&s, T::Sse, "cname=rp&seq=4", "");
    for n in 4..=6 {
        expect_chunk(&mut sse, &data(T::Sse, n));
    }
    admin(&s, "/push?cname=rp&content=m7");
    for c in [&mut behind, &mut too_old, &mut caught_up, &mut ahead] {
        expect_chunk(c, &data(T::Stream, 7));
    }
    expect_chunk(&mut iframe, &data(T::Iframe, 7));
    expect_chunk(&mut sse, &data(T::Sse, 7));
    // A replayed broadcast is followed by its next_seq.
    admin(&s, "/broadcast?content=B");
    let mut replayed = open(&s, T::Stream, "cname=rp&seq=7", "");
    expect_chunk(&mut replayed, &data(T::Stream, 7));
    for f in T::Stream.broadcast("rp", 8, "B") {
        expect_chunk(&mut replayed, &f);
        expect_chunk(&mut behind, &f);
    }
    let mut sse_replayed = open(&s, T::Sse, "cname=rp&seq=8", "");
    for f in T::Sse.broadcast("rp", 8, "B") {
        expect_chunk(&mut sse_replayed, &f);
    }
}

#[test]
fn sse_resumes_from_last_event_id_or_seq() {
    let s = start(config());
    for c in ["a1", "a2", "a3"] {
        admin(&s, &format!("/push?cname=le&content={c}"));
    }
    admin(&s, "/broadcast?content=B");
    admin(&s, "/push?cname=le&content=a5");
    let data = |n: i32, c: &str| T::Sse.frame(&msg("data", "le", n, c), Some(n));
    let b4 = T::Sse.broadcast("le", 4, "B");
    // The header names the last event seen: resume from the one after it.
    let mut by_header = open(&s, T::Sse, "cname=le", "Last-Event-ID: 2\r\n");
    for f in [data(3, "a3"), b4[0].clone(), b4[1].clone(), data(5, "a5")] {
        expect_chunk(&mut by_header, &f);
    }
    let mut by_query = open(&s, T::Sse, "cname=le&last_event_id=3", "");
    for f in [b4[0].clone(), b4[1].clone(), data(5, "a5")] {
        expect_chunk(&mut by_query, &f);
    }
    // A reconnecting EventSource keeps its original URL (with an old seq)
    // and sends the newer Last-Event-ID: the header is the resume point.
    let mut header_over_seq = open(&s, T::Sse, "cname=le&seq=1", "Last-Event-ID: 4\r\n");
    expect_chunk(&mut header_over_seq, &data(5, "a5"));
    // seq still works without the header.
    let mut by_seq = open(&s, T::Sse, "cname=le&seq=5", "");
    expect_chunk(&mut by_seq, &data(5, "a5"));
    // A new client gets next_seq 6 with id 5 ...
    let mut fresh = open(&s, T::Sse, "cname=le", "");
    expect_chunk(&mut fresh, &T::Sse.frame(&msg("next_seq", "le", 6, ""), Some(5)));
    // ... and resuming from that id is caught up: nothing is replayed.
    let mut caught_up = open(&s, T::Sse, "cname=le", "Last-Event-ID: 5\r\n");
    admin(&s, "/push?cname=le&content=a6");
    for c in [
        &mut by_header,
        &mut by_query,
        &mut header_over_seq,
        &mut by_seq,
        &mut fresh,
        &mut caught_up,
    ] {
        expect_chunk(c, &data(6, "a6"));
    }
}

#[test]
fn heartbeats_count_up_from_noop_and_streams_stay_open() {
    let mut cfg = config();
    cfg.front.polling_timeout = 1;
    let s = start(cfg);
    // seq=1 on a new channel is caught up: the first frame is a noop.
    let mut clients = ALL.map(|t| (t, open(&s, t, "cname=hb&seq=1&noop=7", "")));
    for noop in [7, 8] {
        for (t, c) in &mut clients {
            expect_chunk(c, &t.frame(&msg("noop", "hb", noop, ""), None));
        }
    }
    // Still subscribed after the heartbeats.
    assert_eq!(subscribers(&s, "hb"), 3);
    admin(&s, "/push?cname=hb&content=live");
    for (t, c) in &mut clients {
        expect_chunk(c, &t.frame(&msg("data", "hb", 1, "live"), Some(1)));
    }
}

#[test]
fn close_ends_http11_streams_with_a_close_frame_and_the_last_chunk() {
    let s = start(config());
    let mut clients = ALL.map(|t| (t, open(&s, t, "cname=cl", "")));
    for (t, c) in &mut clients {
        expect_chunk(c, &t.frame(&msg("next_seq", "cl", 1, ""), Some(0)));
    }
    admin(&s, "/push?cname=cl&content=x");
    for (t, c) in &mut clients {
        expect_chunk(c, &t.frame(&msg("data", "cl", 1, "x"), Some(1)));
    }
    assert_eq!(admin(&s, "/close?cname=cl").2, "ok 2\n");
    for (t, c) in &mut clients {
        expect_chunk(c, &t.frame(&msg("close", "cl", 2, ""), None));
        expect_last_chunk(c);
    }
    assert_eq!(subscribers(&s, "cl"), 0);
    assert_eq!(admin(&s, "/check?cname=cl").2, "{}\n");
    // Each connection is usable for the next request.
    for (_, c) in &mut clients {
        c.get("/ping");
        assert_eq!(c.response().1, b"icomet_cb({\"type\":\"ping\",\"sub_timeout\":30});\n");
    }
    // A new stream on the same connection starts the recreated channel at 1.
    let (t, c) = &mut clients[1];
    c.get("/sse?cname=cl");
    assert_head(&c.head(), *t, false);
    expect_chunk(c, "retry: 3000\n\n");
    expect_chunk(c, &t.frame(&msg("next_seq", "cl", 1, ""), Some(0)));
}

#[test]
fn http10_streams_are_raw_and_close_delimited() {
    let s = start(config());
    let mut clients = ALL.map(|t| {
        let mut c = Client::connect(s.front_addr());
        // Asking for keep-alive changes nothing: only closing ends the stream.
        let extra = if t == T::Sse { "Connection: keep-alive\r\n" } else { "" };
        c.send(format!("GET {}?cname=old HTTP/1.0\r\n{extra}\r\n", t.path()).as_bytes());
        assert_head(&c.head(), t, true);
        (t, c)
    });
    admin(&s, "/push?cname=old&content=hi");
    admin(&s, "/broadcast?content=B");
    assert_eq!(admin(&s, "/close?cname=old").2, "ok 3\n");
    for (t, c) in &mut clients {
        let mut want = t.preamble(3000);
        want.extend_from_slice(t.frame(&msg("next_seq", "old", 1, ""), Some(0)).as_bytes());
        want.extend_from_slice(t.frame(&msg("data", "old", 1, "hi"), Some(1)).as_bytes());
        for f in t.broadcast("old", 2, "B") {
            want.extend_from_slice(f.as_bytes());
        }
        want.extend_from_slice(t.frame(&msg("close", "old", 3, ""), None).as_bytes());
        // Raw frames, then the server closes the connection.
        assert_eq!(
            String::from_utf8_lossy(&c.read_to_eof()),
            String::from_utf8_lossy(&want),
            "{t:?}"
        );
    }
}

/// Asserts that `got` is a strict prefix of `full` (short messages on failure).
fn assert_strict_prefix(what: &str, got: &[u8], full: &[u8]) {
    assert!(
        got.len() < full.len(),
        "{what}: got the whole stream ({} bytes): it was never dropped",
        full.len()
    );
    let same = got.iter().zip(full).take_while(|(a, b)| a == b).count();
    assert_eq!(
        same,
        got.len(),
        "{what}: the stream differs from the expected one at byte {same} of {}",
        got.len()
    );
}

#[test]
fn non_reading_subscribers_are_dropped_while_everyone_else_keeps_up() {
    const MESSAGES: i32 = 200;
    let mut cfg = config();
    cfg.front.max_queued_bytes = 8192;
    // A fixed send buffer: kernel autotuning could otherwise absorb megabytes.
    cfg.front.socket_send_buffer_bytes = 64 * 1024;
    let s = start(cfg);
    let mut readers = ALL.map(|t| (t, open(&s, t, "cname=slow", "")));
    for (t, c) in &mut readers {
        expect_chunk(c, &t.frame(&msg("next_seq", "slow", 1, ""), Some(0)));
    }
    // One subscriber per transport that never reads a byte.
    let stalled = ALL.map(|t| {
        let mut c = Client::connect(s.front_addr());
        c.get(&format!("{}?cname=slow", t.path()));
        (t, c)
    });
    eventually("six subscribers", || subscribers(&s, "slow") == 6);
    let mut publisher = Client::connect(s.admin_addr());
    let pad = "x".repeat(16 * 1024);
    let mut full = ALL.map(|t| {
        let preamble = t.preamble(3000);
        let mut body = if preamble.is_empty() {
            Vec::new()
        } else {
            chunked(&preamble)
        };
        body.extend(chunked(t.frame(&msg("next_seq", "slow", 1, ""), Some(0)).as_bytes()));
        body
    });
    for i in 1..=MESSAGES {
        let content = format!("{i}-{pad}");
        let body = format!("content={content}");
        publisher.send(
            format!(
                "POST /push?cname=slow HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        );
        let (head, ack) = publisher.response();
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert_eq!(ack, b"{\"type\":\"ok\"}\n");
        let json = msg("data", "slow", i, &content);
        for ((t, c), full) in readers.iter_mut().zip(&mut full) {
            let frame = t.frame(&json, Some(i));
            let want = chunked(frame.as_bytes());
            let got = c.read_exact(want.len());
            assert!(
                got == want,
                "{t:?} reader, message {i}: got {} bytes, not the frame",
                got.len()
            );
            full.extend(want);
        }
    }
    let drops = || s.shared().stats.slow_consumer_drops.load(Ordering::Relaxed);
    eventually("the stalled subscribers are dropped", || drops() >= 3);
    assert_eq!(drops(), 3, "only the stalled subscribers are dropped");
    assert_eq!(subscribers(&s, "slow"), 3);
    for ((t, mut c), full) in stalled.into_iter().zip(&full) {
        // What the kernel buffered before the drop, then EOF.
        let got = c.read_to_eof();
        let split = got.windows(4).position(|w| w == b"\r\n\r\n").expect("a head") + 4;
        assert_head(std::str::from_utf8(&got[..split]).expect("utf8 head"), t, false);
        assert_strict_prefix(&format!("stalled {t:?}"), &got[split..], full);
    }
    // The readers are still subscribed and still served.
    admin(&s, "/push?cname=slow&content=after");
    for (t, c) in &mut readers {
        expect_chunk(
            c,
            &t.frame(&msg("data", "slow", MESSAGES + 1, "after"), Some(MESSAGES + 1)),
        );
    }
}

/// A worker lists a channel's subscribers in the order they came; long polls
/// leave that list while a delivery walks it, streams stay, and others leave
/// from its head, middle and tail between deliveries. Everyone still listed
/// gets each message exactly once, and nobody else does.
#[test]
fn one_list_mixes_polls_and_streams_through_joins_and_leaves() {
    let mut cfg = config();
    // One worker: every subscriber is in the same list.
    cfg.workers = 1;
    let s = start(cfg);
    let data = |seq: i32, content: &str| msg("data", "mix", seq, content);
    let poll = |seq: i32| {
        let mut c = Client::connect(s.front_addr());
        c.get(&format!("/poll?cname=mix&seq={seq}&cb=f"));
        assert!(c.head().starts_with("HTTP/1.1 200 OK\r\n"));
        c
    };
    let stream = || open(&s, T::Stream, "cname=mix&seq=1", "");
    // Order in the list: poll, stream, poll, stream, poll, stream, stream.
    let mut p1 = poll(1);
    let mut s1 = stream();
    let mut p2 = poll(1);
    let mut s2 = stream();
    let mut p3 = poll(1);
    let mut s3 = stream();
    let mut s4 = stream();
    eventually("7 subscribers", || subscribers(&s, "mix") == 7);

    admin(&s, "/push?cname=mix&content=one");
    for p in [&mut p1, &mut p2, &mut p3] {
        assert_eq!(p.chunk_str(), format!("f({});\n", data(1, "one")));
        assert_eq!(p.chunk_str(), "");
    }
    for c in [&mut s1, &mut s2, &mut s3, &mut s4] {
        expect_chunk(c, &format!("{}\n", data(1, "one")));
    }
    eventually("the polls left during the delivery", || subscribers(&s, "mix") == 4);

    // Leave from the middle (s2) and the tail (s4); a poll joins at the back.
    drop(s2);
    drop(s4);
    eventually("2 streams left", || subscribers(&s, "mix") == 2);
    let mut p4 = poll(2);
    eventually("a poll joined", || subscribers(&s, "mix") == 3);
    admin(&s, "/push?cname=mix&content=two");
    expect_chunk(&mut s1, &format!("{}\n", data(2, "two")));
    expect_chunk(&mut s3, &format!("{}\n", data(2, "two")));
    assert_eq!(p4.chunk_str(), format!("f({});\n", data(2, "two")));
    assert_eq!(p4.chunk_str(), "");

    // Leave from the head (s1); a stream joins; s3 is now the head.
    drop(s1);
    eventually("s1 gone", || subscribers(&s, "mix") == 1);
    let mut s5 = open(&s, T::Stream, "cname=mix&seq=3", "");
    eventually("s5 joined", || subscribers(&s, "mix") == 2);
    admin(&s, "/push?cname=mix&content=three");
    expect_chunk(&mut s3, &format!("{}\n", data(3, "three")));
    expect_chunk(&mut s5, &format!("{}\n", data(3, "three")));
    // Nothing twice: the frame after "three" is the next message's.
    admin(&s, "/push?cname=mix&content=four");
    for c in [&mut s3, &mut s5] {
        expect_chunk(c, &format!("{}\n", data(4, "four")));
    }
    drop(s3);
    drop(s5);
    eventually("everyone left", || subscribers(&s, "mix") == 0);
}
