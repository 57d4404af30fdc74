//! `dlq replay`: each message processed in place with the worker's own core; successes
//! deleted, failures kept with their reason updated, what is left named.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_sqs::Client;
use chrono::Utc;
use serde::Serialize;
use uc_schemas::FailureRecord;
use uc_worker::{DeadLetterSink, Disposition, MessageHandler};

use crate::text::redact;
use uc_runtime::Pacer;

use super::*;

/// What a replay did.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ReplaySummary {
    /// Matching messages processed (counted, in a dry run).
    pub examined: usize,
    pub skipped_by_filter: usize,
    pub created: usize,
    pub already_existed: usize,
    /// Cognito CloudTrail records (the user lifecycle) handled to the end.
    pub lifecycle_handled: usize,
    /// Still failing: back in the DLQ with their reason updated.
    pub still_failing: usize,
    pub failures_by_reason: BTreeMap<String, usize>,
    /// Matching messages left in the DLQ unprocessed (their updated copy could not be written).
    pub left: usize,
    /// The subs of the first of those.
    pub left_subs: Vec<String>,
    /// `--limit` stopped the run with at least one more matching message in the DLQ.
    pub more_beyond_limit: bool,
    /// The DLQ was read to its end (or to the limit).
    pub complete: bool,
    /// Reasons of the messages read, matching or not.
    pub reasons_present: BTreeMap<String, usize>,
    /// Set when a filter matched nothing while other messages were there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_match: Option<String>,
    pub dry_run: bool,
}

impl ReplaySummary {
    /// Every matching message was processed and none still fails.
    pub fn succeeded(&self) -> bool {
        self.still_failing == 0
            && self.left == 0
            && !self.more_beyond_limit
            && self.complete
            && self.no_match.is_none()
    }
}

pub struct ReplayOptions {
    /// Matching messages to process at most (`usize::MAX`: all).
    pub limit: usize,
    /// Messages per second, at most.
    pub rate: Option<f64>,
    pub filter: Filter,
    pub dry_run: bool,
}

/// Processes DLQ messages in place with the worker's core (`handler`, whose dead-letter sink is
/// this DLQ): a success deletes the message; a failure puts a copy with the updated reason in
/// the DLQ (`dead_letters`) and then deletes the original. Reads until the queue has no
/// matching message left that this run has not handled. `progress` is called per message.
/// Read messages are held for [`DEFAULT_HOLD`] at a time; [`replay_holding`] takes another.
pub async fn replay<H: MessageHandler, D: DeadLetterSink>(
    client: &Client,
    url: &str,
    handler: &H,
    dead_letters: &D,
    options: &ReplayOptions,
    progress: impl FnMut(&ReplaySummary),
) -> Result<ReplaySummary, DlqError> {
    replay_holding(
        client,
        url,
        DEFAULT_HOLD,
        handler,
        dead_letters,
        options,
        progress,
    )
    .await
}

/// [`replay`], holding read messages for `hold` at a time (renewed at half-time).
pub async fn replay_holding<H: MessageHandler, D: DeadLetterSink>(
    client: &Client,
    url: &str,
    hold: Duration,
    handler: &H,
    dead_letters: &D,
    options: &ReplayOptions,
    progress: impl FnMut(&ReplaySummary),
) -> Result<ReplaySummary, DlqError> {
    let mut reader = Reader::new(client, url, hold);
    let result = replay_with(&mut reader, handler, dead_letters, options, progress).await;
    let released = reader.release_all().await;
    let mut summary = result?;
    released?;
    summary.complete = summary.complete || reader.is_complete();
    if summary.examined == 0 && !summary.reasons_present.is_empty() {
        summary.no_match = no_match(&options.filter, &summary.reasons_present);
    }
    Ok(summary)
}

async fn replay_with<H: MessageHandler, D: DeadLetterSink>(
    reader: &mut Reader<'_>,
    handler: &H,
    dead_letters: &D,
    options: &ReplayOptions,
    mut progress: impl FnMut(&ReplaySummary),
) -> Result<ReplaySummary, DlqError> {
    let started = Utc::now();
    let mut summary = ReplaySummary {
        dry_run: options.dry_run,
        ..Default::default()
    };
    let pacer = options.rate.and_then(Pacer::new);
    let left = |summary: &mut ReplaySummary, message: &DlqMessage| {
        summary.left += 1;
        if summary.left_subs.len() < LISTED {
            summary
                .left_subs
                .push(redact(&message.sub().unwrap_or_else(|| "(no sub)".into())));
        }
    };
    'reading: loop {
        let batch = reader.next(10).await?;
        if batch.is_empty() {
            break;
        }
        for message in batch {
            let mut seen = Seen {
                reasons_present: &mut summary.reasons_present,
                skipped_by_filter: &mut summary.skipped_by_filter,
            };
            if !seen.selects(&message, started, &options.filter) {
                continue;
            }
            if summary.examined >= options.limit {
                summary.more_beyond_limit = true;
                summary.complete = true;
                break 'reading;
            }
            summary.examined += 1;
            if options.dry_run {
                progress(&summary);
                continue;
            }
            pace(&pacer, reader, 1).await;
            let report = reader
                .while_holding(handler.handle(message.body.clone(), message.meta(), None))
                .await;
            match &report.disposition {
                Disposition::Created => {
                    summary.created += 1;
                    reader.delete(&message.message_id).await?;
                }
                Disposition::AlreadyExisted => {
                    summary.already_existed += 1;
                    reader.delete(&message.message_id).await?;
                }
                Disposition::Lifecycle(_) => {
                    summary.lifecycle_handled += 1;
                    reader.delete(&message.message_id).await?;
                }
                Disposition::DeadLettered { reason } => {
                    // The core already wrote the copy with the new reason.
                    *summary
                        .failures_by_reason
                        .entry(redact(reason))
                        .or_default() += 1;
                    summary.still_failing += 1;
                    reader.delete(&message.message_id).await?;
                }
                Disposition::RetryLater { reason } => {
                    let record = FailureRecord::for_message(
                        &message.meta(),
                        handler.store_stage(),
                        reason,
                        format!("replay: {reason}"),
                        report.attempts,
                        report.sub.clone(),
                    );
                    match dead_letters.send(&message.body, &record).await {
                        Ok(()) => {
                            *summary
                                .failures_by_reason
                                .entry(redact(reason))
                                .or_default() += 1;
                            summary.still_failing += 1;
                            reader.delete(&message.message_id).await?;
                        }
                        Err(error) => {
                            tracing::warn!(message_id = %message.message_id, error = %redact(&error), "could not write the updated copy; the original stays");
                            left(&mut summary, &message);
                        }
                    }
                }
                Disposition::FailedPermanently { .. } => {
                    // The core could not write the updated copy: the original stays.
                    left(&mut summary, &message);
                }
            }
            progress(&summary);
        }
    }
    Ok(summary)
}
