//! One invocation: decide, publish under the policy, log and count the outcome, and return
//! Cognito's event untouched — the very JSON text Lambda delivered (`crate::payload`).

use std::time::Duration;

use serde_json::Value;
use serde_json::value::RawValue;
use tokio::time::Instant;
use uc_runtime::MetricsRecord;

use crate::adapters::{EventBridgePublisher, SqsFallback};
use crate::config::{EmitterConfig, FailurePolicy};
use crate::payload::EventCopy;
use crate::publish::{EventPublisher, FallbackQueue, PublishOutcome, PublishPolicy};
use crate::trigger::Decision;

/// Kept between the end of our work and the Lambda deadline, to return the response.
pub const DEADLINE_MARGIN: Duration = Duration::from_millis(100);

/// The `errorType` of the fail-closed error, as Cognito and the invocation's logs see it: a
/// stable name, not the Rust type name the runtime would derive.
pub const PUBLISH_FAILED_ERROR_TYPE: &str = "UserConfirmedPublishFailed";

/// Only returned under the fail-closed policy. Its message goes to Cognito, which may show it to
/// the user, so it names no user: the `sub` is for the function's own logs and for callers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmitterError {
    #[error(
        "could not publish UserConfirmed ({code}); the sign-up was confirmed but its profile is delayed"
    )]
    PublishFailed { sub: String, code: String },
}

/// What the runtime sends Cognito for an [`EmitterError`]: `errorType`
/// [`PUBLISH_FAILED_ERROR_TYPE`], `errorMessage` the error's message (no `sub`).
impl From<EmitterError> for lambda_runtime::Diagnostic {
    fn from(error: EmitterError) -> Self {
        Self {
            error_type: PUBLISH_FAILED_ERROR_TYPE.to_owned(),
            error_message: error.to_string(),
        }
    }
}

/// The trigger's handler with its clients, built once per cold start.
pub struct Emitter<P, F> {
    config: EmitterConfig,
    policy: PublishPolicy,
    region: String,
    publisher: P,
    fallback: Option<F>,
}

impl Emitter<EventBridgePublisher, SqsFallback> {
    /// The production wiring: EventBridge, and SQS when `FALLBACK_QUEUE_URL` is set.
    pub fn from_sdk_config(config: EmitterConfig, sdk: &aws_config::SdkConfig) -> Self {
        let publisher = EventBridgePublisher::new(sdk, &config);
        let fallback = config
            .fallback_queue_url
            .clone()
            .map(|url| SqsFallback::new(sdk, &config, url));
        let region = sdk.region().map(|r| r.to_string()).unwrap_or_default();
        Self::new(config, region, publisher, fallback)
    }
}

impl<P: EventPublisher, F: FallbackQueue> Emitter<P, F> {
    pub fn new(config: EmitterConfig, region: String, publisher: P, fallback: Option<F>) -> Self {
        let policy = PublishPolicy {
            budget: config.budget,
            attempt_timeout: config.attempt_timeout,
            max_attempts: config.max_attempts,
            fallback_reserve: config.fallback_reserve,
            min_backoff: Duration::from_millis(25),
            max_backoff: Duration::from_millis(250),
        };
        Self {
            config,
            policy,
            region,
            publisher,
            fallback,
        }
    }

    /// Handles one Cognito event, finishing by `deadline` (the invocation's, less the margin to
    /// answer) when there is one, and returns `event` itself: Cognito gets back the JSON text it
    /// sent. Log lines carry the request id through the runtime's span.
    pub async fn handle(
        &self,
        event: Box<RawValue>,
        deadline: Option<Instant>,
    ) -> Result<Box<RawValue>, EmitterError> {
        self.handle_traced(event, deadline, None).await
    }

    /// [`Emitter::handle`] within a trace: `trace_header` (the invocation's X-Ray trace id) goes
    /// on with the event — PutEvents' `TraceHeader`, or the fallback's `AWSTraceHeader` — so
    /// the worker's AppSync call joins the same trace.
    pub async fn handle_traced(
        &self,
        event: Box<RawValue>,
        deadline: Option<Instant>,
        trace_header: Option<&str>,
    ) -> Result<Box<RawValue>, EmitterError> {
        let started = Instant::now();
        let mut metrics = MetricsRecord::new("emitter");
        let result = self
            .publish_for(event.get(), deadline, trace_header, &mut metrics)
            .await;
        metrics.timing_ms("HandlerLatency", started.elapsed().as_secs_f64() * 1000.0);
        metrics.emit();
        // The log line and the EMF record go out in one write, before Lambda may freeze us.
        uc_runtime::logs::flush();
        result.map(|()| event)
    }

    /// [`Emitter::handle`] for callers holding a `Value` (tests, tools): the event goes in as
    /// JSON text and what comes back is parsed again.
    ///
    /// # Panics
    ///
    /// If `event` nests deeper than the 128 levels serde_json parses (no JSON text it parsed
    /// does).
    pub async fn handle_value(
        &self,
        event: Value,
        deadline: Option<Instant>,
    ) -> Result<Value, EmitterError> {
        let text = serde_json::value::to_raw_value(&event).expect("a Value always serializes");
        let returned = self.handle(text, deadline).await?;
        Ok(serde_json::from_str(returned.get()).expect("the text a Value wrote parses back"))
    }

    async fn publish_for(
        &self,
        event: &str,
        deadline: Option<Instant>,
        trace_header: Option<&str>,
        metrics: &mut MetricsRecord,
    ) -> Result<(), EmitterError> {
        let copy = EventCopy::read(event);
        let (decision, trigger_source, sub) = match &copy {
            Ok(copy) => (
                copy.decide(&self.region, chrono::Utc::now()),
                copy.trigger_source(),
                copy.sub_for_logs(),
            ),
            Err(reason) => (Decision::Skip(reason.clone()), "", None),
        };
        let (detail, dropped) = match decision {
            Decision::Publish { detail, dropped } => (detail, dropped),
            Decision::Skip(reason) => {
                metrics.count("Skipped", 1);
                metrics.property("SkipReason", reason.code());
                if reason.needs_attention() {
                    tracing::error!(trigger_source, sub, reason = reason.code(), detail = ?reason, "not publishing: Cognito never sends such an event; check what invoked the function, and back-fill the user if it is real");
                } else {
                    tracing::info!(trigger_source, reason = reason.code(), detail = ?reason, "not publishing");
                }
                return Ok(());
            }
        };
        let sub = detail.sub.as_str();
        let event_id = detail.event_id.to_string();
        for violation in &dropped {
            tracing::warn!(
                sub,
                event_id,
                reason = "OutOfContract",
                field = violation.field,
                problem = violation.problem,
                "optional field left out of UserConfirmed"
            );
        }
        let detail_json = serde_json::to_string(&detail).expect("UserConfirmed always serializes");
        let fallback_body = || uc_schemas::to_envelope(&self.config.source, &detail).to_string();

        let started = Instant::now();
        let outcome = self
            .policy
            .run(
                &self.publisher,
                self.fallback.as_ref(),
                &detail_json,
                fallback_body,
                deadline,
                trace_header,
            )
            .await;
        metrics.timing_ms("PublishLatency", started.elapsed().as_secs_f64() * 1000.0);
        metrics.count("Retried", outcome.attempts().saturating_sub(1) as u64);
        metrics.property("EventId", event_id.as_str());
        match outcome {
            PublishOutcome::Published { attempts } => {
                metrics.count("Published", 1);
                tracing::info!(sub, event_id, attempts, "published UserConfirmed");
                Ok(())
            }
            PublishOutcome::FellBack {
                attempts,
                error,
                maybe_published,
            } => {
                // Delivered (through the queue) either way: a success under both policies, even
                // when EventBridge may have the event too — the worker and consumers dedupe on
                // eventId.
                metrics.count("Fallback", 1);
                if maybe_published {
                    metrics.count("Unknown", 1);
                }
                tracing::warn!(sub, event_id, attempts, maybe_published, code = %error.code, error = %uc_runtime::redact_emails(&error.message), "PutEvents failed; sent to the fallback queue");
                Ok(())
            }
            PublishOutcome::Failed {
                attempts,
                error,
                fallback_error,
                maybe_published,
            } => {
                let fallback_code = fallback_error.as_ref().map(|e| e.code.as_str());
                if maybe_published {
                    // A timed-out PutEvents may have gone through: not a known failure. The
                    // reconciler (or a back-fill) closes the gap if it did not; the worker's
                    // idempotency absorbs it if it did.
                    metrics.count("Unknown", 1);
                    tracing::error!(
                        sub, event_id, attempts,
                        code = %error.code, error = %uc_runtime::redact_emails(&error.message), fallback = ?fallback_code,
                        policy = ?self.config.failure_policy,
                        "UserConfirmed possibly published (an attempt timed out); not confirmed"
                    );
                } else {
                    metrics.count("Failed", 1);
                    tracing::error!(
                        sub, event_id, attempts,
                        code = %error.code, error = %uc_runtime::redact_emails(&error.message), fallback = ?fallback_code,
                        policy = ?self.config.failure_policy,
                        "UserConfirmed not published; the profile needs a back-fill"
                    );
                }
                // Fail-closed refuses whatever is not known delivered: an unknown outcome too.
                match self.config.failure_policy {
                    FailurePolicy::FailOpen => Ok(()),
                    FailurePolicy::FailClosed => Err(EmitterError::PublishFailed {
                        sub: sub.to_owned(),
                        code: error.code,
                    }),
                }
            }
        }
    }
}
