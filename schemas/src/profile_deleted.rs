//! The `ProfileDeleted` v1 detail: the worker (or a sweep) removed a profile because its user
//! left the pool. Published where `ProfileCreated` is (`PROFILE_CREATED_EVENTS=true`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{ProfileStore, UserDeleted};

pub const PROFILE_DELETED_DETAIL_TYPE: &str = "ProfileDeleted";
pub const PROFILE_DELETED_SCHEMA_VERSION: &str = "1";
pub const PROFILE_DELETED_JSON_SCHEMA: &str =
    include_str!("../json/profile-deleted.v1.schema.json");

/// Namespace of the UUIDv5 ids (fixed, random: never change it).
pub const PROFILE_DELETED_EVENT_ID_NAMESPACE: Uuid =
    Uuid::from_u128(0x3e94_b0c7_1d2a_4f66_8c05_9b7e_a41d_62f0);

pub fn profile_deleted_event_id(sub: &str) -> Uuid {
    Uuid::new_v5(&PROFILE_DELETED_EVENT_ID_NAMESPACE, sub.as_bytes())
}

/// The `detail` of a `ProfileDeleted` event, version 1. No PII.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProfileDeleted {
    pub schema_version: String,
    pub event_id: Uuid,
    /// The `UserDeleted` event the profile was removed for.
    pub user_deleted_event_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_pool_id: Option<String>,
    pub sub: String,
    pub profile_id: String,
    /// When the store confirmed the removal, by the remover's clock.
    pub deleted_at: DateTime<Utc>,
    pub store: ProfileStore,
}

impl ProfileDeleted {
    pub fn new(user: &UserDeleted, deleted_at: DateTime<Utc>, store: ProfileStore) -> Self {
        Self {
            schema_version: PROFILE_DELETED_SCHEMA_VERSION.to_owned(),
            event_id: profile_deleted_event_id(&user.sub),
            user_deleted_event_id: user.event_id,
            user_pool_id: user.user_pool_id.clone(),
            sub: user.sub.clone(),
            profile_id: user.sub.clone(),
            deleted_at,
            store,
        }
    }
}
