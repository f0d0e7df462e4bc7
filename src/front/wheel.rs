//! A coarse timer wheel ticking once a second (icomet's own model).
//!
//! An entry is `(connection index, tick it is due)`. The connection itself
//! remembers the one tick it is armed for; an entry whose connection has
//! since closed, been reused or been re-armed for another tick is stale and
//! dropped when it comes up. Deadlines that move later (every frame sent
//! postpones a noop) cost nothing until the old entry comes up, when the
//! owner re-arms. Any deadline works: an entry more than [`SLOTS`] ticks
//! away comes up once per round and goes back into its bucket until its
//! round arrives. A tick touches one bucket, never every connection.

/// Buckets in the wheel.
pub const SLOTS: usize = 256;

/// An entry: a connection index and the tick it is due.
type Entry = (u32, u32);

/// The wheel. Its bucket array is allocated on first use: an idle worker
/// holds nothing.
#[derive(Debug, Default)]
pub struct Wheel {
    buckets: Vec<Vec<Entry>>,
    /// Bucket reused for the entries that come up, so a tick does not allocate.
    spare: Vec<Entry>,
}

impl Wheel {
    /// Adds an entry for connection `idx`, due at tick `at`.
    pub fn insert(&mut self, at: u32, idx: u32) {
        if self.buckets.is_empty() {
            self.buckets = (0..SLOTS).map(|_| Vec::new()).collect();
        }
        self.buckets[at as usize % SLOTS].push((idx, at));
    }

    /// Calls `due(idx, at)` for every entry of tick `now`'s bucket that is
    /// due (`at <= now`); entries of later rounds go back into the bucket.
    pub fn expire(&mut self, now: u32, mut due: impl FnMut(u32, u32)) {
        let slot = now as usize % SLOTS;
        let Some(bucket) = self.buckets.get_mut(slot) else {
            return;
        };
        let mut taken = std::mem::replace(bucket, std::mem::take(&mut self.spare));
        for &(idx, at) in &taken {
            if at > now {
                self.buckets[slot].push((idx, at));
            } else {
                due(idx, at);
            }
        }
        // Keep the emptied bucket's allocation for the next tick, unless a
        // burst grew it large (then it is freed).
        taken.clear();
        if taken.capacity() <= 4096 {
            self.spare = taken;
        }
    }

    /// Entries held (stale ones included), for tests.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.buckets.iter().map(Vec::len).sum()
    }

    /// True when no entry is held.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every entry comes up exactly once, at its tick, however far away.
    #[test]
    fn entries_come_up_on_their_tick_however_far() {
        let mut w = Wheel::default();
        let deadlines = [1u32, 5, 255, 256, 257, 300, 511, 512, 1000, 70_000];
        for (i, &at) in deadlines.iter().enumerate() {
            w.insert(at, i as u32);
        }
        let mut seen = Vec::new();
        for now in 1..=70_000 {
            w.expire(now, |idx, at| {
                assert_eq!(at, now, "entry {idx} came up at {now}, due at {at}");
                seen.push(idx);
            });
        }
        assert_eq!(seen, (0..deadlines.len() as u32).collect::<Vec<_>>());
        assert!(w.is_empty());
    }

    #[test]
    fn entries_inserted_while_expiring_wait_for_their_round() {
        let mut w = Wheel::default();
        w.insert(5, 1);
        let mut fired = 0;
        w.expire(5, |_, _| fired += 1);
        // Re-armed for the same bucket one round later: not due now.
        w.insert(5 + SLOTS as u32, 1);
        w.expire(5, |_, _| panic!("not due"));
        w.expire(5 + SLOTS as u32, |_, _| fired += 1);
        assert_eq!(fired, 2);
    }
}
