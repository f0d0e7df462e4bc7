//! The event hook as the server runs it: one [`Events`] per server, fed by
//! the channel table's presence notices (`online`, `offline`), by the
//! workers as subscribers join and leave, and by the intake as messages
//! are published; the long-poll lineages ([`PollLineages`]) behind one
//! lock with their once-a-second expiry; and the last flush at shutdown.
//!
//! Every producer only pushes to the sink's queue ([`EventSink::push`]
//! never waits and never allocates), so nothing here slows delivery or
//! subscribing. It owns no socket, no channel slot and no worker state:
//! the front decides when a subscriber joins or leaves (the rule per
//! transport is in the `hooks` module docs) and calls in here.

use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::event::{now_ms, HookEvent, Leave, LeaveReason, Subscriber};
use super::lineage::{LineageKey, PollLineages};
use super::sink::EventSink;

/// The event hook of a running server. Shared by every thread (`Sync`).
pub struct Events {
    sink: EventSink,
    lineages: Mutex<PollLineages>,
    /// The lineages' clock (whole seconds since the server started): one
    /// clock for every worker, since a re-poll may reach another worker.
    started: std::time::Instant,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events")
            .field("lineages", &self.lineages().len())
            .finish_non_exhaustive()
    }
}

impl Events {
    /// The event hook around `sink`, for a server whose
    /// `front.polling_timeout` is `polling_timeout_secs`.
    pub fn new(sink: EventSink, polling_timeout_secs: u32) -> Events {
        Events {
            sink,
            lineages: Mutex::new(PollLineages::new(polling_timeout_secs)),
            started: std::time::Instant::now(),
        }
    }

    /// The sink (its counters, for `/metrics`).
    pub fn sink(&self) -> &EventSink {
        &self.sink
    }

    /// Whether `publish` events are wanted (`hooks.events_publish`).
    pub fn wants_publish(&self) -> bool {
        self.sink.wants_publish()
    }

    /// Live long-poll lineages (long-poll subscribers as the application
    /// sees them).
    pub fn poll_lineages(&self) -> usize {
        self.lineages().len()
    }

    /// A channel came online (the `/psub` `1 <cname>` notice).
    pub fn online(&self, cname: &str) {
        self.sink.push(HookEvent::Online {
            cname: cname.into(),
            time_ms: now_ms(),
        });
    }

    /// A channel was freed (`/close` or idle expiry; the `/psub` `0
    /// <cname>` notice): its long-poll lineages end first (`channel_closed`),
    /// then the channel's `offline`. Streaming subscribers of a closed
    /// channel leave as their worker ends them, on another thread, so their
    /// `unsubscribe` may come before or after the `offline`.
    pub fn offline(&self, cname: &str) {
        let time_ms = now_ms();
        let mut ended = Vec::new();
        self.lineages()
            .close_channel(cname, LeaveReason::ChannelClosed, time_ms, &mut ended);
        for e in ended {
            self.sink.push(e);
        }
        self.sink.push(HookEvent::Offline {
            cname: cname.into(),
            time_ms,
        });
    }

    /// A message was published to `cname` with `seq`; `escaped` is its
    /// content as the table keeps it (JSON-escaped). Pushes a `publish`
    /// event only when `hooks.events_publish` is on; its `length` is the
    /// content's length in bytes as subscribers decode it.
    pub fn published(&self, cname: &str, seq: i32, escaped: &str) {
        if !self.wants_publish() {
            return;
        }
        self.sink.push(HookEvent::Publish {
            cname: cname.into(),
            // Seqs count up from 1 and wrap as an i32 does; read as u32
            // they keep counting up.
            seq: u64::from(seq as u32),
            length: decoded_len(escaped),
            time_ms: now_ms(),
        });
    }

    /// A streaming subscriber (stream, sse, iframe, one channel of a
    /// WebSocket) joined: its `subscribe` event.
    pub fn joined(&self, who: Subscriber) {
        self.sink.push(HookEvent::Subscribe(who));
    }

    /// A streaming subscriber left: its `unsubscribe` event, with the
    /// fields of its `subscribe` (`who.time_ms` is not used).
    pub fn left(&self, who: Subscriber, reason: LeaveReason) {
        let Subscriber {
            id,
            cname,
            transport,
            ip,
            sub,
            time_ms: _,
        } = who;
        self.sink.push(HookEvent::Unsubscribe(Leave {
            id,
            cname,
            transport,
            ip,
            sub,
            reason,
            time_ms: now_ms(),
        }));
    }

    /// A long-poll request from `ip` for `cname` with `token` (as sent,
    /// empty when none) started; `sub` is its JWT subject. Pushes the
    /// `subscribe` event when it starts a lineage. Returns the lineage's
    /// key, for [`Events::poll_end`] when the request ends.
    pub fn poll_start(&self, ip: IpAddr, cname: &str, token: &str, sub: Option<&str>) -> LineageKey {
        let (key, event) = {
            let mut lineages = self.lineages();
            let key = lineages.key(ip, cname, token);
            (key, lineages.poll_start(key, ip, cname, sub, now_ms()))
        };
        if let Some(e) = event {
            self.sink.push(e);
        }
        key
    }

    /// A long-poll request of lineage `key` ended, however it ended.
    pub fn poll_end(&self, key: LineageKey) {
        let now = self.now_secs();
        self.lineages().poll_end(key, now);
    }

    /// Ends the lineages idle past `polling_timeout` + the grace
    /// (`unsubscribe`, reason `timeout`). Called once a second.
    pub fn expire(&self) {
        let mut ended = Vec::new();
        self.lineages().expire(self.now_secs(), now_ms(), &mut ended);
        for e in ended {
            self.sink.push(e);
        }
    }

    /// Runs [`Events::expire`] once a second, for ever (a task on the
    /// hooks runtime; it ends with the runtime).
    pub async fn expire_every_second(self: Arc<Self>) {
        let mut every = tokio::time::interval(Duration::from_secs(1));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            self.expire();
        }
    }

    /// The end of the server: every lineage ends (`shutdown`), then the
    /// sink sends what it can until `deadline` (see
    /// [`EventSink::shutdown`]). Call once the workers have stopped, so
    /// that their subscribers' `unsubscribe` events are queued already.
    pub async fn finish(&self, deadline: std::time::Instant) {
        let mut ended = Vec::new();
        self.lineages().close_all(LeaveReason::Shutdown, now_ms(), &mut ended);
        for e in ended {
            self.sink.push(e);
        }
        let grace = deadline.saturating_duration_since(std::time::Instant::now());
        self.sink.shutdown(grace).await;
    }

    fn now_secs(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    /// Locks the lineages; a panic while they were held leaves a valid
    /// table (at worst a lineage ends late), so poisoning is ignored.
    fn lineages(&self) -> MutexGuard<'_, PollLineages> {
        self.lineages.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The length in bytes (UTF-8) of the string a JSON string body decodes
/// to: `escaped` is content as comet keeps it, between the quotes of a
/// message's `content`. An escaped UTF-16 surrogate pair is one 4-byte
/// character; a lone surrogate counts as U+FFFD (3 bytes); a backslash
/// that starts no valid escape counts as itself (the admin side never
/// lets one through).
pub fn decoded_len(escaped: &str) -> usize {
    let b = escaped.as_bytes();
    let hex4 = |at: usize| -> Option<u32> {
        let digits = std::str::from_utf8(b.get(at..at + 4)?).ok()?;
        if !digits.bytes().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        u32::from_str_radix(digits, 16).ok()
    };
    let (mut n, mut i) = (0, 0);
    while i < b.len() {
        if b[i] != b'\\' {
            n += 1;
            i += 1;
            continue;
        }
        match b.get(i + 1) {
            Some(b'u') => match hex4(i + 2) {
                Some(0xd800..=0xdbff) => {
                    let low = (b.get(i + 6..i + 8) == Some(b"\\u"))
                        .then(|| hex4(i + 8))
                        .flatten()
                        .filter(|l| (0xdc00..=0xdfff).contains(l));
                    if low.is_some() {
                        n += 4;
                        i += 12;
                    } else {
                        n += 3;
                        i += 6;
                    }
                }
                Some(unit) => {
                    n += match unit {
                        0..=0x7f => 1,
                        0x80..=0x7ff => 2,
                        _ => 3,
                    };
                    i += 6;
                }
                None => {
                    n += 1;
                    i += 1;
                }
            },
            Some(_) => {
                n += 1;
                i += 2;
            }
            None => {
                n += 1;
                i += 1;
            }
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::escape_json;

    #[test]
    fn decoded_length_of_escaped_content() {
        for s in [
            "",
            "hello",
            "a\"b\\c",
            "line\nbreak\r\ttab\u{8}\u{c}",
            "\u{0}\u{1f}\u{7f}",
            "caf\u{e9} \u{85}\u{9f}",
            "\u{2028}\u{2029}",
            "\u{1f600} emoji",
            "</script>",
        ] {
            assert_eq!(decoded_len(&escape_json(s)), s.len(), "{s:?}");
        }
        // As /pub takes it, pre-encoded by the publisher.
        assert_eq!(decoded_len(r"\u00e9"), 2);
        assert_eq!(decoded_len(r"\u20ac"), 3);
        assert_eq!(decoded_len(r"\ud83d\ude00"), 4);
        assert_eq!(decoded_len(r"\ud83dx"), 4, "a lone high surrogate is U+FFFD, then x");
        assert_eq!(decoded_len(r"\ude00"), 3, "a lone low surrogate");
        assert_eq!(decoded_len(r"\/"), 1);
        assert_eq!(decoded_len(r"a\u12"), 5, "not an escape: counted as it is");
        assert_eq!(decoded_len("\\"), 1);
    }
}
