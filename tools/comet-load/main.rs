//! comet-load: a subscriber load generator for comet and icomet, loopback only.
//!
//! The main thread parses the command line (`args`), raises the descriptor limit,
//! creates everything shared ([`live::Shared`]) and only then starts the worker
//! threads, each of which takes a private descriptor table and runs its own epoll
//! loop (`worker` and `sys`, with per-connection logic in `conn`, response parsing
//! in `http` and `frame`, WebSocket frames in `ws`, the channels of a
//! connection in `chans`, counters in `tally` and `stats`, error kinds in
//! `fault`). Once every connection is subscribed, a publisher thread (`publish`)
//! samples the server's memory (`server_rss`) and sends the messages through
//! the admin API, waiting where a sample is due until the message has reached
//! every subscriber (`reach`). The main thread watches the live
//! counters, prints progress, decides when the run is over (finished, stalled, or
//! out of time), stops everything and prints the report (`report`). It never
//! touches a subscriber socket.

mod args;
mod chans;
mod conn;
mod fault;
mod frame;
mod http;
mod live;
mod publish;
mod reach;
mod report;
mod server_rss;
mod stats;
mod sys;
mod tally;
mod token;
mod worker;
mod ws;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use args::{Args, ArgsError};
use conn::RunInfo;
use live::{Shared, Snapshot};
use publish::PublishReport;
use report::{End, Report};
use tally::Tally;

fn main() {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(ArgsError::Help) => {
            print!("{}", args::HELP);
            return;
        }
        Err(ArgsError::Usage(reason)) => {
            eprintln!("comet-load: {reason}");
            std::process::exit(2);
        }
    };
    raise_nofile();
    let ok = run(&args);
    std::process::exit(if ok { 0 } else { 1 });
}

/// Raises the soft descriptor limit to the hard one (the hard one cannot move).
fn raise_nofile() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid out-pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 && lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: valid in-pointer.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
            eprintln!(
                "comet-load: cannot raise RLIMIT_NOFILE: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

/// A run id that differs between runs, so old messages are never counted.
fn run_id() -> u32 {
    let x = live::unix_us() ^ (u64::from(std::process::id()) << 32);
    let x = x.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (x >> 32) as u32
}

/// Where the main thread is in the run.
enum Stage {
    /// Waiting for every connection to be ready or failed.
    Connecting,
    /// The publisher is sending.
    Publishing(JoinHandle<PublishReport>),
    /// Publishing is done; waiting for the last deliveries.
    Draining,
    /// Complete; keeping the connections open until then.
    Holding(Instant),
}

/// Runs the whole load test; true when nothing went wrong.
fn run(args: &Args) -> bool {
    let shared = Arc::new(Shared::new(args.threads as usize));
    let published = Arc::new(AtomicU32::new(0));
    let run_id = run_id();
    let info = RunInfo {
        transport: args.transport,
        mode: args.mode,
        messages: args.messages,
        run: run_id,
        prefix: args.prefix.clone(),
        channels: args.channels,
        ws_channels: args.ws_channels,
        tokens: match &args.jwt_secret {
            Some(secret) => Arc::from(token::mint_per_channel(secret, &args.prefix, args.channels)),
            None => Arc::from(Vec::new()),
        },
    };
    let mut workers: Vec<JoinHandle<Tally>> = Vec::new();
    for id in 0..args.threads {
        let (a, i, s) = (args.clone(), info.clone(), Arc::clone(&shared));
        let spawned = std::thread::Builder::new()
            .name(format!("load-{id}"))
            .spawn(move || worker::run(id, &a, i, s));
        match spawned {
            Ok(handle) => workers.push(handle),
            Err(e) => {
                eprintln!("comet-load: cannot start worker {id}: {e}");
                shared.stop.store(true, Ordering::Relaxed);
                break;
            }
        }
    }
    if !args.json {
        eprintln!(
            "comet-load: run {run_id:08x}: {} {} connections{} at {}/s, {} threads, {} source addresses, {} messages ({})",
            args.connections,
            args.transport.name(),
            if args.ws_channels > 1 {
                format!(" of {} channels each", args.ws_channels)
            } else {
                String::new()
            },
            args.rate,
            args.threads,
            args.source_ips,
            args.messages,
            args.mode.name()
        );
    }

    let total = u64::from(args.connections);
    let duration = Duration::from_secs(args.duration_secs);
    let mut stage = Stage::Connecting;
    let mut connect_secs = None;
    let mut publish_report = None;
    let mut end = End::Complete;
    let mut last = Snapshot::default();
    let mut last_second = 0;
    let mut last_delivery = (0, Instant::now());
    while !shared.stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(20));
        let now = Instant::now();
        let elapsed = shared.start.elapsed();
        let snap = shared.snapshot();
        if elapsed.as_secs() > last_second {
            last_second = elapsed.as_secs();
            progress(
                elapsed,
                total,
                &snap,
                &last,
                published.load(Ordering::Relaxed),
                args.messages,
            );
            last = snap;
        }
        if snap.deliveries != last_delivery.0 {
            last_delivery = (snap.deliveries, now);
        }
        stage = match stage {
            Stage::Connecting if snap.ready + snap.failed_unready >= total => {
                connect_secs = Some(elapsed.as_secs_f64());
                if snap.ready == 0 {
                    end = End::NoneReady;
                    break;
                } else {
                    // With no messages, the publisher only samples the memory.
                    let (a, s, p) = (args.clone(), Arc::clone(&shared), Arc::clone(&published));
                    match std::thread::Builder::new()
                        .name("publisher".into())
                        .spawn(move || publish::run(&a, run_id, &s, &p))
                    {
                        Ok(handle) => Stage::Publishing(handle),
                        Err(e) => {
                            eprintln!("comet-load: cannot start the publisher: {e}");
                            end = End::Stalled;
                            break;
                        }
                    }
                }
            }
            Stage::Publishing(handle) if handle.is_finished() => {
                publish_report = handle.join().ok();
                last_delivery.1 = now;
                if args.messages == 0 {
                    Stage::Holding(now + Duration::from_secs(args.hold_secs))
                } else {
                    Stage::Draining
                }
            }
            Stage::Draining if snap.finished + snap.failed_unfinished >= total => {
                Stage::Holding(now + Duration::from_secs(args.hold_secs))
            }
            Stage::Draining if now - last_delivery.1 >= Duration::from_secs(args.stall_secs) => {
                end = End::Stalled;
                break;
            }
            Stage::Holding(until) if now >= until => break,
            other => other,
        };
        if elapsed >= duration {
            if !matches!(stage, Stage::Holding(_)) {
                end = End::TimedOut;
            }
            break;
        }
    }
    shared.stop.store(true, Ordering::Relaxed);

    let mut tally = Tally::default();
    for handle in workers {
        match handle.join() {
            Ok(t) => tally.merge(&t),
            Err(_) => eprintln!("comet-load: a worker thread panicked"),
        }
    }
    if let Stage::Publishing(handle) = stage {
        publish_report = handle.join().ok();
    }
    let report = Report {
        args,
        tally,
        publish: publish_report.unwrap_or_default(),
        connect_secs,
        elapsed_secs: shared.start.elapsed().as_secs_f64(),
        end,
    };
    if !args.json {
        println!("{}", report.human());
    }
    println!("{}", report.json());
    report.ok()
}

/// One progress line on stderr.
fn progress(elapsed: Duration, total: u64, now: &Snapshot, before: &Snapshot, published: u32, messages: u32) {
    eprintln!(
        "[{:>6.1}s] connected {}/{} (+{}/s) ready {} failures {} | published {}/{} | delivered {} (+{}/s)",
        elapsed.as_secs_f64(),
        now.open,
        total,
        now.opened.saturating_sub(before.opened),
        now.ready,
        now.faults,
        published,
        messages,
        now.deliveries,
        now.deliveries.saturating_sub(before.deliveries),
    );
}
