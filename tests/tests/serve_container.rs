//! The SageMaker container's contract without a Docker daemon (none on
//! these machines): `pulse serve` started exactly as the image starts it
//! (deploy/serve/Dockerfile's ENTRYPOINT, CMD and ENV, read from the file),
//! with a model directory laid out as SageMaker lays out /opt/ml/model from
//! the model data deploy/serve/package-model.sh makes; answering /ping and
//! /invocations; an empty model directory serves the embedded model; a
//! broken model there stops the server with a message naming it.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{pulse_bin, workspace_root};

/// The image's start: (ENTRYPOINT + CMD args after the binary, ENV pairs).
fn image() -> (Vec<String>, Vec<(String, String)>) {
    let text = std::fs::read_to_string(workspace_root().join("deploy/serve/Dockerfile")).unwrap();
    let json_list = |line: &str| -> Vec<String> { serde_json::from_str(line).expect("exec form") };
    let (mut entrypoint, mut cmd, mut env) = (Vec::new(), Vec::new(), Vec::new());
    let mut logical = String::new();
    for line in text.lines() {
        if line.trim_start().starts_with('#') {
            continue;
        }
        logical.push_str(line.trim_end_matches('\\'));
        if line.ends_with('\\') {
            logical.push(' ');
            continue;
        }
        let instruction = std::mem::take(&mut logical);
        let instruction = instruction.trim();
        if let Some(rest) = instruction.strip_prefix("ENTRYPOINT ") {
            entrypoint = json_list(rest);
        } else if let Some(rest) = instruction.strip_prefix("CMD ") {
            cmd = json_list(rest);
        } else if let Some(rest) = instruction.strip_prefix("ENV ") {
            for pair in rest.split_whitespace() {
                let (k, v) = pair.split_once('=').expect("ENV key=value");
                env.push((k.to_owned(), v.to_owned()));
            }
        }
    }
    assert_eq!(entrypoint, ["/usr/local/bin/pulse"], "the image runs pulse");
    assert!(text.contains("\nUSER 65532:65532\n") && text.contains("\nEXPOSE 8080\n"), "non-root, port 8080");
    (cmd, env)
}

struct Server {
    child: Child,
    port: u16,
    banner: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `pulse <CMD>` with the image's environment (SAGEMAKER_MODEL_DIR moved to
/// `model_dir`, the bind address to loopback: nothing leaves this machine)
/// and SageMaker's port variable; waits for its banner.
fn start(model_dir: &Path) -> Result<Server, String> {
    let (cmd, env) = image();
    assert_eq!(cmd, ["serve"], "SageMaker runs `<image> serve`");
    assert!(env.contains(&("SAGEMAKER_MODEL_DIR".into(), "/opt/ml/model".into())), "{env:?}");
    assert!(env.contains(&("PULSE_SERVE_BIND".into(), "0.0.0.0".into())), "{env:?}");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut command = Command::new(pulse_bin());
    command.args(&cmd).env_clear();
    for (k, v) in env {
        command.env(k, v);
    }
    command
        .env("SAGEMAKER_MODEL_DIR", model_dir)
        .env("PULSE_SERVE_BIND", "127.0.0.1")
        .env("SAGEMAKER_BIND_TO_PORT", port.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut banner = String::new();
    for _ in 0..2 {
        if stdout.read_line(&mut banner).unwrap() == 0 {
            let status = child.wait().unwrap();
            let mut err = String::new();
            child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
            return Err(format!("{status}: {err}"));
        }
    }
    Ok(Server { child, port, banner })
}

/// One HTTP/1.1 request on a fresh connection: (status, body).
fn request(port: u16, method: &str, path: &str, content_type: &str, body: &str) -> (u16, String) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut stream = loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => break s,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("cannot connect: {e}"),
        }
    };
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: {content_type}\r\nAccept: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

fn a_row() -> String {
    (0..46).map(|i| if i == 0 { "3".to_owned() } else { "0".to_owned() }).collect::<Vec<_>>().join(",")
}

#[test]
fn the_image_serves_the_model_sagemaker_unpacked() {
    // model.tar.gz as the packaging script makes it, unpacked as SageMaker does.
    let dir = tempfile::tempdir().unwrap();
    let tarball = dir.path().join("model.tar.gz");
    let packed = Command::new(workspace_root().join("deploy/serve/package-model.sh"))
        .args([workspace_root().join("model/artifact").as_os_str(), tarball.as_os_str()])
        .status()
        .unwrap();
    assert!(packed.success());
    let opt_ml_model = dir.path().join("opt/ml/model");
    std::fs::create_dir_all(&opt_ml_model).unwrap();
    let unpacked = Command::new("tar").arg("xzf").arg(&tarball).arg("-C").arg(&opt_ml_model).status().unwrap();
    assert!(unpacked.success());

    let server = start(&opt_ml_model).expect("the server starts");
    assert!(server.banner.contains(&opt_ml_model.display().to_string()), "serves /opt/ml/model: {}", server.banner);
    let (status, _) = request(server.port, "GET", "/ping", "text/plain", "");
    assert_eq!(status, 200);
    let (status, body) = request(server.port, "POST", "/invocations", "text/csv", &a_row());
    assert_eq!(status, 200, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    let churn = &answer["predictions"][0]["churn_risk_14d"];
    assert!(churn.as_f64().is_some_and(|p| (0.0..=1.0).contains(&p)), "{answer}");
}

#[test]
fn an_endpoint_without_model_data_serves_the_embedded_model() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).expect("the server starts");
    assert!(server.banner.contains("(embedded)"), "{}", server.banner);
    assert_eq!(request(server.port, "GET", "/ping", "text/plain", "").0, 200);
}

#[test]
fn a_broken_model_in_the_model_directory_stops_the_server() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("model.json"), b"{ not a model").unwrap();
    let err = start(dir.path()).err().expect("refused");
    assert!(err.contains(&dir.path().display().to_string()), "{err}");
}

#[test]
fn sigterm_stops_the_server_within_its_deadline_even_with_a_request_left_open() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = Command::new(pulse_bin())
        .args(["serve", "--port", &port.to_string(), "--shutdown-timeout-s", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut banner = String::new();
    BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut banner).unwrap();
    // A client that never finishes its headers: without a deadline, the
    // graceful shutdown waits for it for ever.
    let mut slow = TcpStream::connect(("127.0.0.1", port)).unwrap();
    slow.write_all(b"POST /invocations HTTP/1.1\r\nHost: x\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let signalled = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if signalled.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("still running 10 s after SIGTERM with a 1 s deadline");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    assert!(signalled.elapsed() < Duration::from_secs(5), "stopped {:?} after SIGTERM", signalled.elapsed());
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(err.contains("stopping without them"), "{err}");
    drop(slow);
}

#[test]
fn the_limits_are_read_from_the_environment_and_checked() {
    // A header timeout set the way an image would set it: a partial head is
    // cut off well before the 10-s default.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = Command::new(pulse_bin())
        .args(["serve", "--port", &port.to_string()])
        .env("PULSE_SERVE_HEADER_TIMEOUT_S", "0.2")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut banner = String::new();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    for _ in 0..2 {
        stdout.read_line(&mut banner).unwrap();
    }
    assert!(banner.contains("headers within 0.2 s"), "{banner}");
    let mut slow = TcpStream::connect(("127.0.0.1", port)).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    slow.write_all(b"POST /invocations HTTP/1.1\r\nHost: x\r\n").unwrap();
    let mut rest = Vec::new();
    let read = slow.read_to_end(&mut rest);
    let _ = child.kill();
    let _ = child.wait();
    assert!(read.is_ok() && rest.is_empty(), "closed without an answer: {read:?} {rest:?}");

    let out = Command::new(pulse_bin()).args(["serve", "--port", "0", "--body-buffer-mib", "1"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--body-buffer-mib"), "{out:?}");
}
