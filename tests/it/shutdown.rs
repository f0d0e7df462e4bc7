//! The real binary under signals and descriptor exhaustion: graceful
//! shutdown on SIGTERM/SIGINT, the grace period, a second signal, and
//! accept back-off when the descriptor table is full.

use std::io::Read;
use std::time::Duration;

use crate::support::binary::Binary;
use crate::support::{eventually, get, header, json, Client};

const BASE: &str = "log_level: info\nworkers: 2\nfront:\n  listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\n  allow: []\n  deny: []\n";

/// Waits until `/info` reports `n` subscribers.
fn wait_subscribers(bin: &Binary, n: u64) {
    eventually(&format!("{n} subscribers"), || {
        let (status, _, body) = get(bin.admin(), "/info");
        assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
        json(&body)["subscribers"] == n
    });
}

#[test]
fn sigterm_answers_polls_ends_streams_and_exits_zero() {
    let mut bin = Binary::start(BASE);
    let mut poll = Client::connect(bin.front());
    poll.get("/sub?cname=g&seq=1&cb=cb7&noop=4");
    let mut sse = Client::connect(bin.front());
    sse.get("/sse?cname=g");
    let head = sse.head();
    assert!(head.starts_with("HTTP/1.1 200 OK"));
    let mut stream10 = Client::connect(bin.front());
    stream10.send(b"GET /stream?cname=g HTTP/1.0\r\n\r\n");
    let head10 = stream10.head();
    let _idle = Client::connect(bin.front());
    wait_subscribers(&bin, 3);
    let mut admin_idle = Client::connect(bin.admin());
    admin_idle.send(b"GET /info HTTP/1.1\r\nHost: t\r\n\r\n");
    admin_idle.response();

    bin.signal(libc::SIGTERM);

    // The long poll is answered with a noop (its counter echoed), and the
    // connection then closes.
    let poll_head = poll.head();
    assert!(poll_head.starts_with("HTTP/1.1 200 OK"), "{poll_head}");
    let noop = poll.chunk_str();
    assert_eq!(
        noop,
        "cb7({\"type\":\"noop\",\"cname\":\"g\",\"seq\":4,\"content\":\"\"});\n"
    );
    assert_eq!(poll.chunk_str(), "", "the last chunk");
    assert!(poll.read_to_eof().is_empty());

    // Streams end with their last chunk (chunked) or by closing (HTTP/1.0).
    let rest = String::from_utf8(sse.read_to_eof()).expect("utf8");
    assert!(rest.ends_with("0\r\n\r\n"), "{rest:?}");
    assert!(head10.starts_with("HTTP/1.0 200 OK"), "{head10}");
    assert!(header(&head10, "transfer-encoding").is_none());
    stream10.read_to_eof();
    // The idle admin connection is closed too.
    assert!(admin_idle.read_to_eof().is_empty());

    let status = bin.wait_exit(Duration::from_secs(15)).expect("exits");
    assert_eq!(status.code(), Some(0));
    assert!(std::net::TcpStream::connect(bin.front()).is_err(), "front closed");
    assert_eq!(bin.log_lines("SIGTERM: shutting down").len(), 1);
}

/// Starts a server whose one SSE subscriber never reads, with much queued
/// for it, so that a graceful shutdown cannot finish on its own.
fn stuck_server(grace: u32) -> (Binary, Client) {
    let front = "front:\n  listen: 127.0.0.1:0\n  socket_send_buffer_bytes: 4096\n  max_queued_bytes: 8388608\n";
    let yaml = BASE.replace("front:\n  listen: 127.0.0.1:0\n", front) + &format!("shutdown_grace_secs: {grace}\n");
    let bin = Binary::start(&yaml);
    let mut stuck = Client::connect(bin.front());
    stuck.get("/sse?cname=stuck");
    stuck.head();
    wait_subscribers(&bin, 1);
    let content = "x".repeat(200_000);
    for _ in 0..10 {
        let mut c = Client::connect(bin.admin());
        let body = format!("cname=stuck&content={content}");
        c.send(
            format!(
                "POST /push HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        );
        assert!(c.response().0.starts_with("HTTP/1.1 200 OK"));
    }
    (bin, stuck)
}

#[test]
fn grace_period_bounds_a_stuck_shutdown() {
    let (mut bin, stuck) = stuck_server(1);
    bin.signal(libc::SIGINT);
    let status = bin
        .wait_exit(Duration::from_secs(15))
        .expect("exits after the grace period");
    assert_eq!(status.code(), Some(0));
    assert_eq!(bin.log_lines("SIGINT: shutting down").len(), 1);
    drop(stuck);
}

#[test]
fn second_signal_exits_at_once() {
    let (mut bin, mut stuck) = stuck_server(120);
    bin.signal(libc::SIGTERM);
    // The unread subscriber holds the shutdown open for its 120 s grace:
    // the drain has begun and the process is still there.
    bin.wait_log("SIGTERM: shutting down");
    assert!(bin.running(), "still draining");
    bin.signal(libc::SIGTERM);
    let status = bin.wait_exit(Duration::from_secs(10)).expect("exits at once");
    // Not 0: the drain did not finish, the second signal ended it.
    assert_eq!(status.code(), Some(128 + libc::SIGTERM));
    assert_eq!(bin.log_lines("second signal: exiting at once").len(), 1);
    let mut sink = Vec::new();
    let _ = stuck.stream.read_to_end(&mut sink);
}

/// Milliseconds since the epoch of a text log line's time stamp
/// (`[2026-11-21T09:05:03.042Z WARN ...`).
fn log_time_ms(line: &str) -> u64 {
    let stamp = line
        .strip_prefix('[')
        .and_then(|l| l.split(' ').next())
        .unwrap_or_else(|| panic!("no time stamp in {line:?}"));
    let n = |r: std::ops::Range<usize>| -> u64 {
        stamp
            .get(r)
            .and_then(|d| d.parse().ok())
            .unwrap_or_else(|| panic!("not RFC 3339 with milliseconds: {stamp:?}"))
    };
    assert_eq!(stamp.len(), 24, "not RFC 3339 with milliseconds: {stamp:?}");
    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
    // Days since 1970-01-01 of a proleptic Gregorian date (year from March).
    let (y, m) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let (era, yoe) = (y / 400, y % 400);
    let doy = (153 * m + 2) / 5 + d - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    ((days * 24 + n(11..13)) * 60 + n(14..16)) * 60_000 + n(17..19) * 1000 + n(20..23)
}

#[test]
fn log_time_stamps_are_read_to_the_millisecond() {
    assert_eq!(log_time_ms("[1970-01-01T00:00:00.000Z INFO x] y"), 0);
    assert_eq!(
        log_time_ms("[2026-11-21T09:05:03.042Z WARN  comet] z"),
        1_795_251_903_042
    );
    assert_eq!(log_time_ms("[2024-03-01T00:00:00.001Z x"), 1_709_251_200_001);
}

#[test]
fn descriptor_exhaustion_backs_off_and_recovers() {
    // One worker sharing a 64-descriptor table: it runs out of descriptors
    // long before its connection capacity.
    let yaml = BASE.replace("workers: 2", "workers: 1").replace(
        "front:\n  listen: 127.0.0.1:0\n",
        "front:\n  listen: 127.0.0.1:0\n  max_connections: 1000\n  descriptor_tables: never\n",
    );
    // The per-worker lines are at debug level (`incidents` reports the
    // burst for every worker at once at warn).
    let mut bin = Binary::launch(&yaml)
        .nofile(64)
        .env("RUST_LOG", Some("info,comet::worker=debug"))
        .start();
    let mut clients: Vec<Client> = (0..80)
        .map(|_| {
            let mut c = Client::connect(bin.front());
            c.get("/sse?cname=fd");
            c
        })
        .collect();
    let paused = bin.wait_log("pausing accepts");
    // Hold the descriptors for a while: the retries during this interval
    // are counted below, against the server's own clock.
    std::thread::sleep(Duration::from_secs(2));

    // Half leave: the queued connections are accepted and served.
    let mut served: Vec<Client> = clients.split_off(40);
    drop(clients);
    for c in &mut served {
        let head = c.head();
        assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    }
    // While out of descriptors the worker retried once a tick, no faster:
    // every failed accept of the burst, the first included, fits in one
    // per second the burst lasted, plus the tick it started in and the one
    // it ended in.
    let again = bin.wait_log("accepting again after");
    let failures: u64 = again
        .split("accepting again after ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {again:?}"));
    let lasted_ms = log_time_ms(&again) - log_time_ms(&paused);
    assert!(
        (1..=lasted_ms / 1000 + 2).contains(&failures),
        "{failures} failed accepts in a burst of {lasted_ms} ms: {paused:?} .. {again:?}"
    );
    assert_eq!(bin.log_lines("pausing accepts").len(), 1, "logged once per burst");
    wait_subscribers(&bin, 40);
    // Signal handling was set up before the clients could take every descriptor.
    bin.signal(libc::SIGTERM);
    assert_eq!(bin.wait_exit(Duration::from_secs(15)).expect("exits").code(), Some(0));
    drop(served);
}

/// Several admin threads accept on one socket; the first to stop shuts the
/// socket down, and the others must take their failing accept for the end it
/// is, not log an accept error. The race is per run, so the test repeats.
#[test]
fn shutdown_with_several_admin_threads_logs_no_error() {
    let yaml = BASE.replace("  allow: []\n", "  allow: []\n  threads: 4\n");
    for run in 0..12 {
        let mut bin = Binary::start(&yaml);
        assert_eq!(get(bin.admin(), "/info").0, "HTTP/1.1 200 OK");
        bin.signal(libc::SIGTERM);
        let status = bin.wait_exit(Duration::from_secs(10)).expect("exits");
        assert!(status.success(), "run {run}: {status:?}");
        bin.wait_log("] stopped");
        let bad: Vec<String> = [" ERROR ", " WARN "].iter().flat_map(|p| bin.log_lines(p)).collect();
        assert!(bad.is_empty(), "run {run}: {bad:?}");
    }
}

/// Issue 17 bug 3: a worker thread that dies is never silent. The server
/// counts it (`/metrics`), stops the other workers, and its run ends with
/// an error (the binary then exits 1, so a supervisor restarts it) instead
/// of serving on with connections that nobody reads.
#[test]
fn a_dead_worker_stops_the_server_with_an_error() {
    let s = crate::support::start(crate::support::config());
    let shared = s.shared().clone();
    let mut subscriber = Client::connect(s.front_addr());
    subscriber.get("/stream?cname=c");
    subscriber.head();
    s.inject_worker_panic(0);
    s.inject_worker_panic(1);
    let run = std::thread::spawn(move || s.run_until(std::future::pending()));
    let deadline = std::time::Instant::now() + crate::support::WAIT;
    while !run.is_finished() {
        assert!(
            std::time::Instant::now() < deadline,
            "the server kept running with dead workers"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let result = run.join().expect("run_until does not panic");
    assert!(
        matches!(result, Err(comet::server::ServerError::WorkerDied(n)) if n >= 1),
        "{result:?}"
    );
    assert_eq!(shared.stats.workers_dead.load(std::sync::atomic::Ordering::Relaxed), 2);
    let metrics = comet::metrics::Snapshot::take(&shared).to_prometheus();
    assert!(metrics.contains("\ncomet_workers_dead 2\n"), "{metrics}");
}
