//! The profile-store port: what the core needs from wherever profiles live. One `create` call
//! per message, retries included, answered in the worker's outcome vocabulary (created,
//! already there, retryable, permanent with a reason for the DLQ record). AppSync
//! ([`crate::appsync::ProfileWriter`]) and DynamoDB ([`crate::dynamodb::DynamoDbProfiles`]) are
//! the adapters; another store is one more adapter and one more [`ConfiguredStore`] variant.

use std::future::Future;

use tokio::time::Instant;
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
}
