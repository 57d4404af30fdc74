//! The emitter's AWS edge: EventBridge `PutEvents` (the one batch call,
//! `uc_runtime::put_events::EventBus`, with one entry) and SQS `SendMessage`, with SDK errors
//! classified by the shared AWS rules. Retries are the `PublishPolicy`'s alone, so the SDK's own
//! retries are off.

use aws_config::SdkConfig;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use uc_runtime::Failure;
use uc_runtime::aws::classify_sdk_error;
use uc_runtime::put_events::{Entry, EventBus};
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
    bus: EventBus,
}

impl EventBridgePublisher {
    pub fn new(sdk: &SdkConfig, config: &EmitterConfig) -> Self {
        let (retry, timeouts) = client_settings(config);
        let client_config = aws_sdk_eventbridge::config::Builder::from(sdk)
            .retry_config(retry)
            .timeout_config(timeouts)
            .build();
        Self {
            bus: EventBus::new(
                aws_sdk_eventbridge::Client::from_conf(client_config),
                config.event_bus.clone(),
                config.source.clone(),
            ),
        }
    }
}

impl EventPublisher for EventBridgePublisher {
    async fn publish(&self, detail_json: &str, trace_header: Option<&str>) -> Result<(), Failure> {
        let entry = Entry {
            detail_type: DETAIL_TYPE,
            detail: detail_json,
            trace_header,
        };
        // PutEvents answers 200 even when the entry failed.
        match self.bus.put_once(&[entry]).await?.into_iter().next() {
            None => Ok(()),
            Some((_, failure)) => Err(failure),
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
