//! The `UserDeleted` v1 detail: the pipeline saw a user leave the pool (CloudTrail's record of
//! the deletion, verified against the pool, or a sweep that found the user's profile orphaned)
//! and erased the profile. For every consumer holding the user's data under GDPR-style duties.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The EventBridge `detail-type` of `UserDeleted` events (same bus and `source` as
/// `UserConfirmed`).
pub const USER_DELETED_DETAIL_TYPE: &str = "UserDeleted";

/// The major version of this contract, versioned independently of the others.
pub const USER_DELETED_SCHEMA_VERSION: &str = "1";

/// The contract as JSON Schema (Draft 4, as the EventBridge registry takes it).
pub const USER_DELETED_JSON_SCHEMA: &str = include_str!("../json/user-deleted.v1.schema.json");

/// Namespace of the UUIDv5 ids (fixed, random: never change it).
pub const USER_DELETED_EVENT_ID_NAMESPACE: Uuid =
    Uuid::from_u128(0x7c1e_2f9a_4b3d_4e58_9a61_0d2c_5be4_f813);

/// The deterministic id of `sub`'s deletion: every publication (a repeated CloudTrail record,
/// a sweep after the event) carries the same id. The `sub` alone: Cognito subs are UUIDs
/// unique across pools, and a self-service deletion's record may not name the pool.
pub fn user_deleted_event_id(sub: &str) -> Uuid {
    Uuid::new_v5(&USER_DELETED_EVENT_ID_NAMESPACE, sub.as_bytes())
}

/// How the pipeline learnt of the deletion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DetectedBy {
    /// CloudTrail's record of `AdminDeleteUser` or `DeleteUser`, on the default bus.
    CloudTrail,
    /// A sweep that found the user's profile without its user.
    Sweep,
}

/// The `detail` of a `UserDeleted` event, version 1. No PII: the `sub` is all a consumer
/// needs to find and erase what it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserDeleted {
    pub schema_version: String,
    pub event_id: Uuid,
    /// The pool the user left; absent when the record named none and the deployment serves
    /// several pools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_pool_id: Option<String>,
    pub sub: String,
    /// When the user was deleted (CloudTrail's `eventTime`), or when a sweep found them gone.
    pub deleted_at: DateTime<Utc>,
    pub detected_by: DetectedBy,
    /// Whether this publication followed the removal of a profile (`false`: there was none,
    /// e.g. a repeated event or a user who never got one).
    pub profile_deleted: bool,
}

impl UserDeleted {
    pub fn new(
        user_pool_id: Option<String>,
        sub: impl Into<String>,
        deleted_at: DateTime<Utc>,
        detected_by: DetectedBy,
        profile_deleted: bool,
    ) -> Self {
        let sub = sub.into();
        Self {
            schema_version: USER_DELETED_SCHEMA_VERSION.to_owned(),
            event_id: user_deleted_event_id(&sub),
            user_pool_id,
            sub,
            deleted_at,
            detected_by,
            profile_deleted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_id_is_deterministic_and_not_another_contracts() {
        let a = user_deleted_event_id("1111");
        assert_eq!(a, user_deleted_event_id("1111"));
        assert_ne!(a, user_deleted_event_id("2222"));
        assert_ne!(a, crate::event_id("p", "1111"));
        assert_eq!(a.get_version_num(), 5);
    }

    #[test]
    fn an_unknown_pool_is_left_out() {
        let event = UserDeleted::new(
            None,
            "s",
            chrono::DateTime::UNIX_EPOCH,
            DetectedBy::Sweep,
            true,
        );
        let json = serde_json::to_value(&event).unwrap();
        assert!(json.get("userPoolId").is_none(), "{json}");
        assert_eq!(json["detectedBy"], "sweep");
    }
}
