//! The hooks against a real HTTP application started by each test: a small
//! hyper server on 127.0.0.1:0 that records every request and answers as
//! the test scripts it (a status, never, or once the test releases it).
//! Every wait has a deadline; assertions are on counts and bytes, and the
//! only time figures asserted are generous upper bounds or lower bounds the
//! code guarantees.

use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use comet::hooks::{AuthorizeRequest, Authorizer, EventSink, HookEvent, HooksConfig, OnError, Verdict};
use serde_json::Value;
use tokio::runtime::Handle;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::support::app::{Answer, App, Hit};

/// The deadline of every wait.
const WAIT: Duration = Duration::from_secs(15);

/// Polls `cond` every 5 ms until it holds; fails the test after WAIT.
async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < WAIT, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn request(cname: &str, token: &str) -> AuthorizeRequest {
    AuthorizeRequest {
        cname: cname.to_string(),
        token: token.to_string(),
        ip: IpAddr::from([127, 0, 0, 1]),
        transport: "sse",
    }
}

fn authorizer(url: String, change: impl FnOnce(&mut HooksConfig)) -> Authorizer {
    let mut c = HooksConfig {
        authorize_url: url,
        ..HooksConfig::default()
    };
    change(&mut c);
    Authorizer::new(&c, &Handle::current()).expect("valid hooks config")
}

/// A port nothing listens on (bound, then released).
fn closed_port_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    drop(l);
    format!("http://{addr}/hook")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorize_allow_and_deny_post_the_exact_json() {
    let app = App::start(|_, hit| {
        let v: Value = serde_json::from_slice(&hit.body).expect("JSON body");
        Answer::Status(if v["cname"] == "open" { 204 } else { 403 })
    })
    .await;
    let a = authorizer(app.url(), |_| {});
    assert_eq!(a.check(request("open", "tok-1")).await, Verdict::Allow);
    assert_eq!(a.check(request("closed", "")).await, Verdict::Refuse);
    let mut v6 = request("open", "t\"2");
    v6.ip = "::1".parse().expect("ip");
    v6.transport = "poll";
    assert_eq!(a.check(v6).await, Verdict::Allow);
    let hits = app.hits();
    let bodies: Vec<String> = hits
        .iter()
        .map(|h| String::from_utf8(h.body.clone()).expect("UTF-8"))
        .collect();
    assert_eq!(
        bodies,
        [
            r#"{"cname":"open","token":"tok-1","ip":"127.0.0.1","transport":"sse"}"#,
            r#"{"cname":"closed","token":"","ip":"127.0.0.1","transport":"sse"}"#,
            r#"{"cname":"open","token":"t\"2","ip":"::1","transport":"poll"}"#,
        ]
    );
    assert!(hits
        .iter()
        .all(|h| h.path == "/hook" && h.content_type == "application/json"));
    let s = a.stats();
    assert_eq!((s.requests, s.allowed, s.refused, s.cache_hits), (3, 2, 1, 0));
    assert_eq!(
        (s.timeouts, s.connect_errors, s.http_errors, s.queue_full, s.pending),
        (0, 0, 0, 0, 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorize_answers_are_cached_per_cname_and_token() {
    let app = App::start(|_, hit| {
        let v: Value = serde_json::from_slice(&hit.body).expect("JSON body");
        Answer::Status(match v["token"].as_str() {
            Some("good") => 200,
            Some("broken") => 500,
            _ => 401,
        })
    })
    .await;
    let a = authorizer(app.url(), |c| c.authorize_cache_secs = 60);
    for _ in 0..3 {
        assert_eq!(a.check(request("c", "good")).await, Verdict::Allow);
        assert_eq!(a.check(request("c", "bad")).await, Verdict::Refuse);
    }
    assert_eq!(app.count(), 2, "one request per (cname, token)");
    assert_eq!(a.check(request("d", "good")).await, Verdict::Allow);
    assert_eq!(app.count(), 3, "another channel is another key");
    // A 5xx refuses but is not remembered.
    assert_eq!(a.check(request("c", "broken")).await, Verdict::Refuse);
    assert_eq!(a.check(request("c", "broken")).await, Verdict::Refuse);
    assert_eq!(app.count(), 5);
    let s = a.stats();
    assert_eq!((s.requests, s.cache_hits, s.allowed, s.refused), (5, 4, 4, 5));

    // With the cache off every check asks.
    let b = authorizer(app.url(), |c| c.authorize_cache_secs = 0);
    for _ in 0..3 {
        assert_eq!(b.check(request("c", "good")).await, Verdict::Allow);
    }
    assert_eq!(app.count(), 8);
    assert_eq!(b.stats().cache_hits, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorize_timeout_applies_the_policy() {
    let app = App::start(|_, _| Answer::Never).await;
    for (policy, want) in [(OnError::Refuse, Verdict::Refuse), (OnError::Allow, Verdict::Allow)] {
        let a = authorizer(app.url(), |c| {
            c.authorize_timeout_ms = 200;
            c.authorize_on_error = policy;
        });
        let start = Instant::now();
        assert_eq!(a.check(request("c", "t")).await, want, "{policy:?}");
        assert!(start.elapsed() >= Duration::from_millis(200), "waited the timeout");
        assert!(start.elapsed() < WAIT);
        // Not cached: the next check asks again.
        assert_eq!(a.check(request("c", "t")).await, want);
        let s = a.stats();
        assert_eq!(
            (s.requests, s.timeouts, s.cache_hits, s.pending),
            (2, 2, 0, 0),
            "{policy:?}"
        );
    }
    assert_eq!(app.count(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorize_connection_refused_applies_the_policy() {
    let url = closed_port_url();
    for (policy, want) in [(OnError::Refuse, Verdict::Refuse), (OnError::Allow, Verdict::Allow)] {
        let a = authorizer(url.clone(), |c| c.authorize_on_error = policy);
        assert_eq!(a.check(request("c", "t")).await, want, "{policy:?}");
        assert_eq!(a.check(request("c", "t")).await, want, "{policy:?}");
        let s = a.stats();
        assert_eq!((s.connect_errors, s.timeouts, s.http_errors), (2, 0, 0), "{policy:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorize_concurrency_and_wait_queue_are_bounded() {
    let gate = Arc::new(Semaphore::new(0));
    let g = gate.clone();
    let app = App::start(move |_, _| Answer::Gated(g.clone(), 200)).await;
    let a = authorizer(app.url(), |c| {
        c.authorize_concurrency = 2;
        c.authorize_queue_max = 3;
        c.authorize_timeout_ms = 60_000;
        c.authorize_cache_secs = 0;
        c.authorize_on_error = OnError::Refuse;
    });
    let mut checks = JoinSet::new();
    for i in 0..5 {
        let a = a.clone();
        checks.spawn(async move { a.check(request("c", &format!("t{i}"))).await });
    }
    wait_for("two requests at the application", || app.count() == 2).await;
    wait_for("five checks pending", || a.stats().pending == 5).await;
    // Two in flight and three waiting: a sixth is decided at once.
    assert_eq!(a.check(request("c", "t5")).await, Verdict::Refuse);
    assert_eq!(a.stats().queue_full, 1);
    assert_eq!(app.count(), 2, "the waiting three have not been sent");
    gate.add_permits(5);
    let mut verdicts = Vec::new();
    while let Some(v) = checks.join_next().await {
        verdicts.push(v.expect("check task"));
    }
    assert_eq!(verdicts, [Verdict::Allow; 5]);
    assert_eq!(app.count(), 5);
    assert_eq!(
        app.max_in_flight.load(Ordering::SeqCst),
        2,
        "never more than 2 in flight"
    );
    let s = a.stats();
    assert_eq!(
        (s.requests, s.allowed, s.refused, s.queue_full, s.pending),
        (5, 5, 1, 1, 0)
    );
}

fn sink(url: String, change: impl FnOnce(&mut HooksConfig)) -> EventSink {
    let mut c = HooksConfig {
        events_url: url,
        retry_initial_ms: 20,
        retry_max_ms: 100,
        ..HooksConfig::default()
    };
    change(&mut c);
    EventSink::new(&c, &Handle::current()).expect("valid hooks config")
}

/// An online event whose cname is `e<i>`, to follow order.
fn event(i: usize) -> HookEvent {
    HookEvent::Online {
        cname: format!("e{i}").into(),
        time_ms: i as u64,
    }
}

/// The cnames of each POSTed batch.
fn batches(hits: &[Hit]) -> Vec<Vec<String>> {
    hits.iter()
        .map(|h| {
            let v: Vec<Value> = serde_json::from_slice(&h.body).expect("a JSON array");
            v.iter()
                .map(|e| {
                    assert_eq!(e["type"], "online");
                    e["cname"].as_str().expect("cname").to_string()
                })
                .collect()
        })
        .collect()
}

fn names(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("e{i}")).collect()
}

/// An application that answers 200, the first POST only once the test
/// adds a permit to the returned gate.
async fn first_post_gated() -> (Arc<Semaphore>, App) {
    let gate = Arc::new(Semaphore::new(0));
    let g = gate.clone();
    let app = App::start(move |n, _| {
        if n == 0 {
            Answer::Gated(g.clone(), 200)
        } else {
            Answer::Status(200)
        }
    })
    .await;
    (gate, app)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_batched_by_count_in_order() {
    // The first POST waits for the test, so the rest pile up behind it.
    let (gate, app) = first_post_gated().await;
    let s = sink(app.url(), |c| {
        c.events_batch_max = 100;
        c.events_batch_ms = 60_000;
    });
    for i in 0..100 {
        s.push(event(i));
    }
    wait_for("the first batch", || app.count() == 1).await;
    for i in 100..250 {
        s.push(event(i));
    }
    gate.add_permits(1);
    wait_for("all events sent", || s.stats().sent == 250).await;
    let got = batches(&app.hits());
    assert_eq!(got, [names(0..100), names(100..200), names(200..250)]);
    let st = s.stats();
    assert_eq!(
        (st.batches, st.failures, st.retries, st.dropped_overflow, st.queued),
        (3, 0, 0, 0, 0)
    );
    let hit = &app.hits()[0];
    assert_eq!(
        (hit.path.as_str(), hit.content_type.as_str()),
        ("/hook", "application/json")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_batched_by_time() {
    let app = App::start(|_, _| Answer::Status(200)).await;
    let s = sink(app.url(), |c| {
        c.events_batch_max = 100;
        c.events_batch_ms = 300;
    });
    let start = Instant::now();
    for i in 0..3 {
        s.push(event(i));
    }
    wait_for("a batch", || app.count() == 1).await;
    assert!(
        start.elapsed() >= Duration::from_millis(300),
        "the batch waited for more events"
    );
    assert_eq!(batches(&app.hits()), [names(0..3)]);
    wait_for("sent counted", || s.stats().sent == 3).await;
    // A later event starts a new batch.
    s.push(event(3));
    wait_for("a second batch", || app.count() == 2).await;
    assert_eq!(batches(&app.hits())[1], names(3..4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_the_application_after_it_comes_back() {
    // It answers 500 twice, then goes away, then comes back on the same port.
    let app = App::start(|_, _| Answer::Status(500)).await;
    let s = sink(app.url(), |c| {
        c.events_batch_max = 100;
        c.events_batch_ms = 10;
        c.events_timeout_ms = 2000;
    });
    for i in 0..5 {
        s.push(event(i));
    }
    wait_for("two failed POSTs", || app.count() >= 2).await;
    let first = app.hits();
    let addr = app.go_away().await;
    let failed_before = s.stats().failures;
    wait_for("two connection failures", || s.stats().failures >= failed_before + 2).await;
    for i in 5..8 {
        s.push(event(i));
    }
    let back = App::start_on(addr, Arc::new(|_, _| Answer::Status(200))).await;
    wait_for("all eight delivered", || s.stats().sent == 8).await;
    // The failed batch kept its place: the same five events, first.
    assert_eq!(batches(&first[..2]), [names(0..5), names(0..5)]);
    assert_eq!(batches(&back.hits()), [names(0..5), names(5..8)]);
    let st = s.stats();
    assert!(st.failures >= 4, "{st:?}");
    assert_eq!(st.retries, st.failures, "every failure was retried: {st:?}");
    assert_eq!(
        (st.batches, st.dropped_overflow, st.dropped_rejected, st.queued),
        (2, 0, 0, 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_drops_the_oldest() {
    let (gate, app) = first_post_gated().await;
    let s = sink(app.url(), |c| {
        c.events_batch_max = 5;
        c.events_batch_ms = 60_000;
        c.events_queue_max = 10;
    });
    for i in 0..5 {
        s.push(event(i));
    }
    wait_for("the first batch in flight", || app.count() == 1).await;
    for i in 5..30 {
        s.push(event(i));
    }
    let st = s.stats();
    assert_eq!((st.dropped_overflow, st.queued), (15, 10), "e5..e19 dropped");
    gate.add_permits(1);
    wait_for("the rest sent", || s.stats().sent == 15).await;
    assert_eq!(batches(&app.hits()), [names(0..5), names(20..25), names(25..30)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_that_never_answers_does_not_block_push() {
    let app = App::start(|_, _| Answer::Never).await;
    let s = sink(app.url(), |c| {
        c.events_batch_max = 100;
        c.events_batch_ms = 60_000;
        c.events_queue_max = 1000;
        c.events_timeout_ms = 600_000;
    });
    for i in 0..100 {
        s.push(event(i));
    }
    wait_for("the first batch stuck at the application", || app.count() == 1).await;
    // 200,000 pushes from a plain thread, as a worker would push.
    let pusher = s.clone();
    let (done, finished) = std::sync::mpsc::channel();
    let start = Instant::now();
    std::thread::spawn(move || {
        for i in 0..200_000 {
            pusher.push(event(i));
        }
        let _ = done.send(());
    });
    finished
        .recv_timeout(WAIT)
        .expect("200,000 pushes finish while the application hangs");
    // A generous bound, not a benchmark: about 10 ms is typical in debug builds.
    assert!(start.elapsed() < Duration::from_secs(10), "{:?}", start.elapsed());
    let st = s.stats();
    assert_eq!(st.queued, 1000);
    assert_eq!(st.dropped_overflow, 200_000 - 1000);
    assert_eq!((st.sent, st.failures), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_flushes_what_it_can_within_the_deadline() {
    let app = App::start(|_, _| Answer::Status(200)).await;
    let s = sink(app.url(), |c| {
        c.events_batch_max = 20;
        c.events_batch_ms = 60_000;
    });
    for i in 0..30 {
        s.push(event(i));
    }
    s.shutdown(Duration::from_secs(10)).await;
    let st = s.stats();
    assert_eq!((st.sent, st.dropped_shutdown, st.queued), (30, 0, 0));
    assert_eq!(batches(&app.hits()).concat(), names(0..30));
    // A second shutdown returns at once.
    s.shutdown(Duration::from_secs(10)).await;

    // An application that never answers: shutdown gives up at the deadline.
    let hang = App::start(|_, _| Answer::Never).await;
    let s = sink(hang.url(), |c| {
        c.events_batch_max = 20;
        c.events_batch_ms = 60_000;
        c.events_timeout_ms = 600_000;
    });
    for i in 0..30 {
        s.push(event(i));
    }
    wait_for("a batch stuck", || hang.count() == 1).await;
    let start = Instant::now();
    s.shutdown(Duration::from_millis(300)).await;
    assert!(start.elapsed() < WAIT);
    let st = s.stats();
    assert_eq!((st.sent, st.dropped_shutdown), (0, 30), "{st:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_the_application_rejects_is_dropped_not_retried() {
    let app = App::start(|n, _| Answer::Status(if n == 0 { 400 } else { 200 })).await;
    let s = sink(app.url(), |c| c.events_batch_ms = 10);
    s.push(event(0));
    wait_for("the rejection", || s.stats().dropped_rejected == 1).await;
    s.push(event(1));
    wait_for("the next batch", || s.stats().sent == 1).await;
    assert_eq!(batches(&app.hits()), [names(0..1), names(1..2)]);
    let st = s.stats();
    assert_eq!((st.failures, st.retries), (1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_refuse_to_start_without_their_url() {
    let e = Authorizer::new(&HooksConfig::default(), &Handle::current())
        .err()
        .expect("no URL");
    assert_eq!(
        e.to_string(),
        "hooks.authorize_url must be set to build the authorize hook"
    );
    let e = EventSink::new(&HooksConfig::default(), &Handle::current())
        .err()
        .expect("no URL");
    assert_eq!(e.to_string(), "hooks.events_url must be set to build the event hook");
}

/// The workers run their own current-thread runtimes: a check awaited there
/// is served by the hooks' runtime, which owns the connections.
#[test]
fn checks_and_pushes_from_other_runtimes_and_threads() {
    let hooks = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("hooks runtime");
    let app = hooks.block_on(App::start(|_, _| Answer::Status(200)));
    let c = HooksConfig {
        authorize_url: app.url(),
        events_url: app.url(),
        events_batch_ms: 10,
        ..HooksConfig::default()
    };
    let a = Authorizer::new(&c, hooks.handle()).expect("authorizer");
    let s = EventSink::new(&c, hooks.handle()).expect("sink");
    let workers: Vec<_> = (0..2)
        .map(|w| {
            let (a, s) = (a.clone(), s.clone());
            std::thread::spawn(move || {
                let worker = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("worker runtime");
                let verdict = worker.block_on(a.check(request("c", &format!("w{w}"))));
                s.push(event(w));
                verdict
            })
        })
        .collect();
    for w in workers {
        assert_eq!(w.join().expect("worker thread"), Verdict::Allow);
    }
    hooks.block_on(async {
        wait_for("both events", || s.stats().sent == 2).await;
    });
    assert_eq!(a.stats().requests, 2);
    let batches = s.stats().batches;
    assert!((1..=2).contains(&batches));
    assert_eq!(app.count() as u64, 2 + batches, "two checks and the batches");
}

/// Cost of `EventSink::push` while the application never answers (the
/// queue full, every push dropping the oldest), from one and from two
/// threads: `cargo test --release --test it hooks::bench_push -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark; run by hand in release"]
async fn bench_push() {
    let app = App::start(|_, _| Answer::Never).await;
    let s = sink(app.url(), |c| {
        c.events_queue_max = 100_000;
        c.events_timeout_ms = 600_000;
    });
    const N: usize = 1_000_000;
    for threads in [1usize, 2] {
        let start = Instant::now();
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let s = s.clone();
                std::thread::spawn(move || {
                    for i in 0..N / threads {
                        s.push(event(i));
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().expect("pusher");
        }
        let ns = start.elapsed().as_nanos() / N as u128;
        println!(
            "push from {threads} thread(s): {ns} ns/event (event built included), {:?}",
            s.stats()
        );
    }
}
