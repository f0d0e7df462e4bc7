//! The `comet_cluster_*` families of `/metrics`: the Redis layer's
//! counters (connections, commands, maintenance) and the link's
//! ([`super::RemoteStats`]). Reads counters only.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::channels::Channels;

/// One figure of a PUB/SUB connection's counters.
type ConnFigure = fn(&crate::cluster::ConnCounters) -> u64;

/// The `comet_cluster_*` families of `/metrics` (Prometheus text, each with
/// HELP and TYPE), appended to `out`; nothing on a single node. Reads
/// counters only: no lock, no Redis call.
pub fn prometheus(channels: &Channels, out: &mut String) {
    use std::fmt::Write as _;
    let Some(cluster) = channels.cluster() else { return };
    let mut family = |name: &str, kind: &str, help: &str, samples: &[(String, u64)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, v) in samples {
            let _ = writeln!(out, "{name}{labels} {v}");
        }
    };
    let one = |v: u64| [(String::new(), v)];
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let conns = cluster.subscriptions().counters();
    let per_conn = |f: ConnFigure| -> Vec<(String, u64)> {
        conns
            .iter()
            .map(|(id, c)| {
                let label = match id {
                    crate::cluster::ConnId::Data(n) => format!("data{n}"),
                    crate::cluster::ConnId::Control => "control".to_string(),
                };
                (format!("{{connection=\"{label}\"}}"), f(c))
            })
            .collect()
    };
    let pubsub: [(&str, &str, &str, ConnFigure); 9] = [
        (
            "connects_total",
            "counter",
            "PUB/SUB connections to Redis established.",
            |c| c.connects,
        ),
        (
            "connect_failures_total",
            "counter",
            "PUB/SUB connection attempts that failed.",
            |c| c.connect_failures,
        ),
        (
            "lost_total",
            "counter",
            "Working PUB/SUB connections lost (Redis gone, a command failed, or hung).",
            |c| c.lost,
        ),
        (
            "hung_total",
            "counter",
            "PUB/SUB connections found hung by their probe and replaced.",
            |c| c.hung,
        ),
        (
            "probes_total",
            "counter",
            "Probes published to silent PUB/SUB connections.",
            |c| c.probes,
        ),
        (
            "malformed_total",
            "counter",
            "PUB/SUB messages that did not decode (dropped).",
            |c| c.malformed,
        ),
        (
            "confirmed_total",
            "counter",
            "Channel subscriptions Redis confirmed (each resubscription counts again).",
            |c| c.confirmed,
        ),
        (
            "resyncs_total",
            "counter",
            "Completed (re)subscriptions of every channel of a connection.",
            |c| c.resyncs,
        ),
        (
            "channels",
            "gauge",
            "Channels this node holds on the connection.",
            |c| c.joined,
        ),
    ];
    for (name, kind, help, f) in pubsub {
        family(&format!("comet_cluster_pubsub_{name}"), kind, help, &per_conn(f));
    }
    let store = cluster.store().stats();
    family(
        "comet_cluster_redis_errors_total",
        "counter",
        "Redis commands that failed (unreachable, refused or timed out); admin requests among them got 503.",
        &one(get(&store.errors)),
    );
    family(
        "comet_cluster_redis_timeouts_total",
        "counter",
        "Redis commands that hit cluster.call_timeout_ms.",
        &one(get(&store.timeouts)),
    );
    family(
        "comet_cluster_history_malformed_total",
        "counter",
        "History entries read from Redis that did not decode (left out).",
        &one(get(&store.malformed)),
    );
    let r = &channels.remote;
    let remote: [(&str, &str, &AtomicU64); 8] = [
        (
            "messages_total",
            "Messages received from Redis for channels held here.",
            &r.messages,
        ),
        (
            "duplicates_total",
            "Messages from Redis dropped as already delivered.",
            &r.duplicates,
        ),
        (
            "missed_total",
            "Messages lost for good (not in history any more): subscribers saw the jump in seq.",
            &r.missed,
        ),
        (
            "epoch_resets_total",
            "Channels Redis had lost (a new epoch) or rewound (older seqs, same epoch): subscribers were sent next_seq.",
            &r.epoch_resets,
        ),
        (
            "syncs_total",
            "Channel syncs completed (subscription confirmed, history merged).",
            &r.syncs,
        ),
        (
            "sync_filled_total",
            "Messages a sync delivered from history or from what arrived meanwhile.",
            &r.filled,
        ),
        (
            "sync_errors_total",
            "History reads of a sync that failed (retried).",
            &r.sync_errors,
        ),
        (
            "not_held_total",
            "Messages from Redis for channels this node no longer holds.",
            &r.not_held,
        ),
    ];
    for (name, help, v) in remote {
        family(&format!("comet_cluster_{name}"), "counter", help, &one(get(v)));
    }
    let m = cluster.maintenance_stats();
    family(
        "comet_cluster_maintenance_errors_total",
        "counter",
        "Background Redis work that failed, by task (node registry, reaper, index refresh, touch of a channel created here).",
        &[
            ("{task=\"report\"}".to_string(), get(&m.report_errors)),
            ("{task=\"reap\"}".to_string(), get(&m.reap_errors)),
            ("{task=\"refresh\"}".to_string(), get(&m.refresh_errors)),
            ("{task=\"touch\"}".to_string(), get(&m.touch_errors)),
        ],
    );
    family(
        "comet_cluster_reaped_total",
        "counter",
        "Idle channels this node freed cluster-wide as the elected reaper.",
        &one(get(&m.reaped)),
    );
}
