//! The worker's edge to the pipeline bus: PutEvents in calls of up to ten entries, retrying the
//! call and each entry that failed retryably with the one runner, and saying which entries
//! could not be published and why. `ProfileCreated` announcements and the lifecycle's events
//! (`UserDeleted`, `ProfileDeleted`, a re-published `UserConfirmed`) all go out through it.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use tokio::time::Instant;
use uc_runtime::aws::{classify_sdk_error, entry_failure};
use uc_runtime::{Failure, FailureKind, RetryPolicy};

/// PutEvents takes at most ten entries.
pub const BATCH: usize = 10;

/// Quick retries only: the messages that wait for these are settled after them.
const PUBLISH_RETRY: RetryPolicy = RetryPolicy {
    max_attempts: 3,
    min_delay: Duration::from_millis(50),
    max_delay: Duration::from_millis(400),
    min_attempt_time: Duration::from_millis(50),
};

/// One event for the bus: its `detail-type` and its `detail` as JSON text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusEntry {
    pub detail_type: &'static str,
    pub detail: String,
}

impl BusEntry {
    pub fn new(detail_type: &'static str, detail: &impl serde::Serialize) -> Self {
        Self {
            detail_type,
            detail: serde_json::to_string(detail).expect("contract types serialize"),
        }
    }
}

/// Where the worker publishes.
pub trait EventSink: Send + Sync {
    /// Publishes `entries` (at most [`BATCH`]); returns the indices of those that could not be
    /// published, each with why.
    fn publish(
        &self,
        entries: &[BusEntry],
        deadline: Option<Instant>,
    ) -> impl Future<Output = Vec<(usize, Failure)>> + Send;
}

/// The pipeline bus, with the deployment's `source`.
#[derive(Debug, Clone)]
pub struct EventBridgeSink {
    client: aws_sdk_eventbridge::Client,
    bus: String,
    source: String,
}

impl EventBridgeSink {
    /// `client` should have the SDK's own retries off: these are the runner's.
    pub fn new(client: aws_sdk_eventbridge::Client, bus: String, source: String) -> Self {
        Self {
            client,
            bus,
            source,
        }
    }
}

impl EventSink for EventBridgeSink {
    async fn publish(
        &self,
        entries: &[BusEntry],
        deadline: Option<Instant>,
    ) -> Vec<(usize, Failure)> {
        let pending = Mutex::new((0..entries.len()).collect::<Vec<_>>());
        let refused = Mutex::new(Vec::new());
        let attempt = |attempt: uc_runtime::Attempt| {
            let batch = pending.lock().unwrap().clone();
            let (pending, refused) = (&pending, &refused);
            async move {
                let request = batch.iter().map(|&index| {
                    PutEventsRequestEntry::builder()
                        .event_bus_name(&self.bus)
                        .source(&self.source)
                        .detail_type(entries[index].detail_type)
                        .detail(&entries[index].detail)
                        .build()
                });
                let call = self
                    .client
                    .put_events()
                    .set_entries(Some(request.collect()))
                    .send();
                let output = match tokio::time::timeout(attempt.bound(Duration::from_secs(2)), call)
                    .await
                {
                    Err(_) => return Err(Failure::retryable("Timeout", "PutEvents took too long")),
                    Ok(result) => result.map_err(|e| classify_sdk_error(&e))?,
                };
                let mut retry = Vec::new();
                let mut last = None;
                for (&index, entry) in batch.iter().zip(output.entries()) {
                    if entry.error_code().is_none() {
                        continue;
                    }
                    let failure = entry_failure(entry.error_code(), entry.error_message());
                    if failure.is_retryable() {
                        retry.push(index);
                        last = Some(failure);
                    } else {
                        refused.lock().unwrap().push((index, failure));
                    }
                }
                *pending.lock().unwrap() = retry;
                last.map_or(Ok(()), Err)
            }
        };
        let result = PUBLISH_RETRY.run(deadline, attempt, |_, _| {}).await;
        let mut unpublished = refused.into_inner().unwrap();
        if let Err(gave_up) = result {
            let failure = gave_up.into_last_error().unwrap_or_else(|| {
                Failure::new(
                    FailureKind::RETRYABLE,
                    "DeadlineReached",
                    "no time to publish",
                )
            });
            unpublished.extend(
                pending
                    .into_inner()
                    .unwrap()
                    .into_iter()
                    .map(|index| (index, failure.clone())),
            );
        }
        unpublished
    }
}
