//! The dead-letter record: the original body plus message attributes that say why it failed.
//! The worker writes them; the ops CLI reads them (stats by reason, replay, filters).

use std::collections::HashMap;
use std::future::Future;

use aws_sdk_sqs::types::MessageAttributeValue;
use chrono::{DateTime, Utc};

/// Message attribute names (SQS allows letters, digits, `-`, `_` and `.`).
pub mod attr {
    /// Stable reason code: an envelope error code or an AppSync error type.
    pub const REASON: &str = "uc.reason";
    /// Human-readable detail (email addresses redacted, at most 1,000 characters).
    pub const DETAIL: &str = "uc.detail";
    /// `parse` (the body is not a usable event) or `appsync` (the call failed).
    pub const STAGE: &str = "uc.stage";
    /// AppSync calls made for this message in the run that gave up.
    pub const ATTEMPTS: &str = "uc.attempts";
    /// SQS's receive count when it gave up.
    pub const RECEIVE_COUNT: &str = "uc.receive-count";
    /// When the message was first sent (RFC 3339), kept across replays.
    pub const FIRST_SEEN_AT: &str = "uc.first-seen-at";
    pub const FAILED_AT: &str = "uc.failed-at";
    pub const SOURCE_MESSAGE_ID: &str = "uc.source-message-id";
    /// The user's `sub`, when the body parsed.
    pub const SUB: &str = "uc.sub";
}

/// Why a message was dead-lettered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureRecord {
    pub stage: &'static str,
    pub reason: String,
    pub detail: String,
    pub attempts: u32,
    pub receive_count: u32,
    pub first_seen_at: Option<DateTime<Utc>>,
    pub failed_at: DateTime<Utc>,
    pub source_message_id: String,
    pub sub: Option<String>,
}

const MAX_DETAIL_CHARS: usize = 1000;

impl FailureRecord {
    /// The record for a message that failed now, at `stage`, keeping its first-seen time and
    /// its original message id across replays.
    pub fn for_message(
        meta: &crate::MessageMeta,
        stage: &'static str,
        reason: &str,
        detail: String,
        attempts: u32,
        sub: Option<String>,
    ) -> Self {
        Self {
            stage,
            reason: reason.to_owned(),
            detail,
            attempts,
            receive_count: meta.receive_count,
            first_seen_at: meta.first_seen_at(),
            failed_at: Utc::now(),
            source_message_id: meta
                .attributes
                .get(attr::SOURCE_MESSAGE_ID)
                .cloned()
                .unwrap_or_else(|| meta.message_id.clone()),
            sub,
        }
    }

    /// The record as SQS message attributes.
    pub fn to_attributes(&self) -> HashMap<String, MessageAttributeValue> {
        let string = |v: &str| {
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(v)
                .build()
                .expect("data type set")
        };
        let number = |v: u32| {
            MessageAttributeValue::builder()
                .data_type("Number")
                .string_value(v.to_string())
                .build()
                .expect("data type set")
        };
        let detail: String = uc_runtime::redact_emails(&self.detail)
            .chars()
            .take(MAX_DETAIL_CHARS)
            .collect();
        let mut attributes = HashMap::from([
            (attr::REASON.to_owned(), string(&self.reason)),
            (attr::STAGE.to_owned(), string(self.stage)),
            (attr::ATTEMPTS.to_owned(), number(self.attempts)),
            (attr::RECEIVE_COUNT.to_owned(), number(self.receive_count)),
            (
                attr::FAILED_AT.to_owned(),
                string(
                    &self
                        .failed_at
                        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                ),
            ),
        ]);
        if !detail.is_empty() {
            attributes.insert(attr::DETAIL.to_owned(), string(&detail));
        }
        if !self.source_message_id.is_empty() {
            attributes.insert(
                attr::SOURCE_MESSAGE_ID.to_owned(),
                string(&self.source_message_id),
            );
        }
        if let Some(first) = self.first_seen_at {
            attributes.insert(
                attr::FIRST_SEEN_AT.to_owned(),
                string(&first.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
            );
        }
        if let Some(sub) = &self.sub {
            attributes.insert(attr::SUB.to_owned(), string(sub));
        }
        attributes
    }
}

/// Where permanently failing messages go.
pub trait DeadLetterSink: Send + Sync {
    fn send(
        &self,
        body: &str,
        record: &FailureRecord,
    ) -> impl Future<Output = Result<(), String>> + Send;
}

/// The worker's DLQ, written directly so permanent failures do not wait for maxReceiveCount.
#[derive(Debug, Clone)]
pub struct SqsDeadLetters {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl SqsDeadLetters {
    pub fn new(client: aws_sdk_sqs::Client, queue_url: String) -> Self {
        Self { client, queue_url }
    }
}

impl DeadLetterSink for SqsDeadLetters {
    async fn send(&self, body: &str, record: &FailureRecord) -> Result<(), String> {
        // SQS refuses an empty body; keep the message all the same, marked as such.
        let body = if body.is_empty() { "<empty>" } else { body };
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .set_message_attributes(Some(record.to_attributes()))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| aws_sdk_sqs::error::DisplayErrorContext(&e).to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_carry_the_reason_without_pii() {
        let record = FailureRecord {
            stage: "appsync",
            reason: "ValidationError".into(),
            detail: format!(
                "Variable 'input' has an invalid value: {{email=jane@example.com}} {}",
                "x".repeat(2000)
            ),
            attempts: 1,
            receive_count: 2,
            first_seen_at: None,
            failed_at: Utc::now(),
            source_message_id: "m-1".into(),
            sub: Some("sub-1".into()),
        };
        let attributes = record.to_attributes();
        let detail = attributes[attr::DETAIL].string_value().unwrap();
        assert!(!detail.contains('@') && detail.contains("<redacted>"));
        assert_eq!(detail.chars().count(), MAX_DETAIL_CHARS);
        assert_eq!(
            attributes[attr::REASON].string_value(),
            Some("ValidationError")
        );
        assert_eq!(attributes[attr::ATTEMPTS].data_type(), "Number");
        assert_eq!(attributes[attr::SUB].string_value(), Some("sub-1"));
        assert!(!attributes.contains_key(attr::FIRST_SEEN_AT));
        assert!(
            attributes.len() <= 10,
            "SQS allows at most 10 message attributes"
        );
    }
}
