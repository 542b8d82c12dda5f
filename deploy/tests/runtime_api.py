"""A minimal Lambda Runtime API on 127.0.0.1, enough to run the real
`bootstrap` as Lambda runs it: it serves the queued payloads one by one
(`GET /2018-06-01/runtime/invocation/next`) and collects the answers
(`POST .../invocation/{id}/response` or `.../error`)."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class RuntimeApi:
    def __init__(self, payloads: list[dict]):
        self.payloads = list(payloads)
        self.answers: dict[str, tuple[str, object]] = {}
        self._cond = threading.Condition()
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None):
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if not self.path.endswith("/invocation/next"):
                    return self._reply(404)
                with api._cond:
                    while not api.payloads:
                        api._cond.wait()
                    n = len(api.answers) + 1
                    payload = api.payloads.pop(0)
                request_id = f"req-{n}-{time.time_ns()}"
                body = json.dumps(payload).encode()
                self._reply(200, body, {
                    "Content-Type": "application/json",
                    "Lambda-Runtime-Aws-Request-Id": request_id,
                    "Lambda-Runtime-Deadline-Ms": str(int(time.time() * 1000) + 120_000),
                    "Lambda-Runtime-Invoked-Function-Arn": "arn:aws:lambda:us-east-1:123456789012:function:pulse",
                })

            def do_POST(self):
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                parts = self.path.strip("/").split("/")
                if len(parts) >= 5 and parts[-1] in ("response", "error"):
                    with api._cond:
                        api.answers[parts[-2]] = (parts[-1], json.loads(body or b"null"))
                        api._cond.notify_all()
                    return self._reply(202)
                self._reply(404)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_answers(self, n: int, timeout_s: float) -> list[tuple[str, object]]:
        deadline = time.time() + timeout_s
        with self._cond:
            while len(self.answers) < n:
                left = deadline - time.time()
                if left <= 0:
                    raise TimeoutError(f"{len(self.answers)} of {n} invocations answered in {timeout_s} s")
                self._cond.wait(left)
            return [self.answers[k] for k in sorted(self.answers, key=lambda r: int(r.split("-")[1]))]

    def close(self):
        self.server.shutdown()


def run_function(bootstrap: str, env: dict[str, str], payloads: list[dict], log: Path, timeout_s: float = 120):
    """Runs `bootstrap` with exactly `env` (and the Runtime API's variables)
    over `payloads`; the answers in order."""
    api = RuntimeApi(payloads)
    full_env = {
        **env,
        "AWS_LAMBDA_RUNTIME_API": api.address,
        "AWS_LAMBDA_FUNCTION_NAME": "pulse",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/pulse",
        "AWS_LAMBDA_LOG_STREAM_NAME": "e2e",
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
    }
    with open(log, "wb") as out:
        child = subprocess.Popen([bootstrap], env=full_env, stdout=out, stderr=subprocess.STDOUT)
        try:
            return api.wait_answers(len(payloads), timeout_s)
        finally:
            child.kill()
            child.wait()
            api.close()
