//! Announcing created profiles: after each batch, one `ProfileCreated` v1 event per profile the
//! worker created (never for one that already existed), published through the bus edge
//! ([`crate::bus`]). Announcing is best effort: a failure is counted and logged, and never
//! fails the message whose profile exists.

use tokio::time::Instant;
use uc_runtime::MetricsRecord;
use uc_schemas::{PROFILE_CREATED_DETAIL_TYPE, ProfileCreated};

use crate::bus::{BATCH, BusEntry, EventBridgeSink, EventSink};

/// Publishes `ProfileCreated` events to one bus.
#[derive(Debug, Clone)]
pub struct ProfileAnnouncer {
    sink: EventBridgeSink,
}

impl ProfileAnnouncer {
    pub fn new(sink: EventBridgeSink) -> Self {
        Self { sink }
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
            let entries: Vec<BusEntry> = chunk
                .iter()
                .map(|event| BusEntry::new(PROFILE_CREATED_DETAIL_TYPE, event))
                .collect();
            let unpublished = self.sink.publish(&entries, deadline).await;
            for (index, failure) in &unpublished {
                let event = &chunk[*index];
                tracing::warn!(sub = %event.sub, event_id = %event.event_id, error = %failure, "ProfileCreated not published (the profile exists)");
            }
            metrics.count(
                "ProfileCreatedPublished",
                (chunk.len() - unpublished.len()) as u64,
            );
            metrics.count("ProfileCreatedNotPublished", unpublished.len() as u64);
        }
    }
}
