//! The emitter's configuration: read once at cold start from the environment, validated, with
//! an error that names the variable at fault.

use std::time::Duration;

pub use uc_runtime::ConfigError;
use uc_runtime::EnvReader;

/// What to do when the event cannot be published (nor sent to the fallback queue).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailurePolicy {
    /// Log, count, and return the event to Cognito: the sign-up succeeds, the profile is left
    /// for the back-fill. The user is confirmed either way; failing only shows them an error.
    FailOpen,
    /// Return an error to Cognito, which shows it to the user.
    FailClosed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmitterConfig {
    /// `EVENT_BUS_NAME`: name or ARN of the bus.
    pub event_bus: String,
    /// `EVENT_SOURCE`: the events' `source`.
    pub source: String,
    /// `PUBLISH_BUDGET_MS`: everything (attempts, back-off, fallback) fits in this.
    pub budget: Duration,
    /// `PUBLISH_ATTEMPT_TIMEOUT_MS`: one PutEvents or SendMessage call.
    pub attempt_timeout: Duration,
    /// `CONNECT_TIMEOUT_MS`.
    pub connect_timeout: Duration,
    /// `PUBLISH_MAX_ATTEMPTS`.
    pub max_attempts: usize,
    /// `FAILURE_POLICY`: `fail-open` or `fail-closed`.
    pub failure_policy: FailurePolicy,
    /// `FALLBACK_QUEUE_URL`: the worker's queue, used when PutEvents fails.
    pub fallback_queue_url: Option<String>,
    /// `FALLBACK_RESERVE_MS`: the part of the budget kept for the fallback.
    pub fallback_reserve: Duration,
}

/// Cognito gives up on a trigger after 5 s; stay well below, leaving room for the cold start.
const MAX_BUDGET_MS: u64 = 4000;

impl EmitterConfig {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_reader(&EnvReader::process())
    }

    /// Reads configuration through `env` (the process environment, or a map in tests).
    pub fn from_reader<F: Fn(&str) -> Option<String>>(
        env: &EnvReader<F>,
    ) -> Result<Self, ConfigError> {
        let event_bus = env.required("EVENT_BUS_NAME")?;
        let source = env
            .optional("EVENT_SOURCE")
            .unwrap_or_else(|| uc_schemas::DEFAULT_SOURCE.to_owned());
        if source.starts_with("aws.") {
            return Err(ConfigError::Invalid {
                name: "EVENT_SOURCE",
                value: source,
                why: "sources starting with \"aws.\" are reserved by AWS".into(),
            });
        }
        let budget = env.millis("PUBLISH_BUDGET_MS", 2000, 100, MAX_BUDGET_MS)?;
        let fallback_queue_url = env.optional("FALLBACK_QUEUE_URL");
        let fallback_reserve = env.millis("FALLBACK_RESERVE_MS", 500, 0, MAX_BUDGET_MS)?;
        if fallback_queue_url.is_some() && fallback_reserve >= budget {
            return Err(ConfigError::Invalid {
                name: "FALLBACK_RESERVE_MS",
                value: fallback_reserve.as_millis().to_string(),
                why: format!(
                    "must be less than PUBLISH_BUDGET_MS ({})",
                    budget.as_millis()
                ),
            });
        }
        let failure_policy =
            match env.choice("FAILURE_POLICY", "fail-open", &["fail-open", "fail-closed"])? {
                "fail-closed" => FailurePolicy::FailClosed,
                _ => FailurePolicy::FailOpen,
            };
        Ok(Self {
            event_bus,
            source,
            budget,
            attempt_timeout: env.millis("PUBLISH_ATTEMPT_TIMEOUT_MS", 500, 10, MAX_BUDGET_MS)?,
            connect_timeout: env.millis("CONNECT_TIMEOUT_MS", 250, 10, MAX_BUDGET_MS)?,
            max_attempts: env.number("PUBLISH_MAX_ATTEMPTS", 4, 1, 20)?,
            failure_policy,
            fallback_queue_url,
            fallback_reserve,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    fn config(pairs: &[(&str, &str)]) -> Result<EmitterConfig, ConfigError> {
        EmitterConfig::from_reader(&uc_runtime::env::from_pairs(pairs.iter().copied()))
    }

    #[test]
    fn defaults_need_only_the_bus() {
        let c = config(&[("EVENT_BUS_NAME", "bus")]).unwrap();
        assert_eq!(c.source, uc_schemas::DEFAULT_SOURCE);
        assert_eq!(c.budget, Duration::from_millis(2000));
        assert_eq!(c.failure_policy, FailurePolicy::FailOpen);
        assert_eq!(c.fallback_queue_url, None);
    }

    #[test]
    fn errors_name_the_variable() {
        assert_eq!(
            config(&[]).unwrap_err(),
            ConfigError::Missing("EVENT_BUS_NAME")
        );
        for (name, value) in [
            ("PUBLISH_BUDGET_MS", "lots"),
            ("PUBLISH_BUDGET_MS", "5000"),
            ("FAILURE_POLICY", "fail-sideways"),
            ("EVENT_SOURCE", "aws.cognito"),
            ("PUBLISH_MAX_ATTEMPTS", "0"),
        ] {
            let err = config(&[("EVENT_BUS_NAME", "bus"), (name, value)]).unwrap_err();
            assert!(err.to_string().starts_with(name), "{err}");
        }
        let err = config(&[
            ("EVENT_BUS_NAME", "bus"),
            ("FALLBACK_QUEUE_URL", "http://q"),
            ("PUBLISH_BUDGET_MS", "400"),
            ("FALLBACK_RESERVE_MS", "400"),
        ])
        .unwrap_err();
        assert!(err.to_string().starts_with("FALLBACK_RESERVE_MS"), "{err}");
    }
}
