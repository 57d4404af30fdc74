//! The `UserConfirmed` v1 detail: what a consumer may rely on, and how its id is derived.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The EventBridge `detail-type` of every event this pipeline publishes.
pub const DETAIL_TYPE: &str = "UserConfirmed";

/// The default EventBridge `source`. Deployments may set their own (the emitter's
/// `EVENT_SOURCE`); it must not start with `aws.`, which AWS reserves.
pub const DEFAULT_SOURCE: &str = "userconfirmed.cognito";

/// The major version of the contract. Additive, optional fields keep it; anything else bumps it.
pub const SCHEMA_VERSION: &str = "1";

/// The contract as JSON Schema (Draft 4, so it uploads unchanged to the EventBridge registry).
pub const JSON_SCHEMA: &str = include_str!("../json/user-confirmed.v1.schema.json");

/// Namespace of the UUIDv5 event ids (a fixed, random UUID: never change it, or consumers'
/// de-duplication across versions breaks).
pub const EVENT_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6f1b_7c1e_5a4d_4c1f_9e0b_2d7a_3c55_e201);

/// The deterministic id of the confirmation of `sub` in `user_pool_id`: Cognito's retries of the
/// trigger, SQS redeliveries and back-fills of the same user all carry the same id.
pub fn event_id(user_pool_id: &str, sub: &str) -> Uuid {
    Uuid::new_v5(
        &EVENT_ID_NAMESPACE,
        format!("{user_pool_id}:{sub}").as_bytes(),
    )
}

/// The EventBridge rule pattern that selects `UserConfirmed` events from `source`: the same
/// pattern in the template, the local stack and every consumer's rule.
pub fn event_pattern(source: &str) -> serde_json::Value {
    serde_json::json!({ "source": [source], "detail-type": [DETAIL_TYPE] })
}

/// Where an event came from, so consumers can tell a live sign-up from a back-fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Origin {
    /// Cognito's PostConfirmation trigger (self sign-up or `AdminConfirmSignUp`).
    #[default]
    PostConfirmation,
    /// The ops CLI's `backfill`, for users the trigger never saw.
    Backfill,
}

/// The `detail` of a `UserConfirmed` event, version 1.
///
/// Unknown fields are ignored when reading, so consumers survive additive changes; the JSON
/// Schema is strict, so producers cannot add one without changing the contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserConfirmed {
    pub schema_version: String,
    pub event_id: Uuid,
    pub user_pool_id: String,
    /// Cognito's immutable user id: the profile's id.
    pub sub: String,
    /// Cognito's `userName` (a UUID when email is the sign-in alias).
    pub username: String,
    /// Absent for phone-only pools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
    /// The app client that confirmed the user; absent for back-fills.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    pub confirmed_at: DateTime<Utc>,
    pub region: String,
    #[serde(default)]
    pub origin: Origin,
}

impl UserConfirmed {
    /// Builds a v1 event, deriving `eventId` from the pool and `sub`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        user_pool_id: impl Into<String>,
        sub: impl Into<String>,
        username: impl Into<String>,
        email: Option<String>,
        email_verified: Option<bool>,
        client_id: Option<String>,
        confirmed_at: DateTime<Utc>,
        region: impl Into<String>,
        origin: Origin,
    ) -> Self {
        let user_pool_id = user_pool_id.into();
        let sub = sub.into();
        Self {
            schema_version: SCHEMA_VERSION.to_owned(),
            event_id: event_id(&user_pool_id, &sub),
            user_pool_id,
            sub,
            username: username.into(),
            email,
            email_verified,
            client_id,
            confirmed_at,
            region: region.into(),
            origin,
        }
    }

    /// A builder for tests and tools: `username` defaults to `sub`, `region` to the pool id's
    /// region prefix, `confirmedAt` to now, origin to `postConfirmation`, the rest to absent.
    pub fn builder(
        user_pool_id: impl Into<String>,
        sub: impl Into<String>,
    ) -> UserConfirmedBuilder {
        let user_pool_id = user_pool_id.into();
        let sub = sub.into();
        let region = user_pool_id
            .split_once('_')
            .map(|(region, _)| region.to_owned())
            .unwrap_or_default();
        UserConfirmedBuilder(Self::new(
            user_pool_id,
            sub.clone(),
            sub,
            None,
            None,
            None,
            Utc::now(),
            region,
            Origin::PostConfirmation,
        ))
    }

    /// `"<sub>::<username>"`: the owner value Amplify's `ownerDefinedIn` rules compare against.
    pub fn profile_owner(&self) -> String {
        format!("{}::{}", self.sub, self.username)
    }
}

/// Builds a [`UserConfirmed`] field by field; see [`UserConfirmed::builder`].
#[derive(Debug, Clone)]
pub struct UserConfirmedBuilder(UserConfirmed);

impl UserConfirmedBuilder {
    pub fn username(mut self, username: impl Into<String>) -> Self {
        self.0.username = username.into();
        self
    }
    pub fn email(mut self, email: impl Into<String>) -> Self {
        self.0.email = Some(email.into());
        self
    }
    pub fn email_verified(mut self, verified: bool) -> Self {
        self.0.email_verified = Some(verified);
        self
    }
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.0.client_id = Some(client_id.into());
        self
    }
    pub fn confirmed_at(mut self, at: DateTime<Utc>) -> Self {
        self.0.confirmed_at = at;
        self
    }
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.0.region = region.into();
        self
    }
    pub fn origin(mut self, origin: Origin) -> Self {
        self.0.origin = origin;
        self
    }
    pub fn build(self) -> UserConfirmed {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_id_is_deterministic_and_pool_scoped() {
        let a = event_id("eu-west-1_abc", "1111");
        assert_eq!(a, event_id("eu-west-1_abc", "1111"));
        assert_ne!(a, event_id("eu-west-1_xyz", "1111"));
        assert_ne!(a, event_id("eu-west-1_abc", "2222"));
        assert_eq!(a.get_version_num(), 5);
    }

    #[test]
    fn the_builder_fills_defaults_and_derives_the_id() {
        let event = UserConfirmed::builder("eu-west-1_abc", "s-1")
            .email("e")
            .build();
        assert_eq!(event.event_id, event_id("eu-west-1_abc", "s-1"));
        assert_eq!(
            (event.username.as_str(), event.region.as_str()),
            ("s-1", "eu-west-1")
        );
        assert_eq!(event.email.as_deref(), Some("e"));
        assert_eq!(event.origin, Origin::PostConfirmation);
    }

    #[test]
    fn origin_defaults_to_post_confirmation_when_absent() {
        let json = serde_json::json!({
            "schemaVersion": "1",
            "eventId": event_id("p", "s"),
            "userPoolId": "p", "sub": "s", "username": "u",
            "confirmedAt": "2026-01-02T03:04:05Z", "region": "eu-west-1"
        });
        let ev: UserConfirmed = serde_json::from_value(json).unwrap();
        assert_eq!(ev.origin, Origin::PostConfirmation);
        assert_eq!(ev.email, None);
    }
}
