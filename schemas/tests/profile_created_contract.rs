//! The `ProfileCreated` contract cannot drift: its examples, JSON Schema and Rust type agree, the
//! type cannot write what the schema forbids, and the schema stays Draft 4 and free of PII.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::LazyLock;

use chrono::{DateTime, TimeZone, Utc};
use proptest::prelude::*;
use serde_json::{Value, json};
use uc_schemas::{
    DEFAULT_SOURCE, JSON_SCHEMA, Origin, PROFILE_CREATED_DETAIL_TYPE, PROFILE_CREATED_JSON_SCHEMA,
    ProfileCreated, ProfileStore, UserConfirmed, event_id, event_pattern, parse_message,
    profile_created_event_id, profile_created_event_pattern,
};

const DRAFT_4: &str = "http://json-schema.org/draft-04/schema#";

fn draft4_validator(schema: &str) -> jsonschema::Validator {
    let schema: Value = serde_json::from_str(schema).unwrap();
    assert_eq!(schema["$schema"], DRAFT_4);
    jsonschema::draft4::new(&schema).expect("the schema is valid Draft 4")
}

static PROFILE_CREATED: LazyLock<jsonschema::Validator> =
    LazyLock::new(|| draft4_validator(PROFILE_CREATED_JSON_SCHEMA));
static USER_CONFIRMED: LazyLock<jsonschema::Validator> =
    LazyLock::new(|| draft4_validator(JSON_SCHEMA));

fn errors(validator: &jsonschema::Validator, value: &Value) -> Vec<String> {
    validator
        .iter_errors(value)
        .map(|e| e.to_string())
        .collect()
}

fn read_json(path: &PathBuf) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn examples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples")
}

fn examples() -> Vec<(String, Value)> {
    let mut out: Vec<(String, Value)> = std::fs::read_dir(examples_dir().join("profile-created"))
        .unwrap()
        .map(|entry| {
            let path = entry.unwrap().path();
            (path.display().to_string(), read_json(&path))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(out.len() >= 3, "examples went missing");
    out
}

fn detail_of(example: &Value) -> &Value {
    example.get("detail").unwrap_or(example)
}

// ---------------------------------------------------------------- examples

#[test]
fn every_example_validates_and_round_trips_exactly() {
    for (name, example) in examples() {
        let detail = detail_of(&example);
        let found = errors(&PROFILE_CREATED, detail);
        assert!(found.is_empty(), "{name}: {found:?}");

        let event: ProfileCreated =
            serde_json::from_value(detail.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            event.event_id,
            profile_created_event_id(&event.user_pool_id, &event.sub),
            "{name}: eventId"
        );
        // The examples are written as the type writes them (chrono's canonical RFC 3339), so
        // the comparison needs no normalising: nothing lost, added or reformatted.
        assert_eq!(serde_json::to_value(&event).unwrap(), *detail, "{name}");

        if let Some(detail_type) = example.get("detail-type") {
            assert_eq!(detail_type, PROFILE_CREATED_DETAIL_TYPE, "{name}");
            assert_eq!(example["source"], DEFAULT_SOURCE, "{name}");
            // Should one reach the worker's queue anyway, it is refused, not made a profile.
            let refused = parse_message(&example.to_string()).unwrap_err();
            assert_eq!(refused.code(), "WrongDetailType", "{name}");
        }
    }
}

/// The examples are what the type builds from the `UserConfirmed` examples: the two contracts'
/// examples tell one consistent story (ids, timestamps, origin).
#[test]
fn examples_follow_from_the_user_confirmed_examples() {
    let dir = examples_dir();
    for (confirmed, created, created_at) in [
        (
            "detail.email-alias.json",
            "detail.json",
            Utc.with_ymd_and_hms(2026, 11, 22, 10, 15, 30).unwrap()
                + chrono::Duration::milliseconds(241),
        ),
        (
            "detail.backfill.json",
            "detail.backfill.json",
            Utc.with_ymd_and_hms(2026, 12, 1, 8, 0, 2).unwrap()
                + chrono::Duration::milliseconds(500),
        ),
    ] {
        let confirmed: UserConfirmed = serde_json::from_value(read_json(&dir.join(confirmed)))
            .unwrap_or_else(|e| panic!("{confirmed}: {e}"));
        let expected = read_json(&dir.join("profile-created").join(created));
        let built = ProfileCreated::new(&confirmed, created_at, ProfileStore::Appsync);
        assert_eq!(serde_json::to_value(&built).unwrap(), expected, "{created}");
        assert_eq!(built.user_confirmed_event_id, confirmed.event_id);
        assert_ne!(built.event_id, confirmed.event_id);
    }
}

// ---------------------------------------------------------------- the schema itself

/// Draft 4 only: EventBridge's registry takes `JSONSchemaDraft4`, and a later keyword (`const`,
/// `examples`, `$id`, …) would be silently ignored by Draft 4 validators rather than enforced.
#[test]
fn the_schema_is_draft_4_and_uses_only_draft_4_keywords() {
    let schema: Value = serde_json::from_str(PROFILE_CREATED_JSON_SCHEMA).unwrap();
    assert_eq!(schema["$schema"], DRAFT_4);
    assert!(jsonschema::draft4::new(&schema).is_ok());
    let top: BTreeSet<&str> = schema
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let allowed_top = BTreeSet::from([
        "$schema",
        "title",
        "description",
        "type",
        "additionalProperties",
        "required",
        "properties",
    ]);
    assert!(top.is_subset(&allowed_top), "{top:?}");
    assert_eq!(schema["additionalProperties"], false);
    let allowed_field = BTreeSet::from([
        "description",
        "type",
        "pattern",
        "minLength",
        "maxLength",
        "format",
        "enum",
    ]);
    for (name, field) in schema["properties"].as_object().unwrap() {
        for keyword in field.as_object().unwrap().keys() {
            assert!(allowed_field.contains(keyword.as_str()), "{name}.{keyword}");
        }
    }
}

/// Adding a field is a decision about the contract (and, for anything personal, about the
/// threat model), not a side effect: the exact set is pinned here, and every field is required.
#[test]
fn the_fields_are_exactly_the_contract_and_carry_no_pii() {
    let schema: Value = serde_json::from_str(PROFILE_CREATED_JSON_SCHEMA).unwrap();
    let fields: BTreeSet<&str> = schema["properties"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let expected = BTreeSet::from([
        "schemaVersion",
        "eventId",
        "userConfirmedEventId",
        "userPoolId",
        "sub",
        "profileId",
        "createdAt",
        "confirmedAt",
        "origin",
        "store",
    ]);
    assert_eq!(fields, expected);
    let required: BTreeSet<&str> = schema["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(required, expected);
    let description = schema["description"].as_str().unwrap();
    assert!(
        description.contains("no email or other PII"),
        "{description}"
    );
}

/// The schema is strict: an extra property, a missing one or a value outside the contract fails.
#[test]
fn the_schema_rejects_what_the_contract_forbids() {
    let (_, example) = examples()
        .into_iter()
        .find(|(n, _)| n.ends_with("profile-created/detail.json"))
        .unwrap();
    assert!(PROFILE_CREATED.is_valid(&example));
    for (field, value) in [
        ("email", json!("jane.doe@example.com")),
        ("username", json!("jane")),
        ("clientMetadata", json!({"secret": "x"})),
    ] {
        let mut extra = example.clone();
        extra[field] = value;
        assert!(!PROFILE_CREATED.is_valid(&extra), "{field} must be refused");
    }
    for field in example.as_object().unwrap().keys() {
        let mut missing = example.clone();
        missing.as_object_mut().unwrap().remove(field);
        assert!(!PROFILE_CREATED.is_valid(&missing), "{field} is required");
    }
    for (field, value) in [
        ("createdAt", json!("2026-11-22T10:15:30+02:00")),
        ("confirmedAt", json!("2026-11-22T10:15:30+00:00")),
        ("createdAt", json!(1_795_000_000)),
        // `format: date-time` is enforced, not just the trailing Z.
        ("createdAt", json!("2026-13-45T10:15:30Z")),
        ("confirmedAt", json!("yesterday Z")),
        ("store", json!("s3")),
        ("store", json!("AppSync")),
        ("origin", json!("elsewhere")),
        ("schemaVersion", json!("2")),
        ("schemaVersion", json!(1)),
        ("eventId", json!("DCA2D712-6A41-5D7C-BE46-42B3FF54FEB9")),
        // A v4 id is not a derived one.
        (
            "userConfirmedEventId",
            json!("c50c8ff7-7e4c-4913-88d1-2f5a279ad2a7"),
        ),
        ("sub", json!("")),
        ("profileId", json!("x".repeat(129))),
        ("userPoolId", json!("p".repeat(56))),
    ] {
        let mut bad = example.clone();
        bad[field] = value.clone();
        assert!(!PROFILE_CREATED.is_valid(&bad), "{field}: {value}");
    }
}

// ---------------------------------------------------------------- ids, patterns, constructor

#[test]
fn event_ids_are_deterministic_and_distinct_from_user_confirmed_ones() {
    let (pool, sub) = (
        "us-east-1_Ab12Cd34E",
        "94a8f4d8-3031-70a1-5c2e-0123456789ab",
    );
    let id = profile_created_event_id(pool, sub);
    assert_eq!(id.to_string(), "dca2d712-6a41-5d7c-be46-42b3ff54feb9");
    assert_eq!(id, profile_created_event_id(pool, sub));
    assert_ne!(id, event_id(pool, sub));
    assert_ne!(id, profile_created_event_id("eu-west-1_Xy98Zw76V", sub));
    assert_eq!(id.get_version_num(), 5);

    // Every delivery of one confirmation, whatever its eventId says, yields one ProfileCreated id.
    let confirmed = UserConfirmed::new(
        pool,
        sub,
        sub,
        None,
        None,
        None,
        Utc::now(),
        "us-east-1",
        Origin::PostConfirmation,
    );
    let mut replayed = confirmed.clone();
    replayed.event_id = uuid::Uuid::nil();
    let a = ProfileCreated::new(&confirmed, Utc::now(), ProfileStore::Appsync);
    let b = ProfileCreated::new(&replayed, Utc::now(), ProfileStore::Dynamodb);
    assert_eq!(a.event_id, b.event_id);
    assert_eq!(b.user_confirmed_event_id, uuid::Uuid::nil());
}

#[test]
fn the_pattern_selects_profile_created_and_only_the_detail_type_differs() {
    let pattern = profile_created_event_pattern(DEFAULT_SOURCE);
    assert_eq!(
        pattern,
        json!({"source": ["userconfirmed.cognito"], "detail-type": ["ProfileCreated"]})
    );
    let mut user_confirmed = event_pattern(DEFAULT_SOURCE);
    assert_ne!(user_confirmed, pattern, "the worker's rule must not match");
    user_confirmed["detail-type"] = json!([PROFILE_CREATED_DETAIL_TYPE]);
    assert_eq!(user_confirmed, pattern);
    assert_eq!(
        profile_created_event_pattern("acme.signup")["source"],
        json!(["acme.signup"])
    );
}

#[test]
fn a_custom_profile_id_is_kept() {
    let confirmed: UserConfirmed =
        serde_json::from_value(read_json(&examples_dir().join("detail.phone-only.json"))).unwrap();
    let event = ProfileCreated::new(&confirmed, Utc::now(), ProfileStore::Dynamodb)
        .with_profile_id("profile-42");
    assert_eq!(event.profile_id, "profile-42");
    assert_eq!(event.sub, confirmed.sub);
    // Absent in the UserConfirmed example, explicit here: the schema requires it.
    assert_eq!(event.origin, Origin::PostConfirmation);
    let value = serde_json::to_value(&event).unwrap();
    assert!(PROFILE_CREATED.is_valid(&value), "{value}");
}

// ---------------------------------------------------------------- properties

/// 1..=max characters of any kind, control characters included: the schema limits only length.
fn chars(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(any::<char>(), 1..=max).prop_map(String::from_iter)
}

/// Any instant RFC 3339 can write: years 0001 to 9999, to the nanosecond.
fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    (-62_135_596_800i64..=253_402_300_799i64, 0u32..1_000_000_000)
        .prop_map(|(secs, nanos)| DateTime::from_timestamp(secs, nanos).unwrap())
}

prop_compose! {
    /// A `UserConfirmed` that satisfies its own schema (checked in the property, so a drifting
    /// generator cannot quietly test less).
    fn valid_user_confirmed()(
        pool in chars(55),
        sub in any::<u128>().prop_map(|n| uuid::Uuid::from_u128(n).to_string()),
        username in chars(128),
        email in proptest::option::of(chars(64)),
        email_verified in proptest::option::of(any::<bool>()),
        client_id in proptest::option::of(chars(128)),
        confirmed_at in instant(),
        region in "[a-z]{2}(-[a-z]{1,9}){1,2}-[0-9]{1,2}",
        origin in prop_oneof![Just(Origin::PostConfirmation), Just(Origin::Backfill), Just(Origin::Reconciliation)],
    ) -> UserConfirmed {
        UserConfirmed::new(
            pool, sub, username, email, email_verified, client_id, confirmed_at, region, origin,
        )
    }
}

fn store() -> impl Strategy<Value = ProfileStore> {
    prop_oneof![Just(ProfileStore::Appsync), Just(ProfileStore::Dynamodb)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Every field the type can write is allowed by the (strict) schema: adding a field to the
    /// type without adding it to the schema, or writing a value the schema refuses, fails here.
    #[test]
    fn every_value_the_type_writes_satisfies_the_schema(
        confirmed in valid_user_confirmed(),
        created_at in instant(),
        store in store(),
        profile_id in proptest::option::of(chars(128)),
    ) {
        let source = serde_json::to_value(&confirmed).unwrap();
        let source_errors = errors(&USER_CONFIRMED, &source);
        prop_assert!(source_errors.is_empty(), "generator: {:?} in {}", source_errors, source);

        let mut event = ProfileCreated::new(&confirmed, created_at, store);
        if let Some(id) = profile_id {
            event = event.with_profile_id(id);
        }
        let value = serde_json::to_value(&event).unwrap();
        let found = errors(&PROFILE_CREATED, &value);
        prop_assert!(found.is_empty(), "{:?} in {}", found, value);
        let again: ProfileCreated = serde_json::from_value(value).unwrap();
        prop_assert_eq!(again, event);
    }
}
