//! Per-thread counters about connections and deliveries, including the two
//! histograms (connect-to-subscribed and publish-to-receive). A worker owns its
//! [`Tally`] outright; the main thread merges them after the workers stop.

use std::collections::BTreeMap;

use crate::fault::FaultCounts;
use crate::reach::Reach;
use crate::stats::Histogram;

/// Counters one thread keeps about its connections (merged across threads at the end).
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// Connection attempts started.
    pub opened: u64,
    /// Connections that completed the TCP handshake.
    pub established: u64,
    /// Connections established and not closed since.
    pub open: u64,
    /// Connections that became subscribed and waiting (see [`Sub::request_written`]).
    pub ready: u64,
    /// Connections that failed before becoming ready.
    pub failed_unready: u64,
    /// Connections that failed before seeing the last message.
    pub failed_unfinished: u64,
    /// Connections that failed after becoming ready.
    pub failed_ready: u64,
    /// Connections that saw the last message (with or without gaps before it).
    pub finished: u64,
    /// First deliveries of a message to a connection.
    pub deliveries: u64,
    /// Messages a connection never got although it got a later one (for a long
    /// poll: fell out of the server's history before the re-poll).
    pub skipped: u64,
    /// Repeated deliveries of a message to a connection.
    pub duplicates: u64,
    /// `next_seq` frames received.
    pub next_seqs: u64,
    /// `noop` frames received.
    pub noops: u64,
    /// Re-poll requests sent by long-poll clients.
    pub repolls: u64,
    /// Connections that ended the run without every message (counted at the end).
    pub incomplete: u64,
    /// The lowest-numbered incomplete connection: (index, messages received).
    pub first_incomplete: Option<(u32, u32)>,
    /// Subscriptions that had their first frame: one per ready connection,
    /// `--ws-channels` per WebSocket connection.
    pub subscriptions: u64,
    /// WebSocket close frames received, by close code (1005: no code).
    pub ws_closes: BTreeMap<u16, u64>,
    /// Errors by kind.
    pub faults: FaultCounts,
    /// Publish-to-receive latency, µs.
    pub latency: Histogram,
    /// Connect-to-ready time, µs.
    pub setup: Histogram,
    /// This thread's live connections that have the publisher's target
    /// message (not merged: it only means something per thread, live).
    pub reach: Reach,
}

/// The close code RFC 6455 §7.4.1 reserves for "no code in the close frame".
pub const NO_CLOSE_CODE: u16 = 1005;

impl Tally {
    /// Counts a close frame by its code.
    pub fn ws_close(&mut self, code: Option<u16>) {
        *self.ws_closes.entry(code.unwrap_or(NO_CLOSE_CODE)).or_default() += 1;
    }

    /// Adds another thread's counters.
    pub fn merge(&mut self, o: &Tally) {
        self.opened += o.opened;
        self.established += o.established;
        self.open += o.open;
        self.ready += o.ready;
        self.failed_unready += o.failed_unready;
        self.failed_unfinished += o.failed_unfinished;
        self.failed_ready += o.failed_ready;
        self.finished += o.finished;
        self.deliveries += o.deliveries;
        self.skipped += o.skipped;
        self.duplicates += o.duplicates;
        self.next_seqs += o.next_seqs;
        self.noops += o.noops;
        self.repolls += o.repolls;
        self.incomplete += o.incomplete;
        self.subscriptions += o.subscriptions;
        for (&code, &n) in &o.ws_closes {
            *self.ws_closes.entry(code).or_default() += n;
        }
        self.first_incomplete = match (self.first_incomplete, o.first_incomplete) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.faults.merge(&o.faults);
        self.latency.merge(&o.latency);
        self.setup.merge(&o.setup);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_codes_merge() {
        let mut a = Tally::default();
        a.ws_close(Some(1001));
        a.ws_close(None);
        let mut b = Tally::default();
        b.ws_close(Some(1001));
        b.ws_close(Some(4429));
        b.subscriptions = 3;
        a.merge(&b);
        assert_eq!(
            a.ws_closes.into_iter().collect::<Vec<_>>(),
            vec![(1001, 2), (1005, 1), (4429, 1)]
        );
        assert_eq!(a.subscriptions, 3);
    }
}
