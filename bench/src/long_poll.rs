//! Worker throughput in long-poll mode (`uc-worker poll`, the container consumer): the real
//! binary receiving from a fake SQS queue ([`crate::fake_sqs`]) and writing to the same
//! fixed-latency GraphQL endpoint as the Lambda-mode runs. Each run puts its messages on the
//! queue at once and ends when the last is deleted; CPU is counted over the runs only.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde::Serialize;
use uc_devkit::RunningBinary;

use crate::events;
use crate::fake_sqs::FakeSqs;
use crate::fixed_endpoint::FixedLatencyEndpoint;
use crate::machine::{cpu_seconds, machine_busy_seconds, peak_rss_mib};
use crate::throughput::{Level, Run, Settings, messages_for};

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LongPoll {
    /// The fake queue's answer time for every call (an assumption: SQS in-region is a few ms).
    pub sqs_round_trip_ms: u64,
    pub levels: Vec<LongPollLevel>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LongPollLevel {
    #[serde(flatten)]
    pub level: Level,
    /// ReceiveMessage calls over the measured runs, and how many came back empty.
    pub receives: u64,
    pub empty_receives: u64,
    pub delete_batches: u64,
    /// Messages handed back to the queue (a retryable failure): 0 in a clean run.
    pub returned: u64,
    /// The whole machine's busy CPU over the measured runs, as a fraction of all its cores
    /// (the worker, the fake queue, the endpoint and the harness together).
    pub machine_busy_fraction: Option<f64>,
}

/// How long a run may take before the harness gives up on it.
const RUN_LIMIT: Duration = Duration::from_secs(120);

pub async fn run(
    worker: &Path,
    settings: &Settings,
    concurrency: &[usize],
    sqs_round_trip: Duration,
) -> LongPoll {
    let endpoint = FixedLatencyEndpoint::start(Duration::from_millis(settings.latency_ms)).await;
    let mut levels = Vec::new();
    for (li, &c) in concurrency.iter().enumerate() {
        let sqs = FakeSqs::start(sqs_round_trip).await;
        let series = 5000 + li as u32 * 100;
        let warmup = (c as u64 * 2).clamp(20, 1000);
        sqs.state.push(bodies(series, 0, warmup));
        let connections_before = endpoint.counters.connections.load(Ordering::Relaxed);
        let process = RunningBinary::start(
            worker.to_str().unwrap(),
            &["poll"],
            &[
                ("AWS_ENDPOINT_URL_SQS", sqs.endpoint_url()),
                ("QUEUE_URL", sqs.queue_url()),
                ("APPSYNC_GRAPHQL_URL", endpoint.url()),
                ("USER_POOL_ID", events::USER_POOL_ID.into()),
                ("CONCURRENCY", c.to_string()),
            ],
        );
        wait_for_deletes(&sqs, warmup, &process).await;
        endpoint.reset_peak();
        let counts_before = counts(&sqs);
        let messages = messages_for(settings, c);
        let mut runs = Vec::new();
        let mut cpu = Some(0.0);
        let mut machine = Some((0.0, 0.0));
        for run in 0..settings.runs {
            let target = sqs.state.settled() + messages;
            let returned_before = sqs.state.returned.load(Ordering::Relaxed);
            let cpu_before = cpu_seconds(process.pid());
            let machine_before = machine_busy_seconds();
            let started = Instant::now();
            sqs.state.push(bodies(series + 1 + run as u32, 0, messages));
            wait_for_deletes(&sqs, target, &process).await;
            let seconds = started.elapsed().as_secs_f64();
            let cpu_after = cpu_seconds(process.pid());
            machine = machine
                .zip(machine_before.zip(machine_busy_seconds()))
                .map(|((busy, wall), (b, a))| (busy + a - b, wall + seconds));
            cpu = cpu
                .zip(cpu_before.zip(cpu_after))
                .map(|(sum, (b, a))| sum + a - b);
            runs.push(Run {
                messages,
                batches: messages.div_ceil(10),
                seconds: (seconds * 1e4).round() / 1e4,
                profiles_per_second: (messages as f64 / seconds * 10.0).round() / 10.0,
                failures: sqs.state.returned.load(Ordering::Relaxed) - returned_before,
            });
        }
        let counts_after = counts(&sqs);
        let returned = counts_after[3] - counts_before[3];
        let level = Level::of_runs(
            c,
            settings.latency_ms,
            runs,
            cpu,
            peak_rss_mib(process.pid()),
            &endpoint,
            connections_before,
        );
        eprintln!("  worker poll C={c:>3}: {}", level.progress());
        levels.push(LongPollLevel {
            level,
            receives: counts_after[0] - counts_before[0],
            empty_receives: counts_after[1] - counts_before[1],
            delete_batches: counts_after[2] - counts_before[2],
            returned,
            machine_busy_fraction: machine.map(|(busy, wall)| {
                let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
                (busy / (wall * cores as f64) * 1000.0).round() / 1000.0
            }),
        });
        drop(process);
    }
    LongPoll {
        sqs_round_trip_ms: sqs_round_trip.as_millis() as u64,
        levels,
    }
}

/// The queue's counters: receives, empty receives, delete batches, messages handed back.
fn counts(sqs: &FakeSqs) -> [u64; 4] {
    let s = &sqs.state;
    [
        s.receives.load(Ordering::Relaxed),
        s.empty_receives.load(Ordering::Relaxed),
        s.delete_batches.load(Ordering::Relaxed),
        s.returned.load(Ordering::Relaxed),
    ]
}

pub(crate) fn bodies(series: u32, first: u64, count: u64) -> Vec<(String, String)> {
    (first..first + count)
        .map(|n| (format!("m-{series}-{n}"), events::envelope_body(series, n)))
        .collect()
}

/// Waits until the queue has seen `target` messages settled (deleted or handed back) in all.
pub(crate) async fn wait_for_deletes(sqs: &FakeSqs, target: u64, process: &RunningBinary) {
    let started = Instant::now();
    while sqs.state.settled() < target {
        assert!(
            started.elapsed() < RUN_LIMIT,
            "the worker settled {} of {target} messages within {RUN_LIMIT:?}; its output:\n{}",
            sqs.state.settled(),
            process.output().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}
