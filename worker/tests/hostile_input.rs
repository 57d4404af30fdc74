//! Hostile and broken input for the worker (docs/bad-input.md): every bad body ends in the DLQ
//! with its reason (or, when the DLQ cannot take it, with SQS's redrive), odd but valid values
//! reach AppSync exactly as GraphQL variables, and AppSync answer classification is total.

use std::collections::HashMap;
use std::sync::Arc;

use proptest::prelude::*;
use serde_json::{Value, json};
use uc_devkit::{AppSyncStandIn, Moto, sqs};
use uc_schemas::envelope::MAX_MESSAGE_BYTES;
use uc_schemas::{DEFAULT_SOURCE, UserConfirmed, sub_from_label, to_envelope};
mod support;
use support::sqs_event;
use uc_schemas::dead_letter::attr;
use uc_worker::classify::{Answer, Outcome, classify};
use uc_worker::lambda::handle_batch;
use uc_worker::{WorkerConfig, build_worker};

const POOL: &str = "us-east-1_Ab12Cd34E";

/// The `sub` of the user called `label` in these tests.
fn sub(label: &str) -> String {
    sub_from_label(label)
}

fn event(label: &str, email: Option<&str>) -> UserConfirmed {
    let mut event = UserConfirmed::builder(POOL, sub(label))
        .username(format!("user-{label}"))
        .email_verified(true)
        .client_id("client")
        .build();
    event.email = email.map(str::to_owned);
    event
}

fn envelope(sub: &str) -> Value {
    to_envelope(DEFAULT_SOURCE, &event(sub, Some("jane.doe@example.com")))
}

fn config(standin: &AppSyncStandIn, dlq_url: &str) -> WorkerConfig {
    let pairs = [
        ("APPSYNC_GRAPHQL_URL", standin.url.clone()),
        ("USER_POOL_ID", POOL.to_owned()),
        ("DLQ_URL", dlq_url.to_owned()),
        ("MAX_ATTEMPTS", "2".into()),
        ("RETRY_MIN_DELAY_MS", "10".into()),
        ("RETRY_MAX_DELAY_MS", "20".into()),
    ];
    WorkerConfig::from_reader(&uc_runtime::env::from_pairs(pairs)).unwrap()
}

/// A message id, its body, and where it ends: `(reason, stage)` in the DLQ, or `None` for a
/// created profile.
type Row<'a> = (&'a str, String, Option<(&'a str, &'a str)>);

/// One batch with a message for each bad-input row: where each one ends up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_body_is_dead_lettered_with_its_reason_and_odd_values_reach_appsync_exactly() {
    let moto = Moto::start();
    let sdk = moto.sdk_config().await;
    let client = aws_sdk_sqs::Client::new(&sdk);
    let (dlq_url, _) = sqs::create_queue(&client, "worker-dlq", 30).await;
    let standin = AppSyncStandIn::start(&[]);
    let worker = Arc::new(
        build_worker(&config(&standin, &dlq_url), &sdk)
            .await
            .unwrap(),
    );

    let with = |sub: &str, edit: &dyn Fn(&mut Value)| {
        let mut e = envelope(sub);
        edit(&mut e);
        e.to_string()
    };
    // (message id, body, the DLQ reason and stage; None = processed, the profile is created)
    let odd_email = "\"o'brien \\\"q\\\"\"\n@例え.jp";
    let injection = "x\") { id } mutation { deleteUserProfile(input: {id: \"victim\"}) { id";
    let odd_username = "o'brien \"q\"\n例え 😀";
    let rows: Vec<Row> = vec![
        ("m-empty", String::new(), Some(("EmptyMessage", "parse"))),
        ("m-blank", " \n\t".into(), Some(("EmptyMessage", "parse"))),
        (
            "m-huge",
            "x".repeat(MAX_MESSAGE_BYTES + 1),
            Some(("MessageTooLarge", "parse")),
        ),
        (
            "m-nested-arrays",
            format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)),
            Some(("NotJson", "parse")),
        ),
        (
            "m-nested-objects",
            format!("{}1{}", "{\"a\":".repeat(200), "}".repeat(200)),
            Some(("NotJson", "parse")),
        ),
        (
            "m-not-json",
            "{\"not\": \"an event\"".into(),
            Some(("NotJson", "parse")),
        ),
        ("m-array", "[1,2]".into(), Some(("NotAnObject", "parse"))),
        (
            "m-unrecognised",
            "{\"hello\": 1}".into(),
            Some(("UnrecognisedMessage", "parse")),
        ),
        (
            "m-detail-type",
            with("s-dt", &|e| e["detail-type"] = "UserDeleted".into()),
            Some(("WrongDetailType", "parse")),
        ),
        (
            "m-no-detail",
            with("s-nd", &|e| {
                e.as_object_mut().unwrap().remove("detail");
            }),
            Some(("MissingDetail", "parse")),
        ),
        (
            "m-v2",
            with("s-v2", &|e| e["detail"]["schemaVersion"] = "2".into()),
            Some(("UnsupportedSchemaVersion", "parse")),
        ),
        (
            "m-no-sub",
            with("s-ns", &|e| {
                e["detail"].as_object_mut().unwrap().remove("sub");
            }),
            Some(("InvalidDetail", "parse")),
        ),
        (
            "m-event-id",
            with("s-ei", &|e| e["detail"]["eventId"] = "not-a-uuid".into()),
            Some(("InvalidDetail", "parse")),
        ),
        (
            // serde's message echoes this value; uc.detail must not carry it.
            "m-verified-email",
            with("s-ve", &|e| {
                e["detail"]["emailVerified"] = "jane.doe@example.com".into()
            }),
            Some(("InvalidDetail", "parse")),
        ),
        (
            "m-envelope-time",
            with("s-et", &|e| e["time"] = 1_795_000_000.into()),
            Some(("InvalidDetail", "parse")),
        ),
        // Well-formed but not the pipeline's own (issue 13): refused before AppSync.
        (
            "m-foreign-source",
            with("s-foreign-source", &|e| e["source"] = "someone.else".into()),
            Some(("ForeignSource", "verify")),
        ),
        (
            "m-no-source",
            with("s-no-source", &|e| {
                e.as_object_mut().unwrap().remove("source");
            }),
            Some(("ForeignSource", "verify")),
        ),
        (
            "m-bare-detail",
            serde_json::to_string(&event("s-bare", None)).unwrap(),
            Some(("ForeignSource", "verify")),
        ),
        (
            "m-foreign-pool",
            {
                let mut other = event("s-foreign-pool", None);
                other.user_pool_id = "us-east-1_Elsewhere".into();
                other.event_id = uc_schemas::event_id(&other.user_pool_id, &other.sub);
                to_envelope(DEFAULT_SOURCE, &other).to_string()
            },
            Some(("ForeignUserPool", "verify")),
        ),
        (
            "m-event-id-mismatch",
            with("s-mismatch", &|e| {
                e["detail"]["eventId"] = uc_schemas::event_id("x", "y").to_string().into()
            }),
            Some(("EventIdMismatch", "verify")),
        ),
        (
            "m-event-id-nil",
            with("s-nil", &|e| {
                e["detail"]["eventId"] = "00000000-0000-0000-0000-000000000000".into()
            }),
            Some(("InvalidDetail", "parse")),
        ),
        (
            "m-injection",
            with("s-injection", &|e| e["detail"]["sub"] = injection.into()),
            Some(("InvalidDetail", "parse")),
        ),
        (
            "m-double-colon-sub",
            with("s-colon", &|e| {
                e["detail"]["sub"] = format!("{}::admin", &sub("s-colon")[..28]).into()
            }),
            Some(("InvalidDetail", "parse")),
        ),
        (
            "m-long-sub",
            with("s-long", &|e| e["detail"]["sub"] = "a".repeat(500).into()),
            Some(("InvalidDetail", "parse")),
        ),
        // Odd but valid values reach AppSync exactly.
        (
            "m-odd-email",
            to_envelope(DEFAULT_SOURCE, &event("s-odd-email", Some(odd_email))).to_string(),
            None,
        ),
        (
            "m-odd-username",
            {
                let mut odd = event("s-odd-username", None);
                odd.username = odd_username.into();
                to_envelope(DEFAULT_SOURCE, &odd).to_string()
            },
            None,
        ),
    ];
    let batch: Vec<(&str, String)> = rows.iter().map(|(id, b, _)| (*id, b.clone())).collect();
    let response = handle_batch(worker.clone(), sqs_event(&batch), None, 8)
        .await
        .unwrap();
    assert!(
        response.batch_item_failures.is_empty(),
        "every message is settled: {:?}",
        response.batch_item_failures
    );

    let dead: HashMap<String, aws_sdk_sqs::types::Message> = sqs::drain(&client, &dlq_url)
        .await
        .into_iter()
        .map(|m| {
            let source = m.message_attributes().unwrap()[attr::SOURCE_MESSAGE_ID]
                .string_value()
                .unwrap()
                .to_owned();
            (source, m)
        })
        .collect();
    for (id, body, expected) in &rows {
        let Some((reason, stage)) = expected else {
            assert!(!dead.contains_key(*id), "{id} was dead-lettered");
            continue;
        };
        let message = dead
            .get(*id)
            .unwrap_or_else(|| panic!("{id} not in the DLQ"));
        let attributes = message.message_attributes().unwrap();
        assert_eq!(
            attributes[attr::REASON].string_value(),
            Some(*reason),
            "{id}"
        );
        assert_eq!(attributes[attr::STAGE].string_value(), Some(*stage), "{id}");
        let kept = if body.is_empty() {
            "<empty>"
        } else {
            body.as_str()
        };
        assert_eq!(
            message.body(),
            Some(kept),
            "{id}: the original body is kept"
        );
        let detail = attributes[attr::DETAIL].string_value().unwrap();
        assert!(!detail.contains('@'), "{id}: {detail}");
    }
    assert_eq!(dead.len(), rows.iter().filter(|r| r.2.is_some()).count());

    let profiles = standin.profiles().await;
    let profile = |id: &str| {
        profiles
            .iter()
            .find(|p| p["id"] == id)
            .unwrap_or_else(|| panic!("no profile {id}: {profiles:?}"))
            .clone()
    };
    assert_eq!(profile(&sub("s-odd-email"))["email"], odd_email);
    assert_eq!(
        profile(&sub("s-odd-username"))["profileOwner"],
        format!("{}::{odd_username}", sub("s-odd-username"))
    );
    assert_eq!(
        profiles.len(),
        2,
        "only the two valid messages: {profiles:?}"
    );
    assert_eq!(
        standin.stats().await["requests"],
        2,
        "nothing else reached AppSync"
    );
}

/// When the DLQ refuses the message (here: a body larger than its MaximumMessageSize), the
/// message is reported failed, so SQS redelivers it and its redrive policy moves it to the DLQ
/// after maxReceiveCount: nothing is deleted that was not kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_the_dlq_refuses_is_left_to_the_redrive_policy() {
    let moto = Moto::start();
    let sdk = moto.sdk_config().await;
    let client = aws_sdk_sqs::Client::new(&sdk);
    let (dlq_url, _) = sqs::create_queue(&client, "worker-dlq", 30).await;
    client
        .set_queue_attributes()
        .queue_url(&dlq_url)
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::MaximumMessageSize,
            "1024",
        )
        .send()
        .await
        .unwrap();
    let standin = AppSyncStandIn::start(&[]);
    let worker = Arc::new(
        build_worker(&config(&standin, &dlq_url), &sdk)
            .await
            .unwrap(),
    );
    let batch = sqs_event(&[
        ("m-small", "not json".into()),
        ("m-large", format!("not json {}", "x".repeat(2000))),
    ]);
    let response = handle_batch(worker, batch, None, 2).await.unwrap();
    let failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, ["m-large"]);
    let dead = sqs::drain(&client, &dlq_url).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body(), Some("not json"));
}

// ---------------------------------------------------------------- classification is total

const FIELD: &str = "createUserProfile";

fn error_type() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(prop_oneof![
        Just(String::new()),
        Just(" ".to_owned()),
        Just("DynamoDB:ConditionalCheckFailedException".to_owned()),
        Just("Unauthorized".to_owned()),
        Just("MappingTemplate".to_owned()),
        Just("DynamoDB:ProvisionedThroughputExceededException".to_owned()),
        Just("ExecutionTimeout".to_owned()),
        Just("UnauthorizedException".to_owned()),
        any::<String>(),
    ])
}

fn graphql_error() -> impl Strategy<Value = Value> {
    (
        error_type(),
        proptest::option::of(prop_oneof![
            Just("Validation error of type X".to_owned()),
            Just("Variable 'input' has coerced Null".to_owned()),
            Just("Invalid Syntax : x".to_owned()),
            any::<String>(),
        ]),
    )
        .prop_map(|(error_type, message)| {
            let mut e = json!({"path": [FIELD]});
            if let Some(t) = error_type {
                e["errorType"] = t.into();
            }
            if let Some(m) = message {
                e["message"] = m.into();
            }
            e
        })
}

/// AppSync-shaped bodies, and garbage.
fn body() -> impl Strategy<Value = Vec<u8>> {
    let data = prop_oneof![
        Just(Value::Null),
        Just(json!({FIELD: {"id": "s"}})),
        Just(json!({FIELD: null})),
        Just(json!({FIELD: "s"})),
        Just(json!({"other": {}})),
    ];
    let errors = prop_oneof![
        Just(None),
        Just(Some(json!([]))),
        Just(Some(json!("boom"))),
        prop::collection::vec(graphql_error(), 1..4).prop_map(|e| Some(Value::Array(e))),
    ];
    prop_oneof![
        3 => (proptest::option::of(data), errors).prop_map(|(data, errors)| {
            let mut b = json!({});
            if let Some(d) = data {
                b["data"] = d;
            }
            if let Some(e) = errors {
                b["errors"] = e;
            }
            b.to_string().into_bytes()
        }),
        1 => prop::collection::vec(any::<u8>(), 0..64),
        1 => any::<String>().prop_map(String::into_bytes),
    ]
}

fn status() -> impl Strategy<Value = u16> {
    prop_oneof![
        4 => Just(200u16),
        1 => prop::sample::select(vec![201u16, 204, 302, 400, 401, 403, 404, 409, 413, 429, 500, 502, 503, 504]),
        1 => any::<u16>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// Every (status, body) has exactly one outcome, agreeing with the table in docs/worker.md, and a
    /// non-blank reason code (the DLQ's `uc.reason`; SQS refuses empty attribute values).
    #[test]
    fn classification_is_total(status in status(), body in body()) {
        let answer = Answer::Http { status, body };
        let outcome = classify(&answer, FIELD);
        prop_assert_eq!(&outcome, &classify(&answer, FIELD));
        prop_assert!(!outcome.code().trim().is_empty(), "blank reason: {:?}", outcome);
        let expected_class = match status {
            200 => !matches!(outcome, Outcome::AuthRejected { .. }),
            401 | 403 => matches!(outcome, Outcome::AuthRejected { .. }),
            429 => matches!(outcome, Outcome::Retryable { throttled: true, .. }),
            500..=599 => matches!(outcome, Outcome::Retryable { .. }),
            400..=499 => matches!(outcome, Outcome::Permanent { .. }),
            _ => matches!(outcome, Outcome::Retryable { .. }),
        };
        prop_assert!(expected_class, "{} gave {:?}", status, outcome);
        if status != 200 {
            prop_assert!(!matches!(outcome, Outcome::Created | Outcome::AlreadyExists));
        }
    }
}
