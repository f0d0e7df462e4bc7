//! comet: an icomet-compatible comet server.
pub mod admin;
pub mod channel;
pub mod config;
pub mod encode;
pub mod front;
#[doc(hidden)]
pub mod fuzzing;
pub mod hub;
pub mod malloc;
pub mod metrics;
pub mod params;
pub mod server;
pub(crate) mod worker;
pub mod ws;
