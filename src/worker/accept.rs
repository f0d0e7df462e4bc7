//! Accepting: who listens, connection limits, refusals and descriptor
//! exhaustion.
//!
//! Every worker with room listens (see `worker::spawn`). A worker stops
//! listening when its own table is full while the server still has room
//! elsewhere, and listens again once a connection of its own closes. When
//! the server as a whole holds
//! `front.max_connections`, every full worker listens again and refuses: a
//! new connection is never left waiting in the listen queue. A refused
//! connection whose request has arrived gets a `503` with `Retry-After`;
//! one whose request has not arrived yet waits for it (up to
//! [`REFUSE_WAIT_TICKS`], at most [`REFUSE_POOL`] per worker) and is closed
//! without a word when the pool is full.

use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::Ordering;

use super::sys::{self, Flags, Socket};
use super::{Worker, LISTENER};

/// Refused connections one worker keeps waiting for their request.
const REFUSE_POOL: usize = 64;
/// Ticks a refused connection may take to send its request.
const REFUSE_WAIT_TICKS: u32 = 2;
/// What a refused client is told to wait before trying again, in seconds.
pub(crate) const RETRY_AFTER_SECS: u32 = 5;
/// Tag of the epoll tokens of refused connections (the descriptor is in the
/// low bits). Connection tokens never have bit 63 set (`front::Token`).
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
#[derive(Debug)]
pub(crate) struct Pending {
    fd: OwnedFd,
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

/// Reads (and discards) what a refused client sent, so that closing the
/// socket sends FIN and not RST, which could destroy the 503 unread.
fn hear(fd: &OwnedFd) -> Heard {
    let mut buf = [0u8; 4096];
    let mut got = false;
    loop {
        match rustix::io::read(fd, &mut buf) {
            Ok(0) => return Heard::Gone,
            Ok(_) => got = true,
            Err(rustix::io::Errno::INTR) => {}
            Err(rustix::io::Errno::AGAIN) => {
                return if got { Heard::Request } else { Heard::Nothing };
            }
            Err(_) => return Heard::Gone,
        }
    }
}

impl Worker {
    /// Whether the server holds `front.max_connections`.
    fn server_full(&self) -> bool {
        self.shared.stats.connections.load(Ordering::Relaxed) >= self.max_connections
    }

    /// Whether this worker should be listening now.
    fn wants_listener(&self) -> bool {
        self.drain_deadline.is_none()
            && self.front.now() >= self.accept_pause_until
            && (self.front.open() < self.capacity || self.server_full())
    }

    /// The listener is readable: accept what is queued (a bounded batch).
    pub(crate) fn accept_ready(&mut self) {
        let want_peer = self.shared.per_ip.enabled();
        for _ in 0..512 {
            if self.drain_deadline.is_some() {
                return;
            }
            let full = self.server_full();
            if self.front.open() >= self.capacity && !full {
                // Room elsewhere: let other workers take it.
                self.pause_accept();
                return;
            }
            match sys::accept(self.listener.as_fd(), want_peer) {
                Ok((fd, peer)) => {
                    self.shared.stats.accepted.fetch_add(1, Ordering::Relaxed);
                    if full || self.front.open() >= self.capacity {
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
                        // `incidents` reports the burst for every worker at once.
                        if self.accept_failures == 0 {
                            self.shared.lifecycle.set_accept_failing(true);
                            log::debug!(
                                "worker {}: accept: {e}; pausing accepts, retrying every second",
                                self.index
                            );
                        }
                        self.accept_failures += 1;
                        self.shared.stats.accept_errors.fetch_add(1, Ordering::Relaxed);
                        self.accept_pause_until = self.front.now() + 1;
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

    /// Hands an accepted connection to the front and registers it with epoll.
    fn add_conn(&mut self, fd: OwnedFd, ip_key: u32) {
        sys::tune_socket(&fd, self.send_buf, self.recv_buf);
        let token = self.front.add(Socket(fd), ip_key);
        let registered = match self.front.sock(token) {
            Some(s) => {
                let flags = Flags::IN | Flags::OUT | Flags::RDHUP | Flags::ET;
                self.epoll.add(s.0.as_fd(), flags, token.0).is_ok()
            }
            None => false,
        };
        if !registered {
            self.front.close(token);
        }
    }

    /// Applies the per-address cap; the key to release on close (0: none),
    /// or `None` when the address is at its cap.
    fn admit(&self, peer: Option<IpAddr>) -> Option<u32> {
        self.shared.per_ip.admit(peer)
    }

    /// Refuses a connection the worker will not serve.
    fn refuse(&mut self, fd: OwnedFd, why: Refusal) {
        let counter = match why {
            Refusal::Full => &self.shared.stats.refused_full,
            Refusal::PerIp => &self.shared.stats.refused_per_ip,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        match hear(&fd) {
            Heard::Request => self.answer_refused(fd, why),
            Heard::Gone => drop(fd),
            Heard::Nothing => {
                let token = REFUSED_TAG | fd.as_raw_fd() as u32 as u64;
                if self.refusing.len() < REFUSE_POOL
                    && self.epoll.add(fd.as_fd(), Flags::IN | Flags::RDHUP, token).is_ok()
                {
                    self.refusing.push(Pending {
                        fd,
                        why,
                        until: self.front.now() + REFUSE_WAIT_TICKS,
                    });
                }
                // Else the pool is full: `fd` drops, closing the connection.
            }
        }
    }

    /// Writes the 503 and closes.
    fn answer_refused(&self, fd: OwnedFd, why: Refusal) {
        let body = why.body();
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n");
        out.extend_from_slice(
            format!("Content-Length: {}\r\nRetry-After: {RETRY_AFTER_SECS}\r\n", body.len()).as_bytes(),
        );
        out.extend_from_slice(b"Connection: close\r\n");
        out.extend_from_slice(&crate::front::respond::date_line());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(body.as_bytes());
        // A fresh socket's send buffer takes this whole; if not, the client
        // gets a truncated reply, which it would see as an error anyway.
        let _ = rustix::io::write(&fd, &out);
    }

    /// A refused connection waiting for its request became readable.
    pub(crate) fn on_refused_event(&mut self, token: u64) {
        let raw = (token & 0xffff_ffff) as u32 as i32;
        let Some(i) = self.refusing.iter().position(|p| p.fd.as_raw_fd() == raw) else {
            return;
        };
        match hear(&self.refusing[i].fd) {
            Heard::Nothing => {}
            Heard::Request => {
                let p = self.refusing.swap_remove(i);
                self.answer_refused(p.fd, p.why);
            }
            Heard::Gone => {
                self.refusing.swap_remove(i);
            }
        }
    }

    /// Closes refused connections that never sent a request (every tick),
    /// or all of them (`all`, at shutdown).
    pub(crate) fn expire_refused(&mut self, all: bool) {
        let now = self.front.now();
        self.refusing.retain(|p| !all && p.until > now);
        if self.refusing.is_empty() && self.refusing.capacity() > 0 {
            self.refusing = Vec::new();
        }
    }

    /// Stops listening.
    pub(crate) fn pause_accept(&mut self) {
        if !self.accept_paused {
            let _ = self.epoll.delete(self.listener.as_fd());
            self.accept_paused = true;
        }
    }

    /// Listens again if this worker should (see `wants_listener`).
    pub(crate) fn maybe_resume_accept(&mut self) {
        if self.accept_paused
            && self.wants_listener()
            && self
                .epoll
                .add(self.listener.as_fd(), Flags::IN | Flags::EXCLUSIVE, LISTENER)
                .is_ok()
        {
            self.accept_paused = false;
        }
    }

    /// Once a tick: report the end of a burst of accept failures.
    pub(crate) fn accept_tick(&mut self) {
        if self.accept_failures > 0 && self.front.now() > self.accept_pause_until {
            log::debug!(
                "worker {}: accepting again after {} failed accepts (descriptors exhausted)",
                self.index,
                self.accept_failures
            );
            self.accept_failures = 0;
            self.shared.lifecycle.set_accept_failing(false);
        }
        self.expire_refused(false);
        self.maybe_resume_accept();
    }
}
