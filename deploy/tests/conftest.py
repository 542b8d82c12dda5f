"""Shared fixtures of the template tests (deploy/tests, run by scripts/test-deploy.sh).

The SAM template is transformed to plain CloudFormation with samtranslator
(offline), then deployed as a stack on moto's CloudFormation (the local
server of scripts/local-aws.sh, AWS_ENDPOINT_URL) once per variant; the
tests read the stack's resources back with boto3.

Where moto's CloudFormation cannot create a resource or ignores a property,
the test checks the transformed template instead and records a *moto gap*:
printed at the end of the run, never silently passed.
"""

from __future__ import annotations

import copy
import io
import json
import os
import re
import secrets
import time
import zipfile
from pathlib import Path
from typing import Any

import boto3
import botocore.config
import pytest

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "deploy" / "template.yaml"
REGION = os.environ.get("AWS_REGION", "us-east-1")
# samtranslator asks botocore for the region (ARN partitions): AWS_DEFAULT_REGION.
os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
# Names carry a run id, so that a server shared with other tests (scripts/test.sh
# starts one) needs no reset and two runs never collide.
RUN = os.environ.get("PULSE_DEPLOY_TEST_RUN") or secrets.token_hex(3)
CODE_BUCKET = f"pulse-deploy-test-code-{RUN}"
CODE_KEY = "bootstrap.zip"

# Resource types moto 5.2.5's CloudFormation does not create (checked in its
# source: moto/cloudformation/parsing.py builds its model map from the
# subclasses of CloudFormationModel; no model has cloudformation_type()
# "AWS::CloudWatch::Alarm"). A stack resource missing for another type fails.
MOTO_UNSUPPORTED_TYPES = {"AWS::CloudWatch::Alarm"}

# The variants deployed: a name and the stack's parameter values.
VARIANTS: dict[str, dict[str, str]] = {
    # The default: a new table, its DynamoDB stream, the embedded model.
    "dynamodb-streams": {"TableName": f"marketplace-events-{RUN}"},
    # Kinesis Data Streams for DynamoDB.
    "kinesis": {"InputSource": "kinesis", "TableName": f"kinesis-events-{RUN}"},
    # A SageMaker endpoint made from an image, falling back when it is down.
    "endpoint": {
        "TableName": f"endpoint-events-{RUN}",
        "SageMakerImageUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/pulse-serve:1",
        "SageMakerModelDataUrl": "s3://pulse-models/pulse/model.tar.gz",
        "OnEndpointDown": "fallback",
    },
    # An existing table and stream (made by the test first), an existing
    # endpoint, a separate predictions table, no due index.
    "existing": {
        "UseExistingTable": "true",
        "TableName": f"existing-events-{RUN}",
        "ExistingStreamArn": "<made by the test>",
        "ExistingEndpointName": "seed-endpoint",
        "PredictionsTableName": f"seed-predictions-{RUN}",
        "DueIndexName": "none",
    },
}

_gaps: list[str] = []
# Variant → the deployed function's Environment.Variables (test_stack.test_function).
FUNCTION_ENVS: dict[str, dict[str, str]] = {}


def moto_gap(variant: str, what: str, why: str) -> None:
    """Records an assertion moto cannot make (printed at the end of the run)."""
    line = f"[{variant}] {what}: {why}"
    if line not in _gaps:
        _gaps.append(line)
    print(f"MOTO GAP {line}")


def pytest_sessionfinish(session, exitstatus):
    """Writes the deployed functions' environments where PULSE_FUNCTION_ENV_OUT says
    (scripts/test-deploy.sh checks each with `bootstrap --print-settings`)."""
    out = os.environ.get("PULSE_FUNCTION_ENV_OUT")
    if out:
        Path(out).write_text(json.dumps(FUNCTION_ENVS, indent=2, sort_keys=True) + "\n")


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # noqa: D103
    if _gaps:
        terminalreporter.section("not checked against the stack (moto cannot), checked in the template instead")
        for line in _gaps:
            terminalreporter.write_line(line)


# --------------------------------------------------------------------------
# The template
# --------------------------------------------------------------------------


def load_template() -> dict[str, Any]:
    from samtranslator.yaml_helper import yaml_parse

    return yaml_parse(TEMPLATE.read_text())


def parameter_values(variant: str, overrides: dict[str, str] | None = None) -> dict[str, str]:
    """Every parameter's value for a variant: the template's defaults, then the variant's."""
    template = load_template()
    values = {name: str(p.get("Default", "")) for name, p in template["Parameters"].items()}
    values.update(VARIANTS[variant])
    values.update(overrides or {})
    return values


class _NoManagedPolicies:
    def load(self) -> dict[str, str]:
        raise AssertionError("the template names no managed policy: nothing to look up in IAM")


def transform(variant_params: dict[str, str]) -> dict[str, Any]:
    """The SAM template as plain CloudFormation (offline), its code in S3 as `sam package` leaves it."""
    from samtranslator.translator.transform import transform as sam_transform

    template = load_template()
    template["Resources"]["Function"]["Properties"]["CodeUri"] = f"s3://{CODE_BUCKET}/{CODE_KEY}"
    return sam_transform(template, dict(variant_params), _NoManagedPolicies())


def holds(x: Any, params: dict[str, str], named=None) -> bool:
    """A condition function (a Condition's, or a Rule's assertion) for these
    parameter values; `named` resolves {"Condition": name}."""

    def value(v: Any) -> Any:
        if isinstance(v, dict) and "Ref" in v:
            return params[v["Ref"]]
        return v

    (fn, args), = x.items()
    if fn == "Fn::Equals":
        return str(value(args[0])) == str(value(args[1]))
    if fn == "Fn::Not":
        return not holds(args[0], params, named)
    if fn == "Fn::And":
        return all(holds(a, params, named) for a in args)
    if fn == "Fn::Or":
        return any(holds(a, params, named) for a in args)
    if fn == "Condition" and named is not None:
        return named(args)
    raise AssertionError(f"condition function {fn} not understood by the test")


def evaluate_conditions(template: dict[str, Any], params: dict[str, str]) -> dict[str, bool]:
    """The template's conditions for these parameter values (the functions it uses)."""
    conditions = template.get("Conditions", {})
    done: dict[str, bool] = {}

    def named(name: str) -> bool:
        if name not in done:
            done[name] = holds(conditions[name], params, named)
        return done[name]

    for name in conditions:
        named(name)
    return done


def expected_resources(template: dict[str, Any], conditions: dict[str, bool]) -> dict[str, str]:
    """Logical id → type of the resources the stack creates."""
    return {
        lid: r["Type"]
        for lid, r in template["Resources"].items()
        if "Condition" not in r or conditions[r["Condition"]]
    }


# --------------------------------------------------------------------------
# The local cloud
# --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def endpoint_url() -> str:
    url = os.environ.get("AWS_ENDPOINT_URL")
    if not url or not re.match(r"^http://127\.0\.0\.1:\d+$", url):
        pytest.fail("AWS_ENDPOINT_URL must be the local server (eval \"$(scripts/local-aws.sh start)\")")
    return url


@pytest.fixture(scope="session")
def aws(endpoint_url):
    """boto3 clients on the local server (no retries: moto answers or it does not)."""
    session = boto3.session.Session(region_name=REGION)
    config = botocore.config.Config(retries={"mode": "standard", "max_attempts": 1})

    class Clients:
        def __getattr__(self, service: str):
            client = session.client(
                {"awslambda": "lambda"}.get(service, service), endpoint_url=endpoint_url, config=config
            )
            setattr(self, service, client)
            return client

    return Clients()


@pytest.fixture(scope="session")
def code_bucket(aws) -> str:
    """A small zip with a dummy `bootstrap` (moto creates the function; it never runs it)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        info = zipfile.ZipInfo("bootstrap")
        info.external_attr = 0o755 << 16
        z.writestr(info, "#!/bin/sh\necho 'placeholder: sam build puts the real bootstrap here' >&2\nexit 1\n")
    aws.s3.create_bucket(Bucket=CODE_BUCKET)
    aws.s3.put_object(Bucket=CODE_BUCKET, Key=CODE_KEY, Body=buffer.getvalue())
    return CODE_BUCKET


class Deployed:
    """A variant deployed on the local server, and what the test expects of it."""

    def __init__(self, variant, params, template, conditions, stack, outputs, resources):
        self.variant = variant
        self.params = params
        self.template = template
        self.conditions = conditions
        self.stack = stack
        self.outputs = outputs
        self.resources = resources  # logical id → physical id

    def physical(self, logical_id: str) -> str:
        return self.resources[logical_id]


def _existing_table(aws, name: str) -> str:
    """The existing table of the `existing` variant, as `pulse setup` makes it; its stream ARN."""
    try:
        aws.dynamodb.create_table(
            TableName=name,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[
                {"AttributeName": "customer_id", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            KeySchema=[
                {"AttributeName": "customer_id", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )
    except aws.dynamodb.exceptions.ResourceInUseException:
        pass
    return aws.dynamodb.describe_table(TableName=name)["Table"]["LatestStreamArn"]


_deployed: dict[str, Deployed] = {}


def deploy(aws, variant: str) -> Deployed:
    if variant in _deployed:
        return _deployed[variant]
    overrides = {}
    if VARIANTS[variant].get("UseExistingTable") == "true":
        overrides["ExistingStreamArn"] = _existing_table(aws, VARIANTS[variant]["TableName"])
    params = parameter_values(variant, overrides)
    template = transform(params)
    conditions = evaluate_conditions(template, params)
    stack_name = f"pulse-{variant}-{RUN}"
    aws.cloudformation.create_stack(
        StackName=stack_name,
        TemplateBody=json.dumps(template),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()],
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"],
    )
    for _ in range(600):
        stack = aws.cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
        if not stack["StackStatus"].endswith("IN_PROGRESS"):
            break
        time.sleep(0.1)
    if stack["StackStatus"] != "CREATE_COMPLETE":
        events = aws.cloudformation.describe_stack_events(StackName=stack_name)["StackEvents"]
        reasons = [e.get("ResourceStatusReason") for e in events if e.get("ResourceStatusReason")]
        pytest.fail(f"stack {stack_name}: {stack['StackStatus']} {reasons}")
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    resources = {}
    paginator = aws.cloudformation.get_paginator("list_stack_resources")
    for page in paginator.paginate(StackName=stack_name):
        for r in page["StackResourceSummaries"]:
            resources[r["LogicalResourceId"]] = r["PhysicalResourceId"]
    deployed = Deployed(variant, params, template, conditions, stack, outputs, resources)
    _deployed[variant] = deployed
    return deployed


@pytest.fixture(scope="module", params=list(VARIANTS))
def stack(request, aws, code_bucket) -> Deployed:
    return deploy(aws, request.param)


def all_deployed() -> dict[str, Deployed]:
    return _deployed


def strip_novalue(statements: list[Any], variant: str) -> list[dict[str, Any]]:
    """moto resolves `!If [c, x, !Ref AWS::NoValue]` inside a list to null
    (CloudFormation drops the element): the nulls are dropped here."""
    if any(s is None for s in statements):
        moto_gap(variant, "IAM statements under !If/AWS::NoValue",
                 "moto leaves null in the list where CloudFormation drops the element; the test drops the nulls")
    return [s for s in statements if s is not None]


def as_list(x: Any) -> list[Any]:
    return x if isinstance(x, list) else [x]


def copy_of(x: Any) -> Any:
    return copy.deepcopy(x)
