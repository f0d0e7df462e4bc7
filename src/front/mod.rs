//! The front listener's lean HTTP: request parsing, connection handling,
//! subscribing, and per-transport framing.
//!
//! This code runs inside a worker thread and extends `Worker` with the
//! per-connection logic. It never reaches into channel slots: it calls the
//! channel table through `Hub::with_table` (subscribe, unsubscribe) and
//! receives events through the worker's mailbox.

pub(crate) mod conn;
pub mod frame;
pub mod request;
pub mod respond;
pub(crate) mod subscribe;

/// A worker's subscribers of one channel.
#[derive(Debug)]
pub(crate) struct LocalChannel {
    /// The channel name (for noop and next_seq frames).
    pub name: Box<str>,
    /// Connection indexes; each subscriber knows its position here.
    pub subs: Vec<u32>,
}
