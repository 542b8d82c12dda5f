//! `pulse serve`: the model behind SageMaker's inference-container contract
//! ("use your own inference code"), so pulse can be deployed as the endpoint
//! today's system calls.
//!
//! # Routes
//!
//! * `GET /ping` → `200 {"status": "ok", "model": "<name>", "model_version": "<v>"}`.
//!   The model is loaded before the server listens, so a server that
//!   answers at all is ready.
//! * `POST /invocations` scores rows of `features-v1` (46 values, in
//!   [`pulse_schemas::FEATURE_NAMES`] order), one prediction per row:
//!
//!   | `Content-Type` | body |
//!   | --- | --- |
//!   | `text/csv` | one row per line, 46 comma-separated numbers, no header (what today's endpoint is sent). `\n` or `\r\n`; trailing newlines, a UTF-8 BOM and blanks around values are ignored; a blank line between rows is an error. |
//!   | `application/json` | `{"instances": [[46 numbers], ...]}` or `{"instances": [{"features": [46 numbers]}, ...]}` (the two forms may be mixed; other keys are ignored). Numbers must be JSON numbers, not strings. |
//!
//!   Parameters such as `; charset=utf-8` are ignored. The answer is always
//!   `application/json` (an `Accept` that rules it out gets 406), in
//!   TensorFlow Serving's style:
//!
//!   ```json
//!   {"predictions": [{"first_session_success": 0.81, "session_velocity": 2.4,
//!                     "churn_risk_14d": 0.07, "churn_risk_30d": 0.12, "health_score": 88.1}],
//!    "model": "pulse-gbt", "model_version": "2", "features_schema": "features-v1"}
//!   ```
//!
//!   `predictions[i]` belongs to row `i + 1`; the numbers are exactly what
//!   [`pulse_model::EmbeddedModel::score_now`] gives for the same rows (the
//!   whole request is scored as one batch). See [`InvocationResponse`].
//! * `POST /invocations?explain=true` also says why: a JSON body with
//!   `"references"` beside `"instances"` (one row per instance, or one for
//!   all: the same customer's vector about 14 days earlier, as the pipeline
//!   compares with) gets `"explanations"`, one per row: `contributions`, each
//!   feature's share of the change of `churn_risk_14d`'s margin (log-odds,
//!   before calibration) from the reference to the row (they sum to
//!   `margin - reference_margin`, both returned; exact Shapley values of
//!   the two vectors for a tree model), and `reasons`, the three largest
//!   positive shares with both values and a sentence, as predictions carry
//!   them, with the reference's own risk (`churn_risk_14d_then`) and no
//!   `since` (the server is not told when the reference was). Without
//!   references (or with CSV) the answer is 400 and says what
//!   to send: a score's reasons need something it moved from.
//!
//! # Errors
//!
//! A request pulse refuses gets a 4xx and `{"error": "<reason>"}`
//! ([`ErrorBody`]); the reason names the row and column, counted from 1
//! (row 1 = first CSV line = `instances[0]`), and the feature:
//!
//! | status | when | example reason |
//! | --- | --- | --- |
//! | 400 | a row without 46 values | `row 2: expected 46 values (features-v1), got 45` |
//! | 400 | a value that is not a number | `row 3, column 5 (…): not a number: "abc"` |
//! | 400 | NaN, ±inf, or beyond f64 | `row 1, column 46 (…): not a finite number: "NaN"` |
//! | 400 | empty body, `"instances": []`, a blank line, not UTF-8, bad JSON | `empty body: send at least one row of 46 numbers` |
//! | 404 | another path | |
//! | 405 | another method (with `Allow`) | `method GET not allowed here: use POST` |
//! | 406 | `Accept` without JSON | |
//! | 408 | a body that did not arrive within the body timeout (30 s) | `the body did not arrive within 30 s of the headers` |
//! | 413 | a body over 6 MB (6 × 2^20 bytes, SageMaker's payload limit) | `body over 6291456 bytes …` |
//! | 413 | more rows than `--max-rows` (10,000) | `10001 rows, at most 10000 per request: split the batch` |
//! | 415 | no `Content-Type`, or another one | `unsupported Content-Type "application/x-npy": …` |
//! | 415 | a `Content-Encoding` other than `identity` (with `Accept-Encoding: identity`) | `unsupported Content-Encoding "gzip": send the body uncompressed` |
//! | 503 | no room in the body buffer within the body timeout, or the server is stopping | `server busy: …`, `the server is shutting down: …` |
//!
//! Only a model failing on valid rows answers 500. See [`ServeError`].
//!
//! What hyper refuses before a request reaches pulse answers without a body
//! (hyper writes those answers itself, and has no hook to change them): 400
//! for a malformed request line, header or `Content-Length` (negative,
//! overflowing, or two of them), 431 for a request line and headers over
//! [`MAX_HEADER_BYTES`] (64 KiB, a long URI included) or over 100 headers. A
//! body that cannot be read (bad chunked framing, a connection closed before
//! its `Content-Length`) answers 400 with
//! `{"error": "cannot read the request body: …"}`.
//!
//! # Limits
//!
//! A slow or abandoned client holds a connection and what it has sent; these
//! bound both, so that many of them (the campaign of issue #13: 200 clients
//! each sending 6 MB − 1 byte of a body and stopping) neither exhaust the
//! memory nor delay `/ping`:
//!
//! | limit | default | `pulse serve` flag (env) | past it |
//! | --- | --- | --- | --- |
//! | open connections | 256 | `--max-connections` (`PULSE_SERVE_MAX_CONNECTIONS`) | new connections wait in the kernel's accept queue |
//! | request line and headers | 10 s | `--header-timeout-s` (`PULSE_SERVE_HEADER_TIMEOUT_S`) | the connection is closed, no answer |
//! | body, from the end of the headers | 30 s | `--body-timeout-s` (`PULSE_SERVE_BODY_TIMEOUT_S`) | 408 (503 if it was still waiting for room) |
//! | bodies held at once | 128 MiB | `--body-buffer-mib` (`PULSE_SERVE_BODY_BUFFER_MIB`) | a body waits, unread, in its socket |
//! | stop, from SIGTERM | 20 s | `--shutdown-timeout-s` | open connections are dropped |
//!
//! * **The connection cap** queues rather than refuses: SageMaker's front
//!   end keeps its own connections to the container and retries little, so
//!   a connection refused or reset in a burst becomes an error for a caller,
//!   while one that waits is served once a slot frees; slots free within the
//!   header and body timeouts, and the kernel's queue (backlog 1024) is
//!   itself bounded. The header timeout also closes keep-alive connections
//!   idle for that long (hyper applies it from the moment it waits for a
//!   request), which HTTP clients, SageMaker's included, reconnect from.
//! * **The body buffer** is reserved before a body is read: a request
//!   reserves its `Content-Length` (without one, the 6-MB maximum) and holds
//!   it until it is scored. While the buffer is full a body waits in its
//!   socket, where the kernel's flow control stops the client. Bodies of at
//!   most [`SMALL_BODY_BYTES`] (64 KiB) reserve nothing: the connection cap
//!   bounds them (16 MiB), and large slow bodies cannot starve small
//!   requests. `/ping` reads no body and never waits.
//! * **A stop** (SIGTERM) stops accepting, closes idle connections, answers
//!   503 to requests still waiting for their body, lets requests being
//!   scored finish, and drops what is still open at the deadline (a request
//!   head still arriving is closed by the header timeout).
//!
//! Memory, then, is about 128 MiB of bodies, 64 KiB per connection of
//! hyper's read buffer (16 MiB), the rows being scored, and the model.
//!
//! # Running it
//!
//! [`router`] builds the routes over an [`pulse_model::EmbeddedModel`];
//! [`serve`] serves them with the limits above until a stop signal. Parsing and scoring are CPU-bound, so each
//! request runs them on tokio's blocking pool, at most
//! [`ServeConfig::max_concurrent_batches`] at once: `/ping` stays on the
//! async workers and keeps answering while large batches score.
//! Explanations (`?explain=true`, far costlier per row) take at most one
//! fewer of those slots (at least one), so with two or more one always
//! stays for scoring.
//!
//! The `pulse serve` command listens on 127.0.0.1:8080 by default. In a
//! container it must listen on `0.0.0.0`; SageMaker starts an image as
//! `<image> serve`, so set `ENV PULSE_SERVE_BIND=0.0.0.0` (and
//! `SAGEMAKER_MODEL_DIR=/opt/ml/model`: the artifact SageMaker unpacks there
//! when the endpoint has model data, the embedded model when the directory
//! is empty; `PULSE_MODEL_DIR` insists on a model there) in the image
//! rather than relying on flags, as `deploy/serve/Dockerfile` does.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use pulse_serve::{router, serve, ServeConfig, ServerLimits, Stopped};
//! let model = pulse_model::EmbeddedModel::new(&pulse_model::embedded()?)?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! let stop = async {
//!     let _ = tokio::signal::ctrl_c().await;
//! };
//! let stopped = serve(listener, router(model, ServeConfig::default()), ServerLimits::default(), stop).await;
//! assert_eq!(stopped, Stopped::Drained);
//! # Ok(()) }
//! ```

#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

mod app;
mod error;
mod request;
mod server;

pub use app::{
    router, Explanation, InvocationResponse, PingResponse, ServeConfig, DEFAULT_BODY_BUFFER_BYTES, SMALL_BODY_BYTES,
};
pub use error::{ErrorBody, ServeError};
pub use request::{check_accept, Format, DEFAULT_MAX_ROWS, MAX_BODY_BYTES};
pub use server::{serve, Draining, ServerLimits, Stopped, DEFAULT_MAX_CONNECTIONS, MAX_HEADER_BYTES};
