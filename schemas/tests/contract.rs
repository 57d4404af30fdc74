//! The contract cannot drift: the examples, the JSON Schema and the Rust type must agree.

use std::path::PathBuf;

use chrono::TimeZone;
use serde_json::Value;
use uc_schemas::{JSON_SCHEMA, Origin, UserConfirmed, event_id, parse_message};

fn validator() -> jsonschema::Validator {
    let schema: Value = serde_json::from_str(JSON_SCHEMA).unwrap();
    assert_eq!(schema["$schema"], "http://json-schema.org/draft-04/schema#");
    jsonschema::draft4::new(&schema).expect("the schema is valid Draft 4")
}

fn examples() -> Vec<(String, Value)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        // Subdirectories hold other events' examples (profile-created/), with their own tests.
        if path.is_dir() {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        out.push((
            path.display().to_string(),
            serde_json::from_str(&text).unwrap(),
        ));
    }
    assert!(out.len() >= 4, "examples went missing");
    out
}

fn detail_of(example: &Value) -> &Value {
    example.get("detail").unwrap_or(example)
}

#[test]
fn every_example_validates_and_round_trips() {
    let validator = validator();
    for (name, example) in examples() {
        let detail = detail_of(&example);
        let errors: Vec<String> = validator
            .iter_errors(detail)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{name}: {errors:?}");

        let parsed = parse_message(&example.to_string()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let event = parsed.detail;
        assert_eq!(
            event.event_id,
            event_id(&event.user_pool_id, &event.sub),
            "{name}: eventId"
        );
        // Round trip: the type serializes back to exactly the example (no field lost or added).
        let mut again = serde_json::to_value(&event).unwrap();
        let mut original = detail.clone();
        // `origin` defaults to postConfirmation; the type always writes it.
        if original.get("origin").is_none() {
            original["origin"] = "postConfirmation".into();
        }
        normalise_time(&mut again);
        normalise_time(&mut original);
        assert_eq!(again, original, "{name}");
    }
}

fn normalise_time(v: &mut Value) {
    let t = chrono::DateTime::parse_from_rfc3339(v["confirmedAt"].as_str().unwrap()).unwrap();
    v["confirmedAt"] = t.timestamp_millis().into();
}

/// Every field the Rust type can write is allowed by the schema (which forbids unknown
/// properties): adding a field to the type without adding it to the schema fails here.
#[test]
fn the_fullest_rust_value_satisfies_the_schema() {
    let validator = validator();
    for origin in [Origin::PostConfirmation, Origin::Backfill] {
        let event = UserConfirmed::new(
            "us-east-1_Ab12Cd34E",
            "94a8f4d8-3031-70a1-5c2e-0123456789ab",
            "Zoë \"quoted\"\nname",
            Some("a+b@example.com".into()),
            Some(true),
            Some("client".into()),
            chrono::Utc
                .with_ymd_and_hms(2026, 11, 22, 10, 0, 0)
                .unwrap()
                + chrono::Duration::milliseconds(123),
            "us-east-1",
            origin,
        );
        let value = serde_json::to_value(&event).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&value)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{errors:?} in {value}");
        let mut minimal = event.clone();
        minimal.email = None;
        minimal.email_verified = None;
        minimal.client_id = None;
        assert!(validator.is_valid(&serde_json::to_value(&minimal).unwrap()));
    }
}

/// The schema is strict: an extra property or a missing required one is rejected.
#[test]
fn the_schema_rejects_what_the_contract_forbids() {
    let validator = validator();
    let (_, example) = examples()
        .into_iter()
        .find(|(n, _)| n.ends_with("detail.email-alias.json"))
        .unwrap();
    let mut extra = example.clone();
    extra["clientMetadata"] = serde_json::json!({"secret": "x"});
    assert!(!validator.is_valid(&extra));
    for field in [
        "schemaVersion",
        "eventId",
        "userPoolId",
        "sub",
        "username",
        "confirmedAt",
        "region",
    ] {
        let mut missing = example.clone();
        missing.as_object_mut().unwrap().remove(field);
        assert!(!validator.is_valid(&missing), "{field} should be required");
    }
    let mut local_time = example.clone();
    local_time["confirmedAt"] = "2026-11-22T10:15:30+02:00".into();
    assert!(!validator.is_valid(&local_time), "confirmedAt must be UTC");
}

#[test]
fn graphql_documents_are_embedded() {
    assert!(
        uc_schemas::graphql::CREATE_USER_PROFILE
            .contains("mutation CreateUserProfile($input: CreateUserProfileInput!)")
    );
    assert!(uc_schemas::graphql::SCHEMA.contains("createUserProfile(input: CreateUserProfileInput!, condition: ModelUserProfileConditionInput): UserProfile"));
}
