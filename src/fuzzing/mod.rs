//! Property checks for the fuzz targets in `fuzz/` (cargo-fuzz, nightly).
//!
//! Each target is a one-line call of a function here, so the checks are
//! compiled and linted on stable too, and `tests/fuzz_corpus.rs` replays the
//! stored corpus and every fixed crash through them without nightly. A
//! function panics exactly when a property fails; it never panics for input
//! the code under test is meant to refuse. This module only reads the
//! parsing and encoding code: it starts no server and opens no sockets.

mod admin;
mod cluster_wire;
mod config;
mod front;
pub mod json;
mod jwt;
mod params;
mod ws;

pub use admin::admin_params;
pub use cluster_wire::cluster_wire;
pub use config::config;
pub use front::front_request;
pub use jwt::jwt_token;
pub use params::params;
pub use ws::ws_frames;

/// A property check over one fuzz input; it panics when a property fails.
pub type Check = fn(&[u8]);

/// Every fuzz target: its name (the directory under `fuzz/corpus/`) and its check.
pub const TARGETS: [(&str, Check); 7] = [
    ("front_request", front_request),
    ("params", params),
    ("admin_params", admin_params),
    ("config", config),
    ("ws_frames", ws_frames),
    ("jwt_token", jwt_token),
    ("cluster_wire", cluster_wire),
];

/// Cuts `input` into pieces whose lengths come from `seed`, as reads from a
/// socket might: seed 0 gives single bytes, other seeds mixed lengths.
pub fn split(input: &[u8], seed: u8) -> Vec<&[u8]> {
    let mut pieces = Vec::new();
    let mut state = u32::from(seed).wrapping_mul(0x9e37_79b9) | 1;
    let mut rest = input;
    while !rest.is_empty() {
        let n = if seed == 0 {
            1
        } else {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            1 + (state as usize) % (rest.len().min(usize::from(seed) * 4) + 1)
        };
        let (piece, tail) = rest.split_at(n.min(rest.len()));
        pieces.push(piece);
        rest = tail;
    }
    pieces
}

/// `%XX` for every byte of `s`.
pub fn percent_encode_all(s: &[u8]) -> String {
    s.iter().map(|b| format!("%{b:02X}")).collect()
}

/// `%XX` for the bytes that mean something in a query (`%`, `+`, `&`, `=`,
/// `#`), space and what is not printable ASCII; everything else as it is.
pub fn percent_encode_query(s: &[u8]) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s {
        if b.is_ascii_graphic() && !b"%+&=#".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_keeps_every_byte_in_order() {
        let input: Vec<u8> = (0..=255).collect();
        for seed in [0, 1, 7, 255] {
            let pieces = split(&input, seed);
            assert_eq!(pieces.concat(), input, "seed {seed}");
            assert!(pieces.iter().all(|p| !p.is_empty()));
        }
        assert_eq!(split(b"abc", 0).len(), 3);
        assert!(split(&input, 200).len() > 1);
    }
}
