//! Issue 22's sweep on the local stack: `uc-ops reconcile --orphans`, run as a real process with
//! the stack's env file, erases the profiles of users deleted without a CloudTrail record
//! (moto's `AdminDeleteUser` records none: only the sweep can find them). 26 users with
//! profiles through the real emitter and worker, one of them moved to `RESET_REQUIRED` (not
//! counted, still a user: never an orphan); 3 deleted. A dry run lists exactly those 3 and
//! erases nothing; the sweep erases them (the stand-in no longer has them; 3 `UserDeleted`,
//! `detectedBy: sweep`, reach a consumer's rule and queue on the pipeline bus); a second sweep
//! finds nothing. A sweep pointed at another, empty pool erases nothing and exits 2; 11 more
//! deletions are more than the guard's limit (max(10, 1%)): exit 2, nothing erased, until
//! `--max-orphans 11`. Then the same with the DynamoDB store: the profiles become DataStore
//! tombstones, which neither the audit nor a later sweep counts as profiles or orphans; and
//! the scheduled reconciler runs the sweep when its payload asks (`{"orphans": ...}`): a dry
//! run answers the report, a sweep erases, a refusal fails the invocation.

use std::collections::BTreeSet;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{Value, json};
use uc_devkit::dynamodb::create_model_table;
use uc_devkit::{LambdaHarness, eventually, sqs};
use uc_lab::pipeline::{ConfirmedUser, Pipeline};
use uc_runtime::metrics::read_count;
use uc_schemas::USER_DELETED_DETAIL_TYPE;

mod support;
use support::{TestStack, binary, json_of};

/// The `UserDeleted` details the queue received since the last call (after a moment for the
/// last to arrive).
async fn user_deleted(stack: &TestStack, queue: &str) -> Vec<Value> {
    tokio::time::sleep(Duration::from_secs(2)).await;
    sqs::drain(&stack.sqs().await, queue)
        .await
        .iter()
        .map(|m| serde_json::from_str::<Value>(m.body().unwrap()).unwrap()["detail"].clone())
        .collect()
}

/// One orphan sweep with `env` over the stack's env file; its JSON report and exit code.
fn sweep(stack: &TestStack, env: &[(&str, &str)], args: &[&str]) -> (Value, Option<i32>) {
    let mut all = vec!["reconcile", "--orphans", "--json"];
    all.extend_from_slice(args);
    let run = stack.ops_with(env, &all);
    (json_of(&run), run.status.code())
}

fn subs_of(users: &[ConfirmedUser]) -> BTreeSet<String> {
    users.iter().map(|u| u.sub.clone()).collect()
}

fn strings(value: &Value) -> BTreeSet<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {value}"))
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

fn erasures(report: &Value) -> (u64, u64, u64, u64) {
    let e = &report["erasures"];
    let n = |k: &str| e[k].as_u64().unwrap_or_else(|| panic!("{k}: {report}"));
    (n("erased"), n("alreadyGone"), n("userExists"), n("failed"))
}

async fn delete_users(pipeline: &Pipeline, users: &[ConfirmedUser]) {
    for user in users {
        pipeline.admin_delete(&user.username).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_erases_orphans_and_refuses_a_mass_deletion() {
    let stack = TestStack::up("orphans").await;
    let consumer = stack
        .subscribe("orphans-erasure-consumer", USER_DELETED_DETAIL_TYPE)
        .await;
    let pipeline = Pipeline::start(stack.env.clone(), &binary("uc-emitter"), &[])
        .await
        .unwrap();
    let standin = pipeline.standin.clone();
    let mut worker = pipeline.start_worker(&binary("uc-worker"), &[]);
    let mut users = Vec::new();
    for i in 0..26 {
        users.push(
            pipeline
                .sign_up_through_trigger(&format!("orphan.{i}@example.com"))
                .await
                .unwrap(),
        );
    }
    let profile_ids = || async {
        standin
            .profiles()
            .await
            .iter()
            .map(|p| p["id"].as_str().unwrap().to_owned())
            .collect::<BTreeSet<String>>()
    };
    assert!(
        eventually(Duration::from_secs(120), || async {
            profile_ids().await.len() == 26
        })
        .await,
        "profiles: {}",
        profile_ids().await.len()
    );
    worker.signal("TERM");
    worker.wait(Duration::from_secs(20));

    let sdk = stack.env.sdk_config().await.unwrap();
    let cognito = aws_sdk_cognitoidentityprovider::Client::new(&sdk);
    let pool = stack.env.get("USER_POOL_ID").unwrap().to_owned();
    // A user in a status the pipeline does not count is still a user: their profile stays.
    // (Cognito resets only an account with a verified address.)
    cognito
        .admin_update_user_attributes()
        .user_pool_id(&pool)
        .username(&users[25].username)
        .user_attributes(
            aws_sdk_cognitoidentityprovider::types::AttributeType::builder()
                .name("email_verified")
                .value("true")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    cognito
        .admin_reset_user_password()
        .user_pool_id(&pool)
        .username(&users[25].username)
        .send()
        .await
        .unwrap();
    let reset = users.pop().unwrap();
    // Three users deleted with no CloudTrail record: the worker never hears of it.
    let gone: Vec<ConfirmedUser> = users.drain(..3).collect();
    delete_users(&pipeline, &gone).await;

    let audit = stack.ops(&["audit", "--grace-seconds", "0", "--json"]);
    let found = json_of(&audit);
    assert_eq!(audit.status.code(), Some(1), "{found}");
    assert_eq!(found["orphaned"], 3, "{found}");
    assert_eq!(found["users_by_status"]["RESET_REQUIRED"], 1, "{found}");

    // A dry run lists exactly the three, with the guard's verdict, and erases nothing.
    let (dry, code) = sweep(&stack, &[], &["--dry-run"]);
    assert_eq!(code, Some(0), "{dry}");
    assert_eq!(dry["dryRun"], true);
    assert_eq!(dry["guard"]["allowed"], true, "{dry}");
    assert_eq!(dry["guard"]["limit"], 10, "{dry}");
    assert_eq!(
        (dry["profiles"].as_u64(), dry["orphans"].as_u64()),
        (Some(26), Some(3)),
        "{dry}"
    );
    assert_eq!(strings(&dry["orphanSubs"]), subs_of(&gone), "{dry}");
    assert!(dry["erasures"].is_null(), "{dry}");
    assert_eq!(profile_ids().await.len(), 26, "a dry run erases nothing");
    assert!(user_deleted(&stack, &consumer).await.is_empty());

    // The sweep erases the three: profiles gone, one UserDeleted each, detected by the sweep.
    let (done, code) = sweep(&stack, &[], &[]);
    assert_eq!(code, Some(0), "{done}");
    assert_eq!(erasures(&done), (3, 0, 0, 0), "{done}");
    let left = profile_ids().await;
    assert_eq!(left.len(), 23);
    assert!(
        left.is_disjoint(&subs_of(&gone)),
        "the deleted users' profiles are gone"
    );
    assert!(
        left.contains(&reset.sub),
        "the RESET_REQUIRED user keeps theirs"
    );
    let events = user_deleted(&stack, &consumer).await;
    assert_eq!(
        events
            .iter()
            .map(|e| e["sub"].as_str().unwrap().to_owned())
            .collect::<BTreeSet<_>>(),
        subs_of(&gone),
        "{events:?}"
    );
    assert_eq!(events.len(), 3, "{events:?}");
    for event in &events {
        assert_eq!(event["detectedBy"], "sweep", "{event}");
        assert_eq!(event["profileDeleted"], true, "{event}");
        assert_eq!(event["userPoolId"], pool.as_str(), "{event}");
        assert!(event.get("email").is_none(), "no PII: {event}");
    }

    // Nothing left: a second sweep finds no orphan and publishes nothing.
    let (again, code) = sweep(&stack, &[], &[]);
    assert_eq!(code, Some(0), "{again}");
    assert_eq!(again["orphans"], 0, "{again}");
    assert_eq!(erasures(&again), (0, 0, 0, 0), "{again}");
    assert!(user_deleted(&stack, &consumer).await.is_empty());

    // USER_POOL_ID naming another (empty) pool: every profile looks orphaned; nothing is
    // erased, exit 2, and the text says why.
    let empty = cognito
        .create_user_pool()
        .pool_name("orphans-wrong-pool")
        .send()
        .await
        .unwrap()
        .user_pool
        .unwrap()
        .id
        .unwrap();
    let wrong = [("USER_POOL_ID", empty.as_str())];
    let (refused, code) = sweep(&stack, &wrong, &[]);
    assert_eq!(code, Some(2), "{refused}");
    assert_eq!(refused["guard"]["refusal"], "EmptyListing", "{refused}");
    assert_eq!(refused["orphans"], 23, "{refused}");
    assert!(refused["erasures"].is_null(), "{refused}");
    let text = stack.ops_with(&wrong, &["reconcile", "--orphans", "--max-orphans", "1000"]);
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert_eq!(text.status.code(), Some(2), "{stdout}");
    assert!(
        stdout.contains("REFUSED (EmptyListing): no user of a counted status was listed"),
        "{stdout}"
    );
    assert!(stdout.contains("nothing was erased"), "{stdout}");
    assert_eq!(profile_ids().await.len(), 23);

    // 11 more deletions: more than the default limit of 10 (23 profiles: 1% is 0). Refused,
    // nothing erased, until the operator raises the limit to the count the dry run showed.
    let more: Vec<ConfirmedUser> = users.drain(..11).collect();
    delete_users(&pipeline, &more).await;
    let (capped, code) = sweep(&stack, &[], &[]);
    assert_eq!(code, Some(2), "{capped}");
    assert_eq!(capped["guard"]["refusal"], "TooManyOrphans", "{capped}");
    assert_eq!(capped["orphans"], 11, "{capped}");
    assert_eq!(
        capped["orphanSubs"].as_array().unwrap().len(),
        11,
        "{capped}"
    );
    assert_eq!(profile_ids().await.len(), 23, "nothing erased");
    assert!(user_deleted(&stack, &consumer).await.is_empty());
    let (raised, code) = sweep(&stack, &[], &["--max-orphans", "11"]);
    assert_eq!(code, Some(0), "{raised}");
    assert_eq!(erasures(&raised), (11, 0, 0, 0), "{raised}");
    let left = profile_ids().await;
    assert_eq!(left.len(), 12);
    assert!(left.is_disjoint(&subs_of(&more)));
    assert_eq!(user_deleted(&stack, &consumer).await.len(), 11);

    // The store and the pool agree again.
    let audit = stack.ops(&["audit", "--grace-seconds", "0", "--json"]);
    let clean = json_of(&audit);
    assert_eq!(audit.status.code(), Some(0), "{clean}");
    assert_eq!(clean["profiles"], 12, "{clean}");
}

const TABLE: &str = "UserProfile-orphansapi-dev";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_dynamodb_store_erased_profiles_are_tombstones_not_orphans() {
    let stack = TestStack::up("orphans-dynamodb").await;
    let sdk = stack.env.sdk_config().await.unwrap();
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    create_model_table(&dynamodb, TABLE).await;
    // The AppSync endpoint is in the stack's env file: nothing here may read it.
    let store = [
        ("PROFILE_STORE", "dynamodb"),
        ("PROFILE_TABLE", TABLE),
        ("APPSYNC_GRAPHQL_URL", "http://127.0.0.1:9/graphql"),
    ];
    let consumer = stack
        .subscribe("orphans-ddb-erasure-consumer", USER_DELETED_DETAIL_TYPE)
        .await;
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
            .items()
            .to_vec()
    };
    let worker_store: Vec<(&str, String)> = store[..2]
        .iter()
        .map(|(k, v)| (*k, (*v).to_owned()))
        .collect();
    let mut worker = pipeline.start_worker(&binary("uc-worker"), &worker_store);
    let mut users = Vec::new();
    for i in 0..6 {
        users.push(
            pipeline
                .sign_up_through_trigger(&format!("orphan.ddb.{i}@example.com"))
                .await
                .unwrap(),
        );
    }
    assert!(
        eventually(Duration::from_secs(60), || async {
            items().await.len() == 6
        })
        .await
    );
    worker.signal("TERM");
    worker.wait(Duration::from_secs(20));

    let gone: Vec<ConfirmedUser> = users.drain(..2).collect();
    delete_users(&pipeline, &gone).await;
    let (done, code) = sweep(&stack, &store, &[]);
    assert_eq!(code, Some(0), "{done}");
    assert_eq!(done["store"], format!("DynamoDB table {TABLE}"), "{done}");
    assert_eq!(strings(&done["orphanSubs"]), subs_of(&gone), "{done}");
    assert_eq!(erasures(&done), (2, 0, 0, 0), "{done}");
    // DataStore's soft delete: the items stay as tombstones, without the email or the owner.
    let all = items().await;
    assert_eq!(all.len(), 6);
    let tombstones: Vec<_> = all
        .iter()
        .filter(|item| matches!(item.get("_deleted"), Some(AttributeValue::Bool(true))))
        .collect();
    assert_eq!(tombstones.len(), 2);
    for item in &tombstones {
        let AttributeValue::S(id) = &item["id"] else {
            panic!("{item:?}")
        };
        assert!(subs_of(&gone).contains(id), "{item:?}");
        assert!(!item.contains_key("email") && !item.contains_key("profileOwner"));
    }
    let events = user_deleted(&stack, &consumer).await;
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(events.iter().all(|e| e["detectedBy"] == "sweep"));

    // Tombstones are neither profiles nor orphans: the audit is clean, a second sweep finds
    // nothing (it would otherwise "erase" them again on every run).
    let audit = stack.ops_with(&store, &["audit", "--grace-seconds", "0", "--json"]);
    let report = json_of(&audit);
    assert_eq!(audit.status.code(), Some(0), "{report}");
    assert_eq!(
        (report["profiles"].as_u64(), report["tombstones"].as_u64()),
        (Some(4), Some(2)),
        "{report}"
    );
    let (again, code) = sweep(&stack, &store, &[]);
    assert_eq!(code, Some(0), "{again}");
    assert_eq!(
        (again["profiles"].as_u64(), again["tombstones"].as_u64()),
        (Some(4), Some(2)),
        "{again}"
    );
    assert_eq!(again["orphans"], 0, "{again}");
    assert!(user_deleted(&stack, &consumer).await.is_empty());

    // The scheduled reconciler runs the same sweep when an invocation's payload asks for it
    // (in AWS under its own role: the bus admits UserDeleted from the worker's and the
    // reconciler's roles only). Its answer is the report.
    let last = users.remove(0);
    delete_users(&pipeline, std::slice::from_ref(&last)).await;
    let mut env = stack.env.binary_env();
    env.extend(store.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let env: Vec<(&str, String)> = env.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let reconciler =
        LambdaHarness::start(&binary("uc-reconciler").display().to_string(), &env).await;
    let invoke = |payload: Value| {
        let reconciler = &reconciler;
        async move {
            reconciler
                .invoke(&payload, Duration::from_secs(60))
                .await
                .result
        }
    };
    let dry = invoke(json!({"orphans": {"dryRun": true}})).await.unwrap();
    assert_eq!(dry["orphanSubs"], json!([last.sub]), "{dry}");
    assert!(dry["erasures"].is_null(), "{dry}");
    let done = invoke(json!({"orphans": true})).await.unwrap();
    assert_eq!(erasures(&done), (1, 0, 0, 0), "{done}");
    assert_eq!(user_deleted(&stack, &consumer).await.len(), 1);
    assert_eq!(
        read_count(&reconciler.output(), "reconciler", "OrphansErased"),
        1
    );
    // A refused sweep fails the invocation, so the function's error alarm fires; a pass still
    // runs as it did (an empty payload, as the schedule sends).
    let next = users.remove(0);
    delete_users(&pipeline, std::slice::from_ref(&next)).await;
    let refused = invoke(json!({"orphans": {"maxOrphans": 0}}))
        .await
        .unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("orphan sweep refused, nothing erased"),
        "{refused}"
    );
    assert!(invoke(json!({})).await.is_ok());
    let audit = stack.ops_with(&store, &["audit", "--grace-seconds", "0", "--json"]);
    assert_eq!(
        json_of(&audit)["orphaned"],
        1,
        "the refused sweep erased nothing"
    );
}
