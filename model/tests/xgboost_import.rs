//! XGBoost interop: five boosters trained and saved by XGBoost itself
//! (`tests/fixtures/xgboost/make.py`, xgboost 3.2.0; two more by
//! `make_1x.py`, xgboost 1.7.6), imported with
//! `import_xgboost` and served by `EmbeddedModel`, give XGBoost's own
//! predictions — on ordinary rows, rows with missing (NaN) values, and rows
//! sitting on the split conditions (exactly at a threshold, at the float64
//! just below it that XGBoost rounds up in float32, at the float32 below it).
//! Files that do not fit pulse are refused with the reason.

use std::path::{Path, PathBuf};

use pulse_model::artifact::head_value;
use pulse_model::{import_xgboost, EmbeddedModel, Model, ModelArtifact, ModelKind};
use pulse_schemas::{Features, FEATURE_COUNT, FEATURE_NAMES};
use serde_json::{json, Value};

const HEADS: [&str; 5] =
    ["first_session_success", "session_velocity", "churn_risk_14d", "churn_risk_30d", "health_score"];

/// Relative tolerance against XGBoost's float32 predictions (which sum the
/// margin in float32; pulse sums in float64).
const REL_TOL: f64 = 1e-5;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/xgboost")
}

fn files(health: &str) -> Vec<(&'static str, PathBuf)> {
    HEADS
        .iter()
        .map(|&h| (h, fixtures().join(format!("{}.json", if h == "health_score" { health } else { h }))))
        .collect()
}

struct Rows {
    features: Vec<Features>,
    /// Per row, XGBoost's prediction by column name (the model files' names).
    expected: Vec<Vec<(String, f64)>>,
}

/// A CSV of numbers: its header and rows.
fn csv(file: &str) -> (Vec<String>, Vec<Vec<f64>>) {
    let text = std::fs::read_to_string(fixtures().join(file)).unwrap();
    let mut lines = text.lines();
    let header: Vec<String> = lines.next().unwrap().split(',').map(str::to_string).collect();
    let rows: Vec<Vec<f64>> = lines.map(|l| l.split(',').map(|v| v.parse::<f64>().unwrap()).collect()).collect();
    assert!(rows.iter().all(|r| r.len() == header.len()));
    (header, rows)
}

/// rows.csv's features and predictions (XGBoost 3.2.0's, make.py), with
/// rows_1x.csv's predictions (XGBoost 1.7.6's, make_1x.py) for the same rows.
fn rows() -> Rows {
    let (header, values) = csv("rows.csv");
    assert_eq!(header[..FEATURE_COUNT], FEATURE_NAMES[..], "rows.csv's features are pulse's, in order");
    let (header_1x, values_1x) = csv("rows_1x.csv");
    assert_eq!(values.len(), values_1x.len());
    let mut rows = Rows { features: Vec::new(), expected: Vec::new() };
    for (v, v1) in values.iter().zip(&values_1x) {
        rows.features.push(v[..FEATURE_COUNT].try_into().unwrap());
        let columns = header[FEATURE_COUNT..].iter().cloned().zip(v[FEATURE_COUNT..].iter().copied());
        rows.expected.push(columns.chain(header_1x.iter().cloned().zip(v1.iter().copied())).collect());
    }
    rows
}

fn expected(rows: &Rows, r: usize, column: &str) -> f64 {
    rows.expected[r].iter().find(|(c, _)| c == column).unwrap().1
}

/// What pulse serves for XGBoost's raw prediction `p` of head `h`: the
/// regressions clamped to their ranges.
fn served(h: usize, p: f64) -> f64 {
    match h {
        1 => p.max(0.0),
        4 => p.clamp(0.0, 100.0),
        _ => p,
    }
}

/// Scores every row with `artifact` and checks each head against the
/// column; returns the largest absolute and relative errors.
fn agreement(artifact: &ModelArtifact, rows: &Rows, columns: [&str; 5]) -> [(f64, f64); 5] {
    let model = EmbeddedModel::new(artifact).unwrap();
    let scores = model.score_now(&rows.features).unwrap();
    let mut worst = [(0.0f64, 0.0f64); 5];
    for (r, s) in scores.iter().enumerate() {
        for (h, column) in columns.iter().enumerate() {
            let want = served(h, expected(rows, r, column));
            let got = head_value(s, h);
            let abs = (got - want).abs();
            let rel = abs / want.abs().max(f64::MIN_POSITIVE);
            let nan = rows.features[r].iter().any(|x| x.is_nan());
            assert!(
                rel <= REL_TOL,
                "row {r} ({}), {column}: pulse {got}, XGBoost {want} (relative error {rel:e})",
                if nan { "with missing values" } else { "no missing values" }
            );
            worst[h] = (worst[h].0.max(abs), worst[h].1.max(rel));
        }
    }
    worst
}

#[test]
fn xgboost_models_score_as_xgboost_does() {
    let rows = rows();
    assert_eq!(rows.features.len(), 50);
    let with_nan = rows.features.iter().filter(|r| r.iter().any(|x| x.is_nan())).count();
    assert!(with_nan >= 30, "most rows have missing values ({with_nan})");

    let artifact = import_xgboost(&files("health_score"), "xgb-test", "3").unwrap();
    assert_eq!(artifact.kind(), ModelKind::Gbt);
    assert_eq!((artifact.meta.name.as_str(), artifact.meta.version.as_str()), ("xgb-test", "3"));
    let Model::Gbt(gbt) = &artifact.model else { panic!("kind gbt") };
    assert_eq!(gbt.tree_count(), 5 * 14);
    // The trees learned both default directions, so NaN rows test both.
    let nodes: Vec<_> =
        gbt.heads().iter().flat_map(|h| &h.trees).flat_map(|t| t.nodes()).filter(|n| !n.is_leaf()).collect();
    assert!(nodes.iter().any(|n| n.default_left) && nodes.iter().any(|n| !n.default_left));
    // A split's (informational) value: its children's, weighted by cover.
    for tree in gbt.heads().iter().flat_map(|h| &h.trees) {
        let n = tree.nodes();
        for s in n.iter().filter(|s| !s.is_leaf()) {
            let (l, r) = (n[s.left as usize], n[s.right as usize]);
            assert!((s.value - (l.cover * l.value + r.cover * r.value) / (l.cover + r.cover)).abs() < 1e-12);
            assert!((s.cover - (l.cover + r.cover)).abs() <= 1e-3 * s.cover, "sum_hessian adds up");
        }
    }
    // base_score: stored in probability space, the margin is its logit.
    let imported = &artifact.meta.training["imported"];
    assert_eq!(imported[2]["head"], "churn_risk_14d");
    assert_eq!(imported[2]["base_score"].as_f64().unwrap(), f64::from(0.2f32));
    assert!((gbt.heads()[2].base_score - (0.2f64 / 0.8).ln()).abs() < 1e-7);
    assert_eq!(imported[0]["xgboost_version"], "3.2.0");

    let worst = agreement(&artifact, &rows, HEADS);
    for (h, (abs, rel)) in worst.iter().enumerate() {
        eprintln!("{:>22}: max abs error {abs:.3e}, max rel error {rel:.3e}", HEADS[h]);
    }

    // The artifact pulse writes serves the same, bit for bit.
    let dir = std::env::temp_dir().join(format!("pulse-xgb-import-{}", std::process::id()));
    artifact.save_dir(&dir).unwrap();
    let loaded = ModelArtifact::load_dir(&dir).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let a = EmbeddedModel::new(&artifact).unwrap().score_now(&rows.features).unwrap();
    let b = EmbeddedModel::new(&loaded).unwrap().score_now(&rows.features).unwrap();
    assert_eq!(a, b);
}

#[test]
fn a_pseudo_huber_health_model_scores_as_xgboost_does() {
    let rows = rows();
    let artifact = import_xgboost(&files("health_score_huber"), "xgb-huber", "1").unwrap();
    assert_eq!(artifact.meta.training["imported"][4]["objective"], "reg:pseudohubererror");
    let columns =
        ["first_session_success", "session_velocity", "churn_risk_14d", "churn_risk_30d", "health_score_huber"];
    let worst = agreement(&artifact, &rows, columns);
    eprintln!("health_score (pseudo-Huber): max abs error {:.3e}, max rel error {:.3e}", worst[4].0, worst[4].1);
}

#[test]
fn xgboost_1x_models_score_as_xgboost_1x_does() {
    let rows = rows();
    let mut f = files("health_score");
    f[2].1 = fixtures().join("churn_risk_14d_1x.json");
    f[4].1 = fixtures().join("health_score_1x.json");
    let artifact = import_xgboost(&f, "xgb-1x", "1").unwrap();
    let imported = &artifact.meta.training["imported"];
    assert_eq!(imported[2]["xgboost_version"], "1.7.6");
    // 1.x writes base_score as a plain number, in output space too.
    assert_eq!(imported[2]["base_score"].as_f64().unwrap(), f64::from(0.3f32));
    let Model::Gbt(gbt) = &artifact.model else { panic!("kind gbt") };
    assert!((gbt.heads()[2].base_score - (0.3f64 / 0.7).ln()).abs() < 1e-7);
    let columns =
        ["first_session_success", "session_velocity", "churn_risk_14d_1x", "churn_risk_30d", "health_score_1x"];
    let worst = agreement(&artifact, &rows, columns);
    for h in [2, 4] {
        eprintln!(
            "{:>22} (XGBoost 1.7.6): max abs error {:.3e}, max rel error {:.3e}",
            HEADS[h], worst[h].0, worst[h].1
        );
    }
}

/// A file in a directory of its own under the temporary directory, both
/// removed when dropped.
struct TempFile {
    dir: PathBuf,
    path: PathBuf,
}

impl TempFile {
    fn new(tag: &str, name: &str, bytes: &[u8]) -> TempFile {
        let dir = std::env::temp_dir().join(format!("pulse-xgb-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        TempFile { dir, path }
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A fixture as JSON, changed by `edit`, written to a temporary file.
fn edited(file: &str, tag: &str, edit: impl FnOnce(&mut Value)) -> TempFile {
    let mut json: Value = serde_json::from_slice(&std::fs::read(fixtures().join(file)).unwrap()).unwrap();
    edit(&mut json);
    TempFile::new(tag, file, json.to_string().as_bytes())
}

/// The error of importing the fixtures with `path` for `head`.
fn import_with(head: &str, path: &Path) -> String {
    let mut f = files("health_score");
    f.iter_mut().find(|(h, _)| *h == head).unwrap().1 = path.to_path_buf();
    import_xgboost(&f, "x", "1").unwrap_err().to_string()
}

#[test]
fn wrong_features_are_refused_naming_the_first_difference() {
    let file = edited("churn_risk_14d.json", "names", |j| {
        j["learner"]["feature_names"][3] = "sessions_per_week".into();
    });
    let err = import_with("churn_risk_14d", &file.path);
    assert!(err.contains("churn_risk_14d.json (churn_risk_14d)"), "{err}");
    assert!(
        err.contains("feature 3 is `sessions_per_week` in the model but `sessions_per_week_30d` in pulse"),
        "{err}"
    );

    let file = edited("churn_risk_14d.json", "fewer", |j| {
        j["learner"]["feature_names"].as_array_mut().unwrap().remove(0);
    });
    let err = import_with("churn_risk_14d", &file.path);
    assert!(err.contains("the model has 45"), "{err}");
    assert!(err.contains("feature 0 is `sessions_14d` in the model but `sessions_7d` in pulse"), "{err}");

    // Without names, the count is checked.
    let file = edited("churn_risk_14d.json", "unnamed", |j| {
        j["learner"]["feature_names"] = Value::Array(vec![]);
        j["learner"]["learner_model_param"]["num_feature"] = "40".into();
    });
    let err = import_with("churn_risk_14d", &file.path);
    assert!(err.contains("trained on 40 features; pulse's features-v1 has 46"), "{err}");

    // Neither names nor a count: refused, not taken on trust.
    let file = edited("churn_risk_14d.json", "uncounted", |j| {
        j["learner"]["feature_names"] = Value::Array(vec![]);
        j["learner"]["learner_model_param"].as_object_mut().unwrap().remove("num_feature");
    });
    let err = import_with("churn_risk_14d", &file.path);
    assert!(err.contains("names no features and has no learner_model_param.num_feature"), "{err}");

    // No trees: every customer scored the same.
    let file = edited("churn_risk_14d.json", "treeless", |j| {
        j["learner"]["gradient_booster"]["model"]["trees"] = Value::Array(vec![]);
        j["learner"]["gradient_booster"]["model"]["tree_info"] = Value::Array(vec![]);
    });
    let err = import_with("churn_risk_14d", &file.path);
    assert!(err.contains("the model has no trees"), "{err}");

    let file = edited("session_velocity.json", "index", |j| {
        j["learner"]["feature_names"] = Value::Array(vec![]);
        j["learner"]["gradient_booster"]["model"]["trees"][2]["split_indices"][0] = 46.into();
    });
    let err = import_with("session_velocity", &file.path);
    assert!(err.contains("tree 2: node 0 splits on feature 46; pulse has 46"), "{err}");
}

#[test]
fn objectives_must_fit_the_head() {
    let file = edited("churn_risk_30d.json", "poisson", |j| {
        j["learner"]["objective"]["name"] = "count:poisson".into();
    });
    let err = import_with("churn_risk_30d", &file.path);
    assert!(
        err.contains("objective `count:poisson` does not fit churn_risk_30d, a probability head: train it with `binary:logistic`"),
        "{err}"
    );

    let err = import_with("health_score", &fixtures().join("churn_risk_14d.json"));
    assert!(err.contains("objective `binary:logistic` does not fit health_score, a regression head"), "{err}");
    assert!(err.contains("`reg:squarederror`, `reg:absoluteerror`, `reg:pseudohubererror`"), "{err}");

    let err = import_with("churn_risk_14d", &fixtures().join("session_velocity.json"));
    assert!(err.contains("objective `reg:squarederror` does not fit churn_risk_14d"), "{err}");
}

#[test]
fn every_head_is_needed_once() {
    let mut f = files("health_score");
    f.retain(|(h, _)| !["session_velocity", "churn_risk_30d"].contains(h));
    let err = import_xgboost(&f, "x", "1").unwrap_err().to_string();
    assert!(err.contains("no XGBoost model for session_velocity, churn_risk_30d"), "{err}");

    let mut f = files("health_score");
    f.push(("churn_risk_14d", fixtures().join("churn_risk_14d.json")));
    let err = import_xgboost(&f, "x", "1").unwrap_err().to_string();
    assert!(err.contains("churn_risk_14d is given more than once"), "{err}");

    let mut f = files("health_score");
    f[2].0 = "churn_14d";
    let err = import_xgboost(&f, "x", "1").unwrap_err().to_string();
    assert!(err.contains("`churn_14d` is not one of pulse's heads"), "{err}");
}

#[test]
fn other_files_are_refused_with_the_reason() {
    let ubj = TempFile::new("ubj", "m.ubj", b"{L\x00\x00\x00\x00\x00\x00\x00\x07learner{");
    let err = import_with("first_session_success", &ubj.path);
    assert!(err.contains("not an XGBoost JSON model"), "{err}");

    let file = edited("first_session_success.json", "dart", |j| {
        j["learner"]["gradient_booster"]["name"] = "dart".into();
    });
    assert!(import_with("first_session_success", &file.path).contains("booster `dart`"));
    // A gblinear model has weights, not trees: refused by its booster's
    // name (it was "not an XGBoost JSON model ... save with .json").
    let file = edited("first_session_success.json", "gblinear", |j| {
        j["learner"]["gradient_booster"] =
            json!({"name": "gblinear", "model": {"boosted_rounds": 3, "weights": [0.1, 0.2]}});
    });
    let err = import_with("first_session_success", &file.path);
    assert!(err.contains("booster `gblinear`") && !err.contains("not an XGBoost JSON"), "{err}");

    let file = edited("first_session_success.json", "categorical", |j| {
        j["learner"]["gradient_booster"]["model"]["trees"][0]["split_type"][0] = 1.into();
    });
    assert!(import_with("first_session_success", &file.path).contains("tree 0: node 0 is a categorical split"));

    let file = edited("first_session_success.json", "multi", |j| {
        j["learner"]["learner_model_param"]["base_score"] = "[5E-1,4E-1]".into();
    });
    assert!(import_with("first_session_success", &file.path).contains("several values"));

    // XGBoost before 3.1 writes base_score as a plain number in a string.
    let file = edited("churn_risk_14d.json", "plain", |j| {
        j["learner"]["learner_model_param"]["base_score"] = "2E-1".into();
    });
    let mut f = files("health_score");
    f[2].1 = file.path.clone();
    let a = import_xgboost(&f, "x", "1").unwrap();
    let Model::Gbt(gbt) = &a.model else { panic!("kind gbt") };
    assert!((gbt.heads()[2].base_score - (0.2f64 / 0.8).ln()).abs() < 1e-7);
}
