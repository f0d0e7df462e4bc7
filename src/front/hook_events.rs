//! The event hook's view of this worker's subscriptions: who each one is,
//! so that its `unsubscribe` event carries the same `id`, `cname`,
//! `transport`, `ip` and `sub` as its `subscribe`.
//!
//! The records live in side tables keyed by subscription index, filled
//! only while the event hook is on: without it, a subscriber costs what it
//! always did, and every call here returns at its first test. A streaming
//! subscription (stream, sse, iframe, one channel of a WebSocket) is one
//! subscriber from its join to its removal; its record keeps what the
//! subscription itself does not (the channel's name is read from the
//! subscription when it leaves). A long-poll request only starts or joins
//! its lineage and ends it again (`hooks::PollLineages`), so its record is
//! the lineage's key. The reason a subscription ends is decided where it is
//! removed (see [`leave_reason`]). This file never touches a socket and
//! never sends anything itself.

use std::collections::HashMap;
use std::net::IpAddr;

use super::admit::Admitted;
use super::conn::Flags;
use super::subs::NIL;
use super::{Front, Sock, Transport};
use crate::hooks::{next_id, now_ms, LeaveReason, LineageKey, Subscriber};

/// What a streaming subscription's `unsubscribe` needs besides its channel
/// (48 bytes).
#[derive(Debug)]
struct Streaming {
    id: u64,
    sub: Option<Box<str>>,
    ip: IpAddr,
    transport: Transport,
}

/// A worker's records, by subscription index.
#[derive(Debug, Default)]
pub(super) struct Members {
    streams: HashMap<u32, Streaming>,
    polls: HashMap<u32, LineageKey>,
}

impl Members {
    fn is_empty(&self) -> bool {
        self.streams.is_empty() && self.polls.is_empty()
    }
}

/// Why a connection's subscriptions end when it closes or stops being a
/// subscriber: the server is draining (`shutdown`), its queue overflowed
/// (`slow_consumer`), or else the client went or broke the protocol
/// (`closed`).
pub(super) fn leave_reason(draining: bool, flags: Flags) -> LeaveReason {
    if draining {
        LeaveReason::Shutdown
    } else if flags.has(Flags::SLOW) {
        LeaveReason::SlowConsumer
    } else {
        LeaveReason::Closed
    }
}

impl<S: Sock> Front<S> {
    /// Subscription `sub` (index in the worker's subscriptions) joined
    /// `cname` over `t` after the checks found `admitted`; `token` is the
    /// token as sent. A streaming subscriber's `subscribe` event goes out
    /// now; a long poll starts or joins its lineage.
    pub(super) fn hook_joined(&mut self, sub: u32, t: Transport, cname: &str, token: &str, admitted: Admitted) {
        let Some(events) = self.shared.backend.events() else {
            return;
        };
        if !t.is_streaming() {
            let key = events.poll_start(admitted.ip, cname, token, admitted.sub.as_deref());
            self.members.polls.insert(sub, key);
            return;
        }
        let id = next_id();
        events.joined(Subscriber {
            id,
            cname: cname.into(),
            transport: t.name(),
            ip: admitted.ip,
            sub: admitted.sub.clone(),
            time_ms: now_ms(),
        });
        let record = Streaming {
            id,
            sub: admitted.sub,
            ip: admitted.ip,
            transport: t,
        };
        self.members.streams.insert(sub, record);
    }

    /// A long poll answered at once (it never waited): it starts or joins
    /// its lineage and ends at once.
    pub(super) fn hook_polled(&self, cname: &str, token: &str, admitted: &Admitted) {
        if let Some(events) = self.shared.backend.events() {
            let key = events.poll_start(admitted.ip, cname, token, admitted.sub.as_deref());
            events.poll_end(key);
        }
    }

    /// Subscription `sub` is about to be removed (it must still be in its
    /// channel's list), for `why`: a streaming subscriber's `unsubscribe`
    /// event goes out; a long poll ends its request in its lineage.
    pub(super) fn hook_left(&mut self, sub: u32, why: LeaveReason) {
        if self.members.is_empty() {
            return;
        }
        let Some(events) = self.shared.backend.events() else {
            return;
        };
        if let Some(key) = self.members.polls.remove(&sub) {
            events.poll_end(key);
        } else if let Some(s) = self.members.streams.remove(&sub) {
            let cname = self.subs.name(self.subs.get(sub).chan).unwrap_or("");
            let who = Subscriber {
                id: s.id,
                cname: cname.into(),
                transport: s.transport.name(),
                ip: s.ip,
                sub: s.sub,
                time_ms: 0,
            };
            events.left(who, why);
        }
        if self.members.is_empty() {
            // Everyone left after a burst: give the tables back.
            if self.members.streams.capacity() > 1024 || self.members.polls.capacity() > 1024 {
                self.members = Members::default();
            }
        }
    }

    /// Every subscription of a connection (its list starts at `first`) is
    /// about to be removed, for `why`.
    pub(super) fn hook_left_all(&mut self, first: u32, why: LeaveReason) {
        if self.members.is_empty() {
            return;
        }
        let mut cur = first;
        while cur != NIL {
            let next = self.subs.get(cur).next_of_conn;
            self.hook_left(cur, why);
            cur = next;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_streaming_record_stays_small() {
        assert_eq!(std::mem::size_of::<Streaming>(), 48);
    }
}
