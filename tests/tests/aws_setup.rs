//! The local AWS server answers the real SDK clients, and `pulse`'s setup
//! makes the events table the contract describes (key, stream view type).

mod common;

use pulse_aws::{setup, AwsArgs};
use pulse_e2e::{aws_endpoint, unique_name};

#[tokio::test]
async fn events_table_is_created_once_with_a_new_and_old_images_stream() {
    let config = AwsArgs::local(aws_endpoint()).load().await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = unique_name("events");

    let arn = setup::ensure_events_table(&client, &table).await.expect("table created");
    let again = setup::ensure_events_table(&client, &table).await.expect("second call is a no-op");
    assert_eq!(arn, again, "an existing table keeps its stream");

    let streams = aws_sdk_dynamodbstreams::Client::new(&config);
    let described = streams.describe_stream().stream_arn(&arn).send().await.expect("stream described");
    let description = described.stream_description().expect("description");
    assert_eq!(description.table_name(), Some(table.as_str()));
    assert_eq!(description.stream_view_type(), Some(&aws_sdk_dynamodbstreams::types::StreamViewType::NewAndOldImages));
    let keys: Vec<_> = description.key_schema().iter().map(|k| k.attribute_name().to_string()).collect();
    assert_eq!(keys, ["customer_id", "sk"]);
}

/// A table of that name that pulse cannot read (another key, a stream
/// without both images, no stream) is refused by name, not reported ready
/// (`pulse run` refused it afterwards).
#[tokio::test]
async fn an_existing_table_pulse_cannot_read_is_refused() {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType, StreamSpecification,
        StreamViewType,
    };
    let config = AwsArgs::local(aws_endpoint()).load().await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let attr = |name: &str| {
        AttributeDefinition::builder().attribute_name(name).attribute_type(ScalarAttributeType::S).build().unwrap()
    };
    let key = |name: &str, kind| KeySchemaElement::builder().attribute_name(name).key_type(kind).build().unwrap();
    let stream = |view| StreamSpecification::builder().stream_enabled(true).stream_view_type(view).build().unwrap();
    let cases = [
        (
            "wrong-key",
            vec![key("id", KeyType::Hash)],
            Some(stream(StreamViewType::NewAndOldImages)),
            "keyed customer_id",
        ),
        (
            "keys-only",
            vec![key("customer_id", KeyType::Hash), key("sk", KeyType::Range)],
            Some(stream(StreamViewType::KeysOnly)),
            "carries KEYS_ONLY",
        ),
        ("no-stream", vec![key("customer_id", KeyType::Hash), key("sk", KeyType::Range)], None, "has no stream"),
    ];
    for (name, keys, spec, expected) in cases {
        let table = unique_name(name);
        let mut create = client.create_table().table_name(&table).billing_mode(BillingMode::PayPerRequest);
        for k in &keys {
            create = create.attribute_definitions(attr(k.attribute_name())).key_schema(k.clone());
        }
        create.set_stream_specification(spec).send().await.expect("table created");
        let err = setup::ensure_events_table(&client, &table).await.expect_err(name);
        assert!(format!("{err:#}").contains(expected), "{name}: {err:#}");
    }
}

/// `pulse setup --alerts-topic --dead-letter-queue` makes what `pulse run
/// --score`'s README example needs, and prints it for a shell to take; a
/// second run finds the same ones.
#[test]
fn setup_makes_the_alerts_topic_and_the_dead_letter_queue_and_prints_them() {
    let endpoint = aws_endpoint();
    let (table, topic, queue) = (unique_name("events"), unique_name("alerts"), unique_name("dead"));
    let run = || {
        let out = std::process::Command::new(common::pulse_bin())
            .args(["setup", "--table", &table, "--alerts-topic", &topic, "--dead-letter-queue", &queue])
            .args(["--endpoint-url", &endpoint])
            .output()
            .expect("pulse setup runs");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let stdout = String::from_utf8(out.stdout).unwrap();
        let value = |key: &str| {
            stdout.lines().find_map(|l| l.strip_prefix(key)).unwrap_or_else(|| panic!("{key} in {stdout}")).to_string()
        };
        (value("TOPIC_ARN="), value("QUEUE_URL="))
    };
    let (arn, url) = run();
    assert!(arn.ends_with(&format!(":{topic}")), "{arn}");
    assert!(url.ends_with(&format!("/{queue}")), "{url}");
    assert_eq!(run(), (arn.clone(), url.clone()), "a second setup finds the same topic and queue");

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let config = AwsArgs::local(endpoint.clone()).load().await;
        let topics = aws_sdk_sns::Client::new(&config).list_topics().send().await.unwrap();
        assert!(topics.topics().iter().any(|t| t.topic_arn() == Some(arn.as_str())), "{topics:?}");
        let sqs = aws_sdk_sqs::Client::new(&config);
        let got = sqs.get_queue_url().queue_name(&queue).send().await.unwrap();
        assert_eq!(got.queue_url(), Some(url.as_str()));
    });
}
