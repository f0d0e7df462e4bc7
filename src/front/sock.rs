//! What the front needs of a socket: read, write, and half-close.
//!
//! The worker implements [`Sock`] on its non-blocking TCP sockets
//! (`crate::worker::sys::Socket`); tests implement it in memory
//! ([`MemSock`]), so that the whole protocol (request framing, subscribing,
//! delivery, timers) runs without a kernel and with a clock the test turns.

use std::cell::{Cell, RefCell};
use std::io::{self, IoSlice};
use std::rc::Rc;

/// A connected, non-blocking stream socket.
pub trait Sock {
    /// Reads what is there into `buf`; `Ok(0)` is end of stream,
    /// `WouldBlock` means nothing is there now.
    fn read(&self, buf: &mut [u8]) -> io::Result<usize>;
    /// Writes the slices in order with one call; returns the bytes taken,
    /// or `WouldBlock` when none are.
    fn write(&self, parts: &[IoSlice<'_>]) -> io::Result<usize>;
    /// Ends the sending side (FIN) once queued bytes are sent.
    fn shutdown_write(&self);
    /// The client's address, when known. Asked only by the hooks to the
    /// application (once per subscribe), so no connection keeps it.
    fn peer_ip(&self) -> Option<std::net::IpAddr> {
        None
    }
}

/// An in-memory socket for tests: the test pushes what the client sends
/// and reads what the server wrote; `room` limits how much a write takes
/// (a full socket buffer), and `eof` makes reads end.
#[derive(Debug, Default)]
pub struct MemSock {
    /// Bytes the client has sent and the server not yet read.
    pub input: RefCell<Vec<u8>>,
    /// Everything the server wrote.
    pub output: RefCell<Vec<u8>>,
    /// Bytes the next writes may still take (`None`: unlimited).
    pub room: Cell<Option<usize>>,
    /// The client closed its side.
    pub eof: Cell<bool>,
    /// The server half-closed.
    pub shut: Cell<bool>,
}

impl MemSock {
    /// A fresh socket with unlimited room.
    pub fn new() -> Rc<MemSock> {
        Rc::new(MemSock::default())
    }

    /// Takes what the server wrote so far, as text.
    pub fn take_output(&self) -> String {
        String::from_utf8(std::mem::take(&mut *self.output.borrow_mut())).expect("utf-8 output")
    }

    /// Appends client bytes.
    pub fn send(&self, bytes: &[u8]) {
        self.input.borrow_mut().extend_from_slice(bytes);
    }
}

impl Sock for Rc<MemSock> {
    fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        let mut input = self.input.borrow_mut();
        if input.is_empty() {
            return if self.eof.get() {
                Ok(0)
            } else {
                Err(io::ErrorKind::WouldBlock.into())
            };
        }
        let n = input.len().min(buf.len());
        buf[..n].copy_from_slice(&input[..n]);
        input.drain(..n);
        Ok(n)
    }

    fn write(&self, parts: &[IoSlice<'_>]) -> io::Result<usize> {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        let n = self.room.get().map_or(total, |r| r.min(total));
        if n == 0 && total > 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        if let Some(r) = self.room.get() {
            self.room.set(Some(r - n));
        }
        let mut left = n;
        let mut out = self.output.borrow_mut();
        for p in parts {
            let k = left.min(p.len());
            out.extend_from_slice(&p[..k]);
            left -= k;
        }
        Ok(n)
    }

    fn shutdown_write(&self) {
        self.shut.set(true);
    }
}
