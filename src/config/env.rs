//! Configuration from the environment: `COMET_<SECTION>_<KEY>` variables
//! overlaid on the configuration tree, and the one loader that applies every
//! source in order (built-in defaults < file < environment).
//!
//! The set of variables is derived from the configuration structs, never
//! listed here: the config loaded from the file is serialised to a YAML value
//! tree, every leaf of that tree is named `COMET_` + its dotted path in upper
//! case with `_` for `.` (`front.polling_timeout` is
//! `COMET_FRONT_POLLING_TIMEOUT`, `log_level` is `COMET_LOG_LEVEL`), a
//! variable's text is converted to the kind of value the leaf holds (integer,
//! number, boolean, comma-separated list, string), and the tree is parsed
//! again by [`Config::from_yaml`] with the same strict rules as a file. So a
//! key added to `src/config.rs`, in a new section or a nested one, is
//! settable from the environment with no code here, as long as its section
//! is a struct with `#[serde(default)]` (which serialises as a mapping; an
//! `Option` that is `None` serialises as one null leaf, set as YAML text).
//! Variable names are resolved against the known tree, never split on `_`,
//! since key names contain `_`.
//!
//! This module reads only the variables it is handed (`main` passes
//! `std::env::vars_os()`), so tests can give it any set; it never touches the
//! process environment, and it starts nothing.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::Path;

use serde_norway::Value;

#[cfg(test)]
use super::effective_yaml;
use super::{Config, ConfigError, DEFAULT_YAML, SECRET_KEYS};

/// Prefix of every variable comet reads as configuration.
pub const PREFIX: &str = "COMET_";

/// `COMET_*` variables that are not configuration, with who uses them; the
/// loader skips them instead of refusing them as unknown. They are the ones
/// this repository's tests and tools read (found with
/// `grep -rhno 'COMET_[A-Z_]*' tests tools .ci src web`, config keys and the
/// `COMET_SERVER` JavaScript global aside); a tool that adds one adds it here.
pub const NOT_CONFIG: &[(&str, &str)] = &[
    ("COMET_BIN", "tests/browser: the comet binary the node suite starts"),
    ("COMET_CHROMIUM", "tests/browser, tools/test: the chromium binary"),
    ("COMET_FLOOR", "tools/bench/fanout_cpu.py: run against the bare C floor"),
    ("COMET_BENCH_FRONT", "tools/bench, storm, soak: front port"),
    ("COMET_BENCH_ADMIN", "tools/bench, storm, soak: admin port"),
    ("COMET_NGINX", "tests/heavy/nginx.rs, tools/test: the nginx binary"),
    ("COMET_DEPLOY_URL", "tests/heavy/nginx.rs: nginx's https origin"),
    ("COMET_DEPLOY_HTTP", "tests/heavy/nginx.rs: nginx's http origin"),
    ("COMET_DEPLOY_ADMIN", "tests/heavy/nginx.rs: comet's admin origin"),
    (
        "COMET_REDIS_SERVER",
        "tests/it/support/redis.rs, tools/test: redis-server",
    ),
];

/// One configuration key and the variable that sets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvKey {
    /// The variable, e.g. `COMET_FRONT_POLLING_TIMEOUT`.
    pub var: String,
    /// The dotted key, e.g. `front.polling_timeout`.
    pub key: String,
}

/// Every settable key of `config`'s tree with its variable, in the tree's
/// order. Two keys that would share a variable (`a.b_c` and `a_b.c`) are
/// both listed; setting that variable is then refused as ambiguous.
pub fn variables(config: &Config) -> Vec<EnvKey> {
    let mut out = Vec::new();
    let mut path = Vec::new();
    collect(&tree(config), &mut path, &mut out, &mut Vec::new());
    out
}

/// The variable name of a dotted path given as its parts.
fn var_name(path: &[String]) -> String {
    let joined: String = path
        .join("_")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("{PREFIX}{joined}")
}

/// The config as a YAML value tree (a mapping at the top).
fn tree(config: &Config) -> Value {
    serde_norway::to_value(config).expect("the config tree is plain data and always serialises")
}

/// Walks `value`: leaves go to `keys`, inner mappings to `sections`.
fn collect(value: &Value, path: &mut Vec<String>, keys: &mut Vec<EnvKey>, sections: &mut Vec<EnvKey>) {
    match value {
        Value::Mapping(map) => {
            if !path.is_empty() {
                sections.push(EnvKey {
                    var: var_name(path),
                    key: path.join("."),
                });
            }
            for (k, v) in map {
                if let Some(k) = k.as_str() {
                    path.push(k.to_string());
                    collect(v, path, keys, sections);
                    path.pop();
                }
            }
        }
        _ => keys.push(EnvKey {
            var: var_name(path),
            key: path.join("."),
        }),
    }
}

/// The result of [`overlay`]: the config and which variable set which key.
#[derive(Debug, Clone)]
pub struct Overlaid {
    /// The config with the variables applied (not validated).
    pub config: Config,
    /// The variables that were applied, in name order.
    pub set: Vec<EnvKey>,
}

/// Applies the `COMET_*` variables among `vars` to `config`. Variables
/// without the prefix and those in [`NOT_CONFIG`] are ignored; an unknown
/// `COMET_*` variable, a section name, or a value that does not fit its key
/// is an error naming the variable. Does not validate.
pub fn overlay(config: Config, vars: impl IntoIterator<Item = (OsString, OsString)>) -> Result<Overlaid, ConfigError> {
    // Name order, so that the first error reported does not depend on the
    // order the OS lists the environment in.
    let mut wanted = BTreeMap::new();
    for (name, value) in vars {
        let Some(name) = name.to_str().map(str::to_string) else {
            if name.as_encoded_bytes().starts_with(PREFIX.as_bytes()) {
                return Err(env_error(name.to_string_lossy(), "the name is not valid UTF-8"));
            }
            continue;
        };
        if !name.starts_with(PREFIX) || NOT_CONFIG.iter().any(|(n, _)| *n == name) {
            continue;
        }
        wanted.insert(name, value);
    }
    if wanted.is_empty() {
        return Ok(Overlaid {
            config,
            set: Vec::new(),
        });
    }
    let mut root = tree(&config);
    let applied = overlay_tree(&mut root, wanted)?;
    let text = serde_norway::to_string(&root).expect("a YAML value tree always prints");
    let config = Config::from_yaml(&text).map_err(|e| attribute_parse_error(e, &applied))?;
    Ok(Overlaid {
        config,
        set: applied.into_iter().map(|a| a.key).collect(),
    })
}

/// One variable applied to the tree, with its text for error messages.
#[derive(Debug)]
struct Applied {
    key: EnvKey,
    raw: String,
    secret: bool,
}

/// Sets the leaves of `root` named by `wanted` (variable -> value); the tree
/// alone decides which names exist and what kind each value must be.
fn overlay_tree(root: &mut Value, wanted: BTreeMap<String, OsString>) -> Result<Vec<Applied>, ConfigError> {
    let (mut keys, mut sections) = (Vec::new(), Vec::new());
    collect(root, &mut Vec::new(), &mut keys, &mut sections);
    let mut applied = Vec::new();
    for (var, value) in wanted {
        let matching: Vec<&EnvKey> = keys.iter().filter(|k| k.var == var).collect();
        let key = match matching[..] {
            [key] => key,
            [] => return Err(unknown(&var, &keys, &sections)),
            _ => {
                let names: Vec<&str> = matching.iter().map(|k| k.key.as_str()).collect();
                return Err(env_error(
                    &var,
                    format!(
                        "ambiguous: it would set {}; rename one of these keys",
                        names.join(" and ")
                    ),
                ));
            }
        };
        let secret = SECRET_KEYS.contains(&key.key.as_str());
        let Some(raw) = value.to_str() else {
            return Err(env_error(&var, "the value is not valid UTF-8"));
        };
        let leaf = leaf_mut(root, &key.key).expect("every listed key is a leaf of the tree");
        *leaf = convert(leaf, raw).map_err(|why| env_error(&var, with_value(&why, raw, secret)))?;
        applied.push(Applied {
            key: key.clone(),
            raw: raw.to_string(),
            secret,
        });
    }
    Ok(applied)
}

/// Shorthand for [`ConfigError::Env`].
fn env_error(var: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Env {
        var: var.into(),
        reason: reason.into(),
    }
}

/// `why` followed by the value as given, unless it is a secret.
fn with_value(why: &str, raw: &str, secret: bool) -> String {
    if secret {
        format!("{why} (value not shown: a secret)")
    } else {
        format!("{why} (got {raw:?})")
    }
}

/// The error for a `COMET_*` variable that names no key.
fn unknown(var: &str, keys: &[EnvKey], sections: &[EnvKey]) -> ConfigError {
    if let Some(section) = sections.iter().find(|s| s.var == var) {
        let inner: Vec<&str> = keys
            .iter()
            .filter(|k| k.key.starts_with(&format!("{}.", section.key)))
            .map(|k| k.var.as_str())
            .take(3)
            .collect();
        return env_error(
            var,
            format!(
                "`{}` is a section; set its keys instead ({}, ...)",
                section.key,
                inner.join(", ")
            ),
        );
    }
    let closest = keys
        .iter()
        .map(|k| (edit_distance(var, &k.var), k))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d);
    match closest {
        Some((_, k)) => env_error(var, format!("no such config key; did you mean {} ({})?", k.var, k.key)),
        None => env_error(
            var,
            "no such config key (COMET_<SECTION>_<KEY>, e.g. COMET_FRONT_LISTEN; `comet --print-config` shows the keys)",
        ),
    }
}

/// Levenshtein distance, for "did you mean" (names are short ASCII).
fn edit_distance(a: &str, b: &str) -> usize {
    let b = b.as_bytes();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, &ca) in a.as_bytes().iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for j in 0..b.len() {
            let above = row[j + 1];
            row[j + 1] = (above + 1).min(row[j] + 1).min(diagonal + usize::from(ca != b[j]));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// The leaf at dotted `key` in `root`.
fn leaf_mut<'a>(root: &'a mut Value, key: &str) -> Option<&'a mut Value> {
    key.split('.')
        .try_fold(root, |node, part| node.as_mapping_mut()?.get_mut(part))
}

/// `raw` as a value of the same kind as `current`, or why it is not one.
fn convert(current: &Value, raw: &str) -> Result<Value, String> {
    Ok(match current {
        Value::Bool(_) => match raw.trim() {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => return Err("expected true or false".to_string()),
        },
        Value::Number(n) if n.is_f64() => match raw.trim().parse::<f64>() {
            Ok(f) if f.is_finite() => Value::Number(f.into()),
            _ => return Err("expected a number".to_string()),
        },
        Value::Number(_) => {
            let t = raw.trim();
            match (t.parse::<i64>(), t.parse::<u64>()) {
                (Ok(i), _) => Value::Number(i.into()),
                (_, Ok(u)) => Value::Number(u.into()),
                _ => return Err("expected an integer".to_string()),
            }
        }
        Value::String(_) => Value::String(raw.to_string()),
        Value::Sequence(items) => {
            let mut list = Vec::new();
            for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                list.push(match items.first() {
                    Some(kind) => convert(kind, item).map_err(|why| format!("list item {item:?}: {why}"))?,
                    None => scalar(item),
                });
            }
            Value::Sequence(list)
        }
        // A null (an Option that is None) or anything else: read the text
        // as a YAML scalar and let the typed parse decide.
        _ => scalar(raw),
    })
}

/// `raw` read as one YAML scalar (`""` is null); text that would be a
/// collection stays a string.
fn scalar(raw: &str) -> Value {
    match serde_norway::from_str::<Value>(raw) {
        Ok(v @ (Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_))) => v,
        _ => Value::String(raw.to_string()),
    }
}

/// Maps an error from parsing the overlaid tree back to the variable whose
/// key it names (`front.listen: invalid socket address syntax` becomes
/// `COMET_FRONT_LISTEN: invalid socket address syntax (got "x")`).
fn attribute_parse_error(e: ConfigError, applied: &[Applied]) -> ConfigError {
    let message = match &e {
        ConfigError::Syntax { message, .. } => message.clone(),
        other => other.to_string(),
    };
    let mut best: Option<(&Applied, String)> = None;
    for a in applied {
        let k = &a.key;
        let reason = if let Some(rest) = message.strip_prefix(&format!("{}: ", k.key)) {
            rest.to_string()
        } else if let Some(rest) = message.strip_prefix(&format!("{}[", k.key)) {
            format!("list item [{rest}")
        } else {
            continue;
        };
        if best.as_ref().is_none_or(|(b, _)| k.key.len() > b.key.key.len()) {
            best = Some((a, reason));
        }
    }
    match best {
        Some((a, reason)) => env_error(&a.key.var, with_value(&reason, &a.raw, a.secret)),
        None => {
            let vars: Vec<&str> = applied.iter().map(|a| a.key.var.as_str()).collect();
            env_error(vars.join(", "), message)
        }
    }
}

impl Config {
    /// Loads the effective configuration: the built-in defaults, then
    /// `file` (when given; without it the embedded `comet.yaml`), then the
    /// `COMET_*` variables among `vars`; then validates. An error about a
    /// key that a variable set names the variable. Used at start, by
    /// `--check-config` and `--print-config`.
    pub fn load_effective(
        file: Option<&Path>,
        vars: impl IntoIterator<Item = (OsString, OsString)>,
    ) -> Result<Config, ConfigError> {
        let base = match file {
            Some(path) => Config::load(path)?,
            None => Config::from_yaml(DEFAULT_YAML)?,
        };
        let Overlaid { config, set } = overlay(base, vars)?;
        match config.validate() {
            Ok(()) => Ok(config),
            Err(ConfigError::Invalid { key, rule }) => {
                let base_key = key.split('[').next().unwrap_or(&key);
                // A rule between two keys names the other one in its text
                // (`hooks.retry_initial_ms must not exceed hooks.retry_max_ms`):
                // the variable that set either is the one to name.
                let named = set.iter().find(|k| k.key == base_key);
                match named.or_else(|| set.iter().find(|k| rule.contains(k.key.as_str()))) {
                    Some(k) => Err(env_error(&k.var, format!("{key} {rule}"))),
                    None => Err(ConfigError::Invalid { key, rule }),
                }
            }
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests;
