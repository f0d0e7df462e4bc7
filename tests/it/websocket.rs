//! `/ws`: the handshake and its refusals, one text frame per icomet message
//! object, resume by seq, several channels on one socket, every close code,
//! bad client frames, and the echo endpoint (issue 13).

use std::time::{Duration, Instant};

use comet::config::{Auth, Config};

use crate::support::ws::{masked, upgrade_head, Ws};
use crate::support::{admin, config, eventually, start, subscribers, WAIT};

/// The message object comet sends, as a `/stream` line without its newline.
fn msg(kind: &str, cname: &str, seq: i32, content: &str) -> String {
    format!(r#"{{"type":"{kind}","cname":"{cname}","seq":{seq},"content":"{content}"}}"#)
}

fn with(f: impl FnOnce(&mut Config)) -> Config {
    let mut c = config();
    f(&mut c);
    c
}

#[test]
fn a_subscriber_gets_one_text_frame_per_message_object() {
    let s = start(config());
    let mut ws = Ws::connect(s.front_addr(), "/ws?cname=c");
    assert_eq!(ws.text(), msg("next_seq", "c", 1, ""));
    admin(&s, "/push?cname=c&content=hi%22there");
    assert_eq!(ws.text(), msg("data", "c", 1, r#"hi\"there"#));
    admin(&s, "/broadcast?content=all");
    assert_eq!(ws.text(), msg("broadcast", "c", 2, "all"));
    assert_eq!(ws.text(), msg("next_seq", "c", 3, ""));
    // /close: icomet's close object, then close 1000, then the end.
    let (status, _, body) = admin(&s, "/close?cname=c");
    assert_eq!((status.as_str(), body.as_str()), ("HTTP/1.1 200 OK", "ok 3\n"));
    assert_eq!(ws.text(), msg("close", "c", 3, ""));
    ws.expect_close(1000);
}

#[test]
fn resume_by_seq_replays_what_history_holds() {
    let s = start(config());
    for i in 1..=3 {
        admin(&s, &format!("/push?cname=r&content=m{i}"));
    }
    let mut ws = Ws::connect(s.front_addr(), "/ws?cname=r&seq=2");
    assert_eq!(ws.text(), msg("data", "r", 2, "m2"));
    assert_eq!(ws.text(), msg("data", "r", 3, "m3"));
    // Caught up: nothing more until the next message.
    admin(&s, "/push?cname=r&content=m4");
    assert_eq!(ws.text(), msg("data", "r", 4, "m4"));
    // Ahead of the channel (a restart): told where to resume.
    let mut ahead = Ws::connect(s.front_addr(), "/ws?cname=r&seq=99");
    assert_eq!(ahead.text(), msg("next_seq", "r", 5, ""));
}

#[test]
fn noops_come_after_the_polling_timeout_with_the_connections_counter() {
    let s = start(with(|c| c.front.polling_timeout = 1));
    let mut ws = Ws::connect(s.front_addr(), "/ws?cname=n&seq=1&noop=7");
    assert_eq!(ws.text(), msg("noop", "n", 7, ""));
    assert_eq!(ws.text(), msg("noop", "n", 8, ""));
}

#[test]
fn refusals_are_the_icomet_object_then_a_close_code() {
    let s = start(with(|c| c.front.auth = Auth::Token));
    let mut ws = Ws::connect(s.front_addr(), "/ws?cname=t&token=nope");
    assert_eq!(ws.text(), msg("401", "t", 0, "Token error"));
    ws.expect_close(4401);
    let s = start(with(|c| c.front.max_subscribers_per_channel = 1));
    let mut first = Ws::connect(s.front_addr(), "/ws?cname=full");
    first.text();
    let mut second = Ws::connect(s.front_addr(), "/ws?cname=full");
    assert_eq!(second.text(), msg("429", "full", 0, "Too many subscribers"));
    second.expect_close(4429);
    // The first is unaffected.
    admin(&s, "/push?cname=full&content=x");
    assert_eq!(first.text(), msg("data", "full", 1, "x"));
}

#[test]
fn bad_handshakes_get_plain_http_errors_before_any_upgrade() {
    let s = start(with(|c| c.front.allowed_origins = vec!["https://good.example".into()]));
    let answer = |req: &str| {
        let mut ws = Ws::raw(s.front_addr());
        ws.send_raw(req.as_bytes());
        let mut all = Vec::new();
        let deadline = Instant::now() + WAIT;
        loop {
            let got = ws.read_exact(1);
            all.extend(got);
            if all.ends_with(b"\r\n\r\n") || Instant::now() > deadline {
                break;
            }
        }
        String::from_utf8(all).expect("ascii head")
    };
    let no_key = "GET /ws?cname=c HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n";
    assert!(answer(no_key).starts_with("HTTP/1.1 400 "), "no key");
    let old = upgrade_head("/ws?cname=c", "").replace("Version: 13", "Version: 8");
    let head = answer(&old);
    assert!(head.starts_with("HTTP/1.1 426 "), "{head}");
    assert!(head.contains("\r\nSec-WebSocket-Version: 13\r\n"), "{head}");
    let post = upgrade_head("/ws?cname=c", "").replacen("GET", "POST", 1);
    assert!(answer(&post).starts_with("HTTP/1.1 405 "), "not GET");
    let foreign = upgrade_head("/ws?cname=c", "Origin: https://evil.example\r\n");
    assert!(answer(&foreign).starts_with("HTTP/1.1 403 "), "origin not listed");
    // Listed origins and clients without an Origin (not browsers) pass.
    let mut ok = Ws::raw(s.front_addr());
    ok.send_raw(upgrade_head("/ws?cname=c", "Origin: https://GOOD.example\r\n").as_bytes());
    assert!(String::from_utf8(ok.read_exact(12))
        .expect("ascii")
        .starts_with("HTTP/1.1 101"));
    assert_eq!(subscribers(&s, "c"), 1);
}

#[test]
fn client_frames_pings_pongs_and_the_close_handshake() {
    let s = start(config());
    let mut ws = Ws::connect(s.front_addr(), "/ws?cname=p&seq=1");
    ws.send_raw(&masked(0x89, b"hello"));
    assert_eq!(
        ws.frame(),
        crate::support::ws::Frame {
            opcode: 10,
            fin: true,
            payload: b"hello".to_vec()
        }
    );
    // An unsolicited pong is ignored: the next frame is the sentinel.
    ws.send_raw(&masked(0x8a, b"x"));
    admin(&s, "/push?cname=p&content=sentinel");
    assert_eq!(ws.text(), msg("data", "p", 1, "sentinel"));
    // A fragmented command with a ping between its fragments.
    ws.send_raw(&masked(0x01, br#"{"type":"sub","#));
    ws.send_raw(&masked(0x89, b""));
    ws.send_raw(&masked(0x80, br#""cname":"q"}"#));
    assert_eq!(ws.frame().opcode, 10, "the ping is answered at once");
    assert_eq!(ws.text(), msg("next_seq", "q", 1, ""));
    // The client closes: the code is echoed, the server half-closes.
    ws.send_raw(&masked(0x88, &[0x03, 0xe9]));
    ws.expect_close(1001);
    eventually("both subscriptions gone", || {
        subscribers(&s, "p") == 0 && subscribers(&s, "q") == 0
    });
}

#[test]
fn bad_client_frames_close_with_their_code() {
    let s = start(with(|c| c.front.ws_max_message_bytes = 600));
    let cases: [(&str, Vec<u8>, u16); 7] = [
        ("unmasked", b"\x81\x02hi".to_vec(), 1002),
        ("RSV bit", masked(0xc1, b"x"), 1002),
        ("reserved opcode", masked(0x83, b"x"), 1002),
        ("control frame over 125 bytes", masked(0x89, &[0; 126]), 1002),
        ("invalid UTF-8", masked(0x81, &[0xc3, 0x28]), 1007),
        ("message too big", masked(0x81, &vec![b'a'; 601]), 1009),
        ("binary message", masked(0x82, b"x"), 1003),
    ];
    for (what, frame, code) in cases {
        let mut ws = Ws::connect(s.front_addr(), "/ws?cname=b&seq=1");
        ws.send_raw(&frame);
        let f = ws.frame();
        assert_eq!(f.close_code(), Some(code), "{what}: {f:?}");
        ws.expect_eof();
    }
    eventually("every bad client gone", || subscribers(&s, "b") == 0);
}

#[test]
fn a_client_flooding_frames_is_closed_without_slowing_others() {
    let s = start(with(|c| c.front.ws_max_frames_per_sec = 20));
    let mut calm = Ws::connect(s.front_addr(), "/ws?cname=f&seq=1");
    let mut flood = Ws::connect(s.front_addr(), "/ws?cname=f&seq=1");
    let burst: Vec<u8> = (0..200).flat_map(|_| masked(0x89, b"")).collect();
    flood.send_raw(&burst);
    let mut pongs = 0;
    loop {
        let f = flood.frame();
        match f.opcode {
            10 => pongs += 1,
            8 => {
                assert_eq!(f.close_code(), Some(1008), "{f:?}");
                break;
            }
            _ => panic!("unexpected {f:?}"),
        }
    }
    assert!(pongs <= 20, "{pongs} pongs before the close");
    admin(&s, "/push?cname=f&content=still");
    assert_eq!(calm.text(), msg("data", "f", 1, "still"));
}

#[test]
fn several_channels_on_one_socket() {
    let s = start(with(|c| c.front.max_channels_per_connection = 3));
    admin(&s, "/push?cname=b&content=old");
    let mut ws = Ws::connect(s.front_addr(), "/ws?cname=a");
    assert_eq!(ws.text(), msg("next_seq", "a", 1, ""));
    // sub answers as a new /ws subscription would: here a replay from seq 1.
    ws.send_text(r#"{"type":"sub","cname":"b","seq":1}"#);
    assert_eq!(ws.text(), msg("data", "b", 1, "old"));
    ws.send_text(r#"{"type":"sub","cname":"c"}"#);
    assert_eq!(ws.text(), msg("next_seq", "c", 1, ""));
    ws.send_text(r#"{"type":"sub","cname":"d"}"#);
    assert_eq!(ws.text(), msg("429", "d", 0, "Too many channels on this connection"));
    ws.send_text(r#"{"type":"sub","cname":"a"}"#);
    assert_eq!(ws.text(), msg("400", "a", 0, "Already subscribed"));
    for name in ["a", "b", "c"] {
        assert_eq!(subscribers(&s, name), 1, "{name}");
    }
    // Every frame carries its channel; a broadcast reaches each channel.
    admin(&s, "/push?cname=c&content=to-c");
    assert_eq!(ws.text(), msg("data", "c", 1, "to-c"));
    admin(&s, "/broadcast?content=B");
    let mut got = Vec::new();
    for _ in 0..6 {
        got.push(ws.text());
    }
    got.sort();
    let mut want = vec![
        msg("broadcast", "a", 1, "B"),
        msg("next_seq", "a", 2, ""),
        msg("broadcast", "b", 2, "B"),
        msg("next_seq", "b", 3, ""),
        msg("broadcast", "c", 2, "B"),
        msg("next_seq", "c", 3, ""),
    ];
    want.sort();
    assert_eq!(got, want);
    // unsub answers with the seq to resume from; the socket stays.
    ws.send_text(r#"{"type":"unsub","cname":"b"}"#);
    assert_eq!(ws.text(), msg("unsub", "b", 3, ""));
    eventually("b left", || subscribers(&s, "b") == 0);
    ws.send_text(r#"{"type":"unsub","cname":"b"}"#);
    assert_eq!(ws.text(), msg("400", "b", 0, "Not subscribed"));
    ws.send_text("not json");
    assert!(ws
        .text()
        .starts_with(r#"{"type":"400","cname":"","seq":0,"content":"bad command: "#));
    // Closing one channel of several ends that subscription only.
    admin(&s, "/close?cname=c");
    assert_eq!(ws.text(), msg("close", "c", 3, ""));
    admin(&s, "/push?cname=a&content=still-here");
    assert_eq!(ws.text(), msg("data", "a", 2, "still-here"));
    // ... and closing the last one closes the socket with 1000.
    admin(&s, "/close?cname=a");
    assert_eq!(ws.text(), msg("close", "a", 3, ""));
    ws.expect_close(1000);
}

#[test]
fn a_socket_without_a_url_channel_subscribes_by_command_with_tokens() {
    let s = start(with(|c| c.front.auth = Auth::Token));
    let (_, _, signed) = admin(&s, "/sign?cname=priv");
    let token = serde_json::from_str::<serde_json::Value>(&signed).expect("json")["token"]
        .as_str()
        .expect("token")
        .to_string();
    let mut ws = Ws::connect(s.front_addr(), "/ws");
    ws.send_text(r#"{"type":"sub","cname":"priv","token":"bad"}"#);
    assert_eq!(ws.text(), msg("401", "priv", 0, "Token error"));
    ws.send_text(&format!(r#"{{"type":"sub","cname":"priv","token":"{token}"}}"#));
    assert_eq!(ws.text(), msg("next_seq", "priv", 1, ""));
    admin(&s, "/push?cname=priv&content=hello");
    assert_eq!(ws.text(), msg("data", "priv", 1, "hello"));
}

#[test]
fn shutdown_closes_with_1001() {
    let s = start(config());
    let mut ws = Ws::connect(s.front_addr(), "/ws?cname=s&seq=1");
    let stopping = std::thread::spawn(move || s.shutdown());
    ws.expect_close(1001);
    stopping.join().expect("shutdown");
}

#[test]
fn a_slow_consumer_is_closed_with_1013() {
    let s = start(with(|c| {
        c.front.max_queued_bytes = 4096;
        c.front.socket_send_buffer_bytes = 4096;
    }));
    let mut slow = Ws::connect(s.front_addr(), "/ws?cname=slow&seq=1");
    socket2::SockRef::from(&slow.stream)
        .set_recv_buffer_size(4096)
        .expect("SO_RCVBUF");
    let big = "y".repeat(60_000);
    let drops = || {
        s.shared()
            .stats
            .slow_consumer_drops
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    let deadline = Instant::now() + WAIT;
    while drops() == 0 {
        assert!(Instant::now() < deadline, "never dropped");
        admin(&s, &format!("/push?cname=slow&content={big}"));
    }
    // What was already queued arrives, then the close.
    loop {
        let f = slow.frame();
        if f.opcode == 8 {
            assert_eq!(f.close_code(), Some(1013), "{f:?}");
            break;
        }
        assert_eq!(f.opcode, 1);
    }
    slow.expect_eof();
}

#[test]
fn a_client_that_never_answers_a_close_is_released_in_bounded_time() {
    let s = start(config());
    let mut ws = Ws::connect(s.front_addr(), "/ws?cname=g");
    ws.text();
    let open = || s.shared().stats.connections.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(open(), 1);
    admin(&s, "/close?cname=g");
    // The client reads the close object and the close frame but never
    // sends its own close: the server releases the socket anyway.
    assert_eq!(ws.text(), msg("close", "g", 1, ""));
    assert_eq!(ws.frame().close_code(), Some(1000));
    let t0 = Instant::now();
    ws.expect_eof();
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "released after {:?}",
        t0.elapsed()
    );
    eventually("the connection is gone", || open() == 0);
}

#[test]
fn metrics_count_websocket_connections() {
    let s = start(config());
    let _a = Ws::connect(s.front_addr(), "/ws?cname=m");
    let _b = Ws::connect(s.front_addr(), "/ws");
    eventually("both counted", || {
        let (_, _, body) = admin(&s, "/metrics");
        body.contains("\ncomet_connections{transport=\"ws\"} 2\n")
    });
}

#[test]
fn the_echo_endpoint_is_off_by_default() {
    let s = start(config());
    let mut ws = Ws::raw(s.front_addr());
    ws.send_raw(upgrade_head("/ws_echo", "").as_bytes());
    assert_eq!(ws.read_exact(22), b"HTTP/1.1 404 Not Found");
    let s = start(with(|c| c.front.ws_echo = true));
    let mut ws = Ws::connect(s.front_addr(), "/ws_echo");
    ws.send_text("echo me");
    assert_eq!(ws.text(), "echo me");
    ws.send_raw(&masked(0x82, &[1, 2, 3]));
    assert_eq!(ws.frame().payload, [1, 2, 3]);
}
