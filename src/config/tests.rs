use super::*;

/// The default config with `yaml` parsed over it, then validated.
fn check(yaml: &str) -> Result<Config, ConfigError> {
    let c = Config::from_yaml(yaml)?;
    c.validate()?;
    Ok(c)
}

/// Asserts that `yaml` parses but fails validation naming `key`.
fn rejects(yaml: &str, key: &str) {
    let c = Config::from_yaml(yaml).expect("parses");
    match c.validate() {
        Err(e @ ConfigError::Invalid { .. }) => {
            let msg = e.to_string();
            assert!(msg.starts_with(key), "{yaml:?}: message {msg:?} should name {key}");
        }
        other => panic!("{yaml:?}: expected Invalid naming {key}, got {other:?}"),
    }
}

#[test]
fn shipped_yaml_is_the_default() {
    let c = Config::from_yaml(DEFAULT_YAML).expect("comet.yaml parses");
    assert_eq!(c, Config::default());
    c.validate().expect("the default config is valid");
}

#[test]
fn shipped_yaml_sets_every_key() {
    // Every field of every struct appears in comet.yaml, so it documents them all.
    let doc: serde_norway::Value = serde_norway::from_str(DEFAULT_YAML).expect("yaml");
    let top = doc.as_mapping().expect("a mapping");
    for key in [
        "log_level",
        "log_format",
        "workers",
        "shutdown_grace_secs",
        "front",
        "admin",
        "hooks",
    ] {
        assert!(top.contains_key(key), "comet.yaml lacks {key}");
    }
    let front = [
        "listen",
        "listen_backlog",
        "auth",
        "jwt",
        "max_channels",
        "max_subscribers_per_channel",
        "channel_buffer_size",
        "channel_timeout",
        "polling_timeout",
        "max_connections",
        "max_connections_per_ip",
        "header_timeout_secs",
        "max_cname_bytes",
        "max_queued_bytes",
        "socket_send_buffer_bytes",
        "socket_recv_buffer_bytes",
        "descriptor_tables",
        "sse_retry_ms",
        "allowed_origins",
        "max_channels_per_connection",
        "ws_max_message_bytes",
        "ws_max_frames_per_sec",
        "ws_echo",
    ];
    let admin = [
        "listen",
        "allow",
        "deny",
        "max_body_bytes",
        "threads",
        "key",
        "open_health",
    ];
    let jwt = [
        "algorithm",
        "secret",
        "public_key_file",
        "leeway_secs",
        "audience",
        "issuer",
        "cache_max",
        "cache_secs",
    ];
    let hooks = [
        "authorize_url",
        "authorize_timeout_ms",
        "authorize_concurrency",
        "authorize_queue_max",
        "authorize_cache_secs",
        "authorize_cache_max",
        "authorize_on_error",
        "events_url",
        "events_batch_max",
        "events_batch_ms",
        "events_queue_max",
        "events_timeout_ms",
        "events_publish",
        "retry_initial_ms",
        "retry_max_ms",
    ];
    let sections = [
        ("front", &front[..]),
        ("admin", &admin[..]),
        ("front.jwt", &jwt[..]),
        ("hooks", &hooks[..]),
    ];
    for (section, keys) in sections {
        let m = section
            .split('.')
            .fold(&doc, |node, part| &node[part])
            .as_mapping()
            .unwrap_or_else(|| panic!("comet.yaml: {section} is not a mapping"));
        for key in keys {
            assert!(m.contains_key(*key), "comet.yaml lacks {section}.{key}");
        }
        assert_eq!(m.len(), keys.len(), "{section}: a key is missing from this test");
    }
}

#[test]
fn empty_document_is_the_default() {
    assert_eq!(Config::from_yaml("").expect("empty"), Config::default());
    assert_eq!(Config::from_yaml("# nothing\n").expect("comment"), Config::default());
}

#[test]
fn partial_sections_keep_other_defaults() {
    let c = check("front:\n  polling_timeout: 10\n  auth: token\n").expect("valid");
    assert_eq!(c.front.polling_timeout, 10);
    assert_eq!(c.front.auth, Auth::Token);
    assert_eq!(c.front.max_channels, FrontConfig::default().max_channels);
    assert_eq!(c.admin, AdminConfig::default());
}

#[test]
fn unknown_key_is_named() {
    match Config::from_yaml("front:\n  polling_timout: 5\n") {
        Err(e @ ConfigError::UnknownKey { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("`front.polling_timout`"), "{msg}");
            assert!(msg.contains("line 2, column 3"), "{msg}");
        }
        other => panic!("expected UnknownKey, got {other:?}"),
    }
    match Config::from_yaml("bogus: 1\n") {
        Err(ConfigError::UnknownKey { key, .. }) => assert_eq!(key, "bogus"),
        other => panic!("expected UnknownKey, got {other:?}"),
    }
    // Found by the config fuzz target: an empty key read "unknown key ``".
    for (yaml, want) in [
        ("\"\": 1\n", "`\"\"`"),
        ("&a : 1\n", "`\"\"`"),
        ("front:\n  \"\": 1\n", "`front.\"\"`"),
    ] {
        match Config::from_yaml(yaml) {
            Err(e @ ConfigError::UnknownKey { .. }) => {
                let msg = e.to_string();
                assert!(
                    msg.starts_with(&format!("unknown key {want} at line")),
                    "{yaml:?}: {msg}"
                );
            }
            other => panic!("{yaml:?}: expected UnknownKey, got {other:?}"),
        }
    }
}

#[test]
fn syntax_and_type_errors_have_a_position() {
    let e = Config::from_yaml("front:\n  listen: [1\n").expect_err("unclosed flow");
    assert!(matches!(e, ConfigError::Syntax { line: Some(_), .. }), "{e:?}");
    let e = Config::from_yaml("front:\n  polling_timeout: soon\n").expect_err("not a number");
    let msg = e.to_string();
    assert!(msg.starts_with("front.polling_timeout: "), "{msg}");
    assert!(msg.ends_with("at line 2, column 20"), "{msg}");
    let e = Config::from_yaml("front:\n  auth: password\n").expect_err("bad enum");
    assert!(e.to_string().starts_with("front.auth: "), "{e}");
    let e = Config::from_yaml("admin:\n  listen: localhost\n").expect_err("bad address");
    assert!(e.to_string().starts_with("admin.listen: "), "{e}");
}

#[test]
fn load_names_the_file() {
    let dir = std::env::temp_dir().join(format!("comet-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let missing = dir.join("missing.yaml");
    let e = Config::load(&missing).expect_err("missing");
    assert!(matches!(e, ConfigError::Read { .. }), "{e:?}");
    assert!(e.to_string().contains("missing.yaml"), "{e}");

    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, "workers: 2\nnope: 1\n").expect("write");
    let e = Config::load(&bad).expect_err("unknown key");
    let msg = e.to_string();
    assert!(
        msg.contains("bad.yaml: unknown key `nope` at line 2, column 1"),
        "{msg}"
    );

    let good = dir.join("good.yaml");
    std::fs::write(&good, "workers: 2\n").expect("write");
    assert_eq!(Config::load(&good).expect("loads").workers, 2);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn polling_timeout_must_be_positive() {
    rejects("front: {polling_timeout: 0}", "front.polling_timeout must be > 0");
}

#[test]
fn workers_at_most_max() {
    check(&format!("workers: {MAX_WORKERS}")).expect("128 is fine");
    rejects(&format!("workers: {}", MAX_WORKERS + 1), "workers must be at most 128");
}

#[test]
fn max_connections_must_be_positive() {
    rejects("front: {max_connections: 0}", "front.max_connections must be > 0");
}

#[test]
fn max_cname_bytes_range() {
    rejects(
        "front: {max_cname_bytes: 0}",
        "front.max_cname_bytes must be between 1 and 65536",
    );
    rejects("front: {max_cname_bytes: 65537}", "front.max_cname_bytes");
    check("front: {max_cname_bytes: 65536}").expect("upper bound is fine");
    check("front: {max_cname_bytes: 1}").expect("lower bound is fine");
}

#[test]
fn listen_backlog_must_be_a_listen_int() {
    rejects(
        "front: {listen_backlog: 0}",
        "front.listen_backlog must be between 1 and 2147483647 (got 0)",
    );
    rejects(
        "front: {listen_backlog: 2147483648}",
        "front.listen_backlog must be between 1 and 2147483647 (got 2147483648)",
    );
    assert_eq!(
        check("front: {listen_backlog: 2147483647}")
            .expect("valid")
            .front
            .listen_backlog,
        2_147_483_647
    );
}

#[test]
fn header_timeout_must_be_positive() {
    rejects(
        "front: {header_timeout_secs: 0}",
        "front.header_timeout_secs must be > 0",
    );
}

#[test]
fn max_queued_bytes_minimum() {
    rejects(
        "front: {max_queued_bytes: 4095}",
        "front.max_queued_bytes must be >= 4096",
    );
    check("front: {max_queued_bytes: 4096}").expect("minimum is fine");
}

#[test]
fn admin_max_body_bytes_must_be_positive() {
    rejects("admin: {max_body_bytes: 0}", "admin.max_body_bytes must be > 0");
}

#[test]
fn admin_threads_range() {
    rejects("admin: {threads: 0}", "admin.threads must be between 1 and 64");
    rejects("admin: {threads: 65}", "admin.threads");
    check("admin: {threads: 64}").expect("64 is fine");
}

#[test]
fn log_level_must_be_known() {
    rejects("log_level: verbose", "log_level must be one of");
    for level in LOG_LEVELS {
        check(&format!("log_level: {level}")).expect("known level");
    }
}

#[test]
fn allow_and_deny_entries_are_words() {
    rejects("admin: {allow: ['127.0.0.1', '']}", "admin.allow[1]");
    rejects("admin: {deny: ['10.0 .1']}", "admin.deny[0]");
    check("admin: {allow: ['192.168', '*'], deny: []}").expect("prefixes and * are fine");
}

#[test]
fn listen_addresses_must_differ() {
    rejects(
        "front: {listen: '127.0.0.1:9000'}\nadmin: {listen: '127.0.0.1:9000'}",
        "admin.listen must differ from front.listen",
    );
    rejects(
        "front: {listen: '0.0.0.0:9000'}\nadmin: {listen: '127.0.0.1:9000'}",
        "admin.listen",
    );
    rejects(
        "front: {listen: '[::]:9000'}\nadmin: {listen: '127.0.0.1:9000'}",
        "admin.listen",
    );
    check("front: {listen: '0.0.0.0:9000'}\nadmin: {listen: '[::1]:9000'}").expect("other family");
    check("front: {listen: '127.0.0.1:9000'}\nadmin: {listen: '127.0.0.2:9000'}").expect("other ip");
    // Port 0 lets the OS choose, so tests may bind both listeners that way.
    check("front: {listen: '127.0.0.1:0'}\nadmin: {listen: '127.0.0.1:0'}").expect("port 0");
}

#[test]
fn channel_timeout_zero_means_half_polling_timeout() {
    let c = check("front: {channel_timeout: 0, polling_timeout: 30}").expect("valid");
    assert_eq!(c.front.effective_channel_timeout(), 15);
    let c = check("front: {channel_timeout: 0, polling_timeout: 11}").expect("valid");
    assert_eq!(c.front.effective_channel_timeout(), 5, "integer division, as icomet");
    let c = check("front: {channel_timeout: 7, polling_timeout: 30}").expect("valid");
    assert_eq!(c.front.effective_channel_timeout(), 7);
}

#[test]
fn admin_key_must_be_printable() {
    assert_eq!(
        check("admin:\n  key: s3cret-key\n").expect("valid").admin.key,
        "s3cret-key"
    );
    let e = check("admin:\n  key: \"two words\"\n").expect_err("space");
    assert!(e.to_string().contains("admin.key"), "{e}");
    let e = check("admin:\n  key: \"caf\u{e9}\"\n").expect_err("non-ASCII");
    assert!(e.to_string().contains("admin.key"), "{e}");
}

/// Prints `c` as YAML and loads it back.
fn reprint(c: &Config) -> Config {
    let printed = serde_norway::to_string(c).expect("a config always prints");
    Config::from_yaml(&printed).unwrap_or_else(|e| panic!("printed config does not load: {e}\n{printed}"))
}

#[test]
fn every_key_prints_and_loads_back() {
    let yaml = "log_level: debug\nworkers: 3\nshutdown_grace_secs: 9\n\
        front:\n  listen: \"[::1]:8101\"\n  listen_backlog: 6\n  auth: token\n  max_channels: 7\n  \
        max_subscribers_per_channel: 8\n  channel_buffer_size: 9\n  channel_timeout: 0\n  \
        polling_timeout: 11\n  max_connections: 12\n  max_connections_per_ip: 13\n  \
        header_timeout_secs: 14\n  max_cname_bytes: 15\n  max_queued_bytes: 4097\n  \
        socket_send_buffer_bytes: 16\n  socket_recv_buffer_bytes: 17\n  \
        descriptor_tables: always\n  sse_retry_ms: 18\n  \
        allowed_origins: [\"https://a.example\"]\n  max_channels_per_connection: 3\n  \
        ws_max_message_bytes: 600\n  ws_max_frames_per_sec: 7\n  ws_echo: true\n\
        admin:\n  listen: \"127.0.0.2:8001\"\n  allow: [\"10.\", all]\n  deny: []\n  \
        max_body_bytes: 19\n  threads: 3\n  key: k3y\n  open_health: true\n";
    let c = check(yaml).expect("valid");
    let d = Config::default();
    assert_ne!(c.shutdown_grace_secs, d.shutdown_grace_secs);
    assert_ne!(c.front.max_connections_per_ip, d.front.max_connections_per_ip);
    assert_ne!(c.admin.key, d.admin.key);
    assert_ne!(c.admin.open_health, d.admin.open_health);
    assert_eq!(reprint(&c), c);
    assert_eq!(reprint(&d), d);
}

#[test]
fn admin_keys_that_look_like_other_yaml_print_quoted() {
    let keys = r#"~ null Null yes no on off true 0x1F 0o17 1e3 -1 .inf .NaN - ? ' " #x a:b &a *a !x %x @x `x [ ] { } | > , 1_000 2026-11-21 <<"#;
    for key in keys.split(' ') {
        let mut c = Config::default();
        c.admin.key = key.to_string();
        c.validate().expect("printable ASCII is a valid key");
        assert_eq!(reprint(&c).admin.key, key);
    }
}

#[test]
fn open_health_is_off_by_default_and_takes_a_boolean() {
    assert!(!Config::default().admin.open_health);
    let c = check("admin:\n  open_health: true\n").expect("valid");
    assert!(c.admin.open_health);
    assert_eq!(c.front, FrontConfig::default());
    match Config::from_yaml("admin:\n  open_health: sometimes\n") {
        Err(e @ ConfigError::Syntax { .. }) => {
            let msg = e.to_string();
            assert!(msg.starts_with("admin.open_health: "), "{msg}");
        }
        other => panic!("expected a syntax error naming admin.open_health, got {other:?}"),
    }
}

#[test]
fn front_jwt_is_checked_only_when_auth_is_jwt() {
    check("front:\n  jwt: {algorithm: RS256}\n").expect("front.jwt is not checked in none mode");
    check("front:\n  auth: token\n  jwt: {secret: short}\n").expect("nor in token mode");
    rejects(
        "front: {auth: jwt}",
        "front.jwt.secret must not be empty when front.jwt.algorithm is HS256",
    );
    rejects(
        "front:\n  auth: jwt\n  jwt: {secret: sh0rt}\n",
        "front.jwt.secret must be at least 32 bytes",
    );
    rejects(
        "front:\n  auth: jwt\n  jwt: {algorithm: ES256}\n",
        "front.jwt.public_key_file must not be empty",
    );
    let c = check("front:\n  auth: jwt\n  jwt: {secret: '0123456789abcdef0123456789abcdef'}\n").expect("valid");
    assert_eq!(c.front.auth, Auth::Jwt);
    assert_eq!(c.front.jwt.leeway_secs, 5, "other jwt keys keep their defaults");
}

#[test]
fn hooks_are_validated_with_the_rest() {
    rejects(
        "hooks: {authorize_url: 'https://app.example/auth'}",
        "hooks.authorize_url must start with http://",
    );
    rejects("hooks: {events_batch_max: 0}", "hooks.events_batch_max");
    let c = check("hooks: {authorize_url: 'http://127.0.0.1:9000/a', authorize_on_error: allow}").expect("valid");
    assert_eq!(c.hooks.authorize_on_error, crate::hooks::OnError::Allow);
    assert_eq!(c.hooks.events_url, "", "the event hook stays off");
}

#[test]
fn the_jwt_secret_is_masked_when_printed() {
    let mut c = Config::default();
    c.front.auth = Auth::Jwt;
    c.front.jwt.secret = "0123456789abcdef0123456789abcdef".to_string();
    c.validate().expect("valid");
    let printed = effective_yaml(&c);
    assert!(!printed.contains("0123456789abcdef"), "{printed}");
    let back = Config::from_yaml(&printed).expect("parses");
    assert_eq!(back.front.jwt.secret, MASK);
    let e = back.validate().expect_err("a masked secret must not pass for one");
    assert!(e.to_string().starts_with("front.jwt.secret "), "{e}");
}
