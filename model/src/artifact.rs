//! A trained model on disk: `model.json` (name, version, features schema,
//! feature names, normalisation, training facts) and `model.safetensors`
//! (weights). Both are small enough to commit and to compile into pulse.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use pulse_schemas::{Features, FEATURE_COUNT, FEATURE_NAMES, SCHEMA};
use serde::{Deserialize, Serialize};

use crate::net::{Net, HEADS};
use crate::ModelError;

/// File name of the metadata within an artifact directory.
pub const META_FILE: &str = "model.json";
/// File name of the weights within an artifact directory.
pub const WEIGHTS_FILE: &str = "model.safetensors";

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

    /// Appends the normalised row to `out`.
    pub fn push_row(&self, row: &Features, out: &mut Vec<f32>) {
        for (i, &x) in row.iter().enumerate() {
            out.push((slog1p(x) as f32 - self.mean[i]) / self.std[i]);
        }
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

/// What `model.json` says.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelMeta {
    /// The model's name.
    pub name: String,
    /// Its version (predictions carry it).
    pub version: String,
    /// The features schema it was trained on (must be pulse's).
    pub features_schema: String,
    /// The input names, in order (must be pulse's).
    pub feature_names: Vec<String>,
    /// The outputs, in order.
    pub heads: Vec<String>,
    /// Input normalisation.
    pub normalizer: Normalizer,
    /// How it was trained (seed, rows, epochs, losses): for the record.
    pub training: serde_json::Value,
}

/// A trained model: metadata and network.
#[derive(Clone, Debug)]
pub struct ModelArtifact {
    /// The metadata.
    pub meta: ModelMeta,
    /// The network.
    pub net: Net,
}

impl ModelArtifact {
    /// Reads `model.json` and `model.safetensors` from a directory.
    pub fn load_dir(dir: &Path) -> Result<ModelArtifact, ModelError> {
        let read = |f: &str| {
            std::fs::read(dir.join(f))
                .map_err(|e| ModelError::Artifact(format!("cannot read {}: {e}", dir.join(f).display())))
        };
        ModelArtifact::from_bytes(&read(META_FILE)?, &read(WEIGHTS_FILE)?)
    }

    /// Parses an artifact from the two files' bytes, and checks that it
    /// fits the features pulse computes.
    pub fn from_bytes(meta: &[u8], weights: &[u8]) -> Result<ModelArtifact, ModelError> {
        let meta: ModelMeta =
            serde_json::from_slice(meta).map_err(|e| ModelError::Artifact(format!("{META_FILE}: {e}")))?;
        check_schema(&meta)?;
        let tensors = candle_core::safetensors::load_buffer(weights, &Device::Cpu)?;
        let net = Net::from_tensors(&tensors)?;
        Ok(ModelArtifact { meta, net })
    }

    /// Writes the two files into `dir` (created if needed).
    pub fn save_dir(&self, dir: &Path) -> Result<(), ModelError> {
        std::fs::create_dir_all(dir)?;
        let meta = serde_json::to_vec_pretty(&self.meta).map_err(|e| ModelError::Artifact(e.to_string()))?;
        std::fs::write(dir.join(META_FILE), meta)?;
        let tensors: HashMap<String, Tensor> = self.net.tensors();
        candle_core::safetensors::save(&tensors, dir.join(WEIGHTS_FILE))?;
        Ok(())
    }
}

/// Refuses a model trained on other features than pulse computes.
pub fn check_schema(meta: &ModelMeta) -> Result<(), ModelError> {
    if meta.features_schema != SCHEMA {
        return Err(ModelError::SchemaMismatch { expected: SCHEMA.into(), found: meta.features_schema.clone() });
    }
    if meta.feature_names.iter().map(String::as_str).ne(FEATURE_NAMES.iter().copied()) {
        return Err(ModelError::Artifact(format!(
            "{META_FILE} lists other feature names than {SCHEMA}: the model was trained on different features"
        )));
    }
    if meta.heads.iter().map(String::as_str).ne(HEADS.iter().copied()) {
        return Err(ModelError::Artifact(format!("{META_FILE} lists heads {:?}, expected {HEADS:?}", meta.heads)));
    }
    let n = FEATURE_COUNT;
    if meta.normalizer.mean.len() != n || meta.normalizer.std.len() != n {
        return Err(ModelError::Artifact(format!("the normaliser must have {n} means and deviations")));
    }
    Ok(())
}

/// The model compiled into pulse: the artifact in `model/artifact/`, made
/// by `pulse train` (see README, "Training"). It runs with no files and no
/// account, so every command has a working default.
pub fn embedded() -> Result<ModelArtifact, ModelError> {
    ModelArtifact::from_bytes(include_bytes!("../artifact/model.json"), include_bytes!("../artifact/model.safetensors"))
}
