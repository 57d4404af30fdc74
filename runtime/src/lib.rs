//! What the pipeline's binaries share at run time: JSON logs, CloudWatch Embedded Metric
//! Format lines, configuration read from the environment, and PII redaction for error texts.

pub mod env;
pub mod logs;
pub mod metrics;
pub mod redact;

pub use env::{ConfigError, EnvReader};
pub use metrics::{METRICS_NAMESPACE, MetricsRecord};
pub use redact::redact_emails;
