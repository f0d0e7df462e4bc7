//! Turns what a PUB/SUB connection receives (redis `PushInfo`) into events
//! or service actions. Pure: no I/O, no state; `shard.rs` acts on the result.
//!
//! Service payloads (on `<p>:ctl`, `<p>:reply:<node>`, `<p>:probe:...`):
//! `s <id> <origin node> <cname>` asks every node for its local subscriber
//! count of `cname`; `r <id> <node> <count>` is one node's answer; probes
//! carry anything and only prove the connection still receives.

use std::sync::Arc;

use bytes::Bytes;
use redis::{PushKind, Value};

use super::events::ClusterEvent;
use super::keys::Keys;
use super::wire::{decode_payload, decode_presence, Payload, WireError};

/// The names a connection's pushes are routed by.
#[derive(Debug, Clone)]
pub(crate) struct Routes {
    pub(crate) keys: Keys,
    psub: Vec<u8>,
    ctl: Vec<u8>,
    reply: Vec<u8>,
}

impl Routes {
    pub(crate) fn new(keys: &Keys, node: &str) -> Routes {
        Routes {
            psub: keys.psub().into_bytes(),
            ctl: keys.ctl().into_bytes(),
            reply: keys.reply(node).into_bytes(),
            keys: keys.clone(),
        }
    }
}

/// What one push means.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Routed {
    /// Events for the node.
    Events(Vec<ClusterEvent>),
    /// A survey request to answer.
    SurveyRequest {
        /// Survey id.
        id: u64,
        /// The node that asked.
        origin: String,
        /// The channel.
        cname: String,
    },
    /// One node's survey answer.
    SurveyReply {
        /// Survey id.
        id: u64,
        /// The answering node.
        node: String,
        /// Its local subscriber count.
        count: u64,
    },
    /// The connection went away (the library's own push).
    Disconnected,
    /// Proof of life and nothing else (probes, confirmations of service
    /// channels, unsubscribe confirmations).
    Alive,
    /// Something that does not decode: counted and logged, never delivered.
    Malformed(String),
}

fn bulk(v: &Value) -> Option<&[u8]> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        _ => None,
    }
}

/// Routes one push.
pub(crate) fn route(routes: &Routes, kind: PushKind, data: Vec<Value>) -> Routed {
    match kind {
        PushKind::Disconnection => Routed::Disconnected,
        PushKind::Subscribe => {
            let Some(channel) = data.first().and_then(bulk) else {
                return Routed::Malformed("subscribe confirmation without a channel".into());
            };
            match routes.keys.cname_of(channel) {
                Some(c) => match std::str::from_utf8(c) {
                    Ok(c) => Routed::Events(vec![ClusterEvent::Confirmed { cname: Arc::from(c) }]),
                    Err(_) => Routed::Malformed("channel name is not UTF-8".into()),
                },
                None => Routed::Alive,
            }
        }
        PushKind::Message => {
            let mut it = data.into_iter();
            let (Some(channel), Some(payload)) = (it.next(), it.next()) else {
                return Routed::Malformed("message push without channel and payload".into());
            };
            let (Some(channel), Value::BulkString(payload)) = (bulk(&channel), payload) else {
                return Routed::Malformed("message push of unexpected types".into());
            };
            route_message(routes, channel, Bytes::from(payload))
        }
        _ => Routed::Alive,
    }
}

fn route_message(routes: &Routes, channel: &[u8], payload: Bytes) -> Routed {
    if let Some(c) = routes.keys.cname_of(channel) {
        let Ok(c) = std::str::from_utf8(c) else {
            return Routed::Malformed("channel name is not UTF-8".into());
        };
        return match decode_payload(&payload) {
            Ok(p) => Routed::Events(events(Arc::from(c), p)),
            Err(e) => Routed::Malformed(format!("payload on {c:?}: {e}")),
        };
    }
    if channel == routes.psub.as_slice() {
        return match decode_presence(&payload) {
            Ok((online, cname)) => Routed::Events(vec![ClusterEvent::Presence { online, cname }]),
            Err(e) => Routed::Malformed(format!("presence line: {e}")),
        };
    }
    if channel == routes.ctl.as_slice() {
        return survey_request(&payload).unwrap_or_else(|e| Routed::Malformed(format!("survey request: {e}")));
    }
    if channel == routes.reply.as_slice() {
        return survey_reply(&payload).unwrap_or_else(|e| Routed::Malformed(format!("survey reply: {e}")));
    }
    Routed::Alive
}

/// Expands a decoded payload into events.
fn events(cname: Arc<str>, p: Payload) -> Vec<ClusterEvent> {
    match p {
        Payload::Messages {
            epoch,
            first_seq,
            kind,
            contents,
        } => contents
            .into_iter()
            .enumerate()
            .map(|(i, content)| ClusterEvent::Message {
                cname: cname.clone(),
                epoch,
                // A payload holds fewer than 2^31 messages (a Redis argument
                // list could not carry more); the cast wraps like the seq does.
                seq: first_seq.wrapping_add(i as i32),
                kind,
                content,
            })
            .collect(),
        Payload::Control {
            epoch,
            control,
            next_seq,
        } => vec![ClusterEvent::Control {
            cname,
            epoch,
            control,
            next_seq,
        }],
    }
}

/// Splits `n` space-separated fields, the last taking the rest.
fn fields(b: &[u8], n: usize) -> Option<Vec<&str>> {
    let s = std::str::from_utf8(b).ok()?;
    let v: Vec<&str> = s.splitn(n, ' ').collect();
    (v.len() == n).then_some(v)
}

/// Encodes a survey request.
pub(crate) fn encode_survey_request(id: u64, origin: &str, cname: &str) -> Vec<u8> {
    format!("s {id} {origin} {cname}").into_bytes()
}

/// Encodes a survey answer.
pub(crate) fn encode_survey_reply(id: u64, node: &str, count: u64) -> Vec<u8> {
    format!("r {id} {node} {count}").into_bytes()
}

fn survey_request(b: &[u8]) -> Result<Routed, WireError> {
    let f = fields(b, 4).ok_or(WireError::Truncated("field"))?;
    if f[0] != "s" || f[2].is_empty() {
        return Err(WireError::BadKind(f[0].to_string()));
    }
    Ok(Routed::SurveyRequest {
        id: f[1].parse().map_err(|_| WireError::BadSeq)?,
        origin: f[2].to_string(),
        cname: f[3].to_string(),
    })
}

fn survey_reply(b: &[u8]) -> Result<Routed, WireError> {
    let f = fields(b, 4).ok_or(WireError::Truncated("field"))?;
    if f[0] != "r" || f[2].is_empty() {
        return Err(WireError::BadKind(f[0].to_string()));
    }
    Ok(Routed::SurveyReply {
        id: f[1].parse().map_err(|_| WireError::BadSeq)?,
        node: f[2].to_string(),
        count: f[3].parse().map_err(|_| WireError::BadSeq)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::wire::{encode_multi, Control, Epoch, Kind};

    fn routes() -> Routes {
        Routes::new(&Keys::new("comet"), "me")
    }

    fn msg(channel: &str, payload: &[u8]) -> Routed {
        route(
            &routes(),
            PushKind::Message,
            vec![
                Value::BulkString(channel.as_bytes().to_vec()),
                Value::BulkString(payload.to_vec()),
            ],
        )
    }

    #[test]
    fn channel_messages_expand_per_seq() {
        let e = Epoch::parse(b"00000000000000aa").expect("epoch");
        let Routed::Events(ev) = msg("comet:{c 1}", &encode_multi(&e, i32::MAX, &["a", "b"])) else {
            panic!("not events");
        };
        let seqs: Vec<(i32, &str)> = ev
            .iter()
            .map(|x| match x {
                ClusterEvent::Message {
                    cname,
                    seq,
                    content,
                    kind: Kind::Data,
                    ..
                } => {
                    assert_eq!(&**cname, "c 1");
                    (*seq, content.as_str())
                }
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(seqs, vec![(i32::MAX, "a"), (i32::MIN, "b")]);
    }

    #[test]
    fn controls_presence_and_surveys() {
        assert_eq!(
            msg("comet:{x}", b"- 4 c"),
            Routed::Events(vec![ClusterEvent::Control {
                cname: Arc::from("x"),
                epoch: None,
                control: Control::Close,
                next_seq: 4
            }])
        );
        assert_eq!(
            msg("comet:psub", b"0 a b"),
            Routed::Events(vec![ClusterEvent::Presence {
                online: false,
                cname: "a b".into()
            }])
        );
        assert_eq!(
            msg("comet:ctl", &encode_survey_request(7, "n1", "a b")),
            Routed::SurveyRequest {
                id: 7,
                origin: "n1".into(),
                cname: "a b".into()
            }
        );
        assert_eq!(
            msg("comet:reply:me", &encode_survey_reply(7, "n2", 12)),
            Routed::SurveyReply {
                id: 7,
                node: "n2".into(),
                count: 12
            }
        );
        assert_eq!(msg("comet:probe:me:d0", b"p 1"), Routed::Alive);
        assert_eq!(msg("comet:reply:other", b"r 1 x 1"), Routed::Alive);
    }

    #[test]
    fn garbage_is_malformed_not_delivered() {
        for (channel, payload) in [
            (&b"comet:{x}"[..], &b"nonsense"[..]),
            (b"comet:{x}", b"00000000000000aa 1 d \"oops"),
            (b"comet:psub", b"9 x"),
            (b"comet:ctl", b"s x n1 c"),
            (b"comet:ctl", b"s 1"),
            (b"comet:reply:me", b"r 1 n2 many"),
            (b"comet:{\xff}", b"- 1 c"),
        ] {
            let got = route(
                &routes(),
                PushKind::Message,
                vec![Value::BulkString(channel.to_vec()), Value::BulkString(payload.to_vec())],
            );
            assert!(matches!(got, Routed::Malformed(_)), "{channel:?} {payload:?}: {got:?}");
        }
        assert!(matches!(
            route(&routes(), PushKind::Message, vec![Value::Int(1)]),
            Routed::Malformed(_)
        ));
    }

    #[test]
    fn confirmations() {
        let sub = |ch: &str| {
            route(
                &routes(),
                PushKind::Subscribe,
                vec![Value::BulkString(ch.as_bytes().to_vec()), Value::Int(1)],
            )
        };
        assert_eq!(
            sub("comet:{room}"),
            Routed::Events(vec![ClusterEvent::Confirmed {
                cname: Arc::from("room")
            }])
        );
        assert_eq!(sub("comet:psub"), Routed::Alive);
        assert_eq!(route(&routes(), PushKind::Disconnection, vec![]), Routed::Disconnected);
        assert_eq!(route(&routes(), PushKind::Unsubscribe, vec![]), Routed::Alive);
    }
}
