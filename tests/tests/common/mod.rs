//! Helpers shared by the end-to-end tests: paths, the `pulse` binary, library
//! replays to temporary files, the decode → engine step driven line by line,
//! and feature comparison.
//!
//! Each test file says `mod common;`; not every file uses every helper. The
//! naive reference model of the contract is the operators' own
//! (`operators/tests/support/`), included by path as [`support`].
//!
//! # Running the `pulse` binary
//!
//! `env!("CARGO_BIN_EXE_pulse")` exists only in the tests of the package that
//! owns the binary (`pipeline/`), and `assert_cmd`'s `Command::cargo_bin` only
//! looks next to the test executable without building anything, so with
//! `cargo test -p pulse-e2e` it would find a stale binary or none. Instead
//! [`pulse_bin`] asks cargo itself, once per test binary:
//! `cargo build -p pulse --bin pulse --message-format=json` (with `--release`
//! when the tests were built without debug assertions), and takes the path
//! from the `compiler-artifact` message's `executable`. That is always the
//! current source, honours `CARGO_TARGET_DIR` and any target-dir setting, and
//! costs a no-op build when the binary is fresh. Cargo does not hold its build
//! lock while tests run, so the nested build cannot deadlock.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, OnceLock};

use pulse_model::EmbeddedModel;
use pulse_operators::{Engine, EngineConfig, TimerPolicy};
use pulse_runtime::process::{Processor, Produced};
use pulse_runtime::replay::{replay, Input, Outputs, ReplayConfig, ReplaySummary};
use pulse_schemas::capture::decode_line;
use pulse_schemas::{FeatureVector, Source, DAY_MS};
use serde_json::{json, Value};

/// The operators' naive reference model of §2–§4 and its test helpers, shared
/// as they are (not copied): `support::reference::Reference`,
/// `support::assert_features_close`, `support::feature_diffs`.
#[path = "../../../operators/tests/support/mod.rs"]
pub mod support;

/// 2026-01-05T00:00:00Z, the base time of the hand-written fixtures.
pub const T0: i64 = 1_767_571_200_000;
/// One day in ms.
pub const D: i64 = DAY_MS;
/// One hour in ms.
pub const H: i64 = 3_600_000;
/// One minute in ms.
pub const MIN: i64 = 60_000;

/// The workspace root (the parent of this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the crate lives in the workspace").to_path_buf()
}

/// A file of `tests/fixtures/`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(name)
}

/// The `pulse` binary, built by cargo from the current source (see the module docs).
pub fn pulse_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| build_bin("pulse", "pulse"))
}

/// The Lambda function's `bootstrap` binary, built as [`pulse_bin`] is.
pub fn bootstrap_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| build_bin("pulse-lambda", "bootstrap"))
}

/// Builds binary `bin` of `package` (release when the tests are) and returns its path.
fn build_bin(package: &str, bin: &str) -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace_root()).args([
        "build",
        "-p",
        package,
        "--bin",
        bin,
        "--message-format=json-render-diagnostics",
    ]);
    if !cfg!(debug_assertions) {
        cmd.arg("--release");
    }
    let out = cmd.output().expect("cargo runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "cargo build -p {package} failed:\n{}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == bin)
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .unwrap_or_else(|| panic!("cargo reported no executable for the {bin} binary:\n{stdout}"))
}

/// Points a child `pulse`'s AWS calls at the local server.
pub fn aws_env(cmd: &mut Command) -> &mut Command {
    cmd.env("AWS_ENDPOINT_URL", pulse_e2e::aws_endpoint()).env("AWS_REGION", "us-east-1");
    for key in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
        if std::env::var_os(key).is_none() {
            cmd.env(key, "testing");
        }
    }
    cmd
}

/// Runs `pulse` with `args` and returns what it did.
pub fn run_pulse<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    Command::new(pulse_bin()).args(args).output().expect("the pulse binary runs")
}

/// stdout and stderr of a run, for failure messages.
pub fn describe(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The files a library replay wrote, read back.
#[derive(Debug)]
pub struct Replayed {
    /// The job's summary.
    pub summary: ReplaySummary,
    /// The features file, byte for byte.
    pub features_bytes: Vec<u8>,
    /// The dead-letters file, byte for byte.
    pub dead_bytes: Vec<u8>,
}

impl Replayed {
    /// The vectors, parsed.
    pub fn vectors(&self) -> Vec<FeatureVector> {
        parse_vectors(&self.features_bytes)
    }

    /// The dead letters, parsed.
    pub fn dead_letters(&self) -> Vec<Value> {
        parse_json_lines(&self.dead_bytes)
    }
}

/// Replays a capture file through `pulse_runtime::replay::replay` (no scoring) with
/// the given timers, writing features and dead letters to a temporary
/// directory, and reads them back.
pub fn replay_capture(capture: &Path, timers: TimerPolicy) -> Replayed {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let features = dir.path().join("features.jsonl");
    let dead = dir.path().join("dead.jsonl");
    let config = ReplayConfig {
        input: Input::Capture(capture.to_path_buf()),
        outputs: Outputs { features: Some(features.clone()), dead_letters: Some(dead.clone()), ..Outputs::default() },
        engine: EngineConfig { timers },
        scoring: None,
        progress: None,
        workers: std::num::NonZeroUsize::MIN,
        reasons_threads: pulse_runtime::replay::DEFAULT_REASONS_THREADS,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let summary = runtime
        .block_on(replay::<EmbeddedModel>(config, None))
        .unwrap_or_else(|e| panic!("replay of {} failed: {e:#}", capture.display()));
    Replayed {
        summary,
        features_bytes: std::fs::read(&features).expect("the features file"),
        dead_bytes: std::fs::read(&dead).expect("the dead-letters file"),
    }
}

/// Writes bytes to a new file in `dir`.
pub fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("writes a temporary file");
    path
}

/// Feature vectors of a JSON Lines file.
pub fn parse_vectors(bytes: &[u8]) -> Vec<FeatureVector> {
    json_lines(bytes).map(|l| serde_json::from_slice(l).expect("a feature vector line")).collect()
}

/// Every JSON line of a file.
pub fn parse_json_lines(bytes: &[u8]) -> Vec<Value> {
    json_lines(bytes).map(|l| serde_json::from_slice(l).expect("a JSON line")).collect()
}

/// The non-empty lines of a file.
pub fn json_lines(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty())
}

/// The capture's lines as the replay numbers them (1-based, blank lines included).
pub fn capture_lines(bytes: &[u8]) -> Vec<&[u8]> {
    let mut lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    if lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    lines
}

/// The decode → engine step of the replay, driven one line at a time so a
/// test can look at the engine between lines.
#[derive(Debug)]
pub struct Driver {
    /// The engine, shared with the processor.
    pub engine: Arc<Engine>,
    processor: Processor,
}

impl Driver {
    /// A fresh engine with the given timers.
    pub fn new(timers: TimerPolicy) -> Driver {
        let engine = Arc::new(Engine::new(EngineConfig { timers }));
        Driver { processor: Processor::new(engine.clone()), engine }
    }

    /// Processes one line (numbered `line_no` in vector sources), as the
    /// replay does: blank lines are skipped.
    pub fn line(&mut self, line_no: u64, line: &[u8]) -> Produced {
        let mut out = Produced::default();
        if !line.iter().all(u8::is_ascii_whitespace) {
            let source = Source { line: Some(line_no), ..Source::default() };
            self.processor.process(decode_line(line), source, line, &mut out);
        }
        out
    }

    /// Processes lines numbered from 1 and returns everything produced.
    pub fn lines<'a>(&mut self, lines: impl IntoIterator<Item = &'a [u8]>) -> Produced {
        let mut all = Produced::default();
        for (i, line) in lines.into_iter().enumerate() {
            let out = self.line(i as u64 + 1, line);
            all.vectors.extend(out.vectors);
            all.dead.extend(out.dead);
        }
        all
    }
}

/// One capture line: a DynamoDB Streams `INSERT` record (AWS's JSON shape) of
/// an event item with `ts` (ms), created at `created_ms` (written in seconds,
/// as AWS does), with the event type's own attributes as DynamoDB values,
/// e.g. `("tutor_id", json!({"S": "tut_1"}))`.
pub fn insert_line(
    customer: &str,
    id: &str,
    event_type: &str,
    ts: i64,
    created_ms: i64,
    attrs: &[(&str, Value)],
) -> String {
    let sk = format!("EVT#{ts:013}#{id}");
    let mut image = serde_json::json!({
        "customer_id": {"S": customer},
        "sk": {"S": sk},
        "entity_type": {"S": "event"},
        "event_id": {"S": id},
        "event_type": {"S": event_type},
        "ts": {"N": ts.to_string()},
    });
    for (name, value) in attrs {
        image[*name] = value.clone();
    }
    let created: Value =
        if created_ms % 1000 == 0 { (created_ms / 1000).into() } else { (created_ms as f64 / 1000.0).into() };
    serde_json::json!({
        "eventID": format!("{customer}-{id}"),
        "eventName": "INSERT",
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {
            "ApproximateCreationDateTime": created,
            "Keys": {"customer_id": {"S": customer}, "sk": {"S": sk}},
            "NewImage": image,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/marketplace-events/stream/2026-01-05T00:00:00.000",
    })
    .to_string()
}

/// A `login` line, created a minute after its `ts`.
pub fn login_line(customer: &str, id: &str, ts: i64) -> String {
    insert_line(customer, id, "login", ts, ts + MIN, &[])
}

/// The attributes of a `session_completed` with `tutor` and `minutes`.
pub fn session_attrs(tutor: &str, minutes: f64) -> [(&'static str, Value); 2] {
    [("tutor_id", serde_json::json!({"S": tutor})), ("duration_min", serde_json::json!({"N": minutes.to_string()}))]
}

/// A `session_completed` line, created a minute after its `ts`.
pub fn session_line(customer: &str, id: &str, tutor: &str, minutes: f64, ts: i64) -> String {
    insert_line(customer, id, "session_completed", ts, ts + MIN, &session_attrs(tutor, minutes))
}

/// A capture line (DynamoDB Streams shape) as DynamoDB writes it to Kinesis,
/// and its partition key.
pub fn kinesis_payload(line: &str) -> (String, Vec<u8>) {
    let record: Value = serde_json::from_str(line).unwrap();
    let d = &record["dynamodb"];
    let seconds = d["ApproximateCreationDateTime"].as_f64().unwrap();
    let mut dynamodb = json!({
        "ApproximateCreationDateTime": (seconds * 1000.0).round() as i64,
        "Keys": d["Keys"],
        "SizeBytes": d["SizeBytes"],
    });
    for image in ["NewImage", "OldImage"] {
        if !d[image].is_null() {
            dynamodb[image] = d[image].clone();
        }
    }
    let payload = json!({
        "awsRegion": "us-east-1",
        "eventID": record["eventID"],
        "eventName": record["eventName"],
        "userIdentity": record.get("userIdentity").cloned().unwrap_or(Value::Null),
        "recordFormat": "application/json",
        "tableName": "marketplace-events",
        "dynamodb": dynamodb,
        "eventSource": "aws:dynamodb",
    });
    let key = d["Keys"]["customer_id"]["S"].as_str().unwrap_or("none").to_owned();
    (key, serde_json::to_vec(&payload).unwrap())
}
