//! The HTTP side: the routes, the state they share, and the answer's shape.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, Extensions, HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use pulse_model::{EmbeddedModel, Scorer};
use pulse_schemas::prediction::Scores;
use pulse_schemas::reasons::top_raising;
use pulse_schemas::{Features, Reasons, FEATURE_COUNT, SCHEMA};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio_stream::StreamExt;

use super::error::ServeError;
use super::request::{check_accept, Format, DEFAULT_MAX_ROWS, MAX_BODY_BYTES};
use super::server::Draining;

/// Bytes of request bodies held at once, by default: 21 bodies of 6 MB.
pub const DEFAULT_BODY_BUFFER_BYTES: usize = 128 * 1024 * 1024;

/// A body declaring at most this many bytes is read without room in the body
/// buffer: such bodies are bounded by the connection cap (256 × 64 KiB =
/// 16 MiB), and a flood of large slow bodies cannot starve small requests.
pub const SMALL_BODY_BYTES: usize = 64 * 1024;

/// The limits of a server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServeConfig {
    /// Rows one request may carry (more answer 413).
    pub max_rows: usize,
    /// Bytes one body may have (more answer 413); SageMaker's 6 MB by default.
    pub max_body_bytes: usize,
    /// Requests parsed and scored at once; the rest wait their turn.
    pub max_concurrent_batches: usize,
    /// Time a request's body has to arrive, from the end of its headers;
    /// waiting for room in the body buffer counts. Later answers 408 (or 503
    /// if it was still waiting for room).
    pub body_timeout: Duration,
    /// Bytes of bodies held at once, over all requests (at least
    /// `max_body_bytes`). A request reserves its `Content-Length` (without
    /// one, `max_body_bytes`) before reading its body, and waits while the
    /// buffer is full; one of at most [`SMALL_BODY_BYTES`] reserves nothing,
    /// and `/ping` reads no body and never waits.
    pub body_buffer_bytes: usize,
}

impl Default for ServeConfig {
    fn default() -> ServeConfig {
        ServeConfig {
            max_rows: DEFAULT_MAX_ROWS,
            max_body_bytes: MAX_BODY_BYTES,
            max_concurrent_batches: std::thread::available_parallelism().map_or(2, |n| n.get()),
            body_timeout: Duration::from_secs(30),
            body_buffer_bytes: DEFAULT_BODY_BUFFER_BYTES,
        }
    }
}

/// The answer to `POST /invocations`, in TensorFlow Serving's style.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InvocationResponse {
    /// One per row, in the order sent.
    pub predictions: Vec<Scores>,
    /// The model's name.
    pub model: String,
    /// The model's version.
    pub model_version: String,
    /// The features schema the rows were read as (`features-v1`).
    pub features_schema: String,
    /// With `?explain=true`: one per row, why its `churn_risk_14d` differs
    /// from its reference's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explanations: Option<Vec<Explanation>>,
}

/// Why a row's `churn_risk_14d` differs from its reference's (`?explain=true`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    /// Each feature's share of the head's margin change from the reference
    /// to the row, in contract order: they sum to `margin -
    /// reference_margin` (exact Shapley values of the two vectors for a tree
    /// model), not to the change of the calibrated `churn_risk_14d`.
    pub contributions: Vec<f64>,
    /// `churn_risk_14d`'s margin for the row: the head's raw score (log-odds)
    /// before its link and calibration.
    pub margin: f64,
    /// The same for the reference.
    pub reference_margin: f64,
    /// The three largest positive shares, as predictions carry them, with
    /// the reference's own `churn_risk_14d` (`churn_risk_14d_then`) and
    /// whether it is a signup record; no `since`: the server is not told
    /// when the reference was.
    pub reasons: Reasons,
}

/// The answer to `GET /ping`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PingResponse {
    /// Always `"ok"`: the model is loaded before the server listens.
    pub status: String,
    /// The model's name.
    pub model: String,
    /// The model's version.
    pub model_version: String,
}

#[derive(Debug)]
struct AppState {
    model: EmbeddedModel,
    config: ServeConfig,
    /// One permit per batch being parsed and scored.
    permits: Arc<Semaphore>,
    /// Explanations (`?explain=true`) take one of these first: one fewer
    /// than `permits` (at least one), so a slot stays for plain scoring. Two
    /// 10,000-row explanations of a network (seconds each) made a 3-row
    /// request wait 30–43 s.
    explain_permits: Arc<Semaphore>,
    /// One permit per byte of body held (read, parsed or scored).
    body_buffer: Arc<Semaphore>,
}

/// The routes of `pulse serve` over a loaded model: `GET /ping`,
/// `POST /invocations`, and JSON errors for everything else.
///
/// `POST /endpoints/{name}/invocations` answers like `/invocations`: it is
/// the path of SageMaker Runtime's InvokeEndpoint, so an AWS SDK client whose
/// endpoint URL is this server (`AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME`) calls
/// the model as it would call the deployed endpoint (local runs and tests of
/// `pulse run --endpoint-name`). The name is not checked.
pub fn router(model: EmbeddedModel, config: ServeConfig) -> Router {
    let permits = Arc::new(Semaphore::new(config.max_concurrent_batches.max(1)));
    let body_buffer = Arc::new(Semaphore::new(config.body_buffer_bytes.max(config.max_body_bytes)));
    let explain_permits = Arc::new(Semaphore::new(config.max_concurrent_batches.saturating_sub(1).max(1)));
    let state = Arc::new(AppState { model, config, permits, explain_permits, body_buffer });
    Router::new()
        .route("/ping", get(ping).fallback(|method: Method| wrong_method(method, "GET, HEAD")))
        .route("/invocations", post(invocations).fallback(|method: Method| wrong_method(method, "POST")))
        .route(
            "/endpoints/{name}/invocations",
            post(invocations).fallback(|method: Method| wrong_method(method, "POST")),
        )
        .fallback(|uri: Uri| async move { ServeError::NotFound { path: uri.path().to_owned() } })
        .with_state(state)
}

async fn wrong_method(method: Method, allow: &'static str) -> ServeError {
    ServeError::MethodNotAllowed { method: method.to_string(), allow }
}

async fn ping(State(state): State<Arc<AppState>>) -> Json<PingResponse> {
    Json(PingResponse {
        status: "ok".into(),
        model: state.model.model_name().to_owned(),
        model_version: state.model.model_version().to_owned(),
    })
}

async fn invocations(State(state): State<Arc<AppState>>, request: axum::extract::Request) -> Response {
    let (parts, body) = request.into_parts();
    let explain = match wants_explanations(parts.uri.query()) {
        Ok(explain) => explain,
        Err(e) => return e.into_response(),
    };
    match invoke(state, &parts.headers, &parts.extensions, body, explain).await {
        Ok(answer) => Json(answer).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `?explain=true` (or `1`); `false`/`0` or absent: no explanations.
fn wants_explanations(query: Option<&str>) -> Result<bool, ServeError> {
    let mut explain = false;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, "true"));
        if key == "explain" {
            explain = match value {
                "true" | "1" => true,
                "false" | "0" => false,
                other => {
                    return Err(ServeError::Json(format!("explain={other}: expected explain=true or explain=false")))
                }
            };
        }
    }
    Ok(explain)
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).map(|v| v.to_str().unwrap_or("<not visible ASCII>"))
}

async fn invoke(
    state: Arc<AppState>,
    headers: &HeaderMap,
    extensions: &Extensions,
    body: Body,
    explain: bool,
) -> Result<InvocationResponse, ServeError> {
    let format = Format::from_content_type(header_str(headers, header::CONTENT_TYPE))?;
    check_accept(header_str(headers, header::ACCEPT))?;
    // Every Content-Encoding header and every coding in it: `identity` (or
    // nothing) is no encoding; any other means a body pulse cannot read.
    for value in headers.get_all(header::CONTENT_ENCODING) {
        let text = value.to_str().unwrap_or("<not visible ASCII>");
        let encoded = text.split(',').map(str::trim).any(|c| !c.is_empty() && !c.eq_ignore_ascii_case("identity"));
        if encoded {
            return Err(ServeError::UnsupportedContentEncoding { encoding: text.to_owned() });
        }
    }
    let limit = state.config.max_body_bytes;
    let declared = declared_length(headers);
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ServeError::BodyTooLarge { limit });
    }
    // Room in the body buffer is reserved before a byte is read, so slow
    // bodies wait in their sockets, not in memory. A stopping server cuts
    // the wait and the read short: a body still arriving then is a client
    // that is slow or gone.
    let reserve = match declared.map_or(limit, |n| n as usize) {
        n if n <= SMALL_BODY_BYTES => 0,
        n => n,
    };
    let deadline = tokio::time::Instant::now() + state.config.body_timeout;
    let stopping = async {
        match extensions.get::<Draining>() {
            Some(draining) => draining.clone().started().await,
            None => std::future::pending().await,
        }
    };
    let mut stopping = std::pin::pin!(stopping);
    let room = Arc::clone(&state.body_buffer).acquire_many_owned(u32::try_from(reserve).unwrap_or(u32::MAX));
    let held = tokio::select! {
        held = tokio::time::timeout_at(deadline, room) => held
            .map_err(|_| ServeError::Busy { waited: state.config.body_timeout })?
            .map_err(|e| ServeError::Scoring(e.to_string()))?,
        () = &mut stopping => return Err(ServeError::ShuttingDown),
    };
    let body = tokio::select! {
        body = tokio::time::timeout_at(deadline, read_body(declared, body, limit)) => body
            .map_err(|_| ServeError::BodyTimeout { timeout: state.config.body_timeout })??,
        () = &mut stopping => return Err(ServeError::ShuttingDown),
    };
    // An explanation waits for its own slot before it takes a batch's, so a
    // queue of them never holds the slots plain scoring needs.
    let explaining = match explain {
        true => Some(
            Arc::clone(&state.explain_permits).acquire_owned().await.map_err(|e| ServeError::Scoring(e.to_string()))?,
        ),
        false => None,
    };
    let permit = Arc::clone(&state.permits).acquire_owned().await.map_err(|e| ServeError::Scoring(e.to_string()))?;
    // Parsing up to 6 MB and a forward pass over up to 10,000 rows are
    // milliseconds of pure CPU: on an async worker they would stall every
    // other connection, /ping included (SageMaker gives it 2 s). So they run
    // on the blocking pool, at most `max_concurrent_batches` at once.
    let task_state = Arc::clone(&state);
    let scored = tokio::task::spawn_blocking(move || {
        let _permits = (permit, explaining);
        let _held = held;
        let max_rows = task_state.config.max_rows;
        let (rows, explanations) = if explain {
            let (rows, references) = format.parse_explained(&body, max_rows)?;
            let explained = explanations(&task_state.model, &rows, &references)?;
            (rows, Some(explained))
        } else {
            (format.parse(&body, max_rows)?, None)
        };
        let scored = task_state.model.score_now(&rows).map_err(|e| ServeError::Scoring(e.to_string()))?;
        Ok::<_, ServeError>((scored, explanations))
    })
    .await
    .map_err(|e| ServeError::Scoring(format!("the scoring task stopped: {e}")))??;
    let (scored, explanations) = scored;
    Ok(InvocationResponse {
        explanations,
        predictions: scored,
        model: state.model.model_name().to_owned(),
        model_version: state.model.model_version().to_owned(),
        features_schema: SCHEMA.to_owned(),
    })
}

fn explanations(
    model: &EmbeddedModel,
    rows: &[Features],
    references: &[Features],
) -> Result<Vec<Explanation>, ServeError> {
    let cannot = |e: pulse_model::ModelError| {
        ServeError::Scoring(format!("the {} model cannot explain this row: {e}", model.model_name()))
    };
    // The references' own risks, for the reasons' baseline ("risk then").
    let then = model.score_now(references).map_err(|e| ServeError::Scoring(e.to_string()))?;
    let head = pulse_model::CHURN_RISK_14D;
    let mut contributions = [0.0; FEATURE_COUNT];
    rows.iter()
        .zip(references)
        .zip(then)
        .map(|((row, reference), then)| {
            let attribution = model.attribute(head, row, reference, &mut contributions).map_err(cannot)?;
            Ok(Explanation {
                contributions: contributions.to_vec(),
                margin: attribution.margin_x,
                reference_margin: attribution.margin_ref,
                reasons: top_raising(&contributions, row, reference, None, Some(then.churn_risk_14d as f32)),
            })
        })
        .collect()
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    header_str(headers, header::CONTENT_LENGTH).and_then(|v| v.trim().parse::<u64>().ok())
}

/// Reads the whole body, refusing it as soon as it passes `limit` bytes
/// (a `Content-Length` over it is refused before the body is read).
async fn read_body(declared: Option<u64>, body: Body, limit: usize) -> Result<Vec<u8>, ServeError> {
    let capacity = declared.map_or(0, |n| n as usize);
    let mut out = Vec::with_capacity(capacity);
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ServeError::UnreadableBody(e.to_string()))?;
        if out.len() + chunk.len() > limit {
            return Err(ServeError::BodyTooLarge { limit });
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}
