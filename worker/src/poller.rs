//! The long-poll front end, for containers and the local demo: ReceiveMessage with long
//! polling, the same core, DeleteMessageBatch for what is settled, and for retryable failures
//! a visibility back-off that grows with the receive count. `CONCURRENCY` slots bound the
//! messages in processing; a receive loop hands its batch over and receives again at once, so
//! neither SQS round trips nor a batch's slowest message leave slots idle. While the queue is
//! idle only one loop polls. On shutdown it stops receiving, lets in-flight messages finish
//! within a grace period, and releases the rest.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName, QueueAttributeName,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use uc_runtime::aws::classify_sdk_error;
use uc_runtime::{Failure, FailureKind, MetricsRecord, RetryPolicy};
use uc_schemas::MessageMeta;

use crate::WorkerError;
use crate::config::WorkerConfig;
use crate::processor::{MessageHandler, MessageReport};

/// Time kept between a message's processing deadline and its visibility expiry.
const VISIBILITY_MARGIN: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
pub struct PollerSettings {
    pub queue_url: String,
    /// Messages in processing at once, at most (at least 1).
    pub concurrency: usize,
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

impl PollerSettings {
    /// Concurrent receive loops, each taking up to 10 messages at a time. A loop holds what it
    /// received until slots are free, so at most `10 × receivers` more are received and waiting.
    pub fn receivers(&self) -> usize {
        self.concurrency.div_ceil(10).max(1)
    }

    /// Poll mode's settings from the worker's configuration (`QUEUE_URL` required).
    pub fn from_config(config: &WorkerConfig) -> Result<Self, WorkerError> {
        let queue_url = config
            .queue_url
            .clone()
            .ok_or_else(|| WorkerError::Sqs("QUEUE_URL is required for poll mode".into()))?;
        Ok(Self {
            queue_url,
            concurrency: config.concurrency.max(1),
            wait_time_seconds: config.wait_time_seconds,
            visibility_backoff: config.visibility_backoff,
            shutdown_grace: config.shutdown_grace,
        })
    }

    /// One poller per queue the pipeline has: `QUEUE_URL`, and `LIFECYCLE_QUEUE_URL` when set
    /// (Cognito's CloudTrail records: few, so one receive loop's worth of concurrency).
    pub fn every_queue(config: &WorkerConfig) -> Result<Vec<Self>, WorkerError> {
        let main = Self::from_config(config)?;
        let mut all = vec![main.clone()];
        if let Some(queue_url) = &config.lifecycle_queue_url {
            all.push(Self {
                queue_url: queue_url.clone(),
                concurrency: main.concurrency.min(10),
                ..main
            });
        }
        Ok(all)
    }
}

/// Poll mode from start to end: polls until `shutdown` turns true ([`shutdown_on_signal`]),
/// drains, and logs what it did.
pub async fn serve<H: MessageHandler>(
    sqs: aws_sdk_sqs::Client,
    handler: Arc<H>,
    settings: PollerSettings,
    shutdown: watch::Receiver<bool>,
) -> Result<(), WorkerError> {
    let poller = Poller::new(sqs, handler, settings);
    let stats = poller.stats();
    let result = poller.run(shutdown).await;
    let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
    tracing::info!(
        received = load(&stats.received),
        deleted = load(&stats.deleted),
        retried_later = load(&stats.retried_later),
        released = load(&stats.released),
        "poller stopped"
    );
    uc_runtime::logs::flush();
    result
}

/// Turns true at the first SIGTERM or SIGINT. Installed before anything else starts, so a
/// consumer stopped during its start-up exits cleanly rather than by the signal's default.
pub fn shutdown_on_signal() -> std::io::Result<watch::Receiver<bool>> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let (stop, shutdown) = watch::channel(false);
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        tracing::info!("shutdown requested: no more receives, finishing in-flight messages");
        let _ = stop.send(true);
    });
    Ok(shutdown)
}

/// Whether `shutdown` has turned true; waits forever otherwise.
pub async fn requested(shutdown: &mut watch::Receiver<bool>) {
    // An error means the sender is gone, which never happens before the process ends.
    if shutdown.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// How a failed SQS call is retried at start-up and after receive errors.
const SQS_RETRY: RetryPolicy = RetryPolicy {
    max_attempts: 12,
    min_delay: Duration::from_millis(250),
    max_delay: Duration::from_secs(8),
    min_attempt_time: Duration::ZERO,
};

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

    /// Runs until `shutdown` turns true, then drains. Fails at once when the queue cannot be
    /// used (missing, access denied); a shutdown during start-up is a clean end.
    pub async fn run(self, shutdown: watch::Receiver<bool>) -> Result<(), WorkerError> {
        let Some(visibility) = self.queue_visibility_timeout(shutdown.clone()).await? else {
            tracing::info!("shutdown requested during start-up");
            return Ok(());
        };
        tracing::info!(
            receivers = self.settings.receivers(),
            visibility_s = visibility.as_secs(),
            queue = queue_name(&self.settings.queue_url),
            "polling"
        );
        let this = Arc::new(self);
        let slots = Arc::new(Semaphore::new(this.settings.concurrency));
        // Whether the last receive brought messages: while it did not, only the first loop
        // polls, so an idle consumer costs one ReceiveMessage per wait, whatever CONCURRENCY.
        let busy = Arc::new(watch::channel(false).0);
        let mut loops = Vec::new();
        for index in 0..this.settings.receivers() {
            let (this, shutdown, slots) = (this.clone(), shutdown.clone(), slots.clone());
            let gate = IdleGate {
                busy: busy.clone(),
                polls_when_idle: index == 0,
            };
            loops.push(tokio::spawn(async move {
                this.receive_loop(shutdown, visibility, slots, gate).await
            }));
        }
        let mut first_error = None;
        for handle in loops {
            let result = handle
                .await
                .map_err(|e| WorkerError::Sqs(format!("receive loop crashed: {e}")))
                .and_then(|r| r);
            if let Err(error) = result {
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// The queue's visibility timeout. A consumer that starts while SQS is briefly unavailable
    /// keeps trying for about a minute; one whose queue is missing or forbidden stops at once;
    /// one asked to shut down gets `None`.
    async fn queue_visibility_timeout(
        &self,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<Option<Duration>, WorkerError> {
        let attempt = |_| async {
            self.sqs
                .get_queue_attributes()
                .queue_url(&self.settings.queue_url)
                .attribute_names(QueueAttributeName::VisibilityTimeout)
                .send()
                .await
                .map_err(|e| classify_sdk_error(&e))
        };
        let notify = |e: &Failure, delay: Duration| {
            tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "GetQueueAttributes failed at start-up; retrying");
        };
        let output = tokio::select! {
            result = SQS_RETRY.run(None, attempt, notify) => result,
            _ = requested(&mut shutdown) => return Ok(None),
        };
        let output = output.map_err(|gave_up| {
            let attempts = gave_up.attempts();
            let error = gave_up.into_failure();
            WorkerError::Sqs(format!(
                "cannot use queue {}: GetQueueAttributes failed ({error}) after {attempts} attempt(s)",
                self.settings.queue_url
            ))
        })?;
        let seconds = output
            .value
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::VisibilityTimeout))
            .and_then(|v| v.parse().ok())
            .unwrap_or(30);
        Ok(Some(Duration::from_secs(seconds)))
    }

    /// Receives until shutdown; each batch is processed and settled by its own task, so the
    /// loop receives again as soon as slots are free for what it holds. Returns once every
    /// batch it started is settled or released.
    async fn receive_loop(
        self: Arc<Self>,
        shutdown: watch::Receiver<bool>,
        visibility: Duration,
        slots: Arc<Semaphore>,
        gate: IdleGate,
    ) -> Result<(), WorkerError> {
        let mut batches = JoinSet::new();
        let result = self
            .receive_batches(shutdown, visibility, &slots, &gate, &mut batches)
            .await;
        while let Some(done) = batches.join_next().await {
            if let Err(error) = done {
                // Its messages were not settled: SQS redelivers them after their timeout.
                tracing::error!(panic = error.is_panic(), "a batch's settling crashed");
            }
        }
        result
    }

    async fn receive_batches(
        self: &Arc<Self>,
        mut shutdown: watch::Receiver<bool>,
        visibility: Duration,
        slots: &Arc<Semaphore>,
        gate: &IdleGate,
        batches: &mut JoinSet<()>,
    ) -> Result<(), WorkerError> {
        let steps = SQS_RETRY.steps();
        let mut failures = 0usize;
        while !*shutdown.borrow() {
            // Settled batches leave the set as they end, so it holds only what is in flight.
            while batches.try_join_next().is_some() {}
            if !gate.wait_until_needed(&mut shutdown).await {
                break;
            }
            let receive = self
                .sqs
                .receive_message()
                .queue_url(&self.settings.queue_url)
                // Never more than the slots: a batch waits for a slot per message.
                .max_number_of_messages(self.settings.concurrency.clamp(1, 10) as i32)
                .wait_time_seconds(self.settings.wait_time_seconds)
                .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
                .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
                .message_system_attribute_names(MessageSystemAttributeName::AwsTraceHeader)
                .message_attribute_names("All")
                .send();
            // Not cancelled on shutdown: SQS keeps an abandoned long poll open on its side and
            // hands it the next message, which then stays invisible for its whole visibility
            // timeout and counts a receive (aws-sdk-java-v2#1395, aws-sdk-go-v2#2068). The wait
            // is short instead (WAIT_TIME_SECONDS, 1 s by default), and what arrives after the
            // shutdown request is handed straight back. Only a receive that outlives its own
            // wait by RECEIVE_OVERRUN (a network fault) is given up.
            let overrun = Duration::from_secs(self.settings.wait_time_seconds.max(0) as u64)
                + RECEIVE_OVERRUN;
            let mut stop = shutdown.clone();
            let output = tokio::select! {
                output = receive => output,
                _ = async {
                    requested(&mut stop).await;
                    tokio::time::sleep(overrun).await;
                } => {
                    tracing::warn!("a ReceiveMessage outlived its wait after the shutdown request; given up");
                    break;
                }
            };
            let messages = match output {
                Ok(output) => {
                    failures = 0;
                    gate.saw(!output.messages().is_empty());
                    output.messages.unwrap_or_default()
                }
                Err(error) => {
                    let failure = classify_sdk_error(&error);
                    if failure.kind == FailureKind::Permanent {
                        tracing::error!(error = %failure, "ReceiveMessage cannot succeed; stopping");
                        return Err(WorkerError::Sqs(format!("ReceiveMessage: {failure}")));
                    }
                    let step = steps[failures.min(steps.len().saturating_sub(1))];
                    failures += 1;
                    let delay = RetryPolicy::jitter(step, failure.kind);
                    tracing::warn!(error = %failure, retry_in_ms = delay.as_millis() as u64, "ReceiveMessage failed; backing off");
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = shutdown.wait_for(|stop| *stop) => {}
                    }
                    continue;
                }
            };
            if messages.is_empty() {
                continue;
            }
            let received_at = Instant::now();
            // Wait for a slot per message; what was received meanwhile is handed back at once
            // on shutdown rather than held until its visibility timeout.
            let permits = tokio::select! {
                permits = slots.clone().acquire_many_owned(messages.len() as u32) => permits.ok(),
                _ = shutdown.wait_for(|stop| *stop) => None,
            };
            let Some(permits) = permits.filter(|_| !*shutdown.borrow()) else {
                let ids: Vec<String> = messages
                    .iter()
                    .filter_map(|m| m.message_id.clone())
                    .collect();
                self.release(&ids, &receipts_of(&messages)).await;
                break;
            };
            self.stats
                .received
                .fetch_add(messages.len() as u64, Ordering::Relaxed);
            let deadline = received_at + visibility.saturating_sub(VISIBILITY_MARGIN);
            let this = self.clone();
            batches.spawn(this.process(messages, permits, deadline, shutdown.clone()));
        }
        Ok(())
    }

    /// Processes one received batch, each message in its own task holding one slot, and
    /// settles each message with SQS.
    async fn process(
        self: Arc<Self>,
        messages: Vec<Message>,
        mut permits: OwnedSemaphorePermit,
        deadline: Instant,
        shutdown: watch::Receiver<bool>,
    ) {
        let receipts = receipts_of(&messages);
        let tasks: Vec<_> = messages
            .into_iter()
            .map(|message| {
                let handler = self.handler.clone();
                let meta = meta_of(&message);
                let message_id = meta.message_id.clone();
                let body = message.body.unwrap_or_default();
                let slot = permits.split(1);
                let task = tokio::spawn(async move {
                    let report = handler.handle(body, meta, Some(deadline)).await;
                    drop(slot);
                    report
                });
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
        self.handler.after_batch(&reports, None, &mut metrics).await;
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
                tracing::warn!(error = %classify_sdk_error(&error), "DeleteMessageBatch failed; the messages will be redelivered")
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
            tracing::warn!(error = %classify_sdk_error(&error), "ChangeMessageVisibility failed; the queue's own timeout applies");
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

/// How long past its own wait a receive is awaited after a shutdown request.
const RECEIVE_OVERRUN: Duration = Duration::from_secs(2);

/// Parks the extra receive loops while the queue is idle: each empty receive says idle, each
/// non-empty one wakes them all.
struct IdleGate {
    busy: Arc<watch::Sender<bool>>,
    polls_when_idle: bool,
}

impl IdleGate {
    /// Returns once this loop should receive: at once for the first loop or when the queue is
    /// busy; `false` when shutdown came first.
    async fn wait_until_needed(&self, shutdown: &mut watch::Receiver<bool>) -> bool {
        if self.polls_when_idle {
            return true;
        }
        let mut busy = self.busy.subscribe();
        tokio::select! {
            woke = busy.wait_for(|busy| *busy) => woke.is_ok(),
            _ = requested(shutdown) => false,
        }
    }

    fn saw(&self, messages: bool) {
        self.busy
            .send_if_modified(|busy| std::mem::replace(busy, messages) != messages);
    }
}

/// Message id → (receipt handle, receive count).
/// The queue's name (the URL's last segment), for logs.
fn queue_name(url: &str) -> &str {
    url.rsplit('/').next().unwrap_or(url)
}

fn receipts_of(messages: &[Message]) -> HashMap<String, (String, u32)> {
    messages
        .iter()
        .filter_map(|m| {
            let meta = meta_of(m);
            Some((
                meta.message_id,
                (m.receipt_handle.clone()?, meta.receive_count),
            ))
        })
        .filter(|(id, _)| !id.is_empty())
        .collect()
}

/// What a front end knows about a received SDK message.
pub fn meta_of(message: &Message) -> MessageMeta {
    MessageMeta::from_sqs(
        message.message_id.as_deref(),
        |name| {
            message
                .attributes()
                .and_then(|a| a.get(&MessageSystemAttributeName::from(name)))
                .map(String::as_str)
        },
        message
            .message_attributes()
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| Some((k.clone(), v.string_value()?.to_owned()))),
    )
}

/// How long a message that failed retryably stays invisible before SQS redelivers it:
/// `base × 2^(receive_count − 1)`, capped at `max`, with equal jitter (half fixed, half random)
/// so redeliveries of a burst spread out.
pub fn visibility_backoff(receive_count: u32, base: Duration, max: Duration) -> Duration {
    let exponent = receive_count.saturating_sub(1).min(20);
    let step = base.saturating_mul(1u32 << exponent).min(max);
    RetryPolicy::jitter(step, FailureKind::THROTTLED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visibility_backoff_grows_with_receive_count_and_is_capped() {
        let base = Duration::from_secs(10);
        let max = Duration::from_secs(900);
        for (count, step) in [(1, 10), (2, 20), (3, 40), (7, 640), (8, 900), (100, 900)] {
            let d = visibility_backoff(count, base, max);
            let step = Duration::from_secs(step);
            assert!(d >= step / 2 && d <= step, "receive {count}: {d:?}");
        }
        assert_eq!(visibility_backoff(0, Duration::ZERO, max), Duration::ZERO);
    }
}
