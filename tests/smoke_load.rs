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
    let out = Command::new(env!("CARGO_BIN_EXE_comet-load"))
        .args(["--front", front.trim(), "--admin", admin.trim()])
        .args([
            "--connections",
            &SUBSCRIBERS.to_string(),
            "--rate",
            "10000",
            // The pacing tools/c1000k uses, at its tightest: each thread
            // opens its next connection only once the last one subscribed,
            // and everyone must still connect.
            "--max-pending",
            "1",
            "--channels",
            "100",
        ])
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
        .stderr(Stdio::inherit())
        .output()
        .expect("run comet-load");
    drop(server);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with("{\"comet_load\":"))
        .expect("JSON summary line");
    let n = SUBSCRIBERS as i64;
    assert_eq!(json_number(line, "established"), n, "{line}");
    assert_eq!(json_number(line, "ready"), n, "{line}");
    assert_eq!(json_number(line, "connect_errors"), 0, "{line}");
    assert_eq!(json_number(line, "error_total"), 0, "{line}");
    assert_eq!(json_number(line, "deliveries"), n, "{line}");
    assert_eq!(json_number(line, "missing"), 0, "{line}");
    assert_eq!(json_number(line, "duplicates"), 0, "{line}");
    assert!(out.status.success(), "comet-load failed: {line}");
    let _ = std::fs::remove_dir_all(&dir);
}
