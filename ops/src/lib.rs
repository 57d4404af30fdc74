//! The operations CLI's commands, as a library so the end-to-end tests drive the same code:
//! the local stack ([`local`]), the pipeline driver ([`pipeline`]) and the demo ([`demo`]).

pub mod attach;
pub mod backfill;
pub mod chaos;
pub mod demo;
pub mod dlq;
pub mod local;
pub mod pipeline;

/// An AWS SDK error with its whole chain of causes, for messages an operator reads.
pub fn aws_message(error: impl std::error::Error) -> String {
    aws_sdk_sqs::error::DisplayErrorContext(error).to_string()
}
