//! Helpers of the Lambda tests: event items of the contract, PutItem, GetItem, and
//! records in the JSON shape Lambda delivers.
#![allow(dead_code)]

use std::collections::HashMap;

use aws_lambda_events::event::dynamodb::Event;
use aws_sdk_dynamodb::types::AttributeValue as Av;
use serde_json::{json, Value};

/// An event item of the contract: key, `entity_type`, id, type, ts and the
/// type's own attributes (`(name, "S"|"N", value)`).
pub fn event_item(
    customer: &str,
    id: &str,
    ts: i64,
    event_type: &str,
    attrs: &[(&str, &str, &str)],
) -> HashMap<String, Av> {
    let mut item = HashMap::from([
        ("customer_id".to_string(), Av::S(customer.into())),
        ("sk".to_string(), Av::S(format!("EVT#{ts:013}#{id}"))),
        ("entity_type".to_string(), Av::S("event".into())),
        ("event_id".to_string(), Av::S(id.into())),
        ("event_type".to_string(), Av::S(event_type.into())),
        ("ts".to_string(), Av::N(ts.to_string())),
    ]);
    for (name, kind, value) in attrs {
        let v = if *kind == "N" { Av::N(value.to_string()) } else { Av::S(value.to_string()) };
        item.insert(name.to_string(), v);
    }
    item
}

pub async fn put(client: &aws_sdk_dynamodb::Client, table: &str, item: &HashMap<String, Av>) {
    client.put_item().table_name(table).set_item(Some(item.clone())).send().await.expect("PutItem");
}

/// A customer's item with sort key `sk` (a consistent read).
pub async fn get(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    customer: &str,
    sk: &str,
) -> Option<HashMap<String, Av>> {
    let key = pulse_aws::item_key(customer, sk);
    client.get_item().table_name(table).set_key(Some(key)).consistent_read(true).send().await.expect("GetItem").item
}

/// A Lambda DynamoDB record in AWS's JSON shape, for an item.
pub fn lambda_record(
    name: &str,
    created_ms: i64,
    seq: u64,
    new: Option<&HashMap<String, Av>>,
    old: Option<&HashMap<String, Av>>,
) -> Value {
    let image = |item: &HashMap<String, Av>| {
        let map: serde_json::Map<String, Value> = item
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    Av::S(s) => json!({ "S": s }),
                    Av::N(n) => json!({ "N": n }),
                    other => panic!("no such attribute in these tests: {other:?}"),
                };
                (k.clone(), v)
            })
            .collect();
        Value::Object(map)
    };
    let key = new.or(old).unwrap();
    let mut dynamodb = json!({
        "ApproximateCreationDateTime": created_ms / 1000,
        "Keys": {"customer_id": image(key)["customer_id"], "sk": image(key)["sk"]},
        "SequenceNumber": format!("{seq:028}"),
        "SizeBytes": 200,
        "StreamViewType": "NEW_AND_OLD_IMAGES"
    });
    if let Some(new) = new {
        dynamodb["NewImage"] = image(new);
    }
    if let Some(old) = old {
        dynamodb["OldImage"] = image(old);
    }
    json!({
        "eventID": format!("ev{seq}"),
        "eventName": name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": dynamodb,
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/marketplace-events/stream/2026-01-05T00:00:00.000"
    })
}

pub fn event_of(records: &[Value]) -> Event {
    serde_json::from_value(json!({ "Records": records })).expect("a Lambda DynamoDB event")
}

/// An iterator at the oldest record of `shard` of the stream `arn`.
pub async fn trim_horizon(client: &aws_sdk_dynamodbstreams::Client, arn: &str, shard: &str) -> Option<String> {
    client
        .get_shard_iterator()
        .stream_arn(arn)
        .shard_id(shard)
        .shard_iterator_type(aws_sdk_dynamodbstreams::types::ShardIteratorType::TrimHorizon)
        .send()
        .await
        .expect("GetShardIterator")
        .shard_iterator
}
