//! The heavy tier of the test command: runs that take a large share of the
//! machine (tens of thousands of connections from the load tool, a real
//! browser). `./tools/test` runs them after the fast tier (`tests/it`);
//! `cargo test --test it` skips them. They assert counts, never times.

#[path = "../it/support/mod.rs"]
#[allow(dead_code)]
mod support;

mod autobahn;
mod browser;
mod cluster_bench;
mod cluster_scale;
mod smoke_load;
