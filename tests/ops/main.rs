//! Operating and deploying comet, against the real binary: its log output
//! (`logs`), the systemd unit, sysctl drop-in and Grafana dashboard under
//! `deploy/` (`deploy`), the nginx recipe with Chromium over HTTP/2
//! (`nginx`), and the Debian package (`deb`).
//!
//! One test binary with its own small harness (`support`), so it depends on
//! no other test code: `cargo test --test ops` runs it all, `cargo test
//! --test ops nginx` the browser test alone. A missing tool (nginx, openssl,
//! chromium, node, cargo-deb) fails its test with what to install;
//! `./tools/test` installs them. Only `systemd-analyze` is optional: its
//! tests print that they skipped where it is missing.

mod support;

mod deb;
mod deploy;
mod logs;
mod nginx;
