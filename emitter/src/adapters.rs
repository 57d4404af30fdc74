//! The emitter's AWS edge: EventBridge `PutEvents` and SQS `SendMessage`, with SDK errors and
//! failed entries turned into classified [`AttemptError`]s. Retries are the `PublishPolicy`'s
//! alone, so the SDK's own retries are off.

use std::time::Duration;

use aws_config::SdkConfig;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_eventbridge::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use uc_schemas::DETAIL_TYPE;

use crate::config::EmitterConfig;
use crate::publish::{AttemptError, EventPublisher, FallbackQueue};

/// PutEvents entry error codes that may succeed on a retry (AWS documents these two).
const RETRYABLE_ENTRY_CODES: &[&str] = &["InternalFailure", "ThrottlingException"];
/// Service error codes that mean "slow down" or "try again".
const RETRYABLE_SERVICE_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "RequestThrottled",
    "InternalFailure",
    "InternalException",
    "ServiceUnavailable",
    "RequestTimeout",
];

type HttpResponse = aws_sdk_eventbridge::config::http::HttpResponse;

/// Classifies any SDK error: transport failures, timeouts, 5xx and throttling are retryable;
/// other service errors (missing bus or queue, access denied, validation) are not.
pub fn classify_sdk_error<E>(error: SdkError<E, HttpResponse>) -> AttemptError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match &error {
        SdkError::TimeoutError(_) => {
            AttemptError::retryable("Timeout", "the SDK's attempt timeout expired")
        }
        SdkError::DispatchFailure(failure) => {
            let code = if failure.is_timeout() {
                "Timeout"
            } else if failure.is_io() {
                "Connect"
            } else {
                "Dispatch"
            };
            AttemptError::retryable(code, format!("{:?}", failure.as_connector_error()))
        }
        SdkError::ResponseError(_) => {
            AttemptError::retryable("BadResponse", "the response could not be read")
        }
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let code = service.err().code().unwrap_or("Unknown").to_owned();
            let message = service.err().message().unwrap_or_default().to_owned();
            if status >= 500 || status == 429 || RETRYABLE_SERVICE_CODES.contains(&code.as_str()) {
                AttemptError::retryable(code, message)
            } else {
                AttemptError::permanent(code, message)
            }
        }
        _ => AttemptError::permanent("Construction", error.to_string()),
    }
}

/// The SDK settings both clients share: explicit timeouts (the SDK sets no operation timeout
/// by default) and no SDK retries.
fn client_settings(config: &EmitterConfig) -> (RetryConfig, TimeoutConfig) {
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(config.connect_timeout.min(config.attempt_timeout))
        .operation_attempt_timeout(config.attempt_timeout)
        .operation_timeout(config.budget)
        .build();
    (RetryConfig::disabled(), timeouts)
}

/// Publishes to one EventBridge bus.
#[derive(Debug, Clone)]
pub struct EventBridgePublisher {
    client: aws_sdk_eventbridge::Client,
    bus: String,
    source: String,
}

impl EventBridgePublisher {
    pub fn new(sdk: &SdkConfig, config: &EmitterConfig) -> Self {
        let (retry, timeouts) = client_settings(config);
        let client_config = aws_sdk_eventbridge::config::Builder::from(sdk)
            .retry_config(retry)
            .timeout_config(timeouts)
            .build();
        Self {
            client: aws_sdk_eventbridge::Client::from_conf(client_config),
            bus: config.event_bus.clone(),
            source: config.source.clone(),
        }
    }
}

impl EventPublisher for EventBridgePublisher {
    async fn publish(&self, detail_json: &str) -> Result<(), AttemptError> {
        let entry = PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus)
            .source(&self.source)
            .detail_type(DETAIL_TYPE)
            .detail(detail_json)
            .build();
        let output = self
            .client
            .put_events()
            .entries(entry)
            .send()
            .await
            .map_err(classify_sdk_error)?;
        // PutEvents answers 200 even when the entry failed.
        if output.failed_entry_count() == 0 {
            return Ok(());
        }
        let failed = output.entries().iter().find(|e| e.error_code().is_some());
        let code = failed
            .and_then(|e| e.error_code())
            .unwrap_or("UnknownEntryFailure")
            .to_owned();
        let message = failed
            .and_then(|e| e.error_message())
            .unwrap_or_default()
            .to_owned();
        if RETRYABLE_ENTRY_CODES.contains(&code.as_str()) {
            Err(AttemptError::retryable(code, message))
        } else {
            Err(AttemptError::permanent(code, message))
        }
    }
}

/// Sends to the worker's queue, bypassing EventBridge.
#[derive(Debug, Clone)]
pub struct SqsFallback {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl SqsFallback {
    pub fn new(sdk: &SdkConfig, config: &EmitterConfig, queue_url: String) -> Self {
        let (retry, timeouts) = client_settings(config);
        let client_config = aws_sdk_sqs::config::Builder::from(sdk)
            .retry_config(retry)
            .timeout_config(timeouts)
            .build();
        Self {
            client: aws_sdk_sqs::Client::from_conf(client_config),
            queue_url,
        }
    }
}

impl FallbackQueue for SqsFallback {
    async fn send(&self, body: &str) -> Result<(), AttemptError> {
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .send()
            .await
            .map(|_| ())
            .map_err(classify_sdk_error)
    }
}

/// Milliseconds left before a Lambda deadline given as epoch milliseconds.
pub fn time_left(deadline_epoch_ms: u64) -> Duration {
    let now = chrono::Utc::now().timestamp_millis().max(0) as u64;
    Duration::from_millis(deadline_epoch_ms.saturating_sub(now))
}
