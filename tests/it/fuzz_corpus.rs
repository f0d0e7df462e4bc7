//! Replays the fuzz corpus, the hand-written seeds and every fixed crash
//! (`fuzz/corpus/`, `fuzz/seeds/`, `fuzz/regressions/`, one directory per
//! target) through the same checks the fuzz targets run, on stable Rust, so
//! that CI keeps the findings fixed without nightly or cargo-fuzz.

use std::path::{Path, PathBuf};

use comet::fuzzing::TARGETS;

/// The files of `fuzz/<kind>/<target>/`, sorted; none when the directory is absent.
fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(kind)
        .join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("readable directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Runs `check` on every file, naming the file of the first failure.
fn replay(kind: &str, target: &str, check: fn(&[u8])) -> usize {
    let files = inputs(kind, target);
    for file in &files {
        let data = std::fs::read(file).expect("readable corpus file");
        if std::panic::catch_unwind(|| check(&data)).is_err() {
            panic!("{target} fails on {}", file.display());
        }
    }
    files.len()
}

#[test]
fn corpus_and_seeds_pass_every_check() {
    for (target, check) in TARGETS {
        let corpus = replay("corpus", target, check);
        let seeds = replay("seeds", target, check);
        assert!(corpus > 0, "fuzz/corpus/{target} is empty");
        assert!(seeds > 0, "fuzz/seeds/{target} is empty");
    }
}

/// Targets whose fuzzing has found nothing yet, so `fuzz/regressions/<target>`
/// is legitimately empty (cluster_wire: 5.9M runs, no finding).
const NO_FINDINGS_YET: &[&str] = &["cluster_wire"];

#[test]
fn fixed_crashes_stay_fixed() {
    for (target, check) in TARGETS {
        let fixed = replay("regressions", target, check);
        assert!(
            fixed > 0 || NO_FINDINGS_YET.contains(&target),
            "fuzz/regressions/{target} is empty"
        );
    }
}
