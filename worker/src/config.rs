//! The worker's configuration, read once at start-up from the environment.

use std::time::Duration;

use uc_runtime::{ConfigError, EnvReader};

use crate::appsync::EndpointSetting;
use crate::dynamodb::{DEFAULT_TYPENAME, ProfileTable};
use crate::mutation::{DEFAULT_INPUT_MAPPING, MutationSpec};
use uc_runtime::RetryPolicy;
use uc_schemas::{DEFAULT_SOURCE, Provenance};

/// `VERIFY_USER_RPS` unset: `AdminGetUser` calls per second per process. Cognito's UserRead
/// quota (120/s by default, per account and Region) is shared with the apps' own sign-ins;
/// at the template's default of 5 worker processes this asks for 60/s at most, half the
/// quota, leaving the rest to the apps (docs/benchmarks.md, strict mode).
pub const DEFAULT_VERIFY_USER_RPS: u32 = 12;

/// An AppSync attempt is not started with less time than this before the deadline.
const MIN_ATTEMPT_TIME: std::time::Duration = std::time::Duration::from_millis(200);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerConfig {
    /// `PROFILE_STORE` (`appsync`, the default, or `dynamodb`) and what that store needs.
    pub store: StoreSetting,
    /// `DLQ_URL`: where permanent failures go at once, with their reason.
    pub dlq_url: Option<String>,
    /// `QUEUE_URL`: the queue the long-poll mode reads.
    pub queue_url: Option<String>,
    /// `CONCURRENCY`: messages in flight and profile-store calls at most (throttling lowers it).
    pub concurrency: usize,
    /// `MAX_ATTEMPTS`, `RETRY_MIN_DELAY_MS`, `RETRY_MAX_DELAY_MS`: retries within one receive.
    pub retry: RetryPolicy,
    /// `REQUEST_TIMEOUT_MS`: one profile-store call, connection included.
    pub request_timeout: Duration,
    /// `CONNECT_TIMEOUT_MS`.
    pub connect_timeout: Duration,
    /// `MUTATION_DOCUMENT` (a file), `MUTATION_FIELD`, `MUTATION_INPUT`. With the DynamoDB
    /// store, `MUTATION_INPUT` alone maps the item's attributes.
    pub mutation: MutationSpec,
    /// `VISIBILITY_BACKOFF_BASE_SECONDS`, `VISIBILITY_BACKOFF_MAX_SECONDS` (long-poll mode).
    pub visibility_backoff: (Duration, Duration),
    /// `WAIT_TIME_SECONDS`: long-poll wait (long-poll mode), and so the longest an idle
    /// consumer takes to stop: an in-flight receive is waited out, never abandoned (SQS would
    /// hand an abandoned one the next message and hide it for a visibility timeout).
    pub wait_time_seconds: i32,
    /// `SHUTDOWN_GRACE_SECONDS`: how long in-flight messages may finish after SIGTERM.
    pub shutdown_grace: Duration,
    /// `USER_POOL_ID` (required; comma-separated for several) and `EVENT_SOURCE` (default
    /// `userconfirmed.cognito`; comma-separated for several): what the worker acts on.
    pub provenance: Provenance,
    /// `VERIFY_USER` (`none` or `cognito`), `VERIFY_USER_RPS`, `VERIFY_USER_CACHE_SECONDS`.
    pub verify_user: VerifyUser,
    /// `PROFILE_CREATED_EVENTS=true` with `EVENT_BUS_NAME`: the bus each created profile is
    /// announced on as `ProfileCreated` (source: the first of `EVENT_SOURCE`).
    pub profile_created_bus: Option<String>,
    /// The user lifecycle (issue 22), on when `EVENT_BUS_NAME` is set: the bus `UserDeleted`
    /// and re-published `UserConfirmed` events go to, `RECONCILE_STATUSES` (the counted
    /// statuses, as the sweeps read them) and `USER_LOOKUP_RPS` (`ListUsers` calls per second
    /// per process, default 5: the UserList quota of 30/s is shared with the reconciler).
    pub lifecycle: Option<LifecycleSetting>,
    /// `LIFECYCLE_QUEUE_URL`: the queue of Cognito's CloudTrail records (long-poll mode reads
    /// it beside `QUEUE_URL`; requires `EVENT_BUS_NAME`).
    pub lifecycle_queue_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecycleSetting {
    pub bus: String,
    pub statuses: Vec<String>,
    pub lookup_rps: u32,
}

/// Where profiles are created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSetting {
    /// The GraphQL mutation: `APPSYNC_GRAPHQL_URL` or `APPSYNC_API_ID`.
    AppSync(EndpointSetting),
    /// A conditional `PutItem` into the Amplify model table: `PROFILE_TABLE`, and
    /// `PROFILE_TYPENAME` (default `UserProfile`).
    DynamoDb(ProfileTable),
}

impl StoreSetting {
    /// `PROFILE_STORE` and what the chosen store needs, as the worker reads them: the ops
    /// sweeps and the audit read the same variables, so they look where the worker writes.
    pub fn from_reader<F: Fn(&str) -> Option<String>>(
        env: &EnvReader<F>,
    ) -> Result<Self, ConfigError> {
        Ok(
            match env.choice("PROFILE_STORE", "appsync", &["appsync", "dynamodb"])? {
                "dynamodb" => StoreSetting::DynamoDb(ProfileTable {
                    name: env.optional("PROFILE_TABLE").ok_or(ConfigError::Missing(
                        "PROFILE_TABLE (the model table PROFILE_STORE=dynamodb writes to)",
                    ))?,
                    typename: env
                        .optional("PROFILE_TYPENAME")
                        .unwrap_or_else(|| DEFAULT_TYPENAME.into()),
                }),
                _ => StoreSetting::AppSync(
                    match (
                        env.optional("APPSYNC_GRAPHQL_URL"),
                        env.optional("APPSYNC_API_ID"),
                    ) {
                        (Some(url), _) => EndpointSetting::Url(url),
                        (None, Some(id)) => EndpointSetting::ApiId(id),
                        (None, None) => {
                            return Err(ConfigError::Missing(
                                "APPSYNC_GRAPHQL_URL (or APPSYNC_API_ID)",
                            ));
                        }
                    },
                ),
            },
        )
    }
}

/// The optional strict mode: look each user up in Cognito before creating their profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyUser {
    Off,
    Cognito {
        /// AdminGetUser calls per second, at most, from this process.
        per_second: u32,
        /// How long a positive answer is trusted.
        ttl: Duration,
    },
}

/// A comma-separated list, blanks dropped.
fn list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .collect()
}

impl WorkerConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_reader(&EnvReader::process())
    }

    pub fn from_reader<F: Fn(&str) -> Option<String>>(
        env: &EnvReader<F>,
    ) -> Result<Self, ConfigError> {
        let store = StoreSetting::from_reader(env)?;
        let mut mutation = MutationSpec::default();
        if let Some(path) = env.optional("MUTATION_DOCUMENT") {
            mutation.document =
                std::fs::read_to_string(&path).map_err(|e| ConfigError::Invalid {
                    name: "MUTATION_DOCUMENT",
                    value: path.clone(),
                    why: e.to_string(),
                })?;
            if !mutation.document.contains("$input") {
                return Err(ConfigError::Invalid {
                    name: "MUTATION_DOCUMENT",
                    value: path,
                    why: "the document must declare $input".into(),
                });
            }
        }
        if let Some(field) = env.optional("MUTATION_FIELD") {
            mutation.field = field;
        }
        mutation.inputs = MutationSpec::parse_mapping(
            &env.optional("MUTATION_INPUT")
                .unwrap_or_else(|| DEFAULT_INPUT_MAPPING.into()),
        )?;
        if matches!(store, StoreSetting::DynamoDb(_))
            && !mutation.inputs.iter().any(|(field, _)| field == "id")
        {
            // The create-only condition is `attribute_not_exists(id)`: the item needs its key.
            return Err(ConfigError::Invalid {
                name: "MUTATION_INPUT",
                value: env.optional("MUTATION_INPUT").unwrap_or_default(),
                why: "PROFILE_STORE=dynamodb needs an id field (the table's key), e.g. id=sub"
                    .into(),
            });
        }
        let retry = RetryPolicy {
            max_attempts: env.number("MAX_ATTEMPTS", 4, 1, 20)?,
            min_delay: env.millis("RETRY_MIN_DELAY_MS", 100, 1, 60_000)?,
            max_delay: env.millis("RETRY_MAX_DELAY_MS", 3_000, 1, 300_000)?,
            min_attempt_time: MIN_ATTEMPT_TIME,
        };
        let user_pools = list(&env.optional("USER_POOL_ID").unwrap_or_default());
        if user_pools.is_empty() {
            return Err(ConfigError::Missing(
                "USER_POOL_ID (the pool, or pools, whose users get profiles)",
            ));
        }
        let sources = list(
            &env.optional("EVENT_SOURCE")
                .unwrap_or_else(|| DEFAULT_SOURCE.into()),
        );
        let verify_user = match env.optional("VERIFY_USER").as_deref() {
            None | Some("none") => VerifyUser::Off,
            Some("cognito") => VerifyUser::Cognito {
                per_second: env.number("VERIFY_USER_RPS", DEFAULT_VERIFY_USER_RPS, 1, 10_000)?,
                ttl: env.seconds("VERIFY_USER_CACHE_SECONDS", 300, 0, 86_400)?,
            },
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: "VERIFY_USER",
                    value: other.to_owned(),
                    why: "expected none or cognito".into(),
                });
            }
        };
        let profile_created_bus =
            match env.choice("PROFILE_CREATED_EVENTS", "false", &["true", "false"])? {
                "true" => Some(env.optional("EVENT_BUS_NAME").ok_or(ConfigError::Missing(
                    "EVENT_BUS_NAME (the bus PROFILE_CREATED_EVENTS=true announces on)",
                ))?),
                _ => None,
            };
        let lifecycle = match env.optional("EVENT_BUS_NAME") {
            None => None,
            Some(bus) => Some(LifecycleSetting {
                bus,
                statuses: uc_schemas::counted::parse_statuses(
                    &env.optional("RECONCILE_STATUSES")
                        .unwrap_or_else(|| uc_schemas::counted::DEFAULT_STATUS_LIST.into()),
                )
                .map_err(|why| ConfigError::Invalid {
                    name: "RECONCILE_STATUSES",
                    value: env.optional("RECONCILE_STATUSES").unwrap_or_default(),
                    why,
                })?,
                lookup_rps: env.number("USER_LOOKUP_RPS", 5, 1, 25)?,
            }),
        };
        let lifecycle_queue_url = env.optional("LIFECYCLE_QUEUE_URL");
        if lifecycle_queue_url.is_some() && lifecycle.is_none() {
            return Err(ConfigError::Missing(
                "EVENT_BUS_NAME (LIFECYCLE_QUEUE_URL is set: deletions publish UserDeleted there)",
            ));
        }
        Ok(Self {
            lifecycle,
            lifecycle_queue_url,
            profile_created_bus,
            provenance: Provenance {
                sources,
                user_pools,
            },
            verify_user,
            store,
            dlq_url: env.optional("DLQ_URL"),
            queue_url: env.optional("QUEUE_URL"),
            concurrency: env.number("CONCURRENCY", 16, 1, 1024)?,
            retry,
            request_timeout: env.millis("REQUEST_TIMEOUT_MS", 5_000, 100, 60_000)?,
            connect_timeout: env.millis("CONNECT_TIMEOUT_MS", 1_000, 10, 60_000)?,
            mutation,
            visibility_backoff: (
                env.seconds("VISIBILITY_BACKOFF_BASE_SECONDS", 10, 0, 43_200)?,
                env.seconds("VISIBILITY_BACKOFF_MAX_SECONDS", 900, 0, 43_200)?,
            ),
            wait_time_seconds: env.number("WAIT_TIME_SECONDS", 1, 1, 20)?,
            shutdown_grace: env.seconds("SHUTDOWN_GRACE_SECONDS", 20, 0, 3_600)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(
        pairs: &'static [(&'static str, &'static str)],
    ) -> EnvReader<impl Fn(&str) -> Option<String>> {
        uc_runtime::env::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn the_lifecycle_is_on_with_the_bus_and_reads_the_counted_statuses() {
        let off =
            WorkerConfig::from_reader(&reader(&[("APPSYNC_API_ID", "a"), ("USER_POOL_ID", "p")]))
                .unwrap();
        assert_eq!((off.lifecycle, off.lifecycle_queue_url), (None, None));
        let on = WorkerConfig::from_reader(&reader(&[
            ("APPSYNC_API_ID", "a"),
            ("USER_POOL_ID", "p"),
            ("EVENT_BUS_NAME", "bus"),
            ("RECONCILE_STATUSES", "confirmed,force_change_password"),
            ("LIFECYCLE_QUEUE_URL", "http://q"),
        ]))
        .unwrap();
        assert_eq!(
            on.lifecycle,
            Some(LifecycleSetting {
                bus: "bus".into(),
                statuses: vec!["CONFIRMED".into(), "FORCE_CHANGE_PASSWORD".into()],
                lookup_rps: 5,
            })
        );
        assert_eq!(on.lifecycle_queue_url.as_deref(), Some("http://q"));
        // A lifecycle queue without a bus would read records it cannot finish.
        let err = WorkerConfig::from_reader(&reader(&[
            ("APPSYNC_API_ID", "a"),
            ("USER_POOL_ID", "p"),
            ("LIFECYCLE_QUEUE_URL", "http://q"),
        ]))
        .unwrap_err();
        assert!(err.to_string().starts_with("EVENT_BUS_NAME"), "{err}");
        let err = WorkerConfig::from_reader(&reader(&[
            ("APPSYNC_API_ID", "a"),
            ("USER_POOL_ID", "p"),
            ("EVENT_BUS_NAME", "bus"),
            ("RECONCILE_STATUSES", "ACTIVE"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("RECONCILE_STATUSES"), "{err}");
        let err = WorkerConfig::from_reader(&reader(&[
            ("APPSYNC_API_ID", "a"),
            ("USER_POOL_ID", "p"),
            ("EVENT_BUS_NAME", "bus"),
            ("USER_LOOKUP_RPS", "100"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("USER_LOOKUP_RPS"), "{err}");
    }

    #[test]
    fn the_url_or_the_api_id_is_required() {
        let err = WorkerConfig::from_reader(&reader(&[])).unwrap_err();
        assert!(err.to_string().starts_with("APPSYNC_GRAPHQL_URL"), "{err}");
        let c = WorkerConfig::from_reader(&reader(&[
            ("APPSYNC_API_ID", "abc123"),
            ("USER_POOL_ID", "p"),
        ]))
        .unwrap();
        assert_eq!(
            c.store,
            StoreSetting::AppSync(EndpointSetting::ApiId("abc123".into()))
        );
        let c = WorkerConfig::from_reader(&reader(&[
            ("APPSYNC_GRAPHQL_URL", "https://x/graphql"),
            ("USER_POOL_ID", "p"),
        ]))
        .unwrap();
        assert_eq!(
            c.store,
            StoreSetting::AppSync(EndpointSetting::Url("https://x/graphql".into()))
        );
        assert_eq!(c.mutation, MutationSpec::default());
        assert_eq!(c.concurrency, 16);
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (name, value) in [
            ("CONCURRENCY", "0"),
            ("MAX_ATTEMPTS", "x"),
            ("MUTATION_INPUT", "id=nothing"),
            ("MUTATION_DOCUMENT", "/no/such/file"),
            ("USER_POOL_ID", " , "),
            ("VERIFY_USER", "sometimes"),
            ("VERIFY_USER_RPS", "0"),
        ] {
            let pairs: &'static [(&'static str, &'static str)] = Box::leak(
                vec![
                    ("APPSYNC_GRAPHQL_URL", "https://x/graphql"),
                    ("USER_POOL_ID", "p"),
                    ("VERIFY_USER", "cognito"),
                    (name, value),
                ]
                .into_boxed_slice(),
            );
            let err = WorkerConfig::from_reader(&reader(pairs)).unwrap_err();
            assert!(err.to_string().starts_with(name), "{err}");
        }
    }

    #[test]
    fn pools_and_sources_are_lists_and_the_pool_is_required() {
        let err =
            WorkerConfig::from_reader(&reader(&[("APPSYNC_GRAPHQL_URL", "https://x/graphql")]))
                .unwrap_err();
        assert!(err.to_string().starts_with("USER_POOL_ID"), "{err}");
        let c = WorkerConfig::from_reader(&reader(&[
            ("APPSYNC_GRAPHQL_URL", "https://x/graphql"),
            ("USER_POOL_ID", "eu-west-1_A, eu-west-1_B"),
            ("EVENT_SOURCE", "my.source"),
        ]))
        .unwrap();
        assert_eq!(c.provenance.user_pools, ["eu-west-1_A", "eu-west-1_B"]);
        assert_eq!(c.provenance.sources, ["my.source"]);
        assert_eq!(c.verify_user, VerifyUser::Off);
        let strict = WorkerConfig::from_reader(&reader(&[
            ("APPSYNC_GRAPHQL_URL", "https://x/graphql"),
            ("USER_POOL_ID", "p"),
            ("VERIFY_USER", "cognito"),
        ]))
        .unwrap();
        assert_eq!(
            strict.verify_user,
            VerifyUser::Cognito {
                per_second: 12,
                ttl: Duration::from_secs(300)
            }
        );
    }

    #[test]
    fn the_dynamodb_store_needs_its_table_and_an_id() {
        let err = WorkerConfig::from_reader(&reader(&[
            ("PROFILE_STORE", "dynamodb"),
            ("USER_POOL_ID", "p"),
        ]))
        .unwrap_err();
        assert!(err.to_string().starts_with("PROFILE_TABLE"), "{err}");
        let c = WorkerConfig::from_reader(&reader(&[
            ("PROFILE_STORE", "dynamodb"),
            ("PROFILE_TABLE", "UserProfile-abc-dev"),
            ("USER_POOL_ID", "p"),
        ]))
        .unwrap();
        assert_eq!(
            c.store,
            StoreSetting::DynamoDb(ProfileTable {
                name: "UserProfile-abc-dev".into(),
                typename: "UserProfile".into()
            })
        );
        let c = WorkerConfig::from_reader(&reader(&[
            ("PROFILE_STORE", "dynamodb"),
            ("PROFILE_TABLE", "Profile-abc-dev"),
            ("PROFILE_TYPENAME", "Profile"),
            ("USER_POOL_ID", "p"),
        ]))
        .unwrap();
        assert!(
            matches!(c.store, StoreSetting::DynamoDb(ProfileTable { typename, .. }) if typename == "Profile")
        );
        let err = WorkerConfig::from_reader(&reader(&[
            ("PROFILE_STORE", "dynamodb"),
            ("PROFILE_TABLE", "t"),
            ("MUTATION_INPUT", "userId=sub"),
            ("USER_POOL_ID", "p"),
        ]))
        .unwrap_err();
        assert!(err.to_string().starts_with("MUTATION_INPUT"), "{err}");
        let err = WorkerConfig::from_reader(&reader(&[
            ("PROFILE_STORE", "mongodb"),
            ("USER_POOL_ID", "p"),
        ]))
        .unwrap_err();
        assert!(err.to_string().starts_with("PROFILE_STORE"), "{err}");
    }
}
