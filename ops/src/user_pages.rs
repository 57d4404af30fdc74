//! Paging through a pool's users: one `ListUsers` page at a time, paced against Cognito's
//! per-account quota and retried with the shared runner. The audit and reconciliation read the
//! pool through this, so both honour the same pace and the same retry rules.

use std::time::Duration;

use aws_sdk_cognitoidentityprovider::operation::list_users::ListUsersOutput;
use uc_runtime::aws::classify_sdk_error;
use uc_runtime::{Failure, RetryPolicy};

use uc_runtime::Pacer;

/// Users a `ListUsers` page holds at most.
pub const USERS_PER_PAGE: i32 = 60;

/// How each page call of the operations tools is retried (throttling, transient errors):
/// `ListUsers` pages, the sweep's store reads, the audit's profile pages.
pub const PAGE_RETRY: RetryPolicy = RetryPolicy {
    max_attempts: 6,
    min_delay: Duration::from_millis(200),
    max_delay: Duration::from_secs(10),
    min_attempt_time: Duration::ZERO,
};

/// A page that could not be read, after the retries the failure allowed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{failure} (after {attempts} attempts)")]
pub struct PageError {
    pub failure: Failure,
    pub attempts: usize,
}

/// The pages of one pool's users, `list_rate` calls per second at most.
pub struct UserPages<'a> {
    cognito: &'a aws_sdk_cognitoidentityprovider::Client,
    user_pool_id: &'a str,
    /// Only these attributes (empty: all of them).
    attributes: &'a [&'a str],
    /// A `ListUsers` filter expression (Cognito takes one attribute per filter).
    filter: Option<String>,
    pacer: Option<Pacer>,
}

impl<'a> UserPages<'a> {
    pub fn new(
        cognito: &'a aws_sdk_cognitoidentityprovider::Client,
        user_pool_id: &'a str,
        attributes: &'a [&'a str],
        list_rate: f64,
    ) -> Self {
        Self {
            cognito,
            user_pool_id,
            attributes,
            filter: None,
            pacer: Pacer::new(list_rate),
        }
    }

    /// Only the users with this `cognito:user_status` (Cognito filters server-side).
    pub fn with_status(mut self, status: &str) -> Self {
        self.filter = Some(format!("cognito:user_status = \"{status}\""));
        self
    }

    /// The page `token` points at (the first page for `None`), after waiting for the pace.
    pub async fn page(&mut self, token: Option<String>) -> Result<ListUsersOutput, PageError> {
        uc_runtime::pace::admit(&self.pacer, 1).await;
        let answer = PAGE_RETRY
            .run(
                None,
                |_| {
                    let mut call = self
                        .cognito
                        .list_users()
                        .user_pool_id(self.user_pool_id)
                        .limit(USERS_PER_PAGE)
                        .set_pagination_token(token.clone())
                        .set_filter(self.filter.clone());
                    for attribute in self.attributes {
                        call = call.attributes_to_get(*attribute);
                    }
                    let call = call.send();
                    async move { call.await.map_err(|e| classify_sdk_error(&e)) }
                },
                |_, _| {},
            )
            .await;
        answer.map(|page| page.value).map_err(|gave_up| {
            let attempts = gave_up.attempts();
            PageError {
                failure: gave_up.into_failure(),
                attempts,
            }
        })
    }
}
