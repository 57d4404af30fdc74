//! `uc-ops events consumers|replay|cancel`: the arguments, the run and the output of the
//! commands about the bus's consumers and archive replays. The decisions and the calls are
//! `uc_ops::events`'s.

use std::time::Duration;

use anyhow::Context;
use aws_config::SdkConfig;
use chrono::{DateTime, SecondsFormat, Utc};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use serde_json::Value;
use uc_ops::events::{
    self, Consumers, EventsError, PlannedRule, ReplayRequest, ReplayStatus, RuleView, Verdict,
    WorkerHint,
};

use super::{Outcome, Ui, terminal_safe_lines, to_json};

#[derive(Args)]
pub struct EventsArgs {
    #[command(subcommand)]
    pub action: EventsAction,
}

#[derive(Subcommand)]
pub enum EventsAction {
    /// The rules on the bus that receive UserConfirmed, ProfileCreated or UserDeleted, with
    /// their targets; the pipeline's own worker rule is marked.
    Consumers(ConsumersArgs),
    /// Replay archived UserConfirmed and UserDeleted events to chosen consumers' rules only
    /// (EventBridge StartReplay with FilterArns; each rule receives those its pattern matches),
    /// and follow the replay until it ends.
    Replay(ReplayArgs),
    /// Cancel a running replay.
    Cancel(CancelArgs),
}

/// Which bus, which events, and how to recognise the worker's rule.
#[derive(Args)]
pub struct Bus {
    /// The pipeline's event bus.
    #[arg(long, visible_alias = "event-bus", env = "EVENT_BUS_NAME")]
    bus: Option<String>,
    /// The pipeline's event source.
    #[arg(long, env = "EVENT_SOURCE", default_value = uc_schemas::DEFAULT_SOURCE)]
    source: String,
    /// The worker's queue: the rule targeting it is the pipeline's own.
    #[arg(long, env = "QUEUE_URL")]
    queue_url: Option<String>,
    /// The pipeline's own rule (name or ARN), instead of the one targeting QUEUE_URL's queue.
    #[arg(long)]
    worker_rule: Option<String>,
}

#[derive(Args)]
pub struct ConsumersArgs {
    #[command(flatten)]
    bus: Bus,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    bus: Bus,
    /// Replay events from this time: RFC 3339, a date (UTC midnight) or an age (30m, 12h, 7d, 2w).
    #[arg(long)]
    since: String,
    /// Replay events up to this time (same forms, or `now`); default now.
    #[arg(long)]
    until: Option<String>,
    /// A consumer's rule (name or ARN) on the bus; repeat for several. Only these receive the replay.
    #[arg(long = "rule", value_name = "ARN|NAME", required = true)]
    rules: Vec<String>,
    /// The archive (name or ARN); default the bus's only archive.
    #[arg(long, env = "ARCHIVE_NAME", value_name = "NAME|ARN")]
    archive: Option<String>,
    /// Print the StartReplay request and stop.
    #[arg(long)]
    dry_run: bool,
    /// Allow the worker's own rule among --rule (the worker absorbs duplicates, but it is load).
    #[arg(long)]
    include_worker_rule: bool,
    /// Start the replay and return without following it.
    #[arg(long)]
    no_wait: bool,
    /// Seconds between DescribeReplay calls while following the replay.
    #[arg(long, default_value_t = 5)]
    poll_seconds: u64,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct CancelArgs {
    /// The replay's name (uc-ops events replay prints it first).
    name: String,
    #[arg(long)]
    json: bool,
}

impl EventsArgs {
    pub fn json(&self) -> bool {
        match &self.action {
            EventsAction::Consumers(a) => a.json,
            EventsAction::Replay(a) => a.json,
            EventsAction::Cancel(a) => a.json,
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum EventsReport {
    Consumers(Consumers),
    Replay(Box<ReplayReport>),
    Cancel(CancelReport),
}

/// A replay: what was (or, with `--dry-run`, would be) asked for, and how it ended.
#[derive(Debug, Serialize)]
pub struct ReplayReport {
    pub replay_name: String,
    pub archive_arn: String,
    pub bus_arn: String,
    pub rules: Vec<PlannedRule>,
    pub since: String,
    pub until: String,
    pub notes: Vec<String>,
    pub dry_run: bool,
    /// The StartReplay request, as the API's JSON.
    pub request: Value,
    /// The last DescribeReplay (absent for a dry run).
    pub status: Option<ReplayStatus>,
}

#[derive(Debug, Serialize)]
pub struct CancelReport {
    pub replay_name: String,
    pub replay_arn: Option<String>,
    pub state: String,
    pub state_reason: Option<String>,
}

impl Outcome for EventsReport {
    /// A replay that failed or was cancelled exits 1.
    fn succeeded(&self) -> bool {
        match self {
            Self::Replay(r) => match &r.status {
                None => true,
                Some(s) => !matches!(s.state.as_str(), "FAILED" | "CANCELLED" | "CANCELLING"),
            },
            _ => true,
        }
    }
}

pub async fn run(args: &EventsArgs, sdk: &SdkConfig) -> anyhow::Result<EventsReport> {
    let client = aws_sdk_eventbridge::Client::new(sdk);
    let result = match &args.action {
        EventsAction::Consumers(a) => consumers(a, sdk, &client)
            .await
            .map(EventsReport::Consumers),
        EventsAction::Replay(a) => replay(a, sdk, &client)
            .await
            .map(|r| EventsReport::Replay(Box::new(r))),
        EventsAction::Cancel(a) => cancel(a, &client).await.map(EventsReport::Cancel),
    };
    match result {
        Err(e) => match e.downcast::<EventsError>() {
            Ok(EventsError::Refused(message)) => refuse(&message),
            Ok(other) => Err(other.into()),
            Err(e) => Err(e),
        },
        ok => ok,
    }
}

/// A refusal: one line on stderr, exit 2 (as for any other unusable arguments).
fn refuse(message: &str) -> ! {
    clap::Error::raw(
        clap::error::ErrorKind::ValueValidation,
        format!("{message}\n"),
    )
    .exit()
}

/// The bus's name and ARN, how the worker's rule is recognised, and every rule classified.
async fn read_bus(
    bus: &Bus,
    sdk: &SdkConfig,
    client: &aws_sdk_eventbridge::Client,
) -> anyhow::Result<(String, String, WorkerHint, Vec<RuleView>)> {
    // An empty variable (QUEUE_URL= in an env file) counts as unset.
    let set = |v: &Option<String>| v.clone().filter(|v| !v.trim().is_empty());
    let name = set(&bus.bus).context("the bus is not configured: set EVENT_BUS_NAME or --bus")?;
    let bus_arn = events::bus_arn(client, &name).await?;
    let worker = match (set(&bus.worker_rule), set(&bus.queue_url)) {
        (Some(rule), _) => WorkerHint::Rule(rule),
        (None, Some(url)) => {
            let sqs = aws_sdk_sqs::Client::new(sdk);
            WorkerHint::QueueArn(
                uc_ops::dlq::queue_arn(&sqs, &url)
                    .await
                    .map_err(|e| anyhow::anyhow!("the worker queue (QUEUE_URL): {e}"))?,
            )
        }
        (None, None) => WorkerHint::Unknown,
    };
    let rules = events::classify(
        events::list_rules(client, &name).await?,
        &bus.source,
        &worker,
    );
    if let WorkerHint::Rule(wanted) = &worker
        && !rules.iter().any(|r| r.worker)
    {
        return Err(EventsError::Refused(format!(
            "--worker-rule {wanted}: no such rule on the bus {name}"
        ))
        .into());
    }
    Ok((name, bus_arn, worker, rules))
}

async fn consumers(
    args: &ConsumersArgs,
    sdk: &SdkConfig,
    client: &aws_sdk_eventbridge::Client,
) -> anyhow::Result<Consumers> {
    let (name, bus_arn, worker, rules) = read_bus(&args.bus, sdk, client).await?;
    Ok(events::consumers(
        &name,
        &bus_arn,
        &args.bus.source,
        &worker,
        &rules,
    ))
}

async fn replay(
    args: &ReplayArgs,
    sdk: &SdkConfig,
    client: &aws_sdk_eventbridge::Client,
) -> anyhow::Result<ReplayReport> {
    let ui = Ui::new(args.json);
    let now = DateTime::from_timestamp(Utc::now().timestamp(), 0).expect("now is a valid time");
    let time = |flag: &str, text: &str| {
        events::parse_time(text, now).map_err(|e| EventsError::Refused(format!("--{flag} {e}")))
    };
    let since = time("since", &args.since)?;
    let until = args
        .until
        .as_deref()
        .map(|u| time("until", u))
        .transpose()?
        .unwrap_or(now);
    let (_, bus_arn, worker, rules) = read_bus(&args.bus, sdk, client).await?;
    let archive = events::find_archive(client, args.archive.as_deref(), &bus_arn).await?;
    let plan = events::plan_replay(&ReplayRequest {
        rules: &rules,
        wanted: &args.rules,
        include_worker_rule: args.include_worker_rule,
        worker: &worker,
        archive: &archive,
        bus_arn: &bus_arn,
        source: &args.bus.source,
        since,
        until,
        now,
    })?;
    let request = events::start_replay_request(&plan);
    let mut report = ReplayReport {
        replay_name: plan.name.clone(),
        archive_arn: plan.archive_arn.clone(),
        bus_arn: plan.bus_arn.clone(),
        since: rfc3339(plan.since),
        until: rfc3339(plan.until),
        notes: plan.notes.clone(),
        dry_run: args.dry_run,
        request: events::request_json(&request),
        status: None,
        rules: plan.rules,
    };
    if args.dry_run {
        return Ok(report);
    }
    ui.announce(&format!(
        "replay {}: UserConfirmed and UserDeleted {} .. {} from archive {} to {}",
        report.replay_name,
        report.since,
        report.until,
        archive.name,
        names(&report.rules)
    ));
    for note in &report.notes {
        ui.announce(&format!("  note: {note}"));
    }
    events::start_replay(client, request).await?;
    let name = report.replay_name.clone();
    let follow = async {
        let bar = progress_bar(args.json);
        loop {
            let status = events::describe_replay(client, &name).await?;
            bar.set_position((status.progress().unwrap_or(0.0) * 1000.0) as u64);
            bar.set_message(progress_message(&status));
            if status.finished() || args.no_wait {
                bar.finish_and_clear();
                return anyhow::Ok(status);
            }
            tokio::time::sleep(Duration::from_secs(args.poll_seconds.max(1))).await;
        }
    };
    tokio::select! {
        status = follow => report.status = Some(status?),
        _ = tokio::signal::ctrl_c() => {
            eprintln!(
                "\ninterrupted: replay {name} goes on in EventBridge. Follow it with `aws events describe-replay --replay-name {name}`; cancel it with `uc-ops events cancel {name}` (or `aws events cancel-replay --replay-name {name}`)."
            );
            std::process::exit(130);
        }
    }
    Ok(report)
}

async fn cancel(
    args: &CancelArgs,
    client: &aws_sdk_eventbridge::Client,
) -> anyhow::Result<CancelReport> {
    let (replay_arn, state, state_reason) = events::cancel_replay(client, &args.name).await?;
    Ok(CancelReport {
        replay_name: args.name.clone(),
        replay_arn,
        state,
        state_reason,
    })
}

fn progress_bar(json: bool) -> ProgressBar {
    if json {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(1000);
    bar.set_style(
        ProgressStyle::with_template("  {bar:30} {msg} {elapsed}").expect("valid template"),
    );
    bar
}

fn progress_message(status: &ReplayStatus) -> String {
    let mut text = status.state.clone();
    if let (Some(last), Some(end)) = (status.event_last_replayed_time, status.event_end_time) {
        text.push_str(&format!(
            ", replayed up to {} of {}",
            rfc3339(last),
            rfc3339(end)
        ));
    }
    if let Some(p) = status.progress() {
        text.push_str(&format!(" ({:.0}%)", p * 100.0));
    }
    text
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn names(rules: &[PlannedRule]) -> String {
    rules
        .iter()
        .map(|r| r.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn render(report: &EventsReport, json: bool) -> anyhow::Result<String> {
    if json {
        return to_json(report);
    }
    let text = match report {
        EventsReport::Consumers(c) => render_consumers(c),
        EventsReport::Replay(r) => render_replay(r),
        EventsReport::Cancel(c) => format!(
            "replay {}: {}{}\n",
            c.replay_name,
            c.state,
            c.state_reason
                .as_deref()
                .map(|r| format!(" ({})", uc_ops::text::terminal_safe(r)))
                .unwrap_or_default()
        ),
    };
    Ok(terminal_safe_lines(&text))
}

fn render_consumers(c: &Consumers) -> String {
    let mut out = format!(
        "bus {} ({}), source {}\nworker's rule: {}\n",
        c.bus, c.bus_arn, c.source, c.worker_rule_by
    );
    // `replayed`: the verdict for a replayed event of the section's type, where the archive
    // holds that type.
    let mut section = |title: &str,
                       rules: &[RuleView],
                       of: fn(&RuleView) -> &Verdict,
                       replayed: Option<fn(&RuleView) -> &Verdict>| {
        out.push_str(&format!("\n{title} consumers: {}\n", rules.len()));
        for rule in rules {
            let mut tags = Vec::new();
            if rule.worker {
                tags.push("WORKER'S RULE: replays need --include-worker-rule".to_owned());
            }
            if let Some(by) = &rule.managed_by {
                tags.push(format!("managed by {by}, not a consumer"));
            }
            if rule.state != "ENABLED" {
                tags.push(rule.state.clone());
            }
            if let Verdict::MayMatch { reasons } = of(rule) {
                tags.push(format!("may match: {}", reasons.join("; ")));
            }
            if replayed.is_some_and(|replayed| !replayed(rule).may_receive()) {
                tags.push("ignores replays".into());
            }
            let tags = if tags.is_empty() {
                String::new()
            } else {
                format!("  [{}]", tags.join("] ["))
            };
            out.push_str(&format!("  {}{tags}\n    rule {}\n", rule.name, rule.arn));
            if rule.targets.is_empty() {
                out.push_str("    (no targets)\n");
            }
            for t in &rule.targets {
                out.push_str(&format!("    -> {} {}\n", t.id, t.arn));
            }
        }
    };
    section(
        "UserConfirmed",
        &c.user_confirmed,
        |r| &r.user_confirmed,
        Some(|r| &r.user_confirmed_replayed),
    );
    section(
        "ProfileCreated",
        &c.profile_created,
        |r| &r.profile_created,
        None,
    );
    section(
        "UserDeleted",
        &c.user_deleted,
        |r| &r.user_deleted,
        Some(|r| &r.user_deleted_replayed),
    );
    out.push_str(&format!(
        "\nother rules on the bus (matching none of them): {}\n",
        c.other_rules
    ));
    out
}

fn render_replay(r: &ReplayReport) -> String {
    let mut out = String::new();
    if r.dry_run {
        out.push_str("dry run: nothing started\n");
    }
    out.push_str(&format!(
        "replay   {}\narchive  {}\nbus      {}\nwindow   {} .. {}\nrules    {}\n",
        r.replay_name,
        r.archive_arn,
        r.bus_arn,
        r.since,
        r.until,
        names(&r.rules)
    ));
    for note in &r.notes {
        out.push_str(&format!("note     {note}\n"));
    }
    if r.dry_run {
        let pretty = serde_json::to_string_pretty(&r.request).unwrap_or_default();
        let compact = r.request.to_string();
        out.push_str(&format!(
            "StartReplay request:\n{pretty}\nthe same with the AWS CLI:\n  aws events start-replay --cli-input-json '{compact}'\n"
        ));
        return out;
    }
    if let Some(s) = &r.status {
        out.push_str(&format!("state    {}", s.state));
        if let Some(reason) = &s.state_reason {
            out.push_str(&format!(": {}", uc_ops::text::terminal_safe(reason)));
        }
        out.push('\n');
        if let Some(last) = s.event_last_replayed_time {
            out.push_str(&format!("replayed up to {}\n", rfc3339(last)));
        }
        if let (Some(start), Some(end)) = (s.replay_start_time, s.replay_end_time) {
            out.push_str(&format!(
                "took     {:.1} s\n",
                (end - start).num_milliseconds() as f64 / 1000.0
            ));
        }
        if !s.finished() {
            out.push_str(&format!(
                "still running: follow with `aws events describe-replay --replay-name {0}`; cancel with `uc-ops events cancel {0}`\n",
                r.replay_name
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use uc_ops::events::TargetView;

    fn rule(name: &str, worker: bool, uc: Verdict) -> RuleView {
        RuleView {
            name: name.into(),
            arn: format!("arn:aws:events:us-east-1:111122223333:rule/uc-main/{name}"),
            state: "ENABLED".into(),
            managed_by: None,
            event_pattern: None,
            targets: vec![TargetView {
                id: "queue".into(),
                arn: format!("arn:aws:sqs:us-east-1:111122223333:{name}"),
            }],
            worker,
            user_confirmed: uc.clone(),
            user_confirmed_replayed: uc,
            profile_created: Verdict::NoMatch { reason: "x".into() },
            user_deleted: Verdict::NoMatch { reason: "x".into() },
            user_deleted_replayed: Verdict::NoMatch { reason: "x".into() },
        }
    }

    #[test]
    fn consumers_render_marks_the_worker_and_the_doubtful() {
        let report = Consumers {
            bus: "uc-main".into(),
            bus_arn: "arn:bus".into(),
            source: "userconfirmed.cognito".into(),
            worker_rule_by: "--worker-rule uc-main-user-confirmed".into(),
            user_confirmed: vec![
                rule("uc-main-user-confirmed", true, Verdict::Matches),
                rule(
                    "crm",
                    false,
                    Verdict::MayMatch {
                        reasons: vec!["`source` uses prefix".into()],
                    },
                ),
            ],
            profile_created: vec![],
            user_deleted: vec![RuleView {
                user_deleted: Verdict::Matches,
                user_deleted_replayed: Verdict::Matches,
                ..rule(
                    "erasure-sync",
                    false,
                    Verdict::NoMatch { reason: "x".into() },
                )
            }],
            other_rules: 2,
        };
        let text = render_consumers(&report);
        assert_eq!(
            text,
            "bus uc-main (arn:bus), source userconfirmed.cognito
worker's rule: --worker-rule uc-main-user-confirmed

UserConfirmed consumers: 2
  uc-main-user-confirmed  [WORKER'S RULE: replays need --include-worker-rule]
    rule arn:aws:events:us-east-1:111122223333:rule/uc-main/uc-main-user-confirmed
    -> queue arn:aws:sqs:us-east-1:111122223333:uc-main-user-confirmed
  crm  [may match: `source` uses prefix]
    rule arn:aws:events:us-east-1:111122223333:rule/uc-main/crm
    -> queue arn:aws:sqs:us-east-1:111122223333:crm

ProfileCreated consumers: 0

UserDeleted consumers: 1
  erasure-sync
    rule arn:aws:events:us-east-1:111122223333:rule/uc-main/erasure-sync
    -> queue arn:aws:sqs:us-east-1:111122223333:erasure-sync

other rules on the bus (matching none of them): 2
"
        );
    }

    #[test]
    fn a_failed_replay_exits_1_with_its_reason() {
        let status = ReplayStatus {
            name: "uc-crm-20261122T101530Z".into(),
            state: "FAILED".into(),
            state_reason: Some("The archive was deleted".into()),
            ..Default::default()
        };
        let report = EventsReport::Replay(Box::new(ReplayReport {
            replay_name: status.name.clone(),
            archive_arn: "arn:archive".into(),
            bus_arn: "arn:bus".into(),
            rules: vec![],
            since: "2026-11-01T00:00:00Z".into(),
            until: "2026-11-22T10:15:30Z".into(),
            notes: vec![],
            dry_run: false,
            request: Value::Null,
            status: Some(status),
        }));
        assert!(!report.succeeded());
        let text = render(&report, false).unwrap();
        assert!(
            text.contains("state    FAILED: The archive was deleted\n"),
            "{text}"
        );
    }
}
