//! The multi-task network.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor, Var};
use pulse_schemas::prediction::Scores;
use rand::Rng;

use crate::ModelError;

/// Inputs.
pub const INPUTS: usize = pulse_schemas::FEATURE_COUNT;
/// Widths of the shared trunk.
pub const TRUNK: [usize; 3] = [128, 64, 32];
/// Width of each head's hidden layer.
pub const HEAD_HIDDEN: usize = 16;
/// The heads, in output order.
pub const HEADS: [&str; 5] =
    ["first_session_success", "session_velocity", "churn_risk_14d", "churn_risk_30d", "health_score"];

/// A dense layer `x · w + b` with `w` of shape (in, out).
#[derive(Clone, Debug)]
pub struct Dense {
    w: Tensor,
    b: Tensor,
}

impl Dense {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.matmul(&self.w)?.broadcast_add(&self.b)
    }
}

/// Shared trunk and five heads; outputs are raw (pre-activation), see [`activate`].
#[derive(Clone, Debug)]
pub struct Net {
    trunk: Vec<Dense>,
    /// Per head: hidden layer (32 → 16) and output (16 → 1).
    heads: Vec<[Dense; 2]>,
}

fn names() -> Vec<(String, usize, usize)> {
    let mut out = Vec::new();
    let mut width = INPUTS;
    for (i, &w) in TRUNK.iter().enumerate() {
        out.push((format!("trunk.{i}"), width, w));
        width = w;
    }
    for h in HEADS {
        out.push((format!("head.{h}.0"), width, HEAD_HIDDEN));
        out.push((format!("head.{h}.1"), HEAD_HIDDEN, 1));
    }
    out
}

impl Net {
    /// A freshly initialised network (He-uniform weights, zero biases) and
    /// its trainable variables, from a seeded generator.
    pub fn init(rng: &mut impl Rng, device: &Device) -> Result<(Net, Vec<Var>), ModelError> {
        let mut vars = Vec::new();
        let mut layers = Vec::new();
        for (_, fan_in, fan_out) in names() {
            let bound = (6.0 / fan_in as f64).sqrt() as f32;
            let w: Vec<f32> = (0..fan_in * fan_out).map(|_| rng.random_range(-bound..bound)).collect();
            let w = Var::from_tensor(&Tensor::from_vec(w, (fan_in, fan_out), device)?)?;
            let b = Var::from_tensor(&Tensor::zeros(fan_out, DType::F32, device)?)?;
            layers.push(Dense { w: w.as_tensor().clone(), b: b.as_tensor().clone() });
            vars.push(w);
            vars.push(b);
        }
        Ok((Net::from_layers(layers), vars))
    }

    fn from_layers(mut layers: Vec<Dense>) -> Net {
        let heads_flat = layers.split_off(TRUNK.len());
        let heads = heads_flat.chunks(2).map(|c| [c[0].clone(), c[1].clone()]).collect();
        Net { trunk: layers, heads }
    }

    /// Rebuilds a network from named tensors (`<layer>.w`, `<layer>.b`),
    /// refusing a missing tensor, a wrong shape or a value that is not a
    /// finite number.
    pub fn from_tensors(tensors: &HashMap<String, Tensor>) -> Result<Net, ModelError> {
        let mut layers = Vec::new();
        for (name, fan_in, fan_out) in names() {
            let get = |suffix: &str, shape: &[usize]| -> Result<Tensor, ModelError> {
                let key = format!("{name}.{suffix}");
                let t = tensors.get(&key).ok_or_else(|| ModelError::Artifact(format!("weights lack {key}")))?;
                if t.dims() != shape {
                    return Err(ModelError::Artifact(format!("{key} has shape {:?}, expected {shape:?}", t.dims())));
                }
                let t = t.to_dtype(DType::F32)?;
                // A NaN weight does not fail the forward pass: the ReLUs
                // turn it into 0s and the model serves the same scores for
                // everyone. Refused at load, as the gbt and logistic
                // loaders refuse theirs. (0 is a weight like any other.)
                let values: Vec<f32> = t.flatten_all()?.to_vec1()?;
                if let Some((i, v)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
                    return Err(ModelError::Artifact(format!(
                        "{}: tensor {key} holds {v} at index {i} of {}: every weight must be a finite number",
                        crate::artifact::WEIGHTS_FILE,
                        values.len()
                    )));
                }
                Ok(t)
            };
            layers.push(Dense { w: get("w", &[fan_in, fan_out])?, b: get("b", &[fan_out])? });
        }
        Ok(Net::from_layers(layers))
    }

    /// The weights by name, for saving.
    pub fn tensors(&self) -> HashMap<String, Tensor> {
        let layers = self.trunk.iter().chain(self.heads.iter().flatten());
        names()
            .into_iter()
            .zip(layers)
            .flat_map(|((name, _, _), d)| [(format!("{name}.w"), d.w.clone()), (format!("{name}.b"), d.b.clone())])
            .collect()
    }

    /// Raw outputs, shape (batch, 5), for normalised inputs of shape (batch, 46).
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let mut h = x.clone();
        for layer in &self.trunk {
            h = layer.forward(&h)?.relu()?;
        }
        let outs = self
            .heads
            .iter()
            .map(|[hidden, out]| out.forward(&hidden.forward(&h)?.relu()?))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Tensor::cat(&outs, 1)
    }

    /// The same network with the five heads fused into two wide matrices
    /// (32 → 80, then a block-diagonal 80 → 5): identical outputs, fewer and
    /// larger matrix products for inference.
    pub fn fused(&self) -> Result<FusedNet, ModelError> {
        let device = self.trunk[0].w.device().clone();
        let hidden_w = Tensor::cat(&self.heads.iter().map(|[h, _]| h.w.clone()).collect::<Vec<_>>(), 1)?;
        let hidden_b = Tensor::cat(&self.heads.iter().map(|[h, _]| h.b.clone()).collect::<Vec<_>>(), 0)?;
        let n = HEADS.len();
        let mut block = vec![0f32; n * HEAD_HIDDEN * n];
        let mut out_b = Vec::with_capacity(n);
        for (i, [_, out]) in self.heads.iter().enumerate() {
            let w: Vec<f32> = out.w.flatten_all()?.to_vec1()?;
            for (j, v) in w.into_iter().enumerate() {
                block[(i * HEAD_HIDDEN + j) * n + i] = v;
            }
            out_b.push(out.b.to_vec1::<f32>()?[0]);
        }
        let plain = |d: &Dense| -> Result<(Vec<f64>, Vec<f64>), ModelError> {
            let w: Vec<f32> = d.w.flatten_all()?.to_vec1()?;
            let b: Vec<f32> = d.b.to_vec1()?;
            Ok((w.into_iter().map(f64::from).collect(), b.into_iter().map(f64::from).collect()))
        };
        let trunk = self.trunk.iter().map(plain).collect::<Result<Vec<_>, _>>()?;
        let heads = self
            .heads
            .iter()
            .map(|[hidden, out]| Ok((plain(hidden)?, plain(out)?)))
            .collect::<Result<Vec<_>, ModelError>>()?;
        Ok(FusedNet {
            plain: std::sync::Arc::new(PlainNet { trunk, heads }),
            trunk: self.trunk.clone(),
            hidden: Dense { w: hidden_w, b: hidden_b },
            out: Dense {
                w: Tensor::from_vec(block, (n * HEAD_HIDDEN, n), &device)?,
                b: Tensor::from_vec(out_b, n, &device)?,
            },
        })
    }
}

/// [`Net`] with fused heads, for inference.
#[derive(Clone, Debug)]
pub struct FusedNet {
    /// The same weights in f64 for [`FusedNet::integrated_gradients`].
    plain: std::sync::Arc<PlainNet>,
    trunk: Vec<Dense>,
    hidden: Dense,
    out: Dense,
}

impl FusedNet {
    /// Raw outputs, shape (batch, 5).
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let mut h = x.clone();
        for layer in &self.trunk {
            h = layer.forward(&h)?.relu()?;
        }
        self.out.forward(&self.hidden.forward(&h)?.relu()?)
    }
}

/// A layer's weights `(in × out, row-major)` and biases.
type Layer = (Vec<f64>, Vec<f64>);

/// The network's weights as plain arrays: the gradient of one head is a few
/// matrix-vector products, cheaper without tensors.
#[derive(Debug)]
struct PlainNet {
    trunk: Vec<Layer>,
    /// Per head: hidden layer (32 → 16) and output (16 → 1).
    heads: Vec<(Layer, Layer)>,
}

/// The widest layer.
const WIDEST: usize = TRUNK[0];

/// `out = x·w + b` for `w` of `x.len() × out.len()`, then the ReLU when
/// `relu`.
fn dense(x: &[f64], (w, b): &Layer, out: &mut [f64], relu: bool) {
    out.copy_from_slice(b);
    for (xi, row) in x.iter().zip(w.chunks_exact(out.len())) {
        for (o, wij) in out.iter_mut().zip(row) {
            *o += xi * wij;
        }
    }
    if relu {
        for o in out.iter_mut() {
            *o = o.max(0.0);
        }
    }
}

/// `dx = w·dy` for `w` of `dx.len() × dy.len()`, zeroed where `active` (the
/// layer's input after its ReLU) is 0; `active` is `None` for the inputs.
fn back(dy: &[f64], (w, _): &Layer, dx: &mut [f64], active: Option<&[f64]>) {
    for (i, (d, row)) in dx.iter_mut().zip(w.chunks_exact(dy.len())).enumerate() {
        *d = if active.is_some_and(|a| a[i] <= 0.0) { 0.0 } else { row.iter().zip(dy).map(|(w, g)| w * g).sum() };
    }
}

impl PlainNet {
    /// The head's margin at `z` and, when `grad` is given, its gradient.
    fn margin(&self, head: usize, z: &[f64; INPUTS], grad: Option<&mut [f64; INPUTS]>) -> f64 {
        let mut acts = [[0.0; WIDEST]; TRUNK.len()];
        let mut width = INPUTS;
        for (l, layer) in self.trunk.iter().enumerate() {
            let (done, rest) = acts.split_at_mut(l);
            let input: &[f64] = if l == 0 { z } else { &done[l - 1][..width] };
            dense(input, layer, &mut rest[0][..TRUNK[l]], true);
            width = TRUNK[l];
        }
        let (hidden, out) = &self.heads[head];
        let mut g = [0.0; HEAD_HIDDEN];
        dense(&acts[TRUNK.len() - 1][..width], hidden, &mut g, true);
        let mut m = [0.0; 1];
        dense(&g, out, &mut m, false);
        if let Some(grad) = grad {
            // d margin / d g_j = w_out_j where the hidden unit is active.
            let mut dg = [0.0; HEAD_HIDDEN];
            for (j, d) in dg.iter_mut().enumerate() {
                *d = if g[j] > 0.0 { out.0[j] } else { 0.0 };
            }
            let mut dy = [0.0; WIDEST];
            let mut dx = [0.0; WIDEST];
            let last = TRUNK.len() - 1;
            back(&dg, hidden, &mut dy[..TRUNK[last]], Some(&acts[last][..TRUNK[last]]));
            for l in (0..TRUNK.len()).rev() {
                if l == 0 {
                    back(&dy[..TRUNK[0]], &self.trunk[0], grad, None);
                } else {
                    back(&dy[..TRUNK[l]], &self.trunk[l], &mut dx[..TRUNK[l - 1]], Some(&acts[l - 1][..TRUNK[l - 1]]));
                    dy[..TRUNK[l - 1]].copy_from_slice(&dx[..TRUNK[l - 1]]);
                }
            }
        }
        m[0]
    }
}

impl FusedNet {
    /// Integrated gradients of head `head`'s margin from `zr` to `zx`
    /// (normalised inputs) into `phi`, by the midpoint rule over
    /// [`crate::explain::IG_STEPS`] steps; returns the margins at `zx` and
    /// `zr` (in f64: within f32 rounding of [`FusedNet::forward`]'s).
    pub fn integrated_gradients(
        &self,
        head: usize,
        zx: &[f32; INPUTS],
        zr: &[f32; INPUTS],
        phi: &mut [f64; INPUTS],
    ) -> Result<(f64, f64), ModelError> {
        if head >= self.plain.heads.len() {
            return Err(ModelError::Config(format!("head {head} does not exist")));
        }
        let zx: [f64; INPUTS] = zx.map(f64::from);
        let zr: [f64; INPUTS] = zr.map(f64::from);
        let steps = crate::explain::IG_STEPS;
        let mut sum = [0.0; INPUTS];
        let mut grad = [0.0; INPUTS];
        for s in 0..steps {
            let t = (s as f64 + 0.5) / steps as f64;
            let z: [f64; INPUTS] = std::array::from_fn(|i| zr[i] + t * (zx[i] - zr[i]));
            self.plain.margin(head, &z, Some(&mut grad));
            for (a, g) in sum.iter_mut().zip(&grad) {
                *a += g;
            }
        }
        for i in 0..INPUTS {
            phi[i] = (zx[i] - zr[i]) * sum[i] / steps as f64;
        }
        Ok((self.plain.margin(head, &zx, None), self.plain.margin(head, &zr, None)))
    }
}

fn sigmoid(x: f32) -> f64 {
    1.0 / (1.0 + (-f64::from(x)).exp())
}

/// `ln(1 + e^x)`, computed without overflow.
fn softplus(x: f32) -> f64 {
    let x = f64::from(x);
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// The head activations: probabilities by sigmoid, velocity by softplus
/// (never negative), health by 100 · sigmoid (within 0–100).
pub fn activate(raw: [f32; 5]) -> Scores {
    Scores {
        first_session_success: sigmoid(raw[0]),
        session_velocity: softplus(raw[1]),
        churn_risk_14d: sigmoid(raw[2]),
        churn_risk_30d: sigmoid(raw[3]),
        health_score: 100.0 * sigmoid(raw[4]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn fused_heads_give_the_same_outputs() {
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(7);
        let (net, _) = Net::init(&mut rng, &Device::Cpu).unwrap();
        let x: Vec<f32> = (0..3 * INPUTS).map(|i| ((i * 37 % 17) as f32 - 8.0) / 4.0).collect();
        let x = Tensor::from_vec(x, (3, INPUTS), &Device::Cpu).unwrap();
        let a: Vec<Vec<f32>> = net.forward(&x).unwrap().to_vec2().unwrap();
        let b: Vec<Vec<f32>> = net.fused().unwrap().forward(&x).unwrap().to_vec2().unwrap();
        for (ra, rb) in a.iter().zip(&b) {
            for (va, vb) in ra.iter().zip(rb) {
                assert!((va - vb).abs() < 1e-5, "{va} vs {vb}");
            }
        }
    }

    #[test]
    fn activations_respect_output_ranges() {
        for raw in [[-50.0f32; 5], [0.0; 5], [50.0; 5]] {
            let s = activate(raw);
            assert!((0.0..=1.0).contains(&s.churn_risk_14d));
            assert!(s.session_velocity >= 0.0 && s.session_velocity.is_finite());
            assert!((0.0..=100.0).contains(&s.health_score));
        }
    }
}
