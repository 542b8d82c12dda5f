//! Shard lineage: which shards may be read now.
//!
//! A stream's shards form a forest. DynamoDB Streams closes a shard every few
//! hours and opens a child under the same partition (two children when the
//! partition splits); Kinesis splits a shard into two children and merges two
//! adjacent shards into one child with a parent and an adjacent parent. A
//! customer's records move from parent to child, so the rule that keeps each
//! customer's records in order is: **a shard is read only once every parent
//! has been read to its end and its records processed** (or no longer exists:
//! a parent trimmed by retention has nothing left to wait for).
//!
//! [`Lineage`] is that rule as plain data, fed with complete listings
//! ([`collect_pages`] walks a paginated DescribeStream / ListShards) and told
//! when a shard is started and finished. It is pure and unit-tested with
//! DescribeStream pages in AWS's own response shape (moto cannot split shards).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::future::Future;

use anyhow::{bail, Result};

/// One shard as a listing describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardInfo {
    /// The shard id.
    pub id: String,
    /// The shard it continues (a roll or a split), if any.
    pub parent: Option<String>,
    /// Kinesis merges: the other shard it continues.
    pub adjacent_parent: Option<String>,
    /// Closed for writes (the listing gives an ending sequence number): once
    /// read to its end, it has nothing more.
    pub closed: bool,
}

impl ShardInfo {
    fn parents(&self) -> impl Iterator<Item = &str> {
        self.parent.iter().chain(self.adjacent_parent.iter()).map(String::as_str)
    }
}

/// Walks a paginated listing to its end: `fetch(token)` returns one page and
/// the token of the next (`None` on the last). A token seen twice is an
/// error, not an endless loop.
pub async fn collect_pages<F, Fut>(mut fetch: F) -> Result<Vec<ShardInfo>>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Result<(Vec<ShardInfo>, Option<String>)>>,
{
    let mut all = Vec::new();
    let mut token = None;
    let mut seen = HashSet::new();
    loop {
        let (page, next) = fetch(token.take()).await?;
        all.extend(page);
        match next {
            None => return Ok(all),
            Some(next) if !seen.insert(next.clone()) => {
                bail!("the shard listing returned the page token {next:?} twice; stopping rather than looping")
            }
            Some(next) => token = Some(next),
        }
    }
}

/// The shards of one stream and how far each is.
#[derive(Debug, Default)]
pub struct Lineage {
    listed: BTreeMap<String, ShardInfo>,
    finished: BTreeSet<String>,
    started: BTreeSet<String>,
}

impl Lineage {
    /// A lineage that already read `finished` to their ends (from a checkpoint).
    pub fn new(finished: impl IntoIterator<Item = String>) -> Lineage {
        Lineage { finished: finished.into_iter().collect(), ..Lineage::default() }
    }

    /// Takes a complete listing. Finished shards the listing no longer names
    /// are forgotten (trimmed by retention: nothing can wait for them).
    pub fn update(&mut self, listing: Vec<ShardInfo>) {
        self.listed = listing.into_iter().map(|s| (s.id.clone(), s)).collect();
        self.finished.retain(|id| self.listed.contains_key(id));
    }

    /// Shards that may start now: listed, neither started nor finished, and
    /// every parent finished or no longer listed. In id order (for DynamoDB
    /// Streams and Kinesis, creation order).
    pub fn ready(&self) -> Vec<&ShardInfo> {
        self.listed
            .values()
            .filter(|s| !self.started.contains(&s.id) && !self.finished.contains(&s.id))
            .filter(|s| s.parents().all(|p| self.finished.contains(p) || !self.listed.contains_key(p)))
            .collect()
    }

    /// A reader for `id` started.
    pub fn start(&mut self, id: &str) {
        self.started.insert(id.to_owned());
    }

    /// The reader of `id` stopped before the end (e.g. its lease was lost):
    /// it may be started again.
    pub fn stop(&mut self, id: &str) {
        self.started.remove(id);
    }

    /// `id` was read to its end and its records processed: its children may start.
    pub fn finish(&mut self, id: &str) {
        self.started.remove(id);
        self.finished.insert(id.to_owned());
    }

    /// Every listed shard that is closed counts as finished without being
    /// read: starting at LATEST, history is skipped, and a closed shard has
    /// nothing after its history.
    pub fn skip_closed(&mut self) -> Vec<String> {
        let closed: Vec<String> = self
            .listed
            .values()
            .filter(|s| s.closed && !self.started.contains(&s.id) && !self.finished.contains(&s.id))
            .map(|s| s.id.clone())
            .collect();
        self.finished.extend(closed.iter().cloned());
        closed
    }

    /// Whether the listing is non-empty and every listed shard is finished
    /// (a disabled stream read to its end).
    pub fn all_finished(&self) -> bool {
        !self.listed.is_empty() && self.listed.keys().all(|id| self.finished.contains(id))
    }

    /// Whether `id` is finished.
    pub fn is_finished(&self, id: &str) -> bool {
        self.finished.contains(id)
    }

    /// The finished shards, for the checkpoint.
    pub fn finished(&self) -> impl Iterator<Item = &String> {
        self.finished.iter()
    }

    /// The shard as last listed.
    pub fn get(&self, id: &str) -> Option<&ShardInfo> {
        self.listed.get(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    /// DescribeStream's response, the parts lineage reads.
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct DescribeStreamOutput {
        stream_description: StreamDescription,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct StreamDescription {
        shards: Vec<Shard>,
        last_evaluated_shard_id: Option<String>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Shard {
        shard_id: String,
        parent_shard_id: Option<String>,
        sequence_number_range: Range,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Range {
        starting_sequence_number: String,
        ending_sequence_number: Option<String>,
    }

    /// A recorded page through the SDK's types and pulse's conversion.
    fn page(json: &str) -> (Vec<ShardInfo>, Option<String>) {
        let out: DescribeStreamOutput = serde_json::from_str(json).expect("fixture parses");
        let shards = out
            .stream_description
            .shards
            .into_iter()
            .map(|s| {
                let range = aws_sdk_dynamodbstreams::types::SequenceNumberRange::builder()
                    .starting_sequence_number(s.sequence_number_range.starting_sequence_number)
                    .set_ending_sequence_number(s.sequence_number_range.ending_sequence_number)
                    .build();
                let sdk = aws_sdk_dynamodbstreams::types::Shard::builder()
                    .shard_id(s.shard_id)
                    .set_parent_shard_id(s.parent_shard_id)
                    .sequence_number_range(range)
                    .build();
                crate::live::api::streams_shard_info(&sdk).expect("has an id")
            })
            .collect();
        (shards, out.stream_description.last_evaluated_shard_id)
    }

    const FORUM: [&str; 2] = [
        include_str!("testdata/describe_stream_forum_page1.json"),
        include_str!("testdata/describe_stream_forum_page2.json"),
    ];

    fn split_pages() -> Vec<String> {
        let pages: Vec<serde_json::Value> =
            serde_json::from_str(include_str!("testdata/describe_stream_split_pages.json")).unwrap();
        pages.iter().map(|p| p.to_string()).collect()
    }

    type PageResult = std::future::Ready<Result<(Vec<ShardInfo>, Option<String>)>>;

    /// Serves recorded pages by `ExclusiveStartShardId`, like DescribeStream.
    fn serve(pages: &[String]) -> impl FnMut(Option<String>) -> PageResult + '_ {
        move |start| {
            let index = match start {
                None => 0,
                Some(after) => {
                    let Some(i) = pages.iter().position(|p| page(p).1.as_deref() == Some(after.as_str())) else {
                        return std::future::ready(Err(anyhow::anyhow!("no page after {after}")));
                    };
                    i + 1
                }
            };
            std::future::ready(Ok(page(&pages[index])))
        }
    }

    fn listing(pages: &[String]) -> Vec<ShardInfo> {
        block_on(collect_pages(serve(pages))).expect("listing")
    }

    /// A tiny executor for the ready futures of the recorded pages.
    fn block_on<T>(f: impl Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
    }

    fn ids(shards: Vec<&ShardInfo>) -> Vec<String> {
        shards.into_iter().map(|s| s.id.clone()).collect()
    }

    #[test]
    fn pagination_follows_last_evaluated_shard_id_to_the_end() {
        let pages: Vec<String> = FORUM.iter().map(|s| s.to_string()).collect();
        let all = listing(&pages);
        assert_eq!(all.len(), 4);
        assert_eq!(all[0].id, "shardId-00000001414562045508-2bac9cd2");
        assert!(all[0].closed && all[2].closed && !all[3].closed);
        assert_eq!(all[3].parent.as_deref(), Some("shardId-00000001414591258131-213d3c2d"));
    }

    #[test]
    fn a_repeated_page_token_is_an_error_not_a_loop() {
        let looping = |_start: Option<String>| std::future::ready(Ok((Vec::new(), Some("same".to_owned()))));
        let err = block_on(collect_pages(looping)).unwrap_err();
        assert!(err.to_string().contains("twice"), "{err}");
    }

    #[test]
    fn a_chain_of_rolled_shards_is_read_one_generation_at_a_time() {
        let pages: Vec<String> = FORUM.iter().map(|s| s.to_string()).collect();
        let chain: Vec<String> = listing(&pages).into_iter().map(|s| s.id).collect();
        let mut lineage = Lineage::default();
        lineage.update(listing(&pages));
        for (generation, id) in chain.iter().enumerate() {
            assert_eq!(ids(lineage.ready()), std::slice::from_ref(id), "generation {generation}: only {id} may start");
            lineage.start(id);
            assert!(lineage.ready().is_empty(), "nothing else while {id} is read");
            lineage.finish(id);
        }
        assert!(lineage.ready().is_empty());
    }

    #[test]
    fn partitions_run_side_by_side_and_split_children_wait_for_their_parent() {
        let pages = split_pages();
        let mut lineage = Lineage::default();
        lineage.update(listing(&pages));
        let a = "shardId-00000001767600000000-0a0a0a0a";
        let b = "shardId-00000001767600000100-0b0b0b0b";
        // a's parent was trimmed (not listed): nothing to wait for.
        assert_eq!(ids(lineage.ready()), [a, b]);
        lineage.start(a);
        lineage.start(b);
        lineage.finish(b);
        assert_eq!(
            ids(lineage.ready()),
            ["shardId-00000001767614400100-2b2b2b2b", "shardId-00000001767614400200-3b3b3b3b"],
            "both children of the split, not a's child"
        );
        lineage.finish(a);
        assert_eq!(
            ids(lineage.ready()),
            [
                "shardId-00000001767614400000-1a1a1a1a",
                "shardId-00000001767614400100-2b2b2b2b",
                "shardId-00000001767614400200-3b3b3b3b"
            ]
        );
    }

    #[test]
    fn starting_at_latest_skips_closed_shards_and_reads_the_open_ones() {
        let pages = split_pages();
        let mut lineage = Lineage::default();
        lineage.update(listing(&pages));
        let skipped = lineage.skip_closed();
        assert_eq!(skipped, ["shardId-00000001767600000000-0a0a0a0a", "shardId-00000001767600000100-0b0b0b0b"]);
        assert_eq!(ids(lineage.ready()).len(), 3, "the three open shards");
    }

    #[test]
    fn finished_shards_from_a_checkpoint_are_kept_while_listed_and_forgotten_once_trimmed() {
        let pages = split_pages();
        let a = "shardId-00000001767600000000-0a0a0a0a";
        let mut lineage = Lineage::new([a.to_owned(), "shardId-gone".to_owned()]);
        lineage.update(listing(&pages));
        assert!(lineage.is_finished(a));
        assert!(!lineage.is_finished("shardId-gone"));
        assert!(ids(lineage.ready()).contains(&"shardId-00000001767614400000-1a1a1a1a".to_owned()));
    }

    #[test]
    fn a_merged_kinesis_shard_waits_for_both_parents() {
        let shard = |id: &str, parent: Option<&str>, adjacent: Option<&str>, closed| ShardInfo {
            id: id.into(),
            parent: parent.map(Into::into),
            adjacent_parent: adjacent.map(Into::into),
            closed,
        };
        let mut lineage = Lineage::default();
        lineage.update(vec![
            shard("shardId-000000000000", None, None, true),
            shard("shardId-000000000001", None, None, true),
            shard("shardId-000000000002", Some("shardId-000000000000"), Some("shardId-000000000001"), false),
        ]);
        assert_eq!(ids(lineage.ready()), ["shardId-000000000000", "shardId-000000000001"]);
        lineage.start("shardId-000000000000");
        lineage.start("shardId-000000000001");
        lineage.finish("shardId-000000000000");
        assert!(lineage.ready().is_empty(), "the adjacent parent is still being read");
        lineage.finish("shardId-000000000001");
        assert_eq!(ids(lineage.ready()), ["shardId-000000000002"]);
    }

    #[test]
    fn a_stopped_reader_can_start_again() {
        let mut lineage = Lineage::default();
        lineage.update(vec![ShardInfo { id: "s".into(), parent: None, adjacent_parent: None, closed: false }]);
        lineage.start("s");
        assert!(lineage.ready().is_empty());
        lineage.stop("s");
        assert_eq!(ids(lineage.ready()), ["s"]);
    }
}
