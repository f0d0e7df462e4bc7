//! Worker threads: each takes a private descriptor table (`unshare(CLONE_FILES)`,
//! its very first action), then runs one edge-triggered epoll loop over its share
//! of the connections (global index `i` belongs to thread `i % threads` and is
//! opened at `i / rate` seconds). Sockets are raw nonblocking libc descriptors;
//! everything a connection does with its bytes is in `conn`, the syscalls in
//! `sys`. Threads share only [`Shared`] (`live`): the stop flag and counters.

use std::net::SocketAddrV4;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::args::Args;
use crate::conn::{Conn, Phase, RunInfo, Session};
use crate::fault::Fault;
use crate::live::{unix_us, Shared};
use crate::sys::{self, errno};
use crate::tally::Tally;

/// Per-thread read buffer.
const READ_BUF: usize = 64 * 1024;
/// Events taken per `epoll_wait`.
const MAX_EVENTS: usize = 1024;
/// Most connections opened in one loop turn, so events keep being served.
const OPEN_BURST: u32 = 256;

/// One thread's share of `--max-pending` (rounded up, so that every thread
/// can open at least one); `u64::MAX` when there is no limit.
fn pending_share(max_pending: u32, threads: u32) -> u64 {
    match max_pending {
        0 => u64::MAX,
        n => u64::from(n.div_ceil(threads.max(1))),
    }
}

/// Whether a loop turn that handled `n` events is followed by the nap: only
/// once the thread has opened all its connections (so that pacing by
/// `--max-pending` is never slowed down), and only after a partial batch (a
/// full one means more is already waiting, none means the wait timed out with
/// nothing to coalesce).
fn naps_after(n: usize, opening: bool) -> bool {
    !opening && n > 0 && n < MAX_EVENTS
}

/// One worker's loop state.
struct Worker {
    id: u32,
    threads: u32,
    rate: u64,
    /// This thread's share of `--max-pending` (`u64::MAX`: no limit).
    max_pending: u64,
    /// `--nap-us`: sleep after a partial batch of events.
    nap: Option<std::time::Duration>,
    fronts: Vec<SocketAddrV4>,
    source_ips: u32,
    run: RunInfo,
    shared: Arc<Shared>,
    epfd: i32,
    conns: Vec<Conn>,
    tally: Tally,
    req: Vec<u8>,
    buf: Vec<u8>,
}

/// Runs worker `id` until the stop flag is set; returns its counters.
pub fn run(id: u32, args: &Args, run: RunInfo, shared: Arc<Shared>) -> Tally {
    // SAFETY: unshare only changes this thread's descriptor table; the copy keeps
    // every descriptor opened before it (none of which this thread closes).
    let unshared = unsafe { libc::unshare(libc::CLONE_FILES) } == 0;
    let unshare_error = std::io::Error::last_os_error();
    let mine = if id < args.connections {
        (args.connections - 1 - id) / args.threads + 1
    } else {
        0
    };
    let mut w = Worker::new(id, args, run, shared, mine);
    if !unshared {
        w.setup_failed("unshare(CLONE_FILES)", unshare_error, mine);
        return w.tally;
    }
    // SAFETY: plain syscall.
    w.epfd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if w.epfd < 0 {
        w.setup_failed("epoll_create1", std::io::Error::last_os_error(), mine);
        return w.tally;
    }
    w.event_loop(mine);
    w.close_all();
    w.tally
}

impl Worker {
    fn new(id: u32, args: &Args, run: RunInfo, shared: Arc<Shared>, mine: u32) -> Worker {
        Worker {
            id,
            threads: args.threads,
            rate: u64::from(args.rate),
            max_pending: pending_share(args.max_pending, args.threads),
            nap: (args.nap_us > 0).then(|| std::time::Duration::from_micros(args.nap_us.into())),
            fronts: args.fronts.clone(),
            source_ips: args.source_ips,
            run,
            shared,
            epfd: -1,
            conns: Vec::with_capacity(mine as usize),
            tally: Tally::default(),
            req: Vec::with_capacity(256),
            buf: vec![0; READ_BUF],
        }
    }

    /// The thread cannot run: all its connections count as failed.
    fn setup_failed(&mut self, what: &str, error: std::io::Error, mine: u32) {
        eprintln!("comet-load: worker {}: {what} failed: {error}", self.id);
        let t = &mut self.tally;
        let wanted = u64::from(self.run.messages > 0);
        for _ in 0..mine {
            t.opened += 1;
            t.faults.add(Fault::Setup);
            t.failed_unready += 1;
            t.failed_unfinished += wanted;
            t.incomplete += wanted;
        }
        self.publish_live();
    }

    fn event_loop(&mut self, mine: u32) {
        // SAFETY: epoll_event is plain data.
        let mut events: Vec<libc::epoll_event> = vec![unsafe { std::mem::zeroed() }; MAX_EVENTS];
        let mut next = 0u32; // next of my connections to open
        while !self.shared.stop.load(Ordering::Relaxed) {
            let now = self.shared.elapsed_us();
            let mut burst = 0;
            while next < mine && burst < OPEN_BURST && self.due_us(next) <= now && self.pending() < self.max_pending {
                self.open(next);
                next += 1;
                burst += 1;
            }
            let timeout_ms = if next < mine {
                let wait = self.due_us(next).saturating_sub(self.shared.elapsed_us());
                wait.div_ceil(1000).min(10) as i32
            } else {
                20
            };
            // SAFETY: events has MAX_EVENTS entries.
            let n = unsafe { libc::epoll_wait(self.epfd, events.as_mut_ptr(), MAX_EVENTS as i32, timeout_ms) };
            if n < 0 {
                if errno() == libc::EINTR {
                    continue;
                }
                eprintln!(
                    "comet-load: worker {}: epoll_wait: {}",
                    self.id,
                    std::io::Error::last_os_error()
                );
                break;
            }
            for ev in &events[..n as usize] {
                let (flags, slot) = (ev.events, ev.u64 as usize);
                self.on_event(slot, flags);
            }
            self.publish_live();
            // Readiness that arrives while this thread sleeps only joins the
            // epoll ready list; while it waits in epoll_wait, each arrival
            // would wake it, a cost the sender pays in its write.
            if let Some(nap) = self.nap.filter(|_| naps_after(n as usize, next < mine)) {
                std::thread::sleep(nap);
            }
        }
        self.publish_live();
    }

    /// My connections opened that are neither subscribed nor failed yet.
    fn pending(&self) -> u64 {
        let t = &self.tally;
        t.opened.saturating_sub(t.ready + t.failed_unready)
    }

    /// When my `k`-th connection is due, µs since the start.
    fn due_us(&self, k: u32) -> u64 {
        let global = u64::from(k) * u64::from(self.threads) + u64::from(self.id);
        global * 1_000_000 / self.rate
    }

    fn open(&mut self, k: u32) {
        let index = k * self.threads + self.id;
        let slot = self.conns.len();
        let opened = self.shared.elapsed_us();
        self.tally.opened += 1;
        let fronts = self.fronts.len() as u32;
        let front = self.fronts[(index % fronts) as usize];
        let source = (self.source_ips > 0).then(|| Args::source_ip((index / fronts) % self.source_ips));
        let fd = sys::socket().unwrap_or(-1);
        self.conns.push(Conn::for_run(&self.run, fd, index, opened));
        let started = if fd < 0 {
            Err(Fault::Socket)
        } else {
            sys::connect(fd, front, source).and_then(|now| sys::epoll_add(self.epfd, fd, slot as u64).map(|()| now))
        };
        match started {
            Ok(true) => self.on_connected(slot),
            Ok(false) => {}
            Err(fault) => self.fail(slot, fault),
        }
    }

    fn on_event(&mut self, slot: usize, flags: u32) {
        let Some(conn) = self.conns.get(slot) else { return };
        let out = flags & (libc::EPOLLOUT | libc::EPOLLERR | libc::EPOLLHUP) as u32 != 0;
        let input = flags & (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as u32 != 0;
        match conn.sub.phase {
            Phase::Closed => return,
            Phase::Connecting if !out => return,
            Phase::Connecting => {
                let err = sys::so_error(conn.sub.fd);
                if err != 0 {
                    self.fail(slot, Fault::from_connect_errno(err));
                    return;
                }
                self.on_connected(slot);
            }
            Phase::Writing if out => self.flush(slot),
            Phase::Reading if out => self.flush_ws(slot),
            _ => {}
        }
        if input && self.conns[slot].sub.phase != Phase::Closed {
            let hangup = flags & (libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as u32 != 0;
            self.read_all(slot, hangup);
        }
    }

    fn on_connected(&mut self, slot: usize) {
        self.tally.established += 1;
        self.tally.open += 1;
        let sub = &mut self.conns[slot].sub;
        sub.phase = Phase::Writing;
        sub.write_off = 0;
        self.flush(slot);
    }

    /// Writes the rest of the current request.
    fn flush(&mut self, slot: usize) {
        let sub = &mut self.conns[slot].sub;
        sub.request(&self.run, &mut self.req);
        let mut off = usize::from(sub.write_off);
        while off < self.req.len() {
            let rest = &self.req[off..];
            // SAFETY: rest is a valid buffer; fd is open. MSG_NOSIGNAL: a reset peer
            // gives EPIPE instead of SIGPIPE.
            let n = unsafe { libc::send(sub.fd, rest.as_ptr().cast(), rest.len(), libc::MSG_NOSIGNAL) };
            if n >= 0 {
                off += n as usize;
                continue;
            }
            match errno() {
                libc::EINTR => continue,
                libc::EAGAIN => {
                    sub.write_off = off as u16;
                    return;
                }
                e => {
                    self.fail(slot, Fault::from_io_errno(e));
                    return;
                }
            }
        }
        sub.write_off = 0;
        sub.phase = Phase::Reading;
        let elapsed = self.shared.elapsed_us();
        sub.request_written(&self.run, &mut self.tally, elapsed);
    }

    /// Reads until the socket is drained, feeding the response reader.
    fn read_all(&mut self, slot: usize, hangup: bool) {
        loop {
            let fd = self.conns[slot].sub.fd;
            // SAFETY: buf is a valid writable buffer; fd is open.
            let n = unsafe { libc::read(fd, self.buf.as_mut_ptr().cast(), self.buf.len()) };
            if n < 0 {
                match errno() {
                    libc::EINTR => continue,
                    libc::EAGAIN => return,
                    e => return self.fail(slot, Fault::from_io_errno(e)),
                }
            }
            let conn = &mut self.conns[slot];
            let (chans, ws) = match conn.ws.as_deref_mut() {
                Some(link) => (&mut link.chans[..], Some((&mut link.reader, &mut link.out))),
                None => (&mut [][..], None),
            };
            let mut session = Session {
                sub: &mut conn.sub,
                run: &self.run,
                tally: &mut self.tally,
                now_us: unix_us(),
                elapsed_us: self.shared.elapsed_us(),
                target: self.shared.target.load(Ordering::SeqCst),
                chans,
            };
            let n = n as usize;
            let result = match ws {
                // The server ended the stream without a close frame.
                Some(_) if n == 0 => Err(Fault::Eof),
                Some((reader, out)) => reader.feed(&self.buf[..n], &mut session, out),
                None if n == 0 => conn.reader.eof(&mut session).and(Err(Fault::Eof)),
                None => conn.reader.feed(&self.buf[..n], &mut session),
            };
            if let Err(f) = result {
                return self.fail(slot, f);
            }
            if conn.sub.repoll_due {
                conn.sub.repoll_due = false;
                conn.sub.phase = Phase::Writing;
                conn.sub.write_off = 0;
                self.flush(slot);
                if self.conns[slot].sub.phase == Phase::Closed {
                    return;
                }
            }
            if self.conns[slot].ws.as_ref().is_some_and(|l| l.has_output()) {
                self.flush_ws(slot);
                if self.conns[slot].sub.phase == Phase::Closed {
                    return;
                }
            }
            // A short read drained the socket; a later arrival raises a new edge.
            // After a hangup, read on until EOF so the close is seen.
            if n < self.buf.len() && !hangup {
                return;
            }
        }
    }

    /// Writes what a WebSocket connection has queued (`sub` commands,
    /// pongs); the rest waits for the socket to take more.
    fn flush_ws(&mut self, slot: usize) {
        let conn = &mut self.conns[slot];
        let fd = conn.sub.fd;
        let Some(link) = conn.ws.as_deref_mut() else { return };
        while link.has_output() {
            let rest = &link.out[link.out_off..];
            // SAFETY: rest is a valid buffer; fd is open. MSG_NOSIGNAL: a
            // reset peer gives EPIPE instead of SIGPIPE.
            let n = unsafe { libc::send(fd, rest.as_ptr().cast(), rest.len(), libc::MSG_NOSIGNAL) };
            if n >= 0 {
                link.out_off += n as usize;
                continue;
            }
            match errno() {
                libc::EINTR => continue,
                libc::EAGAIN => return,
                e => return self.fail(slot, Fault::from_io_errno(e)),
            }
        }
        link.out = Vec::new();
        link.out_off = 0;
    }

    fn fail(&mut self, slot: usize, fault: Fault) {
        let sub = &mut self.conns[slot].sub;
        let fd = sub.fd;
        sub.fail(
            &self.run,
            &mut self.tally,
            fault,
            self.shared.target.load(Ordering::SeqCst),
        );
        if fd >= 0 {
            // SAFETY: fd is open and owned by this connection; closing it also
            // removes it from the epoll set.
            unsafe { libc::close(fd) };
        }
    }

    fn publish_live(&self) {
        let Some(live) = self.shared.live.get(self.id as usize) else {
            return;
        };
        let t = &self.tally;
        let set = |a: &AtomicU64, v: u64| a.store(v, Ordering::Relaxed);
        set(&live.opened, t.opened);
        set(&live.open, t.open);
        set(&live.ready, t.ready);
        set(&live.failed_unready, t.failed_unready);
        set(&live.failed_unfinished, t.failed_unfinished);
        set(&live.finished, t.finished);
        set(&live.deliveries, t.deliveries);
        set(&live.faults, t.faults.total());
        set(&live.failed_ready, t.failed_ready);
        live.reached.store(t.reach.pack(), Ordering::SeqCst);
    }

    /// End of the run: closes every open connection (not an error) and the epoll fd.
    fn close_all(&mut self) {
        for conn in &mut self.conns {
            conn.sub.finish(&self.run, &mut self.tally);
            if conn.sub.fd >= 0 {
                // SAFETY: the fd is open and owned by this connection.
                unsafe { libc::close(conn.sub.fd) };
                conn.sub.fd = -1;
            }
        }
        // SAFETY: epfd is this worker's epoll descriptor.
        unsafe { libc::close(self.epfd) };
    }
}

#[cfg(test)]
mod tests {
    use super::{naps_after, pending_share, MAX_EVENTS};

    #[test]
    fn naps_only_after_a_partial_batch() {
        assert!(!naps_after(0, false));
        assert!(naps_after(1, false));
        assert!(naps_after(MAX_EVENTS - 1, false));
        assert!(!naps_after(MAX_EVENTS, false));
        assert!(!naps_after(1, true), "no nap while connections are still to be opened");
    }

    #[test]
    fn pending_limit_is_shared_between_threads() {
        assert_eq!(pending_share(0, 53), u64::MAX);
        assert_eq!(pending_share(4000, 53), 76);
        assert_eq!(pending_share(1, 53), 1);
        assert_eq!(pending_share(100, 4), 25);
    }
}
