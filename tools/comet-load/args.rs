//! Command line of `comet-load`: parsed by hand from `std::env::args`, validated,
//! and resolved into a plan (thread count, source addresses) that the rest of the
//! tool only reads. This module refuses every front or admin address outside
//! 127.0.0.0/8: the tool is for loopback load only. It performs no I/O.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};

/// Most connections one thread (one private descriptor table) is given, so that a
/// table stays under the hard limit of 20,000 descriptors with room to spare.
pub const MAX_PER_THREAD: u32 = 19_000;

/// Connections per (source address, destination) pair when `--source-ips` is left
/// to `auto`. connect() picks even ports first and only then odd ones, so once
/// the ~14,000 even ports of the default range (32768-60999) are used up, every
/// further connect scans them all: measured here, the connect rate fell from
/// 20,000/s to about 1,000/s at 14,000 connections per pair. Stay below that.
pub const AUTO_PER_SOURCE: u32 = 12_000;

/// Longest accepted channel name prefix.
const MAX_PREFIX: usize = 64;

/// Upper bound on `--connections`, a guard against typos.
const MAX_CONNECTIONS: u32 = 10_000_000;

/// The usage text printed by `--help`.
pub const HELP: &str = "\
comet-load: subscriber load generator for comet / icomet (loopback only)

Opens N subscriber connections at a given rate, waits until every one is
subscribed, publishes M messages through the admin API, and checks that every
subscriber received every message exactly once. Reports connect time, errors
by kind and the publish-to-receive latency. Exit status: 0 when nothing went
wrong, 1 when anything was missing, duplicated or failed, 2 on bad usage.

USAGE: comet-load [OPTIONS]

  --front HOST:PORT      front (subscriber) listener; repeat to spread the
                         connections round-robin [default: 127.0.0.1:8100]
  --admin HOST:PORT      admin (publish) listener [default: 127.0.0.1:8000]
                         Both must be in 127.0.0.0/8 (or `localhost`).
  --connections N        subscriber connections to open [default: 1000]
  --rate N               new connections per second, overall [default: 5000]
  --max-pending N        at most N connections opened but not yet subscribed, over
                         all threads; opening waits (the rate is a ceiling) so
                         that a server that falls behind is not driven into SYN
                         backlog overflow [default: 0 = no limit]
  --channels N           channels, subscribers spread round-robin [default: 10]
  --prefix TEXT          channel names are TEXT0 .. TEXT(N-1) [default: load]
                         (letters, digits, `_`, `-`, `.`; at most 64)
  --transport T          longpoll | jsonp | stream | sse | iframe [default: stream]
                           longpoll: /sub, one frame per response, re-polls with seq
                           jsonp:    /sub with cb=cb_<n>, same re-polling
                           stream:   /stream, one JSON message per line
                           sse:      /sse, one `data:` line per event
                           iframe:   /iframe, <script>parent.icomet_cb(..);</script>
  --threads N            worker threads, each with a private descriptor table
                         [default: enough for at most 19000 connections each, min 2]
  --nap-us N             once a thread has opened all its connections, after a
                         loop turn that handled some events but not a full
                         batch, it sleeps N µs before it waits again,
                         so that arrivals pile up on its ready list instead of
                         each one waking it: on cores shared with the server a
                         broadcast then costs the sender far fewer wakeups.
                         Adds at most N µs to a measured latency, never
                         subtracts [default: 0 = wait at once, max 100000]
  --source-ips N|auto    bind connections to 127.0.0.2 .. 127.0.0.(N+1) to get past
                         the ephemeral ports per source/destination pair (~28k,
                         and connect() slows down past the ~14k even ones);
                         0 = let the kernel pick [default: auto = 0 up to 12000
                         connections per front, else one address per 12000]
  --messages N           messages to publish once all are subscribed [default: 1]
  --mode push|broadcast  push: each message is sent with /push to EVERY channel;
                         broadcast: one /broadcast per message [default: push]
  --interval-ms N        pause between messages [default: 1000]
  --duration-secs N      hard cap on the whole run [default: 120]
  --stall-secs N         once publishing is done, give up after N seconds without
                         a new delivery [default: 10]
  --hold-secs N          keep the connections open N seconds after the last
                         delivery (still bounded by --duration-secs) [default: 0]
  --json                 print only the final JSON line on stdout
  --help                 this text

Server memory: when the admin's /stats answers with an rss_bytes field (comet
does), the server's RSS is sampled three times with nothing in flight: once
every subscriber is ready and before anything is published, after the first
message has reached every subscriber, and after the last one has (publishing
waits for each; a wait gives up after --stall-secs without progress). They
are the JSON's server_rss_ready, server_rss_after_first and
server_rss_after_last, in bytes (null when the server does not say, or a
wait gave up; server_rss_note says why), and each is announced on stderr as
`comet-load: sampled KEY=BYTES` or `comet-load: sampled KEY=null (why)`.

Long-poll clients re-poll with the next seq they want; what was published in
between is replayed from the channel's history (channel_buffer_size, default
10). With a short --interval-ms and more messages than that, a long-poll client
can fall out of the history: those messages count as missing (and `skipped`).

Progress goes to stderr once a second. The last stdout line is always one JSON
object starting with {\"comet_load\":1, for scripts.
";

/// Subscriber transport: which front endpoint and framing the connections use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `/sub` without `cb`: one JSON frame per response, then re-poll.
    LongPoll,
    /// `/sub` with `cb=cb_<n>`: one JSONP-wrapped frame per response, then re-poll.
    Jsonp,
    /// `/stream`: one JSON message per line, never ends.
    Stream,
    /// `/sse`: one `data:` line per event, never ends.
    Sse,
    /// `/iframe`: HTML prologue, then one `<script>` call per message.
    Iframe,
}

impl Transport {
    /// True for the transports that end each response after one frame.
    pub fn is_long_poll(self) -> bool {
        matches!(self, Transport::LongPoll | Transport::Jsonp)
    }

    /// The front path this transport subscribes on.
    pub fn path(self) -> &'static str {
        match self {
            Transport::LongPoll | Transport::Jsonp => "/sub",
            Transport::Stream => "/stream",
            Transport::Sse => "/sse",
            Transport::Iframe => "/iframe",
        }
    }

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Transport::LongPoll => "longpoll",
            Transport::Jsonp => "jsonp",
            Transport::Stream => "stream",
            Transport::Sse => "sse",
            Transport::Iframe => "iframe",
        }
    }
}

/// How messages are published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `/push?cname=C` once per channel per message.
    Push,
    /// `/broadcast` once per message.
    Broadcast,
}

impl Mode {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Push => "push",
            Mode::Broadcast => "broadcast",
        }
    }
}

/// A validated, fully resolved run plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    /// Front listeners; connection `i` goes to `fronts[i % len]`.
    pub fronts: Vec<SocketAddrV4>,
    /// Admin listener used for publishing.
    pub admin: SocketAddrV4,
    /// Subscriber connections to open.
    pub connections: u32,
    /// New connections per second, overall.
    pub rate: u32,
    /// Connections opened but not yet subscribed, over all threads (0: no limit).
    pub max_pending: u32,
    /// Channels; connection `i` subscribes to channel `i % channels`.
    pub channels: u32,
    /// Channel name prefix.
    pub prefix: String,
    /// Subscriber transport.
    pub transport: Transport,
    /// Worker threads (resolved from the default when not given).
    pub threads: u32,
    /// Source addresses to bind, from 127.0.0.2 up; 0 means no bind.
    pub source_ips: u32,
    /// Sleep after a loop turn with a partial batch of events, µs (0: none).
    pub nap_us: u32,
    /// Messages to publish.
    pub messages: u32,
    /// Publish mode.
    pub mode: Mode,
    /// Pause between messages, in milliseconds.
    pub interval_ms: u64,
    /// Hard cap on the whole run, in seconds.
    pub duration_secs: u64,
    /// Give up this long after the last delivery once publishing is done.
    pub stall_secs: u64,
    /// Keep connections open this long after the last delivery.
    pub hold_secs: u64,
    /// Print only the JSON line on stdout.
    pub json: bool,
}

/// Why the command line was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgsError {
    /// `--help` was asked for (exit 0 after printing [`HELP`]).
    Help,
    /// A usage error, with a one-line reason (exit 2).
    Usage(String),
}

impl fmt::Display for ArgsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArgsError::Help => f.write_str("help requested"),
            ArgsError::Usage(reason) => f.write_str(reason),
        }
    }
}

fn usage(reason: impl Into<String>) -> ArgsError {
    ArgsError::Usage(reason.into())
}

impl Args {
    /// The `i`-th source address (127.0.0.2 + i), used when `source_ips > 0`.
    pub fn source_ip(index: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 0, 0, 2)) + index)
    }

    /// Parses the arguments after the program name.
    pub fn parse<I: IntoIterator<Item = String>>(argv: I) -> Result<Args, ArgsError> {
        let mut fronts = Vec::new();
        let mut admin = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8000);
        let mut connections = 1000;
        let mut rate = 5000;
        let mut max_pending = 0;
        let mut channels = 10;
        let mut prefix = String::from("load");
        let mut transport = Transport::Stream;
        let mut threads = None;
        let mut source_ips = None;
        let mut nap_us = 0;
        let mut messages = 1;
        let mut mode = Mode::Push;
        let mut interval_ms = 1000;
        let mut duration_secs = 120;
        let mut stall_secs = 10;
        let mut hold_secs = 0;
        let mut json = false;

        let mut it = argv.into_iter();
        while let Some(arg) = it.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
                _ => (arg.clone(), None),
            };
            let mut value = |name: &str| -> Result<String, ArgsError> {
                match inline.clone().or_else(|| it.next()) {
                    Some(v) => Ok(v),
                    None => Err(usage(format!("{name} needs a value"))),
                }
            };
            match flag.as_str() {
                "--help" | "-h" => return Err(ArgsError::Help),
                "--json" => json = true,
                "--front" => fronts.push(loopback(&flag, &value(&flag)?)?),
                "--admin" => admin = loopback(&flag, &value(&flag)?)?,
                "--connections" => connections = number(&flag, &value(&flag)?, 1, MAX_CONNECTIONS)?,
                "--rate" => rate = number(&flag, &value(&flag)?, 1, u32::MAX)?,
                "--max-pending" => max_pending = number(&flag, &value(&flag)?, 0, MAX_CONNECTIONS)?,
                "--channels" => channels = number(&flag, &value(&flag)?, 1, MAX_CONNECTIONS)?,
                "--prefix" => prefix = channel_prefix(&value(&flag)?)?,
                "--transport" => transport = parse_transport(&value(&flag)?)?,
                "--threads" => threads = Some(number(&flag, &value(&flag)?, 1, 4096)?),
                "--source-ips" => {
                    let v = value(&flag)?;
                    source_ips = if v == "auto" {
                        None
                    } else {
                        Some(number(&flag, &v, 0, 1 << 20)?)
                    };
                }
                "--nap-us" => nap_us = number(&flag, &value(&flag)?, 0, 100_000)?,
                "--messages" => messages = number(&flag, &value(&flag)?, 0, 1_000_000)?,
                "--mode" => mode = parse_mode(&value(&flag)?)?,
                "--interval-ms" => interval_ms = number(&flag, &value(&flag)?, 0, 3_600_000)?.into(),
                "--duration-secs" => duration_secs = number(&flag, &value(&flag)?, 1, 86_400)?.into(),
                "--stall-secs" => stall_secs = number(&flag, &value(&flag)?, 1, 86_400)?.into(),
                "--hold-secs" => hold_secs = number(&flag, &value(&flag)?, 0, 86_400)?.into(),
                other => return Err(usage(format!("unknown argument `{other}` (see --help)"))),
            }
            if inline.is_some() && matches!(flag.as_str(), "--help" | "-h" | "--json") {
                return Err(usage(format!("{flag} takes no value")));
            }
        }
        if fronts.is_empty() {
            fronts.push(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8100));
        }

        let opening_secs = u64::from(connections).div_ceil(u64::from(rate));
        if opening_secs >= duration_secs {
            return Err(usage(format!(
                "{connections} connections at --rate {rate} take {opening_secs} s to open, \
                 not less than --duration-secs {duration_secs}"
            )));
        }
        let needed = connections.div_ceil(MAX_PER_THREAD);
        let threads = match threads {
            Some(t) if t < needed => {
                return Err(usage(format!(
                    "--threads {t} is too few for {connections} connections: each thread holds at most {MAX_PER_THREAD} (need {needed})"
                )))
            }
            Some(t) => t,
            None => needed.max(2),
        };
        let fronts_len = u32::try_from(fronts.len()).unwrap_or(u32::MAX);
        let per_front = connections.div_ceil(fronts_len);
        let source_ips = match source_ips {
            Some(n) => n,
            None if per_front <= AUTO_PER_SOURCE => 0,
            None => per_front.div_ceil(AUTO_PER_SOURCE),
        };
        Ok(Args {
            fronts,
            admin,
            connections,
            rate,
            max_pending,
            channels,
            prefix,
            transport,
            threads,
            source_ips,
            nap_us,
            messages,
            mode,
            interval_ms,
            duration_secs,
            stall_secs,
            hold_secs,
            json,
        })
    }
}

/// Parses `HOST:PORT` and refuses anything outside 127.0.0.0/8.
fn loopback(flag: &str, text: &str) -> Result<SocketAddrV4, ArgsError> {
    let (host, port) = text
        .rsplit_once(':')
        .ok_or_else(|| usage(format!("{flag} {text}: expected HOST:PORT")))?;
    let port: u16 = port
        .parse()
        .map_err(|_| usage(format!("{flag} {text}: bad port `{port}`")))?;
    let ip = if host.eq_ignore_ascii_case("localhost") {
        Ipv4Addr::LOCALHOST
    } else {
        host.parse::<Ipv4Addr>()
            .map_err(|_| usage(format!("{flag} {text}: HOST must be an IPv4 address in 127.0.0.0/8")))?
    };
    if ip.octets()[0] != 127 {
        return Err(usage(format!(
            "{flag} {text}: refused, comet-load only targets 127.0.0.0/8 (loopback)"
        )));
    }
    if port == 0 {
        return Err(usage(format!("{flag} {text}: port 0")));
    }
    Ok(SocketAddrV4::new(ip, port))
}

fn number(flag: &str, text: &str, min: u32, max: u32) -> Result<u32, ArgsError> {
    let n: u64 = text
        .trim()
        .parse()
        .map_err(|_| usage(format!("{flag} {text}: not a number")))?;
    if n < u64::from(min) || n > u64::from(max) {
        return Err(usage(format!("{flag} {text}: must be between {min} and {max}")));
    }
    Ok(n as u32)
}

fn channel_prefix(text: &str) -> Result<String, ArgsError> {
    let ok = text.len() <= MAX_PREFIX
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(text.to_string())
    } else {
        Err(usage(format!(
            "--prefix {text}: use at most {MAX_PREFIX} letters, digits, `_`, `-` or `.`"
        )))
    }
}

fn parse_transport(text: &str) -> Result<Transport, ArgsError> {
    Ok(match text {
        "longpoll" | "sub" | "poll" => Transport::LongPoll,
        "jsonp" => Transport::Jsonp,
        "stream" => Transport::Stream,
        "sse" => Transport::Sse,
        "iframe" => Transport::Iframe,
        _ => {
            return Err(usage(format!(
                "--transport {text}: expected longpoll|jsonp|stream|sse|iframe"
            )))
        }
    })
}

fn parse_mode(text: &str) -> Result<Mode, ArgsError> {
    match text {
        "push" => Ok(Mode::Push),
        "broadcast" => Ok(Mode::Broadcast),
        _ => Err(usage(format!("--mode {text}: expected push|broadcast"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Args, ArgsError> {
        Args::parse(line.split_whitespace().map(String::from))
    }

    fn refused(line: &str) -> String {
        match parse(line) {
            Err(ArgsError::Usage(reason)) => reason,
            other => panic!("{line}: expected a usage error, got {other:?}"),
        }
    }

    #[test]
    fn defaults() {
        let a = parse("").expect("defaults parse");
        assert_eq!(a.fronts, vec!["127.0.0.1:8100".parse().expect("addr")]);
        assert_eq!(a.admin, "127.0.0.1:8000".parse().expect("addr"));
        assert_eq!(a.connections, 1000);
        assert_eq!(a.threads, 2);
        assert_eq!(a.source_ips, 0);
        assert_eq!(a.prefix, "load");
        assert_eq!(a.transport, Transport::Stream);
        assert_eq!(a.mode, Mode::Push);
        assert_eq!(a.duration_secs, 120);
        assert_eq!(a.hold_secs, 0);
        assert_eq!(a.max_pending, 0);
        assert_eq!(a.nap_us, 0);
        assert!(!a.json);
    }

    #[test]
    fn every_flag() {
        let a = parse(
            "--front 127.0.0.1:9000 --front=127.1.2.3:9001 --admin localhost:9100 --connections 50000 \
             --rate 20000 --max-pending 300 --channels 7 --prefix ch_ --transport jsonp --threads 4 --source-ips 3 \
             --nap-us 2000 --messages 5 --mode broadcast --interval-ms 10 --duration-secs 30 --stall-secs 4 \
             --hold-secs 2 --json",
        )
        .expect("parses");
        assert_eq!(a.fronts.len(), 2);
        assert_eq!(a.fronts[1], "127.1.2.3:9001".parse().expect("addr"));
        assert_eq!(a.admin, "127.0.0.1:9100".parse().expect("addr"));
        assert_eq!((a.connections, a.rate, a.channels), (50_000, 20_000, 7));
        assert_eq!(a.max_pending, 300);
        assert_eq!(a.nap_us, 2000);
        assert_eq!(a.prefix, "ch_");
        assert_eq!(a.transport, Transport::Jsonp);
        assert_eq!((a.threads, a.source_ips, a.messages), (4, 3, 5));
        assert_eq!(a.mode, Mode::Broadcast);
        assert_eq!(
            (a.interval_ms, a.duration_secs, a.stall_secs, a.hold_secs),
            (10, 30, 4, 2)
        );
        assert!(a.json);
    }

    #[test]
    fn refuses_addresses_outside_loopback() {
        for line in [
            "--front 10.0.0.1:8100",
            "--front 0.0.0.0:8100",
            "--front 128.0.0.1:8100",
            "--admin 192.168.1.1:8000",
            "--admin example.com:8000",
            "--front [::1]:8100",
            "--front 127.0.0.1:8100 --front 8.8.8.8:80",
        ] {
            let reason = refused(line);
            assert!(reason.contains("127.0.0.0/8"), "{line}: {reason}");
        }
        assert!(parse("--front 127.255.255.254:1 --admin 127.0.0.9:2").is_ok());
    }

    #[test]
    fn refuses_bad_values() {
        refused("--connections 0");
        refused("--connections abc");
        refused("--rate");
        refused("--nap-us 100001");
        refused("--transport websocket");
        refused("--mode pub");
        refused("--prefix a/b");
        refused("--front 127.0.0.1");
        refused("--front 127.0.0.1:0");
        refused("--bogus 1");
        refused("--json=1");
        assert!(refused("--connections 40000 --threads 2").contains("too few"));
        assert!(refused("--connections 1000 --rate 10 --duration-secs 100").contains("to open"));
        assert!(parse("--connections 1000 --rate 10 --duration-secs 101").is_ok());
        assert_eq!(parse("--help"), Err(ArgsError::Help));
    }

    #[test]
    fn resolves_threads_and_source_ips() {
        let a = parse("--connections 1000000 --rate 20000").expect("parses");
        assert_eq!(a.threads, 53);
        assert_eq!(a.source_ips, 84);
        let a = parse("--connections 1000000 --rate 20000 --front 127.0.0.1:1 --front 127.0.0.1:2").expect("parses");
        assert_eq!(a.source_ips, 42);
        let a = parse("--connections 12000").expect("parses");
        assert_eq!(a.source_ips, 0);
        let a = parse("--connections 30000 --rate 1000 --source-ips 0").expect("parses");
        assert_eq!((a.threads, a.source_ips), (2, 0));
        assert_eq!(Args::source_ip(0), Ipv4Addr::new(127, 0, 0, 2));
        assert_eq!(Args::source_ip(254), Ipv4Addr::new(127, 0, 1, 0));
    }
}
