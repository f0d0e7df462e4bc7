//! comet: an icomet-compatible comet server.
pub mod channel;
pub mod config;
pub mod encode;
