//! Connections the server refused, closed or never saw, told to the operator:
//! one `warn` line per burst with the counts by reason.
//!
//! The workers only count (`metrics::Stats`, one relaxed add per event); a
//! storm of a million refusals must not become a million log lines or a lock.
//! [`run`] samples the counters once a second, together with the kernel's
//! listen-queue counters (`/proc/net/netstat`: connections the kernel
//! dropped or answered with SYN cookies before comet could accept them,
//! which comet cannot count itself). A burst starts with the first second
//! in which a count grew and ends with the first quiet second; its line then
//! says how long it lasted and how many of each reason it saw. A burst that
//! goes on is reported every [`LONG_BURST_REPORT`] so that the log is never
//! silent for long during trouble. [`Watch`] is that logic without the clock
//! or the log, for the tests.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::metrics::Stats;
use crate::shared::Shared;

/// How often the counters are sampled.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(1);

/// How often a burst that does not end is reported while it goes on.
pub const LONG_BURST_REPORT: Duration = Duration::from_secs(30);

/// One reason a connection or request was lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Refused at accept: `front.max_connections` open.
    MaxConnections,
    /// Refused at accept: `front.max_connections_per_ip` open from its address.
    PerIp,
    /// `accept` failed (descriptors or kernel memory exhausted).
    AcceptError,
    /// Closed: the request head did not arrive within `front.header_timeout_secs`.
    HeadTimeout,
    /// Answered 400/413/431/501 and closed: a malformed or oversized request.
    BadRequest,
    /// A WebSocket upgrade refused (bad handshake, origin, method, version).
    WsUpgrade,
    /// Closed: a WebSocket protocol error (1002, 1007, 1009).
    WsProtocol,
    /// Closed: a WebSocket client sent frames too fast (1008).
    WsFlood,
    /// Closed: a subscriber's output queue overflowed (it reads too slowly).
    SlowConsumer,
    /// The kernel's accept queue of a listener was full: the handshake's last
    /// packet was dropped (the client retransmits or times out).
    ListenOverflow,
    /// The kernel answered a SYN with a cookie (its SYN queue was full).
    SyncookiesSent,
}

impl Reason {
    /// Every reason, in report order.
    pub const ALL: [Reason; 11] = [
        Reason::MaxConnections,
        Reason::PerIp,
        Reason::AcceptError,
        Reason::HeadTimeout,
        Reason::BadRequest,
        Reason::WsUpgrade,
        Reason::WsProtocol,
        Reason::WsFlood,
        Reason::SlowConsumer,
        Reason::ListenOverflow,
        Reason::SyncookiesSent,
    ];

    /// Its place in [`Reason::ALL`] and in [`Counts`] (declaration order).
    pub fn index(self) -> usize {
        self as usize
    }

    /// How the log line names it, after the count.
    pub fn phrase(self) -> &'static str {
        match self {
            Reason::MaxConnections => "refused (max_connections)",
            Reason::PerIp => "refused (max_connections_per_ip)",
            Reason::AcceptError => "failed accepts (descriptors or memory exhausted)",
            Reason::HeadTimeout => "closed (no request head within header_timeout_secs)",
            Reason::BadRequest => "bad requests answered and closed",
            Reason::WsUpgrade => "WebSocket upgrades refused",
            Reason::WsProtocol => "WebSocket protocol errors",
            Reason::WsFlood => "WebSocket clients closed for flooding",
            Reason::SlowConsumer => "slow consumers dropped",
            Reason::ListenOverflow => "listen queue overflows (kernel; the client retransmits)",
            Reason::SyncookiesSent => "SYN cookies sent (kernel)",
        }
    }
}

/// A count per reason, in [`Reason::ALL`] order.
pub type Counts = [u64; Reason::ALL.len()];

/// The kernel's counters this module reads, from `/proc/net/netstat`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Kernel {
    /// `TcpExt: ListenOverflows`.
    pub listen_overflows: u64,
    /// `TcpExt: SyncookiesSent`.
    pub syncookies_sent: u64,
}

impl Kernel {
    /// Reads the counters of this network namespace (every listener in it,
    /// not only comet's); zeros where the file or a field is missing.
    pub fn read() -> Kernel {
        std::fs::read_to_string("/proc/net/netstat")
            .map(|t| Kernel::parse(&t))
            .unwrap_or_default()
    }

    /// Parses the `TcpExt:` header and value lines of `/proc/net/netstat`.
    pub fn parse(text: &str) -> Kernel {
        let mut lines = text.lines().filter(|l| l.starts_with("TcpExt:"));
        let (Some(names), Some(values)) = (lines.next(), lines.next()) else {
            return Kernel::default();
        };
        let mut k = Kernel::default();
        for (name, value) in names.split_whitespace().zip(values.split_whitespace()).skip(1) {
            let v = value.parse().unwrap_or(0);
            match name {
                "ListenOverflows" => k.listen_overflows = v,
                "SyncookiesSent" => k.syncookies_sent = v,
                _ => {}
            }
        }
        k
    }
}

/// The counts now: the workers' counters and the kernel's growth since
/// `kernel_base` (the kernel counts since boot).
pub fn sample(stats: &Stats, kernel: Kernel, kernel_base: Kernel) -> Counts {
    let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    Reason::ALL.map(|r| match r {
        Reason::MaxConnections => get(&stats.refused_full),
        Reason::PerIp => get(&stats.refused_per_ip),
        Reason::AcceptError => get(&stats.accept_errors),
        Reason::HeadTimeout => get(&stats.head_timeouts),
        Reason::BadRequest => get(&stats.bad_requests),
        Reason::WsUpgrade => get(&stats.ws_refused_upgrades),
        Reason::WsProtocol => get(&stats.ws_protocol_errors),
        Reason::WsFlood => get(&stats.ws_flood_closes),
        Reason::SlowConsumer => get(&stats.slow_consumer_drops),
        Reason::ListenOverflow => kernel.listen_overflows.saturating_sub(kernel_base.listen_overflows),
        Reason::SyncookiesSent => kernel.syncookies_sent.saturating_sub(kernel_base.syncookies_sent),
    })
}

/// A burst in progress.
#[derive(Debug, Clone)]
struct Burst {
    started: Instant,
    reported: Instant,
    counts: Counts,
}

/// Burst detection over successive samples.
#[derive(Debug, Clone)]
pub struct Watch {
    last: Counts,
    burst: Option<Burst>,
}

impl Watch {
    /// Starts from the counts at `first`: only growth beyond them is reported.
    pub fn new(first: Counts) -> Watch {
        Watch {
            last: first,
            burst: None,
        }
    }

    /// Takes the sample `now` taken at `at`; the line to log, if any.
    pub fn tick(&mut self, now: Counts, at: Instant) -> Option<String> {
        let mut grew = [0u64; Reason::ALL.len()];
        for (g, (n, l)) in grew.iter_mut().zip(now.iter().zip(self.last)) {
            *g = n.saturating_sub(l);
        }
        self.last = now;
        let any = grew.iter().any(|&g| g > 0);
        match (&mut self.burst, any) {
            (None, false) => None,
            (None, true) => {
                self.burst = Some(Burst {
                    started: at,
                    reported: at,
                    counts: grew,
                });
                None
            }
            (Some(b), true) => {
                for (c, g) in b.counts.iter_mut().zip(grew) {
                    *c += g;
                }
                if at.duration_since(b.reported) < LONG_BURST_REPORT {
                    return None;
                }
                let line = describe("still going", at.duration_since(b.started), &b.counts);
                b.reported = at;
                b.counts = [0; Reason::ALL.len()];
                Some(line)
            }
            (Some(b), false) => {
                let line = describe("ended", at.duration_since(b.started), &b.counts);
                self.burst = None;
                Some(line)
            }
        }
    }
}

/// `front: connection trouble (ended, lasted 3 s): 120 refused (...), ...`.
fn describe(state: &str, lasted: Duration, counts: &Counts) -> String {
    let mut line = format!(
        "front: connection trouble ({state}, lasted {} s):",
        lasted.as_secs().max(1)
    );
    let mut first = true;
    for (r, &n) in Reason::ALL.iter().zip(counts) {
        if n > 0 {
            let sep = if first { " " } else { ", " };
            let _ = write!(line, "{sep}{n} {}", r.phrase());
            first = false;
        }
    }
    if first {
        line.push_str(" nothing new since the last report");
    }
    line.push_str("; totals in /metrics");
    line
}

/// Samples the counters once a second and logs each burst, until shutdown.
pub async fn run(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let base = shared.kernel_base;
    // Every counter starts at zero with the server (the kernel's are taken
    // relative to `kernel_base`), so nothing that happened before this task
    // first ran goes unreported.
    let mut w = Watch::new([0; Reason::ALL.len()]);
    let mut every = tokio::time::interval(SAMPLE_INTERVAL);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        if let Some(line) = w.tick(sample(&shared.stats, Kernel::read(), base), Instant::now()) {
            log::warn!("{line}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(pairs: &[(Reason, u64)]) -> Counts {
        Reason::ALL.map(|r| pairs.iter().find(|(p, _)| *p == r).map_or(0, |p| p.1))
    }

    #[test]
    fn one_line_per_burst_with_counts_by_reason() {
        let t0 = Instant::now();
        let s = |n| t0 + Duration::from_secs(n);
        let mut w = Watch::new(counts(&[(Reason::MaxConnections, 5)]));
        assert_eq!(w.tick(counts(&[(Reason::MaxConnections, 5)]), s(1)), None);
        assert_eq!(w.tick(counts(&[(Reason::MaxConnections, 105)]), s(2)), None);
        let two = counts(&[(Reason::MaxConnections, 120), (Reason::HeadTimeout, 3)]);
        assert_eq!(w.tick(two, s(3)), None);
        assert_eq!(
            w.tick(two, s(4)).as_deref(),
            Some(
                "front: connection trouble (ended, lasted 2 s): 115 refused (max_connections), \
                 3 closed (no request head within header_timeout_secs); totals in /metrics"
            )
        );
        assert_eq!(w.tick(two, s(5)), None, "quiet again");
    }

    #[test]
    fn a_long_burst_is_reported_while_it_goes_on() {
        let t0 = Instant::now();
        let mut w = Watch::new(counts(&[]));
        let mut lines = Vec::new();
        for sec in 1..=70u64 {
            let now = counts(&[(Reason::ListenOverflow, sec * 10)]);
            lines.extend(w.tick(now, t0 + Duration::from_secs(sec)));
        }
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].starts_with("front: connection trouble (still going, lasted 30 s): 310 listen"));
        assert!(lines[1].starts_with("front: connection trouble (still going, lasted 60 s): 300 listen"));
        let end = w.tick(counts(&[(Reason::ListenOverflow, 700)]), t0 + Duration::from_secs(71));
        assert_eq!(
            end.as_deref(),
            Some(
                "front: connection trouble (ended, lasted 70 s): 90 listen queue overflows \
                 (kernel; the client retransmits); totals in /metrics"
            )
        );
    }

    #[test]
    fn all_is_in_declaration_order() {
        for (i, r) in Reason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i, "{r:?}");
        }
    }

    #[test]
    fn kernel_counters_come_from_the_tcpext_lines() {
        let text = "TcpExt: SyncookiesSent SyncookiesRecv ListenOverflows ListenDrops\n\
                    TcpExt: 7 1 42 43\n\
                    IpExt: InNoRoutes\nIpExt: 0\n";
        assert_eq!(
            Kernel::parse(text),
            Kernel {
                listen_overflows: 42,
                syncookies_sent: 7
            }
        );
        assert_eq!(Kernel::parse("garbage"), Kernel::default());
        let base = Kernel {
            listen_overflows: 40,
            syncookies_sent: 9,
        };
        let c = sample(&Stats::default(), Kernel::parse(text), base);
        assert_eq!(
            c,
            counts(&[(Reason::ListenOverflow, 2)]),
            "growth since start, never negative"
        );
    }
}
