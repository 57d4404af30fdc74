//! Issue 14: `uc-ops events consumers` and `uc-ops events replay` on the local stack, run as a
//! real process. A consumer that subscribes after users signed up catches up from the bus's
//! archive; the worker's own rule is refused unless asked for.
//!
//! moto (5.2.5) archives events and runs `StartReplay` synchronously, but ignores the replay's
//! `FilterArns` and time window: it re-sends every archived event to every rule on the bus.
//! So this test proves the request `uc-ops` sends (through `--dry-run` and moto's
//! `DescribeReplay`, which echoes it) and that the consumer receives the past events with
//! `replay-name`; "the worker's queue receives nothing" cannot be shown on moto and is pinned
//! the other way round (see the end), so a moto that learns `FilterArns` makes this test say so.

use std::collections::BTreeMap;
use std::process::Output;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use uc_devkit::{eventually, sqs};
use uc_lab::pipeline::Pipeline;
use uc_schemas::{event_pattern, parse_message, profile_created_event_pattern};

mod support;
use support::{TestStack, binary, json_of};

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn names(rules: &Value) -> Vec<&str> {
    rules
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_consumer_catches_up_from_the_archive_and_the_worker_rule_is_refused() {
    let stack = TestStack::up("events-replay").await;
    let sdk = stack.env.sdk_config().await.unwrap();
    let sqs_client = stack.sqs().await;
    let events = aws_sdk_eventbridge::Client::new(&sdk);
    let bus = stack.env.get("EVENT_BUS_NAME").unwrap().to_owned();
    let source = stack.env.get("EVENT_SOURCE").unwrap().to_owned();
    let worker_queue = stack.env.get("QUEUE_URL").unwrap().to_owned();

    // Users who signed up before the consumer existed. No worker runs: their events wait in
    // its queue, and the archive keeps them.
    let pipeline = Pipeline::start(stack.env.clone(), &binary("uc-emitter"), &[])
        .await
        .unwrap();
    for i in 0..3 {
        pipeline
            .sign_up_through_trigger(&format!("replay.{i}@example.com"))
            .await
            .unwrap();
    }
    assert!(
        eventually(Duration::from_secs(30), || async {
            sqs::depth(&sqs_client, &worker_queue).await >= 3
        })
        .await
    );
    let originals: BTreeMap<String, String> = sqs::drain(&sqs_client, &worker_queue)
        .await
        .iter()
        .map(|m| {
            let event = parse_message(m.body().unwrap()).unwrap();
            assert_eq!(event.envelope.unwrap().replay_name, None, "a live event");
            (event.detail.sub, event.detail.event_id.to_string())
        })
        .collect();
    assert_eq!(originals.len(), 3);

    let archives = events.list_archives().send().await.unwrap();
    let [archive] = archives.archives() else {
        panic!("one archive: {archives:?}")
    };
    assert_eq!(
        archive.event_count(),
        3,
        "moto archives what the bus receives"
    );
    let created = archive.creation_time().unwrap();
    let created = DateTime::from_timestamp(created.secs(), created.subsec_nanos()).unwrap();
    // `uc-ops` counts in whole seconds (the window ends at the current second): an archive
    // younger than one second has no window yet.
    if let Ok(wait) = (created + chrono::TimeDelta::milliseconds(1100) - Utc::now()).to_std() {
        tokio::time::sleep(wait).await;
    }
    let created = created.to_rfc3339_opts(SecondsFormat::AutoSi, true);
    let archive_arn = events
        .describe_archive()
        .archive_name(archive.archive_name().unwrap())
        .send()
        .await
        .unwrap()
        .archive_arn
        .unwrap();
    let bus_arn = events
        .describe_event_bus()
        .name(&bus)
        .send()
        .await
        .unwrap()
        .arn
        .unwrap();

    // The new consumers: one of UserConfirmed, one of ProfileCreated.
    let crm = stack
        .subscribe_pattern("crm-sync", event_pattern(&source))
        .await;
    let (crm_queue, crm_queue_arn, crm_rule) = (crm.queue_url, crm.queue_arn, crm.rule_arn);
    let welcome_queue = stack
        .subscribe_pattern("welcome-flow", profile_created_event_pattern(&source))
        .await
        .queue_url;

    // consumers: the worker's rule is recognised by QUEUE_URL's queue.
    let output = stack.ops(&["events", "consumers", "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let listed = json_of(&output);
    let uc = &listed["user_confirmed"];
    let workers: Vec<&str> = uc
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["worker"] == true)
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(workers.len(), 1, "{listed:#}");
    let worker_rule = workers[0].to_owned();
    let crm = uc
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "crm-sync")
        .unwrap_or_else(|| panic!("crm-sync among {:?}", names(uc)));
    assert_eq!(crm["worker"], false);
    assert_eq!(crm["arn"], crm_rule);
    assert_eq!(crm["user_confirmed"], json!({"verdict": "matches"}));
    assert_eq!(
        crm["targets"],
        json!([{"id": "queue", "arn": crm_queue_arn}])
    );
    // moto's archive rule is listed as managed, and takes no replays.
    let managed: Vec<&Value> = uc
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r.get("managed_by").is_some())
        .collect();
    assert_eq!(managed.len(), 1, "{listed:#}");
    assert_eq!(
        managed[0]["user_confirmed_replayed"]["verdict"], "no-match",
        "the archive's rule drops replayed events"
    );
    assert_eq!(names(&listed["profile_created"]), ["welcome-flow"]);
    assert_eq!(listed["bus_arn"], bus_arn);

    let output = stack.ops(&["events", "consumers"]);
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(
        text.contains(&format!(
            "  {worker_rule}  [WORKER'S RULE: replays need --include-worker-rule]\n"
        )),
        "{text}"
    );
    assert!(
        text.contains("\nProfileCreated consumers: 1\n  welcome-flow\n"),
        "{text}"
    );
    assert!(!text.contains('@'), "no email anywhere: {text}");

    // Refusals: exit 2, one line, nothing started.
    for (args, expected) in [
        (
            vec!["--rule", worker_rule.as_str(), "--since", created.as_str()],
            "is the pipeline's own worker rule",
        ),
        (
            vec!["--rule", "welcome-flow", "--since", created.as_str()],
            "would receive nothing from a replay of UserConfirmed events",
        ),
        (
            vec!["--rule", "crm-sync", "--since", "30d"],
            "it holds nothing older; use --since",
        ),
        (
            vec!["--rule", "crm-sync", "--since", "last tuesday"],
            "--since \"last tuesday\": expected RFC 3339",
        ),
        (
            vec!["--rule", "nope", "--since", created.as_str()],
            "no rule nope on the bus",
        ),
    ] {
        let mut command = vec!["events", "replay"];
        command.extend(&args);
        let output = stack.ops(&command);
        let message = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {message}");
        assert!(message.contains(expected), "{args:?}: {message}");
        assert_eq!(message.trim().lines().count(), 1, "one line: {message}");
        assert!(output.stdout.is_empty());
    }
    let replays = events.list_replays().send().await.unwrap();
    assert!(replays.replays().is_empty(), "a refusal starts nothing");

    // The dry run prints the exact request and starts nothing.
    let output = stack.ops(&[
        "events",
        "replay",
        "--rule",
        "crm-sync",
        "--since",
        &created,
        "--dry-run",
        "--json",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let planned = json_of(&output);
    let request = &planned["request"];
    let name = request["ReplayName"].as_str().unwrap().to_owned();
    assert!(
        name.starts_with("uc-crm-sync-") && name.len() <= 64,
        "{name}"
    );
    assert_eq!(request["EventSourceArn"], archive_arn);
    assert_eq!(request["EventStartTime"], created);
    assert_eq!(
        request["Destination"],
        json!({"Arn": bus_arn, "FilterArns": [crm_rule]})
    );
    assert_eq!(planned["status"], Value::Null);
    let output = stack.ops(&[
        "events",
        "replay",
        "--rule",
        &crm_rule,
        "--since",
        &created,
        "--dry-run",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(text.starts_with("dry run: nothing started\n"), "{text}");
    assert!(
        text.contains("aws events start-replay --cli-input-json '{"),
        "{text}"
    );
    assert!(
        events
            .list_replays()
            .send()
            .await
            .unwrap()
            .replays()
            .is_empty()
    );
    assert_eq!(sqs::depth(&sqs_client, &crm_queue).await, 0);

    // The replay: followed to COMPLETED.
    let output = stack.ops(&[
        "events",
        "replay",
        "--rule",
        "crm-sync",
        "--since",
        &created,
        "--poll-seconds",
        "1",
        "--json",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let report = json_of(&output);
    assert_eq!(report["status"]["state"], "COMPLETED", "{report:#}");
    let replay_name = report["replay_name"].as_str().unwrap().to_owned();
    // What moto was asked for, as it recorded it.
    let described = events
        .describe_replay()
        .replay_name(&replay_name)
        .send()
        .await
        .unwrap();
    assert_eq!(described.event_source_arn(), Some(archive_arn.as_str()));
    let destination = described.destination().unwrap();
    assert_eq!(destination.arn(), bus_arn);
    assert_eq!(destination.filter_arns(), std::slice::from_ref(&crm_rule));

    // The consumer has the past events: same eventIds (its dedupe key), marked as a replay.
    assert!(
        eventually(Duration::from_secs(10), || async {
            sqs::depth(&sqs_client, &crm_queue).await >= 3
        })
        .await
    );
    let replayed: BTreeMap<String, String> = sqs::drain(&sqs_client, &crm_queue)
        .await
        .iter()
        .map(|m| {
            let event = parse_message(m.body().unwrap()).unwrap();
            assert_eq!(
                event.envelope.unwrap().replay_name.as_deref(),
                Some(replay_name.as_str())
            );
            (event.detail.sub, event.detail.event_id.to_string())
        })
        .collect();
    assert_eq!(replayed, originals);
    assert_eq!(
        sqs::depth(&sqs_client, &welcome_queue).await,
        0,
        "the ProfileCreated consumer matches none of it"
    );

    // moto gap, pinned: moto ignores FilterArns and replays to every rule, so the worker's
    // queue gets the events again. EventBridge sends them to crm-sync only. When moto learns
    // FilterArns this fails: assert 0 here instead.
    let to_worker = sqs::drain(&sqs_client, &worker_queue).await;
    assert_eq!(
        to_worker.len(),
        3,
        "moto replays to every rule on the bus, FilterArns or not"
    );
}
