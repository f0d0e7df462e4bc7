//! The process logger: env_logger's filter (`log_level`, overridden by
//! `RUST_LOG`) with either env_logger's text lines or one JSON object per
//! line (`log_format: json`), swappable at run time for a reload.
//!
//! A JSON line has the members `time` (RFC 3339, UTC, milliseconds),
//! `level` (lower case, as `log_level` spells it), `target`, `message`, and
//! `fields`: the structured key-values of the log call (the `log` crate's
//! `kv`: `log::info!(peer = 3; "...")`), always present, an empty object when
//! the call has none. Numbers and booleans stay JSON numbers and booleans;
//! everything else is a string.
//!
//! This module only formats and filters what the `log` macros hand it; it
//! knows nothing of the server and writes nowhere but stderr.

use std::fmt::Write as _;
use std::io::Write;
use std::sync::{OnceLock, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use log::kv::{self, VisitSource};
use log::{LevelFilter, Log, Metadata, Record};

use crate::config::LogFormat;
use crate::encode::escape_json_into;

/// The installed logger; `None` until [`init`].
static SWITCH: OnceLock<Switch> = OnceLock::new();

/// A logger whose filter and format can be replaced while threads log.
struct Switch {
    inner: RwLock<env_logger::Logger>,
}

impl Switch {
    /// Replaces the logger; returns the new level filter.
    fn set(&self, logger: env_logger::Logger) -> LevelFilter {
        let filter = logger.filter();
        // A poisoned lock only means a thread panicked while logging; the
        // logger inside is still whole.
        *self.inner.write().unwrap_or_else(|e| e.into_inner()) = logger;
        filter
    }
}

impl Log for Switch {
    fn enabled(&self, metadata: &Metadata) -> bool {
        self.inner.read().unwrap_or_else(|e| e.into_inner()).enabled(metadata)
    }

    fn log(&self, record: &Record) {
        self.inner.read().unwrap_or_else(|e| e.into_inner()).log(record);
    }

    fn flush(&self) {
        self.inner.read().unwrap_or_else(|e| e.into_inner()).flush();
    }
}

/// The filter in force: `RUST_LOG` when it is set, else `level`.
fn filter_spec(level: &str) -> String {
    std::env::var("RUST_LOG").unwrap_or_else(|_| level.to_string())
}

/// An env_logger with the filter `spec` (env_logger's syntax: `info`,
/// `comet=debug,hyper=warn`) writing `format`.
fn build(spec: &str, format: LogFormat) -> env_logger::Logger {
    let mut b = env_logger::Builder::new();
    b.parse_filters(spec);
    match format {
        LogFormat::Text => {
            if let Ok(style) = std::env::var("RUST_LOG_STYLE") {
                b.parse_write_style(&style);
            }
            b.format_timestamp_millis();
        }
        LogFormat::Json => {
            b.write_style(env_logger::WriteStyle::Never).format(|buf, record| {
                let mut line = Vec::with_capacity(256);
                json_line(&mut line, SystemTime::now(), record);
                buf.write_all(&line)
            });
        }
    }
    b.build()
}

/// Why the logger could not be installed.
#[derive(Debug, thiserror::Error)]
#[error("a logger is already installed")]
pub struct AlreadyInstalled;

/// Installs the process logger with `level` (`RUST_LOG` wins when set) and
/// `format`. Call once, before any thread logs.
pub fn init(level: &str, format: LogFormat) -> Result<(), AlreadyInstalled> {
    let mut fresh = false;
    let switch = SWITCH.get_or_init(|| {
        fresh = true;
        Switch {
            inner: RwLock::new(build(&filter_spec(level), format)),
        }
    });
    if !fresh {
        return Err(AlreadyInstalled);
    }
    log::set_logger(switch).map_err(|_| AlreadyInstalled)?;
    log::set_max_level(switch.inner.read().unwrap_or_else(|e| e.into_inner()).filter());
    Ok(())
}

/// Replaces the level and format of the installed logger (for a reload);
/// `RUST_LOG`, when set, still wins over `level`. Does nothing before [`init`].
pub fn reconfigure(level: &str, format: LogFormat) {
    if let Some(switch) = SWITCH.get() {
        log::set_max_level(switch.set(build(&filter_spec(level), format)));
    }
}

/// Appends one JSON log line (with its `\n`) for `record` at `time`.
pub fn json_line(out: &mut Vec<u8>, time: SystemTime, record: &Record) {
    out.extend_from_slice(b"{\"time\":\"");
    out.extend_from_slice(rfc3339_millis(time).as_bytes());
    out.extend_from_slice(b"\",\"level\":\"");
    out.extend_from_slice(record.level().as_str().to_ascii_lowercase().as_bytes());
    out.extend_from_slice(b"\",\"target\":\"");
    escape_json_into(out, record.target());
    out.extend_from_slice(b"\",\"message\":\"");
    let mut message = String::new();
    let _ = write!(message, "{}", record.args());
    escape_json_into(out, &message);
    out.extend_from_slice(b"\",\"fields\":{");
    let mut fields = Fields { out, first: true };
    // Our visitor never fails.
    let _ = record.key_values().visit(&mut fields);
    out.extend_from_slice(b"}}\n");
}

/// Writes key-values as the members of a JSON object.
struct Fields<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'kvs> VisitSource<'kvs> for Fields<'_> {
    fn visit_pair(&mut self, key: kv::Key<'kvs>, value: kv::Value<'kvs>) -> Result<(), kv::Error> {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.push(b'"');
        escape_json_into(self.out, key.as_str());
        self.out.extend_from_slice(b"\":");
        if let Some(b) = value.to_bool() {
            self.out.extend_from_slice(if b { b"true" } else { b"false" });
        } else if let Some(u) = value.to_u64() {
            self.out.extend_from_slice(u.to_string().as_bytes());
        } else if let Some(i) = value.to_i64() {
            self.out.extend_from_slice(i.to_string().as_bytes());
        } else if let Some(f) = value.to_f64().filter(|f| f.is_finite()) {
            self.out.extend_from_slice(f.to_string().as_bytes());
        } else {
            self.out.push(b'"');
            escape_json_into(self.out, &value.to_string());
            self.out.push(b'"');
        }
        Ok(())
    }
}

/// `time` as RFC 3339 in UTC with milliseconds: `2026-11-21T09:05:03.042Z`.
/// Times before 1970 print as the epoch (the clock is never set that far back).
pub fn rfc3339_millis(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        since.subsec_millis()
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01, counted in 400-year
/// eras of 146,097 days that start on March 1st (so the leap day is last).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468; // days from 0000-03-01 to 1970-01-01
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153; // month from March = 0
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = era * 400 + year_of_era + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(secs: u64, millis: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis)
    }

    #[test]
    fn times_are_rfc3339_utc_with_millis() {
        assert_eq!(rfc3339_millis(at(0, 0)), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_millis(at(951_782_400, 7)), "2000-02-29T00:00:00.007Z");
        assert_eq!(rfc3339_millis(at(951_868_799, 999)), "2000-02-29T23:59:59.999Z");
        assert_eq!(rfc3339_millis(at(1_709_251_199, 0)), "2024-02-29T23:59:59.000Z");
        assert_eq!(rfc3339_millis(at(1_709_251_200, 0)), "2024-03-01T00:00:00.000Z");
        assert_eq!(rfc3339_millis(at(4_102_444_800, 0)), "2100-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_millis(at(4_107_456_000, 0)), "2100-02-28T00:00:00.000Z");
        assert_eq!(
            rfc3339_millis(at(4_107_542_400, 0)),
            "2100-03-01T00:00:00.000Z",
            "2100 is no leap year"
        );
        assert_eq!(
            rfc3339_millis(UNIX_EPOCH - Duration::from_secs(5)),
            "1970-01-01T00:00:00.000Z"
        );
    }

    #[test]
    fn every_day_of_four_centuries_follows_the_one_before() {
        let days_in = |y: u64, m: u64| match m {
            2 if (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400) => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        let mut date = (1970, 1, 1);
        for d in 0..146_097 {
            assert_eq!(civil_from_days(d), date, "day {d}");
            date = match date {
                (y, 12, 31) => (y + 1, 1, 1),
                (y, m, day) if day == days_in(y, m) => (y, m + 1, 1),
                (y, m, day) => (y, m, day + 1),
            };
        }
    }

    /// The JSON line for a record built by `f`, parsed.
    fn line(
        level: log::Level,
        target: &str,
        args: std::fmt::Arguments,
        kvs: &[(&str, kv::Value)],
    ) -> serde_json::Value {
        let mut out = Vec::new();
        let record = Record::builder()
            .level(level)
            .target(target)
            .args(args)
            .key_values(&kvs)
            .build();
        json_line(&mut out, at(1_763_715_903, 42), &record);
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1, "one line");
        assert!(out.ends_with(b"}\n"));
        serde_json::from_slice(&out).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out)))
    }

    #[test]
    fn a_json_line_has_every_member() {
        let v = line(
            log::Level::Info,
            "comet::server",
            format_args!("listening on {}", 8100),
            &[],
        );
        assert_eq!(
            v,
            serde_json::json!({
                "time": "2025-11-21T09:05:03.042Z",
                "level": "info",
                "target": "comet::server",
                "message": "listening on 8100",
                "fields": {}
            })
        );
    }

    #[test]
    fn json_fields_keep_their_kind() {
        let kvs = [
            ("status", kv::Value::from(200u16)),
            ("delta", kv::Value::from(-3i64)),
            ("duration_ms", kv::Value::from(1.5f64)),
            ("ok", kv::Value::from(true)),
            ("path", kv::Value::from("/push?cname=a\"b")),
            ("nan", kv::Value::from(f64::NAN)),
        ];
        let v = line(log::Level::Debug, "comet::admin::access", format_args!("GET"), &kvs);
        assert_eq!(
            v["fields"],
            serde_json::json!({
                "status": 200, "delta": -3, "duration_ms": 1.5, "ok": true,
                "path": "/push?cname=a\"b", "nan": "NaN"
            })
        );
        assert_eq!(v["level"], "debug");
    }

    #[test]
    fn json_messages_are_escaped_onto_one_line() {
        let v = line(
            log::Level::Warn,
            "t\"x",
            format_args!("two\nlines \"quoted\" \\ tab\t nul\u{0} \u{2028}"),
            &[],
        );
        assert_eq!(v["message"], "two\nlines \"quoted\" \\ tab\t nul\u{0} \u{2028}");
        assert_eq!(v["target"], "t\"x");
        assert_eq!(v["level"], "warn");
    }

    #[test]
    fn a_switch_changes_filter_and_format() {
        let switch = Switch {
            inner: RwLock::new(build("info", LogFormat::Text)),
        };
        let debug = Metadata::builder().level(log::Level::Debug).target("comet::x").build();
        let info = Metadata::builder().level(log::Level::Info).target("comet::x").build();
        assert!(switch.enabled(&info));
        assert!(!switch.enabled(&debug));
        assert_eq!(
            switch.set(build("comet=debug,hyper=warn", LogFormat::Json)),
            LevelFilter::Debug
        );
        assert!(switch.enabled(&debug));
        assert_eq!(switch.set(build("off", LogFormat::Text)), LevelFilter::Off);
        assert!(!switch.enabled(&info));
    }
}
