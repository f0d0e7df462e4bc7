//! Reloading the configuration while the server runs (SIGHUP).
//!
//! A reload loads the effective configuration again, as at start
//! (`Config::load_effective`: defaults < the `-c` file < `COMET_*`
//! variables), and validates it. An invalid one changes nothing and is
//! logged at error. A valid one is compared key by key with the
//! configuration the server runs with ([`diff`]); each changed key is
//! either applied at once or reported as needing a restart, as the table in
//! [`keys`] says, and one log line lists both (secrets masked).
//! `comet_config_reloads_total{result}` counts the outcomes.
//!
//! How a live change takes effect: the new configuration replaces the one
//! in `Shared` (the admin side reads the IP filter, the key, the body limit
//! and `open_health` from it for every request), the channel table gets its
//! new limits (`Channels::set_limits`), the per-address table its new cap
//! (`PerIp::set_cap`), every worker a `Command::Settings` (the front's
//! settings, which apply to the next deadline, noop, write or request, and
//! `front.max_connections`), and the logger its level and format
//! (`logging::reconfigure`). No connection is closed. A restart-only key
//! keeps its running value, and is reported at every reload until the
//! server restarts with it. In cluster mode Redis was given the history
//! size and the channel timeout at start, so those two wait for a restart
//! there ([`keys::Apply::LiveAlone`]).
//!
//! This module decides and applies; it owns no socket and no thread (the
//! server calls it from its signal loop).

pub mod diff;
pub mod keys;

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Mutex;

use crate::config::{Config, ConfigError};
use crate::front::Settings;
use crate::mailbox::{lock, Command};
use crate::shared::Shared;
use diff::{show, Changed};

/// What a reload changed.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Where the configuration came from: the file, or the built-in defaults.
    pub source: String,
    /// Keys now in force, with their old and new values.
    pub applied: Vec<Changed>,
    /// Keys that differ but keep their running value until a restart.
    pub restart: Vec<Changed>,
}

impl Report {
    /// Whether some changed key needs a restart.
    pub fn needs_restart(&self) -> bool {
        !self.restart.is_empty()
    }
}

/// `key old → new, key old → new`.
fn list(changes: &[Changed]) -> String {
    let items: Vec<String> = changes
        .iter()
        .map(|c| format!("{} {} → {}", c.key, show(&c.key, &c.old), show(&c.key, &c.new)))
        .collect();
    items.join(", ")
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "config reloaded from {}: ", self.source)?;
        if self.applied.is_empty() {
            write!(f, "nothing to apply")?;
        } else {
            write!(f, "applied {}", list(&self.applied))?;
        }
        if !self.restart.is_empty() {
            write!(f, "; needs a restart (running value kept): {}", list(&self.restart))?;
        }
        Ok(())
    }
}

/// Reloads the configuration: where it comes from, and what it was last
/// loaded as (restart-only keys at their running values).
#[derive(Debug)]
pub struct Reloader {
    file: Option<PathBuf>,
    /// The configuration as loaded (not as bound: a `front.listen` of port
    /// 0 stays port 0), with every live change applied since.
    loaded: Mutex<Config>,
}

impl Reloader {
    /// A reloader for a server started with `loaded`, read from `file`
    /// (`None`: the built-in defaults, as without `-c`).
    pub fn new(loaded: Config, file: Option<PathBuf>) -> Reloader {
        Reloader {
            file,
            loaded: Mutex::new(loaded),
        }
    }

    /// The file a reload reads.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// Sets the file a reload reads.
    pub fn set_file(&mut self, file: Option<PathBuf>) {
        self.file = file;
    }

    /// Loads the file and the `COMET_*` variables among `vars` again and
    /// applies the result (see [`Reloader::apply`]).
    pub fn reload(
        &self,
        shared: &Shared,
        vars: impl IntoIterator<Item = (OsString, OsString)>,
    ) -> Result<Report, ConfigError> {
        match Config::load_effective(self.file(), vars) {
            Ok(config) => self.apply(shared, config),
            Err(e) => Err(refused(shared, e)),
        }
    }

    /// Validates `new` and puts its live keys in force; logs one line and
    /// counts the reload either way. On error nothing changed.
    pub fn apply(&self, shared: &Shared, new: Config) -> Result<Report, ConfigError> {
        if let Err(e) = new.validate() {
            return Err(refused(shared, e));
        }
        let mut loaded = lock(&self.loaded);
        // cluster.* needs a restart: the running mode is the loaded one.
        let cluster = loaded.cluster.enabled();
        let (mut applied, mut restart) = (Vec::new(), Vec::new());
        let mut units: Vec<&'static str> = Vec::new();
        for change in diff::changed(&loaded, &new) {
            match keys::lookup(&change.key) {
                Some((unit, _)) if keys::is_live(&change.key, cluster) => {
                    if !units.contains(&unit) {
                        units.push(unit);
                    }
                    applied.push(change);
                }
                _ => restart.push(change),
            }
        }
        // Live keys from the new configuration, restart-only ones as they run.
        let next = diff::take(&loaded, &new, &units)
            .and_then(|c| c.validate().map(|()| c))
            .map_err(|e| refused(shared, e))?;
        let running = shared.config();
        let in_force = diff::take(&running, &new, &units).map_err(|e| refused(shared, e))?;
        if !applied.is_empty() {
            put_in_force(shared, &running, in_force);
        }
        *loaded = next;
        let report = Report {
            source: self
                .file()
                .map_or_else(|| "the built-in defaults".to_string(), |p| p.display().to_string()),
            applied,
            restart,
        };
        shared.stats.reloads_applied.fetch_add(1, Ordering::Relaxed);
        if report.needs_restart() {
            log::warn!("{report}");
        } else {
            log::info!("{report}");
        }
        Ok(report)
    }
}

/// Counts and logs a refused reload; hands the error back.
fn refused(shared: &Shared, e: ConfigError) -> ConfigError {
    shared.stats.reloads_invalid.fetch_add(1, Ordering::Relaxed);
    log::error!("config reload refused, the running configuration stays: {e}");
    e
}

/// Puts `new` in force everywhere it is read (see the module notes).
fn put_in_force(shared: &Shared, old: &Config, new: Config) {
    let relog = old.log_level != new.log_level || old.log_format != new.log_format;
    let (level, format) = (new.log_level.clone(), new.log_format);
    let mut limits = crate::shared::limits(&new);
    if new.cluster.enabled() {
        // Redis was given these at start (`crate::link`); the table keeps
        // them too (a new polling_timeout must not move an effective
        // channel_timeout of 0).
        let running = shared.channels.limits();
        limits.buffer_size = running.buffer_size;
        limits.channel_timeout = running.channel_timeout;
    }
    let settings = Settings::from_config(&new);
    shared.per_ip.set_cap(new.front.max_connections_per_ip);
    // First, so that a worker handling its Settings command reads the new
    // front.max_connections.
    shared.replace_config(new);
    shared.channels.set_limits(limits);
    for mailbox in shared.channels.mailboxes().iter() {
        mailbox.push(Command::Settings(settings.clone()));
    }
    if relog {
        crate::logging::reconfigure(&level, format);
    }
}

#[cfg(test)]
mod tests;
