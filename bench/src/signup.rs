//! What Cognito waits for: our emitter, the Amplify docs' synchronous handler (the baseline) and
//! a bare PutEvents round trip (the floor), warm, under a range of AppSync latencies and errors.
//! Also cold starts: process spawn to first response, through the same Runtime API harness.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Value, json};
use uc_devkit::{AppSyncStandIn, LambdaHarness, Moto};
use uc_emitter::EventPublisher;
use uc_emitter::adapters::EventBridgePublisher;
use uc_emitter::config::EmitterConfig;
use uc_runtime::EnvReader;

use crate::events;
use crate::stats::{RunStats, Spread, Summary};

pub const BUS: &str = "uc-bench-bus";
/// Both functions' timeout: the emitter's (infra template) and Amplify's defineFunction default.
pub const FUNCTION_TIMEOUT: Duration = Duration::from_secs(3);

/// One AppSync setting of the stand-in.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    pub name: String,
    pub appsync_latency_ms: u64,
    pub error_fraction: f64,
    /// Baseline invocations per run, and how many warm baseline instances share them
    /// (each instance serves one invocation at a time, as in Lambda).
    pub baseline_invocations: usize,
    pub baseline_instances: usize,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    pub runs: usize,
    /// Emitter invocations per run, interleaved one-for-one with floor round trips.
    pub emitter_invocations: usize,
    pub warmup_invocations: usize,
    pub cold_starts: usize,
    pub conditions: Vec<Condition>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DesignResult {
    pub runs: Vec<RunStats>,
    pub summary: Summary,
}

impl DesignResult {
    fn new(runs: Vec<RunStats>) -> Self {
        let summary = Summary::of(&runs);
        Self { runs, summary }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConditionResult {
    #[serde(flatten)]
    pub condition: Condition,
    pub emitter: DesignResult,
    pub floor: DesignResult,
    pub baseline: Option<DesignResult>,
    /// Emitter p99 ÷ floor p99, per run (same run, same endpoint).
    pub emitter_over_floor_p99: Spread,
    /// Where the emitter's answer time went, by its own EMF records.
    pub inside_emitter: InsideEmitter,
    /// What the stand-in counted for this condition, per run (requests, faults, profiles).
    pub standin_stats: Vec<Value>,
}

/// The emitter's own timings of the measured invocations (its EMF records), p50 per run:
/// `handler` from the event's arrival in the handler to its answer, `publish` the PutEvents call
/// within it. What the harness measured beyond `handler` is the Runtime API hop.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InsideEmitter {
    pub handler_p50: Spread,
    pub publish_p50: Spread,
    /// The harness's p50 less the handler's: the Runtime API's two HTTP exchanges and the
    /// runtime around the handler.
    pub hop_p50: Spread,
}

/// p50 of the emitter's `metric` timings in `lines` (its output during one run).
fn own_p50(lines: &[String], metric: &str) -> f64 {
    let mut samples = uc_runtime::metrics::read_timings(lines, "emitter", metric);
    samples.sort_by(f64::total_cmp);
    crate::stats::percentile(&samples, 50.0)
}

/// The emitter's output once its reader holds an EMF record for each of `invocations` since
/// `from`: a split computed from a subset would be silently skewed.
async fn own_records(emitter: &LambdaHarness, from: usize, invocations: usize) -> Vec<String> {
    let started = Instant::now();
    loop {
        let lines = emitter.output();
        let records = lines.get(from..).map_or(0, |own| {
            uc_runtime::metrics::read_timings(own, "emitter", "HandlerLatency").len()
        });
        if records >= invocations {
            return lines;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the emitter wrote {records} EMF records for {invocations} invocations"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub struct Functions {
    pub emitter: PathBuf,
    pub baseline: Option<PathBuf>,
}

pub(crate) fn emitter_env(moto: &Moto) -> Vec<(&'static str, String)> {
    vec![
        ("EVENT_BUS_NAME", BUS.into()),
        ("AWS_ENDPOINT_URL", moto.endpoint()),
    ]
}

fn baseline_env(standin: &AppSyncStandIn) -> Vec<(&'static str, String)> {
    vec![
        ("AMPLIFY_DATA_GRAPHQL_ENDPOINT", standin.url.clone()),
        // CDK's NodejsFunction sets this when source maps are on (Amplify's default).
        ("NODE_OPTIONS", "--enable-source-maps".into()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512".into()),
        ("AWS_EXECUTION_ENV", "AWS_Lambda_nodejs20.x".into()),
    ]
}

/// The stand-in's control API beyond what uc-devkit wraps.
async fn control(standin: &AppSyncStandIn, path: &str, body: Value) {
    let base = standin.url.trim_end_matches("/graphql");
    let response = reqwest::Client::new()
        .post(format!("{base}/_standin/{path}"))
        .json(&body)
        .send()
        .await
        .expect("stand-in control API");
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
}

async fn set_condition(standin: &AppSyncStandIn, condition: &Condition) {
    standin.reset().await;
    control(
        standin,
        "latency",
        json!({"ms": condition.appsync_latency_ms}),
    )
    .await;
    if condition.error_fraction > 0.0 {
        standin
            .set_faults(json!([{"status": 503, "fraction": condition.error_fraction}]))
            .await;
    }
}

pub struct Stack {
    pub moto: Moto,
    pub standin: AppSyncStandIn,
}

impl Stack {
    pub async fn start() -> Self {
        let moto = Moto::start();
        let sdk = moto.sdk_config().await;
        aws_sdk_eventbridge::Client::new(&sdk)
            .create_event_bus()
            .name(BUS)
            .send()
            .await
            .expect("create the event bus on moto");
        let standin = AppSyncStandIn::start(&[]);
        Self { moto, standin }
    }
}

/// The floor: PutEvents through the emitter's own adapter (same SDK client, same settings), in
/// this process, without Lambda or the handler around it.
async fn floor_publisher(moto: &Moto) -> EventBridgePublisher {
    let config = EmitterConfig::from_reader(&EnvReader::new(|name| {
        (name == "EVENT_BUS_NAME").then(|| BUS.to_owned())
    }))
    .expect("emitter config");
    EventBridgePublisher::new(&moto.sdk_config().await, &config)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Invokes `harness` with fresh users `next..`, returning (latency ms, failed).
async fn invoke(harness: &LambdaHarness, series: u32, n: u64) -> (f64, bool) {
    let invocation = harness
        .invoke(&events::cognito_event(series, n), FUNCTION_TIMEOUT)
        .await;
    (ms(invocation.elapsed), invocation.result.is_err())
}

/// `count` baseline invocations spread over the instances, each serving one at a time.
async fn baseline_run(instances: &[LambdaHarness], count: usize, series: u32) -> RunStats {
    let per = count.div_ceil(instances.len());
    let results =
        futures::future::join_all(instances.iter().enumerate().map(|(k, h)| async move {
            let mut out = Vec::with_capacity(per);
            for i in 0..per {
                out.push(invoke(h, series, (k * per + i) as u64).await);
            }
            out
        }))
        .await;
    let all: Vec<(f64, bool)> = results.into_iter().flatten().take(count).collect();
    let errors = all.iter().filter(|(_, failed)| *failed).count();
    RunStats::new(all.into_iter().map(|(l, _)| l).collect(), errors)
}

pub async fn run(
    stack: &Stack,
    functions: &Functions,
    settings: &Settings,
) -> (Vec<ConditionResult>, Value) {
    let emitter = LambdaHarness::start(
        functions.emitter.to_str().unwrap(),
        &emitter_env(&stack.moto),
    )
    .await;
    let max_instances = settings
        .conditions
        .iter()
        .map(|c| c.baseline_instances)
        .max()
        .unwrap_or(1);
    let mut baselines = Vec::new();
    if let Some(baseline) = &functions.baseline {
        for _ in 0..max_instances {
            baselines.push(
                LambdaHarness::start(baseline.to_str().unwrap(), &baseline_env(&stack.standin))
                    .await,
            );
        }
    }
    let floor = floor_publisher(&stack.moto).await;

    // Warm everything up (JIT, connection pools, page cache), at no injected latency.
    stack.standin.reset().await;
    for i in 0..settings.warmup_invocations as u64 {
        let (_, failed) = invoke(&emitter, 900, i).await;
        assert!(
            !failed,
            "the emitter failed during warm-up: {:?}",
            emitter.output().last()
        );
        floor
            .publish(
                &serde_json::to_string(&events::user_confirmed(900, i)).unwrap(),
                None,
            )
            .await
            .expect("PutEvents on moto");
        for (k, b) in baselines.iter().enumerate() {
            let (_, failed) = invoke(b, 901 + k as u32, i).await;
            assert!(
                !failed,
                "the baseline failed during warm-up: {:?}",
                b.output()
            );
        }
    }

    // Run-major: every run visits every condition, so drift over time (other work on the
    // machine, moto warming up) spreads over all conditions instead of posing as an effect of
    // one of them.
    let n = settings.conditions.len();
    let mut emitter_runs: Vec<Vec<RunStats>> = vec![Vec::new(); n];
    let mut floor_runs: Vec<Vec<RunStats>> = vec![Vec::new(); n];
    let mut baseline_runs: Vec<Vec<RunStats>> = vec![Vec::new(); n];
    let mut standin_stats: Vec<Vec<Value>> = vec![Vec::new(); n];
    let mut inside: Vec<Vec<(f64, f64, f64)>> = vec![Vec::new(); n];
    for run in 0..settings.runs {
        for (c, condition) in settings.conditions.iter().enumerate() {
            set_condition(&stack.standin, condition).await;
            let series = 1000 + (c * 100 + run * 10) as u32;
            let used = &baselines[..condition.baseline_instances.min(baselines.len())];
            let baseline_first = run % 2 == 1;
            if baseline_first && !used.is_empty() {
                baseline_runs[c]
                    .push(baseline_run(used, condition.baseline_invocations, series + 2).await);
            }
            let mut e = Vec::new();
            let mut f = Vec::new();
            let (mut e_err, mut f_err) = (0, 0);
            let lines_before = emitter.output().len();
            for i in 0..settings.emitter_invocations as u64 {
                let (latency, failed) = invoke(&emitter, series, i).await;
                e.push(latency);
                e_err += failed as usize;
                let detail = serde_json::to_string(&events::user_confirmed(series + 1, i)).unwrap();
                let started = Instant::now();
                let published = floor.publish(&detail, None).await;
                f.push(ms(started.elapsed()));
                f_err += published.is_err() as usize;
            }
            let emitter_run = RunStats::new(e, e_err);
            // The emitter writes its records before it answers; its reader thread may lag.
            let lines = own_records(&emitter, lines_before, settings.emitter_invocations).await;
            let lines = lines.get(lines_before..).unwrap_or_default();
            let handler = own_p50(lines, "HandlerLatency");
            inside[c].push((
                handler,
                own_p50(lines, "PublishLatency"),
                emitter_run.p50 - handler,
            ));
            emitter_runs[c].push(emitter_run);
            floor_runs[c].push(RunStats::new(f, f_err));
            if !baseline_first && !used.is_empty() {
                baseline_runs[c]
                    .push(baseline_run(used, condition.baseline_invocations, series + 2).await);
            }
            standin_stats[c].push(trim_stats(stack.standin.stats().await));
            eprintln!(
                "  sign-up {:>18} run {}: emitter p50 {:.2} p99 {:.2} | floor p50 {:.2} p99 {:.2}{}",
                condition.name,
                run + 1,
                emitter_runs[c][run].p50,
                emitter_runs[c][run].p99,
                floor_runs[c][run].p50,
                floor_runs[c][run].p99,
                baseline_runs[c]
                    .last()
                    .map(|b: &RunStats| format!(
                        " | baseline p50 {:.1} p99 {:.1} errors {}",
                        b.p50, b.p99, b.errors
                    ))
                    .unwrap_or_default()
            );
        }
    }
    let mut results = Vec::new();
    for (c, condition) in settings.conditions.iter().enumerate() {
        let emitter_runs = std::mem::take(&mut emitter_runs[c]);
        let floor_runs = std::mem::take(&mut floor_runs[c]);
        let baseline_runs = std::mem::take(&mut baseline_runs[c]);
        let ratio = Spread::of(
            emitter_runs
                .iter()
                .zip(&floor_runs)
                .map(|(e, f)| e.p99 / f.p99),
        );
        results.push(ConditionResult {
            condition: condition.clone(),
            emitter: DesignResult::new(emitter_runs),
            floor: DesignResult::new(floor_runs),
            baseline: (!baseline_runs.is_empty()).then(|| DesignResult::new(baseline_runs)),
            emitter_over_floor_p99: ratio,
            inside_emitter: InsideEmitter {
                handler_p50: Spread::of(inside[c].iter().map(|t| t.0)),
                publish_p50: Spread::of(inside[c].iter().map(|t| t.1)),
                hop_p50: Spread::of(inside[c].iter().map(|t| t.2)),
            },
            standin_stats: std::mem::take(&mut standin_stats[c]),
        });
    }
    let peak = json!({
        "emitterPeakRssMiB": crate::machine::peak_rss_mib(emitter.pid()),
        "baselinePeakRssMiB": baselines.first().and_then(|b| crate::machine::peak_rss_mib(b.pid())),
    });
    (results, peak)
}

/// The stand-in's counters without the per-id table.
fn trim_stats(mut stats: Value) -> Value {
    if let Some(object) = stats.as_object_mut() {
        object.remove("perId");
        object.remove("lastAuthFailure");
    }
    stats
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ColdStarts {
    /// Process spawn → first response, ms, in the order taken.
    pub emitter: Vec<f64>,
    pub baseline: Option<Vec<f64>>,
    pub emitter_summary: ColdSummary,
    pub baseline_summary: Option<ColdSummary>,
    pub appsync_latency_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ColdSummary {
    pub n: usize,
    pub p50: f64,
    pub min: f64,
    pub max: f64,
    pub mean: f64,
}

impl ColdSummary {
    fn of(samples: &[f64]) -> Self {
        let stats = RunStats::new(samples.to_vec(), 0);
        let spread = Spread::of(samples.iter().copied());
        Self {
            n: samples.len(),
            p50: spread.median,
            min: spread.min,
            max: spread.max,
            mean: stats.mean,
        }
    }
}

async fn cold_start(binary: &Path, env: &[(&'static str, String)], n: u64) -> (f64, bool) {
    let started = Instant::now();
    let harness = LambdaHarness::start(binary.to_str().unwrap(), env).await;
    let invocation = harness
        .invoke(&events::cognito_event(2000, n), FUNCTION_TIMEOUT)
        .await;
    let elapsed = ms(started.elapsed());
    (elapsed, invocation.result.is_ok())
}

/// Cold starts, alternating designs, after one discarded start each (page cache).
pub async fn cold_starts(stack: &Stack, functions: &Functions, count: usize) -> ColdStarts {
    stack.standin.reset().await;
    let emitter_env = emitter_env(&stack.moto);
    let baseline_env = baseline_env(&stack.standin);
    let mut emitter = Vec::new();
    let mut baseline = Vec::new();
    for i in 0..=count as u64 {
        let order: [bool; 2] = if i % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        };
        for is_emitter in order {
            if is_emitter {
                let (t, ok) = cold_start(&functions.emitter, &emitter_env, i).await;
                assert!(ok, "the emitter's cold invocation failed");
                if i > 0 {
                    emitter.push(t);
                }
            } else if let Some(path) = &functions.baseline {
                let (t, ok) = cold_start(path, &baseline_env, 100 + i).await;
                assert!(ok, "the baseline's cold invocation failed");
                if i > 0 {
                    baseline.push(t);
                }
            }
        }
    }
    let have_baseline = functions.baseline.is_some();
    ColdStarts {
        emitter_summary: ColdSummary::of(&emitter),
        baseline_summary: have_baseline.then(|| ColdSummary::of(&baseline)),
        emitter,
        baseline: have_baseline.then_some(baseline),
        appsync_latency_ms: 0,
    }
}
