//! Throughput of the WebSocket decoder on this machine: an ignored test
//! that asserts nothing about time and prints what it measured. Run with
//!
//! ```sh
//! cargo test --release --lib ws::bench -- --ignored --nocapture
//! ```
//!
//! It decodes a 16 KiB read buffer full of small masked text frames (the
//! size of a `/ws` command) and one of a single 16 KiB binary frame, and
//! unmasks 16 KiB with the word-at-a-time and the bytewise loops.

use std::hint::black_box;
use std::time::Instant;

use super::{mask, Decoded, WsState};

const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

fn frame(b0: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![b0];
    if payload.len() < 126 {
        out.push(0x80 | payload.len() as u8);
    } else {
        out.push(0x80 | 126);
        out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    }
    out.extend_from_slice(&MASK);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    out
}

/// Decodes `input` (whole frames) `rounds` times; returns (frames, bytes, seconds).
fn decode_rounds(input: &[u8], rounds: usize) -> (usize, usize, f64) {
    let mut buf = input.to_vec();
    let mut frames = 0;
    let start = Instant::now();
    for _ in 0..rounds {
        buf.copy_from_slice(input);
        let mut state = WsState::new();
        let mut pos = 0;
        while let Ok(Decoded {
            consumed,
            event: Some(e),
        }) = state.decode(&mut buf[pos..], 1 << 20)
        {
            black_box(e);
            pos += consumed;
            frames += 1;
        }
    }
    (frames, input.len() * rounds, start.elapsed().as_secs_f64())
}

fn report(name: &str, (frames, bytes, secs): (usize, usize, f64)) {
    println!(
        "{name}: {:.1} M frames/s, {:.0} MB/s ({frames} frames, {bytes} bytes in {secs:.3} s)",
        frames as f64 / secs / 1e6,
        bytes as f64 / secs / 1e6
    );
}

#[test]
#[ignore = "a measurement, not a check: run it with --ignored --nocapture"]
fn decoder_throughput() {
    let command = br#"{"type":"sub","cname":"channel-0042","seq":17,"token":"0123456789abcdef"}"#;
    let one = frame(0x81, command);
    let count = 16 * 1024 / one.len();
    let small: Vec<u8> = one.iter().copied().cycle().take(one.len() * count).collect();
    report("text frames of 73 B", decode_rounds(&small, 20_000));
    let big = frame(0x82, &vec![7u8; 16 * 1024 - 8]);
    report("binary frame of 16 KiB", decode_rounds(&big, 20_000));

    let mut data = vec![0u8; 16 * 1024];
    let rounds = 50_000;
    let start = Instant::now();
    for _ in 0..rounds {
        mask::unmask(black_box(&mut data), MASK, 0);
    }
    let word = start.elapsed().as_secs_f64();
    let start = Instant::now();
    for _ in 0..rounds {
        for (i, b) in black_box(&mut data).iter_mut().enumerate() {
            *b ^= MASK[i % 4];
        }
    }
    let byte = start.elapsed().as_secs_f64();
    let mb = (data.len() * rounds) as f64 / 1e6;
    println!(
        "unmask 16 KiB: word at a time {:.0} MB/s, bytewise {:.0} MB/s",
        mb / word,
        mb / byte
    );
}
