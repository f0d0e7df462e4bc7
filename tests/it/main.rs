//! The fast tier of the test command: the real server (in-process on
//! `127.0.0.1:0`, or the real binary under signals), raw bytes over TCP,
//! assertions on exact status lines, headers and bodies; its logs, the
//! deployment files and the Debian package. One test binary, one harness
//! (`support`). Every read has a deadline; no fixed ports; waits poll a
//! condition with a deadline (`support::eventually`), never sleep to guess.
//!
//! The heavy runs (tens of thousands of connections, the browser, nginx in
//! front of comet) are the other test binary, `tests/heavy`.

mod support;

mod admin;
mod authorize;
mod cli;
mod cluster_faults;
mod cluster_index;
mod cluster_intake;
mod cluster_nodes;
mod cluster_ready;
mod cluster_redis_settings;
mod cluster_store;
mod cluster_subs;
mod cluster_tool;
mod deb;
mod deploy;
mod events;
mod front;
mod fuzz_corpus;
mod health;
mod hooks;
mod incidents;
mod jwt;
mod latency;
mod logs;
mod malloc;
mod operations;
mod presence;
mod reload;
mod shutdown;
mod storm;
mod streaming;
mod web;
mod websocket;
mod ws_codec;
