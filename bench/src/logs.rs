//! Log volume: what each function writes to stdout (which Lambda ships to CloudWatch Logs, billed
//! per GB ingested) per sign-up and per profile, split into log lines and EMF records, with the
//! worker's CPU per profile beside it. The emitter runs under the Runtime API harness against
//! moto's PutEvents; the worker as a function against the fixed-latency GraphQL endpoint, and
//! long-polling the fake SQS.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use uc_devkit::{LambdaHarness, RunningBinary};

use crate::events;
use crate::fake_sqs::FakeSqs;
use crate::fixed_endpoint::FixedLatencyEndpoint;
use crate::long_poll::{bodies, wait_for_deletes};
use crate::machine::cpu_seconds;
use crate::signup::{Stack, emitter_env};

/// CloudWatch Logs ingestion, standard class, us-east-1 (USD per GB).
pub const INGESTION_PER_GB: f64 = 0.50;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    pub emitter_invocations: u64,
    pub worker_messages: u64,
    /// Messages per worker invocation (the template's batch size is 10).
    pub batch: u64,
    pub concurrency: usize,
    pub latency_ms: u64,
}

/// What one binary wrote over `units` sign-ups or profiles.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Volume {
    pub units: u64,
    /// JSON log lines (with their newlines).
    pub log_bytes: u64,
    /// CloudWatch EMF records.
    pub emf_bytes: u64,
    /// Anything else (a line that is neither).
    pub other_bytes: u64,
    /// Log lines by level.
    pub lines_by_level: BTreeMap<String, u64>,
    /// Log lines below INFO written by a crate that is not ours.
    pub third_party_debug_lines: u64,
    pub bytes_per_unit: f64,
    pub log_bytes_per_unit: f64,
    pub emf_bytes_per_unit: f64,
    /// The process's CPU (user + system) per unit over the measured part.
    pub cpu_us_per_unit: Option<f64>,
}

impl Volume {
    fn of(lines: &[String], units: u64, cpu_seconds: Option<f64>) -> Self {
        let (mut log, mut emf, mut other, mut third) = (0u64, 0u64, 0u64, 0u64);
        let mut by_level = BTreeMap::new();
        for line in lines {
            let bytes = line.len() as u64 + 1;
            match serde_json::from_str::<Value>(line) {
                Ok(v) if v.get("_aws").is_some() => emf += bytes,
                Ok(v) if v.get("level").is_some() => {
                    log += bytes;
                    let level = v["level"].as_str().unwrap_or("?").to_owned();
                    let ours = v["target"].as_str().is_some_and(|t| t.starts_with("uc_"));
                    if matches!(level.as_str(), "DEBUG" | "TRACE") && !ours {
                        third += 1;
                    }
                    *by_level.entry(level).or_insert(0) += 1;
                }
                _ => other += bytes,
            }
        }
        let per = |b: u64| (b as f64 / units as f64 * 10.0).round() / 10.0;
        Self {
            units,
            log_bytes: log,
            emf_bytes: emf,
            other_bytes: other,
            lines_by_level: by_level,
            third_party_debug_lines: third,
            bytes_per_unit: per(log + emf + other),
            log_bytes_per_unit: per(log),
            emf_bytes_per_unit: per(emf),
            cpu_us_per_unit: cpu_seconds.map(|s| (s / units as f64 * 1e7).round() / 10.0),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LogVolume {
    pub settings: Settings,
    pub emitter: Volume,
    pub worker_lambda: Volume,
    pub worker_poll: Volume,
    pub ingestion_usd_per_gb: f64,
    /// Emitter per sign-up plus the worker function per profile, per million sign-ups.
    pub ingestion_usd_per_million_sign_ups: f64,
}

/// The lines a process has written after the first `from`, once what it wrote by now has been
/// read: the functions flush before they answer, a long-poll consumer within 100 ms. Not "until
/// it stops writing": a consumer that logs while idle (as the SDK's DEBUG lines did) never does.
async fn settled_output(output: impl Fn() -> Vec<String>, from: usize) -> Vec<String> {
    tokio::time::sleep(Duration::from_millis(400)).await;
    let lines = output();
    lines[from.min(lines.len())..].to_vec()
}

async fn emitter(binary: &Path, settings: &Settings) -> Volume {
    let stack = Stack::start().await;
    let harness = LambdaHarness::start(binary.to_str().unwrap(), &emitter_env(&stack.moto)).await;
    let timeout = Duration::from_secs(5);
    for n in 0..10 {
        let warm = harness
            .invoke(&events::cognito_event(7000, n), timeout)
            .await;
        assert!(warm.result.is_ok(), "emitter warm-up: {:?}", warm.result);
    }
    let from = settled_output(|| harness.output(), 0).await.len();
    let cpu_before = cpu_seconds(harness.pid());
    for n in 0..settings.emitter_invocations {
        let invocation = harness
            .invoke(&events::cognito_event(7001, n), timeout)
            .await;
        assert!(
            invocation.result.is_ok(),
            "emitter: {:?}",
            invocation.result
        );
    }
    let cpu = cpu_before
        .zip(cpu_seconds(harness.pid()))
        .map(|(b, a)| a - b);
    let lines = settled_output(|| harness.output(), from).await;
    Volume::of(&lines, settings.emitter_invocations, cpu)
}

fn worker_env(endpoint: &FixedLatencyEndpoint, concurrency: usize) -> Vec<(&'static str, String)> {
    vec![
        ("APPSYNC_GRAPHQL_URL", endpoint.url()),
        ("USER_POOL_ID", events::USER_POOL_ID.into()),
        ("CONCURRENCY", concurrency.to_string()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256".into()),
    ]
}

async fn worker_lambda(binary: &Path, settings: &Settings) -> Volume {
    let endpoint = FixedLatencyEndpoint::start(Duration::from_millis(settings.latency_ms)).await;
    let harness = LambdaHarness::start(
        binary.to_str().unwrap(),
        &worker_env(&endpoint, settings.concurrency),
    )
    .await;
    let timeout = Duration::from_secs(120);
    let warm = harness
        .invoke(&events::sqs_batch(7100, 0, settings.batch * 4), timeout)
        .await;
    assert!(warm.result.is_ok(), "worker warm-up: {:?}", warm.result);
    let from = settled_output(|| harness.output(), 0).await.len();
    let cpu_before = cpu_seconds(harness.pid());
    for first in (0..settings.worker_messages).step_by(settings.batch as usize) {
        let count = settings.batch.min(settings.worker_messages - first);
        let invocation = harness
            .invoke(&events::sqs_batch(7101, first, count), timeout)
            .await;
        let failures = invocation
            .result
            .as_ref()
            .map(|r| r["batchItemFailures"].clone());
        assert_eq!(
            failures.ok(),
            Some(serde_json::json!([])),
            "the worker failed a batch"
        );
    }
    let cpu = cpu_before
        .zip(cpu_seconds(harness.pid()))
        .map(|(b, a)| a - b);
    let lines = settled_output(|| harness.output(), from).await;
    Volume::of(&lines, settings.worker_messages, cpu)
}

async fn worker_poll(binary: &Path, settings: &Settings) -> Volume {
    let endpoint = FixedLatencyEndpoint::start(Duration::from_millis(settings.latency_ms)).await;
    let sqs = FakeSqs::start(Duration::from_millis(5)).await;
    let warmup = settings.batch * 4;
    sqs.state.push(bodies(7200, 0, warmup));
    let mut env = worker_env(&endpoint, settings.concurrency);
    env.push(("AWS_ENDPOINT_URL_SQS", sqs.endpoint_url()));
    env.push(("QUEUE_URL", sqs.queue_url()));
    let process = RunningBinary::start(binary.to_str().unwrap(), &["poll"], &env);
    wait_for_deletes(&sqs, warmup, &process).await;
    let from = settled_output(|| process.output(), 0).await.len();
    let cpu_before = cpu_seconds(process.pid());
    sqs.state.push(bodies(7201, 0, settings.worker_messages));
    wait_for_deletes(&sqs, warmup + settings.worker_messages, &process).await;
    let cpu = cpu_before
        .zip(cpu_seconds(process.pid()))
        .map(|(b, a)| a - b);
    let lines = settled_output(|| process.output(), from).await;
    Volume::of(&lines, settings.worker_messages, cpu)
}

pub async fn run(emitter_bin: &Path, worker_bin: &Path, settings: &Settings) -> LogVolume {
    let emitter = emitter(emitter_bin, settings).await;
    eprintln!(
        "  logs: emitter {} B per sign-up ({} B log, {} B EMF)",
        emitter.bytes_per_unit, emitter.log_bytes_per_unit, emitter.emf_bytes_per_unit
    );
    let worker_lambda = worker_lambda(worker_bin, settings).await;
    eprintln!(
        "  logs: worker function {} B per profile, {:?} µs CPU per profile",
        worker_lambda.bytes_per_unit, worker_lambda.cpu_us_per_unit
    );
    let worker_poll = worker_poll(worker_bin, settings).await;
    eprintln!(
        "  logs: worker poll {} B per profile, {:?} µs CPU per profile",
        worker_poll.bytes_per_unit, worker_poll.cpu_us_per_unit
    );
    let per_sign_up = emitter.bytes_per_unit + worker_lambda.bytes_per_unit;
    LogVolume {
        settings: settings.clone(),
        ingestion_usd_per_gb: INGESTION_PER_GB,
        ingestion_usd_per_million_sign_ups: (per_sign_up * 1e6 / 1e9 * INGESTION_PER_GB * 1000.0)
            .round()
            / 1000.0,
        emitter,
        worker_lambda,
        worker_poll,
    }
}
