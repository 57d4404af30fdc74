//! Dead-letter queues at 3 a.m.: inspect (`stats`, `peek`), process in place with the worker's
//! own core (`replay`), or move back to the source queue (`redrive`). Every command that reads
//! messages holds what it has read invisible while it runs — renewing the hold for as long as
//! the run lasts, so a slow run never meets the same message twice and never stops short — and
//! hands everything back (visibility 0) at the end. Nothing is deleted before its replacement
//! (a profile, or a copy in a queue) exists.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
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
use serde_json::Value;
use tokio::time::Instant;
use uc_schemas::dead_letter::attr;
use uc_schemas::{FailureRecord, MessageMeta};
use uc_worker::{DeadLetterSink, Disposition, MessageHandler};

use crate::pace::Pacer;
use crate::text::{redact, redact_unless, truncate};

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

struct Held {
    receipt: String,
    until: Instant,
}

/// Reads a queue once through: each message is returned once, and held invisible — the hold
/// renewed while the run lasts — until it is deleted or the run [releases](Reader::release_all)
/// everything. Holding is what lets a receive reach the messages behind the ones already read.
pub struct Reader<'a> {
    client: &'a Client,
    url: &'a str,
    hold: Duration,
    held: HashMap<String, Held>,
    seen: HashSet<String>,
    stale_rounds: u32,
    complete: bool,
}

impl<'a> Reader<'a> {
    pub fn new(client: &'a Client, url: &'a str, hold: Duration) -> Self {
        Self {
            client,
            url,
            hold: hold.max(Duration::from_secs(1)),
            held: HashMap::new(),
            seen: HashSet::new(),
            stale_rounds: 0,
            complete: false,
        }
    }

    /// Whether the queue was read to its end (as opposed to stopped early, or given up on).
    pub fn is_complete(&self) -> bool {
        self.complete
    }

    fn visibility(&self) -> i32 {
        self.hold.as_secs().clamp(1, 43_200) as i32
    }

    /// Up to `max` (at most 10) messages not read before. Empty once the queue has nothing
    /// left that this reader does not hold.
    pub async fn next(&mut self, max: usize) -> Result<Vec<DlqMessage>, DlqError> {
        let mut empty = 0;
        loop {
            self.keep_alive().await;
            let batch = receive(self.client, self.url, max as i32, self.visibility()).await?;
            if batch.is_empty() {
                empty += 1;
                if empty >= EMPTY_RECEIVES_AT_THE_END {
                    self.complete = true;
                    return Ok(Vec::new());
                }
                continue;
            }
            empty = 0;
            let until = Instant::now() + self.hold;
            let mut fresh = Vec::new();
            for message in batch {
                // A message read before is back because its hold lapsed: hold it again, under
                // its new receipt, and do not return it twice.
                self.held.insert(
                    message.message_id.clone(),
                    Held {
                        receipt: message.receipt.clone(),
                        until,
                    },
                );
                if self.seen.insert(message.message_id.clone()) {
                    fresh.push(message);
                }
            }
            if !fresh.is_empty() {
                self.stale_rounds = 0;
                return Ok(fresh);
            }
            self.stale_rounds += 1;
            if self.stale_rounds >= STALE_ROUNDS_TO_GIVE_UP {
                tracing::warn!(
                    queue = self.url,
                    "receives return only messages already read; stopping before the end"
                );
                return Ok(Vec::new());
            }
        }
    }

    /// Renews the hold of every message within half a hold of its end. Best effort: a message
    /// whose renewal fails comes back, and [`Reader::next`] holds it again.
    pub async fn keep_alive(&mut self) {
        let now = Instant::now();
        let due: Vec<(String, String)> = self
            .held
            .iter()
            .filter(|(_, h)| h.until.saturating_duration_since(now) < self.hold / 2)
            .map(|(id, h)| (id.clone(), h.receipt.clone()))
            .collect();
        for chunk in due.chunks(10) {
            let entries = chunk.iter().enumerate().map(|(i, (_, receipt))| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(receipt)
                    .visibility_timeout(self.visibility())
                    .build()
                    .expect("id and receipt set")
            });
            let sent = self
                .client
                .change_message_visibility_batch()
                .queue_url(self.url)
                .set_entries(Some(entries.collect()))
                .send()
                .await;
            if let Err(e) = &sent {
                tracing::warn!(error = %crate::aws_message(e), "renewing holds failed");
            }
            let until = Instant::now() + self.hold;
            for (id, _) in chunk {
                if let Some(held) = self.held.get_mut(id) {
                    held.until = until;
                }
            }
        }
    }

    /// Runs `work`, renewing holds while it runs (a paced wait, a slow AppSync call).
    pub async fn while_holding<F: Future>(&mut self, work: F) -> F::Output {
        let tick = (self.hold / 4).max(Duration::from_millis(250));
        tokio::pin!(work);
        loop {
            tokio::select! {
                out = &mut work => return out,
                _ = tokio::time::sleep(tick) => self.keep_alive().await,
            }
        }
    }

    /// Deletes a message this reader holds (with its latest receipt).
    pub async fn delete(&mut self, message_id: &str) -> Result<(), DlqError> {
        let Some(held) = self.held.remove(message_id) else {
            return Ok(());
        };
        self.client
            .delete_message()
            .queue_url(self.url)
            .receipt_handle(held.receipt)
            .send()
            .await
            .map_err(sqs_error("DeleteMessage"))?;
        Ok(())
    }

    /// Deletes up to ten held messages; returns the ids that could not be deleted.
    pub async fn delete_batch(&mut self, message_ids: &[&str]) -> Result<Vec<String>, DlqError> {
        let held: Vec<(&str, String)> = message_ids
            .iter()
            .filter_map(|id| Some((*id, self.held.get(*id)?.receipt.clone())))
            .collect();
        if held.is_empty() {
            return Ok(Vec::new());
        }
        let entries = held.iter().enumerate().map(|(i, (_, receipt))| {
            DeleteMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(receipt)
                .build()
                .expect("id and receipt set")
        });
        let out = self
            .client
            .delete_message_batch()
            .queue_url(self.url)
            .set_entries(Some(entries.collect()))
            .send()
            .await
            .map_err(sqs_error("DeleteMessageBatch"))?;
        let failed: HashSet<&str> = out.failed().iter().map(|f| f.id()).collect();
        let mut not_deleted = Vec::new();
        for (i, (id, _)) in held.iter().enumerate() {
            if failed.contains(i.to_string().as_str()) {
                not_deleted.push(id.to_string());
            } else {
                self.held.remove(*id);
            }
        }
        Ok(not_deleted)
    }

    /// Makes every held message visible again at once.
    pub async fn release_all(&mut self) -> Result<(), DlqError> {
        let receipts: Vec<String> = self.held.drain().map(|(_, h)| h.receipt).collect();
        for chunk in receipts.chunks(10) {
            let entries = chunk.iter().enumerate().map(|(i, receipt)| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(receipt)
                    .visibility_timeout(0)
                    .build()
                    .expect("id and receipt set")
            });
            self.client
                .change_message_visibility_batch()
                .queue_url(self.url)
                .set_entries(Some(entries.collect()))
                .send()
                .await
                .map_err(sqs_error("ChangeMessageVisibilityBatch"))?;
        }
        Ok(())
    }

    /// Reads up to `limit` messages (all with `None`).
    pub async fn read(&mut self, limit: Option<usize>) -> Result<Vec<DlqMessage>, DlqError> {
        let mut messages = Vec::new();
        loop {
            let want = limit.map_or(10, |l| l.saturating_sub(messages.len()).min(10));
            if want == 0 {
                return Ok(messages);
            }
            let batch = self.next(want).await?;
            if batch.is_empty() {
                return Ok(messages);
            }
            messages.extend(batch);
        }
    }
}

/// Reads up to `limit` messages, then hands every one back: what `stats` and `peek` do.
async fn read_and_release(
    client: &Client,
    url: &str,
    limit: Option<usize>,
    hold: Duration,
) -> Result<(Vec<DlqMessage>, bool), DlqError> {
    let mut reader = Reader::new(client, url, hold);
    let read = reader.read(limit).await;
    let released = reader.release_all().await;
    let messages = read?;
    released?;
    Ok((messages, reader.is_complete()))
}

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

/// Waits for `pacer` until `units` more messages may go; the wait renews the reader's holds.
async fn pace(pacer: &mut Option<Pacer>, reader: &mut Reader<'_>, units: usize) {
    let Some(pacer) = pacer.as_mut() else {
        return;
    };
    let at = pacer.reserve(units);
    if at > Instant::now() {
        reader.while_holding(tokio::time::sleep_until(at)).await;
    }
}

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
    let (messages, complete) = read_and_release(client, url, Some(limit), hold).await?;
    let now = Utc::now();
    let mut by_reason = BTreeMap::new();
    for message in &messages {
        *by_reason.entry(redact(message.reason())).or_default() += 1;
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
) -> Result<Vec<PeekRow>, DlqError> {
    let (messages, _) = read_and_release(client, url, Some(limit), hold).await?;
    let now = Utc::now();
    Ok(messages
        .iter()
        .map(|m| peek_row(m, show_pii, now))
        .collect())
}

fn peek_row(m: &DlqMessage, show_pii: bool, now: DateTime<Utc>) -> PeekRow {
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

/// What a replay did.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ReplaySummary {
    /// Matching messages processed (counted, in a dry run).
    pub examined: usize,
    pub skipped_by_filter: usize,
    pub created: usize,
    pub already_existed: usize,
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
    let mut pacer = options.rate.and_then(Pacer::new);
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
            if message.written_since(started) {
                continue;
            }
            *summary
                .reasons_present
                .entry(redact(message.reason()))
                .or_default() += 1;
            if !message.matches(&options.filter) {
                summary.skipped_by_filter += 1;
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
            pace(&mut pacer, reader, 1).await;
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
    let mut pacer = options.rate.and_then(Pacer::new);
    'reading: loop {
        let batch = reader.next(10).await?;
        if batch.is_empty() {
            break;
        }
        let mut chosen = Vec::new();
        let mut stop = false;
        for message in batch {
            // Dead-lettered again since this run started (the worker refused a moved message
            // once more): moving it again now would only go round in circles.
            if message.written_since(started) {
                continue;
            }
            *summary
                .reasons_present
                .entry(redact(message.reason()))
                .or_default() += 1;
            if !message.matches(&options.filter) {
                summary.skipped_by_filter += 1;
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
            pace(&mut pacer, reader, chosen.len()).await;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn message(body: &str, attributes: &[(&str, &str)]) -> DlqMessage {
        DlqMessage {
            message_id: "m-1".into(),
            receipt: "r-1".into(),
            body: body.into(),
            attributes: attributes
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            raw_attributes: HashMap::new(),
            receive_count: 3,
            sent_at: None,
        }
    }

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
        assert_eq!("sub=ABC".parse::<Filter>(), Ok(Filter::Sub("abc".into())));
        assert_eq!(
            "reason=Unauthorized".parse::<Filter>(),
            Ok(Filter::Reason("Unauthorized".into()))
        );
        assert!("abc".parse::<Filter>().unwrap_err().contains("sub=<sub>"));
        assert!("sub=".parse::<Filter>().is_err());
        assert!("reasn=x".parse::<Filter>().is_err());
    }

    #[test]
    fn reasons_match_as_stats_prints_them_in_any_case() {
        let moved = message("{}", &[]);
        assert_eq!(moved.reason(), "MaxReceiveCountExceeded");
        for spelling in [
            "MaxReceiveCountExceeded",
            "maxreceivecountexceeded",
            "MAXRECEIVECOUNTEXCEEDED",
        ] {
            assert!(
                moved.matches(&Filter::Reason(spelling.into())),
                "{spelling}"
            );
        }
        assert!(!moved.matches(&Filter::Reason("MaxReceiveCount".into())));
        let poison = message("x", &[(attr::REASON, "NotJson")]);
        assert!(poison.matches(&Filter::Reason("notjson".into())));
        assert!(!poison.matches(&Filter::Reason("MaxReceiveCountExceeded".into())));
    }

    #[test]
    fn the_sub_comes_from_the_event_or_leniently_from_any_json() {
        let pool = "us-east-1_Pool";
        let sub = uc_schemas::sub_from_label("peek");
        let event = uc_schemas::UserConfirmed::builder(pool, &sub)
            .username("jane@example.com")
            .build();
        let genuine = uc_schemas::to_envelope(uc_schemas::DEFAULT_SOURCE, &event).to_string();
        let identity = message(&genuine, &[]).identity();
        assert!(identity.parsed);
        assert_eq!(identity.sub.as_deref(), Some(sub.as_str()));

        // Not a valid UserConfirmed (no schemaVersion), but the sub is there to read.
        let loose =
            r#"{"detail-type":"UserConfirmed","detail":{"sub":"Loose-Sub","username":"x@y.z"}}"#;
        let identity = message(loose, &[]).identity();
        assert!(!identity.parsed);
        assert_eq!(identity.sub.as_deref(), Some("Loose-Sub"));
        assert_eq!(identity.username.as_deref(), Some("x@y.z"));
        assert_eq!(
            message(r#"{"sub":"top"}"#, &[]).identity().sub.as_deref(),
            Some("top")
        );
        // No JSON at all: the worker's record still names the sub.
        assert_eq!(
            message("<empty>", &[(attr::SUB, "from-record")]).sub(),
            Some("from-record".into())
        );
        assert!(message("{\"detail\": 5}", &[]).sub().is_none());
        assert!(message("{", &[]).sub().is_none());
        assert!(
            message(loose, &[]).matches(&Filter::Sub("loose-sub".into())),
            "subs match in any case"
        );
    }

    #[test]
    fn peek_rows_hold_no_address_unless_asked() {
        let body = r#"{"detail-type":"UserConfirmed","detail":{"sub":"s-1","username":"jane@example.com","email":"jane@example.com"}}"#;
        let m = message(
            body,
            &[
                (attr::REASON, "NotJson"),
                (attr::DETAIL, "forged: bob@example.com"),
                (attr::RECEIVE_COUNT, "5"),
            ],
        );
        let row = peek_row(&m, false, Utc::now());
        let json = serde_json::to_string(&row).unwrap();
        assert!(!json.contains('@'), "{json}");
        assert_eq!(row.sub.as_deref(), Some("s-1"));
        assert_eq!(row.worker_receive_count, Some(5));
        assert_eq!(
            row.dlq_receives_before_peek, 2,
            "the count before this peek's receive"
        );
        let shown = peek_row(&m, true, Utc::now());
        assert_eq!(shown.email.as_deref(), Some("jane@example.com"));
        assert_eq!(shown.username.as_deref(), Some("jane@example.com"));
    }

    #[test]
    fn a_filter_that_matched_nothing_names_what_is_there() {
        let present: BTreeMap<String, usize> = [("NotJson".to_owned(), 2), ("X".to_owned(), 1)]
            .into_iter()
            .collect();
        assert_eq!(
            no_match(&Filter::Reason("Unauthorised".into()), &present).unwrap(),
            "no message has reason Unauthorised; reasons present: NotJson (2), X (1)"
        );
        assert_eq!(no_match(&Filter::All, &present), None);
    }

    #[test]
    fn a_replay_succeeds_only_when_nothing_matching_is_left() {
        let done = ReplaySummary {
            complete: true,
            ..Default::default()
        };
        assert!(done.succeeded());
        for unfinished in [
            ReplaySummary {
                left: 1,
                ..done.clone()
            },
            ReplaySummary {
                still_failing: 1,
                ..done.clone()
            },
            ReplaySummary {
                more_beyond_limit: true,
                ..done.clone()
            },
            ReplaySummary {
                complete: false,
                ..done.clone()
            },
            ReplaySummary {
                no_match: Some("no message has reason X".into()),
                ..done.clone()
            },
        ] {
            assert!(!unfinished.succeeded(), "{unfinished:?}");
        }
    }
}
