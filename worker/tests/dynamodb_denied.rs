//! `PROFILE_STORE=dynamodb` under moto **enforcing** IAM (as `ops/tests/iam_enforced.rs` runs
//! it): a worker whose identity may not `PutItem` dead-letters at once, not retried; given
//! `dynamodb:PutItem`, the same message creates the profile: the one action the store needs.
//!
//! What moto cannot prove: the template scopes the grant to the table's ARN, but moto checks
//! DynamoDB actions against the resource `*` (it determines resources only for SQS, IAM, STS
//! and S3; see `ops/tests/iam_enforced.rs`), so a table-scoped statement never matches there.
//! The test pins that (the template's exact statement is still denied on moto, so a moto that
//! learns table resources makes this test say so), then grants the action on `*` as
//! `iam_enforced.rs`'s `moto-unscoped` policy does. The statement's resource is checked by
//! `dev/tests/test_template.py`.
//!
//! The reason differs from AWS's: moto answers an enforced denial with HTTP 403 and a
//! query-protocol XML body (`<Code>AccessDenied</Code>`), in which the JSON-protocol DynamoDB
//! client finds no error code, so the shared classifier's status rule names it `Http403`
//! (permanent). DynamoDB itself answers `AccessDeniedException` (a JSON `__type`), whose row is
//! in `dynamodb::tests::failures_classify_through_the_shared_rule`.

use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use serde_json::json;
use uc_devkit::{ChildGuard, REGION, free_port, moto_args, python, sqs};
use uc_schemas::dead_letter::attr;
use uc_schemas::{DEFAULT_SOURCE, UserConfirmed, sub_from_label, to_envelope};
use uc_worker::{Disposition, MessageHandler, MessageMeta, WorkerConfig, build_worker};

const POOL: &str = "us-east-1_Ab12Cd34E";
const TABLE: &str = "UserProfile-denied-dev";
/// moto's account.
const TABLE_ARN: &str = "arn:aws:dynamodb:us-east-1:123456789012:table/UserProfile-denied-dev";

/// moto with IAM enforced after `free_requests` requests.
fn start_enforcing_moto(free_requests: u32) -> (ChildGuard, String) {
    let port = free_port();
    let child = Command::new(python())
        .args(moto_args(port))
        .env("INITIAL_NO_AUTH_ACTION_COUNT", free_requests.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start moto server");
    let mut guard = ChildGuard::new("moto server (enforcing)", child);
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            guard.child_mut().try_wait().unwrap().is_none(),
            "moto exited during start-up"
        );
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "moto did not listen"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (guard, format!("http://127.0.0.1:{port}"))
}

async fn config(endpoint: &str, key: &str, secret: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new(key, secret, None, None, "denied-test"))
        .load()
        .await
}

/// The worker identity's policy: its queue and table set-up, and `store` for the profiles.
fn policy(store: Option<serde_json::Value>) -> String {
    let mut statements = vec![
        json!({"Effect": "Allow", "Action": ["sqs:*", "dynamodb:CreateTable", "dynamodb:DescribeTable",
                                             "iam:PutUserPolicy"], "Resource": "*"}),
    ];
    statements.extend(store);
    json!({"Version": "2012-10-17", "Statement": statements}).to_string()
}

fn body(label: &str) -> String {
    let event = UserConfirmed::builder(POOL, sub_from_label(label))
        .username(format!("user-{label}"))
        .email(format!("{label}@example.com"))
        .build();
    to_envelope(DEFAULT_SOURCE, &event).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_put_item_is_dead_lettered_and_put_item_is_all_the_store_needs() {
    let (_moto, endpoint) = start_enforcing_moto(3);
    // The three free requests: the worker's identity, its policy (no PutItem), its keys.
    let anonymous = config(&endpoint, "AKIDNOTKNOWN00000000", "not-a-secret").await;
    let iam = aws_sdk_iam::Client::new(&anonymous);
    iam.create_user().user_name("worker").send().await.unwrap();
    iam.put_user_policy()
        .user_name("worker")
        .policy_name("worker")
        .policy_document(policy(None))
        .send()
        .await
        .unwrap();
    let key = iam
        .create_access_key()
        .user_name("worker")
        .send()
        .await
        .unwrap()
        .access_key
        .unwrap();
    let sdk = config(&endpoint, &key.access_key_id, &key.secret_access_key).await;

    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    uc_devkit::dynamodb::create_model_table(&dynamodb, TABLE).await;
    let sqs_client = aws_sdk_sqs::Client::new(&sdk);
    let (dlq_url, _) = sqs::create_queue(&sqs_client, "worker-dlq", 30).await;
    let config = WorkerConfig::from_reader(&uc_runtime::env::from_pairs([
        ("PROFILE_STORE", "dynamodb"),
        ("PROFILE_TABLE", TABLE),
        ("USER_POOL_ID", POOL),
        ("DLQ_URL", dlq_url.as_str()),
        ("RETRY_MIN_DELAY_MS", "10"),
        ("RETRY_MAX_DELAY_MS", "40"),
    ]))
    .unwrap();
    let worker = build_worker(&config, &sdk).await.unwrap();
    let meta = |id: &str| MessageMeta {
        message_id: id.to_owned(),
        ..MessageMeta::default()
    };

    // Denied: straight to the DLQ with the reason, not retried (moto's reason: see above).
    let message = body("denied");
    let report = worker.handle(message.clone(), meta("m-denied"), None).await;
    assert_eq!(
        report.disposition,
        Disposition::DeadLettered {
            reason: "Http403".into()
        }
    );
    assert_eq!(report.attempts, 1);
    let dead = sqs::drain(&sqs_client, &dlq_url).await;
    assert_eq!(dead.len(), 1);
    let attributes = dead[0].message_attributes().unwrap();
    assert_eq!(attributes[attr::REASON].string_value(), Some("Http403"));
    assert_eq!(attributes[attr::STAGE].string_value(), Some("dynamodb"));
    assert!(
        attributes[attr::DETAIL]
            .string_value()
            .unwrap()
            .contains(TABLE),
        "the detail names the table"
    );

    // The template's statement, exactly: moto checks it against `*`, so it is still denied
    // there (see above). (The identity may rewrite its own policy; the free requests are spent.)
    let iam = aws_sdk_iam::Client::new(&sdk);
    let grant = |resource: &str| {
        iam.put_user_policy()
            .user_name("worker")
            .policy_name("worker")
            .policy_document(policy(Some(json!({
                "Sid": "PutProfileItemsOnly", "Effect": "Allow", "Action": "dynamodb:PutItem",
                "Resource": resource,
            }))))
            .send()
    };
    grant(TABLE_ARN).await.unwrap();
    let report = worker.handle(message.clone(), meta("m-scoped"), None).await;
    assert_eq!(
        report.disposition,
        Disposition::DeadLettered {
            reason: "Http403".into()
        },
        "moto now evaluates DynamoDB table resources: assert Created here instead"
    );
    // The action on `*`: the same message creates the profile.
    grant("*").await.unwrap();
    let report = worker.handle(message, meta("m-granted"), None).await;
    assert_eq!(report.disposition, Disposition::Created);
}
