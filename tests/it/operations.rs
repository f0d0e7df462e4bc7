//! Operating the server: `/stats` and `/metrics`, connection limits, and the
//! admin key.

use comet::server::Server;
use serde_json::json;

use crate::support::{admin, config, connect_from, eventually, header, start, subscribers, Client};

/// The admin `/stats` object.
fn stats(server: &Server) -> serde_json::Value {
    let (status, _, body) = admin(server, "/stats");
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    crate::support::json(&body)
}

/// A count in a JSON object.
fn count(v: &serde_json::Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("{key} is not a count in {v}"))
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
    eventually("three connections", || count(&stats(&server), "connections") == 3);

    let (status, head, body) = admin(&server, "/stats");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(header(&head, "content-type"), Some("application/json"));
    let body = crate::support::json(&body);
    assert_eq!(
        body["connections_by_transport"],
        json!({"poll": 1, "stream": 0, "sse": 1, "iframe": 0, "ws": 0}),
        "{body}"
    );
    assert_eq!(count(&body, "connections"), 3, "{body}");
    assert_eq!(count(&body, "channels"), 2, "{body}");
    assert_eq!(count(&body, "subscribers"), 2, "{body}");
    assert!(count(&body, "rss_bytes") > 1 << 20, "{body}");
    let published = count(&body, "published");

    assert_eq!(admin(&server, "/push?cname=m2&content=hi").0, "HTTP/1.1 200 OK");
    poll.head();
    assert_eq!(count(&stats(&server), "published"), published + 1);
    // A message nobody is watching is published all the same.
    assert_eq!(admin(&server, "/push?cname=unwatched&content=x").0, "HTTP/1.1 200 OK");
    assert_eq!(count(&stats(&server), "published"), published + 2);
    // A broadcast counts once per channel (m1, m2, unwatched).
    assert_eq!(admin(&server, "/broadcast?content=all").0, "HTTP/1.1 200 OK");
    let published = published + 5;
    assert_eq!(count(&stats(&server), "published"), published);
    // The worker counts deliveries after writing them.
    eventually("delivery counted", || count(&stats(&server), "delivered") >= 1);

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
    assert_eq!(sample(&text, "comet_channels"), 3);
    assert_eq!(sample(&text, "comet_messages_published_total"), published);
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

/// Opens an SSE subscriber and reads its head; returns the client.
fn sse(addr: std::net::SocketAddr, cname: &str) -> Client {
    let mut c = Client::connect(addr);
    c.get(&format!("/sse?cname={cname}"));
    let head = c.head();
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    c
}

/// Reads an SSE subscriber's first frames on a new channel: the retry hint,
/// then `next_seq` 1.
fn expect_sse_start(c: &mut Client, cname: &str) {
    assert_eq!(c.chunk_str(), "retry: 3000\n\n");
    expect_sse(c, 0, "next_seq", cname, 1, "");
}

/// Reads one SSE frame (one chunk) and checks every value in it.
fn expect_sse(c: &mut Client, id: u64, ty: &str, cname: &str, seq: u64, content: &str) {
    let frame = c.chunk_str();
    let data = frame
        .strip_prefix(&format!("id: {id}\ndata: "))
        .and_then(|f| f.strip_suffix("\n\n"))
        .unwrap_or_else(|| panic!("not an SSE frame with id {id}: {frame:?}"));
    assert_eq!(
        crate::support::json(data),
        json!({"type": ty, "cname": cname, "seq": seq, "content": content}),
        "{frame:?}"
    );
}

/// Reads a refusal: a 503 with Retry-After and the given reason, then EOF.
fn expect_refusal(c: &mut Client, reason: &str) {
    let (head, body) = c.response();
    assert!(head.starts_with("HTTP/1.1 503 Service Unavailable\r\n"), "{head}");
    assert_eq!(header(&head, "retry-after"), Some("5"));
    assert_eq!(header(&head, "connection"), Some("close"));
    assert!(String::from_utf8_lossy(&body).contains(reason), "{body:?}");
    assert!(c.read_to_eof().is_empty(), "nothing after the 503");
}

#[test]
fn a_full_server_refuses_at_once_and_serves_again_when_room_frees() {
    let mut cfg = config();
    cfg.front.max_connections = 3;
    // One worker: it accepts connections in the order they came.
    cfg.workers = 1;
    let server = start(cfg);
    let front = server.front_addr();
    let mut held: Vec<Client> = (0..3).map(|i| sse(front, &format!("full{i}"))).collect();

    // A client that connects and writes at once (its request is at the
    // server when the connection is accepted, or comes just after).
    let mut late = Client::connect(front);
    late.get("/sse?cname=late");
    expect_refusal(&mut late, "connection limit");

    // A client that connects and only then writes its request still gets
    // the 503. `probe`, connected after `slow` and refused at once, proves
    // that the worker has accepted `slow` and found nothing to read yet.
    let mut slow = Client::connect(front);
    let mut probe = Client::connect(front);
    probe.get("/sse?cname=probe");
    expect_refusal(&mut probe, "connection limit");
    slow.get("/sub?cname=late");
    expect_refusal(&mut slow, "connection limit");

    // A client that never sends a request is closed, not kept.
    let mut silent = Client::connect(front);
    assert!(silent.read_to_eof().is_empty());

    let body = stats(&server);
    assert_eq!(count(&body, "connections"), 3, "{body}");
    assert_eq!(count(&body, "refused_connections"), 4, "{body}");
    let text = admin(&server, "/metrics").2;
    assert_eq!(
        sample(&text, r#"comet_connections_refused_total{reason="max_connections"}"#),
        4
    );

    held.pop();
    eventually("a free slot", || count(&stats(&server), "connections") == 2);
    let mut again = sse(front, "late");
    expect_sse_start(&mut again, "late");
    assert_eq!(admin(&server, "/push?cname=late&content=hi").0, "HTTP/1.1 200 OK");
    expect_sse(&mut again, 1, "data", "late", 1, "hi");
    drop(held);
}

#[test]
fn per_address_cap_counts_each_client_address() {
    let mut cfg = config();
    cfg.front.max_connections_per_ip = 2;
    let server = start(cfg);
    let front = server.front_addr();
    let a: std::net::Ipv4Addr = "127.0.0.11".parse().expect("ip");
    let b: std::net::Ipv4Addr = "127.0.0.12".parse().expect("ip");
    let mut first = connect_from(a, front);
    first.get("/sse?cname=ip");
    first.head();
    let mut second = connect_from(a, front);
    second.get("/sse?cname=ip");
    second.head();

    let mut third = connect_from(a, front);
    third.get("/sse?cname=ip");
    expect_refusal(&mut third, "too many connections from this address");

    let mut other = connect_from(b, front);
    other.get("/sse?cname=ip");
    assert!(other.head().starts_with("HTTP/1.1 200 OK"));
    let text = admin(&server, "/metrics").2;
    assert_eq!(sample(&text, r#"comet_connections_refused_total{reason="per_ip"}"#), 1);

    // Leaving frees the address's slot (a disconnect, not only a clean end).
    drop(first);
    eventually("a's count drops", || subscribers(&server, "ip") == 2);
    let mut fourth = connect_from(a, front);
    fourth.get("/sse?cname=ip");
    assert!(fourth.head().starts_with("HTTP/1.1 200 OK"));
    drop((second, fourth, other));
    eventually("all gone", || server.shared().per_ip.keys() == 0);
}

/// One admin request with extra header lines: (status line, body).
fn admin_with(server: &Server, request_line: &str, headers: &str, body: &str) -> (String, String) {
    let mut c = Client::connect(server.admin_addr());
    c.send(
        format!(
            "{request_line} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n{headers}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    let (head, body) = c.response();
    let status = head.lines().next().unwrap_or("").to_string();
    if status.contains(" 401 ") {
        assert_eq!(header(&head, "www-authenticate"), Some("Bearer realm=\"comet admin\""));
    }
    (status, String::from_utf8(body).expect("utf8"))
}

#[test]
fn admin_key_is_required_by_header_or_parameter() {
    let mut cfg = config();
    cfg.admin.key = "k3y-0f-test".to_string();
    let server = start(cfg);
    assert_eq!(
        admin_with(&server, "GET /info", "", ""),
        (
            "HTTP/1.1 401 Unauthorized".to_string(),
            "admin key required\n".to_string()
        )
    );
    assert_eq!(
        admin_with(&server, "GET /info", "Authorization: Bearer wrong\r\n", "").1,
        "wrong admin key\n"
    );
    assert_eq!(
        admin_with(&server, "GET /info?key=k3y-0f-tesT", "", "").1,
        "wrong admin key\n"
    );
    // A wrong header is not rescued by a right parameter.
    assert!(admin_with(
        &server,
        "GET /info?key=k3y-0f-test",
        "Authorization: Bearer nope\r\n",
        ""
    )
    .0
    .contains(" 401 "));

    let ok = admin_with(&server, "GET /info", "Authorization: Bearer k3y-0f-test\r\n", "");
    assert_eq!(ok.0, "HTTP/1.1 200 OK");
    assert_eq!(
        crate::support::json(&ok.1),
        json!({"version": "0.2.5", "channels": 0, "subscribers": 0})
    );
    assert_eq!(
        admin_with(&server, "GET /metrics?key=k3y-0f-test", "", "").0,
        "HTTP/1.1 200 OK"
    );

    // In a POST body, like the other parameters.
    let mut sub = sse(server.front_addr(), "keyed");
    expect_sse_start(&mut sub, "keyed");
    let pushed = admin_with(
        &server,
        "POST /push",
        "Content-Type: application/x-www-form-urlencoded\r\n",
        "cname=keyed&content=hello&key=k3y-0f-test",
    );
    assert_eq!(pushed.0, "HTTP/1.1 200 OK", "{}", pushed.1);
    expect_sse(&mut sub, 1, "data", "keyed", 1, "hello");
    // Without the key nothing is published.
    assert!(admin_with(&server, "GET /push?cname=keyed&content=nope", "", "")
        .0
        .contains(" 401 "));
    assert_eq!(
        admin_with(&server, "GET /info?cname=keyed&key=k3y-0f-test", "", "").1,
        "{\"cname\": \"keyed\", \"subscribers\": 1}\n"
    );
    // The next frame is the next keyed message, as seq 2: the refused push
    // neither reached the subscriber nor took a seq.
    assert_eq!(
        admin_with(&server, "GET /push?cname=keyed&content=next&key=k3y-0f-test", "", "").0,
        "HTTP/1.1 200 OK"
    );
    expect_sse(&mut sub, 2, "data", "keyed", 2, "next");
}
