//! The long-poll front end, for containers and the local demo: ReceiveMessage with long
//! polling, the same core, DeleteMessageBatch for what is settled, and for retryable failures
//! a visibility back-off that grows with the receive count. On shutdown it stops receiving,
//! lets in-flight messages finish within a grace period, and releases the rest.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName, QueueAttributeName,
};
use backon::Retryable;
use tokio::sync::watch;
use tokio::time::Instant;
use uc_runtime::MetricsRecord;

use crate::WorkerError;
use crate::processor::{MessageHandler, MessageMeta, MessageReport};
use crate::retry::{RetryPolicy, visibility_backoff};

/// Time kept between a message's processing deadline and its visibility expiry.
const VISIBILITY_MARGIN: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
pub struct PollerSettings {
    pub queue_url: String,
    /// Concurrent receive loops (each takes up to 10 messages at a time).
    pub receivers: usize,
    pub wait_time_seconds: i32,
    pub visibility_backoff: (Duration, Duration),
    pub shutdown_grace: Duration,
}

/// Counts since start, for the exit summary.
#[derive(Debug, Default)]
pub struct PollerStats {
    pub received: AtomicU64,
    pub deleted: AtomicU64,
    pub retried_later: AtomicU64,
    pub released: AtomicU64,
}

pub struct Poller<H> {
    sqs: aws_sdk_sqs::Client,
    handler: Arc<H>,
    settings: PollerSettings,
    stats: Arc<PollerStats>,
}

impl<H: MessageHandler> Poller<H> {
    pub fn new(sqs: aws_sdk_sqs::Client, handler: Arc<H>, settings: PollerSettings) -> Self {
        Self {
            sqs,
            handler,
            settings,
            stats: Arc::default(),
        }
    }

    pub fn stats(&self) -> Arc<PollerStats> {
        self.stats.clone()
    }

    /// Runs until `shutdown` turns true, then drains.
    pub async fn run(self, shutdown: watch::Receiver<bool>) -> Result<(), WorkerError> {
        let visibility = self.queue_visibility_timeout().await?;
        tracing::info!(
            receivers = self.settings.receivers,
            visibility_s = visibility.as_secs(),
            "polling"
        );
        let this = Arc::new(self);
        let mut loops = Vec::new();
        for _ in 0..this.settings.receivers.max(1) {
            let (this, shutdown) = (this.clone(), shutdown.clone());
            loops.push(tokio::spawn(async move {
                this.receive_loop(shutdown, visibility).await
            }));
        }
        for handle in loops {
            handle
                .await
                .map_err(|e| WorkerError::Sqs(format!("receive loop crashed: {e}")))?;
        }
        Ok(())
    }

    /// The queue's visibility timeout. A consumer that starts while SQS is briefly unavailable
    /// keeps trying for about a minute rather than exiting at once.
    async fn queue_visibility_timeout(&self) -> Result<Duration, WorkerError> {
        let startup = RetryPolicy {
            max_attempts: 12,
            min_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(8),
        };
        let output = (|| async {
            self.sqs
                .get_queue_attributes()
                .queue_url(&self.settings.queue_url)
                .attribute_names(QueueAttributeName::VisibilityTimeout)
                .send()
                .await
        })
        .retry(startup.backoff())
        .notify(|e, delay| {
            tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(e), retry_in_ms = delay.as_millis() as u64, "GetQueueAttributes failed at start-up");
        })
        .await
        .map_err(|e| WorkerError::Sqs(format!("GetQueueAttributes: {}", aws_sdk_sqs::error::DisplayErrorContext(&e))))?;
        let seconds = output
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::VisibilityTimeout))
            .and_then(|v| v.parse().ok())
            .unwrap_or(30);
        Ok(Duration::from_secs(seconds))
    }

    async fn receive_loop(&self, shutdown: watch::Receiver<bool>, visibility: Duration) {
        while !*shutdown.borrow() {
            let receive = self
                .sqs
                .receive_message()
                .queue_url(&self.settings.queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(self.settings.wait_time_seconds)
                .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
                .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
                .message_attribute_names("All")
                .send();
            // Not cancelled on shutdown: a cancelled receive may still have taken messages,
            // which would then stay invisible until their timeout. What arrives after the
            // shutdown request is handed straight back instead.
            let output = receive.await;
            let messages = match output {
                Ok(output) => output.messages.unwrap_or_default(),
                Err(error) => {
                    tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&error), "ReceiveMessage failed; backing off");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            if messages.is_empty() {
                continue;
            }
            if *shutdown.borrow() {
                let ids: Vec<String> = messages
                    .iter()
                    .filter_map(|m| m.message_id.clone())
                    .collect();
                self.release(&ids, &receipts_of(&messages)).await;
                break;
            }
            self.stats
                .received
                .fetch_add(messages.len() as u64, Ordering::Relaxed);
            let received_at = Instant::now();
            self.process(
                messages,
                received_at + visibility.saturating_sub(VISIBILITY_MARGIN),
                shutdown.clone(),
            )
            .await;
        }
    }

    /// Processes one received batch and settles each message with SQS.
    async fn process(
        &self,
        messages: Vec<Message>,
        deadline: Instant,
        shutdown: watch::Receiver<bool>,
    ) {
        let receipts = receipts_of(&messages);
        let tasks: Vec<_> = messages
            .into_iter()
            .map(|message| {
                let handler = self.handler.clone();
                let meta = meta(&message);
                let message_id = meta.message_id.clone();
                let body = message.body.unwrap_or_default();
                let task =
                    tokio::spawn(async move { handler.handle(body, meta, Some(deadline)).await });
                (message_id, task)
            })
            .collect();
        let ids: Vec<String> = tasks.iter().map(|(id, _)| id.clone()).collect();
        let all =
            futures::future::join_all(tasks.into_iter().map(|(message_id, task)| async move {
                task.await.unwrap_or_else(|error| {
                    tracing::error!(
                        message_id,
                        panic = error.is_panic(),
                        "message processing crashed; it will be redelivered"
                    );
                    MessageReport::crashed(message_id)
                })
            }));
        let grace = self.settings.shutdown_grace;
        let mut shutdown_for_grace = shutdown;
        let grace_over = async move {
            let _ = shutdown_for_grace.wait_for(|stop| *stop).await;
            tokio::time::sleep(grace).await;
        };
        let reports = tokio::select! {
            reports = all => reports,
            _ = grace_over => {
                // Shutting down and out of grace: hand the unfinished messages straight back.
                tracing::warn!(count = ids.len(), "shutdown grace over; releasing in-flight messages");
                self.release(&ids, &receipts).await;
                return;
            }
        };
        self.settle(reports, &receipts).await;
    }

    async fn settle(&self, reports: Vec<MessageReport>, receipts: &HashMap<String, (String, u32)>) {
        let mut metrics = MetricsRecord::new("worker");
        metrics.count("Messages", reports.len() as u64);
        let mut deletes = Vec::new();
        for report in &reports {
            report.add_to(&mut metrics);
            let Some((receipt, receive_count)) = receipts.get(&report.message_id) else {
                continue;
            };
            if report.disposition.is_settled() {
                deletes.push(
                    DeleteMessageBatchRequestEntry::builder()
                        .id(format!("m{}", deletes.len()))
                        .receipt_handle(receipt)
                        .build()
                        .expect("id and receipt set"),
                );
            } else {
                let delay = visibility_backoff(
                    *receive_count,
                    self.settings.visibility_backoff.0,
                    self.settings.visibility_backoff.1,
                );
                self.change_visibility(receipt, delay).await;
                self.stats.retried_later.fetch_add(1, Ordering::Relaxed);
            }
        }
        metrics.emit();
        if deletes.is_empty() {
            return;
        }
        let count = deletes.len() as u64;
        match self
            .sqs
            .delete_message_batch()
            .queue_url(&self.settings.queue_url)
            .set_entries(Some(deletes))
            .send()
            .await
        {
            Ok(output) => {
                let failed = output.failed().len() as u64;
                if failed > 0 {
                    // The message comes back after its visibility timeout; the worker is idempotent.
                    tracing::warn!(
                        failed,
                        "some deletes failed; those messages will be redelivered"
                    );
                }
                self.stats
                    .deleted
                    .fetch_add(count - failed, Ordering::Relaxed);
            }
            Err(error) => {
                tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&error), "DeleteMessageBatch failed; the messages will be redelivered")
            }
        }
    }

    async fn change_visibility(&self, receipt: &str, delay: Duration) {
        let result = self
            .sqs
            .change_message_visibility()
            .queue_url(&self.settings.queue_url)
            .receipt_handle(receipt)
            .visibility_timeout(delay.as_secs().min(43_200) as i32)
            .send()
            .await;
        if let Err(error) = result {
            tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&error), "ChangeMessageVisibility failed; the queue's own timeout applies");
        }
    }

    async fn release(&self, ids: &[String], receipts: &HashMap<String, (String, u32)>) {
        for id in ids {
            if let Some((receipt, _)) = receipts.get(id) {
                self.change_visibility(receipt, Duration::ZERO).await;
                self.stats.released.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Message id → (receipt handle, receive count).
fn receipts_of(messages: &[Message]) -> HashMap<String, (String, u32)> {
    messages
        .iter()
        .filter_map(|m| {
            let receive_count =
                system_attribute(m, MessageSystemAttributeName::ApproximateReceiveCount)
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(1);
            Some((
                m.message_id.clone()?,
                (m.receipt_handle.clone()?, receive_count),
            ))
        })
        .collect()
}

fn system_attribute(message: &Message, name: MessageSystemAttributeName) -> Option<&str> {
    message
        .attributes()
        .and_then(|a| a.get(&name))
        .map(String::as_str)
}

fn meta(message: &Message) -> MessageMeta {
    MessageMeta {
        message_id: message.message_id.clone().unwrap_or_default(),
        receive_count: system_attribute(
            message,
            MessageSystemAttributeName::ApproximateReceiveCount,
        )
        .and_then(|c| c.parse().ok())
        .unwrap_or(1),
        sent_at: system_attribute(message, MessageSystemAttributeName::SentTimestamp)
            .and_then(|t| t.parse::<i64>().ok())
            .and_then(chrono::DateTime::from_timestamp_millis),
        attributes: message
            .message_attributes()
            .map(|attributes| {
                attributes
                    .iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.string_value()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default(),
    }
}
