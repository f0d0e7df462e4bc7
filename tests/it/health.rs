//! `/health` and `/ready` on the admin listener: through start, a worker's
//! death, a graceful shutdown held open by a subscriber, and the rules for
//! `admin.key`, `admin.open_health` and the IP filter.

use std::io::Read;
use std::time::Duration;

use comet::config::Config;

use crate::support::binary::Binary;
use crate::support::{config, connect_from, eventually, start, Client, Resp};

/// One GET of `target` from `from` with extra header lines, read whole.
fn probe_from(from: [u8; 4], admin: std::net::SocketAddr, target: &str, headers: &str) -> Resp {
    let mut c = connect_from(from.into(), admin);
    c.request(&format!(
        "GET {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n{headers}\r\n"
    ))
}

fn probe(admin: std::net::SocketAddr, target: &str) -> Resp {
    probe_from([127, 0, 0, 1], admin, target, "")
}

const TEXT: &str = "text/plain; charset=utf-8";

#[test]
fn a_started_server_is_alive_and_ready() {
    let server = start(config());
    probe(server.admin_addr(), "/health").assert("HTTP/1.1 200 OK", TEXT, "ok\n");
    probe(server.admin_addr(), "/ready").assert("HTTP/1.1 200 OK", TEXT, "ok\n");
    // HEAD answers the same head without a body; other methods are refused.
    let mut c = Client::connect(server.admin_addr());
    c.send(b"HEAD /ready HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.read_response(true);
    assert_eq!(r.status, "HTTP/1.1 200 OK");
    assert_eq!(r.header("Content-Length"), Some("3"));
    let r = c.request("POST /health HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(r.status, "HTTP/1.1 405 Invalid Method");
}

#[test]
fn a_dead_worker_makes_the_server_unready_but_alive() {
    let server = start(config());
    probe(server.admin_addr(), "/ready").assert("HTTP/1.1 200 OK", TEXT, "ok\n");
    server.inject_worker_panic(1);
    eventually("the worker's death reported", || {
        server.shared().lifecycle.dead_workers() == 1
    });
    probe(server.admin_addr(), "/ready").assert("HTTP/1.1 503 Service Unavailable", TEXT, "1 worker(s) died\n");
    probe(server.admin_addr(), "/health").assert("HTTP/1.1 200 OK", TEXT, "ok\n");
}

/// The test config with `admin.key` set and the IP filter allowing only
/// 127.0.0.1.
fn keyed(open_health: bool) -> Config {
    let mut c = config();
    c.admin.key = "h3alth-k".to_string();
    c.admin.open_health = open_health;
    c.admin.allow = vec!["127.0.0.1".to_string()];
    c.admin.deny = vec!["all".to_string()];
    c
}

#[test]
fn without_open_health_the_probes_need_the_key() {
    let server = start(keyed(false));
    let admin = server.admin_addr();
    for target in ["/health", "/ready"] {
        let r = probe(admin, target);
        assert_eq!(r.status, "HTTP/1.1 401 Unauthorized", "{target}");
        assert_eq!(r.body(), "admin key required\n");
        probe(admin, &format!("{target}?key=h3alth-k")).assert("HTTP/1.1 200 OK", TEXT, "ok\n");
        let r = probe_from([127, 0, 0, 1], admin, target, "Authorization: Bearer h3alth-k\r\n");
        r.assert("HTTP/1.1 200 OK", TEXT, "ok\n");
        let r = probe_from([127, 0, 0, 1], admin, target, "Authorization: Bearer nope\r\n");
        assert_eq!(r.status, "HTTP/1.1 401 Unauthorized", "{target}");
    }
}

#[test]
fn open_health_skips_the_key_but_never_the_ip_filter() {
    let server = start(keyed(true));
    let admin = server.admin_addr();
    for target in ["/health", "/ready"] {
        probe(admin, target).assert("HTTP/1.1 200 OK", TEXT, "ok\n");
        // Even a wrong key does not matter: none is asked for.
        let r = probe_from([127, 0, 0, 1], admin, target, "Authorization: Bearer nope\r\n");
        r.assert("HTTP/1.1 200 OK", TEXT, "ok\n");
        // Another address is refused as for any admin request.
        let r = probe_from([127, 0, 0, 2], admin, target, "");
        assert_eq!(r.status, "HTTP/1.1 403 Forbidden", "{target}");
        assert_eq!(r.body(), "");
    }
    // Every other endpoint still needs the key.
    assert_eq!(probe(admin, "/info").status, "HTTP/1.1 401 Unauthorized");
    assert_eq!(probe(admin, "/stats").status, "HTTP/1.1 401 Unauthorized");
}

/// Through the real binary: ready once it logs that it listens; during a
/// graceful shutdown that a subscriber holds open, `/ready` says draining
/// while `/health` stays 200, until the subscriber goes and the process
/// exits 0.
#[test]
fn a_drain_is_unready_and_alive_until_the_end() {
    let yaml = "log_level: info\nworkers: 2\nshutdown_grace_secs: 120\n\
        front:\n  listen: 127.0.0.1:0\n  socket_send_buffer_bytes: 4096\n  max_queued_bytes: 8388608\n\
        admin:\n  listen: 127.0.0.1:0\n  allow: []\n  deny: []\n";
    let mut bin = Binary::start(yaml);
    probe(bin.admin(), "/health").assert("HTTP/1.1 200 OK", TEXT, "ok\n");
    probe(bin.admin(), "/ready").assert("HTTP/1.1 200 OK", TEXT, "ok\n");

    // A subscriber that never reads, with far more queued for it than its
    // socket takes: the drain cannot finish while it is there.
    let mut stuck = Client::connect(bin.front());
    stuck.get("/sse?cname=held");
    stuck.head();
    eventually("the subscriber", || {
        crate::support::json(&crate::support::get(bin.admin(), "/info?cname=held").2)["subscribers"] == 1
    });
    let content = "x".repeat(200_000);
    for _ in 0..10 {
        let mut c = Client::connect(bin.admin());
        let body = format!("cname=held&content={content}");
        let r = c.request(&format!(
            "POST /push HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ));
        assert_eq!(r.status, "HTTP/1.1 200 OK");
    }

    bin.signal(libc::SIGTERM);
    bin.wait_log("SIGTERM: shutting down");
    eventually("/ready to say draining", || probe(bin.admin(), "/ready").code() == 503);
    let r = probe(bin.admin(), "/ready");
    r.assert("HTTP/1.1 503 Service Unavailable", TEXT, "draining\n");
    for _ in 0..3 {
        probe(bin.admin(), "/health").assert("HTTP/1.1 200 OK", TEXT, "ok\n");
    }
    assert!(bin.running(), "still draining");
    // The front listener is stopped: a new subscriber is not served.
    let refused = std::net::TcpStream::connect(bin.front()).map(|mut s| {
        s.set_read_timeout(Some(crate::support::WAIT)).expect("timeout");
        let _ = std::io::Write::write_all(&mut s, b"GET /sse?cname=late HTTP/1.1\r\n\r\n");
        let mut buf = [0u8; 64];
        s.read(&mut buf).unwrap_or(0)
    });
    assert!(matches!(refused, Err(_) | Ok(0)), "{refused:?}");

    // The subscriber goes: the drain ends and the process exits 0.
    drop(stuck);
    let status = bin
        .wait_exit(Duration::from_secs(15))
        .expect("exits once the subscriber left");
    assert_eq!(status.code(), Some(0));
    assert!(
        std::net::TcpStream::connect(bin.admin()).is_err(),
        "admin closed at the end"
    );
}
