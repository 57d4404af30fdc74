//! Dead-letter queues at 3 a.m.: inspect (`stats`, `peek`), process in place with the worker's
//! own core (`replay`), or move back to the source queue (`redrive`). Every command that reads
//! messages hands them back (visibility 0) as soon as it is done with them, and nothing is
//! deleted before its replacement (a profile, or a copy in a queue) exists.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::operation::start_message_move_task::StartMessageMoveTaskInput;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry,
    MessageAttributeValue, MessageSystemAttributeName, QueueAttributeName,
    SendMessageBatchRequestEntry,
};
use chrono::{DateTime, Utc};
use serde::Serialize;
use uc_schemas::dead_letter::{attr, stage};
use uc_schemas::{FailureRecord, MessageMeta};
use uc_worker::{DeadLetterSink, Disposition, MessageHandler};

/// How long a scan keeps messages invisible: long enough to read a queue, short enough that a
/// crashed run hands them back soon.
const SCAN_VISIBILITY_SECONDS: i32 = 60;

#[derive(Debug, thiserror::Error)]
pub enum DlqError {
    #[error("SQS {operation}: {message}")]
    Sqs {
        operation: &'static str,
        message: String,
    },
}

fn sqs_error<E: aws_sdk_sqs::error::ProvideErrorMetadata>(
    operation: &'static str,
) -> impl Fn(aws_sdk_sqs::error::SdkError<E, aws_sdk_sqs::config::http::HttpResponse>) -> DlqError {
    move |e| DlqError::Sqs {
        operation,
        message: crate::aws_message(&e),
    }
}

/// A dead-lettered message, decoded.
#[derive(Debug, Clone)]
pub struct DlqMessage {
    pub message_id: String,
    pub receipt: String,
    pub body: String,
    /// String message attributes (`uc.*` from the worker, `ERROR_CODE` etc. from EventBridge).
    pub attributes: HashMap<String, String>,
    raw_attributes: HashMap<String, MessageAttributeValue>,
    pub receive_count: u32,
    pub sent_at: Option<DateTime<Utc>>,
}

impl DlqMessage {
    fn from_sqs(message: aws_sdk_sqs::types::Message) -> Option<Self> {
        let meta = uc_worker::poller::meta_of(&message);
        Some(Self {
            receive_count: meta.receive_count,
            sent_at: meta.sent_at,
            attributes: meta.attributes,
            raw_attributes: message.message_attributes().cloned().unwrap_or_default(),
            message_id: message.message_id?,
            receipt: message.receipt_handle?,
            body: message.body.unwrap_or_default(),
        })
    }

    /// Why it is here (the contract's one rule: the worker's reason, EventBridge's error code
    /// for the rule-target DLQ, or the queue's redrive policy).
    pub fn reason(&self) -> String {
        uc_schemas::dead_letter::reason_of(&self.attributes).to_owned()
    }

    fn event(&self) -> Option<uc_schemas::UserConfirmed> {
        uc_schemas::parse_message(&self.body).ok().map(|r| r.detail)
    }

    pub fn sub(&self) -> Option<String> {
        self.attributes
            .get(attr::SUB)
            .cloned()
            .or_else(|| self.event().map(|e| e.sub))
    }

    pub fn first_seen_at(&self) -> Option<DateTime<Utc>> {
        self.meta().first_seen_at()
    }

    /// What the worker's core needs to process it again.
    pub fn meta(&self) -> MessageMeta {
        MessageMeta {
            message_id: self.message_id.clone(),
            receive_count: self.receive_count,
            sent_at: self.sent_at,
            attributes: self.attributes.clone(),
            trace_header: None,
        }
    }

    /// Whether `filter` (`sub=…` or `reason=…`, or a bare value matching either) selects it.
    pub fn matches(&self, filter: &Filter) -> bool {
        match filter {
            Filter::All => true,
            Filter::Sub(sub) => self.sub().as_deref() == Some(sub.as_str()),
            Filter::Reason(reason) => self.reason() == *reason,
        }
    }
}

/// `--filter` for replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    All,
    Sub(String),
    Reason(String),
}

impl std::str::FromStr for Filter {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text.split_once('=') {
            Some(("sub", v)) if !v.is_empty() => Ok(Self::Sub(v.to_owned())),
            Some(("reason", v)) if !v.is_empty() => Ok(Self::Reason(v.to_owned())),
            _ => Err(format!("{text:?}: expected sub=<sub> or reason=<reason>")),
        }
    }
}

/// Reads up to `limit` messages, keeping them invisible until [`release`]; stops when the queue
/// returns nothing new.
pub async fn scan(client: &Client, url: &str, limit: usize) -> Result<Vec<DlqMessage>, DlqError> {
    let mut seen = HashSet::new();
    let mut messages = Vec::new();
    while messages.len() < limit {
        let batch = receive(
            client,
            url,
            (limit - messages.len()).min(10) as i32,
            SCAN_VISIBILITY_SECONDS,
        )
        .await?;
        let fresh: Vec<DlqMessage> = batch
            .into_iter()
            .filter(|m| seen.insert(m.message_id.clone()))
            .collect();
        if fresh.is_empty() {
            break;
        }
        messages.extend(fresh);
    }
    Ok(messages)
}

/// A redrive holds a batch only for one send and one delete.
const REDRIVE_VISIBILITY_SECONDS: i32 = 15;

async fn receive(
    client: &Client,
    url: &str,
    max: i32,
    visibility_seconds: i32,
) -> Result<Vec<DlqMessage>, DlqError> {
    let output = client
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(max.clamp(1, 10))
        .visibility_timeout(visibility_seconds)
        .wait_time_seconds(1)
        .message_attribute_names("All")
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await
        .map_err(sqs_error("ReceiveMessage"))?;
    Ok(output
        .messages
        .unwrap_or_default()
        .into_iter()
        .filter_map(DlqMessage::from_sqs)
        .collect())
}

/// Makes `messages` visible again at once.
pub async fn release(client: &Client, url: &str, messages: &[DlqMessage]) -> Result<(), DlqError> {
    for chunk in messages.chunks(10) {
        let entries = chunk.iter().enumerate().map(|(i, m)| {
            ChangeMessageVisibilityBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(&m.receipt)
                .visibility_timeout(0)
                .build()
                .expect("id and receipt set")
        });
        client
            .change_message_visibility_batch()
            .queue_url(url)
            .set_entries(Some(entries.collect()))
            .send()
            .await
            .map_err(sqs_error("ChangeMessageVisibilityBatch"))?;
    }
    Ok(())
}

async fn delete(client: &Client, url: &str, message: &DlqMessage) -> Result<(), DlqError> {
    client
        .delete_message()
        .queue_url(url)
        .receipt_handle(&message.receipt)
        .send()
        .await
        .map_err(sqs_error("DeleteMessage"))?;
    Ok(())
}

/// Depth, age and reasons of one queue.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct QueueStats {
    pub queue_url: String,
    pub depth: u64,
    pub in_flight: u64,
    pub oldest_age_seconds: Option<i64>,
    pub by_reason: BTreeMap<String, u64>,
}

/// Scans the whole queue (up to `limit`), counts, and hands everything back.
pub async fn stats(client: &Client, url: &str, limit: usize) -> Result<QueueStats, DlqError> {
    let attributes = client
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .map_err(sqs_error("GetQueueAttributes"))?
        .attributes
        .unwrap_or_default();
    let number = |name: QueueAttributeName| {
        attributes
            .get(&name)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let messages = scan(client, url, limit).await?;
    release(client, url, &messages).await?;
    let now = Utc::now();
    let mut by_reason = BTreeMap::new();
    for message in &messages {
        *by_reason.entry(message.reason()).or_default() += 1;
    }
    Ok(QueueStats {
        queue_url: url.to_owned(),
        depth: number(QueueAttributeName::ApproximateNumberOfMessages),
        in_flight: number(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        oldest_age_seconds: messages
            .iter()
            .filter_map(|m| m.first_seen_at())
            .min()
            .map(|t| (now - t).num_seconds()),
        by_reason,
    })
}

/// One decoded line of `peek`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PeekRow {
    pub message_id: String,
    pub sub: Option<String>,
    pub username: Option<String>,
    /// Only with `--show-pii`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    pub reason: String,
    pub detail: Option<String>,
    pub receive_count: u32,
    pub age_seconds: Option<i64>,
}

/// Decodes up to `limit` messages and hands them back at once.
pub async fn peek(
    client: &Client,
    url: &str,
    limit: usize,
    show_pii: bool,
) -> Result<Vec<PeekRow>, DlqError> {
    let messages = scan(client, url, limit).await?;
    release(client, url, &messages).await?;
    let now = Utc::now();
    Ok(messages
        .iter()
        .map(|m| {
            let event = m.event();
            PeekRow {
                message_id: m.message_id.clone(),
                sub: m.sub(),
                username: event.as_ref().map(|e| e.username.clone()),
                email: if show_pii {
                    event.as_ref().and_then(|e| e.email.clone())
                } else {
                    None
                },
                reason: m.reason(),
                detail: m
                    .attributes
                    .get(attr::DETAIL)
                    .or_else(|| m.attributes.get("ERROR_MESSAGE"))
                    .cloned(),
                receive_count: m
                    .attributes
                    .get(attr::RECEIVE_COUNT)
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(m.receive_count),
                age_seconds: m.first_seen_at().map(|t| (now - t).num_seconds()),
            }
        })
        .collect())
}

/// What a replay did.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ReplaySummary {
    pub examined: usize,
    pub skipped_by_filter: usize,
    pub created: usize,
    pub already_existed: usize,
    /// Still failing: back in the DLQ with their reason updated.
    pub still_failing: usize,
    pub failures_by_reason: BTreeMap<String, usize>,
    pub dry_run: bool,
}

impl ReplaySummary {
    pub fn succeeded(&self) -> bool {
        self.still_failing == 0
    }
}

pub struct ReplayOptions {
    pub limit: usize,
    /// Messages per second, at most.
    pub rate: Option<f64>,
    pub filter: Filter,
    pub dry_run: bool,
}

/// Processes DLQ messages in place with the worker's core (`handler`, whose dead-letter sink is
/// this DLQ): a success deletes the message; a failure puts a copy with the updated reason in
/// the DLQ (`dead_letters`) and then deletes the original. `progress` is called per message.
pub async fn replay<H: MessageHandler, D: DeadLetterSink>(
    client: &Client,
    url: &str,
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
    let mut held = Vec::new();
    let mut seen = HashSet::new();
    let mut pacer = options
        .rate
        .filter(|r| *r > 0.0)
        .map(|rate| tokio::time::interval(Duration::from_secs_f64(1.0 / rate)));
    while summary.examined < options.limit {
        let batch = receive(client, url, 10, SCAN_VISIBILITY_SECONDS).await?;
        let fresh: Vec<DlqMessage> = batch
            .into_iter()
            .filter(|m| seen.insert(m.message_id.clone()))
            .collect();
        if fresh.is_empty() {
            break;
        }
        for message in fresh {
            // A copy this run wrote a moment ago: not a message to process again now.
            let written_now = message
                .attributes
                .get(attr::FAILED_AT)
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .is_some_and(|t| t >= started);
            if written_now || summary.examined >= options.limit {
                held.push(message);
                continue;
            }
            if !message.matches(&options.filter) {
                summary.skipped_by_filter += 1;
                held.push(message);
                continue;
            }
            summary.examined += 1;
            if options.dry_run {
                held.push(message);
                progress(&summary);
                continue;
            }
            if let Some(pacer) = pacer.as_mut() {
                pacer.tick().await;
            }
            let report = handler
                .handle(message.body.clone(), message.meta(), None)
                .await;
            match &report.disposition {
                Disposition::Created | Disposition::AlreadyExisted => {
                    if report.disposition == Disposition::Created {
                        summary.created += 1;
                    } else {
                        summary.already_existed += 1;
                    }
                    delete(client, url, &message).await?;
                }
                Disposition::DeadLettered { reason } => {
                    // The core already wrote the copy with the new reason.
                    *summary
                        .failures_by_reason
                        .entry(reason.clone())
                        .or_default() += 1;
                    summary.still_failing += 1;
                    delete(client, url, &message).await?;
                }
                Disposition::RetryLater { reason } => {
                    let record = FailureRecord::for_message(
                        &message.meta(),
                        stage::APPSYNC,
                        reason,
                        format!("replay: {reason}"),
                        report.attempts,
                        report.sub.clone(),
                    );
                    *summary
                        .failures_by_reason
                        .entry(reason.clone())
                        .or_default() += 1;
                    summary.still_failing += 1;
                    match dead_letters.send(&message.body, &record).await {
                        Ok(()) => delete(client, url, &message).await?,
                        Err(_) => held.push(message),
                    }
                }
                Disposition::FailedPermanently { reason } => {
                    *summary
                        .failures_by_reason
                        .entry(reason.clone())
                        .or_default() += 1;
                    summary.still_failing += 1;
                    held.push(message);
                }
            }
            progress(&summary);
        }
    }
    release(client, url, &held).await?;
    Ok(summary)
}

/// What a redrive did.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct RedriveSummary {
    pub moved: usize,
    pub failed: usize,
}

/// Moves messages from `dlq_url` back to `target_url`: send first, then delete, so a crash in
/// between duplicates a message at worst (the worker is idempotent) and never loses one.
/// Re-running continues with what is left.
pub async fn redrive(
    client: &Client,
    dlq_url: &str,
    target_url: &str,
    limit: usize,
    rate: Option<f64>,
    mut progress: impl FnMut(&RedriveSummary),
) -> Result<RedriveSummary, DlqError> {
    let mut summary = RedriveSummary::default();
    let mut pacer = rate
        .filter(|r| *r > 0.0)
        .map(|rate| tokio::time::interval(Duration::from_secs_f64(10.0 / rate)));
    while summary.moved + summary.failed < limit {
        let batch = receive(
            client,
            dlq_url,
            (limit - summary.moved - summary.failed).min(10) as i32,
            REDRIVE_VISIBILITY_SECONDS,
        )
        .await?;
        if batch.is_empty() {
            break;
        }
        if let Some(pacer) = pacer.as_mut() {
            pacer.tick().await;
        }
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
        let sent_ids: HashSet<&str> = sent.successful().iter().map(|s| s.id()).collect();
        type Indexed<'a> = Vec<(usize, &'a DlqMessage)>;
        let (moved, kept): (Indexed, Indexed) = batch
            .iter()
            .enumerate()
            .partition(|(i, _)| sent_ids.contains(i.to_string().as_str()));
        if !moved.is_empty() {
            let deletes = moved.iter().map(|(i, m)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(&m.receipt)
                    .build()
                    .expect("id and receipt set")
            });
            client
                .delete_message_batch()
                .queue_url(dlq_url)
                .set_entries(Some(deletes.collect()))
                .send()
                .await
                .map_err(sqs_error("DeleteMessageBatch"))?;
        }
        let kept: Vec<DlqMessage> = kept.into_iter().map(|(_, m)| m.clone()).collect();
        release(client, dlq_url, &kept).await?;
        summary.moved += moved.len();
        summary.failed += kept.len();
        progress(&summary);
        if !kept.is_empty() {
            // Sending failed for some: stop rather than spin on them.
            break;
        }
    }
    Ok(summary)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_redrive_request_names_the_dlq_and_the_rate() {
        let request = native_move_request(
            "arn:aws:sqs:us-east-1:111122223333:uc-worker-dlq",
            None,
            Some(25.4),
        );
        assert_eq!(
            request.source_arn(),
            Some("arn:aws:sqs:us-east-1:111122223333:uc-worker-dlq")
        );
        assert_eq!(
            request.destination_arn(),
            None,
            "without a destination SQS returns messages to their source queue"
        );
        assert_eq!(request.max_number_of_messages_per_second(), Some(25));
        let request = native_move_request("arn:dlq", Some("arn:queue"), Some(100_000.0));
        assert_eq!(request.destination_arn(), Some("arn:queue"));
        assert_eq!(
            request.max_number_of_messages_per_second(),
            Some(500),
            "SQS's maximum"
        );
        assert_eq!(
            native_move_request("arn:dlq", None, None).max_number_of_messages_per_second(),
            None
        );
    }

    #[test]
    fn filters_parse_or_explain() {
        assert_eq!("sub=abc".parse::<Filter>(), Ok(Filter::Sub("abc".into())));
        assert_eq!(
            "reason=Unauthorized".parse::<Filter>(),
            Ok(Filter::Reason("Unauthorized".into()))
        );
        assert!("abc".parse::<Filter>().unwrap_err().contains("sub=<sub>"));
        assert!("sub=".parse::<Filter>().is_err());
    }
}
