"""End to end on the deployed stack (variant dynamodb-streams): events
written into the stack's table, the real `bootstrap` (PULSE_BOOTSTRAP, the
function `sam build` packs) run under a Runtime API with the deployed
function's own environment on two batches of those writes (the first a
backfill of one customer's history, each record created at its event's
time; the second the rest), and the results
found where the stack's outputs say: predictions in the predictions table,
alerts on the alerts topic, dead letters in the dead-letter queue, due items
in the due index.

Moto gap: moto emulates the stack's event source mapping itself. Each write
to a table with a mapping is "delivered" at once to moto's Lambda emulation
(which needs Docker, absent here) and removed from the stream, so the
stream holds nothing to read afterwards. The batch is therefore built from
the writes as DynamoDB Streams records them (INSERT, keys, NewImage, the
write's second as ApproximateCreationDateTime, increasing sequence numbers,
in Lambda's JSON shape); reading a table's stream into the same shape is
tested against a table without a mapping in tests/tests/lambda_table.rs."""

from __future__ import annotations

import json
import time
from pathlib import Path

from conftest import deploy, moto_gap
from runtime_api import run_function
import source

DAY_MS = 86_400_000


def event_item(customer: str, event_id: str, ts: int, event_type: str, **attrs) -> dict:
    item = {
        "customer_id": {"S": customer},
        "sk": {"S": f"EVT#{ts:013d}#{event_id}"},
        "entity_type": {"S": "event"},
        "event_id": {"S": event_id},
        "event_type": {"S": event_type},
        "ts": {"N": str(ts)},
    }
    for name, value in attrs.items():
        item[name] = {"N": str(value)} if isinstance(value, (int, float)) else {"S": value}
    return item


class Writer:
    """Writes items into a table and keeps the records DynamoDB Streams
    would deliver for them to the event source mapping (see the module doc)."""

    def __init__(self, aws, table: str, stream_arn: str):
        self.aws, self.table, self.stream_arn = aws, table, stream_arn
        self.records: list[dict] = []

    def put(self, item: dict, created_s: int | None = None) -> None:
        """Writes `item`; its record is created now, or at `created_s` (a
        backfill of history, as a bulk load's records would be stamped)."""
        self.aws.dynamodb.put_item(TableName=self.table, Item=item)
        n = len(self.records) + 1
        keys = {k: item[k] for k in ("customer_id", "sk")}
        self.records.append({
            "eventID": f"e2e-{n}",
            "eventName": "INSERT",
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1",
            "dynamodb": {
                "ApproximateCreationDateTime": int(time.time()) if created_s is None else created_s,
                "Keys": keys,
                "NewImage": item,
                "SequenceNumber": f"{n:021d}",
                "SizeBytes": len(json.dumps(item)),
                "StreamViewType": "NEW_AND_OLD_IMAGES",
            },
            "eventSourceARN": self.stream_arn,
        })


def test_events_through_the_deployed_function(aws, code_bucket, endpoint_url, tmp_path: Path):
    stack = deploy(aws, "dynamodb-streams")
    o = stack.outputs
    table, topic, dlq = o["EventsTableName"], o["AlertsTopicArn"], o["DeadLetterQueueUrl"]
    predictions_table = o["PredictionsTableName"]
    config = aws.awslambda.get_function_configuration(FunctionName=o["FunctionName"])
    env = {k: str(v) for k, v in config["Environment"]["Variables"].items()}

    # Alerts reach a queue subscribed to the stack's topic.
    inbox = aws.sqs.create_queue(QueueName=f"alerts-inbox-{stack.stack['StackName']}")["QueueUrl"]
    inbox_arn = aws.sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    aws.sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=inbox_arn, Attributes={"RawMessageDelivery": "true"})

    moto_gap("dynamodb-streams", "the end-to-end batch read from the stack's stream",
             "moto's own mapping emulation consumes the stream records; the batch is built from the writes")
    writer = Writer(aws, table, o["StreamArn"])
    now = int(time.time() * 1000)
    # A customer active for eight days 48 to 41 days ago, then silent; two
    # active ones; and a record from the future (a dead letter). The first
    # customer's records are a backfill, each created at its event's time,
    # and reach the function in a batch of their own: its first prediction
    # past its first week (a new customer's are not judged), the baseline,
    # is a healthy customer's. The second batch moves stream time 41 days
    # on, past its daily timers: its risk rises, and it alerts.
    for d in reversed(range(8)):
        ts = now - (41 + d) * DAY_MS
        writer.put(event_item("stu_silent", f"s-l{d}", ts, "login"), created_s=ts // 1000)
        writer.put(
            event_item("stu_silent", f"s-s{d}", ts + 1, "session_completed", duration_min=30, tutor_id="tut_1"),
            created_s=ts // 1000,
        )
    backfill = len(writer.records)
    for i in range(2):
        c = f"stu_active_{i}"
        for d in range(5):
            ts = now - d * DAY_MS
            writer.put(event_item(c, f"{c}-l{d}", ts, "login"))
            writer.put(event_item(c, f"{c}-s{d}", ts + 1, "session_completed", duration_min=45, tutor_id="tut_2"))
    writer.put(event_item("stu_future", "f1", now + 3 * DAY_MS, "login"))
    records = writer.records
    assert (backfill, len(records)) == (16, 16 + 20 + 1)
    answers = run_function(
        source.bootstrap(),
        {**env, "AWS_ENDPOINT_URL": endpoint_url, "AWS_REGION": "us-east-1",
         "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"},
        [{"Records": records[:backfill]}, {"Records": records[backfill:]}],
        tmp_path / "function.log",
    )
    log = (tmp_path / "function.log").read_text(errors="replace")
    assert answers == [("response", {"batchItemFailures": []})] * 2, log

    # Predictions, where the stack says (PRED#latest items).
    stored = {}
    for c in ("stu_silent", "stu_active_0", "stu_active_1"):
        item = aws.dynamodb.get_item(
            TableName=predictions_table, Key={"customer_id": {"S": c}, "sk": {"S": "PRED#latest"}}, ConsistentRead=True
        ).get("Item")
        assert item, f"no prediction for {c} in {predictions_table}: {log}"
        stored[c] = item
    risk = {c: float(i["churn_risk_14d"]["N"]) for c, i in stored.items()}
    # The silent customer's last vector is a timer's, 40 days into its silence.
    assert int(stored["stu_silent"]["as_of"]["N"]) > now - 2 * DAY_MS, stored["stu_silent"]
    assert risk["stu_silent"] > max(risk["stu_active_0"], risk["stu_active_1"]), risk

    # Alerts on the topic: exactly the customers stored above 0.7.
    alerted = set()
    for _ in range(5):
        got = aws.sqs.receive_message(QueueUrl=inbox, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        messages = [json.loads(m["Body"]) for m in got]
        alerted |= {m["customer_id"] for m in messages}
        # A rise from the first batch's healthy baseline, not a first prediction.
        assert all(m.get("previous_churn_risk_14d") is not None and m["previous_churn_risk_14d"] <= 0.7
                   for m in messages), messages
        if not got:
            break
    assert alerted == {c for c, r in risk.items() if r > 0.7}, (alerted, risk)
    assert "stu_silent" in alerted, risk

    # The record from the future: a dead letter in the stack's queue.
    dead = aws.sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10).get("Messages", [])
    assert [json.loads(m["Body"])["code"] for m in dead] == ["future_event"], dead

    # Due items: every customer scored has its next timer in the index.
    for c in stored:
        due = aws.dynamodb.get_item(
            TableName=table, Key={"customer_id": {"S": c}, "sk": {"S": "DUE"}}, ConsistentRead=True
        ).get("Item")
        assert due and "due_hour" in due, (c, due)


def test_a_failed_invocation_is_logged_once_with_its_request_id(tmp_path: Path):
    """A payload that is no event fails the invocation as a whole: the
    Runtime API gets a named error, and the log says it once, in the
    invocation's span (its request id), not once by pulse and again by the
    runtime (a review, 2026-12-05)."""
    log = tmp_path / "function.log"
    env = {"TABLE_NAME": "events", "SCORE": "off", "AWS_REGION": "us-east-1",
           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}
    answers = run_function(source.bootstrap(), env, [["not", "an", "event"]], log, timeout_s=60)
    text = log.read_text(errors="replace")
    assert [kind for kind, _ in answers] == ["error"], (answers, text)
    assert answers[0][1]["errorType"] == "pulse.InvocationFailed", answers
    assert "not a JSON object" in answers[0][1]["errorMessage"], answers
    lines = [line for line in text.splitlines() if "not a JSON object" in line]
    assert len(lines) == 1, text
    assert "req-1-" in lines[0], text


def test_a_failed_batch_is_counted_and_logged_once(tmp_path: Path):
    """A batch the function cannot complete (here no AWS endpoint answers:
    the customer's history cannot be read) is answered with its records
    failed, which is no Lambda error: pulse's own `Errors` metric counts it
    (it stayed 0 while every batch of a stack failed, a review 2026-12-06),
    and the log says the failure once."""
    log = tmp_path / "function.log"
    env = {"TABLE_NAME": "events", "AWS_REGION": "us-east-1",
           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_MAX_ATTEMPTS": "1"}
    now = int(time.time() * 1000)
    item = event_item("stu_1", "e1", now, "login")
    record = {
        "eventID": "1", "eventName": "INSERT", "eventVersion": "1.1", "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {"ApproximateCreationDateTime": now // 1000,
                     "Keys": {k: item[k] for k in ("customer_id", "sk")}, "NewImage": item,
                     "SequenceNumber": "000000000000000000001", "SizeBytes": 100,
                     "StreamViewType": "NEW_AND_OLD_IMAGES"},
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/events/stream/x",
    }
    answers = run_function(source.bootstrap(), env, [{"Records": [record]}], log, timeout_s=120)
    text = log.read_text(errors="replace")
    assert answers == [("response", {"batchItemFailures": [{"itemIdentifier": "000000000000000000001"}]})], text
    failures = [line for line in text.splitlines() if "batch failed" in line]
    assert len(failures) == 1, text
    emf = [json.loads(line) for line in text.splitlines() if line.startswith("{") and '"pulse/Pipeline"' in line]
    assert emf and emf[-1]["Errors"] >= 1, text
