//! Accepting: who listens, connection limits, refusals and descriptor
//! exhaustion.
//!
//! Only some workers listen at a time (see `worker::spawn`). A worker stops
//! listening when its own table is full while the server still has room
//! elsewhere, and hands listening on. When the server as a whole holds
//! `front.max_connections`, every full worker listens again and refuses: a
//! new connection is never left waiting in the listen queue. A refused
//! connection whose request has arrived gets a `503` with `Retry-After`;
//! one whose request has not arrived yet waits for it (up to
//! [`REFUSE_WAIT_TICKS`], at most [`REFUSE_POOL`] per worker) and is closed
//! without a word when the pool is full.

use std::net::IpAddr;
use std::os::fd::RawFd;
use std::sync::atomic::Ordering;

use super::{sys, Worker, LISTENER};
use crate::hub::per_ip::client_key;

/// Refused connections one worker keeps waiting for their request.
const REFUSE_POOL: usize = 64;
/// Ticks a refused connection may take to send its request.
const REFUSE_WAIT_TICKS: u32 = 2;
/// What a refused client is told to wait before trying again, in seconds.
pub(crate) const RETRY_AFTER_SECS: u32 = 5;
/// Tag of the epoll tokens of refused connections (the descriptor is in the
/// low bits). Connection tokens never have bit 63 set (see `conn_gen`).
pub(crate) const REFUSED_TAG: u64 = 3 << 62;

/// Why a connection is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// `front.max_connections` are open.
    Full,
    /// The client's address holds `front.max_connections_per_ip`.
    PerIp,
}

impl Refusal {
    fn body(self) -> &'static str {
        match self {
            Refusal::Full => "server is at its connection limit; retry later\n",
            Refusal::PerIp => "too many connections from this address; retry later\n",
        }
    }
}

/// A refused connection waiting for its request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pending {
    fd: RawFd,
    why: Refusal,
    until: u32,
}

/// What reading a refused connection found.
enum Heard {
    /// Bytes arrived (a request, or the start of one).
    Request,
    /// Nothing yet.
    Nothing,
    /// The client closed or the socket failed.
    Gone,
}

impl Worker {
    /// Whether the server holds `front.max_connections`.
    fn server_full(&self) -> bool {
        self.hub.stats.connections.load(Ordering::Relaxed) >= self.max_connections
    }

    /// Whether this worker should be listening now.
    fn wants_listener(&self) -> bool {
        self.accepting
            && self.drain_deadline.is_none()
            && self.now >= self.accept_pause_until
            && (self.open < self.capacity || self.server_full())
    }

    /// The listener is readable: accept what is queued (a bounded batch).
    pub(crate) fn accept_ready(&mut self) {
        let want_peer = self.hub.per_ip.is_some();
        for _ in 0..512 {
            if self.drain_deadline.is_some() {
                return;
            }
            let full = self.server_full();
            if self.open >= self.capacity && !full {
                // Room elsewhere: let other workers take it.
                self.pause_accept();
                self.hand_off();
                return;
            }
            match sys::accept(self.listener, want_peer) {
                Ok((fd, peer)) => {
                    self.hub.stats.accepted.fetch_add(1, Ordering::Relaxed);
                    if full || self.open >= self.capacity {
                        self.refuse(fd, Refusal::Full);
                    } else {
                        match self.admit(peer) {
                            Some(key) => self.add_conn(fd, key),
                            None => self.refuse(fd, Refusal::PerIp),
                        }
                    }
                }
                Err(e) => match e.raw_os_error() {
                    Some(libc::EAGAIN) => return,
                    Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => {
                        if self.accept_failures == 0 {
                            log::warn!(
                                "worker {}: accept: {e}; pausing accepts, retrying every second",
                                self.index
                            );
                        }
                        self.accept_failures += 1;
                        self.accept_pause_until = self.now + 1;
                        self.pause_accept();
                        return;
                    }
                    Some(libc::EINVAL) => {
                        // The listener was stopped (shutdown).
                        self.pause_accept();
                        return;
                    }
                    _ => continue,
                },
            }
        }
    }

    /// Applies the per-address cap; the key to release on close (0: none),
    /// or `None` when the address is at its cap.
    fn admit(&self, peer: Option<IpAddr>) -> Option<u32> {
        match (&self.hub.per_ip, peer) {
            (Some(table), Some(ip)) => {
                let key = client_key(ip);
                table.acquire(key).then_some(key)
            }
            _ => Some(0),
        }
    }

    /// Refuses a connection the worker will not serve.
    fn refuse(&mut self, fd: RawFd, why: Refusal) {
        let counter = match why {
            Refusal::Full => &self.hub.stats.refused_full,
            Refusal::PerIp => &self.hub.stats.refused_per_ip,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        match self.hear(fd) {
            Heard::Request => self.answer_refused(fd, why),
            Heard::Gone => sys::close(fd),
            Heard::Nothing => {
                let token = REFUSED_TAG | fd as u32 as u64;
                if self.refusing.len() < REFUSE_POOL && self.epoll.add(fd, sys::IN | sys::RDHUP, token).is_ok() {
                    self.refusing.push(Pending {
                        fd,
                        why,
                        until: self.now + REFUSE_WAIT_TICKS,
                    });
                } else {
                    sys::close(fd);
                }
            }
        }
    }

    /// Reads (and discards) what a refused client sent, so that closing the
    /// socket sends FIN and not RST, which could destroy the 503 unread.
    fn hear(&self, fd: RawFd) -> Heard {
        let mut buf = [0u8; 4096];
        let mut got = false;
        loop {
            match sys::read(fd, &mut buf) {
                Ok(0) => return Heard::Gone,
                Ok(_) => got = true,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    return if got { Heard::Request } else { Heard::Nothing };
                }
                Err(_) => return Heard::Gone,
            }
        }
    }

    /// Writes the 503 and closes.
    fn answer_refused(&self, fd: RawFd, why: Refusal) {
        let body = why.body();
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n");
        out.extend_from_slice(
            format!("Content-Length: {}\r\nRetry-After: {RETRY_AFTER_SECS}\r\n", body.len()).as_bytes(),
        );
        out.extend_from_slice(b"Connection: close\r\n");
        out.extend_from_slice(&self.date);
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(body.as_bytes());
        // A fresh socket's send buffer takes this whole; if not, the client
        // gets a truncated reply, which it would see as an error anyway.
        let _ = sys::writev(fd, &[std::io::IoSlice::new(&out)]);
        sys::close(fd);
    }

    /// A refused connection waiting for its request became readable.
    pub(crate) fn on_refused_event(&mut self, token: u64) {
        let fd = (token & 0xffff_ffff) as u32 as RawFd;
        let Some(i) = self.refusing.iter().position(|p| p.fd == fd) else {
            return;
        };
        let p = self.refusing[i];
        match self.hear(fd) {
            Heard::Nothing => {}
            Heard::Request => {
                self.refusing.swap_remove(i);
                self.answer_refused(fd, p.why);
            }
            Heard::Gone => {
                self.refusing.swap_remove(i);
                sys::close(fd);
            }
        }
    }

    /// Closes refused connections that never sent a request (every tick),
    /// or all of them (`all`, at shutdown).
    pub(crate) fn expire_refused(&mut self, all: bool) {
        let now = self.now;
        self.refusing.retain(|p| {
            let keep = !all && p.until > now;
            if !keep {
                sys::close(p.fd);
            }
            keep
        });
        if self.refusing.is_empty() && self.refusing.capacity() > 0 {
            self.refusing = Vec::new();
        }
    }

    /// This worker is full: the next worker that never listened takes over.
    fn hand_off(&mut self) {
        let next = self.next_acceptor.fetch_add(1, Ordering::Relaxed);
        if let Some(mb) = self.hub.mailboxes().get(next) {
            mb.push(crate::hub::Command::StartAccepting);
        }
    }

    /// Stops listening.
    pub(crate) fn pause_accept(&mut self) {
        if !self.accept_paused {
            let _ = self.epoll.delete(self.listener);
            self.accept_paused = true;
        }
    }

    /// Listens again if this worker should (see `wants_listener`).
    pub(crate) fn maybe_resume_accept(&mut self) {
        if self.accept_paused
            && self.wants_listener()
            && self
                .epoll
                .add(self.listener, sys::IN | sys::EXCLUSIVE, LISTENER)
                .is_ok()
        {
            self.accept_paused = false;
        }
    }

    /// Once a tick: report the end of a burst of accept failures.
    pub(crate) fn accept_tick(&mut self) {
        if self.accept_failures > 0 && self.now > self.accept_pause_until {
            log::warn!(
                "worker {}: accepting again after {} failed accepts (descriptors exhausted)",
                self.index,
                self.accept_failures
            );
            self.accept_failures = 0;
        }
        self.expire_refused(false);
        self.maybe_resume_accept();
    }
}
