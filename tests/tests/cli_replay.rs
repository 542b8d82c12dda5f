//! The `pulse` binary as a user runs it: exit codes, messages and files of
//! `pulse replay` and `pulse generate`, and `--help`.
//!
//! The binary is the one cargo builds from the current source (see
//! `common::pulse_bin` for why it is found through `cargo build
//! --message-format=json` rather than `CARGO_BIN_EXE_pulse`). It proves that:
//!
//! * an unreadable input (missing file, a directory, truncated `.gz` or `.zst`) and an
//!   unwritable output exit non-zero with a message naming the file, and bad
//!   flags with a message naming the flag;
//! * a capture with invalid records and a line that is not JSON exits 0, and
//!   the dead-letter file has one line per bad record with `code`, `reason`,
//!   `source.line` and `record` (the original JSON) or `record_text`;
//! * `.zst` and `.gz` captures (written here with the `zstd` and `flate2`
//!   crates, or by `pulse generate --out x.jsonl.zst`) replay to exactly the
//!   vectors of the plain file, and the CLI writes what the library writes;
//! * `pulse generate` with the same seed writes identical bytes (and another
//!   seed other bytes);
//! * `pulse --help` names every subcommand, `pulse replay --help` its flags;
//! * `--score` writes a prediction per scored vector, and says which model
//!   scored (`served_by` `embedded` for the built-in one, `in-process` for a
//!   `--model DIR` one).

mod common;

use std::ffi::OsStr;
use std::io::Write;
use std::path::Path;

use common::{describe, fixture, parse_json_lines, replay_capture, run_pulse, write_file};
use pulse_operators::TimerPolicy;
use serde_json::Value;

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `pulse replay CAPTURE --features-out F --dead-letter-out F --quiet` plus
/// `extra`, into `dir`; returns the run and the two files' bytes.
fn replay_cli(capture: &Path, dir: &Path, tag: &str, extra: &[&str]) -> (std::process::Output, Vec<u8>, Vec<u8>) {
    let features = dir.join(format!("{tag}-features.jsonl"));
    let dead = dir.join(format!("{tag}-dead.jsonl"));
    let mut args: Vec<&OsStr> = vec![
        "replay".as_ref(),
        capture.as_os_str(),
        "--features-out".as_ref(),
        features.as_os_str(),
        "--dead-letter-out".as_ref(),
        dead.as_os_str(),
        "--quiet".as_ref(),
    ];
    args.extend(extra.iter().map(OsStr::new));
    let out = run_pulse(&args);
    let read = |p: &Path| std::fs::read(p).unwrap_or_default();
    (out, read(&features), read(&dead))
}

#[test]
fn missing_capture_exits_non_zero_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-capture.jsonl");
    let (out, _, _) = replay_cli(&missing, dir.path(), "missing", &[]);
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(stderr(&out).contains(&missing.display().to_string()), "the message names the file: {}", describe(&out));
    // A directory opens on Unix but cannot be read.
    let (out, _, _) = replay_cli(dir.path(), dir.path(), "directory", &[]);
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(stderr(&out).contains(&dir.path().display().to_string()), "the message names it: {}", describe(&out));
}

#[test]
fn invalid_records_go_to_dead_letters_and_the_replay_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let golden = fixture("golden.jsonl");
    let (out, features, dead) = replay_cli(&golden, dir.path(), "golden", &[]);
    assert!(out.status.success(), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.lines().any(|l| l.contains("invalid (dead letters)") && l.trim_end().ends_with(" 7")),
        "the summary counts 7 dead letters:\n{stdout}"
    );

    let original = std::fs::read_to_string(&golden).unwrap();
    let lines: Vec<&str> = original.lines().collect();
    let dead = parse_json_lines(&dead);
    let codes: Vec<(u64, &str)> =
        dead.iter().map(|d| (d["source"]["line"].as_u64().unwrap(), d["code"].as_str().unwrap())).collect();
    assert_eq!(
        codes,
        [
            (24, "future_event"),
            (25, "out_of_range"),
            (26, "unknown_event_type"),
            (27, "bad_timestamp"),
            (28, "missing_attribute"),
            (29, "malformed_record"),
            (31, "missing_creation_time"),
        ],
        "one dead letter per bad record"
    );
    for d in &dead {
        let line = d["source"]["line"].as_u64().unwrap() as usize;
        assert!(!d["reason"].as_str().unwrap().is_empty(), "line {line}: a reason");
        match d.get("record") {
            Some(record) => assert_eq!(*record, serde_json::from_str::<Value>(lines[line - 1]).unwrap(), "line {line}"),
            None => assert_eq!(d["record_text"].as_str(), Some(lines[line - 1]), "line {line}: not JSON, kept as text"),
        }
    }

    // The binary writes exactly what the library writes (daily timers by default).
    let library = replay_capture(&golden, TimerPolicy::default());
    assert!(features == library.features_bytes, "CLI and library vectors differ");
}

#[test]
fn compressed_captures_replay_to_the_same_vectors_as_plain() {
    let dir = tempfile::tempdir().unwrap();
    let plain = std::fs::read(fixture("golden.jsonl")).unwrap();
    let zst = write_file(dir.path(), "golden.jsonl.zst", &zstd::encode_all(&plain[..], 3).unwrap());
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&plain).unwrap();
    let gz = write_file(dir.path(), "golden.jsonl.gz", &gz.finish().unwrap());

    let (out, plain_features, plain_dead) = replay_cli(&fixture("golden.jsonl"), dir.path(), "plain", &[]);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(!plain_features.is_empty() && !plain_dead.is_empty());
    for (name, path) in [("zst", &zst), ("gz", &gz)] {
        let (out, features, dead) = replay_cli(path, dir.path(), name, &[]);
        assert!(out.status.success(), "{name}: {}", describe(&out));
        assert!(features == plain_features, "{name}: other vectors than the plain capture");
        assert!(dead == plain_dead, "{name}: other dead letters than the plain capture");
    }

    // And a capture that pulse generate compressed itself.
    for name in ["gen.jsonl", "gen.jsonl.zst", "gen.jsonl.gz"] {
        let out = run_pulse(generate_args(&dir.path().join(name), 7));
        assert!(out.status.success(), "{name}: {}", describe(&out));
    }
    let (_, from_plain, _) = replay_cli(&dir.path().join("gen.jsonl"), dir.path(), "gen-plain", &["--no-timers"]);
    assert!(!from_plain.is_empty());
    for name in ["gen.jsonl.zst", "gen.jsonl.gz"] {
        let (out, features, _) = replay_cli(&dir.path().join(name), dir.path(), name, &["--no-timers"]);
        assert!(out.status.success(), "{name}: {}", describe(&out));
        assert!(features == from_plain, "{name}: other vectors than the plain capture");
    }
}

/// `-` reads standard input, plain or compressed (`aws s3 cp s3://... - |
/// pulse replay - ...`): the same vectors and dead letters as the file. A
/// dataset, which reads its capture twice, refuses it and says why.
#[test]
fn a_capture_on_standard_input_replays_like_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let plain = std::fs::read(fixture("golden.jsonl")).unwrap();
    let (out, want_features, want_dead) = replay_cli(&fixture("golden.jsonl"), dir.path(), "file", &[]);
    assert!(out.status.success(), "{}", describe(&out));
    for (tag, bytes) in [("plain", plain.clone()), ("zst", zstd::encode_all(&plain[..], 3).unwrap())] {
        let features = dir.path().join(format!("{tag}-stdin-features.jsonl"));
        let dead = dir.path().join(format!("{tag}-stdin-dead.jsonl"));
        let mut child = std::process::Command::new(common::pulse_bin())
            .args(["replay", "-", "--quiet", "--features-out"])
            .arg(&features)
            .arg("--dead-letter-out")
            .arg(&dead)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        // Written from another thread, so a full pipe cannot stall the test.
        let writer = std::thread::spawn(move || stdin.write_all(&bytes).unwrap());
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap();
        assert!(out.status.success(), "{tag}: {}", describe(&out));
        assert!(std::fs::read(&features).unwrap() == want_features, "{tag}: other vectors than the file's");
        assert!(std::fs::read(&dead).unwrap() == want_dead, "{tag}: other dead letters than the file's");
    }
    let out = run_pulse(["dataset", "-", "--quiet", "--out", dir.path().join("d.csv").to_str().unwrap()]);
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(stderr(&out).contains("cannot be standard input"), "{}", describe(&out));
    // Standard input redirected from a file that is also an output: refused
    // before anything is written (it emptied the capture it was reading).
    let capture = dir.path().join("capture.jsonl");
    std::fs::write(&capture, &plain).unwrap();
    let out = std::process::Command::new(common::pulse_bin())
        .args(["replay", "-", "--quiet", "--features-out"])
        .arg(&capture)
        .stdin(std::fs::File::open(&capture).unwrap())
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(stderr(&out).contains("is the same file as"), "{}", describe(&out));
    assert_eq!(std::fs::read(&capture).unwrap(), plain, "the capture was changed");
}

#[test]
fn truncated_compressed_captures_exit_non_zero_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let plain = std::fs::read(fixture("golden.jsonl")).unwrap();
    let zst = zstd::encode_all(&plain[..], 3).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&plain).unwrap();
    let gz = gz.finish().unwrap();
    for (name, bytes) in [("cut.jsonl.zst", &zst), ("cut.jsonl.gz", &gz)] {
        let path = write_file(dir.path(), name, &bytes[..bytes.len() / 2]);
        let (out, _, _) = replay_cli(&path, dir.path(), name, &[]);
        assert!(!out.status.success(), "{name}: a truncated file is unreadable input: {}", describe(&out));
        assert!(stderr(&out).contains(name), "{name}: the message names the file: {}", describe(&out));
    }
}

#[test]
fn an_empty_capture_replays_to_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let empty = write_file(dir.path(), "empty.jsonl", b"");
    let (out, features, dead) = replay_cli(&empty, dir.path(), "empty", &[]);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(features.is_empty() && dead.is_empty());
}

#[test]
fn an_unwritable_output_exits_non_zero_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "a-file", b"");
    let under_a_file = file.join("features.jsonl");
    let out = run_pulse([
        "replay".as_ref(),
        fixture("golden.jsonl").as_os_str(),
        "--features-out".as_ref(),
        under_a_file.as_os_str(),
        "--quiet".as_ref(),
    ]);
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(stderr(&out).contains(&file.display().to_string()), "the message names the path: {}", describe(&out));
}

#[test]
fn an_output_that_is_the_input_or_another_output_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let golden = std::fs::read(fixture("golden.jsonl")).unwrap();
    let capture = write_file(dir.path(), "capture.jsonl", &golden);
    let link = dir.path().join("link.jsonl");
    std::os::unix::fs::symlink(&capture, &link).unwrap();
    let hard = dir.path().join("hard.jsonl");
    std::fs::hard_link(&capture, &hard).unwrap();
    let other = dir.path().join("out.jsonl");
    let same_other = dir.path().join(".").join("out.jsonl");
    for (flags, needle) in [
        (vec!["--features-out", capture.to_str().unwrap()], "--features-out"),
        (vec!["--features-out", link.to_str().unwrap()], "--features-out"),
        (vec!["--dead-letter-out", hard.to_str().unwrap()], "--dead-letter-out"),
        (
            vec!["--features-out", other.to_str().unwrap(), "--dead-letter-out", same_other.to_str().unwrap()],
            "--dead-letter-out",
        ),
    ] {
        let mut args = vec!["replay", capture.to_str().unwrap(), "--quiet"];
        args.extend(&flags);
        let out = run_pulse(&args);
        assert!(!out.status.success(), "{flags:?}: {}", describe(&out));
        assert!(stderr(&out).contains(needle) && stderr(&out).contains("same file"), "{flags:?}: {}", describe(&out));
        assert_eq!(std::fs::read(&capture).unwrap(), golden, "{flags:?}: the capture is untouched");
    }
    assert!(!other.exists(), "nothing was created");
}

#[test]
fn a_line_past_the_limit_is_a_dead_letter_and_the_replay_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let golden = std::fs::read(fixture("golden.jsonl")).unwrap();
    // 3 MiB of one line in the middle of the golden capture.
    let mut capture = golden.clone();
    let cut = capture.iter().position(|&b| b == b'\n').unwrap() + 1;
    let long: Vec<u8> = std::iter::repeat_n(b'z', 3 << 20).collect();
    capture.splice(cut..cut, long.iter().copied().chain([b'\n']));
    let with_long = write_file(dir.path(), "long.jsonl", &capture);
    let plain = write_file(dir.path(), "plain.jsonl", &golden);
    let run = |capture: &std::path::Path, name: &str| {
        let (out, features, dead) = replay_cli(capture, dir.path(), name, &["--no-timers"]);
        assert!(out.status.success(), "{}", describe(&out));
        (parse_json_lines(&features).len(), parse_json_lines(&dead))
    };
    let (vectors, dead) = run(&with_long, "long");
    let (vectors_plain, dead_plain) = run(&plain, "plain");
    assert_eq!(vectors, vectors_plain, "every other record applied");
    assert_eq!(dead.len(), dead_plain.len() + 1);
    let letter = dead.iter().find(|d| d["code"] == "line_too_long").expect("the long line's dead letter");
    assert_eq!(letter["source"]["line"], 2);
    assert!(letter["reason"].as_str().unwrap().contains(&format!("{} bytes", 3 << 20)), "{letter}");
    assert_eq!(letter["record_text"].as_str().unwrap().len(), 1024, "an excerpt, not the line");
}

#[test]
fn bad_flags_exit_non_zero_naming_the_flag() {
    let golden = fixture("golden.jsonl");
    let golden = golden.to_str().unwrap();
    for (args, needle) in [
        (vec!["replay", golden, "--timer-interval-hours", "0", "--quiet"], "--timer-interval-hours"),
        (vec!["replay", golden, "--predictions-out", "p.jsonl", "--quiet"], "--score"),
        (vec!["replay", golden, "--no-such-flag"], "--no-such-flag"),
        (vec!["generate", "--hostility", "mean", "--out", "x.jsonl"], "mean"),
        (vec!["frobnicate"], "frobnicate"),
    ] {
        let out = run_pulse(&args);
        assert!(!out.status.success(), "{args:?}: {}", describe(&out));
        assert!(stderr(&out).contains(needle), "{args:?}: the message names {needle}: {}", describe(&out));
    }
}

fn generate_args(out: &Path, seed: u64) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> =
        ["generate", "--customers", "40", "--days", "6", "--hostility", "hostile", "--quiet", "--seed"]
            .iter()
            .map(Into::into)
            .collect();
    args.push(seed.to_string().into());
    args.push("--out".into());
    args.push(out.into());
    args
}

#[test]
fn generate_same_seed_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    for (name, seed) in [("a.jsonl", 3), ("b.jsonl", 3), ("c.jsonl", 4)] {
        let out = run_pulse(generate_args(&path(name), seed));
        assert!(out.status.success(), "{}", describe(&out));
        assert!(String::from_utf8_lossy(&out.stdout).contains("wrote "), "{}", describe(&out));
    }
    let read = |name: &str| std::fs::read(path(name)).unwrap();
    assert!(!read("a.jsonl").is_empty());
    assert!(read("a.jsonl") == read("b.jsonl"), "the same seed must give the same bytes");
    assert!(read("a.jsonl") != read("c.jsonl"), "another seed gives another capture");
    // The library's generator writes the same bytes.
    let config = pulse_synth::SynthConfig {
        customers: 40,
        days: 6,
        seed: 3,
        hostility: pulse_synth::Hostility::hostile(),
        ..pulse_synth::SynthConfig::default()
    };
    let mut bytes = Vec::new();
    pulse_synth::generate(&config, &mut bytes, &mut |_| {}).unwrap();
    assert!(bytes == read("a.jsonl"), "CLI and library generate differ");
}

#[test]
fn help_names_every_subcommand_and_the_replay_flags() {
    let out = run_pulse(["--help"]);
    assert!(out.status.success(), "{}", describe(&out));
    let help = String::from_utf8_lossy(&out.stdout);
    for sub in ["replay", "generate", "train", "demo", "serve"] {
        assert!(help.lines().any(|l| l.trim_start().starts_with(sub)), "--help lists {sub}:\n{help}");
    }
    let out = run_pulse(["replay", "--help"]);
    assert!(out.status.success(), "{}", describe(&out));
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in
        ["--features-out", "--dead-letter-out", "--no-timers", "--timer-interval-hours", "--score", "--predictions-out"]
    {
        assert!(help.contains(flag), "replay --help mentions {flag}:\n{help}");
    }
}

#[test]
fn score_writes_a_prediction_per_scored_vector() {
    let dir = tempfile::tempdir().unwrap();
    let predictions = dir.path().join("predictions.jsonl");
    let (out, features, _) = replay_cli(
        &fixture("golden.jsonl"),
        dir.path(),
        "scored",
        &["--no-timers", "--score", "--predictions-out", predictions.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", describe(&out));
    let predictions = parse_json_lines(&std::fs::read(&predictions).unwrap());
    let vectors = common::parse_vectors(&features);
    assert!(!predictions.is_empty());
    let customers: std::collections::BTreeSet<&str> = vectors.iter().map(|v| v.customer_id.as_str()).collect();
    for p in &predictions {
        let customer = p["customer_id"].as_str().unwrap();
        assert!(customers.contains(customer), "a prediction of a customer with vectors: {p}");
        let as_of = p["as_of"].as_i64().unwrap();
        assert!(vectors.iter().any(|v| v.customer_id.as_str() == customer && v.as_of == as_of), "{p}");
        let health = p["health_score"].as_f64().unwrap();
        assert!((0.0..=100.0).contains(&health), "{p}");
        assert_eq!(p["features_schema"], "features-v1");
    }
    // The latest vector of every customer is scored (coalescing may skip older ones).
    for c in customers {
        let last = vectors.iter().filter(|v| v.customer_id.as_str() == c).map(|v| v.as_of).max().unwrap();
        assert!(
            predictions.iter().any(|p| p["customer_id"] == c && p["as_of"].as_i64() == Some(last)),
            "{c}: its latest vector (as of {last}) is scored"
        );
    }
}

/// Predictions of a model loaded with --model said `"served_by":"embedded"`,
/// claiming the built-in model, and the scored replay's summary named no
/// model: the built-in one is still `embedded`, a --model one `in-process`,
/// and the summary names either, with its directory, as `pulse demo` does.
#[test]
fn a_scored_replay_names_its_model_and_served_by_tells_a_model_dir_from_the_built_in_one() {
    let dir = tempfile::tempdir().unwrap();
    let network = common::workspace_root().join("model/tests/fixtures/network");
    let cases = [
        (None, "embedded", "replay scored by model pulse-gbt v2 (built in)".to_owned()),
        (
            Some(&network),
            "in-process",
            format!("replay scored by model pulse-multitask v1 (from {})", network.display()),
        ),
    ];
    for (i, (model, served_by, line)) in cases.into_iter().enumerate() {
        let predictions = dir.path().join(format!("p{i}.jsonl"));
        let mut extra = vec!["--no-timers", "--score", "--predictions-out", predictions.to_str().unwrap()];
        if let Some(m) = model {
            extra.extend(["--model", m.to_str().unwrap()]);
        }
        let (out, _, _) = replay_cli(&fixture("golden.jsonl"), dir.path(), &format!("m{i}"), &extra);
        assert!(out.status.success(), "{}", describe(&out));
        assert!(String::from_utf8_lossy(&out.stdout).contains(&line), "{line:?} not said:\n{}", describe(&out));
        let predictions = parse_json_lines(&std::fs::read(&predictions).unwrap());
        assert!(!predictions.is_empty());
        assert!(predictions.iter().all(|p| p["served_by"] == served_by), "{:?}", predictions[0]);
    }
}

#[test]
fn demo_writes_the_latest_prediction_per_customer_and_the_history_only_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("demo");
    let history = dir.path().join("history.jsonl.zst");
    let demo = |extra: &[&std::ffi::OsStr]| {
        let mut args: Vec<&std::ffi::OsStr> = ["demo", "--customers", "60", "--days", "12", "--quiet", "--out-dir"]
            .iter()
            .map(std::ffi::OsStr::new)
            .collect();
        args.push(out_dir.as_os_str());
        args.extend_from_slice(extra);
        let out = run_pulse(args);
        assert!(out.status.success(), "{}", describe(&out));
    };
    demo(&[]);
    let latest_path = out_dir.join("predictions.jsonl");
    let latest = parse_json_lines(&std::fs::read(&latest_path).unwrap());
    assert!(!history.exists(), "no history unless asked for");
    let customers: Vec<&str> = latest.iter().map(|p| p["customer_id"].as_str().unwrap()).collect();
    assert!(customers.len() > 30, "most customers are scored: {}", customers.len());
    assert!(customers.windows(2).all(|w| w[0] < w[1]), "one line per customer, in customer order");
    let latest_bytes = std::fs::read(&latest_path).unwrap();

    demo(&["--predictions-history".as_ref(), history.as_os_str()]);
    assert_eq!(std::fs::read(&latest_path).unwrap(), latest_bytes, "the history changes nothing else");
    let history = parse_json_lines(&zstd::decode_all(std::fs::File::open(&history).unwrap()).unwrap());
    assert!(history.len() > latest.len(), "{} predictions in the history", history.len());
    let mut last: std::collections::BTreeMap<&str, &serde_json::Value> = std::collections::BTreeMap::new();
    for p in &history {
        last.insert(p["customer_id"].as_str().unwrap(), p);
    }
    assert_eq!(last.len(), latest.len(), "every customer of the history has its latest line");
    for p in &latest {
        assert_eq!(p, last[p["customer_id"].as_str().unwrap()], "the latest is the history's last");
    }
}

/// `--snapshot-out` writes the end state (one engine snapshot per worker,
/// back to back) that reads back into engines holding every customer,
/// reports its size and times, and changes no output.
#[test]
fn the_end_state_is_written_and_reads_back_at_any_worker_count() {
    let dir = tempfile::tempdir().unwrap();
    let capture = dir.path().join("gen.jsonl");
    assert!(run_pulse(generate_args(&capture, 11)).status.success());
    let (_, plain, _) = replay_cli(&capture, dir.path(), "plain", &[]);
    for workers in ["1", "2"] {
        let snap = dir.path().join(format!("state-{workers}.bin"));
        let json = dir.path().join(format!("summary-{workers}.json"));
        let extra =
            ["--workers", workers, "--snapshot-out", snap.to_str().unwrap(), "--summary-json", json.to_str().unwrap()];
        let (out, features, _) = replay_cli(&capture, dir.path(), &format!("w{workers}"), &extra);
        assert!(out.status.success(), "{}", describe(&out));
        assert!(features == plain, "--snapshot-out changed the vectors");
        let summary: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
        let bytes = std::fs::metadata(&snap).unwrap().len();
        assert_eq!(summary["snapshot"]["bytes"], bytes, "{summary}");
        let mut r = std::io::BufReader::new(std::fs::File::open(&snap).unwrap());
        let mut customers = 0;
        for _ in 0..workers.parse::<usize>().unwrap() {
            let engine = pulse_operators::Engine::read_snapshot(pulse_operators::EngineConfig::default(), &mut r)
                .expect("a snapshot per worker");
            customers += engine.state_size().customers;
        }
        assert_eq!(customers, summary["state"]["customers"], "every customer in the snapshots");
        assert!(customers > 0);
    }
}

/// A Kinesis Data Streams for DynamoDB archive (what a Firehose delivery of
/// the table's Kinesis stream keeps: each record's data, creation times in
/// milliseconds), newline-delimited or back to back as Firehose writes it by
/// default, compressed or not: `replay` reads it as the capture it came
/// from (the same vectors, byte for byte, timers on; the same dead letters,
/// by line and reason) and says how it read it; `dataset` writes the same
/// rows. Lines that are not Kinesis records (the hostile capture's broken
/// ones) are kept as they are and stay dead letters.
#[test]
fn a_kinesis_archive_reads_as_the_capture_it_came_from() {
    let dir = tempfile::tempdir().unwrap();
    let capture = dir.path().join("capture.jsonl");
    let mut args = generate_args(&capture, 11);
    args.splice(1..5, ["--customers", "60", "--days", "60"].map(Into::into));
    let out = run_pulse(&args);
    assert!(out.status.success(), "{}", describe(&out));
    // A line that is no record at all, kept as it is in the archive.
    let mut text = std::fs::read_to_string(&capture).unwrap();
    let at = text.match_indices('\n').nth(100).unwrap().0;
    text.insert_str(at + 1, "this is no record\n");
    std::fs::write(&capture, &text).unwrap();
    let mut converted = 0;
    let records: Vec<Vec<u8>> = text
        .lines()
        .map(|line| {
            let value: Option<Value> = serde_json::from_str(line).ok();
            let created = value.as_ref().and_then(|v| v["dynamodb"]["ApproximateCreationDateTime"].as_f64());
            match created {
                Some(_) if value.as_ref().is_some_and(|v| v["dynamodb"]["Keys"].is_object()) => {
                    converted += 1;
                    common::kinesis_payload(line).1
                }
                _ => line.as_bytes().to_vec(),
            }
        })
        .collect();
    assert!(converted > 1000 && converted < records.len(), "{converted} of {} records converted", records.len());
    let delimited = write_file(dir.path(), "archive.json", &records.join(&b"\n"[..]));
    let back_to_back = write_file(dir.path(), "archive.json.zst", &zstd::encode_all(&records.concat()[..], 3).unwrap());

    let dead_by_line = |dead: &[u8]| -> Vec<(u64, String)> {
        parse_json_lines(dead)
            .iter()
            .map(|d| (d["source"]["line"].as_u64().unwrap(), d["code"].as_str().unwrap().to_owned()))
            .collect()
    };
    let (out, want_features, want_dead) = replay_cli(&capture, dir.path(), "capture", &[]);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(!stderr(&out).contains("Kinesis"), "a capture is read as one: {}", describe(&out));
    assert!(!want_dead.is_empty(), "the hostile capture has dead letters");
    for (tag, archive) in [("delimited", &delimited), ("back-to-back", &back_to_back)] {
        let (out, features, dead) = replay_cli(archive, dir.path(), tag, &[]);
        assert!(out.status.success(), "{tag}: {}", describe(&out));
        assert!(
            stderr(&out).contains("read as a Kinesis Data Streams for DynamoDB archive"),
            "{tag}: {}",
            describe(&out)
        );
        assert!(features == want_features, "{tag}: other vectors than the capture's");
        // Line numbers hold when the archive is one record a line; back to
        // back, a record's number is its place.
        assert_eq!(dead_by_line(&dead), dead_by_line(&want_dead), "{tag}: other dead letters");
    }

    let dataset = |input: &Path, out: &str| {
        let out_path = dir.path().join(out);
        let run = run_pulse([
            "dataset".as_ref(),
            input.as_os_str(),
            "--quiet".as_ref(),
            "--out".as_ref(),
            out_path.as_os_str(),
        ]);
        assert!(run.status.success(), "{}", describe(&run));
        (std::fs::read(out_path).unwrap(), stderr(&run))
    };
    let (want_rows, _) = dataset(&capture, "capture.csv");
    let (rows, said) = dataset(&back_to_back, "archive.csv");
    assert!(rows == want_rows, "the archive's dataset differs from the capture's");
    assert!(said.contains("note: read as a Kinesis Data Streams for DynamoDB archive"), "{said}");
}
