//! The PostConfirmation Lambda: builds configuration and clients once, then serves invocations.
// The SDK and lambda_runtime futures nest deeply enough to pass the default limit.
#![recursion_limit = "256"]

use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;
use uc_emitter::{Emitter, EmitterConfig, adapters::time_left};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    uc_runtime::logs::init_json_logs();
    let config = EmitterConfig::from_env().map_err(|e| {
        tracing::error!(error = %e, "invalid configuration");
        e
    })?;
    let sdk = aws_config::load_from_env().await;
    let emitter = Emitter::from_sdk_config(config, &sdk);
    let emitter = &emitter;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let left = time_left(event.context.deadline);
        emitter
            .handle(event.payload, &event.context.request_id, Some(left))
            .await
            .map_err(lambda_runtime::Error::from)
    }))
    .await
}
