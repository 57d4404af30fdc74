//! `PROFILE_STORE=dynamodb` on moto (DynamoDB for the model table, SQS for the DLQ), through
//! the Lambda front end and the core: profiles land in the table once each with DataStore's
//! fields, a duplicate is `AlreadyExisted` and announces nothing, and a missing table is a DLQ
//! record with its reason.

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use uc_devkit::{Moto, sqs};
use uc_schemas::dead_letter::attr;
use uc_schemas::{DEFAULT_SOURCE, ProfileStore, UserConfirmed, sub_from_label, to_envelope};
use uc_worker::lambda::handle_batch;
use uc_worker::{Disposition, MessageHandler, MessageMeta, WorkerConfig, build_worker};

mod support;
use support::sqs_event;

const POOL: &str = "us-east-1_Ab12Cd34E";
const TABLE: &str = "UserProfile-abcdefghijklmnopqrstuvwxyz-dev";

fn body(label: &str) -> String {
    let event = UserConfirmed::builder(POOL, sub_from_label(label))
        .username(format!("user-{label}"))
        .email(format!("{label}@example.com"))
        .email_verified(true)
        .client_id("client")
        .build();
    to_envelope(DEFAULT_SOURCE, &event).to_string()
}

fn config(table: &str, dlq_url: &str) -> WorkerConfig {
    WorkerConfig::from_reader(&uc_runtime::env::from_pairs([
        ("PROFILE_STORE", "dynamodb".to_owned()),
        ("PROFILE_TABLE", table.to_owned()),
        ("USER_POOL_ID", POOL.into()),
        ("DLQ_URL", dlq_url.to_owned()),
        ("MAX_ATTEMPTS", "3".into()),
        ("RETRY_MIN_DELAY_MS", "10".into()),
        ("RETRY_MAX_DELAY_MS", "40".into()),
    ]))
    .unwrap()
}

/// The model table as Amplify Gen 1 creates it: `id` is the only key.
async fn create_model_table(client: &aws_sdk_dynamodb::Client) {
    uc_devkit::dynamodb::create_model_table(client, TABLE).await;
}

fn meta(id: &str) -> MessageMeta {
    MessageMeta {
        message_id: id.to_owned(),
        ..MessageMeta::default()
    }
}

fn text(item: &HashMap<String, AttributeValue>, name: &str) -> String {
    match &item[name] {
        AttributeValue::S(s) => s.clone(),
        AttributeValue::N(n) => n.clone(),
        other => panic!("{name}: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_users_and_a_duplicate_make_three_items_with_datastores_fields() {
    let moto = Moto::start();
    let sdk = moto.sdk_config().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    create_model_table(&dynamodb).await;
    let sqs_client = aws_sdk_sqs::Client::new(&sdk);
    let (dlq_url, _) = sqs::create_queue(&sqs_client, "worker-dlq", 30).await;
    let worker = Arc::new(build_worker(&config(TABLE, &dlq_url), &sdk).await.unwrap());

    // Two users through the Lambda front end: nothing for SQS to retry.
    let first = body("ddb-a");
    let batch = sqs_event(&[("m-a", first.clone()), ("m-b", body("ddb-b"))]);
    let response = handle_batch(worker.clone(), batch, None, 8).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    // The third through the core: a created profile carries its announcement, naming the store.
    assert_eq!(
        worker.store_stage(),
        "dynamodb",
        "what DLQ replay's own records say"
    );
    let third = worker.handle(body("ddb-c"), meta("m-c"), None).await;
    assert_eq!(third.disposition, Disposition::Created);
    assert_eq!(third.created.unwrap().store, ProfileStore::Dynamodb);
    // A duplicate delivery of the first: it exists, and nothing is announced for it.
    let duplicate = worker.handle(first, meta("m-a-again"), None).await;
    assert_eq!(duplicate.disposition, Disposition::AlreadyExisted);
    assert_eq!(duplicate.attempts, 1, "a failed condition is not retried");
    assert!(duplicate.created.is_none());

    let items = dynamodb
        .scan()
        .table_name(TABLE)
        .send()
        .await
        .unwrap()
        .items
        .unwrap();
    assert_eq!(items.len(), 3, "one item per user");
    let by_id: HashMap<String, &HashMap<String, AttributeValue>> =
        items.iter().map(|item| (text(item, "id"), item)).collect();
    let a = by_id[&sub_from_label("ddb-a")];
    assert_eq!(text(a, "email"), "ddb-a@example.com");
    assert_eq!(
        text(a, "profileOwner"),
        format!("{}::user-ddb-a", sub_from_label("ddb-a"))
    );
    assert_eq!(text(a, "__typename"), "UserProfile");
    assert_eq!(text(a, "_version"), "1");
    let created_at = chrono::DateTime::parse_from_rfc3339(&text(a, "createdAt")).unwrap();
    assert_eq!(text(a, "updatedAt"), text(a, "createdAt"));
    assert_eq!(
        text(a, "_lastChangedAt").parse::<i64>().unwrap(),
        created_at.timestamp_millis()
    );
    assert!(
        (chrono::Utc::now() - created_at.to_utc()).num_seconds() < 60,
        "written now, not at the sign-up"
    );
    assert_eq!(
        a.len(),
        8,
        "the mapped fields and DataStore's, nothing else"
    );
    assert_eq!(sqs::depth(&sqs_client, &dlq_url).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_table_is_dead_lettered_with_its_reason() {
    let moto = Moto::start();
    let sdk = moto.sdk_config().await;
    let sqs_client = aws_sdk_sqs::Client::new(&sdk);
    let (dlq_url, _) = sqs::create_queue(&sqs_client, "worker-dlq", 30).await;
    let worker = Arc::new(
        build_worker(&config("UserProfile-missing-dev", &dlq_url), &sdk)
            .await
            .unwrap(),
    );

    let lost = body("ddb-lost");
    let batch = sqs_event(&[("m-lost", lost.clone())]);
    let response = handle_batch(worker.clone(), batch, None, 8).await.unwrap();
    assert!(
        response.batch_item_failures.is_empty(),
        "dead-lettered, so settled"
    );
    let dead = sqs::drain(&sqs_client, &dlq_url).await;
    assert_eq!(dead.len(), 1);
    let attributes = dead[0].message_attributes().unwrap();
    let value = |name: &str| attributes[name].string_value().unwrap().to_owned();
    assert_eq!(value(attr::REASON), "ResourceNotFoundException");
    assert_eq!(value(attr::STAGE), "dynamodb");
    assert_eq!(
        value(attr::ATTEMPTS),
        "1",
        "a permanent failure is not retried"
    );
    assert_eq!(value(attr::SUB), sub_from_label("ddb-lost"));
    assert!(
        value(attr::DETAIL).contains("UserProfile-missing-dev"),
        "{}",
        value(attr::DETAIL)
    );
    assert_eq!(
        dead[0].body(),
        Some(lost.as_str()),
        "the original body is kept"
    );
}

/// Issue 22: removing a profile from a DataStore-synced table is DataStore's soft delete
/// (`_deleted`, `_version` + 1, `_lastChangedAt`, `_ttl`), with the email and the owner (which
/// holds the username) gone from the item at once; a second removal, or one for a user who
/// never had a profile, finds nothing to remove.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removal_is_a_datastore_tombstone_without_the_email() {
    use uc_worker::ProfileStore as _;
    use uc_worker::store::Removal;
    let moto = Moto::start();
    let sdk = moto.sdk_config().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    create_model_table(&dynamodb).await;
    let sqs_client = aws_sdk_sqs::Client::new(&sdk);
    let (dlq_url, _) = sqs::create_queue(&sqs_client, "worker-dlq", 30).await;
    let worker = build_worker(&config(TABLE, &dlq_url), &sdk).await.unwrap();
    let report = worker.handle(body("ddb-gone"), meta("m-gone"), None).await;
    assert_eq!(report.disposition, Disposition::Created);
    let sub = sub_from_label("ddb-gone");
    let store = worker.store();
    assert!(store.exists(&sub, None).await.unwrap());

    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert_eq!(store.remove(&sub, None).await.unwrap(), Removal::Removed);
    let item = dynamodb
        .get_item()
        .table_name(TABLE)
        .key("id", AttributeValue::S(sub.clone()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .expect("a tombstone stays for DataStore's sync");
    assert_eq!(item["_deleted"], AttributeValue::Bool(true));
    assert_eq!(text(&item, "_version"), "2");
    assert!(!item.contains_key("email"), "{item:?}");
    assert!(!item.contains_key("profileOwner"), "{item:?}");
    assert!(!format!("{item:?}").contains('@'), "{item:?}");
    let ttl: i64 = text(&item, "_ttl").parse().unwrap();
    assert!(ttl >= before + 30 * 24 * 3600 - 5, "{ttl}");
    let changed: i64 = text(&item, "_lastChangedAt").parse().unwrap();
    assert!(changed >= before * 1000, "{changed}");
    assert!(
        !store.exists(&sub, None).await.unwrap(),
        "a tombstone is no profile"
    );

    assert_eq!(store.remove(&sub, None).await.unwrap(), Removal::Absent);
    assert_eq!(
        store
            .remove(&sub_from_label("ddb-never"), None)
            .await
            .unwrap(),
        Removal::Absent
    );
    assert!(
        !store
            .exists(&sub_from_label("ddb-never"), None)
            .await
            .unwrap()
    );
}
