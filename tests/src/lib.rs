//! End-to-end tests of pulse across its crates. The library holds only what
//! every test file shares about the local AWS server.
//!
//! The tests live in `tests/tests/*.rs`, one file per area (`<area>_<topic>.rs`),
//! each opening with a `//!` that says what it proves; some of them (the
//! list is not every file: `ls tests/tests`):
//!
//! * `replay_golden.rs`: hand-written captures (`tests/fixtures/*.jsonl`) replayed
//!   through `pulse_runtime::replay::replay`, checked against hand-computed vectors and
//!   dead letters.
//! * `replay_restore.rs`: a crash without checkpoint (a redelivered prefix, then
//!   the whole stream again) ends in the same state as one clean replay; replays
//!   are byte-identical.
//! * `timers_policy.rs`: timers on stream time, checked against the engine's
//!   `features_at` and a naive recomputation.
//! * `cli_replay.rs`: the `pulse` binary: exit codes, messages, compressed
//!   captures, `generate` determinism, `--help`.
//! * `hostile_stream.rs`: a hostile synthetic marketplace: the engine's counters
//!   against what the generator injected, vectors against the naive reference.
//! * `live_dynamodb.rs`: `pulse run` in-process over a table's DynamoDB stream on
//!   the local server: the vectors of a replay of its capture and of the writes'
//!   own records; invalid items in the dead letters, predictions skipped; stop
//!   and resume from checkpoints equal one uninterrupted run, byte for byte.
//! * `live_kill.rs`: the `pulse` binary killed with SIGKILL mid-stream and
//!   restarted ends with the files of an uninterrupted run; SIGTERM stops cleanly.
//! * `live_kinesis.rs`: Kinesis Data Streams for DynamoDB records (milliseconds,
//!   duplicates, reordering, two shards) against a replay; the wall clock's timers;
//!   `pulse capture --source kinesis`.
//! * `live_leases.rs`: shard leases in DynamoDB: refused while live, taken over
//!   after expiry; a second consumer reads nothing while the first owns the shard.
//! * `output_sagemaker.rs`, `output_predictions.rs`, `output_alerts.rs`,
//!   `output_dead_letters.rs`, `output_metrics.rs`, `output_sink.rs`: the live
//!   outputs (`pulse_aws::output`) against the local AWS server and `pulse serve`:
//!   the SageMaker scorer, the endpoint down then back, conditional prediction
//!   writes, alerts once across a restart, dead letters, metrics, the flags.
//!   Their helpers are in `tests/tests/output_support/mod.rs`.
//! * `e2e_live.rs`: the `pulse` binary as a user runs it (`pulse run --score`)
//!   over a table on the local server: events in; predictions in the table
//!   (the embedded model's scores of each customer's last vector), alerts on
//!   SNS, §6 metrics in CloudWatch, invalid items in the dead-letter queue out;
//!   a SageMaker endpoint down then back (hold: nothing made up, everyone
//!   scored by the endpoint after; fallback: predictions say so).
//! * `live_hydrate.rs`: `pulse run --start latest --hydrate` on a table with
//!   months of history emits the vectors of a replay of the whole stream;
//!   without the flag the customers' vectors differ.
//! * `loadtest_live.rs`: `pulse loadtest`'s producer and the whole command
//!   against the local server: every event written gets its prediction.
//! * `lambda_table.rs`, `lambda_runtime_api.rs`: the Lambda function against
//!   the local DynamoDB: table → stream → handler equals a replay, cold-start
//!   hydration, the scheduled rescoring of due customers, and the `bootstrap`
//!   binary through the Runtime API (`cargo lambda watch`/`invoke`). Their
//!   helpers are in `tests/tests/lambda_support/mod.rs`.
//!
//! Shared helpers are in `tests/tests/common/mod.rs` (and, for the live tests,
//! `tests/tests/common/live.rs`); the naive reference model
//! is `operators/tests/support/reference.rs`, included by path.

/// The local AWS endpoint for the integration tests (moto's server, started by
/// `scripts/test.sh` through `scripts/local-aws.sh`).
///
/// Panics with instructions when it is not set: a test of an AWS integration
/// that silently skipped would prove nothing.
pub fn aws_endpoint() -> String {
    match std::env::var("PULSE_TEST_AWS_ENDPOINT") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "PULSE_TEST_AWS_ENDPOINT is not set: run the tests with scripts/test.sh, which starts a local \
             AWS server (moto) and sets it, or `eval \"$(scripts/local-aws.sh start)\"` first"
        ),
    }
}

/// A name no other test uses (tests share one local server and run in
/// parallel, so each makes its own tables, streams, queues and topics).
pub fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!("{prefix}-{}-{n}-{nanos}", std::process::id())
}
