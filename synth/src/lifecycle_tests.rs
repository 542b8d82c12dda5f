//! Tests of the Lifecycle world ([`WorldKind::Lifecycle`]): determinism,
//! records as sound as Classic's at every hostility (checked against
//! `pulse_schemas`' decoder, as `tests.rs` checks Classic), the structure
//! that makes it a different world, and Classic's bytes pinned.

use std::collections::{HashMap, HashSet};

use pulse_schemas::capture::decode_line;
use pulse_schemas::{EventKind, Party, PaymentStatus, Segment, Sentiment, StreamChange, DAY_MS};
use serde_json::Value;

use super::*;

const HOUR: i64 = 3_600_000;

fn life(customers: usize, days: u32, seed: u64, hostility: Hostility) -> SynthConfig {
    SynthConfig { customers, days, seed, hostility, world: WorldKind::Lifecycle, ..SynthConfig::default() }
}

fn run(config: &SynthConfig) -> (Vec<u8>, SynthSummary) {
    let mut out = Vec::new();
    let summary = generate(config, &mut out, &mut |_| {}).expect("generate");
    (out, summary)
}

/// The capture, the summary and every customer's segment on every day.
fn run_with_segments(config: &SynthConfig) -> (Vec<u8>, SynthSummary, Vec<Vec<Option<Segment>>>) {
    let mut out = Vec::new();
    let mut days = Vec::new();
    let summary =
        generate_with_segments(config, &mut out, &mut |_| {}, &mut |_, s| days.push(s.to_vec())).expect("generate");
    (out, summary, days)
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

/// What a behaviour test needs of an event.
#[derive(Clone, Debug)]
struct Ev {
    customer: usize,
    /// Run day of the customer's local date (UTC-8, so that no local
    /// evening of a US time zone falls on the next day).
    day: i64,
    /// Local weekday, 0 = Monday.
    weekday: usize,
    kind: Kind,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Session,
    Rating(f64),
    TutorCancel,
    StudentCancel,
    NoShow,
    Payment(bool),
    Call(Sentiment),
    Login,
    Message,
}

/// The behaviour events of a capture (first deliveries, valid ones only).
fn events(config: &SynthConfig, capture: &[u8]) -> Vec<Ev> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for line in lines(capture) {
        let Ok(r) = decode_line(line) else { continue };
        let StreamChange::Insert(e) = r.change else { continue };
        if e.event_id.contains("_x") || !seen.insert(e.event_id.to_string()) {
            continue;
        }
        let local = (e.ts.0 - 8 * HOUR).div_euclid(DAY_MS);
        let kind = match e.kind {
            EventKind::SessionCompleted { .. } => Kind::Session,
            EventKind::SessionRated { rating, .. } => Kind::Rating(rating),
            EventKind::SessionCancelled { cancelled_by: Party::Tutor, .. } => Kind::TutorCancel,
            EventKind::SessionCancelled { cancelled_by: Party::Student, .. } => Kind::StudentCancel,
            EventKind::SessionNoShow { .. } => Kind::NoShow,
            EventKind::Payment { status, .. } => Kind::Payment(status == PaymentStatus::Succeeded),
            EventKind::IbCall { sentiment } => Kind::Call(sentiment),
            EventKind::Login => Kind::Login,
            EventKind::MessageReply { .. } => Kind::Message,
        };
        out.push(Ev {
            customer: e.customer_id[4..].parse().unwrap(),
            day: local - config.start_ms.div_euclid(DAY_MS),
            weekday: (local + 3).rem_euclid(7) as usize,
            kind,
        });
    }
    out
}

/// The checks `tests.rs` makes of Classic captures, in one place: record
/// shape and stream order; unmarked records decode, added events are neither
/// late nor ahead of their record; records marked `late` are late; records
/// marked with a reason fail to decode with that reason; the counts agree
/// with the summary. Returns the invalid reason codes seen.
fn assert_sound(capture: &[u8], summary: &SynthSummary) -> HashSet<String> {
    let (mut n, mut last_created, mut last_seq) = (0, f64::MIN, 0u128);
    let (mut ttl, mut not_event, mut modify, mut remove, mut invalid, mut late, mut future) = (0, 0, 0, 0, 0, 0, 0);
    let (mut inserts, mut repeats) = (0, 0);
    let mut ids = HashSet::new();
    let mut codes = HashSet::new();
    let mut clock: HashMap<String, i64> = HashMap::new();
    for line in lines(capture) {
        n += 1;
        let r: Value = serde_json::from_slice(line).expect("every line is JSON");
        let d = &r["dynamodb"];
        let created = d["ApproximateCreationDateTime"].as_f64().expect("a JSON number");
        let created_ms = created * 1e3;
        assert!(created >= last_created, "records are in creation order");
        last_created = created;
        let seq: u128 = d["SequenceNumber"].as_str().unwrap().parse().unwrap();
        assert!(seq > last_seq, "sequence numbers increase");
        last_seq = seq;
        let name = r["eventName"].as_str().unwrap();
        assert_eq!(d.get("NewImage").is_some(), name != "REMOVE");
        assert_eq!(d.get("OldImage").is_some(), name != "INSERT");
        let customer = d["Keys"]["customer_id"]["S"].as_str().unwrap();
        assert!(customer.starts_with("stu_") && customer.len() == 10, "{customer}");

        let fault = fault_of(&r);
        let decoded = decode_line(line);
        match fault.as_deref() {
            None => {
                let rec = decoded.unwrap_or_else(|e| panic!("unmarked record must be valid: {e}"));
                match &rec.change {
                    StreamChange::TtlExpiry => ttl += 1,
                    StreamChange::NotAnEvent => not_event += 1,
                    StreamChange::Modify { .. } => modify += 1,
                    StreamChange::Remove(_) => remove += 1,
                    StreamChange::Insert(e) => {
                        inserts += 1;
                        if !ids.insert((e.customer_id.to_string(), e.event_id.to_string())) {
                            repeats += 1;
                        }
                        assert!(e.ts.0 as f64 <= created_ms, "an event never arrives before its ts");
                    }
                }
                let added = match &rec.change {
                    StreamChange::Insert(e) => Some(e),
                    StreamChange::Modify { new, .. } => new.as_ref(),
                    _ => None,
                };
                if let Some(e) = added {
                    assert!(e.ts.0 as f64 <= created_ms + HOUR as f64, "an unmarked event is not from the future");
                    let c = clock.entry(e.customer_id.to_string()).or_insert(i64::MIN);
                    assert!(*c == i64::MIN || e.ts.0 > *c - 30 * DAY_MS, "an unmarked event must not be late");
                    *c = (*c).max(e.ts.0);
                }
            }
            Some("late") => {
                late += 1;
                let rec = decoded.expect("a late record is valid; the engine drops it");
                let e = match &rec.change {
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
                codes.insert(code.to_owned());
            }
        }
    }
    let h = summary.hostility;
    assert_eq!(n, summary.records);
    assert_eq!(inserts - repeats, summary.events, "first deliveries are the events");
    assert_eq!(repeats, h.duplicates);
    assert_eq!((ttl, not_event, modify, remove), (h.ttl_removes, h.non_events, h.corrections, h.retractions));
    assert_eq!((invalid, late, future), (h.invalid, h.late, h.future));
    codes
}

#[test]
fn lifecycle_same_seed_same_bytes_other_seed_other_bytes() {
    let a = run(&life(150, 20, 42, Hostility::hostile()));
    let b = run(&life(150, 20, 42, Hostility::hostile()));
    assert!(!a.0.is_empty());
    assert_eq!(a.0, b.0, "same config must give identical bytes");
    assert_eq!(a.1, b.1);
    let c = run(&life(150, 20, 43, Hostility::hostile()));
    assert_ne!(a.0, c.0, "another seed must give another capture");
    let classic = run(&SynthConfig { world: WorldKind::Classic, ..life(150, 20, 42, Hostility::hostile()) });
    assert_ne!(a.0, classic.0, "another world must give another capture");
}

#[test]
fn lifecycle_hostility_does_not_change_behaviour() {
    let behaviour = |h: Hostility| {
        let config = life(100, 10, 9, h);
        let settled = config.end_ms() - 8 * HOUR;
        let (out, _) = run(&config);
        let mut set: Vec<String> = lines(&out)
            .filter_map(|l| match decode_line(l).ok()?.change {
                StreamChange::Insert(e) if !e.event_id.contains("_x") && e.ts.0 < settled => {
                    Some(format!("{:?}", e.into_owned()))
                }
                _ => None,
            })
            .collect();
        set.sort();
        set.dedup();
        set
    };
    let clean = behaviour(Hostility::none());
    assert!(clean.len() > 500, "{}", clean.len());
    assert!(clean == behaviour(Hostility::realistic()));
    assert!(clean == behaviour(Hostility::hostile()));
}

#[test]
fn lifecycle_captures_are_sound_at_every_hostility_and_seed() {
    // Property: whatever the seed, the capture passes every check.
    for seed in 0..4 {
        for hostility in [Hostility::none(), Hostility::realistic(), Hostility::hostile()] {
            let (out, summary) = run(&life(80, 24, seed, hostility));
            assert_sound(&out, &summary);
            if hostility == Hostility::none() {
                assert_eq!(summary.records, summary.events, "a perfect stream has nothing but events");
            }
        }
    }
    // The same checks hold for Classic, so they are the ones tests.rs makes.
    let classic = SynthConfig { world: WorldKind::Classic, ..life(80, 24, 1, Hostility::hostile()) };
    let (out, summary) = run(&classic);
    assert_sound(&out, &summary);
}

#[test]
fn lifecycle_hostile_mode_has_every_kind() {
    let (out, summary) = run(&life(300, 30, 17, Hostility::hostile()));
    for (name, count) in summary.hostility.by_kind() {
        assert!(count > 0, "hostile mode must contain {name}");
    }
    let codes = assert_sound(&out, &summary);
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
        assert!(codes.contains(code), "no {code} in {codes:?}");
    }
}

#[test]
fn lifecycle_realistic_records_are_valid_inserts_at_a_volume_like_classic() {
    let config = life(600, 60, 11, Hostility::realistic());
    let (out, summary) = run(&config);
    for line in lines(&out) {
        let r = decode_line(line).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(line)));
        assert!(matches!(r.change, StreamChange::Insert(_)), "realistic mode writes only INSERTs");
    }
    let per_day = summary.records as f64 / (600.0 * 60.0);
    println!("lifecycle records per customer-day {per_day:.2}, by type {:?}", summary.by_type);
    assert!((1.5..=4.0).contains(&per_day), "records per customer-day {per_day}");
    assert!(summary.by_type.iter().all(|n| *n > 0), "all eight types: {:?}", summary.by_type);
    let dup = summary.hostility.duplicates as f64 / summary.events as f64;
    assert!((0.002..0.01).contains(&dup), "duplicate share {dup}");
    // Ratings are whole stars here (Classic's have tenths).
    for e in events(&config, &out) {
        if let Kind::Rating(r) = e.kind {
            assert!(r.fract() == 0.0 && (1.0..=5.0).contains(&r), "{r}");
        }
    }
}

#[test]
fn customers_sign_up_over_the_run_and_have_a_segment_from_then_on() {
    let config = life(1200, 60, 5, Hostility::none());
    let (out, summary, days) = run_with_segments(&config);
    let signup: Vec<Option<usize>> = (0..config.customers).map(|c| days.iter().position(|d| d[c].is_some())).collect();
    // Property: once signed up, always a segment; never an event before signup.
    for (c, first) in signup.iter().enumerate() {
        let first = first.expect("every customer signs up within the run");
        assert!(days[first..].iter().all(|d| d[c].is_some()), "stu_{c:06} lost its segment");
    }
    let mut first_event: HashMap<usize, i64> = HashMap::new();
    for e in events(&config, &out) {
        let day = first_event.entry(e.customer).or_insert(e.day);
        *day = (*day).min(e.day);
    }
    for (c, first) in signup.iter().enumerate() {
        let first = first.unwrap() as i64;
        // Events of the last evening may arrive after the end, and a customer
        // there from day one may have left before it.
        if first == 0 || first == 59 {
            continue;
        }
        assert_eq!(first_event.get(&c), Some(&first), "stu_{c:06} shows up on its signup day, not before");
    }

    // About 30% arrive after day one, on most days, more at term start (days 1-13).
    let arrivals = signup.iter().filter(|s| **s != Some(0)).count();
    assert_eq!(arrivals, summary.arrivals);
    assert!((0.25..0.35).contains(&(arrivals as f64 / 1200.0)), "{arrivals} arrivals");
    assert_eq!(summary.by_segment_at_start.iter().sum::<usize>() + arrivals, 1200);
    let mut per_day = vec![0.0; 60];
    for s in signup.iter().flatten().filter(|s| **s > 0) {
        per_day[*s] += 1.0;
    }
    let days_with_signups = per_day.iter().filter(|n| **n > 0.0).count();
    assert!(days_with_signups >= 55, "signups on {days_with_signups} days");
    let mean = |r: std::ops::Range<usize>| per_day[r.clone()].iter().sum::<f64>() / r.len() as f64;
    assert!(mean(1..14) > 1.8 * mean(21..56), "term start {} vs later {}", mean(1..14), mean(21..56));

    // generate_with_truth reports a customer not yet there as churned.
    let mut at_start = Vec::new();
    generate_with_truth(&config, &mut std::io::sink(), &mut |_| {}, &mut |day, s| {
        if day == 0 {
            at_start = s.to_vec();
        }
    })
    .unwrap();
    for (c, s) in at_start.iter().enumerate() {
        assert_eq!(*s, days[0][c].unwrap_or(Segment::Churned));
    }
}

#[test]
fn sessions_keep_weekly_habits_and_the_school_calendar() {
    // 5 January to 20 March 2026: term start, an ordinary term, spring break (days 61-70).
    let config = life(600, 75, 3, Hostility::none());
    let (out, _) = run(&config);
    let evs = events(&config, &out);
    let sessions: Vec<&Ev> = evs.iter().filter(|e| e.kind == Kind::Session).collect();

    let mut by_weekday = [0.0; 7];
    for e in &sessions {
        by_weekday[e.weekday] += 1.0;
    }
    let mon_thu = by_weekday[..4].iter().sum::<f64>() / 4.0;
    println!("sessions by weekday {by_weekday:?}");
    assert!(by_weekday[4] < 0.6 * mon_thu && by_weekday[6] < 0.6 * mon_thu, "Friday and Sunday dip");

    let per_day = |r: std::ops::Range<i64>| {
        sessions.iter().filter(|e| r.contains(&e.day)).count() as f64 / (r.end - r.start) as f64
    };
    let (before, during) = (per_day(40..61), per_day(61..71));
    assert!(during < 0.3 * before, "spring break: {during:.1} sessions a day vs {before:.1}");

    // A customer's sessions fall on a few fixed weekdays; in Classic on any.
    let concentration = |evs: &[Ev]| {
        let mut per: HashMap<usize, [u32; 7]> = HashMap::new();
        for e in evs.iter().filter(|e| e.kind == Kind::Session) {
            per.entry(e.customer).or_default()[e.weekday] += 1;
        }
        let shares: Vec<f64> = per
            .values()
            .filter(|w| w.iter().sum::<u32>() >= 8)
            .map(|w| {
                let mut w = *w;
                w.sort_unstable();
                f64::from(w[5] + w[6]) / f64::from(w.iter().sum::<u32>())
            })
            .collect();
        shares.iter().sum::<f64>() / shares.len() as f64
    };
    let classic = SynthConfig { world: WorldKind::Classic, ..config.clone() };
    let (classic_out, _) = run(&classic);
    let (ours, theirs) = (concentration(&evs), concentration(&events(&classic, &classic_out)));
    println!("sessions on a customer's two busiest weekdays: lifecycle {ours:.2}, classic {theirs:.2}");
    assert!(ours > theirs + 0.15, "lifecycle {ours:.2} vs classic {theirs:.2}");
}

#[test]
fn bad_experiences_raise_churn_and_some_customers_come_back() {
    let config = life(1500, 90, 8, Hostility::none());
    let (out, summary, days) = run_with_segments(&config);
    let evs = events(&config, &out);
    // Customers there from day one and taking sessions in the first month,
    // with no trouble in it or with two bad experiences or more (one is
    // mostly forgiven): who takes no session in the last month?
    let mut sessions_early: HashMap<usize, u32> = HashMap::new();
    let mut trouble: HashMap<usize, u32> = HashMap::new();
    let mut sessions_late: HashSet<usize> = HashSet::new();
    for e in &evs {
        if e.day < 30 {
            match e.kind {
                Kind::Session => *sessions_early.entry(e.customer).or_default() += 1,
                Kind::TutorCancel | Kind::NoShow | Kind::Payment(false) | Kind::Call(Sentiment::Negative) => {
                    *trouble.entry(e.customer).or_default() += 1;
                }
                Kind::Rating(r) if r <= 2.0 => *trouble.entry(e.customer).or_default() += 1,
                _ => {}
            }
        } else if e.day >= 60 && e.kind == Kind::Session {
            sessions_late.insert(e.customer);
        }
    }
    let active: Vec<usize> =
        sessions_early.iter().filter(|(c, n)| **n >= 4 && days[0][**c].is_some()).map(|(c, _)| *c).collect();
    let gone_share = |troubled: bool| {
        let group: Vec<&usize> = active
            .iter()
            .filter(|c| {
                let n = trouble.get(*c).copied().unwrap_or(0);
                if troubled {
                    n >= 2
                } else {
                    n == 0
                }
            })
            .collect();
        let gone = group.iter().filter(|c| !sessions_late.contains(c)).count();
        (gone as f64 / group.len() as f64, group.len())
    };
    let (with, n_with) = gone_share(true);
    let (without, n_without) = gone_share(false);
    println!("no session in days 60-89: {with:.3} of {n_with} with trouble early, {without:.3} of {n_without} without");
    assert!(n_with >= 100 && n_without >= 100);
    assert!(with > 1.6 * without, "trouble must raise churn: {with:.3} vs {without:.3}");

    // Comebacks: customers whose segment leaves churned for another.
    let back = (0..config.customers)
        .filter(|c| {
            days.windows(2)
                .any(|w| w[0][*c] == Some(Segment::Churned) && w[1][*c].is_some_and(|s| s != Segment::Churned))
        })
        .count();
    assert!(back >= 20, "{back} comebacks");

    // Some leave at once (thriving or healthy one day, churned the next),
    // others fade (a week or more at risk before churned).
    let (mut abrupt, mut faded) = (0, 0);
    for c in 0..config.customers {
        let path: Vec<Segment> = days.iter().filter_map(|d| d[c]).collect();
        for (i, w) in path.windows(2).enumerate() {
            if w[1] == Segment::Churned && w[0] != Segment::Churned {
                let at_risk_before = path[..=i].iter().rev().take_while(|s| **s == Segment::AtRisk).count();
                match w[0] {
                    Segment::Thriving | Segment::Healthy => abrupt += 1,
                    _ if at_risk_before >= 7 => faded += 1,
                    _ => {}
                }
            }
        }
    }
    println!("{abrupt} left at once, {faded} faded out");
    assert!(abrupt >= 30 && faded >= 30, "{abrupt} abrupt, {faded} faded");
    assert!(summary.transitions > 500, "{} segment changes", summary.transitions);
}

#[test]
fn lifecycle_segments_match_behaviour_and_the_mix() {
    // 5 January to 5 March: no break in the last 30 days.
    let config = life(1500, 60, 4, Hostility::none());
    let (out, summary, days) = run_with_segments(&config);
    let mut recent: HashMap<usize, u32> = HashMap::new();
    for e in events(&config, &out) {
        if e.day >= 30 && e.kind == Kind::Session {
            *recent.entry(e.customer).or_default() += 1;
        }
    }
    let end = days.last().unwrap();
    let mut means = Vec::new();
    for segment in [Segment::Thriving, Segment::Healthy, Segment::AtRisk, Segment::Churned] {
        let members: Vec<usize> = (0..config.customers).filter(|c| end[*c] == Some(segment)).collect();
        let per_week = members.iter().map(|c| f64::from(recent.get(c).copied().unwrap_or(0)) * 7.0 / 30.0).sum::<f64>()
            / members.len() as f64;
        println!("{segment:?}: {} customers, {per_week:.2} sessions a week over the last 30 days", members.len());
        assert!(members.len() >= 50, "{segment:?}: {}", members.len());
        means.push(per_week);
    }
    assert!(means.windows(2).all(|w| w[0] > w[1]), "sessions fall from thriving to churned: {means:?}");
    assert!(means[0] >= 2.0 && means[3] < 0.3, "{means:?}");

    // Those there on day one start in segments close to the mix.
    let there = summary.by_segment_at_start.iter().sum::<usize>() as f64;
    for (got, want) in summary.by_segment_at_start.iter().zip(SegmentMix::default().shares()) {
        let share = *got as f64 / there;
        assert!((share - want).abs() < 0.07, "share {share:.3} vs mix {want}");
    }
    let skewed = SegmentMix::new(0.0, 0.0, 0.5, 0.5).unwrap();
    let (_, summary) = run(&SynthConfig { mix: skewed, ..life(400, 1, 21, Hostility::none()) });
    assert_eq!(summary.by_segment_at_start[..2], [0, 0]);
    assert_eq!(summary.arrivals, 0, "a one-day run has no later signups");
    // A churned intent at signup never books a session.
    let all_churned = SegmentMix::new(0.0, 0.0, 0.0, 1.0).unwrap();
    let config = SynthConfig { mix: all_churned, ..life(400, 20, 21, Hostility::none()) };
    let (out, _, days) = run_with_segments(&config);
    let new: HashSet<usize> = (0..400).filter(|c| days[0][*c].is_none()).collect();
    assert!(new.len() > 60);
    assert!(events(&config, &out).iter().all(|e| !(new.contains(&e.customer) && e.kind == Kind::Session)));
}

/// FNV-1a, to pin bytes without keeping them.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3))
}

#[test]
fn classic_bytes_are_pinned() {
    // Fingerprints of Classic captures made before the Lifecycle world
    // existed: adding a world must not move a single Classic byte.
    let hostile =
        SynthConfig { customers: 120, days: 12, seed: 5, hostility: Hostility::hostile(), ..SynthConfig::default() };
    let (out, summary) = run(&hostile);
    assert_eq!((out.len(), summary.records, fnv1a(&out)), (2_781_060, 3_656, 0x001e_a99f_f1db_54b4));
    let skewed =
        SynthConfig { mix: SegmentMix::new(0.1, 0.2, 0.3, 0.4).unwrap(), hostility: Hostility::none(), ..hostile };
    let (out, summary) = run(&skewed);
    assert_eq!((out.len(), summary.records, fnv1a(&out)), (1_253_612, 1_657, 0xaa27_73a9_8a58_3688));
}
