//! The hub: state shared by the admin listener and the front workers.
//!
//! It owns the channel table (behind one mutex), one mailbox per worker and
//! the presence listeners. Admin handlers call [`Hub::publish`] and friends;
//! the table reports deliveries as notices, and the hub turns each into one
//! command per worker that holds subscribers of that channel, queued while
//! the table is still locked so that every worker sees a channel's messages
//! in seq order. The hub never touches a socket: delivery is the workers' job.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::mpsc;

pub mod per_ip;

use crate::channel::{ChannelTable, Event, Limits, Notice, Signed, TooManyChannels, WorkerMask};
use crate::config::{Auth, Config};

/// Most presence events queued for one `/psub` client before it is dropped.
pub const PRESENCE_QUEUE: usize = 4096;

/// Work sent to a front worker.
#[derive(Debug)]
pub enum Command {
    /// Deliver an event to the worker's subscribers of its channel.
    Deliver(Arc<Event>),
    /// Start accepting connections (handed over by a worker that filled up).
    StartAccepting,
    /// Stop accepting, end every response and stop once the connections
    /// are gone or at the deadline (graceful shutdown).
    Drain(std::time::Instant),
}

/// A worker's queue of commands and the eventfd that wakes it.
#[derive(Debug)]
pub struct Mailbox {
    queue: Mutex<Vec<Command>>,
    wake: OwnedFd,
}

impl Mailbox {
    /// Creates a mailbox with its eventfd. Must run before workers take
    /// private descriptor tables, since other threads write to the eventfd.
    pub fn new() -> std::io::Result<Mailbox> {
        // SAFETY: eventfd has no memory-safety preconditions.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor that nothing else owns.
        let wake = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Mailbox {
            queue: Mutex::new(Vec::new()),
            wake,
        })
    }

    /// The eventfd the worker polls.
    pub fn wake_fd(&self) -> i32 {
        self.wake.as_raw_fd()
    }

    /// Queues a command and wakes the worker if the queue was empty.
    pub fn push(&self, cmd: Command) {
        let was_empty = {
            let mut q = lock(&self.queue);
            let was_empty = q.is_empty();
            q.push(cmd);
            was_empty
        };
        if was_empty {
            let one: u64 = 1;
            // SAFETY: writes 8 bytes from a valid u64 to our own eventfd.
            unsafe { libc::write(self.wake.as_raw_fd(), (&one as *const u64).cast(), 8) };
        }
    }

    /// Takes every queued command, resetting the eventfd.
    pub fn drain(&self, into: &mut Vec<Command>) {
        let mut buf = 0u64;
        // SAFETY: reads 8 bytes into a valid u64 from our own eventfd.
        unsafe { libc::read(self.wake.as_raw_fd(), (&mut buf as *mut u64).cast(), 8) };
        std::mem::swap(&mut *lock(&self.queue), into);
    }
}

/// Counters for `/stats` and `/metrics` (see `crate::metrics`).
#[derive(Debug, Default)]
pub struct Stats {
    /// Waiting subscribers by transport (`Transport::index`).
    pub subscribers_by_transport: [AtomicU64; 4],
    /// Connections accepted and then refused because `front.max_connections`
    /// were open.
    pub refused_full: AtomicU64,
    /// Connections refused by `front.max_connections_per_ip`.
    pub refused_per_ip: AtomicU64,
    /// Front connections accepted since start (refused ones included).
    pub accepted: AtomicU64,
    /// Workers that handed over to a fresh thread after everyone left.
    pub worker_renewals: AtomicU64,
    /// Messages published (pub, push, and one per channel for broadcast).
    pub published: AtomicU64,
    /// Frames written to subscribers.
    pub delivered: AtomicU64,
    /// Subscribers dropped because their output queue overflowed.
    pub slow_consumer_drops: AtomicU64,
    /// Front connections currently open.
    pub connections: AtomicU64,
    /// Presence listeners dropped because they stopped reading.
    pub presence_drops: AtomicU64,
}

/// Shared state of one server.
#[derive(Debug)]
pub struct Hub {
    config: Config,
    table: Mutex<ChannelTable>,
    mailboxes: Vec<Mailbox>,
    presence: Mutex<Vec<mpsc::Sender<Bytes>>>,
    /// Counters.
    pub stats: Stats,
    started: std::time::Instant,
    /// Connections per client address, when `front.max_connections_per_ip` is set.
    pub per_ip: Option<per_ip::PerIp>,
}

/// Locks a mutex, recovering from poisoning: every critical section leaves
/// the data consistent before anything that can panic.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Hub {
    /// Creates the hub with `workers` mailboxes.
    pub fn new(config: Config, workers: usize) -> std::io::Result<Hub> {
        let f = &config.front;
        let limits = Limits {
            max_channels: f.max_channels,
            max_subscribers: f.max_subscribers_per_channel,
            buffer_size: f.channel_buffer_size,
            channel_timeout: f.effective_channel_timeout(),
            token_auth: f.auth == Auth::Token,
        };
        let per_ip = (f.max_connections_per_ip > 0).then(|| per_ip::PerIp::new(f.max_connections_per_ip));
        let mailboxes = (0..workers).map(|_| Mailbox::new()).collect::<std::io::Result<_>>()?;
        Ok(Hub {
            table: Mutex::new(ChannelTable::new(limits)),
            config,
            mailboxes,
            presence: Mutex::new(Vec::new()),
            stats: Stats::default(),
            started: std::time::Instant::now(),
            per_ip,
        })
    }

    /// The configuration the server runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Time since the hub was created.
    pub fn uptime(&self) -> std::time::Duration {
        self.started.elapsed()
    }

    /// The worker mailboxes.
    pub fn mailboxes(&self) -> &[Mailbox] {
        &self.mailboxes
    }

    /// Runs `f` with the table locked and a notice sink that dispatches
    /// deliveries and presence events in order.
    pub fn with_table<R>(&self, f: impl FnOnce(&mut ChannelTable, &mut dyn FnMut(Notice)) -> R) -> R {
        let mut table = lock(&self.table);
        let mut presence: Option<MutexGuard<'_, Vec<mpsc::Sender<Bytes>>>> = None;
        let mut sink = |n: Notice| match n {
            Notice::Deliver(mask, event) => self.deliver(mask, event),
            Notice::Online(name) | Notice::Offline(name) => {
                let listeners = presence.get_or_insert_with(|| lock(&self.presence));
                if listeners.is_empty() {
                    return;
                }
                let flag = if matches!(n, Notice::Online(_)) { "1 " } else { "0 " };
                let line = Bytes::from([flag, name, "\n"].concat());
                let before = listeners.len();
                listeners.retain(|tx| tx.try_send(line.clone()).is_ok());
                let dropped = before - listeners.len();
                if dropped > 0 {
                    self.stats.presence_drops.fetch_add(dropped as u64, Ordering::Relaxed);
                }
            }
        };
        f(&mut table, &mut sink)
    }

    fn deliver(&self, mut mask: WorkerMask, event: &Arc<Event>) {
        self.stats
            .published
            .fetch_add(u64::from(event.is_sequenced()), Ordering::Relaxed);
        while mask != 0 {
            let w = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            if let Some(mb) = self.mailboxes.get(w) {
                mb.push(Command::Deliver(event.clone()));
            }
        }
    }

    /// `/pub` and `/push`: publishes already-escaped content; returns its seq.
    pub fn publish(&self, cname: &str, content_escaped: &str) -> Result<i32, TooManyChannels> {
        self.with_table(|t, out| t.publish(cname, content_escaped, out))
    }

    /// `/broadcast`: returns the number of channels reached.
    pub fn broadcast(&self, content_escaped: &str) -> usize {
        self.with_table(|t, out| t.broadcast(content_escaped, out))
    }

    /// `/sign`.
    pub fn sign(&self, cname: &str, expires: i32) -> Result<Signed, TooManyChannels> {
        self.with_table(|t, out| t.sign(cname, expires, out))
    }

    /// `/close`: the channel's next seq, or `None` if it does not exist.
    pub fn close(&self, cname: &str) -> Option<i32> {
        self.with_table(|t, out| t.close(cname, out))
    }

    /// `/clear`: the channel's next seq, or `None` if it does not exist.
    pub fn clear(&self, cname: &str) -> Option<i32> {
        self.with_table(|t, _| t.clear(cname))
    }

    /// `(channels, subscribers)` over the whole server.
    pub fn totals(&self) -> (usize, u64) {
        let t = lock(&self.table);
        (t.channels(), t.subscribers())
    }

    /// Subscribers of one channel (0 if it does not exist).
    pub fn subscribers_of(&self, cname: &str) -> u32 {
        lock(&self.table).subscribers_of(cname)
    }

    /// Whether a channel exists.
    pub fn exists(&self, cname: &str) -> bool {
        lock(&self.table).lookup(cname).is_some()
    }

    /// Registers a presence listener; events arrive as `"1 name\n"` /
    /// `"0 name\n"` lines. A listener that falls [`PRESENCE_QUEUE`] events
    /// behind is dropped (its receiver ends).
    pub fn presence_subscribe(&self) -> mpsc::Receiver<Bytes> {
        let (tx, rx) = mpsc::channel(PRESENCE_QUEUE);
        lock(&self.presence).push(tx);
        rx
    }

    /// Number of connected presence listeners.
    pub fn presence_listeners(&self) -> usize {
        let mut l = lock(&self.presence);
        l.retain(|tx| !tx.is_closed());
        l.len()
    }

    /// The 1-second channel maintenance tick (idle expiry, periodic presence).
    pub fn tick(&self) {
        let emptied = self.with_table(|t, out| {
            let before = t.channels();
            t.tick(out);
            before > 0 && t.channels() == 0
        });
        if emptied {
            // The last channel went: its history and frames were freed just
            // now; hand the pages back so idle RSS returns to its baseline.
            // SAFETY: malloc_trim only returns free heap memory to the kernel.
            unsafe { libc::malloc_trim(0) };
        }
    }

    /// Asks every worker to end its connections and stop by `deadline`.
    pub fn drain_workers(&self, deadline: std::time::Instant) {
        for mb in &self.mailboxes {
            mb.push(Command::Drain(deadline));
        }
    }
}
