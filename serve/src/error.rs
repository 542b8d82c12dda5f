//! Every way a request to `pulse serve` can fail, with its HTTP status and a
//! reason that names the row and column at fault.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use pulse_schemas::{FEATURE_COUNT, FEATURE_NAMES, SCHEMA};

/// Why a request was refused (4xx: the caller must change it; retrying the
/// same bytes will fail the same way) or failed (5xx: pulse's fault).
///
/// Rows and columns are counted from 1: row 1 is the first CSV line or
/// `instances[0]`, column 1 is the first feature of `features-v1`.
#[derive(Clone, Debug, PartialEq)]
pub enum ServeError {
    /// 415: no `Content-Type`, or one pulse does not read.
    UnsupportedContentType {
        /// The header as sent, if there was one.
        found: Option<String>,
    },
    /// 415: a `Content-Encoding` other than `identity`: a compressed body
    /// read as it came was refused as rows of binary, row by row.
    UnsupportedContentEncoding {
        /// The header as sent.
        encoding: String,
    },
    /// 406: the caller's `Accept` rules out `application/json`, the only answer pulse gives.
    NotAcceptable {
        /// The header as sent.
        accept: String,
    },
    /// 413: the body is over the payload limit.
    BodyTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// 413: more rows than one request may carry.
    TooManyRows {
        /// Rows sent.
        rows: usize,
        /// Rows allowed.
        max: usize,
    },
    /// 400: the body could not be read off the connection.
    UnreadableBody(String),
    /// 408: the body did not arrive within the body timeout.
    BodyTimeout {
        /// The timeout.
        timeout: std::time::Duration,
    },
    /// 503: the body buffer stayed full for the whole body timeout (other
    /// requests' bodies filled it); the same request may succeed later.
    Busy {
        /// How long the request waited.
        waited: std::time::Duration,
    },
    /// 503: the server is stopping and the body had not arrived yet.
    ShuttingDown,
    /// 400: the body is empty (or only whitespace).
    EmptyBody,
    /// 400: a CSV body is not UTF-8 text.
    NotUtf8 {
        /// The row holding the first invalid byte.
        row: usize,
    },
    /// 400: a blank line between rows.
    EmptyRow {
        /// The row.
        row: usize,
    },
    /// 400: a row without exactly 46 values.
    Width {
        /// The row.
        row: usize,
        /// Values found.
        got: usize,
    },
    /// 400: a value that is not a number.
    NotANumber {
        /// The row.
        row: usize,
        /// The column.
        column: usize,
        /// The value as sent (shortened when long).
        text: String,
    },
    /// 400: a number that is NaN or infinite (or overflows f64).
    NotFinite {
        /// The row.
        row: usize,
        /// The column.
        column: usize,
        /// The value as sent (shortened when long).
        text: String,
    },
    /// 400: a JSON body that does not parse or is not `{"instances": [...]}`.
    Json(String),
    /// 405: a path pulse serves, with another method.
    MethodNotAllowed {
        /// The method used.
        method: String,
        /// The methods the path takes (the `Allow` header).
        allow: &'static str,
    },
    /// 404: a path pulse does not serve.
    NotFound {
        /// The path asked for.
        path: String,
    },
    /// 500: the model failed on valid rows (a bug or a broken artifact).
    Scoring(String),
}

/// The JSON every error answers with: `{"error": "<reason>"}`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ErrorBody {
    /// The reason, naming the row and column where there is one.
    pub error: String,
}

impl ServeError {
    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            ServeError::UnsupportedContentType { .. } | ServeError::UnsupportedContentEncoding { .. } => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            ServeError::NotAcceptable { .. } => StatusCode::NOT_ACCEPTABLE,
            ServeError::BodyTooLarge { .. } | ServeError::TooManyRows { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ServeError::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            ServeError::Busy { .. } | ServeError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            ServeError::UnreadableBody(_)
            | ServeError::EmptyBody
            | ServeError::NotUtf8 { .. }
            | ServeError::EmptyRow { .. }
            | ServeError::Width { .. }
            | ServeError::NotANumber { .. }
            | ServeError::NotFinite { .. }
            | ServeError::Json(_) => StatusCode::BAD_REQUEST,
            ServeError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ServeError::NotFound { .. } => StatusCode::NOT_FOUND,
            ServeError::Scoring(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// `row 3, column 2 (sessions_14d)`.
fn at(row: usize, column: usize) -> String {
    let name = FEATURE_NAMES.get(column.wrapping_sub(1)).copied().unwrap_or("?");
    format!("row {row}, column {column} ({name})")
}

impl std::fmt::Display for ServeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServeError::UnsupportedContentType { found: None } => write!(
                f,
                "no Content-Type: send text/csv (one row of {FEATURE_COUNT} numbers per line) \
                 or application/json ({{\"instances\": [[{FEATURE_COUNT} numbers], ...]}})"
            ),
            ServeError::UnsupportedContentType { found: Some(t) } => {
                write!(f, "unsupported Content-Type {t:?}: send text/csv or application/json")
            }
            ServeError::UnsupportedContentEncoding { encoding } => {
                write!(f, "unsupported Content-Encoding {encoding:?}: send the body uncompressed")
            }
            ServeError::NotAcceptable { accept } => {
                write!(f, "cannot answer in {accept:?}: pulse answers application/json")
            }
            ServeError::BodyTooLarge { limit } => {
                write!(f, "body over {limit} bytes (the endpoint's payload limit): send fewer rows per request")
            }
            ServeError::TooManyRows { rows, max } => {
                write!(f, "{rows} rows, at most {max} per request: split the batch")
            }
            ServeError::UnreadableBody(e) => write!(f, "cannot read the request body: {e}"),
            ServeError::BodyTimeout { timeout } => {
                write!(f, "the body did not arrive within {} s of the headers", timeout.as_secs_f64())
            }
            ServeError::Busy { waited } => write!(
                f,
                "server busy: no room to read the body within {} s (other requests' bodies fill the buffer); retry",
                waited.as_secs_f64()
            ),
            ServeError::ShuttingDown => write!(f, "the server is shutting down: retry on another instance"),
            ServeError::EmptyBody => write!(f, "empty body: send at least one row of {FEATURE_COUNT} numbers"),
            ServeError::NotUtf8 { row } => write!(f, "row {row} is not UTF-8 text"),
            ServeError::EmptyRow { row } => {
                write!(f, "row {row} is empty: expected {FEATURE_COUNT} comma-separated numbers ({SCHEMA})")
            }
            ServeError::Width { row, got } => {
                write!(f, "row {row}: expected {FEATURE_COUNT} values ({SCHEMA}), got {got}")
            }
            ServeError::NotANumber { row, column, text } => {
                write!(f, "{}: not a number: {text:?}", at(*row, *column))?;
                if *row == 1 && FEATURE_NAMES.contains(&text.as_str()) {
                    write!(f, " (send no header line)")?;
                }
                Ok(())
            }
            ServeError::NotFinite { row, column, text } => {
                write!(f, "{}: not a finite number: {text:?}", at(*row, *column))
            }
            ServeError::Json(e) => write!(f, "{e}"),
            ServeError::MethodNotAllowed { method, allow } => {
                write!(f, "method {method} not allowed here: use {allow}")
            }
            ServeError::NotFound { path } => {
                write!(f, "no such path {path:?}: pulse serves GET /ping and POST /invocations")
            }
            ServeError::Scoring(e) => write!(f, "scoring failed: {e}"),
        }
    }
}

impl std::error::Error for ServeError {}

impl IntoResponse for ServeError {
    fn into_response(self) -> Response {
        let status = self.status();
        // What a client may do instead: the methods the path takes, or
        // (RFC 9110 §12.5.3, a 415 for a content coding) the codings the
        // server reads.
        let instead = match &self {
            ServeError::MethodNotAllowed { allow, .. } => Some((header::ALLOW, *allow)),
            ServeError::UnsupportedContentEncoding { .. } => Some((header::ACCEPT_ENCODING, "identity")),
            _ => None,
        };
        // A body refused as too large is left unread, and the server closes
        // the connection after the answer: saying so keeps a pooling client
        // from sending its next request into a closed socket (RFC 9112 §9.6).
        let closes = matches!(self, ServeError::BodyTooLarge { .. });
        let mut response = (status, Json(ErrorBody { error: self.to_string() })).into_response();
        if let Some((name, value)) = instead {
            response.headers_mut().insert(name, HeaderValue::from_static(value));
        }
        if closes {
            response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}
