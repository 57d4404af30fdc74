//! Issue 14: a consumer's queue behind its own rule on the stack's bus receives one
//! `ProfileCreated` per profile the worker created — none for a duplicate delivery — and each
//! one validates against the published JSON Schema.

use std::time::Duration;

use serde_json::Value;
use uc_devkit::{eventually, sqs};
use uc_lab::pipeline::{CONFIRM_SIGN_UP, Pipeline};
use uc_schemas::{PROFILE_CREATED_JSON_SCHEMA, ProfileCreated, profile_created_event_pattern};

mod support;
use support::{TestStack, binary};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_hears_one_profile_created_per_created_profile() {
    let stack = TestStack::up("announce").await;
    let client = stack.sqs().await;
    let source = stack.env.get("EVENT_SOURCE").unwrap();

    // Another team's consumer: its own queue, its own rule on the pipeline's bus.
    let consumer = stack
        .subscribe_pattern("welcome-flow", profile_created_event_pattern(source))
        .await
        .queue_url;

    let pipeline = Pipeline::start(stack.env.clone(), &binary("uc-emitter"), &[])
        .await
        .unwrap();
    let mut users = Vec::new();
    for i in 0..3 {
        let user = pipeline
            .sign_up_through_trigger(&format!("announce.{i}@example.com"))
            .await
            .unwrap();
        users.push(user);
    }
    let _worker = pipeline.start_worker(
        &binary("uc-worker"),
        &[("PROFILE_CREATED_EVENTS", "true".into())],
    );
    assert!(
        eventually(Duration::from_secs(60), || async {
            sqs::depth(&client, &consumer).await >= 3
        })
        .await,
        "three announcements"
    );
    // A duplicate delivery afterwards: the profile exists, nothing is announced.
    let again = pipeline
        .trigger_event(&users[0], CONFIRM_SIGN_UP)
        .await
        .unwrap();
    pipeline.invoke_emitter(&again).await.result.unwrap();
    assert!(
        eventually(Duration::from_secs(30), || async {
            pipeline.standin.stats().await["duplicates"].as_u64() >= Some(1)
        })
        .await
    );
    tokio::time::sleep(Duration::from_secs(2)).await;

    let schema: Value = serde_json::from_str(PROFILE_CREATED_JSON_SCHEMA).unwrap();
    let validator = jsonschema::draft4::new(&schema).unwrap();
    let received = sqs::drain(&client, &consumer).await;
    assert_eq!(
        received.len(),
        3,
        "one per created profile, none for the duplicate"
    );
    let mut subs = Vec::new();
    for message in received {
        let envelope: Value = serde_json::from_str(message.body().unwrap()).unwrap();
        assert_eq!(envelope["detail-type"], "ProfileCreated");
        assert_eq!(envelope["source"], source);
        let detail = &envelope["detail"];
        let errors: Vec<String> = validator
            .iter_errors(detail)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{errors:?} in {detail}");
        let event: ProfileCreated = serde_json::from_value(detail.clone()).unwrap();
        assert!(
            !detail.to_string().contains('@'),
            "no email in the announcement"
        );
        subs.push(event.sub);
    }
    subs.sort();
    let mut expected: Vec<String> = users.iter().map(|u| u.sub.clone()).collect();
    expected.sort();
    assert_eq!(subs, expected);
}
