//! `pulse import-model`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use pulse_model::{import_xgboost, EmbeddedModel, ModelArtifact};

/// Arguments of `pulse import-model`.
#[derive(Args, Debug)]
pub(crate) struct ImportModelArgs {
    /// One head's XGBoost JSON model (`booster.save_model("m.json")`), as
    /// HEAD=FILE; once per head, all five heads: first_session_success,
    /// session_velocity, churn_risk_14d, churn_risk_30d, health_score.
    #[arg(long = "xgboost", value_name = "HEAD=FILE", value_parser = head_file, required = true)]
    xgboost: Vec<(String, PathBuf)>,
    /// The artifact directory to write (model.json; created if needed),
    /// served with --model DIR.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// The model's name (every prediction carries it).
    #[arg(long, default_value = "xgboost")]
    name: String,
    /// The model's version (every prediction carries it).
    #[arg(long, default_value = "1")]
    version: String,
}

fn head_file(s: &str) -> Result<(String, PathBuf), String> {
    match s.split_once('=') {
        Some((head, file)) if !head.is_empty() && !file.is_empty() => Ok((head.to_string(), PathBuf::from(file))),
        _ => Err(format!("expected HEAD=FILE (e.g. churn_risk_14d=churn14.json), got {s:?}")),
    }
}

pub(crate) async fn run(args: ImportModelArgs) -> Result<()> {
    // `booster.save_model("model.json")` is XGBoost's own example name: saved
    // into --out, it was replaced by the artifact.
    let written = args.out.join("model.json");
    let mut files: Vec<(String, &std::path::Path)> =
        args.xgboost.iter().map(|(head, file)| (format!("--xgboost {head}"), file.as_path())).collect();
    files.push(("the model written to".to_owned(), written.as_path()));
    let named: Vec<(&str, &std::path::Path)> = files.iter().map(|(what, p)| (what.as_str(), *p)).collect();
    pulse_runtime::replay::refuse_same_files(&named)?;
    let artifact = import_xgboost(&args.xgboost, &args.name, &args.version)?;
    artifact.save_dir(&args.out).with_context(|| format!("cannot write the model to {}", args.out.display()))?;
    // What --model DIR will load, loaded and prepared the same way.
    let loaded = ModelArtifact::load_dir(&args.out)
        .with_context(|| format!("the model written to {} does not load back", args.out.display()))?;
    EmbeddedModel::new(&loaded).context("the imported model cannot be prepared for serving")?;
    if let Some(heads) = artifact.meta.training["imported"].as_array() {
        for h in heads {
            say!(
                "{:<22} {} ({}, XGBoost {}): {} trees, base_score {} (margin {:.6})",
                h["head"].as_str().unwrap_or("?"),
                h["file"].as_str().unwrap_or("?"),
                h["objective"].as_str().unwrap_or("?"),
                h["xgboost_version"].as_str().unwrap_or("unknown"),
                h["trees"],
                h["base_score"],
                h["base_margin"].as_f64().unwrap_or(f64::NAN),
            );
        }
    }
    say!(
        "wrote {} {} (kind gbt) to {}: serve it with --model {}",
        args.name,
        args.version,
        args.out.display(),
        args.out.display()
    );
    Ok(())
}
