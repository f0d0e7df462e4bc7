//! The events comet reports to the application and their exact JSON.
//!
//! Each event is one JSON object with a `type` first and `time_ms` last;
//! a POST carries an array of them, oldest first. The JSON, byte for byte
//! (whitespace added here only for reading):
//!
//! ```text
//! {"type":"online","cname":"room1","time_ms":1700000000123}
//! {"type":"offline","cname":"room1","time_ms":1700000000123}
//! {"type":"subscribe","id":42,"cname":"room1","transport":"sse","ip":"203.0.113.7","sub":"user42","time_ms":1700000000123}
//! {"type":"unsubscribe","id":42,"cname":"room1","transport":"sse","ip":"203.0.113.7","sub":null,"reason":"closed","time_ms":1700000000123}
//! {"type":"publish","cname":"room1","seq":12,"length":42,"time_ms":1700000000123}
//! ```
//!
//! Plain data: this file sends nothing (that is [`EventSink`](super::EventSink)).

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// One event for the application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum HookEvent {
    /// A channel was created, and again every `channel_timeout` seconds
    /// while it lives (the `/psub` `1 <cname>` event).
    Online {
        /// The channel.
        cname: Box<str>,
        /// Milliseconds since the epoch.
        time_ms: u64,
    },
    /// A channel was freed (idle expiry or `/close`; the `/psub` `0 <cname>` event).
    Offline {
        /// The channel.
        cname: Box<str>,
        /// Milliseconds since the epoch.
        time_ms: u64,
    },
    /// A subscriber joined a channel.
    Subscribe(Subscriber),
    /// A subscriber left a channel (see the module docs of `hooks` for when
    /// each transport leaves).
    Unsubscribe(Leave),
    /// A message was published (only with `hooks.events_publish`).
    Publish {
        /// The channel.
        cname: Box<str>,
        /// The message's seq.
        seq: u64,
        /// The content's length in bytes, as published.
        length: usize,
        /// Milliseconds since the epoch.
        time_ms: u64,
    },
}

/// Who subscribed: the body of a `subscribe` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Subscriber {
    /// Opaque, unique among the server's live subscriptions, and the same in
    /// a subscribe and its unsubscribe (for long-poll: one lineage of
    /// re-polls), so the application can pair them.
    pub id: u64,
    /// The channel.
    pub cname: Box<str>,
    /// `poll`, `stream`, `sse`, `iframe` or `ws` (as `/stats` names transports).
    pub transport: &'static str,
    /// The client's address.
    pub ip: IpAddr,
    /// The JWT `sub` claim, or null when there is none (no JWT, or no claim).
    pub sub: Option<Box<str>>,
    /// Milliseconds since the epoch.
    pub time_ms: u64,
}

/// Who left and why: the body of an `unsubscribe` event (the subscribe's
/// fields, then `reason`, then `time_ms`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Leave {
    /// As in the subscribe event.
    pub id: u64,
    /// As in the subscribe event.
    pub cname: Box<str>,
    /// As in the subscribe event.
    pub transport: &'static str,
    /// As in the subscribe event.
    pub ip: IpAddr,
    /// As in the subscribe event.
    pub sub: Option<Box<str>>,
    /// Why the subscription ended.
    pub reason: LeaveReason,
    /// Milliseconds since the epoch.
    pub time_ms: u64,
}

/// Why a subscriber left; written in snake_case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaveReason {
    /// The client closed its connection (or it broke).
    Closed,
    /// A long-poll client did not poll again in time.
    Timeout,
    /// The client stopped reading and its queue overflowed.
    SlowConsumer,
    /// The channel was closed or expired.
    ChannelClosed,
    /// The server is shutting down.
    Shutdown,
    /// A WebSocket client left the channel with an `unsub` command (its
    /// connection stays).
    Unsubscribed,
}

impl Subscriber {
    /// The matching unsubscribe body, at `time_ms`.
    pub fn leave(&self, reason: LeaveReason, time_ms: u64) -> Leave {
        Leave {
            id: self.id,
            cname: self.cname.clone(),
            transport: self.transport,
            ip: self.ip,
            sub: self.sub.clone(),
            reason,
            time_ms,
        }
    }
}

/// A fresh subscriber id: unique in this process (a 64-bit counter from 1).
pub fn next_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Milliseconds since the epoch by the system clock (0 before 1970).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A batch as the application receives it: a JSON array, oldest first.
pub fn batch_json(events: &[HookEvent]) -> Vec<u8> {
    serde_json::to_vec(events).expect("events are strings, numbers and addresses: they serialize")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub() -> Subscriber {
        Subscriber {
            id: 42,
            cname: "room1".into(),
            transport: "sse",
            ip: "203.0.113.7".parse().expect("ip"),
            sub: Some("user42".into()),
            time_ms: 1_700_000_000_123,
        }
    }

    fn json(e: &HookEvent) -> String {
        String::from_utf8(batch_json(std::slice::from_ref(e))).expect("UTF-8")
    }

    #[test]
    fn exact_json_of_every_event() {
        let t = 1_700_000_000_123;
        assert_eq!(
            json(&HookEvent::Online {
                cname: "room1".into(),
                time_ms: t
            }),
            r#"[{"type":"online","cname":"room1","time_ms":1700000000123}]"#
        );
        assert_eq!(
            json(&HookEvent::Offline {
                cname: "room1".into(),
                time_ms: t
            }),
            r#"[{"type":"offline","cname":"room1","time_ms":1700000000123}]"#
        );
        assert_eq!(
            json(&HookEvent::Subscribe(sub())),
            r#"[{"type":"subscribe","id":42,"cname":"room1","transport":"sse","ip":"203.0.113.7","sub":"user42","time_ms":1700000000123}]"#
        );
        let mut anon = sub();
        anon.sub = None;
        anon.ip = "::1".parse().expect("ip");
        assert_eq!(
            json(&HookEvent::Unsubscribe(anon.leave(LeaveReason::Closed, t))),
            r#"[{"type":"unsubscribe","id":42,"cname":"room1","transport":"sse","ip":"::1","sub":null,"reason":"closed","time_ms":1700000000123}]"#
        );
        assert_eq!(
            json(&HookEvent::Publish {
                cname: "room1".into(),
                seq: 12,
                length: 42,
                time_ms: t
            }),
            r#"[{"type":"publish","cname":"room1","seq":12,"length":42,"time_ms":1700000000123}]"#
        );
    }

    #[test]
    fn reasons_and_escaping() {
        let names: Vec<String> = [
            LeaveReason::Closed,
            LeaveReason::Timeout,
            LeaveReason::SlowConsumer,
            LeaveReason::ChannelClosed,
            LeaveReason::Shutdown,
            LeaveReason::Unsubscribed,
        ]
        .iter()
        .map(|r| serde_json::to_string(r).expect("serializes"))
        .collect();
        assert_eq!(
            names,
            [
                r#""closed""#,
                r#""timeout""#,
                r#""slow_consumer""#,
                r#""channel_closed""#,
                r#""shutdown""#,
                r#""unsubscribed""#
            ]
        );
        let odd = HookEvent::Online {
            cname: "a\"b\\c\n\u{2028}".into(),
            time_ms: 0,
        };
        assert_eq!(
            json(&odd),
            "[{\"type\":\"online\",\"cname\":\"a\\\"b\\\\c\\n\u{2028}\",\"time_ms\":0}]"
        );
        assert_eq!(batch_json(&[]), b"[]");
        assert!(now_ms() > 1_700_000_000_000);
    }
}
