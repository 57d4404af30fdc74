//! Reading a DLQ without losing hold of it: every message read stays invisible (its hold
//! renewed) until the run releases it, so a slow, paced, filtered run reaches every message once.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::time::Duration;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry,
    MessageSystemAttributeName,
};
use tokio::time::Instant;

use uc_runtime::Pacer;

use super::*;

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
pub(super) async fn read_and_release(
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
pub(super) async fn pace(pacer: &Option<Pacer>, reader: &mut Reader<'_>, units: usize) {
    let Some(pacer) = pacer else {
        return;
    };
    let at = pacer.reserve(units);
    if at > Instant::now() {
        reader.while_holding(tokio::time::sleep_until(at)).await;
    }
}
