//! Why a score moved: the change of one head's **margin** (the raw score
//! before the sigmoid, clamp and calibration) between a customer's vector
//! now, `x`, and a reference vector `r` (the same customer about 14 days
//! earlier), split over the 46 features so that
//!
//! ```text
//! Σ φ_i = margin(x) − margin(r)        (up to f64 rounding, or the stated IG error)
//! ```
//!
//! A feature with `φ_i > 0` raised the margin since the reference; every
//! kind's output (sigmoid, clamp, isotonic or Platt calibration) is a
//! non-decreasing function of the margin, so it raised the score too.
//! [`top_raising`] picks the largest positive ones, the reasons shown.
//!
//! Per model kind:
//!
//! * **gbt: exact interventional Shapley values with one reference.** The
//!   players are the features; a coalition `S` scores the margin of the
//!   hybrid row taking `S` from `x` and the rest from `r`. These are the
//!   Shapley values of the function the trees compute, not of a model of
//!   the data: with the reference being the customer's own past they answer
//!   "which changes since then moved the score", and they are exact. Per
//!   tree, the hybrids reach a leaf only if each feature split on along its
//!   path is free (`x` and `r` go the same way at all its nodes), or must
//!   come from `x` (set `A`, only `x` goes the path's way), or from `r` (set
//!   `B`). The leaf is then a unanimity game on `A ∪ B` whose Shapley values
//!   are `value·(a−1)!·b!/(a+b)!` for each feature in `A` and
//!   `−value·a!·(b−1)!/(a+b)!` for each in `B` (`a = |A|`, `b = |B|`: the
//!   share of orderings in which the feature is the one that completes, or
//!   breaks, the coalition). One walk of `x` and `r` together finds those
//!   leaves: where they agree it follows one child, where they split it
//!   visits both, assigning the feature to `x` on one side and to `r` on
//!   the other, and a feature already assigned follows its assignment. A
//!   tree where `x` and `r` reach the same leaf contributes nothing (every
//!   hybrid reaches it too) and costs one walk of each, run side by side
//!   with three other trees' to hide memory latency. Routing is
//!   inference's: `x < threshold` left, NaN to the node's `default_left`
//!   side.
//!
//!   Path-dependent TreeSHAP (Lundberg et al. 2018; branch `tree-shap`)
//!   explains a score against the training set's mean margin by the nodes'
//!   covers, not against the customer's past, and cost about 209 µs per row
//!   for churn_risk_14d here. This costs a walk of both rows per tree plus
//!   one visit per leaf some hybrid reaches. Over 14 days a customer's
//!   vector changes in about 29 of its 46 features, so for the embedded
//!   churn_risk_14d head (58 trees of depth 6) `x` and `r` part in about 38
//!   trees and about 142 hybrid leaves are visited: about 5.6 µs per row,
//!   2.8 times `score_now` of all five heads (about 2 µs per row); a far
//!   reference (the most at-risk customer against the healthiest) parts in
//!   54 trees with 402 leaves, about 13 µs. See `benches/attribution.rs`.
//! * **logistic: exact.** The margin is linear in the normalised inputs
//!   `z`, so `φ_i = w_i·(z_i(x) − z_i(r))`, in the model's own input space
//!   (each `z_i` depends on feature `i` alone).
//! * **network: integrated gradients** from `r` to `x` along the straight
//!   line in the normalised input space, on the head's margin (its raw
//!   output), with the gradient at the midpoints of [`IG_STEPS`] equal steps
//!   by a closed-form backward pass through the ReLU layers. The network is
//!   piecewise linear, so the sum misses `margin(x) − margin(r)` only by the
//!   kinks the midpoints misjudge; [`Attribution::residual`] reports it.
//!
//! Nothing here allocates per row.

use pulse_schemas::{Features, FEATURE_COUNT};

use crate::gbt::{pad, GbtHead, Padded, PADDED};

const F: usize = FEATURE_COUNT;

/// Rows are inference's padded rows ([`pad`]: 64 slots, those past the
/// features always 0.0): slot [`PAD`] is the feature a leaf "splits" on, so
/// that a leaf sends every row back to itself and walks of a tree's full
/// depth end on the leaf reached; and a feature index masked to six bits is
/// always in bounds, so the walks index rows, and the per-feature arrays of
/// the same width, without bounds checks.
const PAD: usize = F;

/// A feature index masked to six bits: the identity on every index a node
/// holds (below 46, or [`PAD`]), checked in debug builds.
#[inline(always)]
fn lane(f: usize) -> usize {
    debug_assert!(f <= PAD, "feature {f}");
    f & (PADDED - 1)
}

/// Steps of integrated gradients for the network kind.
pub const IG_STEPS: usize = 256;

/// Which attribution made the contributions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// Exact interventional Shapley values against the reference (gbt).
    Interventional,
    /// Exact `w_i·(z_i(x) − z_i(r))` of a linear margin (logistic).
    Linear,
    /// Integrated gradients from the reference along a straight line
    /// (network), with this many steps.
    IntegratedGradients {
        /// Midpoint-rule steps.
        steps: usize,
    },
}

/// What [`crate::EmbeddedModel::attribute`] says besides the contributions.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Attribution {
    /// The head's margin at `x`, as inference computes it.
    pub margin_x: f64,
    /// The head's margin at the reference.
    pub margin_ref: f64,
    /// `(margin_x − margin_ref) − Σ φ`: f64 rounding for the exact
    /// methods, the quadrature error for integrated gradients.
    pub residual: f64,
    /// How the contributions were made.
    pub method: Method,
}

/// The `k` largest strictly positive contributions, largest first, equal
/// ones by feature index; fewer when fewer are positive (NaN never counts).
pub fn top_raising(phi: &[f64; F], k: usize) -> Vec<(usize, f64)> {
    let mut top: Vec<(usize, f64)> = Vec::with_capacity(k);
    for (i, &p) in phi.iter().enumerate() {
        // NaN is not positive. Scanning in index order and inserting after
        // equals keeps the lower index first on ties.
        if p.is_nan() || p <= 0.0 || k == 0 {
            continue;
        }
        if top.len() == k && top[k - 1].1 >= p {
            continue;
        }
        let at = top.iter().position(|&(_, q)| q < p).unwrap_or(top.len());
        if top.len() == k {
            top.pop();
        }
        top.insert(at, (i, p));
    }
    top
}

/// `W[a][b] = (a−1)!·b!/(a+b)! = 1/(a·C(a+b, a))` for `a ≥ 1` (0 for
/// `a = 0`): the Shapley weight of a feature that must come from `x` at a
/// leaf with `a` such features and `b` that must come from `r`; one from
/// `r` weighs `W[b][a]`. At most 46 features are assigned on one path, so
/// `a + b ≤ 46`, where every binomial is below 2^53 and exact in f64.
/// Stored flat at `a·64 + b`, so that an index masked to twelve bits is in
/// bounds (see [`weight`]).
static WEIGHTS: [f64; PADDED * PADDED] = weights();

/// `W[a][b]`; `a, b ≤ 46`.
#[inline(always)]
fn weight(a: usize, b: usize) -> f64 {
    debug_assert!(a + b <= F, "{a} + {b} features on a path");
    WEIGHTS[(a * PADDED + b) & (PADDED * PADDED - 1)]
}

const fn weights() -> [f64; PADDED * PADDED] {
    let mut binom = [[0u64; F + 1]; F + 1];
    let mut n = 0;
    while n <= F {
        binom[n][0] = 1;
        let mut k = 1;
        while k <= n {
            binom[n][k] = binom[n - 1][k - 1] + if k < n { binom[n - 1][k] } else { 0 };
            k += 1;
        }
        n += 1;
    }
    let mut w = [0.0; PADDED * PADDED];
    let mut a = 1;
    while a <= F {
        let mut b = 0;
        while a + b <= F {
            w[a * PADDED + b] = 1.0 / (a as f64 * binom[a + b][a] as f64);
            b += 1;
        }
        a += 1;
    }
    w
}

/// A node for attribution, 16 bytes: a split's children sit side by side
/// (`first_child`, `first_child + 1`); a leaf has threshold +∞ on [`PAD`]
/// and `first_child` itself, so a step from a leaf stays there.
#[derive(Clone, Copy, Debug, PartialEq)]
struct XNode {
    threshold: f64,
    /// The feature, with [`DEFAULT_LEFT`] set when NaN goes left.
    feature: u32,
    first_child: u32,
}

const DEFAULT_LEFT: u32 = 1 << 31;

impl XNode {
    /// The split feature, masked to a lane of [`Padded`] (see [`lane`]).
    #[inline(always)]
    fn feature(&self) -> usize {
        lane((self.feature & !DEFAULT_LEFT) as usize)
    }

    /// Inference's rule (`Node::goes_left`) on the value `v` of the split
    /// feature.
    #[inline(always)]
    fn goes_left(&self, v: f64) -> bool {
        (v < self.threshold) | (v.is_nan() & (self.feature & DEFAULT_LEFT != 0))
    }

    #[inline(always)]
    fn child(&self, left: bool) -> usize {
        self.first_child as usize + 1 - usize::from(left)
    }

    #[inline(always)]
    fn is_leaf(&self) -> bool {
        self.feature() == PAD
    }
}

/// One gbt head laid out for attribution against a reference.
#[derive(Clone, Debug, PartialEq)]
pub struct TreeExplainer {
    base_score: f64,
    /// Padded with leaves never reached to a power of two, so that a node
    /// index masked by `mask` is always in bounds and the walks check none
    /// (the same layout as inference's, `gbt::Compiled`).
    nodes: Vec<XNode>,
    /// A leaf's value by node index (0 for splits), as long as `nodes`.
    values: Vec<f64>,
    /// `nodes.len() - 1`.
    mask: usize,
    /// Each tree's root and depth (edges on its longest path).
    trees: Vec<(u32, u32)>,
}

/// Trees walked side by side in the first pass.
const LANES: usize = 4;

/// Whether a feature of the hybrid row comes from `x` or from `r`, while
/// the walk is below the node that split them.
const FREE: u8 = 0;
const FROM_X: u8 = 1;
const FROM_R: u8 = 2;

impl TreeExplainer {
    /// Lays out one head's trees (breadth first, siblings adjacent).
    pub fn new(head: &GbtHead) -> Result<TreeExplainer, String> {
        let mut e = TreeExplainer {
            base_score: head.base_score,
            nodes: Vec::new(),
            values: Vec::new(),
            mask: 0,
            trees: Vec::new(),
        };
        for tree in &head.trees {
            let src = tree.nodes();
            let root = e.nodes.len();
            e.push_leaf()?;
            let mut depth = 0u32;
            let mut queue = std::collections::VecDeque::from([(0usize, root, 0u32)]);
            while let Some((old, new, d)) = queue.pop_front() {
                let node = &src[old];
                if node.is_leaf() {
                    depth = depth.max(d);
                    e.values[new] = node.value;
                    continue;
                }
                let first = e.nodes.len();
                e.push_leaf()?;
                e.push_leaf()?;
                queue.push_back((node.left as usize, first, d + 1));
                queue.push_back((node.right as usize, first + 1, d + 1));
                let feature = node.feature | if node.default_left { DEFAULT_LEFT } else { 0 };
                e.nodes[new] = XNode { threshold: node.threshold, feature, first_child: index(first)? };
            }
            e.trees.push((index(root)?, depth));
        }
        let padded = e.nodes.len().max(1).next_power_of_two();
        while e.nodes.len() < padded {
            e.push_leaf()?;
        }
        e.mask = padded - 1;
        Ok(e)
    }

    /// A leaf of value 0 at the end, stepping to itself: what a node is
    /// until it is known to split, and the padding.
    fn push_leaf(&mut self) -> Result<(), String> {
        let at = index(self.nodes.len())?;
        self.nodes.push(XNode { threshold: f64::INFINITY, feature: PAD as u32, first_child: at });
        self.values.push(0.0);
        Ok(())
    }

    /// Overwrites `phi` with the exact interventional Shapley values of the
    /// head's margin for `x` against `reference`, and returns the two
    /// margins (equal, bit for bit, to [`GbtHead::margin`] of each).
    pub fn attribute(&self, x: &Features, reference: &Features, phi: &mut [f64; F]) -> (f64, f64) {
        let (wx, wr) = (pad(x), pad(reference));
        let (nodes, values, mask) = (&self.nodes[..=self.mask], &self.values[..=self.mask], self.mask);
        let mut mx = self.base_score;
        let mut mr = self.base_score;
        let mut walk =
            Split { nodes, values, mask, x: &wx, r: &wr, from: [FREE; PADDED], path: [0; PADDED], phi: [0.0; PADDED] };
        let mut chunks = self.trees.chunks_exact(LANES);
        for chunk in &mut chunks {
            let depth = chunk.iter().map(|t| t.1).max().unwrap_or(0);
            let mut ix: [usize; LANES] = std::array::from_fn(|k| chunk[k].0 as usize);
            let mut ir = ix;
            for _ in 0..depth {
                for k in 0..LANES {
                    ix[k] = step(nodes, mask, ix[k], &wx);
                    ir[k] = step(nodes, mask, ir[k], &wr);
                }
            }
            for k in 0..LANES {
                mx += values[ix[k] & mask];
                mr += values[ir[k] & mask];
                if ix[k] != ir[k] {
                    walk.visit(chunk[k].0 as usize, 0, 0, 0);
                }
            }
        }
        for &(root, depth) in chunks.remainder() {
            let (mut i, mut j) = (root as usize, root as usize);
            for _ in 0..depth {
                i = step(nodes, mask, i, &wx);
                j = step(nodes, mask, j, &wr);
            }
            mx += values[i & mask];
            mr += values[j & mask];
            if i != j {
                walk.visit(root as usize, 0, 0, 0);
            }
        }
        phi.copy_from_slice(&walk.phi[..F]);
        (mx, mr)
    }
}

/// A node's index as an [`XNode`] holds it.
fn index(i: usize) -> Result<u32, String> {
    u32::try_from(i).map_err(|_| "a gbt head of more than 2^32 nodes".to_string())
}

/// The child of node `i` that row `x` goes to. `nodes` is as long as
/// `mask + 1` and `i` is masked by it, so neither the node nor the
/// feature is bounds-checked; the masks never change a valid index, and a
/// wrong one would read another node instead of panicking, so debug builds
/// (the tests) check it.
#[inline(always)]
fn step(nodes: &[XNode], mask: usize, i: usize, x: &Padded) -> usize {
    debug_assert!(i <= mask && nodes.len() == mask + 1, "node {i} of {}", nodes.len());
    let n = &nodes[i & mask];
    n.child(n.goes_left(x[n.feature()]))
}

/// The walk of one tree where `x` and `r` part: the features assigned so
/// far on the path and the contributions being summed. Every array is
/// [`PADDED`] long and indexed by masked feature indexes, and `nodes` and
/// `values` by indexes masked by `mask`, so the walk checks no bounds.
struct Split<'a> {
    nodes: &'a [XNode],
    values: &'a [f64],
    mask: usize,
    x: &'a Padded,
    r: &'a Padded,
    /// Per feature, [`FREE`], [`FROM_X`] or [`FROM_R`] on the current path.
    from: [u8; PADDED],
    /// The assigned features of the current path, in order (each once).
    path: [u8; PADDED],
    /// The contributions so far, by feature.
    phi: [f64; PADDED],
}

impl Split<'_> {
    /// Visits every leaf some hybrid of `x` and `r` reaches below node `i`,
    /// given the assignments so far: `len` features on the path, `a` of
    /// them from `x` and `b` from `r` (arguments, not fields: they live in
    /// registers). Recursion depth is at most the number of distinct
    /// features on a path (≤ 46).
    fn visit(&mut self, mut i: usize, len: usize, a: usize, b: usize) {
        loop {
            debug_assert!(i <= self.mask, "node {i}");
            let node = self.nodes[i & self.mask];
            if node.is_leaf() {
                return self.leaf(self.values[i & self.mask], len, a, b);
            }
            let f = node.feature();
            let (lx, lr) = (node.goes_left(self.x[f]), node.goes_left(self.r[f]));
            // Where `x` and `r` agree, every hybrid goes their way, whatever
            // the feature's assignment.
            if lx == lr {
                i = node.child(lx);
                continue;
            }
            match self.from[f] {
                FROM_X => i = node.child(lx),
                FROM_R => i = node.child(lr),
                _ => {
                    self.path[lane(len)] = f as u8;
                    self.from[f] = FROM_X;
                    self.visit(node.child(lx), len + 1, a + 1, b);
                    self.from[f] = FROM_R;
                    self.visit(node.child(lr), len + 1, a, b + 1);
                    self.from[f] = FREE;
                    return;
                }
            }
        }
    }

    /// A leaf reached by the hybrids that take the path's `FROM_X` features
    /// from `x` and its `FROM_R` ones from `r` (any source for the others).
    fn leaf(&mut self, value: f64, len: usize, a: usize, b: usize) {
        if value == 0.0 {
            return;
        }
        // `W[0][·]` is 0: a gain (or loss) with no feature to take it is
        // never added.
        let gain = value * weight(a, b);
        let loss = value * weight(b, a);
        for k in 0..len {
            let f = lane(usize::from(self.path[lane(k)]));
            // `p - loss` and `p + -loss` are the same IEEE operation.
            self.phi[f] += if self.from[f] == FROM_X { gain } else { -loss };
        }
    }
}
