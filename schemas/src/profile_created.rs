//! The `ProfileCreated` v1 detail: what the worker publishes after it created a profile, what a
//! consumer (welcome e-mail, CRM sync) may rely on, and how its id is derived.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{Origin, UserConfirmed};

/// The EventBridge `detail-type` of `ProfileCreated` events. They share the bus and the
/// deployment's configured `source` with `UserConfirmed`; the detail-type alone tells them apart,
/// so the worker's own rule (which names `UserConfirmed`) never feeds them back to it.
pub const PROFILE_CREATED_DETAIL_TYPE: &str = "ProfileCreated";

/// The major version of this contract, versioned independently of `UserConfirmed`'s.
pub const PROFILE_CREATED_SCHEMA_VERSION: &str = "1";

/// The contract as JSON Schema (Draft 4, so it uploads unchanged to the EventBridge registry).
pub const PROFILE_CREATED_JSON_SCHEMA: &str =
    include_str!("../json/profile-created.v1.schema.json");

/// Namespace of the UUIDv5 ids (a fixed, random UUID: never change it, or consumers'
/// de-duplication across versions breaks). Distinct from `UserConfirmed`'s so the two events
/// of one user never share an id: a consumer de-duplicating both in one table stays correct.
pub const PROFILE_CREATED_EVENT_ID_NAMESPACE: Uuid =
    Uuid::from_u128(0x240d_5843_5629_48d0_8002_1443_2f3a_97e4);

/// The deterministic id of the creation of `sub`'s profile in `user_pool_id`: every publication
/// for one user's profile (PutEvents retries, a replayed message) carries the same id.
pub fn profile_created_event_id(user_pool_id: &str, sub: &str) -> Uuid {
    Uuid::new_v5(
        &PROFILE_CREATED_EVENT_ID_NAMESPACE,
        format!("{user_pool_id}:{sub}").as_bytes(),
    )
}

/// The EventBridge rule pattern that selects `ProfileCreated` events from `source` (the
/// deployment's `EVENT_SOURCE`, `userconfirmed.cognito` by default).
pub fn profile_created_event_pattern(source: &str) -> serde_json::Value {
    serde_json::json!({ "source": [source], "detail-type": [PROFILE_CREATED_DETAIL_TYPE] })
}

/// Where the profile was written, so a consumer knows which API serves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProfileStore {
    /// The AppSync `createUserProfile` mutation (the worker's path today).
    Appsync,
    /// The DynamoDB table directly, without AppSync.
    Dynamodb,
}

/// The `detail` of a `ProfileCreated` event, version 1.
///
/// No email or other PII, unlike `UserConfirmed`: the event reaches consumers that only need to
/// know the profile exists, and those that need more read the profile under its own auth rules.
/// Unknown fields are ignored when reading; the JSON Schema is strict for producers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProfileCreated {
    pub schema_version: String,
    pub event_id: Uuid,
    /// The `UserConfirmed` event the profile was created for.
    pub user_confirmed_event_id: Uuid,
    pub user_pool_id: String,
    pub sub: String,
    /// The id the store returned for the profile (the `sub` with the default mapping).
    pub profile_id: String,
    /// When the store confirmed the creation, by the worker's clock.
    pub created_at: DateTime<Utc>,
    /// Copied from the `UserConfirmed` event (the emitter's clock), so consumers can compute
    /// the lag; for back-fills it is the account's creation time, so no lag is meaningful.
    pub confirmed_at: DateTime<Utc>,
    pub origin: Origin,
    pub store: ProfileStore,
}

impl ProfileCreated {
    /// The event for a profile created for `confirmed`, with `profileId` = `sub` (the worker's
    /// default mapping; [`ProfileCreated::with_profile_id`] for another one).
    ///
    /// The result satisfies the JSON Schema whenever `confirmed` satisfies `UserConfirmed`'s.
    pub fn new(confirmed: &UserConfirmed, created_at: DateTime<Utc>, store: ProfileStore) -> Self {
        Self {
            schema_version: PROFILE_CREATED_SCHEMA_VERSION.to_owned(),
            // Derived, not copied: the id must not depend on which UserConfirmed delivery (or a
            // hand-made replay carrying another eventId) led to the creation.
            event_id: profile_created_event_id(&confirmed.user_pool_id, &confirmed.sub),
            user_confirmed_event_id: confirmed.event_id,
            user_pool_id: confirmed.user_pool_id.clone(),
            sub: confirmed.sub.clone(),
            profile_id: confirmed.sub.clone(),
            created_at,
            confirmed_at: confirmed.confirmed_at,
            origin: confirmed.origin,
            store,
        }
    }

    /// The same event for a store that answered with an id other than the `sub` (a custom
    /// `MUTATION_INPUT` mapping).
    pub fn with_profile_id(mut self, profile_id: impl Into<String>) -> Self {
        self.profile_id = profile_id.into();
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event_id;

    #[test]
    fn event_id_is_deterministic_pool_scoped_and_not_the_user_confirmed_one() {
        let a = profile_created_event_id("eu-west-1_abc", "1111");
        assert_eq!(a, profile_created_event_id("eu-west-1_abc", "1111"));
        assert_ne!(a, profile_created_event_id("eu-west-1_xyz", "1111"));
        assert_ne!(a, profile_created_event_id("eu-west-1_abc", "2222"));
        assert_ne!(a, event_id("eu-west-1_abc", "1111"));
        assert_eq!(a.get_version_num(), 5);
    }

    #[test]
    fn store_is_written_in_lowercase() {
        assert_eq!(
            serde_json::to_value(ProfileStore::Appsync).unwrap(),
            "appsync"
        );
        assert_eq!(
            serde_json::to_value(ProfileStore::Dynamodb).unwrap(),
            "dynamodb"
        );
    }
}
