//! Query-side handlers: `/close`, `/clear`, `/info` and `/check`
//! (reference §4.5-§4.8).
//!
//! None of them creates a channel. Their bodies keep icomet's formatting
//! (`ok N`, and the spaces after `:` and `,` in `/info` and `/check`) with
//! channel names JSON-escaped (§11.3). `/close` and `/clear` are commands
//! and go through the intake; `/info` and `/check` read the channels.

use std::collections::HashSet;

use super::response::{ok, AdminError, AdminResponse, HTML_UTF8, VERSION};
use crate::encode::escape_json;
use crate::intake::{ChannelCmd, CmdReply};
use crate::params::Params;
use crate::shared::Shared;

/// `/close`: closes the channel; `ok N` with its next seq.
pub async fn close(shared: &Shared, p: &Params) -> Result<AdminResponse, AdminError> {
    let cmd = ChannelCmd::Close {
        cname: p.str("cname").to_string(),
    };
    let (CmdReply::Closed(n) | CmdReply::Cleared(n)) = shared.intake.apply(cmd).await? else {
        unreachable!("a close command answers Closed")
    };
    Ok(ok(HTML_UTF8, format!("ok {n}\n")))
}

/// `/clear`: empties the channel's history; `ok N` with its next seq.
pub async fn clear(shared: &Shared, p: &Params) -> Result<AdminResponse, AdminError> {
    let cmd = ChannelCmd::Clear {
        cname: p.str("cname").to_string(),
    };
    let (CmdReply::Closed(n) | CmdReply::Cleared(n)) = shared.intake.apply(cmd).await? else {
        unreachable!("a clear command answers Cleared")
    };
    Ok(ok(HTML_UTF8, format!("ok {n}\n")))
}

/// `/info`: global totals, or one channel's subscriber count.
pub async fn info(shared: &Shared, p: &Params) -> Result<AdminResponse, AdminError> {
    let cname = p.str("cname");
    let body = if cname.is_empty() {
        let (channels, subscribers) = shared.intake.totals().await?;
        format!(r#"{{"version": "{VERSION}", "channels": {channels}, "subscribers": {subscribers}}}"#)
    } else {
        let k = shared.intake.subscribers_of(cname).await?;
        format!(r#"{{"cname": "{}", "subscribers": {k}}}"#, escape_json(cname))
    };
    Ok(ok(HTML_UTF8, body + "\n"))
}

/// `/check`: which of the comma-separated names exist, in request order.
pub async fn check(shared: &Shared, p: &Params) -> Result<AdminResponse, AdminError> {
    let names = distinct_names(p.str("cname"));
    let exist = shared.intake.exist(&names).await?;
    let found: Vec<String> = names
        .into_iter()
        .zip(exist)
        .filter(|(_, e)| *e)
        .map(|(n, _)| format!(r#""{}": 1"#, escape_json(n)))
        .collect();
    Ok(ok(HTML_UTF8, format!("{{{}}}\n", found.join(", "))))
}

/// Splits a `/check` list at commas, dropping repeated names (a JSON object
/// must not repeat a key). A name without commas is a list of one, and the
/// empty string is the channel `""`.
fn distinct_names(list: &str) -> Vec<&str> {
    let mut seen = HashSet::new();
    list.split(',').filter(|name| seen.insert(*name)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_lists_split_at_commas() {
        assert_eq!(distinct_names("a"), vec!["a"]);
        assert_eq!(distinct_names(""), vec![""]);
        assert_eq!(distinct_names("a,b,a,,c"), vec!["a", "b", "", "c"]);
    }
}
