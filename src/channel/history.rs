//! A channel's history: the messages a subscriber that resumes by seq is
//! replayed (reference §2.4, §2.5).
//!
//! An entry is a [`Message`]: its seq, its kind and a reference to its
//! JSON-escaped content, 24 bytes. The content itself is stored once per
//! publish and shared: a broadcast's content is one allocation referenced
//! by every channel's history, and no framing (message JSON, transport
//! frames) is kept here; the front builds frames from the entry when it
//! needs them. The ring grows by doubling from one entry up to the most it
//! ever holds (icomet trims to `size` once it reaches 1.5 x `size`), so a
//! channel with one message of history holds one entry, not a power-of-two
//! block sized for many.

use std::collections::VecDeque;
use std::sync::Arc;

/// What a sequenced message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `/pub` or `/push`.
    Data,
    /// `/broadcast`: followed by a `next_seq` on the wire (reference §2.7).
    Broadcast,
}

impl Kind {
    /// The icomet `type` of the message object.
    pub fn type_name(self) -> &'static str {
        match self {
            Kind::Data => "data",
            Kind::Broadcast => "broadcast",
        }
    }
}

/// One sequenced message of one channel: what history keeps and workers deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Its seq in the channel.
    pub seq: i32,
    /// Data or broadcast.
    pub kind: Kind,
    /// The content, already JSON-escaped (the inside of a JSON string),
    /// shared by every channel and worker that holds the message.
    pub content: Arc<str>,
}

/// The most entries a history of `size` ever holds: icomet appends, then
/// trims to `size` once the list holds at least 1.5 x `size` entries.
pub fn max_entries(size: u32) -> usize {
    let size = size as usize;
    // The smallest n with 2n >= 3 size triggers the trim; n - 1 stay.
    (3 * size).div_ceil(2).saturating_sub(1).max(size)
}

/// The history ring of one channel.
#[derive(Debug, Default)]
pub struct History {
    ring: VecDeque<Message>,
}

impl History {
    /// Appends `m`, trimming as icomet does (the oldest go first) when the
    /// history would reach 1.5 x `size`. With `size` 0 nothing is kept.
    pub fn push(&mut self, m: Message, size: u32) {
        let size = size as usize;
        if size == 0 {
            return;
        }
        if (self.ring.len() + 1) * 2 >= size * 3 {
            let excess = self.ring.len() + 1 - size;
            self.ring.drain(..excess);
        }
        if self.ring.len() == self.ring.capacity() {
            // Double, from one entry, up to the most this history holds:
            // VecDeque's own growth would start at four.
            let cap = self.ring.capacity();
            let want = (cap * 2).clamp(1, max_entries(size as u32));
            self.ring.reserve_exact(want.max(cap + 1) - cap);
        }
        self.ring.push_back(m);
    }

    /// The messages with seq >= `seq` (wrapping order), oldest first.
    pub fn since(&self, seq: i32) -> impl Iterator<Item = &Message> + '_ {
        self.ring.iter().filter(move |m| m.seq.wrapping_sub(seq) >= 0)
    }

    /// Every message, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &Message> + '_ {
        self.ring.iter()
    }

    /// Number of messages held.
    pub fn len(&self) -> usize {
        self.ring.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }

    /// Keeps only the newest `n` messages (a smaller history size took
    /// effect), giving back the room the others used.
    pub fn keep_newest(&mut self, n: usize) {
        if self.ring.len() > n {
            let excess = self.ring.len() - n;
            self.ring.drain(..excess);
            self.ring.shrink_to_fit();
        }
    }

    /// Forgets every message and frees the ring.
    pub fn clear(&mut self) {
        self.ring = VecDeque::new();
    }

    /// Entries the ring has room for (its allocation), for memory tests.
    pub fn capacity(&self) -> usize {
        self.ring.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(seq: i32, content: &Arc<str>) -> Message {
        Message {
            seq,
            kind: Kind::Data,
            content: content.clone(),
        }
    }

    fn seqs(h: &History) -> Vec<i32> {
        h.iter().map(|m| m.seq).collect()
    }

    #[test]
    fn an_entry_is_small_and_a_lone_message_takes_one_slot() {
        assert_eq!(std::mem::size_of::<Message>(), 24);
        let c: Arc<str> = "x".into();
        let mut h = History::default();
        assert_eq!(h.capacity(), 0, "no allocation before the first message");
        h.push(msg(1, &c), 10);
        assert_eq!(h.capacity(), 1);
        h.push(msg(2, &c), 10);
        assert_eq!(h.capacity(), 2);
        for s in 3..=40 {
            h.push(msg(s, &c), 10);
            assert!(h.capacity() <= max_entries(10), "capacity {}", h.capacity());
        }
    }

    #[test]
    fn trims_like_icomet() {
        assert_eq!(max_entries(10), 14);
        assert_eq!(max_entries(3), 4);
        assert_eq!(max_entries(1), 1);
        assert_eq!(max_entries(0), 0);
        let c: Arc<str> = "x".into();
        // Size 3: after 6 pushes it holds 3..=6 (reference §2.4, observed).
        let mut h = History::default();
        for s in 1..=6 {
            h.push(msg(s, &c), 3);
        }
        assert_eq!(seqs(&h), [3, 4, 5, 6]);
        // Size 10 holds up to 14, and the 15th push trims back to 10.
        let mut h = History::default();
        for s in 1..=14 {
            h.push(msg(s, &c), 10);
        }
        assert_eq!(h.len(), 14);
        h.push(msg(15, &c), 10);
        assert_eq!(seqs(&h), (6..=15).collect::<Vec<_>>());
        // Size 0 keeps nothing; size 1 keeps the last.
        let mut h = History::default();
        h.push(msg(1, &c), 0);
        assert!(h.is_empty() && h.capacity() == 0);
        for s in 1..=3 {
            h.push(msg(s, &c), 1);
        }
        assert_eq!(seqs(&h), [3]);
    }

    #[test]
    fn replay_by_seq_wraps() {
        let c: Arc<str> = "x".into();
        let mut h = History::default();
        for s in [i32::MAX - 1, i32::MAX, i32::MIN, i32::MIN + 1] {
            h.push(msg(s, &c), 10);
        }
        let from = |s: i32| h.since(s).map(|m| m.seq).collect::<Vec<_>>();
        assert_eq!(from(i32::MAX), [i32::MAX, i32::MIN, i32::MIN + 1]);
        assert_eq!(from(i32::MIN + 1), [i32::MIN + 1]);
        assert_eq!(from(i32::MIN + 2), Vec::<i32>::new());
        h.clear();
        assert!(h.is_empty() && h.capacity() == 0);
    }

    #[test]
    fn content_is_shared_not_copied() {
        let content: Arc<str> = "a broadcast".into();
        let mut histories: Vec<History> = (0..1000).map(|_| History::default()).collect();
        for (i, h) in histories.iter_mut().enumerate() {
            h.push(
                Message {
                    seq: i as i32,
                    kind: Kind::Broadcast,
                    content: content.clone(),
                },
                10,
            );
        }
        assert_eq!(Arc::strong_count(&content), 1001);
        for h in &mut histories {
            h.clear();
        }
        assert_eq!(Arc::strong_count(&content), 1);
    }
}
