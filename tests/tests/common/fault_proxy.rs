//! A fault-injecting HTTP proxy in front of the local AWS server (and of
//! `pulse serve` for SageMaker Runtime calls), driven by rules: per
//! operation, the calls a rule picks answer with a service error of the
//! operation's protocol instead of being forwarded, or are answered late. Point a client's
//! `AWS_ENDPOINT_URL` at [`FaultProxy::url`]: the real SDK clients make the
//! calls. An error is answered before the server saw the call, so what the
//! server holds is what the client's successful calls wrote; a slow call
//! reaches the server and its answer comes after the client gave up (use it
//! where a repeated call is harmless, as scoring).
//!
//! An operation is named as the services name it: the JSON protocols by
//! their `X-Amz-Target` (`DynamoDB_20120810.UpdateItem`,
//! `DynamoDBStreams_20120810.GetRecords`, `AmazonSQS.SendMessage`), the query
//! protocol by service and `Action` (`sns.Publish`), SageMaker Runtime as
//! `sagemaker.InvokeEndpoint`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// What a faulty call gets.
#[derive(Clone, Copy, Debug)]
pub enum Fault {
    /// An error answer, never forwarded.
    Error {
        /// The HTTP status.
        status: u16,
        /// The service's error code (`ThrottlingException`, ...).
        code: &'static str,
    },
    /// Forwarded, and the answer held this long first (past a client's
    /// timeout: the service did the work, the client never hears of it).
    Slow(std::time::Duration),
}

/// Which calls of an operation fault (counted from 1).
#[derive(Clone, Copy, Debug)]
pub enum When {
    /// The n-th, 2n-th, ... call.
    Every(u32),
    /// The first n calls.
    First(u32),
    /// Calls `from` to `to`, both included (a run of failures in a row).
    Calls(u32, u32),
}

/// The calls of `operation` that `when` picks answer `fault`.
#[derive(Clone, Copy, Debug)]
pub struct Rule {
    pub operation: &'static str,
    pub when: When,
    pub fault: Fault,
}

impl When {
    fn picks(self, call: u32) -> bool {
        match self {
            When::Every(n) => call.is_multiple_of(n),
            When::First(n) => call <= n,
            When::Calls(from, to) => (from..=to).contains(&call),
        }
    }
}

#[derive(Debug, Default)]
struct Counts {
    calls: HashMap<String, u32>,
    faults: HashMap<String, u32>,
}

#[derive(Clone)]
struct Shared {
    rules: Arc<Vec<Rule>>,
    counts: Arc<Mutex<Counts>>,
    aws: Uri,
    sagemaker: Option<Uri>,
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Body>,
}

/// The running proxy.
pub struct FaultProxy {
    addr: SocketAddr,
    counts: Arc<Mutex<Counts>>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// A proxy on 127.0.0.1 in front of `aws` (the local server's URL) and,
    /// for SageMaker Runtime calls, `sagemaker`.
    pub async fn start(aws: &str, sagemaker: Option<&str>, rules: Vec<Rule>) -> FaultProxy {
        let counts = Arc::new(Mutex::new(Counts::default()));
        let shared = Shared {
            rules: Arc::new(rules),
            counts: counts.clone(),
            aws: aws.parse().expect("the server's URL"),
            sagemaker: sagemaker.map(|s| s.parse().expect("the endpoint's URL")),
            client: Client::builder(TokioExecutor::new()).build_http(),
        };
        let app = axum::Router::new().fallback(handle).with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("the proxy serves");
        });
        FaultProxy { addr, counts, task }
    }

    /// Where to point clients.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Faults answered so far for `operation`.
    pub fn faults(&self, operation: &str) -> u32 {
        self.counts.lock().unwrap().faults.get(operation).copied().unwrap_or(0)
    }

    /// Every operation called so far, with its calls.
    pub fn seen(&self) -> Vec<(String, u32)> {
        let mut seen: Vec<_> = self.counts.lock().unwrap().calls.iter().map(|(k, v)| (k.clone(), *v)).collect();
        seen.sort();
        seen
    }

    /// Calls of `operation` so far (faulted or forwarded).
    pub fn calls(&self, operation: &str) -> u32 {
        self.counts.lock().unwrap().calls.get(operation).copied().unwrap_or(0)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The operation a request calls (see the module doc).
fn operation(request: &Request, body: &[u8]) -> String {
    if let Some(target) = request.headers().get("x-amz-target").and_then(|v| v.to_str().ok()) {
        return target.to_owned();
    }
    if request.uri().path().starts_with("/endpoints/") {
        return "sagemaker.InvokeEndpoint".to_owned();
    }
    // The query protocol: the signing scope names the service, the form the action.
    let service = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|auth| auth.split("Credential=").nth(1))
        .and_then(|cred| cred.split('/').nth(3))
        .unwrap_or("unknown")
        .to_owned();
    let action = std::str::from_utf8(body)
        .ok()
        .and_then(|form| form.split('&').find_map(|kv| kv.strip_prefix("Action=")))
        .unwrap_or("unknown");
    format!("{service}.{action}")
}

/// The error answer of `operation`'s protocol.
fn fault_response(operation: &str, status: u16, code: &str) -> Response<Body> {
    let http_status = StatusCode::from_u16(status).unwrap();
    let message = "injected by the fault proxy";
    let (content_type, body) = if operation.contains('_') || operation.starts_with("AmazonSQS.") {
        ("application/x-amz-json-1.0", format!(r#"{{"__type":"{}","message":"{message}"}}"#, code))
    } else if operation.starts_with("sagemaker.") {
        ("application/json", format!(r#"{{"message":"{message}"}}"#))
    } else {
        let kind = if status >= 500 { "Receiver" } else { "Sender" };
        (
            "text/xml",
            format!(
                "<ErrorResponse><Error><Type>{kind}</Type><Code>{}</Code><Message>{message}</Message></Error>\
                 <RequestId>fault-proxy</RequestId></ErrorResponse>",
                code
            ),
        )
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = http_status;
    response.headers_mut().insert("content-type", HeaderValue::from_static(content_type));
    response.headers_mut().insert("x-amzn-errortype", HeaderValue::from_str(code).unwrap());
    response.headers_mut().insert("x-amzn-requestid", HeaderValue::from_static("fault-proxy"));
    response
}

async fn handle(State(shared): State<Shared>, request: Request) -> Response<Body> {
    let (parts, body) = request.into_parts();
    let bytes = to_bytes(body, 64 << 20).await.expect("a request body");
    let probe = Request::from_parts(parts, Body::empty());
    let op = operation(&probe, &bytes);
    let (mut parts, _) = probe.into_parts();
    let fault = {
        let mut counts = shared.counts.lock().unwrap();
        let n = {
            let calls = counts.calls.entry(op.clone()).or_default();
            *calls += 1;
            *calls
        };
        let fault = shared.rules.iter().find(|r| r.operation == op && r.when.picks(n)).map(|r| r.fault);
        if fault.is_some() {
            *counts.faults.entry(op.clone()).or_default() += 1;
        }
        fault
    };
    match fault {
        Some(Fault::Error { status, code }) => return fault_response(&op, status, code),
        Some(Fault::Slow(delay)) => tokio::time::sleep(delay).await,
        None => {}
    }
    let upstream = match (&shared.sagemaker, op.starts_with("sagemaker.")) {
        (Some(sagemaker), true) => sagemaker,
        _ => &shared.aws,
    };
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    parts.uri = format!("{}{}", upstream.to_string().trim_end_matches('/'), path).parse().unwrap();
    let forwarded = Request::from_parts(parts, Body::from(bytes));
    match shared.client.request(forwarded).await {
        Ok(response) => response.map(Body::new),
        Err(e) => {
            let mut response = Response::new(Body::from(format!("proxy: {e}")));
            *response.status_mut() = StatusCode::BAD_GATEWAY;
            response
        }
    }
}
