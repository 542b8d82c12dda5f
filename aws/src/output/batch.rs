//! Sending entries in batch calls (SNS `PublishBatch`, SQS
//! `SendMessageBatch`: 10 entries and 256 KiB a call), retrying the entries
//! a call reports failed.
//!
//! A call that fails as a whole is retried when [`classify`](crate::retry::classify)
//! says so; within a call that succeeds, an entry failed by the service
//! (`SenderFault = false`: throttled, internal error) is sent again with the
//! next retry, while an entry refused for its content (`SenderFault = true`)
//! is an error: sending it again would fail the same way.

use std::future::Future;

use anyhow::{anyhow, Result};

use crate::retry::{Backoff, Failure};

/// An entry a batch call reports failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct EntryFailure {
    /// The entry's id in the call.
    pub(crate) id: String,
    /// Whether the entry itself is at fault.
    pub(crate) sender_fault: bool,
    /// The service's code and message.
    pub(crate) reason: String,
}

impl EntryFailure {
    /// A failed entry as SNS and SQS report one (their types differ, their
    /// fields do not).
    pub(crate) fn reported(id: &str, sender_fault: bool, code: &str, message: Option<&str>) -> EntryFailure {
        EntryFailure { id: id.to_owned(), sender_fault, reason: format!("{code}: {}", message.unwrap_or("no message")) }
    }
}

/// Groups entries (each with its size in bytes) into calls of at most
/// `max_entries` entries and `max_bytes` bytes, in order.
pub(crate) fn group<E>(entries: Vec<(E, usize)>, max_entries: usize, max_bytes: usize) -> Vec<Vec<E>> {
    let mut out = Vec::new();
    let mut current = Vec::new();
    let mut bytes = 0;
    for (entry, size) in entries {
        if !current.is_empty() && (current.len() == max_entries || bytes + size > max_bytes) {
            out.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += size;
        current.push(entry);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Sends one group with retries; `send` gets `(id, entry)` pairs (ids are the
/// entries' indexes in the group) and returns the failed entries. Returns
/// the number of retries made.
pub(crate) async fn send_group<E, F, Fut>(group: Vec<E>, retry: &Backoff, what: &str, send: F) -> Result<u64>
where
    E: Clone,
    F: Fn(Vec<(String, E)>) -> Fut,
    Fut: Future<Output = Result<Vec<EntryFailure>, Failure>>,
{
    let mut pending: Vec<(String, E)> = group.into_iter().enumerate().map(|(i, e)| (i.to_string(), e)).collect();
    let mut attempt = 0;
    let mut retries = 0;
    loop {
        attempt += 1;
        let failed = match send(pending.clone()).await {
            Ok(failed) => failed,
            Err(failure) if failure.is_retryable() && retry.may_retry(attempt) => {
                tracing::debug!(reason = failure.reason(), attempt, "retrying {what}");
                retries += 1;
                retry.wait_after(&failure, attempt).await;
                continue;
            }
            Err(failure) => {
                return Err(anyhow!("{what} failed after {attempt} attempts: {}", failure.reason()));
            }
        };
        if let Some(bad) = failed.iter().find(|f| f.sender_fault) {
            return Err(anyhow!("{what}: an entry was refused: {}", bad.reason));
        }
        if failed.is_empty() {
            return Ok(retries);
        }
        if !retry.may_retry(attempt) {
            return Err(anyhow!(
                "{what}: {} entries still failing after {attempt} attempts: {}",
                failed.len(),
                failed[0].reason
            ));
        }
        pending.retain(|(id, _)| failed.iter().any(|f| &f.id == id));
        retries += 1;
        retry.wait(attempt).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::time::Duration;

    #[test]
    fn groups_respect_count_and_bytes() {
        let entries: Vec<(u32, usize)> = (0..25).map(|i| (i, if i == 12 { 200 } else { 10 })).collect();
        let groups = group(entries, 10, 250);
        assert_eq!(groups.len(), 3);
        assert_eq!(groups[0], (0..10).collect::<Vec<_>>(), "10 entries at most");
        // 10, 11, 12 (200 bytes), 13, 14, 15 make 250 bytes; 16 would pass 250.
        assert_eq!(groups[1], (10..16).collect::<Vec<_>>());
        assert_eq!(groups[2], (16..25).collect::<Vec<_>>());
        assert!(group(Vec::<(u8, usize)>::new(), 10, 10).is_empty());
        // An entry over the byte limit still goes, alone.
        assert_eq!(group(vec![(1, 5), (2, 500), (3, 5)], 10, 100), [vec![1], vec![2], vec![3]]);
    }

    #[tokio::test(start_paused = true)]
    async fn failed_entries_are_resent_until_delivered() {
        let retry = Backoff { base: Duration::from_millis(10), cap: Duration::from_millis(10), max_attempts: 5 };
        let calls = Mutex::new(Vec::new());
        let retries = send_group(vec!['a', 'b', 'c'], &retry, "test", |entries: Vec<(String, char)>| {
            let n = {
                let mut calls = calls.lock().unwrap();
                calls.push(entries.iter().map(|(_, e)| *e).collect::<String>());
                calls.len()
            };
            async move {
                match n {
                    1 => Err(Failure::Retry("throttled".into())),
                    2 => Ok(vec![EntryFailure { id: "1".into(), sender_fault: false, reason: "internal".into() }]),
                    _ => Ok(vec![]),
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(retries, 2);
        assert_eq!(*calls.lock().unwrap(), ["abc", "abc", "b"]);
    }

    #[tokio::test(start_paused = true)]
    async fn refused_entries_and_fatal_calls_are_errors() {
        let retry = Backoff::default();
        let err = send_group(vec![1], &retry, "publishing alerts", |_| async {
            Ok(vec![EntryFailure { id: "0".into(), sender_fault: true, reason: "InvalidParameter".into() }])
        })
        .await
        .unwrap_err();
        assert!(err.to_string().contains("refused: InvalidParameter"), "{err}");
        let err =
            send_group(vec![1], &retry, "publishing alerts", |_| async { Err(Failure::Fatal("NotFound".into())) })
                .await
                .unwrap_err();
        assert_eq!(err.to_string(), "publishing alerts failed after 1 attempts: NotFound");
        let err = send_group(vec![1], &retry, "x", |_| async { Err(Failure::Retry("503".into())) }).await.unwrap_err();
        assert!(err.to_string().contains("after 4 attempts"), "{err}");
    }
}
