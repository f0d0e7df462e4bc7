//! Subscribing: a subscribe request's parameters, the channel table's
//! answer, and what the client is sent first (reference §3.1, §2.5); and
//! leaving every channel again.

use std::sync::atomic::Ordering;

use super::conn::{Flags, State};
use super::request::Request;
use super::transport::{self, Frame};
use super::{Front, Sock, Transport};
use crate::channel::{Kind, Message, Start};
use crate::channels::SubscribeReq;
use crate::encode;
use crate::params::{self, BadParam, Params};

/// The parameters of a subscribe request, decoded and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubParams<'a> {
    /// The channel name (checked by [`params::check_cname`]).
    pub cname: &'a str,
    /// A long poll's JSONP callback (checked by [`params::check_callback`]).
    pub cb: Option<&'a str>,
    /// The first seq wanted (SSE: `Last-Event-ID` + 1 when given).
    pub seq: i32,
    /// The first noop counter.
    pub noop: i32,
    /// The channel token (`front.auth: token`).
    pub token: &'a str,
}

impl<'a> SubParams<'a> {
    /// Reads the parameters of a subscribe request to transport `t` from its
    /// decoded query `p`; a bad channel name or callback is the 400's reason.
    pub fn decode(p: &'a Params, req: &Request, t: Transport, max_cname: usize) -> Result<Self, BadParam> {
        let cname = p.str("cname");
        let cb = if t.takes_callback() {
            p.get("cb").filter(|s| !s.is_empty())
        } else {
            None
        };
        params::check_cname(cname, max_cname)?;
        if let Some(cb) = cb {
            params::check_callback(cb)?;
        }
        let mut seq = p.int("seq", 0);
        if t == Transport::Sse {
            let last = req.last_event_id.as_deref().or(p.get("last_event_id"));
            if let Some(id) = last.map(str::trim).and_then(|s| s.parse::<i32>().ok()) {
                seq = id.wrapping_add(1);
            }
        }
        Ok(SubParams {
            cname,
            cb,
            seq,
            noop: p.int("noop", 0),
            token: p.str("token"),
        })
    }
}

/// The message object of `m` in channel `cname`, and for a broadcast the
/// `next_seq` object that follows it (reference §2.7).
pub(super) fn message_json(cname: &str, m: &Message, json: &mut Vec<u8>, next: &mut Vec<u8>) {
    json.clear();
    next.clear();
    encode::message_into(json, m.kind.type_name(), cname, m.seq, &m.content);
    if m.kind == Kind::Broadcast {
        encode::message_into(next, "next_seq", cname, m.seq.wrapping_add(1), "");
    }
}

impl<S: Sock> Front<S> {
    pub(super) fn subscribe(&mut self, idx: u32, req: Request, t: Transport) {
        let p = Params::parse(&req.query);
        let sp = match SubParams::decode(&p, &req, t, self.settings.max_cname) {
            Ok(sp) => sp,
            Err(e) => {
                self.reply_and_close(idx, req.http10, "400 Bad Request", format!("{e}\n").as_bytes());
                return;
            }
        };
        let chunked = !req.http10;
        if req.http10 {
            // Without chunking, only closing the connection ends the response
            // (icomet's bogus `Content-Length: 0` here is §11.7).
            self.conns[idx as usize].flags.set(Flags::KEEP_ALIVE, false);
        }
        let result = self.shared.channels.subscribe(SubscribeReq {
            name: sp.cname,
            token: sp.token,
            seq: sp.seq,
            worker: self.worker,
            long_poll: !t.is_streaming(),
        });
        let keep_alive = self.conns[idx as usize].flags.has(Flags::KEEP_ALIVE);
        let mut out = Vec::with_capacity(512);
        t.head(&mut out, req.http10, keep_alive, result.is_ok(), &self.date);
        t.prologue(&mut out, chunked, result.is_ok(), self.settings.sse_retry_ms);
        let s = match result {
            Err(e) => {
                let json = encode::message(e.code(), sp.cname, 0, &e.to_string());
                let refusal = Frame {
                    ends: true,
                    ..Frame::control(&json)
                };
                t.frame_jsonp(&mut out, refusal, sp.cb, chunked);
                self.send(idx, &[&out]);
                self.end_response(idx);
                return;
            }
            Ok(s) => s,
        };
        let next = match s.start {
            Start::NextSeq(n) => {
                let json = encode::message("next_seq", sp.cname, n, "");
                let f = Frame {
                    sse_id: Some(n.wrapping_sub(1)),
                    ..Frame::control(&json)
                };
                t.frame_jsonp(&mut out, f, sp.cb, chunked);
                n
            }
            Start::Wait(seq) => seq,
            Start::Replay(messages) => {
                replay_into(&mut out, t, &s.name, &messages, sp.cb, chunked);
                messages.last().map_or(sp.seq, |m| m.seq.wrapping_add(1))
            }
        };
        if !s.counted {
            // A long poll answered at once: it never joined the channel.
            self.send(idx, &[&out]);
            self.end_response(idx);
            return;
        }
        let now = self.now;
        let c = &mut self.conns[idx as usize];
        c.state = State::Waiting;
        c.transport = t;
        c.flags.set(Flags::SUBSCRIBER, true);
        c.noop = sp.noop;
        c.tick = now;
        if let Some(cb) = sp.cb {
            c.extra().cb = Some(cb.into());
        }
        self.subs.add(idx, &mut c.first_sub, s.id, &s.name, next);
        self.shared.stats.subscribers_by_transport[t.index()].fetch_add(1, Ordering::Relaxed);
        if self.send(idx, &[&out]) {
            self.arm(idx, now + self.settings.polling_timeout + 1);
        } else {
            self.close_conn(idx);
        }
    }

    /// Takes a connection out of every channel it subscribed to (the list
    /// starting at `*first`), telling the channel table.
    pub(super) fn unsubscribe_all(&mut self, first: &mut u32) {
        let (channels, worker) = (&self.shared.channels, self.worker);
        self.subs
            .remove_all(first, |chan, empty| channels.unsubscribe(chan, 1, worker, empty));
    }

    /// A waiting connection stops being a subscriber (its response ends):
    /// it leaves its channels and its counters.
    pub(super) fn leave(&mut self, idx: u32) {
        let c = &mut self.conns[idx as usize];
        if c.flags.take(Flags::SUBSCRIBER) {
            self.shared.stats.subscribers_by_transport[c.transport.index()].fetch_sub(1, Ordering::Relaxed);
        }
        if c.state == State::Waiting {
            c.state = State::Idle;
            c.tick = 0;
        }
        if let Some(e) = c.extra.as_mut() {
            e.cb = None;
        }
        let mut first = std::mem::replace(&mut c.first_sub, super::subs::NIL);
        self.unsubscribe_all(&mut first);
    }
}

/// Appends a replay (reference §2.5 case C): for a long poll one array of
/// every message (a broadcast followed by its `next_seq`), for a streaming
/// transport one frame per message.
fn replay_into(out: &mut Vec<u8>, t: Transport, cname: &str, messages: &[Message], cb: Option<&str>, chunked: bool) {
    let (mut json, mut next) = (Vec::new(), Vec::new());
    if !t.is_streaming() {
        let mut body = Vec::from(&b"["[..]);
        for (i, m) in messages.iter().enumerate() {
            message_json(cname, m, &mut json, &mut next);
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(&json);
            if !next.is_empty() {
                body.push(b',');
                body.extend_from_slice(&next);
            }
        }
        body.push(b']');
        transport::longpoll_into(out, cb, &body, chunked);
        return;
    }
    for m in messages {
        message_json(cname, m, &mut json, &mut next);
        let f = Frame {
            json: &json,
            next: (!next.is_empty()).then_some(&next[..]),
            sse_id: Some(m.seq),
            ends: false,
        };
        t.frame(out, f, chunked);
    }
}
