//! One front connection: its record, reading request heads, answering,
//! writing with a bounded output queue, and closing.
//!
//! A connection waiting for a message holds no buffer at all: its input
//! and output queues live in an [`Extra`] box that exists only while a
//! partial request, an unsent tail or a JSONP callback actually does.
//! Requests are parsed straight from the worker's read buffer; only the
//! unconsumed tail of a read is copied into the connection.

use std::io::IoSlice;
use std::sync::atomic::Ordering;

use super::request::{self, HeadError, Method, Request, Route, MAX_FRONT_BODY, MAX_HEAD};
use super::respond::{self, Simple, DEFAULT_TYPE};
use super::subs::NIL;
use super::{Front, Sock, Token, Transport, READ_BUF};
use crate::params::{self, Params};
use crate::shared::Shared;
use crate::ws::WsState;

/// Ticks a closing connection may take to read its last response before
/// its socket is released anyway.
pub(super) const CLOSE_LINGER_TICKS: u32 = 10;

/// Most pieces one `send` takes.
pub(super) const MAX_PARTS: usize = 8;

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Between requests (or reading one).
    Idle,
    /// A subscriber waiting for messages.
    Waiting,
    /// Answered and closing once the output queue drains.
    Closing,
    /// Failed (write error, slow consumer): to be closed by the caller.
    Dead,
    /// A subscribe request waiting for the authorize hook's verdict: it has
    /// sent nothing yet; what it asked for waits in the worker's table of
    /// pending checks (`admit.rs`), and its later input is queued.
    Authorizing,
}

/// A connection's yes/no facts, in one byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flags(u8);

impl Flags {
    /// The current request is HTTP/1.0 (close-delimited, no chunking).
    pub const HTTP10: u8 = 1;
    /// The connection stays open after the current response.
    pub const KEEP_ALIVE: u8 = 2;
    /// Counted in `Stats::subscribers_by_transport` (from subscribing until
    /// its response ends or it closes).
    pub const SUBSCRIBER: u8 = 4;
    /// A `/ws_echo` WebSocket (conformance testing).
    pub const WS_ECHO: u8 = 8;
    /// A WebSocket that sent its close frame and waits for the client's.
    pub const WS_CLOSING: u8 = 16;
    /// Dropped because its output queue overflowed (a slow consumer).
    pub const SLOW: u8 = 32;
    const KEEP_ALIVE_ONLY: Flags = Flags(Flags::KEEP_ALIVE);

    /// Whether `bit` is set.
    pub fn has(self, bit: u8) -> bool {
        self.0 & bit != 0
    }

    /// Sets or clears `bit`.
    pub fn set(&mut self, bit: u8, on: bool) {
        if on {
            self.0 |= bit;
        } else {
            self.0 &= !bit;
        }
    }

    /// Clears `bit`, returning whether it was set.
    pub fn take(&mut self, bit: u8) -> bool {
        let was = self.has(bit);
        self.set(bit, false);
        was
    }
}

/// What a connection holds only while it needs it.
#[derive(Debug, Default)]
pub(super) struct Extra {
    /// Received bytes not yet used (a partial request, or requests
    /// pipelined behind a waiting one).
    pub inbuf: Vec<u8>,
    /// Bytes the socket did not take yet.
    pub out: Vec<u8>,
    /// How much of `out` was written.
    pub out_pos: usize,
    /// A waiting long poll's JSONP callback.
    pub cb: Option<Box<str>>,
    /// Body bytes of the last request still to arrive and be skipped.
    pub body_left: u32,
    /// A WebSocket's decoder state while a message is in progress.
    pub ws: WsState,
    /// Frames a WebSocket client sent in tick `frames_tick` (flood control).
    pub frames: u32,
    /// The tick `frames` counts.
    pub frames_tick: u32,
}

impl Extra {
    fn is_empty(&self) -> bool {
        self.inbuf.is_empty() && self.out.is_empty() && self.cb.is_none() && self.body_left == 0 && self.ws.is_idle()
    }
}

/// A front connection.
#[derive(Debug)]
pub(super) struct Conn<S> {
    /// The socket; `None` when the slot is free.
    pub sock: Option<S>,
    pub gen: u32,
    pub state: State,
    /// The transport of its subscriptions (meaningful while waiting).
    pub transport: Transport,
    /// HTTP/1.0, keep-alive, counted as a subscriber: one byte.
    pub flags: Flags,
    /// Tick the connection's timer entry is armed for (0: none).
    pub timer_at: u32,
    /// While idle: the tick by which the current request head must be
    /// complete (0: none). While waiting: the tick of the last frame sent.
    /// One field for both keeps the record at 40 bytes; every change of
    /// state sets it (`Front::add`, request framing, subscribing, ending a
    /// response).
    pub tick: u32,
    /// The noop counter (reference §2.8).
    pub noop: i32,
    /// Its first subscription, or [`NIL`].
    pub first_sub: u32,
    /// The client's key in the per-address table (0: not counted).
    pub ip_key: u32,
    pub extra: Option<Box<Extra>>,
}

impl<S> Conn<S> {
    fn vacant(gen: u32) -> Conn<S> {
        Conn {
            sock: None,
            gen,
            state: State::Idle,
            transport: Transport::LongPoll,
            flags: Flags::KEEP_ALIVE_ONLY,
            timer_at: 0,
            tick: 0,
            noop: 0,
            first_sub: NIL,
            ip_key: 0,
            extra: None,
        }
    }

    /// The connection's optional buffers, created if needed.
    pub fn extra(&mut self) -> &mut Extra {
        self.extra.get_or_insert_with(Box::default)
    }

    /// Frees the optional buffers once nothing is in them.
    pub fn shrink(&mut self) {
        if self.extra.as_ref().is_some_and(|e| e.is_empty()) {
            self.extra = None;
        }
    }

    fn has_input(&self) -> bool {
        self.extra.as_ref().is_some_and(|e| !e.inbuf.is_empty())
    }

    fn has_output(&self) -> bool {
        self.extra.as_ref().is_some_and(|e| e.out_pos < e.out.len())
    }

    /// An upgraded connection: it speaks WebSocket until it closes.
    pub fn is_websocket(&self) -> bool {
        self.transport == Transport::Ws && self.state != State::Idle
    }
}

/// The JSONP callback of a `/ping`: `cb`, else icomet's `icomet_cb`.
pub fn ping_callback(p: &Params) -> Result<&str, params::BadParam> {
    let cb = p.get("cb").unwrap_or("icomet_cb");
    params::check_callback(cb)?;
    Ok(cb)
}

impl<S: Sock> Front<S> {
    pub(super) fn conn(&self, t: Token) -> Option<&Conn<S>> {
        self.conns
            .get(t.idx() as usize)
            .filter(|c| c.gen == t.gen() && c.sock.is_some())
    }

    /// Whether a connection is still open.
    pub fn is_open(&self, t: Token) -> bool {
        self.conn(t).is_some()
    }

    /// Takes an accepted connection; `ip_key` is its per-address count to
    /// release when it closes (0: none). The caller registers the socket
    /// with epoll under the returned token (and closes it with
    /// [`Front::close`] if that fails).
    pub fn add(&mut self, sock: S, ip_key: u32) -> Token {
        let idx = match self.free.pop() {
            Some(i) => i,
            None => {
                self.conns.push(Conn::vacant(0));
                (self.conns.len() - 1) as u32
            }
        };
        let deadline = self.head_deadline();
        let c = &mut self.conns[idx as usize];
        let gen = c.gen;
        *c = Conn::vacant(gen);
        c.sock = Some(sock);
        c.ip_key = ip_key;
        c.tick = deadline;
        self.open += 1;
        self.shared.stats.connections.fetch_add(1, Ordering::Relaxed);
        self.arm(idx, deadline);
        Token::new(idx, gen)
    }

    /// Epoll reported `t`: `readable` (or hung up), `writable`, or an error.
    pub fn on_event(&mut self, t: Token, readable: bool, writable: bool, error: bool) {
        if !self.is_open(t) {
            return;
        }
        let idx = t.idx();
        if error {
            self.close_conn(idx);
            return;
        }
        if writable {
            self.flush(idx);
        }
        if readable && self.is_open(t) {
            self.on_readable(idx);
        }
    }

    /// Closes a connection from outside (epoll registration failed).
    pub fn close(&mut self, t: Token) {
        if self.is_open(t) {
            self.close_conn(t.idx());
        }
    }

    /// Reads what arrived. Requests are framed straight from the read
    /// buffer when nothing is pending; what a read leaves unconsumed (a
    /// partial head, requests pipelined behind a waiting one) is copied
    /// into the connection.
    fn on_readable(&mut self, idx: u32) {
        let mut rbuf = std::mem::take(&mut self.rbuf);
        if rbuf.is_empty() {
            rbuf = vec![0u8; READ_BUF];
        }
        let mut eof = false;
        while let Some(sock) = self.conns[idx as usize].sock.as_ref() {
            let n = match sock.read(&mut rbuf) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.close_conn(idx);
                    break;
                }
            };
            self.take_input(idx, &mut rbuf[..n]);
        }
        self.rbuf = rbuf;
        let c = &mut self.conns[idx as usize];
        if eof && c.sock.is_some() {
            if c.state == State::Waiting || c.is_websocket() || !c.has_output() {
                self.close_conn(idx);
            } else {
                c.state = State::Closing;
                c.flags.set(Flags::KEEP_ALIVE, false);
            }
        }
    }

    /// Uses one read's bytes: answers the requests in them when the
    /// connection is idle, else keeps them for when it is.
    fn take_input(&mut self, idx: u32, bytes: &mut [u8]) {
        let c = &mut self.conns[idx as usize];
        if c.is_websocket() {
            self.ws_input(idx, bytes);
            return;
        }
        if c.state == State::Idle && !c.has_input() {
            let used = self.process(idx, bytes);
            let c = &mut self.conns[idx as usize];
            if c.is_websocket() && used < bytes.len() {
                // Frames that came in the same read as the upgrade.
                self.ws_input(idx, &mut bytes[used..]);
                return;
            }
            if c.sock.is_some() && used < bytes.len() {
                c.extra().inbuf.extend_from_slice(&bytes[used..]);
            }
            c.shrink();
            return;
        }
        let queued = c.extra.as_ref().map_or(0, |e| e.inbuf.len());
        if queued + bytes.len() > 2 * MAX_HEAD + MAX_FRONT_BODY {
            // More unanswered input than any sane client sends.
            self.close_conn(idx);
            return;
        }
        c.extra().inbuf.extend_from_slice(bytes);
        if c.state == State::Idle {
            self.process_queued(idx);
        }
    }

    /// Answers the requests queued in the connection while it is idle.
    pub(super) fn process_queued(&mut self, idx: u32) {
        let Some(mut extra) = self.conns[idx as usize].extra.take() else {
            return;
        };
        let input = std::mem::take(&mut extra.inbuf);
        self.conns[idx as usize].extra = Some(extra);
        let mut input = input;
        let used = self.process(idx, &input);
        let c = &mut self.conns[idx as usize];
        if c.is_websocket() && used < input.len() {
            // Frames queued behind the upgrade request.
            let later = c
                .extra
                .as_mut()
                .map(|e| std::mem::take(&mut e.inbuf))
                .unwrap_or_default();
            input.extend_from_slice(&later);
            self.ws_input(idx, &mut input[used..]);
            return;
        }
        if c.sock.is_some() && used < input.len() {
            // Anything that arrived meanwhile is behind what is left here.
            let e = c.extra();
            let later = std::mem::take(&mut e.inbuf);
            e.inbuf = input[used..].to_vec();
            e.inbuf.extend_from_slice(&later);
        }
        c.shrink();
    }

    /// Answers every complete request at the start of `input` while the
    /// connection stays idle and open; returns the bytes used.
    fn process(&mut self, idx: u32, input: &[u8]) -> usize {
        let head_deadline = self.head_deadline();
        let mut pos = 0;
        loop {
            let c = &mut self.conns[idx as usize];
            if c.sock.is_none() || c.state != State::Idle {
                return pos;
            }
            if let Some(e) = c.extra.as_mut().filter(|e| e.body_left > 0) {
                // The rest of an earlier request's body: not a request head.
                let n = (e.body_left as usize).min(input.len() - pos);
                pos += n;
                e.body_left -= n as u32;
            }
            if pos == input.len() {
                return pos;
            }
            let rest = &input[pos..];
            match request::frame(rest) {
                Err(HeadError::Partial) => {
                    if c.tick == 0 {
                        c.tick = head_deadline;
                        self.arm(idx, head_deadline);
                    }
                    return pos;
                }
                Err(HeadError::TooLarge) => {
                    let http10 = request::claims_http10(rest);
                    self.count_bad_request();
                    let status = "431 Request Header Fields Too Large";
                    self.reply_and_close(idx, http10, status, b"request head too large\n");
                    return input.len();
                }
                Err(HeadError::BodyTooLarge { http10 }) => {
                    self.count_bad_request();
                    self.reply_and_close(idx, http10, "413 Payload Too Large", b"request body too large\n");
                    return input.len();
                }
                Err(HeadError::Bad(reason)) => {
                    self.count_bad_request();
                    self.reply_and_close(idx, false, "400 Bad Request", format!("{reason}\n").as_bytes());
                    return input.len();
                }
                Err(HeadError::NotImplemented) => {
                    self.count_bad_request();
                    let page = respond::NOT_IMPLEMENTED_PAGE.as_bytes();
                    self.reply_and_close_typed(idx, false, "501 Not Implemented", "text/html", page);
                    return input.len();
                }
                Ok(framed) => {
                    c.tick = 0;
                    c.flags.set(Flags::HTTP10, framed.req.http10);
                    c.flags.set(Flags::KEEP_ALIVE, framed.req.keep_alive);
                    if framed.body_left > 0 {
                        c.extra().body_left =
                            u32::try_from(framed.body_left).expect("bodies are at most MAX_FRONT_BODY");
                    }
                    // A chunked body consumes the rest (see `request::frame`).
                    pos += framed.consumed;
                    self.handle(idx, framed.req);
                }
            }
        }
    }

    fn handle(&mut self, idx: u32, req: Request) {
        match req.route {
            Route::NotFound => {
                let page = respond::not_found_page(&req.target);
                self.reply_and_close_typed(idx, req.http10, "404 Not Found", "text/html", page.as_bytes());
            }
            Route::Ping => {
                let p = Params::parse(&req.query);
                let cb = match ping_callback(&p) {
                    Ok(cb) => cb,
                    Err(e) => {
                        self.count_bad_request();
                        self.reply_and_close(idx, req.http10, "400 Bad Request", format!("{e}\n").as_bytes());
                        return;
                    }
                };
                let body = format!(
                    "{cb}({{\"type\":\"ping\",\"sub_timeout\":{}}});\n",
                    self.settings.polling_timeout
                );
                let reply = Simple {
                    http10: req.http10,
                    status: "200 OK",
                    content_type: DEFAULT_TYPE,
                    close: !req.keep_alive,
                    head_only: req.method == Method::Head,
                };
                self.reply(idx, reply, body.as_bytes());
            }
            Route::Subscribe(_) if req.method != Method::Get => {
                let reply = Simple {
                    http10: req.http10,
                    status: "405 Method Not Allowed",
                    content_type: DEFAULT_TYPE,
                    close: !req.keep_alive,
                    head_only: false,
                };
                self.reply(idx, reply, b"");
            }
            Route::Subscribe(t) => self.subscribe(idx, req, t),
            Route::WsEcho if self.settings.ws_echo => self.ws_echo(idx, req),
            Route::WsEcho => {
                let page = respond::not_found_page(&req.target);
                self.reply_and_close_typed(idx, req.http10, "404 Not Found", "text/html", page.as_bytes());
            }
        }
    }

    /// Counts a request refused as malformed, oversized or bad (for
    /// `/metrics` and the `incidents` report).
    pub(super) fn count_bad_request(&self) {
        self.shared.stats.bad_requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Answers with a plain-text error and closes the connection.
    pub(super) fn reply_and_close(&mut self, idx: u32, http10: bool, status: &str, body: &[u8]) {
        self.reply_and_close_typed(idx, http10, status, "text/plain; charset=utf-8", body);
    }

    fn reply_and_close_typed(&mut self, idx: u32, http10: bool, status: &str, ctype: &str, body: &[u8]) {
        let c = &mut self.conns[idx as usize];
        c.flags.set(Flags::KEEP_ALIVE, false);
        if let Some(e) = c.extra.as_mut() {
            e.inbuf = Vec::new();
        }
        let reply = Simple {
            http10,
            status,
            content_type: ctype,
            close: true,
            head_only: false,
        };
        self.reply(idx, reply, body);
    }

    /// Writes a complete response and ends it.
    fn reply(&mut self, idx: u32, reply: Simple<'_>, body: &[u8]) {
        let mut out = Vec::new();
        reply.write(&mut out, body, &self.date);
        self.send(idx, &[&out]);
        self.end_response(idx);
    }

    /// Ends the current response: keep-alive connections go back to reading
    /// (pipelined requests are answered at once), others close after flushing.
    pub(super) fn end_response(&mut self, idx: u32) {
        let c = &mut self.conns[idx as usize];
        if c.sock.is_none() {
            return;
        }
        match c.state {
            State::Dead => self.close_conn(idx),
            _ if c.flags.has(Flags::KEEP_ALIVE) && !self.draining => {
                // Between requests: no head deadline until one starts.
                c.state = State::Idle;
                c.tick = 0;
                if c.has_input() {
                    self.process_queued(idx);
                }
            }
            _ => {
                c.state = State::Closing;
                if !c.has_output() {
                    self.close_conn(idx);
                    return;
                }
                // A client that stops reading its last response is
                // released after a while all the same.
                let at = self.now + CLOSE_LINGER_TICKS;
                c.tick = at;
                self.arm(idx, at);
            }
        }
    }

    /// Writes `parts` (or queues what the socket does not take). Returns
    /// false and marks the connection dead if it failed or overflowed its
    /// queue.
    pub(super) fn send(&mut self, idx: u32, parts: &[&[u8]]) -> bool {
        send_to(
            &mut self.conns[idx as usize],
            parts,
            self.settings.max_queued,
            &self.shared,
        )
    }

    /// The socket takes more: write what is queued.
    fn flush(&mut self, idx: u32) {
        let c = &mut self.conns[idx as usize];
        let (Some(sock), Some(e)) = (c.sock.as_ref(), c.extra.as_mut()) else {
            return;
        };
        while e.out_pos < e.out.len() {
            match sock.write(&[IoSlice::new(&e.out[e.out_pos..])]) {
                Ok(n) => e.out_pos += n,
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(_) => {
                    self.close_conn(idx);
                    return;
                }
            }
        }
        e.out = Vec::new();
        e.out_pos = 0;
        if c.state == State::Closing {
            if c.flags.has(Flags::WS_CLOSING) {
                // The close frame is out: half-close and wait for the client's.
                sock.shutdown_write();
            } else {
                self.close_conn(idx);
                return;
            }
        }
        c.shrink();
    }

    /// Closes a connection and forgets its subscriptions. Never reshapes
    /// the connection array: callers may go on indexing it.
    pub(super) fn close_conn(&mut self, idx: u32) {
        let c = &mut self.conns[idx as usize];
        let Some(sock) = c.sock.take() else { return };
        drop(sock);
        if c.flags.has(Flags::SUBSCRIBER) {
            self.shared.stats.subscribers_by_transport[c.transport.index()].fetch_sub(1, Ordering::Relaxed);
        }
        // 31 bits: epoll tokens with bit 63 set belong to the worker itself.
        let gen = c.gen.wrapping_add(1) & 0x7fff_ffff;
        let ip_key = c.ip_key;
        let mut first = c.first_sub;
        let why = super::hook_events::leave_reason(self.draining, c.flags);
        *c = Conn::vacant(gen);
        self.unsubscribe_all(&mut first, why);
        if ip_key != 0 {
            self.shared.per_ip.release(ip_key);
        }
        self.free.push(idx);
        self.open -= 1;
        self.shared.stats.connections.fetch_sub(1, Ordering::Relaxed);
    }

    /// The tick by which a request head must be complete. The wheel turns
    /// once a second, so the current tick may be nearly over: one more tick
    /// gives every client at least `header_timeout` whole seconds.
    fn head_deadline(&self) -> u32 {
        self.now + self.settings.header_timeout + 1
    }
}

/// Writes `parts` to `c` (or queues what its socket does not take, up to
/// `max_queued` bytes). Returns false and marks the connection dead if the
/// write failed or the queue overflowed (a slow consumer, counted).
pub(super) fn send_to<S: Sock>(c: &mut Conn<S>, parts: &[&[u8]], max_queued: usize, shared: &Shared) -> bool {
    let Some(sock) = c.sock.as_ref() else { return false };
    if c.state == State::Dead {
        return false;
    }
    let total: usize = parts.iter().map(|p| p.len()).sum();
    let mut written = 0;
    if !c.has_output() {
        // At most MAX_PARTS slices, on the stack: no allocation per write.
        let mut slices = [IoSlice::new(&[]); MAX_PARTS];
        debug_assert!(parts.len() <= MAX_PARTS);
        let n = parts.len().min(MAX_PARTS);
        for (slot, p) in slices.iter_mut().zip(parts) {
            *slot = IoSlice::new(p);
        }
        loop {
            match sock.write(&slices[..n]) {
                Ok(n) => written = n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => {
                    c.state = State::Dead;
                    return false;
                }
            }
            break;
        }
        if written == total {
            return true;
        }
    }
    // The rest of a frame the socket took in part is always queued (a frame
    // must never be cut: a WebSocket's close, or the next response, follows
    // it); a frame that finds the queue already holding bytes is refused
    // when it would pass the bound. The queue thus holds at most
    // `max_queued` plus one frame.
    let queued = c.extra.as_ref().map_or(0, |e| e.out.len() - e.out_pos);
    if queued > 0 && queued + total - written > max_queued {
        c.state = State::Dead;
        c.flags.set(Flags::SLOW, true);
        shared.stats.slow_consumer_drops.fetch_add(1, Ordering::Relaxed);
        log::debug!("dropping a slow consumer ({queued} bytes queued)");
        return false;
    }
    let e = c.extra();
    let mut skip = written;
    for p in parts {
        if skip >= p.len() {
            skip -= p.len();
            continue;
        }
        e.out.extend_from_slice(&p[skip..]);
        skip = 0;
    }
    true
}
