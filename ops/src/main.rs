//! `uc-ops`: the operations CLI. Configuration comes from the same variables as the functions
//! (`DLQ_URL`, `QUEUE_URL`, `APPSYNC_GRAPHQL_URL`, `AWS_ENDPOINT_URL`, …), optionally read from
//! an env file (`--env-file .local/stack.env` for the local stack).
// The SDK futures nest deeply enough to pass the default limit.
#![recursion_limit = "256"]

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use uc_ops::attach;
use uc_ops::backfill::{self, BackfillOptions, Target};
use uc_ops::chaos::{self, ChaosOptions};
use uc_ops::demo::{self, DemoOptions};
use uc_ops::dlq::{self, Filter, ReplayOptions};
use uc_ops::local::{self, StackEnv};

#[derive(Parser)]
#[command(
    version,
    about = "Operate the UserConfirmed pipeline: local stack and demo, DLQs, back-fill, trigger"
)]
struct Cli {
    /// Read variables (DLQ_URL, QUEUE_URL, AWS_ENDPOINT_URL, …) from this file; the process
    /// environment wins over it. The local stack writes .local/stack.env.
    #[arg(long, global = true, env = "UC_ENV_FILE")]
    env_file: Option<PathBuf>,
    /// Where the local stack keeps its env file and logs.
    #[arg(long, global = true, env = "UC_STATE_DIR")]
    state_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The local stack: moto server and the AppSync stand-in on loopback, resources from the template.
    Local {
        #[command(subcommand)]
        action: LocalAction,
    },
    /// Run the whole pipeline on the local stack and report.
    Demo {
        /// Users to sign up and confirm.
        #[arg(long, env = "USERS", default_value_t = 300)]
        users: usize,
        /// Users who also reset their password (default: one in twenty).
        #[arg(long)]
        resets: Option<usize>,
        /// Give up waiting for profiles after this long.
        #[arg(long, default_value_t = 180)]
        timeout_seconds: u64,
        /// Print the report as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Thousands of sign-ups through the local pipeline under faults; exit 1 unless every
    /// confirmed user ends with exactly one profile.
    Chaos {
        #[arg(long, default_value_t = 5000)]
        users: usize,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Worker SIGKILLs while sign-ups flow.
        #[arg(long, default_value_t = 5)]
        kills: usize,
        #[arg(long, default_value_t = 600)]
        timeout_seconds: u64,
        #[arg(long)]
        json: bool,
    },
    /// Inspect, replay or redrive the dead-letter queues.
    Dlq {
        #[command(subcommand)]
        action: DlqAction,
    },
    /// Publish UserConfirmed (origin "backfill") for users the trigger never saw.
    Backfill(BackfillArgs),
    /// Make the emitter the pool's PostConfirmation trigger, keeping every other setting.
    AttachTrigger {
        /// The emitter function's ARN (the template's EmitterFunctionArn output).
        #[arg(long)]
        function_arn: String,
        #[arg(long, env = "USER_POOL_ID")]
        user_pool_id: String,
        /// Replace a different existing PostConfirmation trigger.
        #[arg(long)]
        force: bool,
        /// Print the change and stop.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand)]
enum LocalAction {
    /// Start the stack (safe to re-run) and write its env file.
    Up,
    /// Stop exactly the processes `up` started.
    Down,
    /// Show the stack's processes and endpoints.
    Status,
}

#[derive(Clone, Copy, ValueEnum)]
enum Which {
    /// The worker's DLQ (DLQ_URL).
    Worker,
    /// The rule-target DLQ (RULE_DLQ_URL): events EventBridge could not deliver.
    Rule,
}

#[derive(Args)]
struct Queues {
    #[arg(long, env = "DLQ_URL")]
    dlq_url: Option<String>,
    #[arg(long, env = "RULE_DLQ_URL")]
    rule_dlq_url: Option<String>,
}

impl Queues {
    fn url(&self, which: Which) -> anyhow::Result<&str> {
        match which {
            Which::Worker => self
                .dlq_url
                .as_deref()
                .context("the worker DLQ is not configured: set DLQ_URL or --dlq-url"),
            Which::Rule => self.rule_dlq_url.as_deref().context(
                "the rule-target DLQ is not configured: set RULE_DLQ_URL or --rule-dlq-url",
            ),
        }
    }
}

#[derive(Subcommand)]
enum DlqAction {
    /// Depth, oldest message age and counts by failure reason, for both DLQs.
    Stats {
        #[command(flatten)]
        queues: Queues,
        #[arg(long)]
        json: bool,
    },
    /// List messages, decoded, without keeping them (visibility is restored at once).
    Peek {
        #[command(flatten)]
        queues: Queues,
        #[arg(long, value_enum, default_value = "worker")]
        queue: Which,
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Also print email addresses.
        #[arg(long)]
        show_pii: bool,
        #[arg(long)]
        json: bool,
    },
    /// Process DLQ messages in place with the worker's core: successes are deleted, failures
    /// stay with their reason updated.
    Replay {
        #[command(flatten)]
        queues: Queues,
        #[arg(long, value_enum, default_value = "worker")]
        queue: Which,
        /// Count what would be replayed; call nothing, change nothing.
        #[arg(long)]
        dry_run: bool,
        #[arg(long, default_value_t = usize::MAX)]
        limit: usize,
        /// Messages per second, at most.
        #[arg(long)]
        rate: Option<f64>,
        /// Only messages with this sub or reason: sub=<sub> or reason=<reason>.
        #[arg(long)]
        filter: Option<Filter>,
        #[arg(long)]
        json: bool,
    },
    /// Move messages back to the worker's queue for the normal path.
    Redrive {
        #[command(flatten)]
        queues: Queues,
        #[arg(long, value_enum, default_value = "worker")]
        queue: Which,
        #[arg(long, env = "QUEUE_URL")]
        queue_url: Option<String>,
        /// Use SQS's StartMessageMoveTask (returns messages to their source queue).
        #[arg(long)]
        native: bool,
        #[arg(long, default_value_t = usize::MAX)]
        limit: usize,
        /// Messages per second, at most.
        #[arg(long)]
        rate: Option<f64>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
struct BackfillArgs {
    #[arg(long, env = "USER_POOL_ID")]
    user_pool_id: String,
    /// Only users created on or after this date (YYYY-MM-DD or RFC 3339).
    #[arg(long)]
    since: Option<String>,
    /// The cognito:user_status to select.
    #[arg(long, default_value = "CONFIRMED")]
    status: String,
    /// Send to the worker's queue (QUEUE_URL) instead of EventBridge.
    #[arg(long)]
    direct: bool,
    #[arg(long, env = "EVENT_BUS_NAME")]
    event_bus: Option<String>,
    #[arg(long, env = "EVENT_SOURCE", default_value = uc_schemas::DEFAULT_SOURCE)]
    source: String,
    #[arg(long, env = "QUEUE_URL")]
    queue_url: Option<String>,
    /// Count what would be published; publish nothing.
    #[arg(long)]
    dry_run: bool,
    /// Where the next page token is saved; a later run resumes from it.
    #[arg(long, default_value = "backfill.checkpoint.json")]
    checkpoint: PathBuf,
    /// Stop after this many pages (resume later from the checkpoint).
    #[arg(long)]
    max_pages: Option<usize>,
    /// Users per second, at most.
    #[arg(long)]
    rate: Option<f64>,
    #[arg(long)]
    json: bool,
}

fn sibling_binary(name: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::current_exe()?.with_file_name(name);
    anyhow::ensure!(
        path.exists(),
        "{} not found: build the workspace first (cargo build)",
        path.display()
    );
    Ok(path)
}

fn progress(json: bool, message: &'static str, len: Option<u64>) -> ProgressBar {
    if json {
        return ProgressBar::hidden();
    }
    let bar = match len {
        Some(len) => ProgressBar::new(len),
        None => ProgressBar::new_spinner(),
    };
    let template = if len.is_some() {
        "  {msg} [{bar:30}] {pos}/{len} {elapsed}"
    } else {
        "  {spinner} {msg}: {pos} {elapsed}"
    };
    bar.set_style(ProgressStyle::with_template(template).expect("valid template"));
    bar.set_message(message);
    bar
}

fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Loads `file` into the process environment, without overriding what is already set. Runs
/// before any thread exists, which is what makes `set_var` sound.
fn load_env_file(file: &Path) -> anyhow::Result<()> {
    let env = StackEnv::load(file).with_context(|| format!("reading {}", file.display()))?;
    for (key, value) in env.vars {
        if std::env::var_os(&key).is_none() {
            // SAFETY: called from `main` before the runtime (or any other thread) starts.
            unsafe { std::env::set_var(key, value) };
        }
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    // Read before clap, so the file's variables can fill clap's `env` defaults.
    let args: Vec<String> = std::env::args().collect();
    let from_args = args
        .iter()
        .enumerate()
        .find_map(|(i, a)| match a.strip_prefix("--env-file") {
            Some("") => args.get(i + 1).cloned(),
            Some(rest) => rest.strip_prefix('=').map(str::to_owned),
            None => None,
        });
    if let Some(file) = from_args
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("UC_ENV_FILE").map(PathBuf::from))
    {
        load_env_file(&file)?;
    }
    let cli = Cli::parse();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let state_dir = cli
        .state_dir
        .clone()
        .unwrap_or_else(local::default_state_dir);
    let sdk = || aws_config::load_from_env();
    match cli.command {
        Command::Local {
            action: LocalAction::Up,
        } => {
            let env = local::up(&state_dir).await?;
            println!("local stack up; env file: {}", env.file.display());
            for line in local::status(&state_dir)? {
                println!("  {line}");
            }
        }
        Command::Local {
            action: LocalAction::Down,
        } => {
            let stopped = local::down(&state_dir)?;
            println!("local stack down (stopped pids {stopped:?})");
        }
        Command::Local {
            action: LocalAction::Status,
        } => {
            for line in local::status(&state_dir)? {
                println!("{line}");
            }
        }
        Command::Demo {
            users,
            resets,
            timeout_seconds,
            json,
        } => {
            let env = StackEnv::load(&local::env_file(&state_dir))?;
            let options = DemoOptions {
                users,
                resets: resets.unwrap_or(users.div_ceil(20)),
                timeout: Duration::from_secs(timeout_seconds),
                emitter_bin: sibling_binary("uc-emitter")?,
                worker_bin: sibling_binary("uc-worker")?,
                show_progress: !json,
            };
            if !json {
                println!(
                    "Demo: {users} sign-ups through the local pipeline (emitter under a Lambda Runtime API, worker long-polling)"
                );
            }
            let report = demo::run(env, &options).await.context("demo failed")?;
            if json {
                print_json(&report)?;
            } else {
                print!("{}", demo::render(&report));
            }
            if !report.is_exact() {
                std::process::exit(1);
            }
        }
        Command::Chaos {
            users,
            seed,
            kills,
            timeout_seconds,
            json,
        } => {
            let env = StackEnv::load(&local::env_file(&state_dir))?;
            let options = ChaosOptions {
                users,
                seed,
                kills,
                emitter_bin: sibling_binary("uc-emitter")?,
                worker_bin: sibling_binary("uc-worker")?,
                show_progress: !json,
                timeout: Duration::from_secs(timeout_seconds),
            };
            if !json {
                println!(
                    "Chaos: {users} sign-ups, seed {seed}, {kills} worker SIGKILLs, AppSync faults, duplicates, an EventBridge outage"
                );
            }
            let report = chaos::run(env, &options)
                .await
                .context("chaos run failed")?;
            if json {
                print_json(&report)?;
            } else {
                print!("{}", chaos::render(&report));
            }
            if !report.is_exact() {
                std::process::exit(1);
            }
        }
        Command::Dlq { action } => {
            let sqs = aws_sdk_sqs::Client::new(&sdk().await);
            match action {
                DlqAction::Stats { queues, json } => {
                    let mut all = Vec::new();
                    for which in [Which::Worker, Which::Rule] {
                        if let Ok(url) = queues.url(which) {
                            all.push(dlq::stats(&sqs, url, 10_000).await?);
                        }
                    }
                    anyhow::ensure!(
                        !all.is_empty(),
                        "no DLQ configured: set DLQ_URL and/or RULE_DLQ_URL"
                    );
                    if json {
                        print_json(&all)?;
                    } else {
                        for stats in all {
                            let age = stats
                                .oldest_age_seconds
                                .map(|s| format!("{s} s"))
                                .unwrap_or_else(|| "–".into());
                            println!(
                                "{}\n  depth {} (+{} in flight), oldest {age}",
                                stats.queue_url, stats.depth, stats.in_flight
                            );
                            for (reason, count) in stats.by_reason {
                                println!("  {count:>6}  {reason}");
                            }
                        }
                    }
                }
                DlqAction::Peek {
                    queues,
                    queue,
                    limit,
                    show_pii,
                    json,
                } => {
                    let rows = dlq::peek(&sqs, queues.url(queue)?, limit, show_pii).await?;
                    if json {
                        print_json(&rows)?;
                    } else {
                        println!(
                            "{:<38} {:<38} {:<24} {:>5} {:>8}",
                            "sub", "username", "reason", "recv", "age (s)"
                        );
                        for r in rows {
                            println!(
                                "{:<38} {:<38} {:<24} {:>5} {:>8}{}",
                                r.sub.unwrap_or_else(|| "(unparseable)".into()),
                                r.username.unwrap_or_default(),
                                r.reason,
                                r.receive_count,
                                r.age_seconds.map(|a| a.to_string()).unwrap_or_default(),
                                r.email.map(|e| format!("  {e}")).unwrap_or_default(),
                            );
                        }
                    }
                }
                DlqAction::Replay {
                    queues,
                    queue,
                    dry_run,
                    limit,
                    rate,
                    filter,
                    json,
                } => {
                    let url = queues.url(queue)?.to_owned();
                    let mut config = uc_worker::WorkerConfig::from_env()?;
                    // Failures go back to the DLQ they came from, with their reason updated.
                    config.dlq_url = Some(url.clone());
                    let sdk = sdk().await;
                    let worker = uc_worker::build_worker(&config, &sdk).await?;
                    let sink = uc_worker::SqsDeadLetters::new(sqs.clone(), url.clone());
                    let options = ReplayOptions {
                        limit,
                        rate,
                        filter: filter.unwrap_or(Filter::All),
                        dry_run,
                    };
                    if !json {
                        println!(
                            "{} {url} (filter {:?}, limit {}, rate {}){}",
                            if dry_run {
                                "Would replay messages from"
                            } else {
                                "Replaying messages from"
                            },
                            options.filter,
                            if limit == usize::MAX {
                                "none".into()
                            } else {
                                limit.to_string()
                            },
                            rate.map(|r| format!("{r}/s"))
                                .unwrap_or_else(|| "unlimited".into()),
                            if dry_run {
                                "; dry run: nothing is called or changed"
                            } else {
                                ""
                            },
                        );
                    }
                    let bar = progress(json, "replayed", None);
                    let summary = dlq::replay(&sqs, &url, &worker, &sink, &options, |s| {
                        bar.set_position(s.examined as u64)
                    })
                    .await?;
                    bar.finish_and_clear();
                    if json {
                        print_json(&summary)?;
                    } else {
                        println!(
                            "examined {}, created {}, already existed {}, still failing {} {:?}, skipped by filter {}",
                            summary.examined,
                            summary.created,
                            summary.already_existed,
                            summary.still_failing,
                            summary.failures_by_reason,
                            summary.skipped_by_filter
                        );
                    }
                    if !summary.succeeded() {
                        std::process::exit(1);
                    }
                }
                DlqAction::Redrive {
                    queues,
                    queue,
                    queue_url,
                    native,
                    limit,
                    rate,
                    json,
                } => {
                    let dlq_url = queues.url(queue)?.to_owned();
                    if native {
                        let arn = dlq::queue_arn(&sqs, &dlq_url).await?;
                        let handle =
                            dlq::redrive_native(&sqs, dlq::native_move_request(&arn, None, rate))
                                .await?;
                        println!(
                            "started SQS message move task {handle} from {arn} back to its source queue"
                        );
                        return Ok(());
                    }
                    let target = queue_url.context(
                        "the worker queue is not configured: set QUEUE_URL or --queue-url",
                    )?;
                    if !json {
                        println!(
                            "Moving messages from {dlq_url} to {target} (send, then delete: a crash duplicates at worst)"
                        );
                    }
                    let bar = progress(json, "moved", None);
                    let summary = dlq::redrive(&sqs, &dlq_url, &target, limit, rate, |s| {
                        bar.set_position(s.moved as u64)
                    })
                    .await?;
                    bar.finish_and_clear();
                    if json {
                        print_json(&summary)?;
                    } else {
                        println!("moved {}, failed {}", summary.moved, summary.failed);
                    }
                    if summary.failed > 0 {
                        std::process::exit(1);
                    }
                }
            }
        }
        Command::Backfill(args) => {
            let sdk = sdk().await;
            let since = args.since.as_deref().map(parse_since).transpose()?;
            let target = if args.direct {
                Target::Queue {
                    url: args
                        .queue_url
                        .context("--direct needs QUEUE_URL or --queue-url")?,
                    source: args.source.clone(),
                }
            } else {
                Target::EventBridge {
                    bus: args
                        .event_bus
                        .context("set EVENT_BUS_NAME or --event-bus (or use --direct)")?,
                    source: args.source.clone(),
                }
            };
            let options = BackfillOptions {
                user_pool_id: args.user_pool_id,
                region: sdk.region().map(|r| r.to_string()).unwrap_or_default(),
                since,
                status: args.status,
                target,
                dry_run: args.dry_run,
                checkpoint: args.checkpoint,
                max_pages: args.max_pages,
                rate: args.rate,
            };
            if !args.json {
                println!(
                    "{} users of {} with status {}{} to {:?}; checkpoint {}",
                    if options.dry_run {
                        "Counting (dry run)"
                    } else {
                        "Publishing UserConfirmed for"
                    },
                    options.user_pool_id,
                    options.status,
                    options
                        .since
                        .map(|s| format!(" created since {s}"))
                        .unwrap_or_default(),
                    options.target,
                    options.checkpoint.display()
                );
            }
            let clients = backfill::Clients {
                cognito: aws_sdk_cognitoidentityprovider::Client::new(&sdk),
                events: aws_sdk_eventbridge::Client::new(&sdk),
                sqs: aws_sdk_sqs::Client::new(&sdk),
            };
            let bar = progress(args.json, "users", None);
            let summary =
                backfill::run(&clients, &options, |s| bar.set_position(s.selected as u64)).await?;
            bar.finish_and_clear();
            if args.json {
                print_json(&summary)?;
            } else {
                println!(
                    "listed {}, selected {}, published {}, failed {}, pages {}{}{}",
                    summary.listed,
                    summary.selected,
                    summary.published,
                    summary.failed,
                    summary.pages,
                    if summary.resumed {
                        ", resumed from checkpoint"
                    } else {
                        ""
                    },
                    if summary.complete {
                        ", complete"
                    } else {
                        ", NOT complete: run again to resume"
                    },
                );
            }
            if summary.failed > 0 {
                std::process::exit(1);
            }
        }
        Command::AttachTrigger {
            function_arn,
            user_pool_id,
            force,
            dry_run,
        } => {
            let cognito = aws_sdk_cognitoidentityprovider::Client::new(&sdk().await);
            let pool = attach::describe(&cognito, &user_pool_id).await?;
            let plan = attach::plan(&pool, &function_arn, force)?;
            print!("{}", plan.describe(&pool));
            match plan {
                attach::Plan::AlreadyAttached => {}
                attach::Plan::Attach { .. } if dry_run => println!("dry run: nothing changed"),
                attach::Plan::Attach { request, .. } => {
                    attach::apply(&cognito, *request).await?;
                    println!(
                        "attached. Make sure the function allows cognito-idp.amazonaws.com to invoke it for this pool (the template's permission does)."
                    );
                }
            }
        }
    }
    Ok(())
}

fn parse_since(text: &str) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    let date = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .with_context(|| format!("--since {text:?}: expected YYYY-MM-DD or RFC 3339"))?;
    Ok(date
        .and_hms_opt(0, 0, 0)
        .expect("midnight exists")
        .and_utc())
}
