//! Publish-side handlers: `/pub`, `/push`, `/broadcast` and `/sign`
//! (reference §4.1-§4.4).
//!
//! Each one validates its parameters, hands exactly one command to the
//! intake (`crate::intake`) and formats the reply. They never lock the
//! channel table and never deliver anything.

use std::time::Instant;

use super::response::{jsonp, ok, AdminError, AdminResponse, DEFAULT_TYPE, HTML_UTF8, JAVASCRIPT};
use crate::encode;
use crate::intake::{ChannelCmd, CmdReply};
use crate::params::{check_callback, check_cname, BadParam, Params};
use crate::shared::Shared;

/// Whether `/pub` (content already JSON-escaped) or `/push` (raw content).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content {
    /// `/pub`: the content is the inside of a JSON string literal.
    PreEncoded,
    /// `/push`: the content is raw text the server escapes.
    Raw,
}

/// The `cb` parameter: `None` when absent; a present non-empty value must be
/// a safe callback name.
fn callback(p: &Params) -> Result<Option<&str>, AdminError> {
    let cb = p.get("cb");
    if let Some(name) = cb.filter(|c| !c.is_empty()) {
        check_callback(name)?;
    }
    Ok(cb)
}

/// The `content` parameter, refused when larger than `max` bytes.
fn content(p: &Params, max: usize) -> Result<&str, AdminError> {
    let c = p.str("content");
    if c.len() > max {
        return Err(AdminError::TooLarge(format!("content is larger than {max} bytes")));
    }
    Ok(c)
}

/// `/pub` and `/push`: publish one data message, creating the channel;
/// the request arrived at `arrived` (delivery latency counts from there).
pub async fn publish(
    shared: &Shared,
    p: &Params,
    kind: Content,
    arrived: Instant,
) -> Result<AdminResponse, AdminError> {
    let config = shared.config();
    let cb = callback(p)?;
    let cname = p.str("cname");
    check_cname(cname, config.front.max_cname_bytes)?;
    let content = content(p, config.admin.max_body_bytes)?;
    let content = match kind {
        Content::PreEncoded => {
            encode::check_json_string_body(content).map_err(|reason| BadParam(reason.into()))?;
            content.into()
        }
        Content::Raw => encode::escape_json(content).into(),
    };
    let cmd = ChannelCmd::Publish {
        cname: cname.to_string(),
        content,
    };
    shared.intake.apply_at(cmd, arrived).await?;
    Ok(ok(JAVASCRIPT, jsonp(cb, r#"{"type":"ok"}"#)))
}

/// `/broadcast`: one broadcast message to every existing channel; the
/// request arrived at `arrived`.
pub async fn broadcast(shared: &Shared, p: &Params, arrived: Instant) -> Result<AdminResponse, AdminError> {
    let content = content(p, shared.config().admin.max_body_bytes)?;
    let cmd = ChannelCmd::Broadcast {
        content: encode::escape_json(content).into(),
    };
    shared.intake.apply_at(cmd, arrived).await?;
    Ok(ok(DEFAULT_TYPE, "ok\n"))
}

/// `/sign`: the channel's token, creating the channel and setting its expiry.
pub async fn sign(shared: &Shared, p: &Params) -> Result<AdminResponse, AdminError> {
    let config = shared.config();
    let cb = callback(p)?;
    let cname = p.str("cname");
    check_cname(cname, config.front.max_cname_bytes)?;
    let cmd = ChannelCmd::Sign {
        cname: cname.to_string(),
        expires: p.int("expires", 0),
    };
    let CmdReply::Signed(signed) = shared.intake.apply(cmd).await? else {
        unreachable!("a sign command answers Signed")
    };
    let json = format!(
        r#"{{"type":"sign","cname":"{}","seq":{},"token":"{}","expires":{},"sub_timeout":{}}}"#,
        encode::escape_json(cname),
        signed.seq,
        signed.token,
        signed.expires,
        config.front.polling_timeout
    );
    Ok(ok(HTML_UTF8, jsonp(cb, &json)))
}
