//! `config`: the YAML loader and validation on arbitrary text.

use crate::config::{Config, ConfigError};

/// Input: YAML text (invalid UTF-8 is replaced). Loading either fails with
/// a clear message or gives a config; a config that validates prints as
/// YAML that loads back to an equal, valid config.
pub fn config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let c = match Config::from_yaml(&text) {
        Ok(c) => c,
        Err(e) => {
            check_error(&e, &text);
            return;
        }
    };
    if let Err(e) = c.validate() {
        assert!(matches!(e, ConfigError::Invalid { .. }), "validation gave {e:?}");
        check_error(&e, &text);
        return;
    }
    assert!(c.front.effective_channel_timeout() > 0);
    let printed = serde_norway::to_string(&c).expect("a config always prints");
    let back = Config::from_yaml(&printed).unwrap_or_else(|e| panic!("printed config does not load: {e}\n{printed}"));
    assert_eq!(back, c, "printed config loads differently:\n{printed}");
    back.validate().expect("a printed valid config stays valid");
}

/// An error names what is wrong, at a place inside the text.
fn check_error(e: &ConfigError, text: &str) {
    // YAML breaks lines at LF, CR, CR LF, NEL, LS and PS, and may place an
    // error at the start of the line after the last; CR LF counted twice
    // only loosens the bound.
    let lines = 2 + text.matches(['\n', '\r', '\u{85}', '\u{2028}', '\u{2029}']).count();
    let msg = e.to_string();
    assert!(!msg.trim().is_empty(), "an empty message for {e:?}");
    match e {
        ConfigError::UnknownKey { key, line, .. } => {
            assert!(!key.is_empty());
            assert!(line.is_none_or(|l| l >= 1 && l <= lines), "{e:?}");
        }
        ConfigError::Syntax { line, .. } => {
            assert!(line.is_none_or(|l| l >= 1 && l <= lines), "{e:?}");
        }
        ConfigError::Invalid { key, rule } => assert!(!key.is_empty() && !rule.is_empty()),
        ConfigError::Read { .. } | ConfigError::InFile { .. } => panic!("from_yaml reads no file: {e:?}"),
        ConfigError::Env { .. } => panic!("from_yaml reads no environment: {e:?}"),
    }
}
