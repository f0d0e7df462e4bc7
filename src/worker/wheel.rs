//! A coarse timer wheel ticking once a second (icomet's own model).
//!
//! An entry is just `(connection index, connection generation)`. The
//! connection itself remembers the tick it is armed for; an entry whose
//! connection has since closed, been reused, or been re-armed elsewhere is
//! stale and dropped when its bucket comes up. Deadlines that move later
//! (every frame sent postpones a noop) cost nothing until the old entry
//! fires, when the owner re-arms it. A tick touches one bucket, never every
//! connection.

/// Buckets in the wheel; deadlines further out wait for later rounds.
pub const SLOTS: usize = 256;

/// Entries of one bucket.
pub type Bucket = Vec<(u32, u32)>;

/// The wheel. Its bucket array is allocated on first use: an idle worker
/// holds nothing.
#[derive(Debug, Default)]
pub struct Wheel {
    buckets: Vec<Bucket>,
}

impl Wheel {
    /// Adds an entry for tick `at`.
    pub fn insert(&mut self, at: u32, idx: u32, gen: u32) {
        if self.buckets.is_empty() {
            self.buckets = (0..SLOTS).map(|_| Vec::new()).collect();
        }
        self.buckets[at as usize % SLOTS].push((idx, gen));
    }

    /// Takes the bucket of tick `now` (the caller re-inserts what is not due).
    pub fn take(&mut self, now: u32) -> Bucket {
        match self.buckets.get_mut(now as usize % SLOTS) {
            Some(b) => std::mem::take(b),
            None => Vec::new(),
        }
    }

    /// Gives an emptied bucket back to reuse its allocation, unless it grew
    /// large during a burst (then it is freed).
    pub fn give_back(&mut self, now: u32, mut bucket: Bucket) {
        let Some(slot) = self.buckets.get_mut(now as usize % SLOTS) else {
            return;
        };
        if slot.is_empty() && bucket.capacity() <= 4096 {
            bucket.clear();
            *slot = bucket;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_come_back_on_their_tick() {
        let mut w = Wheel::default();
        w.insert(5, 1, 7);
        w.insert(5 + SLOTS as u32, 2, 7);
        assert!(w.take(4).is_empty());
        let b = w.take(5);
        assert_eq!(b, vec![(1, 7), (2, 7)]);
        w.give_back(5, b);
        assert!(w.take(5).is_empty());
    }
}
