//! The few libc socket calls the workers make on raw descriptors: start a
//! nonblocking connect (optionally from a given loopback source address), register
//! it with epoll, and read a pending connect error. Errors come back as
//! [`Fault`]s; descriptors are owned and closed by the caller.

use std::net::{Ipv4Addr, SocketAddrV4};

use crate::fault::Fault;

/// The calling thread's last OS error number.
pub fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// A new nonblocking, close-on-exec TCP socket, or the fault.
pub fn socket() -> Result<i32, Fault> {
    // SAFETY: plain syscall.
    let fd = unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        Err(Fault::Socket)
    } else {
        Ok(fd)
    }
}

/// Starts connecting `fd` to `to`, first binding it to `source` when given.
/// Ok(true) when already connected, Ok(false) when in progress.
pub fn connect(fd: i32, to: SocketAddrV4, source: Option<Ipv4Addr>) -> Result<bool, Fault> {
    if let Some(source) = source {
        bind_source(fd, source)?;
    }
    let sa = sockaddr(to);
    // SAFETY: sa is a valid sockaddr_in of the given length.
    let rc = unsafe {
        libc::connect(
            fd,
            (&sa as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as u32,
        )
    };
    if rc == 0 {
        return Ok(true);
    }
    match errno() {
        libc::EINPROGRESS => Ok(false),
        e => Err(Fault::from_connect_errno(e)),
    }
}

/// Registers `fd` edge-triggered for input, output and peer hangup, tagged `token`.
pub fn epoll_add(epfd: i32, fd: i32, token: u64) -> Result<(), Fault> {
    let mut ev = libc::epoll_event {
        events: (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32,
        u64: token,
    };
    // SAFETY: fd and epfd are open descriptors of this thread's table.
    if unsafe { libc::epoll_ctl(epfd, libc::EPOLL_CTL_ADD, fd, &mut ev) } < 0 {
        Err(Fault::Setup)
    } else {
        Ok(())
    }
}

fn sockaddr(addr: SocketAddrV4) -> libc::sockaddr_in {
    // SAFETY: sockaddr_in is plain data; all-zero is a valid value.
    let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    sa.sin_family = libc::AF_INET as libc::sa_family_t;
    sa.sin_port = addr.port().to_be();
    sa.sin_addr.s_addr = u32::from(*addr.ip()).to_be();
    sa
}

/// Binds a socket to `(source, 0)`, leaving the port choice to connect() so that
/// ports are only unique per (source, destination) pair.
fn bind_source(fd: i32, source: Ipv4Addr) -> Result<(), Fault> {
    let one: libc::c_int = 1;
    // SAFETY: valid option value pointer and length. Failure only costs ports.
    unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as u32,
        )
    };
    let sa = sockaddr(SocketAddrV4::new(source, 0));
    // SAFETY: sa is a valid sockaddr_in of the given length.
    let rc = unsafe {
        libc::bind(
            fd,
            (&sa as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as u32,
        )
    };
    if rc == 0 {
        Ok(())
    } else if errno() == libc::EADDRINUSE {
        Err(Fault::AddrNotAvail)
    } else {
        Err(Fault::Bind)
    }
}

/// The pending error of a socket (0 when none): how a nonblocking connect ended.
pub fn so_error(fd: i32) -> i32 {
    let mut err: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: valid out-pointers of the right size.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut err as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc < 0 {
        errno()
    } else {
        err
    }
}
