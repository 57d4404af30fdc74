//! `dlq redrive`: messages moved back to the worker's queue, attributes and all (send, then
//! delete; resumable), or SQS's own `StartMessageMoveTask`.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::operation::start_message_move_task::StartMessageMoveTaskInput;
use aws_sdk_sqs::types::{QueueAttributeName, SendMessageBatchRequestEntry};
use chrono::Utc;
use serde::Serialize;

use crate::text::redact;
use uc_runtime::Pacer;

use super::*;

/// What a redrive did.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct RedriveSummary {
    pub moved: usize,
    /// Matching messages that could not be moved (sending or deleting failed).
    pub failed: usize,
    pub skipped_by_filter: usize,
    /// `EmptyMessage` placeholders kept in the DLQ: their body was empty, SQS refuses to send
    /// an empty body, and the `<empty>` placeholder would come back as `NotJson`.
    pub kept_empty: usize,
    /// `--limit` stopped the run with at least one more matching message in the DLQ.
    pub more_beyond_limit: bool,
    pub complete: bool,
    pub reasons_present: BTreeMap<String, usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_match: Option<String>,
}

impl RedriveSummary {
    /// Every matching message that can be moved was moved.
    pub fn succeeded(&self) -> bool {
        self.failed == 0 && !self.more_beyond_limit && self.complete && self.no_match.is_none()
    }
}

pub struct RedriveOptions {
    /// Matching messages to move at most (`usize::MAX`: all).
    pub limit: usize,
    /// Messages per second, at most.
    pub rate: Option<f64>,
    pub filter: Filter,
}

/// Moves messages from `dlq_url` back to `target_url`, attributes and all (so `uc.reason` and
/// the first-seen time travel with them): send first, then delete, so a crash in between
/// duplicates a message at worst (the worker is idempotent) and never loses one. Re-running
/// continues with what is left.
/// Read messages are held for `hold` at a time (renewed at half-time).
pub async fn redrive(
    client: &Client,
    dlq_url: &str,
    target_url: &str,
    hold: Duration,
    options: &RedriveOptions,
    progress: impl FnMut(&RedriveSummary),
) -> Result<RedriveSummary, DlqError> {
    let mut reader = Reader::new(client, dlq_url, hold);
    let result = redrive_with(&mut reader, client, target_url, options, progress).await;
    let released = reader.release_all().await;
    let mut summary = result?;
    released?;
    summary.complete = summary.complete || reader.is_complete();
    if summary.moved + summary.failed + summary.kept_empty == 0
        && !summary.reasons_present.is_empty()
    {
        summary.no_match = no_match(&options.filter, &summary.reasons_present);
    }
    Ok(summary)
}

async fn redrive_with(
    reader: &mut Reader<'_>,
    client: &Client,
    target_url: &str,
    options: &RedriveOptions,
    mut progress: impl FnMut(&RedriveSummary),
) -> Result<RedriveSummary, DlqError> {
    let started = Utc::now();
    let mut summary = RedriveSummary::default();
    let pacer = options.rate.and_then(Pacer::new);
    'reading: loop {
        let batch = reader.next(10).await?;
        if batch.is_empty() {
            break;
        }
        let mut chosen = Vec::new();
        let mut stop = false;
        for message in batch {
            let mut seen = Seen {
                reasons_present: &mut summary.reasons_present,
                skipped_by_filter: &mut summary.skipped_by_filter,
            };
            if !seen.selects(&message, started, &options.filter) {
                continue;
            }
            if message
                .reason()
                .eq_ignore_ascii_case(uc_schemas::EnvelopeError::Empty.code())
            {
                summary.kept_empty += 1;
                continue;
            }
            if summary.moved + summary.failed + chosen.len() >= options.limit {
                summary.more_beyond_limit = true;
                summary.complete = true;
                stop = true;
                break;
            }
            chosen.push(message);
        }
        if !chosen.is_empty() {
            pace(&pacer, reader, chosen.len()).await;
            let (moved, failed) = move_batch(reader, client, target_url, &chosen).await?;
            summary.moved += moved;
            summary.failed += failed;
            progress(&summary);
            if failed > 0 {
                // Sending failed for some: stop rather than spin on them.
                break 'reading;
            }
        }
        if stop {
            break;
        }
    }
    Ok(summary)
}

/// Sends `batch` to `target_url` and deletes from the DLQ what was sent; returns (moved, failed).
async fn move_batch(
    reader: &mut Reader<'_>,
    client: &Client,
    target_url: &str,
    batch: &[DlqMessage],
) -> Result<(usize, usize), DlqError> {
    let entries = batch.iter().enumerate().map(|(i, m)| {
        SendMessageBatchRequestEntry::builder()
            .id(i.to_string())
            .message_body(&m.body)
            .set_message_attributes(Some(m.raw_attributes.clone()).filter(|a| !a.is_empty()))
            .build()
            .expect("id and body set")
    });
    let sent = client
        .send_message_batch()
        .queue_url(target_url)
        .set_entries(Some(entries.collect()))
        .send()
        .await
        .map_err(sqs_error("SendMessageBatch"))?;
    for failure in sent.failed() {
        tracing::warn!(code = failure.code(), message = %redact(failure.message().unwrap_or_default()), "a message could not be sent back");
    }
    let sent_ids: HashSet<&str> = sent.successful().iter().map(|s| s.id()).collect();
    let moved: Vec<&str> = batch
        .iter()
        .enumerate()
        .filter(|(i, _)| sent_ids.contains(i.to_string().as_str()))
        .map(|(_, m)| m.message_id.as_str())
        .collect();
    let not_deleted = reader.delete_batch(&moved).await?;
    // Sent but not deleted: a duplicate in the target queue, which the worker absorbs; the
    // original stays in the DLQ for the next run.
    let moved_count = moved.len() - not_deleted.len();
    Ok((moved_count, batch.len() - moved_count))
}

/// The request for SQS's native redrive (`StartMessageMoveTask`), which moves messages back to
/// the queue they came from (or to `destination_arn`) at up to `rate` messages per second.
pub fn native_move_request(
    dlq_arn: &str,
    destination_arn: Option<&str>,
    rate: Option<f64>,
) -> StartMessageMoveTaskInput {
    StartMessageMoveTaskInput::builder()
        .source_arn(dlq_arn)
        .set_destination_arn(destination_arn.map(str::to_owned))
        .set_max_number_of_messages_per_second(rate.map(|r| r.round().clamp(1.0, 500.0) as i32))
        .build()
        .expect("source ARN set")
}

/// Starts a native move task; returns its handle.
pub async fn redrive_native(
    client: &Client,
    request: StartMessageMoveTaskInput,
) -> Result<String, DlqError> {
    let output = client
        .start_message_move_task()
        .set_source_arn(request.source_arn)
        .set_destination_arn(request.destination_arn)
        .set_max_number_of_messages_per_second(request.max_number_of_messages_per_second)
        .send()
        .await
        .map_err(sqs_error("StartMessageMoveTask"))?;
    Ok(output.task_handle.unwrap_or_default())
}

/// A queue's ARN.
pub async fn queue_arn(client: &Client, url: &str) -> Result<String, DlqError> {
    client
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(sqs_error("GetQueueAttributes"))?
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .ok_or(DlqError::Sqs {
            operation: "GetQueueAttributes",
            message: "no QueueArn".into(),
        })
}
