//! Gradient-boosted trees, in pure Rust: one ensemble of regression trees per
//! head, grown on histograms of quantile-binned features.
//!
//! Training:
//!
//! * **Binning.** Each feature's training values (up to
//!   [`BINNING_SAMPLE`] rows, evenly strided) get at most
//!   `max_bins - 1` cut points (≤ 254), placed between distinct values at
//!   quantiles; every row becomes 46 bytes, `bin = #{cuts ≤ x}` (NaN goes to
//!   the top bin). A split "bin ≤ b" is then exactly "x < cuts\[b\]", so
//!   a tree stores the raw-value threshold `cuts[b]` and inference never bins.
//! * **Trees.** Depth-wise growth to `max_depth`. Per node, a histogram of
//!   gradient and hessian sums per feature and bin; the smaller child's is
//!   built from its rows, the larger one's is the parent's minus it. The best
//!   split maximises `½·[G_L²/(H_L+λ) + G_R²/(H_R+λ) − G²/(H+λ)]` subject to
//!   `H_L, H_R ≥ min_child_hessian` and a gain above `min_split_gain`.
//!   Ties keep the first (lowest feature, then lowest bin): deterministic.
//! * **Values.** A node's value is `−G/(H+λ)·learning_rate` (a Newton step,
//!   already shrunk); for [`Loss::Absolute`] it is the median residual of its
//!   rows times the learning rate instead (LightGBM's leaf renewal for L1).
//!   The cover is `H`, the sum of its training rows' hessians (the row count
//!   for squared and absolute error): what exact TreeSHAP needs.
//! * **Boosting.** Per tree an optional row subsample (Bernoulli, seeded per
//!   head); after each tree the validation loss; training stops
//!   `early_stopping_rounds` trees after the best one and keeps the best.
//! * **Heads.** The five heads train independently, in parallel on
//!   `threads` threads (each head's result is the same on any thread count).
//!
//! Losses: logistic (binary cross-entropy on the margin) for the three
//! probabilities; squared error for velocity; for health, which is judged by
//! its mean absolute error, absolute error by default ([`Loss::Absolute`]:
//! the trees fit the sign of the residual and each leaf outputs the median
//! residual of its rows, so the ensemble estimates the conditional median,
//! the MAE-optimal answer, as the network's L1 health loss does), or squared
//! error ([`GbtConfig::health_loss`]). Health's future is lopsided (a
//! customer who stops is at 0, an engaged one saturates at 100), so mean and
//! median differ: on the held-out customers of `pulse train`'s default data,
//! absolute error gave a health MAE of 5.61 and squared error 6.37, with the
//! other settings at their defaults.
//!
//! Inference: `margin = base_score + Σ value of the leaf reached in each
//! tree`, a node sending `x` left when `x[feature] < threshold`, and NaN to
//! the side its `default_left` names (right for every node this trainer
//! grows; imported models, such as XGBoost's, learn it per node); the margin
//! becomes an output as [`crate::artifact::scores_from_margins`] says.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use pulse_schemas::{Features, FEATURE_COUNT};
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::artifact::{Model, ModelArtifact, ModelMeta};
use crate::net::HEADS;
use crate::train::{Dataset, Targets};
use crate::ModelError;

const F: usize = FEATURE_COUNT;

/// Binning looks at most this many rows per feature (evenly strided).
pub const BINNING_SAMPLE: usize = 200_000;

/// The child index of a leaf (it has none).
pub const LEAF: u32 = u32::MAX;

/// One node of a tree, as stored and as served.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Node {
    /// The feature split on (index into `FEATURE_NAMES`); 0 for a leaf.
    pub feature: u32,
    /// Rows with `x[feature] < threshold` go left, the others right (NaN:
    /// see `default_left`); 0 for a leaf.
    pub threshold: f64,
    /// Where a row whose `x[feature]` is NaN goes: left when true, right when
    /// false (every node of pulse's own trainer). False for a leaf.
    pub default_left: bool,
    /// Index of the left child in the tree's nodes, or [`LEAF`].
    pub left: u32,
    /// Index of the right child, or [`LEAF`].
    pub right: u32,
    /// A leaf's output, added to the margin (already multiplied by the
    /// learning rate). For an internal node, what it would output as a leaf:
    /// informational, inference never reads it.
    pub value: f64,
    /// Sum of the hessians of the training rows that reached this node (the
    /// row count for squared and absolute error).
    pub cover: f64,
}

impl Node {
    /// Whether the node is a leaf.
    pub fn is_leaf(&self) -> bool {
        self.left == LEAF
    }

    /// A leaf: `value` added to the margin, `cover` the training rows' hessians.
    pub fn leaf(value: f64, cover: f64) -> Node {
        Node { feature: 0, threshold: 0.0, default_left: false, left: LEAF, right: LEAF, value, cover }
    }

    /// Whether a split sends a row whose split feature is `x` left:
    /// `x < threshold`, or `x` is NaN and the node's default is left.
    #[inline(always)]
    pub fn goes_left(&self, x: f64) -> bool {
        x < self.threshold || (self.default_left && x.is_nan())
    }
}

/// A regression tree as a flat array of nodes, the root first; every child
/// comes after its parent (so a walk always ends) and has exactly one parent.
#[derive(Clone, Debug, PartialEq)]
pub struct Tree {
    nodes: Vec<Node>,
}

impl Tree {
    /// Checks the nodes form a tree over pulse's features: non-empty; a leaf
    /// has both children [`LEAF`], an internal node two children after it;
    /// every node but the root is the child of exactly one node; features
    /// below 46; thresholds, values and covers finite, covers not negative.
    pub fn new(nodes: Vec<Node>) -> Result<Tree, String> {
        if nodes.is_empty() {
            return Err("a tree needs at least one node".into());
        }
        let n = nodes.len();
        let mut parents = vec![0u8; n];
        for (i, node) in nodes.iter().enumerate() {
            if !node.value.is_finite() || !node.cover.is_finite() || node.cover < 0.0 {
                return Err(format!("node {i}: value and cover must be finite, cover not negative"));
            }
            if node.left == LEAF || node.right == LEAF {
                if node.left != node.right {
                    return Err(format!("node {i}: a leaf has both children -1, an internal node neither"));
                }
                continue;
            }
            if node.feature as usize >= F {
                return Err(format!("node {i} splits on feature {}, but there are {F} features", node.feature));
            }
            if !node.threshold.is_finite() {
                return Err(format!("node {i}: the threshold must be finite"));
            }
            for child in [node.left, node.right] {
                let c = child as usize;
                if c <= i || c >= n {
                    return Err(format!("node {i}: child {c} must come after it and within the {n} nodes"));
                }
                parents[c] += 1;
                if parents[c] > 1 {
                    return Err(format!("node {c} is the child of more than one node"));
                }
            }
        }
        if let Some(orphan) = parents.iter().skip(1).position(|&p| p == 0) {
            return Err(format!("node {} is nobody's child", orphan + 1));
        }
        Ok(Tree { nodes })
    }

    /// The nodes, root first.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The value of the leaf `x` reaches.
    #[inline]
    pub fn predict(&self, x: &Features) -> f64 {
        let nodes = &self.nodes[..];
        let mut i = 0usize;
        loop {
            let node = &nodes[i];
            if node.left == LEAF {
                return node.value;
            }
            i = if node.goes_left(x[node.feature as usize]) { node.left } else { node.right } as usize;
        }
    }
}

/// One head's ensemble: `margin = base_score + Σ tree values`.
#[derive(Clone, Debug, PartialEq)]
pub struct GbtHead {
    /// The margin before any tree.
    pub base_score: f64,
    /// The trees, summed in order.
    pub trees: Vec<Tree>,
}

impl GbtHead {
    /// The margin of one row.
    #[inline]
    pub fn margin(&self, x: &Features) -> f64 {
        let mut m = self.base_score;
        for tree in &self.trees {
            m += tree.predict(x);
        }
        m
    }
}

/// The five heads' ensembles, in [`HEADS`] order.
#[derive(Clone, Debug, PartialEq)]
pub struct GbtModel {
    heads: Vec<GbtHead>,
    compiled: Compiled,
}

/// Rows scored together: each tree is walked for all of them while its nodes
/// are in cache.
const BLOCK: usize = 64;

/// A node for inference, 16 bytes. A split's two children sit side by
/// side, so the walk picks one by index (`first_child + (x ≥ threshold)`), no
/// branch on the direction. A leaf's "children" are a pair of copies of
/// itself, so a walk of the tree's full depth ends on the leaf whatever the
/// row: every walk of a tree takes the same steps, and several rows' walks
/// run interleaved.
#[derive(Clone, Copy, Debug, PartialEq)]
struct FastNode {
    /// A split's threshold, or a leaf's value.
    v: f64,
    /// The feature split on (0 for a leaf: any feature picks one of its
    /// copies), with [`DEFAULT_LEFT`] set when NaN goes left.
    feature: u32,
    /// The left child's index; the right one is next to it.
    first_child: u32,
}

/// The bit of [`FastNode::feature`] that sends NaN left (feature indices
/// are below 46).
const DEFAULT_LEFT: u32 = 1 << 31;

/// A row as the walks read it (inference's here, attribution's in
/// `explain`): its features, then zeros up to 64, so a node's feature index
/// masked to six bits is always in bounds (the walk needs no bounds check
/// on it; every node's index is below 46 anyway).
pub(crate) type Padded = [f64; PADDED];
pub(crate) const PADDED: usize = 64;
const _: () = assert!(F < PADDED);

pub(crate) fn pad(x: &Features) -> Padded {
    let mut padded = [0.0; PADDED];
    padded[..F].copy_from_slice(x);
    padded
}

/// Every tree of every head in one array of [`FastNode`]s.
#[derive(Clone, Debug, Default, PartialEq)]
struct Compiled {
    /// Padded with unreachable leaves to a power of two, so a node index
    /// masked by `mask` is always in bounds: the walks' steps need no
    /// bounds checks (two of a step's eleven instructions before). The
    /// padding costs less than as many nodes again (16 bytes each), never
    /// walked.
    nodes: Vec<FastNode>,
    /// `nodes.len() - 1`.
    mask: usize,
    /// Per head, each tree's root and depth (edges on its longest path).
    trees: Vec<Vec<(u32, u32)>>,
    /// Some node sends NaN left (an imported model): walks then check for
    /// NaN; models without such a node (pulse's own) walk as before.
    default_left: bool,
}

/// Rows walked through a tree together.
const LANES: usize = 8;

impl Compiled {
    fn new(heads: &[GbtHead]) -> Result<Compiled, String> {
        let mut c = Compiled::default();
        let index = |i: usize| u32::try_from(i).map_err(|_| "a gbt model of more than 2^32 nodes".to_string());
        for head in heads {
            let mut trees = Vec::with_capacity(head.trees.len());
            for tree in &head.trees {
                let root = c.nodes.len();
                c.nodes.push(FastNode { v: 0.0, feature: 0, first_child: 0 });
                let mut depth = 0;
                let mut queue = std::collections::VecDeque::from([(0usize, root, 0u32)]);
                while let Some((old, new, d)) = queue.pop_front() {
                    let node = &tree.nodes[old];
                    let first = c.nodes.len();
                    if node.is_leaf() {
                        depth = depth.max(d);
                        let copy = FastNode { v: node.value, feature: 0, first_child: index(first)? };
                        c.nodes.extend([copy; 2]);
                        c.nodes[new] = copy;
                    } else {
                        c.nodes.extend([FastNode { v: 0.0, feature: 0, first_child: 0 }; 2]);
                        queue.push_back((node.left as usize, first, d + 1));
                        queue.push_back((node.right as usize, first + 1, d + 1));
                        let feature = node.feature | if node.default_left { DEFAULT_LEFT } else { 0 };
                        c.default_left |= node.default_left;
                        c.nodes[new] = FastNode { v: node.threshold, feature, first_child: index(first)? };
                    }
                }
                trees.push((index(root)?, depth));
            }
            c.trees.push(trees);
        }
        let padded = c.nodes.len().max(1).next_power_of_two();
        c.nodes.resize(padded, FastNode { v: 0.0, feature: 0, first_child: 0 });
        c.mask = padded - 1;
        Ok(c)
    }

    /// The nodes as a slice of exactly `mask + 1`, so indexes masked by
    /// `mask` need no bounds check.
    #[inline(always)]
    fn nodes(&self) -> &[FastNode] {
        &self.nodes[..=self.mask]
    }

    /// The next node: left when x < threshold; otherwise right, and NaN
    /// too unless `MISSING` and the node's default is left.
    /// `nodes` is [`Compiled::nodes`]; `i` is masked by `mask`, the
    /// feature to six bits (so neither index is checked).
    #[inline(always)]
    fn step<const MISSING: bool>(nodes: &[FastNode], mask: usize, i: usize, x: &Padded) -> usize {
        // The masks never change a valid index; a wrong one would read
        // another node or feature instead of panicking, so tests check.
        debug_assert!(i <= mask && (nodes[i].feature & !DEFAULT_LEFT) < F as u32, "node {i}");
        let n = &nodes[i & mask];
        let v = x[(n.feature as usize) & (PADDED - 1)];
        let left = if MISSING { (v < n.v) | (v.is_nan() & (n.feature & DEFAULT_LEFT != 0)) } else { v < n.v };
        n.first_child as usize + 1 - usize::from(left)
    }

    /// The value of the leaf `x` reaches.
    #[inline(always)]
    fn walk<const MISSING: bool>(&self, (root, depth): (u32, u32), x: &Padded) -> f64 {
        let (nodes, mask) = (self.nodes(), self.mask);
        let mut i = root as usize;
        for _ in 0..depth {
            i = Self::step::<MISSING>(nodes, mask, i, x);
        }
        nodes[i & mask].v
    }

    /// [`Compiled::walk`] for [`LANES`] rows at once.
    #[inline(always)]
    fn walk_lanes<const MISSING: bool>(&self, (root, depth): (u32, u32), x: &[Padded; LANES]) -> [f64; LANES] {
        let (nodes, mask) = (self.nodes(), self.mask);
        let mut i = [root as usize; LANES];
        for _ in 0..depth {
            for (i, x) in i.iter_mut().zip(x) {
                *i = Self::step::<MISSING>(nodes, mask, *i, x);
            }
        }
        i.map(|i| nodes[i & mask].v)
    }

    /// The values of the leaves one row reaches in up to [`LANES`] trees,
    /// walked side by side (in `trees` order; lanes past `trees.len()` are
    /// padding). A batch of a few rows, the common case in a stream (a
    /// tick's changed customers), leaves [`Compiled::walk_lanes`] nothing
    /// to interleave; this finds the same parallelism across trees instead.
    /// Every tree is walked to the group's deepest: a leaf sends a walk
    /// back to itself.
    #[inline(always)]
    fn walk_trees<const MISSING: bool>(&self, trees: &[(u32, u32)], x: &Padded) -> [f64; LANES] {
        let (nodes, mask) = (self.nodes(), self.mask);
        let first = trees.first().map_or(0, |&(root, _)| root as usize);
        let mut i = [first; LANES];
        for (i, &(root, _)) in i.iter_mut().zip(trees) {
            *i = root as usize;
        }
        let depth = trees.iter().map(|&(_, d)| d).max().unwrap_or(0);
        for _ in 0..depth {
            for i in i.iter_mut() {
                *i = Self::step::<MISSING>(nodes, mask, *i, x);
            }
        }
        i.map(|i| nodes[i & mask].v)
    }
}

impl GbtModel {
    /// A model from five heads in [`HEADS`] order.
    pub fn new(heads: Vec<GbtHead>) -> Result<GbtModel, String> {
        if heads.len() != HEADS.len() {
            return Err(format!("a gbt model has {} heads ({HEADS:?}), not {}", HEADS.len(), heads.len()));
        }
        if heads.iter().any(|h| !h.base_score.is_finite()) {
            return Err("base_score must be finite".into());
        }
        let compiled = Compiled::new(&heads)?;
        Ok(GbtModel { heads, compiled })
    }

    /// The heads, in [`HEADS`] order.
    pub fn heads(&self) -> &[GbtHead] {
        &self.heads
    }

    /// The five margins of one row.
    pub fn margins(&self, x: &Features) -> [f64; 5] {
        if self.compiled.default_left {
            self.margins_of::<true>(x)
        } else {
            self.margins_of::<false>(x)
        }
    }

    fn margins_of<const MISSING: bool>(&self, x: &Features) -> [f64; 5] {
        let x = &pad(x);
        std::array::from_fn(|h| {
            let mut m = self.heads[h].base_score;
            for &tree in &self.compiled.trees[h] {
                m += self.compiled.walk::<MISSING>(tree, x);
            }
            m
        })
    }

    /// Appends the margins of `rows` to `out` (equal, bit for bit, to
    /// [`GbtModel::margins`] row by row). Rows go in blocks of 64, each tree
    /// walked for the whole block while its nodes are in cache, eight rows'
    /// walks interleaved; the rows left over (all of them in a batch of
    /// fewer than eight) walk eight trees at a time instead. Nothing is
    /// allocated per row: one buffer per call holds up to 64 rows padded
    /// to 64 features (32 KiB at most).
    pub fn margins_into(&self, rows: &[Features], out: &mut Vec<[f64; 5]>) {
        if self.compiled.default_left {
            self.margins_into_of::<true>(rows, out)
        } else {
            self.margins_into_of::<false>(rows, out)
        }
    }

    fn margins_into_of<const MISSING: bool>(&self, rows: &[Features], out: &mut Vec<[f64; 5]>) {
        out.reserve(rows.len());
        let base: [f64; 5] = std::array::from_fn(|h| self.heads[h].base_score);
        // A block's rows, padded: one buffer per call, reused for every block.
        let mut padded = vec![[0.0; PADDED]; rows.len().min(BLOCK)];
        for block in rows.chunks(BLOCK) {
            let start = out.len();
            out.resize(start + block.len(), base);
            for (p, x) in padded.iter_mut().zip(block) {
                p[..F].copy_from_slice(x);
            }
            let full = block.len() / LANES * LANES;
            let (lane_rows, rest_rows) = padded[..block.len()].split_at(full);
            let (lane_acc, rest_acc) = out[start..].split_at_mut(full);
            for (h, trees) in self.compiled.trees.iter().enumerate() {
                for &tree in trees {
                    for (rows, a) in lane_rows.chunks_exact(LANES).zip(lane_acc.chunks_exact_mut(LANES)) {
                        let rows: &[Padded; LANES] = rows.try_into().expect("chunks of LANES");
                        for (a, v) in a.iter_mut().zip(self.compiled.walk_lanes::<MISSING>(tree, rows)) {
                            a[h] += v;
                        }
                    }
                }
                // The rows short of a full set of lanes: each walks LANES
                // trees at once. The values are still added in tree order,
                // so the margin is the same, bit for bit.
                for (row, a) in rest_rows.iter().zip(rest_acc.iter_mut()) {
                    for group in trees.chunks(LANES) {
                        let values = self.compiled.walk_trees::<MISSING>(group, row);
                        for v in &values[..group.len()] {
                            a[h] += v;
                        }
                    }
                }
            }
        }
    }

    /// Trees over all heads.
    pub fn tree_count(&self) -> usize {
        self.heads.iter().map(|h| h.trees.len()).sum()
    }
}

/// The loss a head's trees minimise.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Loss {
    /// Binary cross-entropy on the margin (probability = sigmoid(margin)).
    Logistic,
    /// Squared error (the conditional mean).
    Squared,
    /// Absolute error (the conditional median), by sign gradients and leaves
    /// renewed to the median residual.
    Absolute,
}

/// Training settings of [`train_gbt`]. As JSON, a field left out takes its
/// default and an unknown one is refused.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GbtConfig {
    /// Seeds the row subsamples (each head its own stream).
    pub seed: u64,
    /// At most this many trees per head.
    pub max_trees: usize,
    /// Shrinkage of every tree's values, in (0, 1].
    pub learning_rate: f64,
    /// Depth of the trees (1 = a single split), 1–16.
    pub max_depth: usize,
    /// A child needs at least this sum of hessians (rows, for squared and
    /// absolute error; `p(1-p)` summed, for logistic).
    pub min_child_hessian: f64,
    /// L2 regularisation of the leaf values (λ).
    pub lambda: f64,
    /// A split must gain more than this.
    pub min_split_gain: f64,
    /// Share of the rows each tree sees, in (0, 1]; 1 = all rows, no RNG.
    pub subsample: f64,
    /// Bins per feature, 2–255.
    pub max_bins: usize,
    /// Stop this many trees after the best validation loss, and keep the
    /// best; 0 = grow all `max_trees` and keep them all.
    pub early_stopping_rounds: usize,
    /// Loss of the health head: [`Loss::Absolute`] or [`Loss::Squared`].
    pub health_loss: Loss,
    /// Heads trained at once; 0 = the machine's cores.
    pub threads: usize,
    /// The model's name.
    pub name: String,
    /// The model's version.
    pub version: String,
}

impl Default for GbtConfig {
    fn default() -> Self {
        GbtConfig {
            seed: 7,
            max_trees: 300,
            learning_rate: 0.1,
            max_depth: 6,
            min_child_hessian: 1.0,
            lambda: 1.0,
            min_split_gain: 0.0,
            subsample: 0.8,
            max_bins: 255,
            early_stopping_rounds: 20,
            health_loss: Loss::Absolute,
            threads: 0,
            name: "pulse-gbt".into(),
            version: "1".into(),
        }
    }
}

impl GbtConfig {
    /// Refuses settings out of range, naming the field.
    pub fn validate(&self) -> Result<(), ModelError> {
        let bad = |field: &str, rule: &str| Err(ModelError::Config(format!("GbtConfig.{field} {rule}")));
        if !(self.learning_rate > 0.0 && self.learning_rate <= 1.0) {
            return bad("learning_rate", "must be in (0, 1]");
        }
        if !(1..=16).contains(&self.max_depth) {
            return bad("max_depth", "must be 1–16");
        }
        if !(self.min_child_hessian >= 0.0 && self.min_child_hessian.is_finite()) {
            return bad("min_child_hessian", "must be finite and not negative");
        }
        if !(self.lambda >= 0.0 && self.lambda.is_finite()) {
            return bad("lambda", "must be finite and not negative");
        }
        if !(self.min_split_gain >= 0.0 && self.min_split_gain.is_finite()) {
            return bad("min_split_gain", "must be finite and not negative");
        }
        if !(self.subsample > 0.0 && self.subsample <= 1.0) {
            return bad("subsample", "must be in (0, 1]");
        }
        if !(2..=255).contains(&self.max_bins) {
            return bad("max_bins", "must be 2–255");
        }
        if self.health_loss == Loss::Logistic {
            return bad("health_loss", "must be absolute or squared");
        }
        Ok(())
    }

    /// The loss of each head, in [`HEADS`] order.
    pub fn losses(&self) -> [Loss; 5] {
        [Loss::Logistic, Loss::Squared, Loss::Logistic, Loss::Logistic, self.health_loss]
    }
}

/// Progress of one head, every 10 trees and when the head is done.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct GbtProgress {
    /// The head.
    pub head: &'static str,
    /// Trees grown so far.
    pub trees: usize,
    /// The training loss (on all training rows).
    pub train_loss: f64,
    /// The validation loss.
    pub valid_loss: f64,
    /// Trees at the best validation loss so far.
    pub best_trees: usize,
    /// The head is finished (its trees cut back to `best_trees`).
    pub done: bool,
}

/// Per-feature cut points: `bin(x) = #{cuts ≤ x}`, NaN in the top bin.
#[derive(Clone, Debug, PartialEq)]
pub struct Binner {
    cuts: Vec<Vec<f64>>,
}

/// A cut strictly above `a` and at most `b` (`a < b`), finite; `None` when
/// there is no finite one.
fn cut_between(a: f64, b: f64) -> Option<f64> {
    let mid = (a / 2.0 + b / 2.0).clamp(f64::MIN, f64::MAX);
    let cut = if mid > a { mid } else { b };
    cut.is_finite().then_some(cut)
}

impl Binner {
    /// Cut points from the training rows, at most `max_bins - 1` per feature.
    pub fn fit(rows: &[Features], max_bins: usize) -> Binner {
        let max_bins = max_bins.clamp(2, 255);
        let step = rows.len().div_ceil(BINNING_SAMPLE).max(1);
        let cuts = (0..F)
            .map(|f| {
                let mut v: Vec<f64> = rows.iter().step_by(step).map(|r| r[f]).filter(|x| !x.is_nan()).collect();
                v.sort_unstable_by(f64::total_cmp);
                let mut distinct: Vec<(f64, usize)> = Vec::new();
                for x in v.iter().copied() {
                    match distinct.last_mut() {
                        Some((last, count)) if *last == x => *count += 1,
                        _ => distinct.push((x, 1)),
                    }
                }
                let n = v.len();
                let mut cuts = Vec::new();
                let mut seen = 0usize;
                for (i, pair) in distinct.windows(2).enumerate() {
                    seen += pair[0].1;
                    // Few distinct values: one bin each. Many: a cut each time
                    // the next quantile of rows is passed.
                    let wanted = distinct.len() <= max_bins
                        || (i + 1 < distinct.len() && seen * max_bins >= (cuts.len() + 1) * n);
                    if wanted && cuts.len() + 1 < max_bins {
                        if let Some(c) = cut_between(pair[0].0, pair[1].0) {
                            cuts.push(c);
                        }
                    }
                }
                cuts
            })
            .collect();
        Binner { cuts }
    }

    /// The cut points of feature `f`.
    pub fn cuts(&self, f: usize) -> &[f64] {
        &self.cuts[f]
    }

    /// The bin of `x` in feature `f`.
    #[inline]
    pub fn bin(&self, f: usize, x: f64) -> u8 {
        let cuts = &self.cuts[f];
        if x.is_nan() {
            return cuts.len() as u8;
        }
        cuts.partition_point(|&c| c <= x) as u8
    }

    /// The rows binned, row-major (`rows.len() × 46` bytes).
    pub fn bin_rows(&self, rows: &[Features]) -> Vec<u8> {
        let mut out = Vec::with_capacity(rows.len() * F);
        for r in rows {
            for (f, &x) in r.iter().enumerate() {
                out.push(self.bin(f, x));
            }
        }
        out
    }
}

/// Gradient and hessian sums per bin of every feature.
type Hist = Vec<[[f64; 2]; 256]>;

fn new_hist() -> Hist {
    vec![[[0.0; 2]; 256]; F]
}

fn build_hist(hist: &mut Hist, bins: &[u8], rows: &[u32], gh: &[[f64; 2]]) {
    for h in hist.iter_mut() {
        h.fill([0.0; 2]);
    }
    for &r in rows {
        let r = r as usize;
        let [g, h] = gh[r];
        for (feature, &b) in hist.iter_mut().zip(&bins[r * F..(r + 1) * F]) {
            let cell = &mut feature[b as usize];
            cell[0] += g;
            cell[1] += h;
        }
    }
}

fn subtract_hist(from: &mut Hist, other: &Hist) {
    for (a, b) in from.iter_mut().zip(other) {
        for (x, y) in a.iter_mut().zip(b) {
            x[0] -= y[0];
            x[1] -= y[1];
        }
    }
}

struct Split {
    gain: f64,
    feature: usize,
    bin: usize,
    gl: f64,
    hl: f64,
}

struct Open {
    node: usize,
    start: usize,
    end: usize,
    hist: Hist,
    g: f64,
    h: f64,
}

/// A tree as grown: its nodes, and per node the split's bin (for walking
/// binned training rows).
struct Grown {
    nodes: Vec<Node>,
    split_bins: Vec<u8>,
}

impl Grown {
    fn predict_binned(&self, row: &[u8]) -> f64 {
        let mut i = 0usize;
        loop {
            let node = &self.nodes[i];
            if node.left == LEAF {
                return node.value;
            }
            i = if row[node.feature as usize] <= self.split_bins[i] { node.left } else { node.right } as usize;
        }
    }
}

/// Grows the trees of one head.
struct Grower<'a> {
    binner: &'a Binner,
    bins: &'a [u8],
    cfg: &'a GbtConfig,
    loss: Loss,
    /// The rows of the current tree, each node's a contiguous range.
    rows: Vec<u32>,
    scratch: Vec<u32>,
    pool: Vec<Hist>,
    residuals: Vec<f64>,
}

impl Grower<'_> {
    fn take_hist(&mut self) -> Hist {
        self.pool.pop().unwrap_or_else(new_hist)
    }

    fn best_split(&self, hist: &Hist) -> Option<Split> {
        let lambda = self.cfg.lambda;
        let min_h = self.cfg.min_child_hessian;
        let mut best: Option<Split> = None;
        for (f, feature) in hist.iter().enumerate() {
            let n_cuts = self.binner.cuts(f).len();
            if n_cuts == 0 {
                continue;
            }
            // This feature's own totals, so both sides sum exactly to them.
            let (mut g, mut h) = (0.0, 0.0);
            for cell in &feature[..=n_cuts] {
                g += cell[0];
                h += cell[1];
            }
            let parent = g * g / (h + lambda);
            let (mut gl, mut hl) = (0.0, 0.0);
            for (b, cell) in feature[..n_cuts].iter().enumerate() {
                gl += cell[0];
                hl += cell[1];
                let (gr, hr) = (g - gl, h - hl);
                if hl < min_h {
                    continue;
                }
                if hr < min_h {
                    break;
                }
                let gain = 0.5 * (gl * gl / (hl + lambda) + gr * gr / (hr + lambda) - parent);
                if gain > self.cfg.min_split_gain && best.as_ref().is_none_or(|s| gain > s.gain) {
                    best = Some(Split { gain, feature: f, bin: b, gl, hl });
                }
            }
        }
        best
    }

    /// Stable partition of `rows[start..end]` by `bin ≤ b` on feature `f`;
    /// the number that went left.
    fn partition(&mut self, start: usize, end: usize, f: usize, b: u8) -> usize {
        self.scratch.clear();
        let mut w = start;
        for i in start..end {
            let r = self.rows[i];
            if self.bins[r as usize * F + f] <= b {
                self.rows[w] = r;
                w += 1;
            } else {
                self.scratch.push(r);
            }
        }
        self.rows[w..end].copy_from_slice(&self.scratch);
        w - start
    }

    fn node_value(&mut self, g: f64, h: f64, start: usize, end: usize, y: &[f64], pred: &[f64]) -> f64 {
        let lr = self.cfg.learning_rate;
        match self.loss {
            Loss::Logistic | Loss::Squared => -g / (h + self.cfg.lambda) * lr,
            Loss::Absolute => {
                self.residuals.clear();
                self.residuals.extend(self.rows[start..end].iter().map(|&r| y[r as usize] - pred[r as usize]));
                median(&mut self.residuals) * lr
            }
        }
    }

    /// Grows one tree on `self.rows` (already sampled).
    fn grow(&mut self, gh: &[[f64; 2]], y: &[f64], pred: &[f64]) -> Grown {
        let n = self.rows.len();
        let mut root = self.take_hist();
        build_hist(&mut root, self.bins, &self.rows, gh);
        let (g, h) = root[0].iter().fold((0.0, 0.0), |(g, h), c| (g + c[0], h + c[1]));
        let value = self.node_value(g, h, 0, n, y, pred);
        let mut grown = Grown { nodes: vec![Node::leaf(value, h)], split_bins: vec![0] };
        let mut level = vec![Open { node: 0, start: 0, end: n, hist: root, g, h }];
        for depth in 0..self.cfg.max_depth {
            let mut next = Vec::new();
            for open in level.drain(..) {
                let Some(split) = self.best_split(&open.hist) else {
                    self.pool.push(open.hist);
                    continue;
                };
                let (f, b) = (split.feature, split.bin as u8);
                let n_left = self.partition(open.start, open.end, f, b);
                let mid = open.start + n_left;
                if mid == open.start || mid == open.end {
                    // Only rounding made one side look non-empty.
                    self.pool.push(open.hist);
                    continue;
                }
                let (gl, hl, gr, hr) = (split.gl, split.hl, open.g - split.gl, open.h - split.hl);
                let left = grown.nodes.len();
                let lv = self.node_value(gl, hl, open.start, mid, y, pred);
                let rv = self.node_value(gr, hr, mid, open.end, y, pred);
                grown.nodes.push(Node::leaf(lv, hl));
                grown.nodes.push(Node::leaf(rv, hr));
                grown.split_bins.extend([0, 0]);
                let parent = &mut grown.nodes[open.node];
                parent.feature = f as u32;
                parent.threshold = self.binner.cuts(f)[split.bin];
                parent.left = left as u32;
                parent.right = left as u32 + 1;
                grown.split_bins[open.node] = b;
                if depth + 1 == self.cfg.max_depth {
                    self.pool.push(open.hist);
                    continue;
                }
                let mut small = self.take_hist();
                let left_smaller = n_left <= open.end - mid;
                let (s, e) = if left_smaller { (open.start, mid) } else { (mid, open.end) };
                build_hist(&mut small, self.bins, &self.rows[s..e], gh);
                let mut large = open.hist;
                subtract_hist(&mut large, &small);
                let (lh, rh) = if left_smaller { (small, large) } else { (large, small) };
                next.push(Open { node: left, start: open.start, end: mid, hist: lh, g: gl, h: hl });
                next.push(Open { node: left + 1, start: mid, end: open.end, hist: rh, g: gr, h: hr });
            }
            level = next;
            if level.is_empty() {
                break;
            }
        }
        for open in level {
            self.pool.push(open.hist);
        }
        grown
    }
}

/// The median (mean of the two middle values for an even count); 0 when empty.
fn median(v: &mut [f64]) -> f64 {
    let n = v.len();
    if n == 0 {
        return 0.0;
    }
    let (lower, m, _) = v.select_nth_unstable_by(n / 2, f64::total_cmp);
    let m = *m;
    if n % 2 == 1 {
        m
    } else {
        let below = lower.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        below / 2.0 + m / 2.0
    }
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// `ln(1 + e^x)` without overflow.
fn softplus(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// What a head's margin means at inference, before any loss: the regression
/// heads are clamped to their ranges.
fn served(head: usize, margin: f64) -> f64 {
    match head {
        1 => margin.max(0.0),
        4 => margin.clamp(0.0, 100.0),
        _ => margin,
    }
}

/// Mean loss of margins against labels (logistic: cross-entropy; squared:
/// MSE; absolute: MAE), on the served value for the regression heads.
fn mean_loss(head: usize, loss: Loss, margins: &[f64], y: &[f64]) -> f64 {
    let sum: f64 = margins
        .iter()
        .zip(y)
        .map(|(&m, &y)| match loss {
            Loss::Logistic => softplus(m) - y * m,
            Loss::Squared => (served(head, m) - y).powi(2),
            Loss::Absolute => (served(head, m) - y).abs(),
        })
        .sum();
    sum / y.len().max(1) as f64
}

fn base_score(loss: Loss, y: &[f64]) -> f64 {
    match loss {
        Loss::Logistic => {
            let p = (y.iter().sum::<f64>() / y.len().max(1) as f64).clamp(1e-6, 1.0 - 1e-6);
            (p / (1.0 - p)).ln()
        }
        Loss::Squared => y.iter().sum::<f64>() / y.len().max(1) as f64,
        Loss::Absolute => median(&mut y.to_vec()),
    }
}

/// What one head's training did, for the artifact's record.
#[derive(Clone, Debug, Serialize)]
struct HeadSummary {
    head: &'static str,
    loss: Loss,
    trees_grown: usize,
    trees_kept: usize,
    best_valid_loss: f64,
}

/// How often a head reports progress.
const REPORT_EVERY: usize = 10;

#[allow(clippy::too_many_arguments)]
fn train_head(
    head: usize,
    loss: Loss,
    binner: &Binner,
    bins: &[u8],
    y: &[f64],
    valid: &[Features],
    vy: &[f64],
    cfg: &GbtConfig,
    report: &dyn Fn(GbtProgress),
) -> (GbtHead, HeadSummary) {
    let n = y.len();
    let base = base_score(loss, y);
    let mut pred = vec![base; n];
    let mut vpred = vec![base; valid.len()];
    let mut gh = vec![[0.0; 2]; n];
    let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(cfg.seed ^ (head as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut grower = Grower {
        binner,
        bins,
        cfg,
        loss,
        rows: Vec::with_capacity(n),
        scratch: Vec::with_capacity(n),
        pool: Vec::new(),
        residuals: Vec::new(),
    };
    let mut trees: Vec<Tree> = Vec::new();
    let mut split_bins: Vec<Vec<u8>> = Vec::new();
    let mut best = (mean_loss(head, loss, &vpred, vy), 0usize);
    let progress = |trees: usize, pred: &[f64], valid_loss: f64, best: usize, done: bool| {
        report(GbtProgress {
            head: HEADS[head],
            trees,
            train_loss: mean_loss(head, loss, pred, y),
            valid_loss,
            best_trees: best,
            done,
        })
    };
    for t in 1..=cfg.max_trees {
        for ((g, &p), &y) in gh.iter_mut().zip(&pred).zip(y) {
            *g = match loss {
                Loss::Logistic => {
                    let q = sigmoid(p);
                    [q - y, (q * (1.0 - q)).max(1e-16)]
                }
                Loss::Squared => [p - y, 1.0],
                Loss::Absolute => [(p - y).signum() * f64::from(u8::from(p != y)), 1.0],
            };
        }
        grower.rows.clear();
        if cfg.subsample >= 1.0 {
            grower.rows.extend(0..n as u32);
        } else {
            grower.rows.extend((0..n as u32).filter(|_| rng.random::<f64>() < cfg.subsample));
        }
        if grower.rows.is_empty() {
            continue;
        }
        let grown = grower.grow(&gh, y, &pred);
        for (r, p) in pred.iter_mut().enumerate() {
            *p += grown.predict_binned(&bins[r * F..(r + 1) * F]);
        }
        let single_leaf = grown.nodes.len() == 1;
        let tree = Tree { nodes: grown.nodes };
        for (x, p) in valid.iter().zip(vpred.iter_mut()) {
            *p += tree.predict(x);
        }
        trees.push(tree);
        split_bins.push(grown.split_bins);
        let valid_loss = mean_loss(head, loss, &vpred, vy);
        if valid_loss < best.0 {
            best = (valid_loss, trees.len());
        }
        if t % REPORT_EVERY == 0 {
            progress(trees.len(), &pred, valid_loss, best.1, false);
        }
        let stalled = cfg.early_stopping_rounds > 0 && trees.len() - best.1 >= cfg.early_stopping_rounds;
        if stalled || (single_leaf && cfg.subsample >= 1.0) {
            break;
        }
    }
    let grown = trees.len();
    if cfg.early_stopping_rounds > 0 {
        // Back to the best tree count: the training margins follow.
        for (tree, split_bins) in trees.drain(best.1..).zip(split_bins.drain(best.1..)) {
            let grown = Grown { nodes: tree.nodes, split_bins };
            for (r, p) in pred.iter_mut().enumerate() {
                *p -= grown.predict_binned(&bins[r * F..(r + 1) * F]);
            }
        }
    }
    let kept = trees.len();
    let valid_loss = if cfg.early_stopping_rounds > 0 { best.0 } else { mean_loss(head, loss, &vpred, vy) };
    progress(kept, &pred, valid_loss, best.1, true);
    let summary =
        HeadSummary { head: HEADS[head], loss, trees_grown: grown, trees_kept: kept, best_valid_loss: best.0 };
    (GbtHead { base_score: base, trees }, summary)
}

fn head_labels(data: &Dataset, head: usize) -> Vec<f64> {
    let pick = |t: &Targets| match head {
        0 => t.first_session_success,
        1 => t.session_velocity,
        2 => t.churn_risk_14d,
        3 => t.churn_risk_30d,
        _ => t.health_score,
    };
    data.targets.iter().map(|t| f64::from(pick(t))).collect()
}

/// Trains the five heads' ensembles on `train`, stopping each by its loss on
/// `valid`. Same data, config and seed: the same model, on any thread count.
/// `progress` hears from each head every 10 trees and when it is done (from
/// the training threads, one call at a time).
pub fn train_gbt(
    train: &Dataset,
    valid: &Dataset,
    cfg: &GbtConfig,
    progress: &mut (dyn FnMut(GbtProgress) + Send),
) -> Result<ModelArtifact, ModelError> {
    cfg.validate()?;
    if train.is_empty() || valid.is_empty() {
        return Err(ModelError::Config("training needs non-empty training and validation rows".into()));
    }
    if train.len() > u32::MAX as usize {
        return Err(ModelError::Config("at most 2^32 - 1 training rows".into()));
    }
    let binner = Binner::fit(&train.rows, cfg.max_bins);
    let bins = binner.bin_rows(&train.rows);
    let losses = cfg.losses();
    let labels: Vec<(Vec<f64>, Vec<f64>)> =
        (0..HEADS.len()).map(|h| (head_labels(train, h), head_labels(valid, h))).collect();
    let threads = match cfg.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
    .min(HEADS.len());
    let progress = Mutex::new(progress);
    let report = |p: GbtProgress| {
        if let Ok(mut f) = progress.lock() {
            (**f)(p)
        }
    };
    let next = AtomicUsize::new(0);
    let results: Vec<Mutex<Option<(GbtHead, HeadSummary)>>> = (0..HEADS.len()).map(|_| Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let h = next.fetch_add(1, Ordering::Relaxed);
                if h >= HEADS.len() {
                    break;
                }
                let (y, vy) = &labels[h];
                let out = train_head(h, losses[h], &binner, &bins, y, &valid.rows, vy, cfg, &report);
                if let Ok(mut slot) = results[h].lock() {
                    *slot = Some(out);
                }
            });
        }
    });
    let mut heads = Vec::new();
    let mut summaries = Vec::new();
    for slot in results {
        let (head, summary) = slot
            .into_inner()
            .ok()
            .flatten()
            .ok_or_else(|| ModelError::Config("a head's training thread failed".into()))?;
        heads.push(head);
        summaries.push(summary);
    }
    let model = GbtModel::new(heads).map_err(ModelError::Artifact)?;
    let meta = ModelMeta::for_pulse(
        &cfg.name,
        &cfg.version,
        None,
        serde_json::json!({
            "trainer": "gbt",
            "config": cfg,
            "train_rows": train.len(),
            "valid_rows": valid.len(),
            "heads": summaries,
        }),
    );
    Ok(ModelArtifact { meta, model: Model::Gbt(model) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(x: f64) -> Features {
        let mut r = [0.0; F];
        r[0] = x;
        r
    }

    #[test]
    fn bins_agree_with_thresholds() {
        let rows: Vec<Features> = (0..1000).map(|i| row(((i * 7919) % 1000) as f64 / 10.0)).collect();
        let binner = Binner::fit(&rows, 16);
        let cuts = binner.cuts(0);
        assert_eq!(cuts.len(), 15);
        for r in &rows {
            let b = binner.bin(0, r[0]) as usize;
            for (k, &c) in cuts.iter().enumerate() {
                // bin ≤ k exactly when x < cuts[k]
                assert_eq!(b <= k, r[0] < c, "x {} bin {b} cut {k} = {c}", r[0]);
            }
        }
        assert_eq!(binner.bin(0, f64::NAN) as usize, cuts.len());
        // Constant features have no cuts.
        assert!(binner.cuts(1).is_empty());
    }

    #[test]
    fn few_distinct_values_get_a_bin_each() {
        let rows: Vec<Features> = (0..100).map(|i| row((i % 3) as f64)).collect();
        let binner = Binner::fit(&rows, 255);
        assert_eq!(binner.cuts(0), &[0.5, 1.5]);
    }

    #[test]
    fn cuts_stay_finite_at_the_extremes() {
        assert_eq!(cut_between(1.0, f64::INFINITY), Some(f64::MAX));
        assert_eq!(cut_between(f64::NEG_INFINITY, 0.0), Some(f64::MIN));
        assert_eq!(cut_between(f64::MAX, f64::INFINITY), None);
        let a = 1.0f64;
        let b = f64::from_bits(a.to_bits() + 1);
        assert_eq!(cut_between(a, b), Some(b));
    }

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&mut []), 0.0);
    }

    #[test]
    fn trees_are_validated() {
        let leaf = Node::leaf(1.0, 1.0);
        let split = Node { feature: 3, threshold: 0.5, default_left: false, left: 1, right: 2, value: 0.0, cover: 2.0 };
        assert!(Tree::new(vec![split, leaf, leaf]).is_ok());
        assert!(Tree::new(vec![]).is_err());
        assert!(Tree::new(vec![Node { left: 0, ..split }, leaf, leaf]).unwrap_err().contains("after"));
        assert!(Tree::new(vec![Node { feature: 46, ..split }, leaf, leaf]).unwrap_err().contains("46 features"));
        assert!(Tree::new(vec![split, leaf, leaf, leaf]).unwrap_err().contains("nobody's child"));
        assert!(Tree::new(vec![Node { right: 1, ..split }, leaf]).unwrap_err().contains("more than one"));
        assert!(Tree::new(vec![Node { right: LEAF, ..split }, leaf]).is_err());
        let t = Tree::new(vec![split, leaf, Node::leaf(2.0, 1.0)]).unwrap();
        let mut x = [0.0; F];
        assert_eq!(t.predict(&x), 1.0);
        x[3] = 0.5;
        assert_eq!(t.predict(&x), 2.0);
        x[3] = f64::NAN;
        assert_eq!(t.predict(&x), 2.0, "NaN goes right");
        let t = Tree::new(vec![Node { default_left: true, ..split }, leaf, Node::leaf(2.0, 1.0)]).unwrap();
        assert_eq!(t.predict(&x), 1.0, "NaN goes left at a default-left node");
        for (v, want) in [(0.25, 1.0), (0.5, 2.0), (f64::INFINITY, 2.0), (f64::NEG_INFINITY, 1.0)] {
            x[3] = v;
            assert_eq!(t.predict(&x), want, "x = {v}: only NaN follows the default");
        }
    }

    /// A split node of the walks' tests (value 0, cover 1).
    fn split(feature: u32, threshold: f64, default_left: bool, left: u32, right: u32) -> Node {
        Node { feature, threshold, default_left, left, right, value: 0.0, cover: 1.0 }
    }

    #[test]
    fn padded_walks_agree_at_the_feature_edges_and_every_size() {
        // Splits on the first and the last feature (the masks' edges), a
        // head without trees, and node arrays of every length from a few
        // nodes past several powers of two: the padded, masked walks give
        // the trees' own margins.
        let tree = Tree::new(vec![
            split(0, 0.5, false, 1, 2),
            split(F as u32 - 1, 1.0, true, 3, 4),
            Node::leaf(0.125, 1.0),
            Node::leaf(-0.5, 1.0),
            Node::leaf(2.0, 1.0),
        ])
        .unwrap();
        let mut rows = Vec::new();
        for a in [0.0, 0.5, 1.0, f64::NAN] {
            for b in [0.0, 1.0, 2.0, f64::NAN] {
                let mut x = [7.0; F];
                x[0] = a;
                x[F - 1] = b;
                rows.push(x);
            }
        }
        for trees in 0..40 {
            let head = |n| GbtHead { base_score: 0.25, trees: vec![tree.clone(); n] };
            let heads = vec![head(trees), head(0), head(trees / 2), head(1), head(trees)];
            let model = GbtModel::new(heads).unwrap();
            assert!(model.compiled.nodes.len().is_power_of_two());
            let mut batch = Vec::new();
            model.margins_into(&rows, &mut batch);
            for (x, m) in rows.iter().zip(&batch) {
                let want: [f64; 5] = std::array::from_fn(|h| model.heads()[h].margin(x));
                assert_eq!(m, &want, "{trees} trees, x0 {} x45 {}", x[0], x[F - 1]);
                assert_eq!(model.margins(x), want);
            }
        }
    }

    #[test]
    fn compiled_walks_agree_with_the_trees_as_written() {
        // Siblings not adjacent, leaves at depths 1 and 2, a lone-leaf tree;
        // NaN sent right everywhere (pulse's trainer), or left at either split.
        for (left3, left7) in [(false, false), (true, false), (false, true), (true, true)] {
            let lopsided = Tree::new(vec![
                split(3, 0.5, left3, 3, 1),
                split(7, -1.0, left7, 2, 4),
                Node::leaf(2.0, 1.0),
                Node::leaf(-1.0, 1.0),
                Node::leaf(0.25, 1.0),
            ])
            .unwrap();
            let lone = Tree::new(vec![Node::leaf(0.5, 1.0)]).unwrap();
            let head = GbtHead { base_score: 0.1, trees: vec![lopsided.clone(), lone, lopsided] };
            let model = GbtModel::new(vec![head.clone(), head.clone(), head.clone(), head.clone(), head]).unwrap();
            assert_eq!(model.compiled.default_left, left3 || left7);
            let mut rows = Vec::new();
            for a in [-1.0, 0.0, 0.5, 0.75, f64::NAN] {
                for b in [-2.0, -1.0, 0.0, f64::NAN] {
                    let mut x = [0.0; F];
                    x[3] = a;
                    x[7] = b;
                    rows.push(x);
                }
            }
            let mut batch = Vec::new();
            model.margins_into(&rows, &mut batch);
            for (x, m) in rows.iter().zip(&batch) {
                let want = model.heads()[0].margin(x);
                assert_eq!(m, &[want; 5]);
                assert_eq!(model.margins(x), [want; 5]);
            }
            assert_eq!(model.margins(&rows[0])[0], 0.1 - 1.0 + 0.5 - 1.0);
            // x3 NaN: left (−1 per tree) only when its default is left.
            let nan3 = model.margins(&rows[16])[0];
            assert_eq!(nan3, if left3 { 0.1 - 1.0 + 0.5 - 1.0 } else { 0.1 + 2.0 + 0.5 + 2.0 });
        }
    }
}
