//! Hostile and broken messages for the one envelope parser (docs/bad-input.md): every input
//! gets exactly one of the documented outcomes and nothing panics; every valid event survives
//! `to_envelope` and `parse_message` unchanged, whatever its strings hold.

use chrono::{DateTime, TimeZone, Utc};
use proptest::prelude::*;
use serde_json::{Map, Value, json};
use uc_schemas::envelope::MAX_MESSAGE_BYTES;
use uc_schemas::{DEFAULT_SOURCE, Origin, UserConfirmed, parse_message, to_envelope};
use uuid::Uuid;

const CODES: &[&str] = &[
    "EmptyMessage",
    "MessageTooLarge",
    "NotJson",
    "NotAnObject",
    "WrongDetailType",
    "MissingDetail",
    "UnrecognisedMessage",
    "UnsupportedSchemaVersion",
    "InvalidDetail",
];

fn sample() -> UserConfirmed {
    UserConfirmed::builder("eu-west-1_Pool", "0b8c2a1e-1111-4c3e-9a5b-1234567890ab")
        .username("alice")
        .email("alice@example.com")
        .email_verified(true)
        .client_id("client123")
        .confirmed_at(Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap())
        .build()
}

fn envelope() -> Value {
    to_envelope(DEFAULT_SOURCE, &sample())
}

fn code(body: &str) -> &'static str {
    parse_message(body)
        .map(|_| "Ok")
        .unwrap_or_else(|e| e.code())
}

// ---------------------------------------------------------------- rows of docs/bad-input.md

#[test]
fn deeply_nested_objects_are_not_json() {
    let body = format!("{}1{}", "{\"a\":".repeat(200), "}".repeat(200));
    assert_eq!(code(&body), "NotJson");
    // Nesting within serde_json's limit (128) in a field the contract does not know is ignored.
    let mut e = envelope();
    let mut deep = json!(1);
    for _ in 0..100 {
        deep = json!({ "a": deep });
    }
    e["detail"]["futureField"] = deep;
    assert_eq!(code(&e.to_string()), "Ok");
}

#[test]
fn a_body_of_exactly_the_limit_is_parsed_and_one_byte_more_is_too_large() {
    let mut e = envelope();
    e["detail"]["padding"] = "".into();
    let overhead = e.to_string().len();
    e["detail"]["padding"] = "x".repeat(MAX_MESSAGE_BYTES - overhead).into();
    let body = e.to_string();
    assert_eq!(body.len(), MAX_MESSAGE_BYTES);
    assert_eq!(code(&body), "Ok");
    e["detail"]["padding"] = "x".repeat(MAX_MESSAGE_BYTES - overhead + 1).into();
    assert_eq!(code(&e.to_string()), "MessageTooLarge");
}

#[test]
fn any_source_is_accepted_the_rule_and_bus_policy_filter_sources() {
    // The parser does not check `source`: selecting the source is the rule's job (and the bus
    // policy's). A message put on the queue directly with any source is processed.
    let mut e = envelope();
    e["source"] = "someone.else".into();
    let parsed = parse_message(&e.to_string()).unwrap();
    assert_eq!(
        parsed.envelope.unwrap().source.as_deref(),
        Some("someone.else")
    );
    e.as_object_mut().unwrap().remove("source");
    assert_eq!(code(&e.to_string()), "Ok");
}

#[test]
fn a_sub_or_an_event_id_that_is_not_a_uuid_is_invalid() {
    for sub in [
        "not-a-uuid \") { id } mutation { x",
        "0b8c2a1e-1111-4c3e-9a5b-1234567890ab::x",
        "0B8C2A1E-1111-4C3E-9A5B-1234567890AB",
    ] {
        let mut e = envelope();
        e["detail"]["sub"] = sub.into();
        assert_eq!(code(&e.to_string()), "InvalidDetail", "{sub}");
    }
    let mut e = envelope();
    e["detail"]["sub"] = "x".repeat(500).into();
    assert_eq!(code(&e.to_string()), "InvalidDetail");
    let mut e = envelope();
    e["detail"]["eventId"] = "not-a-uuid".into();
    assert_eq!(code(&e.to_string()), "InvalidDetail");
    e["detail"]["eventId"] = Uuid::nil().to_string().into();
    assert_eq!(code(&e.to_string()), "InvalidDetail", "not a UUIDv5");
}

/// The parser checks the shape; whether `eventId` derives from pool and `sub` is the
/// consumer's check (`has_derived_event_id`), which the worker makes (`EventIdMismatch`).
#[test]
fn an_event_id_that_does_not_match_pool_and_sub_parses_and_is_flagged() {
    let mut e = envelope();
    let other = uc_schemas::event_id("eu-west-1_Other", "x");
    e["detail"]["eventId"] = other.to_string().into();
    let parsed = parse_message(&e.to_string()).unwrap();
    assert_eq!(parsed.detail.event_id, other);
    assert!(!parsed.detail.has_derived_event_id());
    assert!(sample().has_derived_event_id());
}

#[test]
fn fields_beyond_the_schema_limits_are_invalid() {
    for (field, value) in [
        ("username", json!("u".repeat(129))),
        ("userPoolId", json!("p".repeat(56))),
        ("region", json!("moon")),
        ("clientId", json!("c".repeat(129))),
        ("email", json!("e".repeat(2049))),
    ] {
        let mut e = envelope();
        e["detail"][field] = value;
        assert_eq!(code(&e.to_string()), "InvalidDetail", "{field}");
    }
}

#[test]
fn the_contract_is_strict_where_cognito_is_lenient() {
    for (field, value) in [
        ("emailVerified", json!("true")),
        ("email", json!(42)),
        ("sub", json!(42)),
        ("username", json!(null)),
        ("confirmedAt", json!(1_795_000_000)),
        ("region", json!(["eu-west-1"])),
    ] {
        let mut e = envelope();
        e["detail"][field] = value.clone();
        assert_eq!(code(&e.to_string()), "InvalidDetail", "{field}: {value}");
    }
    for field in ["eventId", "userPoolId", "username", "confirmedAt", "region"] {
        let mut e = envelope();
        e["detail"].as_object_mut().unwrap().remove(field);
        assert_eq!(code(&e.to_string()), "InvalidDetail", "without {field}");
    }
    // Optional fields may be absent or null.
    let mut e = envelope();
    for field in ["email", "emailVerified", "clientId", "origin"] {
        e["detail"].as_object_mut().unwrap().remove(field);
    }
    e["detail"]["email"] = Value::Null;
    assert_eq!(code(&e.to_string()), "Ok");
}

#[test]
fn schema_version_must_be_a_string_of_major_version_one() {
    for (version, expected) in [
        (json!("1"), "Ok"),
        (json!("1.7"), "Ok"),
        (json!("2"), "UnsupportedSchemaVersion"),
        (json!("10"), "UnsupportedSchemaVersion"),
        (json!(""), "UnsupportedSchemaVersion"),
        (json!(1), "InvalidDetail"),
        (json!(null), "UnsupportedSchemaVersion"),
    ] {
        let mut e = envelope();
        e["detail"]["schemaVersion"] = version.clone();
        assert_eq!(code(&e.to_string()), expected, "{version}");
    }
    let mut e = envelope();
    e["detail"].as_object_mut().unwrap().remove("schemaVersion");
    assert_eq!(code(&e.to_string()), "InvalidDetail");
}

#[test]
fn envelope_fields_of_the_wrong_type_make_the_message_invalid() {
    let mut e = envelope();
    e["time"] = json!(1_795_000_000);
    let err = parse_message(&e.to_string()).unwrap_err();
    assert_eq!(err.code(), "InvalidDetail");
    assert!(err.to_string().contains("envelope"), "{err}");
}

// ---------------------------------------------------------------- properties

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[\"'\\\\\n\r\t\u{0}\u{2028}@ a-zé東😀{}\\[\\]]{0,32}",
        "\\PC{0,32}",
    ]
}

fn non_blank() -> impl Strategy<Value = String> {
    text().prop_filter("the contract refuses blank ids", |s| !s.trim().is_empty())
}

/// Any instant RFC 3339 can write: years 0001 to 9999, to the nanosecond.
fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    (-62_135_596_800i64..=253_402_300_799i64, 0u32..1_000_000_000)
        .prop_map(|(secs, nanos)| DateTime::from_timestamp(secs, nanos).unwrap())
}

/// Text of 1 to `max` characters that is not blank: what the contract's ids may be.
fn id_text(max: usize) -> impl Strategy<Value = String> {
    non_blank().prop_filter("within the schema's length", move |s| {
        s.chars().count() <= max
    })
}

fn region() -> impl Strategy<Value = String> {
    "[a-z]{2}(-[a-z]{1,9}){1,2}-[0-9]{1,2}"
}

prop_compose! {
    /// Any event within the contract: every field at any value the schema allows.
    fn arb_event()(
        pool in id_text(55),
        sub in any::<u128>().prop_map(|n| Uuid::from_u128(n).to_string()),
        username in id_text(128),
        email in proptest::option::of(text()),
        email_verified in proptest::option::of(any::<bool>()),
        client_id in proptest::option::of(id_text(128)),
        confirmed_at in instant(),
        region in region(),
        origin in prop_oneof![Just(Origin::PostConfirmation), Just(Origin::Backfill), Just(Origin::Reconciliation)],
        foreign_id in proptest::option::of(id_text(20)),
    ) -> UserConfirmed {
        let mut event = UserConfirmed::new(
            pool, sub, username, email, email_verified, client_id, confirmed_at, region, origin,
        );
        // A UUIDv5 of something else: valid in shape, not derived from this pool and sub.
        if let Some(other) = foreign_id {
            event.event_id = uc_schemas::event_id(&other, "x");
        }
        event
    }
}

/// Arbitrary JSON, a few levels deep.
fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON numbers are finite", |f| f.is_finite())
            .prop_map(Value::from),
        text().prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(text(), inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn outcome_is_documented(body: &str) -> Result<(), TestCaseError> {
    match parse_message(body) {
        Ok(received) => {
            // Whatever is accepted is written back and read again unchanged.
            let again = parse_message(&to_envelope(DEFAULT_SOURCE, &received.detail).to_string());
            prop_assert_eq!(again.map(|r| r.detail), Ok(received.detail));
        }
        Err(error) => {
            prop_assert!(CODES.contains(&error.code()), "{}", error.code());
            prop_assert!(!error.to_string().is_empty());
        }
    }
    Ok(())
}

const FIELDS: &[&str] = &[
    "schemaVersion",
    "eventId",
    "userPoolId",
    "sub",
    "username",
    "email",
    "emailVerified",
    "clientId",
    "confirmedAt",
    "region",
    "origin",
];
const ENVELOPE_FIELDS: &[&str] = &[
    "version",
    "id",
    "detail-type",
    "source",
    "account",
    "time",
    "region",
    "resources",
    "detail",
    "replay-name",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn never_panics_on_arbitrary_text(body in text()) {
        outcome_is_documented(&body)?;
    }

    #[test]
    fn never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        outcome_is_documented(&String::from_utf8_lossy(&bytes))?;
    }

    #[test]
    fn never_panics_on_arbitrary_json(value in arb_json()) {
        outcome_is_documented(&value.to_string())?;
    }

    #[test]
    fn odd_fields_get_a_documented_outcome(
        detail_field in prop::sample::select(FIELDS),
        envelope_field in prop::sample::select(ENVELOPE_FIELDS),
        detail_value in proptest::option::of(arb_json()),
        envelope_value in proptest::option::of(arb_json()),
        bare in any::<bool>(),
    ) {
        let mut e = envelope();
        match detail_value {
            Some(v) => e["detail"][detail_field] = v,
            None => { e["detail"].as_object_mut().unwrap().remove(detail_field); }
        }
        let body = if bare {
            e["detail"].to_string()
        } else {
            match envelope_value {
                Some(v) => e[envelope_field] = v,
                None => { e.as_object_mut().unwrap().remove(envelope_field); }
            }
            e.to_string()
        };
        outcome_is_documented(&body)?;
    }

    #[test]
    fn valid_events_round_trip_through_the_envelope_and_bare(event in arb_event()) {
        let envelope = to_envelope(DEFAULT_SOURCE, &event).to_string();
        let parsed = parse_message(&envelope);
        prop_assert_eq!(parsed.map(|r| r.detail), Ok(event.clone()), "{}", envelope);
        let bare = serde_json::to_string(&event).unwrap();
        let parsed = parse_message(&bare);
        prop_assert_eq!(parsed.map(|r| r.detail), Ok(event), "{}", bare);
    }
}
