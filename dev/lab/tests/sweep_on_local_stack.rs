//! Issue 21's acceptance on the local stack: a sweep publishes `UserConfirmed` only for users
//! without a profile. 40 sign-ups through the real emitter and worker, then two reconcile
//! passes: exactly 40 events on the bus (counted by a rule and queue of this test's own) and 40
//! `createUserProfile` calls; then 5 administrators' users and 3 sign-ups no trigger saw: one
//! pass publishes exactly those 8. The same with `PROFILE_STORE=dynamodb`: the audit reads the
//! model table (0 when every profile is there, 1 with 2 missing), a pass and the worker fill
//! the gap, the audit is clean again.

use std::time::Duration;

use uc_devkit::{StandInControl, eventually, sqs};
use uc_lab::pipeline::Pipeline;
use uc_runtime::metrics::read_count;
use uc_schemas::{Origin, UserConfirmed};

mod support;
use support::{TestStack, binary, json_of};
use uc_devkit::dynamodb::create_model_table;

/// What the counting queue received since the last call (after a moment for the last to arrive).
#[derive(Debug, Default, PartialEq)]
struct Received {
    /// Events the trigger published (`origin: postConfirmation`).
    trigger: usize,
    /// Distinct users among them.
    trigger_users: usize,
    /// Events a sweep published (`origin: reconciliation`).
    sweep: usize,
}

async fn received(stack: &TestStack, queue: &str) -> Received {
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut got = Received::default();
    let mut users = std::collections::HashSet::new();
    for message in sqs::drain(&stack.sqs().await, queue).await {
        let envelope: serde_json::Value = serde_json::from_str(message.body().unwrap()).unwrap();
        let event: UserConfirmed = serde_json::from_value(envelope["detail"].clone()).unwrap();
        match event.origin {
            Origin::Reconciliation => got.sweep += 1,
            _ => {
                got.trigger += 1;
                users.insert(event.sub);
            }
        }
    }
    got.trigger_users = users.len();
    got
}

/// Events the emitter published twice on purpose: a retry after an attempt whose outcome it
/// could not know (at-least-once; a busy 2-core machine can time one out). Zero on a quiet one.
fn emitter_retries(pipeline: &Pipeline) -> usize {
    read_count(&pipeline.emitter_output(), "emitter", "Retried") as usize
}

/// A reconcile pass that judges users however recently they changed (no grace period).
fn reconcile(stack: &TestStack, env: &[(&str, &str)]) -> serde_json::Value {
    let mut env = env.to_vec();
    env.push(("RECONCILE_GRACE_SECONDS", "0"));
    let pass = stack.ops_with(&env, &["reconcile", "--json"]);
    let report = json_of(&pass);
    assert_eq!(pass.status.code(), Some(0), "{report}");
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_publish_only_users_without_a_profile() {
    let stack = TestStack::up("sweep").await;
    let counter = stack.subscribe("sweep-counter", "UserConfirmed").await;
    let pipeline = Pipeline::start(stack.env.clone(), &binary("uc-emitter"), &[])
        .await
        .unwrap();
    let standin: StandInControl = pipeline.standin.clone();
    let mut worker = pipeline.start_worker(&binary("uc-worker"), &[]);

    for i in 0..40 {
        pipeline
            .sign_up_through_trigger(&format!("sweep.{i}@example.com"))
            .await
            .unwrap();
    }
    assert!(
        eventually(Duration::from_secs(120), || async {
            standin.profiles().await.len() == 40
        })
        .await,
        "profiles: {}",
        standin.profiles().await.len()
    );
    // Two passes, as the schedule would run them: every user is judged and has a profile.
    for _ in 0..2 {
        let report = reconcile(&stack, &[]);
        assert_eq!(report["selected"], 40, "{report}");
        assert_eq!(report["hadProfile"], 40, "{report}");
        assert_eq!(report["published"], 0, "{report}");
        assert_eq!(report["storeReads"], 1, "one read for the page: {report}");
    }
    // Exactly one event per sign-up on the bus, and one createUserProfile each: the passes
    // added none. (An emitter retry after an unknown outcome would add its own duplicate.)
    let got = received(&stack, &counter).await;
    assert_eq!((got.sweep, got.trigger_users), (0, 40), "{got:?}");
    let duplicates = got.trigger - 40;
    assert!(duplicates <= emitter_retries(&pipeline), "{got:?}");
    if duplicates > 0 {
        eprintln!("the emitter retried and published {duplicates} event(s) twice");
    }
    assert_eq!(
        standin.stats().await["createAttempts"],
        40 + duplicates,
        "one createUserProfile call per event"
    );

    // Users no trigger reported: administrators' users and sign-ups confirmed by AdminConfirmSignUp.
    for i in 0..5 {
        pipeline
            .admin_create(&format!("sweep.invited.{i}@example.com"), true)
            .await
            .unwrap();
    }
    for i in 0..3 {
        pipeline
            .sign_up_and_confirm(&format!("sweep.silent.{i}@example.com"))
            .await
            .unwrap();
    }
    let report = reconcile(&stack, &[]);
    assert_eq!(report["published"], 8, "{report}");
    assert_eq!(report["hadProfile"], 40, "{report}");
    assert!(
        eventually(Duration::from_secs(60), || async {
            standin.profiles().await.len() == 48
        })
        .await
    );
    assert_eq!(
        received(&stack, &counter).await,
        Received {
            sweep: 8,
            ..Default::default()
        }
    );
    // Steady state again: a pass publishes no one.
    assert_eq!(reconcile(&stack, &[])["published"], 0);
    assert_eq!(received(&stack, &counter).await, Received::default());
    assert_eq!(
        standin.stats().await["createAttempts"],
        48 + duplicates,
        "one createUserProfile call per event"
    );
    // A store that cannot answer stops the pass: it cannot tell (exit 2), publishes no one,
    // and does not treat "unknown" as "no profile".
    let blind = stack.ops_with(
        &[
            ("RECONCILE_GRACE_SECONDS", "0"),
            ("APPSYNC_GRAPHQL_URL", "http://127.0.0.1:9/graphql"),
        ],
        &["reconcile"],
    );
    let stderr = String::from_utf8_lossy(&blind.stderr);
    assert_eq!(blind.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("cannot tell which users have a profile"),
        "{stderr}"
    );
    assert_eq!(received(&stack, &counter).await, Received::default());
    worker.signal("TERM");
    worker.wait(Duration::from_secs(20));
}

const TABLE: &str = "UserProfile-sweepapi-dev";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_dynamodb_store_the_audit_and_the_pass_read_the_table() {
    let stack = TestStack::up("sweep-dynamodb").await;
    let sdk = stack.env.sdk_config().await.unwrap();
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    create_model_table(&dynamodb, TABLE).await;
    let store = [("PROFILE_STORE", "dynamodb"), ("PROFILE_TABLE", TABLE)];
    let counter = stack.subscribe("sweep-ddb-counter", "UserConfirmed").await;
    let pipeline = Pipeline::start(stack.env.clone(), &binary("uc-emitter"), &[])
        .await
        .unwrap();
    let items = || async {
        dynamodb
            .scan()
            .table_name(TABLE)
            .send()
            .await
            .unwrap()
            .count() as usize
    };
    let worker_store: Vec<(&str, String)> =
        store.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
    let mut worker = pipeline.start_worker(&binary("uc-worker"), &worker_store);
    for i in 0..5 {
        pipeline
            .sign_up_through_trigger(&format!("sweep.ddb.{i}@example.com"))
            .await
            .unwrap();
    }
    assert!(eventually(Duration::from_secs(60), || async { items().await == 5 }).await);
    worker.signal("TERM");
    worker.wait(Duration::from_secs(20));

    let audit = |expected: i32| {
        let mut env = store.to_vec();
        // The AppSync endpoint is in the stack's env file: the audit must not read it.
        env.push(("APPSYNC_GRAPHQL_URL", "http://127.0.0.1:9/graphql"));
        let audit = stack.ops_with(&env, &["audit", "--grace-seconds", "0", "--json"]);
        let report = json_of(&audit);
        assert_eq!(audit.status.code(), Some(expected), "{report}");
        report
    };
    let clean = audit(0);
    assert_eq!(clean["profiles"], 5, "{clean}");
    assert_eq!(clean["missing"], 0, "{clean}");

    // Two users no trigger reported: the audit finds them in the table's absence.
    for i in 0..2 {
        pipeline
            .admin_create(&format!("sweep.ddb.invited.{i}@example.com"), true)
            .await
            .unwrap();
    }
    let missing = audit(1);
    assert_eq!(missing["missing"], 2, "{missing}");

    // One pass (the store check is BatchGetItem on the table) publishes the two; the worker
    // writes them; the audit is clean.
    let report = reconcile(&stack, &store);
    assert_eq!(report["published"], 2, "{report}");
    assert_eq!(report["hadProfile"], 5, "{report}");
    let mut worker = pipeline.start_worker(&binary("uc-worker"), &worker_store);
    assert!(eventually(Duration::from_secs(60), || async { items().await == 7 }).await);
    worker.signal("TERM");
    worker.wait(Duration::from_secs(20));
    let after = audit(0);
    assert_eq!(after["profiles"], 7, "{after}");
    let got = received(&stack, &counter).await;
    assert_eq!((got.sweep, got.trigger_users), (2, 5), "{got:?}");
    assert!(got.trigger - 5 <= emitter_retries(&pipeline), "{got:?}");
}
