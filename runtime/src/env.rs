//! Configuration from environment variables, read once at start-up: typed, range-checked, and
//! with errors that name the variable at fault.

use std::fmt::Display;
use std::str::FromStr;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{0} is required but not set")]
    Missing(&'static str),
    #[error("{name}={value:?} is not valid: {why}")]
    Invalid {
        name: &'static str,
        value: String,
        why: String,
    },
}

/// Reads variables through a lookup function: the process environment, or a map in tests.
pub struct EnvReader<F> {
    lookup: F,
}

impl EnvReader<fn(&str) -> Option<String>> {
    /// The process environment.
    pub fn process() -> Self {
        Self {
            lookup: |name| std::env::var(name).ok(),
        }
    }
}

/// A reader over fixed `(name, value)` pairs instead of the process environment: tests, and
/// configuration read from a file.
pub fn from_pairs<K: Into<String>, V: Into<String>>(
    pairs: impl IntoIterator<Item = (K, V)>,
) -> EnvReader<impl Fn(&str) -> Option<String>> {
    let map: std::collections::HashMap<String, String> = pairs
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
    EnvReader::new(move |name: &str| map.get(name).cloned())
}

impl<F: Fn(&str) -> Option<String>> EnvReader<F> {
    pub fn new(lookup: F) -> Self {
        Self { lookup }
    }

    /// The trimmed value, or `None` when unset or blank.
    pub fn optional(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    pub fn required(&self, name: &'static str) -> Result<String, ConfigError> {
        self.optional(name).ok_or(ConfigError::Missing(name))
    }

    /// A number in `min..=max`, `default` when unset.
    pub fn number<T>(
        &self,
        name: &'static str,
        default: T,
        min: T,
        max: T,
    ) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + Display + Copy,
    {
        let Some(raw) = self.optional(name) else {
            return Ok(default);
        };
        match raw.parse::<T>() {
            Ok(n) if n >= min && n <= max => Ok(n),
            _ => Err(ConfigError::Invalid {
                name,
                value: raw,
                why: format!("must be a number from {min} to {max}"),
            }),
        }
    }

    /// Milliseconds in `min..=max`, `default` when unset.
    pub fn millis(
        &self,
        name: &'static str,
        default: u64,
        min: u64,
        max: u64,
    ) -> Result<Duration, ConfigError> {
        self.number(name, default, min, max)
            .map(Duration::from_millis)
    }

    /// A whole number of seconds, with the same bounds rules as [`EnvReader::number`].
    pub fn seconds(
        &self,
        name: &'static str,
        default: u64,
        min: u64,
        max: u64,
    ) -> Result<Duration, ConfigError> {
        self.number(name, default, min, max)
            .map(Duration::from_secs)
    }

    /// One of `choices`, `default` when unset.
    pub fn choice(
        &self,
        name: &'static str,
        default: &'static str,
        choices: &[&'static str],
    ) -> Result<&'static str, ConfigError> {
        let Some(raw) = self.optional(name) else {
            return Ok(default);
        };
        choices
            .iter()
            .copied()
            .find(|c| *c == raw)
            .ok_or_else(|| ConfigError::Invalid {
                name,
                value: raw,
                why: format!("must be one of: {}", choices.join(", ")),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(
        pairs: &'static [(&'static str, &'static str)],
    ) -> EnvReader<impl Fn(&str) -> Option<String>> {
        from_pairs(pairs.iter().copied())
    }

    #[test]
    fn reads_and_checks_values() {
        let env = reader(&[
            ("A", " x "),
            ("BLANK", "  "),
            ("N", "7"),
            ("BAD", "seven"),
            ("BIG", "99"),
            ("C", "two"),
        ]);
        assert_eq!(env.optional("A").as_deref(), Some("x"));
        assert_eq!(env.optional("BLANK"), None);
        assert_eq!(
            env.required("MISSING"),
            Err(ConfigError::Missing("MISSING"))
        );
        assert_eq!(env.number("N", 1u32, 1, 10), Ok(7));
        assert_eq!(env.number("UNSET", 3u32, 1, 10), Ok(3));
        assert_eq!(env.millis("N", 1, 1, 10), Ok(Duration::from_millis(7)));
        for name in ["BAD", "BIG"] {
            let err = env.number(name, 1u32, 1, 10).unwrap_err();
            assert!(err.to_string().starts_with(name), "{err}");
        }
        assert_eq!(env.choice("UNSET", "one", &["one", "two"]), Ok("one"));
        assert_eq!(env.choice("C", "one", &["one", "two"]), Ok("two"));
        assert!(
            env.choice("A", "one", &["one", "two"])
                .unwrap_err()
                .to_string()
                .contains("one, two")
        );
    }
}
