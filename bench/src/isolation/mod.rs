//! Live sign-ups first (issue 12, deliverable 3 and acceptance 5): the sign-up → profile lag of
//! live sign-ups on an idle pipeline, and while `uc-ops backfill` back-fills many users, at its
//! default pace and with the pacing lifted.
//!
//! Everything runs the way the lab runs it (`uc_lab`): the local stack from the deployable
//! template (moto server: Cognito, EventBridge, the rule, SQS; the AppSync stand-in, which
//! verifies SigV4 and here answers after a fixed latency), the real worker binary as the
//! long-poll consumer (`uc-worker poll`), and for each live sign-up a sign-up and confirmation in
//! the local Cognito followed by the real emitter binary, invoked under a Lambda Runtime API with
//! the PostConfirmation event Cognito would send. A live user's lag runs from handing that event
//! to the emitter to the stand-in storing the profile (its `createdAtMicros`; one clock, this
//! machine's). The back-fill is the real `uc-ops` binary, run as an operator would.
//!
//! The back-filled users are created first with `AdminCreateUser` alone: they stay in
//! `FORCE_CHANGE_PASSWORD`, produce no live event, and the back-fill selects exactly them
//! (`--status FORCE_CHANGE_PASSWORD`), never the live users (`CONFIRMED`), so no live user's
//! profile can come from the back-fill. Nothing here asserts on time.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;
use serde_json::Value;
use tokio::time::Instant;
use uc_lab::local::{self};
use uc_lab::pipeline::Pipeline;

use crate::machine::loadavg;
use crate::stats::{RunStats, round};

mod drivers;
pub mod reconcile;

use drivers::*;

/// The status the back-filled users keep (admin-created, never signed in).
pub const BACKFILL_STATUS: &str = "FORCE_CHANGE_PASSWORD";

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    /// Users the back-fill publishes.
    pub backfill_users: u64,
    /// Live sign-ups per second, started on a fixed schedule (open loop).
    pub live_rate_per_second: f64,
    /// How long live sign-ups arrive in each phase.
    pub live_seconds: f64,
    /// The back-fill starts this long before the live sign-ups.
    pub lead_in_seconds: f64,
    /// The stand-in's added latency on every AppSync request.
    pub appsync_latency_ms: u64,
    /// `--rate` of the unpaced phase.
    pub unpaced_rate: String,
    /// AdminCreateUser calls in flight while the users are created.
    pub create_concurrency: usize,
    /// Live sign-ups before the first phase (not measured).
    pub warmup_sign_ups: usize,
    /// How long a phase may wait for its profiles.
    pub timeout_seconds: u64,
    /// How often the queue's depth is sampled.
    pub queue_sample_seconds: f64,
    /// The phases, in order; the first without a back-fill is the idle reference.
    pub phases: Vec<PhaseSpec>,
    /// Pages of 60 users each reconciliation pass reads ([`reconcile`]), after the phases.
    pub reconcile_pages: u64,
    /// The reconciliation passes' `--rate` (`None`: the default pace) and the pace it means.
    pub reconcile_paces: Vec<(Option<String>, f64)>,
}

/// One phase: live sign-ups, alone or beside a back-fill.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PhaseSpec {
    pub name: String,
    /// Whether `uc-ops backfill` runs during the phase.
    pub backfill: bool,
    /// Its `--rate`; `None`: not given (the CLI's default).
    pub rate_arg: Option<String>,
    /// Stop the back-fill with Ctrl-C (SIGINT) when the live sign-ups end, as an operator would
    /// (its checkpoint says how far it got), instead of letting it finish: the live window is
    /// what these phases measure, and the whole back-fill would take too long.
    pub stop_at_window_end: bool,
}

impl PhaseSpec {
    pub fn idle() -> Self {
        Self {
            name: "idle".into(),
            backfill: false,
            rate_arg: None,
            stop_at_window_end: false,
        }
    }

    pub fn backfill(name: &str, rate_arg: Option<&str>, stop_at_window_end: bool) -> Self {
        Self {
            name: name.into(),
            backfill: true,
            rate_arg: rate_arg.map(str::to_owned),
            stop_at_window_end,
        }
    }
}

/// The binaries under test.
pub struct Binaries {
    pub emitter: PathBuf,
    pub worker: PathBuf,
    pub ops: PathBuf,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Live {
    /// Sign-ups started (the schedule's count).
    pub sign_ups: usize,
    /// Sign-ups that failed before or at the emitter (a Cognito call, or the emitter's answer).
    pub failed: usize,
    /// Profiles that did not appear within the phase's timeout.
    pub missing: usize,
    /// Emitter invocation → profile stored (ms).
    pub lag: RunStats,
    /// The emitter's invocation round trip (ms): what Cognito waits for. It ends after the
    /// PutEvents that put the event in the worker's queue (moto delivers before it answers).
    pub invoke: RunStats,
    /// The lag minus the invocation (ms): time in the queue and in the worker, the part a
    /// backlog in front of live events would grow.
    pub after_publish: RunStats,
    /// How late the last sign-up started against its schedule (ms): the load generator kept up
    /// when this is small.
    pub last_start_late_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Backfill {
    /// `--rate` as given; `None`: not given (the CLI's default).
    pub rate_arg: Option<String>,
    /// The pace in force (users per second); `None`: no limit.
    pub rate_per_second: Option<f64>,
    pub exit_code: Option<i32>,
    /// From the CLI's `--json` summary.
    pub listed: u64,
    pub published: u64,
    pub failed: u64,
    pub pages: u64,
    pub complete: bool,
    /// Process start → exit: the CLI's own duration.
    pub cli_seconds: f64,
    pub published_per_second: f64,
    /// Whether the back-fill was still publishing when the live sign-ups stopped (the live
    /// window lay wholly inside it).
    pub running_at_window_end: bool,
    /// Stopped with SIGINT at the window's end; `pages` is then its checkpoint's, and
    /// `published` the profiles it produced (its checkpoint misses the page it was on).
    pub stopped_at_window_end: bool,
    /// Back-filled profiles the stand-in stored.
    pub profiles_created: u64,
    /// Process start → every back-filled profile stored (the queue empty).
    pub drained_seconds: Option<f64>,
    pub profiles_per_second: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Phase {
    pub name: String,
    pub live: Live,
    /// This phase's p99 (and p50) live lag ÷ the first idle phase's (`None` for that one).
    pub p99_over_idle: Option<f64>,
    pub p50_over_idle: Option<f64>,
    /// CPU used during the live window.
    pub cpu: Cpu,
    pub backfill: Option<Backfill>,
    /// (seconds since the phase started, visible + in-flight messages in the worker's queue).
    pub queue_depth: Vec<[f64; 2]>,
    pub max_queue_depth: u64,
    /// The worker's receives that brought messages during the phase, and those messages (from
    /// its metrics records, one per received batch): how many SQS calls each message cost.
    pub worker_batches: u64,
    pub worker_messages: u64,
    /// 1, 5 and 15 minute load averages.
    pub load_before: Value,
    pub load_after: Value,
    pub seconds: f64,
}

/// CPU seconds used during a phase's live window, by process, and on the whole machine.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Cpu {
    /// Wall-clock seconds the figures cover.
    pub seconds: f64,
    pub moto: Option<f64>,
    pub standin: Option<f64>,
    pub worker: Option<f64>,
    pub emitter: Option<f64>,
    /// This harness: the live sign-ups' Cognito calls and the emitter's Runtime API.
    pub bench: Option<f64>,
    pub backfill: Option<f64>,
    /// Every process on the machine (ours and anything else running).
    pub machine: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Creating the back-filled users in the local Cognito.
    pub users_created: u64,
    pub create_seconds: f64,
    pub phases: Vec<Phase>,
    /// Reconciliation passes over the same users, after the phases.
    pub reconciliation: Vec<reconcile::ReconcileRun>,
    /// The worker's log lines that were warnings or errors (counted, never printed).
    pub worker_warnings: usize,
}

/// A local stack in its own state directory, brought down on drop (whatever happened).
struct StackGuard {
    dir: PathBuf,
}

impl Drop for StackGuard {
    fn drop(&mut self) {
        if let Err(e) = local::down(&self.dir) {
            eprintln!("  isolation: local stack down: {e}");
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What a phase shares with the others.
struct Shared<'a> {
    pipeline: &'a Pipeline,
    worker: &'a uc_devkit::RunningBinary,
    bins: &'a Binaries,
    settings: &'a Settings,
    sqs: &'a aws_sdk_sqs::Client,
    queue_url: &'a str,
    checkpoint: &'a Path,
    default_rate: f64,
    pids: Pids,
}

async fn run_phase(cx: &Shared<'_>, spec: &PhaseSpec) -> anyhow::Result<Phase> {
    let (pipeline, settings) = (cx.pipeline, cx.settings);
    let standin = &pipeline.standin;
    // A clean slate: the previous phase's profiles go (so the same users are back-filled into
    // new profiles); the latency is set again (a reset clears it).
    standin.reset().await;
    standin.set_latency(settings.appsync_latency_ms).await;
    let load_before = loadavg();
    let worker_lines_before = cx.worker.output().len();
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = sample_queue(
        cx.sqs.clone(),
        cx.queue_url.to_owned(),
        Duration::from_secs_f64(settings.queue_sample_seconds),
        stop.clone(),
    );
    let started = Instant::now();
    let backfill = if spec.backfill {
        Some(start_backfill(
            &cx.bins.ops,
            &pipeline.env,
            cx.checkpoint,
            spec.rate_arg.as_deref(),
        )?)
    } else {
        None
    };
    tokio::time::sleep(Duration::from_secs_f64(settings.lead_in_seconds)).await;
    let backfill_pid = backfill.as_ref().and_then(|b| b.pid);
    let cpu_before = CpuSnapshot::take(&cx.pids, backfill_pid);
    let count = (settings.live_rate_per_second * settings.live_seconds).round() as usize;
    let (samples, failed, late_ms) =
        live_load(pipeline, &spec.name, settings.live_rate_per_second, count).await;
    let cpu = CpuSnapshot::take(&cx.pids, backfill_pid).since(cpu_before);
    let running_at_window_end = backfill.as_ref().is_some_and(|b| !b.task.is_finished());
    let stopped_at_window_end = spec.stop_at_window_end && running_at_window_end;
    let stopped_after = backfill.as_ref().map(|b| b.started.elapsed());
    if stopped_at_window_end && let Some(pid) = backfill_pid {
        // Ctrl-C, as an operator stops it: the checkpoint keeps its progress.
        let _ = std::process::Command::new("kill")
            .arg("-INT")
            .arg(pid.to_string())
            .status();
    }
    let timeout = Duration::from_secs(settings.timeout_seconds);
    let subs: Vec<String> = samples.iter().map(|s| s.sub.clone()).collect();
    let times = profile_times(standin, &subs, timeout).await;
    let (mut lags, mut after_publish) = (Vec::new(), Vec::new());
    let mut missing = 0;
    for (sample, time) in samples.iter().zip(&times) {
        match time {
            Some(micros) => {
                let lag = (micros - sample.invoked_at_micros) as f64 / 1000.0;
                lags.push(lag);
                after_publish.push(lag - sample.invoke_ms);
            }
            None => missing += 1,
        }
    }
    let live = Live {
        sign_ups: count,
        failed,
        missing,
        lag: stats_of(lags, failed + missing),
        after_publish: stats_of(after_publish, failed + missing),
        invoke: stats_of(samples.iter().map(|s| s.invoke_ms).collect(), failed),
        last_start_late_ms: round(late_ms),
    };

    let backfill = match backfill {
        None => None,
        Some(process) => {
            let (output, ended) = tokio::time::timeout(timeout, process.task)
                .await
                .context("the back-fill did not finish in time")?
                .context("the back-fill's task")?
                .context("the back-fill's process")?;
            let (summary, cli_seconds) = if stopped_at_window_end {
                let (pages, published) = checkpoint_progress(cx.checkpoint);
                let summary = serde_json::json!({"pages": pages, "published": published});
                (summary, stopped_after.unwrap_or_default().as_secs_f64())
            } else {
                let summary: Value = serde_json::from_slice(&output.stdout).with_context(|| {
                    format!(
                        "the back-fill printed no JSON summary (status {}): {}",
                        output.status,
                        String::from_utf8_lossy(&output.stderr)
                            .lines()
                            .last()
                            .unwrap_or_default()
                    )
                })?;
                (summary, (ended - process.started).as_secs_f64())
            };
            let published = summary["published"].as_u64().unwrap_or(0);
            // Every back-filled profile stored: all it published (a stopped run may have
            // published part of one more page than its checkpoint says), and the queue empty.
            let live_profiles = times.iter().filter(|t| t.is_some()).count() as u64;
            let deadline = Instant::now() + timeout;
            let mut backfilled;
            loop {
                backfilled = created(standin).await.saturating_sub(live_profiles);
                let empty = backfilled >= published
                    && uc_devkit::sqs::depth(cx.sqs, cx.queue_url).await == 0;
                if empty || Instant::now() >= deadline {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            let drained = (backfilled >= published).then(|| process.started.elapsed());
            // A stopped run published more than its checkpoint says (part of the page it was
            // on): once the queue is empty, the profiles it produced are the count.
            let published = if stopped_at_window_end {
                published.max(backfilled)
            } else {
                published
            };
            let rate_per_second = match process.rate_arg.as_deref() {
                None => Some(cx.default_rate),
                Some(rate) => rate.parse().ok(),
            };
            Some(Backfill {
                rate_arg: process.rate_arg,
                rate_per_second,
                exit_code: output.status.code(),
                listed: summary["listed"].as_u64().unwrap_or(published),
                published,
                failed: summary["failed"].as_u64().unwrap_or(0),
                pages: summary["pages"].as_u64().unwrap_or(0),
                complete: summary["complete"].as_bool().unwrap_or(false),
                cli_seconds: round(cli_seconds),
                published_per_second: round(published as f64 / cli_seconds),
                running_at_window_end,
                stopped_at_window_end,
                profiles_created: backfilled,
                drained_seconds: drained.map(|d| round(d.as_secs_f64())),
                profiles_per_second: drained.map(|d| round(backfilled as f64 / d.as_secs_f64())),
            })
        }
    };
    stop.store(true, Ordering::Relaxed);
    let queue_depth = sampler.await.unwrap_or_default();
    let max_queue_depth = queue_depth.iter().map(|s| s[1] as u64).max().unwrap_or(0);
    let worker_lines = cx.worker.output();
    let batches: Vec<u64> = uc_runtime::metrics::read_records(
        worker_lines.get(worker_lines_before..).unwrap_or_default(),
        "worker",
    )
    .filter_map(|record| record["Messages"].as_f64().map(|n| n as u64))
    .collect();
    let phase = Phase {
        name: spec.name.clone(),
        live,
        p99_over_idle: None,
        p50_over_idle: None,
        cpu,
        backfill,
        max_queue_depth,
        queue_depth,
        worker_batches: batches.len() as u64,
        worker_messages: batches.iter().sum(),
        load_before,
        load_after: loadavg(),
        seconds: round(started.elapsed().as_secs_f64()),
    };
    let core = |s: Option<f64>| {
        s.map_or("?".to_owned(), |s| {
            format!("{:.0} %", s / phase.cpu.seconds * 100.0)
        })
    };
    eprintln!(
        "  isolation {:<9} live lag p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} sign-ups, {} failed, {} missing); queue depth ≤ {}; CPU of a core: moto {}, machine {}{}",
        spec.name,
        phase.live.lag.p50,
        phase.live.lag.p99,
        phase.live.lag.max,
        phase.live.sign_ups,
        phase.live.failed,
        phase.live.missing,
        phase.max_queue_depth,
        core(phase.cpu.moto),
        core(phase.cpu.machine),
        phase
            .backfill
            .as_ref()
            .map(|b| format!(
                "; back-fill {} users in {:.1} s ({:.1}/s){}, all profiles after {:?} s",
                b.published,
                b.cli_seconds,
                b.published_per_second,
                if b.stopped_at_window_end {
                    ", stopped at the window's end"
                } else {
                    ""
                },
                b.drained_seconds
            ))
            .unwrap_or_default(),
    );
    Ok(phase)
}

fn ratio(a: f64, b: f64) -> Option<f64> {
    (b > 0.0).then(|| (a / b * 1000.0).round() / 1000.0)
}

pub async fn run(
    bins: &Binaries,
    settings: &Settings,
    default_rate: f64,
) -> anyhow::Result<Report> {
    let dir = std::env::temp_dir().join(format!("uc-bench-isolation-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let guard = StackGuard { dir: dir.clone() };
    let env = local::up(&guard.dir).await.context("local stack up")?;
    let sqs = aws_sdk_sqs::Client::new(&env.sdk_config().await?);
    let queue_url = env.get("QUEUE_URL")?.to_owned();

    eprintln!(
        "  isolation: creating {} users with AdminCreateUser",
        settings.backfill_users
    );
    let create_started = Instant::now();
    create_users(&env, settings.backfill_users, settings.create_concurrency).await?;
    let create_seconds = create_started.elapsed().as_secs_f64();

    let pipeline = Pipeline::start(env.clone(), &bins.emitter, &[]).await?;
    let mut worker = pipeline.start_worker(&bins.worker, &[]);
    pipeline
        .standin
        .set_latency(settings.appsync_latency_ms)
        .await;
    // Warm-up: connections, the emitter's and the worker's first calls.
    let (warm, _, _) = live_load(
        &pipeline,
        "warmup",
        settings.live_rate_per_second,
        settings.warmup_sign_ups,
    )
    .await;
    let warm_subs: Vec<String> = warm.into_iter().map(|s| s.sub).collect();
    profile_times(
        &pipeline.standin,
        &warm_subs,
        Duration::from_secs(settings.timeout_seconds),
    )
    .await;

    let pid_of = |key: &str| env.vars.get(key).and_then(|p| p.parse().ok());
    let checkpoint = dir.join("backfill.checkpoint.json");
    let cx = Shared {
        pipeline: &pipeline,
        worker: &worker,
        bins,
        settings,
        sqs: &sqs,
        queue_url: &queue_url,
        checkpoint: &checkpoint,
        default_rate,
        pids: Pids {
            moto: pid_of("UC_LOCAL_MOTO_PID"),
            standin: pid_of("UC_LOCAL_STANDIN_PID"),
            worker: worker.pid(),
            emitter: pipeline.emitter_pid(),
        },
    };
    let mut phases = Vec::new();
    for spec in &settings.phases {
        phases.push(run_phase(&cx, spec).await?);
    }
    let mut reconciliation = Vec::new();
    for (rate_arg, pace) in &settings.reconcile_paces {
        eprintln!(
            "  isolation: a reconciliation pass of {} pages at {pace}/s",
            settings.reconcile_pages
        );
        let pass = reconcile::run_pass(
            &bins.ops,
            &env,
            BACKFILL_STATUS,
            *pace,
            rate_arg.as_deref(),
            settings.reconcile_pages,
        )
        .await?;
        eprintln!(
            "    published {} in {:.1} s: {:.1}/s ({:.1} % of the pace)",
            pass.published,
            pass.seconds,
            pass.published_per_second,
            pass.fraction_of_pace * 100.0
        );
        reconciliation.push(pass);
    }
    worker.signal("TERM");
    worker.wait(Duration::from_secs(30));
    let worker_warnings = worker
        .output()
        .iter()
        .filter(|l| l.contains("\"level\":\"WARN\"") || l.contains("\"level\":\"ERROR\""))
        .count();
    drop(worker);
    drop(pipeline);
    drop(guard);

    // The first phase without a back-fill is the reference; every other phase is compared
    // with it (a later idle phase too: how far the machine drifted).
    if let Some(reference) = settings.phases.iter().position(|p| !p.backfill) {
        let (idle_p99, idle_p50) = (
            phases[reference].live.lag.p99,
            phases[reference].live.lag.p50,
        );
        for (i, phase) in phases.iter_mut().enumerate() {
            if i != reference {
                phase.p99_over_idle = ratio(phase.live.lag.p99, idle_p99);
                phase.p50_over_idle = ratio(phase.live.lag.p50, idle_p50);
            }
        }
    }
    Ok(Report {
        users_created: settings.backfill_users,
        create_seconds: round(create_seconds),
        phases,
        reconciliation,
        worker_warnings,
    })
}
