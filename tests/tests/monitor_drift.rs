//! The model monitor sees a drift, and only once it can: two captures of
//! the same synthetic marketplace (300 customers, 90 days, one seed), one
//! where sessions become four times rarer for everyone from day 45
//! (`pulse generate --shift-day 45`), replayed with `--score` through the real
//! command line. The realised quality of `churn_risk_14d` (the
//! `model_quality` blocks of `--metrics-out`) must
//!
//! * start after the replay's burn-in (`--burn-in-days`, 21 by
//!   default): the first window holding a resolution ends on day 21 + 14 + 1;
//! * be the same in both, bit for bit, while every horizon in the window
//!   closed before the shift's first day, and differ in the very next
//!   window: nothing that happened after a prediction's horizon may enter its
//!   label, and a horizon closed a day late (or early) fails here;
//! * move clearly once the window holds horizons that lie wholly after the
//!   shift: more churn realised than predicted (label rate up, calibration
//!   error and Brier score up, AUC down), against the control, on both heads;
//!   the documented alarm (`CalibrationError > 0.10 or BrierScore > 0.12 or
//!   RealisedAuc < 0.88`) is breached by the shifted fleet and never by the
//!   control, every figure published (300 customers a day).

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{describe, run_pulse};
use serde_json::Value;

const START_MS: i64 = 1_767_571_200_000; // the generator's default first day
const DAY_MS: i64 = 86_400_000;
const SHIFT_DAY: i64 = 45;

/// A head's figures by the window's end (days after the start).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Figures {
    count: u64,
    label_rate: f64,
    mean_predicted: f64,
    brier: f64,
    auc: f64,
    calibration_error: f64,
    published: bool,
}

impl Figures {
    /// The README's alarm condition on this window.
    fn breaches(&self) -> bool {
        self.calibration_error > 0.10 || self.brier > 0.12 || self.auc < 0.88
    }
}

const BURN_IN_DAYS: i64 = 21;

/// Per head (`churn_risk_14d`, `churn_risk_30d`), the figures of each
/// window that resolved some.
fn generate_and_replay(dir: &Path, name: &str, shift: bool) -> [BTreeMap<i64, Figures>; 2] {
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
    let mut by_day = [BTreeMap::new(), BTreeMap::new()];
    for line in std::fs::read_to_string(&metrics).unwrap().lines() {
        let snapshot: Value = serde_json::from_str(line).unwrap();
        let Some(q) = snapshot.get("model_quality") else { continue };
        for (i, name) in ["churn_risk_14d", "churn_risk_30d"].into_iter().enumerate() {
            let h = &q["heads"][i];
            assert_eq!(h["head"], name);
            if h["count"].as_u64().unwrap() == 0 {
                continue;
            }
            let day = (q["window_end"].as_i64().unwrap() - START_MS) / DAY_MS;
            let f = |k: &str| h[k].as_f64().unwrap_or_else(|| panic!("{k} in {h}"));
            let figures = Figures {
                count: h["count"].as_u64().unwrap(),
                label_rate: f("label_rate"),
                mean_predicted: f("mean_predicted"),
                brier: f("brier"),
                auc: f("auc"),
                calibration_error: f("calibration_error"),
                published: h["withheld"].is_null(),
            };
            by_day[i].insert(day, figures);
        }
    }
    by_day
}

#[test]
fn the_monitor_sees_a_drift_only_after_it_reaches_closed_horizons() {
    let dir = tempfile::tempdir().unwrap();
    let [control, control30] = generate_and_replay(dir.path(), "control", false);
    let [shifted, shifted30] = generate_and_replay(dir.path(), "shifted", true);

    // The burn-in's last midnight is day 20: the first judged one, day 21,
    // closes on day 35, which the window ending on day 36 holds first.
    let first = BURN_IN_DAYS + 14 + 1;
    assert_eq!(control.keys().next(), Some(&first), "the first window after the burn-in");
    assert_eq!(shifted.keys().next(), Some(&first));

    // A window ending at day E holds close days E−7 ..= E−1; a close day C
    // labels midnight C−14 from day slots C−14 ..= C−1. All before the shift
    // while E − 1 ≤ SHIFT_DAY: the same figures, bit for bit.
    let before: Vec<i64> = control.keys().copied().filter(|&e| e <= SHIFT_DAY + 1).collect();
    assert_eq!(before, (first..=SHIFT_DAY + 1).collect::<Vec<_>>(), "a window every day");
    for e in &before {
        assert_eq!(control[e], shifted[e], "day {e}");
        let c = control[e];
        assert!(c.published, "day {e}: 300 customers a day are enough to publish: {c:?}");
        assert!(c.brier < 0.1 && c.auc > 0.9 && c.calibration_error < 0.06, "day {e}: {c:?}");
        assert!((c.label_rate - c.mean_predicted).abs() < 0.06, "day {e}: calibrated {c:?}");
    }
    // The next window holds close day SHIFT_DAY + 1, whose labels read the
    // shift's first day: fewer sessions, more churn realised.
    let next = SHIFT_DAY + 2;
    let (c, s) = (control[&next], shifted[&next]);
    assert_eq!(c.count, s.count);
    assert!(s.label_rate > c.label_rate, "day {next}: the shift's first day reaches the labels: {c:?} vs {s:?}");

    // Three weeks after the shift every 14-day horizon in the window lies after it.
    let after = SHIFT_DAY + 21;
    let (c, s) = (control[&after], shifted[&after]);
    assert!(s.label_rate - c.label_rate > 0.15, "label rate {c:?} vs {s:?}");
    assert!(s.brier - c.brier > 0.08, "Brier {c:?} vs {s:?}");
    assert!(s.calibration_error - c.calibration_error > 0.1, "calibration error {c:?} vs {s:?}");
    assert!(c.auc - s.auc > 0.05, "AUC {c:?} vs {s:?}");
    assert!(s.published && s.breaches(), "the alarm fires on the shifted fleet: {s:?}");
    // The control never breaches the alarm, on any published window.
    for (e, c) in &control {
        assert!(c.published && !c.breaches(), "control at day {e}: {c:?}");
    }
    // And the 30-day head, once its horizons lie after the shift too.
    let after30 = SHIFT_DAY + 37;
    let (c, s) = (control30[&after30], shifted30[&after30]);
    assert!(s.label_rate - c.label_rate > 0.1, "churn_risk_30d label rate {c:?} vs {s:?}");
    assert!(s.brier > c.brier && s.auc < c.auc, "churn_risk_30d {c:?} vs {s:?}");
}
