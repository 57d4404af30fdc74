//! A sweep at pool scale: the real sweep engine (`uc_ops::sweep`, what `uc-reconciler` and
//! `uc-ops reconcile` run) over a pool of a million users or more, against an in-process fake
//! of Cognito's `ListUsers` and EventBridge's `PutEvents` (the SDK's own clients, signing and
//! parsing included, with a fake HTTP connector answering at once) and a fake profile store in
//! which every user but one in a thousand has a profile. Time is Tokio's paused clock, so a pass
//! takes the time its paces give it (the `ListUsers` calls per second, the events per second)
//! and nothing of this machine's speed: the pass time is what the paces allow, while the CPU
//! seconds and peak RSS are this process's own, measured.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_sqs::config::{Credentials, SharedCredentialsProvider};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use serde::Serialize;
use serde_json::{Value, json};
use uc_ops::profile_lookup::{LookupError, ProfileLookup};
use uc_ops::publish::{Clients, Target};
use uc_ops::sweep::{PassOptions, Sweep, SweepConfig};
use uc_ops::sweep_state::{StateError, StateStore, SweepState};
use uc_schemas::Origin;

use crate::machine;

/// Users per `ListUsers` page (Cognito's maximum).
const PAGE: u64 = 60;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    pub users: u64,
    /// `ListUsers` calls per second of each run: the default (`LIST_USERS_RPS` = 5) and the
    /// largest Cognito's default quotas allow: `ListUsers` is in the UserList category, 30
    /// requests per second per account and Region (not adjustable), shared with the audit.
    pub list_rates: Vec<f64>,
    /// Events per second (`RECONCILE_PUBLISH_RATE`'s default).
    pub publish_rate: f64,
    /// One user in this many has no profile (the users a pass publishes).
    pub missing_one_in: u64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Run {
    pub list_rate: f64,
    pub users: u64,
    pub list_users_calls: u64,
    pub store_reads: u64,
    pub events_published: u64,
    pub had_profile: u64,
    /// The pass on the paced clock: what its paces allow, Cognito answering at once.
    pub pass_seconds: f64,
    /// 15-minute invocations of the scheduled function the pass needs.
    pub invocations: u64,
    /// CPU seconds this process spent on the pass (signing, parsing, selection, the store check).
    pub cpu_seconds: Option<f64>,
    pub peak_rss_mib: Option<f64>,
    pub complete: bool,
}

/// A pool of `users` confirmed users, as Cognito's JSON pages; and a PutEvents that accepts all.
#[derive(Debug)]
struct FakeAws {
    users: u64,
    list_calls: AtomicU64,
    events: AtomicU64,
}

fn sub_of(index: u64) -> String {
    uuid::Uuid::from_u128(
        (index as u128 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835),
    )
    .to_string()
}

impl FakeAws {
    fn list_users(&self, body: &Value) -> Value {
        self.list_calls.fetch_add(1, Ordering::Relaxed);
        let page: u64 = body["PaginationToken"]
            .as_str()
            .and_then(|t| t.parse().ok())
            .unwrap_or(0);
        let first = page * PAGE;
        let last = (first + PAGE).min(self.users);
        // Changed long ago: no user is inside the grace period.
        let date = 1_700_000_000.0;
        let users: Vec<Value> = (first..last)
            .map(|i| {
                json!({
                    "Username": format!("user-{i}"),
                    "Attributes": [
                        {"Name": "sub", "Value": sub_of(i)},
                        {"Name": "email", "Value": format!("user-{i}@example.com")},
                        {"Name": "email_verified", "Value": "true"},
                    ],
                    "UserCreateDate": date,
                    "UserLastModifiedDate": date,
                    "Enabled": true,
                    "UserStatus": "CONFIRMED",
                })
            })
            .collect();
        let mut answer = json!({ "Users": users });
        if last < self.users {
            answer["PaginationToken"] = json!((page + 1).to_string());
        }
        answer
    }

    fn put_events(&self, body: &Value) -> Value {
        let n = body["Entries"].as_array().map_or(0, Vec::len);
        self.events.fetch_add(n as u64, Ordering::Relaxed);
        json!({
            "FailedEntryCount": 0,
            "Entries": (0..n).map(|i| json!({"EventId": format!("e-{i}")})).collect::<Vec<_>>(),
        })
    }
}

#[derive(Debug, Clone)]
struct Connector(std::sync::Arc<FakeAws>);

impl HttpConnector for Connector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let target = request
            .headers()
            .get("x-amz-target")
            .unwrap_or_default()
            .to_owned();
        let body: Value =
            serde_json::from_slice(request.body().bytes().unwrap_or(b"{}")).unwrap_or(Value::Null);
        let (status, answer) = match target.as_str() {
            "AWSCognitoIdentityProviderService.ListUsers" => (200, self.0.list_users(&body)),
            "AWSEvents.PutEvents" => (200, self.0.put_events(&body)),
            other => (
                400,
                json!({"__type": "UnknownOperationException", "message": other}),
            ),
        };
        let mut response = HttpResponse::new(
            StatusCode::try_from(status).expect("a status"),
            SdkBody::from(serde_json::to_vec(&answer).expect("serializes")),
        );
        response
            .headers_mut()
            .insert("content-type", "application/x-amz-json-1.1");
        HttpConnectorFuture::ready(Ok(response))
    }
}

impl HttpClient for Connector {
    fn http_connector(
        &self,
        _: &HttpConnectorSettings,
        _: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}

/// The profile store: every user but one in `Settings::missing_one_in` has a profile.
struct FakeStore {
    missing: HashSet<String>,
    reads: AtomicU64,
}

impl ProfileLookup for FakeStore {
    async fn existing(&self, ids: &[&str]) -> Result<HashSet<String>, LookupError> {
        // One batched read per page, as the AppSync and DynamoDB lookups make.
        self.reads.fetch_add(1, Ordering::Relaxed);
        Ok(ids
            .iter()
            .filter(|id| !self.missing.contains(**id))
            .map(|id| (*id).to_owned())
            .collect())
    }

    fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    fn describe(&self) -> String {
        "a fake store".into()
    }
}

struct MemoryState(Mutex<SweepState>);

impl StateStore for MemoryState {
    async fn load(&self) -> Result<SweepState, StateError> {
        Ok(self.0.lock().unwrap().clone())
    }

    async fn save(&self, state: &SweepState) -> Result<(), StateError> {
        *self.0.lock().unwrap() = state.clone();
        Ok(())
    }
}

/// One pass over the pool at `list_rate`, on a paused clock of its own.
fn one_pass(settings: &Settings, list_rate: f64) -> anyhow::Result<Run> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()?;
    let fake = std::sync::Arc::new(FakeAws {
        users: settings.users,
        list_calls: AtomicU64::new(0),
        events: AtomicU64::new(0),
    });
    let sdk = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "AKIDBENCH",
            "bench-secret",
            None,
            None,
            "bench",
        )))
        .http_client(Connector(fake.clone()))
        .build();
    let missing = (0..settings.users)
        .filter(|i| i % settings.missing_one_in == settings.missing_one_in / 2)
        .map(sub_of)
        .collect();
    let store = FakeStore {
        missing,
        reads: AtomicU64::new(0),
    };
    let state = MemoryState(Mutex::new(SweepState::default()));
    let config = SweepConfig {
        user_pool_id: "us-east-1_Bench".into(),
        region: "us-east-1".into(),
        statuses: vec!["CONFIRMED".into(), "EXTERNAL_PROVIDER".into()],
        origin: Origin::Reconciliation,
        target: Target::EventBridge {
            bus: "bench".into(),
            source: "userconfirmed.cognito".into(),
        },
        publish_rate: Some(settings.publish_rate),
        list_rate,
        overlap: Some(Duration::from_secs(3_600)),
        grace: Duration::from_secs(60),
        created_since: None,
        republish: false,
    };
    let pid = std::process::id();
    let cpu_before = machine::cpu_seconds(pid);
    let (report, seconds) = runtime.block_on(async {
        let clients = Clients::new(&sdk);
        let started = tokio::time::Instant::now();
        let report = Sweep {
            clients: &clients,
            state: &state,
            lookup: &store,
            config: &config,
        }
        .run(&PassOptions::default(), |_| {})
        .await;
        (report, started.elapsed().as_secs_f64())
    });
    let report = report?;
    let cpu_seconds = cpu_before
        .zip(machine::cpu_seconds(pid))
        .map(|(before, after)| crate::stats::round(after - before));
    Ok(Run {
        list_rate,
        users: report.scanned,
        list_users_calls: fake.list_calls.load(Ordering::Relaxed),
        store_reads: report.store_reads,
        events_published: fake.events.load(Ordering::Relaxed),
        had_profile: report.had_profile,
        pass_seconds: crate::stats::round(seconds),
        invocations: (seconds / 885.0).ceil() as u64,
        cpu_seconds,
        peak_rss_mib: machine::peak_rss_mib(pid),
        complete: report.complete,
    })
}

pub fn run(settings: &Settings) -> anyhow::Result<Vec<Run>> {
    let mut runs = Vec::new();
    for &rate in &settings.list_rates {
        eprintln!(
            "  a pass over {} users at {rate} ListUsers calls/s",
            settings.users
        );
        let run = one_pass(settings, rate)?;
        eprintln!(
            "    {} calls, {} store reads, {} published; {:.0} s on the paced clock, {:?} CPU s, peak RSS {:?} MiB",
            run.list_users_calls,
            run.store_reads,
            run.events_published,
            run.pass_seconds,
            run.cpu_seconds,
            run.peak_rss_mib
        );
        runs.push(run);
    }
    Ok(runs)
}
