//! `uc-lab chaos`: thousands of sign-ups through the local pipeline under faults — AppSync
//! failing with 503, 429, answers slower than the client's timeout, throughput-exceeded and
//! authorization errors; duplicated Cognito deliveries and SQS messages; the worker killed with
//! SIGKILL and restarted; EventBridge unreachable for a stretch. Then the faults stop, the DLQ
//! is replayed, and the run must end with exactly one profile per confirmed user. One user in
//! 25 is deleted in Cognito while the faults last (a quarter of those with no CloudTrail record,
//! as a lost event): after the orphan sweep none of them may keep a profile. Seeded: the same
//! seed makes the same fault plan.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use serde_json::json;
use uc_devkit::{free_port, sqs};
use uc_ops::dlq::{self, Filter, ReplayOptions};
use uc_ops::profile_lookup::ConfiguredLookup;
use uc_ops::publish::Clients;
use uc_ops::reconcile::ReconcileConfig;
use uc_ops::sweep::{PassOptions, Sweep};
use uc_ops::sweep_state::SsmStateStore;
use uc_runtime::env::from_pairs;
use uc_runtime::metrics::read_count;
use uc_schemas::{Origin, UserConfirmed, to_envelope};

use crate::local::{GraphqlBackend, StackEnv};
use crate::pipeline::{CONFIRM_SIGN_UP, ConfirmedUser, Pipeline, start_worker};

pub struct ChaosOptions {
    pub users: usize,
    pub seed: u64,
    /// SIGKILLs of the worker while sign-ups flow.
    pub kills: usize,
    pub emitter_bin: PathBuf,
    pub worker_bin: PathBuf,
    pub show_progress: bool,
    pub timeout: Duration,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChaosReport {
    pub seed: u64,
    pub users: usize,
    pub duplicated_cognito_deliveries: usize,
    pub duplicated_sqs_messages: usize,
    pub users_during_eventbridge_outage: usize,
    pub published_via_fallback: u64,
    /// Sign-ups whose event could not be published at all (fail-open: EventBridge and the
    /// fallback queue both unreachable), left for the reconciler.
    pub emitter_publish_failed: u64,
    /// Users an administrator created (no trigger runs for them), left for the reconciler.
    pub admin_created: usize,
    /// Events the reconciliation pass published (every counted user of the pool: its first
    /// pass has no watermark) and could not publish.
    pub reconciled: u64,
    pub reconcile_failed: u64,
    /// Selected users the reconciliation pass found with a profile already (not published).
    pub reconcile_had_profile: u64,
    /// Users deleted in Cognito during the faults, and how many of them had their CloudTrail
    /// record sent (the others are lost events: only the orphan sweep finds them).
    pub deleted: usize,
    pub deletion_records: usize,
    /// What the orphan sweep at the end erased (profiles of deleted users that outlived their
    /// record, or had none).
    pub orphans_erased: u64,
    /// `UserConfirmed` events published (the emitters' `Published` and `Fallback`, Cognito's
    /// duplicated deliveries included, and the reconciliation pass's) per user.
    pub events_published_per_user: f64,
    pub worker_kills: usize,
    pub appsync_requests: u64,
    pub faults_injected: serde_json::Value,
    pub worker_retries: u64,
    pub already_existing_answers: u64,
    pub dlq_entries_before_replay: u64,
    pub replay_created: usize,
    pub replay_already_existed: usize,
    pub profiles: usize,
    pub missing: Vec<String>,
    pub duplicated: Vec<String>,
    pub extra: Vec<String>,
    /// Deleted users who still have a profile at the end.
    pub not_erased: Vec<String>,
    pub dlq_after: u64,
    /// Messages left in the worker queue at the end.
    pub queue_after: u64,
    /// For each missing user: what the emitters, the worker and AppSync saw of it.
    pub diagnosis: Vec<String>,
    pub seconds: f64,
}

impl ChaosReport {
    pub fn is_exact(&self) -> bool {
        self.missing.is_empty()
            && self.duplicated.is_empty()
            && self.extra.is_empty()
            && self.not_erased.is_empty()
            && self.dlq_after == 0
    }
}

/// The worker settings for a faulty AppSync: a short client timeout (so slow answers time out),
/// few attempts per receive, and quick visibility back-off.
const WORKER_SETTINGS: &[(&str, &str)] = &[
    ("REQUEST_TIMEOUT_MS", "1000"),
    ("MAX_ATTEMPTS", "3"),
    ("RETRY_MIN_DELAY_MS", "20"),
    ("RETRY_MAX_DELAY_MS", "200"),
    ("VISIBILITY_BACKOFF_BASE_SECONDS", "1"),
    ("VISIBILITY_BACKOFF_MAX_SECONDS", "4"),
    ("CONCURRENCY", "16"),
];

fn worker_overrides() -> Vec<(&'static str, String)> {
    WORKER_SETTINGS
        .iter()
        .map(|(k, v)| (*k, v.to_string()))
        .collect()
}

/// Fault rules: checked in order, the first status/errorType that applies decides.
fn fault_rules() -> serde_json::Value {
    json!([
        {"status": 503, "fraction": 0.12},
        {"status": 429, "fraction": 0.08},
        {"errorType": "DynamoDB:ProvisionedThroughputExceededException", "fraction": 0.08},
        {"errorType": "Unauthorized", "fraction": 0.01},
        {"latencyMs": 1500, "fraction": 0.04},
    ])
}

/// The whole run. Its state is large (every phase's futures: the pipelines, the sweep, the
/// replay's worker core, the orphan sweep), so it lives on the heap: on a test thread's 2 MiB
/// stack a debug build overflowed.
pub async fn run(env: StackEnv, options: &ChaosOptions) -> anyhow::Result<ChaosReport> {
    Box::pin(run_on_heap(env, options)).await
}

async fn run_on_heap(env: StackEnv, options: &ChaosOptions) -> anyhow::Result<ChaosReport> {
    anyhow::ensure!(
        GraphqlBackend::of(&env)? == GraphqlBackend::StandIn,
        "the chaos run injects the AppSync stand-in's faults: bring the local stack up with it \
         (UC_LAB_GRAPHQL=standin, the default)"
    );
    let started = Instant::now();
    let mut rng = fastrand::Rng::with_seed(options.seed);
    let run_id = format!("chaos{}", options.seed);
    let pipeline = Pipeline::start(env.clone(), &options.emitter_bin, &[]).await?;
    // The same emitter with EventBridge unreachable: the fallback queue must carry its events.
    let unreachable = format!("http://127.0.0.1:{}", free_port());
    let outage = Pipeline::start(
        env.clone(),
        &options.emitter_bin,
        &[
            ("AWS_ENDPOINT_URL_EVENTBRIDGE", unreachable.clone()),
            ("PUBLISH_BUDGET_MS", "800".into()),
        ],
    )
    .await?;
    // And one whose EventBridge and fallback queue are both unreachable: fail-open confirms the
    // user and publishes nothing.
    let blackout = Pipeline::start(
        env.clone(),
        &options.emitter_bin,
        &[
            ("AWS_ENDPOINT_URL_EVENTBRIDGE", unreachable.clone()),
            ("AWS_ENDPOINT_URL_SQS", unreachable.clone()),
            ("PUBLISH_BUDGET_MS", "800".into()),
            ("FAILURE_POLICY", "fail-open".into()),
        ],
    )
    .await?;
    pipeline
        .standin
        .set_faults_seeded(fault_rules(), options.seed)
        .await;

    let worker_outputs: Arc<Mutex<Vec<String>>> = Arc::default();
    let worker = Arc::new(Mutex::new(
        pipeline.start_worker(&options.worker_bin, &worker_overrides()),
    ));

    // Kill moments, drawn now so the plan depends on the seed only.
    let kill_delays: Vec<Duration> = (0..options.kills)
        .map(|_| Duration::from_millis(rng.u64(1_000..4_000)))
        .collect();
    let killer = {
        let (worker, outputs, bin) = (
            worker.clone(),
            worker_outputs.clone(),
            options.worker_bin.clone(),
        );
        let pipeline_env = env.clone();
        tokio::spawn(async move {
            for delay in kill_delays {
                tokio::time::sleep(delay).await;
                let mut running = worker.lock().unwrap();
                running.signal("KILL");
                running.wait(Duration::from_secs(5));
                outputs.lock().unwrap().extend(running.output());
                *running = start_worker(&pipeline_env, &bin, &worker_overrides());
            }
        })
    };

    // Sign-ups: a window of them during the EventBridge outage; some delivered twice by
    // "Cognito"; some sent twice straight into the queue (an SQS redelivery); one in a hundred
    // through the blacked-out emitter; one in fifty created by an administrator instead.
    let outage_window = (options.users * 4 / 10)..(options.users / 2);
    let plan: Vec<(usize, bool, bool)> = (0..options.users)
        .map(|i| (i, rng.f64() < 0.10, rng.f64() < 0.05))
        .collect();
    let bar = if options.show_progress {
        ProgressBar::new(options.users as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("  {msg:<22} [{bar:32}] {pos:>5}/{len:<5} {elapsed:>4}")
            .expect("valid template"),
    );
    bar.set_message("chaotic sign-ups");
    let sqs_client = aws_sdk_sqs::Client::new(&env.sdk_config().await?);
    let queue_url = env.get("QUEUE_URL")?.to_owned();
    let mut users: Vec<ConfirmedUser> = Vec::new();
    let mut to_delete: Vec<(usize, ConfirmedUser)> = Vec::new();
    let mut cognito_duplicates = 0;
    let mut sqs_duplicates = 0;
    let mut results = futures::stream::iter(plan)
        .map(|(i, twice, redeliver)| {
            let emitter = if is_blacked_out(i) {
                &blackout
            } else if outage_window.contains(&i) {
                &outage
            } else {
                &pipeline
            };
            let (pipeline, run_id, sqs_client, queue_url, env) =
                (&pipeline, &run_id, &sqs_client, &queue_url, &env);
            async move {
                if is_admin_created(i) {
                    let username = format!("{run_id}.{i}@example.com");
                    let sub = pipeline.admin_create(&username, true).await?;
                    let user = ConfirmedUser {
                        username,
                        sub,
                        confirmed_at: chrono::Utc::now(),
                    };
                    return anyhow::Ok((i, user, false, false));
                }
                let user = pipeline
                    .sign_up_and_confirm(&format!("{run_id}.{i}@example.com"))
                    .await?;
                let event = pipeline.trigger_event(&user, CONFIRM_SIGN_UP).await?;
                for _ in 0..(1 + usize::from(twice)) {
                    emitter
                        .invoke_emitter(&event)
                        .await
                        .result
                        .map_err(|e| anyhow::anyhow!("emitter error: {e}"))?;
                }
                if redeliver {
                    let detail = UserConfirmed::new(
                        env.get("USER_POOL_ID")?,
                        &user.sub,
                        &user.username,
                        None,
                        None,
                        None,
                        user.confirmed_at,
                        env.get("AWS_REGION")?,
                        Origin::PostConfirmation,
                    );
                    let body = to_envelope(env.get("EVENT_SOURCE")?, &detail).to_string();
                    sqs::send_all(sqs_client, queue_url, &[body.clone(), body]).await;
                }
                anyhow::Ok((i, user, twice, redeliver))
            }
        })
        .buffer_unordered(4);
    while let Some(result) = results.next().await {
        let (i, user, twice, redeliver) = result?;
        if is_deleted(i) {
            to_delete.push((i, user.clone()));
        }
        cognito_duplicates += usize::from(twice);
        sqs_duplicates += 2 * usize::from(redeliver);
        users.push(user);
        bar.inc(1);
    }
    drop(results);
    bar.finish();
    // Deletions while the faults last and the worker is being killed: some records are
    // handled before the user's profile exists (its event still in retries), some are lost.
    to_delete.sort_by_key(|(i, _)| *i);
    let pool = env.get("USER_POOL_ID")?.to_owned();
    let mut deletion_records = 0;
    for (i, user) in &to_delete {
        pipeline.admin_delete(&user.username).await?;
        if !is_record_lost(*i) {
            pipeline
                .report_call("AdminDeleteUser", &user.sub, Some(&pool))
                .await?;
            deletion_records += 1;
        }
    }
    killer.await?;

    // Faults stop. Sign-ups whose publish failed even through the fallback (fail-open: the
    // user is confirmed, the event is not) and the administrators' users are recovered with no
    // operator: one pass of the reconciler (what the schedule runs), with the stack's state.
    pipeline.standin.clear_faults().await;
    let emitter_published: u64 = [&pipeline, &outage, &blackout]
        .iter()
        .map(|p| {
            let lines = p.emitter_output();
            read_count(&lines, "emitter", "Published") + read_count(&lines, "emitter", "Fallback")
        })
        .sum();
    let emitter_failed = [&pipeline, &outage, &blackout]
        .iter()
        .map(|p| read_count(&p.emitter_output(), "emitter", "Failed"))
        .sum::<u64>();
    let sdk = env.sdk_config().await?;
    let mut reconcile_config = ReconcileConfig::from_env(&from_pairs(env.vars.clone()))?;
    // Moto has no ListUsers quota, and the queue is idle by now: the lab need not wait.
    reconcile_config.publish_rate = 1_000.0;
    reconcile_config.list_rate = 50.0;
    // Users signed up moments ago are judged too: the lab's pass runs right after them.
    reconcile_config.grace = Duration::ZERO;
    let clients = Clients {
        cognito: aws_sdk_cognitoidentityprovider::Client::new(&sdk),
        events: aws_sdk_eventbridge::Client::new(&sdk),
        sqs: sqs_client.clone(),
    };
    let store = SsmStateStore::new(
        aws_sdk_ssm::Client::new(&sdk),
        &reconcile_config.state_parameter,
    );
    let lookup = ConfiguredLookup::build(&reconcile_config.store, &sdk).await?;
    let pass = Sweep {
        clients: &clients,
        state: &store,
        lookup: &lookup,
        config: &reconcile_config.sweep(env.get("AWS_REGION")?),
    }
    .run(&PassOptions::default(), |_| {})
    .await?;
    let events_published = emitter_published + pass.published;
    // The worker drains the queue (messages held by killed workers come back after the
    // queue's visibility timeout).
    let deadline = Instant::now() + options.timeout;
    let mut worker_crashes = Vec::new();
    let lifecycle_url = env.get("LIFECYCLE_QUEUE_URL")?.to_owned();
    while Instant::now() < deadline
        && sqs::depth(&sqs_client, &queue_url).await + sqs::depth(&sqs_client, &lifecycle_url).await
            > 0
    {
        // The orchestrator's part: a worker that exited is started again.
        {
            let mut running = worker.lock().unwrap();
            if let Some(status) = running.exited() {
                let output = running.output();
                worker_crashes.push(format!(
                    "worker exited ({status}); last lines: {:?}",
                    &output[output.len().saturating_sub(3)..]
                ));
                worker_outputs.lock().unwrap().extend(output);
                *running = start_worker(&env, &options.worker_bin, &worker_overrides());
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    {
        let mut running = worker.lock().unwrap();
        running.signal("TERM");
        running.wait(Duration::from_secs(30));
        worker_outputs.lock().unwrap().extend(running.output());
    }

    // What could not succeed under the faults is in the DLQs: replay it with the worker's core
    // (the ops CLI's `dlq replay`).
    let dlq_url = env.get("DLQ_URL")?.to_owned();
    let rule_dlq_url = env.get("RULE_DLQ_URL")?.to_owned();
    let dlq_entries_before_replay =
        sqs::depth(&sqs_client, &dlq_url).await + sqs::depth(&sqs_client, &rule_dlq_url).await;
    let (mut replay_created, mut replay_already_existed) = (0, 0);
    if dlq_entries_before_replay > 0 {
        let mut config =
            uc_worker::WorkerConfig::from_reader(&uc_runtime::env::from_pairs(env.vars.clone()))?;
        config.dlq_url = Some(dlq_url.clone());
        let core = uc_worker::build_worker(&config, &env.sdk_config().await?).await?;
        let sink = uc_worker::SqsDeadLetters::new(sqs_client.clone(), dlq_url.clone());
        let options = ReplayOptions {
            limit: usize::MAX,
            rate: None,
            filter: Filter::All,
            dry_run: false,
        };
        for url in [&dlq_url, &rule_dlq_url] {
            let summary = dlq::replay(&sqs_client, url, &core, &sink, &options, |_| {}).await?;
            replay_created += summary.created;
            replay_already_existed += summary.already_existed;
        }
    }

    // The safety net: deleted users whose record was lost, or whose profile was created after
    // their record was handled, are orphans now; the operator's sweep erases them (with the
    // guard raised to the deletions this run made, as an operator who knows would).
    let orphan_sweep = std::process::Command::new(options.worker_bin.with_file_name("uc-ops"))
        .args(["reconcile", "--orphans", "--json", "--max-orphans"])
        .arg(to_delete.len().max(1).to_string())
        .envs(env.vars.iter())
        .env_remove("UC_ENV_FILE")
        .output()?;
    let sweep: serde_json::Value =
        serde_json::from_slice(&orphan_sweep.stdout).unwrap_or(serde_json::Value::Null);
    anyhow::ensure!(
        orphan_sweep.status.success(),
        "the orphan sweep failed ({}): {sweep} {}",
        orphan_sweep.status,
        String::from_utf8_lossy(&orphan_sweep.stderr)
    );
    let orphans_erased = sweep["erasures"]["erased"].as_u64().unwrap_or(0);

    let stats = pipeline.standin.stats().await;
    let profiles = pipeline.standin.profiles().await;
    let deleted: HashSet<&str> = to_delete.iter().map(|(_, u)| u.sub.as_str()).collect();
    let subs: HashSet<&str> = users
        .iter()
        .map(|u| u.sub.as_str())
        .filter(|s| !deleted.contains(s))
        .collect();
    let mut not_erased = Vec::new();
    let mut per_sub: HashMap<String, usize> = HashMap::new();
    let mut extra = Vec::new();
    for profile in &profiles {
        let id = profile["id"].as_str().unwrap_or_default().to_owned();
        if subs.contains(id.as_str()) {
            *per_sub.entry(id).or_default() += 1;
        } else if deleted.contains(id.as_str()) {
            not_erased.push(id);
        } else {
            extra.push(id);
        }
    }
    let mut missing: Vec<String> = subs
        .iter()
        .filter(|s| !per_sub.contains_key(**s))
        .map(|s| s.to_string())
        .collect();
    let mut duplicated: Vec<String> = subs
        .iter()
        .filter(|s| {
            per_sub.get(**s).copied().unwrap_or(0) > 1
                || stats["perId"][**s]["created"].as_u64().unwrap_or(0) > 1
        })
        .map(|s| s.to_string())
        .collect();
    missing.sort();
    duplicated.sort();
    let outputs = worker_outputs.lock().unwrap().clone();
    let emitter_lines: Vec<String> = pipeline
        .emitter_output()
        .into_iter()
        .chain(outage.emitter_output())
        .collect();
    let diagnosis = worker_crashes
        .into_iter()
        .chain(missing.iter().map(|sub| {
            let seen = |lines: &[String]| -> Vec<String> {
                lines
                    .iter()
                    .filter(|l| l.contains(sub.as_str()) && !l.contains("\"_aws\""))
                    .map(|l| l.chars().take(220).collect())
                    .collect()
            };
            format!(
                "{sub}: emitter {:?}; worker {:?}; appsync {}",
                seen(&emitter_lines),
                seen(&outputs),
                stats["perId"][sub]
            )
        }))
        .collect();
    Ok(ChaosReport {
        seed: options.seed,
        users: users.len(),
        duplicated_cognito_deliveries: cognito_duplicates,
        duplicated_sqs_messages: sqs_duplicates,
        users_during_eventbridge_outage: outage_window.len().min(users.len()),
        published_via_fallback: read_count(&outage.emitter_output(), "emitter", "Fallback"),
        emitter_publish_failed: emitter_failed,
        admin_created: (0..options.users).filter(|i| is_admin_created(*i)).count(),
        deleted: to_delete.len(),
        deletion_records,
        orphans_erased,
        reconciled: pass.published,
        reconcile_failed: pass.failed,
        reconcile_had_profile: pass.had_profile,
        events_published_per_user: events_published as f64 / users.len().max(1) as f64,
        worker_kills: options.kills,
        appsync_requests: stats["requests"].as_u64().unwrap_or(0),
        faults_injected: stats["faultsInjected"].clone(),
        worker_retries: read_count(&outputs, "worker", "Retried"),
        already_existing_answers: stats["duplicates"].as_u64().unwrap_or(0),
        dlq_entries_before_replay,
        replay_created,
        replay_already_existed,
        profiles: per_sub.len(),
        missing,
        duplicated,
        extra,
        not_erased,
        dlq_after: sqs::depth(&sqs_client, &dlq_url).await
            + sqs::depth(&sqs_client, &rule_dlq_url).await,
        queue_after: sqs::depth(&sqs_client, &queue_url).await,
        diagnosis,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The report as lines.
pub fn render(report: &ChaosReport) -> String {
    let rows = [
        ("seed", report.seed.to_string()),
        ("users signed up & confirmed", report.users.to_string()),
        (
            "Cognito deliveries duplicated",
            report.duplicated_cognito_deliveries.to_string(),
        ),
        (
            "SQS messages duplicated",
            report.duplicated_sqs_messages.to_string(),
        ),
        (
            "users during the EventBridge outage",
            report.users_during_eventbridge_outage.to_string(),
        ),
        (
            "published via the fallback queue",
            report.published_via_fallback.to_string(),
        ),
        (
            "publishes failed (fail-open) / admin-created",
            format!(
                "{} / {}",
                report.emitter_publish_failed, report.admin_created
            ),
        ),
        (
            "reconciler: published / failed / had a profile",
            format!(
                "{} / {} / {}",
                report.reconciled, report.reconcile_failed, report.reconcile_had_profile
            ),
        ),
        (
            "UserConfirmed events published per user",
            format!("{:.3}", report.events_published_per_user),
        ),
        ("worker SIGKILLs", report.worker_kills.to_string()),
        ("AppSync requests", report.appsync_requests.to_string()),
        ("faults injected", report.faults_injected.to_string()),
        ("worker retries", report.worker_retries.to_string()),
        (
            "already-existing answers (redeliveries)",
            report.already_existing_answers.to_string(),
        ),
        (
            "DLQ entries before replay",
            report.dlq_entries_before_replay.to_string(),
        ),
        (
            "replay: created / already existed",
            format!(
                "{} / {}",
                report.replay_created, report.replay_already_existed
            ),
        ),
        (
            "deleted users / records sent / orphans erased",
            format!(
                "{} / {} / {}",
                report.deleted, report.deletion_records, report.orphans_erased
            ),
        ),
        ("profiles (one per user)", report.profiles.to_string()),
        (
            "missing / duplicated / extra / not erased",
            format!(
                "{} / {} / {} / {}",
                report.missing.len(),
                report.duplicated.len(),
                report.extra.len(),
                report.not_erased.len()
            ),
        ),
        ("DLQ depth after", report.dlq_after.to_string()),
    ];
    let mut out = String::new();
    for (k, v) in rows {
        out.push_str(&format!("  {k:<44} {v}\n"));
    }
    out.push_str(&if report.is_exact() {
        format!(
            "OK: exactly one profile per confirmed user, none for a deleted one, DLQ empty ({:.1} s).\n",
            report.seconds
        )
    } else {
        format!(
            "FAILED: missing {:?} duplicated {:?} extra {:?} not erased {:?} dlq {} queue {}\n{}\n",
            report.missing,
            report.duplicated,
            report.extra,
            report.not_erased,
            report.dlq_after,
            report.queue_after,
            report.diagnosis.join("\n")
        )
    });
    out
}

/// One sign-up in a hundred goes through the emitter that can publish nowhere.
fn is_blacked_out(i: usize) -> bool {
    i % 100 == 7
}

/// One user in 25 is deleted during the faults (never an administrator's or a blacked-out one).
fn is_deleted(i: usize) -> bool {
    i % 25 == 11
}

/// A quarter of the deletions have no CloudTrail record (a lost event, or no trail).
fn is_record_lost(i: usize) -> bool {
    i % 100 == 36
}

/// One user in fifty is an administrator's, created with no trigger.
fn is_admin_created(i: usize) -> bool {
    i % 50 == 3
}
