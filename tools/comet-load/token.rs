//! Subscribe tokens for a server in JWT mode (`--jwt-secret`): one HS256
//! token per channel, signed once at start by the `jsonwebtoken` crate, the
//! one the server verifies with. Nothing here touches a socket.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};

/// Seconds a token stays valid: longer than any run.
const VALID_SECS: u64 = 86_400;

/// The token of each channel `<prefix>0` .. `<prefix><channels - 1>`, in
/// order: `{"cname": NAME, "exp": now + a day}` signed with `secret`.
pub fn mint_per_channel(secret: &str, prefix: &str, channels: u32) -> Vec<String> {
    let exp = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) + VALID_SECS;
    // from_secret refuses only an empty secret, which the arguments refuse.
    let Ok(key) = EncodingKey::from_secret(secret.as_bytes()) else {
        return Vec::new();
    };
    let header = Header::new(Algorithm::HS256);
    (0..channels)
        .filter_map(|i| {
            let claims = serde_json::json!({"cname": format!("{prefix}{i}"), "exp": exp});
            encode(&header, &claims, &key).ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_token_per_channel_that_the_server_accepts_for_it() {
        let secret = "comet-load-test-secret-0123456789ab";
        let tokens = mint_per_channel(secret, "load", 3);
        assert_eq!(tokens.len(), 3);
        let verifier = comet::auth::JwtVerifier::new(&comet::auth::JwtConfig {
            secret: secret.to_string(),
            ..comet::auth::JwtConfig::default()
        })
        .expect("a valid secret");
        for (i, token) in tokens.iter().enumerate() {
            assert!(verifier.verify(token, &format!("load{i}")).is_ok(), "{token}");
            assert!(verifier.verify(token, "load9").is_err());
            assert!(token.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)));
        }
    }
}
