//! The subcommands of the `pulse` binary: argument parsing and printing;
//! the work is in the library.

/// `println!` that does not panic when standard output is gone (a closed
/// pipe: `pulse setup ... | head -1`): the command goes on with its work
/// and its exit code still says how that went. `println!` panicked there
/// (exit 101), and `pulse setup` stopped before creating the queue.
macro_rules! say {
    () => {
        $crate::commands::say_line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::commands::say_line(format_args!($($arg)*))
    };
}

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
    // A version that already reads "v1" is not printed "vv1".
    let v = if id.version.starts_with(['v', 'V']) { "" } else { "v" };
    format!("model {} {v}{} ({place})", id.name, id.version)
}

/// Writes a line to standard output for [`say!`]: what a closed pipe cannot
/// take is dropped, as `head` means it to be; another failure (a full disk
/// behind a redirect) is said on standard error once a line.
pub(crate) fn say_line(args: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.write_all(b"\n")) {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            pulse::tell!("warning: cannot write to standard output: {e}");
        }
    }
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
        pulse::tell!("{text}");
    } else {
        say!("{text}");
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
