//! The `pulse` binary as a long-running consumer of a table's DynamoDB stream
//! on the local AWS server: crashes and shutdowns lose nothing and count
//! nothing twice.
//!
//! * `kill_9_mid_stream_and_restarts_give_the_files_of_an_uninterrupted_run`:
//!   `pulse run` is killed with SIGKILL three times at growing points of the
//!   stream (checkpoints every 50 ms, so some kills land between checkpoints
//!   and some while one is written), restarted each time from its checkpoint,
//!   and finally run until idle. Its features, dead letters and capture are
//!   byte-identical to those of one uninterrupted run over the same table, and
//!   the capture replays (`pulse replay`) to the same vectors.
//! * `sigterm_flushes_checkpoints_and_exits_zero`: SIGTERM stops a caught-up
//!   consumer with exit code 0 and a checkpoint; a restart reads nothing again.
//!
//! What makes runs comparable: `--clock stream` (timers fire on the records'
//! `ApproximateCreationDateTime`, which the server stamped once when each item
//! was written, never on the wall clock), and the local server's single shard
//! per table, so every run applies the same records in the same order.

mod common;
#[path = "common/live.rs"]
mod live;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{describe, parse_vectors, pulse_bin, run_pulse, D};
use live::*;
use pulse_e2e::aws_endpoint;

/// A table holding a hostile synthetic marketplace and a few invalid items;
/// its name and the number of stream records.
fn filled_table(prefix: &str, customers: usize) -> (String, usize) {
    block_on(async {
        let sdk = sdk().await;
        let (table, _) = events_table(&sdk, prefix).await;
        let mut w = TableWriter::new(&sdk, &table);
        let lines = synth_lines(customers, 3, 23, writable_hostility());
        let (first, rest) = lines.split_at(lines.len() / 2);
        w.write_lines(first).await;
        w.put(event_image("stu_bad", "bad_type", "teleport", now_ms() - D, &[])).await;
        w.write_lines(rest).await;
        (table, w.expected.len())
    })
}

struct Files {
    checkpoint: PathBuf,
    features: PathBuf,
    dead: PathBuf,
    capture: PathBuf,
    summary: PathBuf,
}

impl Files {
    fn new(dir: &Path, run: &str) -> Files {
        let p = |s: &str| dir.join(format!("{run}-{s}"));
        Files {
            checkpoint: p("checkpoint"),
            features: p("features.jsonl"),
            dead: p("dead.jsonl"),
            capture: p("capture.jsonl"),
            summary: p("summary.json"),
        }
    }

    fn run_args(&self, table: &str, idle_exit: bool) -> Vec<String> {
        let mut args: Vec<String> = [
            "run",
            "--source",
            "dynamodb-streams",
            "--table",
            table,
            "--endpoint-url",
            &aws_endpoint(),
            "--clock",
            "stream",
            "--checkpoint-interval-ms",
            "50",
            "--get-records-limit",
            "20",
            "--poll-min-ms",
            "20",
            "--poll-max-ms",
            "100",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for (flag, path) in [
            ("--checkpoint", &self.checkpoint),
            ("--features-out", &self.features),
            ("--dead-letter-out", &self.dead),
            ("--capture-out", &self.capture),
            ("--summary-json", &self.summary),
        ] {
            args.push(flag.into());
            args.push(path.display().to_string());
        }
        if idle_exit {
            args.extend(["--idle-exit-s".to_owned(), "1".to_owned()]);
        }
        args
    }

    fn summary(&self) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(&self.summary).expect("the summary")).expect("summary JSON")
    }
}

fn len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// Where in the stream (as a fraction of the uninterrupted run's features)
/// each kill lands: three fixed points, or for a chaos run
/// (`scripts/chaos.sh`: `PULSE_CHAOS_KILLS=N`, `PULSE_CHAOS_SEED`) N random
/// points in (0.02, 0.95), in order.
fn chaos_kill_points() -> Vec<f64> {
    let Some(kills) = std::env::var("PULSE_CHAOS_KILLS").ok().and_then(|n| n.parse::<usize>().ok()) else {
        return vec![0.2, 0.45, 0.7];
    };
    let mut seed: u64 = std::env::var("PULSE_CHAOS_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(1);
    eprintln!("chaos: {kills} kills, seed {seed}");
    // splitmix64: enough randomness for kill points, no dependency.
    let mut next = || {
        seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) as f64 / u64::MAX as f64
    };
    let mut points: Vec<f64> = (0..kills).map(|_| 0.02 + 0.93 * next()).collect();
    points.sort_by(f64::total_cmp);
    points
}

#[test]
fn kill_9_mid_stream_and_restarts_give_the_files_of_an_uninterrupted_run() {
    let (table, records) = filled_table("live-kill", 400);
    let dir = tempfile::tempdir().unwrap();

    let once = Files::new(dir.path(), "once");
    let out = run_pulse(once.run_args(&table, true));
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(once.summary()["totals"]["records"], records as u64);
    let final_len = len(&once.features);
    assert!(final_len > 0);

    let killed = Files::new(dir.path(), "killed");
    let mut mid_stream_kills = 0;
    let kill_points = chaos_kill_points();
    for &fraction in &kill_points {
        let mut child = Command::new(pulse_bin())
            .args(killed.run_args(&table, true))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pulse starts");
        let target = (final_len as f64 * fraction) as u64;
        let deadline = Instant::now() + Duration::from_secs(120);
        while len(&killed.features) < target && child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "the features file never reached {target} bytes");
            std::thread::sleep(Duration::from_millis(2));
        }
        // A chaos run lets a random moment pass more: a kill may land while
        // a checkpoint is written, while a page is applied, or while idle.
        if kill_points.len() > 3 {
            std::thread::sleep(Duration::from_micros((fraction * 1e6) as u64 % 20_000));
        }
        child.kill().expect("SIGKILL"); // std sends SIGKILL on Unix
        let status = child.wait().unwrap();
        if len(&killed.features) < final_len && !status.success() {
            mid_stream_kills += 1;
        }
    }
    let wanted = (kill_points.len() * 2).div_ceil(3);
    assert!(
        mid_stream_kills >= wanted,
        "only {mid_stream_kills} of {} kills landed before the end of the stream",
        kill_points.len()
    );
    eprintln!("{mid_stream_kills} of {} kills landed mid-stream; the outputs are compared next", kill_points.len());

    let out = run_pulse(killed.run_args(&table, true));
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(killed.summary()["totals"]["records"], records as u64, "totals carry across restarts, once each");
    for (a, b) in [(&killed.features, &once.features), (&killed.dead, &once.dead), (&killed.capture, &once.capture)] {
        let (a_bytes, b_bytes) = (std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
        assert!(
            a_bytes == b_bytes,
            "{} ({} bytes) differs from {} ({} bytes)",
            a.display(),
            a_bytes.len(),
            b.display(),
            b_bytes.len()
        );
    }

    // The capture, replayed by the CLI: the vectors of the live run.
    let replayed = dir.path().join("replayed.jsonl");
    let out = run_pulse([
        "replay".as_ref(),
        once.capture.as_os_str(),
        "--features-out".as_ref(),
        replayed.as_os_str(),
        "--quiet".as_ref(),
    ]);
    assert!(out.status.success(), "{}", describe(&out));
    let live_vectors = without_source(parse_vectors(&std::fs::read(&once.features).unwrap()));
    let replay_vectors = without_source(parse_vectors(&std::fs::read(&replayed).unwrap()));
    assert_eq!(replay_vectors.len(), live_vectors.len());
    assert!(replay_vectors == live_vectors, "pulse replay of the capture gives the live run's vectors");
}

#[test]
fn sigterm_flushes_checkpoints_and_exits_zero() {
    let (table, records) = filled_table("live-term", 60);
    let dir = tempfile::tempdir().unwrap();
    let files = Files::new(dir.path(), "term");
    let mut child = Command::new(pulse_bin())
        .args(files.run_args(&table, false))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("pulse starts");
    // Caught up once every record is in the capture (written before any vector).
    let deadline = Instant::now() + Duration::from_secs(120);
    while std::fs::read(&files.capture).map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count()) < records {
        assert!(child.try_wait().unwrap().is_none(), "pulse exited early");
        assert!(Instant::now() < deadline, "pulse did not read the whole stream");
        std::thread::sleep(Duration::from_millis(10));
    }
    let kill = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill runs");
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "SIGTERM is a clean stop: {}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("stopped by") && stdout.contains("signal"), "{stdout}");
    assert_eq!(files.summary()["totals"]["records"], records as u64);
    let features = std::fs::read(&files.features).unwrap();
    assert!(!features.is_empty(), "the vectors were flushed");

    // The checkpoint covers everything: a restart reads nothing again.
    let out = run_pulse(files.run_args(&table, true));
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(files.summary()["records_this_run"], 0);
    assert_eq!(std::fs::read(&files.features).unwrap(), features);
}
