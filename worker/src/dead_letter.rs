//! The worker's DLQ writer: the contract's failure record (`uc_schemas::dead_letter`) sent as
//! SQS message attributes beside the original body, so permanent failures do not wait for
//! maxReceiveCount.

use std::collections::HashMap;
use std::future::Future;

use aws_sdk_sqs::types::MessageAttributeValue;
use uc_schemas::FailureRecord;

/// Where permanently failing messages go.
pub trait DeadLetterSink: Send + Sync {
    fn send(
        &self,
        body: &str,
        record: &FailureRecord,
    ) -> impl Future<Output = Result<(), String>> + Send;
}

/// The record as SQS message attributes, emails redacted from its detail.
pub fn sqs_attributes(record: &FailureRecord) -> HashMap<String, MessageAttributeValue> {
    record
        .to_attributes(uc_runtime::redact_emails)
        .into_iter()
        .map(|(name, value)| {
            let value = MessageAttributeValue::builder()
                .data_type(value.data_type)
                .string_value(value.value)
                .build()
                .expect("data type set");
            (name.to_owned(), value)
        })
        .collect()
}

/// The worker's DLQ, written directly.
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
            .set_message_attributes(Some(sqs_attributes(record)))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| uc_runtime::aws::classify_sdk_error(&e).to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uc_schemas::dead_letter::{MAX_DETAIL_CHARS, attr, stage};

    #[test]
    fn attributes_carry_the_reason_without_pii() {
        let record = FailureRecord {
            stage: stage::APPSYNC,
            reason: "ValidationError".into(),
            detail: format!(
                "Variable 'input' has an invalid value: {{email=jane@example.com}} {}",
                "x".repeat(2000)
            ),
            attempts: 1,
            receive_count: 2,
            first_seen_at: None,
            failed_at: chrono::Utc::now(),
            source_message_id: "m-1".into(),
            sub: Some("sub-1".into()),
        };
        let attributes = sqs_attributes(&record);
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
