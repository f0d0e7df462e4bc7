//! What the Redis layer tells the node: [`ClusterEvent`], delivered to one
//! caller-provided synchronous callback.
//!
//! The callback is called from the Redis connections' reader tasks, in the
//! order Redis sent things on each connection: a channel's `Confirmed` comes
//! before any of its messages, and its messages come in seq order. It must
//! not block (it runs inside the reader; a blocked reader stalls every
//! channel of the connection): queue, do not wait. Events for a channel the
//! node has just left may still arrive; the node ignores them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::wire::{Control, Epoch, Escaped, Kind};

/// Which PUB/SUB connection an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnId {
    /// Data connection `n` (a channel always uses the same one:
    /// [`super::Subscriptions::conn_of`]).
    Data(u16),
    /// The control connection: presence, surveys.
    Control,
}

impl std::fmt::Display for ConnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnId::Data(n) => write!(f, "data connection {n}"),
            ConnId::Control => f.write_str("control connection"),
        }
    }
}

/// Why a connection was given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LostReason {
    /// Redis closed it or the socket failed.
    Disconnected,
    /// A probe published to the connection's own channel did not come back in
    /// time: Redis or the path to it is hung.
    Hung,
    /// A SUBSCRIBE/UNSUBSCRIBE failed or timed out.
    CommandFailed,
}

/// One thing that happened on Redis PUB/SUB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterEvent {
    /// A message that took a seq; a payload carrying several messages gives
    /// one event each, in seq order.
    Message {
        /// The channel.
        cname: Arc<str>,
        /// The channel's epoch when the message was published.
        epoch: Epoch,
        /// The message's seq.
        seq: i32,
        /// Data or broadcast (the node sends `next_seq` after a broadcast).
        kind: Kind,
        /// The escaped content.
        content: Escaped,
    },
    /// `/close`, `/clear`, or the reaper's free.
    Control {
        /// The channel.
        cname: Arc<str>,
        /// The epoch it applied to (`None`: Redis had no state left).
        epoch: Option<Epoch>,
        /// What happened.
        control: Control,
        /// The channel's next seq at that moment.
        next_seq: i32,
    },
    /// Redis confirmed the channel's SUBSCRIBE: every message published from
    /// now on reaches this node. The node reads history to fill what it missed.
    Confirmed {
        /// The channel.
        cname: Arc<str>,
    },
    /// A connection is gone: every channel on it is unsynced until its next
    /// `Confirmed` (a reconnect resubscribes all of them by itself).
    Lost {
        /// The connection.
        conn: ConnId,
        /// Channels the node had joined on it.
        channels: usize,
        /// Why.
        reason: LostReason,
    },
    /// After a (re)connect, every channel joined on the connection has been
    /// confirmed again.
    Resynced {
        /// The connection.
        conn: ConnId,
        /// Channels confirmed since the connection came up.
        channels: usize,
        /// From connected to the last confirmation.
        elapsed: Duration,
    },
    /// A presence line from any node: `1 cname` (created) or `0 cname` (freed).
    Presence {
        /// Online (created) or offline (freed).
        online: bool,
        /// The channel.
        cname: String,
    },
}

type Callback = Box<dyn FnMut(ClusterEvent) + Send>;

/// The shared callback plus the generation rule: each connection stamps its
/// events with its generation, and events of a replaced connection are
/// dropped, so nothing from an old connection follows its `Lost`.
#[derive(Clone)]
pub(crate) struct Sink {
    callback: Arc<Mutex<Callback>>,
    pub(crate) delivered: Arc<AtomicU64>,
}

impl Sink {
    pub(crate) fn new(f: impl FnMut(ClusterEvent) + Send + 'static) -> Sink {
        Sink {
            callback: Arc::new(Mutex::new(Box::new(f))),
            delivered: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Delivers `events` if `gen` is still the connection's current generation.
    pub(crate) fn deliver(&self, current: &AtomicU64, gen: u64, events: impl IntoIterator<Item = ClusterEvent>) {
        let mut f = self.callback.lock().unwrap_or_else(|p| p.into_inner());
        if current.load(Ordering::Acquire) != gen {
            return;
        }
        for e in events {
            f(e);
            self.delivered.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Moves the connection to generation `next` and, atomically with it,
    /// delivers `event` (a `Lost`): no event of an older generation can follow.
    pub(crate) fn switch(&self, current: &AtomicU64, next: u64, event: Option<ClusterEvent>) {
        let mut f = self.callback.lock().unwrap_or_else(|p| p.into_inner());
        current.store(next, Ordering::Release);
        if let Some(e) = event {
            f(e);
            self.delivered.fetch_add(1, Ordering::Relaxed);
        }
    }
}
