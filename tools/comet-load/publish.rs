//! The publisher: sends the run's messages through the admin API on one plain
//! blocking keep-alive `TcpStream`, `/push?cname=C&content=...` to every channel
//! (pipelined a window at a time) or one `/broadcast?content=...` per message.
//! Each request carries its own send-time stamp (see `frame::Stamp`). Runs on
//! its own thread in the process's shared descriptor table; touches no
//! subscriber state, only the shared stop flag, the target message and its
//! own counters.
//!
//! It also samples the server's memory (admin `/stats`, see `server_rss`)
//! while nothing is in flight: first, before it publishes anything; then
//! after the first and after the last message, each time waiting until that
//! message has reached every live subscriber (`reach`) before it samples and
//! before it publishes the next one. After each sample it writes one line,
//! `comet-load: sampled server_rss_<point>=<bytes, or null (why)>`, on stderr, so a
//! script can wait for the last one before it publishes anything of its own.
//! It holds no admin connection while it waits or pauses.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::args::{Args, Mode};
use crate::fault::Fault;
use crate::frame::Stamp;
use crate::http::{Handler, HttpStream};
use crate::live::{unix_us, Shared};
use crate::reach::{all_reached, points_after, Point, NO_TARGET};
use crate::server_rss::{parse_rss, ServerRss};

/// Requests written before their responses are read.
const WINDOW: u32 = 32;
/// Admin connect, read and write timeout.
const TIMEOUT: Duration = Duration::from_secs(10);

/// What the publisher did.
#[derive(Debug, Clone, Default)]
pub struct PublishReport {
    /// Messages sent without any failed request.
    pub published: u32,
    /// Requests answered with 200.
    pub requests_ok: u64,
    /// Requests that failed (I/O error or a status other than 200).
    pub errors: u64,
    /// The first failure, for the summary.
    pub first_error: Option<String>,
    /// Time spent publishing (waits for the samples included), seconds.
    pub secs: f64,
    /// The server's memory samples.
    pub rss: ServerRss,
}

/// Counts the admin responses of one window.
#[derive(Default)]
struct Acks {
    ended: u32,
    status: u16,
    bad: u32,
    first_bad: Option<u16>,
}

impl Handler for Acks {
    fn head(&mut self, status: u16) -> Result<(), Fault> {
        self.status = status;
        Ok(())
    }
    fn line(&mut self, _line: &[u8]) -> Result<(), Fault> {
        Ok(())
    }
    fn end(&mut self) -> Result<(), Fault> {
        self.ended += 1;
        if self.status != 200 {
            self.bad += 1;
            self.first_bad.get_or_insert(self.status);
        }
        Ok(())
    }
}

/// Keeps the status and body of one admin response.
#[derive(Default)]
struct Body {
    status: u16,
    text: String,
    ended: bool,
}

impl Handler for Body {
    fn head(&mut self, status: u16) -> Result<(), Fault> {
        self.status = status;
        Ok(())
    }
    fn line(&mut self, line: &[u8]) -> Result<(), Fault> {
        self.text.push_str(&String::from_utf8_lossy(line));
        self.text.push('\n');
        Ok(())
    }
    fn end(&mut self) -> Result<(), Fault> {
        self.ended = true;
        Ok(())
    }
}

struct Admin {
    stream: TcpStream,
    reader: HttpStream,
    buf: Vec<u8>,
}

impl Admin {
    fn connect(args: &Args) -> io::Result<Admin> {
        let stream = TcpStream::connect_timeout(&args.admin.into(), TIMEOUT)?;
        stream.set_read_timeout(Some(TIMEOUT))?;
        stream.set_write_timeout(Some(TIMEOUT))?;
        stream.set_nodelay(true)?;
        Ok(Admin {
            stream,
            reader: HttpStream::default(),
            buf: vec![0; 16 * 1024],
        })
    }

    /// Writes the requests, then reads as many responses; returns the non-200 count.
    fn exchange(&mut self, requests: &[u8], count: u32) -> io::Result<(u32, Option<u16>)> {
        self.stream.write_all(requests)?;
        let mut acks = Acks::default();
        while acks.ended < count {
            let n = self.stream.read(&mut self.buf)?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "admin closed the connection",
                ));
            }
            self.reader.feed(&self.buf[..n], &mut acks).map_err(|f| {
                io::Error::new(io::ErrorKind::InvalidData, format!("bad admin response ({})", f.name()))
            })?;
        }
        Ok((acks.bad, acks.first_bad))
    }

    /// `GET path`; the status and the body.
    fn get(&mut self, path: &str) -> io::Result<(u16, String)> {
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
        self.stream.write_all(request.as_bytes())?;
        let mut body = Body::default();
        while !body.ended {
            let n = self.stream.read(&mut self.buf)?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "admin closed the connection",
                ));
            }
            self.reader.feed(&self.buf[..n], &mut body).map_err(|f| {
                io::Error::new(io::ErrorKind::InvalidData, format!("bad admin response ({})", f.name()))
            })?;
        }
        Ok((body.status, body.text))
    }
}

/// The server's resident size from its `/stats`, or why there is none.
fn sample_rss(admin: &mut Option<Admin>, args: &Args) -> Result<u64, String> {
    let result = match admin.as_mut() {
        Some(a) => a.get("/stats"),
        None => Admin::connect(args).and_then(|a| admin.insert(a).get("/stats")),
    };
    match result {
        Ok((200, body)) => parse_rss(&body).map_err(|e| e.to_string()),
        Ok((status, _)) => Err(format!("/stats answered HTTP {status}")),
        Err(e) => {
            *admin = None;
            Err(format!("/stats: {e}"))
        }
    }
}

/// Waits until message `number` has reached every live subscriber. Gives up
/// after `stall` without a new subscriber getting it, or when stopped.
fn wait_reached(shared: &Shared, number: u32, stall: Duration) -> Result<(), String> {
    let mut best = (0, Instant::now());
    loop {
        let reached = shared.reached(number);
        let snap = shared.snapshot();
        if all_reached(reached, snap.ready, snap.failed_ready) {
            return Ok(());
        }
        let alive = snap.ready.saturating_sub(snap.failed_ready);
        if reached > best.0 {
            best = (reached, Instant::now());
        } else if best.1.elapsed() >= stall {
            return Err(format!(
                "message {number} reached {reached} of {alive} live subscribers, none more for {} s",
                stall.as_secs()
            ));
        }
        if shared.stop.load(Ordering::Relaxed) {
            return Err(format!(
                "stopped while message {number} had reached {reached} of {alive}"
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Records a sample and tells a watching script about it (see the module doc).
fn record(report: &mut PublishReport, point: Point, sample: Result<u64, String>) {
    let shown = match &sample {
        Ok(v) => v.to_string(),
        Err(why) => format!("null ({why})"),
    };
    eprintln!("comet-load: sampled {}={shown}", point.key());
    report.rss.set(point, sample);
}

/// Percent-encodes everything but unreserved characters.
pub fn urlencode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Publishes `args.messages` messages, `args.interval_ms` apart, until done or
/// stopped. `published` is raised after each completed message.
pub fn run(args: &Args, run_id: u32, shared: &Shared, published: &AtomicU32) -> PublishReport {
    let started = Instant::now();
    let mut report = PublishReport::default();
    let mut admin: Option<Admin> = None;
    let mut requests = Vec::with_capacity(WINDOW as usize * 128);
    let targets = match args.mode {
        Mode::Push => args.channels,
        Mode::Broadcast => 1,
    };
    let ready = sample_rss(&mut admin, args);
    record(&mut report, Point::Ready, ready);
    for number in 0..args.messages {
        if number > 0 {
            // No idle admin connection while waiting: a server that serves
            // one admin connection at a time (the C floor) would answer
            // nobody else meanwhile.
            admin = None;
            if !pause(shared, Duration::from_millis(args.interval_ms)) {
                break;
            }
        }
        if shared.stop.load(Ordering::Relaxed) {
            break;
        }
        let points = points_after(number, args.messages);
        if !points.is_empty() {
            shared.target.store(number, Ordering::SeqCst);
        }
        let mut failed = 0u64;
        let mut next = 0;
        while next < targets {
            let count = WINDOW.min(targets - next);
            requests.clear();
            for channel in next..next + count {
                let stamp = Stamp {
                    number,
                    sent_us: unix_us(),
                    run: run_id,
                };
                let content = urlencode(&stamp.encode());
                let _ = match args.mode {
                    Mode::Push => write!(requests, "GET /push?cname={}{channel}&content={content}", args.prefix),
                    Mode::Broadcast => write!(requests, "GET /broadcast?content={content}"),
                };
                requests.extend_from_slice(b" HTTP/1.1\r\nHost: x\r\n\r\n");
            }
            next += count;
            let result = match admin.as_mut() {
                Some(a) => a.exchange(&requests, count),
                None => Admin::connect(args).and_then(|a| admin.insert(a).exchange(&requests, count)),
            };
            match result {
                Ok((bad, first_bad)) => {
                    report.requests_ok += u64::from(count - bad);
                    failed += u64::from(bad);
                    if let Some(status) = first_bad {
                        report
                            .first_error
                            .get_or_insert_with(|| format!("admin answered HTTP {status}"));
                    }
                }
                Err(e) => {
                    failed += u64::from(count);
                    report
                        .first_error
                        .get_or_insert_with(|| format!("admin {}: {e}", args.admin));
                    admin = None; // reconnect for the next window
                }
            }
        }
        report.errors += failed;
        if failed == 0 {
            report.published += 1;
        }
        published.store(number + 1, Ordering::Relaxed);
        if !points.is_empty() {
            let sample = if failed > 0 {
                Err(format!("message {number} was not published"))
            } else {
                admin = None; // as before a pause
                wait_reached(shared, number, Duration::from_secs(args.stall_secs))
                    .and_then(|()| sample_rss(&mut admin, args))
            };
            for &point in points {
                record(&mut report, point, sample.clone());
            }
        }
    }
    shared.target.store(NO_TARGET, Ordering::SeqCst);
    report.secs = started.elapsed().as_secs_f64();
    report
}

/// Sleeps `d` in short steps; false if the run was stopped meanwhile.
fn pause(shared: &Shared, d: Duration) -> bool {
    let until = Instant::now() + d;
    loop {
        if shared.stop.load(Ordering::Relaxed) {
            return false;
        }
        let now = Instant::now();
        if now >= until {
            return true;
        }
        std::thread::sleep((until - now).min(Duration::from_millis(20)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reach::Reach;
    use std::net::TcpListener;
    use std::sync::{Arc, Mutex};

    /// A fake admin listener on a free loopback port: it logs each
    /// request's path, answers `/stats` with an `rss_bytes` that grows by
    /// 4096 per request, and on a publish makes the message reach `reach`
    /// of worker 0's connections (the target the publisher set).
    fn fake_admin(shared: Arc<Shared>, reach: u32) -> (u16, Arc<Mutex<Vec<String>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let log = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&log);
        std::thread::spawn(move || {
            let mut stats = 0u64;
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut pending = Vec::new();
                let mut buf = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    pending.extend_from_slice(&buf[..n]);
                    while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&pending[..end]).to_string();
                        pending.drain(..end + 4);
                        let path = head.split(' ').nth(1).unwrap_or("").split('?').next().unwrap_or("");
                        seen.lock().expect("log").push(path.to_string());
                        let body = if path == "/stats" {
                            stats += 4096;
                            format!("{{\"delivered\":0,\"rss_bytes\":{stats}}}\n")
                        } else {
                            let target = shared.target.load(Ordering::SeqCst);
                            let mut r = Reach::default();
                            for _ in 0..reach {
                                r.crossed(target, target, target.wrapping_add(1));
                            }
                            shared.live[0].reached.store(r.pack(), Ordering::SeqCst);
                            "{\"type\":\"ok\"}\n".to_string()
                        };
                        let answer = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len());
                        if stream.write_all(answer.as_bytes()).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        (port, log)
    }

    fn setup(messages: u32, reach: u32) -> (Args, Arc<Shared>, Arc<Mutex<Vec<String>>>) {
        let shared = Arc::new(Shared::new(1));
        shared.live[0].ready.store(4, Ordering::SeqCst);
        let (port, log) = fake_admin(Arc::clone(&shared), reach);
        let line =
            format!("--admin 127.0.0.1:{port} --mode broadcast --messages {messages} --interval-ms 0 --stall-secs 1");
        let args = Args::parse(line.split(' ').map(String::from)).expect("args");
        (args, shared, log)
    }

    #[test]
    fn samples_before_publishing_and_after_the_first_and_last_arrived() {
        let (args, shared, log) = setup(3, 4);
        let report = run(&args, 7, &shared, &AtomicU32::new(0));
        assert_eq!(
            *log.lock().expect("log"),
            ["/stats", "/broadcast", "/stats", "/broadcast", "/broadcast", "/stats"],
            "a sample before anything is published, then one after message 0 \
             and one after message 2 reached everyone, each before the next publish"
        );
        assert_eq!(
            (report.rss.ready, report.rss.after_first, report.rss.after_last),
            (Some(4096), Some(8192), Some(12288))
        );
        assert_eq!((report.published, report.errors, report.rss.note), (3, 0, None));
        assert_eq!(shared.target.load(Ordering::SeqCst), NO_TARGET);
    }

    #[test]
    fn a_message_that_does_not_reach_everyone_gives_no_sample() {
        // Three of the four ready connections get message 0; no more come
        // within --stall-secs 1.
        let (args, shared, log) = setup(1, 3);
        let report = run(&args, 7, &shared, &AtomicU32::new(0));
        assert_eq!(*log.lock().expect("log"), ["/stats", "/broadcast"]);
        assert_eq!(
            (report.rss.ready, report.rss.after_first, report.rss.after_last),
            (Some(4096), None, None)
        );
        assert_eq!(
            report.rss.note.as_deref(),
            Some("message 0 reached 3 of 4 live subscribers, none more for 1 s")
        );
    }

    #[test]
    fn encodes_the_stamp() {
        assert_eq!(urlencode("m=3;t=17;r=0badcafe"), "m%3D3%3Bt%3D17%3Br%3D0badcafe");
        assert_eq!(urlencode("a b+c~"), "a%20b%2Bc~");
    }

    #[test]
    fn counts_acks_of_pipelined_responses() {
        let mut r = HttpStream::default();
        let mut acks = Acks::default();
        let input = "HTTP/1.1 200 OK\r\nContent-Length: 14\r\n\r\n{\"type\":\"ok\"}\n\
                     HTTP/1.1 429 Too Many Channels\r\nContent-Length: 0\r\n\r\n\
                     HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nok\n\r\n0\r\n\r\n";
        r.feed(input.as_bytes(), &mut acks).expect("parses");
        assert_eq!((acks.ended, acks.bad, acks.first_bad), (3, 1, Some(429)));
    }
}
