//! Long-poll presence: which poll requests are one subscriber, and when
//! that subscriber has left (the rule is in the `hooks` module docs).
//!
//! Plain synchronous code driven by the caller's clock (whole seconds, the
//! worker's 1-second wheel, and milliseconds for event times). One table is
//! shared by the workers behind the caller's lock, because a re-poll may
//! arrive on another worker; each poll request touches it twice (start and
//! end) and the wheel calls [`PollLineages::expire`] once a second, which
//! costs O(lineages that expire). It never sees a socket or a channel slot.

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasherDefault;
use std::net::IpAddr;

use super::event::{next_id, HookEvent, LeaveReason, Subscriber};
use crate::ttl_cache::{IdentityHasher, KeyHasher};

/// Seconds added to `polling_timeout` before an idle long-poll lineage
/// counts as gone.
pub const POLL_GRACE_SECS: u64 = 5;

/// The transport name of long-poll subscribers in events.
const POLL: &str = "poll";

/// Identifies a lineage: a hash of (ip, cname, token). Keep it with the
/// poll request to end it with [`PollLineages::poll_end`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LineageKey(u128);

struct Lineage {
    who: Subscriber,
    /// Poll requests of this lineage that have not ended.
    open: u32,
    /// When `open` last dropped to 0 (seconds, caller's clock).
    idle_since: u64,
}

/// The long-poll lineages of the whole server.
pub struct PollLineages {
    map: HashMap<u128, Lineage, BuildHasherDefault<IdentityHasher>>,
    /// (key, idle_since) in the order lineages went idle. A record whose
    /// lineage is gone, open again, or idle since another time is stale.
    idle: VecDeque<(u128, u64)>,
    keys: KeyHasher,
    /// A lineage idle longer than this many seconds has left.
    leave_after: u64,
}

impl PollLineages {
    /// An empty table for a server whose `front.polling_timeout` is
    /// `polling_timeout_secs`.
    pub fn new(polling_timeout_secs: u32) -> PollLineages {
        PollLineages {
            map: HashMap::default(),
            idle: VecDeque::new(),
            keys: KeyHasher::new(),
            leave_after: u64::from(polling_timeout_secs) + POLL_GRACE_SECS,
        }
    }

    /// The key of a poll request: its client address, channel and the token
    /// it sent (empty when none).
    pub fn key(&self, ip: IpAddr, cname: &str, token: &str) -> LineageKey {
        LineageKey(self.keys.key_of(&(ip, cname, token)))
    }

    /// A poll request for `key` started (it passed auth and is subscribed).
    /// Returns the `subscribe` event when it starts a lineage, None when it
    /// joins a live one.
    pub fn poll_start(
        &mut self,
        key: LineageKey,
        ip: IpAddr,
        cname: &str,
        sub: Option<&str>,
        now_ms: u64,
    ) -> Option<HookEvent> {
        if let Some(lineage) = self.map.get_mut(&key.0) {
            lineage.open += 1;
            return None;
        }
        let who = Subscriber {
            id: next_id(),
            cname: cname.into(),
            transport: POLL,
            ip,
            sub: sub.map(Box::from),
            time_ms: now_ms,
        };
        let event = HookEvent::Subscribe(who.clone());
        self.map.insert(
            key.0,
            Lineage {
                who,
                open: 1,
                idle_since: 0,
            },
        );
        Some(event)
    }

    /// A poll request of `key` ended at `now` (seconds), however it ended.
    pub fn poll_end(&mut self, key: LineageKey, now: u64) {
        if let Some(lineage) = self.map.get_mut(&key.0) {
            lineage.open = lineage.open.saturating_sub(1);
            if lineage.open == 0 {
                lineage.idle_since = now;
                self.idle.push_back((key.0, now));
            }
        }
    }

    /// Ends the lineages idle for longer than `polling_timeout` +
    /// [`POLL_GRACE_SECS`] at `now` (seconds), appending their `unsubscribe`
    /// events (reason `timeout`, time `now_ms`) to `out`.
    pub fn expire(&mut self, now: u64, now_ms: u64, out: &mut Vec<HookEvent>) {
        while let Some(&(key, since)) = self.idle.front() {
            if now.saturating_sub(since) <= self.leave_after {
                break;
            }
            self.idle.pop_front();
            let current = self.map.get(&key).is_some_and(|l| l.open == 0 && l.idle_since == since);
            if current {
                if let Some(lineage) = self.map.remove(&key) {
                    out.push(HookEvent::Unsubscribe(lineage.who.leave(LeaveReason::Timeout, now_ms)));
                }
            }
        }
    }

    /// Ends every lineage of `cname` at once (`/close`, expiry), open
    /// requests or not, appending their `unsubscribe` events to `out`.
    pub fn close_channel(&mut self, cname: &str, reason: LeaveReason, now_ms: u64, out: &mut Vec<HookEvent>) {
        self.map.retain(|_, lineage| {
            if &*lineage.who.cname != cname {
                return true;
            }
            out.push(HookEvent::Unsubscribe(lineage.who.leave(reason, now_ms)));
            false
        });
    }

    /// Ends every lineage (shutdown), appending their events to `out`.
    pub fn close_all(&mut self, reason: LeaveReason, now_ms: u64, out: &mut Vec<HookEvent>) {
        for (_, lineage) in self.map.drain() {
            out.push(HookEvent::Unsubscribe(lineage.who.leave(reason, now_ms)));
        }
        self.idle.clear();
    }

    /// Live lineages (long-poll subscribers as the application sees them).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no lineage is live.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: u32 = 30; // leave after 35 s idle

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    /// (type, id, reason) of each event, for compact assertions.
    fn summary(events: &[HookEvent]) -> Vec<(&'static str, u64, Option<LeaveReason>)> {
        events
            .iter()
            .map(|e| match e {
                HookEvent::Subscribe(s) => ("subscribe", s.id, None),
                HookEvent::Unsubscribe(l) => ("unsubscribe", l.id, Some(l.reason)),
                _ => ("other", 0, None),
            })
            .collect()
    }

    fn id_of(e: &Option<HookEvent>) -> u64 {
        match e {
            Some(HookEvent::Subscribe(s)) => s.id,
            other => panic!("not a subscribe: {other:?}"),
        }
    }

    #[test]
    fn repolls_within_the_window_are_one_subscriber() {
        let mut t = PollLineages::new(TIMEOUT);
        let a = ip("10.0.0.1");
        let k = t.key(a, "room1", "tok");
        let first = t.poll_start(k, a, "room1", Some("user42"), 1000);
        let Some(HookEvent::Subscribe(who)) = &first else {
            panic!("first poll subscribes: {first:?}")
        };
        assert_eq!(
            (&*who.cname, who.transport, who.sub.as_deref()),
            ("room1", "poll", Some("user42"))
        );
        let mut out = Vec::new();
        // Answer at 30 s (a noop), re-poll, answer at 60 s, re-poll 35 s later.
        t.poll_end(k, 30);
        assert_eq!(t.poll_start(k, a, "room1", Some("user42"), 0), None);
        t.poll_end(k, 60);
        for now in 60..=95 {
            t.expire(now, 0, &mut out);
        }
        assert!(out.is_empty(), "idle 35 s is within the window");
        assert_eq!(t.poll_start(k, a, "room1", Some("user42"), 0), None);
        t.poll_end(k, 100);
        t.expire(135, 0, &mut out);
        assert!(out.is_empty());
        t.expire(136, 7, &mut out);
        assert_eq!(
            summary(&out),
            [("unsubscribe", id_of(&first), Some(LeaveReason::Timeout))]
        );
        let HookEvent::Unsubscribe(leave) = &out[0] else {
            unreachable!()
        };
        assert_eq!((leave.ip, leave.sub.as_deref(), leave.time_ms), (a, Some("user42"), 7));
        assert!(t.is_empty());
        // Coming back later is a new subscriber with a new id.
        let again = t.poll_start(k, a, "room1", Some("user42"), 0);
        assert_ne!(id_of(&again), id_of(&first));
    }

    #[test]
    fn an_open_request_keeps_the_lineage() {
        let mut t = PollLineages::new(TIMEOUT);
        let a = ip("10.0.0.1");
        let k = t.key(a, "c", "");
        let first = t.poll_start(k, a, "c", None, 0);
        // A second request overlaps the first (a reconnect before the old
        // connection's end was noticed), then the first ends.
        assert_eq!(t.poll_start(k, a, "c", None, 0), None);
        t.poll_end(k, 10);
        let mut out = Vec::new();
        t.expire(1000, 0, &mut out);
        assert!(out.is_empty(), "one request is still open");
        t.poll_end(k, 1000);
        t.expire(1035, 0, &mut out);
        assert!(out.is_empty());
        t.expire(1036, 0, &mut out);
        assert_eq!(
            summary(&out),
            [("unsubscribe", id_of(&first), Some(LeaveReason::Timeout))]
        );
    }

    #[test]
    fn stale_idle_records_do_not_end_a_lineage_early() {
        let mut t = PollLineages::new(TIMEOUT);
        let a = ip("10.0.0.1");
        let k = t.key(a, "c", "");
        t.poll_start(k, a, "c", None, 0);
        t.poll_end(k, 10); // record (k, 10)
        t.poll_start(k, a, "c", None, 0);
        t.poll_end(k, 40); // record (k, 40); (k, 10) is stale
        let mut out = Vec::new();
        t.expire(46, 0, &mut out);
        assert!(out.is_empty(), "the stale record at 10 s ends nothing");
        t.expire(76, 0, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(t.idle.len(), 0);
    }

    #[test]
    fn keys_separate_address_channel_and_token() {
        let mut t = PollLineages::new(TIMEOUT);
        let (a, b) = (ip("10.0.0.1"), ip("::1"));
        let mut subscribes = 0;
        for (addr, cname, token) in [(a, "c", ""), (b, "c", ""), (a, "d", ""), (a, "c", "t1"), (a, "c", "t2")] {
            let k = t.key(addr, cname, token);
            subscribes += usize::from(t.poll_start(k, addr, cname, None, 0).is_some());
        }
        assert_eq!(subscribes, 5);
        // Same triple again: joins.
        let k = t.key(a, "c", "t1");
        assert_eq!(t.poll_start(k, a, "c", None, 0), None);
        assert_eq!(t.len(), 5);
    }

    #[test]
    fn close_channel_and_close_all() {
        let mut t = PollLineages::new(TIMEOUT);
        let a = ip("10.0.0.1");
        for (cname, token) in [("c", "1"), ("c", "2"), ("d", "1")] {
            let k = t.key(a, cname, token);
            t.poll_start(k, a, cname, None, 0);
        }
        let mut out = Vec::new();
        t.close_channel("c", LeaveReason::ChannelClosed, 5, &mut out);
        assert_eq!(out.len(), 2);
        assert!(
            out.iter().all(|e| matches!(e,
            HookEvent::Unsubscribe(l) if &*l.cname == "c" && l.reason == LeaveReason::ChannelClosed && l.time_ms == 5))
        );
        assert_eq!(t.len(), 1);
        // A request of a closed lineage that ends later changes nothing.
        t.poll_end(t.key(a, "c", "1"), 9);
        out.clear();
        t.close_all(LeaveReason::Shutdown, 6, &mut out);
        assert_eq!(summary(&out).len(), 1);
        assert!(t.is_empty());
        t.expire(10_000, 0, &mut out);
        assert_eq!(out.len(), 1);
    }
}
