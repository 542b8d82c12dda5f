"""What the template must match, read from pulse's own source (no second list):

* the environment variables the function reads (`bootstrap --list-env`: its
  clap settings, lambda/src/settings.rs, and RUST_LOG);
* the AWS calls the function makes (the SDK operations called in the modules
  the Lambda handler runs), as IAM actions;
* the metric names and namespaces it publishes (aws/src/output/metrics.rs,
  operators/src/scoring/fleet.rs).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LAMBDA = ROOT / "lambda" / "src"
AWS = ROOT / "aws" / "src"

# The modules the Lambda function runs: its handler (the pulse-lambda crate),
# the table access (batch calls, hydration, due index, stamps) and the
# scoring sink with its outputs (pulse-aws; its stream consumer, `live/`,
# is not linked).
FUNCTION_MODULES = [
    LAMBDA,
    AWS / "batch.rs",
    AWS / "hydrate.rs",
    AWS / "due.rs",
    AWS / "stamps.rs",
    AWS / "output",
]

# An AWS SDK operation (the snake_case method on a client) → the IAM action
# it is authorised as. None: not called by the Lambda function (why beside it).
SDK_CALLS: dict[str, str | None] = {
    "query": "dynamodb:Query",
    "batch_write_item": "dynamodb:BatchWriteItem",
    "batch_get_item": "dynamodb:BatchGetItem",
    "update_item": "dynamodb:UpdateItem",
    "put_item": "dynamodb:PutItem",
    "get_item": "dynamodb:GetItem",
    "delete_item": "dynamodb:DeleteItem",
    "scan": "dynamodb:Scan",
    "describe_table": "dynamodb:DescribeTable",
    "publish": "sns:Publish",
    "publish_batch": "sns:Publish",  # PublishBatch is authorised as sns:Publish
    "send_message": "sqs:SendMessage",
    "send_message_batch": "sqs:SendMessage",  # SendMessageBatch is authorised as sqs:SendMessage
    "invoke_endpoint": "sagemaker:InvokeEndpoint",
    # output/metrics.rs: PutMetricData is the long-running consumer's way;
    # LambdaEnv sets MetricsTarget::Emf (EMF lines on stdout), checked below.
    "put_metric_data": None,
}

_CALL = re.compile(r"\.\s*(" + "|".join(sorted(SDK_CALLS, key=len, reverse=True)) + r")\(\)")


def _rust_files() -> list[Path]:
    files: list[Path] = []
    for path in FUNCTION_MODULES:
        files.extend(sorted(path.rglob("*.rs")) if path.is_dir() else [path])
    return files


def _without_tests(text: str) -> str:
    """The text before a file's `#[cfg(test)]` module (calls made by tests do not count)."""
    return text.split("#[cfg(test)]", 1)[0]


def sdk_calls() -> dict[str, list[str]]:
    """SDK operation → the files (relative) that call it."""
    found: dict[str, list[str]] = {}
    for path in _rust_files():
        for op in _CALL.findall(_without_tests(path.read_text())):
            found.setdefault(op, []).append(str(path.relative_to(ROOT)))
    return found


def function_actions() -> set[str]:
    """The IAM actions of the calls the function makes."""
    settings = subprocess.run(
        [bootstrap(), "--print-settings"], check=True, capture_output=True, text=True, env={"TABLE_NAME": "t"}
    )
    assert json.loads(settings.stdout)["score"]["metrics"] == "emf", "the Lambda no longer publishes metrics as EMF lines"
    return {SDK_CALLS[op] for op in sdk_calls() if SDK_CALLS[op]}


def bootstrap() -> str:
    """The built `bootstrap` binary (scripts/test-deploy.sh builds it and says where)."""
    path = os.environ.get("PULSE_BOOTSTRAP")
    assert path and Path(path).is_file(), "PULSE_BOOTSTRAP must name the built bootstrap binary"
    return path


def function_env_names() -> set[str]:
    """The variables the function reads, as its own settings parser lists them
    (`bootstrap --list-env`: the clap arguments' env names, and RUST_LOG)."""
    out = subprocess.run([bootstrap(), "--list-env"], check=True, capture_output=True, text=True, env={})
    return set(out.stdout.split())


def metric_names() -> dict[str, set[str]]:
    """Namespace → metric names the function publishes: the typed names
    (`FleetMetric` in operators/src/scoring/fleet.rs, `HealthMetric` in
    aws/src/output/metrics.rs, `QualityMetric` in
    operators/src/scoring/monitor.rs), one definition each."""
    metrics = (AWS / "output" / "metrics.rs").read_text()
    fleet_rs = (ROOT / "operators" / "src" / "scoring" / "fleet.rs").read_text()
    fleet_ns = re.search(r'pub const NAMESPACE: &str = "([^"]+)"', fleet_rs).group(1)
    health_ns = re.search(r'pub const HEALTH_NAMESPACE: &str = "([^"]+)"', metrics).group(1)
    fleet = set(re.findall(r'FleetMetric::(\w+) => "\1"', fleet_rs))
    health = set(re.findall(r'HealthMetric::(\w+) => "\1"', metrics))
    monitor_rs = (ROOT / "operators" / "src" / "scoring" / "monitor.rs").read_text()
    quality_ns = re.search(r'pub const NAMESPACE: &str = "([^"]+)"', monitor_rs).group(1)
    # The names are the arms of `QualityMetric::name` (its `unit` has arms too).
    names_fn = monitor_rs[monitor_rs.index("pub const fn name(self)") : monitor_rs.index("pub const fn unit(self)")]
    quality = set(re.findall(r'QualityMetric::\w+ => "(\w+)"', names_fn))
    assert len(fleet) == 8 and len(health) == 14 and len(quality) == 6, (fleet, health, quality)
    return {fleet_ns: fleet, health_ns: health, quality_ns: quality}
