//! The small chaos run inside `make test` (`make chaos` runs thousands): faults, duplicates,
//! SIGKILLs and an EventBridge outage, administrators' users and fail-open publish failures
//! closed by one reconciler pass, then a DLQ replay — exactly one profile per user; five users
//! deleted during the faults (one with no CloudTrail record) keep none after the orphan sweep.

use std::time::Duration;

use uc_lab::chaos::{self, ChaosOptions};

mod support;
use support::{TestStack, binary};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_chaos_run_ends_exact() {
    let stack = TestStack::up("chaos").await;
    let options = ChaosOptions {
        users: 120,
        seed: 7,
        kills: 2,
        emitter_bin: binary("uc-emitter"),
        worker_bin: binary("uc-worker"),
        show_progress: false,
        timeout: Duration::from_secs(120),
    };
    let report = chaos::run(stack.env.clone(), &options).await.unwrap();
    println!("{}", chaos::render(&report));
    assert!(report.is_exact(), "{}", chaos::render(&report));
    assert_eq!((report.deleted, report.deletion_records), (5, 4));
    assert_eq!(report.profiles, 115, "120 users, 5 of them deleted");
    assert!(
        report.published_via_fallback > 0,
        "the outage window used the fallback"
    );
    assert!(report.appsync_requests > 120, "faults caused retries");
    // The gaps only the reconciler closes were there, and it closed them (is_exact above).
    assert_eq!(report.admin_created, 3, "users 3, 53 and 103");
    assert_eq!(report.emitter_publish_failed, 2, "sign-ups 7 and 107");
    assert_eq!(report.reconcile_failed, 0);
    assert!(
        report.reconciled >= 5,
        "the pass published the five users with no event: {}",
        report.reconciled
    );
    // Only users without a profile are published: those the worker had already served were
    // skipped (a user whose message was still in retries or the DLQ is published again).
    assert!(
        report.reconcile_had_profile > 0,
        "{}",
        chaos::render(&report)
    );
    assert_eq!(
        report.reconciled + report.reconcile_had_profile,
        115,
        "every counted user (the deleted ones are gone) was looked at once"
    );
}
