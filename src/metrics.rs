//! Server-wide figures for operators: one [`Snapshot`] of the counters,
//! rendered as JSON for the admin's `/stats` (the operator page) and in the
//! Prometheus text format for `/metrics`.
//!
//! Reading a snapshot takes the channel-table lock once (for the channel and
//! subscriber totals) and reads `/proc/self/statm`; nothing is computed per
//! connection. The latency histograms and how the delivery path records
//! into them without an atomic per write are in [`latency`].

pub mod latency;

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::admin::ENDPOINT_LABELS;
use crate::front::transport::Transport;
use crate::incidents::Reason;
use crate::shared::Shared;
use latency::{Histogram, HistogramSnapshot, BOUNDS_SECS};

/// Counters the workers and the admin side update as things happen.
#[derive(Debug, Default)]
pub struct Stats {
    /// Waiting subscribers by transport (`Transport::index`).
    pub subscribers_by_transport: [AtomicU64; Transport::COUNT],
    /// Connections accepted and then refused because `front.max_connections`
    /// were open.
    pub refused_full: AtomicU64,
    /// Connections refused by `front.max_connections_per_ip`.
    pub refused_per_ip: AtomicU64,
    /// Front connections accepted since start (refused ones included).
    pub accepted: AtomicU64,
    /// Times a worker gave back its arrays because everyone left.
    pub worker_releases: AtomicU64,
    /// Frames written to subscribers.
    pub delivered: AtomicU64,
    /// Subscribers dropped because their output queue overflowed.
    pub slow_consumer_drops: AtomicU64,
    /// Front connections currently open.
    pub connections: AtomicU64,
    /// Worker threads that ended unexpectedly (the server then exits).
    pub workers_dead: AtomicU64,
    /// Connections closed because their request head did not arrive within
    /// `front.header_timeout_secs`.
    pub head_timeouts: AtomicU64,
    /// Failed `accept` calls (descriptors or kernel memory exhausted).
    pub accept_errors: AtomicU64,
    /// Front requests answered 400, 413, 431 or 501 and closed (malformed
    /// or oversized heads, bad parameters).
    pub bad_requests: AtomicU64,
    /// WebSocket upgrades refused before the upgrade (400, 403, 405, 426).
    pub ws_refused_upgrades: AtomicU64,
    /// WebSocket connections closed for a protocol error (1002, 1007, 1009).
    pub ws_protocol_errors: AtomicU64,
    /// WebSocket connections closed for sending too many frames (1008).
    pub ws_flood_closes: AtomicU64,
    /// Delivery latency by transport (`Transport::index`): from the admin
    /// request's arrival to the write to the subscriber.
    pub delivery_latency: [Histogram; Transport::COUNT],
    /// Admin request durations by endpoint (`crate::admin::ENDPOINT_LABELS`).
    pub admin_duration: [Histogram; ENDPOINT_LABELS.len()],
    /// Reloads (SIGHUP) that put a configuration in force.
    pub reloads_applied: AtomicU64,
    /// Reloads refused because the file or the environment was invalid.
    pub reloads_invalid: AtomicU64,
}

/// The figures at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Whole seconds since the server started.
    pub uptime_secs: u64,
    /// Open front connections.
    pub connections: u64,
    /// Waiting subscribers per transport, in [`Transport::ALL`] order.
    pub by_transport: [u64; Transport::COUNT],
    /// Channels that exist.
    pub channels: u64,
    /// Subscribers the channel table counts (long polls in flight included).
    pub subscribers: u64,
    /// Messages published since start (a broadcast counts once per channel).
    pub published: u64,
    /// Frames written to subscribers since start.
    pub delivered: u64,
    /// Subscribers dropped as slow consumers since start.
    pub slow_consumer_drops: u64,
    /// Connections refused because `front.max_connections` were open.
    pub refused_full: u64,
    /// Connections refused by `front.max_connections_per_ip`.
    pub refused_per_ip: u64,
    /// Front connections accepted since start.
    pub accepted: u64,
    /// Presence listeners dropped for falling behind.
    pub presence_drops: u64,
    /// Resident memory of the process, in bytes (0 if unknown).
    pub rss_bytes: u64,
    /// Front worker threads that died (the server is stopping when not 0).
    pub workers_dead: u64,
    /// Times a worker gave back its arrays because everyone left.
    pub worker_releases: u64,
    /// Losses by `incidents::Reason`, in `Reason::ALL` order (the kernel's
    /// counted since the server started).
    pub incidents: crate::incidents::Counts,
    /// Delivery latency per transport, in [`Transport::ALL`] order.
    pub delivery_latency: [HistogramSnapshot; Transport::COUNT],
    /// Admin request durations, in [`ENDPOINT_LABELS`] order.
    pub admin_duration: [HistogramSnapshot; ENDPOINT_LABELS.len()],
    /// Reloads applied.
    pub reloads_applied: u64,
    /// Reloads refused as invalid.
    pub reloads_invalid: u64,
    /// JWT verification and the hooks to the application.
    pub backend: crate::backend::BackendSnapshot,
    /// Cluster mode: the `comet_cluster_*` families, already rendered
    /// (`crate::link::prometheus`); empty on a single node.
    pub cluster: String,
}

impl Snapshot {
    /// Reads the counters and the process's resident memory.
    pub fn take(shared: &Shared) -> Snapshot {
        let s = &shared.stats;
        let (channels, subscribers) = shared.channels.totals();
        let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        Snapshot {
            uptime_secs: shared.uptime().as_secs(),
            connections: get(&s.connections),
            by_transport: std::array::from_fn(|i| get(&s.subscribers_by_transport[i])),
            channels: channels as u64,
            subscribers,
            published: shared.channels.published(),
            delivered: get(&s.delivered),
            slow_consumer_drops: get(&s.slow_consumer_drops),
            refused_full: get(&s.refused_full),
            refused_per_ip: get(&s.refused_per_ip),
            accepted: get(&s.accepted),
            presence_drops: shared.channels.presence().dropped(),
            rss_bytes: resident_bytes().unwrap_or(0),
            workers_dead: get(&s.workers_dead),
            worker_releases: get(&s.worker_releases),
            incidents: crate::incidents::sample(s, crate::incidents::Kernel::read(), shared.kernel_base),
            delivery_latency: std::array::from_fn(|i| s.delivery_latency[i].snapshot()),
            admin_duration: std::array::from_fn(|i| s.admin_duration[i].snapshot()),
            reloads_applied: get(&s.reloads_applied),
            reloads_invalid: get(&s.reloads_invalid),
            backend: shared.backend.snapshot(),
            cluster: {
                let mut text = String::new();
                crate::link::prometheus(&shared.channels, &mut text);
                text
            },
        }
    }

    /// `"delivery_latency_ms"`'s value: the bucket bounds, then for all
    /// transports together (`all`, with its bucket counts for charts) and
    /// for each one, the count and the p50 and p99 estimated from the
    /// buckets, in milliseconds (`null` before any delivery).
    fn latency_json(&self) -> String {
        let ms = |q: Option<f64>| q.map_or_else(|| "null".to_string(), |s| format!("{:.3}", s * 1000.0));
        // An object left open, so that `all` can add its buckets.
        let figures = |h: &HistogramSnapshot| {
            format!(
                r#"{{"count":{},"p50":{},"p99":{}"#,
                h.count(),
                ms(h.quantile(0.5)),
                ms(h.quantile(0.99))
            )
        };
        let mut all = HistogramSnapshot::default();
        for h in &self.delivery_latency {
            all.merge(h);
        }
        let list = |v: &mut dyn Iterator<Item = String>| v.collect::<Vec<_>>().join(",");
        let mut out = format!(
            r#"{{"le":[{}],"all":{},"buckets":[{}]}}"#,
            list(&mut BOUNDS_SECS.iter().map(|b| format!("{}", b * 1000.0))),
            figures(&all),
            list(&mut all.buckets.iter().map(u64::to_string)),
        );
        for (t, h) in Transport::ALL.iter().zip(&self.delivery_latency) {
            let _ = write!(out, r#","{}":{}}}"#, t.name(), figures(h));
        }
        out.push('}');
        out
    }

    /// One JSON object (the operator page's feed).
    pub fn to_json(&self) -> String {
        let mut by = String::new();
        for (i, t) in Transport::ALL.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            let _ = write!(by, r#"{sep}"{}":{}"#, t.name(), self.by_transport[i]);
        }
        format!(
            concat!(
                r#"{{"uptime_secs":{},"connections":{},"connections_by_transport":{{{}}},"#,
                r#""channels":{},"subscribers":{},"published":{},"delivered":{},"#,
                r#""slow_consumer_drops":{},"refused_connections":{},"accepted_connections":{},"#,
                r#""presence_drops":{},"rss_bytes":{},"workers_dead":{},"#,
                r#""delivery_latency_ms":{},"config_reloads":{{"applied":{},"invalid":{}}}}}"#
            ),
            self.uptime_secs,
            self.connections,
            by,
            self.channels,
            self.subscribers,
            self.published,
            self.delivered,
            self.slow_consumer_drops,
            self.refused_full + self.refused_per_ip,
            self.accepted,
            self.presence_drops,
            self.rss_bytes,
            self.workers_dead,
            self.latency_json(),
            self.reloads_applied,
            self.reloads_invalid,
        )
    }

    /// The Prometheus text exposition format (version 0.0.4).
    pub fn to_prometheus(&self) -> String {
        let mut out = String::with_capacity(2048);
        let mut family = |name: &str, kind: &str, help: &str, samples: &[(&str, u64)]| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (labels, v) in samples {
                let _ = writeln!(out, "{name}{labels} {v}");
            }
        };
        let idle = self.connections.saturating_sub(self.by_transport.iter().sum());
        let labels: Vec<String> = Transport::ALL
            .iter()
            .map(|t| format!(r#"{{transport="{}"}}"#, t.name()))
            .collect();
        let mut conns: Vec<(&str, u64)> = labels
            .iter()
            .zip(self.by_transport)
            .map(|(l, v)| (l.as_str(), v))
            .collect();
        conns.push((r#"{transport="none"}"#, idle));
        family(
            "comet_connections",
            "gauge",
            "Open front connections, by the transport of their subscription (none: no subscription).",
            &conns,
        );
        family(
            "comet_channels",
            "gauge",
            "Channels that exist.",
            &[("", self.channels)],
        );
        family(
            "comet_subscribers",
            "gauge",
            "Subscribers counted by the channel table.",
            &[("", self.subscribers)],
        );
        family(
            "comet_messages_published_total",
            "counter",
            "Messages published (a broadcast counts once per channel).",
            &[("", self.published)],
        );
        family(
            "comet_messages_delivered_total",
            "counter",
            "Frames written to subscribers.",
            &[("", self.delivered)],
        );
        family(
            "comet_slow_consumer_drops_total",
            "counter",
            "Subscribers disconnected because their output queue overflowed.",
            &[("", self.slow_consumer_drops)],
        );
        family(
            "comet_connections_accepted_total",
            "counter",
            "Front connections accepted.",
            &[("", self.accepted)],
        );
        family(
            "comet_connections_refused_total",
            "counter",
            "Front connections refused, by reason.",
            &[
                (r#"{reason="max_connections"}"#, self.refused_full),
                (r#"{reason="per_ip"}"#, self.refused_per_ip),
            ],
        );
        let reason = |r: Reason| self.incidents[r.index()];
        family(
            "comet_connections_closed_total",
            "counter",
            "Front connections the server closed because of the client, by reason.",
            &[
                (r#"{reason="head_timeout"}"#, reason(Reason::HeadTimeout)),
                (r#"{reason="bad_request"}"#, reason(Reason::BadRequest)),
                (r#"{reason="ws_upgrade_refused"}"#, reason(Reason::WsUpgrade)),
                (r#"{reason="ws_protocol_error"}"#, reason(Reason::WsProtocol)),
                (r#"{reason="ws_flood"}"#, reason(Reason::WsFlood)),
            ],
        );
        family(
            "comet_accept_errors_total",
            "counter",
            "Failed accepts of front connections (descriptors or kernel memory exhausted).",
            &[("", reason(Reason::AcceptError))],
        );
        family(
            "comet_kernel_listen_overflows_total",
            "counter",
            "Handshakes the kernel dropped because a listen queue was full, since comet started \
             (TcpExt ListenOverflows: every listener of this network namespace).",
            &[("", reason(Reason::ListenOverflow))],
        );
        family(
            "comet_kernel_syncookies_sent_total",
            "counter",
            "SYN cookies the kernel sent because a SYN queue was full, since comet started \
             (TcpExt SyncookiesSent: every listener of this network namespace).",
            &[("", reason(Reason::SyncookiesSent))],
        );
        family(
            "comet_presence_drops_total",
            "counter",
            "Presence listeners dropped for falling behind.",
            &[("", self.presence_drops)],
        );
        family(
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            &[("", self.rss_bytes)],
        );
        family(
            "comet_workers_dead",
            "gauge",
            "Front worker threads that ended unexpectedly; the server stops when this is not 0.",
            &[("", self.workers_dead)],
        );
        family(
            "comet_worker_memory_releases_total",
            "counter",
            "Times a front worker gave back its connection arrays and buffers because every connection it held had left.",
            &[("", self.worker_releases)],
        );
        family(
            "comet_uptime_seconds",
            "gauge",
            "Seconds since the server started.",
            &[("", self.uptime_secs)],
        );
        family(
            "comet_config_reloads_total",
            "counter",
            "Configuration reloads (SIGHUP), by result: applied, or invalid (the running configuration stayed).",
            &[
                (r#"{result="applied"}"#, self.reloads_applied),
                (r#"{result="invalid"}"#, self.reloads_invalid),
            ],
        );
        let name = "comet_delivery_latency_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} From the admin request's arrival to the write to a subscriber, by transport."
        );
        let _ = writeln!(out, "# TYPE {name} histogram");
        for (t, h) in Transport::ALL.iter().zip(&self.delivery_latency) {
            h.write_prometheus(&mut out, name, "transport", t.name());
        }
        let name = "comet_admin_request_duration_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Admin requests, from arrival to the response head, by endpoint (those used so far)."
        );
        let _ = writeln!(out, "# TYPE {name} histogram");
        for (label, h) in ENDPOINT_LABELS.iter().zip(&self.admin_duration) {
            if h.count() > 0 {
                h.write_prometheus(&mut out, name, "endpoint", label);
            }
        }
        self.backend.write_prometheus(&mut out);
        out.push_str(&self.cluster);
        out
    }
}

/// Resident memory from `/proc/self/statm` (second field, in pages).
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf only reads a system constant.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok().filter(|p| *p > 0)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Snapshot {
        Snapshot {
            uptime_secs: 7,
            connections: 10,
            by_transport: [1, 2, 3, 0, 0],
            channels: 4,
            subscribers: 6,
            published: 11,
            delivered: 22,
            slow_consumer_drops: 1,
            refused_full: 2,
            refused_per_ip: 3,
            accepted: 15,
            presence_drops: 0,
            rss_bytes: 4096,
            workers_dead: 0,
            incidents: std::array::from_fn(|i| 100 + i as u64),
            reloads_applied: 2,
            reloads_invalid: 1,
            ..Snapshot::default()
        }
    }

    #[test]
    fn json_has_every_figure() {
        assert_eq!(
            sample().to_json(),
            concat!(
                r#"{"uptime_secs":7,"connections":10,"#,
                r#""connections_by_transport":{"poll":1,"stream":2,"sse":3,"iframe":0,"ws":0},"#,
                r#""channels":4,"subscribers":6,"published":11,"delivered":22,"#,
                r#""slow_consumer_drops":1,"refused_connections":5,"accepted_connections":15,"#,
                r#""presence_drops":0,"rss_bytes":4096,"workers_dead":0,"#,
                r#""delivery_latency_ms":{"le":[0.1,0.25,0.5,1,2.5,5,10,25,50,100,250,500,1000,2500,5000,10000,25000,60000],"#,
                r#""all":{"count":0,"p50":null,"p99":null,"buckets":[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]},"#,
                r#""poll":{"count":0,"p50":null,"p99":null},"stream":{"count":0,"p50":null,"p99":null},"#,
                r#""sse":{"count":0,"p50":null,"p99":null},"iframe":{"count":0,"p50":null,"p99":null},"#,
                r#""ws":{"count":0,"p50":null,"p99":null}},"#,
                r#""config_reloads":{"applied":2,"invalid":1}}"#
            )
        );
    }

    #[test]
    fn json_latency_figures_are_estimated_from_the_buckets() {
        let mut s = sample();
        // 9 SSE deliveries in (0.5 ms, 1 ms], 1 stream delivery in (5 s, 10 s].
        s.delivery_latency[Transport::Sse.index()].buckets[3] = 9;
        s.delivery_latency[Transport::Stream.index()].buckets[15] = 1;
        let v: serde_json::Value = serde_json::from_str(&s.to_json()).expect("JSON");
        let l = &v["delivery_latency_ms"];
        assert_eq!(l["sse"], serde_json::json!({"count": 9, "p50": 0.75, "p99": 0.995}));
        assert_eq!(
            l["stream"],
            serde_json::json!({"count": 1, "p50": 7500.0, "p99": 9950.0})
        );
        assert_eq!(l["all"]["count"], 10);
        assert_eq!(l["all"]["p50"], 0.778);
        assert_eq!(l["all"]["buckets"][3], 9);
        assert_eq!(l["all"]["buckets"][15], 1);
        assert_eq!(l["le"].as_array().map(Vec::len), Some(latency::BUCKETS - 1));
    }

    #[test]
    fn prometheus_families_are_well_formed() {
        let text = sample().to_prometheus();
        assert!(text.contains("comet_connections{transport=\"sse\"} 3\n"));
        // 10 open, 6 of them subscribed: 4 without a subscription.
        assert!(text.contains("comet_connections{transport=\"none\"} 4\n"));
        assert!(text.contains("comet_connections_refused_total{reason=\"per_ip\"} 3\n"));
        assert!(text.contains("process_resident_memory_bytes 4096\n"));
        let at = |r: Reason| 100 + r.index();
        for (line, r) in [
            (
                "comet_connections_closed_total{reason=\"head_timeout\"}",
                Reason::HeadTimeout,
            ),
            (
                "comet_connections_closed_total{reason=\"bad_request\"}",
                Reason::BadRequest,
            ),
            ("comet_connections_closed_total{reason=\"ws_flood\"}", Reason::WsFlood),
            ("comet_accept_errors_total", Reason::AcceptError),
            ("comet_kernel_listen_overflows_total", Reason::ListenOverflow),
            ("comet_kernel_syncookies_sent_total", Reason::SyncookiesSent),
        ] {
            assert!(text.contains(&format!("{line} {}\n", at(r))), "{line}");
        }
        assert!(text.contains("comet_config_reloads_total{result=\"applied\"} 2\n"));
        assert!(text.contains("comet_config_reloads_total{result=\"invalid\"} 1\n"));
        assert!(text.contains("comet_delivery_latency_seconds_count{transport=\"iframe\"} 0\n"));
        assert!(
            !text.contains("comet_admin_request_duration_seconds_count"),
            "no endpoint used yet"
        );
        // Every sample line belongs to the family announced just before it.
        let mut family = "";
        let mut kind = "";
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                family = rest.split(' ').next().expect("name");
                kind = rest.split(' ').nth(1).expect("kind");
                assert!(["gauge", "counter", "histogram"].contains(&kind), "{line}");
                assert_eq!(kind == "counter", family.ends_with("_total"), "{line}");
            } else if !line.starts_with("# HELP ") {
                let name = line.split(['{', ' ']).next().expect("name");
                let value = line.rsplit(' ').next().expect("value");
                if kind == "histogram" {
                    let suffix = name.strip_prefix(family).unwrap_or_else(|| panic!("{line}"));
                    assert!(["_bucket", "_sum", "_count"].contains(&suffix), "{line}");
                    assert!(value.parse::<f64>().is_ok(), "{line}");
                } else {
                    assert_eq!(name, family, "{line}");
                    assert!(value.parse::<u64>().is_ok(), "{line}");
                }
            }
        }
    }

    #[test]
    fn admin_durations_list_the_endpoints_used() {
        let mut s = sample();
        let push = ENDPOINT_LABELS.iter().position(|l| *l == "push").expect("push");
        s.admin_duration[push].buckets[0] = 3;
        s.admin_duration[push].sum_ns = 150_000;
        let text = s.to_prometheus();
        assert!(text.contains("comet_admin_request_duration_seconds_bucket{endpoint=\"push\",le=\"0.0001\"} 3\n"));
        assert!(text.contains("comet_admin_request_duration_seconds_sum{endpoint=\"push\"} 0.00015\n"));
        assert!(text.contains("comet_admin_request_duration_seconds_count{endpoint=\"push\"} 3\n"));
        assert_eq!(text.matches("comet_admin_request_duration_seconds_count").count(), 1);
    }

    #[test]
    fn resident_memory_is_read() {
        assert!(resident_bytes().expect("statm") > 0);
    }
}
