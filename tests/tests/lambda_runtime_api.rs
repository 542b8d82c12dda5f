//! The `bootstrap` binary through the Lambda Runtime API, as Lambda runs it:
//! `cargo lambda watch` serves the Runtime API locally and runs the function,
//! `cargo lambda invoke` sends it a real DynamoDB Streams event file, and the
//! function reads and writes the local DynamoDB (moto).
//!
//! Proves the wiring the direct tests cannot: settings from the environment,
//! the SDK clients pointed at `AWS_ENDPOINT_URL`, the payload told apart (a
//! batch, a scheduled event), the partial batch response on the wire, the
//! vectors and dead letters on the function's stdout, the due items written.
//!
//! Needs `cargo-lambda` on PATH (`scripts/local-aws.sh start` puts it there;
//! CI gets it through `scripts/test.sh`). The first invocation may build the
//! binary; every wait has a deadline, and a failure shows the watch's log.

mod lambda_support;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue as Av;
use lambda_support::{event_item, get, lambda_record, put};
use pulse_aws::due::DEFAULT_DUE_INDEX;
use pulse_aws::{setup, AwsArgs};
use pulse_e2e::{aws_endpoint, unique_name};
use serde_json::{json, Value};

const MIN: i64 = 60_000;
const H: i64 = 3_600_000;
const D: i64 = 86_400_000;

/// `cargo-lambda` from PATH.
fn cargo_lambda() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).map(|dir| dir.join("cargo-lambda")).find(|p| p.is_file()).unwrap_or_else(|| {
        panic!(
            "cargo-lambda is not on PATH: run the tests with scripts/test.sh, or `eval \"$(scripts/local-aws.sh start)\"` \
             first (it installs cargo-lambda {} into target/local-aws/venv/bin)",
            "1.9.2"
        )
    })
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `cargo lambda watch`, in its own process group, stopped (the whole group,
/// the function included) when dropped.
struct Watch {
    child: Child,
    log: PathBuf,
}

impl Watch {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        // The function runs in a process group of its own: note it before the
        // watch goes, to stop it too if the watch leaves it behind.
        let pid = self.child.id();
        let function: Vec<u32> = children_of(pid);
        let signal = |sig: &str, target: String| {
            let _ = Command::new("kill").args(["-s", sig, "--", &target]).stderr(Stdio::null()).status();
        };
        signal("TERM", format!("-{pid}"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && !matches!(self.child.try_wait(), Ok(Some(_))) {
            std::thread::sleep(Duration::from_millis(50));
        }
        if !matches!(self.child.try_wait(), Ok(Some(_))) {
            signal("KILL", format!("-{pid}"));
            let _ = self.child.wait();
        }
        for child in function {
            if Path::new(&format!("/proc/{child}")).exists() {
                signal("KILL", child.to_string());
            }
        }
    }
}

/// The processes whose parent is `pid` (from /proc).
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|child| {
            std::fs::read_to_string(format!("/proc/{child}/stat")).ok().is_some_and(|stat| {
                // pid (comm) state ppid ...: the fields after the last ')'.
                stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok())
                    == Some(pid)
            })
        })
        .collect()
}

/// Runs `command` to completion within `limit`, returning its stdout, or
/// panics with what it printed and the watch's log.
fn run_within(mut command: Command, limit: Duration, watch: &Watch, what: &str) -> String {
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {limit:?}\n--- watch log ---\n{}", watch.log());
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let (mut out, mut err) = (String::new(), String::new());
    child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(status.success(), "{what} failed ({status}):\n{out}\n{err}\n--- watch log ---\n{}", watch.log());
    out
}

/// Polls `check` on the watch's log until it holds or `limit` passes.
fn await_log(watch: &Watch, limit: Duration, what: &str, check: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let log = watch.log();
        if check(&log) {
            return log;
        }
        assert!(Instant::now() < deadline, "{what} did not appear within {limit:?}\n--- watch log ---\n{log}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_bootstrap_answers_through_the_runtime_api_and_writes_its_output() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let endpoint = aws_endpoint();
    let client = rt.block_on(AwsArgs::local(&endpoint).load());
    let client = aws_sdk_dynamodb::Client::new(&client);
    let table = unique_name("lambda-runtime");
    rt.block_on(setup::ensure_events_table(&client, &table)).expect("events table");
    rt.block_on(setup::ensure_due_index(&client, &table, DEFAULT_DUE_INDEX)).expect("due index");

    // Two customers' events in the table, and the event file Lambda would send.
    let t = 1_767_600_000_000;
    let items = [
        event_item("stu_rt1", "s1", t, "session_completed", &[("tutor_id", "S", "tut_1"), ("duration_min", "N", "45")]),
        event_item("stu_rt1", "l1", t + H, "login", &[]),
        event_item("stu_rt2", "p1", t + 2 * H, "payment", &[("amount", "N", "20"), ("status", "S", "failed")]),
    ];
    let invalid = event_item("stu_rt2", "bad", t + 3 * H, "ib_call", &[("sentiment", "S", "furious")]);
    let mut records = Vec::new();
    for (i, item) in items.iter().chain([&invalid]).enumerate() {
        rt.block_on(put(&client, &table, item));
        let ts: i64 = item["ts"].as_n().unwrap().parse().unwrap();
        records.push(lambda_record("INSERT", ts + MIN, i as u64 + 1, Some(item), None));
    }
    let dir = tempfile::tempdir().unwrap();
    let event_file = dir.path().join("event.json");
    std::fs::write(&event_file, serde_json::to_vec(&json!({ "Records": records })).unwrap()).unwrap();
    let scheduled_file = dir.path().join("scheduled.json");
    let scheduled = json!({
        "version": "0", "id": "1", "detail-type": "Scheduled Event", "source": "aws.events",
        "account": "123456789012", "region": "us-east-1", "resources": [], "detail": {},
        "time": chrono::DateTime::from_timestamp_millis(t + 2 * D).unwrap().to_rfc3339(),
    });
    std::fs::write(&scheduled_file, serde_json::to_vec(&scheduled).unwrap()).unwrap();

    // Build the function first, so the watch starts it at once.
    let build = Command::new(env!("CARGO"))
        .args(["build", "-p", "pulse-lambda", "--bin", "bootstrap"])
        .current_dir(workspace_root())
        .status()
        .expect("cargo build");
    assert!(build.success(), "cargo build -p pulse-lambda --bin bootstrap failed");

    let port = free_port().to_string();
    let log = dir.path().join("watch.log");
    let log_file = std::fs::File::create(&log).unwrap();
    let env_vars = format!(
        "TABLE_NAME={table},DUE_INDEX={DEFAULT_DUE_INDEX},AWS_ENDPOINT_URL={endpoint},AWS_REGION=us-east-1,\
         AWS_ACCESS_KEY_ID=testing,AWS_SECRET_ACCESS_KEY=testing,RUST_LOG=info,LOG_VECTORS=1"
    );
    let child = {
        use std::os::unix::process::CommandExt as _;
        Command::new(cargo_lambda())
            .args(["lambda", "watch", "--ignore-changes", "-A", "127.0.0.1", "-P", &port])
            .args(["-p", "pulse-lambda", "--bin", "bootstrap", "--env-var", &env_vars])
            .current_dir(workspace_root())
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .process_group(0)
            .spawn()
            .expect("cargo lambda watch starts")
    };
    let watch = Watch { child, log };
    await_log(&watch, Duration::from_secs(60), "the Runtime API", |l| l.contains("starting Runtime server"));

    let invoke = |file: &Path| {
        let mut command = Command::new(cargo_lambda());
        command
            .args(["lambda", "invoke", "-A", "127.0.0.1", "-P", &port, "--data-file"])
            .arg(file)
            .arg("bootstrap")
            .current_dir(workspace_root());
        command
    };

    // A batch: the partial batch response, the vectors and the dead letter on stdout.
    let answer = run_within(invoke(&event_file), Duration::from_secs(300), &watch, "cargo lambda invoke (batch)");
    let answer: Value = serde_json::from_str(answer.trim()).unwrap_or_else(|e| panic!("{e}: {answer}"));
    assert_eq!(answer, json!({"batchItemFailures": []}));
    let log = await_log(&watch, Duration::from_secs(30), "the batch's output lines", |l| {
        l.contains(r#""code":"not_allowed""#) && l.contains("stu_rt2")
    });
    let lines: Vec<Value> = log.lines().filter_map(|l| serde_json::from_str::<Value>(l.trim()).ok()).collect();
    let vectors: Vec<&Value> = lines.iter().filter(|v| v.get("features").is_some()).collect();
    let customers: Vec<&str> = vectors.iter().map(|v| v["customer_id"].as_str().unwrap()).collect();
    assert_eq!(customers, ["stu_rt1", "stu_rt1", "stu_rt2"], "{log}");
    assert!(vectors.iter().all(|v| v["features"].as_array().unwrap().len() == 46));
    assert_eq!(lines.iter().filter(|v| v.get("code").is_some()).count(), 1);

    // The due items, in the local DynamoDB.
    for c in ["stu_rt1", "stu_rt2"] {
        let item = rt.block_on(get(&client, &table, c, "DUE"));
        assert!(item.is_some(), "no due item for {c}\n--- watch log ---\n{}", watch.log());
    }

    // Scored with the embedded model: a prediction item per customer, as of
    // its last vector, and the fleet metrics as an Embedded Metric Format line.
    for (c, as_of) in [("stu_rt1", &vectors[1]["as_of"]), ("stu_rt2", &vectors[2]["as_of"])] {
        let item = rt
            .block_on(get(&client, &table, c, "PRED#latest"))
            .unwrap_or_else(|| panic!("no prediction for {c}\n--- watch log ---\n{}", watch.log()));
        assert_eq!(item.get("as_of"), Some(&Av::N(as_of.to_string())), "{c}: {item:?}");
        assert_eq!(item.get("served_by"), Some(&Av::S("embedded".into())), "{c}: {item:?}");
    }
    let log = await_log(&watch, Duration::from_secs(30), "an EMF metrics line", |l| l.contains("CloudWatchMetrics"));
    assert!(log.contains("HighChurnRiskCount"), "{log}");

    // A scheduled event two days later: both customers are due and rescored.
    let answer =
        run_within(invoke(&scheduled_file), Duration::from_secs(120), &watch, "cargo lambda invoke (scheduled)");
    let report: Value = serde_json::from_str(answer.trim()).unwrap_or_else(|e| panic!("{e}: {answer}"));
    assert_eq!(report["customers"], json!(["stu_rt1", "stu_rt2"]), "{report}");
    assert!(report["vectors"].as_u64().unwrap() >= 2, "{report}");
}
