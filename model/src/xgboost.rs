//! Models trained by XGBoost, served as pulse's `gbt` kind.
//!
//! A data scientist trains one XGBoost booster per head on the rows of
//! `pulse dataset` and saves each with `booster.save_model("head.json")`
//! (XGBoost's JSON model format, 1.0 onward; the schema of `doc/model.schema`
//! in XGBoost's repository). [`import_xgboost`] reads the five files and
//! makes one [`ModelArtifact`] of kind `gbt`: serving, calibration and
//! explanations then treat it as any other tree model.
//!
//! What is read, per file:
//!
//! * `learner.objective.name`: `binary:logistic` for the probability heads
//!   (first_session_success, churn_risk_14d, churn_risk_30d), whose margin is
//!   a log-odds as in pulse; `reg:squarederror`, `reg:absoluteerror` or
//!   `reg:pseudohubererror` for the regression heads (session_velocity,
//!   health_score), whose margin is the prediction itself (identity link).
//!   Anything else is refused.
//! * `learner.feature_names`, when the training data had column names: they
//!   must be pulse's 46 in order (the error names the first that differs).
//!   Without names, `learner_model_param.num_feature` must be 46 (a model
//!   with neither is refused: nothing would say what it was trained on).
//! * `learner.learner_model_param.base_score`: XGBoost stores it in output
//!   space (the "intercept" after the inverse link), in every version that
//!   writes JSON (1.0 onward; before 1.0, only the binary format stored the
//!   margin). 2.0 only changed how it is chosen (estimated from the labels
//!   unless set), and 3.1 writes it as a one-element list (`"[3.9E-1]"`);
//!   both spellings are read. The margin pulse adds is `ln(b / (1 − b))` for
//!   `binary:logistic` and `b` itself for the regressions.
//! * `learner.gradient_booster.model.trees`: per tree `left_children`,
//!   `right_children`, `split_indices`, `split_conditions`, `default_left`,
//!   `sum_hessian` (and `split_type`, which must be numerical); at least one
//!   tree (none would score every customer the same). Nodes are
//!   renumbered breadth first from the root, so children follow their
//!   parents and pruned (unreachable) nodes drop out. A leaf's value is its
//!   `split_conditions` entry (learning rate already applied), every node's
//!   cover its `sum_hessian` entry. A split's value, informational in pulse
//!   (what it would output as a leaf), is the cover-weighted mean of its
//!   children's: `base_weights` is not used for it, being unshrunk in 1.x,
//!   shrunk in 3.x, and for `reg:absoluteerror` not the leaves' scale at all
//!   (XGBoost refits those leaves after growing the tree).
//!
//! **The split rule, exactly.** XGBoost converts each input to `f32` (round
//! to nearest, ties to even) and sends a row left when
//! `(x as f32) < split_condition`, a missing (NaN) value to the
//! `default_left` side. pulse compares the `f64` value with an `f64`
//! threshold (`x < threshold`, NaN to the node's `default_left` side). The
//! imported threshold is therefore not the `f32` split condition `t` itself
//! (an `f64` just below `t` rounds to `t` and goes right in XGBoost) but the
//! least `f64` above every value that rounds below `t`: with `p` the `f32`
//! before `t` and `m = (p + t) / 2` (exact in `f64`), `m` when `t`'s
//! significand is even (a tie at `m` rounds up to `t`) and the next `f64`
//! above `m` when `p`'s is (the tie rounds down to `p`) — see
//! [`threshold_from_f32`]. Every `f64` (NaN included) then takes XGBoost's
//! branch at every node.
//!
//! What differs, by design: XGBoost sums the margin in `f32`, pulse in
//! `f64` (they agree to about 10⁻⁶, relative); pulse serves
//! session_velocity as `max(m, 0)` and health_score as `clamp(m, 0, 100)`,
//! where XGBoost returns the raw regression.
//!
//! Not supported (refused with the reason): `dart` and `gblinear` boosters,
//! categorical splits, multi-class and multi-target models, objectives other
//! than the four above. A model trained with early stopping keeps all its
//! trees in the file, and all are imported: slice it first
//! (`booster[: booster.best_iteration + 1].save_model(...)`) to serve the
//! best iteration.

use std::path::Path;

use pulse_schemas::{FEATURE_COUNT, FEATURE_NAMES, SCHEMA};
use serde::de::{Error as _, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;

use crate::artifact::{Model, ModelArtifact, ModelMeta, BINARY_HEADS};
use crate::gbt::{GbtHead, GbtModel, Node, Tree};
use crate::net::HEADS;
use crate::ModelError;

/// The objective a probability head's model must have.
pub const PROBABILITY_OBJECTIVE: &str = "binary:logistic";
/// The objectives a regression head's model may have (identity link).
pub const REGRESSION_OBJECTIVES: [&str; 3] = ["reg:squarederror", "reg:absoluteerror", "reg:pseudohubererror"];

/// The `f64` threshold `c` such that, for every `f64` `x` that is not NaN,
/// `x < c` exactly when `(x as f32) < t`: XGBoost's split on `f32` inputs,
/// as pulse's `f64` comparison. `t` must be finite.
///
/// With `p` the `f32` just below `t` and `m = (p + t) / 2` (exact in `f64`),
/// `x` rounds to `p` or below when `x < m`, and at `x = m` to whichever of
/// `p`, `t` has an even significand. So `c = m` when `t`'s is even and the
/// next `f64` above `m` when `p`'s is. Below `f32::MIN` the `f32` "before"
/// is −∞, reached from `−(2¹²⁸ − 2¹⁰³)` down (IEEE 754 overflow rounding),
/// which the same formula gives with `p = −2¹²⁸`.
pub fn threshold_from_f32(t: f32) -> f64 {
    debug_assert!(t.is_finite());
    let p = t.next_down();
    let (p, p_even) = if p.is_infinite() { (-(2f64.powi(128)), true) } else { (f64::from(p), p.to_bits() & 1 == 0) };
    let m = (p + f64::from(t)) / 2.0;
    if p_even {
        m.next_up()
    } else {
        m
    }
}

/// An `f32` as XGBoost wrote it, read with Rust's correctly rounded parser
/// straight from the JSON text (not through an `f64`, which could round
/// twice).
#[derive(Clone, Copy, Debug)]
struct F32(f32);

impl<'de> Deserialize<'de> for F32 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<F32, D::Error> {
        let raw = <&RawValue>::deserialize(d)?;
        let s = raw.get().trim();
        let number = s.starts_with(|c: char| c == '-' || c.is_ascii_digit());
        number.then(|| s.parse::<f32>().ok()).flatten().map(F32).ok_or_else(|| {
            D::Error::custom(format!("expected a number, found {}", s.chars().take(40).collect::<String>()))
        })
    }
}

/// `default_left`: booleans in some versions, 0/1 in others.
#[derive(Clone, Copy, Debug)]
struct Flag(bool);

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Flag, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Flag;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a boolean or 0/1")
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Flag, E> {
                Ok(Flag(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Flag, E> {
                match v {
                    0 | 1 => Ok(Flag(v == 1)),
                    _ => Err(E::custom(format!("expected 0 or 1, found {v}"))),
                }
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Flag, E> {
                self.visit_u64(u64::try_from(v).map_err(|_| E::custom(format!("expected 0 or 1, found {v}")))?)
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize)]
struct XgbFile {
    learner: Learner,
    #[serde(default)]
    version: Vec<u64>,
}

#[derive(Deserialize)]
struct Learner {
    #[serde(default)]
    feature_names: Vec<String>,
    #[serde(default)]
    feature_types: Vec<String>,
    gradient_booster: Booster,
    learner_model_param: LearnerModelParam,
    objective: Objective,
}

#[derive(Deserialize)]
struct Booster {
    name: String,
    /// Read as a tree model only once `name` says it is one: a `gblinear`
    /// model has no trees, and failed as "not an XGBoost JSON model".
    #[serde(default)]
    model: Option<Box<serde_json::value::RawValue>>,
}

#[derive(Deserialize)]
struct GbtreeModel {
    trees: Vec<XgbTree>,
    #[serde(default)]
    tree_info: Vec<i64>,
}

#[derive(Deserialize)]
struct LearnerModelParam {
    base_score: String,
    #[serde(default)]
    num_class: Option<String>,
    #[serde(default)]
    num_feature: Option<String>,
    #[serde(default)]
    num_target: Option<String>,
}

#[derive(Deserialize)]
struct Objective {
    name: String,
}

#[derive(Deserialize)]
struct XgbTree {
    left_children: Vec<i64>,
    right_children: Vec<i64>,
    split_indices: Vec<i64>,
    split_conditions: Vec<F32>,
    default_left: Vec<Flag>,
    sum_hessian: Vec<F32>,
    #[serde(default)]
    split_type: Vec<i64>,
    #[serde(default)]
    tree_param: Option<TreeParam>,
}

#[derive(Deserialize)]
struct TreeParam {
    #[serde(default)]
    size_leaf_vector: Option<String>,
}

/// What was imported for one head, kept in the artifact's `training` record.
#[derive(Clone, Debug, Serialize)]
pub struct ImportedHead {
    /// The head.
    pub head: &'static str,
    /// The file's name (without its directory).
    pub file: String,
    /// The XGBoost version that wrote it (`version` in the file), if stated.
    pub xgboost_version: Option<String>,
    /// The objective.
    pub objective: String,
    /// `base_score` as stored (output space).
    pub base_score: f64,
    /// The margin it becomes (pulse's `base_score`).
    pub base_margin: f64,
    /// Trees imported.
    pub trees: usize,
    /// Whether the file named its features (and they were checked).
    pub feature_names_checked: bool,
}

fn parse_count(field: &str, value: &Option<String>) -> Result<Option<u64>, String> {
    value
        .as_deref()
        .map(|s| s.trim().parse::<u64>().map_err(|_| format!("learner_model_param.{field} {s:?} is not a count")))
        .transpose()
}

/// `base_score` as written: `"5E-1"` (to 3.0) or `"[5E-1]"` (3.1 onward).
fn parse_base_score(s: &str) -> Result<f32, String> {
    let bad = || format!("learner_model_param.base_score {s:?} is not one number");
    let t = s.trim();
    let inner = match t.strip_prefix('[') {
        Some(rest) => rest.strip_suffix(']').ok_or_else(bad)?,
        None => t,
    };
    let mut parts = inner.split(',');
    let first = parts.next().map(str::trim).filter(|p| !p.is_empty()).ok_or_else(bad)?;
    if parts.next().is_some() {
        return Err(format!("base_score {s:?} has several values: a multi-target model; pulse needs one per head"));
    }
    first.parse::<f32>().ok().filter(|b| b.is_finite()).ok_or_else(bad)
}

fn check_objective(objective: &str, head: usize) -> Result<(), String> {
    if BINARY_HEADS.contains(&head) {
        if objective != PROBABILITY_OBJECTIVE {
            return Err(format!(
                "objective `{objective}` does not fit {}, a probability head: train it with `{PROBABILITY_OBJECTIVE}`",
                HEADS[head]
            ));
        }
    } else if !REGRESSION_OBJECTIVES.contains(&objective) {
        return Err(format!(
            "objective `{objective}` does not fit {}, a regression head: train it with one of {}",
            HEADS[head],
            REGRESSION_OBJECTIVES.map(|o| format!("`{o}`")).join(", ")
        ));
    }
    Ok(())
}

fn check_features(learner: &Learner) -> Result<bool, String> {
    let names = &learner.feature_names;
    if !names.is_empty() {
        let first_difference = (0..names.len().max(FEATURE_COUNT))
            .find(|&i| names.get(i).map(String::as_str) != FEATURE_NAMES.get(i).copied());
        if let Some(i) = first_difference {
            let show = |n: Option<&str>| n.map_or("nothing".to_string(), |n| format!("`{n}`"));
            return Err(format!(
                "the model's features are not pulse's ({SCHEMA}: {FEATURE_COUNT} in order; the model has {}): \
                 feature {i} is {} in the model but {} in pulse; train on the feature columns of \
                 `pulse dataset` rows, in their order",
                names.len(),
                show(names.get(i).map(String::as_str)),
                show(FEATURE_NAMES.get(i).copied()),
            ));
        }
    }
    match parse_count("num_feature", &learner.learner_model_param.num_feature)? {
        Some(n) if n as usize != FEATURE_COUNT => Err(format!(
            "the model was trained on {n} features; pulse's {SCHEMA} has {FEATURE_COUNT}: train on the \
             feature columns of `pulse dataset` rows, in their order"
        )),
        // Neither names nor a count: nothing says it was trained on pulse's
        // features (split indices under 46 are checked, but a model of 40
        // columns passes that).
        None if names.is_empty() => Err(format!(
            "the model names no features and has no learner_model_param.num_feature: nothing says it was \
             trained on pulse's {SCHEMA} ({FEATURE_COUNT} features); save it with the feature names of \
             `pulse dataset` rows (an XGBoost DMatrix of a DataFrame with those columns does)"
        )),
        _ => Ok(!names.is_empty()),
    }
}

/// One XGBoost tree as pulse nodes, renumbered breadth first from the root.
fn convert_tree(t: &XgbTree) -> Result<Tree, String> {
    let n = t.left_children.len();
    let lens = [
        ("right_children", t.right_children.len()),
        ("split_indices", t.split_indices.len()),
        ("split_conditions", t.split_conditions.len()),
        ("default_left", t.default_left.len()),
        ("sum_hessian", t.sum_hessian.len()),
    ];
    if let Some((name, len)) = lens.iter().find(|(_, len)| *len != n) {
        return Err(format!("{name} has {len} entries but left_children {n}"));
    }
    if n == 0 {
        return Err("no nodes".into());
    }
    if let Some(size) = t.tree_param.as_ref().and_then(|p| p.size_leaf_vector.as_deref()) {
        if size.trim().parse::<u64>().map_or(true, |s| s > 1) {
            return Err(format!("leaves of {size} values (a multi-target tree); pulse needs one value per leaf"));
        }
    }
    // Breadth-first order from the root: `order[new] = old`.
    let mut new_index = vec![u32::MAX; n];
    let mut order = vec![0usize];
    new_index[0] = 0;
    let mut k = 0;
    while k < order.len() {
        let old = order[k];
        k += 1;
        let (l, r) = (t.left_children[old], t.right_children[old]);
        if l == -1 && r == -1 {
            continue;
        }
        if t.split_type.get(old).is_some_and(|&s| s != 0) {
            return Err(format!("node {old} is a categorical split; pulse's trees split on numbers only"));
        }
        for c in [l, r] {
            let c = usize::try_from(c)
                .ok()
                .filter(|&c| c < n)
                .ok_or_else(|| format!("node {old}: child {c} is not one of the {n} nodes"))?;
            if new_index[c] != u32::MAX {
                return Err(format!("node {c} is reached twice: not a tree"));
            }
            new_index[c] = order.len() as u32;
            order.push(c);
        }
    }
    let mut nodes = Vec::with_capacity(order.len());
    for &old in &order {
        let cover = f64::from(t.sum_hessian[old].0);
        let (l, r) = (t.left_children[old], t.right_children[old]);
        if l == -1 {
            nodes.push(Node::leaf(f64::from(t.split_conditions[old].0), cover));
            continue;
        }
        let feature = t.split_indices[old];
        if !(0..FEATURE_COUNT as i64).contains(&feature) {
            return Err(format!(
                "node {old} splits on feature {feature}; pulse has {FEATURE_COUNT} ({SCHEMA}, indices 0–{})",
                FEATURE_COUNT - 1
            ));
        }
        let condition = t.split_conditions[old].0;
        if !condition.is_finite() {
            return Err(format!("node {old}: split condition {condition} is not finite"));
        }
        nodes.push(Node {
            feature: feature as u32,
            threshold: threshold_from_f32(condition),
            default_left: t.default_left[old].0,
            left: new_index[l as usize],
            right: new_index[r as usize],
            value: 0.0,
            cover,
        });
    }
    // Splits' values from their children's, leaves up (children come later).
    for i in (0..nodes.len()).rev() {
        if !nodes[i].is_leaf() {
            let (l, r) = (nodes[nodes[i].left as usize], nodes[nodes[i].right as usize]);
            let weight = l.cover + r.cover;
            nodes[i].value =
                if weight > 0.0 { (l.cover * l.value + r.cover * r.value) / weight } else { (l.value + r.value) / 2.0 };
        }
    }
    Tree::new(nodes)
}

/// One head's ensemble from an XGBoost JSON model's bytes.
fn convert(bytes: &[u8], head: usize) -> Result<(GbtHead, ImportedHead), String> {
    let not_json = |e: &dyn std::fmt::Display| {
        format!(
            "not an XGBoost JSON model ({e}); save each booster with a file name ending in .json, \
             booster.save_model(\"head.json\"): other names get XGBoost's binary UBJSON"
        )
    };
    let text = std::str::from_utf8(bytes).map_err(|e| not_json(&e))?;
    let file: XgbFile = serde_json::from_str(text).map_err(|e| not_json(&e))?;
    let learner = &file.learner;
    let objective = learner.objective.name.as_str();
    check_objective(objective, head)?;
    let booster = &learner.gradient_booster;
    let model: GbtreeModel = match (booster.name.as_str(), &booster.model) {
        ("gbtree", Some(model)) => serde_json::from_str(model.get())
            .map_err(|e| format!("not an XGBoost JSON tree model (its `gradient_booster.model`: {e})"))?,
        ("gbtree", None) => return Err("a `gbtree` booster without its `model` (the trees)".into()),
        (name, _) => {
            return Err(format!("booster `{name}`: pulse imports tree boosters (`gbtree`), not `dart` or `gblinear`"))
        }
    };
    let param = &learner.learner_model_param;
    if parse_count("num_class", &param.num_class)?.is_some_and(|c| c > 1) {
        return Err("a multi-class model; pulse's heads are one output each".into());
    }
    if parse_count("num_target", &param.num_target)?.is_some_and(|c| c > 1) {
        return Err("a multi-target model; give one model per head".into());
    }
    let feature_names_checked = check_features(learner)?;
    if learner.feature_types.iter().any(|t| t == "c") {
        return Err("the model has categorical features; pulse's features are all numeric".into());
    }
    if model.tree_info.iter().any(|&g| g != 0) {
        return Err("trees for several outputs (tree_info); pulse needs one output per model".into());
    }
    if model.trees.is_empty() {
        // A booster trained for 0 rounds scores its base score for everyone.
        return Err("the model has no trees: it scores every customer the same".into());
    }
    let mut trees = Vec::with_capacity(model.trees.len());
    for (i, tree) in model.trees.iter().enumerate() {
        trees.push(convert_tree(tree).map_err(|e| format!("tree {i}: {e}"))?);
    }
    let base_score = parse_base_score(&param.base_score)?;
    let b = f64::from(base_score);
    let base_margin = if objective == PROBABILITY_OBJECTIVE {
        if !(b > 0.0 && b < 1.0) {
            return Err(format!("base_score {b} of a {objective} model must be a probability in (0, 1)"));
        }
        (b / (1.0 - b)).ln()
    } else {
        b
    };
    let info = ImportedHead {
        head: HEADS[head],
        file: String::new(),
        xgboost_version: (!file.version.is_empty())
            .then(|| file.version.iter().map(u64::to_string).collect::<Vec<_>>().join(".")),
        objective: objective.to_string(),
        base_score: b,
        base_margin,
        trees: trees.len(),
        feature_names_checked,
    };
    Ok((GbtHead { base_score: base_margin, trees }, info))
}

/// Reads one XGBoost JSON model per head and makes a pulse `gbt` artifact of
/// them (kind `gbt`, features-v1, no calibration; `training` records each
/// file, its XGBoost version, objective, base score and tree count).
///
/// `files` pairs each head's name (`churn_risk_14d`, …) with its file; all
/// five heads are needed, each once. Errors name the head and file at fault,
/// and list every head missing.
pub fn import_xgboost<S: AsRef<str>, P: AsRef<Path>>(
    files: &[(S, P)],
    name: &str,
    version: &str,
) -> Result<ModelArtifact, ModelError> {
    let mut by_head: [Option<&Path>; 5] = [None; 5];
    for (head, path) in files {
        let head = head.as_ref();
        let h = HEADS
            .iter()
            .position(|&n| n == head)
            .ok_or_else(|| ModelError::Import(format!("`{head}` is not one of pulse's heads: {}", HEADS.join(", "))))?;
        if by_head[h].replace(path.as_ref()).is_some() {
            return Err(ModelError::Import(format!("{head} is given more than once")));
        }
    }
    let missing: Vec<&str> = HEADS.iter().zip(&by_head).filter(|(_, p)| p.is_none()).map(|(h, _)| *h).collect();
    if !missing.is_empty() {
        return Err(ModelError::Import(format!(
            "no XGBoost model for {}: pulse serves all five heads ({}), one model each",
            missing.join(", "),
            HEADS.join(", ")
        )));
    }
    let mut heads = Vec::with_capacity(HEADS.len());
    let mut imported = Vec::with_capacity(HEADS.len());
    for (h, path) in by_head.iter().enumerate() {
        let path = path.expect("every head was checked above");
        let bytes = std::fs::read(path)
            .map_err(|e| ModelError::Import(format!("{} ({}): cannot read it: {e}", path.display(), HEADS[h])))?;
        let (head, mut info) =
            convert(&bytes, h).map_err(|e| ModelError::Import(format!("{} ({}): {e}", path.display(), HEADS[h])))?;
        info.file = path.file_name().map_or_else(|| path.display().to_string(), |f| f.to_string_lossy().into_owned());
        heads.push(head);
        imported.push(info);
    }
    let model = GbtModel::new(heads).map_err(ModelError::Import)?;
    let meta =
        ModelMeta::for_pulse(name, version, None, serde_json::json!({ "trainer": "xgboost", "imported": imported }));
    Ok(ModelArtifact { meta, model: Model::Gbt(model) })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(x as f32) < t` and `x < threshold_from_f32(t)` agree around the
    /// rounding boundary and at the extremes.
    #[test]
    fn thresholds_match_f32_rounding_exactly() {
        let mut ts = vec![
            0.0f32,
            -0.0,
            1.0,
            -1.0,
            0.1,
            3.0,
            2.5,
            f32::MAX,
            f32::MIN,
            f32::MIN_POSITIVE,
            -f32::MIN_POSITIVE,
            f32::from_bits(1),
            f32::from_bits(2),
            -f32::from_bits(1),
            16_777_216.0,
            16_777_217.0,
        ];
        // A deterministic spread of bit patterns, even and odd significands.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let t = f32::from_bits(state as u32);
            if t.is_finite() {
                ts.push(t);
            }
        }
        for t in ts {
            let c = threshold_from_f32(t);
            assert!(c.is_finite());
            let p = t.next_down();
            let mut xs =
                vec![c, c.next_down(), c.next_up(), f64::from(t), f64::from(t).next_down(), f64::from(t).next_up()];
            if p.is_finite() {
                xs.extend([f64::from(p), f64::from(p).next_up(), f64::from(p).next_down()]);
            }
            xs.extend([f64::INFINITY, f64::NEG_INFINITY, f64::MAX, f64::MIN, 0.0, -0.0]);
            for x in xs {
                assert_eq!((x as f32) < t, x < c, "t = {t:e} ({:#x}), x = {x:e}, threshold {c:e}", t.to_bits());
            }
        }
        // The boundary is not the f32 itself: just below 1.0 rounds to 1.0.
        let below_one = 1.0f64.next_down();
        assert!(below_one < 1.0 && (below_one as f32) == 1.0);
        assert!(below_one >= threshold_from_f32(1.0));
    }

    #[test]
    fn base_scores_of_every_version_read() {
        assert_eq!(parse_base_score("5E-1").unwrap(), 0.5);
        assert_eq!(parse_base_score("[3.9E-1]").unwrap(), 0.39);
        assert_eq!(parse_base_score(" [ 1.25E1 ] ").unwrap(), 12.5);
        assert!(parse_base_score("[1E0,2E0]").unwrap_err().contains("several values"));
        assert!(parse_base_score("[]").is_err());
        assert!(parse_base_score("abc").is_err());
    }
}
