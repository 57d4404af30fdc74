//! Announcing created profiles: after each batch, one `ProfileCreated` v1 event per profile the
//! worker created (never for one that already existed), published to the bus in PutEvents
//! calls of up to ten entries. Announcing is best effort: a failure is counted and logged, and
//! never fails the message whose profile exists.

use std::sync::Mutex;
use std::time::Duration;

use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use tokio::time::Instant;
use uc_runtime::aws::{classify_sdk_error, entry_failure};
use uc_runtime::{Failure, FailureKind, MetricsRecord, RetryPolicy};
use uc_schemas::{PROFILE_CREATED_DETAIL_TYPE, ProfileCreated};

/// PutEvents takes at most ten entries.
const BATCH: usize = 10;

/// Quick retries only: the batch's messages wait for this before they are settled.
const ANNOUNCE_RETRY: RetryPolicy = RetryPolicy {
    max_attempts: 3,
    min_delay: Duration::from_millis(50),
    max_delay: Duration::from_millis(400),
    min_attempt_time: Duration::from_millis(50),
};

/// Publishes `ProfileCreated` events to one bus.
#[derive(Debug, Clone)]
pub struct ProfileAnnouncer {
    client: aws_sdk_eventbridge::Client,
    bus: String,
    source: String,
}

impl ProfileAnnouncer {
    pub fn new(client: aws_sdk_eventbridge::Client, bus: String, source: String) -> Self {
        Self {
            client,
            bus,
            source,
        }
    }

    /// Publishes `events`, counting `ProfileCreatedPublished` and `ProfileCreatedNotPublished`
    /// in `metrics`, within `deadline` when there is one.
    pub async fn announce(
        &self,
        events: &[ProfileCreated],
        deadline: Option<Instant>,
        metrics: &mut MetricsRecord,
    ) {
        for chunk in events.chunks(BATCH) {
            let unpublished = self.publish(chunk, deadline).await;
            for (event, failure) in &unpublished {
                tracing::warn!(sub = %event.sub, event_id = %event.event_id, error = %failure, "ProfileCreated not published (the profile exists)");
            }
            metrics.count(
                "ProfileCreatedPublished",
                (chunk.len() - unpublished.len()) as u64,
            );
            metrics.count("ProfileCreatedNotPublished", unpublished.len() as u64);
        }
    }

    /// One chunk, retrying the call and the entries that failed retryably; returns what could
    /// not be published, with why.
    async fn publish<'a>(
        &self,
        chunk: &'a [ProfileCreated],
        deadline: Option<Instant>,
    ) -> Vec<(&'a ProfileCreated, Failure)> {
        let pending = Mutex::new(chunk.iter().collect::<Vec<_>>());
        let refused = Mutex::new(Vec::new());
        let attempt = |attempt: uc_runtime::Attempt| {
            let batch = pending.lock().unwrap().clone();
            let (pending, refused) = (&pending, &refused);
            async move {
                let entries = batch.iter().map(|event| {
                    PutEventsRequestEntry::builder()
                        .event_bus_name(&self.bus)
                        .source(&self.source)
                        .detail_type(PROFILE_CREATED_DETAIL_TYPE)
                        .detail(serde_json::to_string(event).expect("ProfileCreated serializes"))
                        .build()
                });
                let call = self
                    .client
                    .put_events()
                    .set_entries(Some(entries.collect()))
                    .send();
                let output = match tokio::time::timeout(attempt.bound(Duration::from_secs(2)), call)
                    .await
                {
                    Err(_) => return Err(Failure::retryable("Timeout", "PutEvents took too long")),
                    Ok(result) => result.map_err(|e| classify_sdk_error(&e))?,
                };
                let mut retry = Vec::new();
                let mut last = None;
                for (event, entry) in batch.iter().zip(output.entries()) {
                    if entry.error_code().is_none() {
                        continue;
                    }
                    let failure = entry_failure(entry.error_code(), entry.error_message());
                    if failure.is_retryable() {
                        retry.push(*event);
                        last = Some(failure);
                    } else {
                        refused.lock().unwrap().push((*event, failure));
                    }
                }
                *pending.lock().unwrap() = retry;
                last.map_or(Ok(()), Err)
            }
        };
        let result = ANNOUNCE_RETRY.run(deadline, attempt, |_, _| {}).await;
        let mut unpublished = refused.into_inner().unwrap();
        if let Err(gave_up) = result {
            let failure = gave_up.into_last_error().unwrap_or_else(|| {
                Failure::new(
                    FailureKind::RETRYABLE,
                    "DeadlineReached",
                    "no time to announce",
                )
            });
            unpublished.extend(
                pending
                    .into_inner()
                    .unwrap()
                    .into_iter()
                    .map(|event| (event, failure.clone())),
            );
        }
        unpublished
    }
}
