//! The core, shared by every front end (Lambda, long-poll, DLQ replay): one message in, one
//! disposition out. Parse with the contract's envelope parser, build the mutation, call AppSync
//! with retries, classify, and dead-letter what cannot succeed. No Lambda or SQS types here.

use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::time::Instant;
use uc_runtime::{GaveUp, MetricsRecord, RetryPolicy};
use uc_schemas::dead_letter::stage;
use uc_schemas::{
    FailureRecord, MessageMeta, Origin, ProfileCreated, ProfileStore, Provenance, UserConfirmed,
    parse_message,
};

use crate::announce::ProfileAnnouncer;
use crate::appsync::GraphQlEndpoint;
use crate::classify::{Outcome, classify};
use crate::dead_letter::DeadLetterSink;
use crate::limit::AdaptiveLimit;
use crate::mutation::MutationSpec;
use crate::user_check::{CognitoUsers, UserDirectory};

/// The result of writing one profile.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteReport {
    /// `Created`, `AlreadyExists`, or the last failure.
    pub outcome: Outcome,
    pub attempts: u32,
    pub latencies_ms: Vec<f64>,
}

/// Creates profiles through a GraphQL endpoint, with the one retry policy and adaptive
/// concurrency.
pub struct ProfileWriter<E> {
    endpoint: E,
    mutation: MutationSpec,
    retry: RetryPolicy,
    request_timeout: Duration,
    limit: AdaptiveLimit,
}

impl<E: GraphQlEndpoint> ProfileWriter<E> {
    pub fn new(
        endpoint: E,
        mutation: MutationSpec,
        retry: RetryPolicy,
        request_timeout: Duration,
        concurrency: usize,
    ) -> Self {
        Self {
            endpoint,
            mutation,
            retry,
            request_timeout,
            limit: AdaptiveLimit::new(concurrency),
        }
    }

    pub fn endpoint(&self) -> &E {
        &self.endpoint
    }

    /// The current adaptive concurrency limit.
    pub fn concurrency_limit(&self) -> usize {
        self.limit.current()
    }

    /// Creates `event`'s profile, retrying retryable failures until attempts or `deadline` run
    /// out; `trace_header` joins each request to the sign-up's trace.
    pub async fn write(
        &self,
        event: &UserConfirmed,
        deadline: Option<Instant>,
        trace_header: Option<&str>,
    ) -> WriteReport {
        let body = self.mutation.request_body(event);
        let refreshed = AtomicBool::new(false);
        let latencies = Mutex::new(Vec::new());
        let attempt = |attempt: uc_runtime::Attempt| {
            let body = body.clone();
            let (refreshed, latencies) = (&refreshed, &latencies);
            async move {
                let _slot = self.limit.acquire().await;
                let started = Instant::now();
                let answer = self
                    .endpoint
                    .post(body, attempt.bound(self.request_timeout), trace_header)
                    .await;
                latencies
                    .lock()
                    .unwrap()
                    .push(started.elapsed().as_secs_f64() * 1000.0);
                match classify(&answer, &self.mutation.field) {
                    done @ (Outcome::Created | Outcome::AlreadyExists) => {
                        self.limit.on_success();
                        Ok(done)
                    }
                    Outcome::AuthRejected { reason }
                        if !refreshed.swap(true, Ordering::Relaxed) =>
                    {
                        // Expired or rotated credentials: fetch new ones and try again, once.
                        self.endpoint.refresh_credentials().await;
                        Err(Outcome::Retryable {
                            reason,
                            throttled: false,
                        })
                    }
                    Outcome::AuthRejected { reason } => Err(Outcome::Permanent { reason }),
                    retry @ Outcome::Retryable {
                        throttled: true, ..
                    } => {
                        self.limit.on_throttled();
                        Err(retry)
                    }
                    other => Err(other),
                }
            }
        };
        let (outcome, attempts) = match self.retry.run(deadline, attempt, |_, _| {}).await {
            Ok(done) => (done.value, done.attempts),
            Err(GaveUp::Failed { error, attempts }) => (error, attempts),
            // SQS redelivers it after the visibility timeout, with a full deadline.
            Err(GaveUp::Deadline { last, attempts }) => (
                last.unwrap_or_else(|| Outcome::Retryable {
                    reason: "DeadlineReached".into(),
                    throttled: false,
                }),
                attempts,
            ),
        };
        WriteReport {
            outcome,
            attempts: attempts as u32,
            latencies_ms: latencies.into_inner().unwrap(),
        }
    }
}

/// What happened to a message, and so what its front end does with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    Created,
    AlreadyExisted,
    /// Could never succeed; now in the DLQ with its reason.
    DeadLettered {
        reason: String,
    },
    /// May succeed later: leave it to SQS (visibility timeout, then maxReceiveCount).
    RetryLater {
        reason: String,
    },
    /// Could never succeed, but no DLQ is configured (or sending to it failed): left to SQS's
    /// redrive policy.
    FailedPermanently {
        reason: String,
    },
}

impl Disposition {
    /// Whether the message is finished with and may be deleted from its queue.
    pub fn is_settled(&self) -> bool {
        matches!(
            self,
            Self::Created | Self::AlreadyExisted | Self::DeadLettered { .. }
        )
    }

    pub fn code(&self) -> &str {
        match self {
            Self::Created => "Created",
            Self::AlreadyExisted => "AlreadyExisted",
            Self::DeadLettered { reason }
            | Self::RetryLater { reason }
            | Self::FailedPermanently { reason } => reason,
        }
    }
}

/// One message's report: the disposition and what it cost.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageReport {
    pub message_id: String,
    pub disposition: Disposition,
    pub attempts: u32,
    pub latencies_ms: Vec<f64>,
    pub sub: Option<String>,
    /// The announcement for a profile this message created.
    pub created: Option<ProfileCreated>,
    /// Sign-up → profile, for a live sign-up whose profile this message created.
    pub lag_ms: Option<f64>,
}

impl MessageReport {
    /// A report for a message that never reached the profile store.
    pub fn unwritten(message_id: String, disposition: Disposition, sub: Option<String>) -> Self {
        Self {
            message_id,
            disposition,
            attempts: 0,
            latencies_ms: vec![],
            sub,
            created: None,
            lag_ms: None,
        }
    }

    /// A report for a message whose processing crashed (a panic): retried by SQS.
    pub fn crashed(message_id: String) -> Self {
        Self {
            message_id,
            disposition: Disposition::RetryLater {
                reason: "Panic".into(),
            },
            attempts: 0,
            latencies_ms: vec![],
            sub: None,
            created: None,
            lag_ms: None,
        }
    }

    /// Adds this report to a batch's EMF record.
    pub fn add_to(&self, metrics: &mut MetricsRecord) {
        let name = match self.disposition {
            Disposition::Created => "Created",
            Disposition::AlreadyExisted => "AlreadyExisted",
            Disposition::DeadLettered { .. } => "DeadLettered",
            Disposition::RetryLater { .. } => "RetryableFailures",
            Disposition::FailedPermanently { .. } => "PermanentFailures",
        };
        metrics.count(name, 1);
        if matches!(self.disposition, Disposition::DeadLettered { .. }) {
            metrics.count("PermanentFailures", 1);
        }
        metrics.count("Retried", self.attempts.saturating_sub(1) as u64);
        for latency in &self.latencies_ms {
            metrics.timing_ms("AppSyncLatency", *latency);
        }
        if let Some(lag) = self.lag_ms {
            metrics.timing_ms("SignUpToProfileLag", lag);
        }
    }
}

/// Processes one message; the front ends are generic over it (tests substitute their own).
pub trait MessageHandler: Send + Sync + 'static {
    fn handle(
        &self,
        body: String,
        meta: MessageMeta,
        deadline: Option<Instant>,
    ) -> impl Future<Output = MessageReport> + Send;

    /// After a batch is processed, before its messages are settled: the production worker
    /// announces the profiles it created. Never fails a message.
    fn after_batch(
        &self,
        _reports: &[MessageReport],
        _deadline: Option<Instant>,
        _metrics: &mut MetricsRecord,
    ) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// The production handler: what it accepts ([`Provenance`], and in strict mode a user check),
/// a profile writer and, optionally, the DLQ.
pub struct Worker<E, D, U = CognitoUsers> {
    writer: ProfileWriter<E>,
    dead_letters: Option<D>,
    provenance: Provenance,
    users: Option<U>,
    announcer: Option<ProfileAnnouncer>,
}

impl<E: GraphQlEndpoint, D: DeadLetterSink, U: UserDirectory> Worker<E, D, U> {
    pub fn new(
        writer: ProfileWriter<E>,
        dead_letters: Option<D>,
        provenance: Provenance,
        users: Option<U>,
    ) -> Self {
        Self {
            writer,
            dead_letters,
            provenance,
            users,
            announcer: None,
        }
    }

    /// Announces each created profile as a `ProfileCreated` event.
    pub fn announcing(mut self, announcer: ProfileAnnouncer) -> Self {
        self.announcer = Some(announcer);
        self
    }

    pub fn writer(&self) -> &ProfileWriter<E> {
        &self.writer
    }

    async fn dead_letter(
        &self,
        body: &str,
        meta: &MessageMeta,
        record: FailureRecord,
    ) -> Disposition {
        let reason = record.reason.clone();
        let Some(sink) = &self.dead_letters else {
            return Disposition::FailedPermanently { reason };
        };
        match sink.send(body, &record).await {
            Ok(()) => Disposition::DeadLettered { reason },
            Err(error) => {
                tracing::error!(message_id = %meta.message_id, reason, error = %uc_runtime::redact_emails(&error), "could not write to the DLQ; leaving the message to SQS");
                Disposition::FailedPermanently { reason }
            }
        }
    }
}

impl<E, D, U> MessageHandler for Worker<E, D, U>
where
    E: GraphQlEndpoint + 'static,
    D: DeadLetterSink + 'static,
    U: UserDirectory + 'static,
{
    async fn after_batch(
        &self,
        reports: &[MessageReport],
        deadline: Option<Instant>,
        metrics: &mut MetricsRecord,
    ) {
        let Some(announcer) = &self.announcer else {
            return;
        };
        let created: Vec<ProfileCreated> =
            reports.iter().filter_map(|r| r.created.clone()).collect();
        if !created.is_empty() {
            announcer.announce(&created, deadline, metrics).await;
        }
    }

    async fn handle(
        &self,
        body: String,
        meta: MessageMeta,
        deadline: Option<Instant>,
    ) -> MessageReport {
        let message_id = meta.message_id.clone();
        let received = match parse_message(&body) {
            Ok(received) => received,
            Err(error) => {
                tracing::warn!(message_id, reason = error.code(), error = %uc_runtime::redact_emails(&error.to_string()), "unusable message");
                let record = FailureRecord::for_message(
                    &meta,
                    stage::PARSE,
                    error.code(),
                    error.to_string(),
                    0,
                    None,
                );
                let disposition = self.dead_letter(&body, &meta, record).await;
                return MessageReport::unwritten(message_id, disposition, None);
            }
        };
        // Nothing reaches the profile store unless it is provably the pipeline's own.
        let refusal = match self.provenance.check(&received) {
            Err(foreign) => Some((foreign.code().to_owned(), foreign.to_string())),
            Ok(()) => match &self.users {
                None => None,
                Some(users) => match users.check(&received.detail, deadline).await {
                    Ok(()) => None,
                    Err(failure) if failure.is_retryable() => {
                        let reason = failure.code();
                        tracing::warn!(message_id, sub = %received.detail.sub, reason, "user check failed; SQS will retry");
                        let disposition = Disposition::RetryLater { reason };
                        return MessageReport::unwritten(
                            message_id,
                            disposition,
                            Some(received.detail.sub),
                        );
                    }
                    Err(failure) => Some((failure.code(), failure.to_string())),
                },
            },
        };
        if let Some((reason, detail)) = refusal {
            let sub = received.detail.sub;
            tracing::warn!(message_id, sub, event_id = %received.detail.event_id, reason, "refused: not the pipeline's own event");
            let record = FailureRecord::for_message(
                &meta,
                stage::VERIFY,
                &reason,
                detail,
                0,
                Some(sub.clone()),
            );
            let disposition = self.dead_letter(&body, &meta, record).await;
            return MessageReport::unwritten(message_id, disposition, Some(sub));
        }
        let event = received.detail;
        let trace = meta.trace_header.as_deref();
        let report = self.writer.write(&event, deadline, trace).await;
        let sub = event.sub.clone();
        let event_id = event.event_id.to_string();
        let disposition = match &report.outcome {
            Outcome::Created => Disposition::Created,
            Outcome::AlreadyExists => Disposition::AlreadyExisted,
            Outcome::Retryable { reason, .. } => Disposition::RetryLater {
                reason: reason.clone(),
            },
            Outcome::Permanent { reason } | Outcome::AuthRejected { reason } => {
                let detail = format!("AppSync refused createUserProfile: {reason}");
                let record = FailureRecord::for_message(
                    &meta,
                    stage::APPSYNC,
                    reason,
                    detail,
                    report.attempts,
                    Some(sub.clone()),
                );
                self.dead_letter(&body, &meta, record).await
            }
        };
        let outcome = disposition.code();
        let attempts = report.attempts;
        if disposition.is_settled() && !matches!(disposition, Disposition::DeadLettered { .. }) {
            tracing::info!(
                message_id,
                sub,
                event_id,
                outcome,
                attempts,
                trace = trace,
                "profile written"
            );
        } else {
            tracing::warn!(
                message_id,
                sub,
                event_id,
                outcome,
                attempts,
                receive_count = meta.receive_count,
                trace = trace,
                "profile not written"
            );
        }
        let now = chrono::Utc::now();
        let created = matches!(disposition, Disposition::Created);
        MessageReport {
            message_id,
            disposition,
            attempts,
            latencies_ms: report.latencies_ms,
            sub: Some(sub),
            created: created.then(|| ProfileCreated::new(&event, now, ProfileStore::Appsync)),
            // Back-fills and reconciliations carry the account's creation time, not a sign-up's.
            lag_ms: (created && event.origin == Origin::PostConfirmation).then(|| {
                (now - event.confirmed_at)
                    .num_microseconds()
                    .unwrap_or(i64::MAX) as f64
                    / 1000.0
            }),
        }
    }
}
