//! The subcommands of the `pulse` binary: argument parsing and printing;
//! the work is in the library.

pub(crate) mod dataset;
pub(crate) mod demo;
pub(crate) mod generate;
pub(crate) mod import_model;
pub(crate) mod loadtest;
pub(crate) mod replay;
pub(crate) mod run;
pub(crate) mod serve;
pub(crate) mod setup;
pub(crate) mod train;

use std::path::Path;

use anyhow::{Context, Result};
use pulse_model::{EmbeddedModel, ModelArtifact};

/// The model in `dir` (model.json + model.safetensors), or the one compiled
/// into pulse; refused when it was trained on other features. A model from
/// `dir` is served by `in-process`, the compiled one by `embedded`: a user's
/// model must not claim to be the built-in one in its predictions.
pub(crate) fn load_model(dir: Option<&Path>) -> Result<EmbeddedModel> {
    match dir {
        Some(dir) => {
            let artifact =
                ModelArtifact::load_dir(dir).with_context(|| format!("cannot load the model in {}", dir.display()))?;
            Ok(EmbeddedModel::new(&artifact).context("cannot prepare the model")?.served_by(pulse_model::IN_PROCESS))
        }
        None => {
            let artifact = pulse_model::embedded().context("cannot load the embedded model")?;
            EmbeddedModel::new(&artifact).context("cannot prepare the model")
        }
    }
}

/// The model as a summary names it: "model pulse-gbt v2 (built in)", or
/// "model churn v3 (from models/churn)".
pub(crate) fn model_line(model: &EmbeddedModel, dir: Option<&Path>) -> String {
    let id = model.id();
    let place = dir.map_or("built in".to_owned(), |d| format!("from {}", d.display()));
    format!("model {} v{} ({place})", id.name, id.version)
}

/// Whether an output file is `-`: standard output then carries the data.
pub(crate) fn any_stdout<'a>(mut outputs: impl Iterator<Item = &'a Path>) -> bool {
    outputs.any(pulse_runtime::io::is_stdin)
}

/// Prints a command's summary: to standard output, unless that carries the
/// data ([`any_stdout`]): the summary then goes to standard error, so that
/// a pipe gets only the data.
pub(crate) fn print_summary(text: &str, data_on_stdout: bool) {
    if data_on_stdout {
        eprintln!("{text}");
    } else {
        println!("{text}");
    }
}

/// Completes on ctrl-c or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
