//! Log set-up: JSON lines on stdout, which Lambda ships to CloudWatch Logs. What is logged is
//! the callers' business; the rule is `sub`, event ids and request ids, never an email.

/// Crates whose TRACE output carries payloads, capped at DEBUG.
pub const PII_FLOORS: &[&str] = &[
    "lambda_runtime=debug",
    "lambda_runtime_api_client=debug",
    "aws_smithy_runtime=debug",
    "aws_smithy_runtime_api=debug",
    "aws_smithy_http_client=debug",
    "aws_sigv4=debug",
    "hyper=debug",
    "hyper_util=debug",
    "reqwest=debug",
    "h2=debug",
];

/// Installs a JSON `tracing` subscriber on stdout (Lambda ships stdout to CloudWatch Logs).
/// `RUST_LOG` overrides the default `info` level. Each line carries its innermost span's
/// fields: under `lambda_runtime` that is the invocation's `requestId` (and `xrayTraceId`).
pub fn init_json_logs() {
    let mut filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // No level may print PII: at TRACE the Lambda runtime logs the raw invocation event (a
    // Cognito event carries the email) and the SDK logs request and response bodies. Those
    // crates stop at DEBUG whatever RUST_LOG says.
    for floor in PII_FLOORS {
        if let Ok(directive) = floor.parse() {
            filter = filter.add_directive(directive);
        }
    }
    // A second call (tests, or a binary embedding another) keeps the first subscriber.
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .without_time()
        .try_init();
}
