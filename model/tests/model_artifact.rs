//! One artifact format for every kind: the committed network still loads,
//! `gbt` and `logistic` round-trip bit for bit, a hand-written `gbt`
//! model.json (the "bring your own model" path of ARTIFACT.md) scores as
//! written, and malformed artifacts are refused with a clear reason.

mod common;

use common::{labels, synthetic};
use pulse_model::metrics::auc;
use pulse_model::{embedded, train_gbt, train_logistic, EmbeddedModel, GbtConfig, ModelArtifact, ModelKind};
use pulse_schemas::{FEATURE_COUNT, FEATURE_NAMES};
use serde_json::{json, Value};

const META: &[u8] = include_bytes!("fixtures/network/model.json");
const WEIGHTS: &[u8] = include_bytes!("fixtures/network/model.safetensors");

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("pulse-model-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn heads() -> Value {
    json!(["first_session_success", "session_velocity", "churn_risk_14d", "churn_risk_30d", "health_score"])
}

/// A gbt model.json by hand: per head one stump on feature 3 at 2.0.
fn stumps() -> Value {
    let stump = |base: f64, left: f64, right: f64| {
        json!({"base_score": base, "trees": [{
            "feature": [3, 0, 0], "threshold": [2.0, 0.0, 0.0], "left": [1, -1, -1], "right": [2, -1, -1],
            "value": [0.0, left, right], "cover": [10.0, 6.0, 4.0],
        }]})
    };
    let mut heads_json = vec![
        stump(0.0, -1.0, 1.0),
        stump(1.0, -2.0, 0.5),
        stump(0.5, 0.0, 0.0),
        stump(0.0, -1.0, 2.0),
        stump(50.0, -80.0, 30.0),
    ];
    for (h, name) in heads_json.iter_mut().zip(heads().as_array().unwrap()) {
        h["head"] = name.clone();
    }
    json!({
        "name": "hand-made", "version": "0.1", "kind": "gbt", "features_schema": "features-v1",
        "feature_names": FEATURE_NAMES.to_vec(), "heads": heads(), "gbt": {"heads": heads_json},
    })
}

fn load(meta: &Value) -> Result<ModelArtifact, String> {
    ModelArtifact::from_bytes(meta.to_string().as_bytes(), &[]).map_err(|e| e.to_string())
}

#[test]
fn the_committed_network_loads_as_kind_network_and_round_trips() {
    let artifact = ModelArtifact::from_bytes(META, WEIGHTS).unwrap();
    assert_eq!(artifact.kind(), ModelKind::Network);
    let dir = temp_dir("network");
    artifact.save_dir(&dir).unwrap();
    let written: Value = serde_json::from_slice(&std::fs::read(dir.join("model.json")).unwrap()).unwrap();
    assert_eq!(written["kind"], "network");
    let mode = |f: &str| std::fs::metadata(dir.join(f)).unwrap().permissions();
    assert_eq!(mode("model.safetensors"), mode("model.json"), "readable by whoever can read model.json");
    let back = ModelArtifact::load_dir(&dir).unwrap();
    let rows = synthetic(300, 1).rows;
    let (a, b) = (EmbeddedModel::new(&artifact).unwrap(), EmbeddedModel::new(&back).unwrap());
    assert_eq!(a.score_now(&rows).unwrap(), b.score_now(&rows).unwrap());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_embedded_model_is_the_shipped_gbt() {
    let artifact = embedded().unwrap();
    assert_eq!(artifact.kind(), ModelKind::Gbt);
    assert_eq!(artifact.meta.calibration.len(), 3, "shipped with its probability heads calibrated");
}

#[test]
fn a_hand_written_gbt_model_scores_as_written() {
    let artifact = load(&stumps()).unwrap();
    assert_eq!(artifact.kind(), ModelKind::Gbt);
    let model = EmbeddedModel::new(&artifact).unwrap();
    let (mut low, mut high) = ([0.0; FEATURE_COUNT], [0.0; FEATURE_COUNT]);
    low[3] = 1.0;
    high[3] = 2.0; // not < 2.0: right
    let s = model.score_now(&[low, high]).unwrap();
    let sigmoid = |x: f64| 1.0 / (1.0 + (-x).exp());
    assert_eq!(s[0].first_session_success, sigmoid(-1.0));
    assert_eq!(s[1].first_session_success, sigmoid(1.0));
    assert_eq!((s[0].session_velocity, s[1].session_velocity), (0.0, 1.5), "velocity clamped at 0");
    assert_eq!((s[0].churn_risk_14d, s[1].churn_risk_30d), (sigmoid(0.5), sigmoid(2.0)));
    assert_eq!((s[0].health_score, s[1].health_score), (0.0, 80.0), "health clamped to 0–100");
    assert_eq!(model.id().name.as_ref(), "hand-made");

    // NaN goes right unless the tree's `default_left` says left.
    let mut missing = [0.0; FEATURE_COUNT];
    missing[3] = f64::NAN;
    assert_eq!(model.score_now(&[missing]).unwrap()[0].first_session_success, sigmoid(1.0));
    let mut meta = stumps();
    meta["gbt"]["heads"][0]["trees"][0]["default_left"] = json!([true, false, false]);
    let model = EmbeddedModel::new(&load(&meta).unwrap()).unwrap();
    let s = model.score_now(&[missing, low, high]).unwrap();
    assert_eq!(s[0].first_session_success, sigmoid(-1.0));
    assert_eq!(s[0].churn_risk_30d, sigmoid(2.0), "other heads' trees keep NaN right");
    assert_eq!((s[1].first_session_success, s[2].first_session_success), (sigmoid(-1.0), sigmoid(1.0)));
}

#[test]
fn logistic_kind_trains_saves_and_loads_bit_for_bit() {
    let (train, valid, test) = (synthetic(3000, 2), synthetic(800, 3), synthetic(1000, 4));
    let artifact = train_logistic(&train, &valid, &Default::default()).unwrap();
    assert_eq!(artifact.kind(), ModelKind::Logistic);
    let model = EmbeddedModel::new(&artifact).unwrap();
    let scores = model.score_now(&test.rows).unwrap();
    let p: Vec<f64> = scores.iter().map(|s| s.first_session_success).collect();
    let a = auc(&p, &labels(&test, 0)).unwrap();
    assert!(a > 0.8, "a linear rule on x3 is within a logistic regression's reach: AUC {a}");
    // Health is 20·x0 + noise: the least-squares line beats the median.
    assert_eq!(artifact.meta.training["heads"][4]["fit"], "ridge least squares");

    let dir = temp_dir("logistic");
    artifact.save_dir(&dir).unwrap();
    assert!(!dir.join("model.safetensors").exists());
    let back = EmbeddedModel::new(&ModelArtifact::load_dir(&dir).unwrap()).unwrap();
    let again = back.score_now(&test.rows).unwrap();
    for (x, y) in scores.iter().zip(&again) {
        assert_eq!(x.first_session_success.to_bits(), y.first_session_success.to_bits());
        assert_eq!(x.health_score.to_bits(), y.health_score.to_bits());
        assert_eq!(x.session_velocity.to_bits(), y.session_velocity.to_bits());
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn awkward_floats_survive_save_and_load_exactly() {
    let mut meta = stumps();
    let awkward = [0.1 + 0.2, 1e-300, -2.2250738585072014e-308, 123456.78901234567, 1.0 / 3.0, 5e-324];
    for (i, v) in awkward.iter().enumerate() {
        meta["gbt"]["heads"][i % 5]["base_score"] = json!(v);
    }
    meta["gbt"]["heads"][0]["trees"][0]["threshold"][0] = json!(0.30000000000000004);
    let artifact = load(&meta).unwrap();
    let back = ModelArtifact::from_bytes(&artifact.meta_json().unwrap(), &[]).unwrap();
    let (pulse_model::Model::Gbt(a), pulse_model::Model::Gbt(b)) = (&artifact.model, &back.model) else {
        panic!("gbt expected")
    };
    assert_eq!(a, b);
    assert_eq!(a.heads()[0].trees[0].nodes()[0].threshold.to_bits(), 0.30000000000000004f64.to_bits());
    assert_eq!(a.heads()[1].base_score.to_bits(), 1e-300f64.to_bits());
}

#[test]
fn bad_artifacts_are_refused_with_the_reason() {
    let swapped = format!("(feature 3 is `{}`, where features-v1 has `{}`)", FEATURE_NAMES[4], FEATURE_NAMES[3]);
    let network: Value = serde_json::from_slice(include_bytes!("fixtures/network/model.json")).unwrap();
    let cases: Vec<(Value, &[u8], &str)> = vec![
        (
            with(&stumps(), "kind", json!("forest")),
            &[],
            "unknown variant `forest`, expected one of `network`, `gbt`, `logistic`",
        ),
        (without(&stumps(), "gbt"), &[], "kind `gbt` needs a `gbt` section with the trees"),
        // The committed network has no `kind`: a network by default.
        (with(&network, "gbt", stumps()["gbt"].clone()), WEIGHTS, "has no `kind`, so it is a `network`"),
        (
            with(&with(&network, "kind", json!("network")), "gbt", stumps()["gbt"].clone()),
            WEIGHTS,
            "has a `gbt` section but kind is `network`",
        ),
        (with(&network, "kind", json!("logistic")), &[], "kind `logistic` needs a `logistic` section"),
        (without(&network, "normalizer"), WEIGHTS, "kind `network` needs a `normalizer`"),
        (network.clone(), &[], "needs its weights in model.safetensors"),
        (
            with(&stumps(), "feature_names", json!(FEATURE_NAMES[..45])),
            &[],
            "lists 45 feature names; features-v1 has 46",
        ),
        (with(&stumps(), "features_schema", json!("features-v2")), &[], "features-v2"),
        (
            with(&stumps(), "feature_names", {
                let mut names = FEATURE_NAMES.to_vec();
                names.swap(3, 4);
                json!(names)
            }),
            &[],
            &swapped,
        ),
        (
            with(
                &stumps(),
                "calibration",
                json!({"health_score": {"method": "platt", "params": {"a": 1.0, "b": 0.0}}}),
            ),
            &[],
            "calibration of `health_score`: only the probability heads",
        ),
        (with(&stumps(), "extra", json!(1)), &[], "unknown field `extra`"),
    ];
    for (meta, weights, want) in cases {
        let err = ModelArtifact::from_bytes(meta.to_string().as_bytes(), weights).unwrap_err().to_string();
        assert!(err.contains(want), "want {want:?}, got {err}");
    }
    let mut tree_cases: Vec<(Value, &str)> = Vec::new();
    let mut m = stumps();
    m["gbt"]["heads"][2]["trees"][0]["feature"][0] = json!(46);
    tree_cases.push((m, "head churn_risk_14d, tree 0: node 0 splits on feature 46, but there are 46 features"));
    let mut m = stumps();
    m["gbt"]["heads"][0]["trees"][0]["cover"] = json!([10.0, 6.0]);
    tree_cases.push((m, "one entry per node"));
    let mut m = stumps();
    m["gbt"]["heads"][0]["trees"][0]["default_left"] = json!([true, false]);
    tree_cases.push((m, "default_left, when given, must have one entry per node: 2 for 3 nodes"));
    let mut m = stumps();
    m["gbt"]["heads"][0]["trees"][0]["left"][0] = json!(0);
    tree_cases.push((m, "must come after it"));
    let mut m = stumps();
    m["gbt"]["heads"][0]["trees"][0]["threshold"][0] = json!(null);
    tree_cases.push((m, "expected a finite number, found null"));
    let mut m = stumps();
    m["gbt"]["heads"].as_array_mut().unwrap().pop();
    tree_cases.push((m, "`gbt.heads` must be the 5 heads in order"));
    for (meta, want) in tree_cases {
        let err = load(&meta).unwrap_err();
        assert!(err.contains(want), "want {want:?}, got {err}");
    }
    let (train, valid) = (synthetic(200, 5), synthetic(100, 6));
    let logistic = train_logistic(&train, &valid, &Default::default()).unwrap();
    let mut meta: Value = serde_json::from_slice(&logistic.meta_json().unwrap()).unwrap();
    meta["logistic"]["heads"][1]["weights"].as_array_mut().unwrap().pop();
    let err = load(&meta).unwrap_err();
    assert!(err.contains("head session_velocity has 45 weights, expected 46"), "{err}");
    // A deviation of 0 (or below, or not finite) would turn a feature's
    // every input into ±inf or NaN: refused, naming the feature.
    for (i, std) in [(3, json!(0.0)), (0, json!(-1.0))] {
        let mut meta: Value = serde_json::from_slice(&logistic.meta_json().unwrap()).unwrap();
        meta["normalizer"]["std"][i] = std;
        let err = load(&meta).unwrap_err();
        assert!(err.contains(&format!("the normaliser of `{}`", FEATURE_NAMES[i])), "{err}");
    }
    let mut meta: Value = serde_json::from_slice(&logistic.meta_json().unwrap()).unwrap();
    // Past f32's range: refused where it is read (serde_json parses
    // exactly, `float_roundtrip`, and an f32 out of range is an error, not
    // infinity), with the position.
    meta["normalizer"]["mean"][5] = json!(1e39);
    let err = load(&meta).unwrap_err();
    assert!(err.contains("number out of range at line 1 column"), "{err}");
}

#[test]
fn a_gbt_directory_needs_no_weights_file_and_ignores_a_stale_one() {
    let (train, valid) = (synthetic(500, 7), synthetic(200, 8));
    let cfg = GbtConfig { max_trees: 5, max_depth: 3, threads: 1, ..GbtConfig::default() };
    let artifact = train_gbt(&train, &valid, &cfg, &mut |_| {}).unwrap();
    let dir = temp_dir("stale");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("model.safetensors"), b"not weights").unwrap();
    artifact.save_dir(&dir).unwrap();
    assert_eq!(ModelArtifact::load_dir(&dir).unwrap().kind(), ModelKind::Gbt);
    // A network's weights left beside trees belong to no model: removed.
    assert!(!dir.join("model.safetensors").exists(), "the stale weights were left");
    // A model is named by its directory; its model.json is refused as such.
    let err = ModelArtifact::load_dir(&dir.join("model.json")).unwrap_err().to_string();
    assert!(err.contains("model.json is a file: a model is named by its directory"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
    // Trees split raw features: a normaliser beside them (a model trained
    // on normalised inputs) is refused, not silently ignored.
    let meta: Value = serde_json::from_slice(&artifact.meta_json().unwrap()).unwrap();
    let normalizer = json!({"mean": vec![0.0; 46], "std": vec![1.0; 46]});
    let err = load(&with(&meta, "normalizer", normalizer)).unwrap_err();
    assert!(err.contains("`normalizer`") && err.contains("kind is `gbt`"), "{err}");
}

fn with(meta: &Value, key: &str, value: Value) -> Value {
    let mut m = meta.clone();
    m[key] = value;
    m
}

fn without(meta: &Value, key: &str) -> Value {
    let mut m = meta.clone();
    m.as_object_mut().unwrap().remove(key);
    m
}

/// A `model.json` saved by an editor that writes a UTF-8 byte order mark
/// loads as the same model (it was refused, "expected value at line 1
/// column 1"), from bytes and from a directory, network weights included.
#[test]
fn a_model_json_with_a_byte_order_mark_loads_the_same() {
    let plain = load(&stumps()).unwrap();
    let with_bom = [b"\xEF\xBB\xBF".as_slice(), stumps().to_string().as_bytes()].concat();
    let (pulse_model::Model::Gbt(a), pulse_model::Model::Gbt(b)) =
        (&plain.model, &ModelArtifact::from_bytes(&with_bom, &[]).unwrap().model)
    else {
        panic!("gbt expected")
    };
    assert_eq!(a, b);
    let dir = temp_dir("bom");
    ModelArtifact::from_bytes(META, WEIGHTS).unwrap().save_dir(&dir).unwrap();
    let meta = std::fs::read(dir.join("model.json")).unwrap();
    std::fs::write(dir.join("model.json"), [b"\xEF\xBB\xBF".as_slice(), &meta].concat()).unwrap();
    assert_eq!(ModelArtifact::load_dir(&dir).unwrap().kind(), ModelKind::Network);
    std::fs::remove_dir_all(&dir).unwrap();
    // A mark alone is still no model.
    assert!(ModelArtifact::from_bytes(b"\xEF\xBB\xBF", &[]).is_err());
}

/// Saving over a model writes each file whole under a temporary name and
/// renames it into place: a save that fails part way (here its temporary
/// file cannot be created) leaves the model that was there, loadable, and
/// a save that succeeds leaves no temporary file behind.
#[test]
fn a_failed_save_leaves_the_model_that_was_there() {
    let dir = temp_dir("swap");
    let old = load(&stumps()).unwrap();
    old.save_dir(&dir).unwrap();
    let before = std::fs::read(dir.join("model.json")).unwrap();
    let network = ModelArtifact::from_bytes(META, WEIGHTS).unwrap();
    // A directory where the save's temporary model.json would go.
    let blocker = dir.join(format!(".model.json.{}.tmp", std::process::id()));
    std::fs::create_dir(&blocker).unwrap();
    assert!(network.save_dir(&dir).is_err());
    assert_eq!(std::fs::read(dir.join("model.json")).unwrap(), before, "model.json was changed");
    assert!(!dir.join("model.safetensors").exists(), "weights written beside the old model");
    assert_eq!(ModelArtifact::load_dir(&dir).unwrap().kind(), ModelKind::Gbt);
    std::fs::remove_dir(&blocker).unwrap();
    network.save_dir(&dir).unwrap();
    assert_eq!(ModelArtifact::load_dir(&dir).unwrap().kind(), ModelKind::Network);
    let mut names: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(names, ["model.json", "model.safetensors"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `WEIGHTS` with every byte of tensor `name`'s data set to `byte`.
fn weights_with(name: &str, byte: u8) -> Vec<u8> {
    let mut w = WEIGHTS.to_vec();
    let n = u64::from_le_bytes(w[..8].try_into().unwrap()) as usize;
    let header: Value = serde_json::from_slice(&w[8..8 + n]).unwrap();
    let offsets = &header[name]["data_offsets"];
    let (start, end) = (offsets[0].as_u64().unwrap() as usize, offsets[1].as_u64().unwrap() as usize);
    w[8 + n + start..8 + n + end].fill(byte);
    w
}

/// A network whose weights hold NaN used to load and serve (its ReLUs
/// turned the NaNs into the same scores for everyone): refused at load,
/// naming the tensor, as the gbt and logistic loaders refuse theirs. Zero
/// weights are weights.
#[test]
fn a_network_with_non_finite_weights_is_refused_naming_the_tensor() {
    let err = ModelArtifact::from_bytes(META, &weights_with("trunk.0.w", 0xff)).unwrap_err().to_string();
    assert!(err.contains("bad model artifact: model.safetensors: tensor trunk.0.w holds NaN at index 0"), "{err}");
    let err = ModelArtifact::from_bytes(META, &weights_with("head.churn_risk_14d.1.b", 0xff)).unwrap_err().to_string();
    assert!(err.contains("tensor head.churn_risk_14d.1.b holds NaN"), "{err}");
    // f32 +inf is 00 00 80 7f: a tensor of it is not finite either.
    let mut w = weights_with("trunk.1.b", 0);
    let n = u64::from_le_bytes(w[..8].try_into().unwrap()) as usize;
    let header: Value = serde_json::from_slice(&w[8..8 + n]).unwrap();
    let start = header["trunk.1.b"]["data_offsets"][0].as_u64().unwrap() as usize;
    w[8 + n + start..8 + n + start + 4].copy_from_slice(&f32::INFINITY.to_le_bytes());
    let err = ModelArtifact::from_bytes(META, &w).unwrap_err().to_string();
    assert!(err.contains("tensor trunk.1.b holds inf at index 0"), "{err}");
    let zeros = ModelArtifact::from_bytes(META, &weights_with("trunk.0.w", 0)).unwrap();
    let scores = EmbeddedModel::new(&zeros).unwrap().score_now(&[[1.0; FEATURE_COUNT]]).unwrap();
    assert!(scores[0].churn_risk_14d.is_finite());
}

/// A model.json without `kind` is a network (ARTIFACT.md); one that has a
/// `logistic` section was meant as a logistic model, and said "cannot read
/// …/model.safetensors: No such file": now it says the kind is missing. A
/// truncated weights file is a bad artifact (it was "model computation
/// failed: invalid header length: invalid header length").
#[test]
fn a_missing_kind_and_truncated_weights_are_named_as_what_they_are() {
    let (train, valid) = (synthetic(200, 5), synthetic(100, 6));
    let logistic = train_logistic(&train, &valid, &Default::default()).unwrap();
    let meta = without(&serde_json::from_slice(&logistic.meta_json().unwrap()).unwrap(), "kind");
    let dir = temp_dir("no-kind");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("model.json"), meta.to_string()).unwrap();
    let from_dir = ModelArtifact::load_dir(&dir).unwrap_err().to_string();
    let from_bytes = load(&meta).unwrap_err();
    for err in [&from_dir, &from_bytes] {
        assert!(
            err.contains("model.json has no `kind`, so it is a `network`")
                && err.contains("add \"kind\": \"logistic\""),
            "{err}"
        );
        assert!(!err.contains("model.safetensors"), "{err}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
    // A declared kind that contradicts the section still says so.
    let err = load(&with(&meta, "kind", json!("network"))).unwrap_err();
    assert!(err.contains("has a `logistic` section but kind is `network`"), "{err}");

    for cut in [5, 40, WEIGHTS.len() / 2] {
        let err = ModelArtifact::from_bytes(META, &WEIGHTS[..cut]).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "bad model artifact: model.safetensors ({cut} bytes) is not a readable safetensors file: "
            )),
            "{err}"
        );
        let parts: Vec<&str> = err.split(": ").collect();
        assert!(parts.windows(2).all(|p| p[0] != p[1]), "a message said twice: {err}");
    }
}
