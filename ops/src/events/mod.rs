//! `events`: who consumes the pipeline's events on its bus, and EventBridge archive replays to
//! chosen consumers' rules only.
//!
//! A new consumer (a CRM sync, an analytics loader) subscribes with its own rule on the bus and
//! then wants the events published before it existed. The bus's archive holds every
//! `UserConfirmed` and every `UserDeleted` (so a consumer back-filled with the confirmations
//! also learns of the users deleted since); `StartReplay` with `Destination.FilterArns`
//! re-sends a time window of both to the named rules only, and each rule receives those its
//! pattern matches: a rule that matches neither is refused. The worker's own rule is left out unless asked for: the worker
//! would absorb the duplicates (one profile per user), but it is pointless load and, with
//! `PROFILE_CREATED_EVENTS`, no announcement is repeated anyway.
//!
//! Everything that decides something is a pure function over values read from AWS
//! ([`verdict`], [`classify`], [`parse_time`], [`plan_replay`], [`replay_name`],
//! [`start_replay_request`]), so it is tested without an endpoint; the rest are thin calls
//! ([`calls`]).

#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    #[error("{operation}: {message}")]
    Aws {
        operation: &'static str,
        message: String,
    },
    /// Refused before anything was changed: the arguments ask for something unsafe or
    /// impossible (the CLI exits 2).
    #[error("{0}")]
    Refused(String),
}

fn aws_error<E: aws_sdk_sqs::error::ProvideErrorMetadata>(
    operation: &'static str,
) -> impl Fn(aws_sdk_sqs::error::SdkError<E, aws_sdk_sqs::config::http::HttpResponse>) -> EventsError
{
    move |e| EventsError::Aws {
        operation,
        message: crate::aws_message(&e),
    }
}

mod calls;
mod consumers;
mod replay;
#[cfg(test)]
mod tests;

pub use calls::*;
pub use consumers::*;
pub use replay::*;
