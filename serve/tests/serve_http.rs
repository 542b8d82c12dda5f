//! `pulse serve` over HTTP: the routes called in process (`oneshot`), and one
//! real server on an ephemeral 127.0.0.1 port.

use axum::body::{to_bytes, Body};
use axum::http::{header, Request, StatusCode};
use axum::Router;
use pulse_model::{EmbeddedModel, Scorer};
use pulse_schemas::{Features, FEATURE_COUNT};
use pulse_serve::{
    router, serve, ErrorBody, InvocationResponse, PingResponse, ServeConfig, ServerLimits, Stopped, MAX_BODY_BYTES,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

fn model() -> EmbeddedModel {
    EmbeddedModel::new(&pulse_model::embedded().unwrap()).unwrap()
}

fn app() -> Router {
    router(model(), ServeConfig { max_rows: 5, ..ServeConfig::default() })
}

/// Varied, realistic-looking rows (counts, minutes, ratios).
fn rows(n: usize) -> Vec<Features> {
    (0..n)
        .map(|k| {
            let mut r = [0.0; FEATURE_COUNT];
            for (i, x) in r.iter_mut().enumerate() {
                *x = ((k * 7 + i * 3) % 11) as f64 * 0.75 + (i % 4) as f64 * 0.1;
            }
            r
        })
        .collect()
}

fn csv(rows: &[Features], newline: &str) -> String {
    let lines: Vec<String> = rows.iter().map(|r| r.iter().map(f64::to_string).collect::<Vec<_>>().join(",")).collect();
    lines.join(newline) + newline
}

async fn call(
    app: Router,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> (StatusCode, Vec<u8>) {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(ct) = content_type {
        request = request.header(header::CONTENT_TYPE, ct);
    }
    let response = app.oneshot(request.body(Body::from(body)).unwrap()).await.unwrap();
    let status = response.status();
    if status != StatusCode::OK {
        let ct = response.headers().get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(ct.as_deref(), Some("application/json"), "errors answer JSON");
    }
    (status, to_bytes(response.into_body(), usize::MAX).await.unwrap().to_vec())
}

async fn error(
    app: Router,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> (StatusCode, String) {
    let (status, body) = call(app, method, path, content_type, body).await;
    let parsed: ErrorBody = serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{e}: {body:?}"));
    (status, parsed.error)
}

/// The predictions exactly as the model gives them for the same rows,
/// compared as the JSON text both serialise to.
fn assert_same_scores(answer: &[u8], rows: &[Features]) {
    let expected = model().score_now(rows).unwrap();
    let got: serde_json::Value = serde_json::from_slice(answer).unwrap();
    let want: serde_json::Value = serde_json::from_str(&serde_json::to_string(&expected).unwrap()).unwrap();
    assert_eq!(got["predictions"], want);
    let parsed: InvocationResponse = serde_json::from_slice(answer).unwrap();
    assert_eq!(parsed.predictions.len(), rows.len());
    assert_eq!((parsed.model.as_str(), parsed.model_version.as_str()), (model().model_name(), model().model_version()));
    assert_eq!(parsed.features_schema, "features-v1");
}

#[tokio::test]
async fn serve_ping_answers_with_the_model() {
    let (status, body) = call(app(), "GET", "/ping", None, vec![]).await;
    assert_eq!(status, StatusCode::OK);
    let ping: PingResponse = serde_json::from_slice(&body).unwrap();
    assert_eq!(ping.status, "ok");
    assert_eq!(ping.model_version, model().model_version());
}

#[tokio::test]
async fn serve_csv_single_and_multi_row_score_exactly_as_score_now() {
    let one = rows(1);
    let (status, body) = call(app(), "POST", "/invocations", Some("text/csv"), csv(&one, "\n").into_bytes()).await;
    assert_eq!(status, StatusCode::OK);
    assert_same_scores(&body, &one);

    let five = rows(5);
    for newline in ["\n", "\r\n"] {
        let (status, body) =
            call(app(), "POST", "/invocations", Some("text/csv; charset=utf-8"), csv(&five, newline).into_bytes())
                .await;
        assert_eq!(status, StatusCode::OK);
        assert_same_scores(&body, &five);
    }
}

#[tokio::test]
async fn serve_answers_on_the_sagemaker_runtime_path_too() {
    let five = rows(5);
    let path = "/endpoints/churn-endpoint/invocations";
    let (status, body) = call(app(), "POST", path, Some("text/csv"), csv(&five, "\n").into_bytes()).await;
    assert_eq!(status, StatusCode::OK);
    assert_same_scores(&body, &five);
    let (status, _) = error(app(), "GET", path, None, vec![]).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn serve_json_instances_as_arrays_and_objects() {
    let three = rows(3);
    let arrays = serde_json::json!({ "instances": three.iter().map(|r| r.to_vec()).collect::<Vec<_>>() });
    let (status, body) =
        call(app(), "POST", "/invocations", Some("application/json"), arrays.to_string().into_bytes()).await;
    assert_eq!(status, StatusCode::OK);
    assert_same_scores(&body, &three);

    let objects: Vec<serde_json::Value> = three.iter().map(|r| serde_json::json!({"features": r.to_vec()})).collect();
    let objects = serde_json::json!({ "instances": objects });
    let (status, body) =
        call(app(), "POST", "/invocations", Some("application/json"), objects.to_string().into_bytes()).await;
    assert_eq!(status, StatusCode::OK);
    assert_same_scores(&body, &three);
}

#[tokio::test]
async fn serve_bad_rows_are_400_naming_row_and_column() {
    let mut body = csv(&rows(3), "\n");
    // Row 2 loses its last value.
    let lines: Vec<&str> = body.lines().collect();
    let short = lines[1].rsplit_once(',').unwrap().0.to_owned();
    body = format!("{}\n{}\n{}\n", lines[0], short, lines[2]);
    let (status, reason) = error(app(), "POST", "/invocations", Some("text/csv"), body.into_bytes()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(reason, "row 2: expected 46 values (features-v1), got 45");

    for (value, words) in
        [("abc", "not a number: \"abc\""), ("NaN", "not a finite number"), ("inf", "not a finite number")]
    {
        let mut cells: Vec<String> = rows(2)[1].iter().map(f64::to_string).collect();
        cells[6] = value.into();
        let body = format!("{}{}\n", csv(&rows(1), "\n"), cells.join(","));
        let (status, reason) = error(app(), "POST", "/invocations", Some("text/csv"), body.into_bytes()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(reason.starts_with("row 2, column 7 (") && reason.contains(words), "{reason}");
    }

    let mut instance: Vec<serde_json::Value> = rows(1)[0].iter().map(|&x| x.into()).collect();
    instance[0] = "1.5".into();
    let body = serde_json::json!({ "instances": [rows(1)[0].to_vec(), instance] }).to_string();
    let (status, reason) = error(app(), "POST", "/invocations", Some("application/json"), body.into_bytes()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(reason.starts_with("row 2, column 1 (sessions_7d): not a number"), "{reason}");

    let body = serde_json::json!({ "instances": [[1.0, 2.0]] }).to_string();
    let (status, reason) = error(app(), "POST", "/invocations", Some("application/json"), body.into_bytes()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(reason, "row 1: expected 46 values (features-v1), got 2");
}

#[tokio::test]
async fn serve_empty_bodies_are_400() {
    for (ct, body) in [("text/csv", ""), ("text/csv", "\r\n"), ("application/json", "")] {
        let (status, reason) = error(app(), "POST", "/invocations", Some(ct), body.into()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(reason.starts_with("empty body"), "{reason}");
    }
    let (status, reason) =
        error(app(), "POST", "/invocations", Some("application/json"), br#"{"instances": []}"#.to_vec()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(reason.contains("\"instances\" is empty"), "{reason}");
}

#[tokio::test]
async fn serve_oversized_requests_are_413() {
    let (status, reason) =
        error(app(), "POST", "/invocations", Some("text/csv"), csv(&rows(6), "\n").into_bytes()).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(reason, "6 rows, at most 5 per request: split the batch");

    // One byte over 6 MB, streamed without a Content-Length: refused while reading.
    let big = vec![b'1'; MAX_BODY_BYTES + 1];
    let (status, reason) = error(app(), "POST", "/invocations", Some("text/csv"), big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(reason.starts_with("body over 6291456 bytes"), "{reason}");

    // Declared by Content-Length: refused before reading.
    let request = Request::post("/invocations")
        .header(header::CONTENT_TYPE, "text/csv")
        .header(header::CONTENT_LENGTH, MAX_BODY_BYTES + 1)
        .body(Body::from(vec![b'1'; MAX_BODY_BYTES + 1]))
        .unwrap();
    let response = app().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // The body is left unread and the connection closed: the answer says so.
    assert_eq!(response.headers().get(header::CONNECTION).map(|v| v.to_str().unwrap()), Some("close"));

    // Exactly 6 MB is read (and then refused for what it holds, not its size).
    let (status, _) = error(app(), "POST", "/invocations", Some("text/csv"), vec![b'1'; MAX_BODY_BYTES]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn serve_wrong_content_type_method_path_and_accept() {
    let body = csv(&rows(1), "\n").into_bytes();
    for ct in [Some("application/x-npy"), Some("text/plain"), None] {
        let (status, reason) = error(app(), "POST", "/invocations", ct, body.clone()).await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert!(reason.contains("text/csv") && reason.contains("application/json"), "{reason}");
    }

    // A compressed body is refused for its encoding, not read as rows of
    // binary; "identity" is no encoding.
    let cases = [
        (&["gzip"][..], StatusCode::UNSUPPORTED_MEDIA_TYPE),
        (&["identity"], StatusCode::OK),
        (&[""], StatusCode::OK),
        (&["identity, gzip"], StatusCode::UNSUPPORTED_MEDIA_TYPE),
        (&["identity", "gzip"], StatusCode::UNSUPPORTED_MEDIA_TYPE),
    ];
    for (encodings, want) in cases {
        let mut request = Request::post("/invocations").header(header::CONTENT_TYPE, "text/csv");
        for encoding in encodings {
            request = request.header(header::CONTENT_ENCODING, *encoding);
        }
        let request = request.body(Body::from(body.clone())).unwrap();
        let encoding = encodings.last().unwrap();
        let response = app().oneshot(request).await.unwrap();
        assert_eq!(response.status(), want, "{encoding}");
        if want != StatusCode::OK {
            assert_eq!(response.headers()[header::ACCEPT_ENCODING], "identity", "{encoding}: what the server takes");
            let bytes = to_bytes(response.into_body(), usize::MAX).await.unwrap();
            let text = String::from_utf8_lossy(&bytes);
            assert!(
                text.contains("Content-Encoding") && text.contains("gzip") && text.contains("uncompressed"),
                "{text}"
            );
        }
    }

    let response = app().oneshot(Request::get("/invocations").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers()[header::ALLOW], "POST");
    let (status, reason) = error(app(), "POST", "/ping", None, vec![]).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(reason, "method POST not allowed here: use GET, HEAD");

    let (status, _) = error(app(), "GET", "/predict", None, vec![]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let request = Request::post("/invocations")
        .header(header::CONTENT_TYPE, "text/csv")
        .header(header::ACCEPT, "text/csv")
        .body(Body::from(body))
        .unwrap();
    assert_eq!(app().oneshot(request).await.unwrap().status(), StatusCode::NOT_ACCEPTABLE);
}

/// Sends one HTTP/1.1 request over a fresh connection; returns status and body.
async fn http(addr: std::net::SocketAddr, request: String) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    let status = answer.split(' ').nth(1).unwrap().parse().unwrap();
    let body = answer.split_once("\r\n\r\n").unwrap().1.to_owned();
    (status, body)
}

#[tokio::test]
async fn serve_real_http_on_loopback_then_shuts_down() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server =
        tokio::spawn(serve(listener, router(model(), ServeConfig::default()), ServerLimits::default(), async {
            let _ = stopped.await;
        }));

    let (status, _) = http(addr, "GET /ping HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".into()).await;
    assert_eq!(status, 200);

    let two = rows(2);
    let body = csv(&two, "\r\n");
    let request = format!(
        "POST /invocations HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/csv\r\nAccept: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let (status, answer) = http(addr, request).await;
    assert_eq!(status, 200, "{answer}");
    assert_same_scores(answer.as_bytes(), &two);

    stop.send(()).unwrap();
    assert_eq!(server.await.unwrap(), Stopped::Drained);
}

#[tokio::test]
async fn serve_explains_on_request_against_the_references_sent() {
    let three = rows(3);
    // The reference: the first row with days since the last session moved back.
    let mut reference = three[0];
    reference[pulse_schemas::features::idx::DAYS_SINCE_LAST_SESSION] = 1.0;
    let mut x = three[0];
    x[pulse_schemas::features::idx::DAYS_SINCE_LAST_SESSION] = 19.0;
    let body = serde_json::json!({ "instances": [x.to_vec(), three[1].to_vec()], "references": [reference.to_vec(), three[1].to_vec()] });
    let (status, answer) =
        call(app(), "POST", "/invocations?explain=true", Some("application/json"), body.to_string().into_bytes()).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&answer));
    let parsed: InvocationResponse = serde_json::from_slice(&answer).unwrap();
    let explanations = parsed.explanations.expect("asked for");
    assert_eq!(explanations.len(), 2);
    // Only the feature that moved can carry the change, and the shares add up to it.
    let mut phi = [0.0; FEATURE_COUNT];
    let attribution = model().attribute(2, &x, &reference, &mut phi).unwrap();
    let moved = pulse_schemas::features::idx::DAYS_SINCE_LAST_SESSION;
    for (i, c) in explanations[0].contributions.iter().enumerate() {
        if i != moved {
            assert_eq!(*c, 0.0, "feature {i} did not move");
        }
    }
    let sum: f64 = explanations[0].contributions.iter().sum();
    assert!((sum - (attribution.margin_x - attribution.margin_ref)).abs() < 1e-9);
    // The two margins the shares sum the change of (before calibration),
    // the reference's own risk, and no made-up time: the server is not told
    // when the reference was ("since": 0 read as 1970).
    assert_eq!(
        (explanations[0].margin, explanations[0].reference_margin),
        (attribution.margin_x, attribution.margin_ref)
    );
    let risk_then = model().score_now(&[reference]).unwrap()[0].churn_risk_14d as f32;
    let answer_json: serde_json::Value = serde_json::from_slice(&answer).unwrap();
    let wire = &answer_json["explanations"][0]["reasons"];
    assert!(wire.get("since").is_none(), "{wire}");
    assert_eq!(wire["churn_risk_14d_then"].as_f64().map(|x| x as f32), Some(risk_then), "{wire}");
    assert_eq!(explanations[0].reasons.since(), None);
    assert!(explanations[1].contributions.iter().all(|c| *c == 0.0), "a row against itself moved nothing");
    assert!(explanations[1].reasons.is_empty());
    let reasons = explanations[0].reasons.as_slice();
    if sum > 0.0 {
        assert_eq!(reasons.len(), 1);
        assert_eq!(reasons[0].text(), "last session 19 days ago (was 24 hours ago)");
    } else {
        assert!(reasons.is_empty(), "a fall has no raising feature");
    }
    assert_same_scores(&answer, &[x, three[1]]);

    // Without references, or as CSV, the answer says what to send.
    let plain = serde_json::json!({ "instances": [x.to_vec()] });
    let (status, why) =
        error(app(), "POST", "/invocations?explain=true", Some("application/json"), plain.to_string().into_bytes())
            .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(why.contains("references"), "{why}");
    let (status, why) =
        error(app(), "POST", "/invocations?explain=true", Some("text/csv"), csv(&three, "\n").into_bytes()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(why.contains("application/json"), "{why}");
    let (status, why) = error(app(), "POST", "/invocations?explain=maybe", Some("text/csv"), vec![]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(why.contains("explain=maybe"), "{why}");
    // Not asked: no explanations key at all.
    let (_, answer) =
        call(app(), "POST", "/invocations", Some("application/json"), plain.to_string().into_bytes()).await;
    assert!(!String::from_utf8_lossy(&answer).contains("explanations"));
}
