//! `dlq stats` and `dlq peek`: depth, age and reasons per queue; decoded rows with nothing an
//! operator should not see (emails redacted, control characters escaped).

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::QueueAttributeName;
use chrono::{DateTime, Utc};
use serde::Serialize;
use uc_schemas::dead_letter::attr;

use crate::text::{redact, redact_unless, truncate};

use super::*;

/// Depth, age and reasons of one queue.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct QueueStats {
    pub queue_url: String,
    pub depth: u64,
    pub in_flight: u64,
    pub oldest_age_seconds: Option<i64>,
    /// Messages read to count the reasons.
    pub counted: usize,
    /// The whole queue was read (false: stopped at the scan limit, or could not read past
    /// messages held elsewhere).
    pub complete: bool,
    pub by_reason: BTreeMap<String, u64>,
}

/// Reads the whole queue (up to `limit`), counts, and hands everything back.
pub async fn stats(
    client: &Client,
    url: &str,
    limit: usize,
    hold: Duration,
) -> Result<QueueStats, DlqError> {
    let (depth, in_flight) = depth(client, url).await?;
    let (messages, complete) = read_and_release(client, url, Some(limit), hold).await?;
    let now = Utc::now();
    let mut by_reason = BTreeMap::new();
    for message in &messages {
        *by_reason.entry(redact(message.reason())).or_default() += 1;
    }
    Ok(QueueStats {
        queue_url: url.to_owned(),
        depth,
        in_flight,
        oldest_age_seconds: messages
            .iter()
            .filter_map(|m| m.first_seen_at())
            .min()
            .map(|t| (now - t).num_seconds()),
        counted: messages.len(),
        complete,
        by_reason,
    })
}

/// One decoded message of `peek`. Without `--show-pii` every text is cleaned of email
/// addresses, wherever it came from (a body, a username, a forged attribute).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PeekRow {
    pub message_id: String,
    pub reason: String,
    pub stage: Option<String>,
    /// `uc.detail` (or EventBridge's `ERROR_MESSAGE`).
    pub detail: Option<String>,
    pub sub: Option<String>,
    /// Whether the body is a valid `UserConfirmed` (else sub and username were read leniently).
    pub parsed: bool,
    pub username: Option<String>,
    /// Only with `--show-pii`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// How often the worker's queue had delivered it when the worker gave up (`uc.receive-count`).
    pub worker_receive_count: Option<u32>,
    /// How often it had been received *from the DLQ* before this peek (peeks and scans
    /// included). Peeking is a receive and adds one; a DLQ has no redrive policy, so these
    /// counts drive nothing.
    pub dlq_receives_before_peek: u32,
    pub age_seconds: Option<i64>,
    /// The body's first characters.
    pub body: String,
}

/// Decodes up to `limit` messages and hands them back at once.
pub async fn peek(
    client: &Client,
    url: &str,
    limit: usize,
    show_pii: bool,
    hold: Duration,
) -> Result<Peek, DlqError> {
    let (depth, _) = depth(client, url).await?;
    let (messages, _) = read_and_release(client, url, Some(limit), hold).await?;
    let now = Utc::now();
    Ok(Peek {
        rows: messages
            .iter()
            .map(|m| peek_row(m, show_pii, now))
            .collect(),
        limit,
        depth,
    })
}

/// What `peek` showed, with what it needs to say whether more remain.
#[derive(Debug)]
pub struct Peek {
    pub rows: Vec<PeekRow>,
    /// `--limit`.
    pub limit: usize,
    /// The queue's approximate depth (visible messages) before the peek.
    pub depth: u64,
}

/// In JSON a peek is the array of rows it has always been.
impl Serialize for Peek {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.rows.serialize(serializer)
    }
}

/// The queue's approximate (visible, in flight) message counts.
async fn depth(client: &Client, url: &str) -> Result<(u64, u64), DlqError> {
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
    Ok((
        number(QueueAttributeName::ApproximateNumberOfMessages),
        number(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
    ))
}

pub(super) fn peek_row(m: &DlqMessage, show_pii: bool, now: DateTime<Utc>) -> PeekRow {
    let clean = |text: &str| redact_unless(show_pii, text);
    let identity = m.identity();
    PeekRow {
        message_id: clean(&m.message_id),
        reason: clean(m.reason()),
        stage: m.stage().map(clean),
        detail: m.detail().map(clean),
        sub: identity.sub.as_deref().map(clean),
        parsed: identity.parsed,
        username: identity.username.as_deref().map(clean),
        email: identity.email.filter(|_| show_pii),
        worker_receive_count: m
            .attributes
            .get(attr::RECEIVE_COUNT)
            .and_then(|c| c.parse().ok()),
        dlq_receives_before_peek: m.receive_count.saturating_sub(1),
        age_seconds: m.first_seen_at().map(|t| (now - t).num_seconds()),
        body: clean(&truncate(&m.body, PEEK_BODY_CHARS)),
    }
}
