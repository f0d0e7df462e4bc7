//! Presence listeners: the `/psub` streams of `1 name` / `0 name` lines
//! (reference §4.9, §6).
//!
//! The channel table reports channels coming online and going offline while
//! it is locked; [`Presence::emit`] hands each line to every listener's
//! bounded queue without waiting. A listener that falls [`QUEUE`] lines
//! behind is dropped (its stream ends) and counted, so a stuck `/psub`
//! client never slows the table down.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::mailbox::lock;

/// Most presence lines queued for one `/psub` client before it is dropped.
pub const QUEUE: usize = 4096;

/// The connected `/psub` listeners.
#[derive(Debug, Default)]
pub struct Presence {
    listeners: Mutex<Vec<mpsc::Sender<Bytes>>>,
    dropped: AtomicU64,
}

impl Presence {
    /// Registers a listener; lines arrive as `"1 name\n"` / `"0 name\n"`.
    pub fn subscribe(&self) -> mpsc::Receiver<Bytes> {
        let (tx, rx) = mpsc::channel(QUEUE);
        lock(&self.listeners).push(tx);
        rx
    }

    /// Number of connected listeners.
    pub fn listeners(&self) -> usize {
        let mut l = lock(&self.listeners);
        l.retain(|tx| !tx.is_closed());
        l.len()
    }

    /// Listeners dropped for falling behind, since start.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Sends one event to every listener.
    pub fn emit(&self, online: bool, name: &str) {
        let mut listeners = lock(&self.listeners);
        if listeners.is_empty() {
            return;
        }
        let flag = if online { "1 " } else { "0 " };
        let line = Bytes::from([flag, name, "\n"].concat());
        let mut lagging = 0;
        listeners.retain(|tx| match tx.try_send(line.clone()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                lagging += 1;
                false
            }
            // The client went away: not a drop.
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        });
        if lagging > 0 {
            self.dropped.fetch_add(lagging, Ordering::Relaxed);
        }
    }
}
