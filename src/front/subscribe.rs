//! Subscribers: accepting a subscribe request, delivering events, noop
//! heartbeats, and leaving a channel.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::channel::{ChannelId, Event, EventKind, Start, Subscribed};
use crate::encode;
use crate::front::conn::Conn;
use crate::front::conn::State;
use crate::front::frame::{self, LAST_CHUNK};
use crate::front::local::{Links, Nodes, NIL};
use crate::front::request::{Request, Transport};
use crate::front::respond;
use crate::front::LocalChannel;
use crate::params::{self, BadParam, Params};
use crate::worker::Worker;

/// What a waiting subscriber is: its channel, its neighbours in the worker's
/// list of that channel, where its seq is, and how to frame for it.
#[derive(Debug)]
pub(crate) struct Sub {
    pub chan: ChannelId,
    /// Next data seq this subscriber should get; older events are skipped.
    pub next: i32,
    /// The noop counter (reference §2.8).
    pub noop: i32,
    pub links: Links,
    pub transport: Transport,
    /// JSONP callback of a long poll.
    pub cb: Option<Box<str>>,
    /// Tick of the last frame sent.
    pub last_frame: u32,
}

impl Nodes for [Conn] {
    fn links(&mut self, idx: u32) -> &mut Links {
        &mut self[idx as usize]
            .sub
            .as_mut()
            .expect("a listed connection has its subscription")
            .links
    }
}

/// Appends a long-poll frame: `cb(body);\n` or `body\n`, chunked if asked,
/// and ends the response.
fn longpoll_into(out: &mut Vec<u8>, cb: Option<&str>, body: &[u8], chunked: bool) {
    let mut framed = Vec::with_capacity(body.len() + 8 + cb.map_or(0, str::len));
    match cb {
        Some(cb) => {
            framed.extend_from_slice(cb.as_bytes());
            framed.push(b'(');
            framed.extend_from_slice(body);
            framed.extend_from_slice(b");\n");
        }
        None => {
            framed.extend_from_slice(body);
            framed.push(b'\n');
        }
    }
    if chunked {
        frame::chunk_into(out, &framed);
        out.extend_from_slice(LAST_CHUNK);
    } else {
        out.extend_from_slice(&framed);
    }
}

/// Appends one control message (next_seq, noop, close, refusal) in the
/// transport's framing; long polls (and `end`) also end the response.
fn control_into(
    out: &mut Vec<u8>,
    t: Transport,
    cb: Option<&str>,
    json: &[u8],
    sse_id: Option<i32>,
    chunked: bool,
    end: bool,
) {
    if t == Transport::LongPoll {
        longpoll_into(out, cb, json, chunked);
    } else {
        frame::stream_frame_into(out, t, json, sse_id, chunked);
        if end && chunked {
            out.extend_from_slice(LAST_CHUNK);
        }
    }
}

/// The parameters of a subscribe request, decoded and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SubParams<'a> {
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
    pub(crate) fn decode(p: &'a Params, req: &Request, t: Transport, max_cname: usize) -> Result<Self, BadParam> {
        let cname = p.str("cname");
        let cb = if t == Transport::LongPoll {
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

impl Worker {
    pub(crate) fn subscribe(&mut self, idx: u32, req: Request, t: Transport) {
        let p = Params::parse(&req.query);
        let SubParams {
            cname,
            cb,
            seq,
            noop,
            token,
        } = match SubParams::decode(&p, &req, t, self.settings.max_cname) {
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
            self.conns[idx as usize].keep_alive = false;
        }
        let worker = self.index;
        let hub = self.hub.clone();
        let local = &self.local;
        let result = hub.with_table(|table, out| {
            let r = table.subscribe(cname, token, seq, worker, out);
            if let Ok(Subscribed { id, start, .. }) = &r {
                if t == Transport::LongPoll && !matches!(start, Start::Wait(_)) {
                    // Answered at once: it never becomes a waiting subscriber.
                    table.unsubscribe(*id, 1, worker, !local.contains_key(&id.key()));
                }
            }
            r
        });
        let mut out = Vec::with_capacity(512);
        respond::subscribe_head(
            &mut out,
            t,
            req.http10,
            self.conns[idx as usize].keep_alive,
            result.is_ok(),
            &self.date,
        );
        if t == Transport::Iframe {
            let prologue = frame::iframe_prologue();
            if chunked {
                frame::chunk_into(&mut out, &prologue);
            } else {
                out.extend_from_slice(&prologue);
            }
        }
        let s = match result {
            Err(e) => {
                let json = encode::message(e.code(), cname, 0, &e.to_string());
                control_into(&mut out, t, cb, &json, None, chunked, true);
                self.send(idx, &[&out]);
                self.end_response(idx);
                return;
            }
            Ok(s) => s,
        };
        if t == Transport::Sse {
            let retry = format!("retry: {}\n\n", self.settings.sse_retry_ms);
            if chunked {
                frame::chunk_into(&mut out, retry.as_bytes());
            } else {
                out.extend_from_slice(retry.as_bytes());
            }
        }
        let waits = t.is_streaming() || matches!(s.start, Start::Wait(_));
        let next = match s.start {
            Start::NextSeq(n) => {
                let json = encode::message("next_seq", cname, n, "");
                control_into(&mut out, t, cb, &json, Some(n.wrapping_sub(1)), chunked, false);
                n
            }
            Start::Wait(s) => s,
            Start::Replay(events) => {
                let last = events.last().map_or(seq, |e| e.seq.wrapping_add(1));
                if t == Transport::LongPoll {
                    let mut body = Vec::from(&b"["[..]);
                    for (i, e) in events.iter().enumerate() {
                        if i > 0 {
                            body.push(b',');
                        }
                        body.extend_from_slice(&e.json);
                        if let Some(ns) = &e.next_json {
                            body.push(b',');
                            body.extend_from_slice(ns);
                        }
                    }
                    body.push(b']');
                    longpoll_into(&mut out, cb, &body, chunked);
                } else {
                    for e in &events {
                        out.extend_from_slice(&frame::event_bytes(e, t, chunked));
                    }
                }
                last
            }
        };
        if !waits {
            self.send(idx, &[&out]);
            self.end_response(idx);
            return;
        }
        let now = self.now;
        let c = &mut self.conns[idx as usize];
        c.state = State::Waiting;
        // Requests are read only while idle, so it cannot be listed already.
        debug_assert!(c.sub.is_none());
        c.sub = Some(Sub {
            chan: s.id,
            next,
            noop,
            links: Links::NONE,
            transport: t,
            cb: cb.map(Box::from),
            last_frame: now,
        });
        let name = s.name;
        self.local
            .entry(s.id.key())
            .or_insert_with(|| LocalChannel::new(name))
            .push_back(&mut self.conns[..], idx);
        self.hub.stats.subscribers_by_transport[t.index()].fetch_add(1, Ordering::Relaxed);
        if self.send(idx, &[&out]) {
            self.arm(idx, now + self.settings.polling_timeout + 1);
        } else {
            self.close_conn(idx);
        }
    }

    /// Takes a subscriber, already taken out of its connection, out of this
    /// worker's list of its channel; true when that list is now empty (and
    /// gone).
    fn unlink(&mut self, sub: &Sub) -> bool {
        let key = sub.chan.key();
        let Some(l) = self.local.get_mut(&key) else {
            debug_assert!(false, "a subscriber of a channel this worker does not list");
            return true;
        };
        l.remove(&mut self.conns[..], sub.links);
        let empty = l.is_empty();
        if empty {
            self.local.remove(&key);
        }
        empty
    }

    /// Removes a subscriber from its channel (worker list and table).
    pub(crate) fn unregister(&mut self, sub: &Sub) {
        self.hub.stats.subscribers_by_transport[sub.transport.index()].fetch_sub(1, Ordering::Relaxed);
        let empty = self.unlink(sub);
        let worker = self.index;
        self.hub.with_table(|t, _| t.unsubscribe(sub.chan, 1, worker, empty));
    }

    /// Delivers one event to this worker's subscribers of its channel, in
    /// the order they subscribed.
    pub(crate) fn deliver(&mut self, e: &Arc<Event>) {
        let key = e.chan.key();
        let Some(head) = self.local.get(&key).map(|l| l.head) else {
            return;
        };
        let now = self.now;
        let mut removed = 0u32;
        let mut empty = false;
        let mut ended = Vec::new();
        let mut dead = Vec::new();
        let mut sent = 0u64;
        // The shared frame of each (transport, chunked) variant, looked up once per event.
        let mut frames: [Option<bytes::Bytes>; frame::VARIANTS] = Default::default();
        let mut cur = head;
        while cur != NIL {
            let idx = cur;
            let c = &mut self.conns[idx as usize];
            let Some(sub) = c.sub.as_mut() else {
                debug_assert!(false, "a listed connection without a subscription");
                break;
            };
            cur = sub.links.next;
            if e.is_sequenced() && e.seq.wrapping_sub(sub.next) < 0 {
                continue;
            }
            let t = sub.transport;
            let chunked = !c.http10;
            let ends = t == Transport::LongPoll || e.kind == EventKind::Close;
            if e.is_sequenced() {
                sub.next = e.seq.wrapping_add(1);
            }
            sub.last_frame = now;
            // Only long polls have a callback, and a long poll always ends here.
            let cb = sub.cb.take();
            let ok = match cb {
                Some(cb) => {
                    let lp = frames[frame::variant(Transport::LongPoll, false)]
                        .get_or_insert_with(|| frame::event_bytes(e, Transport::LongPoll, false))
                        .clone();
                    let body = &lp[..lp.len() - 1];
                    if chunked {
                        let head = frame::ChunkHead::new(cb.len() + 1 + body.len() + 3);
                        self.send(
                            idx,
                            &[head.as_bytes(), cb.as_bytes(), b"(", body, b");\n\r\n", LAST_CHUNK],
                        )
                    } else {
                        self.send(idx, &[cb.as_bytes(), b"(", body, b");\n"])
                    }
                }
                None => {
                    let bytes = frames[frame::variant(t, chunked)]
                        .get_or_insert_with(|| frame::event_bytes(e, t, chunked))
                        .clone();
                    self.send(idx, &[&bytes])
                }
            };
            if ok {
                sent += 1;
            }
            if !ok || ends {
                if let Some(sub) = self.conns[idx as usize].sub.take() {
                    self.hub.stats.subscribers_by_transport[t.index()].fetch_sub(1, Ordering::Relaxed);
                    empty = self.unlink(&sub);
                    removed += 1;
                }
                if ok {
                    ended.push(idx);
                } else {
                    dead.push(idx);
                }
            }
        }
        if removed > 0 && e.kind != EventKind::Close {
            let worker = self.index;
            self.hub
                .with_table(|t, _| t.unsubscribe(e.chan, removed, worker, empty));
        }
        self.hub.stats.delivered.fetch_add(sent, Ordering::Relaxed);
        for idx in dead {
            self.close_conn(idx);
        }
        for idx in ended {
            self.end_response(idx);
        }
    }

    /// A waiting subscriber's timer: send a noop if it has been silent for
    /// `polling_timeout` ticks, else re-arm for when it will have been.
    pub(crate) fn on_subscriber_timer(&mut self, idx: u32) {
        let pt = self.settings.polling_timeout;
        let now = self.now;
        let c = &mut self.conns[idx as usize];
        let Some(sub) = c.sub.as_mut() else { return };
        let due = sub.last_frame + pt + 1;
        if due > now {
            self.arm(idx, due);
            return;
        }
        self.send_noop(idx);
    }

    /// Sends a noop heartbeat; a long poll's response ends with it.
    pub(crate) fn send_noop(&mut self, idx: u32) {
        let pt = self.settings.polling_timeout;
        let now = self.now;
        let c = &mut self.conns[idx as usize];
        let Some(sub) = c.sub.as_mut() else { return };
        let name = self.local.get(&sub.chan.key()).map_or("", |l| &l.name);
        let json = encode::message("noop", name, sub.noop, "");
        sub.noop = sub.noop.wrapping_add(1);
        sub.last_frame = now;
        let t = sub.transport;
        let chunked = !c.http10;
        let mut out = Vec::new();
        control_into(&mut out, t, sub.cb.as_deref(), &json, None, chunked, false);
        if t == Transport::LongPoll {
            let sub = c.sub.take().expect("checked above");
            self.unregister(&sub);
            self.send(idx, &[&out]);
            self.end_response(idx);
        } else if self.send(idx, &[&out]) {
            self.arm(idx, now + pt + 1);
        } else {
            self.close_conn(idx);
        }
    }
}
