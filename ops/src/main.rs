//! `uc-ops`: the operations CLI. Configuration comes from the same variables as the functions
//! (`DLQ_URL`, `QUEUE_URL`, `APPSYNC_GRAPHQL_URL`, `AWS_ENDPOINT_URL`, …), optionally read from
//! an env file (`--env-file .local/stack.env` for the local stack). Each command lives in its
//! own module under `cli/`; this file parses the arguments, dispatches, prints, and turns the
//! outcome into the exit code: 0 done (or nothing wrong found), 1 the command's own check
//! failed (messages left, profiles missing, …), 2 it could not do what was asked (usage,
//! configuration, an AWS error, an audit that cannot tell).
// The SDK futures nest deeply enough to pass the default limit.
#![recursion_limit = "256"]

mod cli;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use cli::Outcome;
use cli::attach::{self, AttachArgs};
use cli::audit::{self, AuditArgs};
use cli::backfill::{self, BackfillArgs};
use cli::dlq::{self, DlqArgs};
use cli::events::{self, EventsArgs};
use cli::orphans;
use cli::reconcile::{self, ReconcileArgs};
use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::{FilterExt, filter_fn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, fmt};

/// Could not do what was asked.
const EXIT_ERROR: u8 = 2;

#[derive(Parser)]
#[command(
    version,
    about = "Operate the UserConfirmed pipeline: DLQs, back-fill, audit, reconciliation and the orphan sweep, attaching the trigger",
    after_help = "Exit status: 0 done, 1 the command's check failed (messages left, profiles missing), 2 could not run (usage, configuration, AWS error) or refused to (the orphan sweep's guard)."
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
    /// Compare the pool's users with the profiles: exits 1 while any profile is missing.
    Audit(AuditArgs),
    /// One reconciliation pass: publish UserConfirmed (origin "reconciliation") for users
    /// changed since the watermark. The scheduled uc-reconciler runs the same pass. With
    /// --orphans, the orphan sweep: erase the profiles whose user is gone, guarded.
    Reconcile(ReconcileArgs),
    /// Make the emitter the pool's PostConfirmation trigger, keeping every other setting.
    AttachTrigger(AttachArgs),
    /// The bus's consumers, and archive replays to chosen consumers' rules only.
    Events(EventsArgs),
}

/// Logs on stderr (stdout is the report): `RUST_LOG`, default `warn`, through the functions'
/// filter ([`uc_runtime::logs::filter`]): every crate but ours capped at WARN, so no level
/// prints a request body.
fn init_logs() {
    // The SDK's "failed to load region from IMDS" warnings (two of ~780 bytes, off EC2) say
    // what the one-line "no AWS region" error below says.
    let imds_region = filter_fn(|meta| !meta.target().starts_with("aws_config::imds::region"));
    let layer = fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(true)
        .with_filter(uc_runtime::logs::filter(LevelFilter::WARN).and(imds_region));
    let _ = tracing_subscriber::registry().with(layer).try_init();
}

/// One line on stderr; a closed stderr is ignored.
fn print_error(error: &anyhow::Error) {
    // `{:#}` joins the causes on one line; any line break inside one becomes "; ", and
    // terminal_safe keeps the line a line.
    let joined = format!("{error:#}")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    let text = uc_ops::text::terminal_safe(&joined);
    let _ = writeln!(std::io::stderr().lock(), "error: {text}");
}

fn main() -> ExitCode {
    // Read before clap, so the file's variables can fill clap's `env` defaults.
    let args: Vec<String> = std::env::args().collect();
    let env_file = uc_ops::env_file::from_args(&args)
        .or_else(|| std::env::var_os("UC_ENV_FILE").map(PathBuf::from));
    if let Some(file) = env_file {
        // SAFETY: no other thread exists yet; the runtime starts below.
        if let Err(error) = unsafe { cli::load_env_file(&file) } {
            print_error(&error.into());
            return ExitCode::from(EXIT_ERROR);
        }
    }
    let cli = Cli::parse();
    init_logs();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            print_error(&error.into());
            return ExitCode::from(EXIT_ERROR);
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok((text, code)) => {
            print_report(&text);
            ExitCode::from(code)
        }
        Err(error) => {
            print_error(&error);
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// Prints the report. A reader that went away (`uc-ops … | head`) ends the output quietly:
/// the exit status is still the report's.
fn print_report(text: &str) {
    let mut out = std::io::stdout().lock();
    if let Err(error) = out.write_all(text.as_bytes()).and_then(|()| out.flush())
        && error.kind() != std::io::ErrorKind::BrokenPipe
    {
        let _ = writeln!(
            std::io::stderr().lock(),
            "error: printing the report: {error}"
        );
    }
}

/// Runs `command`; returns its report as text and the exit code it asks for.
async fn run(command: Command) -> anyhow::Result<(String, u8)> {
    let sdk = aws_config::load_from_env().await;
    anyhow::ensure!(
        sdk.region().is_some(),
        "no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION, or a region in the AWS profile)"
    );
    Ok(match command {
        Command::Dlq(args) => {
            let report = dlq::run(&args, &sdk).await?;
            (dlq::render(&report, args.json())?, report.exit_code())
        }
        Command::Backfill(args) => {
            let report = backfill::run(&args, &sdk).await?;
            (
                backfill::render(&report, args.json, &args)?,
                report.exit_code(),
            )
        }
        Command::Audit(args) => {
            let report = audit::run(&args, &sdk).await?;
            (audit::render(&report, args.json)?, report.exit_code())
        }
        Command::Reconcile(args) if args.orphans => {
            let options = args.orphan_options();
            let report = orphans::run(&options, &sdk).await?;
            (orphans::render(&report, options.json)?, report.exit_code())
        }
        Command::Reconcile(args) => {
            let report = reconcile::run(&args, &sdk).await?;
            (reconcile::render(&report, args.json)?, report.exit_code())
        }
        Command::AttachTrigger(args) => {
            let report = attach::run(&args, &sdk).await?;
            (attach::render(&report, args.json)?, report.exit_code())
        }
        Command::Events(args) => {
            let report = events::run(&args, &sdk).await?;
            (events::render(&report, args.json())?, report.exit_code())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_valid() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    /// The orphan sweep is a mode of reconcile: none of a pass's own options go with it, and
    /// its limit goes with nothing else.
    #[test]
    fn the_orphan_sweep_takes_only_its_own_options() {
        let parse = |args: &[&str]| {
            Cli::try_parse_from(std::iter::once("uc-ops").chain(args.iter().copied()))
        };
        for ok in [
            &["reconcile", "--orphans"][..],
            &["reconcile", "--orphans", "--dry-run", "--json"],
            &["reconcile", "--orphans", "--max-orphans", "250"],
        ] {
            assert!(parse(ok).is_ok(), "{ok:?}");
        }
        for refused in [
            &["reconcile", "--orphans", "--full"][..],
            &["reconcile", "--orphans", "--all"],
            &["reconcile", "--orphans", "--max-pages", "3"],
            &["reconcile", "--orphans", "--max-seconds", "60"],
            &["reconcile", "--orphans", "--rate", "5"],
            &["reconcile", "--max-orphans", "5"],
            &["reconcile", "--orphans", "--max-orphans", "-1"],
        ] {
            assert!(parse(refused).is_err(), "{refused:?}");
        }
    }

    /// A negative rate reaches the rate's own parser and its message (clap took `-1` for an
    /// option and said "unexpected argument").
    #[test]
    fn a_negative_rate_is_refused_by_the_rate_parser() {
        for args in [
            &["dlq", "replay", "--rate", "-1"][..],
            &["dlq", "redrive", "--rate", "-1"],
            &["backfill", "--rate", "-1"],
            &["reconcile", "--rate", "-1"],
            &["audit", "--list-rate", "-1"],
            &["audit", "--scan-rate", "-1"],
        ] {
            let error = Cli::try_parse_from(std::iter::once("uc-ops").chain(args.iter().copied()))
                .err()
                .unwrap_or_else(|| panic!("{args:?} parsed"));
            assert_eq!(
                error.kind(),
                clap::error::ErrorKind::ValueValidation,
                "{args:?}"
            );
            assert!(
                error.to_string().contains("positive, finite"),
                "{args:?}: {error}"
            );
        }
    }
}
