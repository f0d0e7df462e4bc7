//! Presence: `/psub` online and offline events across subscribe,
//! unsubscribe, close and idle expiry, with several listeners at once, and
//! `/check` for one or many channels (reference §4.5, §4.8, §4.9, §5.2, §6).

use crate::support::{admin, config, eventually, header, start, subscribers, Client};
use comet::server::Server;

/// Opens a `/psub` stream. Its listener is registered once the head arrives.
fn psub(s: &Server) -> Client {
    let mut p = Client::connect(s.admin_addr());
    p.send(b"GET /psub HTTP/1.1\r\nHost: t\r\n\r\n");
    let head = p.head();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(header(&head, "transfer-encoding"), Some("chunked"), "{head}");
    p
}

/// Reads one chunk and checks that it is exactly the event `line`.
fn expect_event(p: &mut Client, line: &str) {
    assert_eq!(p.chunk_str(), line);
}

/// Opens an HTTP/1.1 `/stream` subscriber and reads its head.
fn stream(s: &Server, cname: &str) -> Client {
    let mut c = Client::connect(s.front_addr());
    c.get(&format!("/stream?cname={cname}"));
    assert!(c.head().starts_with("HTTP/1.1 200 OK\r\n"));
    c
}

#[test]
fn psub_clients_see_every_way_a_channel_is_created_and_closed() {
    // channel_timeout stays at 30: no periodic event during this test.
    let s = start(config());
    let mut a = psub(&s);
    let mut b = psub(&s);
    let mut both = |line: &str| {
        expect_event(&mut a, line);
        expect_event(&mut b, line);
    };
    let mut streamer = stream(&s, "by_stream");
    both("1 by_stream\n");
    let mut poll = Client::connect(s.front_addr());
    poll.get("/sub?cname=by_sub");
    poll.head();
    both("1 by_sub\n");
    admin(&s, "/pub?cname=by_pub&content=x");
    both("1 by_pub\n");
    admin(&s, "/push?cname=by_push&content=x");
    both("1 by_push\n");
    assert_eq!(admin(&s, "/sign?cname=by_sign").0, "HTTP/1.1 200 OK");
    both("1 by_sign\n");
    // Nothing that touches existing channels is an event: the next event is
    // the close below.
    let second = stream(&s, "by_stream");
    admin(&s, "/push?cname=by_pub&content=y");
    admin(&s, "/sign?cname=by_sign");
    admin(&s, "/broadcast?content=all");
    admin(&s, "/check?cname=nothing");
    admin(&s, "/info?cname=nothing");
    admin(&s, "/clear?cname=by_pub");
    drop(second);
    eventually("second subscriber left", || subscribers(&s, "by_stream") == 1);
    assert_eq!(admin(&s, "/close?cname=by_push").2, "ok 3\n");
    both("0 by_push\n");
    // Closing a channel with a subscriber: offline, and the stream ends.
    assert_eq!(admin(&s, "/close?cname=by_stream").2, "ok 2\n");
    both("0 by_stream\n");
    for frame in [
        "{\"type\":\"next_seq\",\"cname\":\"by_stream\",\"seq\":1,\"content\":\"\"}\n",
        "{\"type\":\"broadcast\",\"cname\":\"by_stream\",\"seq\":1,\"content\":\"all\"}\n",
        "{\"type\":\"next_seq\",\"cname\":\"by_stream\",\"seq\":2,\"content\":\"\"}\n",
        "{\"type\":\"close\",\"cname\":\"by_stream\",\"seq\":2,\"content\":\"\"}\n",
        "",
    ] {
        assert_eq!(streamer.chunk_str(), frame);
    }
    // A late listener gets no snapshot, only what happens from now on.
    let mut late = psub(&s);
    admin(&s, "/push?cname=late&content=x");
    both("1 late\n");
    expect_event(&mut late, "1 late\n");
}

#[test]
fn a_dropped_psub_client_does_not_disturb_the_others() {
    let s = start(config());
    let mut kept = psub(&s);
    let gone = psub(&s);
    assert_eq!(s.shared().channels.presence().listeners(), 2);
    drop(gone);
    admin(&s, "/push?cname=one&content=x");
    expect_event(&mut kept, "1 one\n");
    // The listener of the closed connection is released (at the latest when
    // an event cannot reach it); the other keeps receiving.
    let mut n = 0;
    eventually("the dropped listener released", || {
        n += 1;
        admin(&s, &format!("/push?cname=more{n}&content=x"));
        s.shared().channels.presence().listeners() == 1
    });
    for i in 1..=n {
        expect_event(&mut kept, &format!("1 more{i}\n"));
    }
    assert_eq!(admin(&s, "/close?cname=one").2, "ok 2\n");
    expect_event(&mut kept, "0 one\n");
}

#[test]
fn psub_follows_subscribe_unsubscribe_and_idle_expiry_in_order() {
    let mut cfg = config();
    cfg.front.channel_timeout = 2;
    let s = start(cfg);
    let mut p = psub(&s);
    let sub = stream(&s, "ex");
    expect_event(&mut p, "1 ex\n");
    // While subscribed, the channel is announced again every channel_timeout ticks.
    expect_event(&mut p, "1 ex\n");
    assert_eq!(subscribers(&s, "ex"), 1);
    // Unsubscribing is not an event: the channel lives on for a while.
    drop(sub);
    eventually("unsubscribed", || subscribers(&s, "ex") == 0);
    assert_eq!(admin(&s, "/check?cname=ex").2, "{\"ex\": 1}\n");
    // Then it expires: any periodic online events first, then offline.
    let mut periodic = 0;
    loop {
        let event = p.chunk_str();
        if event == "0 ex\n" {
            break;
        }
        assert_eq!(event, "1 ex\n", "only periodic events before the offline one");
        periodic += 1;
        assert!(periodic <= 2, "the channel does not expire");
    }
    assert_eq!(admin(&s, "/check?cname=ex").2, "{}\n");
    // Nothing more about `ex`: the next event is a new channel's.
    admin(&s, "/push?cname=next&content=x");
    expect_event(&mut p, "1 next\n");
    // A subscriber brings the expired channel back: online again.
    let _again = stream(&s, "ex");
    expect_event(&mut p, "1 ex\n");
}

#[test]
fn channels_created_without_subscribers_expire_too() {
    let mut cfg = config();
    cfg.front.channel_timeout = 1;
    let s = start(cfg);
    let mut p = psub(&s);
    admin(&s, "/push?cname=pushed&content=x");
    expect_event(&mut p, "1 pushed\n");
    assert_eq!(admin(&s, "/sign?cname=signed&expires=1").0, "HTTP/1.1 200 OK");
    expect_event(&mut p, "1 signed\n");
    // Each channel: periodic online events, then offline, then nothing.
    let mut offline = Vec::new();
    while offline.len() < 2 {
        let event = p.chunk_str();
        let (kind, name) = event.trim_end().split_once(' ').expect("an event line");
        assert!(["pushed", "signed"].contains(&name), "unexpected event {event:?}");
        assert!(
            !offline.contains(&name.to_string()),
            "{event:?} after {name} went offline"
        );
        if kind == "0" {
            offline.push(name.to_string());
        } else {
            assert_eq!(kind, "1", "{event:?}");
        }
    }
    offline.sort_unstable();
    assert_eq!(offline, ["pushed", "signed"]);
    assert_eq!(admin(&s, "/check?cname=pushed,signed").2, "{}\n");
}

#[test]
fn check_answers_for_one_or_many_channels() {
    let mut cfg = config();
    cfg.front.channel_timeout = 1;
    let s = start(cfg);
    let (status, head, body) = admin(&s, "/check?cname=a,b,c");
    assert_eq!((status.as_str(), body.as_str()), ("HTTP/1.1 200 OK", "{}\n"));
    assert_eq!(header(&head, "content-type"), Some("text/html; charset=utf-8"));
    let sub = stream(&s, "a");
    admin(&s, "/push?cname=c&content=x");
    assert_eq!(admin(&s, "/check?cname=a,b,c").2, "{\"a\": 1, \"c\": 1}\n");
    assert_eq!(admin(&s, "/check?cname=a").2, "{\"a\": 1}\n");
    assert_eq!(admin(&s, "/check?cname=b").2, "{}\n");
    assert_eq!(admin(&s, "/check?cname=c,a").2, "{\"c\": 1, \"a\": 1}\n");
    assert_eq!(admin(&s, "/close?cname=c").2, "ok 2\n");
    assert_eq!(admin(&s, "/check?cname=a,b,c").2, "{\"a\": 1}\n");
    // The subscribed channel stays while its subscriber does ...
    assert_eq!(subscribers(&s, "a"), 1);
    drop(sub);
    // ... and expires after it leaves.
    eventually("a expired", || admin(&s, "/check?cname=a,b,c").2 == "{}\n");
}
