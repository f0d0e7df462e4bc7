//! Names of every Redis key and PUB/SUB channel comet uses, all under one
//! prefix (scaleout-research §5.2). Per-channel names carry the channel name
//! as a `{cname}` hash tag, so one channel's keys would share a Redis Cluster
//! slot. This module builds strings and nothing else.
//!
//! ```text
//! <p>:{<cname>}:m        HASH  e = epoch, s = last seq (wrapping i32)
//! <p>:{<cname>}:h        LIST  history entries (wire.rs), oldest first
//! <p>:{<cname>}          PUB/SUB  the channel's messages and controls
//! <p>:online             ZSET  cname -> expiry (ms, Redis clock): the channel index
//! <p>:nodes              HASH  node id -> "<ts_ms> <subscribers> <channels>"
//! <p>:reaper             STRING the reaper lock (node id, PX)
//! <p>:psub               PUB/SUB  presence lines "1 c" / "0 c"
//! <p>:ctl                PUB/SUB  survey requests
//! <p>:reply:<node>       PUB/SUB  survey answers to one node
//! <p>:probe:<node>:<c>   PUB/SUB  liveness probes of one connection
//! ```
//!
//! The maps are injective: every per-channel name ends in a suffix no other
//! kind ends in (`}:m`, `}:h`, `}`), and no service name contains `:{`.

/// Key and channel names under one prefix.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
    channel_prefix: String,
}

impl Keys {
    /// Names under `prefix` (validated by `ClusterConfig::validate`).
    pub fn new(prefix: &str) -> Keys {
        Keys {
            prefix: prefix.to_string(),
            channel_prefix: format!("{prefix}:{{"),
        }
    }

    /// The channel's meta hash.
    pub fn meta(&self, cname: &str) -> String {
        format!("{}{cname}}}:m", self.channel_prefix)
    }

    /// The channel's history list.
    pub fn hist(&self, cname: &str) -> String {
        format!("{}{cname}}}:h", self.channel_prefix)
    }

    /// [`Keys::meta`] of a name read back from Redis as bytes.
    pub fn meta_raw(&self, cname: &[u8]) -> Vec<u8> {
        [self.channel_prefix.as_bytes(), cname, b"}:m"].concat()
    }

    /// [`Keys::hist`] of a name read back from Redis as bytes.
    pub fn hist_raw(&self, cname: &[u8]) -> Vec<u8> {
        [self.channel_prefix.as_bytes(), cname, b"}:h"].concat()
    }

    /// The channel's PUB/SUB channel.
    pub fn channel(&self, cname: &str) -> String {
        format!("{}{cname}}}", self.channel_prefix)
    }

    /// What every channel's PUB/SUB name starts with (`<p>:{`).
    pub fn channel_prefix(&self) -> &str {
        &self.channel_prefix
    }

    /// The channel name inside a PUB/SUB channel name, if it is one.
    pub fn cname_of<'a>(&self, channel: &'a [u8]) -> Option<&'a [u8]> {
        channel.strip_prefix(self.channel_prefix.as_bytes())?.strip_suffix(b"}")
    }

    /// The channel index.
    pub fn online(&self) -> String {
        format!("{}:online", self.prefix)
    }

    /// The node registry.
    pub fn nodes(&self) -> String {
        format!("{}:nodes", self.prefix)
    }

    /// The reaper lock.
    pub fn reaper(&self) -> String {
        format!("{}:reaper", self.prefix)
    }

    /// The presence channel.
    pub fn psub(&self) -> String {
        format!("{}:psub", self.prefix)
    }

    /// The survey request channel.
    pub fn ctl(&self) -> String {
        format!("{}:ctl", self.prefix)
    }

    /// The survey answer channel of `node`.
    pub fn reply(&self, node: &str) -> String {
        format!("{}:reply:{node}", self.prefix)
    }

    /// The probe channel of connection `conn` of `node`.
    pub fn probe(&self, node: &str, conn: &str) -> String {
        format!("{}:probe:{node}:{conn}", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::Keys;

    #[test]
    fn names() {
        let k = Keys::new("comet");
        assert_eq!(k.meta("a b"), "comet:{a b}:m");
        assert_eq!(k.hist("x"), "comet:{x}:h");
        assert_eq!(k.channel("x}y"), "comet:{x}y}");
        assert_eq!(k.cname_of(b"comet:{x}y}"), Some(&b"x}y"[..]));
        assert_eq!(k.cname_of(b"comet:{}"), Some(&b""[..]));
        assert_eq!(k.cname_of(b"comet:psub"), None);
        assert_eq!(k.cname_of(b"other:{x}"), None);
        assert_eq!(k.meta_raw(b"a b"), k.meta("a b").into_bytes());
        assert_eq!(k.hist_raw(b"x"), k.hist("x").into_bytes());
        assert_eq!(k.online(), "comet:online");
        assert_eq!(k.nodes(), "comet:nodes");
        assert_eq!(k.reaper(), "comet:reaper");
        assert_eq!(k.psub(), "comet:psub");
        assert_eq!(k.ctl(), "comet:ctl");
        assert_eq!(k.reply("n1"), "comet:reply:n1");
        assert_eq!(k.probe("n1", "d0"), "comet:probe:n1:d0");
    }

    #[test]
    fn service_names_are_never_channel_names() {
        let k = Keys::new("comet");
        for s in [
            k.online(),
            k.nodes(),
            k.reaper(),
            k.psub(),
            k.ctl(),
            k.reply("n"),
            k.probe("n", "c"),
        ] {
            assert_eq!(k.cname_of(s.as_bytes()), None, "{s}");
        }
    }
}
