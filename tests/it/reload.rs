//! SIGHUP against the real binary: live keys change under load without a
//! connection lost, an invalid file or variable leaves the running
//! configuration in force, and keys that need a restart are reported and
//! keep their running value.

use serde_json::json;

use crate::support::binary::Binary;
use crate::support::{eventually, get, json, Client};

/// A config listening on port 0 with `front` and `admin` lines added to
/// their sections and `top` lines at the top.
fn yaml(top: &str, front: &str, admin: &str) -> String {
    format!(
        "workers: 2\n{top}front:\n  listen: 127.0.0.1:0\n{front}admin:\n  listen: 127.0.0.1:0\n  threads: 1\n  allow: []\n  deny: []\n{admin}"
    )
}

/// Sends SIGHUP and returns the reload's log line (the `n`th reload, from 1).
fn reload(bin: &Binary, n: usize, pat: &str) -> String {
    bin.signal(libc::SIGHUP);
    eventually(&format!("reload {n} logged"), || {
        bin.log_lines("config reload").len() >= n
    });
    let lines = bin.log_lines("config reload");
    let line = lines[n - 1].clone();
    assert!(line.contains(pat), "{line}");
    line
}

/// The value of one sample in a `/metrics` answer.
fn sample(metrics: &str, series: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{series} missing in\n{metrics}"))
}

/// Reads one SSE frame and returns its data as JSON.
fn sse_event(c: &mut Client) -> serde_json::Value {
    let frame = c.chunk_str();
    let data = frame
        .split("data: ")
        .nth(1)
        .and_then(|d| d.strip_suffix("\n\n"))
        .unwrap_or_else(|| panic!("not an SSE data frame: {frame:?}"));
    json(data)
}

#[test]
fn sighup_applies_live_keys_under_load_and_drops_nobody() {
    let start = yaml("", "  polling_timeout: 60\n", "  key: before-k\n");
    let bin = Binary::start(&start);
    let mut subs: Vec<Client> = (0..200)
        .map(|_| {
            let mut c = Client::connect(bin.front());
            c.get("/sse?cname=load");
            assert!(c.head().starts_with("HTTP/1.1 200 OK"));
            assert_eq!(c.chunk_str(), "retry: 3000\n\n");
            assert_eq!(
                sse_event(&mut c),
                json!({"type": "next_seq", "cname": "load", "seq": 1, "content": ""})
            );
            c
        })
        .collect();
    let info = |key: &str| get(bin.admin(), &format!("/info?cname=load&key={key}"));
    eventually("200 subscribers", || json(&info("before-k").2)["subscribers"] == 200);
    assert!(bin.log_lines("GET /info").is_empty(), "no access log at info");

    bin.rewrite_config(&yaml(
        "log_level: debug\n",
        "  polling_timeout: 1\n",
        "  key: after-k\n",
    ));
    let line = reload(&bin, 1, "config reloaded from ");
    assert!(
        line.ends_with(
            "applied log_level info → debug, front.polling_timeout 60 → 1, admin.key ** masked ** → ** masked **"
        ),
        "{line}"
    );
    assert!(!line.contains("after-k") && !line.contains("before-k"), "{line}");

    // The key changed for the next request.
    let (status, _, body) = info("before-k");
    assert_eq!(
        (status.as_str(), body.as_str()),
        ("HTTP/1.1 401 Unauthorized", "wrong admin key\n")
    );
    let (status, _, body) = info("after-k");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(
        json(&body),
        json!({"cname": "load", "subscribers": 200}),
        "nobody was dropped"
    );
    // The log level too: admin requests are logged at debug now.
    bin.wait_log("GET /info?cname=load&key=*** 200");

    // Every subscriber is still there and gets the next message.
    let (status, _, _) = get(bin.admin(), "/push?cname=load&content=after&key=after-k");
    assert_eq!(status, "HTTP/1.1 200 OK");
    for c in &mut subs {
        assert_eq!(
            sse_event(c),
            json!({"type": "data", "cname": "load", "seq": 1, "content": "after"})
        );
    }

    // A new long poll waits for the new polling_timeout (1 s, where it was
    // 60): its noop comes well within the read's deadline.
    let mut poll = Client::connect(bin.front());
    poll.get("/sub?cname=quiet&seq=1");
    let r = poll.read_response(false);
    assert_eq!(r.code(), 200, "{r:?}");
    assert_eq!(
        r.json(),
        json!({"type": "noop", "cname": "quiet", "seq": 0, "content": ""})
    );

    let metrics = get(bin.admin(), "/metrics?key=after-k").2;
    assert_eq!(sample(&metrics, "comet_config_reloads_total{result=\"applied\"}"), 1);
    assert_eq!(sample(&metrics, "comet_config_reloads_total{result=\"invalid\"}"), 0);
    drop(subs);
    bin.stop();
}

#[test]
fn sighup_refuses_an_invalid_file_or_variable_and_keeps_the_running_config() {
    let start = yaml("", "  polling_timeout: 30\n", "  key: k1\n");
    let bin = Binary::launch(&start)
        .env("COMET_FRONT_MAX_QUEUED_BYTES", Some("65536"))
        .start();
    bin.rewrite_config(&yaml("", "  polling_timeout: 0\n", "  key: k2\n"));
    let line = reload(&bin, 1, "config reload refused, the running configuration stays: ");
    assert!(line.contains(" ERROR "), "{line}");
    assert!(line.ends_with("front.polling_timeout must be > 0"), "{line}");

    bin.rewrite_config("front:\n  polling_timeout: [\n");
    let line = reload(&bin, 2, "config reload refused, the running configuration stays: ");
    assert!(
        line.contains(": front.polling_timeout: invalid type: sequence, expected u32"),
        "{line}"
    );

    // The old key is still the key.
    assert_eq!(get(bin.admin(), "/info?key=k2").0, "HTTP/1.1 401 Unauthorized");
    let metrics = get(bin.admin(), "/metrics?key=k1").2;
    assert_eq!(sample(&metrics, "comet_config_reloads_total{result=\"applied\"}"), 0);
    assert_eq!(sample(&metrics, "comet_config_reloads_total{result=\"invalid\"}"), 2);

    // A valid file again is applied; the variable still wins over the file.
    bin.rewrite_config(&yaml(
        "",
        "  polling_timeout: 30\n  max_queued_bytes: 8192\n",
        "  key: k2\n",
    ));
    let line = reload(&bin, 3, "config reloaded from ");
    assert!(
        line.ends_with("applied admin.key ** masked ** → ** masked **"),
        "{line}"
    );
    assert_eq!(get(bin.admin(), "/info?key=k2").0, "HTTP/1.1 200 OK");
    bin.stop();
}

#[test]
fn sighup_reports_keys_that_need_a_restart_and_keeps_them() {
    let start = yaml("", "  polling_timeout: 30\n", "");
    let bin = Binary::start(&start);
    let front = bin.front();
    bin.rewrite_config(
        &yaml("workers: 3\n", "  polling_timeout: 20\n", "")
            .replace("workers: 2\n", "")
            .replace(
                "  listen: 127.0.0.1:0\n  threads: 1\n",
                "  listen: 127.0.0.1:0\n  threads: 2\n",
            ),
    );
    let line = reload(&bin, 1, "config reloaded from ");
    assert!(line.contains(" WARN "), "{line}");
    assert!(
        line.ends_with(
            "applied front.polling_timeout 30 → 20; needs a restart (running value kept): workers 2 → 3, admin.threads 1 → 2"
        ),
        "{line}"
    );
    // Reported again at the next reload, as long as it differs.
    let line = reload(&bin, 2, "config reloaded from ");
    assert!(
        line.ends_with("nothing to apply; needs a restart (running value kept): workers 2 → 3, admin.threads 1 → 2"),
        "{line}"
    );
    // Still serving where it was.
    let mut c = Client::connect(front);
    c.get("/ping?cb=p");
    assert_eq!(c.read_response(false).code(), 200);
    bin.stop();
}
