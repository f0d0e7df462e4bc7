//! The event hook (`hooks.events_url`) through a real server and a scripted
//! application: the events of a subscriber's life over every streaming
//! transport, in order and with the JWT `sub`; a long-poll client that
//! re-polls for several rounds (on new connections too) being one
//! subscriber; every leave reason; batching; and an application that never
//! answers, which must not delay a single delivery. Events are compared as
//! JSON values (their exact bytes are `hooks::event`'s unit tests), with
//! `time_ms` checked and then set aside.

use std::sync::Arc;
use std::time::{Duration, Instant};

use comet::config::Config;
use serde_json::{json, Value};
use tokio::sync::Semaphore;

use crate::jwt::{jwt_config, mint, now};
use crate::support::app::{Answer, AppThread};
use crate::support::ws::Ws;
use crate::support::{admin, config, connect_from, eventually, metric, start, subscribers, Client};

/// The longest wait for an event that comes on a timer (a long-poll
/// lineage ends `polling_timeout` + 5 s after its last request).
const SLOW_WAIT: Duration = Duration::from_secs(30);

/// `c` reporting to `app` at `/events`, publishes included.
fn reporting(mut c: Config, app: &AppThread) -> Config {
    c.hooks.events_url = app.url("/events");
    c.hooks.events_batch_ms = 20;
    c.hooks.events_publish = true;
    c
}

/// Milliseconds since the epoch.
fn now_ms() -> u64 {
    now() * 1000
}

/// Every event the application received, in order, `time_ms` checked
/// (after `since_ms`, not in the future) and removed.
fn events(app: &AppThread, since_ms: u64) -> Vec<Value> {
    let mut out = Vec::new();
    for hit in app.hits() {
        assert_eq!(
            (hit.path.as_str(), hit.content_type.as_str()),
            ("/events", "application/json")
        );
        let batch: Vec<Value> = serde_json::from_slice(&hit.body).expect("a JSON array");
        for mut e in batch {
            let t = e["time_ms"].as_u64().unwrap_or_else(|| panic!("time_ms in {e}"));
            assert!(t + 1000 >= since_ms && t <= now_ms() + 1000, "time_ms {t} in {e}");
            e.as_object_mut().expect("an object").remove("time_ms");
            out.push(e);
        }
    }
    out
}

/// The events about `cname`.
fn of(events: &[Value], cname: &str) -> Vec<Value> {
    events.iter().filter(|e| e["cname"] == cname).cloned().collect()
}

/// Waits (up to `wait`) until the events about `cname` hold `n` of type
/// `kind`; returns the events about `cname`.
fn wait_for(app: &AppThread, since_ms: u64, cname: &str, kind: &str, n: usize, wait: Duration) -> Vec<Value> {
    let deadline = Instant::now() + wait;
    loop {
        let got = of(&events(app, since_ms), cname);
        if got.iter().filter(|e| e["type"] == kind).count() >= n {
            return got;
        }
        assert!(Instant::now() < deadline, "no {n} {kind} events for {cname}: {got:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The `id` of the first `subscribe` among `events`.
fn id_of(events: &[Value]) -> u64 {
    events
        .iter()
        .find(|e| e["type"] == "subscribe")
        .and_then(|e| e["id"].as_u64())
        .unwrap_or_else(|| panic!("no subscribe in {events:?}"))
}

#[test]
fn a_streaming_subscriber_joins_hears_and_leaves_in_order() {
    let app = AppThread::start(|_, _| Answer::Status(204));
    let s = start(reporting(jwt_config(), &app));
    let since = now_ms();
    for (t, path) in [
        ("stream", "/stream"),
        ("sse", "/sse"),
        ("iframe", "/iframe"),
        ("ws", "/ws"),
    ] {
        let cname = format!("ev-{t}");
        let claims = json!({"cname": cname, "exp": now() + 600, "sub": format!("user-{t}")});
        let target = format!("{path}?cname={cname}&seq=1&token={}", mint(&claims));
        let from = [127, 0, 0, 5].into();
        let mut http = None;
        let mut ws = None;
        if t == "ws" {
            ws = Some(Ws::connect_from(from, s.front_addr(), &target));
        } else {
            let mut c = connect_from(from, s.front_addr());
            c.get(&target);
            c.head();
            http = Some(c);
        }
        eventually("subscribed", || subscribers(&s, &cname) == 1);
        // content=café" : 6 bytes.
        admin(&s, &format!("/push?cname={cname}&content=caf%C3%A9%22"));
        if let Some(w) = ws.as_mut() {
            assert!(w.text().contains("caf\u{e9}\\\""), "{t}");
        }
        if let Some(c) = http.as_mut() {
            while !c.chunk_str().contains("caf\u{e9}\\\"") {}
        }
        drop((http, ws));
        let got = wait_for(&app, since, &cname, "unsubscribe", 1, SLOW_WAIT);
        let id = id_of(&got);
        let who = json!({"id": id, "cname": cname, "transport": t, "ip": "127.0.0.5", "sub": format!("user-{t}")});
        let mut subscribe = who.clone();
        subscribe["type"] = json!("subscribe");
        let mut unsubscribe = who;
        unsubscribe["type"] = json!("unsubscribe");
        unsubscribe["reason"] = json!("closed");
        assert_eq!(
            got,
            [
                json!({"type": "online", "cname": cname}),
                subscribe,
                json!({"type": "publish", "cname": cname, "seq": 1, "length": 6}),
                unsubscribe,
            ],
            "{t}"
        );
    }
    // Every event is accounted for.
    eventually("every event sent", || {
        let total = events(&app, since).len() as u64;
        metric(&s, "comet_hook_events_sent_total") == total && metric(&s, "comet_hook_events_queued") == 0
    });
}

#[test]
fn a_long_poll_client_is_one_subscriber_across_its_repolls() {
    let app = AppThread::start(|_, _| Answer::Status(204));
    let mut c = reporting(jwt_config(), &app);
    // Noops after 1 s; a lineage ends after 1 + 5 s without a request.
    c.front.polling_timeout = 1;
    c.front.channel_timeout = 60;
    let s = start(c);
    let since = now_ms();
    let token = mint(&json!({"cname": "lp", "exp": now() + 600, "sub": "poller"}));
    let poll = |c: &mut Client, seq: i32| c.get(&format!("/sub?cname=lp&seq={seq}&noop=0&token={token}"));
    let answer = |c: &mut Client| {
        c.head();
        let body = c.chunk_str();
        assert_eq!(c.chunk_str(), "");
        body
    };
    let mut c = Client::connect(s.front_addr());
    let mut seq = 1;
    for round in 0..6 {
        if round == 2 || round == 4 {
            // A re-poll on a new connection, as browsers do.
            c = Client::connect(s.front_addr());
        }
        poll(&mut c, seq);
        eventually("the poll waits", || subscribers(&s, "lp") == 1);
        if round == 3 {
            // This one waits for its noop (polling_timeout), then re-polls.
            assert!(answer(&mut c).contains("\"type\":\"noop\""));
            continue;
        }
        if round == 5 {
            // The client goes away in the middle of a poll and comes back
            // on a new connection.
            drop(c);
            eventually("the poll is gone", || subscribers(&s, "lp") == 0);
            c = Client::connect(s.front_addr());
            poll(&mut c, seq);
            eventually("the poll waits again", || subscribers(&s, "lp") == 1);
        }
        admin(&s, &format!("/push?cname=lp&content=m{seq}"));
        assert!(answer(&mut c).contains(&format!("\"content\":\"m{seq}\"")));
        seq += 1;
    }
    // The client stops polling: one unsubscribe, `timeout`, when its window is over.
    let got = wait_for(&app, since, "lp", "unsubscribe", 1, SLOW_WAIT);
    let id = id_of(&got);
    let joins_and_leaves: Vec<&Value> = got.iter().filter(|e| e["type"] != "publish").collect();
    assert_eq!(
        joins_and_leaves,
        [
            &json!({"type": "online", "cname": "lp"}),
            &json!({"type": "subscribe", "id": id, "cname": "lp", "transport": "poll", "ip": "127.0.0.1", "sub": "poller"}),
            &json!({"type": "unsubscribe", "id": id, "cname": "lp", "transport": "poll", "ip": "127.0.0.1", "sub": "poller", "reason": "timeout"}),
        ]
    );
    let publishes = got.iter().filter(|e| e["type"] == "publish").count();
    assert_eq!(publishes, 5);
    assert_eq!(metric(&s, "comet_hook_poll_lineages"), 0);
}

#[test]
fn leave_reasons_unsub_channel_closed_and_shutdown() {
    let app = AppThread::start(|_, _| Answer::Status(204));
    let s = start(reporting(config(), &app));
    let since = now_ms();
    let mut ws = Ws::connect(s.front_addr(), "/ws?cname=rc-a&seq=1");
    ws.send_text(r#"{"type":"sub","cname":"rc-b","seq":1}"#);
    eventually("rc-b held", || subscribers(&s, "rc-b") == 1);
    ws.send_text(r#"{"type":"unsub","cname":"rc-b"}"#);
    assert_eq!(ws.text(), r#"{"type":"unsub","cname":"rc-b","seq":1,"content":""}"#);
    let got = wait_for(&app, since, "rc-b", "unsubscribe", 1, SLOW_WAIT);
    let who = |id: u64, cname: &str, t: &str| json!({"id": id, "cname": cname, "transport": t, "ip": "127.0.0.1", "sub": null});
    let with = |mut v: Value, kind: &str, reason: Option<&str>| {
        v["type"] = json!(kind);
        if let Some(r) = reason {
            v["reason"] = json!(r);
        }
        v
    };
    let b = id_of(&got);
    assert_eq!(
        got,
        [
            json!({"type": "online", "cname": "rc-b"}),
            with(who(b, "rc-b", "ws"), "subscribe", None),
            with(who(b, "rc-b", "ws"), "unsubscribe", Some("unsubscribed")),
        ]
    );

    // /close ends a stream subscriber and a waiting long poll's lineage.
    let mut stream = Client::connect(s.front_addr());
    stream.get("/stream?cname=rc-c&seq=1");
    stream.head();
    eventually("the stream", || subscribers(&s, "rc-c") == 1);
    let mut poll = Client::connect(s.front_addr());
    poll.get("/sub?cname=rc-c&seq=1");
    poll.head();
    eventually("the long poll", || subscribers(&s, "rc-c") == 2);
    admin(&s, "/close?cname=rc-c");
    wait_for(&app, since, "rc-c", "unsubscribe", 2, SLOW_WAIT);
    let got = wait_for(&app, since, "rc-c", "offline", 1, SLOW_WAIT);
    let (st, lp) = (got[1]["id"].as_u64().expect("id"), got[2]["id"].as_u64().expect("id"));
    assert_eq!(
        got[..3],
        [
            json!({"type": "online", "cname": "rc-c"}),
            with(who(st, "rc-c", "stream"), "subscribe", None),
            with(who(lp, "rc-c", "poll"), "subscribe", None),
        ]
    );
    // The lineage ends with the channel, just before its offline; the
    // stream when its worker ends it, which may be before or after.
    let rest: Vec<Value> = got[3..]
        .iter()
        .filter(|e| e["transport"] != "stream")
        .cloned()
        .collect();
    assert_eq!(
        rest,
        [
            with(who(lp, "rc-c", "poll"), "unsubscribe", Some("channel_closed")),
            json!({"type": "offline", "cname": "rc-c"}),
        ]
    );
    let stream_leaves: Vec<&Value> = got[3..].iter().filter(|e| e["transport"] == "stream").collect();
    assert_eq!(
        stream_leaves,
        [&with(who(st, "rc-c", "stream"), "unsubscribe", Some("channel_closed"))]
    );
    assert_eq!(got.len(), 6, "{got:?}");

    // At shutdown the rest leave, and the application has heard it by the
    // time shutdown returns.
    let a = id_of(&of(&events(&app, since), "rc-a"));
    s.shutdown();
    assert_eq!(
        of(&events(&app, since), "rc-a"),
        [
            json!({"type": "online", "cname": "rc-a"}),
            with(who(a, "rc-a", "ws"), "subscribe", None),
            with(who(a, "rc-a", "ws"), "unsubscribe", Some("shutdown")),
        ]
    );
    drop(ws);
}

#[test]
fn a_slow_consumer_leaves_as_slow_consumer() {
    let app = AppThread::start(|_, _| Answer::Status(204));
    let mut c = reporting(config(), &app);
    c.hooks.events_publish = false;
    c.front.max_queued_bytes = 4096;
    c.front.socket_send_buffer_bytes = 4096;
    let s = start(c);
    let since = now_ms();
    let slow = Client::connect(s.front_addr());
    socket2::SockRef::from(&slow.stream)
        .set_recv_buffer_size(4096)
        .expect("SO_RCVBUF");
    let mut slow = slow;
    slow.get("/stream?cname=slow&seq=1");
    eventually("subscribed", || subscribers(&s, "slow") == 1);
    let big = "y".repeat(60_000);
    let deadline = Instant::now() + SLOW_WAIT;
    while subscribers(&s, "slow") == 1 {
        assert!(Instant::now() < deadline, "never dropped");
        admin(&s, &format!("/push?cname=slow&content={big}"));
    }
    let got = wait_for(&app, since, "slow", "unsubscribe", 1, SLOW_WAIT);
    assert_eq!(got.last().expect("an event")["reason"], "slow_consumer", "{got:?}");
}

#[test]
fn events_that_pile_up_go_in_one_batch_in_order() {
    let gate = Arc::new(Semaphore::new(0));
    let g = gate.clone();
    let app = AppThread::start(move |n, _| {
        if n == 0 {
            Answer::Gated(g.clone(), 204)
        } else {
            Answer::Status(204)
        }
    });
    let s = start(reporting(config(), &app));
    let since = now_ms();
    let mut clients = Vec::new();
    for i in 0..6 {
        let mut c = Client::connect(s.front_addr());
        c.get(&format!("/stream?cname=b{i}&seq=1"));
        c.head();
        clients.push(c);
        if i == 0 {
            eventually("the first POST waits at the application", || app.count() == 1);
        }
    }
    // Every event is either in the held POST or queued behind it.
    let held = events(&app, since).len() as u64;
    eventually("12 events out of the workers", || {
        held + metric(&s, "comet_hook_events_queued") == 12
    });
    gate.add_permits(1);
    eventually("everything sent", || metric(&s, "comet_hook_events_sent_total") == 12);
    assert_eq!(app.count(), 2, "what queued behind the held POST went in one");
    let got = events(&app, since);
    let order: Vec<String> = got
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["type"].as_str().expect("type"),
                e["cname"].as_str().expect("cname")
            )
        })
        .collect();
    let want: Vec<String> = (0..6)
        .flat_map(|i| [format!("online b{i}"), format!("subscribe b{i}")])
        .collect();
    assert_eq!(order, want);
}

#[test]
fn an_application_that_never_answers_does_not_delay_delivery() {
    let app = AppThread::start(|_, _| Answer::Never);
    let mut c = reporting(config(), &app);
    c.hooks.events_queue_max = 50;
    c.hooks.events_batch_max = 10;
    c.hooks.events_timeout_ms = 600_000;
    let s = start(c);
    let (subscribers_n, messages) = (40, 20);
    let mut clients = Vec::new();
    for i in 0..subscribers_n {
        let mut c = Client::connect(s.front_addr());
        c.get(&format!("/stream?cname=d{}&seq=1", i % 4));
        c.head();
        clients.push((i % 4, c));
    }
    eventually("all subscribed", || {
        (0..4).all(|ch| subscribers(&s, &format!("d{ch}")) == subscribers_n / 4)
    });
    let started = Instant::now();
    for m in 1..=messages {
        for ch in 0..4 {
            admin(&s, &format!("/push?cname=d{ch}&content=m{m}"));
        }
    }
    for (ch, c) in &mut clients {
        for m in 1..=messages {
            let chunk = c.chunk_str();
            assert!(
                chunk.contains(&format!("\"cname\":\"d{ch}\",\"seq\":{m},\"content\":\"m{m}\"")),
                "{chunk}"
            );
        }
    }
    // A generous bound: the same run takes well under a second when idle.
    assert!(started.elapsed() < Duration::from_secs(30), "{:?}", started.elapsed());
    assert_eq!(
        metric(&s, "comet_messages_delivered_total"),
        (subscribers_n * messages) as u64
    );
    // 4 online, 40 subscribe and 80 publish events: the application holds
    // the first batch (at most 10) for ever, the queue holds 50, and the
    // oldest of the rest were dropped.
    let held = events(&app, 0).len() as u64;
    assert!((1..=10).contains(&held), "{held}");
    assert_eq!(app.count(), 1, "one POST, never answered");
    assert_eq!(metric(&s, "comet_hook_events_queued"), 50);
    assert_eq!(
        metric(&s, "comet_hook_events_dropped_total{reason=\"overflow\"}"),
        124 - 50 - held
    );
    assert_eq!(metric(&s, "comet_hook_events_sent_total"), 0);
}
