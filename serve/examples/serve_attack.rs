//! Measures `pulse serve` under slow and abandoned clients (issue #13,
//! defect 6): starts the given `pulse` binary on a free 127.0.0.1 port, tries
//! a handful of malformed requests, then holds 200 bad connections open
//! (half, or all but `--bodies N`, send a request head one byte a second
//! and never finish it; the others send 6 MiB − 1 of a 6-MiB body and never
//! the last byte; each reconnects
//! when the server closes it) while normal clients call `/ping` and
//! `/invocations`. It reports the server's peak RSS (VmHWM), the latencies,
//! and the time from SIGTERM to exit.
//!
//! ```text
//! cargo build --release -p pulse
//! cargo run --release -p pulse-serve --example serve_attack -- target/release/pulse [SECONDS] [--bodies N] [-- SERVE FLAGS]
//! ```
//!
//! Exits non-zero when a malformed request is not refused (4xx or a close),
//! or the server stops answering.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Bad connections held open; `--bodies N` of them send bodies (default half).
const BAD_CONNECTIONS: usize = 200;
const BODY: usize = 6 * 1024 * 1024;
const PING: &[u8] = b"GET /ping HTTP/1.1\r\nHost: attack\r\n\r\n";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let pulse =
        args.next().ok_or_else(|| anyhow::anyhow!("usage: serve_attack PULSE [SECONDS] [--bodies N] [-- FLAGS]"))?;
    let mut seconds = 30u64;
    let mut extra = Vec::new();
    let mut slow_bodies = BAD_CONNECTIONS / 2;
    while let Some(arg) = args.next() {
        if arg == "--bodies" {
            slow_bodies = args.next().unwrap_or_default().parse::<usize>()?.min(BAD_CONNECTIONS);
        } else if arg == "--" {
            extra.extend(args.by_ref());
        } else {
            seconds = arg.parse()?;
        }
    }

    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut server = Command::new(&pulse)
        .args(["serve", "--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(&extra)
        .stdout(Stdio::null())
        .spawn()?;
    let pid = server.id();
    let started = Instant::now();
    while ask(addr, PING).await.is_none() {
        anyhow::ensure!(started.elapsed() < Duration::from_secs(30), "pulse serve did not answer /ping");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("pulse serve (pid {pid}) up on {addr}; {} flags: {extra:?}", pulse);
    println!("idle RSS: {} kB", status_kb(pid, "VmRSS:").unwrap_or(0));

    let mut failures = malformed(addr).await;

    // The attack.
    let stop = Arc::new(AtomicBool::new(false));
    let ends = Arc::new(Mutex::new(std::collections::BTreeMap::<String, u64>::new()));
    let mut attackers = Vec::new();
    let slow_heads = BAD_CONNECTIONS - slow_bodies;
    for i in 0..BAD_CONNECTIONS {
        let (stop, ends) = (Arc::clone(&stop), Arc::clone(&ends));
        attackers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let end = if i < slow_heads {
                    format!("slow head: {}", slow_head(addr).await)
                } else {
                    format!("slow body: {}", slow_body(addr).await)
                };
                *ends.lock().unwrap().entry(end).or_default() += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }));
    }
    // Let the bad connections pile up before measuring.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let pings = Arc::new(Mutex::new(Histogram::<u64>::new(3)?));
    let invocations = Arc::new(Mutex::new(Histogram::<u64>::new(3)?));
    let statuses = Arc::new(Mutex::new(std::collections::BTreeMap::<String, u64>::new()));
    let until = Instant::now() + Duration::from_secs(seconds);
    let mut load = Vec::new();
    // One health checker (SageMaker pings every few seconds; this every 10 ms).
    load.push(tokio::spawn(client(
        addr,
        until,
        Vec::from(PING),
        Duration::from_millis(10),
        pings.clone(),
        statuses.clone(),
    )));
    // Two callers of /invocations with 20-row batches.
    let rows: String = (0..20)
        .map(|r| (0..46).map(|i| format!("{}.{}", (r + i) % 9, i % 10)).collect::<Vec<_>>().join(",") + "\n")
        .collect();
    let invocation = format!(
        "POST /invocations HTTP/1.1\r\nHost: attack\r\nContent-Type: text/csv\r\nContent-Length: {}\r\n\r\n{rows}",
        rows.len()
    );
    for _ in 0..2 {
        load.push(tokio::spawn(client(
            addr,
            until,
            invocation.clone().into_bytes(),
            Duration::from_millis(20),
            invocations.clone(),
            statuses.clone(),
        )));
    }
    let mut peak_open = 0;
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(500)).await;
        peak_open = peak_open.max(open_connections(port));
    }
    for task in load {
        task.await?;
    }
    let hwm = status_kb(pid, "VmHWM:").unwrap_or(0);
    let rss = status_kb(pid, "VmRSS:").unwrap_or(0);

    let ended_before_sigterm = ends.lock().unwrap().clone();
    // SIGTERM under attack.
    let signalled = Instant::now();
    Command::new("kill").args(["-TERM", &pid.to_string()]).status()?;
    let exit = wait_exit(&mut server, Duration::from_secs(60)).await;
    let to_exit = signalled.elapsed();
    stop.store(true, Ordering::Relaxed);
    for task in attackers {
        task.abort();
    }

    let pings = pings.lock().unwrap();
    let invocations = invocations.lock().unwrap();
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    println!();
    println!(
        "attack: {slow_heads} slow heads + {slow_bodies} 6-MiB-minus-one bodies, {seconds} s of load; \
         connections open at the server (peak, from /proc/net/tcp): {peak_open}"
    );
    println!("bad connections ended by the server (then remade), until SIGTERM: {ended_before_sigterm:?}");
    println!("peak RSS (VmHWM): {:.1} MB; RSS at the end: {:.1} MB", hwm as f64 / 1024.0, rss as f64 / 1024.0);
    println!(
        "/ping: {} answered, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        pings.len(),
        ms(&pings, 0.5),
        ms(&pings, 0.99),
        pings.max() as f64 / 1000.0
    );
    println!(
        "/invocations: {} answered, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        invocations.len(),
        ms(&invocations, 0.5),
        ms(&invocations, 0.99),
        invocations.max() as f64 / 1000.0
    );
    println!("answers: {:?}", statuses.lock().unwrap());
    match exit {
        Some(code) => println!("SIGTERM to exit: {:.2} s ({code})", to_exit.as_secs_f64()),
        None => {
            println!("SIGTERM to exit: still running after {:.0} s; killed", to_exit.as_secs_f64());
            let _ = server.kill();
            failures += 1;
        }
    }
    if pings.is_empty() {
        failures += 1;
    }
    anyhow::ensure!(failures == 0, "{failures} checks failed");
    Ok(())
}

/// The malformed cases: each must get a 4xx or a close, and /ping must
/// answer after it. Returns the failures.
async fn malformed(addr: SocketAddr) -> usize {
    let huge_header = format!("GET /ping HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n", "a".repeat(1 << 20));
    let many_headers = format!("GET /ping HTTP/1.1\r\nHost: a\r\n{}\r\n", "X-H: 1\r\n".repeat(500));
    let long_uri = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "p".repeat(100_000));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("bad request line", b"HELLO THERE\r\n\r\n".to_vec()),
        ("binary garbage", (0..200u8).collect()),
        ("HTTP/9.9", b"GET /ping HTTP/9.9\r\nHost: a\r\n\r\n".to_vec()),
        ("1 MiB header", huge_header.into_bytes()),
        ("500 headers", many_headers.into_bytes()),
        ("100 kB URI", long_uri.into_bytes()),
        ("negative Content-Length", b"POST /invocations HTTP/1.1\r\nHost: a\r\nContent-Type: text/csv\r\nContent-Length: -1\r\n\r\n".to_vec()),
        ("two Content-Lengths", b"POST /invocations HTTP/1.1\r\nHost: a\r\nContent-Type: text/csv\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n1,2".to_vec()),
        ("Content-Length over 6 MiB", b"POST /invocations HTTP/1.1\r\nHost: a\r\nContent-Type: text/csv\r\nContent-Length: 99999999999\r\n\r\n1".to_vec()),
        ("Content-Length overflowing u64", b"POST /invocations HTTP/1.1\r\nHost: a\r\nContent-Type: text/csv\r\nContent-Length: 999999999999999999999999\r\n\r\n1".to_vec()),
        ("chunked garbage", b"POST /invocations HTTP/1.1\r\nHost: a\r\nContent-Type: text/csv\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n".to_vec()),
        ("chunk size overflow", b"POST /invocations HTTP/1.1\r\nHost: a\r\nContent-Type: text/csv\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n1\r\n".to_vec()),
        ("chunked and Content-Length", b"POST /invocations HTTP/1.1\r\nHost: a\r\nContent-Type: text/csv\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec()),
        ("body shorter than Content-Length, then EOF", b"POST /invocations HTTP/1.1\r\nHost: a\r\nContent-Type: text/csv\r\nContent-Length: 100\r\n\r\n1,2,3".to_vec()),
    ];
    let mut failures = 0;
    println!("malformed requests:");
    for (name, bytes) in cases {
        let half_close = name.ends_with("EOF");
        let outcome = async {
            let mut stream = TcpStream::connect(addr).await.ok()?;
            // The server may answer and close before it has read it all.
            let _ = stream.write_all(&bytes).await;
            if half_close {
                let _ = stream.shutdown().await;
            }
            Some(read_answer(&mut stream).await)
        };
        let outcome = tokio::time::timeout(Duration::from_secs(15), outcome).await;
        let (text, ok) = match outcome {
            Ok(Some(Some((status, body)))) => (
                format!("{status} {}", String::from_utf8_lossy(&body).chars().take(90).collect::<String>()),
                (400..500).contains(&status),
            ),
            Ok(Some(None)) => ("closed without an answer".into(), true),
            Ok(None) => ("cannot connect".into(), false),
            Err(_) => ("no answer and no close in 15 s".into(), false),
        };
        let up = ask(addr, PING).await.is_some_and(|(s, _)| s == 200);
        println!("  {name:<45} {text}{}", if up { "" } else { "  [server down]" });
        if !ok || !up {
            failures += 1;
        }
    }
    failures
}

/// One normal client on a keep-alive connection: sends `request` every
/// `every` until `until`, timing each answer (a fresh connection after a
/// failure; an answer that takes over 5 s counts as "timeout").
async fn client(
    addr: SocketAddr,
    until: Instant,
    request: Vec<u8>,
    every: Duration,
    latencies: Arc<Mutex<Histogram<u64>>>,
    statuses: Arc<Mutex<std::collections::BTreeMap<String, u64>>>,
) {
    let mut stream: Option<TcpStream> = None;
    while Instant::now() < until {
        let sent = Instant::now();
        let outcome = tokio::time::timeout(Duration::from_secs(5), async {
            if stream.is_none() {
                stream = Some(TcpStream::connect(addr).await.ok()?);
            }
            let s = stream.as_mut()?;
            s.write_all(&request).await.ok()?;
            read_answer(s).await
        })
        .await;
        let key = match outcome {
            Ok(Some((status, _))) => {
                latencies.lock().unwrap().saturating_record(sent.elapsed().as_micros() as u64);
                format!("{} {status}", path_of(&request))
            }
            Ok(None) => {
                stream = None;
                format!("{} closed", path_of(&request))
            }
            Err(_) => {
                stream = None;
                format!("{} timeout", path_of(&request))
            }
        };
        *statuses.lock().unwrap().entry(key).or_default() += 1;
        tokio::time::sleep(every).await;
    }
}

fn path_of(request: &[u8]) -> &str {
    std::str::from_utf8(request).ok().and_then(|r| r.split(' ').nth(1)).unwrap_or("?")
}

/// A slowloris: a request head one byte a second, never finished. Returns
/// how the server ended it.
async fn slow_head(addr: SocketAddr) -> String {
    let Ok(mut stream) = TcpStream::connect(addr).await else { return "cannot connect".into() };
    let head = b"POST /invocations HTTP/1.1\r\nHost: attack\r\nContent-Type: text/csv\r\nX-Padding: ";
    for &byte in head.iter().chain(std::iter::repeat(&b'a')) {
        if stream.write_all(&[byte]).await.is_err() {
            return "closed".into();
        }
        if let Some(end) = ended(&mut stream).await {
            return end;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    unreachable!("the head never ends")
}

/// A 6-MiB body sent (64 KiB every 50 ms) up to its last byte, then held.
/// Returns how the server ended it.
async fn slow_body(addr: SocketAddr) -> String {
    let Ok(mut stream) = TcpStream::connect(addr).await else { return "cannot connect".into() };
    let head = format!(
        "POST /invocations HTTP/1.1\r\nHost: attack\r\nContent-Type: text/csv\r\nContent-Length: {BODY}\r\n\r\n"
    );
    if stream.write_all(head.as_bytes()).await.is_err() {
        return "closed".into();
    }
    let (mut reader, mut writer) = stream.split();
    let chunk = vec![b'1'; 64 * 1024];
    let mut sent = 0;
    while sent < BODY - 1 {
        let n = chunk.len().min(BODY - 1 - sent);
        // A write blocks while the server reads nothing (no room for the
        // body): the server may answer meanwhile.
        tokio::select! {
            written = writer.write_all(&chunk[..n]) => if written.is_err() { break },
            end = answer_or_close(&mut reader) => return end,
        }
        sent += n;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Abandoned: hold until the server answers or closes.
    answer_or_close(&mut reader).await
}

/// Waits for the server to answer or close: its status ("408"), or "closed".
async fn answer_or_close(stream: &mut (impl AsyncRead + Unpin)) -> String {
    let mut buf = [0u8; 64];
    match stream.read(&mut buf).await {
        Ok(0) | Err(_) => "closed".into(),
        Ok(n) => String::from_utf8_lossy(&buf[..n]).split(' ').nth(1).unwrap_or("?").to_owned(),
    }
}

/// How the server ended the connection, if it has (without waiting).
async fn ended(stream: &mut TcpStream) -> Option<String> {
    tokio::time::timeout(Duration::ZERO, answer_or_close(stream)).await.ok()
}

/// One request on a fresh connection, 5 s at most.
async fn ask(addr: SocketAddr, request: &[u8]) -> Option<(u16, Vec<u8>)> {
    tokio::time::timeout(Duration::from_secs(5), async {
        let mut stream = TcpStream::connect(addr).await.ok()?;
        stream.write_all(request).await.ok()?;
        read_answer(&mut stream).await
    })
    .await
    .ok()?
}

/// Reads one answer: status and body by `Content-Length`. `None` on a close first.
async fn read_answer(stream: &mut (impl AsyncRead + Unpin)) -> Option<(u16, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
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
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    Some((status, buf[head_end..head_end + length].to_vec()))
}

/// A line of /proc/<pid>/status, in kB.
fn status_kb(pid: u32, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines().find_map(|l| l.strip_prefix(key)).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Established TCP connections whose local port is the server's.
fn open_connections(port: u16) -> usize {
    let text = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let local = format!(":{port:04X}");
    text.lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && f[1].ends_with(&local) && f[3] == "01"
        })
        .count()
}

/// Waits for the child to exit; its status, or None after `patience`.
async fn wait_exit(child: &mut Child, patience: Duration) -> Option<String> {
    let start = Instant::now();
    while start.elapsed() < patience {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status.to_string());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    None
}
