//! Log set-up: JSON lines on stdout, which Lambda ships to CloudWatch Logs. What is logged is
//! the callers' business; the rule is `sub`, event ids and request ids, never an email.

/// Installs a JSON `tracing` subscriber on stdout (Lambda ships stdout to CloudWatch Logs).
/// `RUST_LOG` overrides the default `info` level. Each line carries its innermost span's
/// fields: under `lambda_runtime` that is the invocation's `requestId` (and `xrayTraceId`).
pub fn init_json_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
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
