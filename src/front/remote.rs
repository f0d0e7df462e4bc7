//! Cluster mode in the front: subscribers that waited for their channel's
//! first sync with Redis, and channels Redis lost.
//!
//! A subscriber of a channel that is still syncing got its response head
//! and waits (`Start::Pending`); when the sync lands, [`Front::synced`]
//! gives it exactly what a subscribe would have given it then (§2.5:
//! `next_seq`, a replay, or nothing). When Redis lost a channel (a new
//! epoch), [`Front::reset_channel`] sends every subscriber icomet's
//! `next_seq` with where the new channel starts, the signal icomet clients
//! already follow after a server restart.

use super::conn::State;
use super::subs::NIL;
use super::subscribe::start_into;
use super::transport::Frame;
use super::{Front, Sock, Token};
use crate::channel::{start_for, ChannelId, Message, Start, Subscribed};
use crate::encode;

impl<S: Sock> Front<S> {
    /// Records that connection `idx`'s subscription to `chan` waits for the
    /// channel's first sync.
    pub(super) fn await_sync(&mut self, idx: u32, chan: ChannelId) {
        let gen = self.conns[idx as usize].gen;
        self.pending.entry(chan.key()).or_default().push((idx, gen));
    }

    /// A channel's first sync completed: answers its waiting subscribers.
    pub fn synced(&mut self, chan: ChannelId, next: i32, history: &[Message]) {
        let Some(mut waiting) = self.pending.remove(&chan.key()) else {
            return;
        };
        waiting.sort_unstable();
        waiting.dedup();
        let Some(name) = self.subs.list(chan).map(|l| l.name().to_string()) else {
            return;
        };
        for (idx, gen) in waiting {
            if !self.is_open(Token::new(idx, gen)) {
                continue;
            }
            let first = self.conns[idx as usize].first_sub;
            let Some(sub) = self.subs.of_conn(first).find(|&i| self.subs.get(i).chan == chan) else {
                continue;
            };
            let asked = self.subs.get(sub).next_seq;
            let s = Subscribed {
                id: chan,
                name: name.as_str().into(),
                start: start_for(asked, next, history.iter()),
                counted: true,
            };
            let c = &self.conns[idx as usize];
            let (t, chunked) = (c.transport, !c.flags.has(super::conn::Flags::HTTP10));
            let cb = c.extra.as_ref().and_then(|e| e.cb.clone());
            let mut out = Vec::new();
            let resume = start_into(&mut out, t, &s, asked, cb.as_deref(), chunked);
            self.subs.get_mut(sub).next_seq = resume;
            if !t.is_streaming() && !matches!(s.start, Start::Wait(_)) {
                // A long poll answered now: its response ends with it.
                self.leave(idx);
                self.send(idx, &[&out]);
                self.end_response(idx);
            } else if !out.is_empty() && !self.send(idx, &[&out]) {
                self.close_conn(idx);
            }
        }
    }

    /// Redis lost a channel: its subscribers are told to resume at `next`
    /// (a long poll's response ends with it).
    pub fn reset_channel(&mut self, chan: ChannelId, next: i32) {
        let Some(list) = self.subs.list(chan) else { return };
        let json = encode::message("next_seq", list.name(), next, "");
        let mut cur = list.head;
        let mut ended = Vec::new();
        while cur != NIL {
            let this = cur;
            let sub = *self.subs.get(this);
            cur = sub.links.next;
            self.subs.get_mut(this).next_seq = next;
            let c = &self.conns[sub.conn as usize];
            let (t, chunked) = (c.transport, !c.flags.has(super::conn::Flags::HTTP10));
            let cb = c.extra.as_ref().and_then(|e| e.cb.clone());
            let f = Frame {
                sse_id: Some(next.wrapping_sub(1)),
                ..Frame::control(&json)
            };
            let mut out = Vec::new();
            t.frame_jsonp(&mut out, f, cb.as_deref(), chunked);
            if !t.is_streaming() {
                ended.push((sub.conn, out));
            } else if !self.send(sub.conn, &[&out]) {
                ended.push((sub.conn, Vec::new()));
            }
        }
        for (idx, out) in ended {
            if self.conns[idx as usize].state == State::Dead || out.is_empty() {
                self.close_conn(idx);
            } else {
                self.leave(idx);
                self.send(idx, &[&out]);
                self.end_response(idx);
            }
        }
    }
}
