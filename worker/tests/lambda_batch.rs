//! The Lambda front end on real local parts: moto's SQS for the DLQ, the AppSync stand-in
//! (signature-checking, fault-injecting) for GraphQL.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;
use uc_devkit::{AppSyncStandIn, Moto, sqs};
use uc_schemas::{DEFAULT_SOURCE, UserConfirmed, sub_from_label, to_envelope};

const POOL: &str = "us-east-1_Ab12Cd34E";
mod support;
use support::sqs_event;
use uc_schemas::dead_letter::attr;
use uc_worker::lambda::handle_batch;
use uc_worker::{MessageHandler, MessageMeta, MessageReport, WorkerConfig, build_worker};

/// The `sub` the stand-in sees for the user called `label` in these tests.
fn sub(label: &str) -> String {
    sub_from_label(label)
}

fn body(label: &str) -> String {
    let event = UserConfirmed::builder(POOL, sub(label))
        .username(format!("user-{label}"))
        .email(format!("{label}@example.com"))
        .email_verified(true)
        .client_id("client")
        .build();
    to_envelope(DEFAULT_SOURCE, &event).to_string()
}

async fn config(standin: &AppSyncStandIn, dlq_url: Option<&str>) -> WorkerConfig {
    let mut pairs = vec![
        ("APPSYNC_GRAPHQL_URL", standin.url.clone()),
        ("USER_POOL_ID", POOL.into()),
        ("MAX_ATTEMPTS", "4".into()),
        ("RETRY_MIN_DELAY_MS", "10".into()),
        ("RETRY_MAX_DELAY_MS", "40".into()),
    ];
    if let Some(url) = dlq_url {
        pairs.push(("DLQ_URL", url.to_owned()));
    }
    WorkerConfig::from_reader(&uc_runtime::env::from_pairs(pairs)).unwrap()
}

fn failed_ids(response: &aws_lambda_events::event::sqs::SqsBatchResponse) -> Vec<String> {
    let mut ids: Vec<String> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_batch_reports_exactly_the_right_failures() {
    let moto = Moto::start();
    let sdk = moto.sdk_config().await;
    let client = aws_sdk_sqs::Client::new(&sdk);
    let (dlq_url, _) = sqs::create_queue(&client, "worker-dlq", 30).await;
    let standin = AppSyncStandIn::start(&[]);
    let worker = Arc::new(
        build_worker(&config(&standin, Some(&dlq_url)).await, &sdk)
            .await
            .unwrap(),
    );

    // An existing profile, then the faults.
    let batch = sqs_event(&[("m-existing-first", body("sub-dup"))]);
    assert!(
        handle_batch(worker.clone(), batch, None, 8)
            .await
            .unwrap()
            .batch_item_failures
            .is_empty()
    );
    standin
        .set_faults(json!([
            {"status": 503, "count": 2, "match": {"id": sub("sub-flaky")}},
            {"errorType": "Unauthorized", "match": {"id": sub("sub-denied")}},
            {"status": 503, "match": {"id": sub("sub-down")}},
        ]))
        .await;

    let batch = sqs_event(&[
        ("m-good", body("sub-good")),
        ("m-dup", body("sub-dup")),
        ("m-poison", "{\"not\": \"an event\"".into()),
        ("m-flaky", body("sub-flaky")),
        ("m-denied", body("sub-denied")),
        ("m-down", body("sub-down")),
    ]);
    let response = handle_batch(worker.clone(), batch, None, 8).await.unwrap();
    assert_eq!(
        failed_ids(&response),
        ["m-down"],
        "only the still-failing message is retried by SQS"
    );

    let stats = standin.stats().await;
    for (id, created) in [
        (sub("sub-good"), 1),
        (sub("sub-dup"), 1),
        (sub("sub-flaky"), 1),
        (sub("sub-denied"), 0),
        (sub("sub-down"), 0),
    ] {
        assert_eq!(
            stats["perId"][&id]["created"], created,
            "{id}: {}",
            stats["perId"][&id]
        );
    }
    assert_eq!(stats["perId"][sub("sub-flaky")]["attempts"], 3);
    assert_eq!(
        stats["perId"][sub("sub-down")]["attempts"],
        4,
        "bounded by MAX_ATTEMPTS"
    );
    assert_eq!(
        stats["perId"][sub("sub-denied")]["attempts"],
        1,
        "a permanent failure is not retried"
    );

    let dead: HashMap<String, aws_sdk_sqs::types::Message> = sqs::drain(&client, &dlq_url)
        .await
        .into_iter()
        .map(|m| {
            let reason = m.message_attributes().unwrap()[attr::REASON]
                .string_value()
                .unwrap()
                .to_owned();
            (reason, m)
        })
        .collect();
    assert_eq!(dead.len(), 2, "{:?}", dead.keys());
    let poison = &dead["NotJson"];
    assert_eq!(
        poison.body(),
        Some("{\"not\": \"an event\""),
        "the original body is kept"
    );
    let poison_attributes = poison.message_attributes().unwrap();
    assert_eq!(poison_attributes[attr::STAGE].string_value(), Some("parse"));
    assert_eq!(
        poison_attributes[attr::SOURCE_MESSAGE_ID].string_value(),
        Some("m-poison")
    );
    assert!(
        poison_attributes[attr::FIRST_SEEN_AT]
            .string_value()
            .unwrap()
            .starts_with("2026-")
    );
    let denied = dead["Unauthorized"].message_attributes().unwrap();
    assert_eq!(denied[attr::STAGE].string_value(), Some("appsync"));
    assert_eq!(
        denied[attr::SUB].string_value(),
        Some(sub("sub-denied").as_str())
    );
    assert_eq!(denied[attr::ATTEMPTS].string_value(), Some("1"));
    assert!(!denied[attr::DETAIL].string_value().unwrap().contains('@'));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_dlq_permanent_failures_are_left_to_the_redrive_policy() {
    let moto = Moto::start();
    let sdk = moto.sdk_config().await;
    let standin = AppSyncStandIn::start(&[]);
    let worker = Arc::new(
        build_worker(&config(&standin, None).await, &sdk)
            .await
            .unwrap(),
    );
    standin
        .set_faults(json!([{"errorType": "MappingTemplate", "match": {"id": sub("sub-broken")}}]))
        .await;
    let batch = sqs_event(&[
        ("m-ok", body("sub-ok")),
        ("m-poison", "".into()),
        ("m-broken", body("sub-broken")),
    ]);
    let response = handle_batch(worker, batch, None, 4).await.unwrap();
    assert_eq!(failed_ids(&response), ["m-broken", "m-poison"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deadline_stops_retries_and_hands_the_message_back() {
    let moto = Moto::start();
    let sdk = moto.sdk_config().await;
    let standin = AppSyncStandIn::start(&[]);
    let mut cfg = config(&standin, None).await;
    // More attempts than the deadline can hold: with back-off steps of 50–100 ms (full jitter)
    // 100 attempts need seconds, so only the 600 ms deadline can stop them. (503s answer in
    // about a millisecond, so the steps, not the answers, must be what takes time.)
    cfg.retry.max_attempts = 100;
    cfg.retry.min_delay = Duration::from_millis(50);
    cfg.retry.max_delay = Duration::from_millis(100);
    let worker = Arc::new(build_worker(&cfg, &sdk).await.unwrap());
    standin.set_faults(json!([{"status": 503}])).await;
    let deadline = Instant::now() + Duration::from_millis(600);
    let response = handle_batch(
        worker,
        sqs_event(&[("m", body("sub-x"))]),
        Some(deadline),
        4,
    )
    .await
    .unwrap();
    assert_eq!(failed_ids(&response), ["m"]);
    let attempts = standin.stats().await["perId"][sub("sub-x")]["attempts"]
        .as_u64()
        .unwrap();
    assert!(
        (1..100).contains(&attempts),
        "retries stopped at the deadline: {attempts}"
    );
}

/// A handler that panics on one body: the test hook for panic isolation.
struct PanicsOn(&'static str);

impl MessageHandler for PanicsOn {
    async fn handle(&self, body: String, meta: MessageMeta, _: Option<Instant>) -> MessageReport {
        assert_ne!(body, self.0, "boom");
        MessageReport {
            message_id: meta.message_id,
            disposition: uc_worker::Disposition::Created,
            attempts: 1,
            latencies_ms: vec![],
            sub: None,
            created: None,
            lag_ms: None,
        }
    }
}

#[tokio::test]
async fn a_panic_fails_only_its_own_message() {
    let batch = sqs_event(&[
        ("m1", "fine".into()),
        ("m2", "explode".into()),
        ("m3", "fine".into()),
    ]);
    let response = handle_batch(Arc::new(PanicsOn("explode")), batch, None, 3)
        .await
        .unwrap();
    assert_eq!(failed_ids(&response), ["m2"]);
}

#[tokio::test]
async fn a_failure_without_message_id_fails_the_whole_batch() {
    let mut batch = sqs_event(&[("m1", "fine".into()), ("m2", "explode".into())]);
    batch.records[1].message_id = None;
    let error = handle_batch(Arc::new(PanicsOn("explode")), batch, None, 2)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("no messageId"), "{error}");
}

/// Issue 14: a message carrying `AWSTraceHeader` (EventBridge passes the emitter's
/// `TraceHeader` on to SQS as that system attribute) reaches AppSync as `X-Amzn-Trace-Id`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trace_header_travels_to_appsync() {
    let moto = Moto::start();
    let sdk = moto.sdk_config().await;
    let standin = AppSyncStandIn::start(&[]);
    let worker = Arc::new(
        build_worker(&config(&standin, None).await, &sdk)
            .await
            .unwrap(),
    );
    let trace = "Root=1-6751f0a2-0123456789abcdef01234567;Parent=53995c3f42cd8ad8;Sampled=1";
    let mut batch = sqs_event(&[
        ("m-traced", body("sub-traced")),
        ("m-plain", body("sub-plain")),
    ]);
    batch.records[0]
        .attributes
        .insert("AWSTraceHeader".into(), trace.into());
    let response = handle_batch(worker, batch, None, 2).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    let stats = standin.stats().await;
    assert_eq!(stats["perId"][sub("sub-traced")]["traceHeader"], trace);
    assert!(
        stats["perId"][sub("sub-plain")]
            .get("traceHeader")
            .is_none()
    );
}

/// Issue 22 through the Lambda front end (the lifecycle queue's event source): a CloudTrail
/// record of a deletion removes the profile of a user moto's pool no longer has, and publishes
/// `UserDeleted`; the record for a user the pool still has is dead-lettered `UserStillExists`;
/// a worker without `EVENT_BUS_NAME` dead-letters such records as `LifecycleOff`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloudtrail_records_in_a_batch_are_checked_against_the_pool() {
    let moto = Moto::start();
    let sdk = moto.sdk_config().await;
    let client = aws_sdk_sqs::Client::new(&sdk);
    let (dlq_url, _) = sqs::create_queue(&client, "worker-dlq", 30).await;
    let cognito = aws_sdk_cognitoidentityprovider::Client::new(&sdk);
    let pool = cognito
        .create_user_pool()
        .pool_name("lifecycle")
        .send()
        .await
        .unwrap()
        .user_pool
        .unwrap()
        .id
        .unwrap();
    let kept = cognito
        .admin_create_user()
        .user_pool_id(&pool)
        .username("kept")
        .send()
        .await
        .unwrap()
        .user
        .unwrap()
        .attributes()
        .iter()
        .find(|a| a.name() == "sub")
        .and_then(|a| a.value().map(str::to_owned))
        .unwrap();
    let events = aws_sdk_eventbridge::Client::new(&sdk);
    events.create_event_bus().name("bus").send().await.unwrap();
    let standin = AppSyncStandIn::start(&[]);
    let gone = sub("gone");
    let pairs = |bus: bool| {
        let mut pairs = vec![
            ("APPSYNC_GRAPHQL_URL", standin.url.clone()),
            ("USER_POOL_ID", pool.clone()),
            ("DLQ_URL", dlq_url.clone()),
        ];
        if bus {
            pairs.push(("EVENT_BUS_NAME", "bus".into()));
        }
        WorkerConfig::from_reader(&uc_runtime::env::from_pairs(pairs)).unwrap()
    };
    let worker = Arc::new(build_worker(&pairs(true), &sdk).await.unwrap());
    // The profile the deleted user had.
    let mut had = UserConfirmed::builder(&pool, &gone)
        .username("gone")
        .build();
    had.email = None;
    let created = worker
        .handle(
            to_envelope(DEFAULT_SOURCE, &had).to_string(),
            MessageMeta::default(),
            None,
        )
        .await;
    assert_eq!(created.disposition, uc_worker::Disposition::Created);

    let record = |sub: &str| {
        json!({
            "version": "0", "id": "r", "source": "aws.cognito-idp",
            "detail-type": "AWS API Call via CloudTrail",
            "detail": {
                "eventSource": "cognito-idp.amazonaws.com", "eventName": "AdminDeleteUser",
                "requestParameters": {"userPoolId": pool, "username": "HIDDEN_DUE_TO_SECURITY_REASONS"},
                "additionalEventData": {"sub": sub},
            },
        })
        .to_string()
    };
    let batch = sqs_event(&[("m-gone", record(&gone)), ("m-kept", record(&kept))]);
    let response = handle_batch(worker.clone(), batch, None, 8).await.unwrap();
    assert!(response.batch_item_failures.is_empty(), "both settled");
    assert_eq!(standin.stats().await["perId"][&gone]["deleted"], 1);
    let dead = sqs::drain(&client, &dlq_url).await;
    assert_eq!(dead.len(), 1);
    let reason = |m: &aws_sdk_sqs::types::Message| {
        m.message_attributes().unwrap()[attr::REASON]
            .string_value()
            .unwrap()
            .to_owned()
    };
    assert_eq!(reason(&dead[0]), "UserStillExists");

    let off = Arc::new(build_worker(&pairs(false), &sdk).await.unwrap());
    let response = handle_batch(off, sqs_event(&[("m-off", record(&gone))]), None, 8)
        .await
        .unwrap();
    assert!(response.batch_item_failures.is_empty());
    let dead = sqs::drain(&client, &dlq_url).await;
    assert_eq!(
        dead.iter().map(reason).collect::<Vec<_>>(),
        ["LifecycleOff"]
    );
}
