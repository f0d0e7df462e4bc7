//! Subscribing: a subscribe request's parameters, the channel table's
//! answer, and what the client is sent first (reference §3.1, §2.5); and
//! leaving every channel again.

use std::sync::atomic::Ordering;

use super::admit::{Admit, Admitted};
use super::conn::{Flags, State};
use super::hook_events::leave_reason;
use super::request::Request;
use super::transport::{self, Frame, Head};
use super::{Front, Sock, Transport};
use crate::channel::{Kind, Message, Start, SubscribeError, Subscribed};
use crate::channels::SubscribeReq;
use crate::encode;
use crate::hooks::LeaveReason;
use crate::params::{self, BadParam, Params};
use crate::ws::CloseCode;

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
        self.subscribe_with(idx, req, t, None);
    }

    /// A subscribe request; `checked` is the outcome of the admission
    /// checks when they ran already (a request that waited for the
    /// authorize hook), else they run here, before the table is asked.
    pub(super) fn subscribe_with(
        &mut self,
        idx: u32,
        req: Request,
        t: Transport,
        checked: Option<Result<Admitted, SubscribeError>>,
    ) {
        let p = Params::parse(&req.query);
        let sp = match SubParams::decode(&p, &req, t, self.settings.max_cname) {
            Ok(sp) => sp,
            Err(e) => {
                self.count_bad_request();
                self.reply_and_close(idx, req.http10, "400 Bad Request", format!("{e}\n").as_bytes());
                return;
            }
        };
        let accept = if t.upgrades() {
            match self.check_upgrade(&req) {
                Ok(accept) => Some(accept),
                Err(refusal) => {
                    self.refuse_upgrade(idx, &refusal);
                    return;
                }
            }
        } else {
            None
        };
        let chunked = !req.http10;
        if req.http10 {
            // Without chunking, only closing the connection ends the response
            // (icomet's bogus `Content-Length: 0` here is §11.7).
            self.conns[idx as usize].flags.set(Flags::KEEP_ALIVE, false);
        }
        // A WebSocket opened without a `cname` parameter holds no URL
        // channel: it subscribes with `sub` commands.
        let url_channel = !t.upgrades() || p.get("cname").is_some();
        let admitted = match checked {
            Some(checked) => checked,
            None if !url_channel => Ok(Admitted::default()),
            None => match self.admit(idx, sp.cname, sp.token, t) {
                Admit::Pass(a) => Ok(a),
                Admit::Refuse(e) => Err(e),
                Admit::Parked(ticket, a) => return self.park_request(idx, ticket, a, req, t),
            },
        };
        let result = url_channel.then(|| match &admitted {
            Err(e) => Err(*e),
            Ok(_) => self.shared.channels.subscribe(SubscribeReq {
                name: sp.cname,
                token: sp.token,
                seq: sp.seq,
                worker: self.worker,
                long_poll: !t.is_streaming(),
            }),
        });
        let head = Head {
            http10: req.http10,
            keep_alive: self.conns[idx as usize].flags.has(Flags::KEEP_ALIVE),
            ok: !matches!(result, Some(Err(_))),
            date: &self.date,
            accept: accept.as_ref(),
        };
        let mut out = Vec::with_capacity(512);
        t.head(&mut out, head);
        t.prologue(&mut out, chunked, head.ok, self.settings.sse_retry_ms);
        let joined = match result {
            Some(Err(e)) => {
                let json = encode::message(e.code(), sp.cname, 0, &e.to_string());
                if t.upgrades() {
                    // After the upgrade, as icomet's object in a text frame,
                    // then a close with the matching code.
                    self.enter_waiting(idx, t, sp.noop, None);
                    t.frame(&mut out, Frame::control(&json), true);
                    self.send(idx, &[&out]);
                    self.ws_close(idx, refusal_code(e), &e.to_string());
                } else {
                    let refusal = Frame {
                        ends: true,
                        ..Frame::control(&json)
                    };
                    t.frame_jsonp(&mut out, refusal, sp.cb, chunked);
                    self.send(idx, &[&out]);
                    self.end_response(idx);
                }
                return;
            }
            Some(Ok(s)) => {
                let next = start_into(&mut out, t, &s, sp.seq, sp.cb, chunked);
                if !s.counted {
                    // A long poll answered at once: it never joined the channel.
                    if let Ok(a) = &admitted {
                        self.hook_polled(&s.name, sp.token, a);
                    }
                    self.send(idx, &[&out]);
                    self.end_response(idx);
                    return;
                }
                Some((s, next))
            }
            None => None,
        };
        self.enter_waiting(idx, t, sp.noop, sp.cb);
        if let (Some((s, next)), Ok(a)) = (joined, admitted) {
            let c = &mut self.conns[idx as usize];
            let sub = self.subs.add(idx, &mut c.first_sub, s.id, &s.name, next);
            if matches!(s.start, Start::Pending(_)) {
                self.await_sync(idx, s.id);
            }
            self.hook_joined(sub, t, &s.name, sp.token, a);
        }
        let now = self.now;
        if self.send(idx, &[&out]) {
            self.arm(idx, now + self.settings.polling_timeout + 1);
        } else {
            self.close_conn(idx);
        }
    }

    /// The connection becomes a waiting subscriber of transport `t` (its
    /// subscriptions are added by the caller).
    pub(super) fn enter_waiting(&mut self, idx: u32, t: Transport, noop: i32, cb: Option<&str>) {
        let now = self.now;
        let c = &mut self.conns[idx as usize];
        c.state = State::Waiting;
        c.transport = t;
        c.flags.set(Flags::SUBSCRIBER, true);
        c.noop = noop;
        c.tick = now;
        if let Some(cb) = cb {
            c.extra().cb = Some(cb.into());
        }
        self.shared.stats.subscribers_by_transport[t.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// A subscription of connection `idx` to one more channel, for a
    /// WebSocket `sub` command: the same answer a new `/ws` subscription to
    /// that channel gets, or a refusal object; the socket stays either way.
    pub(super) fn join_channel(&mut self, idx: u32, cname: &str, seq: i32, token: &str) {
        let admitted = match self.admit(idx, cname, token, Transport::Ws) {
            Admit::Pass(a) => Ok(a),
            Admit::Refuse(e) => Err(e),
            Admit::Parked(ticket, a) => return self.park_sub(idx, ticket, a, cname, seq, token),
        };
        self.join_admitted(idx, cname, seq, token, admitted);
    }

    /// The rest of [`Front::join_channel`] once the admission checks are
    /// decided (at once, or when the authorize hook answered).
    pub(super) fn join_admitted(
        &mut self,
        idx: u32,
        cname: &str,
        seq: i32,
        token: &str,
        admitted: Result<Admitted, SubscribeError>,
    ) {
        let result = match &admitted {
            Err(e) => Err(*e),
            Ok(_) => self.shared.channels.subscribe(SubscribeReq {
                name: cname,
                token,
                seq,
                worker: self.worker,
                long_poll: false,
            }),
        };
        let t = self.conns[idx as usize].transport;
        let mut out = Vec::new();
        match result {
            Err(e) => {
                let json = encode::message(e.code(), cname, 0, &e.to_string());
                t.frame(&mut out, Frame::control(&json), true);
            }
            Ok(s) => {
                let next = start_into(&mut out, t, &s, seq, None, true);
                let c = &mut self.conns[idx as usize];
                let sub = self.subs.add(idx, &mut c.first_sub, s.id, &s.name, next);
                if matches!(s.start, Start::Pending(_)) {
                    self.await_sync(idx, s.id);
                }
                if let Ok(a) = admitted {
                    self.hook_joined(sub, t, &s.name, token, a);
                }
            }
        }
        if !out.is_empty() && !self.send(idx, &[&out]) {
            self.close_conn(idx);
        }
    }

    /// Takes a connection out of every channel it subscribed to (the list
    /// starting at `*first`), telling the channel table (and the event
    /// hook, with `why`).
    pub(super) fn unsubscribe_all(&mut self, first: &mut u32, why: LeaveReason) {
        self.hook_left_all(*first, why);
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
        let why = leave_reason(self.draining, c.flags);
        let mut first = std::mem::replace(&mut c.first_sub, super::subs::NIL);
        self.unsubscribe_all(&mut first, why);
    }
}

/// Appends what a subscriber starting at `s.start` is sent first
/// (reference §2.5); returns the next seq it should get.
pub(super) fn start_into(
    out: &mut Vec<u8>,
    t: Transport,
    s: &Subscribed,
    seq: i32,
    cb: Option<&str>,
    chunked: bool,
) -> i32 {
    match &s.start {
        Start::NextSeq(n) => {
            let json = encode::message("next_seq", &s.name, *n, "");
            let f = Frame {
                sse_id: Some(n.wrapping_sub(1)),
                ..Frame::control(&json)
            };
            t.frame_jsonp(out, f, cb, chunked);
            *n
        }
        Start::Wait(seq) | Start::Pending(seq) => *seq,
        Start::Replay(messages) => {
            replay_into(out, t, &s.name, messages, cb, chunked);
            messages.last().map_or(seq, |m| m.seq.wrapping_add(1))
        }
    }
}

/// The WebSocket close code of a refused subscription: 4000 + icomet's type.
fn refusal_code(e: SubscribeError) -> CloseCode {
    match e {
        SubscribeError::TokenError | SubscribeError::NotAuthorized => CloseCode::TOKEN_ERROR,
        SubscribeError::TooManyChannels | SubscribeError::TooManySubscribers => CloseCode::TOO_MANY_SUBSCRIBERS,
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
