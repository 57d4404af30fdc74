//! What a consumer knows about an SQS message besides its body, built one way from a Lambda
//! event record, an SDK `Message`, or a DLQ scan: ids, receive count, send time, and the
//! string message attributes (a replayed message carries its earlier `uc.*` record).

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::dead_letter::attr;

/// SQS system attribute names, as Lambda records and the SDK both spell them.
pub mod system_attr {
    pub const APPROXIMATE_RECEIVE_COUNT: &str = "ApproximateReceiveCount";
    pub const SENT_TIMESTAMP: &str = "SentTimestamp";
    /// The X-Ray trace header EventBridge passes on from the publisher's `TraceHeader`.
    pub const AWS_TRACE_HEADER: &str = "AWSTraceHeader";
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageMeta {
    pub message_id: String,
    pub receive_count: u32,
    pub sent_at: Option<DateTime<Utc>>,
    /// String message attributes.
    pub attributes: HashMap<String, String>,
    /// The X-Ray trace header (`Root=1-…;Parent=…;Sampled=…`) the message carries, if any.
    pub trace_header: Option<String>,
}

impl MessageMeta {
    /// The one constructor: `system` looks up a system attribute by its SQS name, `attributes`
    /// are the message's string attributes.
    pub fn from_sqs<'a>(
        message_id: Option<&str>,
        system: impl Fn(&str) -> Option<&'a str>,
        attributes: impl IntoIterator<Item = (String, String)>,
    ) -> Self {
        Self {
            message_id: message_id.unwrap_or_default().to_owned(),
            receive_count: system(system_attr::APPROXIMATE_RECEIVE_COUNT)
                .and_then(|c| c.parse().ok())
                .unwrap_or(1),
            sent_at: system(system_attr::SENT_TIMESTAMP)
                .and_then(|t| t.parse::<i64>().ok())
                .and_then(DateTime::from_timestamp_millis),
            attributes: attributes.into_iter().collect(),
            trace_header: system(system_attr::AWS_TRACE_HEADER)
                .filter(|t| is_trace_header(t))
                .map(str::to_owned),
        }
    }

    /// First sent: from an earlier dead-letter record if there is one, else SQS's SentTimestamp.
    pub fn first_seen_at(&self) -> Option<DateTime<Utc>> {
        self.attributes
            .get(attr::FIRST_SEEN_AT)
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
            .or(self.sent_at)
    }
}

/// A plausible X-Ray header: printable ASCII, bounded, so a hostile value can neither break a
/// log line nor an HTTP header.
fn is_trace_header(text: &str) -> bool {
    !text.is_empty() && text.len() <= 256 && text.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_from_system_and_string_attributes() {
        let system = |name: &str| match name {
            system_attr::APPROXIMATE_RECEIVE_COUNT => Some("3"),
            system_attr::SENT_TIMESTAMP => Some("1700000000000"),
            system_attr::AWS_TRACE_HEADER => {
                Some("Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1")
            }
            _ => None,
        };
        let meta = MessageMeta::from_sqs(Some("m-1"), system, [("k".to_owned(), "v".to_owned())]);
        assert_eq!(meta.message_id, "m-1");
        assert_eq!(meta.receive_count, 3);
        assert_eq!(meta.sent_at.unwrap().timestamp(), 1_700_000_000);
        assert_eq!(meta.first_seen_at(), meta.sent_at);
        assert_eq!(
            meta.trace_header.as_deref(),
            Some("Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1")
        );
        let hostile = MessageMeta::from_sqs(None, |_| Some("Root=1\r\nX-Evil: 1"), []);
        assert_eq!(hostile.trace_header, None, "not a header value to pass on");

        let bare = MessageMeta::from_sqs(None, |_| None, []);
        assert_eq!((bare.message_id.as_str(), bare.receive_count), ("", 1));

        let replayed = MessageMeta::from_sqs(
            Some("m-2"),
            system,
            [(
                attr::FIRST_SEEN_AT.to_owned(),
                "2026-01-02T03:04:05.000Z".to_owned(),
            )],
        );
        assert_eq!(
            replayed.first_seen_at().unwrap().to_rfc3339(),
            "2026-01-02T03:04:05+00:00"
        );
    }
}
