//! Publish-side handlers: `/pub`, `/push`, `/broadcast` and `/sign`
//! (reference §4.1-§4.4).
//!
//! Each one validates its parameters, makes exactly one hub call and formats
//! the reply. They never lock the channel table themselves and never deliver
//! anything: the hub queues deliveries for the workers.

use super::response::{jsonp, ok, AdminError, AdminResponse, DEFAULT_TYPE, HTML_UTF8, JAVASCRIPT};
use crate::encode;
use crate::hub::Hub;
use crate::params::{check_callback, check_cname, BadParam, Params};

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

/// `/pub` and `/push`: publish one data message, creating the channel.
pub fn publish(hub: &Hub, p: &Params, kind: Content) -> Result<AdminResponse, AdminError> {
    let config = hub.config();
    let cb = callback(p)?;
    let cname = p.str("cname");
    check_cname(cname, config.front.max_cname_bytes)?;
    let content = content(p, config.admin.max_body_bytes)?;
    match kind {
        Content::PreEncoded => {
            encode::check_json_string_body(content).map_err(|reason| BadParam(reason.into()))?;
            hub.publish(cname, content)?;
        }
        Content::Raw => {
            hub.publish(cname, &encode::escape_json(content))?;
        }
    }
    Ok(ok(JAVASCRIPT, jsonp(cb, r#"{"type":"ok"}"#)))
}

/// `/broadcast`: one broadcast message to every existing channel.
pub fn broadcast(hub: &Hub, p: &Params) -> Result<AdminResponse, AdminError> {
    let content = content(p, hub.config().admin.max_body_bytes)?;
    hub.broadcast(&encode::escape_json(content));
    Ok(ok(DEFAULT_TYPE, "ok\n"))
}

/// `/sign`: the channel's token, creating the channel and setting its expiry.
pub fn sign(hub: &Hub, p: &Params) -> Result<AdminResponse, AdminError> {
    let config = hub.config();
    let cb = callback(p)?;
    let cname = p.str("cname");
    check_cname(cname, config.front.max_cname_bytes)?;
    let signed = hub.sign(cname, p.int("expires", 0))?;
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
