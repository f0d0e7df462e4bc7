use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use super::*;
use crate::config::{Auth, LogFormat, MASK};

/// `pairs` as the environment.
fn env(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
    pairs
        .iter()
        .map(|(k, v)| (OsString::from(k), OsString::from(v)))
        .collect()
}

/// The defaults with `pairs` applied and validated.
fn with_env(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
    Config::load_effective(None, env(pairs))
}

/// The message of the error `pairs` cause over the defaults.
fn env_err(pairs: &[(&str, &str)]) -> String {
    match with_env(pairs) {
        Err(e @ ConfigError::Env { .. }) => e.to_string(),
        other => panic!("{pairs:?}: expected an Env error, got {other:?}"),
    }
}

/// A config in which every key differs from its default (a test checks
/// that, so a key added later must get a value here).
const EVERY_KEY_CHANGED: &str = "log_level: debug\nlog_format: json\nworkers: 3\nshutdown_grace_secs: 9\n\
    front:\n  listen: \"[::1]:8101\"\n  listen_backlog: 6\n  auth: token\n  max_channels: 7\n  \
    max_subscribers_per_channel: 8\n  channel_buffer_size: 9\n  channel_timeout: 0\n  \
    polling_timeout: 11\n  max_connections: 12\n  max_connections_per_ip: 13\n  \
    header_timeout_secs: 14\n  max_cname_bytes: 15\n  max_queued_bytes: 4097\n  \
    socket_send_buffer_bytes: 16\n  socket_recv_buffer_bytes: 17\n  \
    descriptor_tables: always\n  sse_retry_ms: 18\n  \
    allowed_origins: [\"https://a.example\", \"http://b.example:8080\"]\n  \
    max_channels_per_connection: 3\n  ws_max_message_bytes: 600\n  ws_max_frames_per_sec: 7\n  \
    ws_echo: true\n  jwt: {algorithm: ES256, secret: jwt-s3cret, public_key_file: /etc/comet/jwt.pem, \
    leeway_secs: 6, audience: app, issuer: me, cache_max: 5, cache_secs: 7}\n\
    admin:\n  listen: \"127.0.0.2:8001\"\n  allow: [\"10.\", all]\n  deny: []\n  \
    max_body_bytes: 19\n  threads: 3\n  key: k3y\n  open_health: true\n\
    cluster:\n  redis: \"redis://127.0.0.1:7001/2\"\n  prefix: cx\n  node_id: n1\n  \
    hmac_secret: 0123456789abcdef0123\n  hmac_secret_previous: fedcba9876543210fedc\n  \
    call_timeout_ms: 501\n  connect_timeout_ms: 1001\n  reconnect_min_ms: 101\n  \
    reconnect_max_ms: 5001\n  subscribe_batch: 511\n  subscribe_concurrency: 15\n  \
    subscribe_linger_ms: 2\n  data_connections: 2\n  probe_interval_ms: 5001\n  \
    probe_timeout_ms: 3001\n  node_report_interval_ms: 2001\n  node_stale_ms: 6001\n  \
    reaper_interval_ms: 1001\n  index_refresh_interval_ms: 10001\n  survey_timeout_ms: 301\n  \
    publish_batch_messages: 999\n\
    hooks:\n  authorize_url: \"http://127.0.0.1:9000/a\"\n  authorize_timeout_ms: 1001\n  \
    authorize_concurrency: 3\n  authorize_queue_max: 4\n  authorize_cache_secs: 5\n  \
    authorize_cache_max: 6\n  authorize_on_error: allow\n  events_url: \"http://127.0.0.1:9000/e\"\n  \
    events_batch_max: 7\n  events_batch_ms: 8\n  events_queue_max: 9\n  events_timeout_ms: 10\n  \
    events_publish: true\n  retry_initial_ms: 11\n  retry_max_ms: 12\n";

/// Every leaf of a YAML document as (dotted key, value written the way an
/// environment variable carries it: lists comma-separated).
fn leaves(doc: &Value) -> Vec<(String, String)> {
    fn walk(v: &Value, path: &mut Vec<String>, out: &mut Vec<(String, String)>) {
        let text = |v: &Value| match v {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            other => serde_norway::to_string(other).expect("print").trim_end().to_string(),
        };
        match v {
            Value::Mapping(m) => {
                for (k, v) in m {
                    path.push(k.as_str().expect("string keys").to_string());
                    walk(v, path, out);
                    path.pop();
                }
            }
            Value::Sequence(items) => {
                let items: Vec<String> = items.iter().map(text).collect();
                out.push((path.join("."), items.join(",")));
            }
            other => out.push((path.join("."), text(other))),
        }
    }
    let mut out = Vec::new();
    walk(doc, &mut Vec::new(), &mut out);
    out
}

/// The environment that sets every leaf of `yaml` to its value there.
fn env_of(yaml: &str) -> Vec<(OsString, OsString)> {
    let doc: Value = serde_norway::from_str(yaml).expect("yaml");
    leaves(&doc)
        .into_iter()
        .map(|(key, value)| {
            let path: Vec<String> = key.split('.').map(str::to_string).collect();
            (OsString::from(var_name(&path)), OsString::from(value))
        })
        .collect()
}

#[test]
fn every_key_of_the_shipped_yaml_is_settable_from_the_environment() {
    let shipped: Value = serde_norway::from_str(DEFAULT_YAML).expect("comet.yaml");
    let changed = Config::from_yaml(EVERY_KEY_CHANGED).expect("parses");
    changed.validate().expect("valid");
    let changed_tree = tree(&changed);
    // Every key of comet.yaml has a different value in EVERY_KEY_CHANGED...
    let shipped_leaves = leaves(&shipped);
    assert!(shipped_leaves.len() >= 25, "{shipped_leaves:?}");
    for (key, value) in &shipped_leaves {
        let other = leaves(&changed_tree)
            .into_iter()
            .find(|(k, _)| k == key)
            .unwrap_or_else(|| panic!("{key} is missing from the config tree"));
        assert_ne!(&other.1, value, "give {key} a non-default value in EVERY_KEY_CHANGED");
    }
    // ...and the variables named after comet.yaml's keys carry a file with
    // every key changed back to comet.yaml's values, and the reverse.
    let file = std::env::temp_dir().join(format!("comet-env-test-{}.yaml", std::process::id()));
    std::fs::write(&file, EVERY_KEY_CHANGED).expect("write");
    let back = Config::load_effective(Some(&file), env_of(DEFAULT_YAML));
    let _ = std::fs::remove_file(&file);
    assert_eq!(back.expect("valid"), Config::default());
    let forth = Config::load_effective(None, env_of(EVERY_KEY_CHANGED)).expect("valid");
    assert_eq!(forth, changed);
}

#[test]
fn variables_are_derived_from_the_tree() {
    let vars = variables(&Config::default());
    let find = |var: &str| vars.iter().find(|k| k.var == var).map(|k| k.key.as_str());
    assert_eq!(find("COMET_LOG_LEVEL"), Some("log_level"));
    assert_eq!(find("COMET_LOG_FORMAT"), Some("log_format"));
    assert_eq!(find("COMET_WORKERS"), Some("workers"));
    assert_eq!(find("COMET_FRONT_LISTEN"), Some("front.listen"));
    assert_eq!(find("COMET_FRONT_POLLING_TIMEOUT"), Some("front.polling_timeout"));
    assert_eq!(find("COMET_ADMIN_ALLOW"), Some("admin.allow"));
    assert_eq!(find("COMET_FRONT"), None, "a section is not a key");
    // No two keys share a variable, and no tool variable is a key.
    let mut names: Vec<&str> = vars.iter().map(|k| k.var.as_str()).collect();
    names.sort_unstable();
    let count = names.len();
    names.dedup();
    assert_eq!(names.len(), count, "two keys map to one variable");
    for (tool_var, _) in NOT_CONFIG {
        assert!(tool_var.starts_with(PREFIX));
        assert_eq!(
            find(tool_var),
            None,
            "{tool_var} is both a tool variable and a config key"
        );
    }
}

#[test]
fn nested_sections_added_later_work_the_same_way() {
    // A tree like one with sections comet may grow; names with `_` inside
    // keys resolve against the tree, not by splitting.
    let mut root: Value = serde_norway::from_str(
        "cluster: {redis: \"\", channels_prefix: comet}\n\
         hooks: {events_url: null, timeout_ms: 500, retry: true}\n\
         front: {jwt: {secret: \"\", leeway_secs: 5}, listen: \"0.0.0.0:8100\"}\n",
    )
    .expect("yaml");
    let wanted: BTreeMap<String, OsString> = [
        ("COMET_CLUSTER_REDIS", "redis://127.0.0.1:6379/"),
        ("COMET_HOOKS_EVENTS_URL", "http://127.0.0.1:9000/events"),
        ("COMET_HOOKS_TIMEOUT_MS", "750"),
        ("COMET_HOOKS_RETRY", "false"),
        ("COMET_FRONT_JWT_SECRET", "abc"),
        ("COMET_FRONT_JWT_LEEWAY_SECS", "9"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), OsString::from(v)))
    .collect();
    let applied = overlay_tree(&mut root, wanted).expect("applies");
    assert_eq!(applied.len(), 6);
    let want: Value = serde_norway::from_str(
        "cluster: {redis: \"redis://127.0.0.1:6379/\", channels_prefix: comet}\n\
         hooks: {events_url: \"http://127.0.0.1:9000/events\", timeout_ms: 750, retry: false}\n\
         front: {jwt: {secret: abc, leeway_secs: 9}, listen: \"0.0.0.0:8100\"}\n",
    )
    .expect("yaml");
    assert_eq!(root, want);
    let keys: Vec<String> = applied.iter().map(|a| a.key.key.clone()).collect();
    assert!(keys.contains(&"front.jwt.secret".to_string()), "{keys:?}");
    assert!(keys.contains(&"hooks.events_url".to_string()), "{keys:?}");
}

#[test]
fn two_keys_with_one_variable_are_refused_as_ambiguous() {
    let mut root: Value = serde_norway::from_str("a: {b_c: 1}\na_b: {c: 2}\n").expect("yaml");
    let wanted = BTreeMap::from([("COMET_A_B_C".to_string(), OsString::from("3"))]);
    let e = overlay_tree(&mut root, wanted).expect_err("ambiguous");
    assert_eq!(
        e.to_string(),
        "COMET_A_B_C: ambiguous: it would set a.b_c and a_b.c; rename one of these keys"
    );
}

#[test]
fn precedence_is_default_then_file_then_environment() {
    let file = std::env::temp_dir().join(format!("comet-env-precedence-{}.yaml", std::process::id()));
    std::fs::write(&file, "front: {polling_timeout: 10, max_channels: 500}\n").expect("write");
    let from_file = Config::load_effective(Some(&file), env(&[])).expect("valid");
    let from_env = Config::load_effective(Some(&file), env(&[("COMET_FRONT_POLLING_TIMEOUT", "20")])).expect("valid");
    let _ = std::fs::remove_file(&file);
    assert_eq!(
        Config::load_effective(None, env(&[])).expect("valid"),
        Config::default()
    );
    assert_eq!(from_file.front.polling_timeout, 10);
    assert_eq!(from_env.front.polling_timeout, 20, "the environment wins over the file");
    assert_eq!(
        from_env.front.max_channels, 500,
        "keys the environment leaves alone keep the file's value"
    );
    assert_eq!(from_env.front.channel_timeout, 30, "and the others their default");
}

#[test]
fn values_take_the_kind_of_their_key() {
    let c = with_env(&[
        ("COMET_LOG_LEVEL", "debug"),
        ("COMET_LOG_FORMAT", "json"),
        ("COMET_WORKERS", " 4 "),
        ("COMET_FRONT_LISTEN", "0.0.0.0:9100"),
        ("COMET_FRONT_AUTH", "token"),
        ("COMET_ADMIN_KEY", "yes"),
    ])
    .expect("valid");
    assert_eq!(c.log_level, "debug");
    assert_eq!(c.log_format, LogFormat::Json);
    assert_eq!(c.workers, 4);
    assert_eq!(c.front.listen, "0.0.0.0:9100".parse().expect("addr"));
    assert_eq!(c.front.auth, Auth::Token);
    assert_eq!(
        c.admin.key, "yes",
        "a string stays a string even when YAML would read a boolean"
    );
}

#[test]
fn lists_are_comma_separated() {
    let c = with_env(&[("COMET_ADMIN_ALLOW", "127.0.0.1,10.0.0.5"), ("COMET_ADMIN_DENY", "all")]).expect("valid");
    assert_eq!(c.admin.allow, ["127.0.0.1", "10.0.0.5"]);
    assert_eq!(c.admin.deny, ["all"]);
    let c = with_env(&[("COMET_ADMIN_ALLOW", " 192.168 , 10. ,,")]).expect("valid");
    assert_eq!(
        c.admin.allow,
        ["192.168", "10."],
        "items are trimmed, empty ones dropped"
    );
    let c = with_env(&[("COMET_ADMIN_ALLOW", ""), ("COMET_ADMIN_DENY", "")]).expect("valid");
    assert!(
        c.admin.allow.is_empty() && c.admin.deny.is_empty(),
        "an empty value is an empty list"
    );
    let c = with_env(&[("COMET_ADMIN_ALLOW", "1,2")]).expect("valid");
    assert_eq!(c.admin.allow, ["1", "2"], "items of a string list stay strings");
}

#[test]
fn a_bad_value_names_the_variable() {
    assert_eq!(
        env_err(&[("COMET_FRONT_POLLING_TIMEOUT", "abc")]),
        "COMET_FRONT_POLLING_TIMEOUT: expected an integer (got \"abc\")"
    );
    assert_eq!(
        env_err(&[("COMET_WORKERS", "99999999999999999999999")]),
        "COMET_WORKERS: expected an integer (got \"99999999999999999999999\")"
    );
    assert_eq!(
        env_err(&[("COMET_FRONT_POLLING_TIMEOUT", "-1")]),
        "COMET_FRONT_POLLING_TIMEOUT: invalid type: integer `-1`, expected u32 (got \"-1\")"
    );
    let msg = env_err(&[("COMET_FRONT_LISTEN", "localhost")]);
    assert_eq!(
        msg,
        "COMET_FRONT_LISTEN: invalid socket address syntax (got \"localhost\")"
    );
    let msg = env_err(&[("COMET_FRONT_AUTH", "password")]);
    assert!(msg.starts_with("COMET_FRONT_AUTH: unknown variant `password`"), "{msg}");
    let msg = env_err(&[("COMET_LOG_FORMAT", "xml")]);
    assert!(msg.starts_with("COMET_LOG_FORMAT: unknown variant `xml`"), "{msg}");
    // Rules checked by validate() name the variable and the key.
    assert_eq!(
        env_err(&[("COMET_FRONT_POLLING_TIMEOUT", "0")]),
        "COMET_FRONT_POLLING_TIMEOUT: front.polling_timeout must be > 0"
    );
    let msg = env_err(&[("COMET_ADMIN_ALLOW", "10.0.0.1,a b")]);
    assert!(msg.starts_with("COMET_ADMIN_ALLOW: admin.allow[1] must be"), "{msg}");
    // A rule broken by a file key stays about the key.
    let file = std::env::temp_dir().join(format!("comet-env-rule-{}.yaml", std::process::id()));
    std::fs::write(&file, "admin: {threads: 0}\n").expect("write");
    let e = Config::load_effective(Some(&file), env(&[("COMET_WORKERS", "2")])).expect_err("invalid");
    let _ = std::fs::remove_file(&file);
    assert!(
        matches!(e, ConfigError::Invalid { ref key, .. } if key == "admin.threads"),
        "{e:?}"
    );
}

#[test]
fn a_bad_secret_is_not_repeated() {
    let msg = env_err(&[("COMET_ADMIN_KEY", "two words")]);
    assert!(
        msg.starts_with("COMET_ADMIN_KEY: admin.key must be printable ASCII"),
        "{msg}"
    );
    assert!(!msg.contains("two words"), "{msg}");
    let msg = env_err(&[("COMET_FRONT_AUTH", "jwt"), ("COMET_FRONT_JWT_SECRET", "sh0rt-s3cret")]);
    assert_eq!(
        msg,
        "COMET_FRONT_JWT_SECRET: front.jwt.secret must be at least 32 bytes for HS256 (RFC 7518 3.2; got 12)"
    );
    // The same when the typed parse is what fails.
    let mut root: Value = serde_norway::from_str("admin: {key: 1}\n").expect("yaml");
    let wanted = BTreeMap::from([("COMET_ADMIN_KEY".to_string(), OsString::from("s3cret"))]);
    let e = overlay_tree(&mut root, wanted).expect_err("not an integer");
    assert_eq!(
        e.to_string(),
        "COMET_ADMIN_KEY: expected an integer (value not shown: a secret)"
    );
}

#[test]
fn an_unknown_variable_is_an_error() {
    assert_eq!(
        env_err(&[("COMET_FRONT_LISTN", "0.0.0.0:1")]),
        "COMET_FRONT_LISTN: no such config key; did you mean COMET_FRONT_LISTEN (front.listen)?"
    );
    let msg = env_err(&[("COMET_BOGUS", "1")]);
    assert!(
        msg.starts_with("COMET_BOGUS: no such config key (COMET_<SECTION>_<KEY>"),
        "{msg}"
    );
    let msg = env_err(&[("COMET_FRONT", "x")]);
    assert!(
        msg.starts_with("COMET_FRONT: `front` is a section; set its keys instead (COMET_FRONT_LISTEN"),
        "{msg}"
    );
    let msg = env_err(&[("COMET_", "x")]);
    assert!(msg.starts_with("COMET_: no such config key"), "{msg}");
}

#[test]
fn other_variables_are_ignored() {
    let mut vars: Vec<(&str, &str)> = NOT_CONFIG.iter().map(|(k, _)| (*k, "anything")).collect();
    vars.extend([
        ("PATH", "/bin"),
        ("RUST_LOG", "trace"),
        ("comet_front_listen", "x"),
        ("XCOMET_A", "1"),
    ]);
    assert_eq!(with_env(&vars).expect("valid"), Config::default());
}

#[test]
fn text_that_is_not_utf8_is_refused() {
    let bad = OsString::from_vec(vec![0x66, 0xff]);
    let e = Config::load_effective(None, vec![(OsString::from("COMET_ADMIN_KEY"), bad.clone())]).expect_err("bad");
    assert_eq!(e.to_string(), "COMET_ADMIN_KEY: the value is not valid UTF-8");
    let mut name = b"COMET_".to_vec();
    name.push(0xff);
    let e = Config::load_effective(None, vec![(OsString::from_vec(name), OsString::from("1"))]).expect_err("bad");
    assert!(e.to_string().ends_with(": the name is not valid UTF-8"), "{e}");
    // A name without the prefix is none of comet's business.
    let c = Config::load_effective(None, vec![(OsString::from_vec(vec![0xff]), bad)]).expect("ignored");
    assert_eq!(c, Config::default());
}

#[test]
fn secrets_are_masked_in_the_printed_config() {
    for key in SECRET_KEYS {
        assert!(
            variables(&Config::default()).iter().any(|k| k.key == *key),
            "SECRET_KEYS lists {key}, which is not a key"
        );
    }
    let c = with_env(&[("COMET_ADMIN_KEY", "s3cret-key"), ("COMET_WORKERS", "3")]).expect("valid");
    let printed = effective_yaml(&c);
    assert!(!printed.contains("s3cret-key"), "{printed}");
    assert!(printed.contains(MASK), "{printed}");
    let back = Config::from_yaml(&printed).expect("the printed config parses");
    assert_eq!(back.workers, 3);
    assert_eq!(back.admin.key, MASK);
    let e = back.validate().expect_err("a masked key must not pass for a key");
    assert!(e.to_string().starts_with("admin.key "), "{e}");
    // No key set: it prints empty, and everything loads back as it was.
    let printed = effective_yaml(&Config::default());
    assert!(!printed.contains(MASK), "{printed}");
    assert_eq!(Config::from_yaml(&printed).expect("parses"), Config::default());
}

#[test]
fn edit_distance_counts_edits() {
    assert_eq!(edit_distance("", ""), 0);
    assert_eq!(edit_distance("abc", "abc"), 0);
    assert_eq!(edit_distance("abc", "ab"), 1);
    assert_eq!(edit_distance("abc", "abd"), 1);
    assert_eq!(edit_distance("kitten", "sitting"), 3);
}

#[test]
fn any_text_in_any_variable_is_a_config_or_an_error_naming_it() {
    let nasty = [
        "",
        " ",
        ",",
        " , ,",
        "~",
        "null",
        "true",
        "0",
        "-0",
        "+7",
        "1e999",
        "0x10",
        "1_000",
        "18446744073709551616",
        "-9223372036854775809",
        "3.5",
        "NaN",
        "{",
        "}",
        "[1,2]",
        "{a: 1}",
        "- a",
        "a: b",
        "&a x",
        "*a",
        "!!binary aGk=",
        "!x y",
        "%YAML 1.2",
        "---",
        "...",
        "'",
        "\"",
        "#x",
        "a\nb",
        "\t",
        "\u{0}",
        "caf\u{e9}",
        "\u{2028}",
        "127.0.0.1:8100",
        "[::1]:1",
        "all",
        "token",
        "json",
    ];
    let long = "x".repeat(100_000);
    for key in variables(&Config::default()) {
        for value in nasty.iter().copied().chain([long.as_str()]) {
            match with_env(&[(key.var.as_str(), value)]) {
                Ok(_) => {}
                Err(ConfigError::Env { var, reason }) => {
                    assert_eq!(var, key.var, "{value:?}");
                    assert!(!reason.is_empty());
                    if SECRET_KEYS.contains(&key.key.as_str()) && value.len() > 3 {
                        assert!(!reason.contains(value), "the secret was repeated: {reason}");
                    }
                }
                Err(other) => panic!("{} = {value:?}: {other:?}", key.var),
            }
        }
    }
}

#[test]
fn open_health_is_set_from_the_environment() {
    let c = with_env(&[("COMET_ADMIN_OPEN_HEALTH", "true")]).expect("valid");
    assert!(c.admin.open_health);
    assert_eq!(
        env_err(&[("COMET_ADMIN_OPEN_HEALTH", "yes")]),
        "COMET_ADMIN_OPEN_HEALTH: expected true or false (got \"yes\")"
    );
}

#[test]
fn a_rule_between_two_keys_names_the_variable_that_set_either() {
    assert_eq!(
        env_err(&[("COMET_HOOKS_RETRY_MAX_MS", "7")]),
        "COMET_HOOKS_RETRY_MAX_MS: hooks.retry_initial_ms must not exceed hooks.retry_max_ms (100 > 7)"
    );
    assert_eq!(
        env_err(&[("COMET_HOOKS_RETRY_INITIAL_MS", "20000")]),
        "COMET_HOOKS_RETRY_INITIAL_MS: hooks.retry_initial_ms must not exceed hooks.retry_max_ms (20000 > 10000)"
    );
}
