//! The few Linux calls the workers make, on owned descriptors (rustix):
//! epoll, accept4, read and write, socket options, `unshare(CLONE_FILES)`
//! and the descriptor limit. A connection's descriptor is an [`OwnedFd`]
//! inside a [`Socket`]: closing it is dropping it.

use std::io::{self, IoSlice};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{BorrowedFd, OwnedFd};

use rustix::event::epoll;
use rustix::net::{sockopt, SocketFlags};

use crate::front::Sock;

/// A connected, non-blocking TCP socket of a worker.
#[derive(Debug)]
pub struct Socket(pub OwnedFd);

impl Sock for Socket {
    fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        Ok(rustix::io::read(&self.0, buf)?)
    }

    /// A single slice goes through `write(2)`: the kernel's `writev` path
    /// costs measurably more per call (fan-out to 15,000 sockets: 15% above
    /// a bare C epoll server with writev, 6.5% with write), and one slice is
    /// the common case (a shared pre-framed event).
    fn write(&self, parts: &[IoSlice<'_>]) -> io::Result<usize> {
        Ok(match parts {
            [one] => rustix::io::write(&self.0, one)?,
            _ => rustix::io::writev(&self.0, &parts[..parts.len().min(1024)])?,
        })
    }

    fn shutdown_write(&self) {
        // Fails only when the peer is already gone, which is what FIN is for.
        let _ = rustix::net::shutdown(&self.0, rustix::net::Shutdown::Write);
    }

    fn peer_ip(&self) -> Option<IpAddr> {
        let addr = rustix::net::getpeername(&self.0).ok()??;
        SocketAddr::try_from(addr).ok().map(|a| a.ip())
    }
}

/// Readiness bits the workers use.
pub use epoll::EventFlags as Flags;

/// An epoll instance.
#[derive(Debug)]
pub struct Epoll(OwnedFd);

impl Epoll {
    /// Creates an epoll instance.
    pub fn new() -> io::Result<Epoll> {
        Ok(Epoll(epoll::create(epoll::CreateFlags::CLOEXEC)?))
    }

    /// Another descriptor for the same instance (`dup`).
    pub fn try_clone(&self) -> io::Result<Epoll> {
        Ok(Epoll(self.0.try_clone()?))
    }

    /// Registers `fd` for `flags`, reported with `token`.
    pub fn add(&self, fd: BorrowedFd<'_>, flags: Flags, token: u64) -> io::Result<()> {
        Ok(epoll::add(&self.0, fd, epoll::EventData::new_u64(token), flags)?)
    }

    /// Removes `fd`.
    pub fn delete(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        Ok(epoll::delete(&self.0, fd)?)
    }

    /// Waits up to `timeout_ms` for events; returns how many were filled in.
    pub fn wait(&self, events: &mut [epoll::Event], timeout_ms: u64) -> io::Result<usize> {
        let timeout = rustix::time::Timespec {
            tv_sec: (timeout_ms / 1000) as i64,
            tv_nsec: ((timeout_ms % 1000) * 1_000_000) as i64,
        };
        match epoll::wait(&self.0, events, Some(&timeout)) {
            Ok(n) => Ok(n),
            Err(rustix::io::Errno::INTR) => Ok(0),
            Err(e) => Err(e.into()),
        }
    }
}

/// An empty event slot for [`Epoll::wait`].
pub fn no_event() -> epoll::Event {
    epoll::Event {
        flags: Flags::empty(),
        data: epoll::EventData::new_u64(0),
    }
}

/// Accepts one connection, non-blocking and close-on-exec; with `peer`,
/// also returns the client's address.
pub fn accept(listener: BorrowedFd<'_>, peer: bool) -> io::Result<(OwnedFd, Option<IpAddr>)> {
    let flags = SocketFlags::NONBLOCK | SocketFlags::CLOEXEC;
    if !peer {
        return Ok((rustix::net::accept_with(listener, flags)?, None));
    }
    let (fd, addr) = rustix::net::acceptfrom_with(listener, flags)?;
    let ip = addr.and_then(|a| SocketAddr::try_from(a).ok()).map(|a| a.ip());
    Ok((fd, ip))
}

/// Stops a listening socket for every descriptor that refers to it (in
/// every descriptor table): connections waiting in its queue are reset and
/// new ones are refused, while the descriptors stay valid until closed.
pub fn stop_listening(listener: BorrowedFd<'_>) {
    // Fails only on a socket that is not listening any more: nothing to stop.
    let _ = rustix::net::shutdown(listener, rustix::net::Shutdown::Both);
}

/// Tunes an accepted socket: no Nagle delay, and the configured buffer
/// sizes (0 = kernel default). Failures leave the kernel's defaults.
pub fn tune_socket(fd: &OwnedFd, send_buf: usize, recv_buf: usize) {
    let _ = sockopt::set_tcp_nodelay(fd, true);
    if send_buf > 0 {
        let _ = sockopt::set_socket_send_buffer_size(fd, send_buf);
    }
    if recv_buf > 0 {
        let _ = sockopt::set_socket_recv_buffer_size(fd, recv_buf);
    }
}

/// Gives the calling thread a private copy of the process's descriptor
/// table (`unshare(CLONE_FILES)`).
///
/// # Safety
///
/// From this call on, descriptors this thread opens exist only in its
/// table, and descriptors other threads open afterwards do not exist here;
/// a descriptor number another thread passes over may name nothing, or
/// another file, in this table. The caller must therefore make sure that
/// every descriptor this thread will use that it did not open itself
/// (epoll instances, eventfds, the listening socket) was created before
/// this call and is never closed in this table while in use; and that no
/// descriptor this thread opens is handed to another thread. comet's start-up
/// order guarantees both (see `crate::server`).
pub unsafe fn unshare_files() -> io::Result<()> {
    // SAFETY: the caller upholds the descriptor rules above.
    Ok(unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::FILES) }?)
}

/// Raises the soft descriptor limit to the hard one; returns the new soft limit.
pub fn raise_nofile_limit() -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let lim = getrlimit(Resource::Nofile);
    let (Some(cur), max) = (lim.current, lim.maximum) else {
        return u64::MAX;
    };
    if max.is_none_or(|m| m > cur) {
        let want = Rlimit {
            current: max.or(Some(1 << 20)),
            maximum: max,
        };
        if setrlimit(Resource::Nofile, want).is_ok() {
            return want.current.unwrap_or(cur);
        }
    }
    cur
}
