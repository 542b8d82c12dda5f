//! Tests of the whole generator: determinism, record shape, realism (§7) and
//! hostility (§2), checked against `pulse_schemas`' decoder.

use std::collections::{HashMap, HashSet};

use pulse_schemas::capture::decode_line;
use pulse_schemas::{EventKind, PaymentStatus, Segment, StreamChange, DAY_MS};
use serde_json::Value;

use super::*;

fn config(customers: usize, days: u32, seed: u64, hostility: Hostility) -> SynthConfig {
    SynthConfig { customers, days, seed, hostility, ..SynthConfig::default() }
}

fn run(config: &SynthConfig) -> (Vec<u8>, SynthSummary) {
    let mut out = Vec::new();
    let summary = generate(config, &mut out, &mut |_| {}).expect("generate");
    (out, summary)
}

fn lines(capture: &[u8]) -> impl Iterator<Item = &[u8]> {
    capture.split(|b| *b == b'\n').filter(|l| !l.is_empty())
}

/// The `synth_fault` marker of a record, from either image.
fn fault_of(record: &Value) -> Option<String> {
    ["NewImage", "OldImage"]
        .iter()
        .find_map(|side| record["dynamodb"][side]["synth_fault"]["S"].as_str().map(str::to_owned))
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let a = run(&config(150, 8, 42, Hostility::hostile()));
    let b = run(&config(150, 8, 42, Hostility::hostile()));
    assert!(!a.0.is_empty());
    assert_eq!(a.0, b.0, "same config must give identical bytes");
    assert_eq!(a.1, b.1);
    let c = run(&config(150, 8, 43, Hostility::hostile()));
    assert_ne!(a.0, c.0, "another seed must give another capture");
}

#[test]
fn hostility_does_not_change_behaviour() {
    // The behaviour stream is separate from the noise stream: the same seed
    // yields the same events, whatever the hostility.
    let events = |h: Hostility| {
        let config = config(80, 6, 9, h);
        // Events near the end may arrive after it, depending on their delay.
        let settled = config.end_ms() - 8 * 3_600_000;
        let (out, _) = run(&config);
        let mut set: Vec<String> = lines(&out)
            .filter_map(|l| match decode_line(l) {
                Ok(r) => match r.change {
                    StreamChange::Insert(e) if !e.event_id.contains("_x") && e.ts.0 < settled => {
                        Some(format!("{:?}", e.into_owned()))
                    }
                    _ => None,
                },
                Err(_) => None,
            })
            .collect();
        set.sort();
        set.dedup();
        set
    };
    let clean = events(Hostility::none());
    assert!(clean.len() > 500);
    let hostile = events(Hostility::hostile());
    assert!(clean == hostile, "{} events without hostility, {} with", clean.len(), hostile.len());
}

#[test]
fn every_line_has_the_record_shape_in_stream_order() {
    for hostility in [Hostility::realistic(), Hostility::hostile()] {
        let (out, summary) = run(&config(120, 12, 5, hostility));
        let mut last_created = f64::MIN;
        let mut last_seq = 0u128;
        let mut n = 0;
        for line in lines(&out) {
            n += 1;
            let r: Value = serde_json::from_slice(line).expect("every line is JSON");
            assert_eq!(r["eventID"].as_str().map(str::len), Some(32));
            assert!(matches!(r["eventName"].as_str(), Some("INSERT" | "MODIFY" | "REMOVE")));
            assert_eq!(r["eventVersion"], "1.1");
            assert_eq!(r["eventSource"], "aws:dynamodb");
            assert_eq!(r["awsRegion"], "us-east-1");
            let arn = r["eventSourceARN"].as_str().unwrap();
            assert!(
                arn.starts_with("arn:aws:dynamodb:us-east-1:123456789012:table/marketplace-events/stream/2026-01-05T")
            );
            let d = &r["dynamodb"];
            assert_eq!(d["StreamViewType"], "NEW_AND_OLD_IMAGES");
            assert!(d["SizeBytes"].as_u64().unwrap() > 0);
            let created = d["ApproximateCreationDateTime"].as_f64().expect("a JSON number");
            assert!(created >= last_created, "records are in creation order");
            last_created = created;
            let seq: u128 = d["SequenceNumber"].as_str().unwrap().parse().unwrap();
            assert!(seq > last_seq, "sequence numbers increase");
            last_seq = seq;

            let name = r["eventName"].as_str().unwrap();
            assert_eq!(d.get("NewImage").is_some(), name != "REMOVE");
            assert_eq!(d.get("OldImage").is_some(), name != "INSERT");
            let ttl = r.get("userIdentity").is_some();
            if ttl {
                assert_eq!(name, "REMOVE");
                assert_eq!(r["userIdentity"]["type"], "Service");
                assert_eq!(r["userIdentity"]["principalId"], "dynamodb.amazonaws.com");
            }
            let keys = &d["Keys"];
            let customer = keys["customer_id"]["S"].as_str().unwrap();
            assert!(customer.starts_with("stu_") && customer.len() == 10, "{customer}");
            let sk = keys["sk"]["S"].as_str().unwrap();
            let fault = fault_of(&r);
            for side in ["NewImage", "OldImage"] {
                let Some(image) = d.get(side) else { continue };
                assert_eq!(image["customer_id"]["S"], customer);
                if image["entity_type"]["S"] != "event" {
                    assert!(sk == "PRED#latest" || sk == "PROFILE", "{sk}");
                    continue;
                }
                let id = image["event_id"]["S"].as_str().unwrap();
                if fault.as_deref() == Some("bad_event_id") {
                    continue;
                }
                let (ts_part, id_part) = sk.strip_prefix("EVT#").unwrap().split_once('#').unwrap();
                assert_eq!(ts_part.len(), 13);
                assert_eq!(id_part, id);
                assert!(id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'));
                if fault.is_none() {
                    // Valid items: every N is a plain decimal.
                    for (_, v) in image.as_object().unwrap() {
                        if let Some(n) = v["N"].as_str() {
                            let plain = n.trim_start_matches('-');
                            assert!(!plain.is_empty() && plain.bytes().all(|b| b.is_ascii_digit() || b == b'.'), "{n}");
                        }
                    }
                    if name == "INSERT" || side == "OldImage" {
                        assert_eq!(image["ts"]["N"].as_str().unwrap(), ts_part.trim_start_matches('0'));
                    }
                }
            }
        }
        assert_eq!(n, summary.records);
    }
}

#[test]
fn realistic_records_all_decode_as_valid() {
    let (out, summary) = run(&config(200, 14, 11, Hostility::realistic()));
    let mut inserts = 0;
    let mut ids = HashSet::new();
    let mut repeats = 0;
    for line in lines(&out) {
        let r = decode_line(line).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(line)));
        let created = r.created_ms.unwrap();
        match r.change {
            StreamChange::Insert(e) => {
                inserts += 1;
                assert!(e.ts.0 as f64 <= created, "an event never arrives before its ts");
                if !ids.insert((e.customer_id.into_owned(), e.event_id.into_owned())) {
                    repeats += 1;
                }
            }
            other => panic!("realistic mode writes only INSERTs, got {other:?}"),
        }
    }
    assert_eq!(inserts, summary.records);
    assert_eq!(repeats, summary.hostility.duplicates);
    assert!(summary.hostility.duplicates > 0 && summary.hostility.delayed > 0);
    let h = summary.hostility;
    assert_eq!(h.corrections + h.retractions + h.ttl_removes + h.late + h.future + h.invalid + h.non_events, 0);
    // About 0.5% duplicates and 2% delayed.
    let dup = h.duplicates as f64 / summary.events as f64;
    assert!((0.002..0.01).contains(&dup), "duplicate share {dup}");
}

#[test]
fn events_arrive_out_of_ts_order_sometimes() {
    let (out, _) = run(&config(100, 10, 3, Hostility::realistic()));
    let mut max_ts = HashMap::new();
    let mut out_of_order = 0;
    for line in lines(&out) {
        if let Ok(r) = decode_line(line) {
            if let StreamChange::Insert(e) = r.change {
                let m = max_ts.entry(e.customer_id.into_owned()).or_insert(i64::MIN);
                if e.ts.0 < *m {
                    out_of_order += 1;
                }
                *m = (*m).max(e.ts.0);
            }
        }
    }
    assert!(out_of_order > 0);
}

#[test]
fn hostile_mode_has_every_kind_and_invalid_items_fail_as_intended() {
    let (out, summary) = run(&config(300, 20, 17, Hostility::hostile()));
    let h = summary.hostility;
    for (name, count) in h.by_kind() {
        assert!(count > 0, "hostile mode must contain {name}");
    }

    let mut seen_codes: HashMap<String, u64> = HashMap::new();
    let (mut ttl, mut not_event, mut modify, mut remove, mut invalid) = (0, 0, 0, 0, 0);
    let (mut late, mut future) = (0, 0);
    // Per customer: the clock C (largest accepted ts) to check late records.
    let mut clock: HashMap<String, i64> = HashMap::new();
    for line in lines(&out) {
        let value: Value = serde_json::from_slice(line).unwrap();
        let fault = fault_of(&value);
        let decoded = decode_line(line);
        match fault.as_deref() {
            None => {
                let r = decoded.unwrap_or_else(|e| panic!("unmarked record must be valid: {e}"));
                match &r.change {
                    StreamChange::TtlExpiry => ttl += 1,
                    StreamChange::NotAnEvent => not_event += 1,
                    StreamChange::Modify { .. } => modify += 1,
                    StreamChange::Remove(_) => remove += 1,
                    StreamChange::Insert(_) => {}
                }
                let added = match &r.change {
                    StreamChange::Insert(e) => Some(e),
                    StreamChange::Modify { new, .. } => new.as_ref(),
                    _ => None,
                };
                if let Some(e) = added {
                    let c = clock.entry(e.customer_id.to_string()).or_insert(i64::MIN);
                    assert!(*c == i64::MIN || e.ts.0 > *c - 30 * DAY_MS, "an unmarked event must not be late");
                    *c = (*c).max(e.ts.0);
                }
            }
            Some("late") => {
                late += 1;
                let r = decoded.expect("a late record is valid; the engine drops it");
                let e = match &r.change {
                    StreamChange::Insert(e) | StreamChange::Remove(e) => e,
                    other => panic!("late records are INSERT or REMOVE, got {other:?}"),
                };
                let c = clock[&e.customer_id.to_string()];
                assert!(e.ts.0 <= c - 30 * DAY_MS, "late record is not late: ts {} clock {c}", e.ts.0);
            }
            Some(code) => {
                let err = decoded.expect_err("a marked invalid record must not decode");
                assert_eq!(err.reason.code(), code, "{err}");
                if code == "future_event" {
                    future += 1;
                } else {
                    invalid += 1;
                }
                *seen_codes.entry(code.to_owned()).or_default() += 1;
            }
        }
    }
    assert_eq!(ttl, h.ttl_removes);
    assert_eq!(not_event, h.non_events);
    assert_eq!(modify, h.corrections);
    assert_eq!(remove, h.retractions);
    assert_eq!(invalid, h.invalid);
    assert_eq!(late, h.late);
    assert_eq!(future, h.future);
    for code in [
        "missing_attribute",
        "wrong_type",
        "out_of_range",
        "not_a_number",
        "not_allowed",
        "bad_event_id",
        "bad_timestamp",
        "unknown_event_type",
        "future_event",
    ] {
        assert!(seen_codes.contains_key(code), "no {code} in {seen_codes:?}");
    }
}

#[test]
fn segment_shares_at_start_follow_the_mix() {
    let (_, summary) = run(&config(4000, 1, 21, Hostility::none()));
    let mix = SegmentMix::default().shares();
    for (got, want) in summary.by_segment_at_start.iter().zip(mix) {
        let share = *got as f64 / 4000.0;
        assert!((share - want).abs() < 0.025, "share {share} vs mix {want}");
    }
    let skewed = SegmentMix::new(0.0, 0.0, 0.5, 0.5).unwrap();
    let (_, summary) = run(&SynthConfig { mix: skewed, ..config(400, 1, 21, Hostility::none()) });
    assert_eq!(summary.by_segment_at_start[..2], [0, 0]);
}

/// What one customer did over the first 30 days.
#[derive(Default, Debug)]
struct Tally {
    sessions: u32,
    ratings: Vec<f64>,
    ib_calls: u32,
    payments_ok: u32,
    payments_failed: u32,
    tutors: HashMap<String, u32>,
    logins: u32,
}

#[test]
fn behaviour_over_the_first_30_days_matches_the_segment_table() {
    let customers = 600;
    let config = config(customers, 30, 2026, Hostility::realistic());
    let mut out = Vec::new();
    let mut start: Vec<Segment> = Vec::new();
    let mut stayed = vec![true; customers];
    let summary = generate_with_truth(&config, &mut out, &mut |_| {}, &mut |day, segments| {
        if day == 0 {
            start = segments.to_vec();
        }
        for (i, s) in segments.iter().enumerate() {
            stayed[i] &= *s == start[i];
        }
    })
    .unwrap();

    // Records per customer-day: about 2 to 4.
    let per_day = summary.records as f64 / (customers as f64 * 30.0);
    println!("records per customer-day {per_day:.2}, by type {:?}", summary.by_type);
    assert!((2.0..=4.0).contains(&per_day), "records per customer-day {per_day}");
    assert!(summary.by_type.iter().all(|n| *n > 0), "all eight types: {:?}", summary.by_type);
    // Logins are more frequent than sessions; most sessions are rated.
    assert!(summary.by_type[4] > summary.by_type[0]);
    assert!(summary.by_type[3] as f64 > 0.6 * summary.by_type[0] as f64);

    let mut tally: HashMap<u32, Tally> = HashMap::new();
    let mut seen = HashSet::new();
    let end = config.start_ms + 30 * DAY_MS;
    for line in lines(&out) {
        let StreamChange::Insert(e) = decode_line(line).unwrap().change else { unreachable!() };
        if e.ts.0 >= end || !seen.insert(e.event_id.to_string()) {
            continue;
        }
        let t = tally.entry(e.customer_id[4..].parse().unwrap()).or_default();
        match e.kind {
            EventKind::SessionCompleted { tutor_id, duration_min } => {
                assert!(duration_min > 0.0 && duration_min <= 600.0);
                t.sessions += 1;
                *t.tutors.entry(tutor_id.into_owned()).or_default() += 1;
            }
            EventKind::SessionRated { rating, .. } => t.ratings.push(rating),
            EventKind::IbCall { .. } => t.ib_calls += 1,
            EventKind::Payment { status: PaymentStatus::Succeeded, .. } => t.payments_ok += 1,
            EventKind::Payment { status: PaymentStatus::Failed, .. } => t.payments_failed += 1,
            EventKind::Login => t.logins += 1,
            _ => {}
        }
    }

    // Averages per starting segment over customers who stayed in it, and
    // sessions/week over all who started in it (movers included).
    let mean = |xs: &[f64]| xs.iter().sum::<f64>() / xs.len().max(1) as f64;
    // (segment, sessions/week, rating, IB calls, payment success, tutor consistency) from §7.
    let table = [
        (Segment::Thriving, (2.0, 6.0), (4.0, 5.0), (0.0, 0.0), (0.95, 1.0), (0.85, 1.0)),
        (Segment::Healthy, (1.0, 3.0), (3.8, 4.5), (0.0, 1.0), (0.85, 1.0), (0.65, 0.9)),
        (Segment::AtRisk, (0.0, 1.0), (3.0, 4.0), (1.0, 2.0), (0.70, 0.90), (0.40, 0.70)),
        (Segment::Churned, (0.0, 0.0), (2.0, 3.5), (2.0, 4.0), (0.50, 0.80), (0.20, 0.50)),
    ];
    let empty = Tally::default();
    for (segment, spw, rating, ib, pay, consistency) in table {
        let members: Vec<usize> = (0..customers).filter(|i| start[*i] == segment).collect();
        let stayers: Vec<&Tally> =
            members.iter().filter(|i| stayed[**i]).map(|i| tally.get(&(*i as u32)).unwrap_or(&empty)).collect();
        assert!(stayers.len() >= 30, "{segment:?}: only {} customers", stayers.len());
        let all: Vec<f64> = members
            .iter()
            .map(|i| tally.get(&(*i as u32)).map_or(0.0, |t| f64::from(t.sessions) * 7.0 / 30.0))
            .collect();
        let within = |name: &str, value: f64, (lo, hi): (f64, f64), tol: f64| {
            println!("{segment:?} {name}: {value:.3} (spec {lo}..{hi})");
            assert!(
                value >= lo - tol && value <= hi + tol,
                "{segment:?} {name}: {value:.3} not in [{lo}, {hi}] ± {tol}"
            );
        };
        within("sessions/week (all who started)", mean(&all), spw, 0.2);
        let spw_stayed: Vec<f64> = stayers.iter().map(|t| f64::from(t.sessions) * 7.0 / 30.0).collect();
        within("sessions/week", mean(&spw_stayed), spw, 0.05);
        let ratings: Vec<f64> = stayers.iter().filter(|t| !t.ratings.is_empty()).map(|t| mean(&t.ratings)).collect();
        if segment != Segment::Churned {
            within("rating", mean(&ratings), rating, 0.0);
        }
        let ib_calls: Vec<f64> = stayers.iter().map(|t| f64::from(t.ib_calls)).collect();
        within("IB calls", mean(&ib_calls), ib, 0.15);
        let pay_rates: Vec<f64> = stayers
            .iter()
            .filter(|t| t.payments_ok + t.payments_failed > 0)
            .map(|t| f64::from(t.payments_ok) / f64::from(t.payments_ok + t.payments_failed))
            .collect();
        assert!(pay_rates.len() >= 10, "{segment:?}: too few payers");
        within("payment success", mean(&pay_rates), pay, 0.02);
        if segment != Segment::Churned {
            let shares: Vec<f64> = stayers
                .iter()
                .filter(|t| t.sessions >= 3)
                .map(|t| f64::from(*t.tutors.values().max().unwrap()) / f64::from(t.sessions))
                .collect();
            within("tutor consistency", mean(&shares), consistency, 0.08);
        } else {
            // A churned customer goes silent.
            let silent = stayers.iter().filter(|t| t.sessions == 0).count() as f64 / stayers.len() as f64;
            assert!(silent > 0.6, "churned customers without sessions: {silent}");
            let logins: Vec<f64> = stayers.iter().map(|t| f64::from(t.logins)).collect();
            assert!(mean(&logins) < 2.0, "churned logins per 30 days: {}", mean(&logins));
        }
    }
}

#[test]
fn customers_move_between_segments() {
    let (_, summary) = run(&config(500, 60, 8, Hostility::none()));
    assert!(summary.transitions > 50, "transitions: {}", summary.transitions);
    assert_ne!(summary.by_segment_at_start, summary.by_segment_at_end);
    assert_eq!(summary.customer_days_by_segment.iter().sum::<u64>(), 500 * 60);
}

#[test]
fn bad_configuration_is_rejected_with_a_clear_error() {
    let err = SegmentMix::new(0.3, 0.4, 0.2, 0.2).unwrap_err().to_string();
    assert!(err.contains("sum to 1.1"), "{err}");
    let err = SegmentMix::new(1.2, -0.2, 0.0, 0.0).unwrap_err().to_string();
    assert!(err.contains("thriving = 1.2 is outside [0, 1]"), "{err}");
    let bad = SynthConfig {
        mix: SegmentMix { thriving: 0.5, healthy: 0.5, at_risk: 0.5, churned: 0.0 },
        ..SynthConfig::default()
    };
    let err = generate(&bad, &mut Vec::new(), &mut |_| {}).unwrap_err();
    assert!(format!("{err:#}").contains("invalid mix: segment mix: the shares sum to 1.5"), "{err:#}");
    let err =
        format!("{:#}", SynthConfig { table_name: "a b".into(), ..SynthConfig::default() }.validate().unwrap_err());
    assert!(err.contains("table_name"), "{err}");
    let err = format!("{:#}", SynthConfig { days: 0, ..SynthConfig::default() }.validate().unwrap_err());
    assert!(err.contains("days"), "{err}");
    let mut hostile = Hostility::hostile();
    hostile.invalid_rate = 2.0;
    let err = format!("{:#}", SynthConfig { hostility: hostile, ..SynthConfig::default() }.validate().unwrap_err());
    assert!(err.contains("invalid_rate = 2"), "{err}");

    assert_eq!("0.3,0.4,0.2,0.1".parse::<SegmentMix>().unwrap(), SegmentMix::default());
    assert_eq!(
        "churned=0.1, at_risk=0.2, healthy=0.4, thriving=0.3".parse::<SegmentMix>().unwrap(),
        SegmentMix::default()
    );
    assert!("0.5,0.5".parse::<SegmentMix>().is_err());
    assert!("thriving=0.5,thriving=0.5,at_risk=0,churned=0".parse::<SegmentMix>().is_err());
    assert_eq!("hostile".parse::<Hostility>().unwrap(), Hostility::hostile());
    assert!("mean".parse::<Hostility>().is_err());
}

#[test]
fn progress_is_reported_each_day() {
    let mut calls = Vec::new();
    let summary = generate(&config(30, 5, 1, Hostility::realistic()), &mut Vec::new(), &mut |n| calls.push(n)).unwrap();
    assert_eq!(calls.len(), 5);
    assert!(calls.windows(2).all(|w| w[0] <= w[1]));
    assert_eq!(*calls.last().unwrap(), summary.records);
}

/// Release-build throughput: `cargo test -p pulse --release --lib synth::tests::throughput -- --ignored --nocapture`.
#[test]
#[ignore]
fn throughput() {
    let config = config(100_000, 30, 1, Hostility::realistic());
    let mut sink = std::io::sink();
    let t = std::time::Instant::now();
    let summary = generate(&config, &mut sink, &mut |_| {}).unwrap();
    let secs = t.elapsed().as_secs_f64();
    let mut bytes = Vec::new();
    let one_day = SynthConfig { days: 1, customers: 20_000, ..config };
    generate(&one_day, &mut bytes, &mut |_| {}).unwrap();
    let per_record = bytes.len() as f64 / lines(&bytes).count() as f64;
    println!(
        "{} records ({} customers x {} days) in {secs:.2} s: {:.2} M records/s, {:.0} MB/s (~{per_record:.0} B/record)",
        summary.records,
        config.customers,
        config.days,
        summary.records as f64 / secs / 1e6,
        summary.records as f64 * per_record / secs / 1e6,
    );
}

/// A shift leaves every event before its first day as it was, and makes
/// sessions rarer after it.
#[test]
fn a_shift_changes_sessions_from_its_day_only() {
    let base = config(200, 20, 5, Hostility::none());
    let shifted = SynthConfig { shift: Some(Shift { from_day: 10, session_factor: 0.25 }), ..base.clone() };
    let shift_ms = base.start_ms + 10 * DAY_MS;
    let sessions = |c: &SynthConfig| {
        let (out, _) = run(c);
        let (mut before, mut after) = (Vec::new(), 0usize);
        for l in lines(&out) {
            if let Ok(r) = decode_line(l) {
                if let StreamChange::Insert(e) = r.change {
                    if matches!(e.kind, EventKind::SessionCompleted { .. }) {
                        if e.ts.0 < shift_ms {
                            before.push(format!("{:?}", e.into_owned()));
                        } else {
                            after += 1;
                        }
                    }
                }
            }
        }
        (before, after)
    };
    let (control_before, control_after) = sessions(&base);
    let (shift_before, shift_after) = sessions(&shifted);
    assert_eq!(control_before, shift_before, "the same sessions before the shift");
    assert!(
        (shift_after as f64) < 0.4 * control_after as f64,
        "{shift_after} sessions after the shift vs {control_after} without"
    );
    let bad = SynthConfig { shift: Some(Shift { from_day: 1, session_factor: f64::NAN }), ..base.clone() };
    assert!(bad.validate().is_err());
    let from_start = SynthConfig { shift: Some(Shift { from_day: 0, session_factor: 0.25 }), ..base.clone() };
    assert!(from_start.validate().unwrap_err().to_string().contains("no day before it"));
    let lifecycle = SynthConfig { world: WorldKind::Lifecycle, ..shifted };
    assert!(lifecycle.validate().unwrap_err().to_string().contains("classic"));
}

/// `start_ms` is accepted only where every time the capture holds is one the
/// decoder accepts: a start of 0 (1970) used to be generated, then every
/// record was an `implausible_creation_time` dead letter in `pulse replay`.
#[test]
fn start_ms_is_accepted_only_where_the_decoder_accepts_every_time() {
    use pulse_schemas::validate::{EARLIEST_MS, LATEST_MS};
    for (start_ms, days) in [(0, 5), (EARLIEST_MS, 5), (EARLIEST_START_MS - 1, 5), (LATEST_MS - 5 * DAY_MS, 5)] {
        let config = SynthConfig { customers: 10, days, start_ms, ..SynthConfig::default() };
        let err = format!("{:#}", config.validate().unwrap_err());
        assert!(
            err.contains("start_ms") && err.contains("2000-01-01") && err.contains("2200-01-01"),
            "{start_ms}: {err}"
        );
        assert!(generate(&config, &mut Vec::new(), &mut |_| {}).is_err());
    }
    // Start + days counts: a start that is fine for 5 days is not for 3650.
    let late_start = LATEST_END_MS - 5 * DAY_MS;
    assert!(SynthConfig { days: 5, start_ms: late_start, ..SynthConfig::default() }.validate().is_ok());
    assert!(SynthConfig { days: 3650, start_ms: late_start, ..SynthConfig::default() }.validate().is_err());
    // At both ends of the range, a hostile capture's records decode but for
    // the faults it makes on purpose (invalid and future-dated events):
    // never a dead letter for an implausible time.
    for start_ms in [EARLIEST_START_MS, late_start] {
        let config = SynthConfig {
            customers: 30,
            days: 5,
            start_ms,
            seed: 3,
            hostility: Hostility::hostile(),
            ..SynthConfig::default()
        };
        let mut out = Vec::new();
        let summary = generate(&config, &mut out, &mut |_| {}).unwrap();
        let mut dead = 0;
        for line in out.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            if let Err(e) = decode_line(line) {
                let code = e.reason.code();
                assert!(!code.starts_with("implausible"), "{start_ms}: {}", e.reason);
                dead += 1;
            }
        }
        assert_eq!(dead, summary.hostility.invalid + summary.hostility.future, "{start_ms}");
    }
}
