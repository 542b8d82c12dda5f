//! Calibration: it repairs a deliberately miscalibrated score, and a
//! calibrated artifact applies, saves and loads its calibration.

mod common;

use common::{labels, synthetic};
use pulse_model::calibrate::{fit_isotonic, fit_platt};
use pulse_model::metrics::{auc, brier, expected_calibration_error, log_loss};
use pulse_model::{calibrate, train_gbt, CalibrationMethod, EmbeddedModel, GbtConfig, ModelArtifact};
use rand::{Rng, SeedableRng};

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Outcomes drawn with probability sigmoid(z), and a score that claims
/// sigmoid(2.5·z + 1): overconfident and too high.
fn miscalibrated(n: usize, seed: u64) -> (Vec<f64>, Vec<bool>) {
    let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let z = rng.random_range(-3.0..3.0);
            (sigmoid(2.5 * z + 1.0), rng.random::<f64>() < sigmoid(z))
        })
        .unzip()
}

#[test]
fn calibration_repairs_a_miscalibrated_score_on_fresh_rows() {
    let (fit_scores, fit_labels) = miscalibrated(20_000, 1);
    let (scores, truth) = miscalibrated(20_000, 2);
    let raw_ece = expected_calibration_error(&scores, &truth);
    assert!(raw_ece > 0.1, "the score is miscalibrated: ECE {raw_ece}");
    for calibrator in [fit_platt(&fit_scores, &fit_labels).unwrap(), fit_isotonic(&fit_scores, &fit_labels).unwrap()] {
        let fixed: Vec<f64> = scores.iter().map(|&p| calibrator.apply(p)).collect();
        let ece = expected_calibration_error(&fixed, &truth);
        assert!(ece < 0.02 && ece < raw_ece / 5.0, "{:?}: ECE {raw_ece} → {ece}", calibrator.method());
        assert!(brier(&fixed, &truth) < brier(&scores, &truth));
        assert!(log_loss(&fixed, &truth) < log_loss(&scores, &truth));
        // Monotone: the ranking is kept (isotonic may only add ties).
        let (before, after) = (auc(&scores, &truth).unwrap(), auc(&fixed, &truth).unwrap());
        assert!((before - after).abs() < 0.005, "AUC {before} → {after}");
    }
}

#[test]
fn a_calibrated_artifact_applies_saves_and_loads_its_calibration() {
    let (train, valid, held) = (synthetic(2000, 3), synthetic(800, 4), synthetic(1000, 5));
    let cfg = GbtConfig { max_trees: 20, max_depth: 3, threads: 2, ..GbtConfig::default() };
    let raw = train_gbt(&train, &valid, &cfg, &mut |_| {}).unwrap();
    let raw_model = EmbeddedModel::new(&raw).unwrap();
    let raw_scores = raw_model.score_now(&held.rows).unwrap();
    for method in [CalibrationMethod::Platt, CalibrationMethod::Isotonic] {
        let mut artifact = raw.clone();
        calibrate(&mut artifact, &valid, method).unwrap();
        let names: Vec<&str> = artifact.meta.calibration.keys().map(String::as_str).collect();
        assert_eq!(names, ["churn_risk_14d", "churn_risk_30d", "first_session_success"]);
        let model = EmbeddedModel::new(&artifact).unwrap();
        let scores = model.score_now(&held.rows).unwrap();
        let c = &artifact.meta.calibration["churn_risk_14d"];
        for (s, r) in scores.iter().zip(&raw_scores) {
            assert_eq!(s.churn_risk_14d, c.apply(r.churn_risk_14d));
            assert_eq!(
                (s.session_velocity, s.health_score),
                (r.session_velocity, r.health_score),
                "regressions untouched"
            );
        }
        let p: Vec<f64> = scores.iter().map(|s| s.first_session_success).collect();
        assert!(auc(&p, &labels(&held, 0)).unwrap() > 0.85);

        let dir = std::env::temp_dir().join(format!("pulse-model-calibrated-{method:?}-{}", std::process::id()));
        artifact.save_dir(&dir).unwrap();
        let back = ModelArtifact::load_dir(&dir).unwrap();
        assert_eq!(back.meta.calibration, artifact.meta.calibration);
        assert_eq!(EmbeddedModel::new(&back).unwrap().score_now(&held.rows).unwrap(), scores);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
