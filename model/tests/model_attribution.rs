//! Attribution of a head's margin change against a reference
//! (`pulse_model::explain`): local accuracy on every head of the embedded
//! model (realistic 14-day pairs, NaN, values on and just below thresholds),
//! equality with Shapley values enumerated over all subsets of features on
//! random ensembles, dummy, symmetry, `x == r`, the logistic closed form, the
//! network's completeness, and the choice of reasons.
//!
//! `cargo test -p pulse-model --test model_attribution -- --nocapture`
//! prints the largest errors seen.

mod common;

use pulse_model::explain::TreeExplainer;
use pulse_model::gbt::{GbtHead, GbtModel, Node, Tree};
use pulse_model::net::HEADS;
use pulse_model::{embedded, top_raising, train_logistic, EmbeddedModel, LogisticConfig, Method, Model, ModelArtifact};
use pulse_schemas::{Features, FEATURE_COUNT};
use rand::{Rng, SeedableRng};

const F: usize = FEATURE_COUNT;

type Rng64 = rand_pcg::Pcg64Mcg;

fn gbt(artifact: &ModelArtifact) -> &GbtModel {
    match &artifact.model {
        Model::Gbt(g) => g,
        other => panic!("not a gbt model: {other:?}"),
    }
}

/// The 14-day pairs of `fixtures/pairs_14d.jsonl`: 256 vectors of 300
/// synthetic customers (`pulse generate --customers 300 --days 45 --seed
/// 15`, replayed), each with the same customer's newest vector at least 14
/// days older.
fn pairs_14d() -> Vec<(Features, Features)> {
    include_str!("fixtures/pairs_14d.jsonl")
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let row = |k: &str| -> Features {
                let a: Vec<f64> = v[k].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
                a.try_into().unwrap()
            };
            (row("x"), row("r"))
        })
        .collect()
}

/// `|Σφ − (m(x) − m(r))| / max(1, |m(x)| + |m(r)|)`.
fn local_error(phi: &[f64; F], mx: f64, mr: f64) -> f64 {
    assert!(phi.iter().all(|p| p.is_finite()), "{phi:?}");
    (phi.iter().sum::<f64>() - (mx - mr)).abs() / (mx.abs() + mr.abs()).max(1.0)
}

// ---- Brute force -----------------------------------------------------------

/// The row taking the features in `mask` (bit j for `players[j]`) from `x`
/// and the others from `r`.
fn hybrid(x: &Features, r: &Features, players: &[usize], mask: usize) -> Features {
    let mut z = *r;
    for (j, &f) in players.iter().enumerate() {
        if mask & (1 << j) != 0 {
            z[f] = x[f];
        }
    }
    z
}

/// Shapley values of `v(S) = margin(x_S, r_rest)` by enumerating every subset
/// of `players` (the features that differ between `x` and `r` and some
/// tree splits on; the others are dummies of this game).
fn brute_force(head: &GbtHead, x: &Features, r: &Features, players: &[usize]) -> [f64; F] {
    let k = players.len();
    assert!(k <= 12, "{k} players: too many subsets");
    let v: Vec<f64> = (0..1usize << k).map(|m| head.margin(&hybrid(x, r, players, m))).collect();
    let fact = |n: usize| (1..=n).map(|i| i as f64).product::<f64>();
    let mut phi = [0.0; F];
    for (j, &f) in players.iter().enumerate() {
        for mask in (0..1usize << k).filter(|m| m & (1 << j) == 0) {
            let s = mask.count_ones() as usize;
            phi[f] += fact(s) * fact(k - s - 1) / fact(k) * (v[mask | (1 << j)] - v[mask]);
        }
    }
    phi
}

// ---- Random trees ----------------------------------------------------------

/// At most 8 features, so that brute force stays cheap.
// The first and the last feature among them: the walks mask feature indexes.
const SPLIT_FEATURES: [u32; 7] = [0, 2, 7, 19, 30, 44, 45];
const THRESHOLDS: [f64; 5] = [-1.0, 0.0, 0.5, 1.0, 2.0];
const VALUES: [f64; 9] = [-1.0, -0.5, 0.0, 0.5, 0.7, 1.0, 2.0, 3.0, f64::NAN];

/// A random tree over a few features, each often split on several times on
/// one path, thresholds from a short list (so rows land on them), NaN sent
/// either way, some leaves 0.
fn random_tree(rng: &mut Rng64, max_depth: usize) -> Tree {
    fn grow(rng: &mut Rng64, nodes: &mut Vec<Node>, depth: usize, max_depth: usize) -> usize {
        let i = nodes.len();
        let split = depth < max_depth && (depth == 0 || rng.random::<f64>() < 0.8);
        if !split {
            let value = if rng.random::<f64>() < 0.1 { 0.0 } else { rng.random_range(-2.0..2.0) };
            nodes.push(Node::leaf(value, 1.0));
            return i;
        }
        let feature = SPLIT_FEATURES[rng.random_range(0..SPLIT_FEATURES.len())];
        let threshold = THRESHOLDS[rng.random_range(0..THRESHOLDS.len())];
        let default_left = rng.random::<bool>();
        nodes.push(Node::leaf(0.0, 0.0));
        let left = grow(rng, nodes, depth + 1, max_depth);
        let right = grow(rng, nodes, depth + 1, max_depth);
        nodes[i] =
            Node { feature, threshold, default_left, left: left as u32, right: right as u32, value: 0.0, cover: 1.0 };
        i
    }
    let mut nodes = Vec::new();
    grow(rng, &mut nodes, 0, max_depth);
    Tree::new(nodes).unwrap()
}

fn random_row(rng: &mut Rng64) -> Features {
    let mut x = [0.0; F];
    for v in x.iter_mut() {
        *v = VALUES[rng.random_range(0..VALUES.len())];
    }
    x
}

/// Whether two values route alike at every split (NaN with NaN).
fn same(a: f64, b: f64) -> bool {
    a == b || (a.is_nan() && b.is_nan())
}

fn split_features(head: &GbtHead) -> Vec<usize> {
    let mut used = [false; F];
    for node in head.trees.iter().flat_map(|t| t.nodes()) {
        if !node.is_leaf() {
            used[node.feature as usize] = true;
        }
    }
    (0..F).filter(|&f| used[f]).collect()
}

fn check_against_brute_force(head: &GbtHead, x: &Features, r: &Features) -> f64 {
    let explainer = TreeExplainer::new(head).unwrap();
    let mut phi = [f64::NAN; F];
    let (mx, mr) = explainer.attribute(x, r, &mut phi);
    assert_eq!(mx.to_bits(), head.margin(x).to_bits(), "margin of x");
    assert_eq!(mr.to_bits(), head.margin(r).to_bits(), "margin of r");
    let players: Vec<usize> = split_features(head).into_iter().filter(|&f| !same(x[f], r[f])).collect();
    let want = brute_force(head, x, r, &players);
    let scale = want.iter().map(|p| p.abs()).sum::<f64>().max(1.0);
    let mut err = 0.0f64;
    for f in 0..F {
        if !players.contains(&f) {
            // Dummies get exactly nothing: never assigned, never summed.
            assert_eq!(phi[f], 0.0, "feature {f} is unused or equal in x and r");
        }
        err = err.max((phi[f] - want[f]).abs() / scale);
    }
    assert!(local_error(&phi, mx, mr) <= 1e-12, "local accuracy");
    err
}

#[test]
fn random_ensembles_match_brute_force_shapley_values() {
    let mut rng = Rng64::seed_from_u64(7);
    let mut worst = 0.0f64;
    for case in 0..300 {
        let trees = rng.random_range(1..=5);
        let max_depth = rng.random_range(1..=8);
        let head = GbtHead {
            base_score: rng.random_range(-1.0..1.0),
            trees: (0..trees).map(|_| random_tree(&mut rng, max_depth)).collect(),
        };
        for _ in 0..6 {
            let x = random_row(&mut rng);
            let mut r = random_row(&mut rng);
            // Half the time r shares some of x's values, as a customer's
            // own past does.
            if rng.random::<bool>() {
                for f in 0..F {
                    if rng.random::<f64>() < 0.5 {
                        r[f] = x[f];
                    }
                }
            }
            let err = check_against_brute_force(&head, &x, &r);
            assert!(err <= 1e-9, "case {case}: {err:e} off the brute force; head {head:?}, x {x:?}, r {r:?}");
            worst = worst.max(err);
        }
    }
    eprintln!("random ensembles: largest error vs brute force {worst:e} (relative to Σ|φ|)");
}

/// A tree `depth` splits deep, one leaf beside each split (so it stays
/// small), over the random features, split on again and again.
fn deep_tree(rng: &mut Rng64, depth: usize) -> Tree {
    let mut nodes = Vec::new();
    for d in 0..depth {
        let i = nodes.len() as u32;
        let feature = SPLIT_FEATURES[rng.random_range(0..SPLIT_FEATURES.len())];
        let threshold = THRESHOLDS[rng.random_range(0..THRESHOLDS.len())];
        // The leaf on a random side; the next split on the other.
        let (left, right) = if rng.random::<bool>() { (i + 1, i + 2) } else { (i + 2, i + 1) };
        let default_left = rng.random::<bool>();
        nodes.push(Node { feature, threshold, default_left, left, right, value: 0.0, cover: 1.0 });
        nodes.push(Node::leaf(rng.random_range(-2.0..2.0), 1.0));
        if d == depth - 1 {
            nodes.push(Node::leaf(rng.random_range(-2.0..2.0), 1.0));
        }
    }
    Tree::new(nodes).unwrap()
}

#[test]
fn deep_trees_beyond_the_trainer_limit_are_exact() {
    // Depth 40 (imported models may be deeper than the trainer's 16), six
    // features split on again and again along the path.
    let mut rng = Rng64::seed_from_u64(11);
    let mut worst = 0.0f64;
    for _ in 0..40 {
        let head = GbtHead { base_score: 0.0, trees: (0..3).map(|_| deep_tree(&mut rng, 40)).collect() };
        for _ in 0..10 {
            let (x, r) = (random_row(&mut rng), random_row(&mut rng));
            worst = worst.max(check_against_brute_force(&head, &x, &r));
        }
    }
    assert!(worst <= 1e-9, "{worst:e}");
}

// ---- Local accuracy on the embedded model ----------------------------------

/// Rows that hit the model's thresholds exactly, fall just below them, are
/// NaN, or lie anywhere between.
fn adversarial_rows(model: &GbtModel, n: usize, seed: u64) -> Vec<Features> {
    let mut thresholds: Vec<Vec<f64>> = vec![Vec::new(); F];
    for node in model.heads().iter().flat_map(|h| &h.trees).flat_map(|t| t.nodes()) {
        if !node.is_leaf() {
            thresholds[node.feature as usize].push(node.threshold);
        }
    }
    let mut rng = Rng64::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            std::array::from_fn(|f| {
                let t = &thresholds[f];
                let pick = |rng: &mut Rng64| t[rng.random_range(0..t.len())];
                match rng.random_range(0..6) {
                    _ if t.is_empty() => rng.random_range(-1.0..10.0),
                    0 => f64::NAN,
                    1 | 2 => pick(&mut rng),
                    3 => pick(&mut rng).next_down(),
                    4 => {
                        let (lo, hi) =
                            (t.iter().copied().fold(f64::MAX, f64::min), t.iter().copied().fold(f64::MIN, f64::max));
                        rng.random_range(lo - 1.0..=hi + 1.0)
                    }
                    _ => 0.0,
                }
            })
        })
        .collect()
}

#[test]
fn contributions_add_up_to_the_margin_change_on_every_embedded_head() {
    let artifact = embedded().unwrap();
    let model = gbt(&artifact);
    let served = EmbeddedModel::new(&artifact).unwrap();
    let adversarial = adversarial_rows(model, 80, 1);
    let mut pairs: Vec<(Features, Features)> = adversarial.chunks_exact(2).map(|p| (p[0], p[1])).collect();
    // A row against itself with one feature moved onto or just below a
    // threshold: a single disagreement.
    for (i, x) in adversarial.iter().enumerate().take(20) {
        let mut r = *x;
        r[i % F] = if i % 2 == 0 { f64::NAN } else { adversarial[i + 1][i % F] };
        pairs.push((*x, r));
    }
    pairs.extend(pairs_14d());
    let mut worst = 0.0f64;
    let mut phi = [f64::NAN; F];
    for (h, head) in model.heads().iter().enumerate() {
        for (x, r) in &pairs {
            let a = served.attribute(h, x, r, &mut phi).unwrap();
            assert_eq!(a.method, Method::Interventional);
            assert_eq!(a.margin_x.to_bits(), model.margins(x)[h].to_bits(), "the served margin of x");
            assert_eq!(a.margin_ref.to_bits(), model.margins(r)[h].to_bits(), "the served margin of r");
            let err = local_error(&phi, a.margin_x, a.margin_ref);
            assert!(err <= 1e-12, "head {}: Σφ is {err:e} (relative) off the margin change", HEADS[h]);
            assert!(a.residual.abs() <= 1e-12 * (a.margin_x.abs() + a.margin_ref.abs()).max(1.0));
            for f in 0..F {
                if same(x[f], r[f]) {
                    assert_eq!(phi[f], 0.0, "feature {f} did not move");
                }
            }
            worst = worst.max(err);
            // The same walk through the head alone.
            let mut again = [0.0; F];
            TreeExplainer::new(head).unwrap().attribute(x, r, &mut again);
            assert_eq!(again, phi);
        }
    }
    eprintln!("embedded model, 5 heads × {} pairs: largest |Σφ − Δmargin| (relative) = {worst:e}", pairs.len());
}

#[test]
fn a_row_against_itself_gets_nothing() {
    let artifact = embedded().unwrap();
    let served = EmbeddedModel::new(&artifact).unwrap();
    let mut phi = [f64::NAN; F];
    for x in adversarial_rows(gbt(&artifact), 20, 5).iter().chain(pairs_14d().iter().map(|p| &p.0)) {
        for h in 0..HEADS.len() {
            let a = served.attribute(h, x, x, &mut phi).unwrap();
            assert_eq!(phi, [0.0; F]);
            assert_eq!(a.margin_x.to_bits(), a.margin_ref.to_bits());
            assert_eq!(a.residual, 0.0);
        }
    }
}

#[test]
fn the_realistic_pairs_name_features_that_moved() {
    let served = EmbeddedModel::new(&embedded().unwrap()).unwrap();
    let mut phi = [0.0; F];
    let mut named = 0;
    for (x, r) in pairs_14d() {
        let a = served.attribute(2, &x, &r, &mut phi).unwrap();
        let top = top_raising(&phi, 3);
        for &(f, p) in &top {
            assert!(p > 0.0 && x[f] != r[f], "feature {f} named with {p} but x = r = {}", x[f]);
        }
        if a.margin_x > a.margin_ref {
            assert!(!top.is_empty(), "the risk rose, so something raised it");
        }
        named += top.len();
    }
    assert!(named > 100, "{named} reasons over 256 pairs");
}

// ---- Symmetry --------------------------------------------------------------

fn leaf(value: f64) -> Node {
    Node::leaf(value, 1.0)
}

fn split(feature: u32, threshold: f64, left: u32, right: u32) -> Node {
    Node { feature, threshold, default_left: false, left, right, value: 0.0, cover: 1.0 }
}

#[test]
fn symmetric_features_share_alike_and_a_dummy_gets_nothing() {
    // f = 1 when x1 ≥ 0 and x2 ≥ 0, else 0; then split on 9 with equal leaves.
    let and = |a: u32, b: u32| {
        Tree::new(vec![
            split(a, 0.0, 1, 2),
            leaf(0.0),
            split(b, 0.0, 3, 4),
            leaf(0.0),
            split(9, 5.0, 5, 6),
            leaf(0.5),
            leaf(0.5),
        ])
        .unwrap()
    };
    for trees in [vec![and(1, 2)], vec![and(2, 1)], vec![and(1, 2), and(2, 1)]] {
        let n = trees.len() as f64;
        let head = GbtHead { base_score: 0.3, trees };
        let e = TreeExplainer::new(&head).unwrap();
        let mut x = [0.0; F];
        x[1] = 1.0;
        x[2] = 1.0;
        x[9] = 7.0;
        let mut r = [0.0; F];
        r[1] = -1.0;
        r[2] = -1.0;
        r[9] = 1.0;
        let mut phi = [0.0; F];
        let (mx, mr) = e.attribute(&x, &r, &mut phi);
        assert_eq!((mx, mr), (0.3 + 0.5 * n, 0.3));
        // Both must come from x: a half each.
        assert_eq!(phi[1], phi[2], "symmetric");
        assert!((phi[1] - 0.25 * n).abs() < 1e-15, "{}", phi[1]);
        assert_eq!(phi[9], 0.0, "feature 9 moved, but between equal leaves");
        // One of them already at x's side in r: the other takes it all.
        r[2] = 3.0;
        e.attribute(&x, &r, &mut phi);
        assert_eq!((phi[1], phi[2]), (0.5 * n, 0.0));
    }
}

#[test]
fn a_leaf_reached_only_by_hybrids_splits_credit_with_the_exact_weights() {
    // Leaf 5.0 needs x1 from x (x goes left at the root) and x2 from r
    // (r goes right at the next split), so neither x nor r reaches it:
    // a = 1, b = 1, φ1 = +5·0!1!/2! = 2.5, φ2 = −5·1!0!/2! = −2.5.
    let tree = Tree::new(vec![split(1, 0.0, 1, 2), split(2, 0.0, 3, 4), leaf(0.0), leaf(0.0), leaf(5.0)]).unwrap();
    let head = GbtHead { base_score: 0.0, trees: vec![tree] };
    let mut x = [0.0; F];
    x[1] = -1.0;
    x[2] = -1.0;
    let mut r = [0.0; F];
    r[1] = 1.0;
    r[2] = 1.0;
    let mut phi = [0.0; F];
    let (mx, mr) = TreeExplainer::new(&head).unwrap().attribute(&x, &r, &mut phi);
    assert_eq!((mx, mr), (0.0, 0.0));
    assert_eq!((phi[1], phi[2]), (2.5, -2.5));
}

#[test]
fn nan_and_values_on_a_threshold_route_as_inference_does() {
    let dl =
        |default_left| Node { feature: 4, threshold: 1.0, default_left, left: 1, right: 2, value: 0.0, cover: 2.0 };
    for default_left in [false, true] {
        let head =
            GbtHead { base_score: 0.0, trees: vec![Tree::new(vec![dl(default_left), leaf(-1.0), leaf(3.0)]).unwrap()] };
        let e = TreeExplainer::new(&head).unwrap();
        let at = |v: f64| {
            let mut x = [0.0; F];
            x[4] = v;
            x
        };
        let mut phi = [0.0; F];
        let nan_side = if default_left { -1.0 } else { 3.0 };
        for (v, want) in [(1.0, 3.0), (1.0f64.next_down(), -1.0), (f64::NAN, nan_side), (f64::INFINITY, 3.0)] {
            let (mx, mr) = e.attribute(&at(v), &at(0.0), &mut phi);
            assert_eq!((mx, mr), (want, -1.0), "x4 = {v}");
            assert_eq!(phi[4], want + 1.0, "x4 = {v}");
        }
    }
}

// ---- Other kinds -----------------------------------------------------------

#[test]
fn logistic_contributions_are_the_weights_times_the_normalised_change() {
    let artifact =
        train_logistic(&common::synthetic(2000, 1), &common::synthetic(500, 2), &LogisticConfig::default()).unwrap();
    let Model::Logistic(linear) = &artifact.model else { panic!("logistic") };
    let normalizer = artifact.meta.normalizer.clone().unwrap();
    let served = EmbeddedModel::new(&artifact).unwrap();
    let rows = common::synthetic(40, 3).rows;
    let mut phi = [0.0; F];
    for pair in rows.chunks_exact(2) {
        let (x, r) = (&pair[0], &pair[1]);
        for h in 0..HEADS.len() {
            let a = served.attribute(h, x, r, &mut phi).unwrap();
            assert_eq!(a.method, Method::Linear);
            let (zx, zr) = (normalizer.normalise(x), normalizer.normalise(r));
            let w = &linear.heads()[h].weights;
            for f in 0..F {
                assert_eq!(phi[f], w[f] * (f64::from(zx[f]) - f64::from(zr[f])), "feature {f}");
            }
            assert_eq!(a.margin_x, linear.margins(&normalizer, x)[h]);
            assert_eq!(a.margin_ref, linear.margins(&normalizer, r)[h]);
            assert!(local_error(&phi, a.margin_x, a.margin_ref) <= 1e-12);
        }
    }
}

#[test]
fn network_integrated_gradients_are_complete_within_tolerance() {
    let artifact = ModelArtifact::from_bytes(
        include_bytes!("fixtures/network/model.json"),
        include_bytes!("fixtures/network/model.safetensors"),
    )
    .unwrap();
    let served = EmbeddedModel::new(&artifact).unwrap();
    let normalizer = artifact.meta.normalizer.clone().unwrap();
    let Model::Network(net) = &artifact.model else { panic!("network") };
    let pairs = pairs_14d();
    let mut worst = 0.0f64;
    let mut phi = [0.0; F];
    for (i, (x, r)) in pairs.iter().enumerate().step_by(16) {
        // Also a very different reference: another customer's vector.
        let far = &pairs[(i + pairs.len() / 2) % pairs.len()].0;
        for r in [r, far] {
            for h in 0..HEADS.len() {
                let a = served.attribute(h, x, r, &mut phi).unwrap();
                assert!(matches!(a.method, Method::IntegratedGradients { steps: 256 }));
                // The f64 margins agree with the f32 network inference.
                let raw = |row: &Features| -> f64 {
                    let t = normalizer.tensor(std::slice::from_ref(row), &candle_core::Device::Cpu).unwrap();
                    let out: Vec<f32> = net.forward(&t).unwrap().flatten_all().unwrap().to_vec1().unwrap();
                    f64::from(out[h])
                };
                assert!((a.margin_x - raw(x)).abs() <= 1e-4 * raw(x).abs().max(1.0), "{} vs {}", a.margin_x, raw(x));
                assert!((a.margin_ref - raw(r)).abs() <= 1e-4 * raw(r).abs().max(1.0));
                assert!((a.residual - ((a.margin_x - a.margin_ref) - phi.iter().sum::<f64>())).abs() < 1e-12);
                let err = a.residual.abs() / (a.margin_x - a.margin_ref).abs().max(1.0);
                worst = worst.max(err);
                for f in 0..F {
                    if x[f] == r[f] {
                        assert_eq!(phi[f], 0.0, "feature {f} did not move");
                    }
                }
            }
        }
    }
    eprintln!("network, 256-step integrated gradients: largest |Σφ − Δmargin| / max(1, |Δmargin|) = {worst:e}");
    assert!(worst <= 0.02, "completeness error {worst:e}");
}

#[test]
fn heads_out_of_range_are_refused() {
    let served = EmbeddedModel::new(&embedded().unwrap()).unwrap();
    let err = served.attribute(5, &[0.0; F], &[0.0; F], &mut [0.0; F]).unwrap_err();
    assert!(err.to_string().contains("head 5"), "{err}");
}

// ---- Reasons ---------------------------------------------------------------

#[test]
fn top_raising_keeps_the_largest_positive_contributions_ties_by_index() {
    let mut phi = [0.0; F];
    phi[3] = 0.5;
    phi[7] = 2.0;
    phi[9] = 0.5;
    phi[1] = 0.5;
    phi[10] = -3.0;
    phi[11] = f64::NAN;
    phi[12] = 1e-300;
    assert_eq!(top_raising(&phi, 3), vec![(7, 2.0), (1, 0.5), (3, 0.5)]);
    assert_eq!(top_raising(&phi, 4), vec![(7, 2.0), (1, 0.5), (3, 0.5), (9, 0.5)]);
    assert_eq!(top_raising(&phi, 10), vec![(7, 2.0), (1, 0.5), (3, 0.5), (9, 0.5), (12, 1e-300)]);
    assert_eq!(top_raising(&phi, 0), vec![]);
    assert_eq!(top_raising(&[-1.0; F], 3), vec![]);
    assert_eq!(top_raising(&[0.0; F], 3), vec![]);
    // Against a sort of everything.
    let mut rng = Rng64::seed_from_u64(2);
    for _ in 0..200 {
        let phi: [f64; F] = std::array::from_fn(|_| f64::from(rng.random_range(-3i8..4)) / 2.0);
        let mut want: Vec<(usize, f64)> = phi.iter().copied().enumerate().filter(|p| p.1 > 0.0).collect();
        want.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        want.truncate(3);
        assert_eq!(top_raising(&phi, 3), want);
    }
}
