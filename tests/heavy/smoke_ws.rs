//! CI smoke run of comet-load's WebSocket transport against the real server
//! binary: a few thousand `/ws` connections holding two channels each (the
//! URL's and one joined with a `sub` command), messages pushed to every
//! channel and then broadcast, and every subscription must get every message
//! exactly once. Asserts counts from comet-load's JSON line, never times;
//! takes its turn with `smoke_load`'s runs.

use std::process::{Command, Stdio};

use crate::smoke_load::{finish_load, take_turn};
use crate::support::binary::Binary;

const CONNECTIONS: u64 = 3_000;
const WS_CHANNELS: u64 = 2;

/// Runs comet-load over WebSocket against `server`; returns its JSON summary.
fn run_ws_load(server: &Binary, extra: &[&str]) -> serde_json::Value {
    let load = Command::new(env!("CARGO_BIN_EXE_comet-load"))
        .args(["--front", &server.front().to_string()])
        .args(["--admin", &server.admin().to_string()])
        .args(["--connections", &CONNECTIONS.to_string(), "--rate", "10000"])
        .args(["--transport", "ws", "--ws-channels", &WS_CHANNELS.to_string()])
        .args(["--interval-ms", "0", "--duration-secs", "120", "--json"])
        .args(extra)
        .stderr(Stdio::inherit())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run comet-load");
    finish_load(load)
}

/// Every connection upgraded and held both channels, and every subscription
/// got each of `messages` exactly once.
fn assert_every_subscription_got_everything(summary: &serde_json::Value, channels: u64, messages: u64) {
    let count = |key: &str| {
        summary[key]
            .as_u64()
            .unwrap_or_else(|| panic!("{key} is not a count in {summary}"))
    };
    assert_eq!(summary["transport"], "ws", "{summary}");
    assert_eq!(count("channels"), channels, "{summary}");
    assert_eq!(count("ws_channels"), WS_CHANNELS, "{summary}");
    assert_eq!(count("established"), CONNECTIONS, "{summary}");
    assert_eq!(count("ready"), CONNECTIONS, "{summary}");
    assert_eq!(count("subscriptions"), CONNECTIONS * WS_CHANNELS, "{summary}");
    assert_eq!(count("error_total"), 0, "{summary}");
    assert_eq!(summary["ws_close_codes"], serde_json::json!({}), "{summary}");
    assert_eq!(count("published"), messages, "{summary}");
    assert_eq!(
        count("expected_deliveries"),
        CONNECTIONS * WS_CHANNELS * messages,
        "{summary}"
    );
    assert_eq!(count("deliveries"), CONNECTIONS * WS_CHANNELS * messages, "{summary}");
    assert_eq!(count("missing"), 0, "{summary}");
    assert_eq!(count("skipped"), 0, "{summary}");
    assert_eq!(count("duplicates"), 0, "{summary}");
}

#[test]
fn websocket_connections_with_two_channels_get_every_push_and_broadcast() {
    let _turn = take_turn();
    let server = Binary::start(
        "log_level: info\nfront:\n  listen: 127.0.0.1:0\n  max_connections: 10000\nadmin:\n  listen: 127.0.0.1:0\n",
    );
    // /push to each of 100 channels: 60 subscribers on each.
    let pushed = run_ws_load(
        &server,
        &[
            "--channels",
            "100",
            "--prefix",
            "wspush",
            "--mode",
            "push",
            "--messages",
            "3",
        ],
    );
    // /broadcast with a channel per connection: each channel has two
    // subscribers, the connection whose URL names it and the one before it.
    let channels = CONNECTIONS.to_string();
    let broadcast = run_ws_load(
        &server,
        &[
            "--channels",
            &channels,
            "--prefix",
            "wsbc",
            "--mode",
            "broadcast",
            "--messages",
            "2",
        ],
    );
    server.stop();
    assert_every_subscription_got_everything(&pushed, 100, 3);
    assert_every_subscription_got_everything(&broadcast, CONNECTIONS, 2);
}
