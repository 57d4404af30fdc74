//! What the pipeline's binaries share at run time: JSON logs, CloudWatch Embedded Metric
//! Format lines, configuration read from the environment, PII redaction, and the one failure
//! vocabulary with its retry runner and AWS error classification, the one PutEvents batch with
//! per-entry retry, the one pacer, and the Tokio runtime a function process runs on.

pub mod aws;
pub mod env;
pub mod logs;
pub mod metrics;
pub mod pace;
pub mod process;
pub mod put_events;
pub mod redact;
pub mod retry;

pub use env::{ConfigError, EnvReader};
pub use metrics::{METRICS_NAMESPACE, MetricsRecord};
pub use pace::Pacer;
pub use redact::redact_emails;
pub use retry::{
    Attempt, Classified, DEADLINE_REACHED, Failure, FailureKind, GaveUp, RetryPolicy, Succeeded,
};
