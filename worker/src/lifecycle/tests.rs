//! The lifecycle's decisions, with the pool, the store and the bus as in-memory fakes.

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::Value;
use uc_schemas::{CLOUDTRAIL_DETAIL_TYPE, COGNITO_SOURCE, LifecycleCall, Message, parse_any};

use super::*;
use crate::classify::Outcome;
use crate::store::WriteReport;

const POOL: &str = "eu-west-1_Pool";
const SUB: &str = "6f0c3a52-4f7e-4c1e-9d3b-2a1b0c9d8e7f";

#[derive(Default)]
struct Pool {
    users: Mutex<HashMap<String, PoolUser>>,
    lookups: Mutex<usize>,
    fail: Option<Failure>,
}

impl Pool {
    fn with(status: &str) -> Self {
        let pool = Self::default();
        pool.users.lock().unwrap().insert(
            SUB.into(),
            PoolUser {
                user_pool_id: POOL.into(),
                sub: SUB.into(),
                username: "jane".into(),
                status: status.into(),
                email: Some("jane@example.com".into()),
                email_verified: Some(true),
                created: None,
            },
        );
        pool
    }
}

impl PoolDirectory for Pool {
    async fn find(
        &self,
        user_pool_id: &str,
        sub: &str,
        _deadline: Option<Instant>,
    ) -> Result<Option<PoolUser>, Failure> {
        *self.lookups.lock().unwrap() += 1;
        if let Some(failure) = &self.fail {
            return Err(failure.clone());
        }
        Ok(self
            .users
            .lock()
            .unwrap()
            .get(sub)
            .filter(|u| u.user_pool_id == user_pool_id)
            .cloned())
    }
}

#[derive(Default)]
struct Bus {
    published: Mutex<Vec<(String, Value)>>,
    refuse: Option<Failure>,
}

impl EventSink for Bus {
    async fn publish(
        &self,
        entries: &[BusEntry],
        _deadline: Option<Instant>,
    ) -> Vec<(usize, Failure)> {
        if let Some(failure) = &self.refuse {
            return (0..entries.len()).map(|i| (i, failure.clone())).collect();
        }
        let mut published = self.published.lock().unwrap();
        for entry in entries {
            published.push((
                entry.detail_type.to_owned(),
                serde_json::from_str(&entry.detail).unwrap(),
            ));
        }
        vec![]
    }
}

#[derive(Default)]
struct Store {
    profiles: Mutex<Vec<String>>,
    removals: Mutex<usize>,
}

impl ProfileStore for Store {
    fn kind(&self) -> uc_schemas::ProfileStore {
        uc_schemas::ProfileStore::Dynamodb
    }
    fn stage(&self) -> &'static str {
        "dynamodb"
    }
    fn refusal_detail(&self, reason: &str) -> String {
        reason.into()
    }
    async fn create(
        &self,
        _event: &UserConfirmed,
        _deadline: Option<Instant>,
        _trace: Option<&str>,
    ) -> WriteReport {
        WriteReport {
            outcome: Outcome::Created,
            attempts: 1,
            latencies_ms: vec![],
        }
    }
    async fn remove(&self, sub: &str, _deadline: Option<Instant>) -> Result<Removal, Failure> {
        *self.removals.lock().unwrap() += 1;
        let mut profiles = self.profiles.lock().unwrap();
        let before = profiles.len();
        profiles.retain(|p| p != sub);
        Ok(if profiles.len() < before {
            Removal::Removed
        } else {
            Removal::Absent
        })
    }
    async fn exists(&self, sub: &str, _deadline: Option<Instant>) -> Result<bool, Failure> {
        Ok(self.profiles.lock().unwrap().iter().any(|p| p == sub))
    }
}

fn with_profile() -> Store {
    let store = Store::default();
    store.profiles.lock().unwrap().push(SUB.into());
    store
}

fn lifecycle(pool: Pool, bus: Bus, announce: bool) -> Lifecycle<Pool, Bus> {
    Lifecycle::new(
        pool,
        bus,
        LifecycleSettings {
            pools: vec![POOL.into()],
            statuses: vec!["CONFIRMED".into(), "EXTERNAL_PROVIDER".into()],
            region: "eu-west-1".into(),
            announce_profiles: announce,
        },
    )
}

fn call(name: &str, pool: Option<&str>) -> CognitoApiCall {
    let mut detail = serde_json::json!({
        "eventSource": "cognito-idp.amazonaws.com",
        "eventName": name,
        "eventTime": "2026-12-07T10:00:00Z",
        "additionalEventData": { "sub": SUB },
    });
    if let Some(pool) = pool {
        detail["requestParameters"] = serde_json::json!({ "userPoolId": pool });
    }
    let envelope = serde_json::json!({
        "detail-type": CLOUDTRAIL_DETAIL_TYPE,
        "source": COGNITO_SOURCE,
        "detail": detail,
    });
    match parse_any(&envelope.to_string()).unwrap() {
        Message::CognitoApiCall(call) => call,
        Message::UserConfirmed(_) => unreachable!(),
    }
}

#[tokio::test]
async fn a_verified_deletion_removes_the_profile_and_publishes_user_deleted() {
    let lifecycle = lifecycle(Pool::default(), Bus::default(), true);
    let store = with_profile();
    let handled = lifecycle
        .handle(&store, &call("AdminDeleteUser", Some(POOL)), None)
        .await
        .unwrap();
    assert_eq!(
        handled,
        Handled::Erased {
            profile_removed: true
        }
    );
    assert!(store.profiles.lock().unwrap().is_empty());
    let published = lifecycle.bus.published.lock().unwrap();
    let kinds: Vec<&str> = published.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds, ["UserDeleted", "ProfileDeleted"]);
    let user = &published[0].1;
    assert_eq!(user["sub"], SUB);
    assert_eq!(user["userPoolId"], POOL);
    assert_eq!(user["detectedBy"], "cloudTrail");
    assert_eq!(user["deletedAt"], "2026-12-07T10:00:00Z");
    assert_eq!(user["profileDeleted"], true);
    assert!(!user.to_string().contains('@'));
}

#[tokio::test]
async fn a_repeated_deletion_is_harmless_and_keeps_its_event_id() {
    let lifecycle = lifecycle(Pool::default(), Bus::default(), true);
    let store = with_profile();
    let record = call("DeleteUser", None);
    lifecycle.handle(&store, &record, None).await.unwrap();
    let again = lifecycle.handle(&store, &record, None).await.unwrap();
    assert_eq!(
        again,
        Handled::Erased {
            profile_removed: false
        }
    );
    let published = lifecycle.bus.published.lock().unwrap();
    let users: Vec<&Value> = published
        .iter()
        .filter(|(k, _)| k == "UserDeleted")
        .map(|(_, v)| v)
        .collect();
    assert_eq!(users.len(), 2);
    assert_eq!(users[0]["eventId"], users[1]["eventId"]);
    // No second ProfileDeleted: nothing was removed the second time.
    assert_eq!(published.len(), 3);
    // One configured pool: a self-service deletion's event names it.
    assert_eq!(users[0]["userPoolId"], POOL);
}

#[tokio::test]
async fn a_user_who_still_exists_is_not_deleted() {
    let lifecycle = lifecycle(Pool::with("CONFIRMED"), Bus::default(), false);
    let store = with_profile();
    let refused = lifecycle
        .handle(&store, &call("AdminDeleteUser", Some(POOL)), None)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), "UserStillExists");
    assert!(!refused.is_retryable());
    assert_eq!(*store.removals.lock().unwrap(), 0);
    assert!(lifecycle.bus.published.lock().unwrap().is_empty());
}

#[tokio::test]
async fn another_pools_record_is_ignored_without_a_lookup() {
    let lifecycle = lifecycle(Pool::default(), Bus::default(), false);
    let store = with_profile();
    let handled = lifecycle
        .handle(
            &store,
            &call("AdminDeleteUser", Some("eu-west-1_Other")),
            None,
        )
        .await
        .unwrap();
    assert_eq!(handled, Handled::Ignored("OtherPool"));
    assert_eq!(*lifecycle.users.lookups.lock().unwrap(), 0);
    assert_eq!(store.profiles.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn failed_calls_and_records_without_a_sub_change_nothing() {
    let lifecycle = lifecycle(Pool::default(), Bus::default(), false);
    let store = with_profile();
    let mut failed = call("AdminDeleteUser", Some(POOL));
    failed.error_code = Some("UserNotFoundException".into());
    assert_eq!(
        lifecycle.handle(&store, &failed, None).await.unwrap(),
        Handled::Ignored("CallFailed")
    );
    let mut anonymous = call("AdminDeleteUser", Some(POOL));
    anonymous.sub = None;
    assert_eq!(
        lifecycle.handle(&store, &anonymous, None).await.unwrap(),
        Handled::Ignored("NoSub")
    );
    assert_eq!(store.profiles.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_lookup_or_publish_failure_is_retried_later() {
    let throttled = Failure::new(
        uc_runtime::FailureKind::THROTTLED,
        "TooManyRequestsException",
        "",
    );
    let pool = Pool {
        fail: Some(throttled),
        ..Pool::default()
    };
    let lifecycle = lifecycle(pool, Bus::default(), false);
    let store = with_profile();
    let failure = lifecycle
        .handle(&store, &call("AdminDeleteUser", Some(POOL)), None)
        .await
        .unwrap_err();
    assert!(failure.is_retryable(), "{failure}");
    assert_eq!(store.profiles.lock().unwrap().len(), 1, "nothing removed");

    let bus = Bus {
        refuse: Some(Failure::retryable("InternalException", "")),
        ..Bus::default()
    };
    let lifecycle = super::tests::lifecycle(Pool::default(), bus, false);
    let failure = lifecycle
        .handle(&store, &call("AdminDeleteUser", Some(POOL)), None)
        .await
        .unwrap_err();
    assert!(
        failure.is_retryable(),
        "UserDeleted must not be lost: {failure}"
    );
}

#[tokio::test]
async fn an_activated_account_without_a_profile_is_published_once() {
    let lifecycle = lifecycle(Pool::with("CONFIRMED"), Bus::default(), false);
    let store = Store::default();
    let handled = lifecycle
        .handle(&store, &call("AdminSetUserPassword", Some(POOL)), None)
        .await
        .unwrap();
    assert_eq!(handled, Handled::Confirmed);
    let published = lifecycle.bus.published.lock().unwrap().clone();
    assert_eq!(published.len(), 1);
    let (kind, event) = &published[0];
    assert_eq!(kind, "UserConfirmed");
    assert_eq!(event["origin"], "reconciliation");
    assert_eq!(
        event["eventId"],
        uc_schemas::event_id(POOL, SUB).to_string()
    );

    // Once the profile exists, the same call publishes nothing.
    store.profiles.lock().unwrap().push(SUB.into());
    let again = lifecycle
        .handle(&store, &call("AdminSetUserPassword", Some(POOL)), None)
        .await
        .unwrap();
    assert_eq!(again, Handled::Ignored("HasProfile"));
    assert_eq!(lifecycle.bus.published.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn an_account_of_an_uncounted_status_or_gone_gets_nothing() {
    let lifecycle = lifecycle(Pool::with("FORCE_CHANGE_PASSWORD"), Bus::default(), false);
    let store = Store::default();
    assert_eq!(
        lifecycle
            .handle(&store, &call("AdminCreateUser", Some(POOL)), None)
            .await
            .unwrap(),
        Handled::Ignored("NotCounted")
    );
    // Created and activated at once: the AdminCreateUser record is left to the activating
    // call's, without a lookup, so the user is published once.
    let activated = super::tests::lifecycle(Pool::with("CONFIRMED"), Bus::default(), false);
    assert_eq!(
        activated
            .handle(&store, &call("AdminCreateUser", Some(POOL)), None)
            .await
            .unwrap(),
        Handled::Ignored("NotCounted")
    );
    assert_eq!(*activated.users.lookups.lock().unwrap(), 0);
    let gone = super::tests::lifecycle(Pool::default(), Bus::default(), false);
    assert_eq!(
        gone.handle(&store, &call("AdminSetUserPassword", Some(POOL)), None)
            .await
            .unwrap(),
        Handled::Ignored("UserGone")
    );
    assert!(lifecycle.bus.published.lock().unwrap().is_empty());
    // Where FORCE_CHANGE_PASSWORD counts, the created account gets its profile at once.
    let counted = Lifecycle::new(
        Pool::with("FORCE_CHANGE_PASSWORD"),
        Bus::default(),
        LifecycleSettings {
            pools: vec![POOL.into()],
            statuses: vec!["CONFIRMED".into(), "FORCE_CHANGE_PASSWORD".into()],
            region: "eu-west-1".into(),
            announce_profiles: false,
        },
    );
    assert_eq!(
        counted
            .handle(&store, &call("AdminCreateUser", Some(POOL)), None)
            .await
            .unwrap(),
        Handled::Confirmed
    );
}

#[tokio::test]
async fn a_sweeps_erasure_is_verified_and_says_so() {
    let lifecycle = lifecycle(Pool::default(), Bus::default(), false);
    let store = with_profile();
    let handled = lifecycle.erase(&store, SUB, None).await.unwrap();
    assert_eq!(
        handled,
        Handled::Erased {
            profile_removed: true
        }
    );
    assert_eq!(
        lifecycle.bus.published.lock().unwrap()[0].1["detectedBy"],
        "sweep"
    );
    let kept = super::tests::lifecycle(Pool::with("CONFIRMED"), Bus::default(), false);
    let store = with_profile();
    assert_eq!(
        kept.erase(&store, SUB, None).await.unwrap_err().code(),
        "UserStillExists"
    );
    assert_eq!(store.profiles.lock().unwrap().len(), 1);
}

#[test]
fn the_pools_searched_follow_the_record() {
    let pools = vec!["a".to_owned(), "b".to_owned()];
    assert_eq!(pools_to_search(&pools, Some("b")), Some(vec!["b"]));
    assert_eq!(pools_to_search(&pools, Some("c")), None);
    assert_eq!(pools_to_search(&pools, None), Some(vec!["a", "b"]));
    assert!(LifecycleCall::DeleteUser.is_deletion());
}
