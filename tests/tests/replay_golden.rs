//! Golden replay: a small hand-written capture (`tests/fixtures/golden.jsonl`,
//! AWS DynamoDB Streams records, one a line) through `pulse_runtime::replay::replay`,
//! checked against vectors and dead letters computed by hand.
//!
//! It proves, end to end through the file reader, the decoder, the engine and
//! the writers, that: an event exactly at `T − 7d` is outside `W_7` (and one
//! at `T − 14d` outside `W_14`); a redelivered record, a TTL removal, a
//! non-event item and a late record emit nothing; a `MODIFY` corrects and a
//! user `REMOVE` retracts (each one vector as of the customer clock); the
//! primary tutor's ties go to the later latest session, then to the smaller
//! `tutor_id`; future events and invalid items become dead letters with the
//! right `code`, a reason naming the field, and the whole original record
//! (`record`, or `record_text` for a line that is not JSON); and the vectors
//! come out in exactly this order with these `(customer_id, as_of, trigger)`.
//! Every emitted vector also equals the naive reference model on all 46
//! features.
//!
//! The fixture, line by line (`T0` = 2026-01-05T00:00:00Z, `D` = one day; each
//! record's `ApproximateCreationDateTime` is a minute or so after its `ts`):
//!
//! | line | record | expected |
//! |---|---|---|
//! | 1 | `stu_win` login `e_a0` at T0−7D | vector |
//! | 2 | `stu_win` session `e_a1` (tut_1, 60 min) at T0 | vector |
//! | 3 | `stu_dup` rated `e_b1` (tut_2, 2) at T0+1D | vector |
//! | 4 | line 3 again, byte for byte (a redelivery) | nothing |
//! | 5 | `MODIFY` `e_b1` rating 2 → 4.5 | vector |
//! | 6 | `stu_dup` login `e_b2` at T0+2D | vector |
//! | 7 | user `REMOVE` of `e_b2` | vector |
//! | 8 | TTL `REMOVE` of `e_b1` | nothing |
//! | 9 | `PRED#latest` item of `stu_dup` (not an event) | nothing |
//! | 10–13 | `stu_tie`: sessions tut_y, tut_x at the same ts T0+5D; ratings tut_x 4, tut_y 2 | 4 vectors |
//! | 14 | `stu_win` session `e_a2` (tut_1, 30 min) at T0+7D | vector |
//! | 15–19 | `stu_tutor`: session tut_a @20D, ratings tut_a 5 @20D+1h, tut_b 3 @20D+2h, session tut_b @21D, session tut_a @20D+12h (out of order) | 5 vectors |
//! | 20 | `stu_late` payment 25.5 succeeded at T0+40D | vector |
//! | 21 | `stu_late` login at T0+10D = C−30D (late) | nothing |
//! | 22 | `stu_late` login at T0+10D+1ms (not late) | vector |
//! | 23 | `stu_future` login, ts = creation time + 1 h exactly | vector |
//! | 24 | `stu_future` login, ts = creation time + 1 h + 1 ms | dead: `future_event` |
//! | 25 | session with `duration_min` 0 | dead: `out_of_range` |
//! | 26 | `event_type` `teleport` | dead: `unknown_event_type` |
//! | 27 | `ts` 1771113600000.5 | dead: `bad_timestamp` |
//! | 28 | `MODIFY` of `e_d1` whose NewImage lacks `ts` | dead: `missing_attribute` (and `e_d1` stays held) |
//! | 29 | not JSON | dead: `malformed_record`, `record_text` |
//! | 30 | blank | skipped |
//! | 31 | `INSERT` without `ApproximateCreationDateTime` | dead: `missing_creation_time` |

mod common;

use common::support::reference::Reference;
use common::support::{assert_feature, assert_features_close};
use common::{capture_lines, fixture, replay_capture, Driver, D, H, T0};
use pulse_operators::TimerPolicy;
use pulse_schemas::capture::decode_line;
use pulse_schemas::features::idx::*;
use pulse_schemas::{FeatureVector, Trigger};
use serde_json::Value;

/// One millisecond as a fraction of a day.
const MS_DAYS: f64 = 1.0 / D as f64;

/// `(line, customer_id, as_of)` of every vector, in order; all `trigger: event`.
const EXPECTED: [(u64, &str, i64); 19] = [
    (1, "stu_win", T0 - 7 * D),
    (2, "stu_win", T0),
    (3, "stu_dup", T0 + D),
    // line 4: the redelivery, nothing
    (5, "stu_dup", T0 + D),
    (6, "stu_dup", T0 + 2 * D),
    (7, "stu_dup", T0 + 2 * D),
    // lines 8 (TTL) and 9 (prediction item): nothing
    (10, "stu_tie", T0 + 5 * D),
    (11, "stu_tie", T0 + 5 * D),
    (12, "stu_tie", T0 + 5 * D),
    (13, "stu_tie", T0 + 5 * D),
    (14, "stu_win", T0 + 7 * D),
    (15, "stu_tutor", T0 + 20 * D),
    (16, "stu_tutor", T0 + 20 * D + H),
    (17, "stu_tutor", T0 + 20 * D + 2 * H),
    (18, "stu_tutor", T0 + 21 * D),
    // line 19's event is older than C: the vector is still as of C
    (19, "stu_tutor", T0 + 21 * D),
    (20, "stu_late", T0 + 40 * D),
    // line 21: late, nothing
    (22, "stu_late", T0 + 40 * D),
    (23, "stu_future", T0 + 41 * D + H),
];

/// `(line, code, a fragment of the reason)` of every dead letter, in order.
const DEAD: [(u64, &str, &str); 7] = [
    (24, "future_event", "more than 1 hour after"),
    (25, "out_of_range", "NewImage.duration_min = 0 is out of range (0 < x <= 600)"),
    (26, "unknown_event_type", "NewImage.event_type \"teleport\""),
    (27, "bad_timestamp", "NewImage.ts \"1771113600000.5\" must be a whole number"),
    (28, "missing_attribute", "NewImage.ts is missing"),
    (29, "malformed_record", "malformed record"),
    (31, "missing_creation_time", "ApproximateCreationDateTime is missing"),
];

fn golden_bytes() -> Vec<u8> {
    std::fs::read(fixture("golden.jsonl")).expect("the golden fixture")
}

fn golden_replay() -> (Vec<FeatureVector>, Vec<Value>, pulse_runtime::replay::ReplaySummary) {
    let run = replay_capture(&fixture("golden.jsonl"), TimerPolicy::Off);
    (run.vectors(), run.dead_letters(), run.summary)
}

/// The vector emitted on `line`.
fn on_line(vectors: &[FeatureVector], line: u64) -> &FeatureVector {
    vectors.iter().find(|v| v.source.line == Some(line)).unwrap_or_else(|| panic!("no vector on line {line}"))
}

#[test]
fn golden_sequence_of_vectors() {
    let (vectors, _, _) = golden_replay();
    let got: Vec<(u64, &str, i64, Trigger)> = vectors
        .iter()
        .map(|v| (v.source.line.expect("a capture vector names its line"), v.customer_id.as_str(), v.as_of, v.trigger))
        .collect();
    let want: Vec<(u64, &str, i64, Trigger)> = EXPECTED.iter().map(|&(l, c, t)| (l, c, t, Trigger::Event)).collect();
    assert_eq!(got, want);
    assert!(vectors.iter().all(|v| v.schema == "features-v1"));
}

#[test]
fn golden_window_boundaries() {
    let (v, _, _) = golden_replay();
    let f = &on_line(&v, 1).features;
    // T = T0−7D; the only event is the login at T.
    assert_feature(f, LOGINS_7D, 1.0, "line 1");
    assert_feature(f, LOGINS_30D, 1.0, "line 1");
    assert_feature(f, DAYS_SINCE_LAST_LOGIN, 0.0, "line 1");
    assert_feature(f, DAYS_SINCE_LAST_SESSION, 365.0, "line 1: no session ever");
    assert_feature(f, TENURE_DAYS, 0.0, "line 1");
    assert_feature(f, SESSION_TREND_RATIO, 1.0, "line 1: (0 + 1) / (0 * 7 / 30 + 1)");
    assert_feature(f, PAYMENT_SUCCESS_RATE_7D, 1.0, "line 1: no payment → 1");
    assert_feature(f, DAYS_SINCE_TUTOR_SWITCH, 30.0, "line 1: no switch → 30");

    let f = &on_line(&v, 2).features;
    // T = T0. W_7 = (T0−7D, T0]: the login at T0−7D = T−7d is OUT, the session at T0 in.
    assert_feature(f, LOGINS_7D, 0.0, "line 2: login exactly at T−7d is outside W_7");
    assert_feature(f, LOGINS_30D, 1.0, "line 2: but inside W_30");
    assert_feature(f, SESSIONS_7D, 1.0, "line 2");
    assert_feature(f, SESSION_MINUTES_7D, 60.0, "line 2");
    // velocity = sessions_7d − sessions in (T−14d, T−7d] = 1 − 0
    assert_feature(f, SESSION_VELOCITY_CHANGE, 1.0, "line 2");
    // trend = (1 + 1) / (1 * 7 / 30 + 1) = 2 / (37 / 30) = 60 / 37
    assert_feature(f, SESSION_TREND_RATIO, 60.0 / 37.0, "line 2");
    assert_feature(f, SESSIONS_PER_WEEK_30D, 7.0 / 30.0, "line 2");
    assert_feature(f, DAYS_SINCE_LAST_LOGIN, 7.0, "line 2: (T0 − (T0−7D)) / D");
    // W_14 = (T0−14D, T0]: days T0−7D and T0
    assert_feature(f, ACTIVE_DAYS_14D, 2.0, "line 2");
    assert_feature(f, TENURE_DAYS, 7.0, "line 2");

    let f = &on_line(&v, 14).features;
    // T = T0+7D. Held: login @T0−7D, session 60 @T0, session 30 @T0+7D.
    // W_7 = (T0, T0+7D]: only the session at T0+7D (T0 = T−7d is out).
    assert_feature(f, SESSIONS_7D, 1.0, "line 14: the session at T−7d is outside W_7");
    assert_feature(f, SESSION_MINUTES_7D, 30.0, "line 14");
    // W_14 = (T0−7D, T0+7D]: both sessions; the login at T0−7D = T−14d is out.
    assert_feature(f, SESSIONS_14D, 2.0, "line 14");
    assert_feature(f, ACTIVE_DAYS_14D, 2.0, "line 14: the login exactly at T−14d is outside W_14");
    // W_30 = (T0−23D, T0+7D]: everything.
    assert_feature(f, SESSIONS_30D, 2.0, "line 14");
    assert_feature(f, LOGINS_30D, 1.0, "line 14");
    assert_feature(f, LOGINS_7D, 0.0, "line 14");
    assert_feature(f, SESSION_MINUTES_30D, 90.0, "line 14: 60 + 30");
    assert_feature(f, AVG_SESSION_MINUTES_30D, 45.0, "line 14: 90 / 2");
    // velocity = 1 − (sessions in (T0−7D, T0] = the one at T0) = 0
    assert_feature(f, SESSION_VELOCITY_CHANGE, 0.0, "line 14");
    // trend = (1 + 1) / (2 * 7 / 30 + 1) = 2 / (44 / 30) = 15 / 11
    assert_feature(f, SESSION_TREND_RATIO, 15.0 / 11.0, "line 14");
    assert_feature(f, DAYS_SINCE_LAST_LOGIN, 14.0, "line 14");
    assert_feature(f, DAYS_SINCE_LAST_SESSION, 0.0, "line 14");
    assert_feature(f, TENURE_DAYS, 14.0, "line 14");
    assert_feature(f, PRIMARY_TUTOR_SHARE_30D, 1.0, "line 14");
}

#[test]
fn golden_duplicate_correction_removal_ttl_non_event() {
    let (v, _, _) = golden_replay();
    // Line 3: one rating of 2.
    let f = &on_line(&v, 3).features;
    assert_feature(f, AVG_RATING_7D, 2.0, "line 3");
    assert_feature(f, AVG_RATING_30D, 2.0, "line 3");
    assert_feature(f, LOW_RATINGS_30D, 1.0, "line 3: 2 <= 2");
    assert_feature(f, RATINGS_COUNT_30D, 1.0, "line 3");
    assert_feature(f, RATING_TREND, 0.0, "line 3: 2 − 2");
    assert_feature(f, PRIMARY_TUTOR_AVG_RATING_30D, 0.0, "line 3: no session, no primary tutor");
    // Line 4 (the same record again) emitted nothing: checked by the sequence.
    // Line 5: the correction replaced the 2 by 4.5; still one rating, as of C = T0+1D.
    let f = &on_line(&v, 5).features;
    assert_feature(f, AVG_RATING_7D, 4.5, "line 5");
    assert_feature(f, AVG_RATING_30D, 4.5, "line 5");
    assert_feature(f, RATINGS_COUNT_30D, 1.0, "line 5");
    assert_feature(f, LOW_RATINGS_30D, 0.0, "line 5");
    // Line 6: a login at T0+2D.
    let f = &on_line(&v, 6).features;
    assert_feature(f, LOGINS_7D, 1.0, "line 6");
    assert_feature(f, DAYS_SINCE_LAST_LOGIN, 0.0, "line 6");
    assert_feature(f, ACTIVE_DAYS_14D, 2.0, "line 6: days T0+1D and T0+2D");
    assert_feature(f, TENURE_DAYS, 1.0, "line 6: (T0+2D − (T0+1D)) / D");
    // Line 7: the user REMOVE retracts the login; C stays T0+2D; tenure keeps
    // the first accepted ts; the rating (4.5) is still held.
    let f = &on_line(&v, 7).features;
    assert_feature(f, LOGINS_7D, 0.0, "line 7");
    assert_feature(f, LOGINS_30D, 0.0, "line 7");
    assert_feature(f, DAYS_SINCE_LAST_LOGIN, 365.0, "line 7: no login held → 365");
    assert_feature(f, ACTIVE_DAYS_14D, 1.0, "line 7");
    assert_feature(f, TENURE_DAYS, 1.0, "line 7");
    assert_feature(f, AVG_RATING_7D, 4.5, "line 7");
    // Lines 8 (TTL) and 9 (prediction item) emitted nothing: checked by the sequence.
}

#[test]
fn golden_primary_tutor_tie_breaks() {
    let (v, _, _) = golden_replay();
    // stu_tie: one session each for tut_y (e_f1) and tut_x (e_f2), both at T0+5D.
    let f = &on_line(&v, 11).features;
    assert_feature(f, DISTINCT_TUTORS_30D, 2.0, "line 11");
    assert_feature(f, PRIMARY_TUTOR_SHARE_30D, 0.5, "line 11: 1 / 2");
    assert_feature(f, PRIMARY_TUTOR_SHARE_7D, 0.5, "line 11");
    // Ordered by (ts, event_id): e_f1 (tut_y), e_f2 (tut_x) → one switch at T0+5D.
    assert_feature(f, TUTOR_SWITCHES_30D, 1.0, "line 11");
    assert_feature(f, TUTOR_SWITCH_RATE_30D, 1.0, "line 11: 1 / (2 − 1)");
    assert_feature(f, DAYS_SINCE_TUTOR_SWITCH, 0.0, "line 11");
    assert_feature(f, SESSION_MINUTES_30D, 90.0, "line 11");
    // Counts tie 1–1 and the latest sessions tie (same ts): the smaller id,
    // tut_x, is primary, so its rating 4 is the primary's (tut_y's is 2).
    let f = &on_line(&v, 12).features;
    assert_feature(f, PRIMARY_TUTOR_AVG_RATING_30D, 4.0, "line 12: tut_x rated 4");
    let f = &on_line(&v, 13).features;
    assert_feature(f, PRIMARY_TUTOR_AVG_RATING_30D, 4.0, "line 13: still tut_x, not tut_y's 2");
    assert_feature(f, AVG_RATING_30D, 3.0, "line 13: (4 + 2) / 2");
    assert_feature(f, LOW_RATINGS_30D, 1.0, "line 13");

    // stu_tutor.
    let f = &on_line(&v, 16).features;
    assert_feature(f, PRIMARY_TUTOR_AVG_RATING_30D, 5.0, "line 16: tut_a rated 5");
    assert_feature(f, DAYS_SINCE_LAST_SESSION, 1.0 / 24.0, "line 16: an hour");
    let f = &on_line(&v, 17).features;
    assert_feature(f, PRIMARY_TUTOR_AVG_RATING_30D, 5.0, "line 17: tut_b's rating is not the primary's");
    assert_feature(f, AVG_RATING_30D, 4.0, "line 17: (5 + 3) / 2");
    assert_feature(f, DISTINCT_TUTORS_30D, 1.0, "line 17: ratings are not sessions");
    // Line 18: tut_a 1 session (latest T0+20D), tut_b 1 session (latest
    // T0+21D): a tie on counts goes to the later latest session, tut_b,
    // although "tut_a" < "tut_b".
    let f = &on_line(&v, 18).features;
    assert_feature(f, PRIMARY_TUTOR_AVG_RATING_30D, 3.0, "line 18: tut_b is primary");
    assert_feature(f, PRIMARY_TUTOR_SHARE_30D, 0.5, "line 18");
    assert_feature(f, PRIMARY_TUTOR_SHARE_7D, 0.5, "line 18: W_7 = (T0+14D, T0+21D] holds both");
    assert_feature(f, TUTOR_SWITCHES_30D, 1.0, "line 18: a → b");
    assert_feature(f, DAYS_SINCE_TUTOR_SWITCH, 0.0, "line 18: the switch is at T");
    // Line 19: a tut_a session at T0+20D+12h, arriving after the T0+21D one.
    // tut_a has 2, tut_b 1 → tut_a. Sessions in (ts, id) order: a @20D,
    // a @20D+12h, b @21D → one switch, at T0+21D.
    let f = &on_line(&v, 19).features;
    assert_feature(f, PRIMARY_TUTOR_AVG_RATING_30D, 5.0, "line 19: tut_a is primary again");
    assert_feature(f, PRIMARY_TUTOR_SHARE_30D, 2.0 / 3.0, "line 19");
    assert_feature(f, PRIMARY_TUTOR_SHARE_7D, 2.0 / 3.0, "line 19");
    assert_feature(f, TUTOR_SWITCHES_30D, 1.0, "line 19");
    assert_feature(f, TUTOR_SWITCH_RATE_30D, 0.5, "line 19: 1 / (3 − 1)");
    assert_feature(f, SESSIONS_30D, 3.0, "line 19");
    assert_feature(f, SESSION_MINUTES_30D, 120.0, "line 19: 50 + 40 + 30");
    assert_feature(f, AVG_SESSION_MINUTES_30D, 40.0, "line 19");
    assert_feature(f, DAYS_SINCE_TUTOR_SWITCH, 0.0, "line 19");
}

#[test]
fn golden_late_record_and_horizon_edge() {
    let (v, _, summary) = golden_replay();
    let f = &on_line(&v, 20).features;
    assert_feature(f, PAYMENT_AMOUNT_30D, 25.5, "line 20");
    assert_feature(f, DAYS_SINCE_LAST_PAYMENT, 0.0, "line 20");
    assert_feature(f, PAYMENT_SUCCESS_RATE_30D, 1.0, "line 20");
    // Line 21 (ts = T0+10D = C − 30D) was late: dropped and counted.
    assert_eq!(summary.engine.late_adds, 1);
    // Line 22 (ts = T0+10D+1ms = C − 30D + 1 ms) is held, and in W_30.
    let f = &on_line(&v, 22).features;
    assert_feature(f, LOGINS_30D, 1.0, "line 22");
    assert_feature(f, LOGINS_7D, 0.0, "line 22");
    // days = (T0+40D − (T0+10D+1)) / D = 30 − 1 ms
    assert_feature(f, DAYS_SINCE_LAST_LOGIN, 30.0 - MS_DAYS, "line 22");
    assert_feature(f, TENURE_DAYS, 30.0 - MS_DAYS, "line 22: the login is the first accepted ts");
    assert_feature(f, ACTIVE_DAYS_14D, 1.0, "line 22: only the payment's day is in W_14");
    assert_feature(f, PAYMENT_AMOUNT_30D, 25.5, "line 22");
    // Line 23: ts = creation time + 1 h exactly is not in the future.
    let f = &on_line(&v, 23).features;
    assert_feature(f, LOGINS_7D, 1.0, "line 23");
}

#[test]
fn golden_dead_letters_carry_code_reason_and_whole_record() {
    let (_, dead, summary) = golden_replay();
    let bytes = golden_bytes();
    let lines = capture_lines(&bytes);
    let got: Vec<(u64, &str)> =
        dead.iter().map(|d| (d["source"]["line"].as_u64().unwrap(), d["code"].as_str().unwrap())).collect();
    let want: Vec<(u64, &str)> = DEAD.iter().map(|&(l, c, _)| (l, c)).collect();
    assert_eq!(got, want);
    for (d, &(line, code, reason)) in dead.iter().zip(&DEAD) {
        let text = d["reason"].as_str().unwrap();
        assert!(text.contains(reason), "line {line} ({code}): reason {text:?} should contain {reason:?}");
        let original = std::str::from_utf8(lines[line as usize - 1]).unwrap();
        if code == "malformed_record" {
            assert_eq!(d["record_text"].as_str(), Some(original), "line {line}: the text as read");
            assert!(d.get("record").is_none());
        } else {
            let parsed: Value = serde_json::from_str(original).unwrap();
            assert_eq!(d["record"], parsed, "line {line}: the whole original record");
            assert!(d.get("record_text").is_none());
        }
    }
    // The record is written as read, byte for byte.
    let raw = String::from_utf8(replay_capture(&fixture("golden.jsonl"), TimerPolicy::Off).dead_bytes).unwrap();
    for &(line, code, _) in &DEAD {
        if code != "malformed_record" {
            let original = std::str::from_utf8(lines[line as usize - 1]).unwrap();
            assert!(raw.contains(original), "line {line}: the dead letter holds the record verbatim");
        }
    }
    assert_eq!(summary.invalid_total(), 7);
    for (_, code, _) in DEAD {
        assert_eq!(summary.invalid.get(code), Some(&1), "{code} in {:?}", summary.invalid);
    }
}

#[test]
fn golden_summary_counts() {
    let (_, _, s) = golden_replay();
    assert_eq!(s.lines, 31, "every line, the blank one included");
    assert_eq!(s.records, 30, "the blank line is not a record");
    assert_eq!((s.vectors_event, s.vectors_timer), (19, 0));
    let e = &s.engine;
    assert_eq!(e.records, 23, "the 30 records less 7 dead letters reach the engine");
    assert_eq!(e.duplicates, 1, "line 4");
    assert_eq!(e.late_adds, 1, "line 21");
    assert_eq!(e.late_retractions, 0);
    assert_eq!(e.ttl_expiries, 1, "line 8");
    assert_eq!(e.non_events, 1, "line 9");
    assert_eq!(e.events_retracted, 2, "line 5 (the old rating) and line 7; not line 28's dead MODIFY");
    assert_eq!(e.retractions_not_held, 0);
    // Adds: lines 1, 2, 3, 5, 6, 10–13, 14, 15–19, 20, 22, 23.
    assert_eq!(e.events_added, 18);
    assert_eq!(e.unchanged, 2, "lines 4 and 21");
    assert_eq!(s.state.customers, 6, "stu_win, stu_dup, stu_tie, stu_tutor, stu_late, stu_future");
}

/// Every vector of the replay equals the naive reference model fed the same
/// records, on all 46 features; and after the dead `MODIFY` of line 28 the
/// engine still holds `e_d1`.
#[test]
fn golden_vectors_equal_the_reference_model() {
    let (vectors, _, _) = golden_replay();
    let bytes = golden_bytes();
    let mut reference = Reference::new();
    let mut expected = Vec::new();
    for (i, line) in capture_lines(&bytes).into_iter().enumerate() {
        if let Ok(record) = decode_line(line) {
            if let Some(e) = reference.apply(&record.change) {
                expected.push((i as u64 + 1, e));
            }
        }
    }
    assert_eq!(vectors.len(), expected.len());
    for (v, (line, e)) in vectors.iter().zip(&expected) {
        assert_eq!((v.source.line, v.customer_id.as_str(), v.as_of), (Some(*line), e.customer_id.as_str(), e.as_of));
        assert_features_close(&v.features, &e.features, &format!("line {line}"));
    }

    let mut driver = Driver::new(TimerPolicy::Off);
    driver.lines(capture_lines(&bytes));
    let t = T0 + 41 * D + H;
    let held = driver.engine.features_at("stu_future", t).expect("stu_future is known");
    assert_feature(&held, LOGINS_7D, 1.0, "after the dead MODIFY of line 28, e_d1 is still held");
    assert_features_close(&held, &reference.features_at("stu_future", t).unwrap(), "stu_future at the end");
    assert_eq!(driver.engine.features_at("stu_bad", t), None, "a customer with only dead letters has no state");
}

/// The event vectors do not depend on the timer policy: with daily timers the
/// same 19 event vectors come out, in the same order, with timer vectors
/// (as of their due times) in between.
#[test]
fn golden_event_vectors_do_not_depend_on_timers() {
    let (off, _, _) = golden_replay();
    let on = replay_capture(&fixture("golden.jsonl"), TimerPolicy::default()).vectors();
    let events: Vec<&FeatureVector> = on.iter().filter(|v| v.trigger == Trigger::Event).collect();
    assert_eq!(events.len(), off.len());
    for (a, b) in events.iter().zip(&off) {
        assert_eq!(*a, b);
    }
    assert!(on.iter().any(|v| v.trigger == Trigger::Timer), "41 days of stream time fire timers");
    for v in on.iter().filter(|v| v.trigger == Trigger::Timer) {
        // Each timer is due a whole number of days after a vector of its customer.
        let earlier: Vec<i64> =
            on.iter().filter(|u| u.customer_id == v.customer_id && u.as_of < v.as_of).map(|u| u.as_of).collect();
        let last = earlier.iter().max().expect("a timer follows a vector");
        assert_eq!(v.as_of - last, D, "{} timer at {} after its last vector at {last}", v.customer_id, v.as_of);
    }
}
