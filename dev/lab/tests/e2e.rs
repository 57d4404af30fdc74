//! End-to-end: the whole pipeline on its own fresh local stack per test (moto server and the
//! AppSync stand-in on loopback, resources from the template), the real emitter binary under a
//! Lambda Runtime API, the real worker binary long-polling.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::json;
use uc_devkit::{eventually, free_port, sqs};
use uc_lab::demo::{self, DemoOptions};
use uc_lab::local::StackEnv;

mod support;
use support::{TestStack, binary};
use uc_lab::pipeline::{CONFIRM_SIGN_UP, ConfirmedUser, Pipeline};
use uc_schemas::dead_letter::attr;

fn demo_options(users: usize, resets: usize) -> DemoOptions {
    DemoOptions {
        users,
        resets,
        timeout: Duration::from_secs(120),
        emitter_bin: binary("uc-emitter"),
        worker_bin: binary("uc-worker"),
        show_progress: false,
    }
}

async fn sign_up(pipeline: &Pipeline, prefix: &str, n: usize) -> Vec<ConfirmedUser> {
    let mut users = Vec::new();
    for i in 0..n {
        users.push(
            pipeline
                .sign_up_and_confirm(&format!("{prefix}.{i}@example.com"))
                .await
                .unwrap(),
        );
    }
    users
}

async fn emit(pipeline: &Pipeline, users: &[ConfirmedUser]) {
    for user in users {
        let event = pipeline.trigger_event(user, CONFIRM_SIGN_UP).await.unwrap();
        assert_eq!(pipeline.invoke_emitter(&event).await.result.unwrap(), event);
    }
}

async fn created_ids(pipeline: &Pipeline) -> HashSet<String> {
    pipeline
        .standin
        .profiles()
        .await
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn wait_for_profiles(pipeline: &Pipeline, users: &[ConfirmedUser]) {
    let ok = eventually(Duration::from_secs(90), || async {
        let ids = created_ids(pipeline).await;
        users.iter().all(|u| ids.contains(&u.sub))
    })
    .await;
    assert!(
        ok,
        "profiles: {} of {}",
        created_ids(pipeline).await.len(),
        users.len()
    );
}

async fn dlq_depths(env: &StackEnv) -> (u64, u64) {
    let client = aws_sdk_sqs::Client::new(&env.sdk_config().await.unwrap());
    (
        sqs::depth(&client, env.get("DLQ_URL").unwrap()).await,
        sqs::depth(&client, env.get("RULE_DLQ_URL").unwrap()).await,
    )
}

fn assert_created_once(stats: &serde_json::Value, users: &[ConfirmedUser]) {
    for user in users {
        assert_eq!(
            stats["perId"][&user.sub]["created"], 1,
            "{}: {}",
            user.sub, stats["perId"][&user.sub]
        );
    }
}

/// 1 and 3: the happy path with password resets, through the demo itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn happy_path_with_password_resets() {
    let stack = TestStack::up("happy").await;
    let report = demo::run(stack.env.clone(), &demo_options(25, 5))
        .await
        .unwrap();
    assert!(report.is_exact(), "{}", demo::render(&report));
    assert_eq!(report.users, 25);
    assert_eq!(
        report.events_published, 25,
        "password resets publish nothing"
    );
    assert_eq!(report.skipped, 5);
    assert_eq!(report.profiles_created, 25);
    assert_eq!(report.dlq_depth, 0);
    let standin = uc_devkit::StandInControl::new(stack.env.get("APPSYNC_GRAPHQL_URL").unwrap());
    let profiles = standin.profiles().await;
    // The demo deletes a tenth of the users and has an administrator create as many.
    assert_eq!((report.deleted_users, report.admin_created), (2, 2));
    assert_eq!(
        profiles.len(),
        25,
        "no second profile from a password reset; 2 deleted, 2 created by an administrator"
    );
    for profile in profiles {
        let id = profile["id"].as_str().unwrap();
        let owner = profile["profileOwner"].as_str().unwrap();
        let (sub, username) = owner.split_once("::").unwrap();
        assert_eq!(sub, id, "owner is <sub>::<username>");
        // Sign-ups have UUID user names (Amplify's email sign-in); the administrator used
        // the address as the user name.
        assert!(
            uuid_like(username) || username.contains(".admin."),
            "Cognito's userName: {username}"
        );
        assert!(profile["email"].as_str().unwrap().ends_with("@example.com"));
    }
}

fn uuid_like(text: &str) -> bool {
    text.len() == 36 && text.chars().filter(|c| *c == '-').count() == 4
}

/// 2: Cognito's retries (the same PostConfirmation three times) and SQS's redelivery (the same
/// message twice) make one profile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_deliveries_make_one_profile() {
    let stack = TestStack::up("dups").await;
    let pipeline = Pipeline::start(stack.env.clone(), &binary("uc-emitter"), &[])
        .await
        .unwrap();
    let users = sign_up(&pipeline, "dup", 2).await;
    for _ in 0..3 {
        emit(&pipeline, &users[..1]).await;
    }
    // The same message twice straight into the queue (an SQS at-least-once redelivery).
    let body = uc_schemas::to_envelope(
        uc_schemas::DEFAULT_SOURCE,
        &uc_schemas::UserConfirmed::new(
            stack.env.get("USER_POOL_ID").unwrap(),
            &users[1].sub,
            &users[1].username,
            None,
            None,
            None,
            chrono::Utc::now(),
            "us-east-1",
            uc_schemas::Origin::PostConfirmation,
        ),
    )
    .to_string();
    let client = aws_sdk_sqs::Client::new(&stack.env.sdk_config().await.unwrap());
    sqs::send_all(
        &client,
        stack.env.get("QUEUE_URL").unwrap(),
        &[body.clone(), body],
    )
    .await;

    let mut worker = pipeline.start_worker(&binary("uc-worker"), &[]);
    wait_for_profiles(&pipeline, &users).await;
    assert!(
        eventually(Duration::from_secs(20), || async {
            sqs::depth(&client, stack.env.get("QUEUE_URL").unwrap()).await == 0
        })
        .await
    );
    let stats = pipeline.standin.stats().await;
    assert_created_once(&stats, &users);
    assert_eq!(
        stats["perId"][&users[0].sub]["duplicates"], 2,
        "{}",
        stats["perId"][&users[0].sub]
    );
    assert_eq!(stats["perId"][&users[1].sub]["duplicates"], 1);
    assert_eq!(pipeline.standin.profiles().await.len(), 2);
    worker.signal("TERM");
    assert!(worker.wait(Duration::from_secs(20)).unwrap().success());
}

/// 4: a large share of AppSync requests fail with 503/429 for a while.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_faults_heal_without_duplicates() {
    let stack = TestStack::up("transient").await;
    let pipeline = Pipeline::start(stack.env.clone(), &binary("uc-emitter"), &[])
        .await
        .unwrap();
    let users = sign_up(&pipeline, "flaky", 30).await;
    pipeline
        .standin
        .set_faults(json!([
            {"status": 503, "fraction": 0.35, "count": 40},
            {"status": 429, "fraction": 0.25, "count": 25},
        ]))
        .await;
    let _worker =
        pipeline.start_worker(&binary("uc-worker"), &[("RETRY_MIN_DELAY_MS", "20".into())]);
    emit(&pipeline, &users).await;
    wait_for_profiles(&pipeline, &users).await;
    let stats = pipeline.standin.stats().await;
    assert_created_once(&stats, &users);
    let injected: u64 = stats["faultsInjected"]
        .as_object()
        .unwrap()
        .values()
        .filter_map(|v| v.as_u64())
        .sum();
    assert!(
        injected >= 10,
        "faults were injected: {}",
        stats["faultsInjected"]
    );
    assert_eq!(dlq_depths(&stack.env).await, (0, 0));
}

/// 5: a permanent fault for some users puts exactly those in the DLQ, with their reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_faults_go_to_the_dlq_with_their_reason() {
    let stack = TestStack::up("permanent").await;
    let pipeline = Pipeline::start(stack.env.clone(), &binary("uc-emitter"), &[])
        .await
        .unwrap();
    let users = sign_up(&pipeline, "perm", 10).await;
    let denied: Vec<&str> = users[..3].iter().map(|u| u.sub.as_str()).collect();
    pipeline
        .standin
        .set_faults(json!([{"errorType": "Unauthorized", "match": {"idIn": denied}}]))
        .await;
    let _worker = pipeline.start_worker(&binary("uc-worker"), &[]);
    emit(&pipeline, &users).await;
    wait_for_profiles(&pipeline, &users[3..]).await;

    let client = aws_sdk_sqs::Client::new(&stack.env.sdk_config().await.unwrap());
    let dlq = stack.env.get("DLQ_URL").unwrap();
    // A bound on a hung run, not the subject: on a loaded machine the three may take a while.
    assert!(
        eventually(Duration::from_secs(90), || async {
            sqs::depth(&client, dlq).await == 3
        })
        .await,
        "DLQ depth {}",
        sqs::depth(&client, dlq).await
    );
    let dead = sqs::drain(&client, dlq).await;
    let mut dead_subs: Vec<String> = dead
        .iter()
        .map(|m| {
            let attributes = m.message_attributes().unwrap();
            assert_eq!(
                attributes[attr::REASON].string_value(),
                Some("Unauthorized")
            );
            attributes[attr::SUB].string_value().unwrap().to_owned()
        })
        .collect();
    dead_subs.sort();
    let mut expected: Vec<String> = denied.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(dead_subs, expected);
    assert_eq!(created_ids(&pipeline).await.len(), 7);
}

/// 6: the worker killed with SIGKILL mid-batch, then started again: nothing lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_killed_mid_batch_loses_nothing() {
    let stack = TestStack::up("sigkill").await;
    let pipeline = Pipeline::start(stack.env.clone(), &binary("uc-emitter"), &[])
        .await
        .unwrap();
    let users = sign_up(&pipeline, "kill", 60).await;
    pipeline
        .standin
        .set_faults(json!([{"latencyMs": 40}]))
        .await;
    emit(&pipeline, &users).await;
    let mut first = pipeline.start_worker(&binary("uc-worker"), &[("CONCURRENCY", "4".into())]);
    assert!(
        eventually(Duration::from_secs(30), || async {
            created_ids(&pipeline).await.len() >= 10
        })
        .await
    );
    first.signal("KILL");
    first.wait(Duration::from_secs(5)).expect("killed");
    assert!(
        created_ids(&pipeline).await.len() < users.len(),
        "killed mid-run"
    );

    let _second = pipeline.start_worker(&binary("uc-worker"), &[("CONCURRENCY", "16".into())]);
    wait_for_profiles(&pipeline, &users).await;
    let stats = pipeline.standin.stats().await;
    assert_created_once(&stats, &users);
    assert_eq!(dlq_depths(&stack.env).await, (0, 0));
}

/// 7: EventBridge unreachable for the emitter; the fallback queue carries the events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eventbridge_down_falls_back_to_the_queue() {
    let stack = TestStack::up("fallback").await;
    let unreachable = format!("http://127.0.0.1:{}", free_port());
    let overrides = [
        ("AWS_ENDPOINT_URL_EVENTBRIDGE", unreachable),
        ("PUBLISH_BUDGET_MS", "1000".into()),
    ];
    let pipeline = Pipeline::start(stack.env.clone(), &binary("uc-emitter"), &overrides)
        .await
        .unwrap();
    let users = sign_up(&pipeline, "fallback", 8).await;
    let _worker = pipeline.start_worker(&binary("uc-worker"), &[]);
    emit(&pipeline, &users).await;
    wait_for_profiles(&pipeline, &users).await;
    let output = pipeline.emitter_output();
    assert_eq!(
        uc_runtime::metrics::read_count(&output, "emitter", "Fallback"),
        8
    );
    assert_eq!(
        uc_runtime::metrics::read_count(&output, "emitter", "Published"),
        0
    );
    assert_created_once(&pipeline.standin.stats().await, &users);
}
