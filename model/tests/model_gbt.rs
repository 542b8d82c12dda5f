//! Gradient-boosted trees: they learn known rules, keep the best iteration,
//! are deterministic, and save and load bit for bit.

mod common;

use common::{labels, synthetic, values};
use pulse_model::gbt::{GbtModel, Loss};
use pulse_model::metrics::{auc, mae};
use pulse_model::{train_gbt, EmbeddedModel, GbtConfig, Model, ModelArtifact, ModelKind};

/// Small enough for a debug build.
fn config() -> GbtConfig {
    GbtConfig { max_trees: 60, max_depth: 4, learning_rate: 0.2, threads: 2, ..GbtConfig::default() }
}

fn gbt(artifact: &ModelArtifact) -> &GbtModel {
    match &artifact.model {
        Model::Gbt(g) => g,
        other => panic!("not a gbt model: {other:?}"),
    }
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("pulse-model-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn gbt_learns_a_threshold_rule_and_a_regression() {
    let (train, valid, test) = (synthetic(4000, 1), synthetic(1000, 2), synthetic(2000, 3));
    let artifact = train_gbt(&train, &valid, &config(), &mut |_| {}).unwrap();
    assert_eq!(artifact.kind(), ModelKind::Gbt);
    let model = EmbeddedModel::new(&artifact).unwrap();
    let scores = model.score_now(&test.rows).unwrap();

    // x3 > 2 with 10% of labels flipped: the best possible AUC is ~0.9.
    let p: Vec<f64> = scores.iter().map(|s| s.first_session_success).collect();
    let a = auc(&p, &labels(&test, 0)).unwrap();
    assert!(a > 0.88, "first_session_success AUC {a}");
    // An interaction of two features.
    let p: Vec<f64> = scores.iter().map(|s| s.churn_risk_14d).collect();
    let a = auc(&p, &labels(&test, 2)).unwrap();
    assert!(a > 0.85, "churn_risk_14d AUC {a}");

    // health = 20·x0 + N(0, 2): the median constant is off by ~25 on average.
    let truth = values(&test, 4);
    let h: Vec<f64> = scores.iter().map(|s| s.health_score).collect();
    let err = mae(&h, &truth);
    assert!(err < 3.0, "health MAE {err}");
    assert!(h.iter().all(|v| (0.0..=100.0).contains(v)));
    let v: Vec<f64> = scores.iter().map(|s| s.session_velocity).collect();
    let err = mae(&v, &values(&test, 1));
    assert!(err < 0.2, "velocity MAE {err}");
    assert!(v.iter().all(|&v| v >= 0.0));
}

#[test]
fn gbt_squared_health_loss_also_learns() {
    let (train, valid, test) = (synthetic(3000, 4), synthetic(800, 5), synthetic(1000, 6));
    let cfg = GbtConfig { health_loss: Loss::Squared, ..config() };
    let model = EmbeddedModel::new(&train_gbt(&train, &valid, &cfg, &mut |_| {}).unwrap()).unwrap();
    let h: Vec<f64> = model.score_now(&test.rows).unwrap().iter().map(|s| s.health_score).collect();
    let err = mae(&h, &values(&test, 4));
    assert!(err < 3.0, "health MAE {err}");
}

#[test]
fn gbt_training_is_deterministic_and_independent_of_threads() {
    let (train, valid) = (synthetic(2000, 7), synthetic(500, 8));
    let cfg = GbtConfig { max_trees: 25, subsample: 0.7, ..config() };
    let a = train_gbt(&train, &valid, &cfg, &mut |_| {}).unwrap();
    let again = train_gbt(&train, &valid, &cfg, &mut |_| {}).unwrap();
    assert!(a.meta_json().unwrap() == again.meta_json().unwrap(), "the same bytes on disk");
    let b = train_gbt(&train, &valid, &GbtConfig { threads: 1, ..cfg.clone() }, &mut |_| {}).unwrap();
    assert_eq!(gbt(&a), gbt(&b), "one thread or two: the same trees");
    let c = train_gbt(&train, &valid, &GbtConfig { seed: 8, ..cfg }, &mut |_| {}).unwrap();
    assert_ne!(gbt(&a), gbt(&c), "another seed subsamples other rows");
}

#[test]
fn gbt_saves_and_loads_bit_for_bit() {
    let (train, valid, test) = (synthetic(2000, 9), synthetic(500, 10), synthetic(1000, 11));
    let artifact = train_gbt(&train, &valid, &GbtConfig { max_trees: 30, ..config() }, &mut |_| {}).unwrap();
    let dir = temp_dir("gbt-save");
    artifact.save_dir(&dir).unwrap();
    assert!(!dir.join("model.safetensors").exists(), "trees live in model.json");
    let back = ModelArtifact::load_dir(&dir).unwrap();
    assert_eq!(gbt(&back), gbt(&artifact));
    // All but the training record, whose floats serde_json reads to within a unit in the last place.
    let (m, n) = (&back.meta, &artifact.meta);
    assert_eq!((&m.name, &m.version, &m.feature_names, &m.heads), (&n.name, &n.version, &n.feature_names, &n.heads));
    let (a, b) = (EmbeddedModel::new(&artifact).unwrap(), EmbeddedModel::new(&back).unwrap());
    let (sa, sb) = (a.score_now(&test.rows).unwrap(), b.score_now(&test.rows).unwrap());
    for (x, y) in sa.iter().zip(&sb) {
        for (u, v) in [
            (x.first_session_success, y.first_session_success),
            (x.session_velocity, y.session_velocity),
            (x.churn_risk_14d, y.churn_risk_14d),
            (x.churn_risk_30d, y.churn_risk_30d),
            (x.health_score, y.health_score),
        ] {
            assert_eq!(u.to_bits(), v.to_bits());
        }
    }
    // Batch inference equals row-by-row margins.
    let g = gbt(&artifact);
    let mut batch = Vec::new();
    g.margins_into(&test.rows, &mut batch);
    for (row, m) in test.rows.iter().zip(&batch) {
        assert_eq!(&g.margins(row), m);
    }
    // A stream's batches are mostly smaller than the eight lanes (their
    // rows walk several trees at once instead): every size up to two blocks
    // plus one, at every offset, gives the same margins.
    for n in 1..=129 {
        let rows = &test.rows[n..2 * n];
        let mut batch = Vec::new();
        g.margins_into(rows, &mut batch);
        assert_eq!(batch.len(), n);
        for (row, m) in rows.iter().zip(&batch) {
            assert_eq!(m.map(f64::to_bits), g.margins(row).map(f64::to_bits), "a batch of {n}");
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn gbt_keeps_the_best_iteration_and_records_covers() {
    let (train, valid) = (synthetic(2000, 12), synthetic(500, 13));
    let cfg = GbtConfig { max_trees: 200, learning_rate: 0.5, early_stopping_rounds: 5, subsample: 1.0, ..config() };
    let mut reports = Vec::new();
    let artifact = train_gbt(&train, &valid, &cfg, &mut |p| reports.push(p)).unwrap();
    let model = gbt(&artifact);
    let done: Vec<_> = reports.iter().filter(|p| p.done).collect();
    assert_eq!(done.len(), 5, "one final report per head");
    for head in &artifact.meta.training["heads"].as_array().unwrap()[..] {
        let (grown, kept) = (head["trees_grown"].as_u64().unwrap(), head["trees_kept"].as_u64().unwrap());
        assert!(kept < grown && grown < 200, "a fast learning rate overfits and stops early: {head}");
        assert_eq!(grown - kept, 5, "stopped 5 trees after the best: {head}");
    }
    for p in &done {
        assert_eq!(p.trees, p.best_trees);
    }
    // Velocity is squared error: a row's hessian is 1, so covers count rows.
    for tree in &model.heads()[1].trees {
        let nodes = tree.nodes();
        assert_eq!(nodes[0].cover, train.len() as f64);
        for n in nodes.iter().filter(|n| !n.is_leaf()) {
            let (l, r) = (nodes[n.left as usize].cover, nodes[n.right as usize].cover);
            assert!((l + r - n.cover).abs() < 1e-9 && l >= 1.0 && r >= 1.0);
        }
    }
}

#[test]
fn gbt_refuses_bad_settings() {
    let (train, valid) = (synthetic(100, 14), synthetic(50, 15));
    for (cfg, field) in [
        (GbtConfig { learning_rate: 0.0, ..config() }, "learning_rate"),
        (GbtConfig { max_bins: 256, ..config() }, "max_bins"),
        (GbtConfig { subsample: 1.5, ..config() }, "subsample"),
        (GbtConfig { health_loss: Loss::Logistic, ..config() }, "health_loss"),
    ] {
        let err = train_gbt(&train, &valid, &cfg, &mut |_| {}).unwrap_err().to_string();
        assert!(err.contains(field), "{err}");
    }
    let err = train_gbt(&train, &Default::default(), &config(), &mut |_| {}).unwrap_err().to_string();
    assert!(err.contains("validation"), "{err}");
    // As JSON: defaults for what is left out, typos refused.
    let cfg: GbtConfig = serde_json::from_str(r#"{"max_depth": 4, "health_loss": "squared"}"#).unwrap();
    assert_eq!((cfg.max_depth, cfg.health_loss, cfg.max_trees), (4, Loss::Squared, 300));
    assert!(serde_json::from_str::<GbtConfig>(r#"{"max_dept": 4}"#).is_err());
}

#[test]
fn raw_thresholds_send_every_training_row_where_its_bins_did() {
    // The training loss is computed on binned rows; recomputed from the served
    // trees (raw thresholds) on the raw rows, it must be the same.
    let (train, valid) = (synthetic(3000, 16), synthetic(500, 17));
    let cfg = GbtConfig { max_trees: 15, early_stopping_rounds: 0, subsample: 1.0, ..config() };
    let mut reports = Vec::new();
    let artifact = train_gbt(&train, &valid, &cfg, &mut |p| reports.push(p)).unwrap();
    let model = gbt(&artifact);
    let softplus = |x: f64| x.max(0.0) + (-x.abs()).exp().ln_1p();
    for (h, head) in [(0, "first_session_success"), (2, "churn_risk_14d")] {
        let reported = reports.iter().find(|p| p.done && p.head == head).unwrap().train_loss;
        let y = values(&train, h);
        let loss = train.rows.iter().zip(&y).map(|(r, y)| {
            let m = model.margins(r)[h];
            softplus(m) - y * m
        });
        let recomputed = loss.sum::<f64>() / y.len() as f64;
        assert!((reported - recomputed).abs() < 1e-12, "{head}: {reported} vs {recomputed}");
    }
}
