//! Operating the server: `/stats` and `/metrics`, connection limits, and the
//! admin key.

mod common;

use common::{admin, config, eventually, header, start, subscribers, Client};

/// The number after `"key":` in a flat JSON text.
fn json_u64(json: &str, key: &str) -> u64 {
    let pat = format!("\"{key}\":");
    let at = json.find(&pat).unwrap_or_else(|| panic!("{key} missing in {json}")) + pat.len();
    let digits: String = json[at..].chars().take_while(char::is_ascii_digit).collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("{key} is not a number in {json}"))
}

/// The value of an unlabelled or labelled sample in Prometheus text.
fn sample(text: &str, series: &str) -> u64 {
    let line = text
        .lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .unwrap_or_else(|| panic!("{series} missing in\n{text}"));
    line[series.len() + 1..].parse().expect("number")
}

#[test]
fn stats_and_metrics_count_connections_by_transport() {
    let server = start(config());
    let mut sse = Client::connect(server.front_addr());
    sse.get("/sse?cname=m1");
    sse.head();
    let mut poll = Client::connect(server.front_addr());
    poll.get("/sub?cname=m2&seq=1");
    let _idle = Client::connect(server.front_addr());
    eventually("two subscribers", || {
        subscribers(&server, "m1") == 1 && subscribers(&server, "m2") == 1
    });
    eventually("three connections", || {
        json_u64(&admin(&server, "/stats").2, "connections") == 3
    });

    let (status, head, body) = admin(&server, "/stats");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(header(&head, "content-type"), Some("application/json"));
    assert!(
        body.contains(r#""connections_by_transport":{"poll":1,"stream":0,"sse":1,"iframe":0}"#),
        "{body}"
    );
    assert_eq!(json_u64(&body, "channels"), 2);
    assert_eq!(json_u64(&body, "subscribers"), 2);
    assert!(json_u64(&body, "rss_bytes") > 1 << 20, "{body}");
    let published = json_u64(&body, "published");

    assert_eq!(admin(&server, "/push?cname=m2&content=hi").0, "HTTP/1.1 200 OK");
    poll.head();
    let (_, _, body) = admin(&server, "/stats");
    assert_eq!(json_u64(&body, "published"), published + 1);
    assert!(json_u64(&body, "delivered") >= 1);

    let (status, head, text) = admin(&server, "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(
        header(&head, "content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    // The answered long poll keeps its connection, now without a subscription.
    assert_eq!(sample(&text, r#"comet_connections{transport="sse"}"#), 1);
    assert_eq!(sample(&text, r#"comet_connections{transport="poll"}"#), 0);
    assert_eq!(sample(&text, r#"comet_connections{transport="none"}"#), 2);
    assert_eq!(sample(&text, "comet_channels"), 2);
    assert_eq!(sample(&text, "comet_messages_published_total"), published + 1);
    assert!(sample(&text, "process_resident_memory_bytes") > 1 << 20);

    drop(sse);
    eventually("sse subscriber gone", || {
        let text = admin(&server, "/metrics").2;
        sample(&text, r#"comet_connections{transport="sse"}"#) == 0
    });
    assert_eq!(admin(&server, "/stats").0, "HTTP/1.1 200 OK");
    let mut c = Client::connect(server.admin_addr());
    c.send(b"POST /metrics HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    assert_eq!(c.head().lines().next(), Some("HTTP/1.1 405 Invalid Method"));
}
