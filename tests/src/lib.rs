//! End-to-end tests of pulse across its crates; this library is empty on purpose.
//!
//! The tests live in `tests/tests/*.rs`, one file per area (`<area>_<topic>.rs`),
//! each opening with a `//!` that says what it proves:
//!
//! * `replay_golden.rs`: hand-written captures (`tests/fixtures/*.jsonl`) replayed
//!   through `pulse::replay::replay`, checked against hand-computed vectors and
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
//!
//! Shared helpers are in `tests/tests/common/mod.rs`; the naive reference model
//! is `operators/tests/support/reference.rs`, included by path.
