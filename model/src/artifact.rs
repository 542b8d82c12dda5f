//! A trained model on disk: `model.json` (name, version, kind, features
//! schema, feature names, heads, normalisation, calibration, training facts,
//! and for the `gbt` and `logistic` kinds the model itself) and, for the
//! `network` kind only, `model.safetensors` (weights). The format is
//! specified in `model/ARTIFACT.md`.
//!
//! Floats of the model sections (`gbt`, `logistic`, `calibration`) are read
//! with Rust's correctly rounded parser, not serde_json's default fast one,
//! so a saved model loads back bit for bit.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use pulse_schemas::prediction::Scores;
use pulse_schemas::{Features, FEATURE_COUNT, FEATURE_NAMES, SCHEMA};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::calibrate::Calibration;
use crate::gbt::{GbtHead, GbtModel, Node, Tree, LEAF};
use crate::linear::{LinearHead, LinearModel};
use crate::net::{Net, HEADS};
use crate::ModelError;

/// File name of the metadata within an artifact directory.
pub const META_FILE: &str = "model.json";
/// File name of the weights within an artifact directory (`network` only).
pub const WEIGHTS_FILE: &str = "model.safetensors";

/// The probability heads' indices in [`HEADS`].
pub const BINARY_HEADS: [usize; 3] = [0, 2, 3];

/// How inputs are normalised: `z = (slog1p(x) - mean) / std` per feature,
/// where `slog1p(x) = sign(x) · ln(1 + |x|)` tames counts, minutes and
/// dollars with long tails.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Normalizer {
    /// Per-feature mean of `slog1p(x)` on the training rows.
    pub mean: Vec<f32>,
    /// Per-feature standard deviation of `slog1p(x)` (1 where it was 0).
    pub std: Vec<f32>,
}

fn slog1p(x: f64) -> f64 {
    x.signum() * x.abs().ln_1p()
}

impl Normalizer {
    /// Fits mean and standard deviation on rows.
    pub fn fit(rows: &[Features]) -> Normalizer {
        let n = rows.len().max(1) as f64;
        let mut mean = [0f64; FEATURE_COUNT];
        let mut sq = [0f64; FEATURE_COUNT];
        for r in rows {
            for (i, &x) in r.iter().enumerate() {
                let v = slog1p(x);
                mean[i] += v;
                sq[i] += v * v;
            }
        }
        let mut std = [0f64; FEATURE_COUNT];
        for i in 0..FEATURE_COUNT {
            mean[i] /= n;
            std[i] = (sq[i] / n - mean[i] * mean[i]).max(0.0).sqrt();
            if std[i] < 1e-9 {
                std[i] = 1.0;
            }
        }
        Normalizer { mean: mean.iter().map(|&x| x as f32).collect(), std: std.iter().map(|&x| x as f32).collect() }
    }

    /// One normalised row: `(slog1p(x) as f32 - mean) / std`, in f32.
    #[inline]
    pub fn normalise(&self, row: &Features) -> [f32; FEATURE_COUNT] {
        std::array::from_fn(|i| (slog1p(row[i]) as f32 - self.mean[i]) / self.std[i])
    }

    /// Appends the normalised row to `out`.
    pub fn push_row(&self, row: &Features, out: &mut Vec<f32>) {
        out.extend_from_slice(&self.normalise(row));
    }

    /// A (rows, 46) tensor of normalised inputs.
    pub fn tensor(&self, rows: &[Features], device: &Device) -> Result<Tensor, ModelError> {
        let mut data = Vec::with_capacity(rows.len() * FEATURE_COUNT);
        for r in rows {
            self.push_row(r, &mut data);
        }
        Ok(Tensor::from_vec(data, (rows.len(), FEATURE_COUNT), device)?)
    }
}

/// What kind of model an artifact holds (`kind` in `model.json`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// The multi-task network; weights in `model.safetensors`. The default
    /// when `kind` is absent.
    #[default]
    Network,
    /// Gradient-boosted trees, inline in `model.json` (`gbt`).
    Gbt,
    /// A linear model per head on the normalised features, inline (`logistic`).
    Logistic,
}

impl ModelKind {
    /// The name in `model.json`.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelKind::Network => "network",
            ModelKind::Gbt => "gbt",
            ModelKind::Logistic => "logistic",
        }
    }
}

/// What `model.json` says besides the model itself.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelMeta {
    /// The model's name.
    pub name: String,
    /// Its version (predictions carry it).
    pub version: String,
    /// The features schema it was trained on (must be pulse's).
    pub features_schema: String,
    /// The input names, in order (must be pulse's).
    pub feature_names: Vec<String>,
    /// The outputs, in order (must be pulse's).
    pub heads: Vec<String>,
    /// Input normalisation (`network` and `logistic`; unused by `gbt`).
    pub normalizer: Option<Normalizer>,
    /// Per probability head, the calibration applied after its raw
    /// probability (none: the raw probability).
    pub calibration: Calibration,
    /// How it was trained: for the record.
    pub training: serde_json::Value,
}

impl ModelMeta {
    /// The metadata of a model made for pulse's features and heads, not yet calibrated.
    pub fn for_pulse(
        name: &str,
        version: &str,
        normalizer: Option<Normalizer>,
        training: serde_json::Value,
    ) -> ModelMeta {
        ModelMeta {
            name: name.to_owned(),
            version: version.to_owned(),
            features_schema: SCHEMA.into(),
            feature_names: FEATURE_NAMES.iter().map(|s| s.to_string()).collect(),
            heads: HEADS.iter().map(|s| s.to_string()).collect(),
            normalizer,
            calibration: Default::default(),
            training,
        }
    }
}

/// The model itself, by kind.
#[derive(Clone, Debug)]
pub enum Model {
    /// The multi-task network.
    Network(Net),
    /// Gradient-boosted trees.
    Gbt(GbtModel),
    /// Linear heads on the normalised features.
    Logistic(LinearModel),
}

/// A trained model: metadata and model.
#[derive(Clone, Debug)]
pub struct ModelArtifact {
    /// The metadata.
    pub meta: ModelMeta,
    /// The model.
    pub model: Model,
}

/// The output of margins: sigmoid for the probabilities, velocity clamped at
/// 0, health clamped to 0–100 (the `gbt` and `logistic` kinds).
pub fn scores_from_margins(m: [f64; 5]) -> Scores {
    let sigmoid = |x: f64| 1.0 / (1.0 + (-x).exp());
    Scores {
        first_session_success: sigmoid(m[0]),
        session_velocity: m[1].max(0.0),
        churn_risk_14d: sigmoid(m[2]),
        churn_risk_30d: sigmoid(m[3]),
        health_score: m[4].clamp(0.0, 100.0),
    }
}

/// Head `h` (index in [`HEADS`]) of scores.
pub fn head_value(s: &Scores, h: usize) -> f64 {
    match h {
        0 => s.first_session_success,
        1 => s.session_velocity,
        2 => s.churn_risk_14d,
        3 => s.churn_risk_30d,
        _ => s.health_score,
    }
}

/// Sets head `h` of scores.
pub(crate) fn set_head_value(s: &mut Scores, h: usize, v: f64) {
    match h {
        0 => s.first_session_success = v,
        1 => s.session_velocity = v,
        2 => s.churn_risk_14d = v,
        3 => s.churn_risk_30d = v,
        _ => s.health_score = v,
    }
}

/// Floats read exactly: serde_json's default float parser may be one unit in
/// the last place off, so model numbers are taken as raw JSON text and
/// parsed by `str::parse::<f64>`, which is correctly rounded.
pub(crate) mod exact {
    use serde::de::Error;
    use serde::{Deserialize, Deserializer};
    use serde_json::value::RawValue;

    fn number(s: &str) -> Option<f64> {
        let s = s.trim();
        let json_number = s.starts_with(|c: char| c == '-' || c.is_ascii_digit())
            && s.chars().all(|c| c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E'));
        json_number.then(|| s.parse::<f64>().ok()).flatten().filter(|x| x.is_finite())
    }

    fn short(s: &str) -> String {
        s.chars().take(40).collect()
    }

    /// A finite number.
    pub(crate) fn f64<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        let raw = Box::<RawValue>::deserialize(d)?;
        number(raw.get())
            .ok_or_else(|| D::Error::custom(format!("expected a finite number, found {}", short(raw.get()))))
    }

    /// An array of finite numbers.
    pub(crate) fn vec<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
        let raw = Box::<RawValue>::deserialize(d)?;
        let text = raw.get().trim();
        let inner = text
            .strip_prefix('[')
            .and_then(|t| t.strip_suffix(']'))
            .ok_or_else(|| D::Error::custom(format!("expected an array of numbers, found {}", short(text))))?;
        if inner.trim().is_empty() {
            return Ok(Vec::new());
        }
        inner
            .split(',')
            .map(|item| {
                number(item).ok_or_else(|| D::Error::custom(format!("expected a finite number, found {}", short(item))))
            })
            .collect()
    }
}

/// One tree in `model.json`: parallel arrays, one entry per node.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TreeJson {
    feature: Vec<u32>,
    #[serde(deserialize_with = "exact::vec")]
    threshold: Vec<f64>,
    left: Vec<i64>,
    right: Vec<i64>,
    #[serde(deserialize_with = "exact::vec")]
    value: Vec<f64>,
    #[serde(deserialize_with = "exact::vec")]
    cover: Vec<f64>,
    /// Per node, where NaN goes (true: left). Optional: absent means right
    /// at every node, and it is written only when some node sends NaN left.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    default_left: Vec<bool>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct GbtHeadJson {
    head: String,
    #[serde(deserialize_with = "exact::f64")]
    base_score: f64,
    trees: Vec<TreeJson>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct GbtJson {
    heads: Vec<GbtHeadJson>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LinearHeadJson {
    head: String,
    #[serde(deserialize_with = "exact::vec")]
    weights: Vec<f64>,
    #[serde(deserialize_with = "exact::f64")]
    bias: f64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogisticJson {
    heads: Vec<LinearHeadJson>,
}

fn child(c: i64) -> Result<u32, String> {
    match c {
        -1 => Ok(LEAF),
        c if (0..i64::from(LEAF)).contains(&c) => Ok(c as u32),
        c => Err(format!("child {c} is neither -1 nor a node index")),
    }
}

impl TreeJson {
    fn from_tree(tree: &Tree) -> TreeJson {
        let nodes = tree.nodes();
        let idx = |c: u32| if c == LEAF { -1 } else { i64::from(c) };
        TreeJson {
            feature: nodes.iter().map(|n| n.feature).collect(),
            threshold: nodes.iter().map(|n| n.threshold).collect(),
            left: nodes.iter().map(|n| idx(n.left)).collect(),
            right: nodes.iter().map(|n| idx(n.right)).collect(),
            value: nodes.iter().map(|n| n.value).collect(),
            cover: nodes.iter().map(|n| n.cover).collect(),
            default_left: if nodes.iter().any(|n| n.default_left) {
                nodes.iter().map(|n| n.default_left).collect()
            } else {
                Vec::new()
            },
        }
    }

    fn into_tree(self) -> Result<Tree, String> {
        let n = self.feature.len();
        let lens = [self.threshold.len(), self.left.len(), self.right.len(), self.value.len(), self.cover.len()];
        if lens.iter().any(|&l| l != n) {
            return Err(format!(
                "feature, threshold, left, right, value and cover must have one entry per node; they have {n}, {}, {}, {}, {}, {}",
                lens[0], lens[1], lens[2], lens[3], lens[4]
            ));
        }
        if !self.default_left.is_empty() && self.default_left.len() != n {
            return Err(format!(
                "default_left, when given, must have one entry per node: {} for {n} nodes",
                self.default_left.len()
            ));
        }
        let mut nodes = Vec::with_capacity(n);
        for i in 0..n {
            nodes.push(Node {
                feature: self.feature[i],
                threshold: self.threshold[i],
                default_left: self.default_left.get(i).copied().unwrap_or(false),
                left: child(self.left[i]).map_err(|e| format!("node {i}: {e}"))?,
                right: child(self.right[i]).map_err(|e| format!("node {i}: {e}"))?,
                value: self.value[i],
                cover: self.cover[i],
            });
        }
        Tree::new(nodes)
    }
}

fn check_head_names<'a>(kind: &str, names: impl Iterator<Item = &'a str>, count: usize) -> Result<(), ModelError> {
    if count != HEADS.len() || names.ne(HEADS.iter().copied()) {
        return Err(ModelError::Artifact(format!(
            "{META_FILE}: `{kind}.heads` must be the {} heads in order {HEADS:?}",
            HEADS.len()
        )));
    }
    Ok(())
}

fn gbt_from_json(raw: &RawValue) -> Result<GbtModel, ModelError> {
    let json: GbtJson =
        serde_json::from_str(raw.get()).map_err(|e| ModelError::Artifact(format!("{META_FILE}: `gbt`: {e}")))?;
    check_head_names("gbt", json.heads.iter().map(|h| h.head.as_str()), json.heads.len())?;
    let mut heads = Vec::with_capacity(json.heads.len());
    for h in json.heads {
        let mut trees = Vec::with_capacity(h.trees.len());
        for (t, tree) in h.trees.into_iter().enumerate() {
            trees
                .push(tree.into_tree().map_err(|e| {
                    ModelError::Artifact(format!("{META_FILE}: `gbt`: head {}, tree {t}: {e}", h.head))
                })?);
        }
        heads.push(GbtHead { base_score: h.base_score, trees });
    }
    GbtModel::new(heads).map_err(|e| ModelError::Artifact(format!("{META_FILE}: `gbt`: {e}")))
}

fn gbt_to_json(model: &GbtModel) -> GbtJson {
    GbtJson {
        heads: model
            .heads()
            .iter()
            .zip(HEADS)
            .map(|(h, name)| GbtHeadJson {
                head: name.into(),
                base_score: h.base_score,
                trees: h.trees.iter().map(TreeJson::from_tree).collect(),
            })
            .collect(),
    }
}

fn logistic_from_json(raw: &RawValue) -> Result<LinearModel, ModelError> {
    let json: LogisticJson =
        serde_json::from_str(raw.get()).map_err(|e| ModelError::Artifact(format!("{META_FILE}: `logistic`: {e}")))?;
    check_head_names("logistic", json.heads.iter().map(|h| h.head.as_str()), json.heads.len())?;
    let heads = json.heads.into_iter().map(|h| LinearHead { weights: h.weights, bias: h.bias }).collect();
    LinearModel::new(heads).map_err(|e| ModelError::Artifact(format!("{META_FILE}: `logistic`: {e}")))
}

fn logistic_to_json(model: &LinearModel) -> LogisticJson {
    LogisticJson {
        heads: model
            .heads()
            .iter()
            .zip(HEADS)
            .map(|(h, name)| LinearHeadJson { head: name.into(), weights: h.weights.clone(), bias: h.bias })
            .collect(),
    }
}

/// `model.json` as read.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MetaIn {
    name: String,
    version: String,
    /// Absent: `network`, but said so when another kind's section is there.
    #[serde(default)]
    kind: Option<ModelKind>,
    features_schema: String,
    feature_names: Vec<String>,
    heads: Vec<String>,
    #[serde(default)]
    normalizer: Option<Normalizer>,
    #[serde(default)]
    calibration: Calibration,
    #[serde(default)]
    training: serde_json::Value,
    #[serde(default)]
    gbt: Option<Box<RawValue>>,
    #[serde(default)]
    logistic: Option<Box<RawValue>>,
}

/// `model.json` as written.
#[derive(Serialize)]
struct MetaOut<'a> {
    name: &'a str,
    version: &'a str,
    kind: ModelKind,
    features_schema: &'a str,
    feature_names: &'a [String],
    heads: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    normalizer: Option<&'a Normalizer>,
    #[serde(skip_serializing_if = "Calibration::is_empty")]
    calibration: &'a Calibration,
    training: &'a serde_json::Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    gbt: Option<GbtJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    logistic: Option<LogisticJson>,
}

impl ModelArtifact {
    /// The artifact's kind.
    pub fn kind(&self) -> ModelKind {
        match self.model {
            Model::Network(_) => ModelKind::Network,
            Model::Gbt(_) => ModelKind::Gbt,
            Model::Logistic(_) => ModelKind::Logistic,
        }
    }

    /// Reads an artifact directory: `model.json`, and `model.safetensors`
    /// when the kind is `network`.
    pub fn load_dir(dir: &Path) -> Result<ModelArtifact, ModelError> {
        if dir.is_file() {
            // `--model m/model.json` read "cannot read m/model.json/model.json: Not a directory".
            return Err(ModelError::Artifact(format!(
                "{} is a file: a model is named by its directory (the one holding {META_FILE})",
                dir.display()
            )));
        }
        let read = |f: &str| {
            std::fs::read(dir.join(f))
                .map_err(|e| ModelError::Artifact(format!("cannot read {}: {e}", dir.join(f).display())))
        };
        let meta = read(META_FILE)?;
        // A model.json without `kind` is a network, but one that holds
        // another kind's section was meant as that kind: looking for its
        // weights failed with "cannot read …/model.safetensors" and hid
        // the cause, which `from_bytes` names instead.
        let declared = peek_kind(&meta)?;
        let network = declared.kind.unwrap_or_default() == ModelKind::Network && !declared.has_other_section();
        let weights = if network { read(WEIGHTS_FILE)? } else { Vec::new() };
        ModelArtifact::from_bytes(&meta, &weights)
    }

    /// Parses an artifact from the two files' bytes (`weights` is only read
    /// for the `network` kind; pass `&[]` for the others), and checks that it
    /// fits the features and heads pulse computes.
    pub fn from_bytes(meta: &[u8], weights: &[u8]) -> Result<ModelArtifact, ModelError> {
        let meta = without_bom(meta);
        let m: MetaIn = serde_json::from_slice(meta).map_err(|e| ModelError::Artifact(format!("{META_FILE}: {e}")))?;
        let kind = m.kind.unwrap_or_default();
        let meta = ModelMeta {
            name: m.name,
            version: m.version,
            features_schema: m.features_schema,
            feature_names: m.feature_names,
            heads: m.heads,
            normalizer: m.normalizer,
            calibration: m.calibration,
            training: m.training,
        };
        check_schema(&meta)?;
        let declared_kind = m.kind;
        let misplaced = |section: &str| {
            ModelError::Artifact(match declared_kind {
                Some(kind) => format!(
                    "{META_FILE} has a `{section}` section but kind is `{}`: set \"kind\": \"{section}\" or drop it",
                    kind.as_str()
                ),
                None => format!(
                    "{META_FILE} has no `kind`, so it is a `network` (the default, for artifacts made before kinds \
                     existed: see model/ARTIFACT.md), but it has a `{section}` section: add \"kind\": \"{section}\""
                ),
            })
        };
        let needs = |what: &str| {
            ModelError::Artifact(format!("{META_FILE}: kind `{}` needs {what} (see model/ARTIFACT.md)", kind.as_str()))
        };
        let model = match kind {
            ModelKind::Network => {
                if m.gbt.is_some() {
                    return Err(misplaced("gbt"));
                }
                if m.logistic.is_some() {
                    return Err(misplaced("logistic"));
                }
                if meta.normalizer.is_none() {
                    return Err(needs("a `normalizer`"));
                }
                if weights.is_empty() {
                    return Err(needs(&format!("its weights in {WEIGHTS_FILE}")));
                }
                // A bad file is a bad artifact, not a failed computation.
                let tensors = candle_core::safetensors::load_buffer(weights, &Device::Cpu).map_err(|e| {
                    ModelError::Artifact(format!(
                        "{WEIGHTS_FILE} ({} bytes) is not a readable safetensors file: {e}",
                        weights.len()
                    ))
                })?;
                Model::Network(Net::from_tensors(&tensors)?)
            }
            ModelKind::Gbt => {
                if m.logistic.is_some() {
                    return Err(misplaced("logistic"));
                }
                // Trees split the raw features: a normaliser here would be
                // ignored, and a model trained on normalised inputs would
                // score wrongly without a word.
                if meta.normalizer.is_some() {
                    return Err(misplaced("normalizer"));
                }
                let raw = m.gbt.ok_or_else(|| needs("a `gbt` section with the trees of each head"))?;
                Model::Gbt(gbt_from_json(&raw)?)
            }
            ModelKind::Logistic => {
                if m.gbt.is_some() {
                    return Err(misplaced("gbt"));
                }
                if meta.normalizer.is_none() {
                    return Err(needs("a `normalizer`"));
                }
                let raw = m.logistic.ok_or_else(|| needs("a `logistic` section with the weights of each head"))?;
                Model::Logistic(logistic_from_json(&raw)?)
            }
        };
        Ok(ModelArtifact { meta, model })
    }

    /// `model.json`'s bytes (pretty for `network` and `logistic`; compact
    /// for `gbt`, whose node arrays would otherwise take a line per number).
    pub fn meta_json(&self) -> Result<Vec<u8>, ModelError> {
        let m = &self.meta;
        let out = MetaOut {
            name: &m.name,
            version: &m.version,
            kind: self.kind(),
            features_schema: &m.features_schema,
            feature_names: &m.feature_names,
            heads: &m.heads,
            normalizer: m.normalizer.as_ref(),
            calibration: &m.calibration,
            training: &m.training,
            gbt: match &self.model {
                Model::Gbt(g) => Some(gbt_to_json(g)),
                _ => None,
            },
            logistic: match &self.model {
                Model::Logistic(l) => Some(logistic_to_json(l)),
                _ => None,
            },
        };
        let json =
            if self.kind() == ModelKind::Gbt { serde_json::to_vec(&out) } else { serde_json::to_vec_pretty(&out) };
        json.map_err(|e| ModelError::Artifact(e.to_string()))
    }

    /// `model.safetensors`' bytes for a network; `None` for the kinds whose
    /// `model.json` holds everything.
    pub fn weights_bytes(&self) -> Result<Option<Vec<u8>>, ModelError> {
        match &self.model {
            Model::Network(net) => {
                let tensors: HashMap<String, Tensor> = net.tensors();
                safetensors::serialize(tensors.iter(), None)
                    .map(Some)
                    .map_err(|e| ModelError::Artifact(format!("{WEIGHTS_FILE}: {e}")))
            }
            _ => Ok(None),
        }
    }

    /// Writes the artifact into `dir` (created if needed): `model.json`, and
    /// `model.safetensors` for a network (a stale one beside another kind is
    /// removed: it belongs to no model, and would travel with the directory).
    ///
    /// Each file is written whole under a temporary name in `dir` and then
    /// renamed over the old one, the weights before `model.json`: a run that
    /// fails or is killed while writing (a full disk) leaves the model that
    /// was there, and a reader never sees half a file (a killed run may
    /// leave its `.model.json.<pid>.tmp` behind: no model reads it). The
    /// two renames are not one step: a crash between them, microseconds
    /// apart, would pair the new weights with the old `model.json`. A
    /// `model.json` that was a symbolic link is replaced by a file.
    pub fn save_dir(&self, dir: &Path) -> Result<(), ModelError> {
        std::fs::create_dir_all(dir)?;
        let meta = self.meta_json()?;
        let staged = |name: &str| dir.join(format!(".{name}.{}.tmp", std::process::id()));
        let (meta_tmp, weights_tmp) = (staged(META_FILE), staged(WEIGHTS_FILE));
        let weights = self.weights_bytes()?;
        let written = (|| -> Result<(), ModelError> {
            std::fs::write(&meta_tmp, &meta)?;
            std::fs::File::open(&meta_tmp)?.sync_all()?;
            if let Some(weights) = &weights {
                // Written as model.json is, so both get the usual 0644 (the
                // safetensors writer made its file 0600: a serving container
                // running as another user read one and not the other).
                std::fs::write(&weights_tmp, weights)?;
                std::fs::File::open(&weights_tmp)?.sync_all()?;
                std::fs::rename(&weights_tmp, dir.join(WEIGHTS_FILE))?;
            }
            std::fs::rename(&meta_tmp, dir.join(META_FILE))?;
            if weights.is_none() {
                match std::fs::remove_file(dir.join(WEIGHTS_FILE)) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                    _ => {}
                }
            }
            // The renames themselves survive a power cut once the
            // directory is synced.
            std::fs::File::open(dir)?.sync_all()?;
            Ok(())
        })();
        if written.is_err() {
            // What is left of the temporary files is no model; the old one stays.
            let _ = std::fs::remove_file(&meta_tmp);
            let _ = std::fs::remove_file(&weights_tmp);
        }
        written
    }
}

/// `model.json` without a UTF-8 byte order mark: editors on Windows save
/// one, and JSON readers refused it as "expected value at line 1 column 1".
fn without_bom(meta: &[u8]) -> &[u8] {
    meta.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(meta)
}

/// The kind `model.json` declares, if any, and which kinds' sections it
/// holds, without reading the rest.
#[derive(Deserialize)]
struct Declared {
    #[serde(default)]
    kind: Option<ModelKind>,
    #[serde(default)]
    gbt: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    logistic: Option<serde::de::IgnoredAny>,
}

impl Declared {
    fn has_other_section(&self) -> bool {
        self.gbt.is_some() || self.logistic.is_some()
    }
}

fn peek_kind(meta: &[u8]) -> Result<Declared, ModelError> {
    serde_json::from_slice::<Declared>(without_bom(meta)).map_err(|e| ModelError::Artifact(format!("{META_FILE}: {e}")))
}

/// Refuses a model trained on other features, or for other heads, than
/// pulse computes, and calibration of anything but a probability head.
pub fn check_schema(meta: &ModelMeta) -> Result<(), ModelError> {
    if meta.features_schema != SCHEMA {
        return Err(ModelError::SchemaMismatch { expected: SCHEMA.into(), found: meta.features_schema.clone() });
    }
    let n = FEATURE_COUNT;
    if meta.feature_names.len() != n {
        return Err(ModelError::Artifact(format!(
            "{META_FILE} lists {} feature names; {SCHEMA} has {n}: the model was trained on different features",
            meta.feature_names.len()
        )));
    }
    if let Some(i) = meta.feature_names.iter().zip(FEATURE_NAMES).position(|(got, want)| got != want) {
        return Err(ModelError::Artifact(format!(
            "{META_FILE} lists other feature names than {SCHEMA}: the model was trained on different features \
             (feature {i} is `{}`, where {SCHEMA} has `{}`)",
            meta.feature_names[i], FEATURE_NAMES[i]
        )));
    }
    if meta.heads.iter().map(String::as_str).ne(HEADS.iter().copied()) {
        return Err(ModelError::Artifact(format!("{META_FILE} lists heads {:?}, expected {HEADS:?}", meta.heads)));
    }
    if let Some(norm) = &meta.normalizer {
        if norm.mean.len() != n || norm.std.len() != n {
            return Err(ModelError::Artifact(format!("the normaliser must have {n} means and deviations")));
        }
        // A zero, negative or non-finite deviation divides every input of
        // that feature into ±inf or NaN: scores of null, probabilities of 1.
        if let Some(i) = (0..n).find(|&i| !(norm.std[i].is_finite() && norm.std[i] > 0.0 && norm.mean[i].is_finite())) {
            return Err(ModelError::Artifact(format!(
                "the normaliser of `{}` has mean {} and deviation {}: each mean must be finite and each deviation \
                 finite and above 0",
                FEATURE_NAMES[i], norm.mean[i], norm.std[i]
            )));
        }
    }
    for head in meta.calibration.keys() {
        if !BINARY_HEADS.iter().any(|&h| HEADS[h] == head) {
            return Err(ModelError::Artifact(format!(
                "{META_FILE}: calibration of `{head}`: only the probability heads {:?} are calibrated",
                BINARY_HEADS.map(|h| HEADS[h])
            )));
        }
    }
    Ok(())
}

/// The model compiled into pulse: the artifact in `model/artifact/`, made
/// by `pulse train` (see README, "The model"). It runs with no files and no
/// account, so every command has a working default.
pub fn embedded() -> Result<ModelArtifact, ModelError> {
    // The shipped kind (gbt) keeps everything in model.json.
    ModelArtifact::from_bytes(include_bytes!("../artifact/model.json"), &[])
}
