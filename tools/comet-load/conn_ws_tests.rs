//! Tests of a WebSocket subscriber (`conn` with `ws` and `chans`): the
//! upgrade request, `sub` commands after the `101`, and deliveries counted
//! per (connection, channel).

use super::*;
use crate::chans::WsLink;

const HEAD: &str = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                    Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";

fn run(mode: Mode, messages: u32, ws_channels: u32) -> RunInfo {
    RunInfo {
        transport: Transport::Ws,
        mode,
        messages,
        run: 0xabc,
        prefix: "load".into(),
        channels: 10,
        ws_channels,
        tokens: std::sync::Arc::from(Vec::new()),
    }
}

/// An unmasked text frame (payloads here are under 126 bytes).
fn text(json: &str) -> Vec<u8> {
    assert!(json.len() < 126);
    let mut f = vec![0x81, json.len() as u8];
    f.extend_from_slice(json.as_bytes());
    f
}

fn object(kind: &str, cname: &str, seq: i32, content: &str) -> Vec<u8> {
    text(&format!(
        "{{\"type\":\"{kind}\",\"cname\":\"{cname}\",\"seq\":{seq},\"content\":\"{content}\"}}"
    ))
}

fn stamp(m: u32) -> String {
    Stamp {
        number: m,
        sent_us: 1_000_000,
        run: 0xabc,
    }
    .encode()
}

/// Feeds `input` to the connection as one read; returns what it wrote.
fn drive(r: &RunInfo, conn: &mut Conn, tally: &mut Tally, input: &[u8]) -> (Vec<u8>, Result<(), Fault>) {
    let link = conn.ws.as_deref_mut().expect("a WebSocket connection");
    let WsLink { reader, chans, out, .. } = link;
    let mut s = Session {
        sub: &mut conn.sub,
        run: r,
        tally,
        now_us: 1_000_500,
        elapsed_us: 900,
        target: 0,
        chans,
    };
    let result = reader.feed(input, &mut s, out);
    (std::mem::take(out), result)
}

#[test]
fn the_upgrade_request() {
    let r = run(Mode::Push, 1, 3);
    let c = Conn::for_run(&r, 3, 13, 0);
    let mut out = Vec::new();
    c.sub.request(&r, &mut out);
    assert_eq!(
        String::from_utf8(out).expect("ascii"),
        "GET /ws?cname=load3&seq=0 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    assert_eq!(c.ws.as_ref().map(|l| l.chans.len()), Some(3));
    assert!(Conn::for_run(&run(Mode::Push, 1, 1), 3, 13, 0)
        .ws
        .is_some_and(|l| l.chans.is_empty()));
    let sse = RunInfo {
        transport: Transport::Sse,
        ..run(Mode::Push, 1, 1)
    };
    assert!(Conn::for_run(&sse, 3, 13, 0).ws.is_none());
}

#[test]
fn one_channel() {
    let r = run(Mode::Push, 2, 1);
    let mut c = Conn::for_run(&r, 3, 13, 0);
    let mut t = Tally::default();
    let mut input = HEAD.as_bytes().to_vec();
    input.extend(object("next_seq", "load3", 1, ""));
    let (out, result) = drive(&r, &mut c, &mut t, &input);
    assert_eq!(result, Ok(()));
    assert!(out.is_empty(), "no sub commands with one channel");
    assert!(c.sub.ready);
    assert_eq!((t.ready, t.subscriptions), (1, 1));
    let mut input = object("data", "load3", 1, &stamp(0));
    input.extend(object("data", "load3", 1, &stamp(0)));
    input.extend(object("data", "load4", 2, &stamp(1)));
    input.extend(object("data", "load3", 2, &stamp(1)));
    let (_, result) = drive(&r, &mut c, &mut t, &input);
    assert_eq!(result, Ok(()));
    assert_eq!(
        (t.deliveries, t.duplicates, t.finished, t.faults.get(Fault::Foreign)),
        (2, 1, 1, 1)
    );
    assert_eq!((c.sub.next_msg, c.sub.received), (2, 2));
}

#[test]
fn several_channels_count_each_subscription() {
    let r = run(Mode::Broadcast, 2, 3);
    // Connection 9 holds load9 (its URL), load0 and load1.
    let mut c = Conn::for_run(&r, 3, 9, 0);
    let mut t = Tally::default();
    let mut input = HEAD.as_bytes().to_vec();
    input.extend(object("next_seq", "load9", 1, ""));
    let (out, result) = drive(&r, &mut c, &mut t, &input);
    assert_eq!(result, Ok(()));
    let mut subs = Vec::new();
    crate::ws::push_text(&mut subs, br#"{"type":"sub","cname":"load0","seq":0}"#);
    crate::ws::push_text(&mut subs, br#"{"type":"sub","cname":"load1","seq":0}"#);
    assert_eq!(out, subs, "the sub commands go out once the 101 is in");
    assert!(!c.sub.ready, "ready only once every channel answered");
    let mut input = object("next_seq", "load0", 1, "");
    input.extend(object("next_seq", "load0", 1, ""));
    let (_, result) = drive(&r, &mut c, &mut t, &input);
    assert_eq!(result, Ok(()));
    assert_eq!((c.sub.ready, t.subscriptions), (false, 2));
    let (_, result) = drive(&r, &mut c, &mut t, &object("next_seq", "load1", 1, ""));
    assert_eq!(result, Ok(()));
    assert_eq!((c.sub.ready, t.ready, t.subscriptions), (true, 1, 3));

    // Message 0 on every channel (a broadcast and its next_seq each), with
    // a duplicate on one of them; message 1 on two of three.
    let mut input = Vec::new();
    for ch in ["load9", "load0", "load1"] {
        input.extend(object("broadcast", ch, 1, &stamp(0)));
        input.extend(object("next_seq", ch, 2, ""));
    }
    input.extend(object("broadcast", "load0", 1, &stamp(0)));
    input.extend(object("broadcast", "load9", 2, &stamp(1)));
    input.extend(object("broadcast", "load1", 2, &stamp(1)));
    let (_, result) = drive(&r, &mut c, &mut t, &input);
    assert_eq!(result, Ok(()));
    assert_eq!((t.deliveries, t.duplicates, t.finished), (5, 1, 0));
    assert_eq!((c.sub.next_msg, c.sub.received), (1, 1), "the lowest over the channels");
    // Message 0 (the publisher's target in drive()) has reached the
    // connection once, when its last channel got it.
    assert_eq!(crate::reach::Reach::count_in(t.reach.pack(), 0), 1);
    let chans: Vec<u32> = c.ws.as_ref().expect("ws").chans.iter().map(|ch| ch.next_msg).collect();
    assert_eq!(chans, [2, 1, 2]);
    c.sub.finish(&r, &mut t);
    assert_eq!((t.incomplete, t.first_incomplete), (1, Some((9, 1))));

    let (_, result) = drive(&r, &mut c, &mut t, &object("broadcast", "load0", 2, &stamp(1)));
    assert_eq!(result, Ok(()));
    assert_eq!((t.deliveries, t.finished, c.sub.next_msg, c.sub.received), (6, 1, 2, 2));
    // A channel of another connection, and a push when broadcasts are expected.
    let mut input = object("broadcast", "load2", 1, &stamp(0));
    input.extend(object("data", "load9", 3, &stamp(1)));
    let (_, result) = drive(&r, &mut c, &mut t, &input);
    assert_eq!(result, Ok(()));
    assert_eq!((t.deliveries, t.faults.get(Fault::Foreign)), (6, 2));
    assert_eq!(t.latency.count(), 6);
}

#[test]
fn pings_refusals_and_closes() {
    let r = run(Mode::Push, 1, 2);
    let mut c = Conn::for_run(&r, 3, 13, 0);
    let mut t = Tally::default();
    let mut input = HEAD.as_bytes().to_vec();
    input.extend(object("next_seq", "load3", 1, ""));
    input.extend([0x89, 2, b'h', b'i']);
    let (out, result) = drive(&r, &mut c, &mut t, &input);
    assert_eq!(result, Ok(()));
    let mut expected = Vec::new();
    crate::ws::push_text(&mut expected, br#"{"type":"sub","cname":"load4","seq":0}"#);
    expected.extend([0x8a, 0x82, 0x37, 0xfa, 0x21, 0x3d, b'h' ^ 0x37, b'i' ^ 0xfa]);
    assert_eq!(out, expected, "the sub command, then the masked pong");

    // An array is not a WebSocket message; a 429 refuses the subscription.
    let array = text(r#"[{"type":"next_seq","cname":"load4","seq":1,"content":""}]"#);
    assert_eq!(drive(&r, &mut c, &mut t, &array).1, Err(Fault::Protocol));
    let refused = object("429", "load4", 0, "Too many channels on this connection");
    assert_eq!(drive(&r, &mut c, &mut t, &refused).1, Err(Fault::Rejected));

    let mut closing = Conn::for_run(&r, 4, 14, 0);
    let mut input = HEAD.as_bytes().to_vec();
    input.extend([0x88, 2, 0x03, 0xe9]);
    assert_eq!(drive(&r, &mut closing, &mut t, &input).1, Err(Fault::WsClose));
    assert_eq!(t.ws_closes.get(&1001), Some(&1));
}
