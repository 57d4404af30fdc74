//! The operations CLI (`uc-ops`, the workspace's binary: `cargo build` or `cargo test -p uc-ops`
//! makes it) on the local stack, run as a real process: DLQ stats/peek/replay/redrive and
//! back-fill from Cognito. (attach-trigger needs only moto: ops/tests/operations.rs.)

use std::time::Duration;

use aws_sdk_cognitoidentityprovider::types::AttributeType;
use serde_json::json;
use uc_devkit::{StandInControl, eventually, sqs};
use uc_lab::pipeline::{ConfirmedUser, Pipeline};
use uc_schemas::dead_letter::attr;

mod support;
use support::{TestStack, binary, json_of};

async fn sign_up_and_emit(pipeline: &Pipeline, prefix: &str, n: usize) -> Vec<ConfirmedUser> {
    let mut users = Vec::new();
    for i in 0..n {
        let user = pipeline
            .sign_up_through_trigger(&format!("{prefix}.{i}@example.com"))
            .await
            .unwrap();
        users.push(user);
    }
    users
}

async fn profile_ids(standin: &StandInControl) -> Vec<String> {
    let mut ids: Vec<String> = standin
        .profiles()
        .await
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

/// Acceptance 1 and 4: poison and permanently failing messages land in the DLQ via the worker;
/// peek shows them without emails and gives them back; after the fault is cleared, replay
/// creates exactly the missing profiles; a second replay changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dlq_peek_stats_and_replay() {
    let stack = TestStack::up("replay").await;
    let pipeline = Pipeline::start(stack.env.clone(), &binary("uc-emitter"), &[])
        .await
        .unwrap();
    let standin = pipeline.standin.clone();
    let dlq = stack.env.get("DLQ_URL").unwrap().to_owned();
    let client = stack.sqs().await;

    let users = sign_up_and_emit(&pipeline, "replay", 6).await;
    let denied: Vec<&str> = users[..3].iter().map(|u| u.sub.as_str()).collect();
    standin
        .set_faults(json!([{"errorType": "Unauthorized", "match": {"idIn": denied}}]))
        .await;
    sqs::send_all(
        &client,
        stack.env.get("QUEUE_URL").unwrap(),
        &["{\"detail-type\": \"UserConfirmed\"".to_owned()],
    )
    .await;
    let mut worker = pipeline.start_worker(&binary("uc-worker"), &[]);
    assert!(
        eventually(Duration::from_secs(30), || async {
            sqs::depth(&client, &dlq).await == 4
        })
        .await,
        "4 in the DLQ"
    );
    assert_eq!(profile_ids(&standin).await.len(), 3);
    worker.signal("TERM");
    worker.wait(Duration::from_secs(20));

    // stats: counts by reason.
    let stats = json_of(&stack.ops(&["dlq", "stats", "--json"]));
    let worker_dlq = &stats[0];
    assert_eq!(worker_dlq["depth"], 4, "{stats}");
    assert_eq!(
        worker_dlq["by_reason"],
        json!({"Unauthorized": 3, "NotJson": 1})
    );
    assert!(worker_dlq["oldest_age_seconds"].as_i64().unwrap() >= 0);

    // peek: decoded, no email, and every message receivable again at once.
    let peek = stack.ops(&["dlq", "peek", "--json"]);
    let text = String::from_utf8_lossy(&peek.stdout).to_string();
    assert!(!text.contains('@'), "no email without --show-pii: {text}");
    let rows = json_of(&peek);
    assert_eq!(rows.as_array().unwrap().len(), 4);
    let mut peeked_subs: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["sub"].as_str())
        .collect();
    peeked_subs.sort();
    let mut expected = denied.clone();
    expected.sort();
    assert_eq!(peeked_subs, expected);
    let visible = client
        .receive_message()
        .queue_url(&dlq)
        .max_number_of_messages(10)
        .visibility_timeout(0)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default();
    assert_eq!(visible.len(), 4, "peek restored visibility");
    let with_pii =
        String::from_utf8_lossy(&stack.ops(&["dlq", "peek", "--show-pii"]).stdout).to_string();
    assert!(with_pii.contains("replay.0@example.com"), "{with_pii}");

    // A dry run changes nothing.
    let dry = json_of(&stack.ops(&["dlq", "replay", "--dry-run", "--json"]));
    assert_eq!(dry["examined"], 4);
    assert_eq!(sqs::depth(&client, &dlq).await, 4);
    assert_eq!(profile_ids(&standin).await.len(), 3);

    // The fault cleared: replay creates exactly the missing profiles; the poison stays.
    standin.clear_faults().await;
    let replay = stack.ops(&["dlq", "replay", "--json"]);
    assert!(
        !replay.status.success(),
        "the poison message still fails: non-zero exit"
    );
    let summary = json_of(&replay);
    assert_eq!(summary["created"], 3, "{summary}");
    assert_eq!(summary["still_failing"], 1);
    assert_eq!(summary["failures_by_reason"], json!({"NotJson": 1}));
    let mut all: Vec<String> = users.iter().map(|u| u.sub.clone()).collect();
    all.sort();
    assert_eq!(profile_ids(&standin).await, all);
    let left = sqs::drain(&client, &dlq).await;
    assert_eq!(left.len(), 1);
    let attributes = left[0].message_attributes().unwrap();
    assert_eq!(attributes[attr::REASON].string_value(), Some("NotJson"));
    assert!(
        attributes.contains_key(attr::FIRST_SEEN_AT),
        "first-seen kept across the replay"
    );

    // Replaying an empty DLQ twice changes nothing.
    for _ in 0..2 {
        let again = stack.ops(&["dlq", "replay", "--json"]);
        assert!(again.status.success());
        assert_eq!(json_of(&again)["examined"], 0);
    }
    assert_eq!(
        standin.stats().await["created"],
        6,
        "each profile created once"
    );
}

/// The envelope the pipeline would deliver for `label`'s user of the stack's pool (the worker
/// refuses anything else: a Cognito-shaped sub, the stack's pool and source, the derived id).
fn envelope(stack: &TestStack, label: &str) -> String {
    let event = uc_schemas::UserConfirmed::builder(
        stack.env.get("USER_POOL_ID").unwrap(),
        uc_schemas::sub_from_label(label),
    )
    .username(format!("user-{label}"))
    .email(format!("{label}@example.com"))
    .email_verified(true)
    .build();
    uc_schemas::to_envelope(stack.env.get("EVENT_SOURCE").unwrap(), &event).to_string()
}

/// Acceptance 2: redrive moves every message back and the worker processes them; a run killed
/// midway and restarted loses nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redrive_survives_being_killed_midway() {
    let stack = TestStack::up("redrive").await;
    let client = stack.sqs().await;
    let dlq = stack.env.get("DLQ_URL").unwrap().to_owned();
    let queue = stack.env.get("QUEUE_URL").unwrap().to_owned();
    let bodies: Vec<String> = (0..40)
        .map(|i| envelope(&stack, &format!("redrive-{i:03}")))
        .collect();
    sqs::send_all(&client, &dlq, &bodies).await;

    // Slowly, so the kill lands midway.
    let mut first = uc_devkit::RunningBinary::start(
        &binary("uc-ops").display().to_string(),
        &[
            "--env-file",
            stack.env_file().to_str().unwrap(),
            "dlq",
            "redrive",
            "--rate",
            "20",
        ],
        &[],
    );
    assert!(
        eventually(Duration::from_secs(20), || async {
            sqs::depth(&client, &queue).await >= 10
        })
        .await
    );
    first.signal("KILL");
    first.wait(Duration::from_secs(5)).expect("killed");
    let moved_before = sqs::depth(&client, &queue).await;
    assert!(moved_before < 40, "killed midway ({moved_before} moved)");

    // Messages the killed run held stay invisible until its hold lapses (15 s for a redrive);
    // a restart moves the rest.
    let second = stack.ops(&["dlq", "redrive", "--json"]);
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    let standin = StandInControl::new(stack.env.get("APPSYNC_GRAPHQL_URL").unwrap());
    let pipeline = Pipeline::start(stack.env.clone(), &binary("uc-emitter"), &[])
        .await
        .unwrap();
    let _worker = pipeline.start_worker(&binary("uc-worker"), &[]);
    let done = eventually(Duration::from_secs(120), || async {
        if sqs::depth(&client, &dlq).await > 0 {
            let _ = stack.ops(&["dlq", "redrive", "--json"]);
        }
        // The killed run's last batch was sent but not deleted: those come back (duplicates,
        // which the worker absorbs) once the killed run's hold on them lapses.
        profile_ids(&standin).await.len() == 40 && sqs::depth(&client, &dlq).await == 0
    })
    .await;
    assert!(done, "profiles: {}", profile_ids(&standin).await.len());
    assert_eq!(sqs::depth(&client, &dlq).await, 0);
    let stats = standin.stats().await;
    for i in 0..40 {
        let sub = uc_schemas::sub_from_label(&format!("redrive-{i:03}"));
        assert_eq!(stats["perId"][sub]["created"], 1);
    }
}

async fn admin_created_users(stack: &TestStack, n: usize) -> Vec<String> {
    let cognito =
        aws_sdk_cognitoidentityprovider::Client::new(&stack.env.sdk_config().await.unwrap());
    let pool = stack.env.get("USER_POOL_ID").unwrap();
    let mut subs = Vec::new();
    for i in 0..n {
        let email = format!("imported.{i}@example.com");
        let created = cognito
            .admin_create_user()
            .user_pool_id(pool)
            .username(&email)
            .user_attributes(
                AttributeType::builder()
                    .name("email")
                    .value(&email)
                    .build()
                    .unwrap(),
            )
            .user_attributes(
                AttributeType::builder()
                    .name("email_verified")
                    .value("true")
                    .build()
                    .unwrap(),
            )
            .message_action(aws_sdk_cognitoidentityprovider::types::MessageActionType::Suppress)
            .send()
            .await
            .unwrap();
        cognito
            .admin_set_user_password()
            .user_pool_id(pool)
            .username(&email)
            .password("Imported-Passw0rd!")
            .permanent(true)
            .send()
            .await
            .unwrap();
        let user = created.user.unwrap();
        subs.push(
            user.attributes()
                .iter()
                .find(|a| a.name() == "sub")
                .unwrap()
                .value()
                .unwrap()
                .to_owned(),
        );
    }
    subs.sort();
    subs
}

/// Acceptance 3: back-fill creates profiles for admin-created users (no trigger ran); an
/// interrupted run resumes from its checkpoint; a dry run publishes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_resumes_and_creates_each_profile_once() {
    let stack = TestStack::up("backfill").await;
    let client = stack.sqs().await;
    let queue = stack.env.get("QUEUE_URL").unwrap().to_owned();
    let subs = admin_created_users(&stack, 70).await;
    let checkpoint = stack.dir.join("backfill.json");
    let checkpoint_arg = checkpoint.to_str().unwrap();

    let dry = json_of(&stack.ops(&[
        "backfill",
        "--dry-run",
        "--json",
        "--checkpoint",
        checkpoint_arg,
    ]));
    assert_eq!(dry["selected"], 70);
    assert_eq!(dry["toPublish"], 70, "no profile yet: {dry}");
    assert_eq!(dry["published"], 0);
    assert!(!checkpoint.exists(), "a dry run writes no checkpoint");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        sqs::depth(&client, &queue).await,
        0,
        "a dry run publishes nothing"
    );

    // Interrupted after one page (60 users): the checkpoint holds the next page token, and the
    // run, which left work undone, exits 1.
    let cut = stack.ops(&[
        "backfill",
        "--json",
        "--max-pages",
        "1",
        "--checkpoint",
        checkpoint_arg,
    ]);
    let first = json_of(&cut);
    assert_eq!(cut.status.code(), Some(1), "{first}");
    assert_eq!(first["published"], 60, "{first}");
    assert_eq!(first["complete"], false);
    assert!(checkpoint.exists());
    let resumed = json_of(&stack.ops(&["backfill", "--json", "--checkpoint", checkpoint_arg]));
    assert_eq!(resumed["resumed"], true);
    assert_eq!(resumed["published"], 10, "{resumed}");
    assert_eq!(resumed["complete"], true);
    assert!(
        !checkpoint.exists(),
        "a completed back-fill removes its checkpoint"
    );

    // The events are marked as back-fills.
    let peeked = client
        .receive_message()
        .queue_url(&queue)
        .visibility_timeout(0)
        .send()
        .await
        .unwrap();
    let body = peeked.messages().first().unwrap().body().unwrap();
    assert_eq!(
        uc_schemas::parse_message(body).unwrap().detail.origin,
        uc_schemas::Origin::Backfill
    );

    let pipeline = Pipeline::start(stack.env.clone(), &binary("uc-emitter"), &[])
        .await
        .unwrap();
    let _worker = pipeline.start_worker(&binary("uc-worker"), &[]);
    let standin = pipeline.standin.clone();
    assert!(
        eventually(Duration::from_secs(60), || async {
            profile_ids(&standin).await.len() == 70
        })
        .await
    );
    assert_eq!(profile_ids(&standin).await, subs);

    // Every user has a profile now: a back-fill publishes no one.
    let none = json_of(&stack.ops(&["backfill", "--json", "--checkpoint", checkpoint_arg]));
    assert_eq!(
        (&none["selected"], &none["hadProfile"], &none["published"]),
        (&70.into(), &70.into(), &0.into()),
        "{none}"
    );
    // A forced republish (--all) publishes every one again; each is still created once (with
    // the pacing lifted: the runs above went at the default 50 users per second).
    let again = json_of(&stack.ops(&[
        "backfill",
        "--json",
        "--all",
        "--direct",
        "--rate",
        "unlimited",
        "--checkpoint",
        checkpoint_arg,
    ]));
    assert_eq!(again["published"], 70);
    assert!(
        eventually(Duration::from_secs(30), || async {
            sqs::depth(&client, &queue).await == 0
        })
        .await
    );
    let stats = standin.stats().await;
    for sub in &subs {
        assert_eq!(stats["perId"][sub]["created"], 1);
    }
}
