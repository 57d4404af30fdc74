//! The user lifecycle beyond confirmation (issue 22): what the worker does with Cognito's
//! CloudTrail-recorded calls, and the erasure a sweep asks for. Nothing is acted on before the
//! configured pool is asked ([`PoolDirectory`]): a deletion removes the profile only when the
//! user is really gone, then publishes `UserDeleted` (and `ProfileDeleted` where profiles are
//! announced); an administrator's call that made a counted account publishes `UserConfirmed`
//! for it when it has no profile yet, so the usual path creates it and the user is published
//! once. Ports only: the store, the directory and the bus are the caller's adapters.

use chrono::{DateTime, Utc};
use tokio::time::Instant;
use uc_runtime::Failure;
use uc_schemas::{
    CognitoApiCall, DETAIL_TYPE, DetectedBy, LifecycleCall, Origin, PROFILE_DELETED_DETAIL_TYPE,
    ProfileDeleted, USER_DELETED_DETAIL_TYPE, UserConfirmed, UserDeleted,
};

use crate::bus::{BusEntry, EventSink};
use crate::pool_users::{PoolDirectory, PoolUser};
use crate::store::{ProfileStore, Removal};

/// What the lifecycle needs to know about the deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecycleSettings {
    /// The pools whose users have profiles (`USER_POOL_ID`).
    pub pools: Vec<String>,
    /// Counted account statuses (`RECONCILE_STATUSES`).
    pub statuses: Vec<String>,
    /// The region `UserConfirmed` events name.
    pub region: String,
    /// Publish `ProfileDeleted` next to `UserDeleted` (`PROFILE_CREATED_EVENTS=true`).
    pub announce_profiles: bool,
}

/// A call handled to the end: the message is settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// The user is gone: `UserDeleted` published, after the profile was removed (or found
    /// absent).
    Erased { profile_removed: bool },
    /// An administrator's call made a counted account without a profile: `UserConfirmed`
    /// published.
    Confirmed,
    /// Nothing to do, with why (a stable code).
    Ignored(&'static str),
}

impl Handled {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Erased {
                profile_removed: true,
            } => "ProfileRemoved",
            Self::Erased {
                profile_removed: false,
            } => "UserDeletedNoProfile",
            Self::Confirmed => "UserConfirmedPublished",
            Self::Ignored(reason) => reason,
        }
    }
}

/// Why a call was not handled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LifecycleFailure {
    /// The record says deleted, the pool says otherwise: nothing is deleted; the message is
    /// kept (DLQ) for a person to look at.
    #[error("the user still exists in pool {pool}: deletion refused")]
    UserStillExists { pool: String },
    /// A lookup, the store or the bus failed; [`Failure::is_retryable`] says whether a later
    /// delivery may succeed.
    #[error("{stage}: {failure}")]
    Failed {
        stage: &'static str,
        failure: Failure,
    },
}

impl LifecycleFailure {
    pub fn code(&self) -> String {
        match self {
            Self::UserStillExists { .. } => "UserStillExists".into(),
            Self::Failed { failure, .. } => failure.code.clone(),
        }
    }

    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Failed { failure, .. } if failure.is_retryable())
    }

    fn at(stage: &'static str) -> impl Fn(Failure) -> Self {
        move |failure| Self::Failed { stage, failure }
    }
}

/// The lifecycle with its directory and its bus.
pub struct Lifecycle<P, B> {
    users: P,
    bus: B,
    settings: LifecycleSettings,
}

/// Where to look for a user a record is about: the pool it names when that is one of ours,
/// every configured pool when it names none; `None` when it names another.
pub fn pools_to_search<'a>(pools: &'a [String], named: Option<&str>) -> Option<Vec<&'a str>> {
    match named {
        Some(named) => pools
            .iter()
            .find(|pool| *pool == named)
            .map(|pool| vec![pool.as_str()]),
        None => Some(pools.iter().map(String::as_str).collect()),
    }
}

impl<P: PoolDirectory, B: EventSink> Lifecycle<P, B> {
    pub fn new(users: P, bus: B, settings: LifecycleSettings) -> Self {
        Self {
            users,
            bus,
            settings,
        }
    }

    pub fn settings(&self) -> &LifecycleSettings {
        &self.settings
    }

    /// Acts on one CloudTrail-recorded call.
    pub async fn handle<S: ProfileStore>(
        &self,
        store: &S,
        call: &CognitoApiCall,
        deadline: Option<Instant>,
    ) -> Result<Handled, LifecycleFailure> {
        if call.error_code.is_some() {
            return Ok(Handled::Ignored("CallFailed"));
        }
        let Some(sub) = call.sub.as_deref() else {
            return Ok(Handled::Ignored("NoSub"));
        };
        let Some(pools) = pools_to_search(&self.settings.pools, call.user_pool_id.as_deref())
        else {
            return Ok(Handled::Ignored("OtherPool"));
        };
        if call.call.is_deletion() {
            let deleted_at = call.event_time.unwrap_or_else(Utc::now);
            let named = call.user_pool_id.as_deref();
            return self
                .erase_in(
                    store,
                    sub,
                    &pools,
                    named,
                    DetectedBy::CloudTrail,
                    deleted_at,
                    deadline,
                )
                .await;
        }
        // AdminCreateUser makes a FORCE_CHANGE_PASSWORD account: unless that status counts, the
        // call that activates it (AdminSetUserPassword) is the one to act on, and acting on
        // both, moments apart, would publish the user twice. No lookup spent on it either.
        if call.call == LifecycleCall::AdminCreateUser
            && !self
                .settings
                .statuses
                .iter()
                .any(|s| s == "FORCE_CHANGE_PASSWORD")
        {
            return Ok(Handled::Ignored("NotCounted"));
        }
        let Some(user) = self.find(&pools, sub, deadline).await? else {
            return Ok(Handled::Ignored("UserGone"));
        };
        if !self.settings.statuses.contains(&user.status) {
            return Ok(Handled::Ignored("NotCounted"));
        }
        if store
            .exists(sub, deadline)
            .await
            .map_err(LifecycleFailure::at("profile read"))?
        {
            return Ok(Handled::Ignored("HasProfile"));
        }
        let Some(event) = self.user_confirmed(&user) else {
            return Ok(Handled::Ignored("OutOfContract"));
        };
        self.publish(vec![BusEntry::new(DETAIL_TYPE, &event)], deadline)
            .await?;
        Ok(Handled::Confirmed)
    }

    /// Erases `sub` for a sweep that found their profile orphaned: the same checks and the same
    /// events as for a CloudTrail record, `detectedBy: sweep`.
    pub async fn erase<S: ProfileStore>(
        &self,
        store: &S,
        sub: &str,
        deadline: Option<Instant>,
    ) -> Result<Handled, LifecycleFailure> {
        let pools: Vec<&str> = self.settings.pools.iter().map(String::as_str).collect();
        self.erase_in(
            store,
            sub,
            &pools,
            None,
            DetectedBy::Sweep,
            Utc::now(),
            deadline,
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn erase_in<S: ProfileStore>(
        &self,
        store: &S,
        sub: &str,
        pools: &[&str],
        named: Option<&str>,
        detected_by: DetectedBy,
        deleted_at: DateTime<Utc>,
        deadline: Option<Instant>,
    ) -> Result<Handled, LifecycleFailure> {
        if let Some(user) = self.find(pools, sub, deadline).await? {
            return Err(LifecycleFailure::UserStillExists {
                pool: user.user_pool_id,
            });
        }
        let removal = store
            .remove(sub, deadline)
            .await
            .map_err(LifecycleFailure::at("profile removal"))?;
        let removed = removal == Removal::Removed;
        let pool = named
            .map(str::to_owned)
            .or_else(|| match self.settings.pools.as_slice() {
                [only] => Some(only.clone()),
                _ => None,
            });
        let user = UserDeleted::new(pool, sub, deleted_at, detected_by, removed);
        let mut entries = vec![BusEntry::new(USER_DELETED_DETAIL_TYPE, &user)];
        if removed && self.settings.announce_profiles {
            let profile = ProfileDeleted::new(&user, Utc::now(), store.kind());
            entries.push(BusEntry::new(PROFILE_DELETED_DETAIL_TYPE, &profile));
        }
        self.publish(entries, deadline).await?;
        Ok(Handled::Erased {
            profile_removed: removed,
        })
    }

    /// The user with `sub` in the first of `pools` that has them.
    async fn find(
        &self,
        pools: &[&str],
        sub: &str,
        deadline: Option<Instant>,
    ) -> Result<Option<PoolUser>, LifecycleFailure> {
        for pool in pools {
            if let Some(user) = self
                .users
                .find(pool, sub, deadline)
                .await
                .map_err(LifecycleFailure::at("ListUsers"))?
            {
                return Ok(Some(user));
            }
        }
        Ok(None)
    }

    /// The `UserConfirmed` a sweep would publish for `user`; `None` (logged) when it would break
    /// the contract: what we publish validates.
    fn user_confirmed(&self, user: &PoolUser) -> Option<UserConfirmed> {
        let event = UserConfirmed::new(
            &user.user_pool_id,
            user.sub.clone(),
            &user.username,
            user.email.clone(),
            user.email_verified,
            None,
            user.created.unwrap_or_else(Utc::now),
            &self.settings.region,
            Origin::Reconciliation,
        );
        match event.validate() {
            Ok(()) => Some(event),
            Err(violation) => {
                tracing::warn!(sub = %user.sub, violation = %violation, "the user's UserConfirmed would break the contract; not published");
                None
            }
        }
    }

    async fn publish(
        &self,
        entries: Vec<BusEntry>,
        deadline: Option<Instant>,
    ) -> Result<(), LifecycleFailure> {
        match self
            .bus
            .publish(&entries, deadline)
            .await
            .into_iter()
            .next()
        {
            None => Ok(()),
            Some((_, failure)) => Err(LifecycleFailure::Failed {
                stage: "PutEvents",
                failure,
            }),
        }
    }
}

#[cfg(test)]
mod tests;
