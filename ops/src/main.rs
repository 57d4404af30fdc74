//! `uc-ops`: the operations CLI. Configuration comes from the same variables as the functions
//! (`DLQ_URL`, `QUEUE_URL`, `APPSYNC_GRAPHQL_URL`, `AWS_ENDPOINT_URL`, …), optionally read from
//! an env file (`--env-file .local/stack.env` for the local stack). Each command lives in its
//! own module under `cli/`; this file parses the arguments and dispatches.
// The SDK futures nest deeply enough to pass the default limit.
#![recursion_limit = "256"]

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use cli::Outcome;
use cli::attach::{self, AttachArgs};
use cli::backfill::{self, BackfillArgs};
use cli::dlq::{self, DlqArgs};
use cli::events::{self, EventsArgs};

#[derive(Parser)]
#[command(
    version,
    about = "Operate the UserConfirmed pipeline: DLQs, back-fill, attaching the trigger"
)]
struct Cli {
    /// Read variables (DLQ_URL, QUEUE_URL, AWS_ENDPOINT_URL, …) from this file; the process
    /// environment wins over it. The local stack writes .local/stack.env.
    #[arg(long, global = true, env = "UC_ENV_FILE")]
    env_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Inspect, replay or redrive the dead-letter queues.
    Dlq(DlqArgs),
    /// Publish UserConfirmed (origin "backfill") for users the trigger never saw.
    Backfill(BackfillArgs),
    /// Make the emitter the pool's PostConfirmation trigger, keeping every other setting.
    AttachTrigger(AttachArgs),
    /// The bus's consumers, and archive replays to chosen consumers' rules only.
    Events(EventsArgs),
}

fn main() -> anyhow::Result<ExitCode> {
    // Read before clap, so the file's variables can fill clap's `env` defaults.
    let args: Vec<String> = std::env::args().collect();
    let env_file = uc_ops::env_file::from_args(&args)
        .or_else(|| std::env::var_os("UC_ENV_FILE").map(PathBuf::from));
    if let Some(file) = env_file {
        // SAFETY: no other thread exists yet; the runtime starts below.
        unsafe { cli::load_env_file(&file)? };
    }
    let cli = Cli::parse();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(cli.command))
}

/// Runs `command`, prints its report, and turns the outcome into the exit code.
async fn run(command: Command) -> anyhow::Result<ExitCode> {
    let sdk = aws_config::load_from_env().await;
    let (text, succeeded) = match command {
        Command::Dlq(args) => {
            let report = dlq::run(&args, &sdk).await?;
            (dlq::render(&report, args.json())?, report.succeeded())
        }
        Command::Backfill(args) => {
            let report = backfill::run(&args, &sdk).await?;
            (backfill::render(&report, args.json)?, report.succeeded())
        }
        Command::AttachTrigger(args) => {
            let report = attach::run(&args, &sdk).await?;
            (attach::render(&report, args.json)?, report.succeeded())
        }
        Command::Events(args) => {
            let report = events::run(&args, &sdk).await?;
            (events::render(&report, args.json())?, report.succeeded())
        }
    };
    print!("{text}");
    Ok(if succeeded {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
