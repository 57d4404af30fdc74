//! One invocation: decide, publish under the policy, log and count the outcome, and return
//! Cognito's event untouched.

use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;
use uc_runtime::MetricsRecord;

use crate::adapters::{EventBridgePublisher, SqsFallback};
use crate::config::{EmitterConfig, FailurePolicy};
use crate::publish::{EventPublisher, FallbackQueue, PublishOutcome, PublishPolicy};
use crate::trigger::{Decision, decide};

/// Kept between the end of our work and the Lambda deadline, to return the response.
pub const DEADLINE_MARGIN: Duration = Duration::from_millis(100);

/// Only returned under the fail-closed policy: Cognito shows it to the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmitterError {
    #[error(
        "could not publish UserConfirmed for sub {sub} ({code}); the sign-up was confirmed but its profile is delayed"
    )]
    PublishFailed { sub: String, code: String },
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
    /// answer) when there is one. Log lines carry the request id through the runtime's span.
    pub async fn handle(
        &self,
        event: Value,
        deadline: Option<Instant>,
    ) -> Result<Value, EmitterError> {
        let started = Instant::now();
        let mut metrics = MetricsRecord::new("emitter");
        let result = self.publish_for(&event, deadline, &mut metrics).await;
        metrics.timing_ms("HandlerLatency", started.elapsed().as_secs_f64() * 1000.0);
        metrics.emit();
        result.map(|()| event)
    }

    async fn publish_for(
        &self,
        event: &Value,
        deadline: Option<Instant>,
        metrics: &mut MetricsRecord,
    ) -> Result<(), EmitterError> {
        let trigger_source = event
            .get("triggerSource")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let detail = match decide(event, &self.region, chrono::Utc::now()) {
            Decision::Publish(detail) => detail,
            Decision::Skip(reason) => {
                metrics.count("Skipped", 1);
                tracing::info!(trigger_source, reason = reason.code(), detail = ?reason, "not publishing");
                return Ok(());
            }
        };
        let sub = detail.sub.as_str();
        let event_id = detail.event_id.to_string();
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
            PublishOutcome::FellBack { attempts, error } => {
                metrics.count("Fallback", 1);
                tracing::warn!(sub, event_id, attempts, code = %error.code, error = %uc_runtime::redact_emails(&error.message), "PutEvents failed; sent to the fallback queue");
                Ok(())
            }
            PublishOutcome::Failed {
                attempts,
                error,
                fallback_error,
            } => {
                metrics.count("Failed", 1);
                let fallback_code = fallback_error.as_ref().map(|e| e.code.as_str());
                tracing::error!(
                    sub, event_id, attempts,
                    code = %error.code, error = %uc_runtime::redact_emails(&error.message), fallback = ?fallback_code,
                    policy = ?self.config.failure_policy,
                    "UserConfirmed not published; the profile needs a back-fill"
                );
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
