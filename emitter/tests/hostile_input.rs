//! Hostile and broken Cognito events (docs/bad-input.md): the handler returns every event it is
//! given as the very JSON text it came as, whatever happens to the publish, and publishes only
//! details the contract accepts. Publisher and fallback are in-test implementations of the
//! emitter's two ports.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use proptest::prelude::*;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use uc_emitter::{
    Decision, Emitter, EmitterConfig, EventPublisher, FailurePolicy, FallbackQueue, SkipReason,
    decide, decide_text,
};
use uc_runtime::Failure;
use uc_schemas::UserConfirmed;

/// A Cognito user id (a lowercase UUID, as Cognito writes them).
const SUB: &str = "4b1b2b8e-6b2a-4d3c-9a1e-0123456789ab";

/// Records what it is asked to send; accepts it or refuses it (permanently, so no back-off).
#[derive(Default)]
struct Recorder {
    fail: bool,
    sent: Mutex<Vec<String>>,
}

impl Recorder {
    fn failing() -> Self {
        Self {
            fail: true,
            ..Self::default()
        }
    }

    fn record(&self, body: &str) -> Result<(), Failure> {
        self.sent.lock().unwrap().push(body.to_owned());
        if self.fail {
            Err(Failure::permanent("AccessDeniedException", "refused"))
        } else {
            Ok(())
        }
    }

    fn sent(&self) -> Vec<String> {
        self.sent.lock().unwrap().clone()
    }
}

/// A recorder the test keeps a handle on while the emitter owns the port.
#[derive(Clone, Default)]
struct Port(Arc<Recorder>);

impl EventPublisher for Port {
    async fn publish(&self, detail_json: &str, _: Option<&str>) -> Result<(), Failure> {
        self.0.record(detail_json)
    }
}

impl FallbackQueue for Port {
    async fn send(&self, body: &str, _: Option<&str>) -> Result<(), Failure> {
        self.0.record(body)
    }
}

fn config(policy: FailurePolicy) -> EmitterConfig {
    EmitterConfig {
        event_bus: "bus".into(),
        source: uc_schemas::DEFAULT_SOURCE.into(),
        budget: Duration::from_millis(2000),
        attempt_timeout: Duration::from_millis(500),
        connect_timeout: Duration::from_millis(250),
        max_attempts: 4,
        failure_policy: policy,
        fallback_queue_url: Some("http://127.0.0.1:1/queue".into()),
        fallback_reserve: Duration::from_millis(500),
    }
}

/// An emitter whose publisher and fallback both accept, or both refuse, with their recorders.
fn emitter(policy: FailurePolicy, publish_fails: bool) -> (Emitter<Port, Port>, Port, Port) {
    let port = || {
        Port(Arc::new(if publish_fails {
            Recorder::failing()
        } else {
            Recorder::default()
        }))
    };
    let (publisher, fallback) = (port(), port());
    let emitter = Emitter::new(
        config(policy),
        "eu-west-1".into(),
        publisher.clone(),
        Some(fallback.clone()),
    );
    (emitter, publisher, fallback)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
}

fn cognito_event(sub: Value, email: Value, email_verified: Value) -> Value {
    json!({
        "version": "1", "region": "us-east-1", "userPoolId": "us-east-1_Ab12Cd34E",
        "userName": "jane", "triggerSource": "PostConfirmation_ConfirmSignUp",
        "callerContext": {"awsSdkVersion": "aws-sdk-js-3", "clientId": "1example23456789"},
        "request": {
            "userAttributes": {"sub": sub, "email": email, "email_verified": email_verified},
            "clientMetadata": {"secret": "do-not-copy"}
        },
        "response": {}
    })
}

fn skip_reason(event: &Value) -> Option<SkipReason> {
    match decide(event, "eu-west-1", chrono::Utc::now()) {
        Decision::Skip(reason) => Some(reason),
        Decision::Publish { .. } => None,
    }
}

#[test]
fn a_trigger_source_that_is_not_a_string_is_skipped() {
    for odd in [
        json!(7),
        json!(null),
        json!(["PostConfirmation_ConfirmSignUp"]),
        json!("  "),
    ] {
        let mut event = cognito_event(json!(SUB), json!("a@example.com"), json!("true"));
        event["triggerSource"] = odd;
        assert_eq!(
            skip_reason(&event),
            Some(SkipReason::MissingField("triggerSource"))
        );
    }
}

#[test]
fn missing_user_pool_id_or_user_name_is_skipped() {
    for (field, reason) in [("userPoolId", "userPoolId"), ("userName", "userName")] {
        let mut event = cognito_event(json!(SUB), json!("a@example.com"), json!("true"));
        event.as_object_mut().unwrap().remove(field);
        assert_eq!(skip_reason(&event), Some(SkipReason::MissingField(reason)));
        event[field] = json!("   ");
        assert_eq!(skip_reason(&event), Some(SkipReason::MissingField(reason)));
    }
    let mut event = cognito_event(json!(SUB), json!("a@example.com"), json!("true"));
    event["request"]["userAttributes"] = json!(format!("sub={SUB}"));
    assert_eq!(
        skip_reason(&event),
        Some(SkipReason::MissingField("request.userAttributes.sub"))
    );
}

#[test]
fn odd_attribute_values_are_read_leniently() {
    // Whitespace around ids is trimmed; an email that is not a string is left out, not guessed.
    let event = cognito_event(json!(format!("  {SUB}\n")), json!(42), json!("TRUE"));
    let Decision::Publish { detail, dropped } = decide(&event, "eu-west-1", chrono::Utc::now())
    else {
        panic!("expected a publish");
    };
    assert_eq!(dropped, []);
    assert_eq!(detail.sub, SUB);
    assert_eq!(detail.email, None);
    assert_eq!(detail.email_verified, Some(true));
    assert_eq!(
        detail.event_id,
        uc_schemas::event_id("us-east-1_Ab12Cd34E", SUB)
    );
}

#[test]
fn emails_with_quotes_newlines_and_unicode_are_carried_exactly() {
    let email = "\"o'brien \\\"q\\\"\"\n@例え.jp";
    let event = cognito_event(json!(SUB), json!(email), json!(true));
    let (emitter, publisher, _) = emitter(FailurePolicy::FailOpen, false);
    let returned = runtime()
        .block_on(emitter.handle_value(event.clone(), None))
        .unwrap();
    assert_eq!(returned, event);
    let sent = publisher.0.sent();
    assert_eq!(sent.len(), 1);
    let detail: Value = serde_json::from_str(&sent[0]).unwrap();
    assert_eq!(detail["email"], email);
    let parsed = uc_schemas::parse_message(&sent[0]).unwrap();
    assert_eq!(parsed.detail.email.as_deref(), Some(email));
}

#[test]
fn client_metadata_and_unknown_fields_are_never_published() {
    let mut event = cognito_event(json!(SUB), json!("a@example.com"), json!("true"));
    event["request"]["userAttributes"]["custom:tier"] = json!("gold");
    event["somethingNew"] = json!({"nested": [1, 2, 3]});
    let (emitter, publisher, _) = emitter(FailurePolicy::FailOpen, false);
    let returned = runtime()
        .block_on(emitter.handle_value(event.clone(), None))
        .unwrap();
    assert_eq!(
        returned, event,
        "returned unchanged, unknown fields included"
    );
    let sent = publisher.0.sent().join("\n");
    for absent in ["do-not-copy", "clientMetadata", "gold", "somethingNew"] {
        assert!(!sent.contains(absent), "{absent} was published: {sent}");
    }
}

/// Runs `body` in a child copy of this test binary with its stdout kept from the terminal: the handler writes
/// one EMF metrics line to stdout per call (which the test harness does not capture), and a
/// property test makes a thousand calls. Failures still show: stderr is inherited.
fn with_quiet_stdout(test_name: &str, body: impl FnOnce()) {
    const CHILD: &str = "UC_EMITTER_QUIET_CHILD";
    if std::env::var_os(CHILD).is_some() {
        return body();
    }
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([test_name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .stderr(std::process::Stdio::inherit())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{test_name} failed in the child process (see above)"
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("test result: ok. 1 passed"),
        "the child ran no test named {test_name}"
    );
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[\"'\\\\\n\r\t\u{0}@ a-zé東😀{}]{0,24}",
        Just(String::new()),
    ]
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
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(text(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn arb_object() -> impl Strategy<Value = Value> {
    prop::collection::btree_map(text(), arb_json(), 0..8)
        .prop_map(|m| Value::Object(m.into_iter().collect()))
}

/// Cognito-shaped events: real and odd trigger sources, ids, emails and `email_verified`
/// values, with arbitrary extra fields at every level.
fn arb_cognito_event() -> impl Strategy<Value = Value> {
    let trigger = prop_oneof![
        Just(json!("PostConfirmation_ConfirmSignUp")),
        Just(json!("PostConfirmation_ConfirmForgotPassword")),
        text().prop_map(Value::from),
        arb_json(),
    ];
    let id = prop_oneof![
        4 => text().prop_map(Value::from),
        1 => arb_json(),
    ];
    let verified = prop_oneof![
        Just(json!("true")),
        Just(json!("false")),
        any::<bool>().prop_map(Value::from),
        arb_json(),
    ];
    (
        trigger,
        (id.clone(), id.clone(), id.clone(), id),
        verified,
        (arb_object(), arb_object(), arb_object()),
    )
        .prop_map(
            |(trigger, (sub, user, pool, email), verified, (top, attrs, request))| {
                let mut event = json!({
                    "version": "1", "region": "eu-west-1", "userPoolId": pool,
                    "userName": user, "triggerSource": trigger,
                    "callerContext": {"awsSdkVersion": "x", "clientId": "c"},
                    "request": {"userAttributes": {
                        "sub": sub, "email": email, "email_verified": verified
                    }},
                    "response": {}
                });
                for (extra, at) in [
                    (top, ""),
                    (attrs, "/request/userAttributes"),
                    (request, "/request"),
                ] {
                    let target = event.pointer_mut(at).unwrap().as_object_mut().unwrap();
                    for (k, v) in extra.as_object().unwrap() {
                        target.entry(k.clone()).or_insert_with(|| v.clone());
                    }
                }
                event
            },
        )
}

/// The contract's JSON Schema (Draft 4), compiled once.
fn schema() -> &'static jsonschema::Validator {
    static SCHEMA: OnceLock<jsonschema::Validator> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let schema: Value = serde_json::from_str(uc_schemas::JSON_SCHEMA).unwrap();
        jsonschema::draft4::new(&schema).expect("the schema is valid Draft 4")
    })
}

/// A published detail (the PutEvents detail, or the fallback envelope's) must satisfy the JSON
/// Schema and `UserConfirmed::validate`, and carry the derived event id; and when the event's
/// text needed `repaired` reading (`Value` refuses it), no field may hold the U+FFFD a lone
/// surrogate was read as.
fn check_published(detail: &Value, repaired: bool) -> Result<(), TestCaseError> {
    let errors: Vec<String> = schema()
        .iter_errors(detail)
        .map(|e| e.to_string())
        .collect();
    prop_assert!(
        errors.is_empty(),
        "the schema refuses {}: {:?}",
        detail,
        errors
    );
    let typed: UserConfirmed = serde_json::from_value(detail.clone())
        .map_err(|e| TestCaseError::fail(format!("{e}: {detail}")))?;
    prop_assert_eq!(typed.validate(), Ok(()), "{}", detail);
    prop_assert!(typed.has_derived_event_id(), "{}", detail);
    if repaired {
        let fields = detail.as_object().unwrap().values();
        let texts: Vec<&str> = fields.filter_map(Value::as_str).collect();
        prop_assert!(
            !texts.iter().any(|t| t.contains('\u{fffd}')),
            "published a surrogate read as U+FFFD: {}",
            detail
        );
    }
    Ok(())
}

/// Handles the JSON text `event` under each policy with publishing succeeding and failing, and
/// checks: the exact text comes back (fail-closed errs only for a failed publish, with the
/// stable error type and no `sub` in the message); something is published exactly when
/// `decide_text` says so; and everything published satisfies the contract.
fn check_handling(event: &str) -> Result<(), TestCaseError> {
    let runtime = runtime();
    let decision = decide_text(event, "eu-west-1", chrono::Utc::now());
    let publishes = matches!(decision, Decision::Publish { .. });
    let repaired = serde_json::from_str::<Value>(event).is_err();
    for (policy, fails) in [
        (FailurePolicy::FailOpen, false),
        (FailurePolicy::FailOpen, true),
        (FailurePolicy::FailClosed, false),
        (FailurePolicy::FailClosed, true),
    ] {
        let (emitter, publisher, fallback) = emitter(policy, fails);
        let raw = RawValue::from_string(event.to_owned())
            .map_err(|e| TestCaseError::fail(format!("not JSON text ({e}): {event}")))?;
        let result = runtime.block_on(emitter.handle(
            raw,
            Some(tokio::time::Instant::now() + Duration::from_secs(3)),
        ));
        let sent = publisher.0.sent();
        let fell_back = fallback.0.sent();
        prop_assert_eq!(sent.len(), usize::from(publishes), "{:?}", sent);
        prop_assert_eq!(fell_back.len(), usize::from(publishes && fails));
        for detail in &sent {
            check_published(&serde_json::from_str(detail).unwrap(), repaired)?;
        }
        for envelope in &fell_back {
            let envelope: Value = serde_json::from_str(envelope).unwrap();
            check_published(&envelope["detail"], repaired)?;
        }
        match (policy, fails && publishes, result) {
            (FailurePolicy::FailClosed, true, Err(error)) => {
                let diagnostic = lambda_runtime::Diagnostic::from(error.clone());
                prop_assert_eq!(diagnostic.error_type, "UserConfirmedPublishFailed");
                let uc_emitter::EmitterError::PublishFailed { sub, .. } = error;
                prop_assert!(!diagnostic.error_message.contains(&sub));
            }
            (FailurePolicy::FailClosed, true, Ok(_)) => {
                return Err(TestCaseError::fail("fail-closed hid a failure"));
            }
            (_, _, Ok(returned)) => {
                prop_assert_eq!(returned.get(), event, "{:?}/{}", policy, fails)
            }
            (_, _, Err(error)) => {
                return Err(TestCaseError::fail(format!("{policy:?}/{fails}: {error}")));
            }
        }
    }
    Ok(())
}

/// `n` cases; failures are printed (with the shrunk input), not persisted: the test runs in a
/// child process whose source file proptest cannot locate from here.
fn cases(n: u32) -> ProptestConfig {
    ProptestConfig {
        cases: n,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

#[test]
fn any_json_object_comes_back_unchanged() {
    with_quiet_stdout("any_json_object_comes_back_unchanged", || {
        proptest!(cases(128), |(event in arb_object())| {
            check_handling(&event.to_string())?;
        });
    });
}

#[test]
fn any_cognito_shaped_event_comes_back_unchanged() {
    with_quiet_stdout("any_cognito_shaped_event_comes_back_unchanged", || {
        proptest!(cases(256), |(event in arb_cognito_event())| {
            check_handling(&event.to_string())?;
        });
    });
}

/// A JSON string literal.
fn quoted(text: &str) -> String {
    serde_json::to_string(text).unwrap()
}

/// A JSON string literal holding one unpaired UTF-16 surrogate escape (`"…\ud800…"`): valid
/// JSON text, which `serde_json::Value` refuses.
fn lone_surrogate_string() -> impl Strategy<Value = String> {
    (text(), 0xD800u32..=0xDFFF, text(), any::<bool>()).prop_map(|(before, unit, after, upper)| {
        let (before, after) = (quoted(&before), quoted(&after));
        let escape = if upper {
            format!("\\u{unit:04X}")
        } else {
            format!("\\u{unit:04x}")
        };
        format!("{}{escape}{}", &before[..before.len() - 1], &after[1..])
    })
}

/// JSON text of numbers `Value` cannot hold exactly: integers beyond 64 bits, beyond `f64`.
fn huge_number() -> impl Strategy<Value = String> {
    prop_oneof![
        "-?[1-9][0-9]{20,60}",
        "-?[1-9][0-9]{310,330}",
        "-?[1-9](\\.[0-9]{1,5})?[eE][+]?[4-9][0-9]{2}",
        Just("123456789012345678901234567890".to_owned()),
    ]
}

/// JSON text of one value: ordinary JSON, or what `Value` cannot hold. Boxed, as are the
/// field strategies below: nested strategy types make stack frames large enough in debug builds
/// to overflow a test thread's stack while generating.
fn raw_json() -> BoxedStrategy<String> {
    prop_oneof![
        3 => arb_json().prop_map(|v| v.to_string()),
        1 => huge_number(),
        1 => lone_surrogate_string(),
    ]
    .boxed()
}

/// A JSON string literal of `n` characters.
fn long_string(range: std::ops::Range<usize>) -> impl Strategy<Value = String> {
    (
        range,
        prop_oneof![Just('u'), Just('é'), Just('東'), Just('😀')],
    )
        .prop_map(|(n, c)| quoted(&c.to_string().repeat(n)))
}

/// Cognito-shaped events as JSON text, each field real, at or beyond the contract's limits,
/// unicode, a lone surrogate, a huge number or any JSON; huge numbers and lone surrogates also
/// where the emitter reads nothing (client metadata, custom attributes, new fields).
fn arb_cognito_text() -> impl Strategy<Value = String> {
    // Mostly real values, so that about a third of the events publish.
    let trigger = prop_oneof![
        8 => Just(quoted("PostConfirmation_ConfirmSignUp")),
        1 => Just(quoted("PostConfirmation_ConfirmForgotPassword")),
        1 => raw_json(),
    ]
    .boxed();
    let uuid = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}";
    let sub = prop_oneof![
        12 => uuid.prop_map(|s| quoted(&s)),
        1 => uuid.prop_map(|s| quoted(&s.to_uppercase())),
        1 => proptest::string::string_regex(&format!("[ \t\n]{{1,2}}{uuid}[ \n]{{0,2}}"))
            .unwrap()
            .prop_map(|s| quoted(&s)),
        1 => text().prop_map(|s| quoted(&s)),
        1 => raw_json(),
    ]
    .boxed();
    let username = prop_oneof![
        10 => "[a-zA-Z0-9éü東😀._+@-]{1,40}".prop_map(|s| quoted(&s)),
        2 => text().prop_map(|s| quoted(&s)),
        1 => long_string(120..140),
        1 => long_string(190..210),
        1 => lone_surrogate_string(),
        1 => raw_json(),
    ]
    .boxed();
    let pool = prop_oneof![
        10 => "[a-z]{2}-[a-z]{4,9}-[1-9]_[A-Za-z0-9]{9}".prop_map(|s| quoted(&s)),
        1 => long_string(50..90),
        1 => text().prop_map(|s| quoted(&s)),
        1 => lone_surrogate_string(),
        1 => raw_json(),
    ]
    .boxed();
    let region = prop_oneof![
        10 => prop::sample::select(vec!["us-east-1", "eu-west-1", "us-gov-west-1", "ap-southeast-2"])
            .prop_map(quoted),
        1 => Just(quoted("moon")),
        1 => "[a-z]{2}-[a-z]{1,9}-[0-9]{1,2}[ \n]?".prop_map(|s| quoted(&s)),
        1 => text().prop_map(|s| quoted(&s)),
        1 => raw_json(),
    ]
    .boxed();
    let email = prop_oneof![
        6 => "[a-z.+]{1,20}@example\\.com".prop_map(|s| quoted(&s)),
        1 => (2030usize..2060).prop_map(|n| quoted(&format!("{}@example.com", "e".repeat(n)))),
        1 => lone_surrogate_string(),
        1 => raw_json(),
    ]
    .boxed();
    let client = prop_oneof![
        6 => "[a-z0-9]{1,26}".prop_map(|s| quoted(&s)),
        1 => Just(quoted("CLIENT_ID_NOT_APPLICABLE")),
        1 => long_string(120..140),
        1 => lone_surrogate_string(),
        1 => raw_json(),
    ]
    .boxed();
    let verified = prop_oneof![
        Just(quoted("true")),
        Just(quoted("false")),
        any::<bool>().prop_map(|b| b.to_string()),
        raw_json(),
    ]
    .boxed();
    (
        (trigger, sub, username, pool),
        (region, email, client, verified),
        (raw_json(), raw_json(), raw_json(), arb_object()),
    )
        .prop_map(
            |((trigger, sub, user, pool), (region, email, client, verified), (metadata, custom, new, extra))| {
                let extra = extra.to_string();
                let extra = match extra.as_str() {
                    "{}" => String::new(),
                    members => format!(", {}", &members[1..members.len() - 1]),
                };
                format!(
                    r#"{{"version":"1","region":{region},"userPoolId":{pool},"userName":{user},"callerContext":{{"awsSdkVersion":"aws-sdk-js-3","clientId":{client}}},"triggerSource":{trigger},"request":{{"userAttributes":{{"sub":{sub},"cognito:user_status":"CONFIRMED","email":{email},"email_verified":{verified},"custom:x":{custom}}},"clientMetadata":{{"k":{metadata}}}}},"response":{{}},"somethingNew":{new}{extra}}}"#
                )
            },
        )
}

#[test]
fn any_cognito_shaped_text_comes_back_byte_for_byte_and_publishes_only_valid_details() {
    with_quiet_stdout(
        "any_cognito_shaped_text_comes_back_byte_for_byte_and_publishes_only_valid_details",
        || {
            proptest!(cases(384), |(event in arb_cognito_text())| {
                check_handling(&event)?;
            });
        },
    );
}

/// The AWS docs' sample event as JSON text, with `field` (a top-level member) set to the JSON
/// text `value`.
fn sample_text(field: &str, value: &str) -> String {
    let mut event = cognito_event(json!(SUB), json!("jane@example.com"), json!("true"));
    event[field] = json!("PLACEHOLDER");
    event.to_string().replacen("\"PLACEHOLDER\"", value, 1)
}

/// What `decide_text` did: published, leaving out these fields; or skipped, with the reason's
/// code and (for `OutOfContract`) the field.
type Outcome = Result<Vec<&'static str>, (&'static str, Option<&'static str>)>;

/// The cases issue 13 lists, and their neighbours: what is decided, and that the event comes
/// back byte for byte under both policies (`check_handling`).
#[test]
fn listed_out_of_range_inputs_are_skipped_or_normalised_and_come_back_unchanged() {
    with_quiet_stdout(
        "listed_out_of_range_inputs_are_skipped_or_normalised_and_come_back_unchanged",
        || {
            let skipped = |field: &'static str| -> Outcome { Err(("OutOfContract", Some(field))) };
            let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
            let mut long_email = cognito_event(json!(SUB), json!("e".repeat(2049)), json!("true"));
            long_email["callerContext"]["clientId"] = json!("c".repeat(129));
            let mut rows: Vec<(&str, String, Outcome)> = vec![
                (
                    "200-character userName",
                    sample_text("userName", &quoted(&"u".repeat(200))),
                    skipped("username"),
                ),
                (
                    "80-character pool id",
                    sample_text("userPoolId", &quoted(&"p".repeat(80))),
                    skipped("userPoolId"),
                ),
                (
                    "region moon",
                    sample_text("region", r#""moon""#),
                    skipped("region"),
                ),
                (
                    "lone surrogate in userName",
                    sample_text("userName", r#""\ud800""#),
                    skipped("username"),
                ),
                (
                    "lone surrogate after text",
                    sample_text("userName", r#""jane\uDFFF""#),
                    skipped("username"),
                ),
                (
                    "lone surrogate where nothing is read",
                    sample_text("somethingNew", r#"{"k": "\ud800"}"#),
                    Ok(vec![]),
                ),
                (
                    "30-digit integer",
                    sample_text("x", "123456789012345678901234567890"),
                    Ok(vec![]),
                ),
                (
                    "number beyond f64",
                    sample_text("x", "[1e400, -1E999]"),
                    Ok(vec![]),
                ),
                (
                    "2049-character email, 129-character clientId",
                    long_email.to_string(),
                    Ok(vec!["email", "clientId"]),
                ),
                (
                    "nesting 200 levels deep",
                    sample_text("x", &deep),
                    Err(("UnreadableEvent", None)),
                ),
            ];
            let mut uppercase = cognito_event(
                json!(SUB.to_uppercase()),
                json!("a@example.com"),
                json!("true"),
            );
            uppercase["x"] = json!(1);
            rows.push(("uppercase sub", uppercase.to_string(), skipped("sub")));
            for (name, text, expected) in rows {
                let decided: Outcome = match decide_text(&text, "eu-west-1", chrono::Utc::now()) {
                    Decision::Publish { detail, dropped } => {
                        assert_eq!(detail.sub, SUB, "{name}");
                        Ok(dropped.iter().map(|v| v.field).collect::<Vec<_>>())
                    }
                    Decision::Skip(SkipReason::OutOfContract(v)) => {
                        Err(("OutOfContract", Some(v.field)))
                    }
                    Decision::Skip(reason) => Err((reason.code(), None)),
                };
                assert_eq!(decided, expected, "{name}");
                if let Err(e) = check_handling(&text) {
                    panic!("{name}: {e}");
                }
            }
        },
    );
}
