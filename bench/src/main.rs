//! `uc-bench run`: measures the sign-up path (our emitter vs the Amplify docs' synchronous
//! handler vs a bare PutEvents), cold starts, worker throughput and the worker's strict mode
//! (`VERIFY_USER=cognito`) on this machine, and whether live sign-ups stay fast while a large
//! back-fill runs (on the local stack, the lab's way), collects
//! the criterion micro-benchmarks and the Lambda zip sizes, and writes one JSON document.
//! `make bench` builds everything and runs it; `bench/render.py` turns the JSON into
//! docs/benchmarks.md and the plots. Nothing here asserts on time.
// The SDK futures nest deeply.
#![recursion_limit = "256"]

mod events;
mod fake_cognito;
mod fake_sqs;
mod fixed_endpoint;
mod isolation;
mod logs;
mod long_poll;
mod machine;
mod managed;
mod results;
mod signup;
mod stats;
mod strict;
mod sweep_scale;
mod throughput;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use results::{
    compact_number_arrays, criterion_results, merge_into_existing, splice_top_level, zip_sizes,
};
use serde_json::{Value, json};

#[derive(Parser)]
#[command(about = "UserConfirmed pipeline benchmarks (see docs/benchmarks.md)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the benchmarks and write the results as JSON.
    Run(RunArgs),
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scale {
    /// The published run (`make bench`): several minutes.
    Full,
    /// Tiny counts, to check the harness works (seconds).
    Smoke,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Section {
    Signup,
    Cold,
    Worker,
    /// The worker's strict mode (`VERIFY_USER=cognito`) against a fake Cognito.
    Strict,
    /// Lambda Managed Instances: several invocations per process (`AWS_LAMBDA_MAX_CONCURRENCY`).
    Managed,
    /// Log volume: bytes written per sign-up and per profile, and the worker's CPU beside it.
    Logs,
    /// Live sign-ups' lag, idle and beside a large `uc-ops backfill` (paced, then unpaced), on
    /// the local stack.
    Isolation,
    /// A sweep at pool scale: the reconciler's pass over a million users, fake Cognito and
    /// store, on a paced clock.
    Sweep,
}

impl Section {
    /// The key of its results in the JSON document.
    fn key(self) -> &'static str {
        match self {
            Self::Signup => "signup",
            Self::Cold => "coldStart",
            Self::Worker => "worker",
            Self::Strict => "strict",
            Self::Managed => "managedInstances",
            Self::Logs => "logs",
            Self::Isolation => "isolation",
            Self::Sweep => "sweep",
        }
    }
}

#[derive(clap::Args)]
struct RunArgs {
    #[arg(long, value_enum, default_value = "full")]
    scale: Scale,
    /// Where to write the JSON results.
    #[arg(long)]
    out: PathBuf,
    /// The emitter binary (a release build for published numbers).
    #[arg(long)]
    emitter: PathBuf,
    /// The worker binary.
    #[arg(long)]
    worker: PathBuf,
    /// The operations CLI (uc-ops), for the isolation section [default: next to --worker].
    #[arg(long)]
    ops: Option<PathBuf>,
    /// The baseline's Lambda bootstrap (bench/baseline/bootstrap); without it the baseline is skipped.
    #[arg(long)]
    baseline: Option<PathBuf>,
    /// Criterion's output directory (target/criterion), for the micro-benchmarks.
    #[arg(long)]
    criterion_dir: Option<PathBuf>,
    /// A Lambda artifact to report, as NAME=PATH (repeatable).
    #[arg(long = "zip", value_parser = parse_key_value)]
    zips: Vec<(String, PathBuf)>,
    /// A version to record, as NAME=VALUE (repeatable), e.g. cargo-lambda.
    #[arg(long = "version-of", value_parser = parse_version)]
    versions: Vec<(String, String)>,
    /// Only these sections (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Section>,
    /// Keep an existing --out document and replace only the sections measured now (with
    /// --only; the micro-benchmarks and zip sizes only when given). The document's run
    /// metadata stays that of its full run; the merge is recorded under "merges".
    #[arg(long)]
    merge: bool,
    /// The fake Cognito's AdminGetUser latency for the strict-mode runs, in ms (an assumption;
    /// default: the GraphQL endpoint's L).
    #[arg(long)]
    cognito_latency_ms: Option<u64>,
    /// Users the isolation section back-fills (default: 20,000 at full scale).
    #[arg(long)]
    isolation_users: Option<u64>,
    /// Seconds of live sign-ups per isolation phase (default: 75 at full scale).
    #[arg(long)]
    isolation_live_seconds: Option<f64>,
    /// How the binaries were built, recorded with the isolation section when it is not the
    /// root Cargo.toml's release profile (e.g. "release, LTO off").
    #[arg(long)]
    build_note: Option<String>,
}

fn parse_key_value(text: &str) -> Result<(String, PathBuf), String> {
    let (k, v) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not NAME=VALUE"))?;
    Ok((k.to_owned(), PathBuf::from(v)))
}

fn parse_version(text: &str) -> Result<(String, String), String> {
    let (k, v) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not NAME=VALUE"))?;
    Ok((k.to_owned(), v.to_owned()))
}

fn isolation_settings(scale: Scale) -> isolation::Settings {
    let full = scale == Scale::Full;
    isolation::Settings {
        backfill_users: if full { 20_000 } else { 40 },
        live_rate_per_second: 5.0,
        live_seconds: if full { 75.0 } else { 1.0 },
        lead_in_seconds: if full { 5.0 } else { 0.2 },
        appsync_latency_ms: 20,
        unpaced_rate: "unlimited".into(),
        create_concurrency: 16,
        warmup_sign_ups: if full { 10 } else { 2 },
        timeout_seconds: if full { 900 } else { 120 },
        queue_sample_seconds: if full { 2.0 } else { 0.2 },
        phases: vec![
            isolation::PhaseSpec::idle(),
            // The default pace, the whole back-fill: its duration and throughput.
            isolation::PhaseSpec::backfill("paced", None, false),
            // What the pacing prevents, and the pace below the default: the live window only.
            isolation::PhaseSpec::backfill("unpaced", Some("unlimited"), true),
            isolation::PhaseSpec::backfill("paced-25", Some("25"), true),
            isolation::PhaseSpec::backfill("paced-10", Some("10"), true),
            // Idle again: how far the machine drifted over the run (other work on it).
            isolation::PhaseSpec {
                name: "idle-again".into(),
                ..isolation::PhaseSpec::idle()
            },
        ],
        // 3,000 users: a minute at the default pace.
        reconcile_pages: if full { 50 } else { 1 },
        reconcile_paces: vec![
            (None, uc_ops::publish::DEFAULT_RATE),
            (Some("200".into()), 200.0),
        ],
    }
}

fn settings(scale: Scale) -> (signup::Settings, throughput::Settings, strict::Settings) {
    use signup::Condition;
    let full = scale == Scale::Full;
    let condition = |name: &str, latency: u64, errors: f64, n: usize, k: usize| Condition {
        name: name.into(),
        appsync_latency_ms: latency,
        error_fraction: errors,
        baseline_invocations: if full { n } else { 4 },
        baseline_instances: if full { k } else { 2 },
    };
    let signup = signup::Settings {
        runs: if full { 3 } else { 1 },
        emitter_invocations: if full { 1000 } else { 10 },
        warmup_invocations: if full { 30 } else { 3 },
        cold_starts: if full { 12 } else { 2 },
        conditions: if full {
            vec![
                condition("20 ms", 20, 0.0, 200, 1),
                condition("20 ms, 10 % errors", 20, 0.1, 200, 1),
                condition("500 ms", 500, 0.0, 100, 4),
                condition("2 s", 2000, 0.0, 60, 6),
            ]
        } else {
            vec![
                condition("20 ms", 20, 0.0, 4, 2),
                condition("20 ms, 10 % errors", 20, 0.1, 4, 2),
            ]
        },
    };
    let worker = throughput::Settings {
        latency_ms: 20,
        concurrency: if full {
            vec![1, 8, 32, 64, 128, 256]
        } else {
            vec![1, 8]
        },
        long_poll_concurrency: if full { vec![64, 128, 256] } else { vec![8] },
        sqs_round_trip_ms: 5,
        runs: if full { 3 } else { 1 },
        target_seconds: if full { 2.0 } else { 0.3 },
        min_messages: if full { 100 } else { 10 },
        max_messages: 16_000,
        max_batch: 2_000,
    };
    let strict = strict::Settings {
        appsync_latency_ms: worker.latency_ms,
        cognito_latency_ms: worker.latency_ms,
        concurrency: if full { vec![16, 64] } else { vec![4] },
        runs: worker.runs,
        target_seconds: worker.target_seconds,
        min_messages: worker.min_messages,
        max_messages: worker.max_messages,
        max_batch: worker.max_batch,
        // The worker accepts at most 10,000 (worker/src/config.rs).
        unbound_rps: 10_000,
        // uc_worker::config::DEFAULT_VERIFY_USER_RPS (the bench does not link the worker).
        default_rps: 12,
        paced_seconds: if full { 4.0 } else { 0.4 },
        cache_seconds: 300,
    };
    (signup, worker, strict)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let Cli {
        command: Command::Run(args),
    } = Cli::parse();
    let root = uc_devkit::workspace_root();
    let wanted = |s: Section| args.only.is_empty() || args.only.contains(&s);
    let ops = args
        .ops
        .clone()
        .unwrap_or_else(|| args.worker.with_file_name("uc-ops"));
    for path in [&args.emitter, &args.worker]
        .into_iter()
        .chain(args.baseline.as_ref())
        .chain(wanted(Section::Isolation).then_some(&ops))
    {
        anyhow::ensure!(path.exists(), "{} does not exist", path.display());
    }
    let (signup_settings, worker_settings, mut strict_settings) = settings(args.scale);
    if let Some(ms) = args.cognito_latency_ms {
        strict_settings.cognito_latency_ms = ms;
    }
    let started = Instant::now();
    let baseline_dir = args
        .baseline
        .as_ref()
        .and_then(|b| b.parent().map(Path::to_path_buf));
    let mut versions = machine::versions(&root, baseline_dir.as_deref(), &uc_devkit::python());
    for (name, value) in &args.versions {
        versions[name] = json!(value);
    }
    let mut doc = json!({
        "schema": 1,
        "scale": if args.scale == Scale::Full { "full" } else { "smoke" },
        "generatedAt": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "git": machine::git(&root),
        "machine": machine::machine(),
        "versions": versions,
        "build": {
            "profile": "release",
            "settings": "opt-level 3, lto fat, codegen-units 1, strip symbols, panic unwind (root Cargo.toml)",
            "emitter": args.emitter,
            "worker": args.worker,
        },
        "settings": {"signup": &signup_settings, "worker": &worker_settings},
    });

    let mut load = serde_json::Map::new();
    load.insert("start".into(), machine::loadavg());
    let functions = signup::Functions {
        emitter: args.emitter.clone(),
        baseline: args.baseline.clone(),
    };
    if wanted(Section::Signup) || wanted(Section::Cold) {
        eprintln!("starting moto and the AppSync stand-in");
        let stack = signup::Stack::start().await;
        if wanted(Section::Signup) {
            eprintln!("sign-up path: emitter vs baseline vs PutEvents floor");
            let (conditions, rss) = signup::run(&stack, &functions, &signup_settings).await;
            doc["signup"] = json!({ "conditions": conditions, "memory": rss });
            load.insert("afterSignup".into(), machine::loadavg());
        }
        if wanted(Section::Cold) {
            eprintln!("cold starts");
            let cold = signup::cold_starts(&stack, &functions, signup_settings.cold_starts).await;
            eprintln!(
                "  emitter p50 {:.1} ms, baseline p50 {:?} ms",
                cold.emitter_summary.p50,
                cold.baseline_summary.as_ref().map(|s| s.p50)
            );
            doc["coldStart"] = json!(cold);
            load.insert("afterColdStart".into(), machine::loadavg());
        }
    }
    if wanted(Section::Worker) {
        eprintln!("worker throughput against a fixed-latency endpoint");
        let levels = throughput::run(&args.worker, &worker_settings).await;
        eprintln!("worker throughput in long-poll mode against a fake SQS queue");
        let long_poll = long_poll::run(
            &args.worker,
            &worker_settings,
            &worker_settings.long_poll_concurrency,
            Duration::from_millis(worker_settings.sqs_round_trip_ms),
        )
        .await;
        doc["worker"] = json!({
            "latencyMs": worker_settings.latency_ms,
            "levels": levels,
            "longPoll": long_poll,
        });
        load.insert("afterWorker".into(), machine::loadavg());
    }
    if wanted(Section::Managed) {
        eprintln!("Lambda Managed Instances: several invocations per process");
        let settings = managed::Settings {
            max_concurrency: if args.scale == Scale::Full {
                vec![1, 4, 16]
            } else {
                vec![2]
            },
            put_events_latency_ms: 10,
            graphql_latency_ms: worker_settings.latency_ms,
            worker_batch: 10,
            target_seconds: if args.scale == Scale::Full { 2.0 } else { 0.2 },
        };
        let levels = managed::run(&args.emitter, &args.worker, &settings).await;
        doc["managedInstances"] = json!({ "settings": settings, "levels": levels });
        load.insert("afterManaged".into(), machine::loadavg());
    }
    if wanted(Section::Logs) {
        eprintln!("log volume per sign-up and per profile");
        let full = args.scale == Scale::Full;
        let settings = logs::Settings {
            emitter_invocations: if full { 500 } else { 5 },
            worker_messages: if full { 5000 } else { 40 },
            batch: 10,
            concurrency: 64,
            latency_ms: worker_settings.latency_ms,
        };
        doc["logs"] = json!(logs::run(&args.emitter, &args.worker, &settings).await);
        load.insert("afterLogs".into(), machine::loadavg());
    }
    if wanted(Section::Strict) {
        eprintln!("strict mode (VERIFY_USER=cognito) against a fixed-latency fake Cognito");
        let strict_started = Instant::now();
        let load_before = machine::loadavg();
        let report = strict::run(&args.worker, &strict_settings).await;
        // Its own run record, so the section can be measured (and merged) on its own.
        doc["strict"] = json!({
            "run": {
                "generatedAt": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                "git": machine::git(&root),
                "scale": doc["scale"],
                "worker": args.worker,
                "durationSeconds": strict_started.elapsed().as_secs(),
                "loadBefore": load_before,
                "loadAfter": machine::loadavg(),
            },
            "settings": strict_settings,
            "levels": report.levels,
            "cognito": report.cognito,
        });
        load.insert("afterStrict".into(), machine::loadavg());
    }
    if wanted(Section::Sweep) {
        eprintln!("a sweep at pool scale (fake Cognito and store, paced clock)");
        let full = args.scale == Scale::Full;
        let settings = sweep_scale::Settings {
            users: if full { 1_000_000 } else { 6_000 },
            // The default, and Cognito's default UserList quota (the category of ListUsers).
            list_rates: vec![uc_ops::reconcile::DEFAULT_LIST_RATE, 30.0],
            publish_rate: uc_ops::publish::DEFAULT_RATE,
            missing_one_in: 1_000,
        };
        let started = Instant::now();
        let runs = {
            let settings = settings.clone();
            tokio::task::spawn_blocking(move || sweep_scale::run(&settings)).await??
        };
        doc["sweep"] = json!({
            "run": {
                "generatedAt": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                "git": machine::git(&root),
                "scale": doc["scale"],
                "durationSeconds": started.elapsed().as_secs(),
                "build": if cfg!(debug_assertions) { "debug" } else { "release" },
            },
            "settings": settings,
            "runs": runs,
        });
        load.insert("afterSweep".into(), machine::loadavg());
    }
    if wanted(Section::Isolation) {
        eprintln!("live sign-ups beside a back-fill, on the local stack");
        let started = Instant::now();
        let load_before = machine::loadavg();
        // The code measured: the tree as the section starts (edits while it runs are not).
        let git = machine::git(&root);
        let mut settings = isolation_settings(args.scale);
        if let Some(users) = args.isolation_users {
            settings.backfill_users = users;
        }
        if let Some(seconds) = args.isolation_live_seconds {
            settings.live_seconds = seconds;
        }
        let bins = isolation::Binaries {
            emitter: args.emitter.clone(),
            worker: args.worker.clone(),
            ops: ops.clone(),
        };
        let report = isolation::run(&bins, &settings, uc_ops::publish::DEFAULT_RATE)
            .await
            .context("isolation")?;
        let profile = |p: &Path| {
            if p.components().any(|c| c.as_os_str() == "release") {
                "release"
            } else {
                "debug"
            }
        };
        // Its own run record, so the section can be measured (and merged) on its own.
        doc["isolation"] = json!({
            "run": {
                "generatedAt": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                "git": git,
                "scale": doc["scale"],
                "binaries": {"emitter": bins.emitter, "worker": bins.worker, "ops": bins.ops},
                "build": profile(&bins.worker),
                "buildNote": args.build_note,
                "cores": doc["machine"]["cores"],
                "durationSeconds": started.elapsed().as_secs(),
                "loadBefore": load_before,
                "loadAfter": machine::loadavg(),
                "backfillDefaultRate": uc_ops::publish::DEFAULT_RATE,
            },
            "settings": settings,
            "report": report,
        });
        load.insert("afterIsolation".into(), machine::loadavg());
    }
    if let Some(dir) = &args.criterion_dir {
        doc["micro"] = criterion_results(dir);
    }
    doc["artifacts"] = zip_sizes(&args.zips);
    doc["loadAverage"] = Value::Object(load);
    doc["durationSeconds"] = json!(started.elapsed().as_secs());
    let text = if args.merge {
        let existing = std::fs::read_to_string(&args.out)
            .with_context(|| format!("--merge: read {}", args.out.display()))?;
        let merged = merge_into_existing(&existing, doc, &args, started.elapsed().as_secs())
            .with_context(|| format!("--merge into {}", args.out.display()))?;
        splice_top_level(&existing, &merged)?
    } else {
        compact_number_arrays(&serde_json::to_string_pretty(&doc)?)
    };

    if let Some(parent) = args.out.parent() {
        std::fs::create_dir_all(parent).ok();
    }
    std::fs::write(&args.out, text).with_context(|| format!("write {}", args.out.display()))?;
    eprintln!(
        "wrote {} in {:.0} s",
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
