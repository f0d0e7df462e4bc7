//! The front without sockets: in-memory connections, a clock the test
//! turns, and the channel table's deliveries pumped from the mailbox by
//! hand, as the worker would.

use std::rc::Rc;
use std::sync::Arc;

use super::*;
use crate::config::Config;
use crate::intake::ChannelCmd;

/// A front for worker 0 of a fresh server state, with its config changed by `f`.
fn front_with(f: impl FnOnce(&mut Config)) -> (Front<Rc<MemSock>>, Arc<Shared>) {
    let mut config = Config::default();
    config.front.max_channels = 1000;
    f(&mut config);
    let settings = Settings::from_config(&config);
    let shared = Arc::new(Shared::new(config, 1).expect("an eventfd"));
    (Front::new(0, shared.clone(), settings), shared)
}

/// Connects a client that sends `request`; returns its socket and token.
fn client(front: &mut Front<Rc<MemSock>>, request: &str) -> (Rc<MemSock>, Token) {
    let sock = MemSock::new();
    let t = front.add(sock.clone(), 0);
    sock.send(request.as_bytes());
    front.on_event(t, true, false, false);
    (sock, t)
}

/// Runs what the channel table queued for worker 0.
fn pump(front: &mut Front<Rc<MemSock>>, shared: &Shared) {
    let mut cmds = Vec::new();
    shared
        .channels
        .mailboxes()
        .get(0)
        .expect("worker 0")
        .take_all(&mut cmds);
    for cmd in cmds {
        assert!(front.apply(cmd).is_none(), "only deliveries are queued here");
    }
}

fn publish(shared: &Shared, cname: &str, content: &str) {
    shared.channels.publish(cname, &content.into()).expect("room");
}

/// The body of every chunk in `out` after the response head.
fn chunks(out: &str) -> Vec<String> {
    let mut rest = &out[out.find("\r\n\r\n").expect("a head") + 4..];
    let mut v = Vec::new();
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size, 16).expect("a chunk size");
        v.push(tail[..n].to_string());
        rest = &tail[n + 2..];
    }
    v
}

#[test]
fn records_stay_small() {
    // The per-connection record and the per-subscription record are what an
    // idle subscriber costs in user space (with its channel's list entry
    // and the channel table's slot); keep them from growing unnoticed.
    assert!(
        std::mem::size_of::<conn::Conn<crate::worker::sys::Socket>>() <= 40,
        "Conn is {} bytes",
        std::mem::size_of::<conn::Conn<crate::worker::sys::Socket>>()
    );
    assert_eq!(std::mem::size_of::<Option<crate::worker::sys::Socket>>(), 4);
    assert_eq!(std::mem::size_of::<subs::Sub>(), 28);
}

#[test]
fn a_stream_gets_next_seq_then_data_broadcast_and_close() {
    let (mut front, shared) = front_with(|_| {});
    let (sock, t) = client(&mut front, "GET /stream?cname=c HTTP/1.1\r\n\r\n");
    assert_eq!(
        chunks(&sock.take_output()),
        [r#"{"type":"next_seq","cname":"c","seq":1,"content":""}"#.to_string() + "\n"]
    );
    publish(&shared, "c", "hi");
    shared.channels.broadcast(&"B".into());
    shared.channels.close("c");
    pump(&mut front, &shared);
    let out = sock.take_output();
    assert_eq!(
        out,
        concat!(
            "33\r\n{\"type\":\"data\",\"cname\":\"c\",\"seq\":1,\"content\":\"hi\"}\n\r\n",
            "37\r\n{\"type\":\"broadcast\",\"cname\":\"c\",\"seq\":2,\"content\":\"B\"}\n\r\n",
            "35\r\n{\"type\":\"next_seq\",\"cname\":\"c\",\"seq\":3,\"content\":\"\"}\n\r\n",
            "32\r\n{\"type\":\"close\",\"cname\":\"c\",\"seq\":3,\"content\":\"\"}\n\r\n",
            "0\r\n\r\n"
        )
    );
    assert_eq!(front.subscriptions(), 0);
    assert!(
        front.is_open(t),
        "a keep-alive connection stays open after its response"
    );
}

#[test]
fn a_jsonp_long_poll_gets_one_message_then_reads_the_next_request() {
    let (mut front, shared) = front_with(|_| {});
    publish(&shared, "c", "old");
    let (sock, t) = client(&mut front, "GET /sub?cname=c&seq=2&cb=f HTTP/1.1\r\n\r\n");
    assert_eq!(shared.channels.subscribers_of("c"), 1, "waiting for seq 2");
    // A pipelined request waits behind the poll.
    sock.send(b"GET /ping HTTP/1.1\r\n\r\n");
    front.on_event(t, true, false, false);
    sock.take_output();
    publish(&shared, "c", "new");
    pump(&mut front, &shared);
    let out = sock.take_output();
    assert!(
        out.starts_with("38\r\nf({\"type\":\"data\",\"cname\":\"c\",\"seq\":2,\"content\":\"new\"});\n\r\n0\r\n\r\n"),
        "{out:?}"
    );
    assert!(
        out.contains("icomet_cb({\"type\":\"ping\""),
        "then the pipelined ping: {out:?}"
    );
    assert_eq!(shared.channels.subscribers_of("c"), 0);
}

#[test]
fn noops_come_on_time_with_a_polling_timeout_past_the_wheel() {
    // Issue 17 bug 2: with 256 one-second buckets, a deadline 256 s or more
    // away used to be dropped when its bucket first came up, and never
    // re-armed: the noop never came.
    for pt in [5u32, 255, 256, 300, 700] {
        let (mut front, _shared) = front_with(|c| c.front.polling_timeout = pt);
        let (sock, _) = client(&mut front, "GET /stream?cname=c HTTP/1.1\r\n\r\n");
        sock.take_output();
        let subscribed = front.now();
        let noop = |n: i32| format!("{{\"type\":\"noop\",\"cname\":\"c\",\"seq\":{n},\"content\":\"\"}}\n");
        // The first noop comes polling_timeout + 1 ticks after the last
        // frame, then every polling_timeout + 1 (reference §2.8).
        front.tick(subscribed + pt);
        assert_eq!(sock.take_output(), "", "pt {pt}: nothing before its time");
        front.tick(subscribed + pt + 1);
        assert_eq!(chunks(&format!("\r\n\r\n{}", sock.take_output())), [noop(0)], "pt {pt}");
        front.tick(subscribed + 2 * (pt + 1));
        assert_eq!(chunks(&format!("\r\n\r\n{}", sock.take_output())), [noop(1)], "pt {pt}");
    }
}

#[test]
fn head_deadlines_past_the_wheel_close_slow_clients() {
    for ht in [3u32, 300] {
        let (mut front, shared) = front_with(|c| c.front.header_timeout_secs = ht);
        let (_, t) = client(&mut front, "GET /sub?cname=c HTTP/1.1\r\nHost:");
        let start = front.now();
        front.tick(start + ht);
        assert!(front.is_open(t), "ht {ht}: still within its time");
        front.tick(start + ht + 1);
        assert!(!front.is_open(t), "ht {ht}: closed at its deadline");
        assert_eq!(shared.stats.head_timeouts.load(std::sync::atomic::Ordering::Relaxed), 1);
    }
}

#[test]
fn a_broadcast_is_one_command_per_worker_and_reaches_each_channel_with_its_seq() {
    let (mut front, shared) = front_with(|_| {});
    let mut socks = Vec::new();
    for i in 0..50 {
        publish(&shared, &format!("c{i}"), "x");
        let (sock, _) = client(&mut front, &format!("GET /sse?cname=c{i}&seq=2 HTTP/1.1\r\n\r\n"));
        sock.take_output();
        socks.push(sock);
    }
    shared.channels.broadcast(&"all".into());
    let mut cmds = Vec::new();
    shared
        .channels
        .mailboxes()
        .get(0)
        .expect("worker 0")
        .take_all(&mut cmds);
    assert_eq!(cmds.len(), 1, "one command for fifty channels");
    for cmd in cmds {
        front.apply(cmd);
    }
    for (i, sock) in socks.iter().enumerate() {
        assert_eq!(
            chunks(&format!("\r\n\r\n{}", sock.take_output())),
            [
                format!("id: 2\ndata: {{\"type\":\"broadcast\",\"cname\":\"c{i}\",\"seq\":2,\"content\":\"all\"}}\n\n"),
                format!("id: 2\ndata: {{\"type\":\"next_seq\",\"cname\":\"c{i}\",\"seq\":3,\"content\":\"\"}}\n\n"),
            ]
        );
    }
}

#[test]
fn a_slow_consumer_is_dropped_past_its_queue_and_others_still_get_everything() {
    let (mut front, shared) = front_with(|c| c.front.max_queued_bytes = 4096);
    let (slow, ts) = client(&mut front, "GET /stream?cname=c HTTP/1.1\r\n\r\n");
    let (fast, tf) = client(&mut front, "GET /stream?cname=c HTTP/1.1\r\n\r\n");
    slow.take_output();
    fast.take_output();
    slow.room.set(Some(100));
    let content = "y".repeat(1000);
    for _ in 0..8 {
        shared.intake_publish("c", &content);
        pump(&mut front, &shared);
    }
    assert!(!front.is_open(ts), "dropped once more than 4096 bytes waited");
    assert!(front.is_open(tf));
    assert_eq!(chunks(&format!("\r\n\r\n{}", fast.take_output())).len(), 8);
    assert_eq!(
        shared
            .stats
            .slow_consumer_drops
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    assert_eq!(shared.channels.subscribers_of("c"), 1);
}

#[test]
fn the_last_connection_closing_inside_a_request_leaves_the_front_usable() {
    // Issue 17 bug 1, at the front's level: closing never reshapes the
    // connection array; the worker releases memory between events only.
    let (mut front, _shared) = front_with(|_| {});
    let clients: Vec<_> = (0..1100)
        .map(|_| client(&mut front, "GET /stream?cname=c HTTP/1.1\r\n\r\n"))
        .collect();
    let (idle, t) = client(&mut front, "");
    for (sock, t) in &clients {
        sock.eof.set(true);
        front.on_event(*t, true, false, false);
    }
    idle.send(b"GET /ping HTTP/1.0\r\n\r\n");
    front.on_event(t, true, false, false);
    assert!(idle.take_output().starts_with("HTTP/1.0 200 OK\r\n"));
    assert_eq!(front.open(), 0);
    assert!(front.should_release_memory());
    assert!(front.burst_was_large());
    front.release_memory();
    assert!(!front.should_release_memory(), "nothing left to release");
    let (again, _) = client(&mut front, "GET /ping HTTP/1.0\r\n\r\n");
    assert!(again
        .take_output()
        .ends_with("icomet_cb({\"type\":\"ping\",\"sub_timeout\":30});\n"));
}

#[test]
fn a_small_crowd_leaving_frees_the_arrays_without_counting_as_a_burst() {
    // 15,000 connections over 52 workers is ~290 per worker: when they all
    // leave, each worker gives its arrays back (they kept +30% of idle RSS),
    // but it is no reason for a trim.
    let (mut front, _shared) = front_with(|_| {});
    let few: Vec<_> = (0..10)
        .map(|_| client(&mut front, "GET /stream?cname=c HTTP/1.1\r\n\r\n"))
        .collect();
    for (sock, t) in &few {
        sock.eof.set(true);
        front.on_event(*t, true, false, false);
    }
    assert!(!front.should_release_memory(), "a handful of slots is kept");
    let crowd: Vec<_> = (0..300)
        .map(|_| client(&mut front, "GET /stream?cname=c HTTP/1.1\r\n\r\n"))
        .collect();
    assert!(!front.should_release_memory(), "not while anyone is connected");
    for (sock, t) in &crowd {
        sock.eof.set(true);
        front.on_event(*t, true, false, false);
    }
    assert!(front.should_release_memory());
    assert!(!front.burst_was_large());
    front.release_memory();
    assert!(!front.should_release_memory());
}

#[test]
fn drain_answers_polls_with_a_noop_and_ends_streams() {
    let (mut front, _shared) = front_with(|_| {});
    let (poll, tp) = client(&mut front, "GET /sub?cname=c&seq=1 HTTP/1.1\r\n\r\n");
    let (stream, ts) = client(&mut front, "GET /stream?cname=c&seq=1 HTTP/1.1\r\n\r\n");
    let (_, ti) = client(&mut front, "");
    poll.take_output();
    stream.take_output();
    front.drain();
    assert_eq!(
        chunks(&format!("\r\n\r\n{}", poll.take_output())),
        ["{\"type\":\"noop\",\"cname\":\"c\",\"seq\":0,\"content\":\"\"}\n", ""]
    );
    assert_eq!(stream.take_output(), "0\r\n\r\n");
    for t in [tp, ts, ti] {
        assert!(!front.is_open(t));
    }
    assert_eq!(front.subscriptions(), 0);
}

impl Shared {
    /// `/push` through the intake, as the admin does it.
    fn intake_publish(&self, cname: &str, content: &str) {
        let cmd = ChannelCmd::Publish {
            cname: cname.to_string(),
            content: content.into(),
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        rt.block_on(self.intake.apply(cmd)).expect("published");
    }
}
