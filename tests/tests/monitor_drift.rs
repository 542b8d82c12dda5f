//! The model monitor sees a drift, and only once it can: two captures of
//! the same synthetic marketplace (300 customers, 90 days, one seed), one
//! where sessions become four times rarer for everyone from day 45
//! (`pulse generate --shift-day 45`), replayed with `--score` through the real
//! command line. The realised quality of `churn_risk_14d` (the
//! `model_quality` blocks of `--metrics-out`) must
//!
//! * be the same in both while every horizon in the window closed before
//!   the shift's first day: nothing that happened after a prediction's
//!   horizon may enter its label;
//! * move clearly once the window holds horizons that lie wholly after the
//!   shift: more churn realised than predicted (label rate up, calibration
//!   gap and Brier score up, AUC down), against the control.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{describe, run_pulse};
use serde_json::Value;

const START_MS: i64 = 1_767_571_200_000; // the generator's default first day
const DAY_MS: i64 = 86_400_000;
const SHIFT_DAY: i64 = 45;

/// `churn_risk_14d`'s figures by the window's end (days after the start).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Figures {
    count: u64,
    label_rate: f64,
    mean_predicted: f64,
    brier: f64,
    auc: f64,
}

fn generate_and_replay(dir: &Path, name: &str, shift: bool) -> BTreeMap<i64, Figures> {
    let capture = dir.join(format!("{name}.jsonl.zst"));
    let capture = capture.to_str().unwrap();
    let mut args = vec!["generate", "--customers", "300", "--days", "90", "--seed", "7", "--quiet", "--out", capture];
    let shift_day = SHIFT_DAY.to_string();
    if shift {
        args.extend(["--shift-day", &shift_day, "--shift-sessions", "0.25"]);
    }
    let out = run_pulse(&args);
    assert!(out.status.success(), "pulse generate: {}", describe(&out));
    let metrics = dir.join(format!("{name}.metrics.jsonl"));
    let out = run_pulse([
        "replay",
        capture,
        "--score",
        "--quiet",
        "--metrics-interval-s",
        "86400",
        "--metrics-out",
        metrics.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "pulse replay: {}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("model quality, realised"), "the report prints the model quality:\n{stdout}");
    let mut by_day = BTreeMap::new();
    for line in std::fs::read_to_string(&metrics).unwrap().lines() {
        let snapshot: Value = serde_json::from_str(line).unwrap();
        let Some(q) = snapshot.get("model_quality") else { continue };
        let h = &q["heads"][0];
        assert_eq!(h["head"], "churn_risk_14d");
        assert_eq!(q["heads"][1]["head"], "churn_risk_30d");
        if h["count"].as_u64().unwrap() == 0 {
            continue;
        }
        let day = (q["window_end"].as_i64().unwrap() - START_MS) / DAY_MS;
        let f = |k: &str| h[k].as_f64().unwrap_or_else(|| panic!("{k} in {h}"));
        by_day.insert(
            day,
            Figures {
                count: h["count"].as_u64().unwrap(),
                label_rate: f("label_rate"),
                mean_predicted: f("mean_predicted"),
                brier: f("brier"),
                auc: f("auc"),
            },
        );
    }
    by_day
}

#[test]
fn the_monitor_sees_a_drift_only_after_it_reaches_closed_horizons() {
    let dir = tempfile::tempdir().unwrap();
    let control = generate_and_replay(dir.path(), "control", false);
    let shifted = generate_and_replay(dir.path(), "shifted", true);

    // A window ending at day E holds close days E−7 ..= E−1; a close day C
    // labels midnight C−14 from day slots C−14 ..= C−1. All before the shift
    // while E − 1 ≤ SHIFT_DAY.
    let before: Vec<i64> = control.keys().copied().filter(|&e| e <= SHIFT_DAY + 1).collect();
    assert!(before.len() >= 20, "windows before the shift: {before:?}");
    for e in &before {
        let (c, s) = (control[e], shifted[e]);
        assert_eq!(c.count, s.count, "day {e}");
        assert!((c.brier - s.brier).abs() < 0.005, "day {e}: Brier {c:?} vs {s:?}");
        assert!((c.label_rate - s.label_rate).abs() < 0.005, "day {e}: label rate {c:?} vs {s:?}");
        assert!((c.auc - s.auc).abs() < 0.005, "day {e}: AUC {c:?} vs {s:?}");
    }
    // Stable in the control before the shift, once the first month's
    // burn-in has left the window (from day 30: midnights of day 9 on).
    for e in before.iter().filter(|&&e| e >= 30) {
        let c = control[e];
        assert!(c.brier < 0.1 && c.auc > 0.9, "day {e}: {c:?}");
        assert!((c.label_rate - c.mean_predicted).abs() < 0.06, "day {e}: calibrated {c:?}");
    }

    // Three weeks after the shift every horizon in the window lies after it.
    let after = SHIFT_DAY + 21;
    let (c, s) = (control[&after], shifted[&after]);
    assert!(s.label_rate - c.label_rate > 0.15, "label rate {c:?} vs {s:?}");
    assert!(s.brier - c.brier > 0.08, "Brier {c:?} vs {s:?}");
    assert!(
        (s.label_rate - s.mean_predicted) - (c.label_rate - c.mean_predicted) > 0.15,
        "calibration gap {c:?} vs {s:?}"
    );
    assert!(c.auc - s.auc > 0.05, "AUC {c:?} vs {s:?}");
    // And the control stays where it was.
    assert!(c.brier < 0.1 && c.auc > 0.9, "control at day {after}: {c:?}");
}
