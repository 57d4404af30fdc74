//! Dead-letter queues at 3 a.m.: inspect (`stats`, `peek`), process in place with the worker's
//! own core (`replay`), or move back to the source queue (`redrive`). Every command that reads
//! messages holds what it has read invisible while it runs — renewing the hold for as long as
//! the run lasts, so a slow run never meets the same message twice and never stops short — and
//! hands everything back (visibility 0) at the end. Nothing is deleted before its replacement
//! (a profile, or a copy in a queue) exists.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use aws_sdk_sqs::types::MessageAttributeValue;
use chrono::{DateTime, Utc};
use serde_json::Value;
use uc_schemas::MessageMeta;
use uc_schemas::dead_letter::attr;

use crate::text::redact;

/// How long a read message is held invisible before the hold is renewed (at half-time): long
/// enough to read a queue, short enough that a crashed run hands its messages back soon.
pub const DEFAULT_HOLD: Duration = Duration::from_secs(60);

/// A redrive holds only what it is about to send, so it can hand messages back sooner after a
/// crash.
pub const REDRIVE_HOLD: Duration = Duration::from_secs(15);

/// Consecutive empty receives (each a 1 s long poll, which asks every SQS server) that mean
/// the queue has nothing left that is not already held.
const EMPTY_RECEIVES_AT_THE_END: u32 = 2;

/// Consecutive receives that return only messages read before (their hold lapsed) after
/// which a reader stops and says it could not read the whole queue.
const STALE_ROUNDS_TO_GIVE_UP: u32 = 10;

/// Body characters `peek` shows.
const PEEK_BODY_CHARS: usize = 160;

/// Subs a summary lists at most.
const LISTED: usize = 20;

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
    /// The receipt of the receive that returned it (the [`Reader`] keeps the latest one).
    pub receipt: String,
    pub body: String,
    /// String message attributes (`uc.*` from the worker, `ERROR_CODE` etc. from EventBridge).
    pub attributes: HashMap<String, String>,
    raw_attributes: HashMap<String, MessageAttributeValue>,
    /// SQS's ApproximateReceiveCount *in this queue*, this receive included.
    pub receive_count: u32,
    pub sent_at: Option<DateTime<Utc>>,
}

/// Who a message is about, as far as its body (or its record) says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    pub sub: Option<String>,
    pub username: Option<String>,
    pub email: Option<String>,
    /// The body is a valid `UserConfirmed` (the strict parse); otherwise the values were read
    /// leniently from whatever JSON the body holds, or the sub from the worker's record.
    pub parsed: bool,
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
    /// for the rule-target DLQ, or the queue's redrive policy: `MaxReceiveCountExceeded`).
    pub fn reason(&self) -> &str {
        uc_schemas::dead_letter::reason_of(&self.attributes)
    }

    /// Where the worker failed it (`parse`, `verify`, `appsync`), when the worker wrote it.
    pub fn stage(&self) -> Option<&str> {
        self.attributes.get(attr::STAGE).map(String::as_str)
    }

    /// `uc.detail`, or EventBridge's `ERROR_MESSAGE`.
    pub fn detail(&self) -> Option<&str> {
        self.attributes
            .get(attr::DETAIL)
            .or_else(|| self.attributes.get("ERROR_MESSAGE"))
            .map(String::as_str)
    }

    /// The user the message is about: from the event when the body parses, else read leniently
    /// (`detail.sub` or `sub` of any JSON object), else the worker's `uc.sub`.
    pub fn identity(&self) -> Identity {
        if let Ok(received) = uc_schemas::parse_message(&self.body) {
            let event = received.detail;
            return Identity {
                sub: Some(event.sub),
                username: Some(event.username),
                email: event.email,
                parsed: true,
            };
        }
        let mut identity = lenient_identity(&self.body);
        if identity.sub.is_none() {
            identity.sub = self.attributes.get(attr::SUB).cloned();
        }
        identity
    }

    pub fn sub(&self) -> Option<String> {
        self.identity().sub
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

    /// Whether `filter` selects it. Reasons compare without regard to case; so do subs.
    pub fn matches(&self, filter: &Filter) -> bool {
        match filter {
            Filter::All => true,
            Filter::Sub(sub) => self.sub().is_some_and(|s| s.eq_ignore_ascii_case(sub)),
            Filter::Reason(reason) => self.reason().eq_ignore_ascii_case(reason),
        }
    }

    /// A copy this run (or a worker, meanwhile) dead-lettered after `started`: not one to
    /// process or move again in the same run.
    fn written_since(&self, started: DateTime<Utc>) -> bool {
        self.attributes
            .get(attr::FAILED_AT)
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .is_some_and(|t| t >= started)
    }
}

/// `sub`, `username` and `email` of whatever JSON object the body is, or of its `detail`.
fn lenient_identity(body: &str) -> Identity {
    let Ok(Value::Object(root)) = serde_json::from_str::<Value>(body) else {
        return Identity::default();
    };
    let field = |name: &str| {
        root.get("detail")
            .and_then(|d| d.get(name))
            .or_else(|| root.get(name))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    Identity {
        sub: field("sub"),
        username: field("username"),
        email: field("email"),
        parsed: false,
    }
}

/// `--filter`: which messages a replay or a redrive takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    All,
    Sub(String),
    /// A reason as `dlq stats` prints it, in any case.
    Reason(String),
}

impl std::str::FromStr for Filter {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text.split_once('=') {
            Some(("sub", v)) if !v.is_empty() => Ok(Self::Sub(v.to_ascii_lowercase())),
            Some(("reason", v)) if !v.is_empty() => Ok(Self::Reason(v.to_owned())),
            _ => Err(format!(
                "{text:?}: expected sub=<sub> or reason=<reason> (a reason as `dlq stats` prints it)"
            )),
        }
    }
}

impl std::fmt::Display for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::All => f.write_str("none"),
            Self::Sub(sub) => write!(f, "sub={sub}"),
            Self::Reason(reason) => write!(f, "reason={reason}"),
        }
    }
}

/// What a replay or redrive run has seen of the queue, for its summary.
#[derive(Debug)]
pub(crate) struct Seen<'a> {
    pub reasons_present: &'a mut BTreeMap<String, usize>,
    pub skipped_by_filter: &'a mut usize,
}

impl Seen<'_> {
    /// Whether the run acts on `message`: not one it wrote itself since `started` (that would
    /// go round in circles), and matching `filter`. Counts its reason, and what the filter
    /// skipped.
    pub(crate) fn selects(
        &mut self,
        message: &DlqMessage,
        started: DateTime<Utc>,
        filter: &Filter,
    ) -> bool {
        if message.written_since(started) {
            return false;
        }
        *self
            .reasons_present
            .entry(redact(message.reason()))
            .or_default() += 1;
        if !message.matches(filter) {
            *self.skipped_by_filter += 1;
            return false;
        }
        true
    }
}

/// What a filter that matched nothing says, when other messages were there.
fn no_match(filter: &Filter, present: &BTreeMap<String, usize>) -> Option<String> {
    let listed = || {
        present
            .iter()
            .map(|(reason, n)| format!("{reason} ({n})"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match filter {
        Filter::All => None,
        Filter::Reason(reason) => Some(format!(
            "no message has reason {}; reasons present: {}",
            redact(reason),
            listed()
        )),
        Filter::Sub(sub) => Some(format!(
            "no message has sub {}; reasons present: {}",
            redact(sub),
            listed()
        )),
    }
}

mod inspect;
mod reader;
mod redrive;
mod replay;
#[cfg(test)]
mod tests;

pub use inspect::*;
pub use reader::*;
pub use redrive::*;
pub use replay::*;
