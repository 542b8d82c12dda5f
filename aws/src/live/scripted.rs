//! An in-memory stream for the live loop's unit tests: shards with their
//! lineage and records, and scripted faults per GetRecords call (an expired
//! iterator, trimmed data, throttling, a vanished shard, a fatal error), so
//! the readers, the lineage, [`super::ShardSource`] and the driver run
//! together on tokio's paused clock without a server. The integration with
//! the real services is tested against the local server (`tests/tests/live_*.rs`).

use std::collections::VecDeque;
use std::sync::Mutex;

use super::api::{ErrorKind, LiveRecord, Page, ReadError, StartAt};
use super::lineage::ShardInfo;

/// What a scripted GetRecords call does before it is served.
#[derive(Clone, Debug)]
pub(crate) enum Fault {
    /// Fails with this kind.
    Error(ErrorKind),
    /// Retention drops the shard's first `n` records, then the call is served.
    TrimTo(usize),
}

#[derive(Debug)]
struct Shard {
    info: ShardInfo,
    records: Vec<LiveRecord>,
    /// Records dropped by retention, from the head.
    trimmed: usize,
    /// One entry per GetRecords call, in order; `None` serves it as is.
    faults: VecDeque<Option<Fault>>,
}

/// The stream.
#[derive(Debug, Default)]
pub(crate) struct Script {
    shards: Mutex<Vec<Shard>>,
}

impl Script {
    /// Adds a shard: `closed` ones end once read; `records` are
    /// `(sequence number, capture line)`.
    pub(crate) fn shard(self, id: &str, parent: Option<&str>, closed: bool, records: Vec<(u64, String)>) -> Script {
        let info = ShardInfo { id: id.into(), parent: parent.map(Into::into), adjacent_parent: None, closed };
        let records = records
            .into_iter()
            .map(|(seq, line)| LiveRecord { sequence_number: format!("{seq:021}"), line: line.into_bytes() })
            .collect();
        self.shards.lock().unwrap().push(Shard { info, records, trimmed: 0, faults: VecDeque::new() });
        self
    }

    /// The faults of `id`'s next GetRecords calls, in order.
    pub(crate) fn faults(self, id: &str, faults: impl IntoIterator<Item = Option<Fault>>) -> Script {
        self.with(id, |s| s.faults.extend(faults));
        self
    }

    fn with<T>(&self, id: &str, f: impl FnOnce(&mut Shard) -> T) -> Option<T> {
        self.shards.lock().unwrap().iter_mut().find(|s| s.info.id == id).map(f)
    }

    pub(crate) fn list_shards(&self) -> Vec<ShardInfo> {
        self.shards.lock().unwrap().iter().map(|s| s.info.clone()).collect()
    }

    /// Iterators are `shard/index of the next record`.
    pub(crate) fn iterator(&self, id: &str, at: &StartAt) -> Result<String, ReadError> {
        let index = self.with(id, |s| match at {
            StartAt::TrimHorizon => Ok(s.trimmed),
            StartAt::Latest => Ok(s.records.len()),
            StartAt::After(seq) => match s.records.iter().position(|r| &r.sequence_number == seq) {
                Some(i) if i + 1 >= s.trimmed => Ok(i + 1),
                _ => Err(error(ErrorKind::Trimmed, "the sequence number is beyond retention")),
            },
        });
        let index = index.ok_or_else(|| error(ErrorKind::NotFound, "no such shard"))??;
        Ok(format!("{id}/{index}"))
    }

    pub(crate) fn records(&self, iterator: &str, limit: i32) -> Result<Page, ReadError> {
        let (id, index) = iterator.rsplit_once('/').expect("a scripted iterator");
        let index: usize = index.parse().expect("a scripted iterator");
        let served = self.with(id, |s| {
            match s.faults.pop_front().flatten() {
                Some(Fault::Error(kind)) => return Err(error(kind, "scripted")),
                Some(Fault::TrimTo(n)) => s.trimmed = n,
                None => {}
            }
            if index < s.trimmed {
                return Err(error(ErrorKind::Trimmed, "the iterator points before the oldest record retained"));
            }
            let end = (index + limit as usize).min(s.records.len());
            let records = s.records[index..end].to_vec();
            let next = (!(s.info.closed && end == s.records.len())).then(|| format!("{id}/{end}"));
            Ok(Page { records, next, millis_behind: None })
        });
        served.ok_or_else(|| error(ErrorKind::NotFound, "no such shard"))?
    }
}

fn error(kind: ErrorKind, detail: &str) -> ReadError {
    ReadError { kind, detail: format!("GetRecords failed: {detail}") }
}
