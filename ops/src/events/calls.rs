//! The thin EventBridge calls behind `events`: rules and targets, archives, and the replay's
//! start, state and cancel.

use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::operation::start_replay::StartReplayInput;

use super::*;

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
