//! Nothing fails silently (issue 18): each way the server refuses or closes
//! a client is provoked against the real binary, then found in `/metrics`
//! and in the `warn` lines `comet::incidents` writes, one per burst with
//! counts by reason. Counts are summed over every such line, so where the
//! bursts begin and end does not matter.

use std::io::Write;
use std::net::TcpStream;

use crate::support::binary::Binary;
use crate::support::ws::{masked, upgrade_head, Ws};
use crate::support::{connect_from, eventually, get, Client};

const YAML: &str = "log_level: info\nworkers: 1\n\
    front:\n  listen: 127.0.0.1:0\n  header_timeout_secs: 1\n  \
    ws_max_frames_per_sec: 10\n  allowed_origins: [\"https://good.example\"]\n\
    admin:\n  listen: 127.0.0.1:0\n  allow: []\n  deny: []\n";

/// The count before `phrase` summed over every burst line of the log.
fn logged(bin: &Binary, phrase: &str) -> u64 {
    bin.log_lines("front: connection trouble")
        .iter()
        .filter(|l| l.contains(" WARN "))
        .filter_map(|l| {
            let at = l.find(phrase)?;
            l[..at].trim_end().rsplit([' ', ':']).next()?.parse::<u64>().ok()
        })
        .sum()
}

/// One sample of `/metrics`.
fn metric(bin: &Binary, name: &str) -> u64 {
    crate::support::sample(&get(bin.admin(), "/metrics").2, name)
}

#[test]
fn every_refusal_and_close_is_counted_and_logged_once_per_burst() {
    let bin = Binary::start(YAML);
    let front = bin.front();

    // Two silent connections: closed when their head does not come.
    let silent: Vec<TcpStream> = (0..2)
        .map(|i| TcpStream::connect_timeout(&front, crate::support::WAIT).unwrap_or_else(|e| panic!("silent {i}: {e}")))
        .collect();
    // Three malformed requests, each answered 400 (or 431) and closed.
    for bad in ["GARBAGE\r\n\r\n", "GET /sub?cname=%01 HTTP/1.1\r\n\r\n"] {
        let mut c = Client::connect(front);
        c.send(bad.as_bytes());
        assert!(
            String::from_utf8_lossy(&c.read_to_eof()).starts_with("HTTP/1.1 400 "),
            "{bad:?}"
        );
    }
    let mut big = Client::connect(front);
    big.send(format!("GET /sub?cname={} HTTP/1.1\r\n\r\n", "x".repeat(20_000)).as_bytes());
    assert!(String::from_utf8_lossy(&big.read_to_eof()).starts_with("HTTP/1.1 431 "));
    // One WebSocket upgrade refused (its origin), one protocol error (an
    // unmasked frame), one flood.
    let mut origin = Ws::raw(front);
    origin.send_raw(upgrade_head("/ws?cname=w", "Origin: https://evil.example\r\n").as_bytes());
    assert!(String::from_utf8_lossy(&origin.read_exact(12)).starts_with("HTTP/1.1 403"));
    let mut unmasked = Ws::connect(front, "/ws?cname=w&seq=1");
    unmasked.send_raw(b"\x81\x02hi");
    unmasked.expect_close(1002);
    let mut flood = Ws::connect(front, "/ws?cname=w&seq=1");
    let burst: Vec<u8> = (0..100).flat_map(|_| masked(0x89, b"")).collect();
    flood.send_raw(&burst);
    loop {
        let f = flood.frame();
        if f.opcode == 8 {
            assert_eq!(f.close_code(), Some(1008));
            break;
        }
    }
    let mut silent = silent;
    for s in &mut silent {
        // Closed by the server: the write after the close fails or reads EOF.
        s.set_read_timeout(Some(crate::support::WAIT)).expect("timeout");
        let mut buf = [0u8; 64];
        let n = std::io::Read::read(s, &mut buf).unwrap_or(0);
        assert_eq!(n, 0, "a silent connection gets nothing and is closed");
        let _ = s.write_all(b"late");
    }

    let expected = [
        (
            r#"comet_connections_closed_total{reason="head_timeout"}"#,
            "closed (no request head",
            2,
        ),
        (
            r#"comet_connections_closed_total{reason="bad_request"}"#,
            "bad requests answered",
            3,
        ),
        (
            r#"comet_connections_closed_total{reason="ws_upgrade_refused"}"#,
            "WebSocket upgrades refused",
            1,
        ),
        (
            r#"comet_connections_closed_total{reason="ws_protocol_error"}"#,
            "WebSocket protocol errors",
            1,
        ),
        (
            r#"comet_connections_closed_total{reason="ws_flood"}"#,
            "WebSocket clients closed for flooding",
            1,
        ),
    ];
    for (name, _, n) in expected {
        assert_eq!(metric(&bin, name), n, "{name}");
    }
    let deadline = std::time::Instant::now() + crate::support::WAIT;
    while !expected.iter().all(|(_, phrase, n)| logged(&bin, phrase) == *n) {
        assert!(
            std::time::Instant::now() < deadline,
            "the burst lines do not add up to {expected:?}: {:#?}",
            bin.log_lines("front: connection trouble")
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // One line per burst, not per event: ten events, far fewer lines.
    let lines = bin.log_lines("front: connection trouble");
    assert!(lines.len() <= 4, "{lines:#?}");
    drop((unmasked, flood));
}

#[test]
fn refusals_at_accept_are_counted_and_logged() {
    let yaml = YAML.replace("header_timeout_secs: 1", "max_connections_per_ip: 1");
    let bin = Binary::start(&yaml);
    let from = std::net::Ipv4Addr::new(127, 0, 0, 21);
    let mut first = connect_from(from, bin.front());
    first.get("/sse?cname=ip");
    assert!(first.head().starts_with("HTTP/1.1 200 OK"));
    for _ in 0..3 {
        let mut again = connect_from(from, bin.front());
        again.get("/sse?cname=ip");
        assert!(again.head().starts_with("HTTP/1.1 503 "));
    }
    assert_eq!(metric(&bin, r#"comet_connections_refused_total{reason="per_ip"}"#), 3);
    eventually("the refusals logged", || {
        logged(&bin, "refused (max_connections_per_ip)") == 3
    });
    drop(first);
}

#[test]
fn descriptor_exhaustion_is_reported_as_failed_accepts() {
    // One worker sharing a 64-descriptor table runs out long before its
    // connection capacity.
    let yaml = "log_level: info\nworkers: 1\nfront:\n  listen: 127.0.0.1:0\n  max_connections: 1000\n  \
                descriptor_tables: never\nadmin:\n  listen: 127.0.0.1:0\n  allow: []\n  deny: []\n";
    let bin = Binary::launch(yaml)
        .nofile(64)
        .env("RUST_LOG", Some("info,comet::worker=debug"))
        .start();
    let clients: Vec<Client> = (0..80)
        .map(|_| {
            let mut c = Client::connect(bin.front());
            c.get("/sse?cname=fd");
            c
        })
        .collect();
    // The admin listener needs descriptors too: nothing is asked of it
    // until the clients are gone.
    bin.wait_log("pausing accepts");
    drop(clients);
    let line = bin.wait_log("failed accepts (descriptors or memory exhausted)");
    assert!(line.contains(" WARN "), "{line}");
    eventually("the burst's count equals the metric", || {
        logged(&bin, "failed accepts") == metric(&bin, "comet_accept_errors_total")
    });
}
