//! Which configuration keys a reload applies while the server runs, and
//! which need a restart: one table, one line per key or section.
//!
//! A key that is not in the table needs a restart (the safe guess), and a
//! test fails until it is added, so a new key is classified on purpose. A
//! line `section.*` covers a whole section (an optional one included, which
//! may come and go as a whole). Nothing here applies anything: `reload`
//! reads the table, and how each live key takes effect is written there.

/// When a changed key takes effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Apply {
    /// At the reload, without dropping anyone.
    Live,
    /// At the reload on a single node; at the next start in cluster mode,
    /// where Redis was given the value when the node started.
    LiveAlone,
    /// At the next start; until then the running value stays.
    Restart,
}

use Apply::{Live, LiveAlone, Restart};

/// Every key, by its dotted name (`section.*`: every key of a section).
pub const TABLE: &[(&str, Apply)] = &[
    ("log_level", Live),
    ("log_format", Live),
    ("workers", Restart),
    ("shutdown_grace_secs", Live),
    ("front.listen", Restart),
    // listen(2) is called once, when the socket is bound.
    ("front.listen_backlog", Restart),
    ("front.auth", Restart),
    // The JWT verifier (its key file read once) is built at start.
    ("front.jwt.*", Restart),
    ("front.max_channels", Live),
    ("front.max_subscribers_per_channel", Live),
    ("front.channel_buffer_size", LiveAlone),
    ("front.channel_timeout", LiveAlone),
    ("front.polling_timeout", Live),
    ("front.max_connections", Live),
    ("front.max_connections_per_ip", Live),
    ("front.header_timeout_secs", Live),
    ("front.max_cname_bytes", Live),
    ("front.max_queued_bytes", Live),
    ("front.socket_send_buffer_bytes", Restart),
    ("front.socket_recv_buffer_bytes", Restart),
    ("front.descriptor_tables", Restart),
    ("front.sse_retry_ms", Live),
    ("front.allowed_origins", Live),
    ("front.max_channels_per_connection", Live),
    ("front.ws_max_message_bytes", Live),
    ("front.ws_max_frames_per_sec", Live),
    ("front.ws_echo", Live),
    ("admin.listen", Restart),
    ("admin.allow", Live),
    ("admin.deny", Live),
    ("admin.max_body_bytes", Live),
    ("admin.threads", Restart),
    ("admin.key", Live),
    ("admin.open_health", Live),
    // The Redis link is built once, at start.
    ("cluster.*", Restart),
    // The hooks (their URLs parsed, their queue and cache sized) are built
    // once, at start.
    ("hooks.*", Restart),
];

/// The table line that covers `key` (a dotted leaf name): its name (the
/// section for a `section.*` line) and when it applies. `None` when no
/// line covers it.
pub fn lookup(key: &str) -> Option<(&'static str, Apply)> {
    lookup_in(TABLE, key)
}

/// [`lookup`] in any table.
fn lookup_in(table: &[(&'static str, Apply)], key: &str) -> Option<(&'static str, Apply)> {
    table.iter().find_map(|&(name, apply)| match name.strip_suffix(".*") {
        Some(section) => {
            let inside = key == section || key.strip_prefix(section).is_some_and(|rest| rest.starts_with('.'));
            inside.then_some((section, apply))
        }
        None => (key == name).then_some((name, apply)),
    })
}

/// Whether a change of `key` takes effect at the reload, on a server in
/// cluster mode or not (a key the table lacks: not before a restart).
pub fn is_live(key: &str, cluster: bool) -> bool {
    match lookup(key) {
        Some((_, Live)) => true,
        Some((_, LiveAlone)) => !cluster,
        Some((_, Restart)) | None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{variables, Config};

    #[test]
    fn every_config_key_is_classified() {
        let keys: Vec<String> = variables(&Config::default()).into_iter().map(|k| k.key).collect();
        assert!(keys.len() >= 27, "{keys:?}");
        for key in &keys {
            assert!(
                lookup(key).is_some(),
                "{key} is not in src/reload/keys.rs: add a line saying whether a reload applies it (Live) or not (Restart)"
            );
        }
        // And the table names no key that does not exist.
        for (name, _) in TABLE {
            let section = name.strip_suffix(".*");
            assert!(
                keys.iter().any(|k| match section {
                    Some(s) => k == s || k.starts_with(&format!("{s}.")),
                    None => k == name,
                }),
                "{name} is in the table but not in the configuration"
            );
        }
    }

    #[test]
    fn sections_cover_their_keys_only() {
        let table: &[(&str, Apply)] = &[("hooks.*", Live), ("hook", Restart)];
        let find = |key: &str| lookup_in(table, key);
        assert_eq!(find("hooks.event.url"), Some(("hooks", Live)));
        assert_eq!(find("hooks"), Some(("hooks", Live)), "an optional section that is null");
        assert_eq!(find("hooksx.a"), None);
        assert_eq!(find("hook"), Some(("hook", Restart)));
        assert_eq!(lookup("front.polling_timeout"), Some(("front.polling_timeout", Live)));
        assert_eq!(lookup("front.listen"), Some(("front.listen", Restart)));
        assert_eq!(lookup("front.nope"), None);
        assert!(!is_live("front.nope", false), "unknown keys wait for a restart");
        assert!(is_live("front.channel_buffer_size", false));
        assert!(
            !is_live("front.channel_buffer_size", true),
            "Redis holds it in cluster mode"
        );
        assert!(is_live("front.polling_timeout", true));
        assert!(!is_live("cluster.redis", false));
    }
}
