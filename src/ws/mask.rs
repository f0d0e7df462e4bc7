//! Unmasking client payloads in place (RFC 6455 §5.3), eight bytes at a time.
//!
//! Every client frame is masked, so this runs on the receive path of every
//! command. It only XORs bytes; it knows nothing of frames.

/// XORs `payload` with `mask`, starting at mask byte `phase` (0-3): the
/// position in the frame's payload of `payload[0]`, modulo 4. Unmasking is
/// its own inverse, so this masks too.
pub fn unmask(payload: &mut [u8], mask: [u8; 4], phase: usize) {
    let mut key = [0u8; 8];
    for (i, k) in key.iter_mut().enumerate() {
        *k = mask[(phase + i) % 4];
    }
    let word = u64::from_ne_bytes(key);
    let (words, tail) = payload.as_chunks_mut::<8>();
    for chunk in words {
        *chunk = (u64::from_ne_bytes(*chunk) ^ word).to_ne_bytes();
    }
    for (b, k) in tail.iter_mut().zip(key) {
        *b ^= k;
    }
}

/// The mask phase after `n` more payload bytes.
pub fn advance(phase: usize, n: usize) -> usize {
    (phase + n) % 4
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytewise(payload: &mut [u8], mask: [u8; 4], phase: usize) {
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= mask[(phase + i) % 4];
        }
    }

    #[test]
    fn equals_the_bytewise_definition() {
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        for len in 0..40 {
            for phase in 0..4 {
                let data: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
                let mut fast = data.clone();
                let mut slow = data.clone();
                unmask(&mut fast, mask, phase);
                bytewise(&mut slow, mask, phase);
                assert_eq!(fast, slow, "len {len} phase {phase}");
                unmask(&mut fast, mask, phase);
                assert_eq!(fast, data, "masking twice is the identity");
            }
        }
    }

    #[test]
    fn rfc_6455_example() {
        // §5.7: a masked "Hello".
        let mut payload = [0x7f, 0x9f, 0x4d, 0x51, 0x58];
        unmask(&mut payload, [0x37, 0xfa, 0x21, 0x3d], 0);
        assert_eq!(&payload, b"Hello");
    }

    #[test]
    fn pieces_with_advancing_phase_equal_the_whole() {
        let mask = [1, 2, 4, 8];
        let data: Vec<u8> = (0..=255).collect();
        let mut whole = data.clone();
        unmask(&mut whole, mask, 0);
        let mut pieces = data.clone();
        let mut phase = 0;
        let mut at = 0;
        for n in [1, 2, 3, 5, 8, 13, 21, 34, 55, 114] {
            unmask(&mut pieces[at..at + n], mask, phase);
            phase = advance(phase, n);
            at += n;
        }
        assert_eq!(at, 256);
        assert_eq!(pieces, whole);
    }
}
