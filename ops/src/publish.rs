//! Publishing `UserConfirmed` for listed users, the sweep's last step: the event for a user
//! ([`event_for`], validated against the contract), and batches of ten sent at a pace
//! ([`publish_paced`]) to EventBridge or straight to the worker's queue ([`Target`]), each
//! batch and its failed entries retried by the one per-entry retry loop
//! (`uc_runtime::put_events`). At-least-once: the worker's
//! idempotency absorbs a batch published twice.

use std::time::Duration;

use aws_sdk_cognitoidentityprovider::types::UserType;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use chrono::{DateTime, Utc};
use uc_runtime::aws::{classify_sdk_error, sqs_entry_failure};
use uc_runtime::pace::Pacer;
use uc_runtime::put_events::{Entry, EventBus, retry_entries};
use uc_runtime::{Failure, RetryPolicy};
use uc_schemas::{DETAIL_TYPE, Origin, UserConfirmed, to_envelope};

/// Events per second a sweep publishes at most unless told otherwise (`uc-ops backfill --rate`,
/// `RECONCILE_PUBLISH_RATE`): meant to stay below the worker's spare capacity, so that the
/// worker's queue builds no backlog in front of live sign-ups. Choose a rate below (worker
/// capacity − peak sign-up rate); the measurement behind it is in docs/benchmarks.md ("Live
/// sign-ups first").
pub const DEFAULT_RATE: f64 = 50.0;

/// A publishing call that cannot succeed (access denied, bus or queue missing): the sweep stops.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("{operation}: {message}")]
    Aws {
        operation: &'static str,
        message: String,
    },
}

/// Where events go.
#[derive(Debug, Clone)]
pub enum Target {
    EventBridge {
        bus: String,
        source: String,
    },
    /// Straight to the worker's queue, as EventBridge-shaped envelopes.
    Queue {
        url: String,
        source: String,
    },
}

/// What publishing a page's events did: how many went out, and the subs that did not.
#[derive(Debug, Default)]
pub struct PagePublished {
    pub published: usize,
    pub failed: Vec<String>,
}

/// Publishes `events` in PutEvents batches of 10, each admitted by `pacer` first: the one
/// paced publishing loop of every sweep.
pub async fn publish_paced(
    clients: &Clients,
    target: &Target,
    events: &[UserConfirmed],
    pacer: &Option<Pacer>,
) -> Result<PagePublished, PublishError> {
    let mut sent = PagePublished::default();
    for chunk in events.chunks(10) {
        uc_runtime::pace::admit(pacer, chunk.len()).await;
        let failed = publish(clients, target, chunk).await?;
        sent.published += chunk.len() - failed.len();
        sent.failed.extend(failed);
    }
    Ok(sent)
}

/// The most `sub`s a report names; its failure count says how many there were in all (a pass
/// over millions of users must not grow its report without bound).
pub const LISTED_FAILED_SUBS: usize = 1_000;

/// Adds `failed` to `listed`, up to [`LISTED_FAILED_SUBS`] in all.
pub fn list_failed(listed: &mut Vec<String>, failed: Vec<String>) {
    let room = LISTED_FAILED_SUBS.saturating_sub(listed.len());
    listed.extend(failed.into_iter().take(room));
}

/// The event for one listed user: `sub`, email and username from Cognito; `confirmedAt` is the
/// account's creation time (Cognito does not record when a user was confirmed). `None` for a
/// user without a `sub` or whose event would break the contract (logged by `sub`, never
/// published: what we publish validates).
pub fn event_for(
    user: &UserType,
    user_pool_id: &str,
    region: &str,
    origin: Origin,
) -> Option<UserConfirmed> {
    let attribute = |name: &str| {
        user.attributes()
            .iter()
            .find(|a| a.name() == name)
            .and_then(|a| a.value())
            .map(str::to_owned)
    };
    let sub = attribute("sub")?;
    let created = user
        .user_create_date()
        .and_then(|d| DateTime::from_timestamp(d.secs(), d.subsec_nanos()))
        .unwrap_or_else(Utc::now);
    let event = UserConfirmed::new(
        user_pool_id,
        sub,
        user.username()?,
        attribute("email"),
        attribute("email_verified").map(|v| v.eq_ignore_ascii_case("true")),
        None,
        created,
        region,
        origin,
    );
    match event.validate() {
        Ok(()) => Some(event),
        Err(violation) => {
            tracing::warn!(
                sub = %crate::text::redact(&crate::text::terminal_safe(&event.sub)),
                violation = %violation,
                "a user's event would break the UserConfirmed contract; not published"
            );
            None
        }
    }
}

/// The clients a sweep lists and publishes with.
pub struct Clients {
    pub cognito: aws_sdk_cognitoidentityprovider::Client,
    pub events: aws_sdk_eventbridge::Client,
    pub sqs: aws_sdk_sqs::Client,
}

impl Clients {
    pub fn new(sdk: &aws_config::SdkConfig) -> Self {
        Self {
            cognito: aws_sdk_cognitoidentityprovider::Client::new(sdk),
            events: aws_sdk_eventbridge::Client::new(sdk),
            sqs: aws_sdk_sqs::Client::new(sdk),
        }
    }
}

/// How a page's batch call and its failed entries are retried.
const PUBLISH_RETRY: RetryPolicy = RetryPolicy {
    max_attempts: 5,
    min_delay: Duration::from_millis(100),
    max_delay: Duration::from_secs(3),
    min_attempt_time: Duration::ZERO,
};

/// Publishes up to ten events with the one PutEvents batch with per-entry retry
/// (`uc_runtime::put_events`; SendMessageBatch for a queue target), retrying the call and the
/// entries that failed retryably; returns the `sub`s that could not be published. A call that
/// cannot succeed (access denied, bus or queue missing) stops the sweep.
pub(crate) async fn publish(
    clients: &Clients,
    target: &Target,
    events: &[UserConfirmed],
) -> Result<Vec<String>, PublishError> {
    let on_retry = |failure: &Failure, delay: Duration| {
        tracing::warn!(error = %failure, retry_in_ms = delay.as_millis() as u64, "publishing a page failed; retrying");
    };
    let on_refused = |index: usize, failure: &Failure| {
        tracing::warn!(sub = %events[index].sub, error = %failure, "entry refused");
    };
    let (operation, outcome) = match target {
        Target::EventBridge { bus, source } => {
            let bus = EventBus::new(clients.events.clone(), bus.clone(), source.clone());
            let details: Vec<String> = events
                .iter()
                .map(|e| serde_json::to_string(e).expect("serializes"))
                .collect();
            let entries: Vec<Entry<'_>> = details
                .iter()
                .map(|detail| Entry {
                    detail_type: DETAIL_TYPE,
                    detail,
                    trace_header: None,
                })
                .collect();
            let outcome = bus
                .put(&entries, &PUBLISH_RETRY, None, None, on_retry, on_refused)
                .await;
            ("PutEvents", outcome)
        }
        Target::Queue { url, source } => {
            let call = |batch: Vec<usize>, _| {
                let batch: Vec<&UserConfirmed> = batch.iter().map(|&i| &events[i]).collect();
                async move { send_batch(&clients.sqs, url, source, &batch).await }
            };
            let outcome = retry_entries(
                &PUBLISH_RETRY,
                None,
                events.len(),
                call,
                on_retry,
                on_refused,
            )
            .await;
            ("SendMessageBatch", outcome)
        }
    };
    if let Some(failure) = outcome.call_refused {
        return Err(PublishError::Aws {
            operation,
            message: failure.to_string(),
        });
    }
    // Retries ran out: whatever is still pending is reported, not lost.
    Ok(outcome
        .unpublished
        .into_iter()
        .map(|(index, _)| events[index].sub.clone())
        .collect())
}

/// Index in `events` → why its entry failed.
type EntryFailures = Vec<(usize, Failure)>;

async fn send_batch(
    client: &aws_sdk_sqs::Client,
    url: &str,
    source: &str,
    events: &[&UserConfirmed],
) -> Result<EntryFailures, Failure> {
    let entries = events.iter().enumerate().map(|(i, e)| {
        SendMessageBatchRequestEntry::builder()
            .id(i.to_string())
            .message_body(to_envelope(source, e).to_string())
            .build()
            .expect("id and body set")
    });
    let output = client
        .send_message_batch()
        .queue_url(url)
        .set_entries(Some(entries.collect()))
        .send()
        .await
        .map_err(|e| classify_sdk_error(&e))?;
    Ok(output
        .failed()
        .iter()
        .filter_map(|f| {
            let index = f.id().parse().ok()?;
            Some((
                index,
                sqs_entry_failure(f.code(), f.message(), f.sender_fault()),
            ))
        })
        .collect())
}
