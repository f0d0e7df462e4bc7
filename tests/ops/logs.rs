//! The real binary's log output: `log_format: json` lines, the admin access
//! log at debug level (without the admin key), and `RUST_LOG` over
//! `log_level`.

use crate::support::{request, Comet};

const KEY: &str = "s3cret-admin-key";

/// A config at `level` and `format` with an admin key.
fn yaml(level: &str, format: &str) -> String {
    format!(
        "log_level: {level}\nlog_format: {format}\nworkers: 1\n\
         front: {{listen: \"127.0.0.1:0\", max_connections: 100}}\n\
         admin: {{listen: \"127.0.0.1:0\", threads: 1, allow: [], deny: [], key: {KEY}}}\n"
    )
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
    let mut comet = Comet::start(&yaml("debug", "json"), None);
    let admin = comet.admin();
    let (status, _) = request(
        admin,
        &format!("GET /info?cname=a&key={KEY} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
    );
    assert_eq!(status, 200);
    let (status, _) = request(
        admin,
        &format!("GET /check?cname=b HTTP/1.1\r\nAuthorization: Bearer {KEY}\r\nConnection: close\r\n\r\n"),
    );
    assert_eq!(status, 200);
    comet.line_with("/check?cname=b");
    let lines = comet.stop();
    assert!(lines.len() >= 4, "{lines:#?}");
    let mut access = Vec::new();
    for line in &lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?}"));
        let o = v.as_object().unwrap_or_else(|| panic!("not an object: {line}"));
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
            access.push(v.clone());
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
    let mut comet = Comet::start(&yaml("debug", "text"), None);
    let admin = comet.admin();
    let head = format!("GET /info?KEY={KEY}&cname=x HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert_eq!(request(admin, &head).0, 200);
    // A wrong key is logged with its status, and masked as well.
    let head = "GET /info?key=wrong-guess HTTP/1.1\r\nConnection: close\r\n\r\n";
    assert_eq!(request(admin, head).0, 401);
    let line = comet.line_with("GET /info?KEY=***&cname=x 200 ");
    assert!(line.contains(" DEBUG comet::admin::access]"), "{line}");
    assert!(line.contains("ms 127.0.0.1:"), "{line}");
    let line = comet.line_with("GET /info?key=*** 401 ");
    assert!(!line.contains("wrong-guess"), "{line}");
    for line in comet.stop() {
        assert!(!line.contains(KEY), "the admin key reached the log: {line}");
        assert!(!line.starts_with('{'), "a text line: {line}");
    }
}

#[test]
fn no_access_lines_at_info() {
    let comet = Comet::start(&yaml("info", "json"), None);
    let admin = comet.admin();
    let head = format!("GET /info HTTP/1.1\r\nAuthorization: Bearer {KEY}\r\nConnection: close\r\n\r\n");
    assert_eq!(request(admin, &head).0, 200);
    let lines = comet.stop();
    assert!(
        lines.iter().any(|l| l.contains("\"message\":\"stopped\"")),
        "{lines:#?}"
    );
    assert!(!lines.iter().any(|l| l.contains("comet::admin::access")), "{lines:#?}");
}

#[test]
fn rust_log_overrides_log_level() {
    // log_level error would hide the startup line; RUST_LOG shows it, and
    // selects the access log alone at debug.
    let mut comet = Comet::start(&yaml("error", "json"), Some("info,comet::admin::access=debug"));
    let admin = comet.admin();
    let head = format!("GET /info HTTP/1.1\r\nAuthorization: Bearer {KEY}\r\nConnection: close\r\n\r\n");
    assert_eq!(request(admin, &head).0, 200);
    let line = comet.line_with("comet::admin::access");
    let v: serde_json::Value = serde_json::from_str(&line).expect("json");
    assert_eq!(v["fields"]["path"], "/info");
    comet.stop();
}
