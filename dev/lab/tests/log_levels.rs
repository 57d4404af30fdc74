//! Issue 25, item 1: the functions log at INFO by default, and whatever `RUST_LOG` says, no
//! crate but ours writes a DEBUG or TRACE line (the SDK's dumps carry the access key id, endpoint
//! resolution and bodies). One sign-up through each binary on the local stack: the emitter, the
//! worker and the scheduled reconciler under a Lambda Runtime API, the worker long-polling, and
//! the operator CLI.

use std::time::Duration;

use serde_json::{Value, json};
use uc_devkit::{LambdaHarness, eventually};
use uc_lab::pipeline::Pipeline;

mod support;
use support::{TestStack, binary};

/// `(level, target)` of every JSON log line (EMF records and other lines are skipped).
fn levels(lines: &[String]) -> Vec<(String, String)> {
    lines
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter_map(|line| {
            Some((
                line.get("level")?.as_str()?.to_owned(),
                line.get("target")?.as_str()?.to_owned(),
            ))
        })
        .collect()
}

/// The lines below INFO written by a crate that is not ours.
fn theirs_below_info(levels: &[(String, String)]) -> Vec<&(String, String)> {
    levels
        .iter()
        .filter(|(level, target)| {
            matches!(level.as_str(), "DEBUG" | "TRACE") && !target.starts_with("uc_")
        })
        .collect()
}

/// An SQS event for the worker function, made from a message the pipeline really queued.
fn sqs_event(message: &aws_sdk_sqs::types::Message, queue_arn: &str) -> Value {
    json!({"Records": [{
        "messageId": message.message_id(),
        "receiptHandle": message.receipt_handle(),
        "body": message.body(),
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1700000000000"},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": "us-east-1"
    }]})
}

/// Runs one sign-up through every binary with `rust_log` (None: unset) and returns each
/// binary's `(level, target)` lines.
async fn one_sign_up(
    stack: &TestStack,
    rust_log: Option<&str>,
) -> Vec<(&'static str, Vec<(String, String)>)> {
    let overrides: Vec<(&str, String)> = rust_log
        .map(|l| ("RUST_LOG", l.to_owned()))
        .into_iter()
        .collect();
    let pipeline = Pipeline::start(stack.env.clone(), &binary("uc-emitter"), &overrides)
        .await
        .unwrap();
    let sqs = stack.sqs().await;
    let queue = stack.env.get("QUEUE_URL").unwrap().to_owned();

    // The emitter, then the worker function fed the message it queued.
    let first = pipeline
        .sign_up_through_trigger("first@example.com")
        .await
        .unwrap();
    let message = eventually_message(&sqs, &queue).await;
    let mut worker_env: Vec<(String, String)> = stack.env.binary_env();
    worker_env.extend(overrides.iter().map(|(k, v)| (k.to_string(), v.clone())));
    let worker_env: Vec<(&str, String)> = worker_env
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    let worker_fn =
        LambdaHarness::start(&binary("uc-worker").display().to_string(), &worker_env).await;
    let answer = worker_fn
        .invoke(
            &sqs_event(&message, "arn:aws:sqs:us-east-1:123456789012:q"),
            Duration::from_secs(30),
        )
        .await;
    assert_eq!(answer.result.unwrap()["batchItemFailures"], json!([]));
    sqs.delete_message()
        .queue_url(&queue)
        .receipt_handle(message.receipt_handle().unwrap())
        .send()
        .await
        .unwrap();

    // The worker long-polling, for a second sign-up.
    let mut poller = pipeline.start_worker(&binary("uc-worker"), &overrides);
    let second = pipeline
        .sign_up_through_trigger("second@example.com")
        .await
        .unwrap();
    let made = eventually(Duration::from_secs(60), || async {
        let ids: Vec<String> = pipeline
            .standin
            .profiles()
            .await
            .iter()
            .filter_map(|p| p["id"].as_str().map(str::to_owned))
            .collect();
        ids.contains(&first.sub) && ids.contains(&second.sub)
    })
    .await;
    poller.signal("TERM");
    assert!(
        poller
            .wait(Duration::from_secs(20))
            .is_some_and(|s| s.success())
    );
    assert!(made, "both profiles");

    // The operator's CLI (text logs on stderr: "LEVEL target: message").
    let mut env: Vec<(&str, &str)> = Vec::new();
    if let Some(level) = rust_log {
        env.push(("RUST_LOG", level));
    }
    let ops = stack.ops_with(&env, &["dlq", "stats"]);
    assert!(
        ops.status.success(),
        "{}",
        String::from_utf8_lossy(&ops.stderr)
    );
    let ops_levels = String::from_utf8_lossy(&ops.stderr)
        .lines()
        .filter_map(|l| {
            let mut words = l
                .split_whitespace()
                .skip_while(|w| !matches!(*w, "ERROR" | "WARN" | "INFO" | "DEBUG" | "TRACE"));
            Some((
                words.next()?.to_owned(),
                words.next()?.trim_end_matches(':').to_owned(),
            ))
        })
        .collect();

    // The scheduled reconciler, one pass.
    let reconciler =
        LambdaHarness::start(&binary("uc-reconciler").display().to_string(), &worker_env).await;
    let pass = reconciler.invoke(&json!({}), Duration::from_secs(60)).await;
    assert!(pass.result.is_ok(), "{:?}", pass.result);

    vec![
        ("uc-emitter", levels(&pipeline.emitter_output())),
        ("uc-reconciler", levels(&reconciler.output())),
        ("uc-worker (Lambda)", levels(&worker_fn.output())),
        ("uc-worker poll", levels(&poller.output())),
        ("uc-ops", ops_levels),
    ]
}

async fn eventually_message(sqs: &aws_sdk_sqs::Client, queue: &str) -> aws_sdk_sqs::types::Message {
    for _ in 0..30 {
        let got = sqs
            .receive_message()
            .queue_url(queue)
            .wait_time_seconds(1)
            .visibility_timeout(60)
            .send()
            .await
            .unwrap();
        if let Some(message) = got.messages().first() {
            return message.clone();
        }
    }
    panic!("the emitter's event never reached the queue");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_crate_but_ours_logs_below_info_whatever_rust_log_says() {
    let stack = TestStack::up("log-levels").await;

    let quiet = one_sign_up(&stack, None).await;
    for (binary, lines) in &quiet {
        assert!(
            lines
                .iter()
                .all(|(level, _)| !matches!(level.as_str(), "DEBUG" | "TRACE")),
            "{binary} logged below INFO with RUST_LOG unset: {lines:?}"
        );
    }
    let (_, emitter) = &quiet[0];
    assert!(
        emitter
            .iter()
            .any(|(level, target)| level == "INFO" && target.starts_with("uc_emitter")),
        "the emitter's own INFO line is there: {emitter:?}"
    );

    let loud = one_sign_up(&stack, Some("trace")).await;
    for (binary, lines) in &loud {
        assert!(
            theirs_below_info(lines).is_empty(),
            "{binary} let another crate log below INFO under RUST_LOG=trace: {:?}",
            theirs_below_info(lines)
        );
    }
    // Each binary did log (the assertions above are about lines that exist), ours at INFO.
    for (binary, lines) in loud.iter().take(4) {
        assert!(
            lines.iter().any(|(_, target)| target.starts_with("uc_")),
            "{binary} wrote no line of ours: {lines:?}"
        );
    }
}
