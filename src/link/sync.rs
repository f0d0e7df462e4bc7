//! Syncing confirmed channels with Redis, in batches: every channel Redis
//! confirmed (a new local channel, or all of them after a reconnect) is
//! queued; [`run`] takes what is queued, up to [`SYNC_BATCH`] channels, reads
//! their history in one script call (`Store::history_many`), and merges each
//! into the table (`ChannelTable::remote_synced`) under one lock. At most
//! [`BATCHES_IN_FLIGHT`] batches run at once. A channel that is alone in the
//! queue is read at once (a batch of one); after a Redis restart a million
//! confirmations become about 4,000 calls instead of a million.
//!
//! A channel whose epoch changed in Redis is read again from its start (the
//! seqs of the old epoch mean nothing in the new one); one that Redis lost
//! while it is held here is created again (`Store::touch_many`) so that the
//! index sees it. A failed batch is retried with backoff; after
//! [`SYNC_ATTEMPTS`] its channels keep buffering until Redis confirms them
//! again.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, Semaphore};

use super::{epoch_bytes, kind_of};
use crate::channel::Message;
use crate::channels::Channels;
use crate::cluster::{Cluster, ClusterError, History, SYNC_BATCH};

/// A channel to sync and the seq to read history after (`None`: all of it).
pub(super) type Wanted = (Arc<str>, Option<i32>);

/// Batches whose script call is in flight at once.
pub const BATCHES_IN_FLIGHT: usize = 4;

/// Attempts of one batch before its channels wait for their next confirmation.
const SYNC_ATTEMPTS: u32 = 5;

/// Takes queued channels in batches until the queue closes.
pub(super) async fn run(channels: Arc<Channels>, mut queue: mpsc::UnboundedReceiver<Wanted>) {
    let permits = Arc::new(Semaphore::new(BATCHES_IN_FLIGHT));
    while let Some(first) = queue.recv().await {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        // Whatever queued up meanwhile joins the batch.
        let mut batch = vec![first];
        while batch.len() < SYNC_BATCH {
            match queue.try_recv() {
                Ok(w) => batch.push(w),
                Err(_) => break,
            }
        }
        let channels = channels.clone();
        tokio::spawn(async move {
            sync_batch(&channels, batch).await;
            drop(permit);
        });
    }
}

/// Reads and merges one batch, retrying with backoff.
async fn sync_batch(channels: &Arc<Channels>, batch: Vec<Wanted>) {
    let Some(cluster) = channels.cluster().cloned() else {
        return;
    };
    let mut delay = Duration::from_millis(100);
    for attempt in 1..=SYNC_ATTEMPTS {
        match read(channels, &cluster, &batch).await {
            Ok(histories) => return merge(channels, &cluster, &batch, histories).await,
            Err(e) => {
                channels
                    .remote
                    .sync_errors
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                log::debug!("cluster: history of {} channels (attempt {attempt}): {e}", batch.len());
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
        }
    }
    // Still buffering: the next confirmation (Redis back) syncs them again.
    log::warn!(
        "cluster: cannot read the history of {} channels; they resync when Redis confirms them again",
        batch.len()
    );
}

/// The batch's histories; a channel whose epoch changed, or whose top seq
/// went back below what the node had (Redis rewound: restored from a
/// snapshot), is read again from its start.
async fn read(channels: &Channels, cluster: &Cluster, batch: &[Wanted]) -> Result<Vec<History>, ClusterError> {
    let asked: Vec<(&str, Option<i32>)> = batch.iter().map(|(c, a)| (&**c, *a)).collect();
    let mut histories = cluster.store().history_many(&asked).await?;
    let again: Vec<usize> = channels.with_locked(|t, _| {
        histories
            .iter()
            .enumerate()
            .filter(|(i, h)| {
                let (cname, after) = &batch[*i];
                let (Some(e), Some(after)) = (h.epoch.as_ref(), after) else {
                    return false;
                };
                let rewound = after.wrapping_sub(h.top_seq) > 0;
                rewound || t.remote_epoch(cname).is_some_and(|l| l != epoch_bytes(e.as_str()))
            })
            .map(|(i, _)| i)
            .collect()
    });
    if !again.is_empty() {
        let whole: Vec<(&str, Option<i32>)> = again.iter().map(|&i| (&*batch[i].0, None)).collect();
        for (i, h) in again.iter().zip(cluster.store().history_many(&whole).await?) {
            histories[*i] = h;
        }
    }
    Ok(histories)
}

/// Merges the histories into the table under one lock, then recreates the
/// channels Redis had lost.
async fn merge(channels: &Channels, cluster: &Cluster, batch: &[Wanted], histories: Vec<History>) {
    let stats = &channels.remote;
    let mut lost: Vec<&str> = Vec::new();
    let mut resets: Vec<&str> = Vec::new();
    channels.with_locked(|t, out| {
        for ((cname, _), h) in batch.iter().zip(histories) {
            if h.epoch.is_none() && t.remote_held(cname) {
                lost.push(cname);
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
            let done = t.remote_synced(cname, epoch, h.top_seq, entries, out);
            if done.held {
                stats.syncs.fetch_add(1, Ordering::Relaxed);
                stats.filled.fetch_add(u64::from(done.filled), Ordering::Relaxed);
                stats.missed.fetch_add(u64::from(done.missed), Ordering::Relaxed);
                if done.reset {
                    stats.epoch_resets.fetch_add(1, Ordering::Relaxed);
                    resets.push(cname);
                }
            }
        }
    });
    match resets.as_slice() {
        [] => {}
        [one] => log::info!("cluster: Redis lost channel {one:?} (new epoch, or older seqs under the same one); its subscribers resume from it"),
        many => log::info!(
            "cluster: Redis lost {} channels ({:?}, ...) (new epochs, or older seqs under the same ones); their subscribers resume from them",
            many.len(),
            many[0]
        ),
    }
    // Redis lost them (restarted without its data) while they are held
    // here: create them again, so that the index (/check, /info,
    // /broadcast) sees them.
    if !lost.is_empty() {
        if let Err(e) = cluster.store().touch_many(&lost).await {
            cluster
                .maintenance_stats()
                .touch_errors
                .fetch_add(lost.len() as u64, Ordering::Relaxed);
            log::debug!("cluster: cannot recreate {} channels: {e}", lost.len());
        }
    }
}
