//! The optional strict mode (`VERIFY_USER=cognito`): before a profile is created, the user is
//! looked up in the configured pool with `AdminGetUser` — it must exist, have the event's
//! `sub`, and an account status. Positive answers are cached; calls are paced under Cognito's
//! quota. The port ([`UserDirectory`]) keeps the core free of Cognito types.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use aws_sdk_cognitoidentityprovider::types::UserStatusType;
use tokio::time::Instant;
use uc_runtime::aws::classify_sdk_error;
use uc_runtime::{Failure, Pacer, RetryPolicy};
use uc_schemas::UserConfirmed;

/// Why a user check did not pass.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserCheckFailure {
    #[error("no such user in the pool")]
    UnknownUser,
    #[error("the pool's user of that name has another sub")]
    SubMismatch,
    #[error("the user's account status is {0}")]
    NotConfirmed(String),
    /// The lookup itself failed (throttled past the deadline, access denied, ...).
    #[error("AdminGetUser failed: {0}")]
    Lookup(Failure),
}

impl UserCheckFailure {
    /// The stable reason code (the DLQ's `uc.reason`).
    pub fn code(&self) -> String {
        match self {
            Self::UnknownUser => "UnknownUser".into(),
            Self::SubMismatch => "SubMismatch".into(),
            Self::NotConfirmed(_) => "UserNotConfirmed".into(),
            Self::Lookup(failure) => format!("UserCheck:{}", failure.code),
        }
    }

    /// Whether a later try may pass (only a lookup that failed retryably).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Lookup(f) if f.is_retryable())
    }
}

/// Looks users up.
pub trait UserDirectory: Send + Sync {
    fn check(
        &self,
        event: &UserConfirmed,
        deadline: Option<Instant>,
    ) -> impl Future<Output = Result<(), UserCheckFailure>> + Send;
}

/// Account statuses that mean a usable account (self sign-up, federated, admin-created).
const USABLE: &[&str] = &[
    "CONFIRMED",
    "EXTERNAL_PROVIDER",
    "FORCE_CHANGE_PASSWORD",
    "RESET_REQUIRED",
];

/// Cached positive answers at most; past this the cache starts again (bounded memory).
const CACHE_CAPACITY: usize = 100_000;

/// `AdminGetUser` on one pool, paced and cached.
pub struct CognitoUsers {
    client: aws_sdk_cognitoidentityprovider::Client,
    pacer: Pacer,
    ttl: Duration,
    /// `sub` → when its positive answer expires.
    confirmed: Mutex<HashMap<String, Instant>>,
    retry: RetryPolicy,
}

impl CognitoUsers {
    pub fn new(
        client: aws_sdk_cognitoidentityprovider::Client,
        per_second: u32,
        ttl: Duration,
    ) -> Self {
        Self {
            client,
            pacer: Pacer::per_second(per_second),
            ttl,
            confirmed: Mutex::new(HashMap::new()),
            retry: RetryPolicy {
                max_attempts: 3,
                min_delay: Duration::from_millis(100),
                max_delay: Duration::from_secs(1),
                min_attempt_time: Duration::from_millis(100),
            },
        }
    }

    fn cached(&self, sub: &str) -> bool {
        let cache = self.confirmed.lock().unwrap();
        cache
            .get(sub)
            .is_some_and(|expiry| *expiry > Instant::now())
    }

    fn remember(&self, sub: &str) {
        let mut cache = self.confirmed.lock().unwrap();
        if cache.len() >= CACHE_CAPACITY {
            cache.clear();
        }
        cache.insert(sub.to_owned(), Instant::now() + self.ttl);
    }
}

impl UserDirectory for CognitoUsers {
    async fn check(
        &self,
        event: &UserConfirmed,
        deadline: Option<Instant>,
    ) -> Result<(), UserCheckFailure> {
        if self.cached(&event.sub) {
            return Ok(());
        }
        let attempt = |_| async {
            self.pacer.wait().await;
            let result = self
                .client
                .admin_get_user()
                .user_pool_id(&event.user_pool_id)
                .username(&event.username)
                .send()
                .await;
            match result {
                Ok(user) => Ok(Some(user)),
                Err(error) => {
                    let failure = classify_sdk_error(&error);
                    if failure.code.ends_with("UserNotFoundException") {
                        Ok(None)
                    } else {
                        Err(failure)
                    }
                }
            }
        };
        let user = match self.retry.run(deadline, attempt, |_, _| {}).await {
            Ok(done) => done.value,
            Err(gave_up) => return Err(UserCheckFailure::Lookup(gave_up.into_failure())),
        };
        let Some(user) = user else {
            return Err(UserCheckFailure::UnknownUser);
        };
        let sub = user
            .user_attributes()
            .iter()
            .find(|a| a.name() == "sub")
            .and_then(|a| a.value());
        if sub != Some(event.sub.as_str()) {
            return Err(UserCheckFailure::SubMismatch);
        }
        let status = user
            .user_status()
            .map(UserStatusType::as_str)
            .unwrap_or("UNKNOWN");
        if !USABLE.contains(&status) {
            return Err(UserCheckFailure::NotConfirmed(status.to_owned()));
        }
        self.remember(&event.sub);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable() {
        assert_eq!(UserCheckFailure::UnknownUser.code(), "UnknownUser");
        assert_eq!(
            UserCheckFailure::NotConfirmed("UNCONFIRMED".into()).code(),
            "UserNotConfirmed"
        );
        let throttled = UserCheckFailure::Lookup(Failure::new(
            uc_runtime::FailureKind::THROTTLED,
            "TooManyRequestsException",
            "",
        ));
        assert_eq!(throttled.code(), "UserCheck:TooManyRequestsException");
        assert!(throttled.is_retryable());
        assert!(!UserCheckFailure::SubMismatch.is_retryable());
    }
}
