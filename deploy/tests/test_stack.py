"""The transformed template deployed on moto's CloudFormation, read back (one stack per variant)."""

from __future__ import annotations

import ast
import json

import source
from conftest import FUNCTION_ENVS as _envs
from conftest import MOTO_UNSUPPORTED_TYPES, REGION, expected_resources, moto_gap, strip_novalue
from test_template import EXPECTED_ALARMS, LOGS, STAR_ONLY, STREAM_READS

ACCOUNT = "123456789012"  # moto's default account


def table_arn(name: str) -> str:
    return f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}"


def queue_arn(aws, url: str) -> str:
    return aws.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def policy_document(document, variant: str) -> dict:
    """An inline policy as moto returns it: a role's inline policies made by
    its CloudFormation come back as Python's repr of the dict, not JSON."""
    if isinstance(document, dict):
        return document
    try:
        return json.loads(document)
    except json.JSONDecodeError:
        moto_gap(variant, "inline role policies as JSON",
                 "moto's CloudFormation stores them as Python repr; the test reads them with ast.literal_eval")
        return ast.literal_eval(document)


def test_every_resource_is_created(stack):
    expected = expected_resources(stack.template, stack.conditions)
    missing = {lid: t for lid, t in expected.items() if lid not in stack.resources}
    for lid, t in sorted(missing.items()):
        assert t in MOTO_UNSUPPORTED_TYPES, f"{lid} ({t}) was not created"
    unexpected = set(stack.resources) - set(expected) - {""}
    assert not unexpected, f"created but not expected: {unexpected}"


def test_outputs(stack, aws):
    o = stack.outputs
    p = stack.params
    table = p["TableName"]
    assert o["EventsTableName"] == table
    assert o["DueIndexName"] == p["DueIndexName"]
    assert o["PredictionsTableName"] == (p["PredictionsTableName"] or table)
    assert o["FunctionName"] == f"{stack.stack['StackName']}-pulse"
    assert o["FunctionArn"] == aws.awslambda.get_function(FunctionName=o["FunctionName"])["Configuration"]["FunctionArn"]
    assert o["DashboardName"] == f"{stack.stack['StackName']}-pulse"
    assert o["DashboardUrl"].endswith("#dashboards:name=" + o["DashboardName"])
    if p["UseExistingTable"] == "true":
        assert o["StreamArn"] == p["ExistingStreamArn"]
    elif p["InputSource"] == "kinesis":
        assert o["StreamArn"] == aws.kinesis.describe_stream_summary(StreamName=stack.physical("KinesisStream"))[
            "StreamDescriptionSummary"]["StreamARN"]
    else:
        assert o["StreamArn"] == aws.dynamodb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    if stack.conditions["CreateEndpoint"]:
        assert aws.sagemaker.describe_endpoint(EndpointName=o["EndpointName"])["EndpointArn"].lower().endswith(
            "/" + o["EndpointName"].lower())
    else:
        assert o["EndpointName"] == p["ExistingEndpointName"]
    for key in ["AlertsTopicArn", "AlarmsTopicArn"]:
        aws.sns.get_topic_attributes(TopicArn=o[key])
    for key in ["DeadLetterQueueUrl", "FailedBatchesQueueUrl"]:
        aws.sqs.get_queue_attributes(QueueUrl=o[key], AttributeNames=["QueueArn"])


def test_table(stack, aws):
    p = stack.params
    table = aws.dynamodb.describe_table(TableName=p["TableName"])["Table"]
    assert {k["AttributeName"]: k["KeyType"] for k in table["KeySchema"]} == {"customer_id": "HASH", "sk": "RANGE"}
    assert table["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    if not stack.conditions["CreateTable"]:
        assert "EventsTable" not in stack.resources
        return
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    attributes = {a["AttributeName"]: a["AttributeType"] for a in table["AttributeDefinitions"]}
    assert attributes == {"customer_id": "S", "sk": "S", "due_hour": "N"}
    # The due index exactly as pulse::aws::setup::ensure_due_index creates it.
    (gsi,) = table["GlobalSecondaryIndexes"]
    assert gsi["IndexName"] == p["DueIndexName"] == "due-index"
    assert [(k["AttributeName"], k["KeyType"]) for k in gsi["KeySchema"]] == [
        ("due_hour", "HASH"), ("customer_id", "RANGE")]
    assert gsi["Projection"] == {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["next_due"]}

    props = stack.template["Resources"]["EventsTable"]["Properties"]
    assert stack.template["Resources"]["EventsTable"]["DeletionPolicy"] == "RetainExceptOnCreate"
    pitr = aws.dynamodb.describe_continuous_backups(TableName=p["TableName"])["ContinuousBackupsDescription"]
    status = pitr.get("PointInTimeRecoveryDescription", {}).get("PointInTimeRecoveryStatus")
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    if status != "ENABLED":
        moto_gap(stack.variant, "point-in-time recovery",
                 f"moto's CloudFormation ignores PointInTimeRecoverySpecification (status {status})")
    ttl = aws.dynamodb.describe_time_to_live(TableName=p["TableName"])["TimeToLiveDescription"]
    assert props["TimeToLiveSpecification"]["Fn::If"][1] == {"AttributeName": {"Ref": "TtlAttributeName"}, "Enabled": True}
    if ttl.get("TimeToLiveStatus") != "ENABLED" or ttl.get("AttributeName") != p["TtlAttributeName"]:
        moto_gap(stack.variant, f"TTL on {p['TtlAttributeName']}",
                 f"moto's CloudFormation ignores TimeToLiveSpecification ({ttl})")
    if p["InputSource"] == "kinesis":
        spec = props["KinesisStreamSpecification"]["Fn::If"][1]
        assert spec == {"StreamArn": {"Fn::GetAtt": ["KinesisStream", "Arn"]},
                        "ApproximateCreationDateTimePrecision": "MILLISECOND"}
        try:
            dests = aws.dynamodb.describe_kinesis_streaming_destination(TableName=p["TableName"])
            active = [d for d in dests.get("KinesisDataStreamDestinations", [])
                      if d["StreamArn"] == stack.outputs["StreamArn"] and d["DestinationStatus"] == "ACTIVE"]
            why = "moto's CloudFormation ignores KinesisStreamSpecification"
        except aws.dynamodb.exceptions.ClientError as e:
            active, why = [], f"moto's CloudFormation ignores KinesisStreamSpecification (and DescribeKinesisStreamingDestination fails: {e.response['Error'].get('Code')})"
        if not active:
            moto_gap(stack.variant, "the table's Kinesis streaming destination", why)
        stream = aws.kinesis.describe_stream_summary(StreamName=stack.physical("KinesisStream"))
        summary = stream["StreamDescriptionSummary"]
        assert summary["RetentionPeriodHours"] == 24
        mode = summary.get("StreamModeDetails", {}).get("StreamMode")
        if mode != "ON_DEMAND":
            moto_gap(stack.variant, "Kinesis on-demand capacity mode",
                     f"moto's CloudFormation ignores StreamModeDetails (mode {mode})")


def test_event_source_mapping(stack, aws):
    p = stack.params
    name = stack.outputs["FunctionName"]
    (esm,) = aws.awslambda.list_event_source_mappings(FunctionName=name)["EventSourceMappings"]
    assert esm["EventSourceArn"] == stack.outputs["StreamArn"]
    assert esm["FunctionArn"] == stack.outputs["FunctionArn"]
    assert esm["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert esm["StartingPosition"] == "TRIM_HORIZON"
    assert int(esm["BatchSize"]) == int(p["BatchSize"]) == 500
    assert int(esm["MaximumBatchingWindowInSeconds"]) == int(p["MaximumBatchingWindowInSeconds"]) == 2
    assert int(esm["MaximumRetryAttempts"]) == int(p["MaximumRetryAttempts"]) == 10
    assert int(esm["ParallelizationFactor"]) == 1
    assert esm["BisectBatchOnFunctionError"] is False
    assert esm["DestinationConfig"] == {
        "OnFailure": {"Destination": queue_arn(aws, stack.outputs["FailedBatchesQueueUrl"])}}
    mapping = "KinesisStreamMapping" if p["InputSource"] == "kinesis" else "DynamoDbStreamMapping"
    assert mapping in stack.resources


def test_function(stack, aws):
    p = stack.params
    config = aws.awslambda.get_function_configuration(FunctionName=stack.outputs["FunctionName"])
    assert config["Runtime"] == "provided.al2023"
    assert config["Handler"] == "bootstrap"
    assert config["MemorySize"] == int(p["FunctionMemoryMB"]) == 1024
    assert config["Timeout"] == int(p["FunctionTimeoutSeconds"]) == 120
    role = aws.iam.get_role(RoleName=stack.physical("FunctionRole"))["Role"]
    assert config["Role"] == role["Arn"]
    if config.get("Architectures") != [p["Architecture"]]:
        moto_gap(stack.variant, f"function architecture {p['Architecture']}",
                 f"moto's CloudFormation does not pass Architectures (got {config.get('Architectures')})")
    if config.get("LoggingConfig", {}).get("LogGroup") != f"/aws/lambda/{config['FunctionName']}":
        moto_gap(stack.variant, "function LoggingConfig", "moto's CloudFormation does not pass LoggingConfig")
    log_groups = aws.logs.describe_log_groups(logGroupNamePrefix=f"/aws/lambda/{config['FunctionName']}")["logGroups"]
    assert [(g["logGroupName"], g.get("retentionInDays")) for g in log_groups] == [
        (f"/aws/lambda/{config['FunctionName']}", int(p["LogRetentionDays"]))]

    env = {k: str(v) for k, v in config["Environment"]["Variables"].items()}
    _envs[stack.variant] = env
    table = p["TableName"]
    endpoint = stack.outputs["EndpointName"]
    assert env == {
        "TABLE_NAME": table,
        "DUE_INDEX": p["DueIndexName"],
        "HYDRATE_CONCURRENCY": "16",
        "DUE_LOOKBACK_HOURS": "168",
        "TIMER_INTERVAL_HOURS": "24",
        "SCORE": "on",
        "ENDPOINT_NAME": endpoint,
        "ON_ENDPOINT_DOWN": p["OnEndpointDown"],
        "HOLD_TIMEOUT_S": "60",
        "ENDPOINT_TIMEOUT_MS": "10000",
        "ENDPOINT_ATTEMPTS": "4",
        "BREAKER_FAILURES": "5",
        "BREAKER_COOLDOWN_S": "30",
        "NO_TIMERS": "false",
        "REASONS": "on",
        "PREDICTIONS_TABLE": p["PredictionsTableName"] or table,
        "ALERTS_TOPIC_ARN": stack.outputs["AlertsTopicArn"],
        "DEAD_LETTER_QUEUE_URL": stack.outputs["DeadLetterQueueUrl"],
        "LOG_VECTORS": "auto",
        "RUST_LOG": "info",
    }
    assert set(env) == source.function_env_names()
    assert bool(endpoint) == stack.conditions["HasEndpoint"]


def test_role_policy(stack, aws):
    """The function's role: exactly the code's calls, on exactly its resources."""
    p = stack.params
    role_name = stack.physical("FunctionRole")
    role = aws.iam.get_role(RoleName=role_name)["Role"]
    assert role["AssumeRolePolicyDocument"]["Statement"] == [
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]
    assert aws.iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"] == []
    assert aws.iam.list_role_policies(RoleName=role_name)["PolicyNames"] == ["pulse-function"]
    document = aws.iam.get_role_policy(RoleName=role_name, PolicyName="pulse-function")["PolicyDocument"]
    document = policy_document(document, stack.variant)
    granted: dict[str, set[str]] = {}
    for s in strip_novalue(document["Statement"], stack.variant):
        assert s["Effect"] == "Allow"
        for action in s["Action"] if isinstance(s["Action"], list) else [s["Action"]]:
            granted.setdefault(action, set()).update(s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]])

    table = table_arn(p["TableName"])
    predictions = table_arn(p["PredictionsTableName"] or p["TableName"])
    log_group = aws.logs.describe_log_groups(
        logGroupNamePrefix=f"/aws/lambda/{stack.outputs['FunctionName']}")["logGroups"][0]["arn"]
    expected: dict[str, set[str]] = {
        "logs:CreateLogStream": {log_group},
        "logs:PutLogEvents": {log_group},
        "dynamodb:Query": {table} | ({f"{table}/index/{p['DueIndexName']}"} if p["DueIndexName"] != "none" else set()),
        "dynamodb:BatchWriteItem": {table},
        "dynamodb:BatchGetItem": {table, predictions},
        "dynamodb:UpdateItem": {predictions},
        "sns:Publish": {stack.outputs["AlertsTopicArn"]},
        "sqs:SendMessage": {queue_arn(aws, stack.outputs["DeadLetterQueueUrl"]),
                            queue_arn(aws, stack.outputs["FailedBatchesQueueUrl"])},
    }
    if stack.conditions["CreateEndpoint"]:
        arn = aws.sagemaker.describe_endpoint(EndpointName=stack.outputs["EndpointName"])["EndpointArn"]
        expected["sagemaker:InvokeEndpoint"] = {arn}
    elif stack.conditions["UseExistingEndpoint"]:
        expected["sagemaker:InvokeEndpoint"] = {
            f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/{p['ExistingEndpointName']}"}
    for action in STREAM_READS[p["InputSource"]]:
        expected[action] = {stack.outputs["StreamArn"]}
    for action in STAR_ONLY[p["InputSource"]]:
        expected[action] = {"*"}
    assert granted == expected
    # ... and those are the calls the code makes (source.py), the logs and the mapping's reads.
    code = source.function_actions()
    if not stack.conditions["HasEndpoint"]:
        code.discard("sagemaker:InvokeEndpoint")
    assert set(granted) == code | LOGS | STREAM_READS[p["InputSource"]] | STAR_ONLY[p["InputSource"]]


def test_hourly_schedule(stack, aws):
    p = stack.params
    function_arn = stack.outputs["FunctionArn"]
    rule_name = stack.physical("FunctionRescore")
    rule = aws.events.describe_rule(Name=rule_name)
    assert rule["ScheduleExpression"] == "rate(1 hour)"
    # No due index, nothing for the hourly run to read: the rule is off.
    assert rule["State"] == ("DISABLED" if p["DueIndexName"] == "none" else "ENABLED")
    (target,) = aws.events.list_targets_by_rule(Rule=rule_name)["Targets"]
    assert target["Arn"] == function_arn
    # No Input: the function gets the rule's event itself, whose
    # "detail-type" is "Scheduled Event" and "time" the scheduled time
    # (pulse::lambda::Invocation::from_payload).
    for key in ["Input", "InputPath", "InputTransformer"]:
        assert key not in target, f"the schedule target must deliver the event as is, not {key}"
    assert target["RetryPolicy"] == {"MaximumRetryAttempts": 2, "MaximumEventAgeInSeconds": 3600}
    policy = json.loads(aws.awslambda.get_policy(FunctionName=stack.outputs["FunctionName"])["Policy"])
    (statement,) = policy["Statement"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Action"] == "lambda:InvokeFunction"
    assert statement["Condition"]["ArnLike"]["AWS:SourceArn"] == rule["Arn"]


def test_topics_and_queues(stack, aws):
    for key in ["AlertsTopicArn", "AlarmsTopicArn"]:
        attributes = aws.sns.get_topic_attributes(TopicArn=stack.outputs[key])["Attributes"]
        assert attributes["TopicArn"] == stack.outputs[key]
    subscriptions = aws.sns.list_subscriptions_by_topic(TopicArn=stack.outputs["AlarmsTopicArn"])["Subscriptions"]
    assert subscriptions == []  # AlarmEmail is empty in every variant
    for key in ["DeadLetterQueueUrl", "FailedBatchesQueueUrl"]:
        attributes = aws.sqs.get_queue_attributes(QueueUrl=stack.outputs[key], AttributeNames=["All"])["Attributes"]
        assert attributes["MessageRetentionPeriod"] == "1209600"
        if attributes.get("SqsManagedSseEnabled") != "true":
            moto_gap(stack.variant, "SQS managed encryption", f"not reported by moto ({attributes.get('SqsManagedSseEnabled')})")


def test_sagemaker_endpoint(stack, aws):
    p = stack.params
    created = {lid for lid in ["SageMakerRole", "SageMakerModel", "SageMakerEndpointConfig", "SageMakerEndpoint"]
               if lid in stack.resources}
    if not stack.conditions["CreateEndpoint"]:
        assert created == set()
        return
    assert len(created) == 4
    endpoint = aws.sagemaker.describe_endpoint(EndpointName=stack.outputs["EndpointName"])
    config = aws.sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    (variant,) = config["ProductionVariants"]
    assert variant["InstanceType"] == p["SageMakerInstanceType"]
    assert int(variant["InitialInstanceCount"]) == int(p["SageMakerInstanceCount"])
    model = aws.sagemaker.describe_model(ModelName=variant["ModelName"])
    assert model["PrimaryContainer"]["Image"] == p["SageMakerImageUri"]
    assert model["PrimaryContainer"]["ModelDataUrl"] == p["SageMakerModelDataUrl"]
    role = aws.iam.get_role(RoleName=stack.physical("SageMakerRole"))["Role"]
    assert model["ExecutionRoleArn"] == role["Arn"]
    document = aws.iam.get_role_policy(RoleName=role["RoleName"], PolicyName="pulse-serve")["PolicyDocument"]
    document = policy_document(document, stack.variant)
    granted = {}
    for s in strip_novalue(document["Statement"], stack.variant):
        for a in s["Action"] if isinstance(s["Action"], list) else [s["Action"]]:
            granted[a] = s["Resource"]
    assert granted == {
        "ecr:GetAuthorizationToken": "*",  # no resource-level permissions
        "ecr:BatchCheckLayerAvailability": f"arn:aws:ecr:us-east-1:{ACCOUNT}:repository/*",
        "ecr:BatchGetImage": f"arn:aws:ecr:us-east-1:{ACCOUNT}:repository/*",
        "ecr:GetDownloadUrlForLayer": f"arn:aws:ecr:us-east-1:{ACCOUNT}:repository/*",
        "logs:CreateLogGroup": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/sagemaker/Endpoints/*",
        "logs:CreateLogStream": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/sagemaker/Endpoints/*",
        "logs:PutLogEvents": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/sagemaker/Endpoints/*",
        "s3:GetObject": "arn:aws:s3:::pulse-models/pulse/model.tar.gz",
    }


def test_alarms(stack, aws):
    """moto cannot create AWS::CloudWatch::Alarm from a template: test_template checks them;
    here, that none exists and that this is said."""
    names = [a["AlarmName"] for a in aws.cloudwatch.describe_alarms(
        AlarmNamePrefix=stack.stack["StackName"] + "-")["MetricAlarms"]]
    expected = [lid for lid in EXPECTED_ALARMS if lid in expected_resources(stack.template, stack.conditions)]
    if names:
        assert len(names) == len(expected)
    else:
        moto_gap(stack.variant, f"{len(expected)} alarms ({', '.join(expected)})",
                 "moto 5.2.5's CloudFormation has no model for AWS::CloudWatch::Alarm: "
                 "test_template.py::test_alarms_in_the_template checks them")


def test_dashboard(stack, aws):
    name = stack.outputs["DashboardName"]
    body = json.loads(aws.cloudwatch.get_dashboard(DashboardName=name)["DashboardBody"])
    metrics: dict[str, set[str]] = {}
    dims: set[tuple[str, str]] = set()
    alarm_arns: list[str] = []
    for widget in body["widgets"]:
        if widget["type"] == "alarm":
            alarm_arns = widget["properties"]["alarms"]
            continue
        namespace = None
        last: list = []
        for row in widget["properties"]["metrics"]:
            row = [x for x in row if not isinstance(x, dict)]
            if row[0] == "...":
                row = last[:-1] + row[1:]
            else:
                row = [prev if x == "." else x for x, prev in zip(row, last + [None] * len(row))]
            namespace = row[0]
            metrics.setdefault(namespace, set()).add(row[1])
            for i in range(2, len(row) - 1, 2):
                dims.add((row[i], row[i + 1]))
            last = row
    for namespace, names in source.metric_names().items():
        assert metrics.get(namespace) == names, namespace
    assert {"Invocations", "Errors", "Throttles", "Duration", "IteratorAge"} <= metrics["AWS/Lambda"]
    queue_names = {stack.outputs[k].rsplit("/", 1)[1] for k in ["DeadLetterQueueUrl", "FailedBatchesQueueUrl"]}
    heads = {("Head", "churn_risk_14d"), ("Head", "churn_risk_30d")}
    assert dims == {("FunctionName", stack.outputs["FunctionName"])} | {("QueueName", q) for q in queue_names} | heads
    prefix = f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{stack.stack['StackName']}-pulse-"
    assert all(a.startswith(prefix) for a in alarm_arns)
    fallback = prefix + "endpoint-fallback"
    assert len(alarm_arns) == 13 + stack.conditions["HasEndpoint"]
    assert (fallback in alarm_arns) == stack.conditions["HasEndpoint"]
