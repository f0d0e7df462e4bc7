//! One front connection: reading request heads, answering, writing with a
//! bounded output queue, timers and closing.
//!
//! A connection waiting for a message holds no buffer at all: its input and
//! output vectors are empty (unallocated) except while a partial request or
//! an unsent tail actually exists.

use std::io::IoSlice;
use std::os::fd::RawFd;
use std::sync::atomic::Ordering;

use crate::front::request::{self, HeadError, Method, Request, Route, MAX_FRONT_BODY, MAX_HEAD};
use crate::front::respond::{self, Simple, DEFAULT_TYPE};
use crate::params::{self, Params};
use crate::worker::sys;
use crate::worker::Worker;

pub(crate) use crate::front::subscribe::Sub;

/// Most pieces one `send` takes.
pub(crate) const MAX_PARTS: usize = 8;

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// Between requests (or reading one).
    Idle,
    /// A subscriber waiting for messages.
    Waiting,
    /// Answered and closing once the output queue drains.
    Closing,
    /// Failed (write error, slow consumer): to be closed by the caller.
    Dead,
}

/// A front connection.
#[derive(Debug)]
pub(crate) struct Conn {
    pub fd: RawFd,
    pub gen: u32,
    pub state: State,
    pub http10: bool,
    pub keep_alive: bool,
    /// Tick the connection's timer entry is armed for (0: none).
    pub timer_at: u32,
    /// Tick by which the current request head must be complete (0: none).
    pub head_deadline: u32,
    /// Body bytes of the last request still to arrive and be skipped.
    pub body_left: u32,
    pub inbuf: Vec<u8>,
    pub out: Vec<u8>,
    pub out_pos: usize,
    pub sub: Option<Sub>,
    /// The client's key in the per-address table (0: not counted).
    pub ip_key: u32,
}

impl Conn {
    fn vacant() -> Conn {
        Conn {
            fd: -1,
            gen: 0,
            state: State::Idle,
            http10: false,
            keep_alive: true,
            timer_at: 0,
            head_deadline: 0,
            body_left: 0,
            inbuf: Vec::new(),
            out: Vec::new(),
            out_pos: 0,
            sub: None,
            ip_key: 0,
        }
    }
}

/// The JSONP callback of a `/ping`: `cb`, else icomet's `icomet_cb`.
pub(crate) fn ping_callback(p: &Params) -> Result<&str, params::BadParam> {
    let cb = p.get("cb").unwrap_or("icomet_cb");
    params::check_callback(cb)?;
    Ok(cb)
}

impl Worker {
    /// Takes an accepted connection; `ip_key` is its per-address count to
    /// release on close (0: none).
    pub(crate) fn add_conn(&mut self, fd: RawFd, ip_key: u32) {
        sys::tune_socket(fd, self.settings.send_buf, self.settings.recv_buf);
        let idx = match self.free.pop() {
            Some(i) => i,
            None => {
                self.conns.push(Conn::vacant());
                (self.conns.len() - 1) as u32
            }
        };
        let gen = self.conns[idx as usize].gen;
        if self
            .epoll
            .add(fd, sys::IN | sys::OUT | sys::RDHUP | sys::ET, Worker::token(idx, gen))
            .is_err()
        {
            sys::close(fd);
            self.free.push(idx);
            self.release_ip(ip_key);
            return;
        }
        let deadline = self.head_deadline();
        let c = &mut self.conns[idx as usize];
        c.fd = fd;
        c.ip_key = ip_key;
        c.state = State::Idle;
        c.head_deadline = deadline;
        self.open += 1;
        self.hub.stats.connections.fetch_add(1, Ordering::Relaxed);
        let at = c.head_deadline;
        self.arm(idx, at);
    }

    /// Makes sure the connection's timer fires no later than tick `at`.
    pub(crate) fn arm(&mut self, idx: u32, at: u32) {
        let c = &mut self.conns[idx as usize];
        if c.timer_at == 0 || at < c.timer_at {
            c.timer_at = at;
            let gen = c.gen;
            self.wheel.insert(at, idx, gen);
        }
    }

    pub(crate) fn on_event(&mut self, idx: u32, gen: u32, bits: u32) {
        match self.conns.get(idx as usize) {
            Some(c) if c.fd >= 0 && c.gen == gen => {}
            _ => return,
        }
        if bits & sys::ERR != 0 {
            self.close_conn(idx);
            return;
        }
        if bits & sys::OUT != 0 {
            self.flush(idx);
        }
        if bits & (sys::IN | sys::RDHUP | sys::HUP) != 0 && self.conns[idx as usize].fd >= 0 {
            self.on_readable(idx);
        }
    }

    fn on_readable(&mut self, idx: u32) {
        let fd = self.conns[idx as usize].fd;
        let mut eof = false;
        if self.rbuf.is_empty() {
            self.rbuf = vec![0u8; crate::worker::READ_BUF];
        }
        loop {
            match sys::read(fd, &mut self.rbuf) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => {
                    let c = &mut self.conns[idx as usize];
                    if c.inbuf.len() + n > 2 * MAX_HEAD + MAX_FRONT_BODY {
                        // More unanswered input than any sane client sends.
                        self.close_conn(idx);
                        return;
                    }
                    c.inbuf.extend_from_slice(&self.rbuf[..n]);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.close_conn(idx);
                    return;
                }
            }
        }
        if self.conns[idx as usize].state == State::Idle {
            self.process_input(idx);
        }
        if eof {
            let c = &mut self.conns[idx as usize];
            if c.fd < 0 {
                return;
            }
            if c.state == State::Waiting || c.out.is_empty() {
                self.close_conn(idx);
            } else {
                c.state = State::Closing;
                c.keep_alive = false;
            }
        }
    }

    /// Answers every complete request in the input buffer while the connection is idle.
    pub(crate) fn process_input(&mut self, idx: u32) {
        let head_deadline = self.head_deadline();
        loop {
            let c = &mut self.conns[idx as usize];
            if c.fd < 0 || c.state != State::Idle {
                break;
            }
            if c.body_left > 0 {
                // The rest of an earlier request's body: not a request head.
                let n = (c.body_left as usize).min(c.inbuf.len());
                c.inbuf.drain(..n);
                c.body_left -= n as u32;
            }
            if c.inbuf.is_empty() {
                c.inbuf = Vec::new();
                break;
            }
            match request::frame(&c.inbuf) {
                Err(HeadError::Partial) => {
                    if c.head_deadline == 0 {
                        c.head_deadline = head_deadline;
                        self.arm(idx, head_deadline);
                    }
                    break;
                }
                Err(HeadError::TooLarge) => {
                    let http10 = request::claims_http10(&c.inbuf);
                    self.reply_and_close(
                        idx,
                        http10,
                        "431 Request Header Fields Too Large",
                        b"request head too large\n",
                    );
                }
                Err(HeadError::BodyTooLarge { http10 }) => {
                    self.reply_and_close(idx, http10, "413 Payload Too Large", b"request body too large\n");
                }
                Err(HeadError::Bad(reason)) => {
                    self.reply_and_close(idx, false, "400 Bad Request", format!("{reason}\n").as_bytes());
                }
                Err(HeadError::NotImplemented) => {
                    self.reply_and_close_typed(
                        idx,
                        false,
                        "501 Not Implemented",
                        "text/html",
                        respond::NOT_IMPLEMENTED_PAGE.as_bytes(),
                    );
                }
                Ok(framed) => {
                    c.head_deadline = 0;
                    c.http10 = framed.req.http10;
                    c.keep_alive = framed.req.keep_alive;
                    c.body_left = u32::try_from(framed.body_left).expect("bodies are at most MAX_FRONT_BODY");
                    c.inbuf.drain(..framed.consumed);
                    if c.inbuf.is_empty() {
                        c.inbuf = Vec::new();
                    }
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
                        self.reply_and_close(idx, req.http10, "400 Bad Request", format!("{e}\n").as_bytes());
                        return;
                    }
                };
                let body = format!(
                    "{cb}({{\"type\":\"ping\",\"sub_timeout\":{}}});\n",
                    self.settings.polling_timeout
                );
                let head_only = req.method == Method::Head;
                let reply = Simple {
                    http10: req.http10,
                    status: "200 OK",
                    content_type: DEFAULT_TYPE,
                    close: !req.keep_alive,
                    head_only,
                };
                self.reply(idx, reply, body.as_bytes());
            }
            Route::Subscribe(_) if req.method != Method::Get => {
                let status = "405 Method Not Allowed";
                let reply = Simple {
                    http10: req.http10,
                    status,
                    content_type: DEFAULT_TYPE,
                    close: !req.keep_alive,
                    head_only: false,
                };
                self.reply(idx, reply, b"");
            }
            Route::Subscribe(t) => self.subscribe(idx, req, t),
        }
    }

    /// Answers with a plain-text error and closes the connection.
    pub(crate) fn reply_and_close(&mut self, idx: u32, http10: bool, status: &str, body: &[u8]) {
        self.reply_and_close_typed(idx, http10, status, "text/plain; charset=utf-8", body);
    }

    fn reply_and_close_typed(&mut self, idx: u32, http10: bool, status: &str, ctype: &str, body: &[u8]) {
        let c = &mut self.conns[idx as usize];
        c.keep_alive = false;
        c.inbuf = Vec::new();
        self.reply(
            idx,
            Simple {
                http10,
                status,
                content_type: ctype,
                close: true,
                head_only: false,
            },
            body,
        );
    }

    /// Writes a complete response and ends it.
    pub(crate) fn reply(&mut self, idx: u32, reply: Simple<'_>, body: &[u8]) {
        let mut out = Vec::new();
        reply.write(&mut out, body, &self.date);
        self.send(idx, &[&out]);
        self.end_response(idx);
    }

    /// Ends the current response: keep-alive connections go back to reading
    /// (pipelined requests are answered at once), others close after flushing.
    pub(crate) fn end_response(&mut self, idx: u32) {
        let c = &mut self.conns[idx as usize];
        match c.state {
            State::Dead => {
                self.close_conn(idx);
            }
            _ if c.keep_alive && c.fd >= 0 => {
                c.state = State::Idle;
                if !c.inbuf.is_empty() {
                    self.process_input(idx);
                }
            }
            _ => {
                c.state = State::Closing;
                if c.out.is_empty() {
                    self.close_conn(idx);
                }
            }
        }
    }

    /// Writes `parts` (or queues what the socket does not take). Returns false
    /// and marks the connection dead if it failed or overflowed its queue.
    pub(crate) fn send(&mut self, idx: u32, parts: &[&[u8]]) -> bool {
        let max = self.settings.max_queued;
        let c = &mut self.conns[idx as usize];
        if c.fd < 0 || c.state == State::Dead {
            return false;
        }
        let total: usize = parts.iter().map(|p| p.len()).sum();
        let mut written = 0;
        if c.out.is_empty() {
            // At most MAX_PARTS slices, on the stack: no allocation per write.
            let mut slices = [IoSlice::new(&[]); MAX_PARTS];
            let n = parts.len().min(MAX_PARTS);
            debug_assert!(parts.len() <= MAX_PARTS);
            for (slot, p) in slices.iter_mut().zip(parts) {
                *slot = IoSlice::new(p);
            }
            let slices = &slices[..n];
            loop {
                match sys::writev(c.fd, slices) {
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
        if c.out.len() - c.out_pos + total - written > max {
            c.state = State::Dead;
            self.hub.stats.slow_consumer_drops.fetch_add(1, Ordering::Relaxed);
            log::debug!(
                "worker {}: dropping a slow consumer ({} bytes queued)",
                self.index,
                c.out.len() - c.out_pos
            );
            return false;
        }
        let mut skip = written;
        for p in parts {
            if skip >= p.len() {
                skip -= p.len();
                continue;
            }
            c.out.extend_from_slice(&p[skip..]);
            skip = 0;
        }
        true
    }

    fn flush(&mut self, idx: u32) {
        let c = &mut self.conns[idx as usize];
        while c.out_pos < c.out.len() {
            match sys::writev(c.fd, &[IoSlice::new(&c.out[c.out_pos..])]) {
                Ok(n) => c.out_pos += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(_) => {
                    self.close_conn(idx);
                    return;
                }
            }
        }
        c.out = Vec::new();
        c.out_pos = 0;
        if c.state == State::Closing {
            self.close_conn(idx);
        }
    }

    /// Closes a connection and forgets its subscription.
    pub(crate) fn close_conn(&mut self, idx: u32) {
        let c = &mut self.conns[idx as usize];
        if c.fd < 0 {
            return;
        }
        sys::close(c.fd);
        c.fd = -1;
        // 31 bits: epoll tokens with bit 63 set belong to the worker itself.
        c.gen = c.gen.wrapping_add(1) & 0x7fff_ffff;
        let ip_key = std::mem::take(&mut c.ip_key);
        c.timer_at = 0;
        c.head_deadline = 0;
        c.body_left = 0;
        c.inbuf = Vec::new();
        c.out = Vec::new();
        c.out_pos = 0;
        let sub = c.sub.take();
        if let Some(sub) = sub {
            self.unregister(&sub);
        }
        self.release_ip(ip_key);
        self.free.push(idx);
        self.open -= 1;
        self.hub.stats.connections.fetch_sub(1, Ordering::Relaxed);
        if self.open == 0 && self.conns.len() > 1024 {
            self.release_memory();
        }
        self.maybe_resume_accept();
    }

    /// The tick by which a request head must be complete. The wheel turns
    /// once a second, so the current tick may be nearly over: one more tick
    /// gives every client at least `header_timeout` whole seconds.
    fn head_deadline(&self) -> u32 {
        self.now + self.settings.header_timeout + 1
    }

    fn release_ip(&self, key: u32) {
        if let (Some(table), true) = (&self.hub.per_ip, key != 0) {
            table.release(key);
        }
    }

    /// Everyone left after a burst: drop what the burst grew (the connection
    /// array, stale timer entries) and hand freed heap pages back to the OS,
    /// so that RSS returns to its idle level after a disconnect storm; then
    /// ask for a fresh thread (see `worker::renew`).
    fn release_memory(&mut self) {
        self.conns = Vec::new();
        self.free = Vec::new();
        self.wheel = crate::worker::wheel::Wheel::default();
        self.rbuf = Vec::new();
        self.local.shrink_to_fit();
        // SAFETY: malloc_trim only returns free heap memory to the kernel.
        unsafe { libc::malloc_trim(0) };
        self.renew = true;
    }

    /// A timer entry came due.
    pub(crate) fn on_timer(&mut self, idx: u32, gen: u32) {
        let now = self.now;
        let Some(c) = self.conns.get_mut(idx as usize) else {
            return;
        };
        if c.fd < 0 || c.gen != gen || c.timer_at != now {
            return;
        }
        c.timer_at = 0;
        if c.head_deadline != 0 && c.state == State::Idle {
            if c.head_deadline <= now {
                log::debug!("worker {}: request head timeout", self.index);
                self.close_conn(idx);
            } else {
                let at = c.head_deadline;
                self.arm(idx, at);
            }
            return;
        }
        if c.state == State::Waiting {
            self.on_subscriber_timer(idx);
        }
    }
}
