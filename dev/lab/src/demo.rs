//! `uc-lab demo`: the main job on the local stack. Signs users up in the local Cognito, runs the
//! real emitter (as Lambda runs it) and the real worker (long-poll), waits for every profile, and
//! reports what happened: counts, latencies, and whether each user has exactly one profile.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::local::{GraphqlBackend, StackEnv};
use crate::profiles::StoredProfiles;
use uc_runtime::metrics::{read_count, read_timings};

use crate::pipeline::{
    CONFIRM_FORGOT_PASSWORD, CONFIRM_SIGN_UP, ConfirmedUser, Pipeline, quantile,
    worker_outcome_subs,
};

pub struct DemoOptions {
    pub users: usize,
    /// Users who also reset their password (a second PostConfirmation that must not create a profile).
    pub resets: usize,
    pub timeout: Duration,
    pub emitter_bin: PathBuf,
    pub worker_bin: PathBuf,
    pub show_progress: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct DemoReport {
    /// What served GraphQL (`standin` or `amplify`) and, in words, `graphql_served_by`.
    pub graphql_backend: &'static str,
    pub graphql_served_by: &'static str,
    pub users: usize,
    pub password_resets: usize,
    pub events_published: u64,
    pub skipped: u64,
    pub fallback: u64,
    pub publish_failed: u64,
    pub profiles_created: usize,
    pub already_existing: u64,
    pub dlq_depth: u64,
    pub emitter_handler_ms_p50: Option<f64>,
    pub emitter_handler_ms_p99: Option<f64>,
    pub emitter_invoke_ms_p50: Option<f64>,
    pub emitter_invoke_ms_p99: Option<f64>,
    pub signup_to_profile_ms_p50: Option<f64>,
    pub signup_to_profile_ms_p99: Option<f64>,
    /// Users deleted in Cognito, their CloudTrail record put on the default bus.
    pub deleted_users: usize,
    /// Record put → profile gone.
    pub deletion_ms_p50: Option<f64>,
    pub deletion_ms_p99: Option<f64>,
    /// Users an administrator created and activated, their records put on the default bus.
    pub admin_created: usize,
    /// Records put → profile created (no reconciliation pass runs).
    pub admin_to_profile_ms_p50: Option<f64>,
    pub admin_to_profile_ms_p99: Option<f64>,
    pub missing: Vec<String>,
    pub duplicated: Vec<String>,
    /// Deleted users whose profile is still there.
    pub not_erased: Vec<String>,
    pub seconds: f64,
}

impl DemoReport {
    /// Every confirmed user has exactly one profile.
    pub fn is_exact(&self) -> bool {
        self.missing.is_empty() && self.duplicated.is_empty() && self.not_erased.is_empty()
    }
}

fn bar(show: bool, len: usize, message: &'static str) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len as u64).with_message(message);
    bar.set_style(
        ProgressStyle::with_template(
            "  {msg:<22} [{bar:32.cyan/blue}] {pos:>5}/{len:<5} {elapsed:>4}",
        )
        .expect("valid template")
        .progress_chars("█▉▊▋▌▍▎▏ "),
    );
    bar
}

pub async fn run(env: StackEnv, options: &DemoOptions) -> anyhow::Result<DemoReport> {
    let started = Instant::now();
    let run_id = chrono::Utc::now().format("%H%M%S%3f").to_string();
    let backend = GraphqlBackend::of(&env)?;
    let stored = StoredProfiles::of(&env).await?;
    let pipeline = Pipeline::start(env.clone(), &options.emitter_bin, &[]).await?;
    // The worker's own count of duplicates (its `profile written` lines) is what Amplify's
    // simulator can tell; the stand-in counts them itself.
    let worker_log = [("RUST_LOG", "info".to_owned())];
    let mut worker = pipeline.start_worker(&options.worker_bin, &worker_log);

    // 1–2. Sign-ups, each followed by the trigger invocation Cognito would make.
    let signing = bar(options.show_progress, options.users, "sign-ups → emitter");
    let mut invoke_ms = Vec::new();
    let mut users: Vec<ConfirmedUser> = Vec::new();
    let mut results = futures::stream::iter(0..options.users)
        .map(|i| {
            let pipeline = &pipeline;
            let run_id = &run_id;
            async move {
                let user = pipeline
                    .sign_up_and_confirm(&format!("demo.{run_id}.{i}@example.com"))
                    .await?;
                let event = pipeline.trigger_event(&user, CONFIRM_SIGN_UP).await?;
                let invocation = pipeline.invoke_emitter(&event).await;
                anyhow::ensure!(
                    invocation.result.as_ref() == Ok(&event),
                    "the emitter did not return the event: {:?}",
                    invocation.result
                );
                anyhow::Ok((user, invocation.elapsed))
            }
        })
        .buffer_unordered(4);
    while let Some(result) = results.next().await {
        let (user, elapsed) = result?;
        invoke_ms.push(elapsed.as_secs_f64() * 1000.0);
        users.push(user);
        signing.inc(1);
    }
    drop(results);
    signing.finish();

    // Password resets fire the same trigger; they must not create anything.
    let resets = options.resets.min(users.len());
    for user in users.iter().take(resets) {
        pipeline.reset_password(user).await?;
        let event = pipeline
            .trigger_event(user, CONFIRM_FORGOT_PASSWORD)
            .await?;
        pipeline
            .invoke_emitter(&event)
            .await
            .result
            .map_err(|e| anyhow::anyhow!("emitter error: {e}"))?;
    }

    // 3–4. Wait for the worker to create every profile.
    let subs: HashSet<&str> = users.iter().map(|u| u.sub.as_str()).collect();
    let waiting = bar(options.show_progress, users.len(), "profiles created");
    let deadline = Instant::now() + options.timeout;
    let mut profiles = Vec::new();
    while Instant::now() < deadline {
        profiles = stored.all().await?;
        let done = profiles
            .iter()
            .filter(|p| p["id"].as_str().is_some_and(|id| subs.contains(id)))
            .count();
        waiting.set_position(done as u64);
        if done == users.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    waiting.finish();

    // 5. The rest of a user's life (issue 22): some users deleted in Cognito and some created
    // by an administrator, each reported by the CloudTrail record AWS would put on the default
    // bus; the worker acts on the records alone.
    let lifecycle_users = (users.len() / 10).clamp(1, 30);
    let lifecycle = lifecycle_phase(
        &pipeline,
        &stored,
        &users[..lifecycle_users.min(users.len())],
        lifecycle_users,
        &run_id,
        options,
    )
    .await?;

    // A moment for redeliveries to show up as "already existing", then a clean stop.
    tokio::time::sleep(Duration::from_millis(500)).await;
    worker.signal("TERM");
    worker.wait(Duration::from_secs(30));

    let erased: HashSet<&str> = lifecycle.deleted.iter().map(String::as_str).collect();
    let mut created_per_sub: HashMap<&str, u64> = HashMap::new();
    let mut lag_ms = Vec::new();
    let confirmed_at: HashMap<&str, &ConfirmedUser> =
        users.iter().map(|u| (u.sub.as_str(), u)).collect();
    for profile in &profiles {
        let Some(owner) = profile["profileOwner"].as_str() else {
            continue;
        };
        let Some(sub) = owner.split("::").next().filter(|s| subs.contains(s)) else {
            continue;
        };
        *created_per_sub.entry(sub).or_default() += 1;
        let created_at = profile["createdAt"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
        if let (Some(created_at), Some(user)) = (created_at, confirmed_at.get(sub)) {
            lag_ms.push(
                (created_at.with_timezone(&chrono::Utc) - user.confirmed_at)
                    .num_microseconds()
                    .unwrap_or(0) as f64
                    / 1000.0,
            );
        }
    }
    let already_existing: u64 = match backend {
        GraphqlBackend::StandIn => {
            let stats = pipeline.standin.stats().await;
            subs.iter()
                .filter_map(|s| stats["perId"][s]["duplicates"].as_u64())
                .sum()
        }
        GraphqlBackend::Amplify => worker_outcome_subs(&worker.output(), "AlreadyExisted")
            .iter()
            .filter(|sub| subs.contains(sub.as_str()))
            .count() as u64,
    };
    // Profiles as they were before the deletions: every sign-up had one.
    let mut missing: Vec<String> = subs
        .iter()
        .filter(|s| !created_per_sub.contains_key(*s))
        .map(|s| s.to_string())
        .collect();
    missing.extend(lifecycle.admin_missing.iter().cloned());
    let mut duplicated: Vec<String> = created_per_sub
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(s, _)| s.to_string())
        .collect();
    missing.sort();
    duplicated.sort();

    let sqs = aws_sdk_sqs::Client::new(&env.sdk_config().await?);
    let mut dlq_depth = 0;
    for key in ["DLQ_URL", "RULE_DLQ_URL"] {
        if let Ok(url) = env.get(key) {
            dlq_depth += uc_devkit::sqs::depth(&sqs, url).await;
        }
    }
    let output = pipeline.emitter_output();
    let handler_ms = read_timings(&output, "emitter", "HandlerLatency");
    Ok(DemoReport {
        graphql_backend: backend.name(),
        graphql_served_by: backend.describe(),
        users: users.len(),
        password_resets: resets,
        events_published: read_count(&output, "emitter", "Published"),
        skipped: read_count(&output, "emitter", "Skipped"),
        fallback: read_count(&output, "emitter", "Fallback"),
        publish_failed: read_count(&output, "emitter", "Failed"),
        profiles_created: created_per_sub.len(),
        already_existing,
        dlq_depth,
        emitter_handler_ms_p50: quantile(&handler_ms, 0.5),
        emitter_handler_ms_p99: quantile(&handler_ms, 0.99),
        emitter_invoke_ms_p50: quantile(&invoke_ms, 0.5),
        emitter_invoke_ms_p99: quantile(&invoke_ms, 0.99),
        signup_to_profile_ms_p50: quantile(&lag_ms, 0.5),
        signup_to_profile_ms_p99: quantile(&lag_ms, 0.99),
        deleted_users: erased.len(),
        deletion_ms_p50: quantile(&lifecycle.deletion_ms, 0.5),
        deletion_ms_p99: quantile(&lifecycle.deletion_ms, 0.99),
        admin_created: lifecycle.admin_created,
        admin_to_profile_ms_p50: quantile(&lifecycle.admin_ms, 0.5),
        admin_to_profile_ms_p99: quantile(&lifecycle.admin_ms, 0.99),
        missing,
        duplicated,
        not_erased: lifecycle.not_erased,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// What the lifecycle phase saw.
struct LifecyclePhase {
    deleted: Vec<String>,
    deletion_ms: Vec<f64>,
    not_erased: Vec<String>,
    admin_created: usize,
    admin_ms: Vec<f64>,
    admin_missing: Vec<String>,
}

/// Deletes `victims` (in Cognito, then CloudTrail's record) and creates `admins` users as an
/// administrator (and their records), then waits for the worker: each deleted user's profile
/// gone, each administrator's user with a profile; the time from the records to that.
async fn lifecycle_phase(
    pipeline: &Pipeline,
    stored: &StoredProfiles,
    victims: &[ConfirmedUser],
    admins: usize,
    run_id: &str,
    options: &DemoOptions,
) -> anyhow::Result<LifecyclePhase> {
    let pool = pipeline.env.get("USER_POOL_ID")?.to_owned();
    let mut sent: HashMap<String, (Instant, bool)> = HashMap::new();
    for user in victims {
        pipeline.admin_delete(&user.username).await?;
        pipeline
            .report_call("AdminDeleteUser", &user.sub, Some(&pool))
            .await?;
        sent.insert(user.sub.clone(), (Instant::now(), false));
    }
    for i in 0..admins {
        let sub = pipeline
            .admin_create(&format!("demo.{run_id}.admin.{i}@example.com"), true)
            .await?;
        for call in ["AdminCreateUser", "AdminSetUserPassword"] {
            pipeline.report_call(call, &sub, Some(&pool)).await?;
        }
        sent.insert(sub, (Instant::now(), true));
    }
    let waiting = bar(options.show_progress, sent.len(), "lifecycle records");
    let mut done: HashMap<String, f64> = HashMap::new();
    let deadline = Instant::now() + options.timeout;
    while done.len() < sent.len() && Instant::now() < deadline {
        let present: HashSet<String> = stored
            .all()
            .await?
            .iter()
            .filter_map(|p| p["id"].as_str().map(str::to_owned))
            .collect();
        let now = Instant::now();
        for (sub, (at, wants_profile)) in &sent {
            if !done.contains_key(sub) && present.contains(sub) == *wants_profile {
                done.insert(sub.clone(), (now - *at).as_secs_f64() * 1000.0);
            }
        }
        waiting.set_position(done.len() as u64);
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    waiting.finish();
    let mut phase = LifecyclePhase {
        deleted: victims.iter().map(|u| u.sub.clone()).collect(),
        deletion_ms: vec![],
        not_erased: vec![],
        admin_created: admins,
        admin_ms: vec![],
        admin_missing: vec![],
    };
    for (sub, (_, wants_profile)) in sent {
        match (done.get(&sub), wants_profile) {
            (Some(ms), true) => phase.admin_ms.push(*ms),
            (Some(ms), false) => phase.deletion_ms.push(*ms),
            (None, true) => phase.admin_missing.push(sub),
            (None, false) => phase.not_erased.push(sub),
        }
    }
    Ok(phase)
}

/// The report as a compact table.
pub fn render(report: &DemoReport) -> String {
    let ms = |v: Option<f64>| {
        v.map(|v| format!("{v:.1} ms"))
            .unwrap_or_else(|| "–".into())
    };
    let rows: Vec<(&str, String)> = vec![
        ("GraphQL served by", report.graphql_served_by.to_string()),
        ("users signed up & confirmed", report.users.to_string()),
        (
            "password resets (trigger fired again)",
            report.password_resets.to_string(),
        ),
        (
            "UserConfirmed events published",
            report.events_published.to_string(),
        ),
        ("trigger events skipped", report.skipped.to_string()),
        ("published via fallback queue", report.fallback.to_string()),
        ("profiles created", report.profiles_created.to_string()),
        (
            "already existing (idempotent retries)",
            report.already_existing.to_string(),
        ),
        ("DLQ depth", report.dlq_depth.to_string()),
        (
            "emitter handler latency p50 / p99",
            format!(
                "{} / {}",
                ms(report.emitter_handler_ms_p50),
                ms(report.emitter_handler_ms_p99)
            ),
        ),
        (
            "emitter invoke round trip p50 / p99",
            format!(
                "{} / {}",
                ms(report.emitter_invoke_ms_p50),
                ms(report.emitter_invoke_ms_p99)
            ),
        ),
        (
            "sign-up → profile lag p50 / p99",
            format!(
                "{} / {}",
                ms(report.signup_to_profile_ms_p50),
                ms(report.signup_to_profile_ms_p99)
            ),
        ),
        (
            "users deleted (CloudTrail record)",
            report.deleted_users.to_string(),
        ),
        (
            "record → profile gone p50 / p99",
            format!(
                "{} / {}",
                ms(report.deletion_ms_p50),
                ms(report.deletion_ms_p99)
            ),
        ),
        (
            "administrators' users (records only)",
            report.admin_created.to_string(),
        ),
        (
            "records → profile p50 / p99",
            format!(
                "{} / {}",
                ms(report.admin_to_profile_ms_p50),
                ms(report.admin_to_profile_ms_p99)
            ),
        ),
        (
            "missing / duplicated / not erased",
            format!(
                "{} / {} / {}",
                report.missing.len(),
                report.duplicated.len(),
                report.not_erased.len()
            ),
        ),
    ];
    let left = rows
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    let right = rows
        .iter()
        .map(|(_, v)| v.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    out.push_str(&format!(
        "┌{}┬{}┐\n",
        "─".repeat(left + 2),
        "─".repeat(right + 2)
    ));
    for (k, v) in &rows {
        out.push_str(&format!("│ {k:<left$} │ {v:>right$} │\n"));
    }
    out.push_str(&format!(
        "└{}┴{}┘\n",
        "─".repeat(left + 2),
        "─".repeat(right + 2)
    ));
    let verdict = if report.is_exact() {
        format!(
            "OK: every confirmed user has exactly one profile, every deleted one none ({:.1} s).",
            report.seconds
        )
    } else {
        format!(
            "FAILED: {} missing, {} duplicated, {} not erased: {:?} {:?} {:?}",
            report.missing.len(),
            report.duplicated.len(),
            report.not_erased.len(),
            report.missing,
            report.duplicated,
            report.not_erased
        )
    };
    out.push_str(&verdict);
    out.push('\n');
    out
}
