//! The worker binary: the SQS-fed Lambda by default, or `poll` for a long-poll consumer.
// The SDK and lambda_runtime futures nest deeply enough to pass the default limit.
#![recursion_limit = "256"]

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use aws_lambda_events::event::sqs::SqsEvent;
use clap::{Parser, Subcommand};
use lambda_runtime::{LambdaEvent, service_fn};
use tokio::time::Instant;
use uc_worker::poller::{Poller, PollerSettings};
use uc_worker::{WorkerConfig, build_worker, lambda};

#[derive(Parser)]
#[command(
    version,
    about = "Creates user profiles from UserConfirmed events (configuration: see README)"
)]
struct Cli {
    #[command(subcommand)]
    mode: Option<Mode>,
}

#[derive(Subcommand)]
enum Mode {
    /// Serve Lambda invocations (the default).
    Lambda,
    /// Long-poll QUEUE_URL until SIGTERM/SIGINT.
    Poll,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    uc_runtime::logs::init_json_logs();
    let cli = Cli::parse();
    let config = WorkerConfig::from_env()
        .inspect_err(|e| tracing::error!(error = %e, "invalid configuration"))?;
    let sdk = aws_config::load_from_env().await;
    let worker = Arc::new(
        build_worker(&config, &sdk)
            .await
            .inspect_err(|e| tracing::error!(error = %e, "start-up failed"))?,
    );
    match cli.mode.unwrap_or(Mode::Lambda) {
        Mode::Lambda => {
            let concurrency = config.concurrency;
            let worker = &worker;
            lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
                let left = Duration::from_millis(event.context.deadline.saturating_sub(now_ms()));
                let deadline = Instant::now() + left.saturating_sub(lambda::DEADLINE_MARGIN);
                lambda::handle_batch(worker.clone(), event.payload, Some(deadline), concurrency)
                    .await
                    .map_err(lambda_runtime::Error::from)
            }))
            .await
            .map_err(|e| anyhow::anyhow!(e))
        }
        Mode::Poll => {
            let queue_url = config
                .queue_url
                .clone()
                .context("QUEUE_URL is required for poll mode")?;
            let settings = PollerSettings {
                queue_url,
                receivers: config.concurrency.div_ceil(10),
                wait_time_seconds: config.wait_time_seconds,
                visibility_backoff: config.visibility_backoff,
                shutdown_grace: config.shutdown_grace,
            };
            let poller = Poller::new(aws_sdk_sqs::Client::new(&sdk), worker, settings);
            let stats = poller.stats();
            let (stop, shutdown) = tokio::sync::watch::channel(false);
            tokio::spawn(async move {
                wait_for_signal().await;
                tracing::info!(
                    "shutdown requested: no more receives, finishing in-flight messages"
                );
                let _ = stop.send(true);
            });
            poller.run(shutdown).await?;
            let load =
                |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
            tracing::info!(
                received = load(&stats.received),
                deleted = load(&stats.deleted),
                retried_later = load(&stats.retried_later),
                released = load(&stats.released),
                "poller stopped"
            );
            Ok(())
        }
    }
}

fn now_ms() -> u64 {
    chrono::Utc::now().timestamp_millis().max(0) as u64
}

async fn wait_for_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
