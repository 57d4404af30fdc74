//! The worker's edge to the pipeline bus: the [`EventSink`] port and its EventBridge adapter,
//! which publishes through the one PutEvents batch with per-entry retry
//! (`uc_runtime::put_events`) with the worker's quick policy, saying which entries could not be
//! published and why. `ProfileCreated` announcements and the lifecycle's events
//! (`UserDeleted`, `ProfileDeleted`, a re-published `UserConfirmed`) all go out through it.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;
use uc_runtime::put_events::{Entry, EventBus};
use uc_runtime::{Failure, RetryPolicy};

/// PutEvents takes at most ten entries.
pub const BATCH: usize = uc_runtime::put_events::MAX_ENTRIES;

/// One PutEvents call's timeout (also bounded by what is left before the deadline).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

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
    bus: EventBus,
}

impl EventBridgeSink {
    /// `client` should have the SDK's own retries off: these are the runner's.
    pub fn new(client: aws_sdk_eventbridge::Client, bus: String, source: String) -> Self {
        Self {
            bus: EventBus::new(client, bus, source),
        }
    }
}

impl EventSink for EventBridgeSink {
    async fn publish(
        &self,
        entries: &[BusEntry],
        deadline: Option<Instant>,
    ) -> Vec<(usize, Failure)> {
        let entries: Vec<Entry<'_>> = entries
            .iter()
            .map(|entry| Entry {
                detail_type: entry.detail_type,
                detail: &entry.detail,
                trace_header: None,
            })
            .collect();
        self.bus
            .put(
                &entries,
                &PUBLISH_RETRY,
                deadline,
                Some(ATTEMPT_TIMEOUT),
                |_, _| {},
                |_, _| {},
            )
            .await
            .unpublished
    }
}
