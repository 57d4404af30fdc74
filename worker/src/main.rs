//! The worker binary: the SQS-fed Lambda by default, or `poll` for a long-poll consumer.
// The SDK and lambda_runtime futures nest deeply enough to pass the default limit.
#![recursion_limit = "256"]

use std::sync::Arc;

use clap::{Parser, Subcommand};
use uc_worker::poller::{self, PollerSettings};
use uc_worker::{ConfiguredStore, SqsDeadLetters, Worker, WorkerConfig, build_worker, lambda};

/// Creates user profiles from UserConfirmed events, and acts on Cognito's CloudTrail records of
/// deletions (configuration: docs/configuration.md).
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    mode: Option<Mode>,
}

#[derive(Subcommand)]
enum Mode {
    /// Serve Lambda invocations (the default).
    Lambda,
    /// Long-poll QUEUE_URL (and LIFECYCLE_QUEUE_URL when set) until SIGTERM/SIGINT.
    Poll,
}

/// A multi-thread runtime in both modes: measured, a current-thread one cut the worker's CPU per
/// profile by a fifth but held each message longer, and lost 6 points of C ÷ L at C = 64
/// (docs/profiling.md). `TOKIO_WORKER_THREADS` caps the threads.
fn main() -> std::process::ExitCode {
    let mode = Cli::parse().mode.unwrap_or(Mode::Lambda);
    let result = tokio::runtime::Runtime::new()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(run(mode)));
    uc_runtime::process::exit_code(result)
}

async fn run(mode: Mode) -> anyhow::Result<()> {
    uc_runtime::logs::init_json_logs();
    match mode {
        Mode::Lambda => {
            let (config, sdk) = configure().await?;
            let worker = Arc::new(start_up(&config, &sdk).await?);
            lambda::serve(worker, config.concurrency)
                .await
                .map_err(|e| anyhow::anyhow!(e))
        }
        Mode::Poll => {
            // Listening from the first instant: a consumer stopped while it starts exits 0.
            let mut shutdown = poller::shutdown_on_signal()?;
            let started = async {
                let (config, sdk) = configure().await?;
                let settings = PollerSettings::every_queue(&config)?;
                let worker = Arc::new(start_up(&config, &sdk).await?);
                anyhow::Ok((settings, aws_sdk_sqs::Client::new(&sdk), worker))
            };
            let (settings, sqs, worker) = tokio::select! {
                started = started => started?,
                _ = poller::requested(&mut shutdown) => {
                    tracing::info!("shutdown requested during start-up");
                    return Ok(());
                }
            };
            let pollers = settings.into_iter().map(|settings| {
                poller::serve(sqs.clone(), worker.clone(), settings, shutdown.clone())
            });
            futures::future::try_join_all(pollers)
                .await
                .inspect_err(|e| tracing::error!(error = %e, "poller failed"))?;
            Ok(())
        }
    }
}

async fn configure() -> anyhow::Result<(WorkerConfig, aws_config::SdkConfig)> {
    let config = WorkerConfig::from_env()
        .inspect_err(|e| tracing::error!(error = %e, "invalid configuration"))?;
    Ok((config, aws_config::load_from_env().await))
}

async fn start_up(
    config: &WorkerConfig,
    sdk: &aws_config::SdkConfig,
) -> anyhow::Result<Worker<ConfiguredStore, SqsDeadLetters>> {
    Ok(build_worker(config, sdk)
        .await
        .inspect_err(|e| tracing::error!(error = %e, "start-up failed"))?)
}
