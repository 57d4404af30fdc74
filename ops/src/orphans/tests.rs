use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use tokio::time::Instant;
use uc_worker::ProfileStore;
use uc_worker::bus::EventSink;
use uc_worker::lifecycle::Lifecycle;
use uc_worker::pool_users::PoolDirectory;

use uc_runtime::{Failure, FailureKind};
use uc_schemas::UserConfirmed;
use uc_worker::WriteReport;
use uc_worker::bus::BusEntry;
use uc_worker::classify::Outcome;
use uc_worker::lifecycle::LifecycleSettings;
use uc_worker::pool_users::PoolUser;
use uc_worker::store::Removal;

use super::*;

fn input(profiles: u64, orphans: u64, users_listed: u64, users_counted: u64) -> GuardInput {
    GuardInput {
        profiles,
        orphans,
        users_listed,
        users_counted,
    }
}

#[test]
fn the_default_limit_is_ten_or_one_percent() {
    assert_eq!(default_limit(0), 10);
    assert_eq!(default_limit(999), 10);
    assert_eq!(default_limit(1_000), 10);
    assert_eq!(default_limit(1_100), 11);
    assert_eq!(default_limit(1_000_000), 10_000);
}

#[test]
fn a_few_orphans_in_a_listed_pool_may_go() {
    assert_eq!(guard(input(100, 3, 98, 97), None), Ok(10));
    assert_eq!(
        guard(input(100_000, 1_000, 99_500, 99_000), None),
        Ok(1_000)
    );
    // Nothing to erase: nothing to refuse, however the listing looks.
    assert_eq!(guard(input(0, 0, 0, 0), None), Ok(10));
    assert_eq!(guard(input(5, 0, 5, 0), None), Ok(10));
}

/// The acceptance: a wrong or empty pool deletes nothing.
#[test]
fn an_empty_or_uncounted_listing_is_refused() {
    let refusal = guard(input(8, 8, 0, 0), None).unwrap_err();
    assert_eq!(refusal.code(), "EmptyListing");
    assert!(refusal.to_string().contains("8 profiles"), "{refusal}");
    // Users listed, but none of a counted status: not the pool the profiles belong to.
    assert_eq!(
        guard(input(8, 8, 30, 0), Some(1_000)).unwrap_err().code(),
        "EmptyListing"
    );
}

/// A small store is where the floor of 10 would allow a whole-store deletion: the listing
/// must still hold half the profiles' worth of users.
#[test]
fn a_short_listing_is_refused_even_under_the_limit() {
    let refusal = guard(input(8, 7, 1, 1), None).unwrap_err();
    assert_eq!(
        refusal,
        Refusal::ShortListing {
            listed: 1,
            profiles: 8
        }
    );
    // A truncated listing of a large pool, whatever --max-orphans says.
    assert_eq!(
        guard(input(1_000_000, 600_000, 400_000, 400_000), Some(u64::MAX))
            .unwrap_err()
            .code(),
        "ShortListing"
    );
    assert_eq!(
        guard(input(8, 4, 4, 4), None),
        Ok(10),
        "exactly half passes"
    );
}

/// Another app's pool of a similar size: the listing looks full, no profile matches.
#[test]
fn a_store_mostly_orphaned_is_refused_whatever_the_limit() {
    let refusal = guard(input(8, 8, 9, 9), None).unwrap_err();
    assert_eq!(
        refusal,
        Refusal::MostlyOrphaned {
            orphans: 8,
            profiles: 8
        }
    );
    assert_eq!(
        guard(input(100, 51, 100, 100), Some(100))
            .unwrap_err()
            .code(),
        "MostlyOrphaned"
    );
    assert_eq!(guard(input(100, 50, 100, 100), Some(100)), Ok(100));
}

#[test]
fn more_orphans_than_the_limit_are_refused_until_raised() {
    let refusal = guard(input(26, 11, 15, 15), None).unwrap_err();
    assert_eq!(refusal.code(), "TooManyOrphans");
    let text = refusal.to_string();
    assert!(text.contains("11 orphaned profiles"), "{text}");
    assert!(text.contains("limit of 10"), "{text}");
    assert!(text.contains("max(10, 1% of 26 profiles)"), "{text}");
    assert!(text.contains("--max-orphans"), "{text}");
    assert_eq!(guard(input(26, 11, 15, 15), Some(11)), Ok(11));
    // The option sets the limit, lower too.
    let lowered = guard(input(100, 3, 97, 97), Some(2)).unwrap_err();
    assert!(lowered.to_string().contains("(--max-orphans)"), "{lowered}");
    assert_eq!(guard(input(2_000, 20, 1_990, 1_990), None), Ok(20));
    assert_eq!(
        guard(input(2_000, 21, 1_990, 1_990), None)
            .unwrap_err()
            .code(),
        "TooManyOrphans"
    );
}

// The erasure loop, through the worker's real lifecycle with fake ports.

struct Directory(HashSet<String>);

impl PoolDirectory for Directory {
    async fn find(
        &self,
        user_pool_id: &str,
        sub: &str,
        _: Option<Instant>,
    ) -> Result<Option<PoolUser>, Failure> {
        if sub.ends_with("dead") {
            return Err(Failure::retryable("TooManyRequestsException", ""));
        }
        Ok(self.0.contains(sub).then(|| PoolUser {
            user_pool_id: user_pool_id.to_owned(),
            sub: sub.to_owned(),
            username: sub.to_owned(),
            status: "CONFIRMED".into(),
            email: None,
            email_verified: None,
            created: None,
        }))
    }
}

/// The bus: what was published, shared with the test.
type Published = Arc<Mutex<Vec<BusEntry>>>;

/// The bus; `refusing`: every entry refused, as the bus policy refuses a principal it does
/// not name.
struct Bus(Published, bool);

impl EventSink for Bus {
    async fn publish(&self, entries: &[BusEntry], _: Option<Instant>) -> Vec<(usize, Failure)> {
        if self.1 {
            let denied = Failure::new(FailureKind::Permanent, "AccessDeniedException", "");
            return (0..entries.len()).map(|i| (i, denied.clone())).collect();
        }
        self.0.lock().unwrap().extend(entries.iter().cloned());
        Vec::new()
    }
}

struct Store {
    profiles: Mutex<HashSet<String>>,
    /// Every removal refused, as a store without the permission would.
    denied: bool,
}

impl ProfileStore for Store {
    fn kind(&self) -> uc_schemas::ProfileStore {
        uc_schemas::ProfileStore::Appsync
    }

    fn stage(&self) -> &'static str {
        "appsync"
    }

    fn refusal_detail(&self, reason: &str) -> String {
        reason.to_owned()
    }

    async fn create(&self, _: &UserConfirmed, _: Option<Instant>, _: Option<&str>) -> WriteReport {
        WriteReport {
            outcome: Outcome::Created,
            attempts: 1,
            latencies_ms: Vec::new(),
        }
    }

    async fn remove(&self, sub: &str, _: Option<Instant>) -> Result<Removal, Failure> {
        if self.denied {
            return Err(Failure::new(FailureKind::Permanent, "Unauthorized", ""));
        }
        Ok(if self.profiles.lock().unwrap().remove(sub) {
            Removal::Removed
        } else {
            Removal::Absent
        })
    }

    async fn exists(&self, sub: &str, _: Option<Instant>) -> Result<bool, Failure> {
        Ok(self.profiles.lock().unwrap().contains(sub))
    }
}

fn lifecycle(existing: &[&str]) -> (Lifecycle<Directory, Bus>, Published) {
    lifecycle_on_bus(existing, false)
}

fn lifecycle_on_bus(existing: &[&str], refusing: bool) -> (Lifecycle<Directory, Bus>, Published) {
    let published = Published::default();
    let lifecycle = Lifecycle::new(
        Directory(existing.iter().map(|s| s.to_string()).collect()),
        Bus(published.clone(), refusing),
        LifecycleSettings {
            pools: vec!["us-east-1_Pool".into()],
            statuses: vec!["CONFIRMED".into()],
            region: "us-east-1".into(),
            announce_profiles: false,
        },
    );
    (lifecycle, published)
}

fn store(profiles: &[&str], denied: bool) -> Store {
    Store {
        profiles: Mutex::new(profiles.iter().map(|s| s.to_string()).collect()),
        denied,
    }
}

fn subs(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Each orphan is re-checked: a user the listing missed keeps their profile; the others are
/// erased (or found already gone) and announced with `detectedBy: sweep`.
#[tokio::test]
async fn each_orphan_is_checked_again_before_it_goes() {
    let (lifecycle, published) = lifecycle(&["alive"]);
    let store = store(&["gone-1", "gone-2", "alive"], false);
    let mut seen = Vec::new();
    let done = erase_all(
        &lifecycle,
        &store,
        subs(&["gone-1", "alive", "gone-2", "gone-3", "x-dead"]),
        None,
        |n| seen.push(n),
    )
    .await;
    assert_eq!(
        (
            done.erased,
            done.already_gone,
            done.user_exists,
            done.failed,
            done.not_attempted
        ),
        (2, 1, 1, 1, 0)
    );
    assert_eq!(done.user_exists_subs, ["alive"]);
    assert_eq!(
        done.failures,
        [ErasureFailure {
            sub: "x-dead".into(),
            stage: "ListUsers".into(),
            code: "TooManyRequestsException".into(),
            retryable: true,
        }]
    );
    assert_eq!(seen, [1, 2, 3, 4, 5]);
    assert_eq!(
        *store.profiles.lock().unwrap(),
        subs(&["alive"]).into_iter().collect()
    );
    let events: Vec<serde_json::Value> = published
        .lock()
        .unwrap()
        .iter()
        .map(|e| {
            assert_eq!(e.detail_type, "UserDeleted");
            serde_json::from_str(&e.detail).unwrap()
        })
        .collect();
    assert_eq!(events.len(), 3, "one UserDeleted per user gone");
    assert!(
        events.iter().all(|e| e["detectedBy"] == "sweep"),
        "{events:?}"
    );
}

/// A store that refuses every removal (a missing permission) stops the sweep after a few
/// failures in a row instead of failing every orphan alike.
#[tokio::test]
async fn failures_in_a_row_stop_the_sweep() {
    let (lifecycle, published) = lifecycle(&[]);
    let store = store(&[], true);
    let orphans: Vec<String> = (0..12).map(|i| format!("gone-{i}")).collect();
    let done = erase_all(&lifecycle, &store, orphans, None, |_| {}).await;
    assert_eq!(done.failed, u64::from(STOP_AFTER_FAILURES_IN_A_ROW));
    assert_eq!(done.not_attempted, 12 - done.failed);
    assert_eq!(done.stopped, Some("FailuresInARow"));
    assert_eq!(done.failures[0].stage, "profile removal");
    assert_eq!(done.failures[0].code, "Unauthorized");
    assert!(!done.failures[0].retryable);
    assert!(published.lock().unwrap().is_empty(), "nothing announced");
}

/// A bus that refuses UserDeleted stops the sweep at the first refusal: that profile is gone
/// without its event (named in the report), and no other goes the same way.
#[tokio::test]
async fn a_refused_user_deleted_stops_the_sweep_at_once() {
    let (lifecycle, _) = lifecycle_on_bus(&[], true);
    let store = store(&["gone-1", "gone-2", "gone-3"], false);
    let done = erase_all(
        &lifecycle,
        &store,
        subs(&["gone-1", "gone-2", "gone-3"]),
        None,
        |_| {},
    )
    .await;
    assert_eq!((done.failed, done.not_attempted), (1, 2));
    assert_eq!(done.stopped, Some("UserDeletedNotPublished"));
    assert_eq!(done.failures[0].sub, "gone-1");
    assert_eq!(done.failures[0].stage, "PutEvents");
    assert_eq!(
        store.profiles.lock().unwrap().len(),
        2,
        "only the first profile went"
    );
}

/// No erasure starts that could not end before the deadline.
#[tokio::test]
async fn no_erasure_starts_past_the_deadline() {
    let (lifecycle, _) = lifecycle(&[]);
    let store = store(&["gone-1"], false);
    let soon = Instant::now() + ERASURE_DEADLINE / 2;
    let done = erase_all(&lifecycle, &store, subs(&["gone-1"]), Some(soon), |_| {}).await;
    assert_eq!((done.erased, done.not_attempted), (0, 1));
    assert_eq!(done.stopped, Some("Deadline"));
    let later = Instant::now() + ERASURE_DEADLINE * 2;
    let done = erase_all(&lifecycle, &store, subs(&["gone-1"]), Some(later), |_| {}).await;
    assert_eq!((done.erased, done.not_attempted), (1, 0));
}

fn report(allowed: bool, dry_run: bool, erasures: Option<Erasures>) -> OrphanReport {
    OrphanReport {
        dry_run,
        user_pool_ids: vec!["us-east-1_Pool".into()],
        store: "AppSync listUserProfiles".into(),
        users_listed: 20,
        users_by_status: BTreeMap::new(),
        users_counted: 20,
        profiles: 22,
        tombstones: 0,
        orphans: 2,
        orphans_not_subs: 0,
        guard: GuardVerdict {
            allowed,
            limit: 10,
            refusal: (!allowed).then_some("EmptyListing"),
            reason: None,
        },
        orphan_subs: subs(&["a", "b"]),
        erasures,
        seconds: 1.0,
    }
}

#[test]
fn the_exit_code_says_whether_every_orphan_was_handled() {
    assert_eq!(report(false, false, None).exit_code(), 2);
    assert_eq!(report(false, true, None).exit_code(), 2);
    assert_eq!(report(true, true, None).exit_code(), 0);
    let handled = Erasures {
        erased: 1,
        user_exists: 1,
        ..Default::default()
    };
    assert_eq!(report(true, false, Some(handled.clone())).exit_code(), 0);
    let failed = Erasures {
        failed: 1,
        ..handled.clone()
    };
    assert_eq!(report(true, false, Some(failed)).exit_code(), 1);
    let stopped = Erasures {
        not_attempted: 1,
        ..handled.clone()
    };
    assert_eq!(report(true, false, Some(stopped)).exit_code(), 1);
    let mut odd_ids = report(true, false, Some(handled));
    odd_ids.orphans_not_subs = 1;
    assert_eq!(
        odd_ids.exit_code(),
        1,
        "an id that is not a sub needs a person"
    );
}
