//! `uc-ops audit` on the local stack, run as a real process: users who never produced an event
//! are found (exit 1), back-filled, and then the audit passes (exit 0); an audit that cannot
//! read the profiles says so (exit 2).

use std::time::Duration;

use aws_sdk_cognitoidentityprovider::types::AttributeType;
use uc_devkit::{StandInControl, eventually};
use uc_lab::pipeline::Pipeline;

mod support;
use support::{TestStack, binary, json_of};

async fn profile_count(standin: &StandInControl) -> usize {
    standin.profiles().await.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_finds_users_without_a_profile_until_they_are_back_filled() {
    let stack = TestStack::up("audit").await;
    let pipeline = Pipeline::start(stack.env.clone(), &binary("uc-emitter"), &[])
        .await
        .unwrap();
    let standin = pipeline.standin.clone();
    let mut worker = pipeline.start_worker(&binary("uc-worker"), &[]);

    // Three sign-ups through the whole pipeline.
    for i in 0..3 {
        pipeline
            .sign_up_through_trigger(&format!("through.{i}@example.com"))
            .await
            .unwrap();
    }
    assert!(
        eventually(Duration::from_secs(30), || async {
            profile_count(&standin).await == 3
        })
        .await
    );

    // Users with no event: two admin-created with a permanent password, two sign-ups
    // confirmed by AdminConfirmSignUp with the emitter never invoked.
    let mut missing = vec![
        pipeline
            .admin_create("imported.0@example.com", true)
            .await
            .unwrap(),
        pipeline
            .admin_create("imported.1@example.com", true)
            .await
            .unwrap(),
    ];
    for i in 0..2 {
        let user = pipeline
            .sign_up_and_confirm(&format!("silent.{i}@example.com"))
            .await
            .unwrap();
        missing.push(user.sub);
    }
    missing.sort();
    // Not usable accounts, not counted by default: a temporary password not yet replaced,
    // and a sign-up never confirmed.
    let temporary = pipeline
        .admin_create("temporary@example.com", false)
        .await
        .unwrap();
    let cognito =
        aws_sdk_cognitoidentityprovider::Client::new(&stack.env.sdk_config().await.unwrap());
    cognito
        .sign_up()
        .client_id(stack.env.get("USER_POOL_CLIENT_ID").unwrap())
        .username(uuid::Uuid::new_v4().to_string())
        .password("Unconfirmed-Passw0rd!")
        .user_attributes(
            AttributeType::builder()
                .name("email")
                .value("unconfirmed@example.com")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();

    let audit = stack.ops_with(&[], &["audit", "--grace-seconds", "0", "--json"]);
    let report = json_of(&audit);
    assert_eq!(audit.status.code(), Some(1), "{report}");
    assert_eq!(report["users_listed"], 9, "{report}");
    assert_eq!(report["users_counted"], 7, "{report}");
    assert_eq!(report["profiles"], 3, "{report}");
    assert_eq!(report["missing"], 4, "{report}");
    let listed: Vec<String> = report["missing_subs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(listed, missing);
    assert_eq!(report["orphaned"], 0, "{report}");
    assert_eq!(report["owner_mismatch"], 0, "{report}");
    assert_eq!(report["users_by_status"]["FORCE_CHANGE_PASSWORD"], 1);
    assert_eq!(report["users_by_status"]["UNCONFIRMED"], 1);

    // The text report names subs, never an address.
    let text = stack.ops_with(&[], &["audit", "--grace-seconds", "0"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(!text.contains('@'), "{text}");
    assert!(
        text.contains(&missing[0]) && text.contains("missing 4"),
        "{text}"
    );

    // Counting users who must still replace a temporary password finds one more.
    let wider = json_of(&stack.ops_with(
        &[],
        &[
            "audit",
            "--grace-seconds",
            "0",
            "--include-force-change-password",
            "--json",
        ],
    ));
    assert_eq!(wider["missing"], 5, "{wider}");
    assert!(
        wider["missing_subs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == temporary.as_str())
    );

    // Within the grace period (the default 300 s) every user here is too recent to judge.
    let recent = stack.ops_with(&[], &["audit", "--json"]);
    let recent_report = json_of(&recent);
    assert_eq!(recent.status.code(), Some(0), "{recent_report}");
    assert_eq!(recent_report["users_recent"], 7, "{recent_report}");

    // An audit that cannot read the profiles is neither a pass nor a fail.
    let unknown = stack.ops_with(
        &[("AWS_SECRET_ACCESS_KEY", "not-the-secret")],
        &["audit", "--grace-seconds", "0"],
    );
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert_eq!(unknown.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.starts_with("error: audit unknown: AppSync listUserProfiles: ")
            && stderr.lines().count() == 1,
        "{stderr}"
    );

    // Back-fill the confirmed users; the worker creates the four missing profiles.
    let checkpoint = stack.dir.join("audit-backfill.json");
    let backfill = stack.ops_with(
        &[],
        &[
            "backfill",
            "--direct",
            "--json",
            "--checkpoint",
            checkpoint.to_str().unwrap(),
        ],
    );
    assert!(backfill.status.success(), "{}", json_of(&backfill));
    assert!(
        eventually(Duration::from_secs(60), || async {
            profile_count(&standin).await == 7
        })
        .await,
        "profiles: {}",
        profile_count(&standin).await
    );
    worker.signal("TERM");
    worker.wait(Duration::from_secs(20));

    let after = stack.ops_with(&[], &["audit", "--grace-seconds", "0", "--json"]);
    let report = json_of(&after);
    assert_eq!(after.status.code(), Some(0), "{report}");
    assert_eq!(report["missing"], 0, "{report}");
    assert_eq!(report["profiles"], 7, "{report}");
    assert_eq!(report["owner_mismatch"], 0, "{report}");
    let text = stack.ops_with(&[], &["audit", "--grace-seconds", "0"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains(
            "OK: each of the 7 users judged has a profile (0 changed too recently to judge)"
        ),
        "{text}"
    );

    // A user deleted in Cognito leaves an orphaned profile: reported, not "OK", exit 1 (it
    // printed "OK" and exited 0).
    let pool = stack.env.get("USER_POOL_ID").unwrap();
    let listed = cognito
        .list_users()
        .user_pool_id(pool)
        .filter(format!("sub = \"{}\"", missing[0]))
        .send()
        .await
        .unwrap();
    let username = listed.users()[0].username().unwrap().to_owned();
    cognito
        .admin_delete_user()
        .user_pool_id(pool)
        .username(username)
        .send()
        .await
        .unwrap();
    let orphaned = stack.ops_with(&[], &["audit", "--grace-seconds", "0", "--json"]);
    let report = json_of(&orphaned);
    assert_eq!(orphaned.status.code(), Some(1), "{report}");
    assert_eq!(
        (&report["orphaned"], &report["missing"]),
        (&1.into(), &0.into()),
        "{report}"
    );
    let text = stack.ops_with(&[], &["audit", "--grace-seconds", "0"]);
    assert_eq!(text.status.code(), Some(1));
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("ORPHANED profiles: 1") && !text.contains("OK:"),
        "{text}"
    );
}
