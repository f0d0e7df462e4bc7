//! The admin IP filter (reference §1.5), with icomet's intended semantics.
//!
//! Entries come from `admin.allow` and `admin.deny`. A value with exactly
//! three dots is an exact IP; `all` or `*` sets the allow-all or deny-all
//! flag; anything else is a plain text prefix (not octet-aware) that matches
//! only a strictly longer address. Unlike icomet, which examined only the one
//! entry sorting right after the address (§11.1), every entry is considered:
//! any matching allow entry passes. Pure logic with no I/O; the listener asks
//! it once per connection.

use std::net::IpAddr;

use crate::config::AdminConfig;

/// One side (allow or deny) of the filter.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Rules {
    exact: Vec<String>,
    prefixes: Vec<String>,
    all: bool,
}

impl Rules {
    fn parse(entries: &[String]) -> Rules {
        let mut r = Rules::default();
        for e in entries.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
            if e == "all" || e == "*" {
                r.all = true;
            } else if e.bytes().filter(|&b| b == b'.').count() == 3 {
                r.exact.push(e.to_string());
            } else {
                r.prefixes.push(e.to_string());
            }
        }
        r
    }

    fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.prefixes.is_empty() && !self.all
    }

    /// Whether an exact or prefix entry matches (the `all` flag is not an entry).
    fn matches(&self, ip: &str) -> bool {
        self.exact.iter().any(|e| e == ip)
            || self
                .prefixes
                .iter()
                .any(|p| ip.len() > p.len() && ip.starts_with(p.as_str()))
    }
}

/// Decides which peers may use the admin listener.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct IpFilter {
    allow: Rules,
    deny: Rules,
}

impl IpFilter {
    /// Builds the filter from allow and deny entries.
    pub fn new(allow: &[String], deny: &[String]) -> IpFilter {
        IpFilter {
            allow: Rules::parse(allow),
            deny: Rules::parse(deny),
        }
    }

    /// Builds the filter from the `admin` config block.
    pub fn from_config(admin: &AdminConfig) -> IpFilter {
        IpFilter::new(&admin.allow, &admin.deny)
    }

    /// Whether `ip` may use the admin listener. IPv4-mapped IPv6 addresses are
    /// matched in their dotted-quad form.
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.allows_text(&ip.to_canonical().to_string())
    }

    /// Whether the address written as `ip` (dotted quad) may pass.
    pub fn allows_text(&self, ip: &str) -> bool {
        if self.allow.is_empty() && self.deny.is_empty() {
            return true;
        }
        if self.allow.matches(ip) {
            return true;
        }
        if self.deny.matches(ip) || self.deny.all {
            return false;
        }
        self.allow.all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(allow: &[&str], deny: &[&str]) -> IpFilter {
        let v = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        IpFilter::new(&v(allow), &v(deny))
    }

    #[test]
    fn no_rules_lets_everyone_pass() {
        let f = filter(&[], &[]);
        assert!(f.allows_text("10.0.0.1"));
        assert!(f.allows("127.0.0.1".parse().expect("literal")));
        assert!(filter(&[" ", ""], &[]).allows_text("1.2.3.4"));
    }

    #[test]
    fn stock_config() {
        let f = filter(&["127.0.0.1", "192.168"], &["all"]);
        assert!(f.allows_text("127.0.0.1"));
        assert!(f.allows_text("192.168.1.1"));
        assert!(!f.allows_text("127.0.0.2"));
        assert!(!f.allows_text("10.0.0.1"));
    }

    #[test]
    fn shadowing_example_now_passes() {
        let f = filter(&["127.0", "127.0.0.9"], &[]);
        for ip in ["127.0.0.1", "127.0.0.5", "127.0.0.10", "127.0.1.1", "127.0.0.9"] {
            assert!(f.allows_text(ip), "{ip}");
        }
        assert!(!f.allows_text("128.0.0.1"));
    }

    #[test]
    fn prefixes_are_text_and_strictly_shorter() {
        let f = filter(&["192.16", "10"], &[]);
        assert!(f.allows_text("192.168.1.1"));
        assert!(f.allows_text("192.16.0.1"));
        assert!(f.allows_text("100.1.2.3"));
        assert!(!f.allows_text("10"));
        assert!(!f.allows_text("11.0.0.1"));
    }

    #[test]
    fn exact_entries_need_three_dots() {
        let f = filter(&["127.0.0.1"], &[]);
        assert!(f.allows_text("127.0.0.1"));
        assert!(!f.allows_text("127.0.0.10"));
    }

    #[test]
    fn any_rule_and_no_match_refuses() {
        assert!(!filter(&["10.1.2.3"], &[]).allows_text("127.0.0.1"));
        assert!(!filter(&[], &["10.1.2.3"]).allows_text("127.0.0.1"));
    }

    #[test]
    fn decision_order() {
        // An allow entry beats a deny entry and deny-all.
        let f = filter(&["10.0.0.1"], &["10.0", "all"]);
        assert!(f.allows_text("10.0.0.1"));
        assert!(!f.allows_text("10.0.0.2"));
        // Deny entries and deny-all beat allow-all.
        let f = filter(&["all"], &["10.0"]);
        assert!(f.allows_text("11.0.0.1"));
        assert!(!f.allows_text("10.0.0.1"));
        assert!(!filter(&["*"], &["*"]).allows_text("11.0.0.1"));
    }

    #[test]
    fn mapped_ipv6_is_matched_as_ipv4() {
        let f = filter(&["127.0.0.1"], &["all"]);
        assert!(f.allows("::ffff:127.0.0.1".parse().expect("literal")));
        assert!(!f.allows("::1".parse().expect("literal")));
    }
}
