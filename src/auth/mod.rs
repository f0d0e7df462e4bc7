//! JWT subscribe tokens (`front.auth: jwt`): the key, read once at start, and
//! the verification of one token for one channel.
//!
//! [`JwtVerifier::verify`] runs once per subscribe request, never per
//! delivery; it keeps nothing per subscriber beyond the small [`Grant`] it
//! returns, and a bounded cache of recent verifications
//! (`front.jwt.cache_max`) so that a re-poll with the same token skips the
//! signature. The signature is checked by the `jsonwebtoken` crate (its
//! pure-Rust `rust_crypto` backend) with the one configured algorithm; this
//! module adds the claim rules of [`claims`] (time with leeway, audience,
//! issuer, the channel grant) and sorts every refusal into a [`JwtError`]
//! whose [`reason`](JwtError::reason) is a fixed label for logs and metrics.
//! It owns no socket, no channel state and no configuration beyond
//! [`JwtConfig`]; the worker decides what a refusal looks like on the wire.

pub mod claims;
pub mod config;

#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

pub use claims::channel_allowed;
pub use config::{JwtAlgorithm, JwtConfig};

use crate::config::ConfigError;
use crate::ttl_cache::{KeyHasher, TtlCache};
use claims::{Claims, Expect};

/// Longest token looked at; longer ones are refused as malformed before any
/// decoding (a front request head is at most 8 KB anyway).
pub const MAX_TOKEN_BYTES: usize = 8192;

/// What a verified token allows, kept by the subscriber for the hooks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The `sub` claim, when the token has one.
    pub sub: Option<Box<str>>,
    /// The `exp` claim in whole seconds since the epoch (fractions dropped).
    pub expires_at: u64,
}

/// Why a token was refused; [`JwtError::reason`] gives the metrics label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// Not a JWT: not three dot-separated parts, bad base64url, bad JSON,
    /// claims of the wrong type, no `exp`, or too long. The text says which.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// The header names another algorithm than the configured one (`none`
    /// included).
    #[error("token signed with another algorithm than the configured one")]
    WrongAlgorithm,
    /// The signature does not verify with the configured key.
    #[error("bad token signature")]
    BadSignature,
    /// `exp` is past (beyond the leeway).
    #[error("token expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("token not yet valid")]
    NotYetValid,
    /// `front.jwt.audience` is set and `aud` does not contain it.
    #[error("token audience does not match")]
    WrongAudience,
    /// `front.jwt.issuer` is set and `iss` differs.
    #[error("token issuer does not match")]
    WrongIssuer,
    /// Neither `channels` nor `cname` grants the requested channel (or the
    /// token has neither claim).
    #[error("token does not grant this channel")]
    ChannelNotAllowed,
}

impl JwtError {
    /// Every label [`JwtError::reason`] can return, for metrics that list
    /// all of them from the start.
    pub const REASONS: [&'static str; 8] = [
        "malformed",
        "wrong_algorithm",
        "bad_signature",
        "expired",
        "not_yet_valid",
        "wrong_audience",
        "wrong_issuer",
        "channel_not_allowed",
    ];

    /// A fixed snake_case label (one of [`JwtError::REASONS`]).
    pub fn reason(self) -> &'static str {
        match self {
            JwtError::Malformed(_) => "malformed",
            JwtError::WrongAlgorithm => "wrong_algorithm",
            JwtError::BadSignature => "bad_signature",
            JwtError::Expired => "expired",
            JwtError::NotYetValid => "not_yet_valid",
            JwtError::WrongAudience => "wrong_audience",
            JwtError::WrongIssuer => "wrong_issuer",
            JwtError::ChannelNotAllowed => "channel_not_allowed",
        }
    }
}

/// Why a [`JwtVerifier`] could not be built; every message names the key.
#[derive(Debug, thiserror::Error)]
pub enum JwtSetupError {
    /// The configuration breaks a rule of [`JwtConfig::validate`].
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The public key file could not be read.
    #[error("front.jwt.public_key_file: cannot read {}: {error}", path.display())]
    ReadKey {
        /// The path as configured.
        path: PathBuf,
        /// What the OS said.
        error: std::io::Error,
    },
    /// The file is not a usable PEM public key for the algorithm.
    #[error("front.jwt.public_key_file: {} is not a {algorithm} public key in PEM form ({reason})", path.display())]
    BadKey {
        /// The path as configured.
        path: PathBuf,
        /// The configured algorithm.
        algorithm: &'static str,
        /// What the JWT library said.
        reason: String,
    },
}

/// A remembered verification: the grant and the times to check again.
#[derive(Clone)]
struct Verified {
    grant: Grant,
    exp: f64,
    nbf: Option<f64>,
}

/// Verifies subscribe tokens with the configured key. `Send + Sync`: one
/// per server, shared by the workers (the cache, when on, sits behind a
/// mutex held for a lookup or an insert).
pub struct JwtVerifier {
    key: DecodingKey,
    /// Verifications remembered per (token, cname), when configured.
    cache: Option<Mutex<TtlCache<Verified>>>,
    keys: KeyHasher,
    /// Verifications answered from the cache.
    cache_hits: AtomicU64,
    validation: Validation,
    algorithm: JwtAlgorithm,
    leeway: u64,
    audience: Option<Box<str>>,
    issuer: Option<Box<str>>,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key stays out of logs.
        f.debug_struct("JwtVerifier")
            .field("algorithm", &self.algorithm)
            .field("leeway", &self.leeway)
            .field("audience", &self.audience)
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl JwtVerifier {
    /// Validates `config` and loads the key (reading `public_key_file` now,
    /// once). The verifier never touches the file again.
    pub fn new(config: &JwtConfig) -> Result<JwtVerifier, JwtSetupError> {
        config.validate()?;
        let algorithm = config.algorithm;
        let key = match algorithm {
            JwtAlgorithm::HS256 => DecodingKey::from_secret(config.secret.as_bytes()).map_err(|e| {
                // validate() refused an empty secret, the only case the library refuses.
                JwtSetupError::Config(ConfigError::Invalid {
                    key: "front.jwt.secret".to_string(),
                    rule: format!("is not usable: {e}"),
                })
            })?,
            JwtAlgorithm::RS256 | JwtAlgorithm::ES256 => load_public_key(config)?,
        };
        let mut validation = Validation::new(library_algorithm(algorithm));
        // Time, audience and issuer are checked in `claims`, against a
        // caller-given clock; the library checks the header's algorithm and
        // the signature only.
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.leeway = 0;
        let non_empty = |s: &str| (!s.is_empty()).then(|| Box::from(s));
        let cache = (config.cache_max > 0).then(|| {
            Mutex::new(TtlCache::new(
                config.cache_max,
                Duration::from_secs(u64::from(config.cache_secs)),
            ))
        });
        Ok(JwtVerifier {
            key,
            cache,
            keys: KeyHasher::new(),
            cache_hits: AtomicU64::new(0),
            validation,
            algorithm,
            leeway: u64::from(config.leeway_secs),
            audience: non_empty(&config.audience),
            issuer: non_empty(&config.issuer),
        })
    }

    /// The configured algorithm.
    pub fn algorithm(&self) -> JwtAlgorithm {
        self.algorithm
    }

    /// Verifications answered from the cache so far (for `/metrics`).
    pub fn cache_hits(&self) -> u64 {
        self.cache_hits.load(Ordering::Relaxed)
    }

    /// Verifies `token` for a subscription to `cname` now (the system clock).
    pub fn verify(&self, token: &str, cname: &str) -> Result<Grant, JwtError> {
        self.verify_at(token, cname, unix_now())
    }

    /// Verifies `token` for a subscription to `cname` at `now` (seconds since
    /// the epoch): the signature with the configured algorithm and key, then
    /// `exp`/`nbf` with the leeway, `iss` and `aud` when configured, and the
    /// channel grant ([`channel_allowed`]). With the cache on, a (token,
    /// cname) pair verified in the last `cache_secs` only has its time rules
    /// checked again; refusals are never remembered. Cache keys are a keyed
    /// 128-bit hash of the pair (see `ttl_cache`).
    pub fn verify_at(&self, token: &str, cname: &str, now: u64) -> Result<Grant, JwtError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(JwtError::Malformed("longer than 8192 bytes"));
        }
        let Some(cache) = &self.cache else {
            return self.verify_uncached(token, cname, now).map(|v| v.grant);
        };
        let key = self.keys.key(token, cname);
        let hit = lock(cache).get(key, Instant::now());
        if let Some(v) = hit {
            self.cache_hits.fetch_add(1, Ordering::Relaxed);
            // Verified before: only the time rules can have changed.
            claims::check_time(Some(v.exp), v.nbf, now, self.leeway)?;
            return Ok(v.grant);
        }
        let v = self.verify_uncached(token, cname, now)?;
        lock(cache).insert(key, v.clone(), Instant::now());
        Ok(v.grant)
    }

    /// The whole verification, without the cache.
    fn verify_uncached(&self, token: &str, cname: &str, now: u64) -> Result<Verified, JwtError> {
        if token.bytes().filter(|&b| b == b'.').count() != 2 {
            return Err(JwtError::Malformed("not three dot-separated parts"));
        }
        let claims = match jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation) {
            Ok(data) => data.claims,
            Err(e) => return Err(self.classify(token, e.kind())),
        };
        let expect = Expect {
            leeway: self.leeway,
            audience: self.audience.as_deref(),
            issuer: self.issuer.as_deref(),
        };
        claims.check(cname, now, &expect)?;
        // check() refused a token without exp.
        let exp = claims.exp.unwrap_or(0.0);
        Ok(Verified {
            grant: Grant {
                sub: claims.sub.map(String::into_boxed_str),
                // Fractions dropped; an f64 cast saturates.
                expires_at: exp as u64,
            },
            exp,
            nbf: claims.nbf,
        })
    }

    /// Sorts a library error into a reason. Runs on refusals only, so the
    /// second look at the header costs nothing on the accepting path.
    fn classify(&self, token: &str, kind: &ErrorKind) -> JwtError {
        match kind {
            ErrorKind::InvalidSignature => JwtError::BadSignature,
            ErrorKind::InvalidAlgorithm | ErrorKind::UnsupportedAlgorithm | ErrorKind::MissingAlgorithm => {
                JwtError::WrongAlgorithm
            }
            // The library refuses a header naming an algorithm it does not
            // know (`none`) as bad JSON: look at the header to say so.
            _ if header_alg(token).is_some_and(|alg| alg != self.algorithm.name()) => JwtError::WrongAlgorithm,
            ErrorKind::InvalidToken => JwtError::Malformed("not three dot-separated parts"),
            ErrorKind::Base64(_) => JwtError::Malformed("bad base64url"),
            ErrorKind::Json(_) => JwtError::Malformed("bad JSON or a claim of the wrong type"),
            ErrorKind::Utf8(_) => JwtError::Malformed("not UTF-8"),
            _ => JwtError::Malformed("refused by the JWT library"),
        }
    }
}

/// The `alg` of a token's header, when the header is base64url JSON with an
/// `alg` string; None otherwise.
fn header_alg(token: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Header {
        alg: String,
    }
    let (header, _) = token.split_once('.')?;
    let json = URL_SAFE_NO_PAD.decode(header).ok()?;
    serde_json::from_slice::<Header>(&json).ok().map(|h| h.alg)
}

/// Reads and parses `public_key_file` for RS256 or ES256.
fn load_public_key(config: &JwtConfig) -> Result<DecodingKey, JwtSetupError> {
    let path = PathBuf::from(&config.public_key_file);
    let pem = std::fs::read(&path).map_err(|error| JwtSetupError::ReadKey {
        path: path.clone(),
        error,
    })?;
    let algorithm = config.algorithm;
    let bad = |reason: String| JwtSetupError::BadKey {
        path: path.clone(),
        algorithm: algorithm.name(),
        reason,
    };
    let key = match algorithm {
        JwtAlgorithm::RS256 => DecodingKey::from_rsa_pem(&pem),
        _ => DecodingKey::from_ec_pem(&pem),
    }
    .map_err(|e| bad(e.to_string()))?;
    // A probe: a key the backend cannot use fails here, at start, rather
    // than as a bad signature on every subscribe. An empty signature is
    // simply "not valid" with a usable key.
    jsonwebtoken::crypto::verify("", b"probe", &key, library_algorithm(algorithm)).map_err(|e| bad(e.to_string()))?;
    Ok(key)
}

/// Locks the cache; a panic while it was held leaves it usable (at worst an
/// entry is missing), so poisoning is ignored.
fn lock(cache: &Mutex<TtlCache<Verified>>) -> MutexGuard<'_, TtlCache<Verified>> {
    cache.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The library's name for the configured algorithm.
fn library_algorithm(algorithm: JwtAlgorithm) -> Algorithm {
    match algorithm {
        JwtAlgorithm::HS256 => Algorithm::HS256,
        JwtAlgorithm::RS256 => Algorithm::RS256,
        JwtAlgorithm::ES256 => Algorithm::ES256,
    }
}

/// Seconds since the epoch by the system clock (0 before 1970).
pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
