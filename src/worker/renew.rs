//! A worker that everyone left hands over to a fresh thread.
//!
//! After a burst, freed memory should go back to the OS. `malloc_trim`
//! returns free pages, but glibc keeps freed blocks in each thread's cache
//! (tcache), counted as in use, and blocks scattered over many pages pin
//! all of them; the cache is emptied only when its thread exits. comet runs
//! with that cache off (`crate::malloc`), which removes most of what this
//! was for; it still matters when an operator keeps the cache through
//! `GLIBC_TUNABLES`, and a fresh thread gives back the stack pages the old
//! one touched. The successor takes over the epoll instance, the listener
//! state and the mailbox; it has no connections to carry.
//!
//! With private descriptor tables the successor copies the old worker's
//! table, which at that moment holds only what every worker inherited
//! (connections are all closed), so it needs no clean-up.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::sys::Epoll;
use super::{start_thread, Sizing, Threads, Worker};
use crate::front::{Front, Settings};
use crate::mailbox::lock;
use crate::shared::Shared;

impl Worker {
    /// Hands this worker's state to a fresh thread; on success this thread
    /// must return from `run` at once (everything it allocated is freed
    /// here, on its own thread, before it exits). When the thread cannot
    /// start, the worker comes back unchanged.
    pub(super) fn renew(mut self) -> Result<(), Box<Worker>> {
        // Refused connections waiting for their request live in this
        // thread's table; they are not worth carrying over.
        self.expire_refused(true);
        let (tx, rx) = std::sync::mpsc::channel();
        let threads = self.threads.clone();
        // The slot gets the new handle before this thread ends, so that
        // `Workers::join` always finds the current thread.
        let mut slots = lock(&threads);
        // The old thread may still be finishing; trim once it is surely gone.
        let trim_at = Instant::now() + Duration::from_secs(1);
        match start_thread(self.index, self.unshare, None, rx, Some(trim_at), self.shared.clone()) {
            Ok(t) => slots[self.index] = Some(t),
            Err(e) => {
                log::warn!(
                    "worker {}: cannot start a fresh thread, keeping this one: {e}",
                    self.index
                );
                return Err(Box::new(self));
            }
        }
        drop(slots);
        if self.accept_failures > 0 {
            // The successor starts with no failures behind it.
            self.shared.lifecycle.set_accept_failing(false);
        }
        self.shared
            .stats
            .worker_renewals
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        log::debug!("worker {}: everyone left; continuing on a fresh thread", self.index);
        let _ = tx.send(Handover {
            index: self.index,
            settings: self.front.settings().clone(),
            shared: self.shared,
            epoll: self.epoll,
            listener: self.listener,
            sizing: Sizing {
                capacity: self.capacity,
                send_buf: self.send_buf,
                recv_buf: self.recv_buf,
            },
            accept_paused: self.accept_paused,
            unshare: self.unshare,
            threads: self.threads,
        });
        Ok(())
    }
}

/// What a worker is built from, at start and when it renews itself.
pub(super) struct Handover {
    pub index: usize,
    pub shared: Arc<Shared>,
    pub settings: Settings,
    pub epoll: Epoll,
    pub listener: Arc<TcpListener>,
    pub sizing: Sizing,
    pub accept_paused: bool,
    pub unshare: bool,
    pub threads: Threads,
}

impl Handover {
    /// The worker, built on its own thread, with no connections yet; it
    /// trims the heap at `trim_at` if given.
    pub(super) fn into_worker(self, trim_at: Option<Instant>) -> Worker {
        let max_connections = self.shared.config().front.max_connections as u64;
        Worker {
            index: self.index,
            front: Front::new(self.index, self.shared.clone(), self.settings),
            shared: self.shared,
            epoll: self.epoll,
            listener: self.listener,
            capacity: self.sizing.capacity,
            send_buf: self.sizing.send_buf,
            recv_buf: self.sizing.recv_buf,
            accept_paused: self.accept_paused,
            max_connections,
            accept_failures: 0,
            accept_pause_until: 0,
            refusing: Vec::new(),
            drain_deadline: None,
            running: true,
            unshare: self.unshare,
            threads: self.threads,
            trim_at,
        }
    }
}
