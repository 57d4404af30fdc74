//! The operations CLI's library, so tests (and the lab, `dev/lab`) drive the same code: the
//! dead-letter queues ([`dlq`]), back-fill from Cognito ([`backfill`]), attaching the trigger
//! ([`attach`]) and reading env files ([`env_file`]).

pub mod attach;
pub mod backfill;
pub mod dlq;
pub mod env_file;

/// An AWS SDK error with its whole chain of causes, for messages an operator reads.
pub fn aws_message(error: impl std::error::Error) -> String {
    aws_sdk_sqs::error::DisplayErrorContext(error).to_string()
}
