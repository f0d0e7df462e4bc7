//! CI smoke runs of the C1000K path at a scale CI can afford, with comet-load
//! against the real server binary: the seeds' workload (a channel per
//! subscriber, 40,000 of each, more than one descriptor table on both sides:
//! the limit here is 20,000 per table), an open-loop connect burst that
//! overflows the server's listen queue, and the bare C floor that
//! tools/c1000k compares comet with. Every assertion is a count from
//! comet-load's JSON line or the kernel's counters, never a time. The runs
//! take turns (one lock), so that none starves another of the two cores.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::support::binary::Binary;
use crate::support::files::TempDir;
use crate::support::json;

const SUBSCRIBERS: u64 = 40_000;

/// One load run at a time.
static LOAD: Mutex<()> = Mutex::new(());

/// Waits for this test's turn among the load runs (also `smoke_ws`'s).
pub(crate) fn take_turn() -> MutexGuard<'static, ()> {
    LOAD.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A child that is not comet (the C floor server); killed when dropped.
struct Kill(std::process::Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts comet on loopback port 0 with `front_extra` (indented YAML lines)
/// added to its front section.
fn start_comet(front_extra: &str) -> Binary {
    Binary::start(&format!(
        "log_level: info\nfront:\n  listen: 127.0.0.1:0\n  max_connections: 45000\n{front_extra}\
         admin:\n  listen: 127.0.0.1:0\n"
    ))
}

/// The seeds' workload (icomet's own benchmark): every subscriber on its own
/// channel, and a /broadcast reaches all 40,000 channels, twice.
#[test]
fn forty_thousand_subscribers_on_their_own_channels_get_two_broadcasts() {
    let _turn = take_turn();
    let server = start_comet("");
    let channels = SUBSCRIBERS.to_string();
    let summary = run_load(
        &server.front().to_string(),
        &server.admin().to_string(),
        SUBSCRIBERS,
        &[
            "--channels",
            &channels,
            "--messages",
            "2",
            "--interval-ms",
            "0",
            // The pacing tools/c1000k uses, at its tightest: each thread
            // opens its next connection only once the last one subscribed,
            // and everyone must still connect.
            "--max-pending",
            "1",
        ],
    );
    server.stop();
    assert_everyone_got_it(&summary, SUBSCRIBERS, 2);
    assert_eq!(summary["channels"], SUBSCRIBERS, "{summary}");
    // comet's /stats has rss_bytes: all three samples were taken (each after
    // its message reached every subscriber, or it would be null).
    for key in ["server_rss_ready", "server_rss_after_first", "server_rss_after_last"] {
        assert!(summary[key].as_u64().is_some_and(|b| b > 0), "{key}: {summary}");
    }
    assert!(summary["server_rss_note"].is_null(), "{summary}");
}

/// `TcpExt ListenOverflows` from /proc/net/netstat: handshakes the kernel
/// dropped because a listen queue was full, on the whole machine.
fn listen_overflows() -> u64 {
    let text = std::fs::read_to_string("/proc/net/netstat").expect("read /proc/net/netstat");
    let mut rows = text.lines().filter(|l| l.starts_with("TcpExt:"));
    let (names, values) = (rows.next().expect("TcpExt names"), rows.next().expect("TcpExt values"));
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(name, _)| *name == "ListenOverflows")
        .and_then(|(_, v)| v.parse().ok())
        .expect("ListenOverflows")
}

/// Sends SIGCONT to a stopped server when dropped, so that a failing
/// assertion never leaves it stopped.
struct Resume<'a>(&'a Binary);

impl Drop for Resume<'_> {
    fn drop(&mut self) {
        self.0.signal(libc::SIGCONT);
    }
}

/// Connections offered at far more than the server accepts, with no pending
/// cap (comet-load --max-pending 0), from several source addresses, into a
/// listen queue of 128 (`front.listen_backlog`, below the kernel's default
/// cap of 4096, `net.core.somaxconn`): the burst must overflow it. So that
/// it does on a machine of any speed, the server is stopped (SIGSTOP) while
/// the burst starts, until the kernel has counted a thousand handshakes
/// dropped for a full listen queue (TcpExt ListenOverflows, host-wide), and
/// then resumed into the rest of the burst and the clients' retries. Every
/// connection must still be subscribed and get the message, and none may
/// be reset, closed or timed out.
#[test]
fn an_open_loop_burst_past_the_listen_queue_loses_nobody() {
    const BURST: u64 = 20_000;
    const DROPPED: u64 = 1_000;
    let _turn = take_turn();
    let server = start_comet("  listen_backlog: 128\n");
    let before = listen_overflows();
    server.signal(libc::SIGSTOP);
    let resume = Resume(&server);
    let load = spawn_load(
        &server.front().to_string(),
        &server.admin().to_string(),
        BURST,
        &[
            "--rate",
            "1000000",
            "--max-pending",
            "0",
            "--threads",
            "4",
            "--source-ips",
            "4",
            "--channels",
            "20000",
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while listen_overflows() - before < DROPPED && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let while_stopped = listen_overflows() - before;
    drop(resume);
    let summary = finish_load(load);
    let overflows = listen_overflows() - before;
    for warning in server.stop().iter().filter(|l| l.contains("WARN")) {
        eprintln!("server: {warning}");
    }
    eprintln!("burst of {BURST}: ListenOverflows +{while_stopped} while stopped, +{overflows} in all");
    assert!(
        while_stopped >= DROPPED,
        "the burst did not overflow the listen queue ({while_stopped} dropped in 60 s), \
         so the overflow path went untested: {summary}"
    );
    assert_everyone_got_it(&summary, BURST, 1);
    assert_eq!(summary["source_ips"], 4, "{summary}");
}

/// Runs comet-load against `front`/`admin`: `n` SSE subscribers over 100
/// channels, one broadcast, unless `extra` (given last, so it wins) says
/// otherwise. Returns its JSON summary; panics if there is none.
fn run_load(front: &str, admin: &str, n: u64, extra: &[&str]) -> serde_json::Value {
    finish_load(spawn_load(front, admin, n, extra))
}

/// Starts the comet-load run [`run_load`] describes.
fn spawn_load(front: &str, admin: &str, n: u64, extra: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_comet-load"))
        .args(["--front", front, "--admin", admin])
        .args(["--connections", &n.to_string(), "--rate", "10000", "--channels", "100"])
        .args([
            "--transport",
            "sse",
            "--mode",
            "broadcast",
            "--messages",
            "1",
            "--duration-secs",
            "240",
            "--json",
        ])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run comet-load")
}

/// Waits for a comet-load run to end (its own --duration-secs bounds it);
/// returns its JSON summary and panics if there is none or the run failed.
pub(crate) fn finish_load(load: std::process::Child) -> serde_json::Value {
    let out = load.wait_with_output().expect("wait for comet-load");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON summary line in {stdout:?}"));
    let summary = json(line);
    assert_eq!(summary["comet_load"], 1, "{line}");
    assert!(out.status.success(), "comet-load failed: {line}");
    summary
}

/// Every subscriber connected, and got each of `messages` exactly once;
/// nothing failed (no connection reset, closed or timed out).
fn assert_everyone_got_it(summary: &serde_json::Value, n: u64, messages: u64) {
    let count = |key: &str| {
        summary[key]
            .as_u64()
            .unwrap_or_else(|| panic!("{key} is not a count in {summary}"))
    };
    assert_eq!(count("established"), n, "{summary}");
    assert_eq!(count("ready"), n, "{summary}");
    assert_eq!(count("connect_errors"), 0, "{summary}");
    assert_eq!(count("error_total"), 0, "{summary}");
    assert_eq!(count("deliveries"), n * messages, "{summary}");
    assert_eq!(count("missing"), 0, "{summary}");
    assert_eq!(count("duplicates"), 0, "{summary}");
}

/// tools/bench/sse_floor.c, the bare server c1000k's figures are compared
/// with, must pass comet-load's checks exactly as comet does; otherwise the
/// comparison measures a server that does less than the protocol asks.
#[test]
fn the_c1000k_floor_passes_the_same_checks() {
    let _turn = take_turn();
    let dir = TempDir::new("floor");
    let bin = dir.path().join("sse_floor");
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/tools/bench/sse_floor.c");
    let built = Command::new("cc")
        .args(["-O2", "-pthread", "-o"])
        .arg(&bin)
        .arg(src)
        .status()
        .expect("run cc");
    assert!(built.success(), "cc failed on {src}");
    let mut floor = Command::new(&bin)
        .args(["0", "0", "2"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("start sse_floor");
    let mut first = String::new();
    BufReader::new(floor.stderr.take().expect("stderr"))
        .read_line(&mut first)
        .expect("sse_floor names its ports");
    let floor = Kill(floor);
    let rest = first.strip_prefix("sse_floor: front ").expect(&first);
    let (front, rest) = rest.split_once(", admin ").expect(&first);
    let admin = rest.split(',').next().expect(&first);
    // Reader threads sleep between partial batches (comet-load --help):
    // every delivery must still arrive.
    let summary = run_load(front, admin, 3_000, &["--nap-us", "2000"]);
    assert_everyone_got_it(&summary, 3_000, 1);
    // The floor's /stats has no rss_bytes: the samples are null, the note
    // says why, and the run is still a success.
    for key in ["server_rss_ready", "server_rss_after_first", "server_rss_after_last"] {
        assert!(summary[key].is_null(), "{key}: {summary}");
    }
    assert_eq!(summary["server_rss_note"], "/stats has no rss_bytes field", "{summary}");
    // Pipelined /push (comet-load sends a window of them at once) to more
    // channels than the floor's frame table has slots: one message in
    // flight at a time, and no subscriber framed with another's channel.
    let summary = run_load(
        front,
        admin,
        6_000,
        &[
            "--mode",
            "push",
            "--channels",
            "5000",
            "--messages",
            "2",
            "--interval-ms",
            "0",
        ],
    );
    drop(floor);
    assert_everyone_got_it(&summary, 6_000, 2);
}
