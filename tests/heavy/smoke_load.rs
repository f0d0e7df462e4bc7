//! CI smoke run of the C1000K path at a scale CI can afford: 40,000 SSE
//! subscribers (more than one descriptor table on both sides: the limit here
//! is 20,000 per table), one broadcast, and every subscriber must get it.
//! Asserts counts from comet-load's JSON line, never times.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::support::binary::Binary;
use crate::support::files::TempDir;
use crate::support::json;

const SUBSCRIBERS: u64 = 40_000;

/// A child that is not comet (the C floor server); killed when dropped.
struct Kill(std::process::Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn forty_thousand_subscribers_all_get_a_broadcast() {
    let server = Binary::start(
        "log_level: info\nfront:\n  listen: 127.0.0.1:0\n  max_connections: 45000\nadmin:\n  listen: 127.0.0.1:0\n",
    );
    let summary = run_load(
        &server.front().to_string(),
        &server.admin().to_string(),
        SUBSCRIBERS,
        &[
            // The pacing tools/c1000k uses, at its tightest: each thread
            // opens its next connection only once the last one subscribed,
            // and everyone must still connect.
            "--max-pending",
            "1",
        ],
    );
    server.stop();
    assert_everyone_got_it(&summary, SUBSCRIBERS, 1);
}

/// Runs comet-load against `front`/`admin`: `n` SSE subscribers over 100
/// channels, one broadcast, unless `extra` (given last, so it wins) says
/// otherwise. Returns its JSON summary; panics if there is none.
fn run_load(front: &str, admin: &str, n: u64, extra: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_comet-load"))
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
        .stderr(Stdio::inherit())
        .output()
        .expect("run comet-load");
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

/// Every subscriber connected, and got each of `messages` exactly once.
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
