//! Issue 23: the pipeline against Amplify's own resolvers. The local stack's GraphQL is served by
//! Amplify's AppSync simulator running what Amplify's GraphQL transformer generated for the
//! seeds' model (`dev/amplify-sim/`), on moto's DynamoDB. Five sign-ups through the emitter
//! binary and the worker make exactly one item each, shaped as Amplify's create resolver writes
//! it; a redelivered message is `AlreadyExisted` through that resolver's conditional check;
//! nothing is dead-lettered; and `uc-ops audit` reads the profiles through the simulator.
//!
//! Needs the pinned npm package (`make amplify-sim`; `make test` installs it): without it the
//! stack does not come up and the test fails saying so.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use serde_json::Value;
use uc_devkit::{eventually, sqs};
use uc_lab::local::{GraphqlBackend, PROFILE_MODEL_TABLE};
use uc_lab::pipeline::{ConfirmedUser, Pipeline, worker_outcome_subs};
use uc_lab::profiles::StoredProfiles;

mod support;
use support::{TestStack, binary, json_of};

/// How many of the worker's `profile written` lines report `outcome` for `sub`.
fn worker_outcomes(lines: &[String], outcome: &str, sub: &str) -> usize {
    worker_outcome_subs(lines, outcome)
        .iter()
        .filter(|s| *s == sub)
        .count()
}

fn timestamp(item: &Value, name: &str) -> chrono::DateTime<chrono::FixedOffset> {
    let text = item[name]
        .as_str()
        .unwrap_or_else(|| panic!("{name} in {item}"));
    chrono::DateTime::parse_from_rfc3339(text).unwrap_or_else(|e| panic!("{name} {text}: {e}"))
}

/// The attributes Amplify's create resolver writes: the input, `__typename` and the two
/// timestamps, nothing else (no `owner`, no DataStore fields without conflict detection).
const AMPLIFY_ITEM: [&str; 6] = [
    "id",
    "email",
    "profileOwner",
    "__typename",
    "createdAt",
    "updatedAt",
];

fn attribute_names(item: &Value) -> BTreeSet<&str> {
    item.as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect()
}

fn assert_amplify_item(item: &Value, user: &ConfirmedUser, email: &str) {
    assert_eq!(
        attribute_names(item),
        BTreeSet::from(AMPLIFY_ITEM),
        "{item}"
    );
    assert_amplify_values(item, user, email);
}

/// The values Amplify's resolver writes for `user`'s sign-up.
fn assert_amplify_values(item: &Value, user: &ConfirmedUser, email: &str) {
    assert_eq!(item["id"], user.sub.as_str());
    assert_eq!(
        item["profileOwner"],
        format!("{}::{}", user.sub, user.username).as_str(),
        "the owner as the worker sent it, <sub>::<username>"
    );
    assert_eq!(item["email"], email);
    assert_eq!(item["__typename"], "UserProfile");
    assert_eq!(timestamp(item, "createdAt"), timestamp(item, "updatedAt"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amplify_resolvers_create_each_profile_once_and_answer_a_redelivery_already_existed() {
    let stack = TestStack::up_with_graphql("amplify", GraphqlBackend::Amplify).await;
    let table = stack.env.get(PROFILE_MODEL_TABLE).unwrap().to_owned();
    assert!(
        table.starts_with("UserProfile-") && table.ends_with("-NONE"),
        "the transformer's table name: {table}"
    );
    let stored = StoredProfiles::of(&stack.env).await.unwrap();
    let client = stack.sqs().await;
    let pipeline = Pipeline::start(stack.env.clone(), &binary("uc-emitter"), &[])
        .await
        .unwrap();

    let mut users = Vec::new();
    let mut emails = HashMap::new();
    for i in 0..5 {
        let email = format!("amplify.{i}@example.com");
        let user = pipeline.sign_up_through_trigger(&email).await.unwrap();
        emails.insert(user.sub.clone(), email);
        users.push(user);
    }
    let mut worker = pipeline.start_worker(&binary("uc-worker"), &[("RUST_LOG", "info".into())]);
    assert!(
        eventually(Duration::from_secs(90), || async {
            stored.all().await.unwrap().len() >= users.len()
        })
        .await,
        "five items in {table}: {:?}",
        stored.all().await.unwrap().len()
    );
    for user in &users {
        assert!(
            eventually(Duration::from_secs(30), || async {
                worker_outcomes(&worker.output(), "Created", &user.sub) == 1
            })
            .await,
            "the worker reports {} Created",
            user.sub
        );
    }

    // The same user's message once more (an SQS redelivery): Amplify's create resolver refuses
    // it with its attribute_not_exists(id) condition, which the worker reads as AlreadyExisted.
    let again = &users[0];
    let created_before = stored
        .all()
        .await
        .unwrap()
        .into_iter()
        .find(|item| item["id"] == again.sub.as_str())
        .unwrap();
    redeliver(&stack, again, &emails[&again.sub]).await;
    assert!(
        eventually(Duration::from_secs(60), || async {
            worker_outcomes(&worker.output(), "AlreadyExisted", &again.sub) >= 1
        })
        .await,
        "the redelivery is AlreadyExisted; worker output:\n{}",
        worker.output().join("\n")
    );
    assert!(
        eventually(Duration::from_secs(20), || async {
            sqs::depth(&client, stack.env.get("QUEUE_URL").unwrap()).await == 0
        })
        .await,
        "the queue drains"
    );
    worker.signal("TERM");
    assert!(worker.wait(Duration::from_secs(20)).unwrap().success());

    // Exactly one item per user, as Amplify's resolver wrote it; the redelivery changed nothing.
    let items = stored.all().await.unwrap();
    assert_eq!(items.len(), users.len(), "{items:?}");
    for user in &users {
        let mine: Vec<&Value> = items
            .iter()
            .filter(|item| item["id"] == user.sub.as_str())
            .collect();
        assert_eq!(mine.len(), 1, "one item for {}", user.sub);
        assert_amplify_item(mine[0], user, &emails[&user.sub]);
    }
    let created_after = items
        .iter()
        .find(|item| item["id"] == again.sub.as_str())
        .unwrap();
    assert_eq!(
        created_after, &created_before,
        "the redelivery rewrote nothing"
    );
    // (Another user may be AlreadyExisted too: SQS delivers at least once, and on a busy
    // machine moto redelivers a message whose visibility ran out before its delete.)
    assert!(
        !worker
            .output()
            .iter()
            .any(|line| line.contains("@example.com")),
        "no address in the worker's log"
    );

    // Nothing dead-lettered, by the worker or by the rule.
    for key in ["DLQ_URL", "RULE_DLQ_URL"] {
        assert_eq!(
            sqs::depth(&client, stack.env.get(key).unwrap()).await,
            0,
            "{key} is empty"
        );
    }

    // The audit lists the profiles through Amplify's list resolver: every user has one, with
    // the owner Amplify's read resolver returns.
    let audit = stack.ops(&["audit", "--grace-seconds", "0", "--json"]);
    let report = json_of(&audit);
    assert_eq!(
        audit.status.code(),
        Some(0),
        "{report}\n{}",
        String::from_utf8_lossy(&audit.stderr)
    );
    assert_eq!(report["profiles"], 5, "{report}");
    assert_eq!(report["missing"], 0, "{report}");
    assert_eq!(report["orphaned"], 0, "{report}");
    assert_eq!(report["owner_mismatch"], 0, "{report}");

    // Issue 22 through Amplify's delete resolver: a user deleted in Cognito, CloudTrail's record
    // on the default bus → the item is gone. The record once more: Amplify's resolver refuses
    // the delete of a missing item (ConditionalCheckFailed), which the worker reads as "no
    // profile" — settled, nothing dead-lettered.
    let worker = pipeline.start_worker(&binary("uc-worker"), &[("RUST_LOG", "info".into())]);
    let gone = &users[1];
    let pool = stack.env.get("USER_POOL_ID").unwrap().to_owned();
    pipeline.admin_delete(&gone.username).await.unwrap();
    for _ in 0..2 {
        pipeline
            .report_call("AdminDeleteUser", &gone.sub, Some(&pool))
            .await
            .unwrap();
    }
    let outcomes = |lines: &[String]| -> Vec<String> {
        lines
            .iter()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|log| log["fields"]["message"] == "lifecycle record handled")
            .filter(|log| log["fields"]["sub"] == gone.sub.as_str())
            .filter_map(|log| log["fields"]["outcome"].as_str().map(str::to_owned))
            .collect()
    };
    assert!(
        eventually(Duration::from_secs(60), || async {
            outcomes(&worker.output()).len() == 2
        })
        .await,
        "worker output:\n{}",
        worker.output().join("\n")
    );
    let mut seen = outcomes(&worker.output());
    seen.sort();
    assert_eq!(seen, ["ProfileRemoved", "UserDeletedNoProfile"]);
    let items = stored.all().await.unwrap();
    assert_eq!(items.len(), users.len() - 1, "{items:?}");
    assert!(items.iter().all(|item| item["id"] != gone.sub.as_str()));
    assert_eq!(
        sqs::depth(&client, stack.env.get("DLQ_URL").unwrap()).await,
        0,
        "nothing dead-lettered"
    );
}

/// A redelivery of `user`'s sign-up straight into the worker queue.
async fn redeliver(stack: &TestStack, user: &ConfirmedUser, email: &str) {
    let body = uc_schemas::to_envelope(
        uc_schemas::DEFAULT_SOURCE,
        &uc_schemas::UserConfirmed::new(
            stack.env.get("USER_POOL_ID").unwrap(),
            &user.sub,
            &user.username,
            Some(email.to_owned()),
            Some(true),
            None,
            user.confirmed_at,
            "us-east-1",
            uc_schemas::Origin::PostConfirmation,
        ),
    )
    .to_string();
    let client = stack.sqs().await;
    sqs::send_all(&client, stack.env.get("QUEUE_URL").unwrap(), &[body]).await;
}

/// Issue 23, deliverable 2 (the part that can be served): the worker's DynamoDB store
/// (`PROFILE_STORE=dynamodb`, for Gen 1 apps) writing into the table Amplify's transformer
/// declared, beside a profile Amplify's resolver created. Its items read through Amplify's
/// resolvers like the resolver's own (the audit finds every owner right), and the user whose
/// profile the resolver created is `AlreadyExisted` for the DynamoDB store too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dynamodb_store_and_amplify_resolvers_share_the_model_table() {
    let stack = TestStack::up_with_graphql("amplify-ddb", GraphqlBackend::Amplify).await;
    let table = stack.env.get(PROFILE_MODEL_TABLE).unwrap().to_owned();
    let stored = StoredProfiles::of(&stack.env).await.unwrap();
    let client = stack.sqs().await;
    let pipeline = Pipeline::start(stack.env.clone(), &binary("uc-emitter"), &[])
        .await
        .unwrap();
    let info = ("RUST_LOG", "info".to_owned());

    // One profile through Amplify's create resolver.
    let first_email = "shared.0@example.com";
    let first = pipeline.sign_up_through_trigger(first_email).await.unwrap();
    let mut worker = pipeline.start_worker(&binary("uc-worker"), std::slice::from_ref(&info));
    assert!(
        eventually(Duration::from_secs(60), || async {
            worker_outcomes(&worker.output(), "Created", &first.sub) == 1
        })
        .await,
        "created through AppSync"
    );
    worker.signal("TERM");
    assert!(worker.wait(Duration::from_secs(20)).unwrap().success());

    // Two more through the DynamoDB store, and the first user's sign-up again.
    let mut users = vec![(first, first_email.to_owned())];
    for i in 1..3 {
        let email = format!("shared.{i}@example.com");
        users.push((
            pipeline.sign_up_through_trigger(&email).await.unwrap(),
            email,
        ));
    }
    redeliver(&stack, &users[0].0, first_email).await;
    let mut worker = pipeline.start_worker(
        &binary("uc-worker"),
        &[
            info,
            ("PROFILE_STORE", "dynamodb".to_owned()),
            ("PROFILE_TABLE", table.clone()),
        ],
    );
    let settled = |output: Vec<String>| {
        worker_outcomes(&output, "AlreadyExisted", &users[0].0.sub) >= 1
            && users[1..]
                .iter()
                .all(|(user, _)| worker_outcomes(&output, "Created", &user.sub) == 1)
    };
    assert!(
        eventually(Duration::from_secs(60), || async {
            settled(worker.output())
        })
        .await,
        "DynamoDB store: two created, the resolver's profile AlreadyExisted; worker output:\n{}",
        worker.output().join("\n")
    );
    worker.signal("TERM");
    assert!(worker.wait(Duration::from_secs(20)).unwrap().success());

    let items = stored.all().await.unwrap();
    assert_eq!(items.len(), 3, "{items:?}");
    for (user, email) in &users {
        let item = items
            .iter()
            .find(|item| item["id"] == user.sub.as_str())
            .unwrap();
        // The resolver's attributes with the same values; the DynamoDB store adds DataStore's
        // `_version` and `_lastChangedAt` (it writes for Gen 1 DataStore tables).
        assert_amplify_values(item, user, email);
        let amplify = BTreeSet::from(AMPLIFY_ITEM);
        let extra: BTreeSet<&str> = attribute_names(item)
            .difference(&amplify)
            .copied()
            .collect();
        if user.sub == users[0].0.sub {
            assert!(extra.is_empty(), "{item}");
        } else {
            assert_eq!(
                extra,
                BTreeSet::from(["_version", "_lastChangedAt"]),
                "{item}"
            );
            assert_eq!(item["_version"], 1);
        }
    }
    for key in ["DLQ_URL", "RULE_DLQ_URL"] {
        assert_eq!(
            sqs::depth(&client, stack.env.get(key).unwrap()).await,
            0,
            "{key}"
        );
    }

    // Amplify's list resolver reads all three alike.
    let audit = stack.ops(&["audit", "--grace-seconds", "0", "--json"]);
    let report = json_of(&audit);
    assert_eq!(audit.status.code(), Some(0), "{report}");
    assert_eq!(report["profiles"], 3, "{report}");
    assert_eq!(report["owner_mismatch"], 0, "{report}");
    assert_eq!(report["missing"], 0, "{report}");
}
