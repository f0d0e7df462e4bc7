//! The channels of one connection. Every connection holds the channel named
//! in its URL; a WebSocket connection with `--ws-channels K` holds K-1 more,
//! joined with `sub` commands. This module owns the rule that picks them
//! (connection `i` holds channels `(i + j) mod N`, `j` = 0..K-1), the lookup
//! from a frame's `cname` back to `j`, the per-subscription counters
//! ([`Chan`]) and the extra state of a WebSocket connection ([`WsLink`]).
//! What a message does to those counters is in `conn`; no sockets here.

use std::io::Write;

use crate::conn::RunInfo;
use crate::ws::{self, WsStream};

/// Delivery state of one subscription of a connection that holds several
/// channels (with one, the connection's own [`crate::conn::Sub`] is it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Chan {
    /// Next message number not yet received on this channel.
    pub next_msg: u32,
    /// Distinct messages received on this channel.
    pub received: u32,
    /// Has seen its first frame (the answer to the subscription).
    pub subscribed: bool,
}

/// What a WebSocket connection has beyond a subscriber's common state.
#[derive(Debug, Default)]
pub struct WsLink {
    /// Reader of the `101` and the server's frames.
    pub reader: WsStream,
    /// One entry per channel when the connection holds more than one;
    /// empty otherwise.
    pub chans: Vec<Chan>,
    /// Frames to send (`sub` commands, pongs) not yet written.
    pub out: Vec<u8>,
    /// Bytes of `out` already written.
    pub out_off: usize,
}

impl WsLink {
    /// The state of a new WebSocket connection holding `channels` channels.
    pub fn new(channels: u32) -> WsLink {
        let chans = if channels > 1 {
            vec![Chan::default(); channels as usize]
        } else {
            Vec::new()
        };
        WsLink {
            chans,
            ..WsLink::default()
        }
    }

    /// True while some of `out` is unwritten.
    pub fn has_output(&self) -> bool {
        self.out_off < self.out.len()
    }
}

impl RunInfo {
    /// The channel number of subscription `j` of connection `index`.
    pub fn channel_of(&self, index: u32, j: u32) -> u32 {
        // Both terms are below `channels`, so the sum cannot overflow.
        (index % self.channels + j % self.channels) % self.channels
    }

    /// Which of connection `index`'s subscriptions a frame's `cname`
    /// belongs to, or `None` when it is none of its channels.
    pub fn subscription(&self, index: u32, cname: &[u8]) -> Option<usize> {
        let channel = self.channel_number(cname)?;
        let (c, n) = (u64::from(channel), u64::from(self.channels));
        let j = (c + n - u64::from(index) % n) % n;
        (j < u64::from(self.ws_channels)).then_some(j as usize)
    }

    /// The channel number in `<prefix><number>`, when `cname` is exactly
    /// that (decimal without leading zeros) and the number is below `channels`.
    fn channel_number(&self, cname: &[u8]) -> Option<u32> {
        let digits = cname.strip_prefix(self.prefix.as_bytes())?;
        let canonical = match digits {
            [b'0'] => true,
            [first, ..] => *first != b'0' && digits.len() <= 10,
            [] => false,
        };
        if !canonical || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let n = digits.iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0'));
        u32::try_from(n).ok().filter(|&n| n < self.channels)
    }

    /// Appends the `sub` commands a WebSocket connection sends once
    /// upgraded: one masked text frame for each channel after the URL's.
    pub fn push_sub_commands(&self, index: u32, out: &mut Vec<u8>) {
        let mut text = Vec::with_capacity(64);
        for j in 1..self.ws_channels {
            text.clear();
            let channel = self.channel_of(index, j);
            // Writing into a Vec cannot fail.
            let _ = write!(
                text,
                "{{\"type\":\"sub\",\"cname\":\"{}{channel}\",\"seq\":0",
                self.prefix
            );
            if let Some(token) = self.tokens.get(channel as usize) {
                // base64url and dots: nothing to escape in JSON.
                let _ = write!(text, ",\"token\":\"{token}\"");
            }
            text.push(b'}');
            ws::push_text(out, &text);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::{Mode, Transport};

    fn run(channels: u32, ws_channels: u32) -> RunInfo {
        RunInfo {
            transport: Transport::Ws,
            mode: Mode::Push,
            messages: 1,
            run: 1,
            prefix: "load".into(),
            channels,
            ws_channels,
            tokens: std::sync::Arc::from(Vec::new()),
        }
    }

    #[test]
    fn the_channel_rule() {
        let r = run(10, 3);
        assert_eq!([0, 1, 2].map(|j| r.channel_of(13, j)), [3, 4, 5]);
        assert_eq!([0, 1, 2].map(|j| r.channel_of(9, j)), [9, 0, 1]);
        assert_eq!(r.channel_of(u32::MAX, 9), (u32::MAX % 10 + 9) % 10);
        // Every channel gets K times its share: 100 connections over 10
        // channels with 3 each give 30 subscribers per channel.
        let mut per_channel = [0u32; 10];
        for i in 0..100 {
            let mut mine: Vec<u32> = (0..3).map(|j| r.channel_of(i, j)).collect();
            for &c in &mine {
                per_channel[c as usize] += 1;
            }
            mine.sort_unstable();
            mine.dedup();
            assert_eq!(mine.len(), 3, "connection {i} holds distinct channels");
        }
        assert_eq!(per_channel, [30; 10]);
        // A channel per connection: still every channel, K subscribers each.
        let r = run(1000, 4);
        let mut per_channel = vec![0u32; 1000];
        for i in 0..1000 {
            for j in 0..4 {
                per_channel[r.channel_of(i, j) as usize] += 1;
            }
        }
        assert!(per_channel.iter().all(|&n| n == 4));
    }

    #[test]
    fn cname_lookup() {
        let r = run(10, 3);
        assert_eq!(r.subscription(13, b"load3"), Some(0));
        assert_eq!(r.subscription(13, b"load4"), Some(1));
        assert_eq!(r.subscription(13, b"load5"), Some(2));
        assert_eq!(r.subscription(13, b"load6"), None);
        assert_eq!(r.subscription(13, b"load2"), None);
        assert_eq!(r.subscription(9, b"load1"), Some(2), "wraps around");
        assert_eq!(r.subscription(9, b"load0"), Some(1));
        for bad in [
            &b"load03"[..],
            b"load",
            b"xload3",
            b"load3x",
            b"load10",
            b"load-3",
            b"load99999999999",
        ] {
            assert_eq!(r.subscription(13, bad), None, "{}", String::from_utf8_lossy(bad));
        }
        let one = run(10, 1);
        assert_eq!(one.subscription(13, b"load3"), Some(0));
        assert_eq!(one.subscription(13, b"load4"), None);
        let wide = run(u32::MAX, 1);
        assert_eq!(wide.subscription(u32::MAX - 1, b"load4294967294"), Some(0));
        assert_eq!(wide.subscription(0, b"load0"), Some(0));
    }

    #[test]
    fn sub_commands() {
        let r = run(10, 3);
        let mut out = Vec::new();
        r.push_sub_commands(9, &mut out);
        let mut expected = Vec::new();
        ws::push_text(&mut expected, br#"{"type":"sub","cname":"load0","seq":0}"#);
        ws::push_text(&mut expected, br#"{"type":"sub","cname":"load1","seq":0}"#);
        assert_eq!(out, expected);
        out.clear();
        run(10, 1).push_sub_commands(9, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn sub_commands_carry_the_channels_token() {
        let mut r = run(3, 2);
        r.tokens = std::sync::Arc::from(vec!["t0".to_string(), "t1".into(), "t2".into()]);
        let mut out = Vec::new();
        r.push_sub_commands(2, &mut out);
        let mut expected = Vec::new();
        ws::push_text(&mut expected, br#"{"type":"sub","cname":"load0","seq":0,"token":"t0"}"#);
        assert_eq!(out, expected);
    }

    #[test]
    fn links() {
        assert!(WsLink::new(1).chans.is_empty());
        let l = WsLink::new(4);
        assert_eq!(l.chans, vec![Chan::default(); 4]);
        assert!(!l.has_output());
    }
}
