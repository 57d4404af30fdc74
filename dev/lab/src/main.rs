//! `uc-lab`: the local stack (`local up|down|status`), the demo and the chaos run, for
//! development in a checkout. The operator's commands are `uc-ops`'s.
// The SDK futures nest deeply enough to pass the default limit.
#![recursion_limit = "256"]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use uc_lab::chaos::{self, ChaosOptions};
use uc_lab::demo::{self, DemoOptions};
use uc_lab::local::{self, StackEnv};

#[derive(Parser)]
#[command(
    version,
    about = "The UserConfirmed pipeline's lab: the local stack, the demo and the chaos run"
)]
struct Cli {
    /// Where the local stack keeps its env file and logs.
    #[arg(long, global = true, env = "UC_STATE_DIR")]
    state_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The local stack: moto server and a GraphQL backend on loopback, resources from the template.
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
}

#[derive(Subcommand)]
enum LocalAction {
    /// Start the stack (safe to re-run) and write its env file.
    Up {
        /// Make the resources from the CDK construct's synthesized template
        /// (infra/cdk/uc-pipeline.template.json) instead of the SAM template.
        #[arg(long)]
        from_construct: bool,
        /// What serves GraphQL: `standin` (our AppSync stand-in, which verifies SigV4) or
        /// `amplify` (Amplify's AppSync simulator running the resolvers Amplify's GraphQL
        /// transformer generates for the seeds' model, on moto's DynamoDB; it does not verify
        /// SigV4 signatures).
        #[arg(long, env = "UC_LAB_GRAPHQL", default_value = "standin")]
        graphql: String,
    },
    /// Stop exactly the processes `up` started.
    Down,
    /// Show the stack's processes and endpoints.
    Status,
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

fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let state_dir = cli.state_dir.unwrap_or_else(local::default_state_dir);
    let exact = match cli.command {
        Command::Local {
            action:
                LocalAction::Up {
                    from_construct,
                    graphql,
                },
        } => {
            let template = if from_construct {
                local::Template::Construct
            } else {
                local::Template::Sam
            };
            let backend = local::GraphqlBackend::parse(&graphql)?;
            let env = local::up_with(&state_dir, template, backend).await?;
            println!("local stack up; env file: {}", env.file.display());
            for line in local::status(&state_dir)? {
                println!("  {line}");
            }
            true
        }
        Command::Local {
            action: LocalAction::Down,
        } => {
            let stopped = local::down(&state_dir)?;
            println!("local stack down (stopped pids {stopped:?})");
            true
        }
        Command::Local {
            action: LocalAction::Status,
        } => {
            for line in local::status(&state_dir)? {
                println!("{line}");
            }
            true
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
            report.is_exact()
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
            report.is_exact()
        }
    };
    Ok(if exact {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
