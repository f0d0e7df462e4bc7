//! `/pub_batch`: many messages, to one channel or many, in one request.
//!
//! The body is plain text, one message per line: the channel name, one TAB,
//! the content exactly as `/pub` takes it (the inside of a JSON string
//! literal, already escaped), then LF (a CR before it and the last LF are
//! optional; empty lines are skipped). Neither field can hold a raw TAB or
//! LF (a channel name has no control characters and escaped content has
//! none), so the framing needs no escaping of its own. The whole body is
//! checked before anything is published: one bad line refuses the batch
//! with `400` and the line's number. Messages are applied in body order, so
//! a channel's messages keep their order; single node, they are published
//! under one lock of the table, in cluster mode in pipelined Redis script
//! calls (`cluster.publish_batch_messages` per call).
//!
//! The reply is `{"type":"ok","published":N}`. When `front.max_channels`
//! stops a batch part way, the messages before the channel that did not fit
//! are published and the reply is `429` with the same JSON body saying how
//! many. This module parses and answers; it never touches the table.

use std::sync::Arc;
use std::time::Instant;

use hyper::StatusCode;

use super::body::AdminBody;
use super::response::{reply, AdminError, AdminResponse, JSON};
use crate::encode;
use crate::intake::{ChannelCmd, CmdReply, IntakeError};
use crate::params::{check_cname, BadParam};
use crate::shared::Shared;

/// The messages of a batch body, in order, or why it is refused.
pub fn parse(body: &[u8], max_cname: usize, max_content: usize) -> Result<Vec<(String, Arc<str>)>, BadParam> {
    let text = std::str::from_utf8(body).map_err(|e| {
        let line = body[..e.valid_up_to()].iter().filter(|&&b| b == b'\n').count() + 1;
        BadParam(format!("line {line}: not UTF-8").into())
    })?;
    let mut items = Vec::with_capacity(text.len() / 32 + 1);
    for (i, raw) in text.split('\n').enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.is_empty() {
            continue;
        }
        let at = |why: &str| BadParam(format!("line {}: {why}", i + 1).into());
        let (cname, content) = line
            .split_once('\t')
            .ok_or_else(|| at("no TAB between the channel name and the content"))?;
        check_cname(cname, max_cname).map_err(|e| at(&e.0))?;
        if content.len() > max_content {
            return Err(at(&format!("content is larger than {max_content} bytes")));
        }
        encode::check_json_string_body(content).map_err(at)?;
        items.push((cname.to_string(), Arc::from(content)));
    }
    Ok(items)
}

/// `/pub_batch`: publishes every message of `body`, whose request arrived
/// at `arrived`.
pub async fn publish(shared: &Shared, body: &[u8], arrived: Instant) -> Result<AdminResponse, AdminError> {
    let config = shared.config();
    let items = parse(body, config.front.max_cname_bytes, config.admin.max_body_bytes)?;
    let count = items.len();
    match shared.intake.apply_at(ChannelCmd::PublishBatch(items), arrived).await {
        Ok(CmdReply::PublishedBatch(seqs)) => Ok(answer(StatusCode::OK, "ok", seqs.len())),
        Ok(other) => unreachable!("a batch answers PublishedBatch, not {other:?}"),
        Err(IntakeError::TooManyChannels { published }) => {
            log::warn!("/pub_batch: front.max_channels reached after {published} of {count} messages");
            Ok(answer(StatusCode::TOO_MANY_REQUESTS, "too_many_channels", published))
        }
        Err(e) => Err(e.into()),
    }
}

fn answer(status: StatusCode, kind: &str, published: usize) -> AdminResponse {
    let body = format!("{{\"type\":\"{kind}\",\"published\":{published}}}\n");
    reply(status, Some(JSON), AdminBody::full(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(body: &str) -> Vec<(String, String)> {
        parse(body.as_bytes(), 64, 100)
            .expect("a good batch")
            .into_iter()
            .map(|(c, m)| (c, m.to_string()))
            .collect()
    }

    fn refused(body: &[u8]) -> String {
        parse(body, 64, 100).expect_err("a bad batch").0.into_owned()
    }

    fn pair(c: &str, m: &str) -> (String, String) {
        (c.to_string(), m.to_string())
    }

    #[test]
    fn lines_in_order_with_optional_cr_and_last_newline() {
        assert_eq!(
            ok("a\thello\r\nb\t{\\\"k\\\":1}\n\na\t\nc\tlast"),
            vec![
                pair("a", "hello"),
                pair("b", "{\\\"k\\\":1}"),
                pair("a", ""),
                pair("c", "last")
            ]
        );
        assert_eq!(ok(""), vec![]);
        assert_eq!(ok("\n\r\n"), vec![]);
        // Only the first TAB separates: escaped content has no raw TAB, so a
        // second one is a bad content, not a third field.
        assert_eq!(refused(b"a\tb\tc"), "line 1: content contains a raw control character");
    }

    #[test]
    fn a_bad_line_is_named() {
        assert_eq!(
            refused(b"a\tx\nno tab here\n"),
            "line 2: no TAB between the channel name and the content"
        );
        assert_eq!(
            refused(b"a\tx\n\nb\tsay \"hi\""),
            "line 3: content contains an unescaped '\"'"
        );
        assert_eq!(refused(b"a\x01b\tx"), "line 1: cname contains a control character");
        assert_eq!(
            refused(format!("{}\tx", "n".repeat(65)).as_bytes()),
            "line 1: cname is longer than 64 bytes"
        );
        assert_eq!(
            refused(format!("a\t{}", "m".repeat(101)).as_bytes()),
            "line 1: content is larger than 100 bytes"
        );
        assert_eq!(refused(b"a\tx\nb\t\xff\xfe"), "line 2: not UTF-8");
    }
}
