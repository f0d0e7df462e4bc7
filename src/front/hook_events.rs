//! The event hook's view of this worker's subscriptions: who each one is,
//! so that its `unsubscribe` event carries the same `id`, `cname`,
//! `transport`, `ip` and `sub` as its `subscribe`.
//!
//! The records live in a side table keyed by subscription index, filled
//! only while the event hook is on: without it, a subscriber costs what it
//! always did, and every call here returns at its first test. A streaming
//! subscription (stream, sse, iframe, one channel of a WebSocket) is one
//! subscriber from its join to its removal; a long-poll request only
//! starts or joins its lineage and ends it again (`hooks::PollLineages`),
//! so its record is the lineage's key. The reason a subscription ends is
//! decided where it is removed (see [`leave_reason`]). This file never
//! touches a socket and never sends anything itself.

use std::collections::HashMap;

use super::admit::Admitted;
use super::conn::Flags;
use super::subs::NIL;
use super::{Front, Sock, Transport};
use crate::hooks::{next_id, now_ms, LeaveReason, LineageKey, Subscriber};

/// Who a subscription is, for its `unsubscribe` event.
#[derive(Debug)]
enum Member {
    /// A long-poll request of this lineage.
    Poll(LineageKey),
    /// A streaming subscriber.
    Streaming(Subscriber),
}

/// A worker's records, by subscription index.
#[derive(Debug, Default)]
pub(super) struct Members(HashMap<u32, Member>);

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
        let member = if t.is_streaming() {
            let who = Subscriber {
                id: next_id(),
                cname: cname.into(),
                transport: t.name(),
                ip: admitted.ip,
                sub: admitted.sub,
                time_ms: now_ms(),
            };
            events.joined(&who);
            Member::Streaming(who)
        } else {
            Member::Poll(events.poll_start(admitted.ip, cname, token, admitted.sub.as_deref()))
        };
        self.members.0.insert(sub, member);
    }

    /// A long poll answered at once (it never waited): it starts or joins
    /// its lineage and ends at once.
    pub(super) fn hook_polled(&self, cname: &str, token: &str, admitted: &Admitted) {
        if let Some(events) = self.shared.backend.events() {
            let key = events.poll_start(admitted.ip, cname, token, admitted.sub.as_deref());
            events.poll_end(key);
        }
    }

    /// Subscription `sub` is being removed, for `why`: a streaming
    /// subscriber's `unsubscribe` event goes out; a long poll ends its
    /// request in its lineage.
    pub(super) fn hook_left(&mut self, sub: u32, why: LeaveReason) {
        if self.members.0.is_empty() {
            return;
        }
        let Some(member) = self.members.0.remove(&sub) else {
            return;
        };
        if self.members.0.is_empty() && self.members.0.capacity() > 1024 {
            // Everyone left after a burst: give the table back.
            self.members.0 = HashMap::new();
        }
        let Some(events) = self.shared.backend.events() else {
            return;
        };
        match member {
            Member::Poll(key) => events.poll_end(key),
            Member::Streaming(who) => events.left(&who, why),
        }
    }

    /// Every subscription of a connection (its list starts at `first`) is
    /// being removed, for `why`.
    pub(super) fn hook_left_all(&mut self, first: u32, why: LeaveReason) {
        if self.members.0.is_empty() {
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
