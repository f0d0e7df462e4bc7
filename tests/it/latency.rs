//! The latency histograms move when messages are delivered and admin
//! requests are answered: `comet_delivery_latency_seconds` per transport,
//! `comet_admin_request_duration_seconds` per endpoint, and the p50/p99
//! that `/stats` estimates from them.

use comet::server::Server;
use serde_json::json;

use crate::support::ws::Ws;
use crate::support::{admin, config, eventually, json, start, subscribers, Client};

/// The value of one sample in Prometheus text (a float: sums are seconds).
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{series} missing in\n{text}"))
}

fn metrics(server: &Server) -> String {
    let (status, _, body) = admin(server, "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK");
    body
}

/// Delivery counts per transport as `/metrics` has them (poll, stream,
/// sse, iframe, ws).
fn deliveries(server: &Server) -> [f64; 5] {
    let text = metrics(server);
    ["poll", "stream", "sse", "iframe", "ws"].map(|t| {
        let count = sample(
            &text,
            &format!("comet_delivery_latency_seconds_count{{transport=\"{t}\"}}"),
        );
        let inf = sample(
            &text,
            &format!("comet_delivery_latency_seconds_bucket{{transport=\"{t}\",le=\"+Inf\"}}"),
        );
        assert_eq!(count, inf, "{t}: _count is the +Inf bucket");
        count
    })
}

#[test]
fn histograms_move_when_messages_are_delivered() {
    let server = start(config());
    assert_eq!(deliveries(&server), [0.0; 5], "nothing delivered yet");
    let mut sse = Client::connect(server.front_addr());
    sse.get("/sse?cname=lat");
    sse.head();
    let mut stream = Client::connect(server.front_addr());
    stream.get("/stream?cname=lat");
    stream.head();
    let mut poll = Client::connect(server.front_addr());
    poll.get("/sub?cname=lat&seq=1");
    let mut ws = Ws::connect(server.front_addr(), "/ws?cname=lat&seq=1");
    eventually("four subscribers", || subscribers(&server, "lat") == 4);

    assert_eq!(admin(&server, "/push?cname=lat&content=one").0, "HTTP/1.1 200 OK");
    let r = poll.read_response(false);
    assert_eq!(
        r.json(),
        json!({"type": "data", "cname": "lat", "seq": 1, "content": "one"})
    );
    assert!(sse.read_until(b"\"content\":\"one\"").ends_with(b"one\""));
    assert!(stream.read_until(b"\"content\":\"one\"").ends_with(b"one\""));
    assert_eq!(
        json(&ws.text()),
        json!({"type": "data", "cname": "lat", "seq": 1, "content": "one"})
    );
    // The worker adds its counts once the command is done: poll for them.
    eventually("one delivery per transport", || {
        deliveries(&server) == [1.0, 1.0, 1.0, 0.0, 1.0]
    });
    let text = metrics(&server);
    for t in ["poll", "stream", "sse", "ws"] {
        let sum = sample(
            &text,
            &format!("comet_delivery_latency_seconds_sum{{transport=\"{t}\"}}"),
        );
        assert!(sum > 0.0 && sum < 60.0, "{t}: {sum}");
    }

    // A broadcast reaches the two streams and the WebSocket (the long poll
    // has ended).
    assert_eq!(admin(&server, "/broadcast?content=all").0, "HTTP/1.1 200 OK");
    sse.read_until(b"\"content\":\"all\"");
    stream.read_until(b"\"content\":\"all\"");
    assert_eq!(json(&ws.text())["content"], "all");
    eventually("the broadcast counted", || {
        deliveries(&server) == [1.0, 2.0, 2.0, 0.0, 2.0]
    });

    // /stats estimates the quantiles from the same buckets.
    let (_, _, body) = admin(&server, "/stats");
    let stats = json(&body);
    let l = &stats["delivery_latency_ms"];
    assert_eq!(l["all"]["count"], 7, "{l}");
    assert_eq!(l["sse"]["count"], 2, "{l}");
    assert_eq!(l["iframe"], json!({"count": 0, "p50": null, "p99": null}));
    let (p50, p99) = (
        l["all"]["p50"].as_f64().expect("a p50"),
        l["all"]["p99"].as_f64().expect("a p99"),
    );
    assert!(p50 > 0.0 && p50 <= p99 && p99 <= 60_000.0, "{l}");
    let buckets: u64 = l["all"]["buckets"]
        .as_array()
        .expect("buckets")
        .iter()
        .map(|b| b.as_u64().expect("a count"))
        .sum();
    assert_eq!(buckets, 7);
}

#[test]
fn admin_request_durations_are_counted_by_endpoint() {
    let server = start(config());
    for _ in 0..3 {
        assert_eq!(admin(&server, "/push?cname=d&content=x").0, "HTTP/1.1 200 OK");
    }
    assert_eq!(admin(&server, "/info").0, "HTTP/1.1 200 OK");
    assert_eq!(admin(&server, "/nowhere").0, "HTTP/1.1 404 Not Found");
    let text = metrics(&server);
    let count = |e: &str| {
        sample(
            &text,
            &format!("comet_admin_request_duration_seconds_count{{endpoint=\"{e}\"}}"),
        )
    };
    assert_eq!(count("push"), 3.0);
    assert_eq!(count("info"), 1.0);
    assert_eq!(count("other"), 1.0);
    assert!(
        !text.contains("comet_admin_request_duration_seconds_count{endpoint=\"broadcast\"}"),
        "unused endpoints are not listed"
    );
    // This /metrics request itself is counted once it is answered.
    let again = metrics(&server);
    assert_eq!(
        sample(
            &again,
            "comet_admin_request_duration_seconds_count{endpoint=\"metrics\"}"
        ),
        1.0
    );
}
