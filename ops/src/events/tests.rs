use super::*;
use aws_sdk_eventbridge::primitives::DateTime as AwsDateTime;
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};
use uc_schemas::{DEFAULT_SOURCE, event_pattern, profile_created_event_pattern};
use uc_schemas::{DETAIL_TYPE, PROFILE_CREATED_DETAIL_TYPE, USER_DELETED_DETAIL_TYPE};

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
        json!({"source": [DEFAULT_SOURCE], "detail-type": ["UserConfirmed", "UserDeleted"], "replay-name": [{"exists": false}]}),
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
                "erasure-sync",
                json!({"source": [DEFAULT_SOURCE], "detail-type": ["UserDeleted"]}),
                "arn:aws:sqs:us-east-1:111122223333:erasure",
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
    assert!(!check(r#"{"detail": {"x": [1]}, "detail-type": ["ProfileCreated"]}"#).may_receive());
    assert!(matches!(check("not json"), Verdict::MayMatch { .. }));
    assert!(
        !verdict(None, &live(DETAIL_TYPE)).may_receive(),
        "scheduled rule"
    );
}

#[test]
fn replay_name_exists_false_takes_live_events_but_no_replays() {
    let pattern = r#"{"source": ["userconfirmed.cognito"], "replay-name": [{"exists": false}]}"#;
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
    // UserDeleted's consumers are listed in the same way.
    assert_eq!(
        names(&found.user_deleted),
        [
            "erasure-sync",
            "live-only",
            "Events-Archive-uc-main-user-confirmed"
        ]
    );
    assert_eq!(found.other_rules, 0);
    let workers: Vec<&str> = rules
        .iter()
        .filter(|r| r.worker)
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(workers, ["uc-main-user-confirmed"]);
    let live_only = rules.iter().find(|r| r.name == "live-only").unwrap();
    assert!(!live_only.user_confirmed_replayed.may_receive());
    assert!(!live_only.user_deleted_replayed.may_receive());
    assert!(!live_only.takes_replays());
    let erasure = rules.iter().find(|r| r.name == "erasure-sync").unwrap();
    assert!(!erasure.user_confirmed.may_receive() && erasure.takes_replays());
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
        message.contains(
            "rule welcome-flow would receive nothing from a replay of UserConfirmed events, nor of UserDeleted events (all the archive holds): UserConfirmed: `detail-type` is [\"ProfileCreated\"], the event's is \"UserConfirmed\"; UserDeleted: `detail-type` is [\"ProfileCreated\"], the event's is \"UserDeleted\""
        ),
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
            "Description": "uc-ops events replay: UserConfirmed and UserDeleted 2026-11-01T00:00:00Z .. 2026-11-22T10:15:30Z to crm-sync",
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
            "no rule nope on the bus; consumers of UserConfirmed or UserDeleted: uc-main-user-confirmed, crm-sync, erasure-sync, live-only",
        ),
        (
            "Events-Archive-uc-main-user-confirmed",
            "is managed by events.amazonaws.com",
        ),
        (
            "live-only",
            "rule live-only would receive nothing from a replay of UserConfirmed events, nor of UserDeleted events (all the archive holds): `replay-name`",
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
        message.ends_with(
            "(2026-11-10T08:00:00.250Z): it holds nothing older; use --since 2026-11-10T08:00:01Z"
        ),
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

#[test]
fn a_rule_taking_either_archived_event_type_takes_the_replay() {
    let rules = bus_rules();
    let archive = archive();
    let worker = WorkerHint::QueueArn(QUEUE.into());
    // UserDeleted only: the archive holds UserDeleted too, so it is back-filled with them.
    let wanted = vec!["erasure-sync".to_owned()];
    let plan = plan_replay(&request(&rules, &wanted, &archive, &worker)).unwrap();
    assert!(plan.notes.is_empty(), "{:?}", plan.notes);
    let [planned] = plan.rules.as_slice() else {
        panic!("{:?}", plan.rules)
    };
    assert!(!planned.verdict.may_receive(), "{:?}", planned.verdict);
    assert_eq!(planned.user_deleted, Verdict::Matches);
    // UserConfirmed only: unchanged, UserDeleted's verdict says it takes none of them.
    let wanted = vec!["crm-sync".to_owned()];
    let plan = plan_replay(&request(&rules, &wanted, &archive, &worker)).unwrap();
    assert_eq!(plan.rules[0].verdict, Verdict::Matches);
    assert!(!plan.rules[0].user_deleted.may_receive());
    let json = serde_json::to_value(&plan.rules[0]).unwrap();
    assert_eq!(json["verdict"], json!({"verdict": "matches"}));
    assert_eq!(json["user_deleted"]["verdict"], "no-match");
    // Both, by detail-type or by source alone.
    let both = classify(
        vec![
            rule(
                "both",
                json!({"source": [DEFAULT_SOURCE], "detail-type": ["UserConfirmed", "UserDeleted"]}),
                "arn:aws:sqs:us-east-1:111122223333:both",
            ),
            rule(
                "any",
                json!({"source": [DEFAULT_SOURCE]}),
                "arn:aws:sqs:us-east-1:111122223333:any",
            ),
        ],
        DEFAULT_SOURCE,
        &worker,
    );
    let wanted = vec!["both".to_owned(), "any".to_owned()];
    let plan = plan_replay(&request(&both, &wanted, &archive, &worker)).unwrap();
    for rule in &plan.rules {
        assert_eq!(
            (&rule.verdict, &rule.user_deleted),
            (&Verdict::Matches, &Verdict::Matches),
            "{}",
            rule.name
        );
    }
    assert!(plan.notes.is_empty());
    // Another source: neither type, refused with the one reason.
    let elsewhere = classify(
        vec![rule(
            "elsewhere",
            json!({"source": ["acme.signups"]}),
            "arn:aws:sqs:us-east-1:111122223333:e",
        )],
        DEFAULT_SOURCE,
        &worker,
    );
    let wanted = vec!["elsewhere".to_owned()];
    let message = refusal(plan_replay(&request(
        &elsewhere, &wanted, &archive, &worker,
    )));
    assert!(
        message.ends_with(
            r#"nor of UserDeleted events (all the archive holds): `source` is ["acme.signups"], the event's is "userconfirmed.cognito""#
        ),
        "{message}"
    );
}

#[test]
fn may_match_notes_name_the_event_type_when_only_one_may_match() {
    let worker = WorkerHint::QueueArn(QUEUE.into());
    let rules = classify(
        vec![
            rule(
                "sweep-deletions",
                json!({"source": [DEFAULT_SOURCE], "detail-type": ["UserDeleted"], "detail": {"detectedBy": ["sweep"]}}),
                "arn:aws:sqs:us-east-1:111122223333:s",
            ),
            rule(
                "user-events",
                json!({"detail-type": [{"prefix": "User"}]}),
                "arn:aws:sqs:us-east-1:111122223333:u",
            ),
        ],
        DEFAULT_SOURCE,
        &worker,
    );
    let wanted = vec!["sweep-deletions".to_owned(), "user-events".to_owned()];
    let archive = archive();
    let plan = plan_replay(&request(&rules, &wanted, &archive, &worker)).unwrap();
    assert_eq!(
        plan.notes,
        [
            "rule sweep-deletions may not match every UserDeleted event: also filters on `detail`",
            "rule user-events may not match every event: `detail-type` uses prefix",
        ]
    );
    assert!(!plan.rules[0].verdict.may_receive());
    assert!(matches!(plan.rules[1].verdict, Verdict::MayMatch { .. }));
    // The live verdict of each type, for `events consumers`.
    assert!(matches!(
        verdict(
            Some(&json!({"detail-type": ["UserDeleted"]}).to_string()),
            &live(USER_DELETED_DETAIL_TYPE)
        ),
        Verdict::Matches
    ));
}
