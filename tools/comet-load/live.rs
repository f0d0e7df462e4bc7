//! What the main thread and the worker threads share: the run's start time, the
//! stop flag, and one set of live counters per worker that the worker overwrites
//! (relaxed stores of its own totals) and the main thread sums for progress and
//! for deciding when the run is over. Created before any worker starts, so no
//! descriptor is involved; nothing here is exact until the workers have stopped.
//! The publisher's target message and each worker's count of connections that
//! have it (`reach`) travel here too.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use crate::reach::{Reach, NO_TARGET};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Live counters of one worker, read by the main thread for progress.
#[derive(Debug, Default)]
pub struct Live {
    /// Connection attempts started.
    pub opened: AtomicU64,
    /// Connections currently established.
    pub open: AtomicU64,
    /// Connections that became ready.
    pub ready: AtomicU64,
    /// Connections that failed before becoming ready.
    pub failed_unready: AtomicU64,
    /// Connections that failed before seeing the last message.
    pub failed_unfinished: AtomicU64,
    /// Connections that saw the last message.
    pub finished: AtomicU64,
    /// Distinct deliveries.
    pub deliveries: AtomicU64,
    /// Errors of any kind.
    pub faults: AtomicU64,
    /// Connections that failed after becoming ready.
    pub failed_ready: AtomicU64,
    /// This worker's [`Reach`], packed ([`Reach::pack`]).
    pub reached: AtomicU64,
}

/// What the main thread and the workers share. Created before any worker starts.
#[derive(Debug)]
pub struct Shared {
    /// Start of the run.
    pub start: Instant,
    /// Set by the main thread to end the run.
    pub stop: AtomicBool,
    /// One entry per worker.
    pub live: Vec<Live>,
    /// The message the publisher waits for ([`NO_TARGET`]: none). Set before
    /// the message is published; workers read it at each read.
    pub target: AtomicU32,
}

/// Sums of the live counters of all workers.
#[derive(Debug, Default, Clone, Copy)]
pub struct Snapshot {
    /// See [`Live::opened`].
    pub opened: u64,
    /// See [`Live::open`].
    pub open: u64,
    /// See [`Live::ready`].
    pub ready: u64,
    /// See [`Live::failed_unready`].
    pub failed_unready: u64,
    /// See [`Live::failed_unfinished`].
    pub failed_unfinished: u64,
    /// See [`Live::finished`].
    pub finished: u64,
    /// See [`Live::deliveries`].
    pub deliveries: u64,
    /// See [`Live::faults`].
    pub faults: u64,
    /// See [`Live::failed_ready`].
    pub failed_ready: u64,
}

impl Shared {
    /// Shared state for `threads` workers.
    pub fn new(threads: usize) -> Shared {
        Shared {
            start: Instant::now(),
            stop: AtomicBool::new(false),
            live: (0..threads).map(|_| Live::default()).collect(),
            target: AtomicU32::new(NO_TARGET),
        }
    }

    /// Sums the live counters.
    pub fn snapshot(&self) -> Snapshot {
        let mut s = Snapshot::default();
        for l in &self.live {
            let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
            s.opened += get(&l.opened);
            s.open += get(&l.open);
            s.ready += get(&l.ready);
            s.failed_unready += get(&l.failed_unready);
            s.failed_unfinished += get(&l.failed_unfinished);
            s.finished += get(&l.finished);
            s.deliveries += get(&l.deliveries);
            s.faults += get(&l.faults);
            s.failed_ready += get(&l.failed_ready);
        }
        s
    }

    /// Live connections that have message `target`, over all workers.
    pub fn reached(&self, target: u32) -> u64 {
        self.live
            .iter()
            .map(|l| Reach::count_in(l.reached.load(Ordering::SeqCst), target))
            .sum()
    }

    /// Microseconds since the start of the run.
    pub fn elapsed_us(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }
}

/// Wall-clock microseconds since the UNIX epoch.
pub fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}
