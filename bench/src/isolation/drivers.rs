//! What a phase drives and samples: the live sign-ups, the back-fill process, the users it
//! back-fills, the queue's depth, the profiles' creation times, and the processes' CPU.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use aws_sdk_cognitoidentityprovider::types::{AttributeType, MessageActionType};
use futures::StreamExt;
use serde_json::Value;
use tokio::time::Instant;
use uc_devkit::StandInControl;
use uc_lab::local::StackEnv;
use uc_lab::pipeline::{CONFIRM_SIGN_UP, Pipeline};

use crate::machine::{cpu_seconds, machine_busy_seconds};
use crate::stats::{RunStats, round};

use super::*;

/// The processes whose CPU time a phase reports.
pub(super) struct Pids {
    pub(super) moto: Option<u32>,
    pub(super) standin: Option<u32>,
    pub(super) worker: u32,
    pub(super) emitter: u32,
}

#[derive(Clone, Copy)]
pub(super) struct CpuSnapshot {
    pub(super) at: Instant,
    pub(super) moto: Option<f64>,
    pub(super) standin: Option<f64>,
    pub(super) worker: Option<f64>,
    pub(super) emitter: Option<f64>,
    pub(super) bench: Option<f64>,
    pub(super) backfill: Option<f64>,
    pub(super) machine: Option<f64>,
}

impl CpuSnapshot {
    pub(super) fn take(pids: &Pids, backfill: Option<u32>) -> Self {
        Self {
            at: Instant::now(),
            moto: pids.moto.and_then(cpu_seconds),
            standin: pids.standin.and_then(cpu_seconds),
            worker: cpu_seconds(pids.worker),
            emitter: cpu_seconds(pids.emitter),
            bench: cpu_seconds(std::process::id()),
            backfill: backfill.and_then(cpu_seconds),
            machine: machine_busy_seconds(),
        }
    }

    pub(super) fn since(self, before: Self) -> Cpu {
        let d = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| round(a - b));
        Cpu {
            seconds: round((self.at - before.at).as_secs_f64()),
            moto: d(self.moto, before.moto),
            standin: d(self.standin, before.standin),
            worker: d(self.worker, before.worker),
            emitter: d(self.emitter, before.emitter),
            bench: d(self.bench, before.bench),
            backfill: d(self.backfill, before.backfill),
            machine: d(self.machine, before.machine),
        }
    }
}

/// One live sign-up, measured.
pub(super) struct Sample {
    pub(super) sub: String,
    pub(super) invoked_at_micros: i64,
    pub(super) invoke_ms: f64,
}

/// `count` live sign-ups at `rate` per second on a fixed schedule, each a sign-up and
/// confirmation in the local Cognito and then the emitter's invocation with Cognito's event.
pub(super) async fn live_load(
    pipeline: &Pipeline,
    tag: &str,
    rate: f64,
    count: usize,
) -> (Vec<Sample>, usize, f64) {
    let start = Instant::now();
    let late = std::sync::Mutex::new(0.0f64);
    let results: Vec<anyhow::Result<Sample>> = futures::stream::iter(0..count)
        .map(|i| {
            let late = &late;
            async move {
                let due = start + Duration::from_secs_f64(i as f64 / rate);
                tokio::time::sleep_until(due).await;
                if i + 1 == count {
                    *late.lock().unwrap() = due.elapsed().as_secs_f64() * 1000.0;
                }
                let user = pipeline
                    .sign_up_and_confirm(&format!("live.{tag}.{i}@example.com"))
                    .await?;
                let event = pipeline.trigger_event(&user, CONFIRM_SIGN_UP).await?;
                let invoked_at_micros = chrono::Utc::now().timestamp_micros();
                let invocation = pipeline.invoke_emitter(&event).await;
                anyhow::ensure!(
                    invocation.result.as_ref() == Ok(&event),
                    "the emitter did not return the event"
                );
                Ok(Sample {
                    sub: user.sub,
                    invoked_at_micros,
                    invoke_ms: invocation.elapsed.as_secs_f64() * 1000.0,
                })
            }
        })
        .buffer_unordered(count.max(1))
        .collect()
        .await;
    let failed = results.iter().filter(|r| r.is_err()).count();
    if let Some(Err(e)) = results.iter().find(|r| r.is_err()) {
        eprintln!("  isolation: {failed} live sign-up(s) failed, e.g.: {e:#}");
    }
    let late_ms = *late.lock().unwrap();
    (results.into_iter().flatten().collect(), failed, late_ms)
}

/// When each of `subs` got its profile (µs since the epoch), waiting up to `timeout` for all.
pub(super) async fn profile_times(
    standin: &StandInControl,
    subs: &[String],
    timeout: Duration,
) -> Vec<Option<i64>> {
    let deadline = Instant::now() + timeout;
    loop {
        let stats = standin.stats_for(subs).await;
        let times: Vec<Option<i64>> = subs
            .iter()
            .map(|s| stats["perId"][s]["createdAtMicros"].as_i64())
            .collect();
        if times.iter().all(Option::is_some) || Instant::now() >= deadline {
            return times;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Profiles the stand-in stored since its last reset.
pub(super) async fn created(standin: &StandInControl) -> u64 {
    standin.stats_for(&[]).await["created"]
        .as_u64()
        .unwrap_or(0)
}

/// The back-filled users: `AdminCreateUser` only (message suppressed), `concurrency` at a time.
pub(super) async fn create_users(
    env: &StackEnv,
    count: u64,
    concurrency: usize,
) -> anyhow::Result<()> {
    let cognito = aws_sdk_cognitoidentityprovider::Client::new(&env.sdk_config().await?);
    let pool = env.get("USER_POOL_ID")?.to_owned();
    let mut results = futures::stream::iter(0..count)
        .map(|i| {
            let (cognito, pool) = (&cognito, &pool);
            async move {
                let email = format!("imported.{i}@example.com");
                cognito
                    .admin_create_user()
                    .user_pool_id(pool)
                    .username(format!("imported-{i:06}"))
                    .user_attributes(
                        AttributeType::builder()
                            .name("email")
                            .value(&email)
                            .build()?,
                    )
                    .user_attributes(
                        AttributeType::builder()
                            .name("email_verified")
                            .value("true")
                            .build()?,
                    )
                    .message_action(MessageActionType::Suppress)
                    .send()
                    .await
                    .map_err(|e| anyhow::anyhow!(uc_ops::aws_message(&e)))?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(concurrency.max(1));
    let mut done = 0u64;
    while let Some(result) = results.next().await {
        result.context("AdminCreateUser")?;
        done += 1;
        if done.is_multiple_of(5000) {
            eprintln!("  isolation: {done} users created");
        }
    }
    Ok(())
}

/// Samples the queue's depth every `every` until `stop`.
pub(super) fn sample_queue(
    sqs: aws_sdk_sqs::Client,
    url: String,
    every: Duration,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Vec<[f64; 2]>> {
    tokio::spawn(async move {
        let start = Instant::now();
        let mut samples = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let depth = uc_devkit::sqs::depth(&sqs, &url).await;
            samples.push([round(start.elapsed().as_secs_f64()), depth as f64]);
            tokio::time::sleep(every).await;
        }
        samples
    })
}

/// A running `uc-ops backfill`.
pub(super) struct BackfillProcess {
    pub(super) rate_arg: Option<String>,
    pub(super) pid: Option<u32>,
    pub(super) started: Instant,
    pub(super) task: tokio::task::JoinHandle<std::io::Result<(std::process::Output, Instant)>>,
}

pub(super) fn start_backfill(
    ops: &Path,
    env: &StackEnv,
    checkpoint: &Path,
    rate_arg: Option<&str>,
) -> anyhow::Result<BackfillProcess> {
    let _ = std::fs::remove_file(checkpoint);
    let mut command = tokio::process::Command::new(ops);
    command
        .arg("--env-file")
        .arg(&env.file)
        // --all: every phase publishes the same users again (the measure is the pace's
        // effect on live sign-ups, not which users lack a profile).
        .args(["backfill", "--json", "--all", "--status", BACKFILL_STATUS])
        .arg("--checkpoint")
        .arg(checkpoint)
        .env_remove("UC_ENV_FILE")
        .env_remove("AWS_PROFILE")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    if let Some(rate) = rate_arg {
        command.args(["--rate", rate]);
    }
    let child = command
        .spawn()
        .with_context(|| format!("start {}", ops.display()))?;
    let started = Instant::now();
    let pid = child.id();
    let task = tokio::spawn(async move {
        let output = child.wait_with_output().await?;
        Ok((output, Instant::now()))
    });
    Ok(BackfillProcess {
        rate_arg: rate_arg.map(str::to_owned),
        pid,
        started,
        task,
    })
}

pub(super) fn stats_of(samples: Vec<f64>, errors: usize) -> RunStats {
    RunStats::new(samples, errors)
}

/// The back-fill's checkpoint: (pages, published) so far.
pub(super) fn checkpoint_progress(path: &Path) -> (u64, u64) {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .map(|c| {
            (
                c["pages"].as_u64().unwrap_or(0),
                c["published"].as_u64().unwrap_or(0),
            )
        })
        .unwrap_or((0, 0))
}
