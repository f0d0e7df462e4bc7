//! One subscriber: its small per-connection state, the request it sends, and what
//! it does with each message (the icomet client rules). Long-poll clients resume
//! by seq: after `data`/`broadcast` with seq s they ask for s+1, after `next_seq`
//! n for n, and after a `noop` they re-poll with the same seq and noop+1. Each
//! delivery is checked against the run's content stamp and counted exactly once
//! per subscription (a WebSocket connection may hold several channels, see
//! `chans`; the connection's own counters are then the lowest over them).
//! No sockets here: the worker owns the descriptors and calls in.

use std::io::Write;
use std::sync::Arc;

use crate::args::{Mode, Transport};
use crate::chans::{Chan, WsLink};
use crate::fault::Fault;
use crate::frame::{self, Kind, Message, Stamp};
use crate::http::{Handler, HttpStream};
use crate::tally::Tally;
use crate::ws::{self, WsHandler};

/// What the whole run looks like, shared read-only by every connection of a thread.
#[derive(Debug, Clone)]
pub struct RunInfo {
    /// Subscriber transport.
    pub transport: Transport,
    /// Publish mode, which decides the expected message type.
    pub mode: Mode,
    /// Messages that will be published.
    pub messages: u32,
    /// Run id expected in every stamp.
    pub run: u32,
    /// Channel name prefix.
    pub prefix: String,
    /// Number of channels.
    pub channels: u32,
    /// Channels each connection holds (`--ws-channels`; 1 but for WebSocket).
    pub ws_channels: u32,
    /// One subscribe token per channel (JWT mode), or none.
    pub tokens: Arc<[String]>,
}

impl RunInfo {
    /// The channel number of connection `index` (the one in its URL).
    pub fn channel(&self, index: u32) -> u32 {
        index % self.channels
    }
}

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Nonblocking connect in progress.
    Connecting,
    /// A request is (partly) unwritten.
    Writing,
    /// Waiting for response bytes.
    Reading,
    /// Closed (failed or finished).
    Closed,
}

/// Subscriber state of one connection, apart from its response reader.
#[derive(Debug, Clone)]
pub struct Sub {
    /// Socket, -1 once closed.
    pub fd: i32,
    /// Connection number, 0..connections.
    pub index: u32,
    /// Life phase.
    pub phase: Phase,
    /// Bytes of the current request already written.
    pub write_off: u16,
    /// Subscribed and waiting for messages.
    pub ready: bool,
    /// Has seen its first frame (for long-poll: its first `next_seq`).
    pub subscribed: bool,
    /// A long-poll response ended; the next request is due.
    pub repoll_due: bool,
    /// Frames in the current long-poll response.
    frames: u8,
    /// Seq to ask for in the next long-poll request.
    pub seq: i32,
    /// Noop counter to send in the next long-poll request.
    pub noop: i32,
    /// Next message number not yet received (on every channel it holds).
    pub next_msg: u32,
    /// Distinct messages received (on every channel it holds).
    pub received: u32,
    /// When the connection was opened, µs since the run started.
    pub opened_us: u64,
}

/// A subscriber connection: state plus response reader.
#[derive(Debug)]
pub struct Conn {
    /// Subscriber state.
    pub sub: Sub,
    /// Incremental response reader (not used by WebSocket connections).
    pub reader: HttpStream,
    /// A WebSocket connection's reader, channels and output.
    pub ws: Option<Box<WsLink>>,
}

impl Conn {
    /// A new connection record for connection `index`, socket `fd`.
    pub fn new(fd: i32, index: u32, opened_us: u64) -> Conn {
        Conn {
            sub: Sub {
                fd,
                index,
                phase: Phase::Connecting,
                write_off: 0,
                ready: false,
                subscribed: false,
                repoll_due: false,
                frames: 0,
                seq: 0,
                noop: 0,
                next_msg: 0,
                received: 0,
                opened_us,
            },
            reader: HttpStream::default(),
            ws: None,
        }
    }

    /// A new connection record for the run's transport: a WebSocket one
    /// gets its [`WsLink`].
    pub fn for_run(run: &RunInfo, fd: i32, index: u32, opened_us: u64) -> Conn {
        let mut conn = Conn::new(fd, index, opened_us);
        if run.transport == Transport::Ws {
            conn.ws = Some(Box::new(WsLink::new(run.ws_channels)));
        }
        conn
    }
}

impl Sub {
    /// Writes the current subscribe request into `out` (cleared first).
    pub fn request(&self, run: &RunInfo, out: &mut Vec<u8>) {
        out.clear();
        let channel = run.channel(self.index);
        // Writing into a Vec cannot fail.
        let _ = write!(
            out,
            "GET {}?cname={}{}&seq={}",
            run.transport.path(),
            run.prefix,
            channel,
            self.seq
        );
        if run.transport.is_long_poll() {
            let _ = write!(out, "&noop={}", self.noop);
        }
        if run.transport == Transport::Jsonp {
            let _ = write!(out, "&cb=cb_{}", self.index);
        }
        if let Some(token) = run.tokens.get(channel as usize) {
            // base64url and dots: nothing to escape in a query.
            let _ = write!(out, "&token={token}");
        }
        out.extend_from_slice(b" HTTP/1.1\r\nHost: x\r\n");
        if run.transport == Transport::Ws {
            out.extend_from_slice(ws::UPGRADE_HEADERS.as_bytes());
        }
        out.extend_from_slice(b"\r\n");
    }

    /// A request was completely written. A long-poll client that already had its
    /// first response is now waiting in the server: it counts as ready.
    pub fn request_written(&mut self, run: &RunInfo, tally: &mut Tally, now_elapsed_us: u64) {
        if run.transport.is_long_poll() && self.subscribed {
            tally.repolls += 1;
            self.become_ready(tally, now_elapsed_us);
        }
    }

    fn become_ready(&mut self, tally: &mut Tally, now_elapsed_us: u64) {
        if !self.ready {
            self.ready = true;
            tally.ready += 1;
            tally.setup.record(now_elapsed_us.saturating_sub(self.opened_us));
        }
    }

    /// End of the run: counts this connection if it lacks messages.
    pub fn finish(&self, run: &RunInfo, tally: &mut Tally) {
        if self.received < run.messages {
            tally.incomplete += 1;
            let this = (self.index, self.received);
            tally.first_incomplete = Some(tally.first_incomplete.map_or(this, |f| f.min(this)));
        }
    }

    /// Counts a failure of this connection and marks it closed. The caller
    /// closes the fd. `target`: the message the publisher waits for.
    pub fn fail(&mut self, run: &RunInfo, tally: &mut Tally, fault: Fault, target: u32) {
        if self.phase == Phase::Closed {
            return;
        }
        tally.faults.add(fault);
        if self.phase != Phase::Connecting {
            tally.open -= 1;
        }
        if self.ready {
            tally.failed_ready += 1;
            tally.reach.lost(target, self.next_msg);
        } else {
            tally.failed_unready += 1;
        }
        if self.next_msg < run.messages {
            tally.failed_unfinished += 1;
        }
        self.phase = Phase::Closed;
        self.fd = -1;
    }
}

/// Handles the responses of one connection for one read: the [`Handler`] that
/// the response reader reports to.
pub struct Session<'a> {
    /// The connection's subscriber state.
    pub sub: &'a mut Sub,
    /// Run description.
    pub run: &'a RunInfo,
    /// The thread's counters.
    pub tally: &'a mut Tally,
    /// Wall-clock time of this read, µs since the UNIX epoch.
    pub now_us: u64,
    /// Time of this read, µs since the run started.
    pub elapsed_us: u64,
    /// The message the publisher waits for, read after this read returned
    /// (see `reach`).
    pub target: u32,
    /// Per-channel state when the connection holds several channels; empty
    /// when it holds one (then `sub` is that channel's state).
    pub chans: &'a mut [Chan],
}

impl Session<'_> {
    fn message(&mut self, m: Message<'_>) -> Result<(), Fault> {
        let long_poll = self.run.transport.is_long_poll();
        let Some(j) = self.run.subscription(self.sub.index, m.cname) else {
            self.tally.faults.add(Fault::Foreign);
            return Ok(());
        };
        match m.kind {
            Kind::Data | Kind::Broadcast => {
                if long_poll {
                    self.sub.seq = m.seq.wrapping_add(1);
                }
                self.delivery(j, m);
            }
            Kind::NextSeq => {
                self.tally.next_seqs += 1;
                if long_poll {
                    self.sub.seq = m.seq;
                }
            }
            Kind::Noop => {
                self.tally.noops += 1;
                self.sub.noop = m.seq.wrapping_add(1);
            }
            Kind::Close => return Err(Fault::ChannelClosed),
            Kind::Refused => return Err(Fault::Rejected),
            Kind::Other => return Err(Fault::Protocol),
        }
        self.first_frame(j);
        Ok(())
    }

    /// Subscription `j` has a frame: the first one makes it subscribed, and
    /// the connection is subscribed once all of its channels are.
    fn first_frame(&mut self, j: usize) {
        if self.sub.subscribed {
            return;
        }
        if let Some(chan) = self.chans.get_mut(j) {
            if chan.subscribed {
                return;
            }
            chan.subscribed = true;
            self.tally.subscriptions += 1;
            if !self.chans.iter().all(|c| c.subscribed) {
                return;
            }
        } else {
            self.tally.subscriptions += 1;
        }
        self.sub.subscribed = true;
        if !self.run.transport.is_long_poll() {
            self.sub.become_ready(self.tally, self.elapsed_us);
        }
    }

    /// A `data` or `broadcast` message on subscription `j`.
    fn delivery(&mut self, j: usize, m: Message<'_>) {
        let expected = match self.run.mode {
            Mode::Push => Kind::Data,
            Mode::Broadcast => Kind::Broadcast,
        };
        let stamp = match Stamp::parse(m.content) {
            Some(s) if m.kind == expected && s.run == self.run.run && s.number < self.run.messages => s,
            _ => {
                self.tally.faults.add(Fault::Foreign);
                return;
            }
        };
        let before = self.sub.next_msg;
        let (next, received) = match self.chans.get_mut(j) {
            Some(chan) => (&mut chan.next_msg, &mut chan.received),
            None => (&mut self.sub.next_msg, &mut self.sub.received),
        };
        if stamp.number < *next {
            self.tally.duplicates += 1;
            return;
        }
        self.tally.skipped += u64::from(stamp.number - *next);
        *next = stamp.number + 1;
        *received += 1;
        self.tally.deliveries += 1;
        self.tally.latency.record(self.now_us.saturating_sub(stamp.sent_us));
        if let Some(lowest) = self.chans.iter().map(|c| c.next_msg).min() {
            self.sub.next_msg = lowest;
            self.sub.received = self.chans.iter().map(|c| c.received).min().unwrap_or(0);
        }
        self.tally.reach.crossed(self.target, before, self.sub.next_msg);
        if before < self.run.messages && self.sub.next_msg == self.run.messages {
            self.tally.finished += 1;
        }
    }
}

impl Handler for Session<'_> {
    fn head(&mut self, status: u16) -> Result<(), Fault> {
        self.sub.frames = 0;
        if status == 200 {
            Ok(())
        } else {
            Err(Fault::HttpStatus)
        }
    }

    fn line(&mut self, line: &[u8]) -> Result<(), Fault> {
        let Some(payload) = frame::payload(self.run.transport, line, self.sub.index)? else {
            return Ok(());
        };
        if self.run.transport.is_long_poll() && self.sub.frames > 0 {
            return Err(Fault::Protocol); // one frame per long-poll response
        }
        self.sub.frames = self.sub.frames.saturating_add(1);
        frame::messages(payload, |m| self.message(m))
    }

    fn end(&mut self) -> Result<(), Fault> {
        if !self.run.transport.is_long_poll() {
            return Err(Fault::Eof); // a stream ended
        }
        if self.sub.frames == 0 {
            return Err(Fault::Protocol);
        }
        self.sub.repoll_due = true;
        Ok(())
    }
}

impl WsHandler for Session<'_> {
    fn upgraded(&mut self, out: &mut Vec<u8>) -> Result<(), Fault> {
        self.run.push_sub_commands(self.sub.index, out);
        Ok(())
    }

    fn text(&mut self, payload: &[u8]) -> Result<(), Fault> {
        // One message object per frame, never an array.
        if payload.first() != Some(&b'{') {
            return Err(Fault::Protocol);
        }
        frame::messages(payload, |m| self.message(m))
    }

    fn closed(&mut self, code: Option<u16>) {
        self.tally.ws_close(code);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(transport: Transport, mode: Mode, messages: u32) -> RunInfo {
        RunInfo {
            transport,
            mode,
            messages,
            run: 0xabc,
            prefix: "load".into(),
            channels: 10,
            ws_channels: 1,
            tokens: Arc::from(Vec::new()),
        }
    }

    fn chunk(body: &str) -> String {
        format!("{:x}\r\n{body}\r\n", body.len())
    }

    const HEAD: &str = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";

    /// Feeds `input` to connection 13 (channel load3) and returns its state.
    fn drive(r: &RunInfo, conn: &mut Conn, tally: &mut Tally, input: &str) -> Result<(), Fault> {
        let mut s = Session {
            sub: &mut conn.sub,
            run: r,
            tally,
            now_us: 1_000_500,
            elapsed_us: 900,
            target: 0,
            chans: &mut [],
        };
        conn.reader.feed(input.as_bytes(), &mut s)
    }

    fn stamp(m: u32) -> String {
        Stamp {
            number: m,
            sent_us: 1_000_000,
            run: 0xabc,
        }
        .encode()
    }

    #[test]
    fn requests_per_transport() {
        let mut out = Vec::new();
        let mut c = Conn::new(3, 13, 0);
        c.sub.request(&run(Transport::Jsonp, Mode::Push, 1), &mut out);
        assert_eq!(
            out,
            b"GET /sub?cname=load3&seq=0&noop=0&cb=cb_13 HTTP/1.1\r\nHost: x\r\n\r\n"
        );
        c.sub.seq = 7;
        c.sub.noop = 2;
        c.sub.request(&run(Transport::LongPoll, Mode::Push, 1), &mut out);
        assert_eq!(out, b"GET /sub?cname=load3&seq=7&noop=2 HTTP/1.1\r\nHost: x\r\n\r\n");
        c.sub.seq = 0;
        c.sub.request(&run(Transport::Sse, Mode::Push, 1), &mut out);
        assert_eq!(out, b"GET /sse?cname=load3&seq=0 HTTP/1.1\r\nHost: x\r\n\r\n");
        c.sub.request(&run(Transport::Iframe, Mode::Push, 1), &mut out);
        assert!(out.starts_with(b"GET /iframe?cname=load3&seq=0 "));
    }

    #[test]
    fn long_poll_seq_resume() {
        let r = run(Transport::Jsonp, Mode::Broadcast, 3);
        let mut c = Conn::new(3, 13, 100);
        let mut t = Tally::default();
        let first = format!(
            "{HEAD}{}0\r\n\r\n",
            chunk("cb_13({\"type\":\"next_seq\",\"cname\":\"load3\",\"seq\":5,\"content\":\"\"});\n")
        );
        drive(&r, &mut c, &mut t, &first).expect("next_seq");
        assert!(c.sub.repoll_due && c.sub.subscribed && !c.sub.ready);
        assert_eq!(c.sub.seq, 5);
        c.sub.repoll_due = false;
        c.sub.request_written(&r, &mut t, 900);
        assert!(c.sub.ready);
        assert_eq!((t.ready, t.setup.count()), (1, 1));

        // A broadcast pair, then a replay of two after a missed re-poll, then a noop.
        let pair = format!(
            "cb_13([{{\"type\":\"broadcast\",\"cname\":\"load3\",\"seq\":5,\"content\":\"{}\"}},{{\"type\":\"next_seq\",\"cname\":\"load3\",\"seq\":6,\"content\":\"\"}}]);\n",
            stamp(0)
        );
        drive(&r, &mut c, &mut t, &format!("{HEAD}{}0\r\n\r\n", chunk(&pair))).expect("pair");
        assert_eq!((c.sub.seq, c.sub.received, t.deliveries), (6, 1, 1));
        let replay = format!(
            "cb_13([{{\"type\":\"broadcast\",\"cname\":\"load3\",\"seq\":6,\"content\":\"{}\"}},{{\"type\":\"next_seq\",\"cname\":\"load3\",\"seq\":7,\"content\":\"\"}},{{\"type\":\"broadcast\",\"cname\":\"load3\",\"seq\":7,\"content\":\"{}\"}},{{\"type\":\"next_seq\",\"cname\":\"load3\",\"seq\":8,\"content\":\"\"}}]);\n",
            stamp(1),
            stamp(2)
        );
        drive(&r, &mut c, &mut t, &format!("{HEAD}{}0\r\n\r\n", chunk(&replay))).expect("replay");
        assert_eq!((c.sub.seq, c.sub.received, t.finished, t.skipped), (8, 3, 1, 0));
        let noop = "cb_13({\"type\":\"noop\",\"cname\":\"load3\",\"seq\":4,\"content\":\"\"});\n";
        drive(&r, &mut c, &mut t, &format!("{HEAD}{}0\r\n\r\n", chunk(noop))).expect("noop");
        assert_eq!((c.sub.seq, c.sub.noop, t.noops), (8, 5, 1));
        assert_eq!(t.latency.count(), 3);
        assert_eq!(t.latency.percentile(50.0), 500);
        assert_eq!(t.faults.total(), 0);
    }

    #[test]
    fn duplicates_foreign_and_refusals() {
        let r = run(Transport::Stream, Mode::Push, 2);
        let mut c = Conn::new(3, 13, 0);
        let mut t = Tally::default();
        let data = |seq: i32, cname: &str, content: &str| {
            chunk(&format!(
                "{{\"type\":\"data\",\"cname\":\"{cname}\",\"seq\":{seq},\"content\":\"{content}\"}}\n"
            ))
        };
        let input = format!(
            "{HEAD}{}{}{}{}{}",
            chunk("{\"type\":\"next_seq\",\"cname\":\"load3\",\"seq\":1,\"content\":\"\"}\n"),
            data(1, "load3", &stamp(0)),
            data(2, "load3", &stamp(0)),
            data(3, "load33", &stamp(1)),
            data(4, "load3", "hello"),
        );
        drive(&r, &mut c, &mut t, &input).expect("stream");
        assert!(c.sub.ready, "stream is ready after its first frame");
        assert_eq!((t.deliveries, t.duplicates, t.faults.get(Fault::Foreign)), (1, 1, 2));
        let refused = chunk("{\"type\":\"429\",\"cname\":\"load3\",\"seq\":0,\"content\":\"Too many subscribers\"}\n");
        assert_eq!(drive(&r, &mut c, &mut t, &refused), Err(Fault::Rejected));
    }

    #[test]
    fn gaps_are_counted_as_skipped() {
        let r = run(Transport::Stream, Mode::Push, 5);
        let mut c = Conn::new(3, 13, 0);
        let mut t = Tally::default();
        let mut input = String::from(HEAD);
        for m in [0, 3, 4] {
            let msg = format!(
                "{{\"type\":\"data\",\"cname\":\"load3\",\"seq\":{m},\"content\":\"{}\"}}\n",
                stamp(m)
            );
            input.push_str(&chunk(&msg));
        }
        drive(&r, &mut c, &mut t, &input).expect("stream");
        assert_eq!((c.sub.received, t.deliveries, t.skipped, t.finished), (3, 3, 2, 1));
        c.sub.finish(&r, &mut t);
        assert_eq!((t.incomplete, t.first_incomplete), (1, Some((13, 3))));
    }

    #[test]
    fn long_poll_protocol_errors() {
        let r = run(Transport::LongPoll, Mode::Push, 1);
        let mut t = Tally::default();
        let two = format!(
            "{HEAD}{}0\r\n\r\n",
            chunk("{\"type\":\"next_seq\",\"cname\":\"load3\",\"seq\":1,\"content\":\"\"}\n{\"type\":\"noop\",\"cname\":\"load3\",\"seq\":1,\"content\":\"\"}\n")
        );
        assert_eq!(drive(&r, &mut Conn::new(3, 13, 0), &mut t, &two), Err(Fault::Protocol));
        let empty = format!("{HEAD}0\r\n\r\n");
        assert_eq!(
            drive(&r, &mut Conn::new(3, 13, 0), &mut t, &empty),
            Err(Fault::Protocol)
        );
        let status = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(
            drive(&r, &mut Conn::new(3, 13, 0), &mut t, status),
            Err(Fault::HttpStatus)
        );
    }

    #[test]
    fn deliveries_count_toward_the_publishers_target() {
        let r = run(Transport::Stream, Mode::Push, 2);
        let mut c = Conn::new(3, 13, 0);
        let mut t = Tally::default();
        let data = |m: u32| {
            chunk(&format!(
                "{{\"type\":\"data\",\"cname\":\"load3\",\"seq\":{m},\"content\":\"{}\"}}\n",
                stamp(m)
            ))
        };
        let next_seq = chunk("{\"type\":\"next_seq\",\"cname\":\"load3\",\"seq\":1,\"content\":\"\"}\n");
        // drive() reads with target 0: message 0 counts, its duplicate does not.
        drive(&r, &mut c, &mut t, &format!("{HEAD}{next_seq}{}{}", data(0), data(0))).expect("stream");
        assert_eq!(crate::reach::Reach::count_in(t.reach.pack(), 0), 1);
        assert_eq!((t.deliveries, t.duplicates), (1, 1));
        // The connection fails: it no longer counts, and it counts as a ready
        // one that failed.
        c.sub.fail(&r, &mut t, Fault::Reset, 0);
        assert_eq!(crate::reach::Reach::count_in(t.reach.pack(), 0), 0);
        assert_eq!((t.failed_ready, t.failed_unready, t.failed_unfinished), (1, 0, 1));
        // One that fails before it is ready is not in failed_ready.
        let mut d = Conn::new(4, 14, 0);
        d.sub.fail(&r, &mut t, Fault::Refused, 0);
        assert_eq!((t.failed_ready, t.failed_unready), (1, 1));
    }

    #[test]
    fn channel_names() {
        let r = run(Transport::Stream, Mode::Push, 1);
        assert_eq!(r.subscription(10, b"load0"), Some(0));
        assert_eq!(r.subscription(13, b"load03"), None);
        assert_eq!(r.subscription(0, b"load"), None);
        assert_eq!(r.subscription(13, b"xload3"), None);
        let wide = RunInfo {
            channels: u32::MAX,
            ..r
        };
        assert_eq!(wide.subscription(u32::MAX - 1, b"load4294967294"), Some(0));
    }
}

#[cfg(test)]
#[path = "conn_ws_tests.rs"]
mod ws_tests;
