//! Planning an archive replay: times, the window against the archive's life, the rules it may
//! go to, its name and the exact `StartReplay` request; and reading a replay's state.

use aws_sdk_eventbridge::operation::start_replay::StartReplayInput;
use aws_sdk_eventbridge::primitives::DateTime as AwsDateTime;
use aws_sdk_eventbridge::types::ReplayDestination;
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use uc_schemas::{DETAIL_TYPE, USER_DELETED_DETAIL_TYPE};

use super::*;

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
    /// Would a replayed `UserDeleted` match it (the archive holds both).
    pub user_deleted: Verdict,
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
                .filter(|r| {
                    (r.user_confirmed.may_receive() || r.user_deleted.may_receive())
                        && r.managed_by.is_none()
                })
                .map(|r| r.name.as_str())
                .collect();
            return refuse(format!(
                "no rule {wanted} on the bus; consumers of UserConfirmed or UserDeleted: {}",
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
        let replayed = |detail_type| {
            verdict(
                rule.event_pattern.as_deref(),
                &Probe {
                    source: request.source,
                    detail_type,
                    replay_name: Some(&name),
                },
            )
        };
        let (confirmed, deleted) = (replayed(DETAIL_TYPE), replayed(USER_DELETED_DETAIL_TYPE));
        if let (Verdict::NoMatch { reason: a }, Verdict::NoMatch { reason: b }) =
            (&confirmed, &deleted)
        {
            let why = if a == b {
                a.clone()
            } else {
                format!("UserConfirmed: {a}; UserDeleted: {b}")
            };
            return refuse(format!(
                "rule {} would receive nothing from a replay of UserConfirmed events, nor of UserDeleted events (all the archive holds): {why}",
                rule.name
            ));
        }
        notes.extend(may_match_notes(&rule.name, &confirmed, &deleted));
        rules.push(PlannedRule {
            name: rule.name.clone(),
            arn: rule.arn.clone(),
            worker: rule.worker,
            verdict: confirmed,
            user_deleted: deleted,
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

/// What the operator should know of a rule that only may match: one note when both event types
/// may match for the same reasons, else one per event type.
fn may_match_notes(rule: &str, confirmed: &Verdict, deleted: &Verdict) -> Vec<String> {
    let reasons = |v: &Verdict| match v {
        Verdict::MayMatch { reasons } => Some(reasons.join("; ")),
        _ => None,
    };
    match (reasons(confirmed), reasons(deleted)) {
        (Some(a), Some(b)) if a == b => {
            vec![format!("rule {rule} may not match every event: {a}")]
        }
        (a, b) => [("UserConfirmed", a), ("UserDeleted", b)]
            .into_iter()
            .filter_map(|(kind, why)| {
                why.map(|why| format!("rule {rule} may not match every {kind} event: {why}"))
            })
            .collect(),
    }
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

pub(super) fn chrono_time(t: &AwsDateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}

/// The `StartReplay` request for `plan`: the archive, the window, and the bus with the chosen
/// rules as `FilterArns` (without them EventBridge replays to every rule on the bus).
pub fn start_replay_request(plan: &ReplayPlan) -> StartReplayInput {
    let names: Vec<&str> = plan.rules.iter().map(|r| r.name.as_str()).collect();
    let mut description = format!(
        "uc-ops events replay: UserConfirmed and UserDeleted {} .. {} to {}",
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
