//! `pulse replay --workers N` and `pulse demo --workers N`: customers
//! partitioned across N engines, decoding in parallel, and the same outputs
//! as one worker.
//!
//! A hostile capture (`pulse generate --hostility hostile`: duplicates,
//! corrections, late and out-of-order records, garbage lines) of several
//! batches (the replay cuts the input into batches of 2,048 lines), replayed
//! with `--score` and every output written:
//!
//! * at `--workers 2` and `3`, every output (vectors, dead letters,
//!   predictions, alerts, fleet metrics) is the same multiset of lines as at
//!   `--workers 1`, and in fact the same bytes: the workers' vectors are
//!   merged back into one engine's order (`runtime/src/workers.rs`);
//! * `--workers 2` twice gives the same bytes;
//! * `--workers 1` is today's output byte for byte: `replay_identical.rs`
//!   checks it (and 2 and 3) against golden files made before the driver.

mod common;

use std::path::Path;

use common::{describe, run_pulse};

/// The outputs of a scored replay, by name.
const OUTPUTS: [(&str, &str); 5] = [
    ("--features-out", "vectors"),
    ("--dead-letter-out", "dead_letters"),
    ("--predictions-out", "predictions"),
    ("--alerts-out", "alerts"),
    ("--metrics-out", "metrics"),
];

/// Generates a hostile capture of about 15,000 records (7 batches).
fn hostile_capture(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("capture.jsonl");
    let out = run_pulse([
        "generate",
        "--customers",
        "300",
        "--days",
        "21",
        "--seed",
        "16",
        "--hostility",
        "hostile",
        "--quiet",
        "--out",
        path.to_str().expect("a UTF-8 path"),
    ]);
    assert!(out.status.success(), "pulse generate failed: {}", describe(&out));
    path
}

/// Replays `capture` with `--score` and `workers`; each output's bytes by name.
fn replay(capture: &Path, workers: usize) -> Vec<(&'static str, Vec<u8>)> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut args = vec![
        "replay".to_owned(),
        capture.display().to_string(),
        "--quiet".to_owned(),
        "--score".to_owned(),
        "--workers".to_owned(),
        workers.to_string(),
    ];
    for (flag, name) in OUTPUTS {
        args.push(flag.to_owned());
        args.push(dir.path().join(format!("{name}.jsonl")).display().to_string());
    }
    let out = run_pulse(&args);
    assert!(out.status.success(), "pulse replay --workers {workers} failed: {}", describe(&out));
    OUTPUTS
        .iter()
        .map(|(_, name)| {
            let path = dir.path().join(format!("{name}.jsonl"));
            (*name, std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        })
        .collect()
}

/// The lines of a file, sorted: its multiset.
fn multiset(bytes: &[u8]) -> Vec<&[u8]> {
    let mut lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()).collect();
    lines.sort_unstable();
    lines
}

/// Panics with the first differing line unless `got` is `want`, byte for byte.
fn assert_same_bytes(what: &str, got: &[u8], want: &[u8]) {
    if got == want {
        return;
    }
    let (got_lines, want_lines): (Vec<_>, Vec<_>) =
        (got.split(|&b| b == b'\n').collect(), want.split(|&b| b == b'\n').collect());
    let at = got_lines.iter().zip(&want_lines).position(|(g, w)| g != w).unwrap_or(got_lines.len());
    let line = |lines: &[&[u8]]| lines.get(at).map(|l| String::from_utf8_lossy(&l[..l.len().min(300)]).into_owned());
    panic!("{what} differs at line {}:\n  got:  {:?}\n  want: {:?}", at + 1, line(&got_lines), line(&want_lines));
}

#[test]
fn several_workers_write_what_one_writes() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let capture = hostile_capture(dir.path());
    let one = replay(&capture, 1);
    let vectors = one.iter().find(|(name, _)| *name == "vectors").map(|(_, b)| multiset(b).len());
    assert!(vectors.is_some_and(|n| n > 10_000), "a capture of several batches: {vectors:?} vectors");
    for (name, bytes) in &one {
        assert!(!bytes.is_empty(), "--workers 1 wrote no {name}");
    }
    for workers in [2, 3] {
        for ((name, got), (_, want)) in replay(&capture, workers).iter().zip(&one) {
            let what = format!("{name} at --workers {workers} against --workers 1");
            assert!(multiset(got) == multiset(want), "{what}: not the same multiset of lines");
            assert_same_bytes(&what, got, want);
        }
    }
}

#[test]
fn two_workers_write_the_same_bytes_twice() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let capture = hostile_capture(dir.path());
    for ((name, second), (_, first)) in replay(&capture, 2).iter().zip(&replay(&capture, 2)) {
        assert_same_bytes(&format!("{name} of a second run at --workers 2"), second, first);
    }
}

#[test]
fn the_demo_with_several_workers_writes_what_one_writes() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let demo = |workers: usize| {
        let out_dir = dir.path().join(format!("demo-{workers}"));
        let out = run_pulse([
            "demo",
            "--customers",
            "80",
            "--days",
            "12",
            "--hostility",
            "hostile",
            "--quiet",
            "--workers",
            &workers.to_string(),
            "--out-dir",
            out_dir.to_str().expect("a UTF-8 path"),
        ]);
        assert!(out.status.success(), "pulse demo --workers {workers} failed: {}", describe(&out));
        out_dir
    };
    let (one, three) = (demo(1), demo(3));
    for name in ["predictions.jsonl", "alerts.jsonl", "fleet-metrics.jsonl", "dead-letters.jsonl"] {
        let read = |d: &Path| std::fs::read(d.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_same_bytes(&format!("demo {name} at --workers 3"), &read(three.as_path()), &read(one.as_path()));
    }
}

#[test]
fn zero_workers_is_refused() {
    let out = run_pulse(["replay", "no-such-capture.jsonl", "--workers", "0"]);
    assert!(!out.status.success(), "--workers 0 was accepted: {}", describe(&out));
}
