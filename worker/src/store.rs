//! The profile-store port: what the core needs from wherever profiles live. One `create` call
//! per message, retries included, answered in the worker's outcome vocabulary (created,
//! already there, retryable, permanent with a reason for the DLQ record); and for the user
//! lifecycle, `remove` (the user left the pool) and `exists`. AppSync
//! ([`crate::appsync::ProfileWriter`]) and DynamoDB ([`crate::dynamodb::DynamoDbProfiles`]) are
//! the adapters; another store is one more adapter and one more [`ConfiguredStore`] variant.

use std::future::Future;

use tokio::time::Instant;
use uc_runtime::{Failure, FailureKind, GaveUp, Succeeded};
use uc_schemas::UserConfirmed;

use crate::AppSyncClient;
use crate::appsync::{GraphQlEndpoint, ProfileWriter};
use crate::classify::Outcome;
use crate::dynamodb::DynamoDbProfiles;

/// The result of creating one profile.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteReport {
    /// `Created`, `AlreadyExists`, or the last failure.
    pub outcome: Outcome,
    pub attempts: u32,
    pub latencies_ms: Vec<f64>,
}

impl WriteReport {
    /// The report of an adapter's retry run (`RetryPolicy::run`) and its calls' latencies.
    pub fn of_run(
        result: Result<Succeeded<Outcome>, GaveUp<Outcome>>,
        latencies_ms: Vec<f64>,
    ) -> Self {
        let (outcome, attempts) = match result {
            Ok(done) => (done.value, done.attempts),
            // No time for an attempt is retryable `DeadlineReached`: SQS redelivers it after
            // the visibility timeout, with a full deadline.
            Err(gave_up) => {
                let attempts = gave_up.attempts();
                (gave_up.into_error(), attempts)
            }
        };
        Self {
            outcome,
            attempts: attempts as u32,
            latencies_ms,
        }
    }
}

/// What removing a profile came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// The profile was there and is gone (AppSync), or is now a tombstone without PII
    /// (DynamoDB).
    Removed,
    /// There was no profile to remove (never created, or removed before).
    Absent,
}

/// A store's outcome as the shared failure vocabulary has it (for calls other than `create`).
pub fn failure_of(outcome: Outcome) -> Failure {
    match outcome {
        Outcome::Retryable { reason, throttled } => {
            Failure::new(FailureKind::Retryable { throttled }, reason, "")
        }
        other => Failure::permanent(other.code().to_owned(), ""),
    }
}

/// The result of a retried store call (`remove`, `exists`) as the shared vocabulary has it.
pub fn result_of_run<T>(result: Result<Succeeded<T>, GaveUp<Outcome>>) -> Result<T, Failure> {
    result.map(|done| done.value).map_err(GaveUp::into_failure)
}

impl From<Outcome> for Failure {
    fn from(outcome: Outcome) -> Self {
        failure_of(outcome)
    }
}

/// A failure of the shared vocabulary as a store outcome (a runner that gave up without an
/// attempt's outcome: `DeadlineReached`).
impl From<Failure> for Outcome {
    fn from(failure: Failure) -> Self {
        match failure.kind {
            FailureKind::Retryable { throttled } => Outcome::Retryable {
                reason: failure.code,
                throttled,
            },
            FailureKind::Permanent => Outcome::Permanent {
                reason: failure.code,
            },
        }
    }
}

/// Where profiles are created.
pub trait ProfileStore: Send + Sync {
    /// The store, as `ProfileCreated` events name it.
    fn kind(&self) -> uc_schemas::ProfileStore;

    /// The `uc.stage` of a DLQ record for a write this store refused.
    fn stage(&self) -> &'static str;

    /// The `uc.detail` of a DLQ record for a write refused with `reason`.
    fn refusal_detail(&self, reason: &str) -> String;

    /// Creates `event`'s profile unless it exists, retrying retryable failures until attempts
    /// or `deadline` run out; `trace_header` joins each request to the sign-up's trace.
    fn create(
        &self,
        event: &UserConfirmed,
        deadline: Option<Instant>,
        trace_header: Option<&str>,
    ) -> impl Future<Output = WriteReport> + Send;

    /// Removes `sub`'s profile because the user left the pool; the email leaves the store at
    /// once. Retried like `create`.
    fn remove(
        &self,
        sub: &str,
        deadline: Option<Instant>,
    ) -> impl Future<Output = Result<Removal, Failure>> + Send;

    /// Whether `sub` has a (live) profile.
    fn exists(
        &self,
        sub: &str,
        deadline: Option<Instant>,
    ) -> impl Future<Output = Result<bool, Failure>> + Send;
}

impl<E: GraphQlEndpoint> ProfileStore for ProfileWriter<E> {
    fn kind(&self) -> uc_schemas::ProfileStore {
        uc_schemas::ProfileStore::Appsync
    }

    fn stage(&self) -> &'static str {
        uc_schemas::dead_letter::stage::APPSYNC
    }

    fn refusal_detail(&self, reason: &str) -> String {
        format!("AppSync refused createUserProfile: {reason}")
    }

    fn create(
        &self,
        event: &UserConfirmed,
        deadline: Option<Instant>,
        trace_header: Option<&str>,
    ) -> impl Future<Output = WriteReport> + Send {
        self.write(event, deadline, trace_header)
    }

    fn remove(
        &self,
        sub: &str,
        deadline: Option<Instant>,
    ) -> impl Future<Output = Result<Removal, Failure>> + Send {
        self.delete(sub, deadline)
    }

    fn exists(
        &self,
        sub: &str,
        deadline: Option<Instant>,
    ) -> impl Future<Output = Result<bool, Failure>> + Send {
        self.read(sub, deadline)
    }
}

/// The store `PROFILE_STORE` chose, as the production worker holds it.
pub enum ConfiguredStore {
    AppSync(ProfileWriter<AppSyncClient>),
    DynamoDb(DynamoDbProfiles),
}

impl ProfileStore for ConfiguredStore {
    fn kind(&self) -> uc_schemas::ProfileStore {
        match self {
            Self::AppSync(store) => store.kind(),
            Self::DynamoDb(store) => store.kind(),
        }
    }

    fn stage(&self) -> &'static str {
        match self {
            Self::AppSync(store) => store.stage(),
            Self::DynamoDb(store) => store.stage(),
        }
    }

    fn refusal_detail(&self, reason: &str) -> String {
        match self {
            Self::AppSync(store) => store.refusal_detail(reason),
            Self::DynamoDb(store) => store.refusal_detail(reason),
        }
    }

    async fn create(
        &self,
        event: &UserConfirmed,
        deadline: Option<Instant>,
        trace_header: Option<&str>,
    ) -> WriteReport {
        match self {
            Self::AppSync(store) => store.create(event, deadline, trace_header).await,
            Self::DynamoDb(store) => store.create(event, deadline, trace_header).await,
        }
    }

    async fn remove(&self, sub: &str, deadline: Option<Instant>) -> Result<Removal, Failure> {
        match self {
            Self::AppSync(store) => store.remove(sub, deadline).await,
            Self::DynamoDb(store) => store.remove(sub, deadline).await,
        }
    }

    async fn exists(&self, sub: &str, deadline: Option<Instant>) -> Result<bool, Failure> {
        match self {
            Self::AppSync(store) => store.exists(sub, deadline).await,
            Self::DynamoDb(store) => store.exists(sub, deadline).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_reports_its_outcome_and_attempts() {
        let created = WriteReport::of_run(
            Ok(Succeeded {
                value: Outcome::Created,
                attempts: 2,
            }),
            vec![1.0, 2.0],
        );
        assert_eq!(
            (
                created.outcome,
                created.attempts,
                created.latencies_ms.len()
            ),
            (Outcome::Created, 2, 2)
        );
        let refused = Outcome::Permanent {
            reason: "ResourceNotFoundException".into(),
        };
        let failed = WriteReport::of_run(
            Err(GaveUp::Failed {
                error: refused.clone(),
                attempts: 1,
            }),
            vec![],
        );
        assert_eq!((failed.outcome, failed.attempts), (refused, 1));
        // No time for even one attempt: SQS retries it later.
        let starved = WriteReport::of_run(
            Err(GaveUp::Deadline {
                last: None,
                attempts: 0,
            }),
            vec![],
        );
        assert_eq!(
            starved.outcome,
            Outcome::Retryable {
                reason: "DeadlineReached".into(),
                throttled: false
            }
        );
    }
}
