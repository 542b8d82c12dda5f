//! Reasons, end to end through `pulse replay --score`: every prediction that
//! has something to compare with says which features raised its churn risk,
//! the features it names are ones that moved, its "was" values are the
//! customer's vector at `since` (written to the features file by the same
//! run), `since` is 14 to 22 days back, and alerts carry the same reasons;
//! without reasons, the scores and the two lists are the same.

mod common;

use std::collections::HashMap;

use common::{describe, run_pulse};
use pulse_schemas::{Prediction, DAY_MS, FEATURE_COUNT};
use serde_json::Value;

fn lines(path: &std::path::Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines().map(|l| serde_json::from_str(l).expect("JSON line")).collect()
}

#[test]
fn reasons_name_features_that_moved_since_about_two_weeks_earlier() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).display().to_string();
    let generated =
        run_pulse(["generate", "--customers", "150", "--days", "45", "--seed", "15", "--out", &p("capture.jsonl")]);
    assert!(generated.status.success(), "{}", describe(&generated));
    let replayed = run_pulse([
        "replay",
        &p("capture.jsonl"),
        "--quiet",
        "--score",
        "--features-out",
        &p("vectors.jsonl"),
        "--predictions-out",
        &p("predictions.jsonl"),
        "--alerts-out",
        &p("alerts.jsonl"),
        "--summary-json",
        &p("summary.json"),
    ]);
    assert!(replayed.status.success(), "{}", describe(&replayed));
    let report = String::from_utf8_lossy(&replayed.stdout);
    assert!(report.contains("save these first") && report.contains("already gone"), "{report}");
    assert!(report.contains("how the lists are built"), "{report}");

    // Every vector by (customer, as_of): "was" must be the vector at `since`.
    // A customer can have several vectors at one `as_of` (records created
    // in the same millisecond): all are kept for finding the one scored.
    let mut vectors: HashMap<(String, i64), Vec<f64>> = HashMap::new();
    let mut all_at: HashMap<(String, i64), Vec<Vec<f64>>> = HashMap::new();
    for v in lines(&dir.path().join("vectors.jsonl")) {
        let features: Vec<f64> = v["features"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
        assert_eq!(features.len(), FEATURE_COUNT);
        let key = (v["customer_id"].as_str().unwrap().to_owned(), v["as_of"].as_i64().unwrap());
        all_at.entry(key.clone()).or_default().push(features.clone());
        vectors.insert(key, features);
    }

    let predictions: Vec<Prediction> = lines(&dir.path().join("predictions.jsonl"))
        .into_iter()
        .map(|v| serde_json::from_value(v).expect("a prediction"))
        .collect();
    let mut first_seen: HashMap<String, i64> = HashMap::new();
    let (mut explained, mut old_enough, mut two_weeks) = (0, 0, 0);
    for p in &predictions {
        let first = *first_seen.entry(p.customer_id.to_string()).or_insert(p.as_of);
        if p.as_of - first >= 21 * DAY_MS {
            old_enough += 1;
        }
        let reasons = p.reasons.as_slice();
        if reasons.is_empty() {
            continue;
        }
        explained += 1;
        let since = p.reasons.since().expect("a prediction's reasons name their reference's time");
        assert!(since < p.as_of && since >= first, "{p:?}");
        if p.as_of - first >= 28 * DAY_MS {
            // Anchors are each week's first vector: on Mondays for a customer
            // scored daily, so 14 days back to 14 days and a Monday more.
            let age = p.as_of - since;
            assert!((14 * DAY_MS..22 * DAY_MS).contains(&age), "4 weeks in, about 14 days back: {p:?}");
            two_weeks += 1;
        }
        let then = &vectors[&(p.customer_id.to_string(), since)];
        let mut last = f64::INFINITY;
        for r in reasons {
            let f = usize::from(r.feature);
            assert_eq!(r.was, f64::from(then[f] as f32), "{p:?}: was is the value at since");
            assert_ne!(r.now, r.was, "{p:?}: a feature that did not move is no reason");
            assert!(r.contribution > 0.0 && r.contribution <= last, "{p:?}: positive, strongest first");
            last = r.contribution;
            let text = r.text();
            assert!(!text.is_empty());
            // "No data" as the two vectors tell, and sentences that never
            // read as the review found them.
            let now = all_at[&(p.customer_id.to_string(), p.as_of)]
                .iter()
                .find(|v| reasons.iter().all(|r| v[usize::from(r.feature)] == r.now))
                .unwrap_or_else(|| panic!("no vector at as_of has the reasons' values now: {p:?}"));
            let as_f32 = |v: &Vec<f64>| -> [f64; FEATURE_COUNT] { std::array::from_fn(|i| f64::from(v[i] as f32)) };
            let now_full: [f64; FEATURE_COUNT] = std::array::from_fn(|i| now[i]);
            assert_eq!(r.no_data, pulse_schemas::NoData::of(f, &now_full, &as_f32(then)), "{p:?}");
            // Each wrong reading as a whole word: "161 minutes" is right.
            let words = format!(" {}", text.replace('(', "( "));
            for wrong in
                [" -0.0", " -0 ", " +", " 0 days ago", " 1 days", " 1 minutes", "of the last 14 days", " in 0 "]
            {
                assert!(!words.contains(wrong), "{text}: {p:?}");
            }
        }
    }
    assert!(old_enough > 1_000, "the capture is long enough: {old_enough}");
    // "Since signing up" only where the first record seen is known to be a
    // signup: after the burn-in (21 days from the stream's first vector); a
    // customer first seen in it may have been met mid-life, and its
    // baseline is dated instead.
    let start = vectors.keys().map(|(_, t)| *t).min().unwrap();
    let burn_in_end = start + 21 * DAY_MS;
    let signups: Vec<_> = predictions.iter().filter_map(|p| p.reasons.baseline().filter(|b| b.signup)).collect();
    assert!(!signups.is_empty(), "customers who signed up after the burn-in");
    for b in &signups {
        assert!(b.since.unwrap() >= burn_in_end - DAY_MS, "a signup baseline in the burn-in: {b:?}");
    }
    let dated_in_burn_in = predictions
        .iter()
        .filter_map(|p| p.reasons.baseline())
        .filter(|b| !b.signup && b.since.is_some_and(|s| s < burn_in_end))
        .count();
    assert!(dated_in_burn_in > 0, "the burn-in's first records are dated");
    assert!(two_weeks > 0 && explained > predictions.len() / 4, "{explained} of {} explained", predictions.len());

    // Alerts carry their prediction's reasons, and say them in the sentence.
    let by_key: HashMap<(String, i64), &Prediction> =
        predictions.iter().map(|p| ((p.customer_id.to_string(), p.as_of), p)).collect();
    let alerts = lines(&dir.path().join("alerts.jsonl"));
    assert!(!alerts.is_empty(), "the capture has customers who turn high-risk");
    let (mut with_reasons, mut with_previous, mut new_customers) = (0, 0, 0);
    for a in &alerts {
        if a["previous_churn_risk_14d"].is_null() {
            // A first prediction is a baseline, never an alert: without an
            // earlier risk, it is a new customer's first past its first week.
            assert!(a["reason"].as_str().unwrap().contains("its first prediction after a week of history"), "{a}");
            new_customers += 1;
        } else {
            with_previous += 1;
        }
        let key = (a["customer_id"].as_str().unwrap().to_owned(), a["as_of"].as_i64().unwrap());
        let p = by_key[&key];
        let reason = a["reason"].as_str().unwrap();
        // The sentence names the reasons' own baseline, not the previous
        // prediction's: the reference's date and risk, or signing up.
        let baseline = |b: pulse_schemas::Baseline| {
            if b.signup {
                format!("since signing up (risk then {:.3})", b.churn_risk_14d.expect("the anchor's risk"))
            } else {
                let mut date = "since ".to_owned();
                pulse_schemas::reasons::write_utc_date(b.since.expect("a replay knows when"), &mut date);
                format!("{date} (risk then {:.3})", b.churn_risk_14d.expect("the anchor's risk"))
            }
        };
        let Some(carried) = a.get("reasons") else {
            // None worked out: the sentence says why, never a bare score.
            assert!(p.reasons.is_empty() && reason.contains(". No reasons: "), "{a}");
            continue;
        };
        let carried: pulse_schemas::Reasons = serde_json::from_value(carried.clone()).unwrap();
        let since = baseline(carried.baseline().expect("written reasons were worked out"));
        if p.reasons.is_empty() {
            // Worked out, and no feature raised the risk: said so.
            assert!(carried.is_empty() && reason.contains(&format!(". No feature raised it {since}")), "{a}");
            continue;
        }
        with_reasons += usize::from(!a["previous_churn_risk_14d"].is_null());
        assert_eq!(carried, p.reasons, "{a}");
        let first = p.reasons.as_slice()[0].text();
        // A risk below the baseline's fell since, whatever raised it.
        let then = carried.baseline().and_then(|b| b.churn_risk_14d).expect("the anchor's risk");
        let lead = if a["churn_risk_14d"].as_f64().unwrap() < f64::from(then) {
            format!(". Down {since}; what raised it most: {first}")
        } else {
            format!(". Raised most {since}: {first}")
        };
        assert!(reason.contains(&lead), "{a}");
    }
    // A risk that rose above 0.7 rose since two weeks earlier, nearly always.
    assert!(with_previous > 0 && with_reasons * 10 >= with_previous * 9, "{with_reasons} of {with_previous} alerts");
    assert!(new_customers > 0, "the capture's customers start new, and some score high at their first session");

    // Without reasons: the same scores, no reasons anywhere.
    let plain = run_pulse([
        "replay",
        &p("capture.jsonl"),
        "--quiet",
        "--score",
        "--no-reasons",
        "--predictions-out",
        &p("plain.jsonl"),
        "--summary-json",
        &p("plain-summary.json"),
    ]);
    assert!(plain.status.success(), "{}", describe(&plain));
    let plain: Vec<Prediction> = lines(&dir.path().join("plain.jsonl"))
        .into_iter()
        .map(|v| serde_json::from_value(v).expect("a prediction"))
        .collect();
    assert_eq!(plain.len(), predictions.len());
    for (a, b) in plain.iter().zip(&predictions) {
        assert!(a.reasons.is_empty());
        assert_eq!((a.as_of, a.scores), (b.as_of, b.scores), "reasons change no score");
    }
    // ... and the same lists: they compare with the same weekly anchors,
    // kept (without their vectors) when there are no reasons.
    let lists = |name: &str| {
        let summary: Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join(name)).unwrap()).unwrap();
        without_reasons(summary["scoring"]["lists"].clone())
    };
    let (with, without) = (lists("summary.json"), lists("plain-summary.json"));
    assert!(with["savable_total"].as_u64().unwrap() > 0, "the capture has savable customers: {with}");
    assert!(with["savable"].as_array().is_some_and(|s| !s.is_empty()), "{with}");
    assert_eq!(without, with);
}

/// `value` with every `reasons` field taken out, at any depth.
fn without_reasons(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter().filter(|(k, _)| k != "reasons").map(|(k, v)| (k, without_reasons(v))).collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(without_reasons).collect()),
        other => other,
    }
}

/// The reasons are the same bytes however many threads work them out beside
/// the scoring stage, or none (`--reasons-threads 0`: the stage itself):
/// every prediction and alert, the fleet metrics, and what comes from the
/// stage's memory at the end (each customer's latest prediction, the two
/// lists with their reasons).
#[test]
fn reasons_are_the_same_bytes_on_any_number_of_threads() {
    let dir = tempfile::tempdir().unwrap();
    let demo = |threads: &str| {
        let out = dir.path().join(format!("threads-{threads}"));
        let history = out.join("history.jsonl");
        let args =
            ["demo", "--customers", "120", "--days", "40", "--seed", "15", "--quiet", "--reasons-threads", threads];
        let ran = run_pulse(args.iter().map(|a| a.to_string()).chain([
            "--out-dir".to_owned(),
            out.display().to_string(),
            "--predictions-history".to_owned(),
            history.display().to_string(),
        ]));
        assert!(ran.status.success(), "{}", describe(&ran));
        let files: Vec<(&str, String)> = ["history.jsonl", "predictions.jsonl", "alerts.jsonl", "fleet-metrics.jsonl"]
            .into_iter()
            .map(|name| (name, std::fs::read_to_string(out.join(name)).unwrap()))
            .collect();
        // The report from the lists on, without the files' paths.
        let report = String::from_utf8_lossy(&ran.stdout).into_owned();
        let lists = report.find("save these first").map(|at| &report[at..]).unwrap_or_default();
        let lists: Vec<String> = lists.lines().filter(|l| !l.starts_with("wrote ")).map(str::to_owned).collect();
        (files, lists)
    };
    let (files, lists) = demo("0");
    let history = &files[0].1;
    let explained = history.lines().filter(|l| l.contains("\"reasons\"")).count();
    assert!(
        explained * 2 > history.lines().count(),
        "{explained} of {} predictions have reasons",
        history.lines().count()
    );
    assert!(files[2].1.contains("\"reasons\""), "some alert carries reasons");
    assert!(files[1].1.contains("\"reasons\""), "some customer's latest prediction has reasons");
    assert!(lists.iter().any(|l| l.contains(" (was")), "the lists show reasons: {lists:?}");
    // The demo prints the last alerts as sent, with their reasons.
    let alerts_at = lists.iter().position(|l| l.starts_with("latest alerts: the last ")).expect("alerts printed");
    assert!(lists[alerts_at..].iter().any(|l| l.contains("Raised most since ")), "{lists:?}");
    for threads in ["1", "2", "3"] {
        let (other_files, other_lists) = demo(threads);
        for ((name, want), (_, got)) in files.iter().zip(&other_files) {
            assert!(got == want, "{name} differs with --reasons-threads {threads}");
        }
        assert_eq!(other_lists, lists, "the lists with --reasons-threads {threads}");
    }
}
