//! The configuration tree: every key, its default, and validation.
//!
//! `comet.yaml` at the repository root documents every key with its default and
//! is embedded in the binary; a test asserts that it parses to
//! `Config::default()`, so the documentation and the code cannot drift. Keys
//! that icomet.conf has (`max_channels`, `channel_timeout`, ...) keep icomet's
//! names and meanings; keys comet adds carry their unit in the name.
//!
//! Loading is two steps: [`Config::load`] (or [`Config::from_yaml`]) turns
//! YAML into the tree, rejecting syntax errors, wrong types and unknown keys;
//! [`Config::validate`] then checks the rules that span values. Both report
//! the offending key by its dotted name (`front.polling_timeout`). This module
//! only describes the configuration; it opens no sockets and starts nothing.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::auth::JwtConfig;
use crate::channel::MAX_WORKERS;
use crate::hooks::HooksConfig;

/// The documented default configuration, embedded from `comet.yaml`.
pub const DEFAULT_YAML: &str = include_str!("../comet.yaml");

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Log level filter (`error`, `warn`, `info`, `debug`, `trace`, `off`);
    /// the `RUST_LOG` environment variable overrides it.
    pub log_level: String,
    /// How log lines are written: `text` or `json` (one object per line).
    pub log_format: LogFormat,
    /// Number of front worker threads; 0 chooses automatically (the CPU count,
    /// or more when `front.max_connections` needs several descriptor tables).
    pub workers: usize,
    /// The public listener for subscribers.
    pub front: FrontConfig,
    /// The private listener for publishers and operators.
    pub admin: AdminConfig,
    /// Several nodes on one Redis (empty `cluster.redis`: a single node).
    pub cluster: crate::cluster::ClusterConfig,
    /// Seconds a graceful shutdown (SIGTERM, SIGINT) may take before the
    /// remaining connections are dropped.
    pub shutdown_grace_secs: u32,
    /// Calls to the application: the authorize hook and the event hook.
    pub hooks: HooksConfig,
}

/// How log lines are written to stderr (`log_format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// env_logger's human-readable lines.
    Text,
    /// One JSON object per line (see `crate::logging`).
    Json,
}

/// Subscribe-side authentication mode (icomet's `front.auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Auth {
    /// Anyone may subscribe; unknown channels are created on subscribe.
    None,
    /// Subscribers need the channel's token from `/sign`.
    Token,
    /// Subscribers need a JWT signed by the application that grants the
    /// channel (`front.jwt`); unknown channels are created on subscribe.
    Jwt,
}

/// Whether workers give themselves private descriptor tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DescriptorTables {
    /// Private tables only when `max_connections` exceeds one table.
    Auto,
    /// Always private tables (one per worker).
    Always,
    /// Never: all workers share the process table.
    Never,
}

/// The front (subscriber) listener.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct FrontConfig {
    /// Address to listen on, `ip:port`.
    pub listen: SocketAddr,
    /// The listen backlog: connections the kernel completes and queues for
    /// `accept` (it caps the value at `net.core.somaxconn`).
    pub listen_backlog: u32,
    /// `none`, `token` or `jwt`.
    pub auth: Auth,
    /// How JWT subscribe tokens are verified (checked only when `auth` is `jwt`).
    pub jwt: JwtConfig,
    /// Most channels that may exist at once (idle ones included).
    pub max_channels: u32,
    /// Most concurrent subscribers of one channel; newcomers beyond it get a 429 frame.
    pub max_subscribers_per_channel: u32,
    /// Messages of history kept per channel for replay (trimmed at 1.5x, as icomet).
    pub channel_buffer_size: u32,
    /// Seconds an unsubscribed channel lives; 0 means `polling_timeout / 2`.
    /// Also the period of presence online events.
    pub channel_timeout: u32,
    /// Seconds of silence before a subscriber gets a noop heartbeat. Must be > 0.
    pub polling_timeout: u32,
    /// Most front connections the server holds (more are refused at once);
    /// decides workers and descriptor tables.
    pub max_connections: usize,
    /// Most front connections from one client address (an IPv6 client: its
    /// /64); 0 means no cap.
    pub max_connections_per_ip: u32,
    /// Seconds a client has to send a complete request head (slowloris guard).
    pub header_timeout_secs: u32,
    /// Longest accepted channel name, in bytes.
    pub max_cname_bytes: usize,
    /// Bytes that may wait in a subscriber's output queue before it is dropped as a slow consumer.
    pub max_queued_bytes: usize,
    /// SO_SNDBUF for accepted sockets; 0 keeps the kernel default.
    pub socket_send_buffer_bytes: usize,
    /// SO_RCVBUF for accepted sockets; 0 keeps the kernel default.
    pub socket_recv_buffer_bytes: usize,
    /// `auto`, `always` or `never`: private descriptor tables per worker.
    pub descriptor_tables: DescriptorTables,
    /// The `retry:` hint (milliseconds) sent to SSE clients.
    pub sse_retry_ms: u32,
    /// Browser origins allowed to open `/ws` (`scheme://host[:port]`);
    /// empty allows every origin (comet's tokens travel in the URL, no
    /// cookie is used). Requests without an `Origin` header are allowed.
    pub allowed_origins: Vec<String>,
    /// Most channels one WebSocket connection may hold (its URL channel
    /// and `sub` commands); a `sub` beyond it is refused with a 429 object.
    pub max_channels_per_connection: u32,
    /// Largest message a WebSocket client may send (commands); beyond it
    /// the connection is closed with 1009.
    pub ws_max_message_bytes: usize,
    /// Most frames a WebSocket client may send in one second; beyond it
    /// the connection is closed with 1008.
    pub ws_max_frames_per_sec: u32,
    /// Serve `/ws_echo`, a WebSocket echo endpoint on the same front path
    /// and codec, for conformance testing (Autobahn). Off in production.
    pub ws_echo: bool,
}

/// The admin (publisher) listener.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Address to listen on, `ip:port`.
    pub listen: SocketAddr,
    /// Addresses allowed: an exact IP (three dots), a text prefix, or `all`/`*`.
    pub allow: Vec<String>,
    /// Addresses denied, same forms as `allow`; an allow match always wins.
    pub deny: Vec<String>,
    /// Largest POST body accepted, in bytes; larger gets 413.
    pub max_body_bytes: usize,
    /// Threads of the admin runtime.
    pub threads: usize,
    /// A shared key every admin request must carry (`Authorization: Bearer
    /// KEY` or a `key` parameter); empty means none.
    pub key: String,
    /// Whether `/health` and `/ready` answer without `key` (for load
    /// balancers and orchestrators that cannot send one); the IP filter
    /// still applies to them.
    pub open_health: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            log_level: "info".to_string(),
            log_format: LogFormat::Text,
            workers: 0,
            front: FrontConfig::default(),
            admin: AdminConfig::default(),
            cluster: crate::cluster::ClusterConfig::default(),
            shutdown_grace_secs: 5,
            hooks: HooksConfig::default(),
        }
    }
}

impl Default for FrontConfig {
    fn default() -> Self {
        FrontConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 8100)),
            listen_backlog: 65535,
            auth: Auth::None,
            jwt: JwtConfig::default(),
            max_channels: 1_000_000,
            max_subscribers_per_channel: 1_000_000,
            channel_buffer_size: 10,
            channel_timeout: 30,
            polling_timeout: 30,
            max_connections: 1_000_000,
            max_connections_per_ip: 0,
            header_timeout_secs: 10,
            max_cname_bytes: 256,
            max_queued_bytes: 256 * 1024,
            socket_send_buffer_bytes: 0,
            socket_recv_buffer_bytes: 0,
            descriptor_tables: DescriptorTables::Auto,
            sse_retry_ms: 3000,
            allowed_origins: Vec::new(),
            max_channels_per_connection: 16,
            ws_max_message_bytes: 4096,
            ws_max_frames_per_sec: 100,
            ws_echo: false,
        }
    }
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8000)),
            allow: vec!["127.0.0.1".to_string()],
            deny: vec!["all".to_string()],
            max_body_bytes: 1024 * 1024,
            threads: 2,
            key: String::new(),
            open_health: false,
        }
    }
}

impl FrontConfig {
    /// The effective channel timeout in seconds (icomet: 0 means `polling_timeout / 2`).
    pub fn effective_channel_timeout(&self) -> u32 {
        if self.channel_timeout == 0 {
            (self.polling_timeout / 2).max(1)
        } else {
            self.channel_timeout
        }
    }
}

/// Dotted paths of the keys that hold secrets: `--print-config` masks them and
/// an error about an environment variable never repeats their value. A new
/// secret key must be added here (a test checks that every path exists).
pub const SECRET_KEYS: &[&str] = &[
    "admin.key",
    "cluster.redis",
    "cluster.hmac_secret",
    "cluster.hmac_secret_previous",
    "front.jwt.secret",
];

/// Log levels accepted by `log_level` (the names `env_logger` understands).
pub const LOG_LEVELS: [&str; 6] = ["error", "warn", "info", "debug", "trace", "off"];

/// Smallest accepted `front.max_queued_bytes`; with less, a subscriber could be
/// dropped as a slow consumer on its first ordinary message.
pub const MIN_QUEUED_BYTES: usize = 4096;

/// Smallest accepted `front.ws_max_message_bytes`: a `sub` command with a
/// long channel name and a token must fit.
pub const MIN_WS_MESSAGE_BYTES: usize = 512;

/// Largest accepted `front.ws_max_message_bytes` (clients send commands,
/// not data).
pub const MAX_WS_MESSAGE_BYTES: usize = 1 << 20;

/// Longest accepted `front.max_cname_bytes`.
pub const MAX_CNAME_BYTES: usize = 65536;

/// Most accepted `admin.threads`.
pub const MAX_ADMIN_THREADS: usize = 64;

/// Largest accepted `front.listen_backlog`: `listen(2)` takes a C `int`.
pub const MAX_LISTEN_BACKLOG: u32 = i32::MAX as u32;

/// Why a configuration could not be loaded or is not valid.
///
/// Every message names the key or the place in the file it is about.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file is missing or could not be read.
    #[error("cannot read {}: {error}", path.display())]
    Read {
        /// The path as given.
        path: PathBuf,
        /// What the OS said.
        error: std::io::Error,
    },
    /// A key that no configuration struct has (typically a typo).
    #[error("unknown key `{key}`{} ({expected})", at(*line, *column))]
    UnknownKey {
        /// The dotted key, e.g. `front.polling_timout`.
        key: String,
        /// The keys that are allowed in that place, as serde lists them.
        expected: String,
        /// 1-based line of the key, when known.
        line: Option<usize>,
        /// 1-based column of the key, when known.
        column: Option<usize>,
    },
    /// Not YAML, or a value of the wrong type or form (the message names the
    /// key when there is one: `front.listen: invalid socket address syntax`).
    #[error("{message}{}", at(*line, *column))]
    Syntax {
        /// The parser's message, prefixed with the dotted key.
        message: String,
        /// 1-based line, when known.
        line: Option<usize>,
        /// 1-based column, when known.
        column: Option<usize>,
    },
    /// A value parsed but breaks a rule; the message reads `<key> <rule>`.
    #[error("{key} {rule}")]
    Invalid {
        /// The dotted key, e.g. `front.polling_timeout`.
        key: String,
        /// The rule it breaks, e.g. `must be > 0`.
        rule: String,
    },
    /// A `COMET_*` environment variable that is unknown or holds a bad value;
    /// the message starts with the variable's name.
    #[error("{var}: {reason}")]
    Env {
        /// The variable, e.g. `COMET_FRONT_POLLING_TIMEOUT`.
        var: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An error inside a named file: the message is prefixed with the path.
    #[error("{}: {error}", path.display())]
    InFile {
        /// The file.
        path: PathBuf,
        /// What is wrong in it.
        error: Box<ConfigError>,
    },
}

/// Formats an optional position as ` at line L, column C`.
fn at(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(" at line {l}, column {c}"),
        (Some(l), None) => format!(" at line {l}"),
        _ => String::new(),
    }
}

impl ConfigError {
    /// Turns a serde_norway error into `UnknownKey` or `Syntax`.
    fn from_yaml_error(e: &serde_norway::Error) -> ConfigError {
        let (line, column) = match e.location() {
            Some(l) => (Some(l.line()), Some(l.column())),
            None => (None, None),
        };
        // Display appends " at line L column C"; keep the message alone.
        let full = e.to_string();
        let message = match e.location() {
            Some(l) => full
                .strip_suffix(&format!(" at line {} column {}", l.line(), l.column()))
                .unwrap_or(&full)
                .to_string(),
            None => full.clone(),
        };
        // serde's wording: "[path: ]unknown field `name`, expected ...".
        if let Some(i) = message.find("unknown field `") {
            let rest = &message[i + "unknown field `".len()..];
            if let Some(end) = rest.find('`') {
                let parent = message[..i].trim_end_matches(": ");
                // An empty key (`: 1`, or an anchor in its place) is shown as `""`.
                let name = match &rest[..end] {
                    "" => "\"\"",
                    name => name,
                };
                let key = if parent.is_empty() {
                    name.to_string()
                } else {
                    format!("{parent}.{name}")
                };
                let expected = rest[end + 1..].trim_start_matches(", ").to_string();
                return ConfigError::UnknownKey {
                    key,
                    expected,
                    line,
                    column,
                };
            }
        }
        ConfigError::Syntax { message, line, column }
    }

    /// Shorthand for [`ConfigError::Invalid`].
    fn invalid(key: impl Into<String>, rule: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            key: key.into(),
            rule: rule.into(),
        }
    }
}

impl Config {
    /// Parses a YAML document. Keys left out take their defaults; unknown keys,
    /// wrong types and YAML syntax errors are refused. Does not validate.
    pub fn from_yaml(yaml: &str) -> Result<Config, ConfigError> {
        serde_norway::from_str(yaml).map_err(|e| ConfigError::from_yaml_error(&e))
    }

    /// Reads and parses a YAML file (see [`Config::from_yaml`]). Errors carry
    /// the path. Does not validate.
    pub fn load(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        Config::from_yaml(&text).map_err(|error| ConfigError::InFile {
            path: path.to_path_buf(),
            error: Box::new(error),
        })
    }

    /// Checks the rules a value cannot express by its type alone; the first
    /// broken rule is returned, naming its key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let f = &self.front;
        let a = &self.admin;
        if !LOG_LEVELS.contains(&self.log_level.as_str()) {
            return Err(ConfigError::invalid(
                "log_level",
                format!("must be one of {} (got `{}`)", LOG_LEVELS.join(", "), self.log_level),
            ));
        }
        if self.workers > MAX_WORKERS {
            return Err(ConfigError::invalid(
                "workers",
                format!("must be at most {MAX_WORKERS} (got {})", self.workers),
            ));
        }
        if !(1..=MAX_LISTEN_BACKLOG).contains(&f.listen_backlog) {
            return Err(ConfigError::invalid(
                "front.listen_backlog",
                format!("must be between 1 and {MAX_LISTEN_BACKLOG} (got {})", f.listen_backlog),
            ));
        }
        if f.polling_timeout == 0 {
            return Err(ConfigError::invalid("front.polling_timeout", "must be > 0"));
        }
        if f.max_connections == 0 {
            return Err(ConfigError::invalid("front.max_connections", "must be > 0"));
        }
        if f.header_timeout_secs == 0 {
            return Err(ConfigError::invalid("front.header_timeout_secs", "must be > 0"));
        }
        if !(1..=MAX_CNAME_BYTES).contains(&f.max_cname_bytes) {
            return Err(ConfigError::invalid(
                "front.max_cname_bytes",
                format!("must be between 1 and {MAX_CNAME_BYTES} (got {})", f.max_cname_bytes),
            ));
        }
        if f.max_channels_per_connection == 0 {
            return Err(ConfigError::invalid("front.max_channels_per_connection", "must be > 0"));
        }
        if !(MIN_WS_MESSAGE_BYTES..=MAX_WS_MESSAGE_BYTES).contains(&f.ws_max_message_bytes) {
            return Err(ConfigError::invalid(
                "front.ws_max_message_bytes",
                format!(
                    "must be between {MIN_WS_MESSAGE_BYTES} and {MAX_WS_MESSAGE_BYTES} (got {})",
                    f.ws_max_message_bytes
                ),
            ));
        }
        if f.ws_max_frames_per_sec == 0 {
            return Err(ConfigError::invalid("front.ws_max_frames_per_sec", "must be > 0"));
        }
        if let Err(e) = crate::ws::AllowedOrigins::only(f.allowed_origins.iter().map(String::as_str)) {
            return Err(ConfigError::invalid("front.allowed_origins", e.to_string()));
        }
        if f.max_queued_bytes < MIN_QUEUED_BYTES {
            return Err(ConfigError::invalid(
                "front.max_queued_bytes",
                format!("must be >= {MIN_QUEUED_BYTES} (got {})", f.max_queued_bytes),
            ));
        }
        if a.max_body_bytes == 0 {
            return Err(ConfigError::invalid("admin.max_body_bytes", "must be > 0"));
        }
        if !(1..=MAX_ADMIN_THREADS).contains(&a.threads) {
            return Err(ConfigError::invalid(
                "admin.threads",
                format!("must be between 1 and {MAX_ADMIN_THREADS} (got {})", a.threads),
            ));
        }
        for (name, list) in [("admin.allow", &a.allow), ("admin.deny", &a.deny)] {
            for (i, entry) in list.iter().enumerate() {
                if entry.is_empty() || entry.chars().any(char::is_whitespace) {
                    return Err(ConfigError::invalid(
                        format!("{name}[{i}]"),
                        format!("must be a non-empty address or prefix without spaces (got {entry:?})"),
                    ));
                }
            }
        }
        if !a.key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ConfigError::invalid(
                "admin.key",
                "must be printable ASCII without spaces (it travels in a header or a URL)",
            ));
        }
        self.cluster.validate()?;
        if f.auth == Auth::Jwt {
            f.jwt.validate()?;
        }
        self.hooks.validate()?;
        if listeners_clash(f.listen, a.listen) {
            return Err(ConfigError::invalid(
                "admin.listen",
                format!("must differ from front.listen (both use {})", a.listen),
            ));
        }
        Ok(())
    }
}

/// Whether two listen addresses would compete for the same port: the same
/// non-zero port on the same IP, or on a wildcard that covers the other
/// (`0.0.0.0` covers IPv4; `::` covers both families, dual-stack being the
/// Linux default). Port 0 asks the OS for a fresh port, so it never clashes.
fn listeners_clash(x: SocketAddr, y: SocketAddr) -> bool {
    let covers = |w: SocketAddr, o: SocketAddr| w.ip().is_unspecified() && (w.is_ipv6() || o.is_ipv4());
    x.port() != 0 && x.port() == y.port() && (x.ip() == y.ip() || covers(x, y) || covers(y, x))
}

mod env;
mod print;

pub use env::{overlay, variables, EnvKey, Overlaid, NOT_CONFIG, PREFIX as ENV_PREFIX};
pub use print::{effective_yaml, MASK};

#[cfg(test)]
mod tests;
