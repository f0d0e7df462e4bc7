//! Error kinds a subscriber connection can run into, and a fixed-size counter per
//! kind. Every module that detects a problem names it with a [`Fault`]. A fault
//! returned as an error closes the connection; [`Fault::Foreign`] is only
//! counted (by `conn`) and the connection carries on.

/// One kind of error, counted per kind in the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `socket()` failed (typically EMFILE: descriptor table full).
    Socket,
    /// Binding the source address failed.
    Bind,
    /// No local port left for the source/destination pair (EADDRNOTAVAIL).
    AddrNotAvail,
    /// The server refused the connection (ECONNREFUSED).
    Refused,
    /// The connection attempt timed out (ETIMEDOUT).
    ConnectTimeout,
    /// Any other connect error.
    ConnectOther,
    /// The connection was reset (ECONNRESET, EPIPE).
    Reset,
    /// The server closed the connection before the run ended.
    Eof,
    /// Another read or write error.
    Io,
    /// A response status other than 200.
    HttpStatus,
    /// A response that could not be parsed (head, chunking, framing or JSON).
    Protocol,
    /// A subscribe refusal frame (type 401 or 429).
    Rejected,
    /// A `close` frame: the channel was closed under the subscriber.
    ChannelClosed,
    /// A message that is not one this run published to this channel.
    Foreign,
    /// Thread setup failed (private descriptor table or epoll).
    Setup,
    /// A WebSocket `101` without the upgrade headers or with the wrong
    /// `Sec-WebSocket-Accept`.
    Handshake,
    /// The server closed a WebSocket with a close frame (counted by code too).
    WsClose,
}

impl Fault {
    /// Every kind, in report order.
    pub const ALL: [Fault; 17] = [
        Fault::Socket,
        Fault::Bind,
        Fault::AddrNotAvail,
        Fault::Refused,
        Fault::ConnectTimeout,
        Fault::ConnectOther,
        Fault::Reset,
        Fault::Eof,
        Fault::Io,
        Fault::HttpStatus,
        Fault::Protocol,
        Fault::Rejected,
        Fault::ChannelClosed,
        Fault::Foreign,
        Fault::Setup,
        Fault::Handshake,
        Fault::WsClose,
    ];

    /// The name used in reports and in the JSON line.
    pub fn name(self) -> &'static str {
        match self {
            Fault::Socket => "socket",
            Fault::Bind => "bind",
            Fault::AddrNotAvail => "addr_not_avail",
            Fault::Refused => "refused",
            Fault::ConnectTimeout => "connect_timeout",
            Fault::ConnectOther => "connect_other",
            Fault::Reset => "reset",
            Fault::Eof => "eof",
            Fault::Io => "io",
            Fault::HttpStatus => "http_status",
            Fault::Protocol => "protocol",
            Fault::Rejected => "rejected",
            Fault::ChannelClosed => "channel_closed",
            Fault::Foreign => "foreign",
            Fault::Setup => "setup",
            Fault::Handshake => "ws_handshake",
            Fault::WsClose => "ws_close",
        }
    }

    /// True for errors that happen before a connection is established.
    pub fn is_connect(self) -> bool {
        matches!(
            self,
            Fault::Socket
                | Fault::Bind
                | Fault::AddrNotAvail
                | Fault::Refused
                | Fault::ConnectTimeout
                | Fault::ConnectOther
                | Fault::Setup
        )
    }

    /// Maps a connect-time errno.
    pub fn from_connect_errno(errno: i32) -> Fault {
        match errno {
            libc::ECONNREFUSED => Fault::Refused,
            libc::ETIMEDOUT => Fault::ConnectTimeout,
            libc::EADDRNOTAVAIL => Fault::AddrNotAvail,
            libc::ECONNRESET => Fault::Reset,
            _ => Fault::ConnectOther,
        }
    }

    /// Maps a read/write errno on an established connection.
    pub fn from_io_errno(errno: i32) -> Fault {
        match errno {
            libc::ECONNRESET | libc::EPIPE => Fault::Reset,
            libc::ETIMEDOUT => Fault::ConnectTimeout,
            _ => Fault::Io,
        }
    }
}

/// A counter per [`Fault`] kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultCounts([u64; Fault::ALL.len()]);

impl FaultCounts {
    /// Counts one fault.
    pub fn add(&mut self, fault: Fault) {
        self.0[fault as usize] += 1;
    }

    /// The count for one kind.
    pub fn get(&self, fault: Fault) -> u64 {
        self.0[fault as usize]
    }

    /// Adds another set of counts to this one.
    pub fn merge(&mut self, other: &FaultCounts) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a += b;
        }
    }

    /// All faults.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// Faults that happened before a connection was established.
    pub fn connect_errors(&self) -> u64 {
        Fault::ALL.iter().filter(|f| f.is_connect()).map(|&f| self.get(f)).sum()
    }

    /// Non-zero kinds with their counts, in report order.
    pub fn nonzero(&self) -> impl Iterator<Item = (Fault, u64)> + '_ {
        Fault::ALL.iter().map(|&f| (f, self.get(f))).filter(|&(_, n)| n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_match_all() {
        for (i, f) in Fault::ALL.iter().enumerate() {
            assert_eq!(*f as usize, i, "{}", f.name());
        }
        let mut c = FaultCounts::default();
        c.add(Fault::Refused);
        c.add(Fault::Reset);
        c.add(Fault::Reset);
        assert_eq!((c.total(), c.connect_errors()), (3, 1));
        assert_eq!(
            c.nonzero().collect::<Vec<_>>(),
            vec![(Fault::Refused, 1), (Fault::Reset, 2)]
        );
    }
}
