//! The PostConfirmation Lambda: builds configuration and clients once, then serves invocations
//! (several at once under Lambda Managed Instances, `AWS_LAMBDA_MAX_CONCURRENCY`).
//! The event stays the JSON text Lambda delivered and goes back as it came; a fail-closed error
//! reaches Cognito as `UserConfirmedPublishFailed` (`From<EmitterError> for Diagnostic`).
// The SDK and lambda_runtime futures nest deeply enough to pass the default limit.
#![recursion_limit = "256"]

use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::value::RawValue;
use uc_emitter::{DEADLINE_MARGIN, Emitter, EmitterConfig};
use uc_runtime::retry::deadline_before;

fn main() -> std::process::ExitCode {
    let result = uc_runtime::process::lambda_tokio_runtime()
        .map_err(lambda_runtime::Error::from)
        .and_then(|runtime| runtime.block_on(serve()));
    uc_runtime::process::exit_code(result)
}

async fn serve() -> Result<(), lambda_runtime::Error> {
    uc_runtime::logs::init_json_logs();
    let config = EmitterConfig::from_env()
        .inspect_err(|e| tracing::error!(error = %e, "invalid configuration"))?;
    let sdk = aws_config::load_from_env().await;
    // Lives as long as the process; a `'static` borrow lets concurrent invocations share it.
    let emitter: &'static _ = Box::leak(Box::new(Emitter::from_sdk_config(config, &sdk)));
    lambda_runtime::run_concurrent(service_fn(
        move |event: LambdaEvent<Box<RawValue>>| async move {
            let deadline = deadline_before(event.context.deadline(), DEADLINE_MARGIN);
            let trace = event.context.xray_trace_id.as_deref();
            emitter
                .handle_traced(event.payload, Some(deadline), trace)
                .await
        },
    ))
    .await
}
