//! Open front connections per client address, for
//! `front.max_connections_per_ip`.
//!
//! Workers accept from one shared listener, so the counts are server-wide:
//! a table split into shards (by key) so that workers accepting at the same
//! moment rarely wait for each other. A connection remembers only its
//! 32-bit key (see [`client_key`]), which keeps `Conn` at its size.
//!
//! The cap can change while the server runs (a reload): connections are
//! counted only while a cap is set, so a cap set at run time counts the
//! connections accepted from then on; one lowered below a client's count
//! closes nothing and refuses that client's new connections until its
//! count is below the cap.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

use ahash::AHashMap;

use crate::mailbox::lock;

const SHARDS: usize = 16;

/// The key a client address is counted under; never 0 (0 means "not counted").
///
/// IPv4 addresses (and IPv4-mapped IPv6 ones) are their own 32-bit value.
/// An IPv6 client is counted by its /64 prefix, since one host usually holds
/// a whole /64, folded to 32 bits: two prefixes can share a key, which at
/// worst makes their cap shared.
pub fn client_key(ip: IpAddr) -> u32 {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    let key = match ip {
        IpAddr::V4(v4) => u32::from(v4),
        IpAddr::V6(v6) => {
            let prefix = u64::from_be_bytes(v6.octets()[..8].try_into().unwrap_or_default());
            // A fixed odd multiplier spreads the prefix before folding.
            let mixed = prefix.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            (mixed >> 32) as u32 ^ mixed as u32
        }
    };
    key.max(1)
}

/// Per-key connection counts with a cap.
#[derive(Debug)]
pub struct PerIp {
    /// Connections allowed per key; 0: no cap, nothing counted.
    cap: AtomicU32,
    shards: Vec<Mutex<AHashMap<u32, u32>>>,
}

impl PerIp {
    /// A table allowing `cap` connections per key (0: no cap).
    pub fn new(cap: u32) -> PerIp {
        PerIp {
            cap: AtomicU32::new(cap),
            shards: (0..SHARDS).map(|_| Mutex::new(AHashMap::new())).collect(),
        }
    }

    /// The cap in force (0: none).
    pub fn cap(&self) -> u32 {
        self.cap.load(Ordering::Relaxed)
    }

    /// Changes the cap (a reload); see the module notes.
    pub fn set_cap(&self, cap: u32) {
        self.cap.store(cap, Ordering::Relaxed);
    }

    /// Whether a cap is set, so that accepting needs the peer's address.
    pub fn enabled(&self) -> bool {
        self.cap() > 0
    }

    /// Decides a new connection from `peer`: `Some(key)` to remember and
    /// release on close (0 when nothing was counted: no cap, or no address),
    /// `None` when the address is at its cap.
    pub fn admit(&self, peer: Option<IpAddr>) -> Option<u32> {
        match peer {
            Some(ip) if self.enabled() => {
                let key = client_key(ip);
                self.acquire(key).then_some(key)
            }
            _ => Some(0),
        }
    }

    fn shard(&self, key: u32) -> &Mutex<AHashMap<u32, u32>> {
        &self.shards[key as usize % SHARDS]
    }

    /// Counts one more connection for `key`; false (and nothing counted) if
    /// the key is at its cap.
    pub fn acquire(&self, key: u32) -> bool {
        let mut m = lock(self.shard(key));
        let cap = self.cap();
        let n = m.entry(key).or_insert(0);
        if *n >= cap {
            if *n == 0 {
                m.remove(&key);
            }
            return false;
        }
        *n += 1;
        true
    }

    /// Forgets one connection of `key`.
    pub fn release(&self, key: u32) {
        let mut m = lock(self.shard(key));
        if let Some(n) = m.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                m.remove(&key);
            }
        }
    }

    /// Connections counted for `key`.
    pub fn count(&self, key: u32) -> u32 {
        lock(self.shard(key)).get(&key).copied().unwrap_or(0)
    }

    /// Keys with at least one connection.
    pub fn keys(&self) -> usize {
        self.shards.iter().map(|s| lock(s).len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_each_key_and_forgets_empty_ones() {
        let t = PerIp::new(2);
        let (a, b) = (client_key("127.0.0.2".parse().expect("ip")), 7);
        assert!(t.acquire(a) && t.acquire(a));
        assert!(!t.acquire(a), "third connection of a");
        assert!(t.acquire(b), "b is counted apart");
        assert_eq!((t.count(a), t.count(b)), (2, 1));
        t.release(a);
        assert!(t.acquire(a));
        t.release(a);
        t.release(a);
        t.release(b);
        assert_eq!(t.keys(), 0);
        t.release(b);
        assert_eq!(t.count(b), 0, "a stray release does not underflow");
    }

    #[test]
    fn the_cap_changes_at_run_time() {
        let ip: IpAddr = "127.0.0.3".parse().expect("ip");
        let key = client_key(ip);
        let t = PerIp::new(0);
        assert!(!t.enabled());
        assert_eq!(t.admit(Some(ip)), Some(0), "no cap: admitted, not counted");
        assert_eq!(t.keys(), 0);
        t.set_cap(2);
        assert!(t.enabled());
        assert_eq!(t.admit(None), Some(0), "no address: admitted, not counted");
        assert_eq!(t.admit(Some(ip)), Some(key));
        assert_eq!(t.admit(Some(ip)), Some(key));
        assert_eq!(t.admit(Some(ip)), None, "at the cap");
        t.set_cap(1);
        assert_eq!(t.count(key), 2, "lowering the cap closes nothing");
        t.release(key);
        assert_eq!(t.admit(Some(ip)), None, "still at the new cap");
        t.release(key);
        assert_eq!(t.admit(Some(ip)), Some(key));
        t.set_cap(0);
        assert_eq!(t.admit(Some(ip)), Some(0), "cap removed");
        t.release(key);
        assert_eq!(t.keys(), 0);
        let zero = PerIp::new(0);
        assert!(!zero.acquire(key), "acquire with cap 0 refuses");
        assert_eq!(zero.keys(), 0, "and leaves no entry behind");
    }

    #[test]
    fn keys_follow_the_address() {
        let k = |s: &str| client_key(s.parse().expect("ip"));
        assert_eq!(k("127.0.0.1"), 0x7f00_0001);
        assert_eq!(k("::ffff:127.0.0.1"), k("127.0.0.1"));
        assert_eq!(k("0.0.0.0"), 1);
        assert_eq!(k("2001:db8:1:2::1"), k("2001:db8:1:2:ffff::9"), "same /64");
        assert_ne!(k("2001:db8:1:2::1"), k("2001:db8:1:3::1"));
        assert_ne!(k("2001:db8::1"), 0);
    }
}
