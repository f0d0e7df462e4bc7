//! The effective configuration as YAML, for `comet --print-config`, with the
//! keys listed in [`SECRET_KEYS`] masked.
//!
//! It prints what it is given and nothing else: loading and validating are
//! `Config::load_effective`'s, and the documented default file is
//! `DEFAULT_YAML` (`--print-default-config`).

use serde_norway::Value;

use super::{Config, SECRET_KEYS};

/// What a non-empty secret is printed as. It has spaces, so a printed config
/// fed back to comet is refused (`admin.key` must have none) instead of
/// running with a wrong key.
pub const MASK: &str = "** masked **";

/// `config` as a YAML document, every non-empty secret replaced by [`MASK`]
/// (an empty one stays empty, which says that none is set). The output loads
/// back with `Config::from_yaml` into the same config, secrets aside.
pub fn effective_yaml(config: &Config) -> String {
    let mut root = serde_norway::to_value(config).expect("the config tree is plain data and always serialises");
    for key in SECRET_KEYS {
        let leaf = key
            .split('.')
            .try_fold(&mut root, |node, part| node.as_mapping_mut()?.get_mut(part));
        if let Some(leaf) = leaf {
            let empty = match leaf {
                Value::Null => true,
                Value::String(s) => s.is_empty(),
                _ => false,
            };
            if !empty {
                *leaf = Value::String(MASK.to_string());
            }
        }
    }
    let body = serde_norway::to_string(&root).expect("a YAML value tree always prints");
    format!(
        "# comet's effective configuration: built-in defaults < config file < COMET_* \
         environment variables.\n# Secrets ({}) are masked.\n{body}",
        SECRET_KEYS.join(", ")
    )
}
