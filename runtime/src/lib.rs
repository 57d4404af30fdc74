//! What the pipeline's binaries share at run time: JSON logs, CloudWatch Embedded Metric
//! Format lines, configuration read from the environment, PII redaction, and the one failure
//! vocabulary with its retry runner and AWS error classification, and the Tokio runtime a
//! function process runs on.

pub mod aws;
pub mod env;
pub mod logs;
pub mod metrics;
pub mod process;
pub mod redact;
pub mod retry;

pub use env::{ConfigError, EnvReader};
pub use metrics::{METRICS_NAMESPACE, MetricsRecord};
pub use redact::redact_emails;
pub use retry::{Attempt, Classified, Failure, FailureKind, GaveUp, RetryPolicy, Succeeded};
