//! Reconciliation on the local stack, `uc-ops reconcile` run as a real process against the
//! stack's SSM state parameter: users who never produced an event (administrators' users,
//! sign-ups an administrator confirmed with no trigger) are found by the audit, one pass plus
//! the worker gives them their profile (and publishes no one who has one), a second pass
//! publishes nothing, and a pass cut short resumes where it stopped. The passes here judge
//! users however recently they changed (`RECONCILE_GRACE_SECONDS=0`).

use std::time::Duration;

use uc_devkit::{StandInControl, eventually};
use uc_lab::pipeline::Pipeline;

mod support;
use support::{TestStack, binary, json_of};

async fn profile_count(standin: &StandInControl) -> usize {
    standin.profiles().await.len()
}

async fn stored_state(stack: &TestStack) -> serde_json::Value {
    let ssm = aws_sdk_ssm::Client::new(&stack.env.sdk_config().await.unwrap());
    let answer = ssm
        .get_parameter()
        .name(stack.env.get("RECONCILE_WATERMARK_PARAMETER").unwrap())
        .send()
        .await
        .unwrap();
    serde_json::from_str(answer.parameter().unwrap().value().unwrap()).unwrap()
}

/// `uc-ops reconcile args…` with no grace period (and `env` set).
fn reconcile(stack: &TestStack, env: &[(&str, &str)], args: &[&str]) -> std::process::Output {
    let mut env = env.to_vec();
    env.push(("RECONCILE_GRACE_SECONDS", "0"));
    let mut argv = vec!["reconcile"];
    argv.extend_from_slice(args);
    stack.ops_with(&env, &argv)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_gives_users_without_an_event_their_profile_once() {
    let stack = TestStack::up("reconcile").await;
    let pipeline = Pipeline::start(stack.env.clone(), &binary("uc-emitter"), &[])
        .await
        .unwrap();
    let standin = pipeline.standin.clone();
    let mut worker = pipeline.start_worker(&binary("uc-worker"), &[]);

    // One sign-up through the trigger.
    let user = pipeline
        .sign_up_through_trigger("through@example.com")
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(30), || async {
            profile_count(&standin).await == 1
        })
        .await
    );

    // Four users with no event, and one not counted (temporary password not yet replaced).
    let mut missing = vec![
        pipeline
            .admin_create("invited.0@example.com", true)
            .await
            .unwrap(),
        pipeline
            .admin_create("invited.1@example.com", true)
            .await
            .unwrap(),
    ];
    for i in 0..2 {
        let user = pipeline
            .sign_up_and_confirm(&format!("admin.confirmed.{i}@example.com"))
            .await
            .unwrap();
        missing.push(user.sub);
    }
    let temporary = pipeline
        .admin_create("temporary@example.com", false)
        .await
        .unwrap();
    let audit = stack.ops(&["audit", "--grace-seconds", "0", "--json"]);
    assert_eq!(audit.status.code(), Some(1), "{}", json_of(&audit));
    assert_eq!(json_of(&audit)["missing"], 4);

    // A dry run says what a real pass would publish (the store is asked) and changes nothing.
    let dry = reconcile(&stack, &[], &["--dry-run", "--json"]);
    let dry_report = json_of(&dry);
    assert_eq!(dry.status.code(), Some(0), "{dry_report}");
    assert_eq!(dry_report["selected"], 5, "{dry_report}");
    assert_eq!(dry_report["hadProfile"], 1, "{dry_report}");
    assert_eq!(dry_report["toPublish"], 4, "{dry_report}");
    assert_eq!(dry_report["published"], 0, "{dry_report}");
    assert_eq!(stored_state(&stack).await, serde_json::json!({}));
    let dry_text = reconcile(&stack, &[], &["--dry-run"]);
    let dry_text = String::from_utf8_lossy(&dry_text.stdout);
    assert!(
        dry_text.contains("a real run would publish 4 UserConfirmed events")
            && !dry_text.contains("run again"),
        "{dry_text}"
    );

    // The first pass has no watermark: every counted user is looked at, and those without a
    // profile are published (the one with a profile is not), the watermark is set.
    let first = reconcile(&stack, &[], &["--json"]);
    let report = json_of(&first);
    assert_eq!(first.status.code(), Some(0), "{report}");
    assert_eq!(report["scanned"], 6, "{report}");
    assert_eq!(report["published"], 4, "{report}");
    assert_eq!(report["hadProfile"], 1, "{report}");
    assert_eq!(report["watermarkAdvanced"], true, "{report}");
    let state = stored_state(&stack).await;
    assert_eq!(state["userPoolId"], stack.env.get("USER_POOL_ID").unwrap());
    assert!(
        state["watermark"].is_string() && state.get("pass").is_none(),
        "{state}"
    );
    assert!(
        eventually(Duration::from_secs(60), || async {
            profile_count(&standin).await == 5
        })
        .await,
        "profiles: {}",
        profile_count(&standin).await
    );
    let stats = standin.stats().await;
    for sub in missing.iter().chain([&user.sub]) {
        assert_eq!(stats["perId"][sub]["created"], 1, "{sub}: {stats}");
    }
    assert!(
        stats["perId"].get(&temporary).is_none(),
        "not counted: no profile"
    );
    let audit = stack.ops(&["audit", "--grace-seconds", "0", "--json"]);
    assert_eq!(audit.status.code(), Some(0), "{}", json_of(&audit));

    // A second pass: every user changed within the overlap is looked at again, and has a
    // profile: nothing is published. With no overlap, nothing is even selected.
    let second = reconcile(&stack, &[], &["--json"]);
    let report = json_of(&second);
    assert_eq!(second.status.code(), Some(0), "{report}");
    assert_eq!(report["published"], 0, "every one has a profile: {report}");
    let no_overlap = reconcile(&stack, &[("RECONCILE_OVERLAP_SECONDS", "0")], &["--json"]);
    let quiet = json_of(&no_overlap);
    assert_eq!(no_overlap.status.code(), Some(0), "{quiet}");
    assert_eq!(quiet["selected"], 0, "{quiet}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(profile_count(&standin).await, 5);
    let stats = standin.stats().await;
    for sub in missing.iter().chain([&user.sub]) {
        assert_eq!(stats["perId"][sub]["created"], 1, "{sub}: {stats}");
    }

    // A pass cut short (one page of 60) says so, exits 1 and keeps its place; the next run
    // resumes it and ends it.
    let mut added = Vec::new();
    for i in 0..65 {
        added.push(
            pipeline
                .admin_create(&format!("bulk.{i}@example.com"), true)
                .await
                .unwrap(),
        );
    }
    let cut = reconcile(&stack, &[], &["--max-pages", "1"]);
    let text = String::from_utf8_lossy(&cut.stdout);
    assert_eq!(cut.status.code(), Some(1), "{text}");
    assert!(text.contains("NOT complete"), "{text}");
    assert!(!text.contains('@'), "{text}");
    assert!(stored_state(&stack).await["pass"]["nextToken"].is_string());
    let resumed = reconcile(&stack, &[], &["--json"]);
    let report = json_of(&resumed);
    assert_eq!(resumed.status.code(), Some(0), "{report}");
    assert_eq!(report["resumed"], true, "{report}");
    assert!(
        eventually(Duration::from_secs(60), || async {
            profile_count(&standin).await == 70
        })
        .await,
        "profiles: {}",
        profile_count(&standin).await
    );

    // A full pass looks at every counted user again and publishes no one: all have a profile.
    let full = reconcile(&stack, &[], &["--full", "--json"]);
    let report = json_of(&full);
    assert_eq!(full.status.code(), Some(0), "{report}");
    assert_eq!(
        (&report["pages"], &report["selected"], &report["hadProfile"]),
        (&2.into(), &70.into(), &70.into()),
        "{report}"
    );
    assert_eq!(report["published"], 0, "{report}");
    // A forced republish over both pages (the second read while the first is published)
    // publishes every counted user once more and creates nothing new.
    let forced = reconcile(&stack, &[], &["--full", "--all", "--json"]);
    let report = json_of(&forced);
    assert_eq!(forced.status.code(), Some(0), "{report}");
    assert_eq!(report["pages"], 2, "{report}");
    assert_eq!(report["failed"], 0, "{report}");
    assert_eq!(report["storeReads"], 0, "--all asks no store: {report}");
    // Exactly the 70 counted users: a page read ahead is published once, not twice.
    assert_eq!(report["selected"], 70, "{report}");
    assert_eq!(report["published"], 70, "{report}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(profile_count(&standin).await, 70);
    worker.signal("TERM");
    worker.wait(Duration::from_secs(20));
    let audit = stack.ops(&["audit", "--grace-seconds", "0", "--json"]);
    assert_eq!(audit.status.code(), Some(0), "{}", json_of(&audit));

    // State of another pool is refused, with a way out.
    let other = stack.ops_with(&[("USER_POOL_ID", "eu-west-1_Other")], &["reconcile"]);
    let stderr = String::from_utf8_lossy(&other.stderr);
    assert_eq!(other.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("belongs to pool"), "{stderr}");
}
