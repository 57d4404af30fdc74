//! `backfill`: publishes a `UserConfirmed` (origin `backfill`) for users the trigger never saw —
//! accounts older than the pipeline, admin-created users, failed publishes. Pages through
//! `ListUsers`, publishes each page (EventBridge, or the worker's queue with `--direct`), and
//! checkpoints the next page token so an interrupted run resumes. At-least-once: a page
//! published just before a crash is published again, which the worker's idempotency absorbs.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use aws_sdk_cognitoidentityprovider::types::UserType;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uc_runtime::aws::{classify_sdk_error, entry_failure, sqs_entry_failure};
use uc_runtime::{Classified, Failure, FailureKind, GaveUp, RetryPolicy};
use uc_schemas::{DETAIL_TYPE, Origin, UserConfirmed, to_envelope};

use crate::user_pages::UserPages;

/// Users per second a back-fill publishes at most unless told otherwise (`uc-ops backfill
/// --rate`): meant to stay below the worker's spare capacity, so that the worker's queue builds no
/// backlog in front of live sign-ups. Choose a rate below (worker capacity − peak sign-up rate); the
/// measurement behind it is in docs/benchmarks.md ("Live sign-ups first").
pub const DEFAULT_RATE: f64 = 50.0;

/// `ListUsers` pages per second, at most (300 users/s: more than a back-fill publishes).
const LIST_RATE: f64 = 5.0;

#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    #[error("{operation}: {message}")]
    Aws {
        operation: &'static str,
        message: String,
    },
    #[error("checkpoint {path}: {message}")]
    Checkpoint { path: String, message: String },
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

pub struct BackfillOptions {
    pub user_pool_id: String,
    pub region: String,
    /// Only users created at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// `cognito:user_status` to select (default CONFIRMED).
    pub statuses: Vec<String>,
    pub target: Target,
    pub dry_run: bool,
    pub checkpoint: PathBuf,
    /// Stop after this many pages (resume later from the checkpoint).
    pub max_pages: Option<usize>,
    /// Users per second, at most; `None`: no limit (the CLI's default is [`DEFAULT_RATE`]).
    pub rate: Option<f64>,
}

/// Progress saved between pages.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Checkpoint {
    pub user_pool_id: String,
    pub status: String,
    pub next_token: Option<String>,
    pub pages: usize,
    pub published: usize,
}

/// What publishing a page's events did: how many went out, and the subs that did not.
#[derive(Debug, Default)]
pub struct PagePublished {
    pub published: usize,
    pub failed: Vec<String>,
}

/// Publishes `events` in PutEvents batches of 10, each admitted by `pacer` first: the one
/// paced publishing loop of the back-fill and the reconciler.
pub async fn publish_paced(
    clients: &Clients,
    target: &Target,
    events: &[UserConfirmed],
    pacer: &mut Option<crate::pace::Pacer>,
) -> Result<PagePublished, BackfillError> {
    let mut sent = PagePublished::default();
    for chunk in events.chunks(10) {
        crate::pace::admit(pacer, chunk.len()).await;
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

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct BackfillSummary {
    pub listed: usize,
    pub selected: usize,
    pub published: usize,
    pub failed: usize,
    /// The first [`LISTED_FAILED_SUBS`] of the `failed`.
    pub failed_subs: Vec<String>,
    pub pages: usize,
    pub resumed: bool,
    /// The pool was listed to the end (the checkpoint is removed).
    pub complete: bool,
    pub dry_run: bool,
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

fn load_checkpoint(options: &BackfillOptions) -> Result<Option<Checkpoint>, BackfillError> {
    let text = match std::fs::read_to_string(&options.checkpoint) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(BackfillError::Checkpoint {
                path: options.checkpoint.display().to_string(),
                message: e.to_string(),
            });
        }
    };
    let checkpoint: Checkpoint =
        serde_json::from_str(&text).map_err(|e| BackfillError::Checkpoint {
            path: options.checkpoint.display().to_string(),
            message: e.to_string(),
        })?;
    if checkpoint.user_pool_id != options.user_pool_id
        || checkpoint.status != options.statuses.join(",")
    {
        return Err(BackfillError::Checkpoint {
            path: options.checkpoint.display().to_string(),
            message: format!(
                "it belongs to pool {} / status {}; remove it or pass another --checkpoint",
                checkpoint.user_pool_id, checkpoint.status
            ),
        });
    }
    Ok(Some(checkpoint))
}

fn save_checkpoint(
    options: &BackfillOptions,
    checkpoint: &Checkpoint,
) -> Result<(), BackfillError> {
    let error = |e: std::io::Error| BackfillError::Checkpoint {
        path: options.checkpoint.display().to_string(),
        message: e.to_string(),
    };
    let temporary = options.checkpoint.with_extension("tmp");
    std::fs::write(
        &temporary,
        serde_json::to_vec_pretty(checkpoint).expect("serializes"),
    )
    .map_err(error)?;
    std::fs::rename(&temporary, &options.checkpoint).map_err(error)
}

pub struct Clients {
    pub cognito: aws_sdk_cognitoidentityprovider::Client,
    pub events: aws_sdk_eventbridge::Client,
    pub sqs: aws_sdk_sqs::Client,
}

pub async fn run(
    clients: &Clients,
    options: &BackfillOptions,
    mut progress: impl FnMut(&BackfillSummary),
) -> Result<BackfillSummary, BackfillError> {
    let mut summary = BackfillSummary {
        dry_run: options.dry_run,
        ..Default::default()
    };
    let mut checkpoint = Checkpoint {
        user_pool_id: options.user_pool_id.clone(),
        status: options.statuses.join(","),
        ..Default::default()
    };
    if !options.dry_run
        && let Some(saved) = load_checkpoint(options)?
    {
        summary.resumed = true;
        checkpoint = saved;
    }
    let mut pacer = options.rate.and_then(crate::pace::Pacer::new);
    let mut pages = UserPages::new(&clients.cognito, &options.user_pool_id, &[], LIST_RATE);
    if let [only] = options.statuses.as_slice() {
        pages = pages.with_status(only);
    }
    loop {
        if options.max_pages.is_some_and(|max| summary.pages >= max) {
            break;
        }
        let page = pages
            .page(checkpoint.next_token.clone())
            .await
            .map_err(|e| BackfillError::Aws {
                operation: "ListUsers",
                message: e.to_string(),
            })?;
        summary.pages += 1;
        let users = page.users();
        summary.listed += users.len();
        let events: Vec<UserConfirmed> = users
            .iter()
            .filter(|u| {
                let status = u.user_status().map(|s| s.as_str()).unwrap_or("UNKNOWN");
                options.statuses.iter().any(|s| s == status)
            })
            .filter(|u| {
                options.since.is_none_or(|since| {
                    u.user_create_date()
                        .is_some_and(|d| d.secs() >= since.timestamp())
                })
            })
            .filter_map(|u| event_for(u, &options.user_pool_id, &options.region, Origin::Backfill))
            .collect();
        summary.selected += events.len();
        if !options.dry_run {
            let sent = publish_paced(clients, &options.target, &events, &mut pacer).await?;
            summary.published += sent.published;
            summary.failed += sent.failed.len();
            list_failed(&mut summary.failed_subs, sent.failed);
            checkpoint.next_token = page.pagination_token.clone();
            checkpoint.pages += 1;
            checkpoint.published += events.len();
            save_checkpoint(options, &checkpoint)?;
        } else {
            checkpoint.next_token = page.pagination_token.clone();
        }
        progress(&summary);
        if page.pagination_token.is_none() {
            summary.complete = true;
            break;
        }
    }
    if summary.complete && !options.dry_run && summary.failed == 0 {
        let _ = std::fs::remove_file(&options.checkpoint);
    }
    Ok(summary)
}

/// How a page's batch call and its failed entries are retried.
const PUBLISH_RETRY: RetryPolicy = RetryPolicy {
    max_attempts: 5,
    min_delay: Duration::from_millis(100),
    max_delay: Duration::from_secs(3),
    min_attempt_time: Duration::ZERO,
};

/// Why one batch attempt failed: the call itself, or some of its entries.
#[derive(Debug)]
enum BatchFailure {
    Call(&'static str, Failure),
    /// Entries that may pass on a retry are still pending.
    Entries(Failure),
}

impl Classified for BatchFailure {
    fn kind(&self) -> FailureKind {
        match self {
            Self::Call(_, failure) | Self::Entries(failure) => failure.kind,
        }
    }
}

/// Publishes up to ten events, retrying the call and the entries that failed retryably
/// (PutEvents and SendMessageBatch answer 200 with per-entry failures) with the shared runner
/// and AWS rules; returns the `sub`s that could not be published. A call that cannot succeed
/// (access denied, bus or queue missing) stops the back-fill.
pub(crate) async fn publish(
    clients: &Clients,
    target: &Target,
    events: &[UserConfirmed],
) -> Result<Vec<String>, BackfillError> {
    let pending: Mutex<Vec<&UserConfirmed>> = Mutex::new(events.iter().collect());
    let refused: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let attempt = |_| async {
        let batch = pending.lock().unwrap().clone();
        let failed = match target {
            Target::EventBridge { bus, source } => {
                put_events(&clients.events, bus, source, &batch).await
            }
            Target::Queue { url, source } => send_batch(&clients.sqs, url, source, &batch).await,
        }?;
        let mut retry = Vec::new();
        let mut last = None;
        for (index, failure) in failed {
            let Some(event) = batch.get(index) else {
                continue;
            };
            if failure.is_retryable() {
                retry.push(*event);
                last = Some(failure);
            } else {
                tracing::warn!(sub = %event.sub, error = %failure, "entry refused");
                refused.lock().unwrap().push(event.sub.clone());
            }
        }
        *pending.lock().unwrap() = retry;
        match last {
            None => Ok(()),
            Some(failure) => Err(BatchFailure::Entries(failure)),
        }
    };
    let notify = |failure: &BatchFailure, delay: Duration| {
        let (BatchFailure::Call(_, f) | BatchFailure::Entries(f)) = failure;
        tracing::warn!(error = %f, retry_in_ms = delay.as_millis() as u64, "publishing a page failed; retrying");
    };
    let result = PUBLISH_RETRY.run(None, attempt, notify).await;
    let mut unpublished = refused.into_inner().unwrap();
    match result {
        Ok(_) => {}
        Err(GaveUp::Failed {
            error: BatchFailure::Call(operation, failure),
            ..
        }) if !failure.is_retryable() => {
            return Err(BackfillError::Aws {
                operation,
                message: failure.to_string(),
            });
        }
        // Retries ran out: whatever is still pending is reported, not lost.
        Err(_) => unpublished.extend(pending.into_inner().unwrap().iter().map(|e| e.sub.clone())),
    }
    Ok(unpublished)
}

/// Index in `events` → why its entry failed.
type EntryFailures = Vec<(usize, Failure)>;

async fn put_events(
    client: &aws_sdk_eventbridge::Client,
    bus: &str,
    source: &str,
    events: &[&UserConfirmed],
) -> Result<EntryFailures, BatchFailure> {
    let entries = events.iter().map(|e| {
        PutEventsRequestEntry::builder()
            .event_bus_name(bus)
            .source(source)
            .detail_type(DETAIL_TYPE)
            .detail(serde_json::to_string(e).expect("serializes"))
            .build()
    });
    let output = client
        .put_events()
        .set_entries(Some(entries.collect()))
        .send()
        .await
        .map_err(|e| BatchFailure::Call("PutEvents", classify_sdk_error(&e)))?;
    Ok(output
        .entries()
        .iter()
        .enumerate()
        .filter(|(_, e)| e.error_code().is_some())
        .map(|(i, e)| (i, entry_failure(e.error_code(), e.error_message())))
        .collect())
}

async fn send_batch(
    client: &aws_sdk_sqs::Client,
    url: &str,
    source: &str,
    events: &[&UserConfirmed],
) -> Result<EntryFailures, BatchFailure> {
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
        .map_err(|e| BatchFailure::Call("SendMessageBatch", classify_sdk_error(&e)))?;
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
