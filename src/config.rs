//! The configuration tree: every key, its default, and validation.
//!
//! `comet.yaml` at the repository root documents every key with its default and
//! is embedded in the binary; a test asserts that it parses to
//! `Config::default()`, so the documentation and the code cannot drift. Keys
//! that icomet.conf has (`max_channels`, `channel_timeout`, ...) keep icomet's
//! names and meanings; keys comet adds carry their unit in the name.

use std::net::SocketAddr;

use serde::Deserialize;

/// The documented default configuration, embedded from `comet.yaml`.
pub const DEFAULT_YAML: &str = include_str!("../comet.yaml");

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Log level filter (`error`, `warn`, `info`, `debug`, `trace`, `off`);
    /// the `RUST_LOG` environment variable overrides it.
    pub log_level: String,
    /// Number of front worker threads; 0 chooses automatically (the CPU count,
    /// or more when `front.max_connections` needs several descriptor tables).
    pub workers: usize,
    /// The public listener for subscribers.
    pub front: FrontConfig,
    /// The private listener for publishers and operators.
    pub admin: AdminConfig,
}

/// Subscribe-side authentication mode (icomet's `front.auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Auth {
    /// Anyone may subscribe; unknown channels are created on subscribe.
    None,
    /// Subscribers need the channel's token from `/sign`.
    Token,
}

/// Whether workers give themselves private descriptor tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FrontConfig {
    /// Address to listen on, `ip:port`.
    pub listen: SocketAddr,
    /// `none` or `token`.
    pub auth: Auth,
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
    /// Most front connections the server holds; decides workers and descriptor tables.
    pub max_connections: usize,
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
}

/// The admin (publisher) listener.
#[derive(Debug, Clone, PartialEq, Deserialize)]
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
}

impl Default for Config {
    fn default() -> Self {
        Config {
            log_level: "info".to_string(),
            workers: 0,
            front: FrontConfig::default(),
            admin: AdminConfig::default(),
        }
    }
}

impl Default for FrontConfig {
    fn default() -> Self {
        FrontConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 8100)),
            auth: Auth::None,
            max_channels: 1_000_000,
            max_subscribers_per_channel: 1_000_000,
            channel_buffer_size: 10,
            channel_timeout: 30,
            polling_timeout: 30,
            max_connections: 1_000_000,
            header_timeout_secs: 10,
            max_cname_bytes: 256,
            max_queued_bytes: 256 * 1024,
            socket_send_buffer_bytes: 0,
            socket_recv_buffer_bytes: 0,
            descriptor_tables: DescriptorTables::Auto,
            sse_retry_ms: 3000,
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
