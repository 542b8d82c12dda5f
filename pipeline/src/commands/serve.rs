//! `pulse serve`.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use pulse_model::Scorer;
use pulse_serve::{router, ServeConfig, ServerLimits, Stopped, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_ROWS};

/// Arguments of `pulse serve`.
#[derive(Args, Debug)]
pub(crate) struct ServeArgs {
    /// Serve the model in this directory (model.json and model.safetensors),
    /// e.g. /opt/ml/model where SageMaker unpacks ModelDataUrl. Default: the
    /// model compiled into pulse.
    #[arg(long, value_name = "DIR", env = "PULSE_MODEL_DIR")]
    model: Option<PathBuf>,
    /// Where SageMaker unpacks the model data (`/opt/ml/model`, set by the
    /// container image): the model found there is served; an empty
    /// directory (an endpoint made without model data) serves the embedded
    /// one. A model there that cannot be loaded, a directory that does not
    /// exist, or one holding files but no model.json stops the server.
    /// --model wins over it.
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
    /// Most connections open at once. Past it the server accepts no more:
    /// new connections wait in the kernel's accept queue (backlog 1024) until
    /// one closes, rather than being refused, so a burst is served late
    /// instead of failed. The timeouts below bound how long a slot is held.
    #[arg(long, env = "PULSE_SERVE_MAX_CONNECTIONS", default_value_t = DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,
    /// Seconds a client has to send a request's line and headers (and how
    /// long an idle keep-alive connection stays open); a slower one is
    /// disconnected.
    #[arg(long, env = "PULSE_SERVE_HEADER_TIMEOUT_S", default_value_t = 10.0, value_name = "SECONDS")]
    header_timeout_s: f64,
    /// Seconds a request's body has to arrive after its headers, waiting for
    /// room in the body buffer included: later answers 408 (503 if it was
    /// still waiting for room).
    #[arg(long, env = "PULSE_SERVE_BODY_TIMEOUT_S", default_value_t = 30.0, value_name = "SECONDS")]
    body_timeout_s: f64,
    /// MiB of request bodies held in memory at once, over all requests (at
    /// least one 6-MiB body). A request reserves its Content-Length before
    /// its body is read and waits while the buffer is full; /ping never waits.
    #[arg(long, env = "PULSE_SERVE_BODY_BUFFER_MIB", default_value_t = 128, value_name = "MIB")]
    body_buffer_mib: usize,
}

/// A flag of seconds as a duration.
fn seconds(value: f64, flag: &str) -> Result<std::time::Duration> {
    pulse_runtime::settings::seconds(value, flag, pulse_runtime::settings::YEAR_SECONDS)
}

/// Connections the kernel queues while every slot is taken (capped by
/// `net.core.somaxconn`).
const ACCEPT_BACKLOG: u32 = 1024;

pub(crate) async fn run(args: ServeArgs) -> Result<()> {
    anyhow::ensure!(args.max_rows > 0, "--max-rows must be at least 1");
    anyhow::ensure!(args.max_connections > 0, "--max-connections must be at least 1");
    let limits = ServerLimits {
        max_connections: args.max_connections,
        header_read_timeout: seconds(args.header_timeout_s, "--header-timeout-s")?,
        shutdown_timeout: seconds(args.shutdown_timeout_s, "--shutdown-timeout-s")?,
    };
    anyhow::ensure!(!limits.header_read_timeout.is_zero(), "--header-timeout-s must be more than 0");
    let body_timeout = seconds(args.body_timeout_s, "--body-timeout-s")?;
    anyhow::ensure!(!body_timeout.is_zero(), "--body-timeout-s must be more than 0");
    let body_buffer_bytes = args.body_buffer_mib.saturating_mul(1024 * 1024);
    anyhow::ensure!(
        body_buffer_bytes >= pulse_serve::MAX_BODY_BYTES,
        "--body-buffer-mib must hold one body of {} MiB at least",
        pulse_serve::MAX_BODY_BYTES / (1024 * 1024)
    );
    let dir = match (&args.model, &args.sagemaker_model_dir) {
        (Some(dir), _) => Some(dir.clone()),
        (None, Some(dir)) => sagemaker_model(dir)?,
        (None, None) => None,
    };
    let model = super::load_model(dir.as_deref())?;
    let (name, version) = (model.model_name().to_owned(), model.model_version().to_owned());
    let config = ServeConfig { max_rows: args.max_rows, body_timeout, body_buffer_bytes, ..ServeConfig::default() };

    let addr = SocketAddr::new(args.bind, args.port);
    // Bound through a socket of its own for the accept queue the docs
    // promise: `TcpListener::bind` listens with a backlog of 128, and
    // connections past it were dropped instead of served late.
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4() } else { tokio::net::TcpSocket::new_v6() }
        .with_context(|| format!("cannot open a socket for {addr}"))?;
    socket.set_reuseaddr(true).with_context(|| format!("cannot listen on {addr}"))?;
    socket.bind(addr).with_context(|| format!("cannot listen on {addr}"))?;
    let listener = socket.listen(ACCEPT_BACKLOG).with_context(|| format!("cannot listen on {addr}"))?;
    let addr = listener.local_addr().unwrap_or(addr);
    let source = dir.as_ref().map_or("embedded".to_owned(), |d| d.display().to_string());
    say!("pulse serve: listening on http://{addr} (GET /ping, POST /invocations)");
    // Two lines: scripts and tests read the banner by its line count.
    say!(
        "pulse serve: model {name} version {version} ({source}), features-v1, at most {} rows per request; \
         at most {} connections, headers within {} s, bodies within {} s, {} MiB of bodies at once",
        args.max_rows,
        limits.max_connections,
        limits.header_read_timeout.as_secs_f64(),
        body_timeout.as_secs_f64(),
        args.body_buffer_mib
    );

    let grace = limits.shutdown_timeout;
    match pulse_serve::serve(listener, router(model, config), limits, shutdown_signal()).await {
        Stopped::Drained => {}
        Stopped::DeadlinePassed { open } => pulse::tell!(
            "pulse serve: {open} connections still open {:.0} s after the shutdown signal: stopping without them",
            grace.as_secs_f64()
        ),
    }
    say!("pulse serve: stopped");
    Ok(())
}

/// Resolves on ctrl-c or SIGTERM (what SageMaker sends, 30 s before SIGKILL);
/// requests in flight then finish, new connections are refused.
async fn shutdown_signal() {
    super::shutdown_signal().await;
    pulse::tell!("pulse serve: shutting down after the requests in flight");
}

/// The model SageMaker unpacked into `dir`: `dir` itself when it holds a
/// `model.json` (a model artifact is its model.json and the weights beside
/// it), none when it is empty (an endpoint made without model data serves
/// the embedded model). Anything else is a mistake that would otherwise
/// serve the embedded model behind a healthy `/ping`: a directory that does
/// not exist, or model data packed with its files one folder down (`tar czf
/// model.tar.gz artifact/`) or not at all.
fn sagemaker_model(dir: &std::path::Path) -> Result<Option<PathBuf>> {
    if dir.join("model.json").is_file() {
        return Ok(Some(dir.to_path_buf()));
    }
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read the SageMaker model directory {}", dir.display()))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot read the SageMaker model directory {}", dir.display()))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    if names.is_empty() {
        return Ok(None);
    }
    names.sort();
    let nested: Vec<&String> = names.iter().filter(|n| dir.join(n).join("model.json").is_file()).collect();
    let hint = match nested.first() {
        Some(n) => {
            format!("; {n}/ holds one: pack the model's files at the archive's root (tar czf model.tar.gz -C {n} .)")
        }
        None => "; a pulse model directory holds model.json and its weights (pulse train --out DIR)".to_owned(),
    };
    anyhow::bail!(
        "the SageMaker model directory {} has no model.json (it holds {}){hint}; an empty directory serves the \
         embedded model",
        dir.display(),
        names.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sagemaker_directory_serves_its_model_or_nothing_or_says_what_is_wrong() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("model");
        let err = sagemaker_model(&dir).unwrap_err();
        assert!(format!("{err:#}").contains("cannot read the SageMaker model directory"), "{err:#}");
        std::fs::create_dir(&dir).unwrap();
        assert_eq!(sagemaker_model(&dir).unwrap(), None, "empty: the embedded model");
        // Packed one folder down (tar czf model.tar.gz artifact/).
        std::fs::create_dir(dir.join("artifact")).unwrap();
        std::fs::write(dir.join("artifact/model.json"), "{}").unwrap();
        let err = format!("{:#}", sagemaker_model(&dir).unwrap_err());
        assert!(err.contains("has no model.json (it holds artifact)"), "{err}");
        assert!(err.contains("tar czf model.tar.gz -C artifact ."), "{err}");
        std::fs::write(dir.join("model.json"), "{}").unwrap();
        assert_eq!(sagemaker_model(&dir).unwrap(), Some(dir.clone()));
    }
}
