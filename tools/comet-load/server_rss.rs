//! The server's resident memory at the run's three quiet moments (see
//! [`Point`]), read from the `rss_bytes` field of the admin's `/stats` JSON:
//! parsing that body, keeping the samples, and writing them for the report.
//! A server without the field (the bare C floor, icomet) gets `null`s and a
//! note saying why, never an error of the run. No I/O here: the publisher
//! fetches `/stats` and hands the body in.

use std::fmt::Write as _;

use crate::reach::Point;

/// Why a `/stats` body gave no resident size.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RssError {
    /// The body has no `"rss_bytes"` member.
    #[error("/stats has no rss_bytes field")]
    Absent,
    /// The member's value is not a whole number of bytes.
    #[error("/stats rss_bytes is not a whole number")]
    NotANumber,
    /// The server reports 0: it could not read its own resident size.
    #[error("/stats rss_bytes is 0 (the server could not read its RSS)")]
    Unknown,
}

/// The value of the `"rss_bytes"` member of a `/stats` JSON body. The body
/// is a flat object of numbers (nested objects hold other keys), so the
/// first member of that name is the one.
pub fn parse_rss(body: &str) -> Result<u64, RssError> {
    const KEY: &str = "\"rss_bytes\"";
    let at = body.find(KEY).ok_or(RssError::Absent)?;
    let rest = body[at + KEY.len()..].trim_start();
    let rest = rest.strip_prefix(':').ok_or(RssError::NotANumber)?.trim_start();
    let end = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
    let tail = rest[end..].trim_start();
    if end == 0 || !(tail.is_empty() || tail.starts_with(',') || tail.starts_with('}')) {
        return Err(RssError::NotANumber);
    }
    match rest[..end].parse::<u64>() {
        Ok(0) => Err(RssError::Unknown),
        Ok(n) => Ok(n),
        Err(_) => Err(RssError::NotANumber),
    }
}

/// The samples of one run; `None` where a sample was not taken.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerRss {
    /// Every subscriber ready, nothing published.
    pub ready: Option<u64>,
    /// After the first message reached every subscriber.
    pub after_first: Option<u64>,
    /// After the last message reached every subscriber.
    pub after_last: Option<u64>,
    /// Why the first missing sample is missing.
    pub note: Option<String>,
}

impl ServerRss {
    /// Records the outcome of sampling at `point`.
    pub fn set(&mut self, point: Point, sample: Result<u64, String>) {
        let value = match sample {
            Ok(v) => Some(v),
            Err(why) => {
                self.note.get_or_insert(why);
                None
            }
        };
        match point {
            Point::Ready => self.ready = value,
            Point::AfterFirst => self.after_first = value,
            Point::AfterLast => self.after_last = value,
        }
    }

    /// The sample taken at `point`.
    pub fn get(&self, point: Point) -> Option<u64> {
        match point {
            Point::Ready => self.ready,
            Point::AfterFirst => self.after_first,
            Point::AfterLast => self.after_last,
        }
    }

    /// The JSON members `"server_rss_ready":N,...` (`null` when not taken)
    /// and `"server_rss_note"` (why one is missing, or `null`), without
    /// surrounding braces.
    pub fn json_members(&self) -> String {
        let mut s = String::new();
        for p in [Point::Ready, Point::AfterFirst, Point::AfterLast] {
            let _ = match self.get(p) {
                Some(v) => write!(s, "\"{}\":{v},", p.key()),
                None => write!(s, "\"{}\":null,", p.key()),
            };
        }
        match &self.note {
            Some(note) => {
                s.push_str("\"server_rss_note\":\"");
                json_escape(note, &mut s);
                s.push('"');
            }
            None => s.push_str("\"server_rss_note\":null"),
        }
        s
    }

    /// One line for the human summary (no newline).
    pub fn human(&self) -> String {
        let mib = |v: Option<u64>| match v {
            Some(b) => format!("{:.1} MiB", b as f64 / 1_048_576.0),
            None => "-".to_string(),
        };
        let mut s = format!(
            "server RSS (admin /stats): all ready {}, after the first message {}, after the last {}",
            mib(self.ready),
            mib(self.after_first),
            mib(self.after_last)
        );
        if let Some(note) = &self.note {
            let _ = write!(s, " ({note})");
        }
        s
    }
}

/// Appends `text` as the inside of a JSON string.
fn json_escape(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rss_bytes_from_stats() {
        let comet = r#"{"uptime_secs":7,"connections":10,"connections_by_transport":{"stream":1,"sse":2},"channels":4,"subscribers":6,"published":11,"delivered":22,"slow_consumer_drops":1,"refused_connections":5,"accepted_connections":15,"presence_drops":0,"rss_bytes":158334976,"workers_dead":0}"#;
        assert_eq!(parse_rss(comet), Ok(158_334_976));
        assert_eq!(parse_rss("{\"rss_bytes\" : 4096 }\n"), Ok(4096));
        assert_eq!(parse_rss("{\"a\":1,\"rss_bytes\":4096}"), Ok(4096));
    }

    #[test]
    fn says_why_there_is_no_rss() {
        // The floor's /stats.
        assert_eq!(parse_rss("{\"delivered\":1000000}\n"), Err(RssError::Absent));
        assert_eq!(parse_rss(""), Err(RssError::Absent));
        assert_eq!(parse_rss("{\"rss_bytes_total\":5}"), Err(RssError::Absent));
        assert_eq!(parse_rss("{\"rss_bytes\":0}"), Err(RssError::Unknown));
        for bad in [
            "{\"rss_bytes\":null}",
            "{\"rss_bytes\":\"5\"}",
            "{\"rss_bytes\":-5}",
            "{\"rss_bytes\":5.5}",
            "{\"rss_bytes\":5e3}",
            "{\"rss_bytes\" 5}",
            "{\"rss_bytes\":",
            "{\"rss_bytes\":99999999999999999999999}",
        ] {
            assert_eq!(parse_rss(bad), Err(RssError::NotANumber), "{bad}");
        }
        assert_eq!(parse_rss("{\"rss_bytes\":12"), Ok(12), "a cut body still names it");
    }

    #[test]
    fn json_members_and_notes() {
        let mut r = ServerRss::default();
        assert_eq!(
            r.json_members(),
            "\"server_rss_ready\":null,\"server_rss_after_first\":null,\"server_rss_after_last\":null,\
             \"server_rss_note\":null"
        );
        r.set(Point::Ready, Ok(1_048_576));
        r.set(Point::AfterFirst, Err("message 0 reached 3 of 4".into()));
        r.set(Point::AfterLast, Err("later reason".into()));
        assert_eq!(
            r.json_members(),
            "\"server_rss_ready\":1048576,\"server_rss_after_first\":null,\"server_rss_after_last\":null,\
             \"server_rss_note\":\"message 0 reached 3 of 4\""
        );
        assert_eq!(
            r.human(),
            "server RSS (admin /stats): all ready 1.0 MiB, after the first message -, after the last - \
             (message 0 reached 3 of 4)"
        );
        r.set(Point::AfterLast, Ok(3 * 1_048_576 / 2));
        assert_eq!(r.get(Point::AfterLast), Some(1_572_864));
        assert!(r.json_members().contains(",\"server_rss_after_last\":1572864,"));
    }

    #[test]
    fn notes_are_valid_json_strings() {
        let mut r = ServerRss::default();
        r.set(Point::Ready, Err("/stats: \"x\" \\ \n\u{1}é".into()));
        assert!(
            r.json_members()
                .ends_with(r#""server_rss_note":"/stats: \"x\" \\ \u000a\u0001é""#),
            "{}",
            r.json_members()
        );
    }
}
