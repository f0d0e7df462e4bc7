//! Delivery: one event of one channel to this worker's subscriptions of it,
//! in the order they subscribed.
//!
//! An event is framed once per (transport, chunked) variant that one of
//! its subscribers needs, into buffers the worker reuses from one event to
//! the next, and those same bytes are written to every subscriber of that
//! variant: no allocation per event or per subscriber. A JSONP long poll's
//! frame differs only by its callback name, which is written as a separate
//! piece around the shared body. A broadcast to a million channels is one
//! command per worker listing its channels; each channel's frames are
//! built once (its name and seq differ from every other channel's) and
//! written to its subscribers here.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use super::conn::{send_to, Flags, State};
use super::subs::NIL;
use super::subscribe::message_json;
use super::transport::{ChunkHead, Frame, LAST_CHUNK};
use super::{Front, Sock, Transport};
use crate::channel::{ChannelId, Kind, Message};
use crate::encode;
use crate::hooks::LeaveReason;
use crate::mailbox::Command;
use crate::ws::CloseCode;

/// The frames of the event being delivered, built on first use per variant.
#[derive(Debug, Default)]
pub(super) struct FrameSet {
    json: Vec<u8>,
    next: Vec<u8>,
    sse_id: Option<i32>,
    ends: bool,
    frames: [Vec<u8>; Transport::VARIANTS],
    /// Bit `v` set: `frames[v]` holds this event's variant `v`.
    built: u32,
}

/// Buffers larger than this are freed after their event rather than kept.
const KEEP_BYTES: usize = 64 * 1024;

impl FrameSet {
    /// Prepares for message `m` of channel `cname`.
    fn set_message(&mut self, cname: &str, m: &Message) {
        message_json(cname, m, &mut self.json, &mut self.next);
        self.sse_id = Some(m.seq);
        self.ends = false;
        self.built = 0;
    }

    /// Prepares for the close of channel `cname`, whose next seq is `next_seq`.
    fn set_close(&mut self, cname: &str, next_seq: i32) {
        self.json.clear();
        self.next.clear();
        encode::message_into(&mut self.json, "close", cname, next_seq, "");
        self.sse_id = None;
        self.ends = true;
        self.built = 0;
    }

    /// The event's bytes for a subscriber of `t` without a JSONP callback.
    fn get(&mut self, t: Transport, chunked: bool) -> &[u8] {
        let v = t.variant(chunked);
        if self.built & (1 << v) == 0 {
            self.built |= 1 << v;
            let f = Frame {
                json: &self.json,
                next: (!self.next.is_empty()).then_some(&self.next[..]),
                sse_id: self.sse_id,
                ends: self.ends,
            };
            let out = &mut self.frames[v];
            out.clear();
            t.frame(out, f, chunked);
        }
        &self.frames[v]
    }

    /// Frees buffers an unusually large event grew.
    fn shrink(&mut self) {
        for b in self.frames.iter_mut().chain([&mut self.json, &mut self.next]) {
            if b.capacity() > KEEP_BYTES {
                *b = Vec::new();
            }
        }
    }
}

impl<S: Sock> Front<S> {
    /// Runs a delivery command (or an authorize verdict) from the worker's
    /// mailbox; any other command is the worker's and is handed back.
    pub fn apply(&mut self, cmd: Command) -> Option<Command> {
        match cmd {
            Command::Message(chan, m, arrival) => self.deliver(chan, &m, arrival),
            Command::Broadcast(content, list, arrival) => self.broadcast(&content, &list, arrival),
            Command::Close(chan, next) => self.close_channel(chan, next),
            Command::Synced(chan, next, history) => self.synced(chan, next, &history),
            Command::Reset(chan, next) => self.reset_channel(chan, next),
            Command::Authorized(conn, ticket, verdict) => self.authorized(conn, ticket, verdict),
            other => return Some(other),
        }
        None
    }

    /// Delivers a message of one channel, published by an admin request
    /// that arrived at `arrival`.
    pub fn deliver(&mut self, chan: ChannelId, m: &Message, arrival: Instant) {
        let Some(list) = self.subs.list(chan) else { return };
        self.frames.set_message(list.name(), m);
        self.latency.begin(arrival);
        self.fan_out(chan, Some(m.seq));
        self.latency.flush(&self.shared.stats.delivery_latency);
        self.frames.shrink();
    }

    /// Delivers one broadcast to the channels listed, each with its own seq.
    pub fn broadcast(&mut self, content: &Arc<str>, channels: &[(ChannelId, i32)], arrival: Instant) {
        self.latency.begin(arrival);
        for &(chan, seq) in channels {
            let Some(list) = self.subs.list(chan) else { continue };
            let m = Message {
                seq,
                kind: Kind::Broadcast,
                content: content.clone(),
            };
            self.frames.set_message(list.name(), &m);
            self.fan_out(chan, Some(seq));
        }
        self.latency.flush(&self.shared.stats.delivery_latency);
        self.frames.shrink();
    }

    /// Ends every subscription of a closed channel with its close message.
    pub fn close_channel(&mut self, chan: ChannelId, next_seq: i32) {
        let Some(list) = self.subs.list(chan) else { return };
        self.frames.set_close(list.name(), next_seq);
        self.fan_out(chan, None);
    }

    /// Writes the prepared event to the channel's subscriptions. `seq` is
    /// the message's seq (subscriptions that already have it skip it), or
    /// `None` for a close, which ends every subscription.
    fn fan_out(&mut self, chan: ChannelId, seq: Option<i32>) {
        let Some(list) = self.subs.list(chan) else { return };
        let mut cur = list.head;
        let now = self.now;
        let closing = seq.is_none();
        let (mut sent, mut removed, mut list_empty) = (0u64, 0u32, false);
        let mut ended: Vec<(u32, bool)> = Vec::new();
        while cur != NIL {
            let sub = *self.subs.get(cur);
            let this = cur;
            cur = sub.links.next;
            if let Some(seq) = seq {
                if seq.wrapping_sub(sub.next_seq) < 0 {
                    continue;
                }
                self.subs.get_mut(this).next_seq = seq.wrapping_add(1);
            }
            let idx = sub.conn;
            let c = &mut self.conns[idx as usize];
            let (t, chunked) = (c.transport, !c.flags.has(Flags::HTTP10));
            let ends = closing || !t.is_streaming();
            c.tick = now;
            self.latency.wrote(t);
            // Only long polls have a callback, and a long poll always ends here.
            let cb = c.extra.as_mut().and_then(|e| e.cb.take());
            let ok = match cb {
                Some(cb) => {
                    let lp = self.frames.get(Transport::LongPoll, false);
                    let body = &lp[..lp.len() - 1];
                    if chunked {
                        let head = ChunkHead::new(cb.len() + 1 + body.len() + 3);
                        let parts = [head.as_bytes(), cb.as_bytes(), b"(", body, b");\n\r\n", LAST_CHUNK];
                        send_to(
                            &mut self.conns[idx as usize],
                            &parts,
                            self.settings.max_queued,
                            &self.shared,
                        )
                    } else {
                        let parts = [cb.as_bytes(), b"(", body, b");\n"];
                        send_to(
                            &mut self.conns[idx as usize],
                            &parts,
                            self.settings.max_queued,
                            &self.shared,
                        )
                    }
                }
                None => {
                    let bytes = self.frames.get(t, chunked);
                    send_to(
                        &mut self.conns[idx as usize],
                        &[bytes],
                        self.settings.max_queued,
                        &self.shared,
                    )
                }
            };
            sent += u64::from(ok);
            if ends {
                let why = if closing {
                    LeaveReason::ChannelClosed
                } else {
                    LeaveReason::Closed
                };
                self.hook_left(this, why);
            }
            if ends && t.upgrades() {
                // A WebSocket loses this channel only; it closes (1000)
                // below if that was its last.
                let c = &mut self.conns[idx as usize];
                let (_, empty) = self.subs.remove_of_conn(&mut c.first_sub, this);
                removed += 1;
                list_empty = empty;
                ended.push((idx, ok));
            } else if ends {
                let c = &mut self.conns[idx as usize];
                if c.flags.take(Flags::SUBSCRIBER) {
                    self.shared.stats.subscribers_by_transport[t.index()].fetch_sub(1, Ordering::Relaxed);
                }
                if c.state == State::Waiting {
                    c.state = State::Idle;
                    c.tick = 0;
                }
                let (_, empty) = self.subs.remove_of_conn(&mut c.first_sub, this);
                removed += 1;
                list_empty = empty;
                ended.push((idx, ok));
            } else if !ok {
                ended.push((idx, false));
            }
        }
        if removed > 0 && !closing {
            self.shared.channels.unsubscribe(chan, removed, self.worker, list_empty);
        }
        self.shared.stats.delivered.fetch_add(sent, Ordering::Relaxed);
        for (idx, ok) in ended {
            let c = &self.conns[idx as usize];
            match (c.is_websocket(), ok) {
                (true, false) if c.flags.has(Flags::SLOW) => {
                    self.ws_close(idx, CloseCode::TRY_AGAIN_LATER, "slow consumer");
                }
                (true, true) => self.ws_channel_closed(idx),
                (false, true) => self.end_response(idx),
                (_, false) => self.close_conn(idx),
            }
        }
    }
}
