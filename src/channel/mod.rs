//! The channel table: names, slots, seqs, history, tokens, idle expiry.
//!
//! Plain synchronous code with no I/O (`crate::channels` wraps it in a
//! mutex). Slots are reused through a free list; a [`ChannelId`] carries the
//! slot's generation so that a stale reference to a freed and reused slot is
//! recognised. The table knows how many subscribers each channel has and
//! which workers hold them (a bit mask), never the subscribers themselves:
//! those live in their worker. Everything the outside world must hear about
//! (presence, deliveries) is reported through a [`Notice`] callback, in
//! order, while the caller still holds the table. Messages are kept as
//! [`Message`]s (seq, kind, shared content); nothing here builds JSON for
//! subscribers: framing is the front's job.

mod history;
mod remote;
mod token;

use std::sync::Arc;

use hashbrown::HashTable;

pub use history::{max_entries, History, Kind, Message};
use remote::Remote;
pub use remote::{start_for, Arrival, EpochBytes, Synced};

/// A reference to a live channel: its slot and the slot's generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChannelId {
    /// Index in the slot array.
    pub slot: u32,
    /// Generation of the slot when this id was handed out.
    pub gen: u32,
}

impl ChannelId {
    /// Packs the id into one integer (for maps keyed by channel).
    pub fn key(self) -> u64 {
        (u64::from(self.gen) << 32) | u64::from(self.slot)
    }
}

/// Bit mask of workers (at most 128).
pub type WorkerMask = u128;

/// Most workers a mask can name.
pub const MAX_WORKERS: usize = 128;

/// Limits and timings the table enforces.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most channels at once.
    pub max_channels: u32,
    /// Most subscribers of one channel.
    pub max_subscribers: u32,
    /// History kept per channel.
    pub buffer_size: u32,
    /// Ticks an unsubscribed channel lives; also the presence period.
    pub channel_timeout: u32,
    /// Token mode: subscribers need the channel's token and cannot create channels.
    pub token_auth: bool,
    /// Cluster mode: Redis owns seqs and history; this table holds a copy
    /// of the channels with local subscribers (`remote`).
    pub cluster: bool,
}

/// Something the table reports while its caller holds it.
#[derive(Debug)]
pub enum Notice<'a> {
    /// A channel came online (created, or periodically while it exists).
    Online(&'a str),
    /// A channel was freed.
    Offline(&'a str),
    /// A message of a channel must reach the subscribers held by these workers.
    Message(WorkerMask, ChannelId, &'a Message),
    /// A broadcast took this seq in this channel, whose subscribers these
    /// workers hold (one notice per channel; the content is the same for all).
    Broadcast(WorkerMask, ChannelId, i32),
    /// A channel was closed with this next seq; these workers end its subscribers.
    Close(WorkerMask, ChannelId, i32),
    /// Cluster mode: a channel was created here; subscribe to it in Redis.
    Joined(&'a Arc<str>),
    /// Cluster mode: a channel was freed here; unsubscribe from it in Redis.
    Left(&'a Arc<str>),
    /// Cluster mode: a channel's first sync completed with this next seq and
    /// history; these workers answer the subscribers that waited for it.
    Synced(WorkerMask, ChannelId, i32, &'a [Message]),
    /// Cluster mode: Redis lost the channel; these workers tell its
    /// subscribers to resume at this seq (icomet's `next_seq`).
    Reset(WorkerMask, ChannelId, i32),
}

/// Why a subscribe was refused (sent as an icomet 401/429 frame).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SubscribeError {
    /// Token mismatch, or an unknown channel in token mode.
    #[error("Token error")]
    TokenError,
    /// `max_channels` reached.
    #[error("Too many channels")]
    TooManyChannels,
    /// `max_subscribers_per_channel` reached.
    #[error("Too many subscribers")]
    TooManySubscribers,
    /// The application's authorize hook refused (not the table's own
    /// refusal: the front reports it with the table's 401 frame).
    #[error("Not authorized")]
    NotAuthorized,
}

impl SubscribeError {
    /// The icomet message type of the refusal frame.
    pub fn code(self) -> &'static str {
        match self {
            SubscribeError::TokenError | SubscribeError::NotAuthorized => "401",
            _ => "429",
        }
    }
}

/// `max_channels` reached while creating a channel from the admin side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("Too Many Channels")]
pub struct TooManyChannels;

/// Where an accepted subscriber starts (reference §2.5).
#[derive(Debug, PartialEq, Eq)]
pub enum Start {
    /// Case A: tell the client to resume at this seq.
    NextSeq(i32),
    /// Cases B and D: wait for the next live message; the seq is the client's.
    Wait(i32),
    /// Case C: replay these, oldest first.
    Replay(Vec<Message>),
    /// Cluster mode: the channel is syncing with Redis; the subscriber
    /// waits with its seq until [`Notice::Synced`].
    Pending(i32),
}

/// An accepted subscription.
#[derive(Debug)]
pub struct Subscribed {
    /// The channel.
    pub id: ChannelId,
    /// The channel's name, shared: a worker keeps it for the frames it
    /// builds without a copy of its own.
    pub name: Arc<str>,
    /// Where the subscriber starts.
    pub start: Start,
    /// Whether the table counts the subscriber (it stays and waits). A long
    /// poll answered at once is not counted: it never waits.
    pub counted: bool,
}

/// What `/sign` answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// Oldest seq still available.
    pub seq: i32,
    /// 32 lower-case hex characters.
    pub token: String,
    /// The effective expiry in seconds.
    pub expires: i32,
}

/// What a channel holds only once it has it: history, and rarer things.
#[derive(Debug, Default)]
struct SlotExtra {
    history: History,
    /// A token (`/sign`) or cluster state: most channels have neither, and
    /// a channel with history alone costs 48 + its ring's bytes.
    rare: Option<Box<Rare>>,
}

/// A channel's token and, in cluster mode, where its copy stands against Redis.
#[derive(Debug, Default)]
struct Rare {
    token: Option<[u8; 32]>,
    remote: Option<Remote>,
}

/// One channel (56 bytes: a million channels without history or token
/// cost 56 MB here).
#[derive(Debug, Default)]
struct Slot {
    /// Shared with every worker holding subscribers (the name index holds
    /// only the slot's number).
    name: Arc<str>,
    /// History and token, allocated on the first message or `/sign`.
    extra: Option<Box<SlotExtra>>,
    workers: Workers,
    gen: u32,
    seq_next: i32,
    idle: i32,
    subscribers: u32,
}

impl Slot {
    /// Free slots have generation 0 (live ones never do).
    fn live(&self) -> bool {
        self.gen != 0
    }

    fn extra(&mut self) -> &mut SlotExtra {
        self.extra.get_or_insert_with(Box::default)
    }

    fn history(&self) -> Option<&History> {
        self.extra.as_ref().map(|e| &e.history)
    }

    fn token(&self) -> Option<[u8; 32]> {
        self.extra.as_ref()?.rare.as_ref()?.token
    }

    fn rare(&mut self) -> &mut Rare {
        self.extra().rare.get_or_insert_with(Box::default)
    }

    /// Cluster state (only in cluster mode).
    fn remote(&self) -> Option<&Remote> {
        self.extra.as_ref()?.rare.as_ref()?.remote.as_ref()
    }

    fn remote_mut(&mut self) -> Option<&mut Remote> {
        self.extra.as_mut()?.rare.as_mut()?.remote.as_mut()
    }
}

/// The workers that hold subscribers of a channel, as a bit set stored in
/// two words (a `u128` would make every slot 16-byte aligned, and larger).
#[derive(Debug, Default, Clone, Copy)]
struct Workers([u64; 2]);

impl Workers {
    fn mask(self) -> WorkerMask {
        WorkerMask::from(self.0[0]) | (WorkerMask::from(self.0[1]) << 64)
    }

    fn set(&mut self, w: usize, on: bool) {
        let (word, bit) = (w / 64, 1u64 << (w % 64));
        if on {
            self.0[word] |= bit;
        } else {
            self.0[word] &= !bit;
        }
    }

    fn any(self) -> bool {
        self.0 != [0, 0]
    }
}

/// The table of all channels.
#[derive(Debug)]
pub struct ChannelTable {
    limits: Limits,
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// Live slots by name: each entry is only a slot number (4 bytes); the
    /// name itself is the slot's.
    by_name: HashTable<u32>,
    hasher: ahash::RandomState,
    subscribers: u64,
    next_gen: u32,
    /// Ticks since the table was created (the presence period's phase).
    ticks: u32,
}

impl ChannelTable {
    /// Creates an empty table with room reserved for `limits.max_channels`.
    /// Reserved capacity that is never touched costs address space, not memory.
    pub fn new(limits: Limits) -> ChannelTable {
        let cap = limits.max_channels as usize;
        ChannelTable {
            limits,
            slots: Vec::with_capacity(cap),
            free: Vec::new(),
            // Grown on demand: a preallocated map is touched all over by a
            // few names (random buckets) and never shrinks.
            by_name: HashTable::new(),
            hasher: ahash::RandomState::new(),
            subscribers: 0,
            next_gen: 0,
            ticks: 0,
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Puts new limits in force (a reload). Existing channels and
    /// subscribers stay even when a count limit went down below them; the
    /// limit refuses what comes next. A smaller `buffer_size` trims every
    /// history to its newest `buffer_size` messages at once (one pass over
    /// the channels), so that what a history holds is always a run of
    /// consecutive seqs ending at the newest message.
    pub fn set_limits(&mut self, limits: Limits) {
        let shrink = limits.buffer_size < self.limits.buffer_size;
        self.limits = limits;
        if !shrink {
            return;
        }
        let keep = limits.buffer_size as usize;
        for slot in self.slots.iter_mut().filter(|s| s.live()) {
            if let Some(e) = slot.extra.as_mut() {
                e.history.keep_newest(keep);
                if e.history.is_empty() && e.rare.is_none() {
                    slot.extra = None;
                }
            }
        }
    }

    /// Number of live channels.
    pub fn channels(&self) -> usize {
        self.by_name.len()
    }

    /// Number of subscribers over all channels.
    pub fn subscribers(&self) -> u64 {
        self.subscribers
    }

    /// The slot of a live channel.
    fn find(&self, name: &str) -> Option<u32> {
        let slots = &self.slots;
        self.by_name
            .find(self.hasher.hash_one(name), |&i| &*slots[i as usize].name == name)
            .copied()
    }

    /// The id of a live channel.
    pub fn lookup(&self, name: &str) -> Option<ChannelId> {
        let slot = self.find(name)?;
        Some(ChannelId {
            slot,
            gen: self.slots[slot as usize].gen,
        })
    }

    /// Subscribers of the named channel (0 when it does not exist).
    pub fn subscribers_of(&self, name: &str) -> u32 {
        self.find(name).map_or(0, |s| self.slots[s as usize].subscribers)
    }

    /// The history of a live channel (`None` also when it has none yet).
    pub fn history(&self, name: &str) -> Option<&History> {
        self.find(name).and_then(|s| self.slots[s as usize].history())
    }

    fn create(&mut self, name: &str, out: &mut dyn FnMut(Notice)) -> Result<u32, TooManyChannels> {
        if self.by_name.len() >= self.limits.max_channels as usize {
            return Err(TooManyChannels);
        }
        let idx = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Slot::default());
                (self.slots.len() - 1) as u32
            }
        };
        // Generations are table-wide (never 0, which marks a free slot),
        // so an id stays unique even after the slot array is released and
        // rebuilt.
        self.next_gen = self.next_gen.wrapping_add(1).max(1);
        let name: Arc<str> = name.into();
        let hash = self.hasher.hash_one(&*name);
        let slots = &self.slots;
        let hasher = &self.hasher;
        self.by_name
            .insert_unique(hash, idx, |&i| hasher.hash_one(&*slots[i as usize].name));
        self.slots[idx as usize] = Slot {
            name,
            gen: self.next_gen,
            seq_next: 1,
            ..Slot::default()
        };
        out(Notice::Online(&self.slots[idx as usize].name));
        if self.limits.cluster {
            self.start_remote(idx);
            out(Notice::Joined(&self.slots[idx as usize].name));
        }
        Ok(idx)
    }

    fn free_slot(&mut self, idx: u32, out: &mut dyn FnMut(Notice)) {
        out(Notice::Offline(&self.slots[idx as usize].name));
        if self.limits.cluster {
            out(Notice::Left(&self.slots[idx as usize].name));
        }
        let hash = self.hasher.hash_one(&*self.slots[idx as usize].name);
        if let Ok(entry) = self.by_name.find_entry(hash, |&i| i == idx) {
            entry.remove();
        }
        let slot = &mut self.slots[idx as usize];
        self.subscribers -= u64::from(slot.subscribers);
        // Generation 0 marks it free; ids hold the old generation, which the
        // next occupant will not have (generations are table-wide).
        *slot = Slot::default();
        self.free.push(idx);
        if self.by_name.is_empty() {
            // Everyone left: give back what a burst of channels grew. No
            // capacity is reserved again here: a reservation of
            // max_channels slots (56 MB at 1M) made now is carved out of
            // the heap the burst just freed, whose pages are still
            // resident, and holds them for good (malloc_trim cannot give
            // back what is allocated). Measured at 1M private channels:
            // RSS after everyone left +470% to +770% of idle in four runs
            // of six, 56 MB of it that one untouched reservation. The next
            // burst grows the array on demand instead.
            self.slots = Vec::new();
            self.free = Vec::new();
            self.by_name = HashTable::new();
        }
    }

    /// Subscribes a client of `worker` with resume point `seq` (reference §3.1, §2.5).
    /// A `long_poll` subscriber is counted only when it waits (`Start::Wait`):
    /// one answered at once never joins the channel.
    pub fn subscribe(
        &mut self,
        name: &str,
        token: &str,
        seq: i32,
        worker: usize,
        long_poll: bool,
        out: &mut dyn FnMut(Notice),
    ) -> Result<Subscribed, SubscribeError> {
        let idx = match self.find(name) {
            Some(i) => i,
            None if self.limits.token_auth => return Err(SubscribeError::TokenError),
            None => self.create(name, out).map_err(|_| SubscribeError::TooManyChannels)?,
        };
        let limits = self.limits;
        let slot = &mut self.slots[idx as usize];
        let token_ok = slot.token().is_some_and(|t| t == token.as_bytes());
        if limits.token_auth && !token_ok {
            return Err(SubscribeError::TokenError);
        }
        if slot.subscribers >= limits.max_subscribers {
            return Err(SubscribeError::TooManySubscribers);
        }
        slot.idle = slot.idle.max(limits.channel_timeout as i32);
        let start = if slot.remote().is_some_and(|r| r.waiting()) {
            Start::Pending(seq)
        } else if slot.remote().is_some() {
            let history = slot.history().into_iter().flat_map(History::iter);
            remote::start_for_remote(seq, slot.seq_next, history, limits.buffer_size)
        } else {
            start_for(seq, slot.seq_next, slot.history().into_iter().flat_map(History::iter))
        };
        let counted = !long_poll || matches!(start, Start::Wait(_) | Start::Pending(_));
        if counted {
            slot.subscribers += 1;
            slot.workers.set(worker, true);
            self.subscribers += 1;
        }
        Ok(Subscribed {
            id: ChannelId {
                slot: idx,
                gen: slot.gen,
            },
            name: slot.name.clone(),
            start,
            counted,
        })
    }

    /// The token rule of [`ChannelTable::subscribe`] on its own: in token
    /// mode the channel must exist and `token` be its token; always `Ok`
    /// otherwise. Changes nothing.
    pub fn check_token(&self, name: &str, token: &str) -> Result<(), SubscribeError> {
        if !self.limits.token_auth {
            return Ok(());
        }
        let slot = self.find(name).ok_or(SubscribeError::TokenError)?;
        let token_ok = self.slots[slot as usize].token().is_some_and(|t| t == token.as_bytes());
        if token_ok {
            Ok(())
        } else {
            Err(SubscribeError::TokenError)
        }
    }

    /// Removes `count` subscribers of `worker` from a channel; `worker_empty`
    /// says the worker holds no more subscribers of it. Stale ids are ignored.
    pub fn unsubscribe(&mut self, id: ChannelId, count: u32, worker: usize, worker_empty: bool) {
        let Some(slot) = self
            .slots
            .get_mut(id.slot as usize)
            .filter(|s| s.live() && s.gen == id.gen)
        else {
            return;
        };
        let n = count.min(slot.subscribers);
        slot.subscribers -= n;
        self.subscribers -= u64::from(n);
        if worker_empty {
            slot.workers.set(worker, false);
        }
    }

    /// The slot of `name`, created if needed, its idle time refreshed as a
    /// publish does (reference §5.2).
    fn publish_target(&mut self, name: &str, out: &mut dyn FnMut(Notice)) -> Result<u32, TooManyChannels> {
        let timeout = self.limits.channel_timeout as i32;
        let idx = match self.find(name) {
            Some(i) => i,
            None => self.create(name, out)?,
        };
        let slot = &mut self.slots[idx as usize];
        slot.idle = slot.idle.max(timeout);
        Ok(idx)
    }

    /// Appends a message with the slot's next seq to its history; returns the seq.
    fn append(&mut self, idx: u32, kind: Kind, content: &Arc<str>) -> i32 {
        let size = self.limits.buffer_size;
        let slot = &mut self.slots[idx as usize];
        let seq = slot.seq_next;
        slot.seq_next = seq.wrapping_add(1);
        if size > 0 {
            slot.extra().history.push(
                Message {
                    seq,
                    kind,
                    content: content.clone(),
                },
                size,
            );
        }
        seq
    }

    /// Publishes a data message (content already JSON-escaped), creating the
    /// channel if needed; returns its seq.
    pub fn publish(
        &mut self,
        name: &str,
        content: &Arc<str>,
        out: &mut dyn FnMut(Notice),
    ) -> Result<i32, TooManyChannels> {
        let idx = self.publish_target(name, out)?;
        let seq = self.append(idx, Kind::Data, content);
        let slot = &self.slots[idx as usize];
        if slot.workers.any() {
            let id = ChannelId {
                slot: idx,
                gen: slot.gen,
            };
            let m = Message {
                seq,
                kind: Kind::Data,
                content: content.clone(),
            };
            out(Notice::Message(slot.workers.mask(), id, &m));
        }
        Ok(seq)
    }

    /// Sends a broadcast message to every channel (one seq in each, the
    /// content shared by all); returns how many channels got it.
    pub fn broadcast(&mut self, content: &Arc<str>, out: &mut dyn FnMut(Notice)) -> usize {
        let timeout = self.limits.channel_timeout as i32;
        let mut n = 0;
        for idx in 0..self.slots.len() as u32 {
            let slot = &mut self.slots[idx as usize];
            if !slot.live() {
                continue;
            }
            slot.idle = slot.idle.max(timeout);
            let seq = self.append(idx, Kind::Broadcast, content);
            let slot = &self.slots[idx as usize];
            if slot.workers.any() {
                out(Notice::Broadcast(
                    slot.workers.mask(),
                    ChannelId {
                        slot: idx,
                        gen: slot.gen,
                    },
                    seq,
                ));
            }
            n += 1;
        }
        n
    }

    /// Signs a channel (creating it if needed) and sets its idle counter to `expires`
    /// (`<= 0` means `channel_timeout`).
    pub fn sign(&mut self, name: &str, expires: i32, out: &mut dyn FnMut(Notice)) -> Result<Signed, TooManyChannels> {
        let limits = self.limits;
        let idx = match self.find(name) {
            Some(i) => i,
            None => self.create(name, out)?,
        };
        let expires = if expires <= 0 {
            limits.channel_timeout as i32
        } else {
            expires
        };
        let slot = &mut self.slots[idx as usize];
        slot.idle = expires;
        let seq_next = slot.seq_next;
        let token = *slot.rare().token.get_or_insert_with(token::generate);
        let kept = slot.history().map_or(0, History::len).min(limits.buffer_size as usize) as i32;
        Ok(Signed {
            seq: seq_next.wrapping_sub(kept),
            token: String::from_utf8(token.to_vec()).expect("tokens are hex"),
            expires,
        })
    }

    /// Closes a channel: its subscribers get a close message and the channel is
    /// freed. Returns the channel's next seq, or `None` if it does not exist.
    pub fn close(&mut self, name: &str, out: &mut dyn FnMut(Notice)) -> Option<i32> {
        let idx = self.find(name)?;
        let slot = &self.slots[idx as usize];
        let n = slot.seq_next;
        if slot.workers.any() {
            let id = ChannelId {
                slot: idx,
                gen: slot.gen,
            };
            out(Notice::Close(slot.workers.mask(), id, n));
        }
        self.free_slot(idx, out);
        Some(n)
    }

    /// Empties a channel's history. Returns its next seq, or `None` if it does not exist.
    pub fn clear(&mut self, name: &str) -> Option<i32> {
        let idx = self.find(name)?;
        let slot = &mut self.slots[idx as usize];
        if let Some(e) = slot.extra.as_mut() {
            e.history.clear();
            if e.rare.is_none() {
                slot.extra = None;
            }
        }
        Some(slot.seq_next)
    }

    /// The next seq of a live channel.
    pub fn seq_next(&self, id: ChannelId) -> Option<i32> {
        self.slots
            .get(id.slot as usize)
            .filter(|s| s.live() && s.gen == id.gen)
            .map(|s| s.seq_next)
    }

    /// One maintenance tick (reference §5.2): periodic presence, idle expiry.
    ///
    /// Every channel is announced online once every `channel_timeout`
    /// ticks, as icomet does; the tick of each channel is spread by its slot
    /// number, so that channels created together (a reconnect storm) are
    /// not announced together, and a slot needs no counter of its own.
    pub fn tick(&mut self, out: &mut dyn FnMut(Notice)) {
        let timeout = self.limits.channel_timeout.max(1);
        self.ticks = self.ticks.wrapping_add(1);
        let phase = self.ticks % timeout;
        for idx in 0..self.slots.len() as u32 {
            let slot = &mut self.slots[idx as usize];
            if !slot.live() {
                continue;
            }
            if idx % timeout == phase {
                out(Notice::Online(&slot.name));
            }
            if slot.subscribers == 0 {
                slot.idle -= 1;
                if slot.idle < 0 {
                    self.free_slot(idx, out);
                    if self.slots.is_empty() {
                        return;
                    }
                }
            } else {
                slot.idle = slot.idle.max(timeout as i32);
            }
        }
    }
}

#[cfg(test)]
mod tests;
