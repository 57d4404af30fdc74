//! Issue 15, deliverable 3, end to end on the local stack: the long-poll worker with
//! `PROFILE_STORE=dynamodb` writes three users' profiles into an Amplify Gen 1 model table
//! (moto's DynamoDB), each once with DataStore's fields, in spite of a duplicate delivery;
//! `ProfileCreated` is announced for the three created and not for the duplicate; and a worker
//! pointed at a table that does not exist dead-letters with the reason.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::Value;
use uc_devkit::{eventually, sqs};
use uc_lab::pipeline::{CONFIRM_SIGN_UP, Pipeline};
use uc_schemas::dead_letter::attr;
use uc_schemas::{ProfileCreated, ProfileStore, profile_created_event_pattern};

mod support;
use support::{TestStack, binary};
use uc_devkit::dynamodb::create_model_table;

const TABLE: &str = "UserProfile-labapi-dev";

fn text(item: &HashMap<String, AttributeValue>, name: &str) -> String {
    match item.get(name) {
        Some(AttributeValue::S(s)) => s.clone(),
        Some(AttributeValue::N(n)) => n.clone(),
        other => panic!("{name}: {other:?}"),
    }
}

/// How many of a worker's JSON log lines report `outcome` (the `profile written` lines).
fn logged_outcome(lines: &[String], outcome: &str) -> usize {
    lines
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|log| log["fields"]["outcome"] == outcome)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dynamodb_store_writes_each_profile_once_and_dead_letters_a_missing_table() {
    let stack = TestStack::up("dynamodb-store").await;
    let sdk = stack.env.sdk_config().await.unwrap();
    let client = stack.sqs().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    create_model_table(&dynamodb, TABLE).await;
    let source = stack.env.get("EVENT_SOURCE").unwrap();
    let dlq_url = stack.env.get("DLQ_URL").unwrap().to_owned();

    // A consumer of ProfileCreated, as in profile_created.rs.
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
            .sign_up_through_trigger(&format!("dynamo.{i}@example.com"))
            .await
            .unwrap();
        users.push(user);
    }
    let dynamodb_store = |table: &str| {
        vec![
            ("PROFILE_STORE", "dynamodb".to_owned()),
            ("PROFILE_TABLE", table.to_owned()),
            ("PROFILE_CREATED_EVENTS", "true".to_owned()),
        ]
    };
    let mut worker = pipeline.start_worker(&binary("uc-worker"), &dynamodb_store(TABLE));
    assert!(
        eventually(Duration::from_secs(60), || async {
            sqs::depth(&client, &consumer).await >= 3
        })
        .await,
        "three announcements; worker said: {:?}",
        worker.output()
    );
    // A duplicate delivery afterwards: the item exists, nothing is announced.
    let again = pipeline
        .trigger_event(&users[0], CONFIRM_SIGN_UP)
        .await
        .unwrap();
    pipeline.invoke_emitter(&again).await.result.unwrap();
    assert!(
        eventually(Duration::from_secs(30), || async {
            logged_outcome(&worker.output(), "AlreadyExisted") >= 1
        })
        .await,
        "the duplicate is seen; worker said: {:?}",
        worker.output()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;

    let items = dynamodb
        .scan()
        .table_name(TABLE)
        .send()
        .await
        .unwrap()
        .items
        .unwrap();
    assert_eq!(items.len(), 3, "one item per user");
    let mut ids: Vec<String> = items.iter().map(|item| text(item, "id")).collect();
    ids.sort();
    let mut subs: Vec<String> = users.iter().map(|u| u.sub.clone()).collect();
    subs.sort();
    assert_eq!(ids, subs);
    for item in &items {
        assert_eq!(text(item, "__typename"), "UserProfile");
        assert_eq!(text(item, "_version"), "1");
        assert!(text(item, "email").ends_with("@example.com"));
        assert!(text(item, "profileOwner").starts_with(&format!("{}::", text(item, "id"))));
        let created_at = chrono::DateTime::parse_from_rfc3339(&text(item, "createdAt")).unwrap();
        assert_eq!(text(item, "updatedAt"), text(item, "createdAt"));
        assert_eq!(
            text(item, "_lastChangedAt").parse::<i64>().unwrap(),
            created_at.timestamp_millis()
        );
    }
    assert_eq!(logged_outcome(&worker.output(), "Created"), 3);

    let received = sqs::drain(&client, &consumer).await;
    assert_eq!(
        received.len(),
        3,
        "one per created item, none for the duplicate"
    );
    let mut announced: Vec<String> = received
        .iter()
        .map(|message| {
            let envelope: Value = serde_json::from_str(message.body().unwrap()).unwrap();
            let event: ProfileCreated = serde_json::from_value(envelope["detail"].clone()).unwrap();
            assert_eq!(event.store, ProfileStore::Dynamodb);
            event.sub
        })
        .collect();
    announced.sort();
    assert_eq!(announced, subs);
    assert_eq!(sqs::depth(&client, &dlq_url).await, 0);
    worker.signal("TERM");
    worker.wait(Duration::from_secs(30));

    // A worker pointed at a table that does not exist: the message goes to the DLQ at once.
    let mut misconfigured = pipeline.start_worker(
        &binary("uc-worker"),
        &dynamodb_store("UserProfile-nowhere-dev"),
    );
    let lost = pipeline
        .sign_up_through_trigger("dynamo.lost@example.com")
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(30), || async {
            sqs::depth(&client, &dlq_url).await >= 1
        })
        .await,
        "dead-lettered; worker said: {:?}",
        misconfigured.output()
    );
    let dead = sqs::drain(&client, &dlq_url).await;
    assert_eq!(dead.len(), 1);
    let attributes = dead[0].message_attributes().unwrap();
    let value = |name: &str| attributes[name].string_value().unwrap().to_owned();
    assert_eq!(value(attr::REASON), "ResourceNotFoundException");
    assert_eq!(value(attr::STAGE), "dynamodb");
    assert_eq!(value(attr::SUB), lost.sub);
    assert!(
        !misconfigured
            .output()
            .iter()
            .any(|line| line.contains("dynamo.lost@")),
        "no email in the worker's logs"
    );
    misconfigured.signal("TERM");
    misconfigured.wait(Duration::from_secs(30));
    let received = sqs::drain(&client, &consumer).await;
    assert!(received.is_empty(), "nothing announced for a failure");
}
