//! Finding a user by `sub` in the configured pools: what the lifecycle asks before it acts on
//! a CloudTrail record (is the user really gone? is their account counted?). `ListUsers` with
//! a `sub` filter — the only lookup by `sub` Cognito offers — paced under the UserList quota
//! it shares with the reconciler, retried with the one runner. The port ([`PoolDirectory`])
//! keeps the lifecycle's decisions free of Cognito types.

use std::future::Future;
use std::time::Duration;

use aws_sdk_cognitoidentityprovider::types::UserType;
use tokio::time::Instant;
use uc_runtime::aws::classify_sdk_error;
use uc_runtime::{Failure, GaveUp, Pacer, RetryPolicy};

/// A user as the lifecycle needs them: status and what a `UserConfirmed` carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolUser {
    pub user_pool_id: String,
    pub sub: String,
    pub username: String,
    /// Cognito's account status (`CONFIRMED`, `FORCE_CHANGE_PASSWORD`, ...).
    pub status: String,
    pub email: Option<String>,
    pub email_verified: Option<bool>,
    pub created: Option<chrono::DateTime<chrono::Utc>>,
}

/// Looks users up by `sub`.
pub trait PoolDirectory: Send + Sync {
    /// The user with `sub` in `user_pool_id`, or `None` when the pool has no such user.
    fn find(
        &self,
        user_pool_id: &str,
        sub: &str,
        deadline: Option<Instant>,
    ) -> impl Future<Output = Result<Option<PoolUser>, Failure>> + Send;
}

/// `ListUsers` filtered on `sub`, paced across the process.
pub struct CognitoPoolUsers {
    client: aws_sdk_cognitoidentityprovider::Client,
    pacer: Pacer,
    retry: RetryPolicy,
}

impl CognitoPoolUsers {
    pub fn new(client: aws_sdk_cognitoidentityprovider::Client, per_second: u32) -> Self {
        Self {
            client,
            pacer: Pacer::per_second(per_second),
            retry: RetryPolicy {
                max_attempts: 4,
                min_delay: Duration::from_millis(200),
                max_delay: Duration::from_secs(2),
                min_attempt_time: Duration::from_millis(100),
            },
        }
    }
}

/// The `ListUsers` filter that finds `sub`. A `sub` is a lowercase UUID by the time it gets
/// here (the parser drops anything else), so it needs no escaping.
pub fn sub_filter(sub: &str) -> String {
    format!("sub = \"{sub}\"")
}

/// The lifecycle's view of one listed user.
pub fn pool_user(user_pool_id: &str, user: &UserType) -> Option<PoolUser> {
    let attribute = |name: &str| {
        user.attributes()
            .iter()
            .find(|a| a.name() == name)
            .and_then(|a| a.value())
            .map(str::to_owned)
    };
    Some(PoolUser {
        user_pool_id: user_pool_id.to_owned(),
        sub: attribute("sub")?,
        username: user.username()?.to_owned(),
        status: user
            .user_status()
            .map(|s| s.as_str().to_owned())
            .unwrap_or_else(|| "UNKNOWN".into()),
        email: attribute("email"),
        email_verified: attribute("email_verified").map(|v| v.eq_ignore_ascii_case("true")),
        created: user
            .user_create_date()
            .and_then(|d| chrono::DateTime::from_timestamp(d.secs(), d.subsec_nanos())),
    })
}

impl PoolDirectory for CognitoPoolUsers {
    async fn find(
        &self,
        user_pool_id: &str,
        sub: &str,
        deadline: Option<Instant>,
    ) -> Result<Option<PoolUser>, Failure> {
        let attempt = |_| async {
            self.pacer.wait().await;
            let listed = self
                .client
                .list_users()
                .user_pool_id(user_pool_id)
                .filter(sub_filter(sub))
                .limit(2)
                .send()
                .await
                .map_err(|e| classify_sdk_error(&e))?;
            // The filter is an equality on an immutable, unique attribute: an exact match or
            // nothing (checked, not assumed).
            Ok::<_, Failure>(
                listed
                    .users()
                    .iter()
                    .filter_map(|user| pool_user(user_pool_id, user))
                    .find(|user| user.sub == sub),
            )
        };
        self.retry
            .run(deadline, attempt, |_, _| {})
            .await
            .map(|done| done.value)
            .map_err(GaveUp::into_failure)
    }
}
