//! Cluster mode on this node: the seam between the channel table
//! (`crate::channels`) and the Redis layer (`crate::cluster`).
//!
//! [`start`] starts the Redis layer on the admin runtime with this node's
//! counts ([`LocalCounts`]) and a callback, [`on_event`], that applies what
//! Redis sends to the table: messages with Redis's seqs, closes and clears
//! from any node, cluster-wide presence, and each channel's confirmation,
//! which starts a sync (a history read, merged with what arrived meanwhile:
//! `ChannelTable::remote_synced`). The callback never blocks: history reads
//! run as tasks, at most [`SYNCS_IN_FLIGHT`] at a time. Everything that goes
//! wrong is counted in [`RemoteStats`] (`/metrics`); the Redis layer logs
//! connection losses once per outage.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::channel::{Arrival, EpochBytes, Kind, Message};
use crate::channels::Channels;
use crate::cluster::{ChannelParams, Cluster, ClusterError, ClusterEvent, ConnId, Control, LocalCounts};

/// History reads in flight at once (after a Redis restart every held
/// channel is confirmed again and synced).
pub const SYNCS_IN_FLIGHT: usize = 256;

/// Attempts of one channel's history read before the channel waits for its
/// next confirmation.
const SYNC_ATTEMPTS: u32 = 5;

/// What syncing with Redis did, for `/metrics`.
#[derive(Debug, Default)]
pub struct RemoteStats {
    /// Messages from Redis delivered (or buffered) here.
    pub messages: AtomicU64,
    /// Messages from Redis dropped as duplicates.
    pub duplicates: AtomicU64,
    /// Messages that never arrived and were not in history any more:
    /// subscribers saw the jump in seq.
    pub missed: AtomicU64,
    /// Channels Redis had lost (a new epoch): subscribers were reset.
    pub epoch_resets: AtomicU64,
    /// Syncs completed (a channel confirmed and its history merged).
    pub syncs: AtomicU64,
    /// Messages a sync delivered from history or from its buffer.
    pub filled: AtomicU64,
    /// History reads that failed.
    pub sync_errors: AtomicU64,
    /// PUB/SUB connections lost.
    pub connections_lost: AtomicU64,
    /// Channels a message from Redis arrived for that were not held here.
    pub not_held: AtomicU64,
    /// PUB/SUB connections currently subscribed and in sync, for `/ready`.
    pub up: Mutex<Vec<ConnId>>,
    /// PUB/SUB connections this node runs (`cluster.data_connections` + 1
    /// control); 0 until cluster mode starts.
    pub expected: AtomicU64,
}

impl RemoteStats {
    /// `Err(why)` unless every PUB/SUB connection is up and resynced: while
    /// one is not, messages of its channels may not reach this node.
    pub fn reachable(&self) -> Result<(), String> {
        let expected = self.expected.load(Ordering::Relaxed);
        let up = self.up.lock().unwrap_or_else(|p| p.into_inner()).len() as u64;
        if up >= expected {
            Ok(())
        } else {
            Err(format!(
                "cluster: {} of {expected} Redis PUB/SUB connections down or resubscribing",
                expected - up
            ))
        }
    }

    fn set_up(&self, conn: ConnId, up: bool) {
        let mut list = self.up.lock().unwrap_or_else(|p| p.into_inner());
        list.retain(|&c| c != conn);
        if up {
            list.push(conn);
        }
    }
}

/// This node's counts, as the Redis layer asks for them.
struct Counts(Arc<Channels>);

impl LocalCounts for Counts {
    fn subscribers_of(&self, cname: &str) -> u64 {
        u64::from(self.0.subscribers_of(cname))
    }

    fn totals(&self) -> (u64, u64) {
        let (channels, subscribers) = self.0.totals();
        (subscribers, channels as u64)
    }

    fn held_channels(&self, visit: &mut dyn FnMut(&str, u32)) {
        self.0.with_locked(|t, _| t.held(visit));
    }
}

/// Starts cluster mode; must run inside the admin runtime (its tasks run
/// there).
pub fn start(channels: &Arc<Channels>, config: &crate::config::Config) -> Result<Arc<Cluster>, ClusterError> {
    let params = ChannelParams {
        history_size: config.front.channel_buffer_size,
        channel_timeout_secs: config.front.effective_channel_timeout(),
    };
    let syncs = Arc::new(Semaphore::new(SYNCS_IN_FLIGHT));
    channels
        .remote
        .expected
        .store(config.cluster.data_connections as u64 + 1, Ordering::Relaxed);
    let target = channels.clone();
    let cluster = Arc::new(Cluster::start(
        &config.cluster,
        params,
        Arc::new(Counts(channels.clone())),
        move |ev| on_event(&target, &syncs, ev),
    )?);
    channels.set_cluster(cluster.clone(), config.front.auth == crate::config::Auth::Token);
    Ok(cluster)
}

/// Applies one event from Redis. Called from the Redis layer's reader
/// tasks: it only locks the table briefly and spawns history reads.
fn on_event(channels: &Arc<Channels>, syncs: &Arc<Semaphore>, ev: ClusterEvent) {
    let stats = &channels.remote;
    match ev {
        ClusterEvent::Message {
            cname,
            epoch,
            seq,
            kind,
            content,
        } => {
            let m = Message {
                seq,
                kind: kind_of(kind),
                content: content.as_str().into(),
            };
            let epoch = epoch_bytes(epoch.as_str());
            let arrival = channels.with_locked(|t, out| t.remote_message(&cname, epoch, m, out));
            match arrival {
                Arrival::Delivered | Arrival::Buffered => {}
                Arrival::Gap { missed } => {
                    stats.missed.fetch_add(u64::from(missed), Ordering::Relaxed);
                    log::debug!("cluster: {missed} messages of {cname:?} never arrived");
                }
                Arrival::Reset => {
                    stats.epoch_resets.fetch_add(1, Ordering::Relaxed);
                    log::info!("cluster: Redis lost channel {cname:?} (new epoch); its subscribers resume from it");
                }
                Arrival::Duplicate => {
                    stats.duplicates.fetch_add(1, Ordering::Relaxed);
                }
                Arrival::NotHeld => {
                    stats.not_held.fetch_add(1, Ordering::Relaxed);
                }
            }
            stats.messages.fetch_add(1, Ordering::Relaxed);
        }
        ClusterEvent::Control {
            cname,
            control,
            next_seq,
            ..
        } => match control {
            Control::Close => {
                channels.with_locked(|t, out| t.remote_close(&cname, next_seq, out));
            }
            Control::Clear => {
                channels.with_locked(|t, _| t.remote_clear(&cname));
            }
            Control::Free => {
                // The reaper freed it (its index entry expired, say while
                // Redis was unreachable) but subscribers here still hold it:
                // it exists again, as a subscriber would have created it.
                if channels.with_locked(|t, _| t.remote_held(&cname)) {
                    if let Some(c) = channels.cluster() {
                        c.touch(cname.clone());
                    }
                }
                log::debug!("cluster: channel {cname:?} expired cluster-wide");
            }
        },
        ClusterEvent::Confirmed { cname } => {
            let after = channels.with_locked(|t, _| t.remote_confirmed(&cname));
            if let Some(after) = after {
                tokio::spawn(sync(channels.clone(), syncs.clone(), cname, after));
            }
        }
        ClusterEvent::Lost { conn, .. } => {
            stats.connections_lost.fetch_add(1, Ordering::Relaxed);
            stats.set_up(conn, false);
        }
        ClusterEvent::Resynced {
            conn,
            channels: n,
            elapsed,
        } => {
            stats.set_up(conn, true);
            log::info!("cluster: {conn}: {n} channels confirmed again in {elapsed:?}");
        }
        ClusterEvent::Presence { online, cname } => channels.presence().emit(online, &cname),
    }
}

/// Reads a confirmed channel's history (after `after`) and merges it.
async fn sync(channels: Arc<Channels>, syncs: Arc<Semaphore>, cname: Arc<str>, after: Option<i32>) {
    let Some(cluster) = channels.cluster().cloned() else {
        return;
    };
    let Ok(_permit) = syncs.acquire().await else { return };
    let mut delay = Duration::from_millis(100);
    for attempt in 1..=SYNC_ATTEMPTS {
        match read_history(&channels, &cluster, &cname, after).await {
            Ok(h) => {
                if h.epoch.is_none() {
                    // Redis lost the channel (restarted without its data)
                    // while it is held here: create it again, so that the
                    // index (/check, /info, /broadcast) sees it.
                    cluster.touch(cname.clone());
                }
                let entries: Vec<Message> = h
                    .entries
                    .into_iter()
                    .map(|e| Message {
                        seq: e.seq,
                        kind: kind_of(e.kind),
                        content: e.content.as_str().into(),
                    })
                    .collect();
                let epoch = h.epoch.map(|e| epoch_bytes(e.as_str()));
                let done = channels.with_locked(|t, out| t.remote_synced(&cname, epoch, h.top_seq, entries, out));
                let stats = &channels.remote;
                if done.held {
                    stats.syncs.fetch_add(1, Ordering::Relaxed);
                    stats.filled.fetch_add(u64::from(done.filled), Ordering::Relaxed);
                    stats.missed.fetch_add(u64::from(done.missed), Ordering::Relaxed);
                    if done.reset {
                        stats.epoch_resets.fetch_add(1, Ordering::Relaxed);
                        log::info!("cluster: Redis lost channel {cname:?} (new epoch); its subscribers resume from it");
                    }
                }
                return;
            }
            Err(e) => {
                channels.remote.sync_errors.fetch_add(1, Ordering::Relaxed);
                log::debug!("cluster: history of {cname:?} (attempt {attempt}): {e}");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
        }
    }
    // Still buffering: the next confirmation (Redis back) syncs it again.
    log::warn!("cluster: cannot read the history of {cname:?}; it resyncs when Redis confirms it again");
}

/// Reads the history a sync needs: after `after` when the copy is in sync
/// and Redis still has the same epoch; all of it when Redis has a new epoch
/// (the seqs of the old one mean nothing there: a reset delivers the new
/// channel's history from its start).
async fn read_history(
    channels: &Channels,
    cluster: &Cluster,
    cname: &str,
    after: Option<i32>,
) -> Result<crate::cluster::History, ClusterError> {
    let h = cluster.store().history(cname, after).await?;
    let Some(e) = h.epoch.as_ref() else { return Ok(h) };
    if after.is_none() {
        return Ok(h);
    }
    let local = channels.with_locked(|t, _| t.remote_epoch(cname));
    if local.is_some_and(|l| l != epoch_bytes(e.as_str())) {
        return cluster.store().history(cname, None).await;
    }
    Ok(h)
}

fn kind_of(k: crate::cluster::Kind) -> Kind {
    match k {
        crate::cluster::Kind::Data => Kind::Data,
        crate::cluster::Kind::Broadcast => Kind::Broadcast,
    }
}

fn epoch_bytes(s: &str) -> EpochBytes {
    let mut out = [0u8; 16];
    let b = s.as_bytes();
    let n = b.len().min(16);
    out[..n].copy_from_slice(&b[..n]);
    out
}

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
            "Channels Redis had lost (a new epoch): subscribers were sent next_seq.",
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
