//! The front listener's protocol: request parsing, subscribing, framing per
//! transport, delivery, timers — everything a worker does with a
//! connection except owning its descriptor.
//!
//! [`Front`] is one worker's protocol state: its connections, their
//! subscriptions, a 1-second timer wheel and the clock that drives it. It
//! is generic over the socket ([`Sock`]): the worker (`crate::worker`)
//! gives it real non-blocking sockets and calls it when epoll says a socket
//! is ready, when its mailbox brings a delivery, and once a second; tests
//! and the fuzz targets give it in-memory sockets and turn the clock
//! themselves. The front reaches the channel table only through
//! `crate::channels` (subscribe, unsubscribe) and never touches epoll,
//! descriptors, mailboxes or threads. JWT checks and the hooks to the
//! application run through `crate::backend` (`admit.rs`, `hook_events.rs`).

mod admit;
mod conn;
mod deliver;
mod hook_events;
mod remote;
pub mod request;
pub mod respond;
pub mod sock;
mod subs;
mod subscribe;
mod timers;
pub mod transport;
mod wheel;
mod ws;

use std::sync::Arc;

pub use conn::{ping_callback, State};
pub use sock::{MemSock, Sock};
pub use subscribe::SubParams;
pub use transport::Transport;

use crate::metrics::latency::DeliveryRecorder;
use crate::shared::Shared;
use conn::Conn;
use deliver::FrameSet;
use subs::Subs;
use wheel::Wheel;

/// Per-worker read buffer. Request heads are at most 8 KB; with dozens of
/// workers (one per descriptor table at 1M connections) every KB here is
/// resident once the worker has been busy.
pub const READ_BUF: usize = 16 * 1024;

/// Connection slots a worker keeps when everyone left; past this its arrays
/// are freed (a few dozen bytes per slot, so this bounds what idle keeps).
const RELEASE_ABOVE: usize = 64;

/// Connections a worker must have held for everyone leaving to be worth a
/// `malloc_trim`.
const LARGE_BURST: usize = 1024;

/// Settings a worker copies out of the config.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Seconds of silence before a noop (`front.polling_timeout`).
    pub polling_timeout: u32,
    /// Seconds a request head may take (`front.header_timeout_secs`).
    pub header_timeout: u32,
    /// Most bytes queued for one connection (`front.max_queued_bytes`).
    pub max_queued: usize,
    /// Longest channel name (`front.max_cname_bytes`).
    pub max_cname: usize,
    /// The SSE `retry:` hint (`front.sse_retry_ms`).
    pub sse_retry_ms: u32,
    /// Browser origins allowed to open a WebSocket (`front.allowed_origins`).
    pub origins: crate::ws::AllowedOrigins,
    /// Most channels on one WebSocket (`front.max_channels_per_connection`).
    pub max_channels_per_connection: u32,
    /// Largest client message on `/ws` (`front.ws_max_message_bytes`).
    pub ws_max_message: usize,
    /// Most client frames per second on a WebSocket (`front.ws_max_frames_per_sec`).
    pub ws_max_frames_per_sec: u32,
    /// Whether `/ws_echo` is served (`front.ws_echo`).
    pub ws_echo: bool,
}

impl Settings {
    /// The front settings of a config.
    pub fn from_config(c: &crate::config::Config) -> Settings {
        let f = &c.front;
        Settings {
            polling_timeout: f.polling_timeout.max(1),
            header_timeout: f.header_timeout_secs.max(1),
            max_queued: f.max_queued_bytes,
            max_cname: f.max_cname_bytes,
            sse_retry_ms: f.sse_retry_ms,
            // Validated with the config: an invalid list never gets here.
            origins: crate::ws::AllowedOrigins::only(f.allowed_origins.iter().map(String::as_str))
                .unwrap_or_else(|_| crate::ws::AllowedOrigins::any()),
            max_channels_per_connection: f.max_channels_per_connection,
            ws_max_message: f.ws_max_message_bytes,
            ws_max_frames_per_sec: f.ws_max_frames_per_sec,
            ws_echo: f.ws_echo,
        }
    }
}

/// A connection's handle as epoll reports it: its index in the connection
/// array and the generation of that slot, so that an event for a closed
/// and reused slot is recognised. Bit 63 is never set (the worker tags its
/// own tokens with it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token(pub u64);

impl Token {
    fn new(idx: u32, gen: u32) -> Token {
        Token((u64::from(gen) << 32) | u64::from(idx))
    }

    fn idx(self) -> u32 {
        self.0 as u32
    }

    fn gen(self) -> u32 {
        (self.0 >> 32) as u32
    }
}

/// One worker's connections and subscriptions.
pub struct Front<S> {
    worker: usize,
    shared: Arc<Shared>,
    settings: Settings,
    conns: Vec<Conn<S>>,
    free: Vec<u32>,
    open: usize,
    subs: Subs,
    wheel: Wheel,
    /// Ticks since the worker started (1 per second).
    now: u32,
    date: respond::DateLine,
    /// The read buffer, allocated while the worker has connections.
    rbuf: Vec<u8>,
    /// Frames of the event being delivered, reused from one event to the next.
    frames: FrameSet,
    /// Timer entries of the current tick, reused from one tick to the next.
    due: Vec<(u32, u32)>,
    /// Cluster mode: subscriptions waiting for their channel's first sync,
    /// by channel (the connection's index and generation).
    pending: ahash::AHashMap<u64, Vec<(u32, u32)>>,
    draining: bool,
    /// Delivery latencies counted since the last mailbox command.
    latency: DeliveryRecorder,
    /// Subscribes waiting for the authorize hook (`admit.rs`).
    checks: admit::PendingChecks,
    /// Who each subscription is, while the event hook is on (`hook_events.rs`).
    members: hook_events::Members,
}

impl<S: Sock> Front<S> {
    /// The protocol state of worker `worker`, at tick 1.
    pub fn new(worker: usize, shared: Arc<Shared>, settings: Settings) -> Front<S> {
        Front {
            worker,
            shared,
            settings,
            conns: Vec::new(),
            free: Vec::new(),
            open: 0,
            subs: Subs::default(),
            wheel: Wheel::default(),
            now: 1,
            date: respond::date_line(),
            rbuf: Vec::new(),
            frames: FrameSet::default(),
            due: Vec::new(),
            pending: ahash::AHashMap::new(),
            draining: false,
            latency: DeliveryRecorder::default(),
            checks: admit::PendingChecks::default(),
            members: hook_events::Members::default(),
        }
    }

    /// Open connections.
    pub fn open(&self) -> usize {
        self.open
    }

    /// The settings it runs with.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Replaces the settings (a reload). Each one applies from the next
    /// time it is read: `max_queued` and `max_cname` at the next write and
    /// request, `sse_retry_ms` for the next SSE subscriber, and the two
    /// timeouts for the next deadline or noop a connection's timer arms
    /// (a timer armed with the old value fires at its old time, then
    /// re-arms with the new one).
    pub fn set_settings(&mut self, settings: Settings) {
        self.settings = settings;
    }

    /// The current tick.
    pub fn now(&self) -> u32 {
        self.now
    }

    /// Subscriptions held.
    pub fn subscriptions(&self) -> usize {
        self.subs.len()
    }

    /// The socket of an open connection.
    pub fn sock(&self, t: Token) -> Option<&S> {
        self.conn(t).and_then(|c| c.sock.as_ref())
    }

    /// Whether everyone left and the arrays hold room for more than a few
    /// connections, so that they can be given back ([`Front::release_memory`]).
    /// Any size counts: 15,000 connections over 52 workers leave ~290 per
    /// worker, and keeping each worker's arrays kept +30% of idle RSS.
    pub fn should_release_memory(&self) -> bool {
        self.open == 0 && self.conns.capacity() > RELEASE_ABOVE
    }

    /// Whether the connections that left were a burst large enough to be
    /// worth a `malloc_trim`.
    pub fn burst_was_large(&self) -> bool {
        self.conns.len() > LARGE_BURST
    }

    /// Drops what a burst grew (the connection array, subscription slab,
    /// timer wheel, read buffer, frame buffers). Only when no connection is
    /// open; the worker calls it between events, never from inside one.
    pub fn release_memory(&mut self) {
        if self.open != 0 {
            return;
        }
        self.conns = Vec::new();
        self.free = Vec::new();
        self.subs.release_memory();
        self.wheel = Wheel::default();
        self.rbuf = Vec::new();
        self.frames = FrameSet::default();
        self.due = Vec::new();
        if self.pending.is_empty() {
            self.pending = ahash::AHashMap::new();
        }
    }
}

#[cfg(test)]
mod tests;
