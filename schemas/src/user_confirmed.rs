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
    /// A reconciliation pass (scheduled, or `uc-ops reconcile`), for users no trigger reported.
    Reconciliation,
}

/// A field outside the contract's limits (the JSON Schema's, enforced by the type).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{field}` {problem}")]
pub struct ContractViolation {
    /// The field's JSON name.
    pub field: &'static str,
    /// What is wrong, without the value (which may be PII).
    pub problem: &'static str,
}

/// The limits the JSON Schema sets, in characters (JSON Schema counts code points).
pub mod limits {
    pub const USER_POOL_ID: usize = 55;
    pub const SUB: usize = 128;
    pub const USERNAME: usize = 128;
    pub const EMAIL: usize = 2048;
    pub const CLIENT_ID: usize = 128;
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

    /// Checks every field against the contract's limits: what the JSON Schema says, plus
    /// `sub` being a Cognito user id (a lowercase UUID), so that `profileOwner`
    /// (`"<sub>::<username>"`) can only split one way. `eventId`'s derivation is checked apart
    /// ([`UserConfirmed::has_derived_event_id`]): a consumer may choose what to do about it.
    pub fn validate(&self) -> Result<(), ContractViolation> {
        let violation = |field, problem| Err(ContractViolation { field, problem });
        let version_ok = self.schema_version.strip_prefix('1').is_some_and(|rest| {
            rest.is_empty()
                || rest.strip_prefix('.').is_some_and(|minor| {
                    !minor.is_empty() && minor.bytes().all(|b| b.is_ascii_digit())
                })
        });
        if !version_ok {
            return violation("schemaVersion", "is not a 1.x version");
        }
        if self.event_id.get_version_num() != 5
            || self.event_id.get_variant() != uuid::Variant::RFC4122
        {
            return violation("eventId", "is not a UUIDv5");
        }
        let length = |value: &str, max: usize| {
            let n = value.chars().count();
            n >= 1 && n <= max && !value.trim().is_empty()
        };
        if !length(&self.user_pool_id, limits::USER_POOL_ID) {
            return violation("userPoolId", "is blank or longer than 55 characters");
        }
        if !is_lowercase_uuid(&self.sub) {
            return violation("sub", "is not a Cognito user id (a lowercase UUID)");
        }
        if !length(&self.username, limits::USERNAME) {
            return violation("username", "is blank or longer than 128 characters");
        }
        if self
            .email
            .as_deref()
            .is_some_and(|e| e.chars().count() > limits::EMAIL)
        {
            return violation("email", "is longer than 2048 characters");
        }
        if self
            .client_id
            .as_deref()
            .is_some_and(|c| !length(c, limits::CLIENT_ID))
        {
            return violation("clientId", "is blank or longer than 128 characters");
        }
        if !is_region(&self.region) {
            return violation("region", "is not an AWS region name");
        }
        Ok(())
    }

    /// Whether `eventId` is the one derived from `userPoolId` and `sub`.
    pub fn has_derived_event_id(&self) -> bool {
        self.event_id == event_id(&self.user_pool_id, &self.sub)
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

/// A Cognito-shaped `sub` (a lowercase UUID) derived from a readable label, for tests, demos
/// and fault rules that need to name users: the same label always gives the same `sub`.
pub fn sub_from_label(label: &str) -> String {
    Uuid::new_v5(&Uuid::NAMESPACE_OID, label.as_bytes()).to_string()
}

/// `8-4-4-4-12` lowercase hex digits: how Cognito writes a `sub`.
pub fn is_lowercase_uuid(text: &str) -> bool {
    text.len() == 36
        && text.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
        })
}

/// `^[a-z]{2}(-[a-z]+)+-[0-9]+$`, the schema's region pattern.
fn is_region(text: &str) -> bool {
    let parts: Vec<&str> = text.split('-').collect();
    let letters = |p: &&str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase());
    parts.len() >= 3
        && parts[0].len() == 2
        && letters(&parts[0])
        && parts[1..parts.len() - 1].iter().all(letters)
        && parts
            .last()
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
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
    fn validation_follows_the_schema() {
        let sub = "94a8f4d8-3031-70a1-5c2e-0123456789ab";
        let good = UserConfirmed::builder("us-east-1_Ab12Cd34E", sub).build();
        assert_eq!(good.validate(), Ok(()));
        assert!(good.has_derived_event_id());
        let field = |event: UserConfirmed| event.validate().unwrap_err().field;
        let with = |f: fn(&mut UserConfirmed)| {
            let mut e = good.clone();
            f(&mut e);
            e
        };
        assert_eq!(field(with(|e| e.sub = "not-a-uuid".into())), "sub");
        assert_eq!(
            field(with(
                |e| e.sub = "94A8F4D8-3031-70A1-5C2E-0123456789AB".into()
            )),
            "sub"
        );
        assert_eq!(
            field(with(|e| e.sub = format!("{}::x", &e.sub[..33]))),
            "sub"
        );
        assert_eq!(field(with(|e| e.username = "u".repeat(129))), "username");
        assert_eq!(field(with(|e| e.username = " ".into())), "username");
        assert_eq!(
            field(with(|e| e.user_pool_id = "p".repeat(56))),
            "userPoolId"
        );
        assert_eq!(field(with(|e| e.region = "moon".into())), "region");
        assert_eq!(field(with(|e| e.region = "us-east-".into())), "region");
        assert_eq!(field(with(|e| e.email = Some("e".repeat(2049)))), "email");
        assert_eq!(
            field(with(|e| e.client_id = Some(String::new()))),
            "clientId"
        );
        assert_eq!(
            field(with(|e| e.schema_version = "2".into())),
            "schemaVersion"
        );
        assert_eq!(
            field(with(|e| e.schema_version = "1.".into())),
            "schemaVersion"
        );
        assert_eq!(field(with(|e| e.event_id = Uuid::nil())), "eventId");
        assert_eq!(with(|e| e.username = "é".repeat(128)).validate(), Ok(()));
        assert_eq!(
            with(|e| e.region = "us-gov-west-1".into()).validate(),
            Ok(())
        );
        assert_eq!(with(|e| e.schema_version = "1.7".into()).validate(), Ok(()));
        let moved = with(|e| e.user_pool_id = "us-east-1_Other".into());
        assert_eq!(moved.validate(), Ok(()));
        assert!(!moved.has_derived_event_id());
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
