//! Channel tokens: 16 bytes from the operating system's CSPRNG, as 32
//! lower-case hex characters (icomet's format; icomet used `rand()`, §11.11).

/// A fresh token.
pub fn generate() -> [u8; 32] {
    let mut raw = [0u8; 16];
    getrandom::getrandom(&mut raw).expect("the OS random source is available");
    let mut out = [0u8; 32];
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in raw.iter().enumerate() {
        out[2 * i] = HEX[usize::from(b >> 4)];
        out[2 * i + 1] = HEX[usize::from(b & 15)];
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_are_hex_and_differ() {
        let a = super::generate();
        let b = super::generate();
        assert!(a.iter().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(a, b);
    }
}
