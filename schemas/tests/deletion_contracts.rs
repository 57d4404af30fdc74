//! The `UserDeleted` and `ProfileDeleted` contracts cannot drift: their examples, JSON Schemas
//! and Rust types agree, the types cannot write what the schemas forbid, ids are the derived
//! ones, and neither schema has room for an email. The CloudTrail example parses as a call.

use std::path::PathBuf;

use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use serde_json::Value;
use uc_schemas::{
    DetectedBy, LifecycleCall, Message, PROFILE_DELETED_JSON_SCHEMA, ProfileDeleted, ProfileStore,
    USER_DELETED_DETAIL_TYPE, USER_DELETED_JSON_SCHEMA, UserDeleted, parse_any,
    profile_deleted_event_id, user_deleted_event_id,
};

fn validator(schema: &str) -> jsonschema::Validator {
    let schema: Value = serde_json::from_str(schema).unwrap();
    assert_eq!(schema["$schema"], "http://json-schema.org/draft-04/schema#");
    jsonschema::draft4::new(&schema).expect("valid Draft 4")
}

fn example(path: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(path);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn assert_valid(validator: &jsonschema::Validator, value: &Value) {
    let errors: Vec<String> = validator
        .iter_errors(value)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{value}: {errors:?}");
}

#[test]
fn the_examples_validate_and_round_trip_through_the_types() {
    let user = validator(USER_DELETED_JSON_SCHEMA);
    let profile = validator(PROFILE_DELETED_JSON_SCHEMA);
    let detail = example("user-deleted/detail.json");
    assert_valid(&user, &detail);
    let typed: UserDeleted = serde_json::from_value(detail.clone()).unwrap();
    assert_eq!(serde_json::to_value(&typed).unwrap(), detail);
    assert_eq!(typed.event_id, user_deleted_event_id(&typed.sub));
    let envelope = example("user-deleted/envelope.eventbridge.json");
    assert_eq!(envelope["detail-type"], USER_DELETED_DETAIL_TYPE);
    assert_eq!(envelope["detail"], detail);

    let removed = example("profile-deleted/detail.json");
    assert_valid(&profile, &removed);
    let typed_profile: ProfileDeleted = serde_json::from_value(removed.clone()).unwrap();
    assert_eq!(serde_json::to_value(&typed_profile).unwrap(), removed);
    assert_eq!(typed_profile.user_deleted_event_id, typed.event_id);
    assert_eq!(
        typed_profile.event_id,
        profile_deleted_event_id(&typed_profile.sub)
    );
}

#[test]
fn neither_schema_has_room_for_pii() {
    for schema in [USER_DELETED_JSON_SCHEMA, PROFILE_DELETED_JSON_SCHEMA] {
        let value: Value = serde_json::from_str(schema).unwrap();
        assert_eq!(value["additionalProperties"], false);
        let fields: Vec<&String> = value["properties"].as_object().unwrap().keys().collect();
        for field in fields {
            let lower = field.to_lowercase();
            assert!(
                !lower.contains("email") && !lower.contains("name") && !lower.contains("phone"),
                "{field}"
            );
        }
        let mut with_email: Value = example("user-deleted/detail.json");
        with_email["email"] = "jane@example.com".into();
        assert!(!validator(USER_DELETED_JSON_SCHEMA).is_valid(&with_email));
    }
}

#[test]
fn the_cloudtrail_example_is_a_deletion_call_with_its_sub() {
    let record = example("cloudtrail/admin-delete-user.json");
    let Message::CognitoApiCall(call) = parse_any(&record.to_string()).unwrap() else {
        panic!("not read as a CloudTrail call");
    };
    assert_eq!(call.call, LifecycleCall::AdminDeleteUser);
    assert_eq!(
        call.sub.as_deref(),
        record["detail"]["additionalEventData"]["sub"].as_str()
    );
    assert_eq!(call.user_pool_id.as_deref(), Some("eu-west-1_Example"));
}

fn sub_strategy() -> impl Strategy<Value = String> {
    "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
}

proptest! {
    #[test]
    fn what_the_types_write_validates(
        sub in sub_strategy(),
        pool in proptest::option::of("[a-z]{2}-[a-z]{1,10}-[0-9]_[A-Za-z0-9]{1,20}"),
        seconds in 0i64..4_000_000_000,
        millis in 0u32..1000,
        sweep in any::<bool>(),
        removed in any::<bool>(),
        dynamodb in any::<bool>(),
    ) {
        let at = Utc.timestamp_opt(seconds, millis * 1_000_000).unwrap();
        let by = if sweep { DetectedBy::Sweep } else { DetectedBy::CloudTrail };
        let user = UserDeleted::new(pool, sub, at, by, removed);
        let json = serde_json::to_value(&user).unwrap();
        prop_assert!(validator(USER_DELETED_JSON_SCHEMA).is_valid(&json), "{}", json);
        let store = if dynamodb { ProfileStore::Dynamodb } else { ProfileStore::Appsync };
        let profile = serde_json::to_value(ProfileDeleted::new(&user, at, store)).unwrap();
        prop_assert!(validator(PROFILE_DELETED_JSON_SCHEMA).is_valid(&profile), "{}", profile);
    }
}
