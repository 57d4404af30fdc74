//! `events`: who consumes the pipeline's events on its bus, and EventBridge archive replays to
//! chosen consumers' rules only.
//!
//! A new consumer (a CRM sync, an analytics loader) subscribes with its own rule on the bus and
//! then wants the events published before it existed. The bus's archive holds every
//! `UserConfirmed`; `StartReplay` with `Destination.FilterArns` re-sends a time window of them
//! to the named rules only. The worker's own rule is left out unless asked for: the worker
//! would absorb the duplicates (one profile per user), but it is pointless load and, with
//! `PROFILE_CREATED_EVENTS`, no announcement is repeated anyway.
//!
//! Everything that decides something is a pure function over values read from AWS
//! ([`verdict`], [`classify`], [`parse_time`], [`plan_replay`], [`replay_name`],
//! [`start_replay_request`]), so it is tested without an endpoint; the rest are thin calls.

use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::operation::start_replay::StartReplayInput;
use aws_sdk_eventbridge::primitives::DateTime as AwsDateTime;
use aws_sdk_eventbridge::types::ReplayDestination;
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use uc_schemas::{DETAIL_TYPE, PROFILE_CREATED_DETAIL_TYPE};

#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    #[error("{operation}: {message}")]
    Aws {
        operation: &'static str,
        message: String,
    },
    /// Refused before anything was changed: the arguments ask for something unsafe or
    /// impossible (the CLI exits 2).
    #[error("{0}")]
    Refused(String),
}

fn aws_error<E: aws_sdk_sqs::error::ProvideErrorMetadata>(
    operation: &'static str,
) -> impl Fn(aws_sdk_sqs::error::SdkError<E, aws_sdk_sqs::config::http::HttpResponse>) -> EventsError
{
    move |e| EventsError::Aws {
        operation,
        message: crate::aws_message(&e),
    }
}

/// Whether an event would match a rule's pattern.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "kebab-case")]
pub enum Verdict {
    Matches,
    /// The pattern uses something this check does not evaluate (content filters, prefixes,
    /// anything-but, …): it may or may not match.
    MayMatch {
        reasons: Vec<String>,
    },
    NoMatch {
        reason: String,
    },
}

impl Verdict {
    pub fn may_receive(&self) -> bool {
        !matches!(self, Self::NoMatch { .. })
    }
}

/// The envelope fields a pattern is checked against.
#[derive(Debug, Clone, Copy)]
pub struct Probe<'a> {
    pub source: &'a str,
    pub detail_type: &'a str,
    /// EventBridge sets `replay-name` on replayed events; `None` for live ones.
    pub replay_name: Option<&'a str>,
}

/// The replay name used when asking whether a rule takes replayed events at all.
const ANY_REPLAY: &str = "uc-replay";

/// Would an event with `probe`'s envelope match `pattern` (a rule's `EventPattern`)?
/// `source`, `detail-type` and `replay-name` are evaluated for exact values and `exists`;
/// any other operator, and any other field (`detail`, `account`, `$or`, …), makes it "may match".
pub fn verdict(pattern: Option<&str>, probe: &Probe) -> Verdict {
    let Some(pattern) = pattern else {
        return Verdict::NoMatch {
            reason: "no event pattern (a scheduled rule)".into(),
        };
    };
    let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(pattern) else {
        return Verdict::MayMatch {
            reasons: vec!["the event pattern is not a JSON object this check reads".into()],
        };
    };
    let mut reasons = Vec::new();
    for (key, value) in &fields {
        let actual = match key.as_str() {
            "source" => Some(probe.source),
            "detail-type" => Some(probe.detail_type),
            "replay-name" => probe.replay_name,
            other => {
                reasons.push(format!("also filters on `{other}`"));
                continue;
            }
        };
        match field_verdict(key, value, actual) {
            Verdict::Matches => {}
            Verdict::MayMatch { reasons: more } => reasons.extend(more),
            no => return no,
        }
    }
    if reasons.is_empty() {
        Verdict::Matches
    } else {
        Verdict::MayMatch { reasons }
    }
}

fn field_verdict(key: &str, value: &Value, actual: Option<&str>) -> Verdict {
    let Value::Array(elements) = value else {
        return Verdict::MayMatch {
            reasons: vec![format!("`{key}` is not a list of values")],
        };
    };
    // `{"exists": true|false}`: whether the field is there at all.
    let exists = |op: &serde_json::Map<String, Value>| {
        if op.len() == 1 {
            op.get("exists").and_then(Value::as_bool)
        } else {
            None
        }
    };
    let mut reasons = Vec::new();
    for element in elements {
        match element {
            Value::String(s) if Some(s.as_str()) == actual => return Verdict::Matches,
            Value::Object(op) if exists(op) == Some(actual.is_some()) => return Verdict::Matches,
            Value::Object(op) if exists(op).is_some() => {}
            Value::Object(op) => {
                let name = op.keys().next().map(String::as_str).unwrap_or("{}");
                reasons.push(format!("`{key}` uses {name}"));
            }
            // Numbers, null and booleans never equal a string value.
            _ => {}
        }
    }
    if reasons.is_empty() {
        Verdict::NoMatch {
            reason: format!(
                "`{key}` is {value}, the event's is {}",
                actual.map_or_else(|| "absent".to_owned(), |a| format!("{a:?}"))
            ),
        }
    } else {
        Verdict::MayMatch { reasons }
    }
}

/// A rule on the bus, as read from `ListRules` and `ListTargetsByRule`.
#[derive(Debug, Clone, Default)]
pub struct RawRule {
    pub name: String,
    pub arn: String,
    pub state: String,
    pub managed_by: Option<String>,
    pub event_pattern: Option<String>,
    pub targets: Vec<TargetView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetView {
    pub id: String,
    pub arn: String,
}

/// How the pipeline's own worker rule is recognised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerHint {
    /// The rule(s) targeting this queue ARN (`QUEUE_URL`'s queue).
    QueueArn(String),
    /// `--worker-rule`: a rule name or ARN.
    Rule(String),
    /// Neither is configured.
    Unknown,
}

impl WorkerHint {
    pub fn describe(&self) -> String {
        match self {
            Self::QueueArn(arn) => format!("the rule targeting QUEUE_URL's queue {arn}"),
            Self::Rule(rule) => format!("--worker-rule {rule}"),
            Self::Unknown => "unknown (set QUEUE_URL or --worker-rule)".into(),
        }
    }
}

/// A rule with what it would receive.
#[derive(Debug, Clone, Serialize)]
pub struct RuleView {
    pub name: String,
    pub arn: String,
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub managed_by: Option<String>,
    pub event_pattern: Option<String>,
    pub targets: Vec<TargetView>,
    /// The pipeline's own worker rule.
    pub worker: bool,
    /// A live `UserConfirmed` from the pipeline's source.
    pub user_confirmed: Verdict,
    /// A replayed `UserConfirmed` (it carries `replay-name`).
    pub user_confirmed_replayed: Verdict,
    pub profile_created: Verdict,
}

/// Each rule with its verdicts and whether it is the worker's.
pub fn classify(rules: Vec<RawRule>, source: &str, worker: &WorkerHint) -> Vec<RuleView> {
    let live = |detail_type| Probe {
        source,
        detail_type,
        replay_name: None,
    };
    rules
        .into_iter()
        .map(|rule| {
            let pattern = rule.event_pattern.as_deref();
            let is_worker = match worker {
                WorkerHint::QueueArn(queue) => rule.targets.iter().any(|t| &t.arn == queue),
                WorkerHint::Rule(r) => &rule.name == r || &rule.arn == r,
                WorkerHint::Unknown => false,
            };
            RuleView {
                user_confirmed: verdict(pattern, &live(DETAIL_TYPE)),
                user_confirmed_replayed: verdict(
                    pattern,
                    &Probe {
                        replay_name: Some(ANY_REPLAY),
                        ..live(DETAIL_TYPE)
                    },
                ),
                profile_created: verdict(pattern, &live(PROFILE_CREATED_DETAIL_TYPE)),
                worker: is_worker,
                name: rule.name,
                arn: rule.arn,
                state: rule.state,
                managed_by: rule.managed_by,
                event_pattern: rule.event_pattern,
                targets: rule.targets,
            }
        })
        .collect()
}

/// The consumers of the pipeline's events on one bus.
#[derive(Debug, Clone, Serialize)]
pub struct Consumers {
    pub bus: String,
    pub bus_arn: String,
    pub source: String,
    /// How the worker's rule was identified.
    pub worker_rule_by: String,
    /// Rules that match (or may match) a live `UserConfirmed`.
    pub user_confirmed: Vec<RuleView>,
    /// Rules that match (or may match) a `ProfileCreated`.
    pub profile_created: Vec<RuleView>,
    /// Rules on the bus that match neither.
    pub other_rules: usize,
}

pub fn consumers(
    bus: &str,
    bus_arn: &str,
    source: &str,
    worker: &WorkerHint,
    rules: &[RuleView],
) -> Consumers {
    let pick = |f: fn(&RuleView) -> &Verdict| -> Vec<RuleView> {
        rules
            .iter()
            .filter(|r| f(r).may_receive())
            .cloned()
            .collect()
    };
    Consumers {
        bus: bus.to_owned(),
        bus_arn: bus_arn.to_owned(),
        source: source.to_owned(),
        worker_rule_by: worker.describe(),
        user_confirmed: pick(|r| &r.user_confirmed),
        profile_created: pick(|r| &r.profile_created),
        other_rules: rules
            .iter()
            .filter(|r| !r.user_confirmed.may_receive() && !r.profile_created.may_receive())
            .count(),
    }
}

/// The archive a replay reads.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArchiveInfo {
    pub name: String,
    pub arn: String,
    /// The bus it archives.
    pub event_source_arn: String,
    pub state: String,
    pub creation_time: Option<DateTime<Utc>>,
    /// 0: kept indefinitely.
    pub retention_days: i32,
    pub event_count: i64,
}

/// `text` as a time: RFC 3339, a date (midnight UTC), `now`, or an age before `now`
/// (`90s`, `30m`, `12h`, `7d`, `2w`).
pub fn parse_time(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("now") {
        return Ok(now);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(date) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(date.and_hms_opt(0, 0, 0).expect("midnight").and_utc());
    }
    let explain = || {
        format!(
            "{text:?}: expected RFC 3339 (2026-11-21T10:00:00Z), a date (2026-11-21), `now` or an age (30m, 12h, 7d, 2w)"
        )
    };
    let split = text.len().saturating_sub(1);
    let (number, unit) = (text.get(..split).unwrap_or(""), text.get(split..));
    let n: i64 = number.parse().map_err(|_| explain())?;
    let age = match unit {
        Some("s") => TimeDelta::try_seconds(n),
        Some("m") => TimeDelta::try_minutes(n),
        Some("h") => TimeDelta::try_hours(n),
        Some("d") => TimeDelta::try_days(n),
        Some("w") => TimeDelta::try_weeks(n),
        _ => None,
    }
    .ok_or_else(explain)?;
    now.checked_sub_signed(age).ok_or_else(explain)
}

/// Longest replay name EventBridge accepts.
pub const MAX_REPLAY_NAME: usize = 64;

/// `uc-<rule>-<UTC time>` (`uc-<rule>-and-<n>-more-<time>` for several rules): readable,
/// the same for the same rules and second, at most 64 characters of `[A-Za-z0-9._-]`.
pub fn replay_name(rules: &[&str], now: DateTime<Utc>) -> String {
    let stamp = now.format("%Y%m%dT%H%M%SZ").to_string();
    let more = match rules.len() {
        0 | 1 => String::new(),
        n => format!("-and-{}-more", n - 1),
    };
    let first: String = rules
        .first()
        .copied()
        .unwrap_or("rule")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let room = MAX_REPLAY_NAME - "uc-".len() - more.len() - 1 - stamp.len();
    let first: String = first.chars().take(room).collect();
    format!("uc-{first}{more}-{stamp}")
}

/// A rule a replay goes to.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlannedRule {
    pub name: String,
    pub arn: String,
    pub worker: bool,
    /// Would a replayed `UserConfirmed` match it.
    pub verdict: Verdict,
}

/// A checked replay: everything `StartReplay` needs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplayPlan {
    pub name: String,
    pub archive_arn: String,
    pub bus_arn: String,
    pub rules: Vec<PlannedRule>,
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    /// What the operator should know (rules that only may match).
    pub notes: Vec<String>,
}

/// What the operator asked for, with what was read from AWS.
#[derive(Debug, Clone)]
pub struct ReplayRequest<'a> {
    pub rules: &'a [RuleView],
    /// `--rule` values: names or ARNs.
    pub wanted: &'a [String],
    pub include_worker_rule: bool,
    pub worker: &'a WorkerHint,
    pub archive: &'a ArchiveInfo,
    pub bus_arn: &'a str,
    pub source: &'a str,
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub now: DateTime<Utc>,
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Checks a replay request; `Refused` says why it cannot go ahead.
pub fn plan_replay(request: &ReplayRequest) -> Result<ReplayPlan, EventsError> {
    let refuse = |m: String| Err(EventsError::Refused(m));
    let (since, until) = (request.since, request.until);
    if since >= until {
        return refuse(format!(
            "--since {} is not before --until {}",
            rfc3339(since),
            rfc3339(until)
        ));
    }
    if until > request.now {
        return refuse(format!(
            "--until {} is in the future; the archive holds events up to now",
            rfc3339(until)
        ));
    }
    let archive = request.archive;
    if let Some(created) = archive.creation_time
        && since < created
    {
        return refuse(format!(
            "--since {} is before archive {} was created ({}): it holds nothing older; use --since {}",
            rfc3339(since),
            archive.name,
            rfc3339(created),
            rfc3339(next_whole_second(created))
        ));
    }
    if archive.retention_days > 0 {
        let kept_from = request.now - TimeDelta::days(i64::from(archive.retention_days));
        if since < kept_from {
            return refuse(format!(
                "--since {} is older than archive {}'s retention of {} days: events before {} are gone",
                rfc3339(since),
                archive.name,
                archive.retention_days,
                rfc3339(kept_from)
            ));
        }
    }
    if archive.event_source_arn != request.bus_arn {
        return refuse(format!(
            "archive {} archives {}, not the bus {}; a replay goes back to the archive's own bus",
            archive.name, archive.event_source_arn, request.bus_arn
        ));
    }
    if *request.worker == WorkerHint::Unknown && !request.include_worker_rule {
        return refuse(
            "cannot tell which rule is the worker's: set QUEUE_URL or --worker-rule (or pass --include-worker-rule to replay without that check)".into(),
        );
    }
    let mut chosen: Vec<&RuleView> = Vec::new();
    for wanted in request.wanted {
        let Some(rule) = request
            .rules
            .iter()
            .find(|r| &r.name == wanted || &r.arn == wanted)
        else {
            let names: Vec<&str> = request
                .rules
                .iter()
                .filter(|r| r.user_confirmed.may_receive() && r.managed_by.is_none())
                .map(|r| r.name.as_str())
                .collect();
            return refuse(format!(
                "no rule {wanted} on the bus; UserConfirmed consumers: {}",
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                }
            ));
        };
        if !chosen.iter().any(|c| c.arn == rule.arn) {
            chosen.push(rule);
        }
    }
    if chosen.is_empty() {
        return refuse("name at least one consumer's rule with --rule".into());
    }
    let names: Vec<&str> = chosen.iter().map(|r| r.name.as_str()).collect();
    let name = replay_name(&names, request.now);
    let mut rules = Vec::new();
    let mut notes = Vec::new();
    for rule in chosen {
        if let Some(by) = &rule.managed_by {
            return refuse(format!(
                "rule {} is managed by {by} (an archive's or another service's rule), not a consumer",
                rule.name
            ));
        }
        if rule.worker && !request.include_worker_rule {
            return refuse(format!(
                "rule {} is the pipeline's own worker rule ({}): a replay to it re-sends every event to the worker; pass --include-worker-rule if that is what you want",
                rule.name,
                request.worker.describe()
            ));
        }
        let verdict = verdict(
            rule.event_pattern.as_deref(),
            &Probe {
                source: request.source,
                detail_type: DETAIL_TYPE,
                replay_name: Some(&name),
            },
        );
        match &verdict {
            Verdict::NoMatch { reason } => {
                return refuse(format!(
                    "rule {} would receive nothing from a replay of UserConfirmed events: {reason}",
                    rule.name
                ));
            }
            Verdict::MayMatch { reasons } => notes.push(format!(
                "rule {} may not match every event: {}",
                rule.name,
                reasons.join("; ")
            )),
            Verdict::Matches => {}
        }
        rules.push(PlannedRule {
            name: rule.name.clone(),
            arn: rule.arn.clone(),
            worker: rule.worker,
            verdict,
        });
    }
    Ok(ReplayPlan {
        name,
        archive_arn: archive.arn.clone(),
        bus_arn: request.bus_arn.to_owned(),
        rules,
        since,
        until,
        notes,
    })
}

/// `t`, or the next whole second when it has a fraction: an easier `--since` to type.
fn next_whole_second(t: DateTime<Utc>) -> DateTime<Utc> {
    if t.timestamp_subsec_nanos() == 0 {
        t
    } else {
        DateTime::from_timestamp(t.timestamp() + 1, 0).unwrap_or(t)
    }
}

fn aws_time(t: DateTime<Utc>) -> AwsDateTime {
    AwsDateTime::from_secs_and_nanos(t.timestamp(), t.timestamp_subsec_nanos())
}

fn chrono_time(t: &AwsDateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}

/// The `StartReplay` request for `plan`: the archive, the window, and the bus with the chosen
/// rules as `FilterArns` (without them EventBridge replays to every rule on the bus).
pub fn start_replay_request(plan: &ReplayPlan) -> StartReplayInput {
    let names: Vec<&str> = plan.rules.iter().map(|r| r.name.as_str()).collect();
    let mut description = format!(
        "uc-ops events replay: UserConfirmed {} .. {} to {}",
        rfc3339(plan.since),
        rfc3339(plan.until),
        names.join(", ")
    );
    if description.len() > 512 {
        let mut end = 509;
        while !description.is_char_boundary(end) {
            end -= 1;
        }
        description.truncate(end);
        description.push_str("...");
    }
    StartReplayInput::builder()
        .replay_name(&plan.name)
        .description(description)
        .event_source_arn(&plan.archive_arn)
        .event_start_time(aws_time(plan.since))
        .event_end_time(aws_time(plan.until))
        .destination(
            ReplayDestination::builder()
                .arn(&plan.bus_arn)
                .set_filter_arns(Some(plan.rules.iter().map(|r| r.arn.clone()).collect()))
                .build()
                .expect("the bus ARN is set"),
        )
        .build()
        .expect("the input builder has no required fields")
}

/// The request as the API's JSON (also `aws events start-replay --cli-input-json`'s).
pub fn request_json(request: &StartReplayInput) -> Value {
    let time = |t: Option<&AwsDateTime>| t.and_then(chrono_time).map(rfc3339);
    json!({
        "ReplayName": request.replay_name(),
        "Description": request.description(),
        "EventSourceArn": request.event_source_arn(),
        "EventStartTime": time(request.event_start_time()),
        "EventEndTime": time(request.event_end_time()),
        "Destination": request.destination().map(|d| json!({
            "Arn": d.arn(),
            "FilterArns": d.filter_arns(),
        })),
    })
}

/// A replay's state, from `DescribeReplay`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ReplayStatus {
    pub name: String,
    pub arn: Option<String>,
    pub state: String,
    pub state_reason: Option<String>,
    pub event_start_time: Option<DateTime<Utc>>,
    pub event_end_time: Option<DateTime<Utc>>,
    /// How far the replay has got through the window.
    pub event_last_replayed_time: Option<DateTime<Utc>>,
    pub replay_start_time: Option<DateTime<Utc>>,
    pub replay_end_time: Option<DateTime<Utc>>,
}

impl ReplayStatus {
    /// COMPLETED, FAILED or CANCELLED: nothing more will happen.
    pub fn finished(&self) -> bool {
        matches!(self.state.as_str(), "COMPLETED" | "FAILED" | "CANCELLED")
    }

    /// The share of the window replayed, 0 to 1, when it can be told.
    pub fn progress(&self) -> Option<f64> {
        if self.state == "COMPLETED" {
            return Some(1.0);
        }
        let (start, end, last) = (
            self.event_start_time?,
            self.event_end_time?,
            self.event_last_replayed_time?,
        );
        let window = (end - start).num_milliseconds();
        if window <= 0 {
            return None;
        }
        Some(((last - start).num_milliseconds() as f64 / window as f64).clamp(0.0, 1.0))
    }
}

/// The bus's ARN.
pub async fn bus_arn(client: &Client, bus: &str) -> Result<String, EventsError> {
    client
        .describe_event_bus()
        .name(bus)
        .send()
        .await
        .map_err(aws_error("DescribeEventBus"))?
        .arn
        .ok_or(EventsError::Aws {
            operation: "DescribeEventBus",
            message: "no Arn in the answer".into(),
        })
}

/// Every rule on `bus`, with its targets.
pub async fn list_rules(client: &Client, bus: &str) -> Result<Vec<RawRule>, EventsError> {
    let mut rules = Vec::new();
    let mut token = None;
    loop {
        let page = client
            .list_rules()
            .event_bus_name(bus)
            .set_next_token(token)
            .send()
            .await
            .map_err(aws_error("ListRules"))?;
        for rule in page.rules() {
            let name = rule.name().unwrap_or_default().to_owned();
            rules.push(RawRule {
                targets: list_targets(client, bus, &name).await?,
                name,
                arn: rule.arn().unwrap_or_default().to_owned(),
                state: rule
                    .state()
                    .map(|s| s.as_str().to_owned())
                    .unwrap_or_default(),
                managed_by: rule.managed_by().map(str::to_owned),
                event_pattern: rule.event_pattern().map(str::to_owned),
            });
        }
        token = page.next_token;
        if token.is_none() {
            return Ok(rules);
        }
    }
}

async fn list_targets(
    client: &Client,
    bus: &str,
    rule: &str,
) -> Result<Vec<TargetView>, EventsError> {
    let mut targets = Vec::new();
    let mut token = None;
    loop {
        let page = client
            .list_targets_by_rule()
            .event_bus_name(bus)
            .rule(rule)
            .set_next_token(token)
            .send()
            .await
            .map_err(aws_error("ListTargetsByRule"))?;
        targets.extend(page.targets().iter().map(|t| TargetView {
            id: t.id().to_owned(),
            arn: t.arn().to_owned(),
        }));
        token = page.next_token;
        if token.is_none() {
            return Ok(targets);
        }
    }
}

/// The archive named `wanted` (name or ARN), or else the one archive of `bus_arn`.
pub async fn find_archive(
    client: &Client,
    wanted: Option<&str>,
    bus_arn: &str,
) -> Result<ArchiveInfo, EventsError> {
    let name = match wanted {
        Some(w) => w.rsplit_once("archive/").map_or(w, |(_, n)| n).to_owned(),
        None => {
            let mut names = Vec::new();
            let mut token = None;
            loop {
                let page = client
                    .list_archives()
                    .event_source_arn(bus_arn)
                    .set_next_token(token)
                    .send()
                    .await
                    .map_err(aws_error("ListArchives"))?;
                names.extend(
                    page.archives()
                        .iter()
                        .filter_map(|a| a.archive_name().map(str::to_owned)),
                );
                token = page.next_token;
                if token.is_none() {
                    break;
                }
            }
            match names.as_slice() {
                [one] => one.clone(),
                [] => {
                    return Err(EventsError::Refused(format!(
                        "the bus {bus_arn} has no archive: nothing to replay (set ARCHIVE_NAME or --archive if it lives elsewhere)"
                    )));
                }
                several => {
                    return Err(EventsError::Refused(format!(
                        "the bus has {} archives ({}): choose one with --archive or ARCHIVE_NAME",
                        several.len(),
                        several.join(", ")
                    )));
                }
            }
        }
    };
    let a = client
        .describe_archive()
        .archive_name(&name)
        .send()
        .await
        .map_err(aws_error("DescribeArchive"))?;
    Ok(ArchiveInfo {
        arn: a.archive_arn().unwrap_or_default().to_owned(),
        event_source_arn: a.event_source_arn().unwrap_or_default().to_owned(),
        state: a.state().map(|s| s.as_str().to_owned()).unwrap_or_default(),
        creation_time: a.creation_time().and_then(chrono_time),
        retention_days: a.retention_days().unwrap_or(0),
        event_count: a.event_count(),
        name,
    })
}

/// Starts the replay; returns its ARN.
pub async fn start_replay(
    client: &Client,
    request: StartReplayInput,
) -> Result<String, EventsError> {
    let output = client
        .start_replay()
        .set_replay_name(request.replay_name)
        .set_description(request.description)
        .set_event_source_arn(request.event_source_arn)
        .set_event_start_time(request.event_start_time)
        .set_event_end_time(request.event_end_time)
        .set_destination(request.destination)
        .send()
        .await
        .map_err(aws_error("StartReplay"))?;
    Ok(output.replay_arn.unwrap_or_default())
}

pub async fn describe_replay(client: &Client, name: &str) -> Result<ReplayStatus, EventsError> {
    let r = client
        .describe_replay()
        .replay_name(name)
        .send()
        .await
        .map_err(aws_error("DescribeReplay"))?;
    Ok(ReplayStatus {
        name: r.replay_name().unwrap_or(name).to_owned(),
        arn: r.replay_arn().map(str::to_owned),
        state: r.state().map(|s| s.as_str().to_owned()).unwrap_or_default(),
        state_reason: r.state_reason().map(str::to_owned),
        event_start_time: r.event_start_time().and_then(chrono_time),
        event_end_time: r.event_end_time().and_then(chrono_time),
        event_last_replayed_time: r.event_last_replayed_time().and_then(chrono_time),
        replay_start_time: r.replay_start_time().and_then(chrono_time),
        replay_end_time: r.replay_end_time().and_then(chrono_time),
    })
}

/// Asks EventBridge to cancel a replay; returns the state it answers (CANCELLING).
pub async fn cancel_replay(
    client: &Client,
    name: &str,
) -> Result<(Option<String>, String, Option<String>), EventsError> {
    let r = client
        .cancel_replay()
        .replay_name(name)
        .send()
        .await
        .map_err(aws_error("CancelReplay"))?;
    Ok((
        r.replay_arn().map(str::to_owned),
        r.state().map(|s| s.as_str().to_owned()).unwrap_or_default(),
        r.state_reason().map(str::to_owned),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use uc_schemas::{DEFAULT_SOURCE, event_pattern, profile_created_event_pattern};

    const BUS: &str = "arn:aws:events:us-east-1:111122223333:event-bus/uc-main";
    const QUEUE: &str = "arn:aws:sqs:us-east-1:111122223333:uc-main-worker";

    fn live(detail_type: &str) -> Probe<'_> {
        Probe {
            source: DEFAULT_SOURCE,
            detail_type,
            replay_name: None,
        }
    }

    fn check(pattern: &str) -> Verdict {
        verdict(Some(pattern), &live(DETAIL_TYPE))
    }

    fn rule(name: &str, pattern: Value, target: &str) -> RawRule {
        RawRule {
            name: name.into(),
            arn: format!("arn:aws:events:us-east-1:111122223333:rule/uc-main/{name}"),
            state: "ENABLED".into(),
            managed_by: None,
            event_pattern: Some(pattern.to_string()),
            targets: vec![TargetView {
                id: "queue".into(),
                arn: target.into(),
            }],
        }
    }

    fn bus_rules() -> Vec<RuleView> {
        let mut archive = rule(
            "Events-Archive-uc-main-user-confirmed",
            json!({"source": [DEFAULT_SOURCE], "detail-type": ["UserConfirmed"], "replay-name": [{"exists": false}]}),
            "arn:aws:events:us-east-1:::",
        );
        archive.managed_by = Some("events.amazonaws.com".into());
        classify(
            vec![
                rule(
                    "uc-main-user-confirmed",
                    event_pattern(DEFAULT_SOURCE),
                    QUEUE,
                ),
                rule(
                    "crm-sync",
                    event_pattern(DEFAULT_SOURCE),
                    "arn:aws:sqs:us-east-1:111122223333:crm",
                ),
                rule(
                    "welcome-flow",
                    profile_created_event_pattern(DEFAULT_SOURCE),
                    "arn:aws:sqs:us-east-1:111122223333:welcome",
                ),
                rule(
                    "live-only",
                    json!({"source": [DEFAULT_SOURCE], "replay-name": [{"exists": false}]}),
                    "arn:aws:sqs:us-east-1:111122223333:live",
                ),
                archive,
            ],
            DEFAULT_SOURCE,
            &WorkerHint::QueueArn(QUEUE.into()),
        )
    }

    fn archive() -> ArchiveInfo {
        ArchiveInfo {
            name: "uc-main-user-confirmed".into(),
            arn: "arn:aws:events:us-east-1:111122223333:archive/uc-main-user-confirmed".into(),
            event_source_arn: BUS.into(),
            state: "ENABLED".into(),
            creation_time: Some(at("2026-10-01T00:00:00Z")),
            retention_days: 365,
            event_count: 42,
        }
    }

    fn at(t: &str) -> DateTime<Utc> {
        parse_time(t, Utc::now()).unwrap()
    }

    fn request<'a>(
        rules: &'a [RuleView],
        wanted: &'a [String],
        archive: &'a ArchiveInfo,
        worker: &'a WorkerHint,
    ) -> ReplayRequest<'a> {
        ReplayRequest {
            rules,
            wanted,
            include_worker_rule: false,
            worker,
            archive,
            bus_arn: BUS,
            source: DEFAULT_SOURCE,
            since: at("2026-11-01T00:00:00Z"),
            until: at("2026-11-22T10:15:30Z"),
            now: at("2026-11-22T10:15:30Z"),
        }
    }

    fn refusal(result: Result<ReplayPlan, EventsError>) -> String {
        match result {
            Err(EventsError::Refused(message)) => message,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn the_contract_patterns_match_their_own_events_only() {
        let uc = event_pattern(DEFAULT_SOURCE).to_string();
        let pc = profile_created_event_pattern(DEFAULT_SOURCE).to_string();
        assert_eq!(check(&uc), Verdict::Matches);
        assert!(matches!(
            verdict(Some(&uc), &live(PROFILE_CREATED_DETAIL_TYPE)),
            Verdict::NoMatch { .. }
        ));
        assert_eq!(
            verdict(Some(&pc), &live(PROFILE_CREATED_DETAIL_TYPE)),
            Verdict::Matches
        );
        assert!(!check(&pc).may_receive());
        // Another source (EVENT_SOURCE set elsewhere) does not match.
        let other = Probe {
            source: "acme.signups",
            ..live(DETAIL_TYPE)
        };
        assert_eq!(
            verdict(Some(&uc), &other),
            Verdict::NoMatch {
                reason: r#"`source` is ["userconfirmed.cognito"], the event's is "acme.signups""#
                    .into()
            }
        );
    }

    #[test]
    fn absent_fields_match_and_lists_need_one_equal_value() {
        assert_eq!(check("{}"), Verdict::Matches, "an empty pattern takes all");
        assert_eq!(
            check(r#"{"source": ["userconfirmed.cognito"]}"#),
            Verdict::Matches
        );
        assert_eq!(
            check(r#"{"detail-type": ["ProfileCreated", "UserConfirmed"]}"#),
            Verdict::Matches
        );
        assert!(!check(r#"{"source": ["aws.s3"]}"#).may_receive());
        assert!(!check(r#"{"source": [null, 1]}"#).may_receive());
        assert_eq!(check(r#"{"source": [{"exists": true}]}"#), Verdict::Matches);
        assert!(!check(r#"{"source": [{"exists": false}]}"#).may_receive());
    }

    #[test]
    fn operators_and_other_fields_are_only_may_match() {
        for (pattern, reason) in [
            (
                r#"{"source": [{"prefix": "userconfirmed."}]}"#,
                "`source` uses prefix",
            ),
            (
                r#"{"detail-type": [{"anything-but": "ProfileCreated"}]}"#,
                "`detail-type` uses anything-but",
            ),
            (
                r#"{"source": ["userconfirmed.cognito"], "detail": {"origin": ["backfill"]}}"#,
                "also filters on `detail`",
            ),
            (
                r#"{"$or": [{"source": ["x"]}, {"account": ["1"]}]}"#,
                "also filters on `$or`",
            ),
            (
                r#"{"source": "userconfirmed.cognito"}"#,
                "`source` is not a list of values",
            ),
        ] {
            assert_eq!(
                check(pattern),
                Verdict::MayMatch {
                    reasons: vec![reason.into()]
                },
                "{pattern}"
            );
        }
        // A certain "no" wins over any "maybe".
        assert!(
            !check(r#"{"detail": {"x": [1]}, "detail-type": ["ProfileCreated"]}"#).may_receive()
        );
        assert!(matches!(check("not json"), Verdict::MayMatch { .. }));
        assert!(
            !verdict(None, &live(DETAIL_TYPE)).may_receive(),
            "scheduled rule"
        );
    }

    #[test]
    fn replay_name_exists_false_takes_live_events_but_no_replays() {
        let pattern =
            r#"{"source": ["userconfirmed.cognito"], "replay-name": [{"exists": false}]}"#;
        assert_eq!(check(pattern), Verdict::Matches);
        let replayed = Probe {
            replay_name: Some("uc-crm-20261122T101530Z"),
            ..live(DETAIL_TYPE)
        };
        assert!(!verdict(Some(pattern), &replayed).may_receive());
    }

    #[test]
    fn consumers_are_sorted_into_their_sections_and_the_worker_rule_is_marked() {
        let rules = bus_rules();
        let found = consumers(
            "uc-main",
            BUS,
            DEFAULT_SOURCE,
            &WorkerHint::QueueArn(QUEUE.into()),
            &rules,
        );
        let names = |v: &[RuleView]| v.iter().map(|r| r.name.clone()).collect::<Vec<_>>();
        assert_eq!(
            names(&found.user_confirmed),
            [
                "uc-main-user-confirmed",
                "crm-sync",
                "live-only",
                "Events-Archive-uc-main-user-confirmed"
            ]
        );
        // A pattern naming only the source takes ProfileCreated as well.
        assert_eq!(names(&found.profile_created), ["welcome-flow", "live-only"]);
        assert_eq!(found.other_rules, 0);
        let workers: Vec<&str> = rules
            .iter()
            .filter(|r| r.worker)
            .map(|r| r.name.as_str())
            .collect();
        assert_eq!(workers, ["uc-main-user-confirmed"]);
        let live_only = rules.iter().find(|r| r.name == "live-only").unwrap();
        assert!(!live_only.user_confirmed_replayed.may_receive());
        // --worker-rule names it instead of the queue.
        let by_name = classify(
            vec![rule("mine", event_pattern(DEFAULT_SOURCE), "arn:x")],
            DEFAULT_SOURCE,
            &WorkerHint::Rule("mine".into()),
        );
        assert!(by_name[0].worker);
        let json = serde_json::to_value(&found).unwrap();
        assert_eq!(
            json["user_confirmed"][1]["user_confirmed"],
            json!({"verdict": "matches"})
        );
        assert_eq!(
            json["worker_rule_by"],
            format!("the rule targeting QUEUE_URL's queue {QUEUE}")
        );
    }

    #[test]
    fn times_are_rfc_3339_dates_or_ages() {
        let now = at("2026-11-22T10:15:30Z");
        assert_eq!(parse_time("7d", now).unwrap(), at("2026-11-15T10:15:30Z"));
        assert_eq!(parse_time("12h", now).unwrap(), at("2026-11-21T22:15:30Z"));
        assert_eq!(parse_time("30m", now).unwrap(), at("2026-11-22T09:45:30Z"));
        assert_eq!(parse_time("90s", now).unwrap(), at("2026-11-22T10:14:00Z"));
        assert_eq!(parse_time("2w", now).unwrap(), at("2026-11-08T10:15:30Z"));
        assert_eq!(parse_time("now", now).unwrap(), now);
        assert_eq!(
            parse_time("2026-11-21", now).unwrap(),
            at("2026-11-21T00:00:00Z")
        );
        assert_eq!(
            parse_time("2026-11-21T12:00:00+02:00", now).unwrap(),
            at("2026-11-21T10:00:00Z")
        );
        for bad in [
            "",
            "d",
            "7",
            "7y",
            "-",
            "yesterday",
            "99999999999999999999d",
        ] {
            let error = parse_time(bad, now).unwrap_err();
            assert!(error.contains("expected RFC 3339"), "{bad}: {error}");
        }
    }

    #[test]
    fn replay_names_are_readable_bounded_and_allowed() {
        let now = at("2026-11-22T10:15:30Z");
        assert_eq!(
            replay_name(&["crm-sync"], now),
            "uc-crm-sync-20261122T101530Z"
        );
        assert_eq!(
            replay_name(&["crm-sync", "analytics", "search"], now),
            "uc-crm-sync-and-2-more-20261122T101530Z"
        );
        let long = "r".repeat(64);
        let name = replay_name(&[&long, "b"], now);
        assert_eq!(name.len(), MAX_REPLAY_NAME);
        assert!(name.ends_with("-and-1-more-20261122T101530Z"), "{name}");
        let odd = replay_name(&["a/b c"], now);
        assert_eq!(odd, "uc-a-b-c-20261122T101530Z");
        assert!(
            odd.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        );
        assert_eq!(
            replay_name(&["crm-sync"], now),
            replay_name(&["crm-sync"], now)
        );
        assert_ne!(
            replay_name(&["crm-sync"], now),
            replay_name(&["crm-sync"], now + TimeDelta::seconds(1))
        );
    }

    #[test]
    fn the_start_replay_request_names_the_archive_window_bus_and_only_the_chosen_rules() {
        let rules = bus_rules();
        let wanted = vec![
            "crm-sync".to_owned(),
            "arn:aws:events:us-east-1:111122223333:rule/uc-main/welcome-flow".to_owned(),
        ];
        let archive = archive();
        let worker = WorkerHint::QueueArn(QUEUE.into());
        // welcome-flow takes ProfileCreated only: the archive has nothing for it.
        let message = refusal(plan_replay(&request(&rules, &wanted, &archive, &worker)));
        assert!(
            message.contains("rule welcome-flow would receive nothing"),
            "{message}"
        );

        let wanted = vec![
            "crm-sync".to_owned(),
            "arn:aws:events:us-east-1:111122223333:rule/uc-main/crm-sync".to_owned(),
        ];
        let plan = plan_replay(&request(&rules, &wanted, &archive, &worker)).unwrap();
        assert_eq!(
            plan.name, "uc-crm-sync-20261122T101530Z",
            "one rule, named twice"
        );
        assert!(plan.notes.is_empty());
        let input = start_replay_request(&plan);
        assert_eq!(input.replay_name(), Some("uc-crm-sync-20261122T101530Z"));
        assert_eq!(input.event_source_arn(), Some(archive.arn.as_str()));
        assert_eq!(
            input.event_start_time(),
            Some(&AwsDateTime::from_secs(
                at("2026-11-01T00:00:00Z").timestamp()
            ))
        );
        assert_eq!(
            input.event_end_time(),
            Some(&AwsDateTime::from_secs(
                at("2026-11-22T10:15:30Z").timestamp()
            ))
        );
        let destination = input.destination().unwrap();
        assert_eq!(destination.arn(), BUS);
        assert_eq!(
            destination.filter_arns(),
            ["arn:aws:events:us-east-1:111122223333:rule/uc-main/crm-sync"]
        );
        assert_eq!(
            request_json(&input),
            json!({
                "ReplayName": "uc-crm-sync-20261122T101530Z",
                "Description": "uc-ops events replay: UserConfirmed 2026-11-01T00:00:00Z .. 2026-11-22T10:15:30Z to crm-sync",
                "EventSourceArn": "arn:aws:events:us-east-1:111122223333:archive/uc-main-user-confirmed",
                "EventStartTime": "2026-11-01T00:00:00Z",
                "EventEndTime": "2026-11-22T10:15:30Z",
                "Destination": {
                    "Arn": BUS,
                    "FilterArns": ["arn:aws:events:us-east-1:111122223333:rule/uc-main/crm-sync"]
                }
            })
        );
    }

    #[test]
    fn the_worker_rule_is_refused_unless_included() {
        let rules = bus_rules();
        let archive = archive();
        let worker = WorkerHint::QueueArn(QUEUE.into());
        let wanted = vec!["crm-sync".to_owned(), "uc-main-user-confirmed".to_owned()];
        let message = refusal(plan_replay(&request(&rules, &wanted, &archive, &worker)));
        assert!(
            message.contains("rule uc-main-user-confirmed is the pipeline's own worker rule")
                && message.contains("--include-worker-rule"),
            "{message}"
        );
        let mut included = request(&rules, &wanted, &archive, &worker);
        included.include_worker_rule = true;
        let plan = plan_replay(&included).unwrap();
        assert_eq!(plan.name, "uc-crm-sync-and-1-more-20261122T101530Z");
        assert_eq!(
            start_replay_request(&plan)
                .destination()
                .unwrap()
                .filter_arns()
                .len(),
            2
        );
        assert!(plan.rules[1].worker);
        // Without a way to recognise the worker's rule, nothing is replayed unless included.
        let unknown = WorkerHint::Unknown;
        let message = refusal(plan_replay(&request(
            &rules,
            &wanted[..1],
            &archive,
            &unknown,
        )));
        assert!(
            message.contains("cannot tell which rule is the worker's"),
            "{message}"
        );
    }

    #[test]
    fn other_rules_that_cannot_take_the_replay_are_refused() {
        let rules = bus_rules();
        let archive = archive();
        let worker = WorkerHint::QueueArn(QUEUE.into());
        for (wanted, expected) in [
            (
                "nope",
                "no rule nope on the bus; UserConfirmed consumers: uc-main-user-confirmed, crm-sync, live-only",
            ),
            (
                "Events-Archive-uc-main-user-confirmed",
                "is managed by events.amazonaws.com",
            ),
            (
                "live-only",
                "rule live-only would receive nothing from a replay of UserConfirmed events: `replay-name`",
            ),
        ] {
            let wanted = vec![wanted.to_owned()];
            let message = refusal(plan_replay(&request(&rules, &wanted, &archive, &worker)));
            assert!(message.contains(expected), "{message}");
        }
        let message = refusal(plan_replay(&request(&rules, &[], &archive, &worker)));
        assert!(message.contains("--rule"), "{message}");
    }

    #[test]
    fn windows_outside_the_archive_are_refused() {
        let rules = bus_rules();
        let wanted = vec!["crm-sync".to_owned()];
        let worker = WorkerHint::QueueArn(QUEUE.into());
        let archive = archive();
        let base = request(&rules, &wanted, &archive, &worker);
        let cases = [
            (
                ReplayRequest {
                    since: base.until,
                    ..base.clone()
                },
                "is not before --until",
            ),
            (
                ReplayRequest {
                    until: base.now + TimeDelta::minutes(5),
                    ..base.clone()
                },
                "is in the future",
            ),
            (
                ReplayRequest {
                    since: at("2026-09-30T23:59:59Z"),
                    ..base.clone()
                },
                "is before archive uc-main-user-confirmed was created (2026-10-01T00:00:00Z): it holds nothing older; use --since 2026-10-01T00:00:00Z",
            ),
        ];
        for (request, expected) in cases {
            let message = refusal(plan_replay(&request));
            assert!(message.contains(expected), "{message}");
        }
        let short = ArchiveInfo {
            retention_days: 7,
            ..archive.clone()
        };
        let message = refusal(plan_replay(&ReplayRequest {
            archive: &short,
            ..base.clone()
        }));
        assert!(
            message.contains("older than archive uc-main-user-confirmed's retention of 7 days: events before 2026-11-15T10:15:30Z are gone"),
            "{message}"
        );
        let fractional = ArchiveInfo {
            creation_time: Some(at("2026-11-10T08:00:00.25Z")),
            ..archive.clone()
        };
        let message = refusal(plan_replay(&ReplayRequest {
            archive: &fractional,
            ..base.clone()
        }));
        assert!(
            message.ends_with("(2026-11-10T08:00:00.250Z): it holds nothing older; use --since 2026-11-10T08:00:01Z"),
            "{message}"
        );
        let forever = ArchiveInfo {
            retention_days: 0,
            creation_time: None,
            ..archive.clone()
        };
        assert!(
            plan_replay(&ReplayRequest {
                archive: &forever,
                ..base.clone()
            })
            .is_ok()
        );
        let elsewhere = ArchiveInfo {
            event_source_arn: "arn:aws:events:us-east-1:111122223333:event-bus/other".into(),
            ..archive.clone()
        };
        let message = refusal(plan_replay(&ReplayRequest {
            archive: &elsewhere,
            ..base
        }));
        assert!(message.contains("not the bus"), "{message}");
    }

    #[test]
    fn may_match_rules_go_ahead_with_a_note() {
        let rules = classify(
            vec![rule(
                "backfills-only",
                json!({"source": [DEFAULT_SOURCE], "detail": {"origin": ["backfill"]}}),
                "arn:aws:sqs:us-east-1:111122223333:b",
            )],
            DEFAULT_SOURCE,
            &WorkerHint::QueueArn(QUEUE.into()),
        );
        let wanted = vec!["backfills-only".to_owned()];
        let archive = archive();
        let worker = WorkerHint::QueueArn(QUEUE.into());
        let plan = plan_replay(&request(&rules, &wanted, &archive, &worker)).unwrap();
        assert_eq!(
            plan.notes,
            ["rule backfills-only may not match every event: also filters on `detail`"]
        );
    }

    #[test]
    fn progress_is_the_share_of_the_window_replayed() {
        let status = ReplayStatus {
            state: "RUNNING".into(),
            event_start_time: Some(at("2026-11-01T00:00:00Z")),
            event_end_time: Some(at("2026-11-11T00:00:00Z")),
            event_last_replayed_time: Some(at("2026-11-03T12:00:00Z")),
            ..Default::default()
        };
        assert_eq!(status.progress(), Some(0.25));
        assert!(!status.finished());
        let done = ReplayStatus {
            state: "COMPLETED".into(),
            ..Default::default()
        };
        assert_eq!(done.progress(), Some(1.0));
        assert!(done.finished());
        assert_eq!(ReplayStatus::default().progress(), None);
    }
}
