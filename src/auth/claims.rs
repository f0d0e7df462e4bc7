//! The claims comet reads from a verified token, and the checks on them:
//! time (`exp`, `nbf` with the leeway), audience, issuer and the channel
//! grant (`channels` with its prefix form, or `cname`).
//!
//! Plain synchronous code on already-verified claims: it never sees a
//! signature or a key, and it is only called after the signature passed.

use serde::Deserialize;

use super::JwtError;

/// The claims comet looks at; every other claim is ignored.
#[derive(Debug, Deserialize)]
pub(super) struct Claims {
    /// The subject, passed on to hooks.
    pub sub: Option<String>,
    /// Expiry, seconds since the epoch (a JSON number; fractions allowed).
    pub exp: Option<f64>,
    /// Not before, seconds since the epoch.
    pub nbf: Option<f64>,
    /// Channels granted: exact names, or prefixes written `prefix*`.
    pub channels: Option<Vec<String>>,
    /// One channel granted, exactly.
    pub cname: Option<String>,
    /// Audience: one string or an array of strings.
    pub aud: Option<Audience>,
    /// Issuer.
    pub iss: Option<String>,
}

/// The two forms RFC 7519 allows for `aud`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum Audience {
    /// `"aud": "comet"`.
    One(String),
    /// `"aud": ["comet", "other"]`.
    Many(Vec<String>),
}

impl Audience {
    fn contains(&self, want: &str) -> bool {
        match self {
            Audience::One(a) => a == want,
            Audience::Many(list) => list.iter().any(|a| a == want),
        }
    }
}

/// What the checks compare against, taken from the configuration.
pub(super) struct Expect<'a> {
    /// Seconds of tolerated clock skew.
    pub leeway: u64,
    /// Required `aud` member, if any.
    pub audience: Option<&'a str>,
    /// Required `iss`, if any.
    pub issuer: Option<&'a str>,
}

impl Claims {
    /// Runs every claim check for a subscription to `cname` at `now`
    /// (seconds since the epoch). Order: expiry, not-before, issuer,
    /// audience, channel; the first failure is returned.
    pub fn check(&self, cname: &str, now: u64, expect: &Expect<'_>) -> Result<(), JwtError> {
        check_time(self.exp, self.nbf, now, expect.leeway)?;
        if let Some(want) = expect.issuer {
            if self.iss.as_deref() != Some(want) {
                return Err(JwtError::WrongIssuer);
            }
        }
        if let Some(want) = expect.audience {
            if !self.aud.as_ref().is_some_and(|a| a.contains(want)) {
                return Err(JwtError::WrongAudience);
            }
        }
        if channel_allowed(self.channels.as_deref(), self.cname.as_deref(), cname) {
            Ok(())
        } else {
            Err(JwtError::ChannelNotAllowed)
        }
    }
}

/// The time rules, with `now` in whole seconds since the epoch:
///
/// - `exp` is required; the token is valid while `now < exp + leeway`
///   (RFC 7519 4.1.4: "on or after" the expiry it is refused).
/// - `nbf` is optional; the token is valid from `now + leeway >= nbf`
///   (RFC 7519 4.1.5).
pub(super) fn check_time(exp: Option<f64>, nbf: Option<f64>, now: u64, leeway: u64) -> Result<(), JwtError> {
    // Seconds since the epoch fit an f64 exactly for the next 285 million years.
    let (now, leeway) = (now as f64, leeway as f64);
    let exp = exp.ok_or(JwtError::Malformed("no exp claim"))?;
    if now >= exp + leeway {
        return Err(JwtError::Expired);
    }
    if nbf.is_some_and(|nbf| now + leeway < nbf) {
        return Err(JwtError::NotYetValid);
    }
    Ok(())
}

/// Whether the token grants `cname`. The rule, exactly:
///
/// - a `cname` claim grants the one channel of that name (byte for byte);
/// - each `channels` entry that does not end in `*` grants the channel of
///   that name; an entry that ends in `*` grants every channel whose name
///   starts with the entry without its final `*`, compared byte for byte.
///   So `chat.*` grants `chat.1` and `chat.` but neither `chat` nor
///   `chatroom`; `chat*` grants all three; a lone `*` grants every channel.
///   Only the last character is special: `a*b` is an exact name.
/// - either claim granting is enough; a token with neither grants nothing.
pub fn channel_allowed(channels: Option<&[String]>, cname_claim: Option<&str>, cname: &str) -> bool {
    if cname_claim == Some(cname) {
        return true;
    }
    channels.is_some_and(|list| {
        list.iter().any(|entry| match entry.strip_suffix('*') {
            Some(prefix) => cname.starts_with(prefix),
            None => entry == cname,
        })
    })
}
