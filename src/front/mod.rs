//! The front listener's lean HTTP: request parsing, connection handling,
//! subscribing, and per-transport framing.
//!
//! This code runs inside a worker thread and extends `Worker` with the
//! per-connection logic. It never reaches into channel slots: it calls the
//! channel table through `Hub::with_table` (subscribe, unsubscribe) and
//! receives events through the worker's mailbox.

pub(crate) mod conn;
pub mod frame;
pub(crate) mod local;
pub mod request;
pub mod respond;
pub(crate) mod subscribe;

pub(crate) use local::LocalChannel;
