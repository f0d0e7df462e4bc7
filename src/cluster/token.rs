//! Stateless `/sign` tokens for cluster mode (scaleout-research §5.9).
//!
//! `token = hex(HMAC-SHA256(secret, "comet-token-v1\0" || cname))[..32]`: the
//! same 32 lower-case hex characters icomet clients already carry, identical on
//! every node that shares `cluster.hmac_secret`, and checkable without asking
//! Redis. Verification is constant-time and accepts the previous secret during
//! a rotation. Unlike icomet, a token survives `/close` of its channel (it is
//! bound to the name, not to one life of the channel). Pure code, no I/O.

use hmac::{KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = hmac::Hmac<Sha256>;

/// Domain separation: these tokens can never equal an HMAC made for another use
/// of the same secret.
const DOMAIN: &[u8] = b"comet-token-v1\0";

/// The keyed MAC state after the domain prefix.
fn mac(secret: &[u8], cname: &str) -> HmacSha256 {
    let mut m = <HmacSha256 as KeyInit>::new_from_slice(secret).expect("HMAC takes keys of any length");
    m.update(DOMAIN);
    m.update(cname.as_bytes());
    m
}

/// The token of `cname` under `secret`: 32 lower-case hex characters.
pub fn token(secret: &[u8], cname: &str) -> String {
    let tag = mac(secret, cname).finalize().into_bytes();
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(32);
    for b in &tag[..16] {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 15)]));
    }
    out
}

/// Decodes 32 lower-case hex characters into 16 bytes.
fn unhex(s: &str) -> Option<[u8; 16]> {
    let b = s.as_bytes();
    if b.len() != 32 {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; 16];
    for (i, pair) in b.chunks_exact(2).enumerate() {
        out[i] = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

/// Whether `candidate` is the token of `cname` under `secret`, compared in
/// constant time. Upper-case hex is refused, as icomet's exact match does.
pub fn verify(secret: &[u8], cname: &str, candidate: &str) -> bool {
    match unhex(candidate) {
        Some(raw) => mac(secret, cname).verify_truncated_left(&raw).is_ok(),
        None => false,
    }
}

/// [`verify`] against the current secret, then the previous one if given.
pub fn verify_rotating(current: &[u8], previous: Option<&[u8]>, cname: &str, candidate: &str) -> bool {
    // Both checks always run, so the timing does not tell which key matched.
    let a = verify(current, cname, candidate);
    let b = previous.is_some_and(|p| !p.is_empty() && verify(p, cname, candidate));
    a | b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answer() {
        // Computed independently: python3 -c 'import hmac,hashlib;
        // print(hmac.new(b"0123456789abcdef", b"comet-token-v1\0room", hashlib.sha256).hexdigest()[:32])'
        assert_eq!(token(b"0123456789abcdef", "room"), "41126a17b20b32b3a74107865f46b4f0");
    }

    #[test]
    fn tokens_verify_and_differ_per_name_and_key() {
        let t = token(b"secret-one-16byt", "a");
        assert_eq!(t.len(), 32);
        assert!(t.bytes().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert!(verify(b"secret-one-16byt", "a", &t));
        assert!(!verify(b"secret-one-16byt", "b", &t));
        assert!(!verify(b"secret-two-16byt", "a", &t));
        assert_ne!(token(b"secret-one-16byt", "b"), t);
    }

    #[test]
    fn malformed_candidates_are_refused() {
        let t = token(b"k", "c");
        for bad in [
            String::new(),
            t[..31].to_string(),
            format!("{t}0"),
            t.to_uppercase(),
            format!("{}g", &t[..31]),
            format!("{}é", &t[..30]),
        ] {
            assert!(!verify(b"k", "c", &bad), "{bad:?}");
        }
    }

    #[test]
    fn rotation_accepts_both_keys() {
        let old = token(b"old-key-16-bytes", "c");
        let new = token(b"new-key-16-bytes", "c");
        assert!(verify_rotating(
            b"new-key-16-bytes",
            Some(b"old-key-16-bytes"),
            "c",
            &old
        ));
        assert!(verify_rotating(
            b"new-key-16-bytes",
            Some(b"old-key-16-bytes"),
            "c",
            &new
        ));
        assert!(!verify_rotating(b"new-key-16-bytes", None, "c", &old));
        assert!(!verify_rotating(b"new-key-16-bytes", Some(b""), "c", &old));
    }
}
