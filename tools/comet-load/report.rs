//! The end-of-run report: derived totals (expected, missing, verdict), the human
//! summary and the one JSON line for scripts (`{"comet_load":1,...}`). Formatting
//! only; the numbers come from the workers' merged [`Tally`] and the publisher.

use std::fmt::Write;

use crate::args::Args;
use crate::fault::Fault;
use crate::publish::PublishReport;
use crate::stats::{Histogram, Summary};
use crate::tally::Tally;

/// How the run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Every live connection got every message (or there was nothing to send).
    Complete,
    /// `--duration-secs` ran out first.
    TimedOut,
    /// Publishing was done and deliveries stopped coming for `--stall-secs`.
    Stalled,
    /// No connection became ready, so nothing was published.
    NoneReady,
}

impl End {
    fn name(self) -> &'static str {
        match self {
            End::Complete => "finished",
            End::TimedOut => "timed_out",
            End::Stalled => "stalled",
            End::NoneReady => "none_ready",
        }
    }
}

/// Everything the report needs.
#[derive(Debug)]
pub struct Report<'a> {
    /// The run plan.
    pub args: &'a Args,
    /// Merged counters of all workers.
    pub tally: Tally,
    /// What the publisher did (default when nothing was published).
    pub publish: PublishReport,
    /// Seconds until every connection was ready or had failed, if that happened.
    pub connect_secs: Option<f64>,
    /// Whole run, seconds.
    pub elapsed_secs: f64,
    /// How the run ended.
    pub end: End,
}

impl Report<'_> {
    /// Subscriptions a perfect run holds: a channel per connection, or
    /// `--ws-channels` each.
    pub fn planned_subscriptions(&self) -> u64 {
        u64::from(self.args.connections) * u64::from(self.args.ws_channels)
    }

    /// Deliveries a perfect run makes: every message on every subscription.
    pub fn expected(&self) -> u64 {
        self.planned_subscriptions() * u64::from(self.args.messages)
    }

    /// Deliveries that never arrived.
    pub fn missing(&self) -> u64 {
        self.expected().saturating_sub(self.tally.deliveries)
    }

    /// Connections never even attempted (the run ended first).
    pub fn unopened(&self) -> u64 {
        u64::from(self.args.connections).saturating_sub(self.tally.opened)
    }

    /// True when nothing went wrong: the exit status is 0.
    pub fn ok(&self) -> bool {
        self.end == End::Complete
            && self.tally.faults.total() == 0
            && self.missing() == 0
            && self.tally.duplicates == 0
            && self.publish.errors == 0
            && self.unopened() == 0
            && self.tally.ready == u64::from(self.args.connections)
    }

    /// The human summary (several lines, no trailing newline).
    pub fn human(&self) -> String {
        let a = self.args;
        let t = &self.tally;
        let mut s = String::new();
        let fronts: Vec<String> = a.fronts.iter().map(|f| f.to_string()).collect();
        let _ = writeln!(
            s,
            "comet-load: {} {} connections to {} over {} channels{}, {} threads, {} source addresses, nap {} µs",
            a.connections,
            a.transport.name(),
            fronts.join(","),
            a.channels,
            if a.ws_channels > 1 {
                format!(" ({} per connection)", a.ws_channels)
            } else {
                String::new()
            },
            a.threads,
            if a.source_ips == 0 {
                "kernel-chosen".to_string()
            } else {
                a.source_ips.to_string()
            },
            a.nap_us,
        );
        let _ = write!(
            s,
            "connections: opened {}, established {}, ready {}, never opened {}",
            t.opened,
            t.established,
            t.ready,
            self.unopened()
        );
        match self.connect_secs {
            Some(secs) => {
                let _ = writeln!(
                    s,
                    ", all settled in {secs:.3} s ({:.0}/s)",
                    t.ready as f64 / secs.max(1e-9)
                );
            }
            None => s.push_str(", never all settled\n"),
        }
        if a.ws_channels > 1 {
            let _ = writeln!(
                s,
                "subscriptions: {} of {} ({} channels on each connection)",
                t.subscriptions,
                self.planned_subscriptions(),
                a.ws_channels
            );
        }
        if let Some(sum) = t.setup.summary() {
            let _ = writeln!(s, "connect-to-subscribed, ms: {}", line(&sum));
        }
        if t.faults.total() == 0 {
            s.push_str("errors: none\n");
        } else {
            let kinds: Vec<String> = t.faults.nonzero().map(|(f, n)| format!("{} {n}", f.name())).collect();
            let _ = writeln!(s, "errors: {} ({})", t.faults.total(), kinds.join(", "));
        }
        if !t.ws_closes.is_empty() {
            let codes: Vec<String> = t.ws_closes.iter().map(|(c, n)| format!("{c}: {n}")).collect();
            let _ = writeln!(s, "websocket close codes: {}", codes.join(", "));
        }
        let _ = writeln!(
            s,
            "publish: {} {} messages of {} in {:.3} s, {} requests ok, {} failed{}",
            self.publish.published,
            a.mode.name(),
            a.messages,
            self.publish.secs,
            self.publish.requests_ok,
            self.publish.errors,
            self.publish
                .first_error
                .as_ref()
                .map(|e| format!(" (first: {e})"))
                .unwrap_or_default(),
        );
        let _ = writeln!(
            s,
            "deliveries: expected {}, delivered {}, missing {} (skipped over {}), duplicates {}, foreign {} \
             (next_seq {}, noop {}, re-polls {})",
            self.expected(),
            t.deliveries,
            self.missing(),
            t.skipped,
            t.duplicates,
            t.faults.get(Fault::Foreign),
            t.next_seqs,
            t.noops,
            t.repolls
        );
        let incomplete = t.incomplete + self.unopened() * u64::from(a.messages > 0);
        if incomplete > 0 {
            let _ = write!(s, "incomplete connections: {incomplete}");
            if let Some((index, got)) = t.first_incomplete {
                let _ = write!(
                    s,
                    " (first: #{index} on {}{}, got {got} of {})",
                    a.prefix,
                    index % a.channels,
                    a.messages
                );
            }
            s.push('\n');
        }
        match t.latency.summary() {
            Some(sum) => {
                let _ = writeln!(
                    s,
                    "latency (publish to receive), ms:\n  {}",
                    line(&sum).replace(", p50", "\n  p50")
                );
            }
            None => s.push_str("latency: no samples\n"),
        }
        let _ = writeln!(s, "{}", self.publish.rss.human());
        let _ = write!(
            s,
            "result: {} ({}) after {:.3} s",
            if self.ok() { "OK" } else { "FAILED" },
            self.end.name(),
            self.elapsed_secs
        );
        s
    }

    /// The JSON line for scripts.
    pub fn json(&self) -> String {
        let a = self.args;
        let t = &self.tally;
        let mut errors = String::new();
        for (i, f) in Fault::ALL.iter().enumerate() {
            let _ = write!(
                errors,
                "{}\"{}\":{}",
                if i > 0 { "," } else { "" },
                f.name(),
                t.faults.get(*f)
            );
        }
        let close_codes: Vec<String> = t.ws_closes.iter().map(|(c, n)| format!("\"{c}\":{n}")).collect();
        let close_codes = close_codes.join(",");
        let connect_secs = self.connect_secs.map_or("null".to_string(), |s| format!("{s:.3}"));
        format!(
            "{{\"comet_load\":1,\"ok\":{},\"end\":\"{}\",\"transport\":\"{}\",\"mode\":\"{}\",\"threads\":{},\
             \"source_ips\":{},\"nap_us\":{},\"connections\":{},\"channels\":{},\"ws_channels\":{},\"subscriptions\":{},\
             \"opened\":{},\"established\":{},\"ready\":{},\
             \"connect_errors\":{},\"connect_secs\":{},\"errors\":{{{}}},\"ws_close_codes\":{{{}}},\"error_total\":{},\"messages\":{},\
             \"published\":{},\"publish_errors\":{},\"expected_deliveries\":{},\"deliveries\":{},\"missing\":{},\
             \"skipped\":{},\"duplicates\":{},\"incomplete_connections\":{},\"elapsed_secs\":{:.3},\"setup_ms\":{},\"latency_ms\":{},{}}}",
            self.ok(),
            self.end.name(),
            a.transport.name(),
            a.mode.name(),
            a.threads,
            a.source_ips,
            a.nap_us,
            a.connections,
            a.channels,
            a.ws_channels,
            t.subscriptions,
            t.opened,
            t.established,
            t.ready,
            t.faults.connect_errors(),
            connect_secs,
            errors,
            close_codes,
            t.faults.total(),
            a.messages,
            self.publish.published,
            self.publish.errors,
            self.expected(),
            t.deliveries,
            self.missing(),
            t.skipped,
            t.duplicates,
            t.incomplete + self.unopened() * u64::from(a.messages > 0),
            self.elapsed_secs,
            json_hist(&t.setup),
            json_hist(&t.latency),
            self.publish.rss.json_members(),
        )
    }
}

fn line(s: &Summary) -> String {
    format!(
        "count {}, min {:.3}, max {:.3}, mean {:.3}, stddev {:.3}, p50 {:.3}, p75 {:.3}, p95 {:.3}, p98 {:.3}, p99 {:.3}, p99.9 {:.3}",
        s.count, s.min, s.max, s.mean, s.stddev, s.p[0], s.p[1], s.p[2], s.p[3], s.p[4], s.p[5]
    )
}

fn json_hist(h: &Histogram) -> String {
    match h.summary() {
        None => "{\"count\":0}".to_string(),
        Some(s) => format!(
            "{{\"count\":{},\"min\":{:.3},\"mean\":{:.3},\"stddev\":{:.3},\"p50\":{:.3},\"p75\":{:.3},\"p95\":{:.3},\
             \"p98\":{:.3},\"p99\":{:.3},\"p999\":{:.3},\"max\":{:.3}}}",
            s.count, s.min, s.mean, s.stddev, s.p[0], s.p[1], s.p[2], s.p[3], s.p[4], s.p[5], s.max
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_and_json_shape() {
        let args = Args::parse(["--connections", "4", "--messages", "2"].map(String::from)).expect("args");
        let mut tally = Tally {
            opened: 4,
            established: 4,
            ready: 4,
            deliveries: 8,
            ..Tally::default()
        };
        tally.latency.record(1500);
        let mut publish = PublishReport {
            published: 2,
            ..PublishReport::default()
        };
        publish.rss.set(crate::reach::Point::Ready, Ok(4096));
        publish.rss.set(crate::reach::Point::AfterFirst, Ok(8192));
        publish.rss.set(
            crate::reach::Point::AfterLast,
            Err("/stats has no rss_bytes field".into()),
        );
        let mut r = Report {
            args: &args,
            tally,
            publish,
            connect_secs: Some(0.5),
            elapsed_secs: 2.0,
            end: End::Complete,
        };
        assert!(r.ok());
        let json = r.json();
        assert!(json.starts_with("{\"comet_load\":1,\"ok\":true,"), "{json}");
        assert!(
            json.contains("\"expected_deliveries\":8,\"deliveries\":8,\"missing\":0,\"skipped\":0,\"duplicates\":0")
        );
        assert!(json.contains("\"latency_ms\":{\"count\":1,\"min\":1.500,"), "{json}");
        assert!(
            json.contains("\"source_ips\":0,\"nap_us\":0,\"connections\":4,"),
            "{json}"
        );
        assert!(
            json.ends_with(
                ",\"server_rss_ready\":4096,\"server_rss_after_first\":8192,\"server_rss_after_last\":null,\
                 \"server_rss_note\":\"/stats has no rss_bytes field\"}"
            ),
            "{json}"
        );
        assert!(!json.contains('\n'));
        assert!(
            r.human().contains(
                "\nserver RSS (admin /stats): all ready 0.0 MiB, after the first message 0.0 MiB, after the last - \
                 (/stats has no rss_bytes field)\nresult: OK"
            ),
            "{}",
            r.human()
        );

        r.tally.deliveries = 7;
        r.tally.duplicates = 1;
        assert!(!r.ok());
        assert_eq!(r.missing(), 1);
        assert!(r.json().contains("\"missing\":1,\"skipped\":0,\"duplicates\":1"));
        assert!(r.human().contains("result: FAILED"));
    }

    #[test]
    fn websocket_subscriptions_and_close_codes() {
        let line = "--connections 4 --messages 2 --transport ws --ws-channels 3";
        let args = Args::parse(line.split(' ').map(String::from)).expect("args");
        let mut tally = Tally {
            opened: 4,
            established: 4,
            ready: 4,
            subscriptions: 12,
            deliveries: 24,
            ..Tally::default()
        };
        let mut r = Report {
            args: &args,
            tally: tally.clone(),
            publish: PublishReport {
                published: 2,
                ..PublishReport::default()
            },
            connect_secs: Some(0.5),
            elapsed_secs: 2.0,
            end: End::Complete,
        };
        assert_eq!((r.planned_subscriptions(), r.expected(), r.missing()), (12, 24, 0));
        assert!(r.ok());
        let json = r.json();
        assert!(
            json.contains("\"transport\":\"ws\",")
                && json.contains("\"channels\":10,\"ws_channels\":3,\"subscriptions\":12,"),
            "{json}"
        );
        assert!(json.contains("\"ws_close_codes\":{},\"error_total\":0,"), "{json}");
        assert!(r
            .human()
            .contains("\nsubscriptions: 12 of 12 (3 channels on each connection)\n"));

        tally.deliveries = 21;
        tally.ws_close(Some(1001));
        tally.ws_close(Some(4429));
        tally.faults.add(Fault::WsClose);
        tally.faults.add(Fault::WsClose);
        r.tally = tally;
        assert!(!r.ok());
        let json = r.json();
        assert!(json.contains("\"ws_close\":2}"), "{json}");
        assert!(
            json.contains("\"ws_close_codes\":{\"1001\":1,\"4429\":1},\"error_total\":2,"),
            "{json}"
        );
        assert!(
            json.contains("\"expected_deliveries\":24,\"deliveries\":21,\"missing\":3,"),
            "{json}"
        );
        assert!(
            r.human().contains("\nwebsocket close codes: 1001: 1, 4429: 1\n"),
            "{}",
            r.human()
        );
    }
}
