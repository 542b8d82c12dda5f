//! `pulse run --hydrate` against the local AWS server (moto): a consumer that
//! starts at LATEST on a table already holding months of events loads the
//! customers it meets from the table, and emits the vectors a replay of the
//! whole stream (history and new events) emits.
//!
//! `a_run_at_latest_with_hydrate_emits_the_vectors_of_a_replay_of_the_whole_history`:
//! two customers get months of history (an oldest login, a support call and
//! payments long ago, a month of sessions, ratings and replies); then two
//! `pulse run --start latest --clock stream` processes start, one with
//! `--hydrate`, one without, and once both have their shard caught up, new
//! events come: sessions, a login, a correction of a rating from the history
//! (a MODIFY), the retraction of a reply from the history (a REMOVE), and a
//! customer with no history. The hydrated run's vectors equal, all 46
//! features bit for bit, the vectors the same records get in a replay of a
//! capture of the whole stream; the run without `--hydrate` differs on the
//! customers with history (so the flag is what makes them equal), and agrees
//! on the customer without. The data avoids the documented exceptions of
//! `pulse_aws::hydrate` (no retracted oldest event, no TTL, no invalid items, no
//! late events). The summary counts the customers hydrated and items read.
//!
//! The new events are written in one BatchWriteItem while the consumers wait
//! 1.5 s between polls of their caught-up shard, so they arrive in one page:
//! were a customer's new events split over two pages, hydrating before the
//! first would read the second's events from the table ahead of their records
//! (the third exception of `pulse_aws::hydrate`: those records then count as
//! duplicates).

mod common;
mod lambda_support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{AttributeValue as Av, DeleteRequest, PutRequest, WriteRequest};
use common::{aws_env, describe, pulse_bin, replay_capture, run_pulse, D, H, MIN};
use lambda_support::{event_item, put};
use pulse_aws::{setup, AwsArgs};
use pulse_e2e::{aws_endpoint, unique_name};
use pulse_operators::TimerPolicy;
use pulse_schemas::{FeatureVector, Trigger};

type Item = HashMap<String, Av>;

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// A running `pulse run` and its stderr, line by line.
struct LiveRun {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl LiveRun {
    /// `pulse run --start latest --clock stream` over `table`, writing vectors
    /// to `features` and the summary to `summary`; `extra` flags added.
    fn start(table: &str, features: &Path, summary: &Path, extra: &[&str]) -> LiveRun {
        let mut cmd = Command::new(pulse_bin());
        cmd.args(["run", "--source", "dynamodb-streams", "--table", table, "--start", "latest", "--clock", "stream"])
            // A caught-up shard is polled every 1.5 s: the new events, written
            // at once just after, come in one page (see the test's doc).
            .args(["--idle-exit-s", "4", "--poll-min-ms", "1500", "--poll-max-ms", "1500"])
            .arg("--features-out")
            .arg(features)
            .arg("--summary-json")
            .arg(summary)
            .args(extra)
            .env("RUST_LOG", "pulse=debug")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = aws_env(&mut cmd).spawn().expect("pulse starts");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        LiveRun { child, lines, seen: Vec::new() }
    }

    /// Waits for a stderr line containing `needle`.
    fn wait_for(&mut self, needle: &str, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = line.contains(needle);
                    self.seen.push(line);
                    if found {
                        return;
                    }
                }
                Err(_) => panic!("no {needle:?} from pulse run within {within:?}:\n{}", self.seen.join("\n")),
            }
        }
    }

    /// Waits for the run to exit successfully (it stops on its idle exit).
    fn finish(mut self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                self.seen.extend(self.lines.try_iter());
                assert!(status.success(), "pulse run failed ({status}):\n{}", self.seen.join("\n"));
                return;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("pulse run did not stop within {within:?}:\n{}", self.seen.join("\n"));
            }
            // Keep the pipe drained while waiting.
            if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(50)) {
                self.seen.push(line);
            }
        }
    }
}

fn event_vectors(path: &Path) -> Vec<FeatureVector> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    common::parse_vectors(&bytes).into_iter().filter(|v| v.trigger == Trigger::Event).collect()
}

fn same_bits(a: &FeatureVector, b: &FeatureVector) -> bool {
    a.customer_id == b.customer_id
        && a.as_of == b.as_of
        && a.features.iter().zip(b.features.iter()).all(|(x, y)| x.to_bits() == y.to_bits())
}

/// Months of history for `c`, oldest first, ending a day before `now`.
fn history(c: &str, now: i64) -> Vec<Item> {
    let session = |id: &str, ts: i64, tutor: &str, minutes: &str| {
        event_item(c, id, ts, "session_completed", &[("tutor_id", "S", tutor), ("duration_min", "N", minutes)])
    };
    let pay = |id: &str, ts: i64, status: &str| {
        event_item(c, id, ts, "payment", &[("amount", "N", "42.5"), ("status", "S", status)])
    };
    let mut items = vec![
        event_item(c, "first", now - 300 * D, "login", &[]),
        event_item(c, "call", now - 200 * D, "ib_call", &[("sentiment", "S", "negative")]),
        pay("pay", now - 100 * D, "succeeded"),
        pay("pay_failed", now - 95 * D, "failed"),
        session("s_old", now - 60 * D, "tut_9", "60"),
        event_item(c, "login_old", now - 45 * D, "login", &[]),
    ];
    for i in 0..14 {
        let ts = now - 28 * D + i * 2 * D;
        let tutor = if i % 4 == 3 { "tut_2" } else { "tut_1" };
        items.push(session(&format!("s{i}"), ts, tutor, &format!("{}", 30 + i)));
        items.push(rating(c, &format!("r{i}"), ts + 10 * MIN, tutor, if i % 3 == 0 { "2" } else { "4.5" }));
        if i % 4 == 0 {
            items.push(event_item(
                c,
                &format!("m{i}"),
                ts + H,
                "message_reply",
                &[("from", "S", "tutor"), ("response_minutes", "N", "17")],
            ));
        }
    }
    items.push(event_item(
        c,
        "cancel",
        now - 3 * D,
        "session_cancelled",
        &[("tutor_id", "S", "tut_1"), ("cancelled_by", "S", "student")],
    ));
    items
}

fn rating(c: &str, id: &str, ts: i64, tutor: &str, value: &str) -> Item {
    event_item(c, id, ts, "session_rated", &[("tutor_id", "S", tutor), ("rating", "N", value)])
}

#[test]
fn a_run_at_latest_with_hydrate_emits_the_vectors_of_a_replay_of_the_whole_history() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = rt.block_on(async { aws_sdk_dynamodb::Client::new(&AwsArgs::local(aws_endpoint()).load().await) });
    let table = unique_name("live-hydrate");
    rt.block_on(setup::ensure_events_table(&client, &table)).expect("events table");
    let now = now_ms();
    let (old_a, old_b) = (history("stu_a", now), history("stu_b", now - 5 * D));
    rt.block_on(async {
        for item in old_a.iter().chain(&old_b) {
            put(&client, &table, item).await;
        }
    });

    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let mut hydrated = LiveRun::start(&table, &path("hydrated.jsonl"), &path("hydrated.json"), &["--hydrate"]);
    let mut cold = LiveRun::start(&table, &path("cold.jsonl"), &path("cold.json"), &[]);
    // Both hold a LATEST iterator once their shard is caught up: what is
    // written from now on is what they read.
    hydrated.wait_for("shard caught up", Duration::from_secs(60));
    cold.wait_for("shard caught up", Duration::from_secs(60));

    let r4 = old_a.iter().find(|i| i["event_id"].as_s().unwrap() == "r4").unwrap();
    let r4_ts: i64 = r4["ts"].as_n().unwrap().parse().unwrap();
    let m8 = old_a.iter().find(|i| i["event_id"].as_s().unwrap() == "m8").unwrap().clone();
    let session = |c: &str, id: &str, ts: i64| {
        event_item(c, id, ts, "session_completed", &[("tutor_id", "S", "tut_1"), ("duration_min", "N", "45")])
    };
    let put_request = |item: Item| {
        WriteRequest::builder().put_request(PutRequest::builder().set_item(Some(item)).build().unwrap()).build()
    };
    let mut m8_key = Item::new();
    m8_key.insert("customer_id".into(), Av::S("stu_a".into()));
    m8_key.insert("sk".into(), m8["sk"].clone());
    let writes = vec![
        put_request(session("stu_a", "new_s", now - 30 * MIN)),
        put_request(rating("stu_a", "new_r", now - 20 * MIN, "tut_1", "3")),
        // A correction of a rating from the history (MODIFY) ...
        put_request(rating("stu_a", "r4", r4_ts, "tut_1", "5")),
        // ... and the retraction of a reply from it (REMOVE).
        WriteRequest::builder().delete_request(DeleteRequest::builder().set_key(Some(m8_key)).build().unwrap()).build(),
        put_request(event_item("stu_b", "new_l", now - 10 * MIN, "login", &[])),
        put_request(session("stu_b", "new_s", now - 5 * MIN)),
        put_request(event_item("stu_new", "l1", now - 5 * MIN, "login", &[])),
    ];
    let written = rt.block_on(client.batch_write_item().request_items(&table, writes).send()).expect("BatchWriteItem");
    assert!(written.unprocessed_items().is_none_or(|u| u.is_empty()), "{written:?}");
    hydrated.finish(Duration::from_secs(60));
    cold.finish(Duration::from_secs(60));

    // The reference: a replay of a capture of the whole stream.
    let capture = path("capture.jsonl");
    let mut args: Vec<std::ffi::OsString> =
        ["capture", "--source", "dynamodb-streams", "--table", &table].iter().map(Into::into).collect();
    args.extend(["--idle-exit-s", "1", "--poll-max-ms", "100", "--out"].iter().map(Into::into));
    args.push(capture.clone().into());
    let out = {
        let mut cmd = Command::new(pulse_bin());
        aws_env(cmd.args(&args)).output().expect("pulse capture runs")
    };
    assert!(out.status.success(), "pulse capture failed:\n{}", describe(&out));
    let replayed = replay_capture(&capture, TimerPolicy::default());
    assert_eq!(replayed.summary.records as usize, old_a.len() + old_b.len() + 7, "every write is in the stream");
    // Each reference vector under the sequence number of its record.
    let capture_bytes = std::fs::read(&capture).unwrap();
    let sequence: Vec<String> = common::capture_lines(&capture_bytes)
        .iter()
        .map(|l| {
            let record: serde_json::Value = serde_json::from_slice(l).expect("a JSON capture line");
            record["dynamodb"]["SequenceNumber"].as_str().expect("a sequence number").to_owned()
        })
        .collect();
    let reference: HashMap<String, FeatureVector> = replayed
        .vectors()
        .into_iter()
        .filter(|v| v.trigger == Trigger::Event)
        .map(|v| (sequence[v.source.line.expect("a replay vector's line") as usize - 1].clone(), v))
        .collect();
    let of = |v: &FeatureVector| -> &FeatureVector {
        let seq = v.source.sequence_number.as_deref().expect("a live vector's sequence number");
        reference.get(seq).unwrap_or_else(|| panic!("the replay has no vector for record {seq}: {v:?}"))
    };

    let ours = event_vectors(&path("hydrated.jsonl"));
    fn customers(vs: &[FeatureVector]) -> Vec<&str> {
        let mut c: Vec<&str> = vs.iter().map(|v| v.customer_id.as_str()).collect();
        c.sort_unstable();
        c.dedup();
        c
    }
    assert_eq!(customers(&ours), ["stu_a", "stu_b", "stu_new"], "{ours:?}");
    assert_eq!(ours.len(), 7, "one vector per new record");
    for mine in &ours {
        let theirs = of(mine);
        assert!(
            same_bits(mine, theirs),
            "hydrated run != replay of the whole history for {} at {}:\n{:?}\n{:?}",
            mine.customer_id.as_str(),
            mine.as_of,
            mine.features,
            theirs.features
        );
    }

    // Without --hydrate, the customers with history start from nothing.
    let cold_vectors = event_vectors(&path("cold.jsonl"));
    assert_eq!(customers(&cold_vectors), ["stu_a", "stu_b", "stu_new"]);
    for cold in &cold_vectors {
        let with_history = cold.customer_id.as_str() != "stu_new";
        assert_eq!(
            !same_bits(cold, of(cold)),
            with_history,
            "{}: differs iff it has history",
            cold.customer_id.as_str()
        );
    }

    let summary = |name: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(path(name)).unwrap()).expect("the summary JSON")
    };
    let (h, c) = (summary("hydrated.json"), summary("cold.json"));
    assert_eq!(h["hydrated"]["customers"], 3, "stu_a, stu_b and stu_new were read once each: {h:#}");
    let items = h["hydrated"]["items_read"].as_u64().unwrap();
    // The newest-first walk also meets the page's own items (skipped), and the
    // oldest-first Query reads each history's first item once more.
    let most = (old_a.len() + old_b.len() + 7 + 2) as u64;
    assert!(items >= 30 && items <= most, "{items} items read, at most {most} expected");
    assert_eq!(h["hydrated"]["invalid_items"], 0);
    assert!(c["hydrated"].is_null(), "no hydration without the flag: {c:#}");

    // --hydrate needs to know the table.
    let out = run_pulse(["run", "--source", "kinesis", "--stream", "nope", "--hydrate", "--idle-exit-s", "0"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--hydrate-table"), "{}", describe(&out));
}
