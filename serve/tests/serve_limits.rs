//! `pulse serve`'s resource limits against raw TCP clients on 127.0.0.1:
//! slow headers are cut off, slow bodies answer 408, bodies wait for room in
//! the body buffer instead of piling up in memory, `/ping` answers through
//! all of it, the connection cap holds, and a stop does not wait on clients
//! that are slow or gone. Timeouts are a few hundred milliseconds; the only
//! timing asserted is "not before" (timers never fire early) or "not yet".

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use pulse_model::EmbeddedModel;
use pulse_schemas::FEATURE_COUNT;
use pulse_serve::{
    router, serve, ErrorBody, ServeConfig, ServerLimits, Stopped, MAX_BODY_BYTES, MAX_HEADER_BYTES, SMALL_BODY_BYTES,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// How long a test waits for something that must happen; far above what it takes.
const PATIENCE: Duration = Duration::from_secs(10);

struct Server {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: JoinHandle<Stopped>,
}

impl Server {
    async fn start(config: ServeConfig, limits: ServerLimits) -> Server {
        let model = EmbeddedModel::new(&pulse_model::embedded().unwrap()).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, router(model, config), limits, async {
            let _ = stopped.await;
        }));
        Server { addr, stop: Some(stop), task }
    }

    async fn stop(mut self) -> Stopped {
        self.stop.take().unwrap().send(()).unwrap();
        tokio::time::timeout(PATIENCE, self.task).await.expect("the server stops").unwrap()
    }
}

fn limits(header_read_timeout_ms: u64) -> ServerLimits {
    ServerLimits { header_read_timeout: Duration::from_millis(header_read_timeout_ms), ..ServerLimits::default() }
}

fn config(body_timeout_ms: u64, body_buffer_bytes: usize) -> ServeConfig {
    ServeConfig { body_timeout: Duration::from_millis(body_timeout_ms), body_buffer_bytes, ..ServeConfig::default() }
}

fn csv_row() -> String {
    let cells: Vec<String> = (0..FEATURE_COUNT).map(|i| format!("{}", i % 5)).collect();
    cells.join(",") + "\n"
}

/// A body over [`SMALL_BODY_BYTES`], which must get room in the body buffer.
fn large_csv() -> String {
    let body = csv_row().repeat(SMALL_BODY_BYTES / csv_row().len() + 1);
    assert!(body.len() > SMALL_BODY_BYTES);
    body
}

fn invocation(body: &str) -> String {
    format!(
        "POST /invocations HTTP/1.1\r\nHost: t\r\nContent-Type: text/csv\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

const PING: &str = "GET /ping HTTP/1.1\r\nHost: t\r\n\r\n";

/// Reads one answer: its status, and its body by `Content-Length`.
/// `None` if the server closed the connection before a full answer.
async fn read_answer(stream: &mut (impl AsyncReadExt + Unpin)) -> Option<(u16, String)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let length: usize = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned()))
        .map_or(0, |v| v.parse().unwrap());
    while buf.len() < head_end + length {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    Some((status, String::from_utf8_lossy(&buf[head_end..head_end + length]).to_string()))
}

/// One request on a fresh connection, with patience.
async fn ask(addr: SocketAddr, request: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    tokio::time::timeout(PATIENCE, read_answer(&mut stream)).await.expect("an answer or a close")
}

async fn ping(addr: SocketAddr) {
    let (status, body) = ask(addr, PING).await.expect("/ping answers");
    assert_eq!(status, 200, "{body}");
}

/// True when the server closes the connection (EOF or reset) within PATIENCE.
async fn closed_by_server(stream: &mut (impl AsyncReadExt + Unpin)) -> bool {
    let mut rest = Vec::new();
    matches!(tokio::time::timeout(PATIENCE, stream.read_to_end(&mut rest)).await, Ok(Ok(_) | Err(_)))
}

fn error_of(body: &str) -> String {
    serde_json::from_str::<ErrorBody>(body).unwrap_or_else(|e| panic!("{e}: {body:?}")).error
}

fn body_head(declared: usize) -> String {
    format!("POST /invocations HTTP/1.1\r\nHost: t\r\nContent-Type: text/csv\r\nContent-Length: {declared}\r\n\r\n")
}

/// Starts a request declaring a `declared`-byte body and sends `sent` bytes
/// of it (a few, at once), then holds the connection open.
async fn hold_body(addr: SocketAddr, declared: usize, sent: usize) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(body_head(declared).as_bytes()).await.unwrap();
    stream.write_all(&vec![b'1'; sent]).await.unwrap();
    stream
}

/// 6 MiB of digits, made once for every client.
fn big_body() -> &'static [u8] {
    static BODY: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    BODY.get_or_init(|| vec![b'1'; MAX_BODY_BYTES])
}

/// This process's resident memory (server and clients both), in MiB.
fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .map(|v| v.trim().trim_end_matches("kB").trim().parse().unwrap())
        .unwrap();
    kb / 1024.0
}

/// A client, in a task, that sends the head of a 6-MiB body and all of it
/// but the last byte (as fast as the server takes it), then holds the
/// connection until the task is aborted.
async fn spawn_holder(addr: SocketAddr) -> JoinHandle<()> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    tokio::spawn(async move {
        let _ = stream.write_all(body_head(MAX_BODY_BYTES).as_bytes()).await;
        let _ = stream.write_all(&big_body()[..MAX_BODY_BYTES - 1]).await;
        std::future::pending::<()>().await;
    })
}

#[tokio::test]
async fn limits_slow_headers_are_disconnected_after_the_header_timeout() {
    let server = Server::start(ServeConfig::default(), limits(200)).await;
    let started = Instant::now();
    let mut slow = TcpStream::connect(server.addr).await.unwrap();
    slow.write_all(b"POST /invocations HTTP/1.1\r\nHost: t\r\nContent-Ty").await.unwrap();
    assert!(closed_by_server(&mut slow).await, "a partial request line and headers are not held forever");
    assert!(started.elapsed() >= Duration::from_millis(200), "not before the timeout");
    ping(server.addr).await;
    assert_eq!(server.stop().await, Stopped::Drained);
}

#[tokio::test]
async fn limits_a_body_slower_than_the_body_timeout_answers_408() {
    let server = Server::start(config(300, ServeConfig::default().body_buffer_bytes), limits(10_000)).await;
    let stream = TcpStream::connect(server.addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let body = csv_row();
    let trickle = tokio::spawn(async move {
        let head = format!(
            "POST /invocations HTTP/1.1\r\nHost: t\r\nContent-Type: text/csv\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        writer.write_all(head.as_bytes()).await?;
        // One byte every 50 ms: the whole row would take seconds.
        for byte in body.bytes() {
            writer.write_all(&[byte]).await?;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        std::io::Result::Ok(())
    });
    let (status, answer) =
        tokio::time::timeout(PATIENCE, read_answer(&mut reader)).await.unwrap().expect("an answer before the close");
    assert_eq!(status, 408, "{answer}");
    assert!(error_of(&answer).starts_with("the body did not arrive within 0.3 s"), "{answer}");
    assert!(closed_by_server(&mut reader).await, "the connection closes after the 408");
    trickle.abort();
    ping(server.addr).await;
    server.stop().await;
}

#[tokio::test]
async fn limits_ping_answers_while_many_connections_hold_incomplete_6_mib_bodies() {
    // Room for two bodies: the other 98 wait in their sockets.
    let server = Server::start(config(30_000, 2 * MAX_BODY_BYTES), limits(10_000)).await;
    let before = rss_mib() + big_body().len() as f64 / 1048576.0;
    let mut held = Vec::new();
    for _ in 0..100 {
        held.push(spawn_holder(server.addr).await);
    }
    for _ in 0..5 {
        ping(server.addr).await;
    }
    // Time for the bodies to come in, were the server to read them all
    // (600 MiB then; here two bodies, 12 MiB, and hyper's buffers).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let grown = rss_mib() - before;
    assert!(grown < 150.0, "100 incomplete 6-MiB bodies must not be held in memory: RSS grew {grown:.0} MiB");
    for holder in &held {
        assert!(!holder.is_finished(), "the server holds every connection open");
        holder.abort();
    }
    let (status, answer) = ask(server.addr, &invocation(&csv_row())).await.unwrap();
    assert_eq!(status, 200, "{answer}");
    server.stop().await;
}

#[tokio::test]
async fn limits_a_body_waits_for_room_in_the_buffer_and_gets_it_when_a_holder_goes() {
    // Room for one 6-MiB body exactly.
    let server = Server::start(config(30_000, MAX_BODY_BYTES), limits(10_000)).await;
    let holder = spawn_holder(server.addr).await;
    // Let the holder's body in.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut waiting = TcpStream::connect(server.addr).await.unwrap();
    waiting.write_all(invocation(&large_csv()).as_bytes()).await.unwrap();
    let early = tokio::time::timeout(Duration::from_millis(300), read_answer(&mut waiting)).await;
    assert!(early.is_err(), "no room while the 6-MiB body is held: {early:?}");
    ping(server.addr).await;
    // A small body needs no room: it is answered meanwhile.
    let (status, answer) = ask(server.addr, &invocation(&csv_row())).await.unwrap();
    assert_eq!(status, 200, "{answer}");

    holder.abort();
    let (status, answer) =
        tokio::time::timeout(PATIENCE, read_answer(&mut waiting)).await.unwrap().expect("answered once there is room");
    assert_eq!(status, 200, "{answer}");
    server.stop().await;
}

#[tokio::test]
async fn limits_the_connection_cap_holds() {
    let limits = ServerLimits { max_connections: 4, ..limits(10_000) };
    let server = Server::start(ServeConfig::default(), limits).await;
    let mut open = Vec::new();
    for _ in 0..4 {
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        stream.write_all(PING.as_bytes()).await.unwrap();
        assert_eq!(read_answer(&mut stream).await.unwrap().0, 200);
        open.push(stream); // kept alive, idle
    }
    // A fifth connection is made (the kernel queues it) but not served.
    let mut fifth = TcpStream::connect(server.addr).await.unwrap();
    fifth.write_all(PING.as_bytes()).await.unwrap();
    let early = tokio::time::timeout(Duration::from_millis(300), read_answer(&mut fifth)).await;
    assert!(early.is_err(), "four connections are open: the fifth waits ({early:?})");
    // One goes: the fifth is accepted and answered.
    drop(open.pop());
    let answer = tokio::time::timeout(PATIENCE, read_answer(&mut fifth)).await.unwrap();
    assert_eq!(answer.unwrap().0, 200);
    server.stop().await;
}

#[tokio::test]
async fn limits_oversized_and_malformed_heads_are_refused_and_the_server_stays_up() {
    let server = Server::start(ServeConfig::default(), limits(10_000)).await;
    let huge = format!("GET /ping HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n", "a".repeat(MAX_HEADER_BYTES));
    assert_eq!(ask(server.addr, &huge).await.map(|a| a.0), Some(431));
    for bad in [
        "GARBAGE\r\n\r\n",
        "GET /ping HTTP/9.9\r\n\r\n",
        "POST /invocations HTTP/1.1\r\nHost: t\r\nContent-Length: -5\r\n\r\n",
        "POST /invocations HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n12345",
    ] {
        let answer = ask(server.addr, bad).await;
        assert!(answer.as_ref().is_none_or(|a| a.0 == 400), "{bad:?}: {answer:?}");
    }
    // Chunked garbage: the body cannot be read; a 400 or a close.
    let chunked = "POST /invocations HTTP/1.1\r\nHost: t\r\nContent-Type: text/csv\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n";
    let answer = ask(server.addr, chunked).await;
    assert!(answer.as_ref().is_none_or(|a| a.0 == 400), "{answer:?}");
    ping(server.addr).await;
    server.stop().await;
}

#[tokio::test]
async fn limits_a_stop_cuts_bodies_short_and_drops_slow_heads_at_the_deadline() {
    let limits = ServerLimits { shutdown_timeout: Duration::from_millis(300), ..limits(10_000) };
    let server = Server::start(config(30_000, ServeConfig::default().body_buffer_bytes), limits).await;
    let mut slow_head = TcpStream::connect(server.addr).await.unwrap();
    slow_head.write_all(b"GET /pi").await.unwrap();
    let mut slow_body = hold_body(server.addr, 1000, 10).await;
    // An idle keep-alive connection closes at once on the stop.
    let mut idle = TcpStream::connect(server.addr).await.unwrap();
    idle.write_all(PING.as_bytes()).await.unwrap();
    assert_eq!(read_answer(&mut idle).await.unwrap().0, 200);
    tokio::time::sleep(Duration::from_millis(100)).await;

    let stopping = tokio::spawn(server.stop());
    let (status, answer) = tokio::time::timeout(PATIENCE, read_answer(&mut slow_body)).await.unwrap().unwrap();
    assert_eq!(status, 503, "{answer}");
    assert!(error_of(&answer).contains("shutting down"), "{answer}");
    assert!(closed_by_server(&mut idle).await);
    // The partial head would be held for 10 s: the 300-ms deadline drops it.
    assert_eq!(stopping.await.unwrap(), Stopped::DeadlinePassed { open: 1 });
    assert!(closed_by_server(&mut slow_head).await);
}
