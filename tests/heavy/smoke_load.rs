//! CI smoke run of the C1000K path at a scale CI can afford: 40,000 SSE
//! subscribers (more than one descriptor table on both sides: the limit here
//! is 20,000 per table), one broadcast, and every subscriber must get it.
//! Asserts counts from comet-load's JSON line, never times.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const SUBSCRIBERS: usize = 40_000;

struct Kill(std::process::Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn json_number(line: &str, key: &str) -> i64 {
    let pat = format!("\"{key}\":");
    let rest = &line[line.find(&pat).unwrap_or_else(|| panic!("{key} missing in {line}")) + pat.len()..];
    rest.split([',', '}'])
        .next()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{key} not a number"))
}

#[test]
fn forty_thousand_subscribers_all_get_a_broadcast() {
    let dir = std::env::temp_dir().join(format!("comet-smoke-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let cfg = dir.join("comet.yaml");
    std::fs::write(
        &cfg,
        "log_level: info\nfront:\n  listen: 127.0.0.1:0\n  max_connections: 45000\nadmin:\n  listen: 127.0.0.1:0\n",
    )
    .expect("config");
    let mut server = Command::new(env!("CARGO_BIN_EXE_comet"))
        .arg("-c")
        .arg(&cfg)
        .stderr(Stdio::piped())
        .spawn()
        .expect("start comet");
    let stderr = server.stderr.take().expect("stderr");
    let server = Kill(server);
    // The server logs its bound addresses; everything else it logs is echoed.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("server: {line}");
            if let Some(rest) = line.split("listening: front ").nth(1) {
                let _ = tx.send(rest.to_string());
            }
        }
    });
    let addrs = rx.recv_timeout(Duration::from_secs(30)).expect("server listening");
    let (front, admin) = addrs.split_once(", admin ").expect("both addresses");
    let line = run_load(
        front.trim(),
        admin.trim(),
        SUBSCRIBERS,
        &[
            // The pacing tools/c1000k uses, at its tightest: each thread
            // opens its next connection only once the last one subscribed,
            // and everyone must still connect.
            "--max-pending",
            "1",
        ],
    );
    drop(server);
    assert_everyone_got_it(&line, SUBSCRIBERS, 1);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs comet-load against `front`/`admin`: `n` SSE subscribers over 100
/// channels, one broadcast, unless `extra` (given last, so it wins) says
/// otherwise. Returns its JSON line; panics if there is none.
fn run_load(front: &str, admin: &str, n: usize, extra: &[&str]) -> String {
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
        .find(|l| l.starts_with("{\"comet_load\":"))
        .expect("JSON summary line")
        .to_string();
    assert!(out.status.success(), "comet-load failed: {line}");
    line
}

/// Every subscriber connected, and got each of `messages` exactly once.
fn assert_everyone_got_it(line: &str, subscribers: usize, messages: i64) {
    let n = subscribers as i64;
    assert_eq!(json_number(line, "established"), n, "{line}");
    assert_eq!(json_number(line, "ready"), n, "{line}");
    assert_eq!(json_number(line, "connect_errors"), 0, "{line}");
    assert_eq!(json_number(line, "error_total"), 0, "{line}");
    assert_eq!(json_number(line, "deliveries"), n * messages, "{line}");
    assert_eq!(json_number(line, "missing"), 0, "{line}");
    assert_eq!(json_number(line, "duplicates"), 0, "{line}");
}

/// tools/bench/sse_floor.c, the bare server c1000k's figures are compared
/// with, must pass comet-load's checks exactly as comet does; otherwise the
/// comparison measures a server that does less than the protocol asks.
#[test]
fn the_c1000k_floor_passes_the_same_checks() {
    let dir = std::env::temp_dir().join(format!("comet-floor-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let bin = dir.join("sse_floor");
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
    let line = run_load(front, admin, 3_000, &["--nap-us", "2000"]);
    assert_everyone_got_it(&line, 3_000, 1);
    // Pipelined /push (comet-load sends a window of them at once) to more
    // channels than the floor's frame table has slots: one message in
    // flight at a time, and no subscriber framed with another's channel.
    let line = run_load(
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
    assert_everyone_got_it(&line, 6_000, 2);
    let _ = std::fs::remove_dir_all(&dir);
}
