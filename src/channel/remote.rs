//! Cluster mode in the channel table: the local copy of channels whose seq,
//! epoch and history Redis owns.
//!
//! A node holds a channel while it has local subscribers (and for
//! `channel_timeout` after). Creating one emits [`Notice::Joined`] (the node
//! subscribes to it in Redis), freeing it [`Notice::Left`]. Until Redis has
//! confirmed the subscription and the history has been read, the channel is
//! *syncing*: subscribers wait (`Start::Pending`) and messages from Redis
//! are buffered; then [`ChannelTable::remote_synced`] merges history and
//! buffer by seq, and [`Notice::Synced`] lets the workers answer the
//! waiting subscribers exactly as a subscribe would have. After that, every
//! message comes from Redis with the seq Redis gave it
//! ([`ChannelTable::remote_message`]): an older seq is a duplicate and
//! dropped, a later one than expected is a gap (delivered, and counted), a
//! new epoch means Redis lost the channel and is signalled to subscribers
//! with icomet's `next_seq` ([`Notice::Reset`]). A lost connection to Redis
//! is repaired by syncing again when it is confirmed anew: what was missed
//! is read from history and delivered in order.

use super::{ChannelId, ChannelTable, History, Message, Notice, Start};

/// A channel's epoch in Redis (16 lower-case hex characters).
pub type EpochBytes = [u8; 16];

/// Most messages buffered for one syncing channel; older ones are dropped
/// (and counted as a gap) if a sync takes that long.
const MAX_BUFFERED: usize = 4096;

/// Where a channel's local copy stands against Redis.
#[derive(Debug, Default)]
pub(super) struct Remote {
    /// The epoch of the copy; `None` until Redis has one for the channel.
    epoch: Option<EpochBytes>,
    /// Messages from Redis that arrived while syncing, in arrival order.
    buffered: Vec<Message>,
    /// Buffering until the history read of the current sync lands.
    syncing: bool,
    /// Synced at least once (subscribers no longer wait for it).
    synced: bool,
}

/// What the table did with a message from Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// Delivered to the workers that hold subscribers, in order.
    Delivered,
    /// Delivered after `missed` messages that never arrived (beyond what
    /// history could give back): subscribers see the jump in seq.
    Gap {
        /// Messages skipped.
        missed: u32,
    },
    /// A new epoch: Redis lost the channel (a restart without persistence,
    /// or it was closed and created again); subscribers were told where to
    /// resume and the message delivered.
    Reset,
    /// Kept until the channel's sync completes.
    Buffered,
    /// Already had it (a seq not after the channel's last): dropped.
    Duplicate,
    /// This node does not hold the channel: nothing to do.
    NotHeld,
}

/// What a completed sync did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Synced {
    /// Messages delivered that were published while the node was not
    /// subscribed (filled from history) or buffered meanwhile.
    pub filled: u32,
    /// Messages that were lost for good (older than history keeps).
    pub missed: u32,
    /// Redis had lost the channel (new epoch) or gone back to older seqs
    /// under the same epoch (a rewind): subscribers were reset.
    pub reset: bool,
    /// The node holds the channel (false: it was freed meanwhile).
    pub held: bool,
}

/// What §2.5 gives a subscriber arriving with `seq` at a channel whose next
/// seq is `next` and whose history is `history` (oldest first).
pub fn start_for<'a>(seq: i32, next: i32, history: impl Iterator<Item = &'a Message>) -> Start {
    if seq == 0 || seq.wrapping_sub(next) > 0 {
        return Start::NextSeq(next);
    }
    if seq == next {
        return Start::Wait(seq);
    }
    let replay: Vec<Message> = history.filter(|m| m.seq.wrapping_sub(seq) >= 0).cloned().collect();
    if replay.is_empty() {
        Start::Wait(seq)
    } else {
        Start::Replay(replay)
    }
}

/// [`start_for`] for a channel whose seqs come from Redis. A seq at most
/// `window` ahead of the local copy is one this node has not received yet:
/// a `/pub` answers once Redis took the message, and the fan-out reaches
/// each node a moment later, so a client that read seq `n` on another node
/// may ask here for `n + 1` before this node has `n`. It waits for its seq
/// (the fan-out skips what it already has) instead of being told
/// `next_seq`, which would make it fetch again what it has. Farther ahead
/// (a seq from an epoch Redis lost) it gets icomet's `next_seq`; within the
/// window such a stale seq waits (`window` is `channel_buffer_size`).
pub fn start_for_remote<'a>(seq: i32, next: i32, history: impl Iterator<Item = &'a Message>, window: u32) -> Start {
    let ahead = seq.wrapping_sub(next);
    if seq != 0 && ahead > 0 && i64::from(ahead) <= i64::from(window) {
        return Start::Wait(seq);
    }
    start_for(seq, next, history)
}

impl Remote {
    /// Whether subscribers must wait for the channel's first sync.
    pub(super) fn waiting(&self) -> bool {
        !self.synced
    }
}

impl ChannelTable {
    /// Whether the table is in cluster mode.
    pub fn is_cluster(&self) -> bool {
        self.limits.cluster
    }

    /// A new local channel in cluster mode: syncing until Redis confirms it.
    pub(super) fn start_remote(&mut self, idx: u32) {
        let slot = &mut self.slots[idx as usize];
        slot.rare().remote = Some(Remote {
            syncing: true,
            ..Remote::default()
        });
    }

    /// A message from Redis, with the seq and epoch Redis gave it.
    pub fn remote_message(
        &mut self,
        name: &str,
        epoch: EpochBytes,
        m: Message,
        out: &mut dyn FnMut(Notice),
    ) -> Arrival {
        let Some(idx) = self.find(name) else {
            return Arrival::NotHeld;
        };
        let size = self.limits.buffer_size;
        let slot = &mut self.slots[idx as usize];
        let id = ChannelId {
            slot: idx,
            gen: slot.gen,
        };
        let (mask, seq_next) = (slot.workers.mask(), slot.seq_next);
        let Some(r) = slot.remote_mut() else {
            return Arrival::NotHeld;
        };
        if r.syncing {
            if r.buffered.len() >= MAX_BUFFERED {
                r.buffered.remove(0);
            }
            r.buffered.push(m);
            return Arrival::Buffered;
        }
        let mut arrival = Arrival::Delivered;
        match r.epoch {
            Some(e) if e != epoch => {
                r.epoch = Some(epoch);
                arrival = Arrival::Reset;
            }
            Some(_) => {
                let d = m.seq.wrapping_sub(seq_next);
                if d < 0 {
                    return Arrival::Duplicate;
                }
                if d > 0 {
                    arrival = Arrival::Gap { missed: d as u32 };
                }
            }
            None => r.epoch = Some(epoch),
        }
        if arrival == Arrival::Reset {
            if let Some(e) = slot.extra.as_mut() {
                e.history.clear();
            }
            if mask != 0 {
                out(Notice::Reset(mask, id, m.seq));
            }
        }
        slot.seq_next = m.seq.wrapping_add(1);
        if size > 0 {
            slot.extra().history.push(m.clone(), size);
        }
        if mask != 0 {
            out(Notice::Message(mask, id, &m));
        }
        arrival
    }

    /// Redis (re)confirmed the node's subscription to `name`: from now on
    /// every message reaches the node. Starts buffering until the history
    /// read lands; returns the seq to read history after (`None`: all of
    /// it), or `None` in the outer option when the node does not hold it.
    pub fn remote_confirmed(&mut self, name: &str) -> Option<Option<i32>> {
        let idx = self.find(name)?;
        let slot = &mut self.slots[idx as usize];
        let seq_next = slot.seq_next;
        let r = slot.remote_mut()?;
        r.syncing = true;
        // A copy in sync needs only what came after it; a new one, everything.
        Some(r.synced.then(|| seq_next.wrapping_sub(1)))
    }

    /// The epoch of the local copy of `name` (`None`: not held, or Redis
    /// had none for it yet).
    pub fn remote_epoch(&mut self, name: &str) -> Option<EpochBytes> {
        let idx = self.find(name)?;
        self.slots[idx as usize].remote_mut()?.epoch
    }

    /// Whether this node holds `name` (in cluster mode: subscribed to it).
    pub fn remote_held(&self, name: &str) -> bool {
        self.find(name).is_some()
    }

    /// The history read of a sync landed: `epoch` and `top` (the last seq
    /// Redis gave) and the entries after the seq asked for, oldest first.
    /// Merges them with what was buffered meanwhile and brings the copy up
    /// to date.
    pub fn remote_synced(
        &mut self,
        name: &str,
        epoch: Option<EpochBytes>,
        top: i32,
        entries: Vec<Message>,
        out: &mut dyn FnMut(Notice),
    ) -> Synced {
        let Some(idx) = self.find(name) else {
            return Synced::default();
        };
        let size = self.limits.buffer_size;
        let slot = &mut self.slots[idx as usize];
        let id = ChannelId {
            slot: idx,
            gen: slot.gen,
        };
        let (mask, old_next) = (slot.workers.mask(), slot.seq_next);
        let Some(r) = slot.remote_mut() else {
            return Synced::default();
        };
        // Redis's entries, then what arrived meanwhile and is newer.
        let mut merged = entries;
        for m in std::mem::take(&mut r.buffered) {
            if merged.last().is_none_or(|l| m.seq.wrapping_sub(l.seq) > 0) {
                merged.push(m);
            }
        }
        let first = !r.synced;
        let reset = !first && epoch.is_some() && r.epoch.is_some() && epoch != r.epoch;
        if epoch.is_some() {
            r.epoch = epoch;
        }
        r.syncing = false;
        r.synced = true;
        let mut next = top.wrapping_add(1);
        if let Some(l) = merged.last() {
            if l.seq.wrapping_add(1).wrapping_sub(next) > 0 {
                next = l.seq.wrapping_add(1);
            }
        }
        // Redis went back under the same epoch (restored from a snapshot,
        // or an fsync that never happened): its next seq is below what this
        // copy already delivered, so new publishes would reuse seqs the
        // subscribers have. Treated as a reset, from the first message of
        // Redis's that differs from this copy's history.
        let rewound = !first && !reset && old_next.wrapping_sub(next) > 0;
        let mut result = Synced {
            held: true,
            reset: reset || rewound,
            ..Synced::default()
        };
        if first || reset || rewound {
            // Where subscribers resume: a new epoch from the start of
            // Redis's history; a rewind from the first of Redis's messages
            // that differs from this copy's (a seq older than this copy's
            // history was delivered long ago: taken as the same message).
            let resume = if rewound {
                let local = slot.history();
                merged
                    .iter()
                    .find(|m| {
                        local
                            .and_then(|h| h.iter().find(|l| l.seq == m.seq))
                            .is_some_and(|l| l.kind != m.kind || l.content != m.content)
                    })
                    .map_or(next, |m| m.seq)
            } else {
                merged.first().map_or(next, |m| m.seq)
            };
            let mut history = History::default();
            for m in &merged {
                history.push(m.clone(), size);
            }
            slot.seq_next = next;
            if size > 0 || slot.extra.is_some() {
                slot.extra().history = history;
            }
            if first {
                let kept: Vec<Message> = slot.history().map(|h| h.iter().cloned().collect()).unwrap_or_default();
                if mask != 0 {
                    out(Notice::Synced(mask, id, next, &kept));
                }
            } else if mask != 0 {
                out(Notice::Reset(mask, id, resume));
                for m in merged.iter().filter(|m| m.seq.wrapping_sub(resume) >= 0) {
                    out(Notice::Message(mask, id, m));
                }
            }
            return result;
        }
        // The same channel: deliver what was missed, in order.
        if let Some(f) = merged.iter().find(|m| m.seq.wrapping_sub(old_next) >= 0) {
            let lost = f.seq.wrapping_sub(old_next);
            if lost > 0 {
                result.missed = lost as u32;
            }
        } else if next.wrapping_sub(old_next) > 0 {
            result.missed = next.wrapping_sub(old_next) as u32;
        }
        for m in merged {
            if m.seq.wrapping_sub(slot.seq_next) < 0 {
                continue;
            }
            slot.seq_next = m.seq.wrapping_add(1);
            if size > 0 {
                slot.extra().history.push(m.clone(), size);
            }
            if mask != 0 {
                out(Notice::Message(mask, id, &m));
            }
            result.filled += 1;
        }
        if next.wrapping_sub(slot.seq_next) > 0 {
            slot.seq_next = next;
        }
        result
    }

    /// `/close` from any node, through Redis: subscribers get icomet's close
    /// (with Redis's next seq) and the local copy is freed. False when the
    /// node does not hold it.
    pub fn remote_close(&mut self, name: &str, next_seq: i32, out: &mut dyn FnMut(Notice)) -> bool {
        let Some(idx) = self.find(name) else {
            return false;
        };
        let slot = &self.slots[idx as usize];
        if slot.workers.any() {
            let id = ChannelId {
                slot: idx,
                gen: slot.gen,
            };
            out(Notice::Close(slot.workers.mask(), id, next_seq));
        }
        self.free_slot(idx, out);
        true
    }

    /// `/clear` from any node: the local history is emptied.
    pub fn remote_clear(&mut self, name: &str) -> bool {
        let Some(idx) = self.find(name) else {
            return false;
        };
        if let Some(e) = self.slots[idx as usize].extra.as_mut() {
            e.history.clear();
        }
        true
    }

    /// Every channel this node holds, with how long it would live here
    /// without news (at least `channel_timeout` while it has subscribers).
    pub fn held(&self, visit: &mut dyn FnMut(&str, u32)) {
        let timeout = self.limits.channel_timeout;
        for slot in self.slots.iter().filter(|s| s.live()) {
            let left = if slot.subscribers > 0 {
                timeout
            } else {
                slot.idle.max(0) as u32
            };
            visit(&slot.name, left);
        }
    }
}
