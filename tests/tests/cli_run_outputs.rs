//! `pulse run --score` checks its outputs before it reads a record, against
//! the local server: a predictions table, an alerts topic or a dead-letter
//! queue named wrong is said at start, naming the flag, where it was found
//! at first use, hours after a deploy on a quiet stream (a review,
//! 2026-12-06); `--no-output-check` skips the check.

mod common;

use std::process::Command;

use common::{aws_env, describe, pulse_bin};

fn run(table: &str, extra: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(pulse_bin());
    cmd.args(["run", "--source", "dynamodb-streams", "--table", table, "--idle-exit-s", "1", "--score"])
        .args(["--metrics", "off"])
        .args(extra);
    aws_env(&mut cmd).output().expect("pulse runs")
}

#[tokio::test]
async fn outputs_named_wrong_are_said_at_start() {
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(pulse_e2e::aws_endpoint())
        .region(aws_config::Region::new("us-east-1"))
        .load()
        .await;
    let table = pulse_e2e::unique_name("outputs");
    pulse_aws::setup::ensure_events_table(&aws_sdk_dynamodb::Client::new(&sdk), &table).await.unwrap();
    let topic = "arn:aws:sns:us-east-1:123456789012:no-such-topic";
    let queue = format!("{}/123456789012/no-such-queue", pulse_e2e::aws_endpoint());
    for (flags, named) in [
        (vec!["--predictions-table", "no-such-table"], "--predictions-table no-such-table"),
        (vec!["--predictions-table", table.as_str(), "--alerts-topic-arn", topic], "--alerts-topic-arn"),
        (
            vec!["--predictions-table", table.as_str(), "--dead-letter-queue-url", queue.as_str()],
            "--dead-letter-queue-url",
        ),
    ] {
        let out = run(&table, &flags);
        assert!(!out.status.success(), "{flags:?}: {}", describe(&out));
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(said.contains(named) && said.contains("--no-output-check"), "{flags:?}: {said}");
    }
    // Right names, or the check skipped: the run goes on (and ends idle).
    let out = run(&table, &["--predictions-table", &table]);
    assert!(out.status.success(), "{}", describe(&out));
    let out = run(&table, &["--predictions-table", &table, "--alerts-topic-arn", topic, "--no-output-check"]);
    assert!(out.status.success(), "skipped, and no alert to publish: {}", describe(&out));
}
