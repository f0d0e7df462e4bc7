//! `front.jwt`: the keys of JWT subscribe tokens, their defaults and their
//! validation.
//!
//! This file only describes the configuration; it reads no key file (that is
//! [`JwtVerifier::new`](super::JwtVerifier::new)'s job, once at start) and
//! checks nothing about tokens.

use serde::{Deserialize, Serialize};

use crate::config::ConfigError;

/// The dotted name of this section in the main configuration.
pub const SECTION: &str = "front.jwt";

/// Largest accepted `front.jwt.leeway_secs`: clocks further apart than five
/// minutes are a problem to fix, not to tolerate.
pub const MAX_LEEWAY_SECS: u32 = 300;

/// Longest accepted `front.jwt.cache_secs` (one day).
pub const MAX_CACHE_SECS: u32 = 86_400;

/// Shortest accepted HS256 secret in bytes: RFC 7518 section 3.2 requires a
/// key at least as long as the hash output (256 bits).
pub const MIN_HS256_SECRET_BYTES: usize = 32;

/// The one signature algorithm tokens must use; a token whose header names
/// any other (`none` included) is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum JwtAlgorithm {
    /// HMAC with SHA-256 and a shared secret (`secret`).
    HS256,
    /// RSASSA-PKCS1-v1_5 with SHA-256 and an RSA public key (`public_key_file`).
    RS256,
    /// ECDSA on P-256 with SHA-256 and an EC public key (`public_key_file`).
    ES256,
}

impl JwtAlgorithm {
    /// The name as it appears in a token header and in the configuration.
    pub fn name(self) -> &'static str {
        match self {
            JwtAlgorithm::HS256 => "HS256",
            JwtAlgorithm::RS256 => "RS256",
            JwtAlgorithm::ES256 => "ES256",
        }
    }

    /// Whether the key is a shared secret (else a public key file).
    pub fn uses_secret(self) -> bool {
        self == JwtAlgorithm::HS256
    }
}

/// How subscribe tokens are verified when `front.auth` is `jwt`.
///
/// Defaults (also the documented values): `algorithm: HS256`, `secret: ""`,
/// `public_key_file: ""`, `leeway_secs: 5`, `audience: ""`, `issuer: ""`,
/// `cache_max: 10000`, `cache_secs: 300`.
/// The defaults do not validate: HS256 needs a secret.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct JwtConfig {
    /// `HS256`, `RS256` or `ES256`: the only algorithm accepted.
    pub algorithm: JwtAlgorithm,
    /// The HS256 shared secret (its UTF-8 bytes), at least 32 bytes; must be
    /// empty for RS256 and ES256.
    pub secret: String,
    /// PEM file with the public key for RS256 (`PUBLIC KEY` or `RSA PUBLIC
    /// KEY`) or ES256 (`PUBLIC KEY`); read once at start. Empty for HS256.
    pub public_key_file: String,
    /// Seconds of clock skew tolerated on `exp` and `nbf`.
    pub leeway_secs: u32,
    /// When not empty, the token's `aud` claim (a string or an array of
    /// strings) must contain this value.
    pub audience: String,
    /// When not empty, the token's `iss` claim must equal this value.
    pub issuer: String,
    /// Most (token, channel) pairs whose verification is remembered, so a
    /// long-poll re-poll or a reconnect with the same token skips the
    /// signature check (which costs 50-170 us for RS256/ES256); 0 turns the
    /// cache off. About 130 bytes per entry.
    pub cache_max: usize,
    /// Seconds a remembered verification is reused (never past the token's
    /// own `exp` and leeway).
    pub cache_secs: u32,
}

impl Default for JwtConfig {
    fn default() -> Self {
        JwtConfig {
            algorithm: JwtAlgorithm::HS256,
            secret: String::new(),
            public_key_file: String::new(),
            leeway_secs: 5,
            audience: String::new(),
            issuer: String::new(),
            cache_max: 10_000,
            cache_secs: 300,
        }
    }
}

impl JwtConfig {
    /// Checks the rules that span values, naming the offending key
    /// (`front.jwt.secret must not be empty when front.jwt.algorithm is
    /// HS256`). Meant to run only when `front.auth` is `jwt`; it does not
    /// open the key file.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let alg = self.algorithm.name();
        let invalid = |key: &str, rule: String| ConfigError::Invalid {
            key: format!("{SECTION}.{key}"),
            rule,
        };
        if self.algorithm.uses_secret() {
            if self.secret.is_empty() {
                return Err(invalid(
                    "secret",
                    format!("must not be empty when {SECTION}.algorithm is {alg}"),
                ));
            }
            if self.secret.len() < MIN_HS256_SECRET_BYTES {
                return Err(invalid(
                    "secret",
                    format!(
                        "must be at least {MIN_HS256_SECRET_BYTES} bytes for {alg} (RFC 7518 3.2; got {})",
                        self.secret.len()
                    ),
                ));
            }
            if !self.public_key_file.is_empty() {
                return Err(invalid(
                    "public_key_file",
                    format!("must be empty when {SECTION}.algorithm is {alg} (it uses {SECTION}.secret)"),
                ));
            }
        } else {
            if self.public_key_file.is_empty() {
                return Err(invalid(
                    "public_key_file",
                    format!("must not be empty when {SECTION}.algorithm is {alg}"),
                ));
            }
            if !self.secret.is_empty() {
                return Err(invalid(
                    "secret",
                    format!("must be empty when {SECTION}.algorithm is {alg} (it uses {SECTION}.public_key_file)"),
                ));
            }
        }
        if self.cache_max > 0 && !(1..=MAX_CACHE_SECS).contains(&self.cache_secs) {
            return Err(invalid(
                "cache_secs",
                format!(
                    "must be between 1 and {MAX_CACHE_SECS} when {SECTION}.cache_max is set (got {})",
                    self.cache_secs
                ),
            ));
        }
        if self.leeway_secs > MAX_LEEWAY_SECS {
            return Err(invalid(
                "leeway_secs",
                format!("must be at most {MAX_LEEWAY_SECS} (got {})", self.leeway_secs),
            ));
        }
        Ok(())
    }
}
