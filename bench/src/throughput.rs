//! Worker throughput: the real `uc-worker` binary under the Runtime API harness, fed large SQS
//! batches, against a fixed-latency GraphQL endpoint, at several concurrencies. Little's law
//! bounds it at C ÷ L profiles per second.

use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;
use uc_devkit::LambdaHarness;

use crate::events;
use crate::fixed_endpoint::FixedLatencyEndpoint;
use crate::machine::{cpu_seconds, peak_rss_mib};
use crate::stats::Spread;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    pub latency_ms: u64,
    pub concurrency: Vec<usize>,
    /// The long-poll mode's concurrencies ([`crate::long_poll`]).
    pub long_poll_concurrency: Vec<usize>,
    /// The fake SQS queue's answer time (an assumption: in-region SQS calls take a few ms).
    pub sqs_round_trip_ms: u64,
    pub runs: usize,
    /// Seconds of work per run at the Little's-law rate (message counts follow from it).
    pub target_seconds: f64,
    pub min_messages: u64,
    pub max_messages: u64,
    /// Messages per invocation (Lambda's payload limit is 6 MB; a record is ~1 KB).
    pub max_batch: u64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Run {
    pub messages: u64,
    pub batches: u64,
    pub seconds: f64,
    pub profiles_per_second: f64,
    pub failures: u64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Level {
    pub concurrency: usize,
    /// C ÷ L.
    pub littles_law_limit: f64,
    pub runs: Vec<Run>,
    pub profiles_per_second: Spread,
    /// Median throughput ÷ the limit.
    pub fraction_of_limit: f64,
    pub peak_rss_mib: Option<f64>,
    /// Worker CPU (user + system) per profile, over the measured runs.
    pub cpu_us_per_profile: Option<f64>,
    /// Most requests the endpoint saw at once.
    pub max_in_flight: usize,
    /// The latency the endpoint actually served (mean; the timer rounds up to whole ms).
    pub endpoint_mean_latency_ms: f64,
    /// C ÷ that served latency: the limit with the timer's overshoot taken out.
    pub limit_at_served_latency: f64,
    pub connections_opened: u64,
}

impl Level {
    /// The progress line's figures: rate against C ÷ L, peak RSS, CPU per profile.
    pub fn progress(&self) -> String {
        format!(
            "{:.0}/s of {:.0}/s ({:.1} %), peak RSS {:?} MiB, {:?} µs CPU/profile",
            self.profiles_per_second.median,
            self.littles_law_limit,
            self.fraction_of_limit * 100.0,
            self.peak_rss_mib,
            self.cpu_us_per_profile
        )
    }

    /// A level's figures from its runs: `cpu_seconds` is the worker's CPU over them, and the
    /// endpoint's counters give the latency it served and the connections opened since
    /// `connections_before`. Shared by the Lambda-mode and long-poll runs.
    pub fn of_runs(
        concurrency: usize,
        latency_ms: u64,
        runs: Vec<Run>,
        cpu_seconds: Option<f64>,
        peak_rss_mib: Option<f64>,
        endpoint: &FixedLatencyEndpoint,
        connections_before: u64,
    ) -> Self {
        use std::sync::atomic::Ordering::Relaxed;
        let total_messages: u64 = runs.iter().map(|r| r.messages).sum();
        let limit = concurrency as f64 * 1000.0 / latency_ms as f64;
        let served = endpoint.counters.mean_held_ms();
        let throughput = Spread::of(runs.iter().map(|r| r.profiles_per_second));
        Self {
            concurrency,
            littles_law_limit: limit,
            fraction_of_limit: (throughput.median / limit * 1000.0).round() / 1000.0,
            profiles_per_second: throughput,
            peak_rss_mib,
            cpu_us_per_profile: cpu_seconds
                .map(|s| (s / total_messages as f64 * 1e6 * 10.0).round() / 10.0),
            endpoint_mean_latency_ms: (served * 1000.0).round() / 1000.0,
            limit_at_served_latency: (concurrency as f64 * 1000.0 / served * 10.0).round() / 10.0,
            max_in_flight: endpoint.counters.max_in_flight.load(Relaxed),
            connections_opened: endpoint.counters.connections.load(Relaxed) - connections_before,
            runs,
        }
    }
}

pub fn messages_for(settings: &Settings, concurrency: usize) -> u64 {
    let rate = concurrency as f64 * 1000.0 / settings.latency_ms as f64;
    ((rate * settings.target_seconds) as u64).clamp(settings.min_messages, settings.max_messages)
}

pub async fn run(worker: &Path, settings: &Settings) -> Vec<Level> {
    let endpoint = FixedLatencyEndpoint::start(Duration::from_millis(settings.latency_ms)).await;
    let mut levels = Vec::new();
    for (li, &concurrency) in settings.concurrency.iter().enumerate() {
        let connections_before = endpoint
            .counters
            .connections
            .load(std::sync::atomic::Ordering::Relaxed);
        let harness = LambdaHarness::start(
            worker.to_str().unwrap(),
            &[
                ("APPSYNC_GRAPHQL_URL", endpoint.url()),
                ("USER_POOL_ID", events::USER_POOL_ID.into()),
                ("CONCURRENCY", concurrency.to_string()),
                ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256".into()),
            ],
        )
        .await;
        let timeout = Duration::from_secs(120);
        let series = 3000 + li as u32 * 100;
        // Warm-up: connections, allocator, page cache.
        let warmup = (concurrency as u64 * 2).clamp(20, 400);
        let invocation = harness
            .invoke(&events::sqs_batch(series, 0, warmup), timeout)
            .await;
        assert!(
            invocation.result.is_ok(),
            "the worker failed its warm-up batch: {:?}",
            invocation.result
        );
        endpoint.reset_peak();
        let messages = messages_for(settings, concurrency);
        let cpu_before = cpu_seconds(harness.pid());
        let mut runs = Vec::new();
        for run in 0..settings.runs {
            let batches: Vec<serde_json::Value> = (0..messages)
                .step_by(settings.max_batch as usize)
                .map(|first| {
                    let count = settings.max_batch.min(messages - first);
                    events::sqs_batch(series + 1 + run as u32, first, count)
                })
                .collect();
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
            runs.push(Run {
                messages,
                batches: batches.len() as u64,
                seconds: (seconds * 1e4).round() / 1e4,
                profiles_per_second: (messages as f64 / seconds * 10.0).round() / 10.0,
                failures,
            });
        }
        let cpu_after = cpu_seconds(harness.pid());
        let cpu = cpu_before.zip(cpu_after).map(|(b, a)| a - b);
        let level = Level::of_runs(
            concurrency,
            settings.latency_ms,
            runs,
            cpu,
            peak_rss_mib(harness.pid()),
            &endpoint,
            connections_before,
        );
        eprintln!("  worker C={concurrency:>3}: {}", level.progress());
        levels.push(level);
        drop(harness);
    }
    levels
}
