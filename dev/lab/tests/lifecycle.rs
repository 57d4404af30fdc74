//! Issue 22's acceptance on the local stack: Cognito's CloudTrail records, put on moto's default
//! bus as AWS would put them, reach the worker through the template's lifecycle rule and queue,
//! and `uc-worker poll` (the stack's env file, nothing else) acts on them. Three users with
//! profiles; one really deleted and its record sent → its profile is gone and one `UserDeleted`
//! is on the pipeline bus; the record for a user who still exists, and one naming another pool,
//! delete nothing; a repeated record is harmless; an administrator's user gets a profile from
//! its record alone; the audit ends clean. Then the same deletion with the DynamoDB store: a
//! DataStore tombstone without the email.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::Value;
use uc_devkit::{eventually, sqs};
use uc_lab::pipeline::Pipeline;
use uc_schemas::dead_letter::attr;
use uc_schemas::{USER_DELETED_DETAIL_TYPE, UserDeleted};

mod support;
use support::{TestStack, binary, json_of};
use uc_devkit::dynamodb::create_model_table;

/// The details the queue holds now.
async fn details(stack: &TestStack, queue: &str) -> Vec<Value> {
    sqs::drain(&stack.sqs().await, queue)
        .await
        .iter()
        .map(|m| serde_json::from_str::<Value>(m.body().unwrap()).unwrap()["detail"].clone())
        .collect()
}

/// The worker's `lifecycle record handled` outcomes for `sub`.
fn handled(lines: &[String], sub: &str) -> Vec<String> {
    lines
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|log| log["fields"]["message"] == "lifecycle record handled")
        .filter(|log| log["fields"]["sub"] == sub)
        .filter_map(|log| log["fields"]["outcome"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloudtrail_records_delete_and_create_profiles_verified_against_the_pool() {
    let stack = TestStack::up("lifecycle").await;
    assert!(
        stack.env.get("LIFECYCLE_QUEUE_URL").is_ok(),
        "the stack's env file names the lifecycle queue"
    );
    let deleted_events = stack
        .subscribe("erasure-consumer", USER_DELETED_DETAIL_TYPE)
        .await;
    let confirmed_events = stack.subscribe("signup-consumer", "UserConfirmed").await;
    let pipeline = Pipeline::start(stack.env.clone(), &binary("uc-emitter"), &[])
        .await
        .unwrap();
    let standin = pipeline.standin.clone();
    let worker = pipeline.start_worker(&binary("uc-worker"), &[]);
    let pool = stack.env.get("USER_POOL_ID").unwrap().to_owned();

    let mut users = Vec::new();
    for i in 0..3 {
        users.push(
            pipeline
                .sign_up_through_trigger(&format!("life.{i}@example.com"))
                .await
                .unwrap(),
        );
    }
    assert!(
        eventually(Duration::from_secs(60), || async {
            standin.profiles().await.len() == 3
        })
        .await
    );
    let trigger_events = details(&stack, &confirmed_events).await;
    assert!(trigger_events.len() >= 3, "{trigger_events:?}");

    // Really deleted, and CloudTrail's record of it sent: the profile goes.
    let (gone, kept, other) = (&users[0], &users[1], &users[2]);
    pipeline.admin_delete(&gone.username).await.unwrap();
    pipeline
        .report_call("AdminDeleteUser", &gone.sub, Some(&pool))
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(60), || async {
            standin.profiles().await.len() == 2
        })
        .await,
        "worker said: {:?}",
        worker.output()
    );
    let left: Vec<String> = standin
        .profiles()
        .await
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(!left.contains(&gone.sub), "{left:?}");
    assert!(
        eventually(Duration::from_secs(30), || async {
            !handled(&worker.output(), &gone.sub).is_empty()
        })
        .await
    );
    let erased = details(&stack, &deleted_events).await;
    assert_eq!(erased.len(), 1, "one UserDeleted: {erased:?}");
    let event: UserDeleted = serde_json::from_value(erased[0].clone()).unwrap();
    assert_eq!(event.sub, gone.sub);
    assert!(event.profile_deleted);
    assert_eq!(event.user_pool_id.as_deref(), Some(pool.as_str()));
    assert!(
        !erased[0].to_string().contains('@'),
        "no PII: {}",
        erased[0]
    );

    // A record for a user who still exists, and one naming another pool: nothing deleted. The
    // first is kept in the DLQ with its reason (a record the pool contradicts is for a person
    // to look at); the second is not ours and is only logged.
    pipeline
        .report_call("AdminDeleteUser", &kept.sub, Some(&pool))
        .await
        .unwrap();
    pipeline
        .report_call(
            "AdminDeleteUser",
            &other.sub,
            Some("us-east-1_SomeOtherPool"),
        )
        .await
        .unwrap();
    // A repeated record (EventBridge delivers at least once), self-service shaped: no pool.
    pipeline
        .report_call("DeleteUser", &gone.sub, None)
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(60), || async {
            let lines = worker.output();
            handled(&lines, &other.sub) == ["OtherPool"] && handled(&lines, &gone.sub).len() == 2
        })
        .await,
        "worker said: {:?}",
        worker.output()
    );
    let dlq = stack.env.get("DLQ_URL").unwrap().to_owned();
    assert!(
        eventually(Duration::from_secs(30), || async {
            sqs::depth(&stack.sqs().await, &dlq).await > 0
        })
        .await
    );
    let refused = sqs::drain(&stack.sqs().await, &dlq).await;
    assert_eq!(refused.len(), 1);
    let attributes = refused[0].message_attributes().unwrap();
    assert_eq!(
        attributes[attr::REASON].string_value(),
        Some("UserStillExists")
    );
    assert_eq!(
        attributes[attr::SUB].string_value(),
        Some(kept.sub.as_str())
    );
    assert_eq!(standin.profiles().await.len(), 2, "nothing else deleted");
    assert_eq!(
        handled(&worker.output(), &gone.sub)[1],
        "UserDeletedNoProfile"
    );
    let repeated = details(&stack, &deleted_events).await;
    assert_eq!(repeated.len(), 1, "{repeated:?}");
    assert_eq!(
        repeated[0]["eventId"], erased[0]["eventId"],
        "the same deletion, the same id"
    );
    assert_eq!(repeated[0]["profileDeleted"], false);

    // An administrator's user: created, activated, and reported; no pass runs.
    let invited = pipeline
        .admin_create("life.invited@example.com", true)
        .await
        .unwrap();
    for call in ["AdminCreateUser", "AdminSetUserPassword"] {
        pipeline
            .report_call(call, &invited, Some(&pool))
            .await
            .unwrap();
    }
    assert!(
        eventually(Duration::from_secs(60), || async {
            standin
                .profiles()
                .await
                .iter()
                .any(|p| p["id"] == invited.as_str())
        })
        .await,
        "worker said: {:?}",
        worker.output()
    );
    let published = details(&stack, &confirmed_events).await;
    let for_invited: Vec<&Value> = published
        .iter()
        .filter(|d| d["sub"] == invited.as_str())
        .collect();
    assert_eq!(for_invited.len(), 1, "published once: {published:?}");
    assert_eq!(for_invited[0]["origin"], "reconciliation");

    let audit = stack.ops(&["audit", "--grace-seconds", "0", "--json"]);
    assert_eq!(audit.status.code(), Some(0), "{}", json_of(&audit));
    for line in worker.output() {
        assert!(!line.contains("@example.com"), "email in a log: {line}");
    }
}

fn text(item: &HashMap<String, AttributeValue>, name: &str) -> String {
    match item.get(name) {
        Some(AttributeValue::S(s)) => s.clone(),
        Some(AttributeValue::N(n)) => n.clone(),
        other => panic!("{name}: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_dynamodb_store_a_deletion_leaves_a_tombstone_without_the_email() {
    const TABLE: &str = "UserProfile-lifecycle-dev";
    let stack = TestStack::up("lifecycle-ddb").await;
    let sdk = stack.env.sdk_config().await.unwrap();
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    create_model_table(&dynamodb, TABLE).await;
    let deleted_events = stack
        .subscribe("erasure-consumer", USER_DELETED_DETAIL_TYPE)
        .await;
    let pipeline = Pipeline::start(stack.env.clone(), &binary("uc-emitter"), &[])
        .await
        .unwrap();
    let store = [
        ("PROFILE_STORE", "dynamodb".to_owned()),
        ("PROFILE_TABLE", TABLE.to_owned()),
    ];
    let worker = pipeline.start_worker(&binary("uc-worker"), &store);
    let pool = stack.env.get("USER_POOL_ID").unwrap().to_owned();
    let user = pipeline
        .sign_up_through_trigger("life.ddb@example.com")
        .await
        .unwrap();
    let item = || async {
        dynamodb
            .get_item()
            .table_name(TABLE)
            .key("id", AttributeValue::S(user.sub.clone()))
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item
    };
    assert!(
        eventually(Duration::from_secs(60), || async { item().await.is_some() }).await,
        "worker said: {:?}",
        worker.output()
    );
    pipeline.admin_delete(&user.username).await.unwrap();
    pipeline
        .report_call("AdminDeleteUser", &user.sub, Some(&pool))
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(60), || async {
            item()
                .await
                .is_some_and(|i| i.get("_deleted") == Some(&AttributeValue::Bool(true)))
        })
        .await,
        "worker said: {:?}",
        worker.output()
    );
    let tombstone = item().await.unwrap();
    assert_eq!(text(&tombstone, "_version"), "2");
    assert!(tombstone.contains_key("_ttl"));
    assert!(!tombstone.contains_key("email"), "{tombstone:?}");
    assert!(!tombstone.contains_key("profileOwner"), "{tombstone:?}");
    let erased = details(&stack, &deleted_events).await;
    assert_eq!(erased.len(), 1, "{erased:?}");
    assert_eq!(erased[0]["sub"], user.sub.as_str());
    // The audit reads the same table: a tombstone is no profile, so no orphan either.
    let audit = stack.ops_with(
        &[("PROFILE_STORE", "dynamodb"), ("PROFILE_TABLE", TABLE)],
        &["audit", "--grace-seconds", "0", "--json"],
    );
    assert_eq!(audit.status.code(), Some(0), "{}", json_of(&audit));
}
