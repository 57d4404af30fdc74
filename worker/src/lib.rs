//! The worker: turns `UserConfirmed` messages into profiles through a SigV4-signed AppSync
//! mutation, or (`PROFILE_STORE=dynamodb`) a conditional `PutItem` into the Amplify model
//! table, and Cognito's CloudTrail records of deletions and administrators' calls into
//! removed profiles and published events ([`lifecycle`]). One core ([`processor`]) serves the Lambda front end ([`lambda`]), the long-poll
//! front end ([`poller`]) and the ops CLI's DLQ replay; it creates profiles through the
//! [`store`] port, whichever store that is.

pub mod announce;
pub mod appsync;
pub mod bus;
pub mod classify;
pub mod config;
pub mod dead_letter;
pub mod dynamodb;
pub mod lambda;
pub mod lifecycle;
pub mod limit;
pub mod mutation;
pub mod poller;
pub mod pool_users;
pub mod processor;
pub mod store;
pub mod user_check;

use aws_config::SdkConfig;

pub use appsync::{AppSyncClient, EndpointSetting, GraphQlEndpoint, ProfileWriter};
pub use config::{StoreSetting, VerifyUser, WorkerConfig};
pub use dead_letter::{DeadLetterSink, SqsDeadLetters};
pub use dynamodb::{DynamoDbProfiles, ProfileTable};
pub use processor::{Disposition, MessageHandler, MessageReport, Worker};
pub use store::{ConfiguredStore, ProfileStore, WriteReport};
use user_check::CognitoUsers;
// The contract types the front ends and the ops CLI hand to the core.
pub use uc_schemas::{FailureRecord, MessageMeta};

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Config(#[from] uc_runtime::ConfigError),
    #[error("AppSync endpoint: {0}")]
    Endpoint(String),
    #[error("SQS: {0}")]
    Sqs(String),
}

/// The production worker for `config`: its profile store (for AppSync: the endpoint resolved
/// once and the signing client) and, when `DLQ_URL` is set, the DLQ writer.
pub async fn build_worker(
    config: &WorkerConfig,
    sdk: &SdkConfig,
) -> Result<Worker<ConfiguredStore, SqsDeadLetters>, WorkerError> {
    let store = build_store(config, sdk).await?;
    let dead_letters = config
        .dlq_url
        .clone()
        .map(|url| SqsDeadLetters::new(aws_sdk_sqs::Client::new(sdk), url));
    let users = match config.verify_user {
        VerifyUser::Off => None,
        VerifyUser::Cognito { per_second, ttl } => Some(CognitoUsers::new(
            aws_sdk_cognitoidentityprovider::Client::new(sdk),
            per_second,
            ttl,
        )),
    };
    let mut worker = Worker::new(store, dead_letters, config.provenance.clone(), users);
    // The bus edge's retries are its own (the shared runner), so the SDK's are off.
    let events = aws_sdk_eventbridge::Client::from_conf(
        aws_sdk_eventbridge::config::Builder::from(sdk)
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .build(),
    );
    let source = config
        .provenance
        .sources
        .first()
        .cloned()
        .unwrap_or_default();
    if let Some(bus) = &config.profile_created_bus {
        worker = worker.announcing(announce::ProfileAnnouncer::new(bus::EventBridgeSink::new(
            events.clone(),
            bus.clone(),
            source.clone(),
        )));
    }
    let Some(setting) = &config.lifecycle else {
        return Ok(worker);
    };
    let lifecycle = lifecycle::Lifecycle::new(
        pool_users::CognitoPoolUsers::new(
            aws_sdk_cognitoidentityprovider::Client::new(sdk),
            setting.lookup_rps,
        ),
        bus::EventBridgeSink::new(events, setting.bus.clone(), source),
        lifecycle::LifecycleSettings {
            pools: config.provenance.user_pools.clone(),
            statuses: setting.statuses.clone(),
            region: sdk.region().map(ToString::to_string).unwrap_or_default(),
            announce_profiles: config.profile_created_bus.is_some(),
        },
    );
    Ok(worker.with_lifecycle(lifecycle))
}

/// The profile store `PROFILE_STORE` chose.
async fn build_store(
    config: &WorkerConfig,
    sdk: &SdkConfig,
) -> Result<ConfiguredStore, WorkerError> {
    Ok(match &config.store {
        StoreSetting::AppSync(endpoint) => {
            let url = endpoint.resolve(sdk).await?;
            let client = AppSyncClient::from_sdk_config(
                url,
                sdk,
                config.connect_timeout,
                config.concurrency,
            )?;
            ConfiguredStore::AppSync(ProfileWriter::new(
                client,
                config.mutation.clone(),
                config.retry.clone(),
                config.request_timeout,
                config.concurrency,
            ))
        }
        StoreSetting::DynamoDb(table) => {
            // The store's retries are the shared runner's, so the SDK's are off.
            let client = aws_sdk_dynamodb::Client::from_conf(
                aws_sdk_dynamodb::config::Builder::from(sdk)
                    .retry_config(aws_config::retry::RetryConfig::disabled())
                    .timeout_config(
                        aws_config::timeout::TimeoutConfig::builder()
                            .connect_timeout(config.connect_timeout)
                            .build(),
                    )
                    .build(),
            );
            ConfiguredStore::DynamoDb(DynamoDbProfiles::new(
                client,
                table.clone(),
                config.mutation.clone(),
                config.retry.clone(),
                config.request_timeout,
                config.concurrency,
            ))
        }
    })
}
