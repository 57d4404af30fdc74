//! The mutation the worker sends and how a `UserConfirmed` fills its `input`: by default the
//! Amplify docs' `createUserProfile`, replaceable through configuration for other schemas.
//! Values always travel as GraphQL variables, never spliced into the document.

use serde_json::{Map, Value, json};
use uc_runtime::ConfigError;
use uc_schemas::UserConfirmed;
use uc_schemas::graphql::{CREATE_USER_PROFILE, CREATE_USER_PROFILE_FIELD};

/// A value taken from the event for one input field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputSource {
    Sub,
    Username,
    Email,
    EmailVerified,
    /// `"<sub>::<username>"`, Amplify's owner format.
    ProfileOwner,
    UserPoolId,
    EventId,
    ConfirmedAt,
    ClientId,
    Region,
}

impl InputSource {
    const NAMES: &'static [(&'static str, InputSource)] = &[
        ("sub", Self::Sub),
        ("username", Self::Username),
        ("email", Self::Email),
        ("emailVerified", Self::EmailVerified),
        ("profileOwner", Self::ProfileOwner),
        ("userPoolId", Self::UserPoolId),
        ("eventId", Self::EventId),
        ("confirmedAt", Self::ConfirmedAt),
        ("clientId", Self::ClientId),
        ("region", Self::Region),
    ];

    fn parse(name: &str) -> Option<Self> {
        Self::NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, s)| *s)
    }

    /// The value, or `None` when the event has none (the field is then left out).
    fn value(self, event: &UserConfirmed) -> Option<Value> {
        Some(match self {
            Self::Sub => json!(event.sub),
            Self::Username => json!(event.username),
            Self::Email => json!(event.email.as_ref()?),
            Self::EmailVerified => json!(event.email_verified?),
            Self::ProfileOwner => json!(event.profile_owner()),
            Self::UserPoolId => json!(event.user_pool_id),
            Self::EventId => json!(event.event_id),
            Self::ConfirmedAt => json!(
                event
                    .confirmed_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            ),
            Self::ClientId => json!(event.client_id.as_ref()?),
            Self::Region => json!(event.region),
        })
    }
}

/// The default mapping: the profile's id is the user's `sub`, which makes creation idempotent
/// (Amplify's create resolver refuses an existing id).
pub const DEFAULT_INPUT_MAPPING: &str = "id=sub,email=email,profileOwner=profileOwner";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MutationSpec {
    /// The GraphQL document; it must declare `$input`.
    pub document: String,
    /// The mutation field, where the result sits under `data`.
    pub field: String,
    /// Input field name ← event value.
    pub inputs: Vec<(String, InputSource)>,
}

impl Default for MutationSpec {
    fn default() -> Self {
        Self {
            document: CREATE_USER_PROFILE.to_owned(),
            field: CREATE_USER_PROFILE_FIELD.to_owned(),
            inputs: Self::parse_mapping(DEFAULT_INPUT_MAPPING).expect("the default mapping parses"),
        }
    }
}

impl MutationSpec {
    /// Parses `MUTATION_INPUT`: `field=source` pairs separated by commas.
    pub fn parse_mapping(text: &str) -> Result<Vec<(String, InputSource)>, ConfigError> {
        let invalid = |why: String| ConfigError::Invalid {
            name: "MUTATION_INPUT",
            value: text.to_owned(),
            why,
        };
        let mut inputs = Vec::new();
        for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (field, source) = pair
                .split_once('=')
                .ok_or_else(|| invalid(format!("{pair:?} is not field=source")))?;
            let source = InputSource::parse(source.trim()).ok_or_else(|| {
                let names: Vec<&str> = InputSource::NAMES.iter().map(|(n, _)| *n).collect();
                invalid(format!(
                    "unknown source {source:?}; one of {}",
                    names.join(", ")
                ))
            })?;
            inputs.push((field.trim().to_owned(), source));
        }
        if inputs.is_empty() {
            return Err(invalid("no fields".into()));
        }
        Ok(inputs)
    }

    /// The mapped fields for `event`: the mutation's `input`, and the DynamoDB store's item
    /// attributes before DataStore's own.
    pub fn input_values(&self, event: &UserConfirmed) -> Map<String, Value> {
        let mut input = Map::new();
        for (field, source) in &self.inputs {
            if let Some(value) = source.value(event) {
                input.insert(field.clone(), value);
            }
        }
        input
    }

    /// The JSON request body for `event`.
    pub fn request_body(&self, event: &UserConfirmed) -> Vec<u8> {
        let input = self.input_values(event);
        serde_json::to_vec(&json!({ "query": self.document, "variables": { "input": input } }))
            .expect("JSON serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn event(email: Option<&str>) -> UserConfirmed {
        let mut event = UserConfirmed::builder("pool", "sub-1")
            .username("Zoë \"the\" user")
            .email_verified(true)
            .confirmed_at(chrono::Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap())
            .region("us-east-1")
            .build();
        event.email = email.map(str::to_owned);
        event
    }

    #[test]
    fn the_default_matches_the_amplify_model() {
        let body: Value = serde_json::from_slice(
            &MutationSpec::default().request_body(&event(Some("a\"b\n@x.com"))),
        )
        .unwrap();
        assert_eq!(
            body["variables"]["input"],
            json!({"id": "sub-1", "email": "a\"b\n@x.com", "profileOwner": "sub-1::Zoë \"the\" user"})
        );
        assert!(
            body["query"]
                .as_str()
                .unwrap()
                .contains("createUserProfile(input: $input)")
        );
    }

    #[test]
    fn absent_values_are_left_out() {
        let body: Value =
            serde_json::from_slice(&MutationSpec::default().request_body(&event(None))).unwrap();
        assert_eq!(
            body["variables"]["input"],
            json!({"id": "sub-1", "profileOwner": "sub-1::Zoë \"the\" user"})
        );
    }

    #[test]
    fn custom_mappings_parse_or_say_what_is_wrong() {
        let inputs =
            MutationSpec::parse_mapping(" userId = sub , owner=username,at=confirmedAt").unwrap();
        assert_eq!(
            inputs,
            vec![
                ("userId".into(), InputSource::Sub),
                ("owner".into(), InputSource::Username),
                ("at".into(), InputSource::ConfirmedAt)
            ]
        );
        for bad in ["", "id", "id=phone"] {
            let err = MutationSpec::parse_mapping(bad).unwrap_err();
            assert!(err.to_string().starts_with("MUTATION_INPUT"), "{err}");
        }
    }
}
