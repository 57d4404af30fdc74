//! Reconciliation, the sweep's scheduled mode: each pass publishes `UserConfirmed` (origin
//! `reconciliation`) for counted users changed since the watermark less an overlap who have no
//! profile in the store, so users no trigger reported (admin-created, migrated, imported, a
//! fail-open publish failure) get their profile without an operator, and a user with a
//! profile is never published again. The same pass runs as `uc-ops reconcile` and as the
//! scheduled `uc-reconciler`; this module reads their shared configuration, the pass itself is
//! [`crate::sweep`]'s.

use std::time::Duration;

use uc_runtime::env::{ConfigError, EnvReader};
use uc_schemas::{DEFAULT_SOURCE, Origin};
use uc_worker::StoreSetting;

use crate::audit::{DEFAULT_STATUS_LIST, parse_statuses};
use crate::publish::Target;
use crate::sweep::SweepConfig;

/// What a pass needs, from the same variables in the function and the CLI.
#[derive(Debug, Clone, PartialEq)]
pub struct ReconcileConfig {
    pub user_pool_id: String,
    pub bus: String,
    pub source: String,
    /// The SSM parameter holding the [`crate::sweep_state::SweepState`].
    pub state_parameter: String,
    /// How far before the watermark a pass looks again: clock skew and `ListUsers`' eventual
    /// consistency. It can be short: confirming an account (any status change) moves its
    /// `UserLastModifiedDate`, so a user confirmed days after signing up is caught anyway.
    pub overlap: Duration,
    /// Users changed this recently are left to the next pass: their trigger's event may still
    /// be on its way to the worker (`RECONCILE_GRACE_SECONDS`).
    pub grace: Duration,
    /// Events published per second, at most: kept below the worker's spare capacity so live
    /// sign-ups never queue behind a pass (docs/benchmarks.md, "Live sign-ups first").
    pub publish_rate: f64,
    /// `ListUsers` calls per second, at most (the account's quota is shared with the app).
    pub list_rate: f64,
    pub statuses: Vec<String>,
    /// Where the pass checks for profiles: the worker's `PROFILE_STORE` and its variables.
    pub store: StoreSetting,
}

impl ReconcileConfig {
    pub fn from_env<F: Fn(&str) -> Option<String>>(
        env: &EnvReader<F>,
    ) -> Result<Self, ConfigError> {
        let statuses = env
            .optional("RECONCILE_STATUSES")
            .unwrap_or_else(|| DEFAULT_STATUS_LIST.to_owned());
        Ok(Self {
            user_pool_id: env.required("USER_POOL_ID")?,
            bus: env.required("EVENT_BUS_NAME")?,
            source: env
                .optional("EVENT_SOURCE")
                .unwrap_or_else(|| DEFAULT_SOURCE.to_owned()),
            state_parameter: env.required("RECONCILE_WATERMARK_PARAMETER")?,
            overlap: env.seconds("RECONCILE_OVERLAP_SECONDS", 3_600, 0, 90 * 86_400)?,
            grace: env.seconds("RECONCILE_GRACE_SECONDS", DEFAULT_GRACE_SECONDS, 0, 86_400)?,
            publish_rate: env.number(
                "RECONCILE_PUBLISH_RATE",
                crate::publish::DEFAULT_RATE,
                0.01,
                10_000.0,
            )?,
            list_rate: env.number("LIST_USERS_RPS", DEFAULT_LIST_RATE, 0.01, MAX_LIST_RATE)?,
            statuses: parse_statuses(&statuses).map_err(|why| ConfigError::Invalid {
                name: "RECONCILE_STATUSES",
                value: statuses.clone(),
                why,
            })?,
            store: StoreSetting::from_reader(env)?,
        })
    }

    /// The sweep this configuration runs.
    pub fn sweep(&self, region: &str) -> SweepConfig {
        SweepConfig {
            user_pool_id: self.user_pool_id.clone(),
            region: region.to_owned(),
            statuses: self.statuses.clone(),
            origin: Origin::Reconciliation,
            target: Target::EventBridge {
                bus: self.bus.clone(),
                source: self.source.clone(),
            },
            publish_rate: Some(self.publish_rate),
            list_rate: self.list_rate,
            overlap: Some(self.overlap),
            grace: self.grace,
            created_since: None,
            republish: false,
        }
    }
}

/// `RECONCILE_GRACE_SECONDS` unset: a minute, far longer than a sign-up takes to become a
/// profile (docs/benchmarks.md), far shorter than the overlap, so the next pass sees the user.
pub const DEFAULT_GRACE_SECONDS: u64 = 60;

/// The most `LIST_USERS_RPS` takes: Cognito's UserList quota (the category of `ListUsers`),
/// 30 requests per second per account and Region by default and not adjustable; more would
/// only be throttled.
pub const MAX_LIST_RATE: f64 = 30.0;

/// `LIST_USERS_RPS` unset: `ListUsers` calls per second (300 users/s).
pub const DEFAULT_LIST_RATE: f64 = 5.0;

#[cfg(test)]
mod tests {
    use super::*;
    use uc_runtime::env::from_pairs;

    #[test]
    fn statuses_are_checked_and_any_case() {
        assert_eq!(
            parse_statuses("confirmed, Force_Change_Password,CONFIRMED").unwrap(),
            ["CONFIRMED", "FORCE_CHANGE_PASSWORD"]
        );
        assert!(parse_statuses("CONFIRMD").unwrap_err().contains("CONFIRMD"));
        assert!(parse_statuses(" , ").is_err());
    }

    #[test]
    fn configuration_has_defaults_and_refuses_nonsense() {
        let base = [
            ("USER_POOL_ID", "eu-west-1_abc"),
            ("EVENT_BUS_NAME", "bus"),
            ("RECONCILE_WATERMARK_PARAMETER", "/uc/reconciler/state"),
            ("APPSYNC_GRAPHQL_URL", "https://api.example/graphql"),
        ];
        let config = ReconcileConfig::from_env(&from_pairs(base)).unwrap();
        assert_eq!(config.overlap, Duration::from_secs(3_600));
        assert_eq!(config.publish_rate, 50.0);
        assert_eq!(config.list_rate, 5.0);
        assert_eq!(config.statuses, ["CONFIRMED", "EXTERNAL_PROVIDER"]);
        assert_eq!(config.source, DEFAULT_SOURCE);
        assert_eq!(config.grace, Duration::from_secs(60));
        assert!(matches!(config.store, StoreSetting::AppSync(_)));
        let mut dynamodb = base.to_vec();
        dynamodb.extend([
            ("PROFILE_STORE", "dynamodb"),
            ("PROFILE_TABLE", "UserProfile-x-dev"),
        ]);
        let config = ReconcileConfig::from_env(&from_pairs(dynamodb)).unwrap();
        assert!(
            matches!(&config.store, StoreSetting::DynamoDb(table) if table.name == "UserProfile-x-dev")
        );
        for (name, value) in [
            ("RECONCILE_PUBLISH_RATE", "0"),
            ("RECONCILE_PUBLISH_RATE", "NaN"),
            ("RECONCILE_PUBLISH_RATE", "inf"),
            ("LIST_USERS_RPS", "-1"),
            ("RECONCILE_OVERLAP_SECONDS", "soon"),
            ("RECONCILE_STATUSES", "ACTIVE"),
            ("RECONCILE_GRACE_SECONDS", "-5"),
            ("PROFILE_STORE", "postgres"),
        ] {
            let mut pairs: Vec<(&str, &str)> = base.to_vec();
            pairs.push((name, value));
            assert!(
                ReconcileConfig::from_env(&from_pairs(pairs)).is_err(),
                "{name}={value}"
            );
        }
        assert!(ReconcileConfig::from_env(&from_pairs([("USER_POOL_ID", "p")])).is_err());
    }
}
