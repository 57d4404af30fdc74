//! Hostile and broken Cognito events (docs/bad-input.md): the handler returns every event it is
//! given unchanged, whatever happens to the publish, and publishes only what it should.
//! Publisher and fallback are in-test implementations of the emitter's two ports.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use proptest::prelude::*;
use serde_json::{Map, Value, json};
use uc_emitter::{
    Decision, Emitter, EmitterConfig, EventPublisher, FailurePolicy, FallbackQueue, SkipReason,
    decide,
};
use uc_runtime::Failure;

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
    async fn publish(&self, detail_json: &str) -> Result<(), Failure> {
        self.0.record(detail_json)
    }
}

impl FallbackQueue for Port {
    async fn send(&self, body: &str) -> Result<(), Failure> {
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
        Decision::Publish(_) => None,
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
        let mut event = cognito_event(json!("s-1"), json!("a@example.com"), json!("true"));
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
        let mut event = cognito_event(json!("s-1"), json!("a@example.com"), json!("true"));
        event.as_object_mut().unwrap().remove(field);
        assert_eq!(skip_reason(&event), Some(SkipReason::MissingField(reason)));
        event[field] = json!("   ");
        assert_eq!(skip_reason(&event), Some(SkipReason::MissingField(reason)));
    }
    let mut event = cognito_event(json!("s-1"), json!("a@example.com"), json!("true"));
    event["request"]["userAttributes"] = json!("sub=s-1");
    assert_eq!(
        skip_reason(&event),
        Some(SkipReason::MissingField("request.userAttributes.sub"))
    );
}

#[test]
fn odd_attribute_values_are_read_leniently() {
    // Whitespace around ids is trimmed; an email that is not a string is left out, not guessed.
    let event = cognito_event(json!("  s-1\n"), json!(42), json!("TRUE"));
    let Decision::Publish(detail) = decide(&event, "eu-west-1", chrono::Utc::now()) else {
        panic!("expected a publish");
    };
    assert_eq!(detail.sub, "s-1");
    assert_eq!(detail.email, None);
    assert_eq!(detail.email_verified, Some(true));
    assert_eq!(
        detail.event_id,
        uc_schemas::event_id("us-east-1_Ab12Cd34E", "s-1")
    );
}

#[test]
fn emails_with_quotes_newlines_and_unicode_are_carried_exactly() {
    let email = "\"o'brien \\\"q\\\"\"\n@例え.jp";
    let event = cognito_event(json!("s-1"), json!(email), json!(true));
    let (emitter, publisher, _) = emitter(FailurePolicy::FailOpen, false);
    let returned = runtime()
        .block_on(emitter.handle(event.clone(), None))
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
    let mut event = cognito_event(json!("s-1"), json!("a@example.com"), json!("true"));
    event["request"]["userAttributes"]["custom:tier"] = json!("gold");
    event["somethingNew"] = json!({"nested": [1, 2, 3]});
    let (emitter, publisher, _) = emitter(FailurePolicy::FailOpen, false);
    let returned = runtime()
        .block_on(emitter.handle(event.clone(), None))
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

/// Handles `event` under each policy with publishing succeeding and failing, and checks the
/// event always comes back unchanged (and fail-closed errs only for a failed publish).
fn check_returned_unchanged(event: &Value) -> Result<(), TestCaseError> {
    let runtime = runtime();
    let publishes = matches!(
        decide(event, "eu-west-1", chrono::Utc::now()),
        Decision::Publish(_)
    );
    for (policy, fails) in [
        (FailurePolicy::FailOpen, false),
        (FailurePolicy::FailOpen, true),
        (FailurePolicy::FailClosed, false),
        (FailurePolicy::FailClosed, true),
    ] {
        let (emitter, publisher, fallback) = emitter(policy, fails);
        let result = runtime.block_on(emitter.handle(
            event.clone(),
            Some(tokio::time::Instant::now() + Duration::from_secs(3)),
        ));
        let sent = publisher.0.sent();
        prop_assert_eq!(sent.len(), usize::from(publishes), "{:?}", sent);
        prop_assert_eq!(fallback.0.sent().len(), usize::from(publishes && fails));
        if publishes {
            let detail = uc_schemas::parse_message(&sent[0]);
            prop_assert!(detail.is_ok(), "published detail refused: {:?}", detail);
        }
        match (policy, fails && publishes) {
            (FailurePolicy::FailClosed, true) => {
                prop_assert!(result.is_err(), "fail-closed hid a failure")
            }
            _ => prop_assert_eq!(result.as_ref(), Ok(event), "{:?}/{}", policy, fails),
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
            check_returned_unchanged(&event)?;
        });
    });
}

#[test]
fn any_cognito_shaped_event_comes_back_unchanged() {
    with_quiet_stdout("any_cognito_shaped_event_comes_back_unchanged", || {
        proptest!(cases(256), |(event in arb_cognito_event())| {
            check_returned_unchanged(&event)?;
        });
    });
}
