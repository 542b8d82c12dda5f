//! Shard leases in a DynamoDB table on the local AWS server
//! (`pulse run --checkpoint-table`): two consumers never own one shard.
//!
//! * `a_lease_is_refused_while_live_and_taken_over_after_expiry`: the lease
//!   semantics with explicit clock values (no sleeping): a second owner is
//!   refused while the first's lease is live, takes the shard over once it
//!   expired, and from then on the first can neither move the position nor
//!   take the lease back; a released lease is free at once; a finished shard
//!   stays finished.
//! * `a_second_consumer_reads_nothing_while_the_first_owns_the_shard`: two
//!   live consumers of one table share a lease table. While the first runs,
//!   the second reads no record; once the first stops (releasing its lease),
//!   the second takes the shard over at the first's position (reading nothing
//!   twice) and reads what is written next.

mod common;
#[path = "common/live.rs"]
mod live;

use std::time::{Duration, Instant};

use common::D;
use live::*;
use pulse_aws::live::lease::{Acquired, LeaseTable};
use pulse_aws::live::LeaseConfig;
use pulse_e2e::unique_name;
use pulse_operators::TimerPolicy;

const LEASE_MS: i64 = 30_000;

#[test]
fn a_lease_is_refused_while_live_and_taken_over_after_expiry() {
    block_on(async {
        let sdk = sdk().await;
        let client = aws_sdk_dynamodb::Client::new(&sdk);
        let table = unique_name("leases");
        LeaseTable::ensure_table(&client, &table).await.unwrap();
        LeaseTable::ensure_table(&client, &table).await.expect("an existing table is fine");
        let a = LeaseTable::new(client.clone(), &table, "stream-1", "consumer-a", LEASE_MS);
        let b = LeaseTable::new(client.clone(), &table, "stream-1", "consumer-b", LEASE_MS);
        let t0 = 1_000_000;

        let Acquired::Owned(item) = a.acquire("shard-1", t0).await.unwrap() else { panic!("a free shard is taken") };
        assert_eq!((item.owner.as_deref(), item.sequence_number), (Some("consumer-a"), None));
        assert!(a.commit("shard-1", Some("100"), false, t0 + 1_000).await.unwrap());

        assert_eq!(
            b.acquire("shard-1", t0 + 10_000).await.unwrap(),
            Acquired::Refused { owner: "consumer-a".into(), expires_ms: t0 + 1_000 + LEASE_MS },
            "refused while a's (renewed) lease is live"
        );
        assert!(matches!(a.acquire("shard-1", t0 + 20_000).await.unwrap(), Acquired::Owned(_)), "the owner renews");

        // a stops renewing; after expiry b takes over at a's position.
        let later = t0 + 20_000 + LEASE_MS + 1;
        let Acquired::Owned(item) = b.acquire("shard-1", later).await.unwrap() else {
            panic!("an expired lease is free")
        };
        assert_eq!((item.owner.as_deref(), item.sequence_number.as_deref()), (Some("consumer-b"), Some("100")));
        assert!(!a.commit("shard-1", Some("150"), false, later + 1).await.unwrap(), "a lost the shard");
        assert!(matches!(a.acquire("shard-1", later + 2).await.unwrap(), Acquired::Refused { .. }));
        assert_eq!(b.get("shard-1").await.unwrap().unwrap().sequence_number.as_deref(), Some("100"), "a moved nothing");

        // A released lease is free at once; a finished shard says so.
        assert!(b.commit("shard-1", Some("200"), false, later + 3).await.unwrap());
        b.release("shard-1").await.unwrap();
        let Acquired::Owned(item) = a.acquire("shard-1", later + 4).await.unwrap() else { panic!("released") };
        assert_eq!(item.sequence_number.as_deref(), Some("200"));
        assert!(a.commit("shard-1", Some("250"), true, later + 5).await.unwrap());
        let Acquired::Owned(item) = b.acquire("shard-1", later + 6).await.unwrap() else {
            panic!("finished leases end")
        };
        assert!(item.finished);

        // Leases are per stream.
        let other = LeaseTable::new(client, &table, "stream-2", "consumer-c", LEASE_MS);
        assert!(matches!(other.acquire("shard-1", t0).await.unwrap(), Acquired::Owned(_)));
        assert_eq!(a.all().await.unwrap().len(), 1);
    });
}

#[test]
fn a_second_consumer_reads_nothing_while_the_first_owns_the_shard() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    block_on(async {
        let sdk = sdk().await;
        let (table, _) = events_table(&sdk, "live-lease").await;
        let lease_table = unique_name("live-lease-leases");
        let mut w = TableWriter::new(&sdk, &table);
        w.write_lines(&synth_lines(40, 2, 3, writable_hostility())).await;
        let first_part = w.expected.len() as u64;
        let api = table_stream(&sdk, &table).await;
        let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
        let config = |name: &str| {
            let mut c = test_config(TimerPolicy::default(), Some(path(&format!("{name}.ckpt"))));
            c.leases = Some(LeaseConfig { table: lease_table.clone(), owner: name.to_owned(), lease_ms: 60_000 });
            c
        };
        let consumer = |name: &str, idle_exit: Option<Duration>| {
            let mut c = config(name);
            c.idle_exit = idle_exit;
            let (api, dynamodb) = (api.clone(), dynamodb.clone());
            let (f, d) = (path(&format!("{name}.jsonl")), path(&format!("{name}-dead.jsonl")));
            async move {
                let consumer = pulse_aws::live::Consumer::prepare(c, api, Some(dynamodb)).await.unwrap();
                let sink = pulse_runtime::files::FileSink::open(Some(&f), Some(&d), consumer.sink_state()).unwrap();
                (consumer, sink)
            }
        };

        // The first consumer runs until told to stop.
        let (first, sink) = consumer("first", None).await;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(first.run(sink, async {
            let _ = stopped.await;
        }));
        let leases = LeaseTable::new(dynamodb.clone(), &lease_table, api.id(), "observer", 1);
        let deadline = Instant::now() + Duration::from_secs(60);
        // Owned, and checkpointed up to the end of what was written.
        loop {
            let items = leases.all().await.unwrap();
            let done = items.values().any(|i| i.owner.as_deref() == Some("first") && i.sequence_number.is_some())
                && std::fs::metadata(path("first.ckpt")).is_ok();
            if done {
                break;
            }
            assert!(Instant::now() < deadline, "the first consumer never took its lease");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        let (second, sink) = consumer("second", Some(Duration::from_millis(1500))).await;
        let summary = second.run(sink, std::future::pending()).await.unwrap();
        assert_eq!(summary.records_this_run, 0, "the shard belongs to the first consumer");

        stop.send(()).unwrap();
        let first_summary = running.await.unwrap().unwrap();
        assert_eq!(first_summary.totals.records, first_part);

        // Released: the second takes over at the first's position and reads only what follows.
        w.put(event_image("stu_new", "n1", "login", now_ms() - D, &[])).await;
        let (second, sink) = consumer("second", Some(Duration::from_millis(1500))).await;
        let summary = second.run(sink, std::future::pending()).await.unwrap();
        assert_eq!(summary.records_this_run, 1, "only the record written after the first stopped");
        let vectors = common::parse_vectors(&std::fs::read(path("second.jsonl")).unwrap());
        assert!(vectors.iter().any(|v| v.customer_id.as_str() == "stu_new"));
    });
}
