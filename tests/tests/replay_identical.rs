//! `pulse replay` writes byte-identical outputs across the move onto the
//! driver: golden files made by the `pulse` binary of before the driver
//! (commit c8da606), checked byte for byte against the current one.
//!
//! `tests/fixtures/identical/<hostility>/` holds, for each `--hostility`
//! level, a capture (`pulse generate --customers 20 --days 10 --seed 21
//! --hostility <level>`) and what the old `pulse replay` wrote for it, all
//! zstd-compressed: `vectors` and `dead_letters` (written the same with and
//! without `--score`, so both runs are checked against them), and with
//! `--score` `predictions`, `alerts` and `metrics` (the embedded model,
//! default scoring flags). Each run goes through the real command line,
//! with `--workers 1` (the default), and again with 2 and 3.
//!
//! A failure names the file and its first differing line. If an output is
//! meant to change (the contract, the model, the scoring defaults), make
//! the goldens again with `PULSE_BLESS=1 cargo test -p pulse-e2e --test
//! replay_identical`, and say why in the commit.

mod common;

use std::path::Path;

use common::{describe, fixture, run_pulse};

const LEVELS: [&str; 3] = ["none", "realistic", "hostile"];

fn read_zst(path: &Path) -> Vec<u8> {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    zstd::decode_all(file).unwrap_or_else(|e| panic!("{} is not zstd: {e}", path.display()))
}

/// Panics with the first differing line unless `got` is `want`, byte for byte.
fn assert_identical(what: &str, got: &[u8], want: &[u8]) {
    if got == want {
        return;
    }
    let (got_lines, want_lines): (Vec<_>, Vec<_>) =
        (got.split(|&b| b == b'\n').collect(), want.split(|&b| b == b'\n').collect());
    let at =
        got_lines.iter().zip(&want_lines).position(|(g, w)| g != w).unwrap_or(got_lines.len().min(want_lines.len()));
    let line = |lines: &[&[u8]]| lines.get(at).map(|l| String::from_utf8_lossy(&l[..l.len().min(400)]).into_owned());
    panic!(
        "{what} differs from its golden file at line {} ({} vs {} bytes)\n  got:  {:?}\n  want: {:?}",
        at + 1,
        got.len(),
        want.len(),
        line(&got_lines),
        line(&want_lines)
    );
}

/// Replays the level's capture (with `--score` when `scored`, with `workers`
/// decoders and engines) and returns each output by golden name.
fn replay(level: &str, scored: bool, workers: usize) -> Vec<(&'static str, Vec<u8>)> {
    let dir = tempfile::tempdir().unwrap();
    let golden = fixture("identical").join(level);
    let capture = golden.join("capture.jsonl.zst");
    let mut names = vec!["vectors", "dead_letters"];
    let mut args = vec![
        "replay".to_owned(),
        capture.display().to_string(),
        "--quiet".to_owned(),
        "--features-out".to_owned(),
        dir.path().join("vectors.jsonl").display().to_string(),
        "--dead-letter-out".to_owned(),
        dir.path().join("dead_letters.jsonl").display().to_string(),
        "--workers".to_owned(),
        workers.to_string(),
    ];
    if scored {
        args.push("--score".to_owned());
        for (flag, name) in
            [("--predictions-out", "predictions"), ("--alerts-out", "alerts"), ("--metrics-out", "metrics")]
        {
            args.push(flag.to_owned());
            args.push(dir.path().join(format!("{name}.jsonl")).display().to_string());
            names.push(name);
        }
    }
    let out = run_pulse(&args);
    assert!(out.status.success(), "pulse replay of {level} failed: {}", describe(&out));
    names
        .into_iter()
        .map(|name| {
            let path = dir.path().join(format!("{name}.jsonl"));
            (name, std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        })
        .collect()
}

fn check(scored: bool, workers: usize) {
    let bless = std::env::var_os("PULSE_BLESS").is_some() && workers == 1;
    for level in LEVELS {
        for (name, got) in replay(level, scored, workers) {
            let path = fixture("identical").join(level).join(format!("{name}.jsonl.zst"));
            if bless {
                std::fs::write(&path, zstd::encode_all(got.as_slice(), 19).unwrap()).unwrap();
                continue;
            }
            let what =
                format!("{level}: {name} ({}, --workers {workers})", if scored { "--score" } else { "no scoring" });
            assert_identical(&what, &got, &read_zst(&path));
        }
    }
}

#[test]
fn replay_outputs_are_byte_identical_to_the_golden_files() {
    check(false, 1);
}

#[test]
fn scored_replay_outputs_are_byte_identical_to_the_golden_files() {
    check(true, 1);
}

/// Several workers (customers partitioned across engines, decoding in
/// parallel) write the same bytes as one: the same golden files.
#[test]
fn outputs_with_several_workers_are_byte_identical_to_the_golden_files() {
    for workers in [2, 3] {
        check(false, workers);
        check(true, workers);
    }
}

#[test]
fn a_changed_byte_is_caught() {
    // The check itself must be able to fail: one byte of a golden file off.
    let golden = read_zst(&fixture("identical").join("hostile").join("vectors.jsonl.zst"));
    let mut changed = golden.clone();
    let at = changed.len() / 2;
    changed[at] ^= 1;
    let caught = std::panic::catch_unwind(|| assert_identical("vectors", &changed, &golden));
    assert!(caught.is_err());
}
