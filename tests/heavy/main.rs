//! The heavy tier of the test command: runs that take a large share of the
//! machine (tens of thousands of connections from the load tool, a real
//! browser, nginx in front of comet, the Autobahn suite). `./tools/test` runs
//! them after the fast tier (`tests/it`); `cargo test --test it` skips
//! them. They assert counts, never times, and share the fast tier's harness.

#[path = "../it/support/mod.rs"]
#[allow(dead_code)]
mod support;

mod autobahn;
mod browser;
mod cluster_bench;
mod cluster_load;
mod cluster_resubscribe;
mod cluster_scale;
mod nginx;
mod node;
mod smoke_load;
mod smoke_ws;
