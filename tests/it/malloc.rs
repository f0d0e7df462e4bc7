//! The real binary restarts itself, in the same process, with glibc's
//! per-thread malloc cache off, and leaves an operator's own setting alone
//! (see `comet::malloc`).

use crate::support::binary::Binary;
use crate::support::{get, Client};

const YAML: &str =
    "workers: 1\nfront:\n  listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\n  allow: []\n  deny: []\n";

/// `GLIBC_TUNABLES` as the running server logged it. (Not read from
/// `/proc/PID/environ`: glibc cuts the string there after the first
/// tunable while parsing it, and works on a copy.)
fn tunables(bin: &Binary) -> Option<String> {
    let lines = bin.log_lines("glibc tunables: ");
    assert!(lines.len() <= 1, "{lines:?}");
    lines
        .first()
        .and_then(|l| l.split("glibc tunables: ").nth(1))
        .map(str::to_string)
}

/// The server answers on both listeners.
fn assert_serves(bin: &Binary) {
    assert_eq!(get(bin.admin(), "/info").0, "HTTP/1.1 200 OK");
    let mut c = Client::connect(bin.front());
    c.get("/sub?cname=m");
    assert!(c.head().starts_with("HTTP/1.1 200 OK\r\n"));
}

#[test]
fn the_server_runs_with_the_per_thread_cache_off() {
    if !cfg!(target_env = "gnu") {
        return;
    }
    let bin = Binary::launch(YAML).env("GLIBC_TUNABLES", None).start();
    assert_eq!(tunables(&bin).as_deref(), Some("glibc.malloc.tcache_count=0"));
    // It re-executed in place: the process the test started is the server.
    let environ = std::fs::read(format!("/proc/{}/environ", bin.pid())).expect("environ");
    assert!(environ
        .split(|&b| b == 0)
        .any(|kv| kv == b"GLIBC_TUNABLES=glibc.malloc.tcache_count=0"));
    assert_serves(&bin);
}

#[test]
fn other_tunables_are_kept() {
    if !cfg!(target_env = "gnu") {
        return;
    }
    let bin = Binary::launch(YAML)
        .env("GLIBC_TUNABLES", Some("glibc.malloc.arena_max=2"))
        .start();
    assert_eq!(
        tunables(&bin).as_deref(),
        Some("glibc.malloc.arena_max=2:glibc.malloc.tcache_count=0")
    );
    assert_serves(&bin);
}

#[test]
fn an_operators_cache_setting_stands() {
    let set = "glibc.malloc.tcache_count=7";
    let bin = Binary::launch(YAML).env("GLIBC_TUNABLES", Some(set)).start();
    assert_eq!(tunables(&bin).as_deref(), Some(set));
    assert_serves(&bin);
}
