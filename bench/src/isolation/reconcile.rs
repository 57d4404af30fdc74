//! Reconciliation throughput: the real `uc-ops reconcile` (the scheduled function's pass, run
//! as the CLI) over the isolation section's back-filled users, at its default pace and at a
//! higher one. What it shows is whether a pass keeps its configured pace: users published per
//! second of the whole process (start-up, state, ListUsers and every publish included).

use std::path::Path;

use anyhow::Context;
use serde::Serialize;
use serde_json::Value;
use tokio::time::Instant;
use uc_lab::local::StackEnv;

use crate::stats::round;

/// One pass, stopped after `pages` pages of 60 users (it saves its place; exit status 1).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReconcileRun {
    /// The configured pace (events per second).
    pub pace: f64,
    /// `--rate` as given, or `None` for the default (`RECONCILE_PUBLISH_RATE` unset: 50/s).
    pub rate_arg: Option<String>,
    pub pages: u64,
    pub published: u64,
    pub failed: u64,
    /// The process from start to exit.
    pub seconds: f64,
    pub published_per_second: f64,
    pub fraction_of_pace: f64,
    pub exit_code: Option<i32>,
}

/// Runs one reconcile pass over users of `status`, stopping after `max_pages` pages.
pub(super) async fn run_pass(
    ops: &Path,
    env: &StackEnv,
    status: &str,
    pace: f64,
    rate_arg: Option<&str>,
    max_pages: u64,
) -> anyhow::Result<ReconcileRun> {
    let mut command = tokio::process::Command::new(ops);
    command
        .arg("--env-file")
        .arg(&env.file)
        // --all: the users have profiles; the measure is the publishing pace.
        .args(["reconcile", "--json", "--full", "--all", "--max-pages"])
        .arg(max_pages.to_string())
        .env("RECONCILE_STATUSES", status)
        // The users were created moments ago: judge them however recent.
        .env("RECONCILE_GRACE_SECONDS", "0")
        .env_remove("RECONCILE_PUBLISH_RATE")
        .env_remove("UC_ENV_FILE")
        .env_remove("AWS_PROFILE")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    if let Some(rate) = rate_arg {
        command.args(["--rate", rate]);
    }
    let started = Instant::now();
    let output = command
        .output()
        .await
        .with_context(|| format!("run {}", ops.display()))?;
    let seconds = started.elapsed().as_secs_f64();
    // `--json` prints the pass's report as one JSON document on stdout.
    let report: Value = serde_json::from_slice(&output.stdout).with_context(|| {
        format!(
            "uc-ops reconcile printed no JSON report (exit {:?}): {}",
            output.status.code(),
            String::from_utf8_lossy(&output.stderr)
        )
    })?;
    let published = report["published"].as_u64().unwrap_or(0);
    let rate = published as f64 / seconds;
    Ok(ReconcileRun {
        pace,
        rate_arg: rate_arg.map(str::to_owned),
        pages: report["pages"].as_u64().unwrap_or(0),
        published,
        failed: report["failed"].as_u64().unwrap_or(0),
        seconds: round(seconds),
        published_per_second: round(rate),
        fraction_of_pace: (rate / pace * 1000.0).round() / 1000.0,
        exit_code: output.status.code(),
    })
}
