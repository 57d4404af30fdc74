//! Lambda Managed Instances: one function process served `AWS_LAMBDA_MAX_CONCURRENCY`
//! invocations at once (`lambda_runtime::run_concurrent`). Each level starts the real binary
//! under the Runtime API harness with that setting and keeps that many invocations in flight
//! (closed loop), against fixed-latency fakes on loopback: EventBridge's PutEvents for the
//! emitter, the GraphQL endpoint for the worker (SQS batches of 10, the template's batch size).
//! Throughput per process is set against its limit, K ÷ latency (× 10 messages for the worker).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use uc_devkit::LambdaHarness;

use crate::events;
use crate::fixed_endpoint::{FixedLatencyEndpoint, Reply, http_response};
use crate::machine::{cpu_seconds, peak_rss_mib};
use crate::stats::round;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    /// `AWS_LAMBDA_MAX_CONCURRENCY` values.
    pub max_concurrency: Vec<u32>,
    /// The fake PutEvents' latency (an assumption: in-region PutEvents takes a few ms).
    pub put_events_latency_ms: u64,
    /// The GraphQL endpoint's latency (as in the throughput runs).
    pub graphql_latency_ms: u64,
    /// Messages per worker invocation (the template's SQS batch size) and its `CONCURRENCY`.
    pub worker_batch: u64,
    /// Seconds of work per level at the limit.
    pub target_seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Level {
    pub function: &'static str,
    pub max_concurrency: u32,
    pub invocations: u64,
    /// Profiles (worker) or events published (emitter) per invocation.
    pub units_per_invocation: u64,
    pub seconds: f64,
    pub units_per_second: f64,
    /// K ÷ latency (× units per invocation).
    pub limit_per_second: f64,
    pub fraction_of_limit: f64,
    pub cpu_us_per_unit: Option<f64>,
    pub peak_rss_mib: Option<f64>,
    pub failed_invocations: u64,
}

const PUT_EVENTS_REPLY: &str =
    r#"{"FailedEntryCount":0,"Entries":[{"EventId":"11111111-2222-3333-4444-555555555555"}]}"#;

pub async fn run(emitter: &Path, worker: &Path, settings: &Settings) -> Vec<Level> {
    let events = FixedLatencyEndpoint::start_with(
        Duration::from_millis(settings.put_events_latency_ms),
        Reply::Fixed(
            http_response("200 OK", "application/x-amz-json-1.1", PUT_EVENTS_REPLY).into(),
        ),
    )
    .await;
    let graphql =
        FixedLatencyEndpoint::start(Duration::from_millis(settings.graphql_latency_ms)).await;
    let mut levels = Vec::new();
    for (i, &k) in settings.max_concurrency.iter().enumerate() {
        let env = [
            ("AWS_LAMBDA_MAX_CONCURRENCY", k.to_string()),
            ("EVENT_BUS_NAME", "uc-bench".into()),
            (
                "AWS_ENDPOINT_URL_EVENTBRIDGE",
                format!("http://127.0.0.1:{}", events.port),
            ),
        ];
        let limit = f64::from(k) * 1000.0 / settings.put_events_latency_ms as f64;
        let level = measure(emitter, &env, k, 1, limit, settings, |n| {
            events::cognito_event(6000 + i as u32, n)
        })
        .await;
        levels.push(Level {
            function: "uc-emitter",
            ..level
        });
    }
    let batch = settings.worker_batch;
    for (i, &k) in settings.max_concurrency.iter().enumerate() {
        let env = [
            ("AWS_LAMBDA_MAX_CONCURRENCY", k.to_string()),
            ("APPSYNC_GRAPHQL_URL", graphql.url()),
            ("USER_POOL_ID", events::USER_POOL_ID.into()),
            // CONCURRENCY bounds the whole process (every invocation it serves): K batches.
            ("CONCURRENCY", (u64::from(k) * batch).to_string()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256".into()),
        ];
        let limit = f64::from(k) * batch as f64 * 1000.0 / settings.graphql_latency_ms as f64;
        let level = measure(worker, &env, k, batch, limit, settings, |n| {
            events::sqs_batch(7000 + i as u32, n * batch, batch)
        })
        .await;
        levels.push(Level {
            function: "uc-worker",
            ..level
        });
    }
    levels
}

/// Keeps `k` invocations in flight until the level's invocations are done.
async fn measure(
    binary: &Path,
    env: &[(&str, String)],
    k: u32,
    units: u64,
    limit: f64,
    settings: &Settings,
    event: impl Fn(u64) -> serde_json::Value,
) -> Level {
    let harness = Arc::new(LambdaHarness::start(binary.to_str().unwrap(), env).await);
    let timeout = Duration::from_secs(60);
    // Warm-up: one invocation per slot (connections, allocator).
    let warm: Vec<serde_json::Value> = (0..u64::from(k)).map(|n| event(1_000_000 + n)).collect();
    drive(&harness, warm, k, timeout).await;
    let invocations = ((limit * settings.target_seconds) as u64 / units).max(u64::from(k) * 4);
    let inputs: Vec<serde_json::Value> = (0..invocations).map(&event).collect();
    let cpu_before = cpu_seconds(harness.pid());
    let started = Instant::now();
    let failed = drive(&harness, inputs, k, timeout).await;
    let seconds = started.elapsed().as_secs_f64();
    let cpu_after = cpu_seconds(harness.pid());
    let total = (invocations * units) as f64;
    let rate = total / seconds;
    let level = Level {
        function: "",
        max_concurrency: k,
        invocations,
        units_per_invocation: units,
        seconds: round(seconds),
        units_per_second: (rate * 10.0).round() / 10.0,
        limit_per_second: limit,
        fraction_of_limit: (rate / limit * 1000.0).round() / 1000.0,
        cpu_us_per_unit: cpu_before
            .zip(cpu_after)
            .map(|(b, a)| ((a - b) / total * 1e6 * 10.0).round() / 10.0),
        peak_rss_mib: peak_rss_mib(harness.pid()),
        failed_invocations: failed,
    };
    eprintln!(
        "  {} AWS_LAMBDA_MAX_CONCURRENCY={k}: {:.0}/s of {limit:.0}/s ({:.1} %), {:?} µs CPU each, failed {failed}",
        binary.file_name().unwrap_or_default().to_string_lossy(),
        level.units_per_second,
        level.fraction_of_limit * 100.0,
        level.cpu_us_per_unit
    );
    level
}

/// Invokes every input, `k` at a time; returns how many invocations failed.
async fn drive(
    harness: &Arc<LambdaHarness>,
    inputs: Vec<serde_json::Value>,
    k: u32,
    timeout: Duration,
) -> u64 {
    let inputs = Arc::new(inputs);
    let next = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let mut drivers = Vec::new();
    for _ in 0..k {
        let (harness, inputs, next, failed) = (
            harness.clone(),
            inputs.clone(),
            next.clone(),
            failed.clone(),
        );
        drivers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                let Some(input) = inputs.get(i) else { break };
                let invocation = harness.invoke(input, timeout).await;
                let batch_failed = invocation.result.as_ref().map_or(true, |r| {
                    r["batchItemFailures"]
                        .as_array()
                        .is_some_and(|a| !a.is_empty())
                });
                if batch_failed {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for driver in drivers {
        driver.await.expect("driver");
    }
    failed.load(Ordering::Relaxed)
}
