//! Two configurations compared key by key, keys copied from one to the
//! other, and values written for the reload's log line with secrets masked.
//!
//! Works on the configuration's YAML value tree, as the environment loader
//! does (`crate::config::env`): a leaf is anything that is not a mapping
//! (lists included), named by its dotted path. Pure functions; nothing here
//! applies a configuration.

use std::collections::HashMap;

use serde_norway::Value;

use crate::config::{Config, ConfigError, MASK, SECRET_KEYS};

/// One key whose value differs between two configurations.
#[derive(Debug, Clone, PartialEq)]
pub struct Changed {
    /// The dotted key, e.g. `front.polling_timeout`.
    pub key: String,
    /// The value it had (`Null` where the other side has a whole section
    /// this one lacks).
    pub old: Value,
    /// The value it has now.
    pub new: Value,
}

/// The config as a YAML value tree.
fn tree(config: &Config) -> Value {
    serde_norway::to_value(config).expect("the config tree is plain data and always serialises")
}

/// Every leaf of `v` with its dotted path, in the tree's order.
fn leaves(v: &Value) -> Vec<(String, Value)> {
    fn walk(v: &Value, path: &mut Vec<String>, out: &mut Vec<(String, Value)>) {
        match v {
            Value::Mapping(m) if !m.is_empty() || path.is_empty() => {
                for (k, v) in m {
                    if let Some(k) = k.as_str() {
                        path.push(k.to_string());
                        walk(v, path, out);
                        path.pop();
                    }
                }
            }
            leaf => out.push((path.join("."), leaf.clone())),
        }
    }
    let mut out = Vec::new();
    walk(v, &mut Vec::new(), &mut out);
    out
}

/// The keys whose values differ from `old` to `new`, in the order of
/// `old`'s tree, then keys only `new` has.
pub fn changed(old: &Config, new: &Config) -> Vec<Changed> {
    let (old, new) = (leaves(&tree(old)), leaves(&tree(new)));
    let new_by_key: HashMap<&str, &Value> = new.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let old_keys: HashMap<&str, ()> = old.iter().map(|(k, _)| (k.as_str(), ())).collect();
    let mut out = Vec::new();
    for (key, was) in &old {
        let now = new_by_key.get(key.as_str()).copied().unwrap_or(&Value::Null);
        if was != now {
            out.push(Changed {
                key: key.clone(),
                old: was.clone(),
                new: now.clone(),
            });
        }
    }
    for (key, now) in &new {
        if !old_keys.contains_key(key.as_str()) && *now != Value::Null {
            out.push(Changed {
                key: key.clone(),
                old: Value::Null,
                new: now.clone(),
            });
        }
    }
    out
}

/// The node at dotted `path`, made to exist (a missing or non-mapping node
/// on the way becomes a mapping).
fn node_mut<'a>(root: &'a mut Value, path: &str) -> &'a mut Value {
    let mut node = root;
    for part in path.split('.') {
        if !node.is_mapping() {
            *node = Value::Mapping(Default::default());
        }
        let map = node.as_mapping_mut().expect("made a mapping just above");
        node = map.entry(Value::String(part.to_string())).or_insert(Value::Null);
    }
    node
}

/// The node at dotted `path`, if it exists.
fn node<'a>(root: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .try_fold(root, |node, part| node.as_mapping()?.get(part))
}

/// `base` with the nodes at `paths` (leaves or whole sections) taken from
/// `from`. Fails only if the mixture does not load back, which a section
/// copied whole cannot cause.
pub fn take(base: &Config, from: &Config, paths: &[&str]) -> Result<Config, ConfigError> {
    let mut root = tree(base);
    let source = tree(from);
    for path in paths {
        let value = node(&source, path).cloned().unwrap_or(Value::Null);
        *node_mut(&mut root, path) = value;
    }
    let text = serde_norway::to_string(&root).expect("a YAML value tree always prints");
    Config::from_yaml(&text)
}

/// `value` of `key` on one line: YAML flow style (`30`, `info`, `[a, b]`,
/// `""` for an empty string), or [`MASK`] for a non-empty secret.
pub fn show(key: &str, value: &Value) -> String {
    let secret = SECRET_KEYS
        .iter()
        .any(|s| key == *s || key.starts_with(&format!("{s}.")));
    match value {
        Value::String(s) if s.is_empty() => "\"\"".to_string(),
        Value::Null => "null".to_string(),
        _ if secret => MASK.to_string(),
        Value::String(s) => s.clone(),
        Value::Sequence(items) => {
            let items: Vec<String> = items.iter().map(|v| show(key, v)).collect();
            format!("[{}]", items.join(", "))
        }
        other => serde_json::to_string(other).unwrap_or_else(|_| format!("{other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> Config {
        Config::from_yaml(yaml).expect("parses")
    }

    #[test]
    fn changed_lists_each_differing_leaf_in_tree_order() {
        let old = Config::default();
        let new = config("log_level: debug\nfront:\n  polling_timeout: 5\nadmin:\n  allow: []\n  key: s3cret\n");
        let keys: Vec<(String, String, String)> = changed(&old, &new)
            .into_iter()
            .map(|c| (c.key.clone(), show(&c.key, &c.old), show(&c.key, &c.new)))
            .collect();
        assert_eq!(
            keys,
            [
                ("log_level", "info", "debug"),
                ("front.polling_timeout", "30", "5"),
                ("admin.allow", "[127.0.0.1]", "[]"),
                ("admin.key", "\"\"", MASK),
            ]
            .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        );
        assert!(changed(&old, &old.clone()).is_empty());
    }

    #[test]
    fn take_copies_only_the_named_paths() {
        let base = Config::default();
        let from = config("workers: 4\nfront:\n  polling_timeout: 5\n  max_channels: 9\n");
        let got = take(&base, &from, &["front.polling_timeout"]).expect("loads");
        assert_eq!(got.front.polling_timeout, 5);
        assert_eq!(got.front.max_channels, base.front.max_channels);
        assert_eq!(got.workers, base.workers);
        let got = take(&base, &from, &["front", "workers"]).expect("loads");
        assert_eq!(got.front, from.front);
        assert_eq!(got.workers, 4);
        assert_eq!(take(&base, &from, &[]).expect("loads"), base);
    }

    #[test]
    fn secrets_never_show() {
        assert_eq!(show("admin.key", &Value::String("k".into())), MASK);
        assert_eq!(show("admin.key", &Value::String(String::new())), "\"\"");
        assert_eq!(
            show("front.listen", &Value::String("127.0.0.1:0".into())),
            "127.0.0.1:0"
        );
        assert_eq!(show("x", &Value::Bool(true)), "true");
    }

    #[test]
    fn missing_sections_count_as_null() {
        let mut root = Value::Mapping(Default::default());
        *node_mut(&mut root, "a.b.c") = Value::Bool(true);
        assert_eq!(node(&root, "a.b.c"), Some(&Value::Bool(true)));
        let mut null_section = serde_norway::from_str::<Value>("a: null\n").expect("yaml");
        *node_mut(&mut null_section, "a.b") = Value::Bool(false);
        assert_eq!(node(&null_section, "a.b"), Some(&Value::Bool(false)));
        let with = serde_norway::from_str::<Value>("a: {b: 1}\nc: 2\n").expect("yaml");
        let without = serde_norway::from_str::<Value>("a: null\nc: 2\n").expect("yaml");
        assert_eq!(
            leaves(&with),
            [("a.b".to_string(), Value::from(1)), ("c".to_string(), Value::from(2))]
        );
        assert_eq!(
            leaves(&without),
            [("a".to_string(), Value::Null), ("c".to_string(), Value::from(2))]
        );
    }
}
