//! A worker that everyone left hands over to a fresh thread.
//!
//! After a burst, freed memory should go back to the OS. `malloc_trim`
//! returns free pages, but glibc keeps up to seven freed blocks per size
//! class in each thread's cache (tcache), and those count as in use: blocks
//! scattered over many pages pin all of them. With one thread per
//! descriptor table (52 at 1M connections) that kept RSS at more than twice
//! its idle level after everyone left. The cache is emptied only when its
//! thread exits; so an emptied worker starts its successor and exits, and
//! the successor trims the heap once the old thread is gone. The successor
//! takes over the epoll instance, the listener state and the mailbox; it has
//! no connections to carry, and a fresh thread stack as well.
//!
//! comet now runs with glibc's per-thread cache off (`crate::malloc`), which
//! removes most of what this was for; it still matters when an operator
//! keeps the cache through `GLIBC_TUNABLES`, and a fresh thread gives back
//! the stack pages the old one touched.
//!
//! With private descriptor tables the successor copies the old worker's
//! table, which at that moment holds only what every worker inherited
//! (connections are all closed), so it needs no clean-up.

use std::sync::Arc;
use std::time::Instant;

use ahash::AHashMap;

use super::sys::Epoll;
use super::wheel::Wheel;
use super::{start_thread, Worker};

impl Worker {
    /// Starts the thread that takes over from this one; on success this
    /// thread must return from `run` at once (see `retire`).
    pub(super) fn start_successor(&mut self) -> std::io::Result<()> {
        // Refused connections waiting for their request live in this
        // thread's table; they are not worth carrying over.
        self.expire_refused(true);
        let epoll_fd = self.epoll.raw();
        let next = Handover {
            index: self.index,
            hub: self.hub.clone(),
            settings: self.settings.clone(),
            epoll_fd,
            listener: self.listener,
            capacity: self.capacity,
            accept_paused: self.accept_paused,
            accepting: self.accepting,
            next_acceptor: self.next_acceptor.clone(),
            max_connections: self.max_connections,
            unshare: self.unshare,
            threads: self.threads.clone(),
        };
        // The slot gets the new handle before this thread ends, so that
        // `Workers::join` always finds the current thread.
        let mut threads = crate::hub::lock(&self.threads);
        // The old thread may still be finishing; trim once it is surely gone.
        let trim_at = Instant::now() + std::time::Duration::from_secs(1);
        let t = start_thread(self.index, self.unshare, None, move || next.into_worker(Some(trim_at)))?;
        threads[self.index] = Some(t);
        self.hub
            .stats
            .worker_renewals
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        log::debug!("worker {}: everyone left; continuing on a fresh thread", self.index);
        Ok(())
    }

    /// Ends this worker's thread after `start_successor`: everything it
    /// allocated is freed here, on its own thread, before the thread exits
    /// and glibc empties its cache.
    pub(super) fn retire(self) {
        // The successor owns the epoll instance now: in a shared table this
        // descriptor is the successor's too, and in a private one it closes
        // with the table when this thread exits.
        let Worker { epoll, .. } = self;
        std::mem::forget(epoll);
    }
}

/// What a worker is built from, at start and when it renews itself:
/// nothing that closes a descriptor when dropped, so a failed thread start
/// leaves the old worker intact.
pub(super) struct Handover {
    pub index: usize,
    pub hub: Arc<crate::hub::Hub>,
    pub settings: super::Settings,
    pub epoll_fd: std::os::fd::RawFd,
    pub listener: std::os::fd::RawFd,
    pub capacity: usize,
    pub accept_paused: bool,
    pub accepting: bool,
    pub next_acceptor: Arc<std::sync::atomic::AtomicUsize>,
    pub max_connections: u64,
    pub unshare: bool,
    pub threads: super::Threads,
}

impl Handover {
    /// The worker, built on its own thread, with no connections yet; it
    /// trims the heap at `trim_at` if given.
    pub(super) fn into_worker(self, trim_at: Option<Instant>) -> Worker {
        Worker {
            index: self.index,
            hub: self.hub,
            settings: self.settings,
            epoll: Epoll::from_raw(self.epoll_fd),
            listener: self.listener,
            conns: Vec::new(),
            free: Vec::new(),
            open: 0,
            capacity: self.capacity,
            local: AHashMap::new(),
            wheel: Wheel::default(),
            now: 1,
            date: crate::front::respond::date_line(),
            rbuf: Vec::new(),
            accept_paused: self.accept_paused,
            accepting: self.accepting,
            next_acceptor: self.next_acceptor,
            max_connections: self.max_connections,
            accept_failures: 0,
            accept_pause_until: 0,
            refusing: Vec::new(),
            drain_deadline: None,
            running: true,
            renew: false,
            unshare: self.unshare,
            threads: self.threads,
            trim_at,
        }
    }
}
