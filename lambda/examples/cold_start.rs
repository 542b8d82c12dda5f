//! The function's cold start, measured as Lambda sees it: from spawning the
//! `bootstrap` process to its first answered invocation, through a minimal
//! Lambda Runtime API served here on 127.0.0.1 (`GET .../invocation/next`,
//! `POST .../invocation/{id}/response`), with the embedded model loaded and
//! the scoring outputs built (`SCORE` on) and no hydration (an empty batch:
//! what is timed is the process, the settings, the SDK clients and the
//! model, not the table).
//!
//! ```sh
//! cargo build --release -p pulse-lambda --bin bootstrap
//! cargo run --release -p pulse-lambda --example cold_start -- target/release/bootstrap 20
//! ```
//!
//! Prints each run's milliseconds, then min / median / max.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// One invocation's payload: an empty DynamoDB Streams batch.
const PAYLOAD: &str = r#"{"Records":[]}"#;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let binary = args.next().ok_or("usage: cold_start BOOTSTRAP [RUNS]")?;
    let runs: usize = args.next().map(|r| r.parse()).transpose()?.unwrap_or(10);
    let mut times = Vec::with_capacity(runs);
    for run in 1..=runs {
        let ms = cold_start(&binary).await?;
        println!("run {run}: {ms:.1} ms");
        times.push(ms);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "cold start over {runs} runs: min {:.1} ms, median {:.1} ms, max {:.1} ms",
        times[0],
        times[runs / 2],
        times[runs - 1]
    );
    Ok(())
}

/// Spawns `binary` against a fresh Runtime API; milliseconds until it
/// answered the first invocation.
async fn cold_start(binary: &str) -> Result<f64, Box<dyn std::error::Error>> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let api = listener.local_addr()?.to_string();
    let started = Instant::now();
    let mut child = Command::new(binary)
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", &api)
        .env("AWS_LAMBDA_FUNCTION_NAME", "pulse")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/pulse")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "cold-start")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        // Nothing is called for an empty batch; nothing could leave the machine if it were.
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("TABLE_NAME", "marketplace-events")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        // A killed runtime logs its broken connection: not part of the measurement.
        .stderr(Stdio::null())
        .spawn()?;
    let answered = tokio::time::timeout(Duration::from_secs(30), serve_one(&listener)).await;
    let elapsed = started.elapsed().as_secs_f64() * 1000.0;
    child.kill()?;
    child.wait()?;
    answered.map_err(|_| "no answer within 30 s")??;
    Ok(elapsed)
}

/// Serves the runtime's requests until it posts the first response.
async fn serve_one(listener: &TcpListener) -> Result<(), Box<dyn std::error::Error>> {
    loop {
        let (stream, _) = listener.accept().await?;
        let (read, mut write) = stream.into_split();
        let mut reader = BufReader::new(read);
        loop {
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).await? == 0 {
                break; // the client closed this connection; it opens another
            }
            let mut length = 0usize;
            loop {
                let mut header = String::new();
                reader.read_line(&mut header).await?;
                let header = header.trim_end();
                if header.is_empty() {
                    break;
                }
                if let Some((name, value)) = header.split_once(':') {
                    if name.eq_ignore_ascii_case("content-length") {
                        length = value.trim().parse()?;
                    }
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).await?;
            let path = request_line.split_whitespace().nth(1).unwrap_or_default().to_owned();
            if path.ends_with("/invocation/next") {
                let deadline = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() + 60_000;
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nlambda-runtime-aws-request-id: cold-1\r\n\
                     lambda-runtime-deadline-ms: {deadline}\r\n\
                     lambda-runtime-invoked-function-arn: arn:aws:lambda:us-east-1:123456789012:function:pulse\r\n\
                     content-length: {}\r\n\r\n{PAYLOAD}",
                    PAYLOAD.len()
                );
                write.write_all(response.as_bytes()).await?;
            } else if path.ends_with("/response") {
                write.write_all(b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n").await?;
                let answer = String::from_utf8_lossy(&body);
                if !answer.contains("batchItemFailures") {
                    return Err(format!("unexpected answer: {answer}").into());
                }
                return Ok(());
            } else if path.ends_with("/error") {
                return Err(format!("the function reported an error: {}", String::from_utf8_lossy(&body)).into());
            } else {
                write.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n").await?;
            }
        }
    }
}
