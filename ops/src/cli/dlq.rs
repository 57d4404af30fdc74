//! `uc-ops dlq stats|peek|replay|redrive`: the arguments, the run and the output of the DLQ
//! commands. The work itself is `uc_ops::dlq`'s.

use anyhow::Context;
use aws_config::SdkConfig;
use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;
use uc_ops::dlq::{
    self, Filter, PeekRow, QueueStats, RedriveSummary, ReplayOptions, ReplaySummary,
};

use super::{Outcome, Ui, to_json};

/// Messages `stats` reads at most from each queue.
const STATS_SCAN_LIMIT: usize = 10_000;

#[derive(Args)]
pub struct DlqArgs {
    #[command(subcommand)]
    pub action: DlqAction,
}

#[derive(Subcommand)]
pub enum DlqAction {
    /// Depth, oldest message age and counts by failure reason, for both DLQs.
    Stats(StatsArgs),
    /// List messages, decoded, without keeping them (visibility is restored at once).
    Peek(PeekArgs),
    /// Process DLQ messages in place with the worker's core: successes are deleted, failures
    /// stay with their reason updated.
    Replay(ReplayArgs),
    /// Move messages back to the worker's queue for the normal path.
    Redrive(RedriveArgs),
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Which {
    /// The worker's DLQ (DLQ_URL).
    Worker,
    /// The rule-target DLQ (RULE_DLQ_URL): events EventBridge could not deliver.
    Rule,
}

#[derive(Args)]
pub struct Queues {
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

#[derive(Args)]
pub struct StatsArgs {
    #[command(flatten)]
    queues: Queues,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct PeekArgs {
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
}

#[derive(Args)]
pub struct ReplayArgs {
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
}

#[derive(Args)]
pub struct RedriveArgs {
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
}

impl DlqArgs {
    pub fn json(&self) -> bool {
        match &self.action {
            DlqAction::Stats(a) => a.json,
            DlqAction::Peek(a) => a.json,
            DlqAction::Replay(a) => a.json,
            DlqAction::Redrive(a) => a.json,
        }
    }
}

/// What a DLQ command found or did.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum DlqReport {
    Stats(Vec<QueueStats>),
    Peek(Vec<PeekRow>),
    Replay(ReplaySummary),
    Redrive(RedriveSummary),
    /// `redrive --native`: SQS moves the messages itself.
    NativeRedrive {
        task_handle: String,
        source_arn: String,
    },
}

impl Outcome for DlqReport {
    /// Replay: nothing still failing; redrive: nothing failed to move.
    fn succeeded(&self) -> bool {
        match self {
            Self::Replay(summary) => summary.succeeded(),
            Self::Redrive(summary) => summary.failed == 0,
            _ => true,
        }
    }
}

pub async fn run(args: &DlqArgs, sdk: &SdkConfig) -> anyhow::Result<DlqReport> {
    let sqs = aws_sdk_sqs::Client::new(sdk);
    match &args.action {
        DlqAction::Stats(args) => {
            let mut all = Vec::new();
            for which in [Which::Worker, Which::Rule] {
                if let Ok(url) = args.queues.url(which) {
                    all.push(dlq::stats(&sqs, url, STATS_SCAN_LIMIT).await?);
                }
            }
            anyhow::ensure!(
                !all.is_empty(),
                "no DLQ configured: set DLQ_URL and/or RULE_DLQ_URL"
            );
            Ok(DlqReport::Stats(all))
        }
        DlqAction::Peek(args) => {
            let url = args.queues.url(args.queue)?;
            let rows = dlq::peek(&sqs, url, args.limit, args.show_pii).await?;
            Ok(DlqReport::Peek(rows))
        }
        DlqAction::Replay(args) => replay(args, sdk, &sqs).await,
        DlqAction::Redrive(args) => redrive(args, &sqs).await,
    }
}

async fn replay(
    args: &ReplayArgs,
    sdk: &SdkConfig,
    sqs: &aws_sdk_sqs::Client,
) -> anyhow::Result<DlqReport> {
    let ui = Ui::new(args.json);
    let url = args.queues.url(args.queue)?.to_owned();
    let mut config = uc_worker::WorkerConfig::from_env()?;
    // Failures go back to the DLQ they came from, with their reason updated.
    config.dlq_url = Some(url.clone());
    let worker = uc_worker::build_worker(&config, sdk).await?;
    let sink = uc_worker::SqsDeadLetters::new(sqs.clone(), url.clone());
    let options = ReplayOptions {
        limit: args.limit,
        rate: args.rate,
        filter: args.filter.clone().unwrap_or(Filter::All),
        dry_run: args.dry_run,
    };
    ui.announce(&replay_intro(&url, &options));
    let bar = ui.progress("replayed");
    let summary = dlq::replay(sqs, &url, &worker, &sink, &options, |s| {
        bar.set_position(s.examined as u64)
    })
    .await?;
    bar.finish_and_clear();
    Ok(DlqReport::Replay(summary))
}

async fn redrive(args: &RedriveArgs, sqs: &aws_sdk_sqs::Client) -> anyhow::Result<DlqReport> {
    let ui = Ui::new(args.json);
    let dlq_url = args.queues.url(args.queue)?;
    if args.native {
        let source_arn = dlq::queue_arn(sqs, dlq_url).await?;
        let request = dlq::native_move_request(&source_arn, None, args.rate);
        let task_handle = dlq::redrive_native(sqs, request).await?;
        return Ok(DlqReport::NativeRedrive {
            task_handle,
            source_arn,
        });
    }
    let target = args
        .queue_url
        .as_deref()
        .context("the worker queue is not configured: set QUEUE_URL or --queue-url")?;
    ui.announce(&format!(
        "Moving messages from {dlq_url} to {target} (send, then delete: a crash duplicates at worst)"
    ));
    let bar = ui.progress("moved");
    let summary = dlq::redrive(sqs, dlq_url, target, args.limit, args.rate, |s| {
        bar.set_position(s.moved as u64)
    })
    .await?;
    bar.finish_and_clear();
    Ok(DlqReport::Redrive(summary))
}

/// The line `replay` starts with.
fn replay_intro(url: &str, options: &ReplayOptions) -> String {
    format!(
        "{} {url} (filter {:?}, limit {}, rate {}){}",
        if options.dry_run {
            "Would replay messages from"
        } else {
            "Replaying messages from"
        },
        options.filter,
        if options.limit == usize::MAX {
            "none".into()
        } else {
            options.limit.to_string()
        },
        options
            .rate
            .map(|r| format!("{r}/s"))
            .unwrap_or_else(|| "unlimited".into()),
        if options.dry_run {
            "; dry run: nothing is called or changed"
        } else {
            ""
        },
    )
}

pub fn render(report: &DlqReport, json: bool) -> anyhow::Result<String> {
    if json {
        return to_json(report);
    }
    let mut out = String::new();
    match report {
        DlqReport::Stats(all) => {
            for stats in all {
                let age = stats
                    .oldest_age_seconds
                    .map(|s| format!("{s} s"))
                    .unwrap_or_else(|| "–".into());
                out.push_str(&format!(
                    "{}\n  depth {} (+{} in flight), oldest {age}\n",
                    stats.queue_url, stats.depth, stats.in_flight
                ));
                for (reason, count) in &stats.by_reason {
                    out.push_str(&format!("  {count:>6}  {reason}\n"));
                }
            }
        }
        DlqReport::Peek(rows) => {
            out.push_str(&format!(
                "{:<38} {:<38} {:<24} {:>5} {:>8}\n",
                "sub", "username", "reason", "recv", "age (s)"
            ));
            for r in rows {
                out.push_str(&format!(
                    "{:<38} {:<38} {:<24} {:>5} {:>8}{}\n",
                    r.sub.as_deref().unwrap_or("(unparseable)"),
                    r.username.as_deref().unwrap_or_default(),
                    r.reason,
                    r.receive_count,
                    r.age_seconds.map(|a| a.to_string()).unwrap_or_default(),
                    r.email
                        .as_deref()
                        .map(|e| format!("  {e}"))
                        .unwrap_or_default(),
                ));
            }
        }
        DlqReport::Replay(summary) => out.push_str(&format!(
            "examined {}, created {}, already existed {}, still failing {} {:?}, skipped by filter {}\n",
            summary.examined,
            summary.created,
            summary.already_existed,
            summary.still_failing,
            summary.failures_by_reason,
            summary.skipped_by_filter
        )),
        DlqReport::Redrive(summary) => out.push_str(&format!(
            "moved {}, failed {}\n",
            summary.moved, summary.failed
        )),
        DlqReport::NativeRedrive {
            task_handle,
            source_arn,
        } => out.push_str(&format!(
            "started SQS message move task {task_handle} from {source_arn} back to its source queue\n"
        )),
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    // `..Default::default()` even where every field is set today: the summaries may grow.
    #[allow(clippy::needless_update)]
    #[test]
    fn replay_failures_and_redrive_failures_fail_the_command() {
        let replay = |still_failing| {
            DlqReport::Replay(ReplaySummary {
                still_failing,
                ..Default::default()
            })
        };
        assert!(replay(0).succeeded());
        assert!(!replay(1).succeeded());
        let redrive = |failed| {
            DlqReport::Redrive(RedriveSummary {
                moved: 3,
                failed,
                ..Default::default()
            })
        };
        assert!(redrive(0).succeeded());
        assert!(!redrive(2).succeeded());
        assert!(DlqReport::Stats(vec![]).succeeded());
    }

    #[allow(clippy::needless_update)]
    #[test]
    fn text_and_json_of_a_redrive() {
        let report = DlqReport::Redrive(RedriveSummary {
            moved: 3,
            failed: 1,
            ..Default::default()
        });
        assert_eq!(render(&report, false).unwrap(), "moved 3, failed 1\n");
        let json: serde_json::Value =
            serde_json::from_str(&render(&report, true).unwrap()).unwrap();
        assert_eq!(
            (json["moved"].as_u64(), json["failed"].as_u64()),
            (Some(3), Some(1))
        );
    }

    #[test]
    fn the_replay_intro_says_what_a_dry_run_does() {
        let options = ReplayOptions {
            limit: usize::MAX,
            rate: Some(20.0),
            filter: Filter::Reason("Unauthorized".into()),
            dry_run: true,
        };
        assert_eq!(
            replay_intro("http://q", &options),
            "Would replay messages from http://q (filter Reason(\"Unauthorized\"), limit none, rate 20/s); dry run: nothing is called or changed"
        );
    }
}
