//! Every input and output path a user can hand the batch commands, as a
//! review of them found it (each test failed before its fix):
//!
//! * no command overwrites its input or one output with another: `pulse
//!   capture --out X --checkpoint X` and `pulse run --capture-out X
//!   --checkpoint X` left a checkpoint where the capture was, and `pulse
//!   replay --summary-json` could name the capture; several outputs may
//!   still name `/dev/null`;
//! * flags that only shape scoring are refused without `--score` (`--model
//!   DIR` was ignored, even for a directory that does not exist);
//! * `-` is standard output for an output, the summary then going to
//!   standard error, so `pulse generate --out - | pulse replay -` works;
//! * an input is read by its first bytes whatever its extension;
//! * a run that fails or is interrupted leaves every output path as it was
//!   (no cut-off file under the final name, no temporary file behind);
//! * `pulse dataset` reads the capture as the replay does: a line over the
//!   1 MiB limit is a dead letter there too, and dead letters are counted;
//!   a jump of the stream's clock by months (a record dated decades ahead)
//!   is warned of;
//! * a replay of nothing, or of a file that is not a capture, warns;
//! * the generator refuses, rather than aborts on, more customers than
//!   memory holds.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::{describe, fixture, pulse_bin, run_pulse, write_file};

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn fails_with(out: &std::process::Output, needles: &[&str]) {
    assert!(!out.status.success(), "should fail: {}", describe(out));
    for needle in needles {
        assert!(stderr(out).contains(needle), "no {needle:?} in: {}", describe(out));
    }
}

/// The files in `dir` whose name marks an unfinished output.
fn partials(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".partial"))
        .collect()
}

#[test]
fn stream_commands_refuse_a_path_named_twice_before_reaching_the_stream() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "capture.jsonl", b"kept\n");
    let f = file.to_str().unwrap();
    // No server is needed: the paths are checked before any call.
    let stream = ["--source", "dynamodb-streams", "--table", "t", "--idle-exit-s", "1"];
    let cases: [(Vec<&str>, &str); 4] = [
        (vec!["capture", "--out", f, "--checkpoint", f], "--checkpoint"),
        (vec!["run", "--capture-out", f, "--checkpoint", f], "--checkpoint"),
        (vec!["run", "--capture-out", f, "--features-out", f], "--capture-out"),
        (vec!["run", "--features-out", f, "--summary-json", f], "--summary-json"),
    ];
    for (args, flag) in cases {
        let out = run_pulse(args.iter().chain(&stream));
        fails_with(&out, &[flag, "same file"]);
        assert_eq!(std::fs::read(&file).unwrap(), b"kept\n", "{args:?}: the file is untouched");
    }
    let out =
        run_pulse(["capture", "--out", dir.path().join("c.jsonl").to_str().unwrap()].iter().chain(&stream).chain(&[
            "--poll-min-ms",
            "5000",
            "--poll-max-ms",
            "10",
        ]));
    fails_with(&out, &["--poll-min-ms", "--poll-max-ms"]);
}

#[test]
fn replay_checks_its_summary_path_and_lets_outputs_share_a_device() {
    let dir = tempfile::tempdir().unwrap();
    let golden = std::fs::read(fixture("golden.jsonl")).unwrap();
    let capture = write_file(dir.path(), "capture.jsonl", &golden);
    let c = capture.to_str().unwrap();
    let out = run_pulse(["replay", c, "--quiet", "--summary-json", c]);
    fails_with(&out, &["--summary-json", "same file as the capture"]);
    assert_eq!(std::fs::read(&capture).unwrap(), golden, "the capture is untouched");
    let vectors = dir.path().join("v.jsonl");
    let v = vectors.to_str().unwrap();
    let out = run_pulse(["replay", c, "--quiet", "--features-out", v, "--summary-json", v]);
    fails_with(&out, &["--summary-json", "same file as --features-out"]);
    // Found before the run, not after it.
    let out = run_pulse(["replay", c, "--quiet", "--summary-json", dir.path().to_str().unwrap()]);
    fails_with(&out, &["--summary-json", "is a directory"]);
    let out = run_pulse(["replay", c, "--quiet", "--features-out", "/dev/null", "--dead-letter-out", "/dev/null"]);
    assert!(out.status.success(), "/dev/null twice is no clash: {}", describe(&out));
}

#[test]
fn scoring_flags_without_score_are_refused() {
    let golden = fixture("golden.jsonl");
    let g = golden.to_str().unwrap();
    for flags in [
        vec!["--model", "/nonexistent/model"],
        vec!["--linger-s", "5"],
        vec!["--batch-rows", "8"],
        vec!["--no-reasons"],
        vec!["--monitor-window-days", "3"],
    ] {
        let mut args = vec!["replay", g, "--quiet"];
        args.extend(&flags);
        let out = run_pulse(&args);
        fails_with(&out, &[flags[0], "needs --score"]);
    }
    let out = run_pulse(["replay", g, "--quiet", "--timer-interval-hours", "0.0001"]);
    fails_with(&out, &["--timer-interval-hours", "from a minute"]);
}

#[test]
fn a_dash_is_standard_output_and_the_summary_moves_to_standard_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut generate = Command::new(pulse_bin())
        .current_dir(dir.path())
        .args(["generate", "--customers", "20", "--days", "3", "--quiet", "--out", "-"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let replay = Command::new(pulse_bin())
        .current_dir(dir.path())
        .args(["replay", "-", "--quiet"])
        .stdin(generate.stdout.take().unwrap())
        .output()
        .unwrap();
    assert!(generate.wait().unwrap().success());
    assert!(replay.status.success(), "{}", describe(&replay));
    assert!(stdout(&replay).contains("invalid (dead letters)       0"), "every line a record: {}", describe(&replay));
    assert!(!dir.path().join("-").exists(), "no file named -");
    // Vectors on standard output, the summary on standard error.
    let out = run_pulse(["replay", fixture("golden.jsonl").to_str().unwrap(), "--quiet", "--features-out", "-"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(stdout(&out).lines().all(|l| l.starts_with("{\"customer_id\"")), "only vectors: {}", describe(&out));
    assert!(stderr(&out).contains("replay summary"), "{}", describe(&out));
    let out = run_pulse([
        "replay",
        fixture("golden.jsonl").to_str().unwrap(),
        "--quiet",
        "--features-out",
        "-",
        "--dead-letter-out",
        "-",
    ]);
    fails_with(&out, &["only one output"]);
}

#[test]
fn an_input_is_read_by_its_first_bytes_whatever_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let golden = std::fs::read(fixture("golden.jsonl")).unwrap();
    let plain = write_file(dir.path(), "plain.jsonl", &golden);
    let misnamed = write_file(dir.path(), "plain-named.jsonl.zst", &golden);
    let want = run_pulse(["replay", plain.to_str().unwrap(), "--quiet", "--features-out", "-"]);
    let got = run_pulse(["replay", misnamed.to_str().unwrap(), "--quiet", "--features-out", "-"]);
    assert!(got.status.success(), "{}", describe(&got));
    assert!(!want.stdout.is_empty() && got.stdout == want.stdout, "the same vectors");
}

#[test]
fn a_failed_run_leaves_every_output_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let golden = std::fs::read(fixture("golden.jsonl")).unwrap();
    let zst = zstd::encode_all(&golden.repeat(20)[..], 3).unwrap();
    let cut = write_file(dir.path(), "cut.jsonl.zst", &zst[..zst.len() / 2]);
    let vectors = write_file(dir.path(), "v.jsonl", b"an earlier run's vectors\n");
    let out = run_pulse(["replay", cut.to_str().unwrap(), "--quiet", "--features-out", vectors.to_str().unwrap()]);
    fails_with(&out, &["cut.jsonl.zst"]);
    assert_eq!(std::fs::read(&vectors).unwrap(), b"an earlier run's vectors\n", "not replaced by a cut-off file");
    assert_eq!(partials(dir.path()), Vec::<String>::new(), "nothing left behind");
}

/// The same when the capture is cut off after many batches went through:
/// the engine has applied them and the files had lines, but the run failed,
/// so none of its files replaces what was there (they used to be put in
/// place with what the run had reached).
#[test]
fn a_run_failing_midway_keeps_none_of_its_files() {
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole.jsonl.zst");
    let made =
        run_pulse(["generate", "--customers", "300", "--days", "30", "--quiet", "--out", whole.to_str().unwrap()]);
    assert!(made.status.success(), "{}", describe(&made));
    let zst = std::fs::read(&whole).unwrap();
    let cut = write_file(dir.path(), "cut.jsonl.zst", &zst[..zst.len() / 2]);
    let names = ["v.jsonl", "d.jsonl", "p.jsonl", "a.jsonl", "m.jsonl", "s.json"];
    let before = |name: &str| format!("an earlier run's {name}\n");
    let paths: Vec<_> = names.iter().map(|n| write_file(dir.path(), n, before(n).as_bytes())).collect();
    let p = |i: usize| paths[i].to_str().unwrap();
    let out = run_pulse([
        "replay",
        cut.to_str().unwrap(),
        "--quiet",
        "--features-out",
        p(0),
        "--dead-letter-out",
        p(1),
        "--score",
        "--predictions-out",
        p(2),
        "--alerts-out",
        p(3),
        "--metrics-out",
        p(4),
        "--summary-json",
        p(5),
    ]);
    // Cut after thousands of lines: batches were applied and written first.
    fails_with(&out, &["cut.jsonl.zst after line", "incomplete frame"]);
    for (name, path) in names.iter().zip(&paths) {
        assert_eq!(std::fs::read_to_string(path).unwrap(), before(name), "{name} replaced by a cut-off file");
    }
    assert_eq!(partials(dir.path()), Vec::<String>::new(), "nothing left behind");
}

/// Standard output closed before the summary is printed (`pulse ... | head
/// -1` after head has gone): the command finishes and exits as its work
/// went, where `println!` panicked with exit 101.
#[test]
fn a_closed_standard_output_is_no_panic() {
    let dir = tempfile::tempdir().unwrap();
    let golden = fixture("golden.jsonl");
    let mut child = Command::new(pulse_bin())
        .args(["replay", golden.to_str().unwrap(), "--quiet", "--features-out"])
        .arg(dir.path().join("v.jsonl"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(!stderr(&out).contains("panicked"), "{}", describe(&out));
    assert!(std::fs::metadata(dir.path().join("v.jsonl")).unwrap().len() > 0, "the work was done");
}

/// An output that is put in place by a rename (a snapshot, a report, a
/// dataset) is refused when its path is a device: `--snapshot-out
/// /dev/null`, as root, replaced /dev/null with the snapshot. The streamed
/// outputs still write into one (`--features-out /dev/null`).
#[test]
fn a_renamed_output_is_never_a_device() {
    let golden = fixture("golden.jsonl");
    let out = run_pulse(["replay", golden.to_str().unwrap(), "--quiet", "--features-out", "/dev/null"]);
    assert!(out.status.success(), "{}", describe(&out));
    let args =
        ["replay", golden.to_str().unwrap(), "--quiet", "--features-out", "/dev/null", "--snapshot-out", "/dev/null"];
    fails_with(&run_pulse(args), &["/dev/null is not a regular file (a device or a FIFO)"]);
}

/// Standard error closed while the data goes to standard output (`pulse
/// replay C --features-out - 2>&- | ...`, or a reader of both that has
/// gone): the summary, which then goes to standard error, is dropped, and
/// the command exits as its work went, where `eprintln!` panicked with exit
/// 101 after writing every vector. A failing command still exits 1.
#[test]
fn a_closed_standard_error_is_no_panic() {
    let golden = fixture("golden.jsonl");
    let run = |args: &[&str], close_stderr: bool| {
        let mut child =
            Command::new(pulse_bin()).args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        if close_stderr {
            drop(child.stderr.take());
        }
        child.wait_with_output().unwrap()
    };
    let replay = ["replay", golden.to_str().unwrap(), "--quiet", "--features-out", "-"];
    let open = run(&replay, false);
    let out = run(&replay, true);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(!out.stdout.is_empty(), "vectors written");
    assert_eq!(out.stdout, open.stdout, "the same vectors as with standard error open");
    let out = run(&["replay", "/nonexistent/capture.jsonl", "--features-out", "-"], true);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
}

/// `pulse run` and `pulse capture` resume their files from the checkpoint:
/// `-` (which wrote a file named `-`) and a checkpoint nowhere writable
/// (found at the first checkpoint, after records no checkpoint covered)
/// are refused before any AWS call.
#[test]
fn live_outputs_are_files_and_the_checkpoint_is_writable() {
    let dir = tempfile::tempdir().unwrap();
    let stream = ["--source", "dynamodb-streams", "--table", "events", "--idle-exit-s", "1"];
    let out = run_pulse(["capture"].into_iter().chain(stream).chain(["--out", "-"]));
    fails_with(&out, &["--out -", "standard output cannot be"]);
    let features = dir.path().join("f.jsonl");
    let out = run_pulse(["run"].into_iter().chain(stream).chain(["--features-out", "-"]));
    fails_with(&out, &["--features-out -"]);
    // A folder that cannot be made (/proc takes none).
    let checkpoint = Path::new("/proc/pulse-no-such-folder/ck.json").to_owned();
    let out = run_pulse(["run"].into_iter().chain(stream).chain([
        "--features-out",
        features.to_str().unwrap(),
        "--checkpoint",
        checkpoint.to_str().unwrap(),
    ]));
    fails_with(&out, &["--checkpoint", "cannot write a file in"]);
    assert!(!features.exists() && !dir.path().join("-").exists(), "nothing written");
}

/// The demo and generate, as a user got them wrong: each refused before any
/// work, with the flag named, or done as asked.
#[test]
fn demo_and_generate_check_their_outputs_first() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    let small = ["--customers", "30", "--days", "3", "--quiet"];
    // Two outputs on standard output: the truth's CSV went into the capture.
    let out = run_pulse(["generate", "--out", "-", "--truth-out", "-"].into_iter().chain(small));
    fails_with(&out, &["only one output can go there"]);
    std::fs::write(p("a-file"), b"kept\n").unwrap();
    let out_dir = p("a-file");
    let out = run_pulse(["demo", "--out-dir", out_dir.as_str()].into_iter().chain(small));
    fails_with(&out, &["--out-dir", "is not a directory"]);
    assert!(stdout(&out).is_empty(), "no banner before the error: {}", describe(&out));
    let snapshot = format!("{out_dir}/s.bin");
    let (d, z) = (p("d"), p("s.bin.zst"));
    let latest = format!("{d}/predictions.jsonl");
    for (flag, value, says) in [
        ("--snapshot-out", snapshot.as_str(), "is not a directory"),
        ("--snapshot-out", z.as_str(), "written uncompressed"),
        ("--linger-s", "1e16", "from 0 to"),
        // The demo's own names: --predictions-history for every prediction,
        // --predictions-out (here its default) for the latest ones.
        ("--predictions-history", latest.as_str(), "--predictions-history"),
    ] {
        let out = run_pulse(["demo", "--out-dir", d.as_str(), flag, value].into_iter().chain(small));
        fails_with(&out, &[says]);
    }
    assert_eq!(std::fs::read(p("a-file")).unwrap(), b"kept\n");
    // Data on standard output: only the data there, the report on stderr.
    let out = run_pulse(["demo", "--out-dir", d.as_str(), "--features-out", "-"].into_iter().chain(small));
    assert!(out.status.success(), "{}", describe(&out));
    let text = stdout(&out);
    assert!(!text.is_empty() && text.lines().all(|l| l.starts_with("{\"customer_id\"")), "{}", describe(&out));
    assert!(stderr(&out).contains("summary"), "{}", describe(&out));
}

/// A demo with no records writes no fleet snapshot (one was dated
/// i64::MIN).
#[test]
fn a_run_without_records_dates_no_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let out =
        run_pulse(["demo", "--customers", "1", "--days", "1", "--quiet", "--out-dir", dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", describe(&out));
    let metrics = std::fs::read_to_string(dir.path().join("fleet-metrics.jsonl")).unwrap();
    assert!(!metrics.contains("-9223372036854775808"), "{metrics}");
}

#[test]
fn an_interrupted_generate_removes_what_it_had_written() {
    let dir = tempfile::tempdir().unwrap();
    let out = write_file(dir.path(), "capture.jsonl", b"an earlier capture\n");
    // Big enough to be running when the signal comes.
    let mut child = Command::new(pulse_bin())
        .args(["generate", "--customers", "300000", "--days", "60", "--quiet", "--out"])
        .arg(&out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Until the run has started writing (its temporary file exists).
    let started = std::time::Instant::now();
    while partials(dir.path()).is_empty() {
        assert!(started.elapsed().as_secs() < 60, "the run never started writing");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let kill = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let status = child.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted"), "{err}");
    assert_eq!(std::fs::read(&out).unwrap(), b"an earlier capture\n", "the old capture stays");
    assert_eq!(partials(dir.path()), Vec::<String>::new(), "the temporary file is removed");
}

#[test]
fn dataset_reads_the_capture_as_the_replay_does() {
    let dir = tempfile::tempdir().unwrap();
    let generate = |name: &str| {
        let path = dir.path().join(name);
        let out = run_pulse(
            ["generate", "--customers", "60", "--days", "60", "--seed", "4", "--quiet", "--out"]
                .iter()
                .map(|s| s.to_string())
                .chain([path.to_str().unwrap().to_owned()]),
        );
        assert!(out.status.success(), "{}", describe(&out));
        std::fs::read_to_string(&path).unwrap()
    };
    let capture = generate("c.jsonl");
    let lines: Vec<&str> = capture.lines().collect();
    // One record padded past the line limit, and the same capture without it.
    let at = lines.len() / 2;
    let mut padded: serde_json::Value = serde_json::from_str(lines[at]).unwrap();
    padded["dynamodb"]["NewImage"]["pad"] = serde_json::json!({ "S": "x".repeat(2 << 20) });
    let with_long: Vec<String> =
        lines.iter().enumerate().map(|(i, l)| if i == at { padded.to_string() } else { l.to_string() }).collect();
    let without: Vec<&str> = lines.iter().enumerate().filter(|(i, _)| *i != at).map(|(_, l)| *l).collect();
    let long = write_file(dir.path(), "long.jsonl", (with_long.join("\n") + "\n").as_bytes());
    let short = write_file(dir.path(), "short.jsonl", (without.join("\n") + "\n").as_bytes());
    let rows = |capture: &Path, out: &str| {
        let out = dir.path().join(out);
        let run =
            run_pulse(["dataset".as_ref(), capture.as_os_str(), "--quiet".as_ref(), "--out".as_ref(), out.as_os_str()]);
        assert!(run.status.success(), "{}", describe(&run));
        (std::fs::read(&out).unwrap(), stdout(&run))
    };
    let (long_rows, long_said) = rows(&long, "long.csv");
    let (short_rows, short_said) = rows(&short, "short.csv");
    assert!(long_rows == short_rows, "the long line feeds no row, as it feeds no vector in a replay");
    assert!(long_said.contains("dead letters (invalid records) 1:"), "{long_said}");
    assert!(!short_said.contains("dead letters"), "{short_said}");
    // 60 days: rows from day 21 to day 30, too few for an out-of-time split.
    assert!(long_said.contains("no out-of-time split"), "{long_said}");
    // A record that is no event, dated in 2100, moves the stream's clock
    // (and every timer) 74 years: said, not silently labelled.
    let mut far: serde_json::Value = serde_json::from_str(lines[lines.len() - 1]).unwrap();
    far["dynamodb"]["ApproximateCreationDateTime"] = serde_json::json!(4_102_444_800u64);
    far["dynamodb"]["NewImage"]["entity_type"] = serde_json::json!({ "S": "prediction" });
    let ahead = write_file(dir.path(), "ahead.jsonl", format!("{capture}{far}\n").as_bytes());
    let out =
        run_pulse(["dataset", ahead.to_str().unwrap(), "--quiet", "--out", dir.path().join("a.csv").to_str().unwrap()]);
    assert!(stderr(&out).contains("clock jumps") && stderr(&out).contains("2100-01-01"), "{}", describe(&out));
    let out =
        run_pulse(["dataset", short.to_str().unwrap(), "--quiet", "--out", dir.path().join("s.csv").to_str().unwrap()]);
    assert!(!stderr(&out).contains("clock jumps"), "{}", describe(&out));
}

#[test]
fn a_replay_of_nothing_or_of_no_capture_warns() {
    let dir = tempfile::tempdir().unwrap();
    let empty = write_file(dir.path(), "empty.jsonl", b"\n\n");
    let out = run_pulse(["replay", empty.to_str().unwrap(), "--quiet"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(stderr(&out).contains("holds no records"), "{}", describe(&out));
    let not_a_capture = write_file(dir.path(), "vectors.jsonl", b"{\"customer_id\":\"a\",\"features\":[]}\n");
    let out = run_pulse(["replay", not_a_capture.to_str().unwrap(), "--quiet"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(stderr(&out).contains("every record") && stderr(&out).contains("dead letter"), "{}", describe(&out));
    let out = run_pulse(["replay", fixture("golden.jsonl").to_str().unwrap(), "--quiet"]);
    assert!(!stderr(&out).contains("warning"), "{}", describe(&out));
}

#[test]
fn more_customers_than_memory_holds_is_an_error_not_an_abort() {
    // 100 million customers' simulations need ~53 GB; under a 2 GB limit
    // the reservation fails at once.
    let out = Command::new("sh")
        .arg("-c")
        .arg(r#"ulimit -v 2000000 && exec "$0" generate --customers 100000000 --days 3 --quiet --out /dev/null"#)
        .arg(pulse_bin())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(stderr(&out).contains("cannot hold 100000000 customers"), "{}", describe(&out));
    assert!(!stderr(&out).contains("backtrace"), "{}", describe(&out));
}

/// The in-process load test's bill is priced from what it measured, and
/// from what was asked: a run that measured nothing is not priced (it
/// printed $inf and NaN), an events rate that is no rate is refused (-1
/// priced 27,183 silent customers of 10,000), the scoring options apply
/// (the bill was always the embedded model's with reasons), and what it
/// cannot do is refused (--table was ignored).
#[test]
fn the_in_process_bill_is_of_what_was_measured_and_asked() {
    let out = run_pulse(["loadtest", "--in-process", "--customers", "1", "--days", "1"]);
    assert!(out.status.success(), "{}", describe(&out));
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(said.contains("cost: not priced: this run measured 0 records"), "{said}");
    assert!(!said.contains("inf") && !said.contains("NaN"), "{said}");
    let small = ["loadtest", "--in-process", "--customers", "30", "--days", "10"];
    for (more, words) in [
        (["--cost-events-per-customer-day=-1"], "--cost-events-per-customer-day must be a number >= 0"),
        (["--cost-events-per-customer-day=NaN"], "--cost-events-per-customer-day must be a number >= 0"),
        (["--table=t"], "--in-process calls no AWS service"),
    ] {
        fails_with(&run_pulse(small.iter().copied().chain(more)), &[words]);
    }
    let dir = tempfile::tempdir().unwrap();
    let summary = dir.path().join("summary.json");
    let out = run_pulse(small.iter().copied().chain(["--no-reasons", "--summary-json", summary.to_str().unwrap()]));
    assert!(out.status.success(), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("reasons off, one thread"), "{}", describe(&out));
    // The bill says which of its rates the run measured.
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("the bill's rates: records/s and scoring time this run's"), "{said}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("extrapolated from"), "{}", describe(&out));
    // The summary file carries the bill printed, fleet by fleet.
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    let fleets = json["bill"]["fleets"].as_array().unwrap_or_else(|| panic!("no bill in {json}"));
    assert_eq!(fleets.len(), 3, "{json}");
    for fleet in fleets {
        let (customers, pulse, rescan) = (
            fleet["customers"].as_f64().unwrap(),
            fleet["pulse"]["dollars_per_day"].as_f64().unwrap(),
            fleet["rescan"]["dollars_per_day"].as_f64().unwrap(),
        );
        let line = format!("{customers:>9.0} customers  pulse ${pulse:>10.2}/day   5-min rescan ${rescan:>10.2}/day");
        assert!(said.contains(&line), "{line} not printed: {said}");
        let lines: f64 =
            fleet["pulse"]["lines"].as_array().unwrap().iter().map(|l| l["dollars"].as_f64().unwrap()).sum();
        assert!((lines - pulse).abs() < 1e-9 * pulse.max(1.0), "{fleet}");
    }
    assert_eq!(json["bill"]["records_per_core_second"], json["pulse_records_per_s"], "the run's rate: {json}");
}
