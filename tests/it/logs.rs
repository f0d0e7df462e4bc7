//! The real binary's log output: `log_format: json` lines, the admin access
//! log at debug level (without the admin key), and `RUST_LOG` over
//! `log_level`.

use std::net::SocketAddr;

use crate::support::binary::Binary;
use crate::support::{json, Client};

const KEY: &str = "s3cret-admin-key";

/// A config at `level` and `format` with an admin key.
fn yaml(level: &str, format: &str) -> String {
    format!(
        "log_level: {level}\nlog_format: {format}\nworkers: 1\n\
         front: {{listen: \"127.0.0.1:0\", max_connections: 100}}\n\
         admin: {{listen: \"127.0.0.1:0\", threads: 1, allow: [], deny: [], key: {KEY}}}\n"
    )
}

/// Sends `raw` (a whole request) on a fresh connection; the status code.
fn request(addr: SocketAddr, raw: &str) -> u16 {
    Client::connect(addr).request(raw).code()
}

/// `line` parsed as JSON, which must be an object.
fn object(line: &str) -> serde_json::Map<String, serde_json::Value> {
    match json(line) {
        serde_json::Value::Object(o) => o,
        other => panic!("not an object: {other}"),
    }
}

/// `s` is RFC 3339 in UTC with milliseconds: `2026-11-21T09:05:03.042Z`.
fn is_rfc3339_millis(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    b.len() == 24
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && b[19] == b'.'
        && digits(20..23)
        && b[23] == b'Z'
}

#[test]
fn json_format_prints_only_json_lines_with_every_member() {
    let comet = Binary::start(&yaml("debug", "json"));
    let admin = comet.admin();
    let status = request(
        admin,
        &format!("GET /info?cname=a&key={KEY} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
    );
    assert_eq!(status, 200);
    let status = request(
        admin,
        &format!("GET /check?cname=b HTTP/1.1\r\nAuthorization: Bearer {KEY}\r\nConnection: close\r\n\r\n"),
    );
    assert_eq!(status, 200);
    comet.wait_log("/check?cname=b");
    let lines = comet.stop();
    assert!(lines.len() >= 4, "{lines:#?}");
    let mut access = Vec::new();
    for line in &lines {
        let o = object(line);
        let mut members: Vec<&str> = o.keys().map(String::as_str).collect();
        members.sort_unstable();
        assert_eq!(members, ["fields", "level", "message", "target", "time"], "{line}");
        assert!(
            is_rfc3339_millis(o["time"].as_str().expect("time is a string")),
            "{line}"
        );
        assert!(
            ["error", "warn", "info", "debug", "trace"].contains(&o["level"].as_str().expect("level")),
            "{line}"
        );
        assert!(o["target"].as_str().expect("target").starts_with("comet"), "{line}");
        assert!(o["message"].is_string(), "{line}");
        assert!(o["fields"].is_object(), "{line}");
        assert!(!line.contains(KEY), "the admin key reached the log: {line}");
        if o["target"] == "comet::admin::access" {
            access.push(serde_json::Value::Object(o));
        }
    }
    assert_eq!(access.len(), 2, "one access line per request: {access:#?}");
    let f = &access[0]["fields"];
    assert_eq!(f["method"], "GET");
    assert_eq!(f["path"], "/info?cname=a&key=***");
    assert_eq!(f["status"], 200);
    assert!(f["duration_ms"].as_f64().is_some_and(|d| d >= 0.0), "{f}");
    assert!(f["peer"].as_str().expect("peer").starts_with("127.0.0.1:"), "{f}");
    assert_eq!(access[0]["level"], "debug");
    assert_eq!(access[1]["fields"]["path"], "/check?cname=b");
    let message = access[0]["message"].as_str().expect("message");
    assert!(message.starts_with("GET /info?cname=a&key=*** 200 "), "{message}");
}

#[test]
fn text_format_access_line_at_debug_has_no_key() {
    let comet = Binary::start(&yaml("debug", "text"));
    let admin = comet.admin();
    let head = format!("GET /info?KEY={KEY}&cname=x HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert_eq!(request(admin, &head), 200);
    // A wrong key is logged with its status, and masked as well.
    let head = "GET /info?key=wrong-guess HTTP/1.1\r\nConnection: close\r\n\r\n";
    assert_eq!(request(admin, head), 401);
    let line = comet.wait_log("GET /info?KEY=***&cname=x 200 ");
    assert!(line.contains(" DEBUG comet::admin::access]"), "{line}");
    assert!(line.contains("ms 127.0.0.1:"), "{line}");
    let line = comet.wait_log("GET /info?key=*** 401 ");
    assert!(!line.contains("wrong-guess"), "{line}");
    for line in comet.stop() {
        assert!(!line.contains(KEY), "the admin key reached the log: {line}");
        assert!(!line.starts_with('{'), "a text line: {line}");
    }
}

#[test]
fn no_access_lines_at_info() {
    let comet = Binary::start(&yaml("info", "json"));
    let admin = comet.admin();
    let head = format!("GET /info HTTP/1.1\r\nAuthorization: Bearer {KEY}\r\nConnection: close\r\n\r\n");
    assert_eq!(request(admin, &head), 200);
    let lines: Vec<_> = comet.stop().iter().map(|l| object(l)).collect();
    assert_eq!(
        lines.iter().filter(|o| o["message"] == "stopped").count(),
        1,
        "{lines:#?}"
    );
    assert!(
        lines.iter().all(|o| o["target"] != "comet::admin::access"),
        "{lines:#?}"
    );
}

#[test]
fn rust_log_overrides_log_level() {
    // log_level error would hide the startup line; RUST_LOG shows it, and
    // selects the access log alone at debug.
    let comet = Binary::launch(&yaml("error", "json"))
        .env("RUST_LOG", Some("info,comet::admin::access=debug"))
        .start();
    let admin = comet.admin();
    let head = format!("GET /info HTTP/1.1\r\nAuthorization: Bearer {KEY}\r\nConnection: close\r\n\r\n");
    assert_eq!(request(admin, &head), 200);
    let line = comet.wait_log("comet::admin::access");
    let o = object(&line);
    assert_eq!(o["target"], "comet::admin::access", "{line}");
    assert_eq!(o["fields"]["path"], "/info", "{line}");
    comet.stop();
}
