//! `pulse serve`.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use pulse_model::Scorer;
use pulse_serve::{router, ServeConfig, DEFAULT_MAX_ROWS};

/// Arguments of `pulse serve`.
#[derive(Args, Debug)]
pub(crate) struct ServeArgs {
    /// Serve the model in this directory (model.json and model.safetensors),
    /// e.g. /opt/ml/model where SageMaker unpacks ModelDataUrl. Default: the
    /// model compiled into pulse.
    #[arg(long, value_name = "DIR", env = "PULSE_MODEL_DIR")]
    model: Option<PathBuf>,
    /// Where SageMaker unpacks the model data (`/opt/ml/model`, set by the
    /// container image): the model found there is served; a directory with
    /// no model (an endpoint made without model data) serves the embedded
    /// one. A model there that cannot be loaded stops the server. --model
    /// wins over it.
    #[arg(long, value_name = "DIR", env = "SAGEMAKER_MODEL_DIR")]
    sagemaker_model_dir: Option<PathBuf>,
    /// Address to listen on. 127.0.0.1 answers this machine only; a container
    /// must listen on 0.0.0.0 (SageMaker runs `<image> serve`, so set
    /// PULSE_SERVE_BIND=0.0.0.0 in the image).
    #[arg(long, value_name = "ADDR", env = "PULSE_SERVE_BIND", default_value = "127.0.0.1")]
    bind: IpAddr,
    /// Port to listen on: SageMaker's 8080, or the SAGEMAKER_BIND_TO_PORT it
    /// sets for a container in an inference pipeline.
    #[arg(long, env = "SAGEMAKER_BIND_TO_PORT", default_value_t = 8080)]
    port: u16,
    /// Most rows one request may carry; more answer 413.
    #[arg(long, default_value_t = DEFAULT_MAX_ROWS)]
    max_rows: usize,
    /// Seconds the server waits, after SIGTERM or ctrl-c, for the requests
    /// in flight before it stops without them (SageMaker kills a container
    /// 30 s after its SIGTERM; a client that never finishes its request must
    /// not hold the shutdown).
    #[arg(long, default_value_t = 20.0, value_name = "SECONDS")]
    shutdown_timeout_s: f64,
}

pub(crate) async fn run(args: ServeArgs) -> Result<()> {
    anyhow::ensure!(args.max_rows > 0, "--max-rows must be at least 1");
    anyhow::ensure!(
        args.shutdown_timeout_s.is_finite() && args.shutdown_timeout_s >= 0.0,
        "--shutdown-timeout-s must be a number of seconds, 0 or more"
    );
    let grace = std::time::Duration::from_secs_f64(args.shutdown_timeout_s);
    let dir = args.model.clone().or_else(|| {
        // A model artifact is its model.json (and weights beside it).
        args.sagemaker_model_dir.clone().filter(|d| d.join("model.json").is_file())
    });
    let model = super::load_model(dir.as_deref())?;
    let (name, version) = (model.model_name().to_owned(), model.model_version().to_owned());
    let config = ServeConfig { max_rows: args.max_rows, ..ServeConfig::default() };

    let addr = SocketAddr::new(args.bind, args.port);
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
    let addr = listener.local_addr().unwrap_or(addr);
    let source = dir.as_ref().map_or("embedded".to_owned(), |d| d.display().to_string());
    println!("pulse serve: listening on http://{addr} (GET /ping, POST /invocations)");
    println!(
        "pulse serve: model {name} version {version} ({source}), features-v1, at most {} rows per request",
        args.max_rows
    );

    let (signalled, on_signal) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(listener, router(model, config)).with_graceful_shutdown(async move {
        shutdown_signal().await;
        let _ = signalled.send(());
    });
    // The deadline runs from the signal: until then the server runs as long
    // as it is needed.
    let deadline = async move {
        if on_signal.await.is_ok() {
            tokio::time::sleep(grace).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        served = server => served.context("server failed")?,
        () = deadline => {
            eprintln!(
                "pulse serve: requests still open {:.0} s after the shutdown signal: stopping without them",
                grace.as_secs_f64()
            );
        }
    }
    println!("pulse serve: stopped");
    Ok(())
}

/// Resolves on ctrl-c or SIGTERM (what SageMaker sends, 30 s before SIGKILL);
/// requests in flight then finish, new connections are refused.
async fn shutdown_signal() {
    super::shutdown_signal().await;
    eprintln!("pulse serve: shutting down after the requests in flight");
}
