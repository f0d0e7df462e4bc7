//! Cluster mode on this node: the seam between the channel table
//! (`crate::channels`) and the Redis layer (`crate::cluster`).
//!
//! [`start`] starts the Redis layer on the admin runtime with this node's
//! counts ([`LocalCounts`]) and a callback, [`on_event`], that applies what
//! Redis sends to the table: messages with Redis's seqs, closes and clears
//! from any node, cluster-wide presence, and each channel's confirmation,
//! which starts a sync (a history read, merged with what arrived meanwhile:
//! `ChannelTable::remote_synced`). The callback never blocks: syncs are
//! queued and read from Redis in batches (`sync.rs`). `/metrics` renders
//! the counters (`metrics.rs`). Everything that goes
//! wrong is counted in [`RemoteStats`] (`/metrics`); the Redis layer logs
//! connection losses once per outage.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use crate::channel::{Arrival, EpochBytes, Kind, Message};
use crate::channels::Channels;
use crate::cluster::{ChannelParams, Cluster, ClusterError, ClusterEvent, ConnId, Control, LocalCounts};

mod metrics;
mod sync;

pub use metrics::prometheus;

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
    let (syncs, queue) = mpsc::unbounded_channel();
    channels
        .remote
        .expected
        .store(config.cluster.data_connections as u64 + 1, Ordering::Relaxed);
    tokio::spawn(sync::run(channels.clone(), queue));
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
fn on_event(channels: &Arc<Channels>, syncs: &mpsc::UnboundedSender<sync::Wanted>, ev: ClusterEvent) {
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
                let _ = syncs.send((cname, after));
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

pub(super) fn kind_of(k: crate::cluster::Kind) -> Kind {
    match k {
        crate::cluster::Kind::Data => Kind::Data,
        crate::cluster::Kind::Broadcast => Kind::Broadcast,
    }
}

pub(super) fn epoch_bytes(s: &str) -> EpochBytes {
    let mut out = [0u8; 16];
    let b = s.as_bytes();
    let n = b.len().min(16);
    out[..n].copy_from_slice(&b[..n]);
    out
}
