//! The emitter's AWS edge: EventBridge `PutEvents` and SQS `SendMessage`, with SDK errors and
//! failed entries classified by the shared AWS rules (`uc_runtime::aws`). Retries are the
//! `PublishPolicy`'s alone, so the SDK's own retries are off.

use aws_config::SdkConfig;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use uc_runtime::Failure;
use uc_runtime::aws::{classify_sdk_error, entry_failure};
use uc_schemas::DETAIL_TYPE;

use crate::config::EmitterConfig;
use crate::publish::{EventPublisher, FallbackQueue};

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
    async fn publish(&self, detail_json: &str, trace_header: Option<&str>) -> Result<(), Failure> {
        let entry = PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus)
            .source(&self.source)
            .detail_type(DETAIL_TYPE)
            .detail(detail_json)
            .set_trace_header(trace_header.map(str::to_owned))
            .build();
        let output = self
            .client
            .put_events()
            .entries(entry)
            .send()
            .await
            .map_err(|e| classify_sdk_error(&e))?;
        // PutEvents answers 200 even when the entry failed.
        if output.failed_entry_count() == 0 {
            return Ok(());
        }
        let failed = output.entries().iter().find(|e| e.error_code().is_some());
        Err(entry_failure(
            failed.and_then(|e| e.error_code()),
            failed.and_then(|e| e.error_message()),
        ))
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
    async fn send(&self, body: &str, trace_header: Option<&str>) -> Result<(), Failure> {
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .set_message_system_attributes(trace_header.map(|header| {
                std::collections::HashMap::from([(
                    aws_sdk_sqs::types::MessageSystemAttributeNameForSends::AwsTraceHeader,
                    aws_sdk_sqs::types::MessageSystemAttributeValue::builder()
                        .data_type("String")
                        .string_value(header)
                        .build()
                        .expect("data type set"),
                )])
            }))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify_sdk_error(&e))
    }
}
