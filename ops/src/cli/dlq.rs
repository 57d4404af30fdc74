//! `uc-ops dlq stats|peek|replay|redrive`: the arguments, the run and the output of the DLQ
//! commands. The work itself is `uc_ops::dlq`'s.

use std::time::Duration;

use anyhow::Context;
use aws_config::SdkConfig;
use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;
use uc_ops::dlq::{
    self, Filter, Peek, QueueStats, RedriveOptions, RedriveSummary, ReplayOptions, ReplaySummary,
};
use uc_ops::text::terminal_safe;

use super::{Outcome, Ui, positive_rate, terminal_safe_lines, to_json};

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
    /// stay with their reason updated. Exits 1 while any matching message is left.
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
    /// Seconds a read message is held invisible before the hold is renewed (tests shorten
    /// it) [default: 60, 15 for redrive].
    #[arg(long, env = "UC_OPS_HOLD_SECONDS", hide = true,
          value_parser = clap::value_parser!(u64).range(1..=43_200))]
    hold_seconds: Option<u64>,
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

    fn hold(&self) -> Duration {
        self.hold_or(dlq::DEFAULT_HOLD)
    }

    fn hold_or(&self, default: Duration) -> Duration {
        self.hold_seconds.map_or(default, Duration::from_secs)
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
    /// Show at most this many messages (the text says when more remain).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..))]
    limit: u64,
    /// Also print email addresses (everywhere else they are shown as <redacted>).
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
    #[command(flatten)]
    selection: Selection,
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
    /// Use SQS's StartMessageMoveTask (returns messages to their source queue; moves all).
    #[arg(long, conflicts_with_all = ["filter", "limit"])]
    native: bool,
    #[command(flatten)]
    selection: Selection,
    #[arg(long)]
    json: bool,
}

/// Which messages a replay or redrive takes, and how fast.
#[derive(Args)]
pub struct Selection {
    /// Take at most this many matching messages [default: all].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    limit: Option<u64>,
    /// Messages per second, at most (a positive number, e.g. 20 or 0.5) [default: no limit].
    #[arg(long, value_name = "PER_SECOND", value_parser = positive_rate, allow_negative_numbers = true)]
    rate: Option<f64>,
    /// Only messages with this sub or reason: sub=<sub> or reason=<reason>, the reason as
    /// `dlq stats` prints it (any case).
    #[arg(long)]
    filter: Option<Filter>,
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
    Peek(Peek),
    Replay(ReplaySummary),
    Redrive(RedriveSummary),
    /// `redrive --native`: SQS moves the messages itself.
    NativeRedrive {
        task_handle: String,
        source_arn: String,
    },
}

impl Outcome for DlqReport {
    /// Replay: every matching message processed and none still failing; redrive: every
    /// matching message moved.
    fn succeeded(&self) -> bool {
        match self {
            Self::Replay(summary) => summary.succeeded(),
            Self::Redrive(summary) => summary.succeeded(),
            _ => true,
        }
    }
}

/// `--limit`, or all.
fn limit(value: Option<u64>) -> usize {
    value.map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX))
}

pub async fn run(args: &DlqArgs, sdk: &SdkConfig) -> anyhow::Result<DlqReport> {
    let sqs = aws_sdk_sqs::Client::new(sdk);
    match &args.action {
        DlqAction::Stats(args) => {
            let mut all = Vec::new();
            for which in [Which::Worker, Which::Rule] {
                if let Ok(url) = args.queues.url(which) {
                    all.push(dlq::stats(&sqs, url, STATS_SCAN_LIMIT, args.queues.hold()).await?);
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
            let count = limit(Some(args.limit));
            let peek = dlq::peek(&sqs, url, count, args.show_pii, args.queues.hold()).await?;
            Ok(DlqReport::Peek(peek))
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
        limit: limit(args.selection.limit),
        rate: args.selection.rate,
        filter: args.selection.filter.clone().unwrap_or(Filter::All),
        dry_run: args.dry_run,
    };
    ui.announce(&replay_intro(&url, &options));
    let bar = ui.progress("replayed");
    let hold = args.queues.hold();
    let summary = dlq::replay_holding(sqs, &url, hold, &worker, &sink, &options, |s| {
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
        let request = dlq::native_move_request(&source_arn, None, args.selection.rate);
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
    let options = RedriveOptions {
        limit: limit(args.selection.limit),
        rate: args.selection.rate,
        filter: args.selection.filter.clone().unwrap_or(Filter::All),
    };
    ui.announce(&terminal_safe(&format!(
        "Moving messages from {dlq_url} to {target} (filter {}; send, then delete: a crash duplicates at worst)",
        options.filter
    )));
    let bar = ui.progress("moved");
    let hold = args.queues.hold_or(dlq::REDRIVE_HOLD);
    let summary = dlq::redrive(sqs, dlq_url, target, hold, &options, |s| {
        bar.set_position(s.moved as u64)
    })
    .await?;
    bar.finish_and_clear();
    Ok(DlqReport::Redrive(summary))
}

/// The line `replay` starts with.
fn replay_intro(url: &str, options: &ReplayOptions) -> String {
    terminal_safe(&format!(
        "{} {url} (filter {}, limit {}, rate {}){}",
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
    ))
}

fn by_reason(counts: &std::collections::BTreeMap<String, usize>) -> String {
    if counts.is_empty() {
        return String::new();
    }
    let listed: Vec<String> = counts
        .iter()
        .map(|(r, n)| format!("{} {n}", terminal_safe(r)))
        .collect();
    format!(" ({})", listed.join(", "))
}

fn render_replay(s: &ReplaySummary) -> String {
    let mut out = if s.dry_run {
        format!(
            "would replay {}, skipped by filter {}\n",
            s.examined, s.skipped_by_filter
        )
    } else {
        format!(
            "examined {}, created {}, already existed {}, lifecycle records handled {}, still failing {}{}, skipped by filter {}\n",
            s.examined,
            s.created,
            s.already_existed,
            s.lifecycle_handled,
            s.still_failing,
            by_reason(&s.failures_by_reason),
            s.skipped_by_filter,
        )
    };
    if let Some(no_match) = &s.no_match {
        out.push_str(&format!("{}\n", terminal_safe(no_match)));
    }
    if s.left > 0 {
        out.push_str(&format!(
            "LEFT in the DLQ unprocessed: {} (their updated copy could not be written), subs: {}\n",
            s.left,
            terminal_safe(&s.left_subs.join(" "))
        ));
    }
    if s.more_beyond_limit {
        out.push_str("LEFT: more matching messages beyond --limit; run again to continue\n");
    }
    if !s.complete {
        out.push_str(
            "NOT complete: the DLQ could not be read to its end (messages held by another reader?); run again\n",
        );
    }
    out
}

fn render_redrive(s: &RedriveSummary) -> String {
    let mut out = format!(
        "moved {}, failed {}, skipped by filter {}\n",
        s.moved, s.failed, s.skipped_by_filter
    );
    if s.kept_empty > 0 {
        out.push_str(&format!(
            "kept {} EmptyMessage placeholder(s) in the DLQ: the original body was empty, SQS refuses an empty body, and the placeholder would come back as NotJson; nothing in them can make a profile\n",
            s.kept_empty
        ));
    }
    if let Some(no_match) = &s.no_match {
        out.push_str(&format!("{}\n", terminal_safe(no_match)));
    }
    if s.more_beyond_limit {
        out.push_str("LEFT: more matching messages beyond --limit; run again to continue\n");
    }
    if !s.complete {
        out.push_str("NOT complete: the DLQ could not be read to its end; run again\n");
    }
    out
}

fn render_peek(peek: &Peek) -> String {
    let rows = &peek.rows;
    let mut out = String::new();
    for r in rows {
        let mut line = format!(
            "{}  {}{}",
            terminal_safe(&r.message_id),
            terminal_safe(&r.reason),
            r.stage
                .as_deref()
                .map(|s| format!(" (stage {})", terminal_safe(s)))
                .unwrap_or_default()
        );
        if let Some(age) = r.age_seconds {
            line.push_str(&format!("  age {age} s"));
        }
        if let Some(count) = r.worker_receive_count {
            line.push_str(&format!("  worker receives {count}"));
        }
        line.push_str(&format!(
            "  DLQ receives before this peek {}",
            r.dlq_receives_before_peek
        ));
        out.push_str(&line);
        out.push('\n');
        let sub = match (&r.sub, r.parsed) {
            (Some(sub), true) => sub.clone(),
            (Some(sub), false) => format!("{sub} (read leniently: the body is not a valid event)"),
            (None, _) => "(none found)".into(),
        };
        let mut fields = vec![("sub", sub)];
        if let Some(username) = &r.username {
            fields.push(("username", username.clone()));
        }
        if let Some(email) = &r.email {
            fields.push(("email", email.clone()));
        }
        if let Some(detail) = &r.detail {
            fields.push(("detail", detail.clone()));
        }
        fields.push(("body", r.body.clone()));
        for (name, value) in fields {
            // One line per field, whatever the value holds.
            out.push_str(&format!("  {name:<9} {}\n", terminal_safe(&value)));
        }
    }
    out.push_str(&format!(
        "{} message(s). Peeking is a receive: each peek adds 1 to a message's DLQ receive count (shown as it was before this peek); a DLQ has no redrive policy, so that count drives nothing.\n",
        rows.len()
    ));
    // The depth is SQS's estimate from before the peek; more than shown means the limit cut.
    if rows.len() == peek.limit && peek.depth > rows.len() as u64 {
        out.push_str(&format!(
            "The first {} of about {} message(s) shown (--limit {}): about {} more in the queue.\n",
            rows.len(),
            peek.depth,
            peek.limit,
            peek.depth - rows.len() as u64
        ));
    }
    out
}

/// The report as text or JSON. In text, every value from data (reasons, subs, bodies,
/// attributes) goes through [`terminal_safe`] where it is placed, so a line feed in it is shown
/// as `\u{a}` and cannot start a line of its own; the whole text then goes through
/// [`terminal_safe_lines`].
pub fn render(report: &DlqReport, json: bool) -> anyhow::Result<String> {
    if json {
        return to_json(report);
    }
    let out = match report {
        DlqReport::Stats(all) => {
            let mut out = String::new();
            for stats in all {
                let age = stats
                    .oldest_age_seconds
                    .map(|s| format!("{s} s"))
                    .unwrap_or_else(|| "–".into());
                out.push_str(&format!(
                    "{}\n  depth {} (+{} in flight), oldest {age}{}\n",
                    stats.queue_url,
                    stats.depth,
                    stats.in_flight,
                    if stats.complete {
                        String::new()
                    } else {
                        format!(", reasons of the first {} read", stats.counted)
                    }
                ));
                for (reason, count) in &stats.by_reason {
                    out.push_str(&format!("  {count:>6}  {}\n", terminal_safe(reason)));
                }
            }
            out
        }
        DlqReport::Peek(peek) => render_peek(peek),
        DlqReport::Replay(summary) => render_replay(summary),
        DlqReport::Redrive(summary) => render_redrive(summary),
        DlqReport::NativeRedrive {
            task_handle,
            source_arn,
        } => format!(
            "started SQS message move task {task_handle} from {source_arn} back to its source queue\n"
        ),
    };
    Ok(terminal_safe_lines(&out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use uc_ops::dlq::PeekRow;

    #[test]
    fn replay_failures_and_redrive_failures_fail_the_command() {
        let replay = |still_failing| {
            DlqReport::Replay(ReplaySummary {
                still_failing,
                complete: true,
                ..Default::default()
            })
        };
        assert!(replay(0).succeeded());
        assert!(!replay(1).succeeded());
        let redrive = |failed| {
            DlqReport::Redrive(RedriveSummary {
                moved: 3,
                failed,
                complete: true,
                ..Default::default()
            })
        };
        assert!(redrive(0).succeeded());
        assert!(!redrive(2).succeeded());
        assert!(DlqReport::Stats(vec![]).succeeded());
    }

    #[test]
    fn text_and_json_of_a_redrive() {
        let report = DlqReport::Redrive(RedriveSummary {
            moved: 3,
            failed: 1,
            complete: true,
            ..Default::default()
        });
        assert_eq!(
            render(&report, false).unwrap(),
            "moved 3, failed 1, skipped by filter 0\n"
        );
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
            "Would replay messages from http://q (filter reason=Unauthorized, limit none, rate 20/s); dry run: nothing is called or changed"
        );
    }

    #[test]
    fn a_replay_summary_says_what_is_left() {
        let summary = ReplaySummary {
            examined: 15,
            created: 10,
            left: 2,
            left_subs: vec!["a".into(), "b".into()],
            more_beyond_limit: true,
            complete: true,
            ..Default::default()
        };
        let text = render(&DlqReport::Replay(summary), false).unwrap();
        assert!(text.contains("LEFT in the DLQ unprocessed: 2"), "{text}");
        assert!(text.contains("subs: a b"), "{text}");
        assert!(text.contains("beyond --limit"), "{text}");
    }

    #[test]
    fn peeked_text_cannot_drive_the_terminal() {
        let row = PeekRow {
            message_id: "m-1".into(),
            reason: "Not\x1b[2JJson".into(),
            stage: None,
            detail: Some("line\rover\x07".into()),
            sub: None,
            parsed: false,
            username: Some("\u{202e}moc.elpmaxe".into()),
            email: None,
            worker_receive_count: None,
            dlq_receives_before_peek: 0,
            age_seconds: None,
            body: "\x1b]0;owned\x07".into(),
        };
        let peek = Peek {
            rows: vec![row],
            limit: 20,
            depth: 1,
        };
        let text = render(&DlqReport::Peek(peek), false).unwrap();
        assert!(
            !text
                .chars()
                .any(|c| c != '\n' && (c.is_control() || c == '\u{202e}')),
            "{text:?}"
        );
        assert!(text.contains("Peeking is a receive"));
    }
}
