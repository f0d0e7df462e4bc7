//! The Lua scripts (in `lua/`, each documented at its top) as `redis::Script`
//! values, and the helpers that read their replies.
//!
//! `Script` runs EVALSHA and, on NOSCRIPT (a restarted Redis has an empty
//! script cache), loads the script and retries once, so no separate
//! SCRIPT LOAD phase exists. Replies are parsed strictly: anything the
//! contract does not allow is a [`ClusterError::Reply`], never a panic.

use std::sync::LazyLock;

use redis::{Script, Value};

use super::error::{ClusterError, ClusterResult};
use super::wire::Epoch;

/// publish.lua: one or more channels, one or more data messages each.
pub(crate) static PUBLISH: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/publish.lua")));
/// broadcast.lua: one page of channels.
pub(crate) static BROADCAST: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/broadcast.lua")));
/// history.lua: epoch, top seq, entries after a seq.
pub(crate) static HISTORY: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/history.lua")));
/// history_many.lua: history.lua for many channels in one call.
pub(crate) static HISTORY_MANY: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/history_many.lua")));
/// touch_many.lua: sign.lua's create-and-touch for many channels, no answer.
pub(crate) static TOUCH_MANY: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/touch_many.lua")));
/// sign.lua: create if absent, touch the index, oldest seq.
pub(crate) static SIGN: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/sign.lua")));
/// close.lua: close or clear.
pub(crate) static CLOSE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/close.lua")));
/// reap.lua: free expired channels.
pub(crate) static REAP: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/reap.lua")));
/// index.lua: index and registry operations that need Redis's clock.
pub(crate) static INDEX: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/index.lua")));

/// A reply that is nil (RESP2 nil, RESP3 null, or Lua `false` under RESP3).
pub(crate) fn is_nil(v: &Value) -> bool {
    matches!(v, Value::Nil | Value::Boolean(false))
}

/// An integer reply (Redis sends some integers as strings).
pub(crate) fn int(v: &Value, what: &str) -> ClusterResult<i64> {
    let parsed = match v {
        Value::Int(i) => Some(*i),
        Value::BulkString(b) => std::str::from_utf8(b).ok().and_then(|s| s.parse().ok()),
        Value::SimpleString(s) => s.parse().ok(),
        _ => None,
    };
    parsed.ok_or_else(|| ClusterError::Reply(format!("{what}: expected an integer, got {v:?}")))
}

/// A seq reply: an integer within i32.
pub(crate) fn seq(v: &Value, what: &str) -> ClusterResult<i32> {
    let i = int(v, what)?;
    i32::try_from(i).map_err(|_| ClusterError::Reply(format!("{what}: seq {i} is outside i32")))
}

/// A string reply's bytes.
pub(crate) fn bytes(v: Value, what: &str) -> ClusterResult<Vec<u8>> {
    match v {
        Value::BulkString(b) => Ok(b),
        Value::SimpleString(s) => Ok(s.into_bytes()),
        other => Err(ClusterError::Reply(format!("{what}: expected a string, got {other:?}"))),
    }
}

/// An epoch reply.
pub(crate) fn epoch(v: &Value, what: &str) -> ClusterResult<Epoch> {
    match v {
        Value::BulkString(b) => Epoch::parse(b).map_err(|e| ClusterError::Reply(format!("{what}: {e}"))),
        other => Err(ClusterError::Reply(format!("{what}: expected an epoch, got {other:?}"))),
    }
}

/// An array reply.
pub(crate) fn array(v: Value, what: &str) -> ClusterResult<Vec<Value>> {
    match v {
        Value::Array(a) | Value::Set(a) => Ok(a),
        other => Err(ClusterError::Reply(format!("{what}: expected an array, got {other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_helpers_refuse_wrong_shapes() {
        assert_eq!(int(&Value::Int(5), "x").ok(), Some(5));
        assert_eq!(int(&Value::BulkString(b"-3".to_vec()), "x").ok(), Some(-3));
        assert!(int(&Value::BulkString(b"x".to_vec()), "x").is_err());
        assert!(int(&Value::Nil, "x").is_err());
        assert!(seq(&Value::Int(1 << 40), "x").is_err());
        assert_eq!(seq(&Value::Int(-2147483648), "x").ok(), Some(i32::MIN));
        assert!(bytes(Value::Int(1), "x").is_err());
        assert!(epoch(&Value::BulkString(b"zz".to_vec()), "x").is_err());
        assert!(array(Value::Int(1), "x").is_err());
        assert!(is_nil(&Value::Nil) && is_nil(&Value::Boolean(false)) && !is_nil(&Value::Int(0)));
    }
}
