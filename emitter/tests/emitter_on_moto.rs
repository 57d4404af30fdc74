//! The emitter against real local endpoints: moto server for EventBridge and SQS, and scripted
//! HTTP endpoints for faults moto cannot produce (slow answers, failed entries).

use std::time::Duration;

use serde_json::{Value, json};
use uc_devkit::{Answer, Moto, ScriptedHttp, free_port, sdk_config_for};
use uc_emitter::adapters::{EventBridgePublisher, SqsFallback};
use uc_emitter::{Emitter, EmitterConfig, EmitterError};
use uc_schemas::{DEFAULT_SOURCE, JSON_SCHEMA, UserConfirmed, event_pattern, parse_message};

const BUS: &str = "uc-test-bus";

fn config(pairs: &[(&str, &str)]) -> EmitterConfig {
    EmitterConfig::from_reader(&uc_runtime::env::from_pairs(pairs.iter().copied())).unwrap()
}

fn cognito_event(sub: &str) -> Value {
    json!({
        "version": "1",
        "region": "us-east-1",
        "userPoolId": "us-east-1_Ab12Cd34E",
        "userName": "jane",
        "callerContext": {"awsSdkVersion": "aws-sdk-unknown-unknown", "clientId": "1example23456789"},
        "triggerSource": "PostConfirmation_ConfirmSignUp",
        "request": {"userAttributes": {
            "sub": sub, "email": "jane.doe@example.com", "email_verified": "true",
            "cognito:user_status": "CONFIRMED"
        }},
        "response": {},
        "someFutureField": {"kept": [1, 2, 3]}
    })
}

/// A bus with the contract's rule routing to a fresh queue; returns the queue URL.
async fn bus_rule_queue(sdk: &aws_config::SdkConfig, queue: &str) -> String {
    let events = aws_sdk_eventbridge::Client::new(sdk);
    let sqs = aws_sdk_sqs::Client::new(sdk);
    events.create_event_bus().name(BUS).send().await.unwrap();
    let queue_url = sqs
        .create_queue()
        .queue_name(queue)
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let queue_arn = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
        .clone();
    events
        .put_rule()
        .name("user-confirmed")
        .event_bus_name(BUS)
        .event_pattern(event_pattern(DEFAULT_SOURCE).to_string())
        .send()
        .await
        .unwrap();
    events
        .put_targets()
        .rule("user-confirmed")
        .event_bus_name(BUS)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("queue")
                .arn(queue_arn)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    queue_url
}

async fn receive_all(sdk: &aws_config::SdkConfig, queue_url: &str) -> Vec<String> {
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let out = sqs
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(10)
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap();
    out.messages()
        .iter()
        .filter_map(|m| m.body().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_through_a_real_bus_and_rule_to_the_queue() {
    let moto = Moto::start();
    let sdk = moto.sdk_config().await;
    let queue_url = bus_rule_queue(&sdk, "profiles").await;
    let emitter = Emitter::from_sdk_config(config(&[("EVENT_BUS_NAME", BUS)]), &sdk);

    let event = cognito_event("4b1b2b8e-6b2a-4d3c-9a1e-0123456789ab");
    let before = chrono::Utc::now();
    let returned = emitter.handle_value(event.clone(), None).await.unwrap();
    assert_eq!(
        returned, event,
        "the Cognito event comes back unchanged, unknown fields included"
    );

    let bodies = receive_all(&sdk, &queue_url).await;
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    let envelope: Value = serde_json::from_str(&bodies[0]).unwrap();
    assert_eq!(envelope["detail-type"], "UserConfirmed");
    assert_eq!(envelope["source"], DEFAULT_SOURCE);

    let schema: Value = serde_json::from_str(JSON_SCHEMA).unwrap();
    let validator = jsonschema::draft4::new(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&envelope["detail"])
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:?}");

    let parsed = parse_message(&bodies[0]).unwrap().detail;
    let expected = UserConfirmed::new(
        "us-east-1_Ab12Cd34E",
        "4b1b2b8e-6b2a-4d3c-9a1e-0123456789ab",
        "jane",
        Some("jane.doe@example.com".into()),
        Some(true),
        Some("1example23456789".into()),
        parsed.confirmed_at,
        "us-east-1",
        uc_schemas::Origin::PostConfirmation,
    );
    assert_eq!(parsed, expected);
    assert!(parsed.confirmed_at >= before && parsed.confirmed_at <= chrono::Utc::now());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forgot_password_publishes_nothing() {
    let moto = Moto::start();
    let sdk = moto.sdk_config().await;
    let queue_url = bus_rule_queue(&sdk, "profiles").await;
    let emitter = Emitter::from_sdk_config(config(&[("EVENT_BUS_NAME", BUS)]), &sdk);
    let mut event = cognito_event("5f0a1b2c-0000-4000-8000-000000000001");
    event["triggerSource"] = "PostConfirmation_ConfirmForgotPassword".into();
    assert_eq!(
        emitter.handle_value(event.clone(), None).await.unwrap(),
        event
    );
    assert!(receive_all(&sdk, &queue_url).await.is_empty());
}

/// The budget holds whatever the endpoint does; checked with slack for scheduling only.
fn assert_within(elapsed: Duration, budget_ms: u64) {
    assert!(
        elapsed < Duration::from_millis(budget_ms + 300),
        "took {elapsed:?}, budget {budget_ms} ms"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_bus_falls_back_to_the_queue() {
    let moto = Moto::start();
    let sdk = moto.sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let fallback_url = sqs
        .create_queue()
        .queue_name("worker-queue")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let emitter = Emitter::from_sdk_config(
        config(&[
            ("EVENT_BUS_NAME", "no-such-bus"),
            ("FALLBACK_QUEUE_URL", &fallback_url),
            ("PUBLISH_BUDGET_MS", "1500"),
        ]),
        &sdk,
    );
    let event = cognito_event("5f0a1b2c-0000-4000-8000-00000000fa11");
    let start = std::time::Instant::now();
    assert_eq!(
        emitter.handle_value(event.clone(), None).await.unwrap(),
        event
    );
    assert_within(start.elapsed(), 1500);
    let bodies = receive_all(&sdk, &fallback_url).await;
    assert_eq!(bodies.len(), 1);
    let parsed = parse_message(&bodies[0]).unwrap();
    assert_eq!(parsed.detail.sub, "5f0a1b2c-0000-4000-8000-00000000fa11");
    assert_eq!(
        parsed.envelope.unwrap().source.as_deref(),
        Some(DEFAULT_SOURCE)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connections_end_within_budget_under_either_policy() {
    let closed = format!("http://127.0.0.1:{}", free_port());
    let sdk = sdk_config_for(&closed).await;
    let open = Emitter::from_sdk_config(
        config(&[("EVENT_BUS_NAME", BUS), ("PUBLISH_BUDGET_MS", "800")]),
        &sdk,
    );
    let event = cognito_event("5f0a1b2c-0000-4000-8000-0000000def00");
    let start = std::time::Instant::now();
    assert_eq!(open.handle_value(event.clone(), None).await.unwrap(), event);
    assert_within(start.elapsed(), 800);

    let closed_policy = Emitter::from_sdk_config(
        config(&[
            ("EVENT_BUS_NAME", BUS),
            ("PUBLISH_BUDGET_MS", "800"),
            ("FAILURE_POLICY", "fail-closed"),
        ]),
        &sdk,
    );
    let start = std::time::Instant::now();
    let err = closed_policy.handle_value(event, None).await.unwrap_err();
    assert_within(start.elapsed(), 800);
    let EmitterError::PublishFailed { sub, code } = err;
    assert_eq!(sub, "5f0a1b2c-0000-4000-8000-0000000def00");
    assert_eq!(code, "Connect");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_endpoint_cannot_hold_the_trigger_past_its_budget() {
    let slow = ScriptedHttp::start(vec![
        Answer::json(
            200,
            json!({"FailedEntryCount": 0, "Entries": [{"EventId": "e"}]}),
        )
        .after(Duration::from_secs(10)),
    ])
    .await;
    let sdk = sdk_config_for(&slow.endpoint()).await;
    let moto = Moto::start();
    let moto_sdk = moto.sdk_config().await;
    let fallback_url = aws_sdk_sqs::Client::new(&moto_sdk)
        .create_queue()
        .queue_name("q")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let cfg = config(&[
        ("EVENT_BUS_NAME", BUS),
        ("PUBLISH_BUDGET_MS", "1200"),
        ("PUBLISH_ATTEMPT_TIMEOUT_MS", "300"),
        ("FALLBACK_QUEUE_URL", &fallback_url),
        ("FALLBACK_RESERVE_MS", "400"),
    ]);
    let emitter = Emitter::new(
        cfg.clone(),
        "us-east-1".into(),
        EventBridgePublisher::new(&sdk, &cfg),
        Some(SqsFallback::new(&moto_sdk, &cfg, fallback_url.clone())),
    );
    let event = cognito_event("5f0a1b2c-0000-4000-8000-000000005100");
    let start = std::time::Instant::now();
    assert_eq!(
        emitter.handle_value(event, None).await.unwrap()["userName"],
        "jane"
    );
    assert_within(start.elapsed(), 1200);
    assert!(
        slow.requests().len() >= 2,
        "retried within the budget: {}",
        slow.requests().len()
    );
    assert_eq!(
        receive_all(&moto_sdk, &fallback_url).await.len(),
        1,
        "the fallback got the event"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_entry_is_retried_until_accepted() {
    let failed = json!({"FailedEntryCount": 1, "Entries": [{"ErrorCode": "InternalFailure", "ErrorMessage": "try again"}]});
    let ok = json!({"FailedEntryCount": 0, "Entries": [{"EventId": "11111111-2222-3333-4444-555555555555"}]});
    let endpoint = ScriptedHttp::start(vec![
        Answer::json(200, failed.clone()),
        Answer::json(200, failed),
        Answer::json(200, ok),
    ])
    .await;
    let sdk = sdk_config_for(&endpoint.endpoint()).await;
    let emitter = Emitter::from_sdk_config(config(&[("EVENT_BUS_NAME", BUS)]), &sdk);
    emitter
        .handle_value(cognito_event("5f0a1b2c-0000-4000-8000-00000000e001"), None)
        .await
        .unwrap();
    let requests = endpoint.requests();
    assert_eq!(requests.len(), 3, "two failed entries, then accepted");
    for body in &requests {
        let request: Value = serde_json::from_str(body).unwrap();
        let detail: Value =
            serde_json::from_str(request["Entries"][0]["Detail"].as_str().unwrap()).unwrap();
        assert_eq!(detail["sub"], "5f0a1b2c-0000-4000-8000-00000000e001");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanently_failed_entry_goes_to_the_fallback_or_fails_closed() {
    let rejected = json!({"FailedEntryCount": 1, "Entries": [{"ErrorCode": "NotAuthorizedForSourceException", "ErrorMessage": "no"}]});
    let endpoint = ScriptedHttp::start(vec![Answer::json(200, rejected)]).await;
    let sdk = sdk_config_for(&endpoint.endpoint()).await;
    let moto = Moto::start();
    let moto_sdk = moto.sdk_config().await;
    let fallback_url = aws_sdk_sqs::Client::new(&moto_sdk)
        .create_queue()
        .queue_name("q")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();

    let cfg = config(&[
        ("EVENT_BUS_NAME", BUS),
        ("FALLBACK_QUEUE_URL", &fallback_url),
        ("FAILURE_POLICY", "fail-closed"),
    ]);
    let with_fallback = Emitter::new(
        cfg.clone(),
        "us-east-1".into(),
        EventBridgePublisher::new(&sdk, &cfg),
        Some(SqsFallback::new(&moto_sdk, &cfg, fallback_url.clone())),
    );
    with_fallback
        .handle_value(cognito_event("5f0a1b2c-0000-4000-8000-00000000beef"), None)
        .await
        .unwrap();
    assert_eq!(
        endpoint.requests().len(),
        1,
        "a permanent entry error is not retried"
    );
    assert_eq!(receive_all(&moto_sdk, &fallback_url).await.len(), 1);

    let cfg = config(&[("EVENT_BUS_NAME", BUS), ("FAILURE_POLICY", "fail-closed")]);
    let without = Emitter::new(
        cfg.clone(),
        "us-east-1".into(),
        EventBridgePublisher::new(&sdk, &cfg),
        None::<SqsFallback>,
    );
    let err = without
        .handle_value(cognito_event("5f0a1b2c-0000-4000-8000-00000000beef"), None)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("NotAuthorizedForSourceException"),
        "{err}"
    );
    assert!(!err.to_string().contains('@'));
    assert!(
        !err.to_string()
            .contains("5f0a1b2c-0000-4000-8000-00000000beef"),
        "Cognito may show the message to the user: no sub in it: {err}"
    );
}
