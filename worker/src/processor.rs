//! The core, shared by every front end (Lambda, long-poll, DLQ replay): one message in, one
//! disposition out. Parse with the contract's envelope parser, check provenance, create the
//! profile through the [`ProfileStore`] port (AppSync or DynamoDB: the core does not know
//! which), and dead-letter what cannot succeed. Cognito's CloudTrail records go to the
//! [`Lifecycle`]. No Lambda or SQS types here.

use std::future::Future;

use tokio::time::Instant;
use uc_runtime::MetricsRecord;
use uc_schemas::dead_letter::stage;
use uc_schemas::{
    CognitoApiCall, FailureRecord, Message, MessageMeta, Origin, ProfileCreated, Provenance,
    parse_any,
};

use crate::announce::ProfileAnnouncer;
use crate::bus::{EventBridgeSink, EventSink};
use crate::classify::Outcome;
use crate::dead_letter::DeadLetterSink;
use crate::lifecycle::{Handled, Lifecycle, LifecycleFailure};
use crate::pool_users::{CognitoPoolUsers, PoolDirectory};
pub use crate::store::{ProfileStore, WriteReport};
use crate::user_check::{CognitoUsers, UserDirectory};

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
    /// A CloudTrail record of the user lifecycle, handled to the end.
    Lifecycle(Handled),
}

impl Disposition {
    /// Whether the message is finished with and may be deleted from its queue.
    pub fn is_settled(&self) -> bool {
        matches!(
            self,
            Self::Created | Self::AlreadyExisted | Self::DeadLettered { .. } | Self::Lifecycle(_)
        )
    }

    pub fn code(&self) -> &str {
        match self {
            Self::Created => "Created",
            Self::AlreadyExisted => "AlreadyExisted",
            Self::DeadLettered { reason }
            | Self::RetryLater { reason }
            | Self::FailedPermanently { reason } => reason,
            Self::Lifecycle(handled) => handled.code(),
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
            Disposition::Lifecycle(Handled::Erased {
                profile_removed: true,
            }) => "ProfilesRemoved",
            Disposition::Lifecycle(Handled::Erased {
                profile_removed: false,
            }) => "UsersDeletedWithoutProfile",
            Disposition::Lifecycle(Handled::Confirmed) => "UserConfirmedPublished",
            Disposition::Lifecycle(Handled::Ignored(_)) => "LifecycleIgnored",
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

    /// The `uc.stage` of a failure to write the profile: where profiles go (`appsync` unless
    /// the handler says otherwise). DLQ replay uses it for the records it writes itself.
    fn store_stage(&self) -> &'static str {
        stage::APPSYNC
    }

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
/// a profile store and, optionally, the DLQ.
pub struct Worker<S, D, U = CognitoUsers, P = CognitoPoolUsers, B = EventBridgeSink> {
    store: S,
    dead_letters: Option<D>,
    provenance: Provenance,
    users: Option<U>,
    announcer: Option<ProfileAnnouncer>,
    lifecycle: Option<Lifecycle<P, B>>,
}

impl<S: ProfileStore, D: DeadLetterSink, U: UserDirectory> Worker<S, D, U> {
    pub fn new(
        store: S,
        dead_letters: Option<D>,
        provenance: Provenance,
        users: Option<U>,
    ) -> Self {
        Self {
            store,
            dead_letters,
            provenance,
            users,
            announcer: None,
            lifecycle: None,
        }
    }

    /// Acts on Cognito's CloudTrail records with `lifecycle` (without one, they are
    /// dead-lettered as `LifecycleOff`).
    pub fn with_lifecycle<P: PoolDirectory, B: EventSink>(
        self,
        lifecycle: Lifecycle<P, B>,
    ) -> Worker<S, D, U, P, B> {
        Worker {
            store: self.store,
            dead_letters: self.dead_letters,
            provenance: self.provenance,
            users: self.users,
            announcer: self.announcer,
            lifecycle: Some(lifecycle),
        }
    }
}

impl<S: ProfileStore, D: DeadLetterSink, U: UserDirectory, P: PoolDirectory, B: EventSink>
    Worker<S, D, U, P, B>
{
    /// Announces each created profile as a `ProfileCreated` event.
    pub fn announcing(mut self, announcer: ProfileAnnouncer) -> Self {
        self.announcer = Some(announcer);
        self
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    pub fn lifecycle(&self) -> Option<&Lifecycle<P, B>> {
        self.lifecycle.as_ref()
    }

    /// One CloudTrail record through the lifecycle.
    async fn handle_call(
        &self,
        body: &str,
        meta: &MessageMeta,
        call: CognitoApiCall,
        deadline: Option<Instant>,
    ) -> MessageReport {
        let message_id = meta.message_id.clone();
        let sub = call.sub.clone();
        let name = call.call.name();
        // From the record, so bounded and redacted like any text from data.
        let cloudtrail_id = uc_runtime::redact_emails(
            &call
                .cloudtrail_event_id
                .as_deref()
                .unwrap_or_default()
                .chars()
                .take(64)
                .collect::<String>(),
        );
        let Some(lifecycle) = &self.lifecycle else {
            let reason = "LifecycleOff";
            let record = FailureRecord::for_message(
                meta,
                stage::VERIFY,
                reason,
                "a CloudTrail record reached a worker without EVENT_BUS_NAME (the lifecycle is off)".into(),
                0,
                sub.clone(),
            );
            tracing::warn!(message_id, call = name, reason, "lifecycle record refused");
            let disposition = self.dead_letter(body, meta, record).await;
            return MessageReport::unwritten(message_id, disposition, sub);
        };
        // Boxed: the lifecycle's future holds Cognito's and the store's SDK calls; inline in
        // every front end's (and DLQ replay's) future it made debug builds' frames too large.
        let handled = Box::pin(lifecycle.handle(&self.store, &call, deadline)).await;
        let disposition = match handled {
            Ok(handled) => {
                tracing::info!(
                    message_id,
                    call = name,
                    cloudtrail_id,
                    sub,
                    outcome = handled.code(),
                    "lifecycle record handled"
                );
                Disposition::Lifecycle(handled)
            }
            Err(failure) if failure.is_retryable() => {
                tracing::warn!(message_id, call = name, cloudtrail_id, sub, reason = %failure.code(), error = %uc_runtime::redact_emails(&failure.to_string()), "lifecycle record not handled; SQS will retry");
                Disposition::RetryLater {
                    reason: failure.code(),
                }
            }
            Err(failure) => {
                tracing::warn!(message_id, call = name, cloudtrail_id, sub, reason = %failure.code(), error = %uc_runtime::redact_emails(&failure.to_string()), "lifecycle record refused");
                let stage = match &failure {
                    LifecycleFailure::UserStillExists { .. } => stage::VERIFY,
                    LifecycleFailure::Failed {
                        stage: "profile removal" | "profile read",
                        ..
                    } => self.store.stage(),
                    LifecycleFailure::Failed { .. } => stage::LIFECYCLE,
                };
                let record = FailureRecord::for_message(
                    meta,
                    stage,
                    &failure.code(),
                    uc_runtime::redact_emails(&failure.to_string()),
                    0,
                    sub.clone(),
                );
                self.dead_letter(body, meta, record).await
            }
        };
        MessageReport::unwritten(message_id, disposition, sub)
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

impl<S, D, U, P, B> MessageHandler for Worker<S, D, U, P, B>
where
    S: ProfileStore + 'static,
    D: DeadLetterSink + 'static,
    U: UserDirectory + 'static,
    P: PoolDirectory + 'static,
    B: EventSink + 'static,
{
    fn store_stage(&self) -> &'static str {
        self.store.stage()
    }

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
        let received = match parse_any(&body) {
            Ok(Message::UserConfirmed(received)) => received,
            Ok(Message::CognitoApiCall(call)) => {
                return self.handle_call(&body, &meta, call, deadline).await;
            }
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
        let report = self.store.create(&event, deadline, trace).await;
        let sub = event.sub.clone();
        let event_id = event.event_id.to_string();
        let disposition = match &report.outcome {
            Outcome::Created => Disposition::Created,
            Outcome::AlreadyExists => Disposition::AlreadyExisted,
            Outcome::Retryable { reason, .. } => Disposition::RetryLater {
                reason: reason.clone(),
            },
            Outcome::Permanent { reason } | Outcome::AuthRejected { reason } => {
                let detail = self.store.refusal_detail(reason);
                let record = FailureRecord::for_message(
                    &meta,
                    self.store.stage(),
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
            created: created.then(|| ProfileCreated::new(&event, now, self.store.kind())),
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
