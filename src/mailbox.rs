//! Work for the front workers from other threads: one queue and one eventfd
//! per worker.
//!
//! The channel table queues deliveries here while it is still locked, so a
//! worker sees each channel's messages in seq order; the server queues
//! shutdown and settings commands. A worker polls its eventfd and takes
//! the whole queue at once. Nothing here touches a socket or the table.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use rustix::event::{eventfd, EventfdFlags};

use crate::channel::{ChannelId, Message};
use crate::front::Settings;
use crate::front::Token;
use crate::hooks::Verdict;

/// Work sent to a front worker.
#[derive(Debug)]
pub enum Command {
    /// A message of one channel, for the worker's subscribers of it, and
    /// when the admin request that published it arrived (for the delivery
    /// latency; history does not keep it).
    Message(ChannelId, Message, Instant),
    /// One broadcast: its content and, for each of this worker's channels
    /// that holds subscribers, the seq it took there; and when its admin
    /// request arrived. One command per worker, whatever the number of
    /// channels.
    Broadcast(Arc<str>, Vec<(ChannelId, i32)>, Instant),
    /// A channel was closed with this next seq: end its subscribers.
    Close(ChannelId, i32),
    /// Cluster mode: a channel's first sync with Redis completed with this
    /// next seq and history; answer the subscribers that waited for it.
    Synced(ChannelId, i32, Arc<[Message]>),
    /// Cluster mode: Redis lost the channel; tell its subscribers to resume
    /// at this seq.
    Reset(ChannelId, i32),
    /// The authorize hook's verdict on a subscribe that waited for it: the
    /// connection (a closed or reused one does not match), the ticket of
    /// its pending request, the verdict.
    Authorized(Token, u64, Verdict),
    /// Stop accepting, end every response and stop once the connections
    /// are gone or at the deadline (graceful shutdown).
    Drain(Instant),
    /// New front settings from a reload: they apply to what the worker
    /// does next (see `Front::set_settings`).
    Settings(Settings),
    /// Panic on purpose: lets tests prove that a dead worker is never
    /// silent (see `Server::inject_worker_panic`). Nothing else sends it.
    Panic,
}

/// A worker's queue of commands and the eventfd that wakes it.
#[derive(Debug)]
pub struct Mailbox {
    queue: Mutex<Vec<Command>>,
    wake: OwnedFd,
}

/// Locks a mutex, recovering from poisoning: every critical section in
/// comet leaves its data consistent before anything that can panic.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Mailbox {
    /// Creates a mailbox with its eventfd. Must run before workers take
    /// private descriptor tables, since other threads write to the eventfd.
    pub fn new() -> std::io::Result<Mailbox> {
        let wake = eventfd(0, EventfdFlags::NONBLOCK | EventfdFlags::CLOEXEC)?;
        Ok(Mailbox {
            queue: Mutex::new(Vec::new()),
            wake,
        })
    }

    /// The eventfd the worker polls.
    pub fn wake_fd(&self) -> BorrowedFd<'_> {
        self.wake.as_fd()
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
            // An eventfd write fails only when the counter would overflow,
            // which means the worker is already awake.
            let _ = rustix::io::write(&self.wake, &1u64.to_ne_bytes());
        }
    }

    /// Takes every queued command, resetting the eventfd.
    pub fn take_all(&self, into: &mut Vec<Command>) {
        let mut buf = [0u8; 8];
        // EAGAIN (nothing pending) is fine: the queue is what counts.
        let _ = rustix::io::read(&self.wake, &mut buf);
        std::mem::swap(&mut *lock(&self.queue), into);
    }
}

/// Every worker's mailbox, by worker index.
#[derive(Debug)]
pub struct Mailboxes(Vec<Mailbox>);

impl Mailboxes {
    /// `n` mailboxes.
    pub fn new(n: usize) -> std::io::Result<Mailboxes> {
        (0..n)
            .map(|_| Mailbox::new())
            .collect::<std::io::Result<_>>()
            .map(Mailboxes)
    }

    /// Worker `i`'s mailbox.
    pub fn get(&self, i: usize) -> Option<&Mailbox> {
        self.0.get(i)
    }

    /// Number of workers.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no workers (an admin-only test setup).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every mailbox.
    pub fn iter(&self) -> impl Iterator<Item = &Mailbox> {
        self.0.iter()
    }

    /// Queues `cmd` for worker `i` (ignored when there is no such worker).
    pub fn push(&self, i: usize, cmd: Command) {
        if let Some(mb) = self.0.get(i) {
            mb.push(cmd);
        }
    }
}
