//! A message on its way to subscribers, encoded once and shared by every
//! worker and by the channel's history.

use std::sync::OnceLock;

use bytes::Bytes;

use super::ChannelId;

/// What kind of message an [`Event`] carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// `/pub` or `/push`: consumes a seq, stored in history.
    Data,
    /// `/broadcast`: consumes a seq, stored in history, followed by `next_seq`.
    Broadcast,
    /// `/close`: ends every subscriber's response; `seq` is the channel's next seq.
    Close,
}

/// One message for the subscribers of one channel.
#[derive(Debug)]
pub struct Event {
    /// The channel it belongs to.
    pub chan: ChannelId,
    /// Data/broadcast: the message seq. Close: the channel's next seq.
    pub seq: i32,
    /// Data, broadcast or close.
    pub kind: EventKind,
    /// The message object `{"type":..,"cname":..,"seq":..,"content":..}`.
    pub json: Bytes,
    /// For a broadcast, the `next_seq` object (seq + 1) that follows it.
    pub next_json: Option<Bytes>,
    /// Transport framings, built on first use and then shared (see `front::frame`).
    pub frames: OnceLock<Box<[OnceLock<Bytes>]>>,
}

impl Event {
    /// Creates an event; frames are built lazily by the front.
    pub fn new(chan: ChannelId, seq: i32, kind: EventKind, json: Bytes, next_json: Option<Bytes>) -> Event {
        Event {
            chan,
            seq,
            kind,
            json,
            next_json,
            frames: OnceLock::new(),
        }
    }

    /// Returns the cached framing number `idx` (of `count` variants), building it with `build` once.
    pub fn frame(&self, idx: usize, count: usize, build: impl FnOnce(&Event) -> Bytes) -> Bytes {
        let cells = self
            .frames
            .get_or_init(|| (0..count).map(|_| OnceLock::new()).collect());
        cells[idx].get_or_init(|| build(self)).clone()
    }

    /// True for messages that consumed a seq (data and broadcast).
    pub fn is_sequenced(&self) -> bool {
        self.kind != EventKind::Close
    }
}
