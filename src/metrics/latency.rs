//! Latency histograms: delivery latency per transport (from the admin
//! request's arrival to the subscriber's write) and admin request duration
//! per endpoint, kept as Prometheus histograms with fixed buckets.
//!
//! A [`Histogram`] is a row of atomic bucket counters plus a sum, shared by
//! every thread that records into it. The delivery path never touches it
//! per write: each worker records into its own [`DeliveryRecorder`] (plain
//! integers, no allocation), reads the clock once per [`CLOCK_BATCH`]
//! writes, and adds what it counted to the shared histograms once per
//! mailbox command. So a write that comes up to `CLOCK_BATCH - 1` writes
//! after the clock was read is recorded with that earlier reading: the
//! error is at most the time those writes take, always towards less
//! latency. With a batch of 8 that is under 50 µs at the 6.5 µs of server
//! CPU a stream delivery costs on the 2-core test machine
//! (`tools/bench/fanout_cpu.py`), below the first bucket's 100 µs; the
//! clock (a vDSO call, 30 to 45 ns on that machine) then costs about 5 ns
//! per write.
//!
//! This module only counts and renders; it knows nothing of sockets,
//! channels or the admin API.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::front::Transport;

/// Upper bounds of the buckets, in seconds. Three per decade (1, 2.5, 5)
/// from 100 µs to 25 s, then 60 s: a delivery on loopback takes some tens
/// of microseconds, a publish to a busy channel milliseconds, and a
/// broadcast to a million subscribers about ten seconds from the first
/// write to the last, so its tail lands in the 10 s and 25 s buckets rather
/// than all in +Inf. Interpolating inside a bucket is then off by less than
/// the 2.5x between two bounds.
pub const BOUNDS_SECS: [f64; 18] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 60.0,
];

/// [`BOUNDS_SECS`] in nanoseconds, for the recording side.
const BOUNDS_NS: [u64; 18] = [
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
    25_000_000_000,
    60_000_000_000,
];

/// Buckets of a histogram: one per bound and the last, unbounded one (+Inf).
pub const BUCKETS: usize = BOUNDS_NS.len() + 1;

/// Writes between two readings of the clock while delivering.
pub const CLOCK_BATCH: u32 = 8;

/// The bucket a duration of `ns` nanoseconds falls in: the first whose
/// bound is at least `ns` (Prometheus' `le`, less than or equal).
pub fn bucket_of(ns: u64) -> usize {
    BOUNDS_NS.iter().position(|&b| ns <= b).unwrap_or(BUCKETS - 1)
}

/// Whole nanoseconds of `d`, saturating (585 years).
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// A histogram several threads add to.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS],
    sum_ns: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let ns = nanos(d);
        self.add(bucket_of(ns), 1, ns);
    }

    /// Adds `n` observations to bucket `b`, whose durations sum to `sum_ns`.
    pub fn add(&self, b: usize, n: u64, sum_ns: u64) {
        if let Some(bucket) = self.buckets.get(b) {
            bucket.fetch_add(n, Ordering::Relaxed);
            self.sum_ns.fetch_add(sum_ns, Ordering::Relaxed);
        }
    }

    /// The counts now.
    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            buckets: std::array::from_fn(|i| self.buckets[i].load(Ordering::Relaxed)),
            sum_ns: self.sum_ns.load(Ordering::Relaxed),
        }
    }
}

/// A histogram's counts at one moment (each bucket on its own, not cumulative).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// Observations per bucket, in [`BOUNDS_SECS`] order, then +Inf.
    pub buckets: [u64; BUCKETS],
    /// The sum of every observation, in nanoseconds.
    pub sum_ns: u64,
}

impl HistogramSnapshot {
    /// Observations in all.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// Adds `other`'s counts to these.
    pub fn merge(&mut self, other: &HistogramSnapshot) {
        for (a, b) in self.buckets.iter_mut().zip(other.buckets) {
            *a += b;
        }
        self.sum_ns += other.sum_ns;
    }

    /// The `q`-quantile (0 to 1) in seconds, estimated the way Prometheus'
    /// `histogram_quantile` does: linear inside the bucket that holds it,
    /// from 0 for the first bucket; in the +Inf bucket, the largest bound.
    /// `None` without observations.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * total as f64;
        let mut below = 0u64;
        for (i, &n) in self.buckets.iter().enumerate() {
            if n > 0 && (below + n) as f64 >= rank {
                let Some(&upper) = BOUNDS_SECS.get(i) else {
                    return Some(BOUNDS_SECS[BOUNDS_SECS.len() - 1]);
                };
                let lower = if i == 0 { 0.0 } else { BOUNDS_SECS[i - 1] };
                let within = ((rank - below as f64) / n as f64).clamp(0.0, 1.0);
                return Some(lower + (upper - lower) * within);
            }
            below += n;
        }
        Some(BOUNDS_SECS[BOUNDS_SECS.len() - 1])
    }

    /// Appends the `_bucket` (cumulative), `_sum` and `_count` samples of
    /// family `name` with the label `label="value"`.
    pub fn write_prometheus(&self, out: &mut String, name: &str, label: &str, value: &str) {
        let mut cumulative = 0u64;
        for (i, n) in self.buckets.iter().enumerate() {
            cumulative += n;
            let le = match BOUNDS_SECS.get(i) {
                Some(b) => b.to_string(),
                None => "+Inf".to_string(),
            };
            let _ = writeln!(out, "{name}_bucket{{{label}=\"{value}\",le=\"{le}\"}} {cumulative}");
        }
        let sum = self.sum_ns as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum{{{label}=\"{value}\"}} {sum}");
        let _ = writeln!(out, "{name}_count{{{label}=\"{value}\"}} {cumulative}");
    }
}

/// The clock a recorder reads; tests give their own.
pub type Clock = fn() -> Instant;

/// One worker's delivery latencies, counted locally and added to the shared
/// histograms once per mailbox command (see the module notes).
#[derive(Debug)]
pub struct DeliveryRecorder {
    /// When the admin request that caused the event arrived; `None`
    /// between events and for events without one (closes).
    arrival: Option<Instant>,
    /// Writes left before the clock is read again.
    left: u32,
    /// The bucket of the last reading.
    bucket: usize,
    /// The latency of the last reading, in nanoseconds.
    elapsed_ns: u64,
    /// Observations per transport and bucket since the last flush.
    counts: [[u64; BUCKETS]; Transport::COUNT],
    /// Their sums, in nanoseconds.
    sums: [u64; Transport::COUNT],
    /// Bit `t` set: transport `t` has observations to flush.
    dirty: u32,
    clock: Clock,
}

impl Default for DeliveryRecorder {
    fn default() -> DeliveryRecorder {
        DeliveryRecorder::with_clock(Instant::now)
    }
}

impl DeliveryRecorder {
    /// A recorder reading `clock`.
    pub fn with_clock(clock: Clock) -> DeliveryRecorder {
        DeliveryRecorder {
            arrival: None,
            left: 0,
            bucket: 0,
            elapsed_ns: 0,
            counts: [[0; BUCKETS]; Transport::COUNT],
            sums: [0; Transport::COUNT],
            dirty: 0,
            clock,
        }
    }

    /// An event that arrived at `arrival` is about to be written.
    pub fn begin(&mut self, arrival: Instant) {
        self.arrival = Some(arrival);
        self.left = 0;
    }

    /// One frame of the current event is being written to a subscriber of
    /// transport `t`. Nothing happens outside an event ([`Self::begin`]).
    #[inline]
    pub fn wrote(&mut self, t: Transport) {
        let Some(arrival) = self.arrival else { return };
        if self.left == 0 {
            self.elapsed_ns = nanos((self.clock)().saturating_duration_since(arrival));
            self.bucket = bucket_of(self.elapsed_ns);
            self.left = CLOCK_BATCH;
        }
        self.left -= 1;
        let i = t.index();
        self.counts[i][self.bucket] += 1;
        self.sums[i] = self.sums[i].saturating_add(self.elapsed_ns);
        self.dirty |= 1 << i;
    }

    /// Ends the current event and adds what was counted to `into` (one
    /// histogram per transport, in [`Transport::index`] order).
    pub fn flush(&mut self, into: &[Histogram; Transport::COUNT]) {
        self.arrival = None;
        while self.dirty != 0 {
            let i = self.dirty.trailing_zeros() as usize;
            self.dirty &= self.dirty - 1;
            let mut sum = std::mem::take(&mut self.sums[i]);
            for (b, n) in self.counts[i].iter_mut().enumerate() {
                if *n != 0 {
                    // The sum travels with the first non-empty bucket.
                    into[i].add(b, std::mem::take(n), std::mem::take(&mut sum));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    #[test]
    fn bounds_agree_and_rise() {
        for (s, ns) in BOUNDS_SECS.iter().zip(BOUNDS_NS) {
            assert_eq!((s * 1e9).round() as u64, ns);
        }
        assert!(BOUNDS_NS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn durations_fall_in_the_first_bucket_whose_bound_holds_them() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(100_000), 0, "le: the bound itself is inside");
        assert_eq!(bucket_of(100_001), 1);
        assert_eq!(bucket_of(1_000_000), 3);
        assert_eq!(bucket_of(9_000_000_000), 15);
        assert_eq!(bucket_of(60_000_000_000), 17);
        assert_eq!(bucket_of(60_000_000_001), BUCKETS - 1, "+Inf");
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    }

    fn snapshot(pairs: &[(usize, u64)]) -> HistogramSnapshot {
        let mut s = HistogramSnapshot::default();
        for &(b, n) in pairs {
            s.buckets[b] = n;
        }
        s
    }

    #[test]
    fn quantiles_interpolate_inside_their_bucket() {
        assert_eq!(HistogramSnapshot::default().quantile(0.5), None);
        // 10 in (0, 0.1 ms], 10 in (0.5 ms, 1 ms].
        let s = snapshot(&[(0, 10), (3, 10)]);
        assert_eq!(s.count(), 20);
        let q = |q: f64| s.quantile(q).expect("observations");
        assert!((q(0.25) - 0.00005).abs() < 1e-12, "{}", q(0.25));
        assert!(
            (q(0.5) - 0.0001).abs() < 1e-12,
            "the 10th is the first bucket's last: {}",
            q(0.5)
        );
        assert!((q(0.75) - 0.00075).abs() < 1e-12, "{}", q(0.75));
        assert!((q(0.99) - 0.00099).abs() < 1e-12, "{}", q(0.99));
        assert!((q(1.0) - 0.001).abs() < 1e-12);
        // Beyond the last bound the estimate is that bound.
        let inf = snapshot(&[(BUCKETS - 1, 3)]);
        assert_eq!(inf.quantile(0.5), Some(60.0));
        // A single observation in (5 s, 10 s]: the median is the bucket's middle.
        assert_eq!(snapshot(&[(15, 1)]).quantile(0.5), Some(7.5));
    }

    #[test]
    fn prometheus_samples_are_cumulative() {
        let mut s = snapshot(&[(0, 2), (2, 1), (BUCKETS - 1, 1)]);
        s.sum_ns = 61_500_000_000;
        let mut out = String::new();
        s.write_prometheus(&mut out, "m", "transport", "sse");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), BUCKETS + 2);
        assert_eq!(lines[0], r#"m_bucket{transport="sse",le="0.0001"} 2"#);
        assert_eq!(lines[1], r#"m_bucket{transport="sse",le="0.00025"} 2"#);
        assert_eq!(lines[2], r#"m_bucket{transport="sse",le="0.0005"} 3"#);
        assert_eq!(lines[BUCKETS - 2], r#"m_bucket{transport="sse",le="60"} 3"#);
        assert_eq!(lines[BUCKETS - 1], r#"m_bucket{transport="sse",le="+Inf"} 4"#);
        assert_eq!(lines[BUCKETS], r#"m_sum{transport="sse"} 61.5"#);
        assert_eq!(lines[BUCKETS + 1], r#"m_count{transport="sse"} 4"#);
    }

    #[test]
    fn observe_and_merge() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(700));
        h.observe(Duration::from_secs(3));
        let mut s = h.snapshot();
        assert_eq!(s.buckets[3], 1);
        assert_eq!(s.buckets[14], 1);
        assert_eq!(s.sum_ns, 3_000_700_000);
        s.merge(&h.snapshot());
        assert_eq!(s.count(), 4);
        assert_eq!(s.sum_ns, 6_001_400_000);
    }

    thread_local! {
        static NOW: Cell<Option<Instant>> = const { Cell::new(None) };
        static READS: Cell<u32> = const { Cell::new(0) };
    }

    fn fake_clock() -> Instant {
        READS.with(|r| r.set(r.get() + 1));
        NOW.with(|n| n.get()).expect("the test sets the time")
    }

    #[test]
    fn a_recorder_reads_the_clock_once_per_batch_and_flushes_per_event() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let hist: [Histogram; Transport::COUNT] = Default::default();
        let mut r = DeliveryRecorder::with_clock(fake_clock);
        r.wrote(Transport::Sse);
        assert_eq!(READS.with(Cell::get), 0, "outside an event nothing is read");
        r.begin(t0);
        NOW.with(|n| n.set(Some(at(2))));
        for _ in 0..CLOCK_BATCH {
            r.wrote(Transport::Sse);
        }
        assert_eq!(READS.with(Cell::get), 1, "one reading for a batch");
        NOW.with(|n| n.set(Some(at(20))));
        r.wrote(Transport::Stream);
        r.wrote(Transport::Sse);
        assert_eq!(READS.with(Cell::get), 2);
        assert_eq!(
            hist[Transport::Sse.index()].snapshot().count(),
            0,
            "nothing shared before the flush"
        );
        r.flush(&hist);
        let sse = hist[Transport::Sse.index()].snapshot();
        let stream = hist[Transport::Stream.index()].snapshot();
        assert_eq!(sse.buckets[bucket_of(2_000_000)], u64::from(CLOCK_BATCH));
        assert_eq!(sse.buckets[bucket_of(20_000_000)], 1);
        assert_eq!(sse.count(), u64::from(CLOCK_BATCH) + 1);
        assert_eq!(sse.sum_ns, u64::from(CLOCK_BATCH) * 2_000_000 + 20_000_000);
        assert_eq!(stream.count(), 1);
        assert_eq!(stream.sum_ns, 20_000_000);
        assert_eq!(hist[Transport::LongPoll.index()].snapshot().count(), 0);
        // After the flush the recorder is idle and empty.
        r.wrote(Transport::Sse);
        r.flush(&hist);
        assert_eq!(
            hist[Transport::Sse.index()].snapshot().count(),
            u64::from(CLOCK_BATCH) + 1
        );
        // A new event reads the clock at its first write.
        r.begin(at(20));
        r.wrote(Transport::LongPoll);
        assert_eq!(READS.with(Cell::get), 3);
        r.flush(&hist);
        assert_eq!(hist[Transport::LongPoll.index()].snapshot().buckets[0], 1, "0 ms");
    }
}
