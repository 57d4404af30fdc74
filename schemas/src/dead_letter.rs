//! The dead-letter record: a failed message's original body plus `uc.*` message attributes
//! that say why. The worker writes it; `uc-ops` reads it (stats by reason, peek, replay,
//! redrive); operators' tooling may too. SQS-free: adapters turn [`AttributeValue`]s into SDK
//! types.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::message_meta::MessageMeta;

/// Message attribute names (SQS allows letters, digits, `-`, `_` and `.`).
pub mod attr {
    /// Stable reason code: an envelope error code, a verification code, or an AppSync error
    /// type or DynamoDB error code.
    pub const REASON: &str = "uc.reason";
    /// Human-readable detail (email addresses redacted, at most 1,000 characters).
    pub const DETAIL: &str = "uc.detail";
    /// Where it failed: see [`super::stage`].
    pub const STAGE: &str = "uc.stage";
    /// Profile-store calls made for this message in the run that gave up.
    pub const ATTEMPTS: &str = "uc.attempts";
    /// SQS's receive count when it gave up.
    pub const RECEIVE_COUNT: &str = "uc.receive-count";
    /// When the message was first sent (RFC 3339), kept across replays.
    pub const FIRST_SEEN_AT: &str = "uc.first-seen-at";
    pub const FAILED_AT: &str = "uc.failed-at";
    pub const SOURCE_MESSAGE_ID: &str = "uc.source-message-id";
    /// The user's `sub`, when the body parsed.
    pub const SUB: &str = "uc.sub";
    /// Set by EventBridge on messages in a rule-target DLQ.
    pub const EVENTBRIDGE_ERROR_CODE: &str = "ERROR_CODE";
}

/// The `uc.stage` values.
pub mod stage {
    /// The body is not a usable event.
    pub const PARSE: &str = "parse";
    /// A usable event that is not provably the pipeline's own (source, pool, eventId, user).
    pub const VERIFY: &str = "verify";
    /// The profile store refused the write (`PROFILE_STORE=appsync`, the default).
    pub const APPSYNC: &str = "appsync";
    /// The DynamoDB profile store refused the `PutItem` (`PROFILE_STORE=dynamodb`).
    pub const DYNAMODB: &str = "dynamodb";
    /// A CloudTrail record the lifecycle could not act on (its bus refused the events).
    pub const LIFECYCLE: &str = "lifecycle";
}

/// Reason codes not written by the worker itself.
pub mod reason {
    /// A message the queue's redrive policy moved after `maxReceiveCount` receives: it carries
    /// no `uc.*` record, only its retryable failures' history in the worker's logs.
    pub const MAX_RECEIVE_COUNT_EXCEEDED: &str = "MaxReceiveCountExceeded";
}

/// Why a dead-lettered message is there: the worker's reason, EventBridge's error code for
/// the rule-target DLQ, or the redrive policy. The one rule every reader applies.
pub fn reason_of(attributes: &HashMap<String, String>) -> &str {
    attributes
        .get(attr::REASON)
        .or_else(|| attributes.get(attr::EVENTBRIDGE_ERROR_CODE))
        .map(String::as_str)
        .unwrap_or(reason::MAX_RECEIVE_COUNT_EXCEEDED)
}

/// One message attribute as SQS types it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributeValue {
    /// `String` or `Number`.
    pub data_type: &'static str,
    pub value: String,
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

/// The most characters of `uc.detail`.
pub const MAX_DETAIL_CHARS: usize = 1000;

impl FailureRecord {
    /// The record for a message that failed now, at `stage`, keeping its first-seen time and
    /// its original message id across replays.
    pub fn for_message(
        meta: &MessageMeta,
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

    /// The record as message attributes (at most 9 of SQS's 10). `redact` cleans the detail
    /// text of PII before it is stored.
    pub fn to_attributes(
        &self,
        redact: impl Fn(&str) -> String,
    ) -> Vec<(&'static str, AttributeValue)> {
        let string = |v: &str| AttributeValue {
            data_type: "String",
            value: v.to_owned(),
        };
        let number = |v: u32| AttributeValue {
            data_type: "Number",
            value: v.to_string(),
        };
        let time =
            |t: &DateTime<Utc>| string(&t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
        let detail: String = redact(&self.detail)
            .chars()
            .take(MAX_DETAIL_CHARS)
            .collect();
        let mut attributes = vec![
            (attr::REASON, string(&self.reason)),
            (attr::STAGE, string(self.stage)),
            (attr::ATTEMPTS, number(self.attempts)),
            (attr::RECEIVE_COUNT, number(self.receive_count)),
            (attr::FAILED_AT, time(&self.failed_at)),
        ];
        if !detail.is_empty() {
            attributes.push((attr::DETAIL, string(&detail)));
        }
        if !self.source_message_id.is_empty() {
            attributes.push((attr::SOURCE_MESSAGE_ID, string(&self.source_message_id)));
        }
        if let Some(first) = &self.first_seen_at {
            attributes.push((attr::FIRST_SEEN_AT, time(first)));
        }
        if let Some(sub) = &self.sub {
            attributes.push((attr::SUB, string(sub)));
        }
        attributes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_carry_the_reason_and_the_cleaned_detail() {
        let record = FailureRecord {
            stage: stage::APPSYNC,
            reason: "ValidationError".into(),
            detail: format!(
                "Variable 'input' {{email=jane@example.com}} {}",
                "x".repeat(2000)
            ),
            attempts: 1,
            receive_count: 2,
            first_seen_at: None,
            failed_at: Utc::now(),
            source_message_id: "m-1".into(),
            sub: Some("sub-1".into()),
        };
        let attributes: HashMap<_, _> = record
            .to_attributes(|t| t.replace("jane@example.com", "<redacted>"))
            .into_iter()
            .collect();
        let detail = &attributes[attr::DETAIL].value;
        assert!(!detail.contains('@') && detail.contains("<redacted>"));
        assert_eq!(detail.chars().count(), MAX_DETAIL_CHARS);
        assert_eq!(attributes[attr::REASON].value, "ValidationError");
        assert_eq!(attributes[attr::ATTEMPTS].data_type, "Number");
        assert_eq!(attributes[attr::SUB].value, "sub-1");
        assert!(!attributes.contains_key(attr::FIRST_SEEN_AT));
        assert!(
            attributes.len() <= 10,
            "SQS allows at most 10 message attributes"
        );
    }

    #[test]
    fn the_reason_rule() {
        let of = |pairs: &[(&str, &str)]| {
            let map: HashMap<String, String> = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            reason_of(&map).to_owned()
        };
        assert_eq!(
            of(&[
                (attr::REASON, "NotJson"),
                (attr::EVENTBRIDGE_ERROR_CODE, "X")
            ]),
            "NotJson"
        );
        assert_eq!(
            of(&[(attr::EVENTBRIDGE_ERROR_CODE, "SQS.AccessDenied")]),
            "SQS.AccessDenied"
        );
        assert_eq!(of(&[]), reason::MAX_RECEIVE_COUNT_EXCEEDED);
    }
}
