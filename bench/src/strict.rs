//! Strict mode's cost (`VERIFY_USER=cognito`): the real `uc-worker` under the Runtime API
//! harness, as in the throughput runs, against the fixed-latency GraphQL endpoint and a
//! fixed-latency fake Cognito ([`FakeCognito`]), at a few concurrencies. Per concurrency C,
//! three worker processes take turns, run by run, so drift in the machine's load spreads over
//! every case:
//!
//! - **off**: strict mode off (the throughput runs' settings);
//! - **cold**: strict mode on, every message a new user (the real sign-up case: one
//!   `AdminGetUser` per message), `VERIFY_USER_RPS` at the worker's maximum so pacing does not
//!   bind;
//! - **duplicates**: the same process and the same users again, right after (cache hits: no
//!   call);
//! - **paced**: strict mode on at the default `VERIFY_USER_RPS` (unset), new users: the pacing
//!   caps the process's rate.
//!
//! Nothing here asserts on time.

use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;
use uc_devkit::LambdaHarness;

use crate::events;
use crate::fake_cognito::FakeCognito;
use crate::fixed_endpoint::FixedLatencyEndpoint;
use crate::machine::{cpu_seconds, loadavg, peak_rss_mib};
use crate::stats::Spread;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    /// L at the GraphQL endpoint, as in the throughput runs.
    pub appsync_latency_ms: u64,
    /// L at the fake Cognito: an assumption (AdminGetUser's p50 in AWS is typically tens of ms).
    pub cognito_latency_ms: u64,
    pub concurrency: Vec<usize>,
    pub runs: usize,
    /// Seconds of work per run at C ÷ L (L = the AppSync latency): the message count of the
    /// off, cold and duplicates runs, as in the throughput runs.
    pub target_seconds: f64,
    pub min_messages: u64,
    pub max_messages: u64,
    /// Messages per invocation.
    pub max_batch: u64,
    /// `VERIFY_USER_RPS` of the cold runs: the most the worker accepts.
    pub unbound_rps: u32,
    /// The worker's default `VERIFY_USER_RPS` (the paced runs leave it unset).
    pub default_rps: u32,
    /// Seconds of work per paced run at the default rate (at least 2 C messages).
    pub paced_seconds: f64,
    /// The worker's default `VERIFY_USER_CACHE_SECONDS` (left unset).
    pub cache_seconds: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum CaseKind {
    Off,
    Cold,
    Duplicates,
    Paced,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Run {
    pub messages: u64,
    pub batches: u64,
    pub seconds: f64,
    pub profiles_per_second: f64,
    pub failures: u64,
    /// Worker CPU (user + system) over the run.
    pub cpu_seconds: Option<f64>,
    /// `AdminGetUser` calls the fake Cognito answered during the run.
    pub cognito_calls: u64,
    /// Requests the GraphQL endpoint answered during the run.
    pub appsync_requests: u64,
    /// Mean latency each endpoint actually served during the run (ms).
    pub cognito_served_ms: Option<f64>,
    pub appsync_served_ms: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Case {
    pub case: CaseKind,
    /// `VERIFY_USER` (`none` or `cognito`).
    pub verify_user: &'static str,
    /// `VERIFY_USER_RPS` as set; `None` = unset (the default) or strict mode off.
    pub verify_user_rps: Option<u32>,
    /// The pacing rate in force (strict mode on).
    pub effective_rps: Option<u32>,
    pub runs: Vec<Run>,
    pub profiles_per_second: Spread,
    /// C ÷ L with L the AppSync latency: the throughput runs' limit.
    pub littles_law_limit: f64,
    /// Median throughput ÷ that limit.
    pub fraction_of_limit: f64,
    /// What bounds this case: C ÷ L for off and duplicates; C ÷ (L + the Cognito latency) for a
    /// lookup per message, and at most the pacing rate.
    pub case_limit: f64,
    pub fraction_of_case_limit: f64,
    /// Worker CPU per profile over the measured runs (µs).
    pub cpu_us_per_profile: Option<f64>,
    /// Little's law: C ÷ median throughput (ms), the mean time a message spends in the worker
    /// while C are in flight.
    pub ms_per_message: f64,
    pub messages: u64,
    pub cognito_calls: u64,
    pub appsync_requests: u64,
    pub failures: u64,
    pub cognito_served_ms: Option<f64>,
    pub appsync_served_ms: Option<f64>,
    /// Of the worker process (shared by cold and duplicates).
    pub peak_rss_mib: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Level {
    pub concurrency: usize,
    pub messages_per_run: u64,
    pub paced_messages_per_run: u64,
    pub cases: Vec<Case>,
    /// 1, 5 and 15 minute load averages before and after this level.
    pub load_before: Value,
    pub load_after: Value,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CognitoTotals {
    pub admin_get_user_calls: u64,
    /// Warm-up calls included.
    pub distinct_users: usize,
    pub users_looked_up_more_than_once: usize,
    pub most_lookups_of_one_user: u32,
    pub other_requests: u64,
    pub unsigned_requests: u64,
    pub connections_opened: u64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub levels: Vec<Level>,
    pub cognito: CognitoTotals,
}

fn messages_for(settings: &Settings, concurrency: usize) -> u64 {
    let rate = concurrency as f64 * 1000.0 / settings.appsync_latency_ms as f64;
    ((rate * settings.target_seconds) as u64).clamp(settings.min_messages, settings.max_messages)
}

fn paced_messages_for(settings: &Settings, concurrency: usize) -> u64 {
    ((settings.default_rps as f64 * settings.paced_seconds) as u64)
        .max(2 * concurrency as u64)
        .min(settings.max_messages)
}

struct Endpoints {
    appsync: FixedLatencyEndpoint,
    cognito: FakeCognito,
}

/// One measured run: `messages` users of `series`, in batches, through `harness`.
async fn measure(
    harness: &LambdaHarness,
    endpoints: &Endpoints,
    series: u32,
    messages: u64,
    max_batch: u64,
) -> Run {
    let batches: Vec<Value> = (0..messages)
        .step_by(max_batch as usize)
        .map(|first| events::sqs_batch(series, first, max_batch.min(messages - first)))
        .collect();
    let timeout = Duration::from_secs(120);
    let cpu_before = cpu_seconds(harness.pid());
    let calls_before = endpoints.cognito.log.calls();
    let appsync_before = endpoints
        .appsync
        .counters
        .requests
        .load(std::sync::atomic::Ordering::Relaxed);
    let cognito_held = endpoints.cognito.endpoint.counters.held_snapshot();
    let appsync_held = endpoints.appsync.counters.held_snapshot();
    let started = Instant::now();
    let mut failures = 0u64;
    for batch in &batches {
        let invocation = harness.invoke(batch, timeout).await;
        match invocation.result {
            Ok(response) => {
                failures += response["batchItemFailures"]
                    .as_array()
                    .map(|a| a.len() as u64)
                    .unwrap_or(0)
            }
            Err(_) => failures += batch["Records"].as_array().unwrap().len() as u64,
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu_after = cpu_seconds(harness.pid());
    let round3 = |x: f64| (x * 1000.0).round() / 1000.0;
    Run {
        messages,
        batches: batches.len() as u64,
        seconds: (seconds * 1e4).round() / 1e4,
        profiles_per_second: (messages as f64 / seconds * 10.0).round() / 10.0,
        failures,
        cpu_seconds: cpu_before.zip(cpu_after).map(|(b, a)| round3(a - b)),
        cognito_calls: endpoints.cognito.log.calls() - calls_before,
        appsync_requests: endpoints
            .appsync
            .counters
            .requests
            .load(std::sync::atomic::Ordering::Relaxed)
            - appsync_before,
        cognito_served_ms: endpoints
            .cognito
            .endpoint
            .counters
            .held_snapshot()
            .mean_ms_since(cognito_held)
            .map(round3),
        appsync_served_ms: endpoints
            .appsync
            .counters
            .held_snapshot()
            .mean_ms_since(appsync_held)
            .map(round3),
    }
}

/// Mean of the runs' served latencies, weighted by their requests (approximately: by run).
fn mean_of(values: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    let v: Vec<f64> = values.flatten().collect();
    (!v.is_empty()).then(|| (v.iter().sum::<f64>() / v.len() as f64 * 1000.0).round() / 1000.0)
}

fn summarise(
    kind: CaseKind,
    settings: &Settings,
    concurrency: usize,
    verify_user_rps: Option<u32>,
    effective_rps: Option<u32>,
    runs: Vec<Run>,
    peak_rss_mib: Option<f64>,
) -> Case {
    let c = concurrency as f64;
    let limit = c * 1000.0 / settings.appsync_latency_ms as f64;
    let lookups = matches!(kind, CaseKind::Cold | CaseKind::Paced);
    let case_limit = if lookups {
        let both = c * 1000.0 / (settings.appsync_latency_ms + settings.cognito_latency_ms) as f64;
        effective_rps.map_or(both, |rps| both.min(rps as f64))
    } else {
        limit
    };
    let throughput = Spread::of(runs.iter().map(|r| r.profiles_per_second));
    let messages: u64 = runs.iter().map(|r| r.messages).sum();
    let cpu: Option<f64> = runs.iter().map(|r| r.cpu_seconds).sum();
    Case {
        case: kind,
        verify_user: if kind == CaseKind::Off {
            "none"
        } else {
            "cognito"
        },
        verify_user_rps,
        effective_rps,
        fraction_of_limit: (throughput.median / limit * 1000.0).round() / 1000.0,
        littles_law_limit: limit,
        fraction_of_case_limit: (throughput.median / case_limit * 1000.0).round() / 1000.0,
        case_limit: (case_limit * 10.0).round() / 10.0,
        cpu_us_per_profile: cpu.map(|s| (s / messages as f64 * 1e6 * 10.0).round() / 10.0),
        ms_per_message: (c * 1000.0 / throughput.median * 1000.0).round() / 1000.0,
        profiles_per_second: throughput,
        messages,
        cognito_calls: runs.iter().map(|r| r.cognito_calls).sum(),
        appsync_requests: runs.iter().map(|r| r.appsync_requests).sum(),
        failures: runs.iter().map(|r| r.failures).sum(),
        cognito_served_ms: mean_of(runs.iter().map(|r| r.cognito_served_ms)),
        appsync_served_ms: mean_of(runs.iter().map(|r| r.appsync_served_ms)),
        peak_rss_mib,
        runs,
    }
}

async fn start_worker(
    worker: &Path,
    endpoints: &Endpoints,
    concurrency: usize,
    strict: Option<Option<u32>>,
) -> LambdaHarness {
    let mut env: Vec<(&str, String)> = vec![
        ("APPSYNC_GRAPHQL_URL", endpoints.appsync.url()),
        ("USER_POOL_ID", events::USER_POOL_ID.into()),
        ("CONCURRENCY", concurrency.to_string()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256".into()),
    ];
    if let Some(rps) = strict {
        env.push(("VERIFY_USER", "cognito".into()));
        // The SDK's service-specific endpoint variable for cognito-idp (service id
        // "Cognito Identity Provider").
        env.push((
            "AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER",
            endpoints.cognito.url(),
        ));
        if let Some(rps) = rps {
            env.push(("VERIFY_USER_RPS", rps.to_string()));
        }
    }
    LambdaHarness::start(worker.to_str().unwrap(), &env).await
}

async fn warm_up(harness: &LambdaHarness, series: u32, count: u64) {
    let invocation = harness
        .invoke(
            &events::sqs_batch(series, 0, count),
            Duration::from_secs(120),
        )
        .await;
    let failures = invocation
        .result
        .as_ref()
        .ok()
        .and_then(|r| r["batchItemFailures"].as_array().map(Vec::len));
    assert_eq!(
        failures,
        Some(0),
        "the worker failed its warm-up batch: {:?}",
        invocation.result
    );
}

pub async fn run(worker: &Path, settings: &Settings) -> Report {
    let endpoints = Endpoints {
        appsync: FixedLatencyEndpoint::start(Duration::from_millis(settings.appsync_latency_ms))
            .await,
        cognito: FakeCognito::start(Duration::from_millis(settings.cognito_latency_ms)).await,
    };
    let mut levels = Vec::new();
    for (li, &concurrency) in settings.concurrency.iter().enumerate() {
        let load_before = loadavg();
        let base = 5000 + li as u32 * 100;
        let messages = messages_for(settings, concurrency);
        let paced_messages = paced_messages_for(settings, concurrency);
        let off = start_worker(worker, &endpoints, concurrency, None).await;
        let unbound = start_worker(
            worker,
            &endpoints,
            concurrency,
            Some(Some(settings.unbound_rps)),
        )
        .await;
        let paced = start_worker(worker, &endpoints, concurrency, Some(None)).await;
        // Warm-up: connections (to both endpoints), allocator, page cache; new users each.
        let warmup = (concurrency as u64 * 2).clamp(20, 400);
        warm_up(&off, base, warmup).await;
        warm_up(&unbound, base + 1, warmup).await;
        warm_up(&paced, base + 2, (settings.default_rps as u64 / 2).max(2)).await;

        let (mut off_runs, mut cold_runs, mut dup_runs, mut paced_runs) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for run in 0..settings.runs {
            let run_series = |offset: u32| base + offset + run as u32;
            off_runs.push(
                measure(
                    &off,
                    &endpoints,
                    run_series(10),
                    messages,
                    settings.max_batch,
                )
                .await,
            );
            cold_runs.push(
                measure(
                    &unbound,
                    &endpoints,
                    run_series(20),
                    messages,
                    settings.max_batch,
                )
                .await,
            );
            // The same users again, in the same process: every answer is cached.
            dup_runs.push(
                measure(
                    &unbound,
                    &endpoints,
                    run_series(20),
                    messages,
                    settings.max_batch,
                )
                .await,
            );
            paced_runs.push(
                measure(
                    &paced,
                    &endpoints,
                    run_series(30),
                    paced_messages,
                    settings.max_batch,
                )
                .await,
            );
        }
        let cases = vec![
            summarise(
                CaseKind::Off,
                settings,
                concurrency,
                None,
                None,
                off_runs,
                peak_rss_mib(off.pid()),
            ),
            summarise(
                CaseKind::Cold,
                settings,
                concurrency,
                Some(settings.unbound_rps),
                Some(settings.unbound_rps),
                cold_runs,
                peak_rss_mib(unbound.pid()),
            ),
            summarise(
                CaseKind::Duplicates,
                settings,
                concurrency,
                Some(settings.unbound_rps),
                Some(settings.unbound_rps),
                dup_runs,
                peak_rss_mib(unbound.pid()),
            ),
            summarise(
                CaseKind::Paced,
                settings,
                concurrency,
                None,
                Some(settings.default_rps),
                paced_runs,
                peak_rss_mib(paced.pid()),
            ),
        ];
        for case in &cases {
            eprintln!(
                "  strict C={:>3} {:<10}: {:>7.1}/s ({:.1} % of C ÷ L, {:.1} % of its own limit), {:.1} ms/message, {:?} µs CPU/profile, {} Cognito calls for {} messages",
                concurrency,
                format!("{:?}", case.case).to_lowercase(),
                case.profiles_per_second.median,
                case.fraction_of_limit * 100.0,
                case.fraction_of_case_limit * 100.0,
                case.ms_per_message,
                case.cpu_us_per_profile,
                case.cognito_calls,
                case.messages,
            );
        }
        drop((off, unbound, paced));
        levels.push(Level {
            concurrency,
            messages_per_run: messages,
            paced_messages_per_run: paced_messages,
            cases,
            load_before,
            load_after: loadavg(),
        });
    }
    let log = &endpoints.cognito.log;
    let (repeated, most) = log.repeats();
    let cognito = CognitoTotals {
        admin_get_user_calls: log.calls(),
        distinct_users: log.per_user.lock().unwrap().len(),
        users_looked_up_more_than_once: repeated,
        most_lookups_of_one_user: most,
        other_requests: log.other.load(std::sync::atomic::Ordering::Relaxed),
        unsigned_requests: log.unsigned.load(std::sync::atomic::Ordering::Relaxed),
        connections_opened: endpoints
            .cognito
            .endpoint
            .counters
            .connections
            .load(std::sync::atomic::Ordering::Relaxed),
    };
    Report { levels, cognito }
}
