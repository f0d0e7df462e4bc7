//! Subscriptions, apart from connections: one record per (connection,
//! channel), linked into its channel's list and its connection's list.
//!
//! A [`Sub`] is 28 bytes: its connection, its channel, the next data seq
//! it should get, its neighbours in the channel's list and the next
//! subscription of the same connection. A worker keeps, per channel it
//! serves, only the two ends of that channel's list and a count
//! ([`ChannelList`]); a connection keeps the index of its first
//! subscription. Joining and leaving are O(1) in the channel list (O(n) in
//! the connection's own short list), delivering walks a channel's list in
//! arrival order, and nothing is allocated per subscription beyond its slab
//! slot. One connection can hold several channels (WebSocket) at a few tens
//! of bytes each, while a one-channel subscriber costs what it did when the
//! subscription lived inside the connection.
//!
//! Why lists and not a `Vec<u32>` per channel: at 1,000,000 subscribers over
//! 1,000 channels and 52 workers that was 52,000 small buffers growing by
//! reallocation interleaved in the heap; after everyone left, the pages they
//! were spread over stayed pinned by the few live blocks among them
//! (measured with `tools/c1000k`: RSS after everyone left +73% to +80% of
//! idle, against +26% with lists threaded through the records).

use std::sync::Arc;

use hashbrown::HashTable;

use crate::channel::ChannelId;

/// No record: the end of a list.
pub const NIL: u32 = u32::MAX;

/// A subscription's neighbours in its channel's list (subscription indexes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Links {
    /// The one before, or [`NIL`].
    pub prev: u32,
    /// The one after, or [`NIL`].
    pub next: u32,
}

impl Links {
    /// Not in any list.
    pub const NONE: Links = Links { prev: NIL, next: NIL };
}

/// One connection's subscription to one channel.
#[derive(Debug, Clone, Copy)]
pub struct Sub {
    /// The connection (index in the worker's connection array); [`NIL`] when the slot is free.
    pub conn: u32,
    /// The channel.
    pub chan: ChannelId,
    /// The next data seq this subscription should get; older ones are skipped.
    pub next_seq: i32,
    /// Neighbours in the channel's list.
    pub links: Links,
    /// The connection's next subscription, or [`NIL`].
    pub next_of_conn: u32,
}

/// A worker's subscriptions of one channel (32 bytes).
#[derive(Debug)]
pub struct ChannelList {
    /// The channel.
    chan: ChannelId,
    /// The channel name (for frames built here), shared with the channel
    /// table; `None` while the list is free.
    name: Option<Arc<str>>,
    /// Oldest subscription, or [`NIL`] (the list is then free).
    pub head: u32,
    /// Newest subscription, or [`NIL`].
    tail: u32,
}

impl ChannelList {
    /// The channel's name.
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or("")
    }
}

/// Every subscription of one worker.
#[derive(Debug, Default)]
pub struct Subs {
    slab: Vec<Sub>,
    free: Vec<u32>,
    /// Channel lists, densely; the index finds them by channel.
    lists: Vec<ChannelList>,
    free_lists: Vec<u32>,
    /// List numbers by channel: 4 bytes an entry, so that a worker serving
    /// 20,000 one-subscriber channels pays the hash table's slack on 4
    /// bytes, not on a whole list.
    index: HashTable<u32>,
    hasher: ahash::RandomState,
}

impl Subs {
    /// The subscription at `i`.
    pub fn get(&self, i: u32) -> &Sub {
        &self.slab[i as usize]
    }

    /// The subscription at `i`, to update its seq.
    pub fn get_mut(&mut self, i: u32) -> &mut Sub {
        &mut self.slab[i as usize]
    }

    /// The number of a channel's list.
    fn list_of(&self, chan: ChannelId) -> Option<u32> {
        let lists = &self.lists;
        self.index
            .find(self.hasher.hash_one(chan.key()), |&l| lists[l as usize].chan == chan)
            .copied()
    }

    /// The worker's list of a channel.
    pub fn list(&self, chan: ChannelId) -> Option<&ChannelList> {
        self.list_of(chan).map(|l| &self.lists[l as usize])
    }

    /// The name of a channel this worker serves.
    pub fn name(&self, chan: ChannelId) -> Option<&str> {
        self.list(chan).map(ChannelList::name)
    }

    /// Live subscriptions.
    pub fn len(&self) -> usize {
        self.slab.len() - self.free.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds a subscription of connection `conn` (whose first subscription
    /// is `*first`) to channel `chan` named `name`, at the end of the
    /// channel's list and of the connection's (a connection's list is in
    /// the order it subscribed: its first is its URL channel); returns its
    /// index.
    pub fn add(&mut self, conn: u32, first: &mut u32, chan: ChannelId, name: &Arc<str>, next_seq: i32) -> u32 {
        let sub = Sub {
            conn,
            chan,
            next_seq,
            links: Links::NONE,
            next_of_conn: NIL,
        };
        let i = match self.free.pop() {
            Some(i) => {
                self.slab[i as usize] = sub;
                i
            }
            None => {
                self.slab.push(sub);
                (self.slab.len() - 1) as u32
            }
        };
        if *first == NIL {
            *first = i;
        } else {
            let mut last = *first;
            while self.slab[last as usize].next_of_conn != NIL {
                last = self.slab[last as usize].next_of_conn;
            }
            self.slab[last as usize].next_of_conn = i;
        }
        let l = match self.list_of(chan) {
            Some(l) => l,
            None => self.new_list(chan, name),
        };
        let list = &mut self.lists[l as usize];
        self.slab[i as usize].links.prev = list.tail;
        if list.tail == NIL {
            list.head = i;
        } else {
            self.slab[list.tail as usize].links.next = i;
        }
        list.tail = i;
        i
    }

    /// An empty list for `chan`, indexed.
    fn new_list(&mut self, chan: ChannelId, name: &Arc<str>) -> u32 {
        let list = ChannelList {
            chan,
            name: Some(name.clone()),
            head: NIL,
            tail: NIL,
        };
        let l = match self.free_lists.pop() {
            Some(l) => {
                self.lists[l as usize] = list;
                l
            }
            None => {
                self.lists.push(list);
                (self.lists.len() - 1) as u32
            }
        };
        let (lists, hasher) = (&self.lists, &self.hasher);
        self.index.insert_unique(hasher.hash_one(chan.key()), l, |&x| {
            hasher.hash_one(lists[x as usize].chan.key())
        });
        l
    }

    /// Removes subscription `i` from its channel's list and frees it (the
    /// caller unlinks it from its connection's list, see
    /// [`Subs::remove_of_conn`]); returns its channel and whether this
    /// worker's list of that channel is now empty (and gone).
    fn unlink(&mut self, i: u32) -> (ChannelId, bool) {
        let Sub { chan, links, .. } = self.slab[i as usize];
        let Some(l) = self.list_of(chan) else {
            debug_assert!(false, "a subscription of a channel this worker does not list");
            return (chan, true);
        };
        let list = &mut self.lists[l as usize];
        if links.prev == NIL {
            list.head = links.next;
        } else {
            self.slab[links.prev as usize].links.next = links.next;
        }
        if links.next == NIL {
            list.tail = links.prev;
        } else {
            self.slab[links.next as usize].links.prev = links.prev;
        }
        let empty = list.head == NIL;
        if empty {
            let hash = self.hasher.hash_one(chan.key());
            if let Ok(entry) = self.index.find_entry(hash, |&x| x == l) {
                entry.remove();
            }
            // Drop the name now; the slot waits in the free list.
            self.lists[l as usize].name = None;
            self.free_lists.push(l);
        }
        self.slab[i as usize] = Sub {
            conn: NIL,
            chan,
            next_seq: 0,
            links: Links::NONE,
            next_of_conn: NIL,
        };
        self.free.push(i);
        (chan, empty)
    }

    /// Removes subscription `i` of a connection whose first subscription is
    /// `*first`; returns its channel and whether the channel's list is now
    /// empty.
    pub fn remove_of_conn(&mut self, first: &mut u32, i: u32) -> (ChannelId, bool) {
        let after = self.slab[i as usize].next_of_conn;
        if *first == i {
            *first = after;
        } else {
            let mut cur = *first;
            while cur != NIL {
                let next = self.slab[cur as usize].next_of_conn;
                if next == i {
                    self.slab[cur as usize].next_of_conn = after;
                    break;
                }
                cur = next;
            }
        }
        self.unlink(i)
    }

    /// Removes every subscription of a connection (its list starts at
    /// `*first`, which becomes [`NIL`]); calls `gone(channel, list_empty)`
    /// for each.
    pub fn remove_all(&mut self, first: &mut u32, mut gone: impl FnMut(ChannelId, bool)) {
        let mut cur = std::mem::replace(first, NIL);
        while cur != NIL {
            let next = self.slab[cur as usize].next_of_conn;
            let (chan, empty) = self.unlink(cur);
            gone(chan, empty);
            cur = next;
        }
    }

    /// The subscription of a connection (list at `first`) to the channel named `name`.
    pub fn find_by_name(&self, first: u32, name: &str) -> Option<u32> {
        self.of_conn(first)
            .find(|&i| self.name(self.slab[i as usize].chan) == Some(name))
    }

    /// A connection's subscriptions (list at `first`), in the order it made them.
    pub fn of_conn(&self, first: u32) -> impl Iterator<Item = u32> + '_ {
        std::iter::successors((first != NIL).then_some(first), move |&i| {
            let next = self.slab[i as usize].next_of_conn;
            (next != NIL).then_some(next)
        })
    }

    /// Frees what a burst grew once nobody is subscribed.
    pub fn release_memory(&mut self) {
        debug_assert!(self.is_empty());
        self.slab = Vec::new();
        self.free = Vec::new();
        self.lists = Vec::new();
        self.free_lists = Vec::new();
        self.index = HashTable::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    fn chan(n: u32) -> ChannelId {
        ChannelId { slot: n, gen: 1 }
    }

    /// A channel's list read forwards, checked against the back links and the count.
    fn walk(s: &Subs, c: ChannelId) -> Vec<u32> {
        let Some(l) = s.list(c) else { return Vec::new() };
        let mut out = Vec::new();
        let (mut prev, mut cur) = (NIL, l.head);
        while cur != NIL {
            assert_eq!(s.get(cur).links.prev, prev, "back link of {cur}");
            assert_eq!(s.get(cur).chan, c);
            out.push(s.get(cur).conn);
            prev = cur;
            cur = s.get(cur).links.next;
        }
        assert_eq!(l.tail, prev);
        out
    }

    #[test]
    fn records_stay_small() {
        assert_eq!(std::mem::size_of::<Sub>(), 28);
        assert_eq!(std::mem::size_of::<ChannelList>(), 32);
    }

    #[test]
    fn one_connection_holds_several_channels() {
        let name: Arc<str> = "c".into();
        let mut s = Subs::default();
        let mut first = NIL;
        let a = s.add(7, &mut first, chan(1), &name, 5);
        let b = s.add(7, &mut first, chan(2), &name, 9);
        let c = s.add(7, &mut first, chan(3), &name, 1);
        assert_eq!(s.of_conn(first).collect::<Vec<_>>(), [a, b, c], "in the order made");
        assert_eq!(s.find_by_name(first, "c"), Some(a), "all three share the name here");
        assert_eq!(s.find_by_name(first, "d"), None);
        assert_eq!(s.remove_of_conn(&mut first, b), (chan(2), true));
        assert_eq!(s.of_conn(first).collect::<Vec<_>>(), [a, c]);
        assert_eq!(s.remove_of_conn(&mut first, a), (chan(1), true));
        assert_eq!(s.of_conn(first).collect::<Vec<_>>(), [c]);
        let d = s.add(7, &mut first, chan(4), &name, 1);
        assert_eq!(s.of_conn(first).collect::<Vec<_>>(), [c, d]);
        let mut gone = Vec::new();
        s.remove_all(&mut first, |ch, empty| gone.push((ch.slot, empty)));
        gone.sort_unstable();
        assert_eq!(gone, [(3, true), (4, true)]);
        assert_eq!((first, s.len()), (NIL, 0));
    }

    #[test]
    fn channel_lists_match_a_queue_model_under_random_joins_and_leaves() {
        let name: Arc<str> = "c".into();
        let n = 64u32;
        let mut s = Subs::default();
        // Each connection holds at most one subscription per channel, on
        // channels 0..3.
        let mut firsts = vec![NIL; n as usize];
        let mut models: Vec<VecDeque<u32>> = vec![VecDeque::new(); 3];
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            // xorshift: a fixed sequence, so a failure is reproducible.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let conn = (x % u64::from(n)) as u32;
            let ch = ((x >> 32) % 3) as u32;
            let first = &mut firsts[conn as usize];
            let found = s.of_conn(*first).find(|&i| s.get(i).chan == chan(ch));
            match found {
                Some(i) => {
                    let at = models[ch as usize].iter().position(|&c| c == conn).expect("modelled");
                    models[ch as usize].remove(at);
                    let (_, empty) = s.remove_of_conn(first, i);
                    assert_eq!(empty, models[ch as usize].is_empty());
                }
                None => {
                    models[ch as usize].push_back(conn);
                    s.add(conn, first, chan(ch), &name, 0);
                }
            }
            for c in 0..3 {
                assert_eq!(walk(&s, chan(c)), Vec::from(models[c as usize].clone()));
            }
        }
    }
}
