"""The template itself, against pulse's source, for every variant (offline)."""

from __future__ import annotations

import json
import re
import tomllib

import pytest

import source
from conftest import ROOT, TEMPLATE, VARIANTS, evaluate_conditions, holds, load_template, parameter_values, transform


def test_build_metadata_names_the_bootstrap_binary():
    template = load_template()
    function = template["Resources"]["Function"]
    meta, props = function["Metadata"], function["Properties"]
    assert meta["BuildMethod"] == "rust-cargolambda"
    assert meta["BuildProperties"] == {"Binary": "bootstrap"}
    assert props["Runtime"] == "provided.al2023"
    assert props["Handler"] == "bootstrap"
    assert props["Architectures"] == [{"Ref": "Architecture"}]
    assert template["Parameters"]["Architecture"]["Default"] == "arm64"
    # CodeUri is the workspace root: `cargo lambda build --bin bootstrap` runs there.
    root = (TEMPLATE.parent / props["CodeUri"]).resolve()
    assert root == ROOT
    workspace = tomllib.loads((root / "Cargo.toml").read_text())["workspace"]
    # The one place naming the crate: it is a workspace member defining the binary.
    package = meta["PulsePackage"]
    members = {
        tomllib.loads((root / m / "Cargo.toml").read_text())["package"]["name"]: root / m
        for m in workspace["members"]
    }
    assert package in members, f"PulsePackage {package} is not a workspace member ({sorted(members)})"
    manifest = tomllib.loads((members[package] / "Cargo.toml").read_text())
    explicit = [b for b in manifest.get("bin", []) if b.get("name") == "bootstrap"]
    assert explicit or (members[package] / "src" / "bin" / "bootstrap.rs").is_file(), (
        f"package {package} defines no binary named bootstrap"
    )
    others = [
        name
        for name, path in members.items()
        if name != package and (path / "src" / "bin" / "bootstrap.rs").is_file()
    ]
    assert not others, f"`--bin bootstrap` would be ambiguous: also in {others}"


def test_environment_is_every_variable_the_function_reads():
    env = load_template()["Resources"]["Function"]["Properties"]["Environment"]["Variables"]
    assert set(env) == source.function_env_names()


def _policy(template):
    role = template["Resources"]["FunctionRole"]["Properties"]
    (policy,) = role["Policies"]
    return policy["PolicyDocument"]["Statement"]


STREAM_READS = {
    "dynamodb-streams": {"dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"},
    "kinesis": {
        "kinesis:DescribeStream",
        "kinesis:DescribeStreamSummary",
        "kinesis:GetRecords",
        "kinesis:GetShardIterator",
        "kinesis:ListShards",
    },
}
# Where AWS requires Resource "*" (no resource-level permissions).
STAR_ONLY = {"dynamodb-streams": {"dynamodb:ListStreams"}, "kinesis": {"kinesis:ListStreams"}}
LOGS = {"logs:CreateLogStream", "logs:PutLogEvents"}


def resolve_ifs(x, conditions):
    """The template value with Fn::If resolved and AWS::NoValue dropped."""
    if isinstance(x, dict):
        if set(x) == {"Fn::If"}:
            c, yes, no = x["Fn::If"]
            return resolve_ifs(yes if conditions[c] else no, conditions)
        out = {}
        for k, v in x.items():
            v = resolve_ifs(v, conditions)
            if v != {"Ref": "AWS::NoValue"}:
                out[k] = v
        return out
    if isinstance(x, list):
        return [v for v in (resolve_ifs(v, conditions) for v in x) if v != {"Ref": "AWS::NoValue"}]
    return x


def expected_actions(params, conditions) -> set[str]:
    """Every action of the function's role: the code's calls, its logs, the mapping's reads."""
    source_kind = params["InputSource"]
    actions = source.function_actions() | LOGS | STREAM_READS[source_kind] | STAR_ONLY[source_kind]
    if not conditions["HasEndpoint"]:
        actions.discard("sagemaker:InvokeEndpoint")
    return actions


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_policy_is_exactly_the_calls_of_the_code(variant):
    params = parameter_values(variant, {"ExistingStreamArn": "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/x"})
    template = transform(params)
    conditions = evaluate_conditions(template, params)
    statements = resolve_ifs(_policy(template), conditions)
    actions: set[str] = set()
    for s in statements:
        assert s["Effect"] == "Allow"
        stmt_actions = set(s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
        assert not any("*" in a for a in stmt_actions), f"wildcard action in {s}"
        if s["Resource"] == "*":
            assert stmt_actions <= STAR_ONLY[params["InputSource"]], f"Resource * for {stmt_actions}"
        actions |= stmt_actions
    assert "cloudwatch:PutMetricData" not in actions
    assert actions == expected_actions(params, conditions)


def _alarms(template, conditions):
    alarms = {}
    for lid, r in template["Resources"].items():
        if r["Type"] != "AWS::CloudWatch::Alarm":
            continue
        if "Condition" in r and not conditions[r["Condition"]]:
            continue
        alarms[lid] = resolve_ifs(r["Properties"], conditions)
    return alarms


EXPECTED_ALARMS = {
    # logical id: (namespace, metric, dimension names)
    "IteratorAgeAlarm": ("AWS/Lambda", "IteratorAge", ["FunctionName"]),
    "FunctionErrorsAlarm": ("AWS/Lambda", "Errors", ["FunctionName"]),
    "FunctionThrottlesAlarm": ("AWS/Lambda", "Throttles", ["FunctionName"]),
    "DeadLettersAlarm": ("AWS/SQS", "ApproximateNumberOfMessagesVisible", ["QueueName"]),
    "FailedBatchesAlarm": ("AWS/SQS", "ApproximateNumberOfMessagesVisible", ["QueueName"]),
    "PredictionFailuresAlarm": ("IOpsDashboard/Predictions", "PredictionFailures", []),
    "HighChurnRiskAlarm": ("IOpsDashboard/Predictions", "HighChurnRiskCount", []),
    "LowAverageHealthAlarm": ("IOpsDashboard/Predictions", "AverageHealthScore", []),
    "AtRiskCustomersAlarm": ("IOpsDashboard/Predictions", "AtRiskCustomers", []),
    "PipelineErrorsAlarm": ("pulse/Pipeline", "Errors", []),
    "ModelCalibrationAlarm": ("pulse/ModelQuality", "CalibrationError", ["Head"]),
    "ModelBrierAlarm": ("pulse/ModelQuality", "BrierScore", ["Head"]),
    "ModelAucAlarm": ("pulse/ModelQuality", "RealisedAuc", ["Head"]),
    "EndpointFallbackAlarm": ("pulse/Pipeline", "FallbackRows", []),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_alarms_in_the_template(variant):
    """The alarms (moto's CloudFormation cannot create them: checked here)."""
    params = parameter_values(variant, {"ExistingStreamArn": "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/x"})
    template = transform(params)
    conditions = evaluate_conditions(template, params)
    alarms = _alarms(template, conditions)
    expected = dict(EXPECTED_ALARMS)
    if not conditions["HasEndpoint"]:
        del expected["EndpointFallbackAlarm"]
    assert set(alarms) == set(expected)
    published = source.metric_names()
    for lid, (namespace, metric, dims) in expected.items():
        a = alarms[lid]
        assert (a["Namespace"], a["MetricName"]) == (namespace, metric), lid
        assert [d["Name"] for d in a.get("Dimensions", [])] == dims, lid
        if namespace in published:
            assert metric in published[namespace], f"{lid}: pulse publishes no {namespace} {metric}"
        assert a["AlarmActions"] == [{"Ref": "AlarmsTopic"}], lid
        assert a["TreatMissingData"] == "notBreaching", lid
    refs = {
        "IteratorAgeAlarm": {"Ref": "Function"},
        "FunctionErrorsAlarm": {"Ref": "Function"},
        "FunctionThrottlesAlarm": {"Ref": "Function"},
        "DeadLettersAlarm": {"Fn::GetAtt": ["DeadLetterQueue", "QueueName"]},
        "FailedBatchesAlarm": {"Fn::GetAtt": ["FailedBatchesQueue", "QueueName"]},
    }
    for lid, ref in refs.items():
        assert alarms[lid]["Dimensions"][0]["Value"] == ref, lid
    # The model's quality: the thresholds README "Model monitoring" gives,
    # on churn_risk_14d, daily, three days running.
    quality = {
        "ModelCalibrationAlarm": ("GreaterThanThreshold", 0.10),
        "ModelBrierAlarm": ("GreaterThanThreshold", 0.12),
        "ModelAucAlarm": ("LessThanThreshold", 0.88),
    }
    # The current system's fleet alarms (docs/FEATURES.md §6), at pulse's
    # own alarm levels (operators/src/scoring/fleet.rs `Alarms::default`).
    fleet = {
        "HighChurnRiskAlarm": ("GreaterThanOrEqualToThreshold", 10.0, "Maximum"),
        "LowAverageHealthAlarm": ("LessThanThreshold", 60.0, "Minimum"),
        "AtRiskCustomersAlarm": ("GreaterThanThreshold", 50.0, "Maximum"),
    }
    for lid, (op, threshold, statistic) in fleet.items():
        a = alarms[lid]
        assert (a["ComparisonOperator"], float(a["Threshold"]), a["Statistic"]) == (op, threshold, statistic), lid
    for lid, (op, threshold) in quality.items():
        a = alarms[lid]
        assert a["Dimensions"] == [{"Name": "Head", "Value": "churn_risk_14d"}], lid
        assert (a["ComparisonOperator"], float(a["Threshold"])) == (op, threshold), lid
        assert (a["Period"], a["EvaluationPeriods"], a["DatapointsToAlarm"]) == (86400, 3, 3), lid


def test_dashboard_lists_every_alarm():
    """The dashboard's alarm widget names each alarm the template can create."""
    sub = load_template()["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    listed = sub[0] + json.dumps(sub[1])
    for lid, resource in load_template()["Resources"].items():
        if resource["Type"] == "AWS::CloudWatch::Alarm":
            name = resource["Properties"]["AlarmName"]["Fn::Sub"]
            assert name.startswith("${AWS::StackName}-pulse-"), lid
            assert f":alarm:{name}" in listed, f"the dashboard does not list {lid}"


def test_dashboard_metrics_are_the_ones_pulse_publishes():
    body = load_template()["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"][0]
    for namespace, names in source.metric_names().items():
        assert namespace in body
        for name in names:
            assert re.search(rf'"{name}"', body), f"dashboard misses {namespace} {name}"


def refusing_rules(params: dict[str, str]) -> list[str]:
    """The template's Rules whose assertions fail for these parameter values.

    moto's CloudFormation does not evaluate Rules (README "Deploy to AWS"),
    so they are evaluated here, with the functions the template uses.
    """
    return [
        name
        for name, rule in load_template().get("Rules", {}).items()
        if ("RuleCondition" not in rule or holds(rule["RuleCondition"], params))
        and not all(holds(a["Assert"], params) for a in rule["Assertions"])
    ]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_variant_passes_the_rules(variant):
    assert refusing_rules(parameter_values(variant)) == []


@pytest.mark.parametrize(
    ("overrides", "rule"),
    [
        # The function refuses to start: nothing would be output.
        ({"Score": "off", "LogVectors": "0"}, "ScoreOffLogsVectors"),
        # An endpoint nothing calls, billed.
        ({"Score": "off", "SageMakerImageUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/p:1"}, "ScoreOffNoEndpoint"),
        ({"Score": "off", "ExistingEndpointName": "seed-endpoint"}, "ScoreOffNoEndpoint"),
        ({"UseExistingTable": "true", "ExistingStreamArn": ""}, "ExistingTableNeedsItsStream"),
        # Timers off and an interval asked for contradict each other.
        ({"NoTimers": "true", "TimerIntervalHours": "6"}, "NoTimersNoInterval"),
    ],
)
def test_settings_the_function_refuses_or_ignores_are_refused_at_deploy(overrides, rule):
    assert rule in refusing_rules(parameter_values("dynamodb-streams", overrides))
    # Score off with logging on is a valid stack.
    assert refusing_rules(parameter_values("dynamodb-streams", {"Score": "off", "LogVectors": "1"})) == []


def test_parameter_bounds_are_the_functions():
    """A value the template accepts and the function refuses at every cold
    start deploys a stack whose batches are skipped after their retries."""
    params = load_template()["Parameters"]
    settings = (ROOT / "lambda" / "src" / "settings.rs").read_text()
    (lookback,) = re.findall(r"pub const MAX_DUE_LOOKBACK_HOURS: i64 = (\d+);", settings)
    assert params["DueLookbackHours"]["MaxValue"] == int(lookback)
    # TIMER_INTERVAL_HOURS up to a year (runtime/src/settings.rs).
    runtime = (ROOT / "runtime" / "src" / "settings.rs").read_text()
    assert "pub const YEAR_SECONDS: f64 = 365.0 * 86_400.0;" in runtime
    assert params["TimerIntervalHours"]["MaxValue"] == 365 * 24
    # The endpoint's settings (aws/src/output/args.rs), and the breaker's
    # cooldown as `seconds(.., YEAR_SECONDS)` takes it.
    args = (ROOT / "aws" / "src" / "output" / "args.rs").read_text()
    for parameter, const in [
        ("EndpointTimeoutMs", "MAX_ENDPOINT_TIMEOUT_MS"),
        ("EndpointAttempts", "MAX_ENDPOINT_ATTEMPTS"),
        ("BreakerFailures", "MAX_BREAKER_FAILURES"),
    ]:
        (bound,) = re.findall(rf"pub const {const}: [iu]64 = ([\d_]+);", args)
        assert (params[parameter]["MinValue"], params[parameter]["MaxValue"]) == (1, int(bound)), parameter
    assert (params["BreakerCooldownSeconds"]["MinValue"], params["BreakerCooldownSeconds"]["MaxValue"]) == (
        0, 365 * 86_400)
    assert params["NoTimers"]["AllowedValues"] == ["false", "true"]
    pattern = re.compile(params["ExistingEndpointName"]["AllowedPattern"])
    for ok in ["", "seed-endpoint", "e1", "a" * 63]:
        assert pattern.fullmatch(ok), ok
    for bad in ["Seed-Endpoint", "seed_endpoint", "-seed", "a" * 64]:
        assert not pattern.fullmatch(bad), bad


def _matches(pattern, record) -> bool:
    """Lambda's event filter on the rule forms the template uses: nested
    objects, and a list of exact values at each leaf."""
    for key, want in pattern.items():
        if key not in record:
            return False
        got = record[key]
        if isinstance(want, dict):
            if not isinstance(got, dict) or not _matches(want, got):
                return False
        elif got not in want:
            return False
    return True


def _image(entity_type: str) -> dict:
    return {"customer_id": {"S": "stu_1"}, "sk": {"S": "X#1"}, "entity_type": {"S": entity_type}}


# (record's dynamodb part, whether the function needs it)
STREAM_RECORDS = [
    ({"NewImage": _image("event")}, True),  # an event written
    ({"NewImage": _image("event"), "OldImage": _image("event")}, True),  # a correction
    ({"OldImage": _image("event")}, True),  # a retraction (or a TTL expiry: skipped by the engine)
    ({"NewImage": _image("student"), "OldImage": _image("event")}, True),  # an event item made something else
    ({"NewImage": _image("prediction")}, False),  # pulse's own writes
    ({"NewImage": _image("prediction"), "OldImage": _image("prediction")}, False),
    ({"NewImage": _image("scoring_memory")}, False),
    ({"NewImage": _image("due"), "OldImage": _image("due")}, False),
    ({"NewImage": _image("student")}, False),  # another application's item
]


@pytest.mark.parametrize("mapping", ["DynamoDbStreamMapping", "KinesisStreamMapping"])
def test_the_mappings_pass_event_items_only(mapping):
    """pulse's own writes come back on the stream; the mapping drops them
    before an invocation (the function skipped them, but each was read,
    batched and invoked for: up to three per customer and batch)."""
    filters = load_template()["Resources"][mapping]["Properties"]["FilterCriteria"]["Filters"]
    patterns = [json.loads(f["Pattern"]) for f in filters]
    for dynamodb, needed in STREAM_RECORDS:
        record = {"eventName": "MODIFY", "dynamodb": dynamodb}
        if mapping == "KinesisStreamMapping":
            record = {"data": record}  # the JSON payload Lambda filters on
        assert any(_matches(p, record) for p in patterns) == needed, (dynamodb, needed)
