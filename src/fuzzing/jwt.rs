//! `jwt_token`: JWT verification on arbitrary tokens and channel names,
//! with a fixed HS256 secret.

use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use crate::auth::{JwtConfig, JwtError, JwtVerifier};

/// The secret every check verifies with (a test value, 34 bytes).
pub const SECRET: &str = "comet-test-secret-0123456789abcdef";
/// The clock of every check: 2023-11-14T22:13:20Z.
pub const NOW: u64 = 1_700_000_000;
/// The configured leeway.
const LEEWAY: u64 = 5;

/// The verifier under test, without its cache (each input stands alone).
fn verifier() -> &'static JwtVerifier {
    static V: OnceLock<JwtVerifier> = OnceLock::new();
    V.get_or_init(|| build(0))
}

/// The same with a small cache that lives across inputs.
fn cached() -> &'static JwtVerifier {
    static V: OnceLock<JwtVerifier> = OnceLock::new();
    V.get_or_init(|| build(64))
}

fn build(cache_max: usize) -> JwtVerifier {
    JwtVerifier::new(&JwtConfig {
        secret: SECRET.to_string(),
        leeway_secs: LEEWAY as u32,
        cache_max,
        ..JwtConfig::default()
    })
    .expect("the fuzz config is valid")
}

/// Input: a length byte `n`, then `n` bytes of channel name, then the
/// token (both as lossy UTF-8). Properties: verification never panics and
/// refuses with a listed reason and a one-line message; whatever it accepts
/// carries a header naming HS256 and exactly the HMAC of its first two
/// parts under `SECRET` (recomputed here by the crate's signing side),
/// and claims that grant the channel and are in time by the documented
/// rules (re-read here with serde_json); a token minted here for the
/// channel is accepted (by `cname`, by `channels` exact and by a prefix
/// entry), and one byte changed anywhere in it is refused; a verifier with
/// a cache that lives across inputs answers exactly as one without.
pub fn jwt_token(data: &[u8]) {
    let (n, rest) = match data.split_first() {
        Some((&n, rest)) => (usize::from(n).min(rest.len()), rest),
        None => (0, data),
    };
    let cname = String::from_utf8_lossy(&rest[..n]).into_owned();
    let token = String::from_utf8_lossy(&rest[n..]).into_owned();
    let verdict = verifier().verify_at(&token, &cname, NOW);
    match &verdict {
        Ok(grant) => check_accepted(&token, &cname, grant.sub.as_deref()),
        Err(e) => check_refusal(&token, *e),
    }
    // The cache changes nothing but the cost, whatever it holds.
    for _ in 0..2 {
        assert_eq!(
            cached().verify_at(&token, &cname, NOW),
            verdict,
            "cached verifier differs"
        );
    }
    check_minted(&cname, rest.get(n..).unwrap_or_default());
}

/// A refusal has a listed reason and a one-line message, and the reason
/// fits the token: a wrong shape is `malformed`, a header naming another
/// algorithm is `wrong_algorithm`, and the claims (time, channel, audience,
/// issuer) are judged only for a token whose signature is right.
fn check_refusal(token: &str, e: JwtError) {
    assert!(JwtError::REASONS.contains(&e.reason()), "{e:?}");
    let msg = e.to_string();
    assert!(!msg.is_empty() && !msg.contains('\n'), "{msg:?}");
    if token.len() > crate::auth::MAX_TOKEN_BYTES {
        assert_eq!(e, JwtError::Malformed("longer than 8192 bytes"));
        return;
    }
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        assert_eq!(e, JwtError::Malformed("not three dot-separated parts"), "{token:?}");
        return;
    }
    #[derive(serde::Deserialize)]
    struct HeaderAlg {
        alg: String,
    }
    let alg = URL_SAFE_NO_PAD
        .decode(parts[0])
        .ok()
        .and_then(|h| serde_json::from_slice::<HeaderAlg>(&h).ok())
        .map(|h| h.alg);
    if alg.as_deref().is_some_and(|alg| alg != "HS256") {
        assert_eq!(e, JwtError::WrongAlgorithm, "{token:?}");
    }
    let signed = alg.as_deref() == Some("HS256") && {
        let message = &token[..parts[0].len() + 1 + parts[1].len()];
        let key = EncodingKey::from_secret(SECRET.as_bytes()).expect("non-empty secret");
        jsonwebtoken::crypto::sign(message.as_bytes(), &key, Algorithm::HS256).is_ok_and(|sig| sig == parts[2])
    };
    let about_claims = matches!(
        e,
        JwtError::Expired
            | JwtError::NotYetValid
            | JwtError::ChannelNotAllowed
            | JwtError::WrongAudience
            | JwtError::WrongIssuer
    );
    if signed {
        assert!(
            !matches!(e, JwtError::BadSignature | JwtError::WrongAlgorithm),
            "a signed token refused as {e:?}: {token:?}"
        );
    } else {
        assert!(!about_claims, "claims judged before the signature ({e:?}): {token:?}");
    }
}

/// What an accepted token must be, checked independently of `auth`.
fn check_accepted(token: &str, cname: &str, sub: Option<&str>) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "accepted a token of {} parts: {token:?}", parts.len());
    let header: Value = decode_part(parts[0]).unwrap_or_else(|| panic!("accepted a bad header: {token:?}"));
    assert_eq!(header["alg"], "HS256", "accepted another algorithm: {token:?}");
    let message = &token[..parts[0].len() + 1 + parts[1].len()];
    let key = EncodingKey::from_secret(SECRET.as_bytes()).expect("non-empty secret");
    let expected = jsonwebtoken::crypto::sign(message.as_bytes(), &key, Algorithm::HS256).expect("HMAC signs");
    assert_eq!(
        parts[2], expected,
        "accepted a token not signed with the secret: {token:?}"
    );
    let claims: Value = decode_part(parts[1]).unwrap_or_else(|| panic!("accepted bad claims: {token:?}"));
    let exp = claims["exp"]
        .as_f64()
        .unwrap_or_else(|| panic!("accepted without exp: {token:?}"));
    assert!(
        (NOW as f64) < exp + LEEWAY as f64,
        "accepted an expired token: {token:?}"
    );
    if let Some(nbf) = claims.get("nbf").and_then(Value::as_f64) {
        assert!((NOW + LEEWAY) as f64 >= nbf, "accepted a token before nbf: {token:?}");
    }
    let by_cname = claims["cname"].as_str() == Some(cname);
    let by_list = claims["channels"].as_array().is_some_and(|list| {
        list.iter().filter_map(Value::as_str).any(|entry| {
            if let Some(prefix) = entry.strip_suffix('*') {
                cname.as_bytes().starts_with(prefix.as_bytes())
            } else {
                entry == cname
            }
        })
    });
    assert!(
        by_cname || by_list,
        "accepted a token that does not grant {cname:?}: {token:?}"
    );
    assert_eq!(sub, claims["sub"].as_str(), "sub passed on as is");
}

/// base64url (no padding) JSON.
fn decode_part(part: &str) -> Option<Value> {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).ok()?).ok()
}

/// Tokens minted for `cname` pass; one changed byte makes them fail.
fn check_minted(cname: &str, noise: &[u8]) {
    let v = verifier();
    let sub = String::from_utf8_lossy(noise.get(..noise.len().min(16)).unwrap_or_default()).into_owned();
    let mint = |claims: Value| {
        let key = EncodingKey::from_secret(SECRET.as_bytes()).expect("non-empty secret");
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key).expect("mint")
    };
    let cut = cname
        .char_indices()
        .map(|(i, _)| i)
        .nth(noise.len() % 4)
        .unwrap_or(cname.len());
    let prefix = format!("{}*", &cname[..cut]);
    let tokens = [
        mint(json!({"cname": cname, "exp": NOW + 60, "sub": sub})),
        mint(json!({"channels": ["other", cname], "exp": NOW + 60, "sub": sub})),
        mint(json!({"channels": [prefix], "exp": NOW + 60, "sub": sub})),
    ];
    for token in &tokens {
        match v.verify_at(token, cname, NOW) {
            Ok(grant) => assert_eq!(grant.sub.as_deref(), Some(sub.as_str())),
            Err(e) => panic!("a token minted for {cname:?} was refused: {e} ({token})"),
        }
    }
    // One byte changed anywhere (chosen by the input) is refused.
    let token = tokens[0].as_bytes();
    let at = noise.first().map_or(0, |&b| usize::from(b)) * 7 % token.len();
    let replacement = match noise.get(1).copied().unwrap_or(b'A') {
        b if b == token[at] => token[at] ^ 1,
        b => b,
    };
    let mut changed = token.to_vec();
    changed[at] = replacement;
    let changed = String::from_utf8_lossy(&changed).into_owned();
    if let Ok(g) = v.verify_at(&changed, cname, NOW) {
        panic!("a token with byte {at} changed was accepted: {changed} ({g:?})");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_like_inputs_pass() {
        jwt_token(b"");
        jwt_token(b"\x05room1not.a.token");
        jwt_token(&[200; 300]);
        // A valid fixed token for room1 (HS256 with SECRET, exp 2100).
        let mut input = vec![5u8];
        input.extend_from_slice(b"room1eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1c2VyNDIiLCJjbmFtZSI6InJvb20xIiwiZXhwIjo0MTAyNDQ0ODAwfQ.0XBEatuXNjcbE9FlAb72ybGfpOX1r1aCyFQ-OHi8YqA");
        jwt_token(&input);
    }
}
